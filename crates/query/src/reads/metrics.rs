//! The metric catalog, a metric's type, bucketed aggregates and raw series
//! points in SQL.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use async_trait::async_trait;

use super::{Where, label_value, rows};
use crate::engine::{DataFusionEngine, SqlParam};
use tf_application::ports::{QueryError, QueryLimits, QueryResult};
use tf_application::queries::MetricReadModel;
use tf_application::queries::metric_queries::{
    ExpHistogramPoint, HistogramPoint, MetricCatalogQuery, MetricInfo, MetricKind, Point, RawPoint,
    RawSeries, Series, SeriesPoints, SummaryPoint, TimeSeriesQuery,
};
use tf_application::queries::params::Aggregation;
use tf_domain::telemetry::quantile::ExpBuckets;
use tf_domain::telemetry::series::CumulativePoint;

/// `WHERE` over window, metric, service and label matchers.
fn filter(q: &TimeSeriesQuery) -> (String, Vec<SqlParam>) {
    let mut w = Where::window(&q.window);
    w.and("metric_name = ?", SqlParam::Utf8(q.metric.clone()));
    if let Some(s) = &q.service {
        w.and("service_name = ?", SqlParam::Utf8(s.clone()));
    }
    w.matchers(&q.filters, "attributes");
    (w.sql, w.params)
}

/// `g0, g1, …`: the group-by labels (point attribute, else resource
/// attribute; `service.name` is the service column).
fn group_exprs(q: &TimeSeriesQuery) -> Vec<String> {
    q.group_by
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} AS g{i}", label_value(k, "attributes")))
        .collect()
}

/// The group-by columns `g0, g1, …` of a result batch.
fn group_columns(q: &TimeSeriesQuery, b: &RecordBatch) -> Result<Vec<StringArray>, QueryError> {
    (0..q.group_by.len())
        .map(|i| rows::strings(b, &format!("g{i}")))
        .collect()
}

fn labels(q: &TimeSeriesQuery, groups: &[StringArray], row: usize) -> BTreeMap<String, String> {
    q.group_by
        .iter()
        .zip(groups)
        .filter_map(|(k, g)| rows::opt_str(g, row).map(|v| (k.clone(), v.to_owned())))
        .collect()
}

impl DataFusionEngine {
    /// Raw points of one metric table with their series identity columns.
    async fn raw(
        &self,
        q: &TimeSeriesQuery,
        kind: MetricKind,
        value_cols: &str,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let (filter, params) = filter(q);
        let groups: String = group_exprs(q).iter().map(|g| format!(", {g}")).collect();
        let sql = format!(
            "SELECT service_name, resource_attributes, scope_name, attributes, \
             CAST(start_timestamp AS BIGINT) AS start_ns, CAST(timestamp AS BIGINT) AS ts_ns, \
             aggregation_temporality, {value_cols}{groups} \
             FROM {table} WHERE {filter}",
            table = kind.table().name(),
        );
        self.query_with(&q.tenant, &sql, &params, limits).await
    }
}

/// Splits raw rows (in no particular order) into series and sorts each by
/// time. `columns` reads a batch's value columns once; `value` takes one
/// row's value from them. Grouping here rather than `ORDER BY` in the
/// engine keeps memory to the points themselves: sorting millions of rows
/// with their attribute maps exceeded the per-query memory limit.
fn group_series<C, P>(
    q: &TimeSeriesQuery,
    result: &QueryResult,
    columns: impl Fn(&RecordBatch) -> Result<C, QueryError>,
    mut value: impl FnMut(&C, usize) -> Result<P, QueryError>,
) -> Result<RawSeries<P>, QueryError> {
    let options = FormatOptions::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut series: Vec<SeriesPoints<P>> = Vec::new();
    let mut key = String::new();
    for b in &result.batches {
        let fmts = rows::formatters(
            b,
            &[
                "service_name",
                "resource_attributes",
                "scope_name",
                "attributes",
            ],
            &options,
        )?;
        let start = rows::int64s(b, "start_ns")?;
        let ts = rows::int64s(b, "ts_ns")?;
        let temporality = rows::int64s(b, "aggregation_temporality")?;
        let gs = group_columns(q, b)?;
        let cols = columns(b)?;
        for r in 0..b.num_rows() {
            key.clear();
            rows::append_key(&fmts, r, &mut key)?;
            let i = match index.get(&key) {
                Some(&i) => i,
                None => {
                    series.push(SeriesPoints {
                        labels: labels(q, &gs, r),
                        points: Vec::new(),
                    });
                    index.insert(key.clone(), series.len() - 1);
                    series.len() - 1
                }
            };
            series[i].points.push(RawPoint {
                at: CumulativePoint {
                    start_ns: start.value(r),
                    ts_ns: ts.value(r),
                },
                delta: temporality.value(r) == 1,
                value: value(&cols, r)?,
            });
        }
    }
    for s in &mut series {
        s.points.sort_by_key(|p| p.at.ts_ns);
    }
    Ok(RawSeries {
        series,
        truncated: result.truncated,
    })
}

#[async_trait]
impl MetricReadModel for DataFusionEngine {
    async fn catalog(
        &self,
        q: &MetricCatalogQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<MetricInfo>, QueryError> {
        let mut params = vec![
            SqlParam::TimestampNs(q.window.start_ns),
            SqlParam::TimestampNs(q.window.end_ns),
        ];
        let name_filter = match &q.metric {
            Some(m) => {
                params.push(SqlParam::Utf8(m.clone()));
                " AND metric_name = $3"
            }
            None => "",
        };
        let parts: Vec<String> = MetricKind::ALL
            .iter()
            .map(|kind| {
                let (mono, temp) = match kind {
                    MetricKind::Sum => ("bool_or(is_monotonic)", "max(aggregation_temporality)"),
                    MetricKind::Histogram | MetricKind::ExponentialHistogram => {
                        ("CAST(NULL AS BOOLEAN)", "max(aggregation_temporality)")
                    }
                    _ => ("CAST(NULL AS BOOLEAN)", "CAST(NULL AS INT)"),
                };
                format!(
                    "SELECT metric_name, '{label}' AS kind, max(metric_unit) AS unit, \
                     max(metric_description) AS description, \
                     array_to_string(array_sort(array_agg(DISTINCT service_name)), '\u{1f}') AS services, \
                     {mono} AS monotonic, CAST({temp} AS BIGINT) AS temporality, \
                     CAST(count(*) AS BIGINT) AS points \
                     FROM {table} WHERE timestamp >= $1 AND timestamp < $2{name_filter} \
                     GROUP BY metric_name",
                    label = kind.label(),
                    table = kind.table().name(),
                )
            })
            .collect();
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY metric_name, points DESC",
            parts.join(" UNION ALL ")
        );
        let result = self
            .query_with(q.ctx.tenant(), &sql, &params, limits)
            .await?;
        let mut out = Vec::new();
        for b in &result.batches {
            let name = rows::strings(b, "metric_name")?;
            let kind = rows::strings(b, "kind")?;
            let unit = rows::strings(b, "unit")?;
            let desc = rows::strings(b, "description")?;
            let services = rows::strings(b, "services")?;
            let mono = rows::bools(b, "monotonic")?;
            let temp = rows::int64s(b, "temporality")?;
            let points = rows::int64s(b, "points")?;
            for r in 0..b.num_rows() {
                let Some(kind) = MetricKind::from_label(kind.value(r)) else {
                    continue;
                };
                out.push(MetricInfo {
                    name: name.value(r).to_owned(),
                    kind,
                    unit: rows::opt_str(&unit, r).unwrap_or("").to_owned(),
                    description: rows::opt_str(&desc, r).unwrap_or("").to_owned(),
                    services: rows::opt_str(&services, r)
                        .filter(|s| !s.is_empty())
                        .map(|s| s.split('\u{1f}').map(str::to_owned).collect())
                        .unwrap_or_default(),
                    monotonic: mono.is_valid(r).then(|| mono.value(r)),
                    temporality: temp.is_valid(r).then(|| match temp.value(r) {
                        1 => "delta",
                        2 => "cumulative",
                        _ => "unspecified",
                    }),
                    points: points.value(r).max(0) as u64,
                });
            }
        }
        Ok(out)
    }

    /// A count per table, far cheaper than the catalog.
    async fn metric_kind(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<Option<MetricKind>, QueryError> {
        let parts: Vec<String> = MetricKind::ALL
            .iter()
            .map(|kind| {
                format!(
                    "SELECT '{label}' AS kind, CAST(count(*) AS BIGINT) AS points FROM {table} \
                     WHERE metric_name = $1 AND timestamp >= $2 AND timestamp < $3",
                    label = kind.label(),
                    table = kind.table().name(),
                )
            })
            .collect();
        let sql = format!(
            "SELECT kind FROM ({}) WHERE points > 0 ORDER BY points DESC, kind LIMIT 1",
            parts.join(" UNION ALL ")
        );
        let params = [
            SqlParam::Utf8(q.metric.clone()),
            SqlParam::TimestampNs(q.window.start_ns),
            SqlParam::TimestampNs(q.window.end_ns),
        ];
        let result = self.query_with(&q.tenant, &sql, &params, limits).await?;
        for b in &result.batches {
            let kind = rows::strings(b, "kind")?;
            if b.num_rows() > 0 {
                return Ok(MetricKind::from_label(kind.value(0)));
            }
        }
        Ok(None)
    }

    async fn bucketed(
        &self,
        q: &TimeSeriesQuery,
        kind: MetricKind,
        limits: &QueryLimits,
    ) -> Result<Vec<Series>, QueryError> {
        let (filter, params) = filter(q);
        let groups = group_exprs(q);
        let group_cols: String = (0..groups.len()).map(|i| format!(", g{i}")).collect();
        let func = match q.aggregation {
            Aggregation::Sum => "sum(value)",
            Aggregation::Min => "min(value)",
            Aggregation::Max => "max(value)",
            Aggregation::Count => "CAST(count(value) AS DOUBLE)",
            _ => "avg(value)",
        };
        let inner_groups: String = groups.iter().map(|g| format!(", {g}")).collect();
        let sql = format!(
            "SELECT CAST(date_bin(INTERVAL '{secs} seconds', timestamp) AS BIGINT) AS bucket{group_cols}, \
             {func} AS value \
             FROM (SELECT timestamp, value{inner_groups} FROM {table} WHERE {filter}) \
             GROUP BY bucket{group_cols} ORDER BY bucket",
            secs = q.interval.secs(),
            table = kind.table().name(),
        );
        let result = self.query_with(&q.tenant, &sql, &params, limits).await?;
        let mut out: BTreeMap<BTreeMap<String, String>, Vec<Point>> = BTreeMap::new();
        for b in &result.batches {
            let bucket = rows::int64s(b, "bucket")?;
            let value = rows::float64s(b, "value")?;
            let gs = group_columns(q, b)?;
            for r in 0..b.num_rows() {
                let Some(v) = rows::opt_f64(&value, r) else {
                    continue;
                };
                out.entry(labels(q, &gs, r)).or_default().push(Point {
                    timestamp: bucket.value(r) / 1_000_000,
                    value: v,
                });
            }
        }
        Ok(out
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect())
    }

    async fn sum_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<f64>, QueryError> {
        let result = self.raw(q, MetricKind::Sum, "value", limits).await?;
        group_series(
            q,
            &result,
            |b| rows::float64s(b, "value"),
            |v, r| Ok(v.value(r)),
        )
    }

    async fn histogram_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<HistogramPoint>, QueryError> {
        let result = self
            .raw(
                q,
                MetricKind::Histogram,
                "bucket_counts, explicit_bounds, min, max",
                limits,
            )
            .await?;
        group_series(
            q,
            &result,
            |b| {
                Ok((
                    rows::u64_lists(b, "bucket_counts")?,
                    rows::f64_lists(b, "explicit_bounds")?,
                    rows::float64s(b, "min")?,
                    rows::float64s(b, "max")?,
                ))
            },
            |(counts, bounds, min, max), r| {
                let mut h = HistogramPoint {
                    counts: Vec::new(),
                    bounds: Vec::new(),
                    min: rows::opt_f64(min, r),
                    max: rows::opt_f64(max, r),
                };
                rows::list_u64(counts, r, &mut h.counts);
                rows::list_f64(bounds, r, &mut h.bounds);
                Ok(h)
            },
        )
    }

    async fn exp_histogram_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<ExpHistogramPoint>, QueryError> {
        let result = self
            .raw(
                q,
                MetricKind::ExponentialHistogram,
                "scale, zero_count, zero_threshold, positive_offset, positive_bucket_counts, \
                 negative_offset, negative_bucket_counts, min, max",
                limits,
            )
            .await?;
        group_series(
            q,
            &result,
            |b| {
                Ok((
                    (
                        rows::int32s(b, "scale")?,
                        rows::uint64s(b, "zero_count")?,
                        rows::float64s(b, "zero_threshold")?,
                    ),
                    (
                        rows::int32s(b, "positive_offset")?,
                        rows::u64_lists(b, "positive_bucket_counts")?,
                        rows::int32s(b, "negative_offset")?,
                        rows::u64_lists(b, "negative_bucket_counts")?,
                    ),
                    (rows::float64s(b, "min")?, rows::float64s(b, "max")?),
                ))
            },
            |((scale, zero_count, zero_threshold), (p_off, p, n_off, n), (min, max)), r| {
                let mut buckets = ExpBuckets {
                    scale: scale.value(r),
                    zero_count: zero_count.value(r),
                    zero_threshold: zero_threshold.value(r),
                    positive_offset: p_off.value(r),
                    positive: Vec::new(),
                    negative_offset: n_off.value(r),
                    negative: Vec::new(),
                };
                rows::list_u64(p, r, &mut buckets.positive);
                rows::list_u64(n, r, &mut buckets.negative);
                Ok(ExpHistogramPoint {
                    buckets,
                    min: rows::opt_f64(min, r),
                    max: rows::opt_f64(max, r),
                })
            },
        )
    }

    async fn summary_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<SummaryPoint>, QueryError> {
        // Summaries have no temporality column: each point stands alone.
        let (filter, params) = filter(q);
        let groups: String = group_exprs(q).iter().map(|g| format!(", {g}")).collect();
        let sql = format!(
            "SELECT service_name, resource_attributes, scope_name, attributes, \
             CAST(start_timestamp AS BIGINT) AS start_ns, CAST(timestamp AS BIGINT) AS ts_ns, \
             CAST(2 AS BIGINT) AS aggregation_temporality, \"count\", quantiles{groups} \
             FROM {table} WHERE {filter}",
            table = MetricKind::Summary.table().name(),
        );
        let result = self.query_with(&q.tenant, &sql, &params, limits).await?;
        let mut pairs = Vec::new();
        let series = group_series(
            q,
            &result,
            |b| {
                Ok((
                    rows::uint64s(b, "count")?,
                    rows::struct_lists(b, "quantiles")?,
                ))
            },
            |(count, quantiles), r| {
                rows::list_f64_pairs(quantiles, r, ("quantile", "value"), &mut pairs)?;
                Ok(SummaryPoint {
                    count: count.value(r),
                    quantiles: pairs.clone(),
                })
            },
        )?;
        Ok(series)
    }
}
