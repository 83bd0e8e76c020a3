//! Rows of the five metric tables → data points, then metrics.

use std::collections::HashMap;

use arrow::array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Float64Type, UInt64Type};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};

use super::values::{
    AttrCols, Bad, Columns, ListCols, PrimList, bad, hex_bytes, opt_f64, prim, string, unix_nanos,
};
use super::{Resourced, Rows};
use crate::convert::Result;
use tf_domain::Table;

/// A metric's type and the type's metric-level fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Gauge,
    Sum { temporality: i32, monotonic: bool },
    Histogram { temporality: i32 },
    ExpHistogram { temporality: i32 },
    Summary,
}

/// What makes rows one metric.
#[derive(Clone, PartialEq, Eq, Hash)]
struct MetricKey {
    name: String,
    description: String,
    unit: String,
    metadata: Vec<(String, String)>,
    metadata_types: Vec<(String, String)>,
    kind: Kind,
}

enum Point {
    Number(NumberDataPoint),
    Histogram(HistogramDataPoint),
    ExpHistogram(ExponentialHistogramDataPoint),
    Summary(SummaryDataPoint),
}

/// One row: its metric and its data point.
pub(super) struct PointItem {
    key: MetricKey,
    metadata: Vec<KeyValue>,
    point: Point,
}

/// The columns of the `exemplars` list.
struct ExemplarCols {
    list: ListCols,
    ts: TimestampNanosecondArray,
    value: Float64Array,
    value_int: Int64Array,
    span_id: StringArray,
    trace_id: StringArray,
    attrs: AttrCols,
}

/// The columns only some metric tables have (one per batch: the size
/// difference between variants does not matter).
#[allow(clippy::large_enum_variant)]
enum TypeCols {
    Number {
        value: Float64Array,
        value_int: Int64Array,
        /// Sums only: temporality and monotonicity.
        sum: Option<(Int32Array, BooleanArray)>,
    },
    Histogram {
        count: UInt64Array,
        sum: Float64Array,
        buckets: PrimList<UInt64Type>,
        bounds: PrimList<Float64Type>,
        min: Float64Array,
        max: Float64Array,
        temporality: Int32Array,
    },
    ExpHistogram {
        count: UInt64Array,
        sum: Float64Array,
        scale: Int32Array,
        zero_count: UInt64Array,
        zero_threshold: Float64Array,
        positive_offset: Int32Array,
        positive: PrimList<UInt64Type>,
        negative_offset: Int32Array,
        negative: PrimList<UInt64Type>,
        min: Float64Array,
        max: Float64Array,
        temporality: Int32Array,
    },
    Summary {
        count: UInt64Array,
        sum: Float64Array,
        quantiles: ListCols,
        quantile: Float64Array,
        value: Float64Array,
    },
}

/// The columns of one batch of a metric table.
pub(super) struct PointRows {
    ts: TimestampNanosecondArray,
    start: TimestampNanosecondArray,
    name: StringArray,
    description: StringArray,
    unit: StringArray,
    metadata: AttrCols,
    attrs: AttrCols,
    flags: UInt32Array,
    exemplars: ExemplarCols,
    typed: TypeCols,
}

impl Rows for PointRows {
    type Item = PointItem;

    fn new(c: &Columns<'_>, table: Table) -> Result<Self> {
        let list = c.list("exemplars")?;
        let exemplars = ExemplarCols {
            ts: list.prims("timestamp")?,
            value: list.prims("value")?,
            value_int: list.prims("value_int")?,
            span_id: list.strings("span_id")?,
            trace_id: list.strings("trace_id")?,
            attrs: list.attrs("filtered_")?,
            list,
        };
        let typed = match table {
            Table::METRICS_GAUGE | Table::METRICS_SUM => TypeCols::Number {
                value: c.prims("value")?,
                value_int: c.prims("value_int")?,
                sum: match table {
                    Table::METRICS_SUM => Some((
                        c.prims("aggregation_temporality")?,
                        c.col("is_monotonic")?
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .cloned()
                            .ok_or_else(|| {
                                super::values::type_mismatch("is_monotonic", "Boolean")
                            })?,
                    )),
                    _ => None,
                },
            },
            Table::METRICS_HISTOGRAM => TypeCols::Histogram {
                count: c.prims("count")?,
                sum: c.prims("sum")?,
                buckets: c.prim_list("bucket_counts")?,
                bounds: c.prim_list("explicit_bounds")?,
                min: c.prims("min")?,
                max: c.prims("max")?,
                temporality: c.prims("aggregation_temporality")?,
            },
            Table::METRICS_EXP_HISTOGRAM => TypeCols::ExpHistogram {
                count: c.prims("count")?,
                sum: c.prims("sum")?,
                scale: c.prims("scale")?,
                zero_count: c.prims("zero_count")?,
                zero_threshold: c.prims("zero_threshold")?,
                positive_offset: c.prims("positive_offset")?,
                positive: c.prim_list("positive_bucket_counts")?,
                negative_offset: c.prims("negative_offset")?,
                negative: c.prim_list("negative_bucket_counts")?,
                min: c.prims("min")?,
                max: c.prims("max")?,
                temporality: c.prims("aggregation_temporality")?,
            },
            _ => {
                let quantiles = c.list("quantiles")?;
                TypeCols::Summary {
                    count: c.prims("count")?,
                    sum: c.prims("sum")?,
                    quantile: quantiles.prims("quantile")?,
                    value: quantiles.prims("value")?,
                    quantiles,
                }
            }
        };
        Ok(Self {
            ts: c.prims("timestamp")?,
            start: c.prims("start_timestamp")?,
            name: c.strings("metric_name")?,
            description: c.strings("metric_description")?,
            unit: c.strings("metric_unit")?,
            metadata: c.attrs("metric_metadata_")?,
            attrs: c.attrs("")?,
            flags: c.prims("flags")?,
            exemplars,
            typed,
        })
    }

    fn item(&self, row: usize) -> Result<PointItem, Bad> {
        let time = unix_nanos(prim(&self.ts, row, "timestamp")?, "timestamp")?;
        let start = unix_nanos(
            prim(&self.start, row, "start_timestamp")?,
            "start_timestamp",
        )?;
        let attributes = self.attrs.attributes(row)?;
        let flags = prim(&self.flags, row, "flags")?;
        let owned = |entries: Vec<(&str, &str)>| {
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        let (kind, point) = match &self.typed {
            TypeCols::Number {
                value,
                value_int,
                sum,
            } => {
                let kind = match sum {
                    Some((temporality, monotonic)) => Kind::Sum {
                        temporality: prim(temporality, row, "aggregation_temporality")?,
                        monotonic: bool_at(monotonic, row, "is_monotonic")?,
                    },
                    None => Kind::Gauge,
                };
                let value = match int_or_double(value_int, value, row, "value")? {
                    Ok(i) => number_data_point::Value::AsInt(i),
                    Err(d) => number_data_point::Value::AsDouble(d),
                };
                let point = NumberDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    exemplars: self.exemplars(row)?,
                    flags,
                    value: Some(value),
                };
                (kind, Point::Number(point))
            }
            TypeCols::Histogram {
                count,
                sum,
                buckets,
                bounds,
                min,
                max,
                temporality,
            } => {
                let point = HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: prim(count, row, "count")?,
                    sum: opt_f64(sum, row, "sum")?,
                    bucket_counts: buckets.get(row, "bucket_counts")?,
                    explicit_bounds: bounds.get(row, "explicit_bounds")?,
                    exemplars: self.exemplars(row)?,
                    flags,
                    min: opt_f64(min, row, "min")?,
                    max: opt_f64(max, row, "max")?,
                };
                let temporality = prim(temporality, row, "aggregation_temporality")?;
                (Kind::Histogram { temporality }, Point::Histogram(point))
            }
            TypeCols::ExpHistogram {
                count,
                sum,
                scale,
                zero_count,
                zero_threshold,
                positive_offset,
                positive,
                negative_offset,
                negative,
                min,
                max,
                temporality,
            } => {
                let point = ExponentialHistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: prim(count, row, "count")?,
                    sum: opt_f64(sum, row, "sum")?,
                    scale: prim(scale, row, "scale")?,
                    zero_count: prim(zero_count, row, "zero_count")?,
                    positive: Some(exponential_histogram_data_point::Buckets {
                        offset: prim(positive_offset, row, "positive_offset")?,
                        bucket_counts: positive.get(row, "positive_bucket_counts")?,
                    }),
                    negative: Some(exponential_histogram_data_point::Buckets {
                        offset: prim(negative_offset, row, "negative_offset")?,
                        bucket_counts: negative.get(row, "negative_bucket_counts")?,
                    }),
                    flags,
                    exemplars: self.exemplars(row)?,
                    min: opt_f64(min, row, "min")?,
                    max: opt_f64(max, row, "max")?,
                    zero_threshold: prim(zero_threshold, row, "zero_threshold")?,
                };
                let temporality = prim(temporality, row, "aggregation_temporality")?;
                (
                    Kind::ExpHistogram { temporality },
                    Point::ExpHistogram(point),
                )
            }
            TypeCols::Summary {
                count,
                sum,
                quantiles,
                quantile,
                value,
            } => {
                let quantile_values = quantiles
                    .range(row)?
                    .map(|j| {
                        Ok(summary_data_point::ValueAtQuantile {
                            quantile: prim(quantile, j, "quantiles.quantile")?,
                            value: prim(value, j, "quantiles.value")?,
                        })
                    })
                    .collect::<Result<_, Bad>>()?;
                let point = SummaryDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count: prim(count, row, "count")?,
                    sum: prim(sum, row, "sum")?,
                    quantile_values,
                    flags,
                };
                (Kind::Summary, Point::Summary(point))
            }
        };
        Ok(PointItem {
            key: MetricKey {
                name: string(&self.name, row, "metric_name")?.to_owned(),
                description: string(&self.description, row, "metric_description")?.to_owned(),
                unit: string(&self.unit, row, "metric_unit")?.to_owned(),
                metadata: owned(self.metadata.entries(row)?),
                metadata_types: owned(self.metadata.type_entries(row)?),
                kind,
            },
            metadata: self.metadata.attributes(row)?,
            point,
        })
    }
}

impl PointRows {
    fn exemplars(&self, row: usize) -> Result<Vec<Exemplar>, Bad> {
        let e = &self.exemplars;
        e.list
            .range(row)?
            .map(|j| {
                let value = match int_or_double(&e.value_int, &e.value, j, "exemplars.value")? {
                    Ok(i) => exemplar::Value::AsInt(i),
                    Err(d) => exemplar::Value::AsDouble(d),
                };
                Ok(Exemplar {
                    filtered_attributes: e.attrs.attributes(j)?,
                    time_unix_nano: unix_nanos(
                        prim(&e.ts, j, "exemplars.timestamp")?,
                        "exemplars.timestamp",
                    )?,
                    span_id: hex_bytes(
                        string(&e.span_id, j, "exemplars.span_id")?,
                        "exemplars.span_id",
                    )?,
                    trace_id: hex_bytes(
                        string(&e.trace_id, j, "exemplars.trace_id")?,
                        "exemplars.trace_id",
                    )?,
                    value: Some(value),
                })
            })
            .collect()
    }
}

/// The integer value when `value_int` holds one, else the double.
fn int_or_double(
    ints: &Int64Array,
    doubles: &Float64Array,
    row: usize,
    column: &str,
) -> Result<std::result::Result<i64, f64>, Bad> {
    if row < ints.len() && !ints.is_null(row) {
        return Ok(Ok(ints.value(row)));
    }
    prim(doubles, row, column).map(Err)
}

fn bool_at(a: &BooleanArray, row: usize, column: &str) -> Result<bool, Bad> {
    use arrow::array::Array as _;
    if row >= a.len() || a.is_null(row) {
        return Err(bad(column, "null or missing value"));
    }
    Ok(a.value(row))
}

/// Data points grouped into metrics, per scope, in order of first appearance.
pub(super) fn assemble(groups: Vec<Resourced<PointItem>>) -> ExportMetricsServiceRequest {
    let resource_metrics = groups
        .into_iter()
        .map(|r| ResourceMetrics {
            resource: Some(r.resource),
            scope_metrics: r
                .scopes
                .into_iter()
                .map(|s| ScopeMetrics {
                    scope: Some(s.scope),
                    metrics: metrics_of(s.items),
                    schema_url: s.schema_url,
                })
                .collect(),
            schema_url: r.schema_url,
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

fn metrics_of(items: Vec<PointItem>) -> Vec<Metric> {
    let mut index: HashMap<MetricKey, usize> = HashMap::new();
    let mut metrics: Vec<Metric> = Vec::new();
    for item in items {
        let i = match index.get(&item.key) {
            Some(&i) => i,
            None => {
                let k = &item.key;
                metrics.push(Metric {
                    name: k.name.clone(),
                    description: k.description.clone(),
                    unit: k.unit.clone(),
                    metadata: item.metadata,
                    data: Some(empty_data(k.kind)),
                });
                index.insert(item.key, metrics.len() - 1);
                metrics.len() - 1
            }
        };
        if let Some(Metric {
            data: Some(data), ..
        }) = metrics.get_mut(i)
        {
            push_point(data, item.point);
        }
    }
    metrics
}

fn empty_data(kind: Kind) -> metric::Data {
    match kind {
        Kind::Gauge => metric::Data::Gauge(Gauge::default()),
        Kind::Sum {
            temporality,
            monotonic,
        } => metric::Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
        Kind::Histogram { temporality } => metric::Data::Histogram(Histogram {
            data_points: Vec::new(),
            aggregation_temporality: temporality,
        }),
        Kind::ExpHistogram { temporality } => {
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: Vec::new(),
                aggregation_temporality: temporality,
            })
        }
        Kind::Summary => metric::Data::Summary(Summary::default()),
    }
}

/// Adds a point to its metric's data (the kinds match: both come from the
/// same key).
fn push_point(data: &mut metric::Data, point: Point) {
    match (data, point) {
        (metric::Data::Gauge(g), Point::Number(p)) => g.data_points.push(p),
        (metric::Data::Sum(s), Point::Number(p)) => s.data_points.push(p),
        (metric::Data::Histogram(h), Point::Histogram(p)) => h.data_points.push(p),
        (metric::Data::ExponentialHistogram(e), Point::ExpHistogram(p)) => e.data_points.push(p),
        (metric::Data::Summary(s), Point::Summary(p)) => s.data_points.push(p),
        _ => {}
    }
}
