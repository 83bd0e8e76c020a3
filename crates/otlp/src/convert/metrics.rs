//! Metric data points → the five `otel_metrics_*` tables.

use std::hash::Hasher as _;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint, exemplar, exponential_histogram_data_point, metric::Data,
    number_data_point,
};

use super::columns::{
    AttrBuilder, ContextColumns, RenderedAttrs, RowContext, TsBuilder, attributes_depth,
    finish_struct_list, hex_id,
};
use super::{Converted, Result};
use tf_application::TableBatch;
use tf_domain::Table;
use tf_domain::TenantContext;
use tf_domain::telemetry::{
    CounterObservation, CounterStore, MetricBatch, Rejection, check_explicit_histogram,
    check_exponential_histogram, check_summary, check_timestamps, check_value_depth,
};
use tf_schema::{exemplar_fields, quantile_fields};

fn u64_list() -> ListBuilder<UInt64Builder> {
    ListBuilder::new(UInt64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::UInt64,
        false,
    )))
}

fn f64_list() -> ListBuilder<Float64Builder> {
    ListBuilder::new(Float64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float64,
        false,
    )))
}

#[derive(Default)]
struct ExemplarColumns {
    ts: TsBuilder,
    value: Float64Builder,
    value_int: Int64Builder,
    span_id: StringBuilder,
    trace_id: StringBuilder,
    attrs: AttrBuilder,
    offsets: Vec<i32>,
}

impl ExemplarColumns {
    fn append(&mut self, exemplars: &[Exemplar]) {
        let mut buf = [0u8; 64];
        for e in exemplars {
            self.ts.append(e.time_unix_nano);
            match e.value {
                Some(exemplar::Value::AsInt(i)) => {
                    self.value.append_value(i as f64);
                    self.value_int.append_value(i);
                }
                Some(exemplar::Value::AsDouble(d)) => {
                    self.value.append_value(d);
                    self.value_int.append_null();
                }
                None => {
                    self.value.append_value(0.0);
                    self.value_int.append_null();
                }
            }
            self.span_id.append_value(hex_id(&e.span_id, &mut buf));
            self.trace_id.append_value(hex_id(&e.trace_id, &mut buf));
            self.attrs.append(&e.filtered_attributes);
        }
        let last = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(last + exemplars.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        let mut children: Vec<ArrayRef> = vec![
            self.ts.finish(),
            Arc::new(self.value.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_id.finish()),
        ];
        self.attrs.finish_into(&mut children);
        self.offsets.insert(0, 0);
        finish_struct_list(exemplar_fields(), children, &mut self.offsets)
    }
}

/// The columns every metric table starts with.
#[derive(Default)]
struct Common {
    ts: TsBuilder,
    start: TsBuilder,
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    ctx: ContextColumns,
    metadata: AttrBuilder,
    attrs: AttrBuilder,
    flags: UInt32Builder,
    exemplars: ExemplarColumns,
    rows: usize,
}

/// One data point's common fields.
struct Point<'a> {
    attributes: &'a [KeyValue],
    start: u64,
    time: u64,
    flags: u32,
    exemplars: &'a [Exemplar],
}

/// The fields every OTLP data point type shares.
trait DataPoint {
    fn point(&self) -> Point<'_>;
}

macro_rules! data_point {
    ($t:ty, |$p:ident| $exemplars:expr) => {
        impl DataPoint for $t {
            fn point(&self) -> Point<'_> {
                let $p = self;
                Point {
                    attributes: &$p.attributes,
                    start: $p.start_time_unix_nano,
                    time: $p.time_unix_nano,
                    flags: $p.flags,
                    exemplars: $exemplars,
                }
            }
        }
    };
}

data_point!(NumberDataPoint, |p| &p.exemplars);
data_point!(HistogramDataPoint, |p| &p.exemplars);
data_point!(ExponentialHistogramDataPoint, |p| &p.exemplars);
// Summaries carry no exemplars.
data_point!(SummaryDataPoint, |_p| &[]);

/// The metric a point belongs to, rendered once.
struct MetricCtx<'a> {
    workspace: &'a str,
    row: &'a RowContext,
    metric: &'a Metric,
    metadata: RenderedAttrs,
    /// Nesting of the deepest resource, scope or metadata attribute value.
    value_depth: u32,
}

impl Point<'_> {
    /// The rules every data point follows, in its metric's context: the
    /// nesting rule, and the timestamp rule for its time, start time and
    /// exemplars.
    fn check(&self, m: &MetricCtx<'_>) -> Result<(), Rejection> {
        let exemplars = self
            .exemplars
            .iter()
            .map(|e| attributes_depth(&e.filtered_attributes));
        check_value_depth(exemplars.fold(
            attributes_depth(self.attributes).max(m.value_depth),
            u32::max,
        ))?;
        let times = [self.start, self.time]
            .into_iter()
            .chain(self.exemplars.iter().map(|e| e.time_unix_nano));
        check_timestamps(times)
    }
}

impl Common {
    fn append(&mut self, m: &MetricCtx<'_>, p: &Point<'_>) {
        self.ts.append(p.time);
        self.start.append(p.start);
        self.name.append_value(&m.metric.name);
        self.description.append_value(&m.metric.description);
        self.unit.append_value(&m.metric.unit);
        self.ctx.append(m.workspace, m.row);
        self.metadata.append_rendered(&m.metadata);
        self.attrs.append(p.attributes);
        self.flags.append_value(p.flags);
        self.exemplars.append(p.exemplars);
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<Vec<ArrayRef>> {
        let mut c: Vec<ArrayRef> = vec![
            self.ts.finish(),
            self.start.finish(),
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
        ];
        self.ctx.finish_into(&mut c);
        self.metadata.finish_into(&mut c);
        self.attrs.finish_into(&mut c);
        c.push(Arc::new(self.flags.finish()));
        c.push(self.exemplars.finish()?);
        Ok(c)
    }
}

#[derive(Default)]
struct NumberColumns {
    common: Common,
    value: Float64Builder,
    value_int: Int64Builder,
    temporality: Int32Builder,
    monotonic: BooleanBuilder,
}

impl NumberColumns {
    fn push_value(&mut self, v: &number_data_point::Value) {
        match v {
            number_data_point::Value::AsInt(i) => {
                self.value.append_value(*i as f64);
                self.value_int.append_value(*i);
            }
            number_data_point::Value::AsDouble(d) => {
                self.value.append_value(*d);
                self.value_int.append_null();
            }
        }
    }

    fn finish(mut self, table: Table) -> Result<RecordBatch> {
        let mut c = self.common.finish()?;
        c.push(Arc::new(self.value.finish()));
        c.push(Arc::new(self.value_int.finish()));
        if table == Table::METRICS_SUM {
            c.push(Arc::new(self.temporality.finish()));
            c.push(Arc::new(self.monotonic.finish()));
        }
        super::finish_batch(table, c)
    }
}

struct HistogramColumns {
    common: Common,
    count: UInt64Builder,
    sum: Float64Builder,
    buckets: ListBuilder<UInt64Builder>,
    bounds: ListBuilder<Float64Builder>,
    min: Float64Builder,
    max: Float64Builder,
    temporality: Int32Builder,
}

impl Default for HistogramColumns {
    fn default() -> Self {
        Self {
            common: Common::default(),
            count: UInt64Builder::new(),
            sum: Float64Builder::new(),
            buckets: u64_list(),
            bounds: f64_list(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            temporality: Int32Builder::new(),
        }
    }
}

impl HistogramColumns {
    fn finish(mut self) -> Result<RecordBatch> {
        let mut c = self.common.finish()?;
        c.push(Arc::new(self.count.finish()));
        c.push(Arc::new(self.sum.finish()));
        c.push(Arc::new(self.buckets.finish()));
        c.push(Arc::new(self.bounds.finish()));
        c.push(Arc::new(self.min.finish()));
        c.push(Arc::new(self.max.finish()));
        c.push(Arc::new(self.temporality.finish()));
        super::finish_batch(Table::METRICS_HISTOGRAM, c)
    }
}

struct ExpHistogramColumns {
    common: Common,
    count: UInt64Builder,
    sum: Float64Builder,
    scale: Int32Builder,
    zero_count: UInt64Builder,
    zero_threshold: Float64Builder,
    pos_offset: Int32Builder,
    pos_buckets: ListBuilder<UInt64Builder>,
    neg_offset: Int32Builder,
    neg_buckets: ListBuilder<UInt64Builder>,
    min: Float64Builder,
    max: Float64Builder,
    temporality: Int32Builder,
}

impl Default for ExpHistogramColumns {
    fn default() -> Self {
        Self {
            common: Common::default(),
            count: UInt64Builder::new(),
            sum: Float64Builder::new(),
            scale: Int32Builder::new(),
            zero_count: UInt64Builder::new(),
            zero_threshold: Float64Builder::new(),
            pos_offset: Int32Builder::new(),
            pos_buckets: u64_list(),
            neg_offset: Int32Builder::new(),
            neg_buckets: u64_list(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            temporality: Int32Builder::new(),
        }
    }
}

impl ExpHistogramColumns {
    fn finish(mut self) -> Result<RecordBatch> {
        let mut c = self.common.finish()?;
        c.push(Arc::new(self.count.finish()));
        c.push(Arc::new(self.sum.finish()));
        c.push(Arc::new(self.scale.finish()));
        c.push(Arc::new(self.zero_count.finish()));
        c.push(Arc::new(self.zero_threshold.finish()));
        c.push(Arc::new(self.pos_offset.finish()));
        c.push(Arc::new(self.pos_buckets.finish()));
        c.push(Arc::new(self.neg_offset.finish()));
        c.push(Arc::new(self.neg_buckets.finish()));
        c.push(Arc::new(self.min.finish()));
        c.push(Arc::new(self.max.finish()));
        c.push(Arc::new(self.temporality.finish()));
        super::finish_batch(Table::METRICS_EXP_HISTOGRAM, c)
    }
}

#[derive(Default)]
struct SummaryColumns {
    common: Common,
    count: UInt64Builder,
    sum: Float64Builder,
    q_quantile: Float64Builder,
    q_value: Float64Builder,
    q_offsets: Vec<i32>,
}

impl SummaryColumns {
    fn finish(mut self) -> Result<RecordBatch> {
        let mut c = self.common.finish()?;
        c.push(Arc::new(self.count.finish()));
        c.push(Arc::new(self.sum.finish()));
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.q_quantile.finish()),
            Arc::new(self.q_value.finish()),
        ];
        self.q_offsets.insert(0, 0);
        c.push(finish_struct_list(
            quantile_fields(),
            children,
            &mut self.q_offsets,
        )?);
        super::finish_batch(Table::METRICS_SUMMARY, c)
    }
}

#[derive(Default)]
struct MetricColumns {
    gauge: NumberColumns,
    sum: NumberColumns,
    histogram: HistogramColumns,
    exp: ExpHistogramColumns,
    summary: SummaryColumns,
}

/// The data points of a metric (a metric without data has none).
pub fn data_points(metric: &Metric) -> u64 {
    metric
        .data
        .as_ref()
        .map_or(0, |d| data_point_count(d) as u64)
}

fn data_point_count(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(e) => e.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

/// The counts of an exponential histogram's bucket range; none when absent.
fn bucket_counts(b: &Option<exponential_histogram_data_point::Buckets>) -> &[u64] {
    b.as_ref().map_or(&[][..], |b| &b.bucket_counts[..])
}

fn series_hash(base: u64, attributes: &[KeyValue]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u64(base);
    RenderedAttrsHash(attributes).hash_into(&mut h);
    h.finish()
}

/// Hashes attributes without rendering non-string values into a String.
struct RenderedAttrsHash<'a>(&'a [KeyValue]);

impl RenderedAttrsHash<'_> {
    fn hash_into(&self, h: &mut impl std::hash::Hasher) {
        for kv in self.0 {
            h.write(kv.key.as_bytes());
            h.write_u8(0xff);
            // The prost encoding of a value identifies it exactly.
            if let Some(v) = &kv.value {
                h.write(&prost::Message::encode_to_vec(v));
            }
        }
    }
}

/// Applies the metric rules and converts the accepted points.
pub fn convert_metrics(
    req: &ExportMetricsServiceRequest,
    tenant: &TenantContext,
    counters: &dyn CounterStore,
) -> Result<Converted> {
    let mut batch = MetricBatch::new(tenant.clone());
    let mut cols = MetricColumns::default();
    let workspace = tenant.workspace().as_str();
    let tenant_hash = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(tenant.tenant().as_str().as_bytes());
        h.finish()
    };
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            if sm.metrics.is_empty() {
                continue;
            }
            let row = RowContext::new(
                rm.resource.as_ref(),
                &rm.schema_url,
                sm.scope.as_ref(),
                &sm.schema_url,
            );
            for metric in &sm.metrics {
                let data = match &metric.data {
                    Some(data) if data_point_count(data) > 0 => data,
                    _ => {
                        batch.reject_empty_metric();
                        continue;
                    }
                };
                let points = data_point_count(data) as u64;
                if batch.admit_metric(&metric.name, points).is_err() {
                    continue;
                }
                let m = MetricCtx {
                    workspace,
                    row: &row,
                    metric,
                    metadata: RenderedAttrs::new(&metric.metadata),
                    value_depth: row.value_depth.max(attributes_depth(&metric.metadata)),
                };
                match data {
                    Data::Gauge(g) => {
                        for p in &g.data_points {
                            let Some(value) = p.value.as_ref() else {
                                batch.reject(Rejection::MissingValue);
                                continue;
                            };
                            if let Err(r) = p.point().check(&m) {
                                batch.reject(r);
                                continue;
                            }
                            batch.admit_point(p.time_unix_nano);
                            let c = &mut cols.gauge;
                            c.common.append(&m, &p.point());
                            c.push_value(value);
                        }
                    }
                    Data::Sum(s) => {
                        let cumulative =
                            s.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                        let base = {
                            let mut h = std::collections::hash_map::DefaultHasher::new();
                            h.write_u64(tenant_hash);
                            h.write_u64(row.identity_hash);
                            h.write(metric.name.as_bytes());
                            h.finish()
                        };
                        for p in &s.data_points {
                            let Some(number) = p.value.as_ref() else {
                                batch.reject(Rejection::MissingValue);
                                continue;
                            };
                            if let Err(r) = p.point().check(&m) {
                                batch.reject(r);
                                continue;
                            }
                            if s.is_monotonic {
                                let value = match *number {
                                    number_data_point::Value::AsInt(i) => i as f64,
                                    number_data_point::Value::AsDouble(d) => d,
                                };
                                let obs = CounterObservation {
                                    series: series_hash(base, &p.attributes),
                                    start_unix_nanos: p.start_time_unix_nano,
                                    unix_nanos: p.time_unix_nano,
                                    value,
                                    cumulative,
                                };
                                if batch.admit_counter_point(counters, obs).is_err() {
                                    continue;
                                }
                            } else {
                                batch.admit_point(p.time_unix_nano);
                            }
                            let c = &mut cols.sum;
                            c.common.append(&m, &p.point());
                            c.push_value(number);
                            c.temporality.append_value(s.aggregation_temporality);
                            c.monotonic.append_value(s.is_monotonic);
                        }
                    }
                    Data::Histogram(hist) => {
                        for p in &hist.data_points {
                            let rules = p.point().check(&m).and_then(|()| {
                                check_explicit_histogram(
                                    p.count,
                                    &p.bucket_counts,
                                    &p.explicit_bounds,
                                )
                            });
                            if let Err(r) = rules {
                                batch.reject(r);
                                continue;
                            }
                            batch.admit_point(p.time_unix_nano);
                            let c = &mut cols.histogram;
                            c.common.append(&m, &p.point());
                            c.count.append_value(p.count);
                            c.sum.append_option(p.sum);
                            c.buckets.values().append_slice(&p.bucket_counts);
                            c.buckets.append(true);
                            c.bounds.values().append_slice(&p.explicit_bounds);
                            c.bounds.append(true);
                            c.min.append_option(p.min);
                            c.max.append_option(p.max);
                            c.temporality.append_value(hist.aggregation_temporality);
                        }
                    }
                    Data::ExponentialHistogram(eh) => {
                        for p in &eh.data_points {
                            let rules = p.point().check(&m).and_then(|()| {
                                check_exponential_histogram(
                                    p.count,
                                    p.scale,
                                    p.zero_count,
                                    bucket_counts(&p.positive),
                                    bucket_counts(&p.negative),
                                )
                            });
                            if let Err(r) = rules {
                                batch.reject(r);
                                continue;
                            }
                            batch.admit_point(p.time_unix_nano);
                            let c = &mut cols.exp;
                            c.common.append(&m, &p.point());
                            c.count.append_value(p.count);
                            c.sum.append_option(p.sum);
                            c.scale.append_value(p.scale);
                            c.zero_count.append_value(p.zero_count);
                            c.zero_threshold.append_value(p.zero_threshold);
                            let pos = p.positive.as_ref();
                            c.pos_offset.append_value(pos.map_or(0, |b| b.offset));
                            c.pos_buckets
                                .values()
                                .append_slice(pos.map_or(&[][..], |b| &b.bucket_counts));
                            c.pos_buckets.append(true);
                            let neg = p.negative.as_ref();
                            c.neg_offset.append_value(neg.map_or(0, |b| b.offset));
                            c.neg_buckets
                                .values()
                                .append_slice(neg.map_or(&[][..], |b| &b.bucket_counts));
                            c.neg_buckets.append(true);
                            c.min.append_option(p.min);
                            c.max.append_option(p.max);
                            c.temporality.append_value(eh.aggregation_temporality);
                        }
                    }
                    Data::Summary(sum) => {
                        for p in &sum.data_points {
                            let rules = p.point().check(&m).and_then(|()| {
                                check_summary(p.quantile_values.iter().map(|q| q.quantile))
                            });
                            if let Err(r) = rules {
                                batch.reject(r);
                                continue;
                            }
                            batch.admit_point(p.time_unix_nano);
                            let c = &mut cols.summary;
                            c.common.append(&m, &p.point());
                            c.count.append_value(p.count);
                            c.sum.append_value(p.sum);
                            for q in &p.quantile_values {
                                c.q_quantile.append_value(q.quantile);
                                c.q_value.append_value(q.value);
                            }
                            let last = c.q_offsets.last().copied().unwrap_or(0);
                            c.q_offsets.push(last + p.quantile_values.len() as i32);
                        }
                    }
                }
            }
        }
    }
    let mut batches = Vec::new();
    let MetricColumns {
        gauge,
        sum,
        histogram,
        exp,
        summary,
    } = cols;
    if gauge.common.rows > 0 {
        batches.push(TableBatch {
            table: Table::METRICS_GAUGE,
            batch: gauge.finish(Table::METRICS_GAUGE)?,
        });
    }
    if sum.common.rows > 0 {
        batches.push(TableBatch {
            table: Table::METRICS_SUM,
            batch: sum.finish(Table::METRICS_SUM)?,
        });
    }
    if histogram.common.rows > 0 {
        batches.push(TableBatch {
            table: Table::METRICS_HISTOGRAM,
            batch: histogram.finish()?,
        });
    }
    if exp.common.rows > 0 {
        batches.push(TableBatch {
            table: Table::METRICS_EXP_HISTOGRAM,
            batch: exp.finish()?,
        });
    }
    if summary.common.rows > 0 {
        batches.push(TableBatch {
            table: Table::METRICS_SUMMARY,
            batch: summary.finish()?,
        });
    }
    Ok(Converted {
        summary: batch.finish(),
        batches,
    })
}
