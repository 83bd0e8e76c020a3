//! Metric read use cases: the metric catalog and `GetMetricTimeSeriesQuery`
//! (the seed's), with a TTL cache that ingest events invalidate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use parking_lot::Mutex;
use serde::Serialize;

use super::params::{Aggregation, Interval, TimeWindow, invalid, sql_string};
use super::rows;
use crate::event_bus::EventHandler;
use crate::ports::{QueryError, QueryLimits, QueryResult, ReadModel, SqlParam};
use tf_domain::telemetry::series::{
    CumulativePoint, MergedHistogram, bucket_start, cumulative_bucket_increase, cumulative_increase,
};
use tf_domain::{DomainEvent, TenantContext, TenantId};

/// The OTLP metric types, as stored (one table each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricKind {
    const ALL: [(MetricKind, &'static str); 5] = [
        (MetricKind::Gauge, "otel_metrics_gauge"),
        (MetricKind::Sum, "otel_metrics_sum"),
        (MetricKind::Histogram, "otel_metrics_histogram"),
        (
            MetricKind::ExponentialHistogram,
            "otel_metrics_exp_histogram",
        ),
        (MetricKind::Summary, "otel_metrics_summary"),
    ];

    fn table(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, t)| *t)
            .unwrap_or("otel_metrics_gauge")
    }

    fn from_label(s: &str) -> Option<Self> {
        Self::ALL.iter().map(|(k, _)| *k).find(|k| k.label() == s)
    }

    fn label(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Sum => "sum",
            MetricKind::Histogram => "histogram",
            MetricKind::ExponentialHistogram => "exponential_histogram",
            MetricKind::Summary => "summary",
        }
    }
}

/// One entry of the metric catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    pub unit: String,
    pub description: String,
    pub services: Vec<String>,
    /// For sums: monotonic (a counter) or not (an up-down counter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monotonic: Option<bool>,
    /// For sums and histograms: `delta` or `cumulative`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporality: Option<&'static str>,
    pub points: u64,
}

#[derive(Debug, Clone)]
pub struct MetricCatalogQuery {
    pub ctx: TenantContext,
    pub window: TimeWindow,
    /// Only this metric.
    pub metric: Option<String>,
}

/// `GetMetricTimeSeriesQuery`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeSeriesQuery {
    pub tenant: TenantId,
    pub metric: String,
    pub window: TimeWindow,
    pub interval: Interval,
    pub aggregation: Aggregation,
    pub service: Option<String>,
    pub group_by: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Bucket start, Unix milliseconds.
    pub timestamp: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSeries {
    pub metric: String,
    #[serde(rename = "type")]
    pub kind: Option<MetricKind>,
    pub interval: String,
    pub aggregation: String,
    pub start: i64,
    pub end: i64,
    pub series: Vec<Series>,
}

/// Answers the catalog and time-series queries.
pub struct MetricQueries {
    read_model: Arc<dyn ReadModel>,
    limits: QueryLimits,
    cache: Option<moka::sync::Cache<TimeSeriesQuery, (u64, Arc<TimeSeries>)>>,
    /// Per (tenant, metric): bumped by every `MetricsIngested` naming it. A
    /// cached answer computed under an older generation is never served.
    generations: Mutex<HashMap<(TenantId, String), u64>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Points one rate/increase/percentile query may fetch.
const MAX_RAW_POINTS: usize = 5_000_000;

impl MetricQueries {
    /// `ttl` zero disables the cache.
    pub fn new(
        read_model: Arc<dyn ReadModel>,
        limits: QueryLimits,
        ttl: Duration,
        max_entries: u64,
    ) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build()
        });
        Self {
            read_model,
            limits,
            cache,
            generations: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// (hits, misses) of the time-series cache.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    pub async fn catalog(&self, q: &MetricCatalogQuery) -> Result<Vec<MetricInfo>, QueryError> {
        catalog(
            &*self.read_model,
            &self.limits,
            q.ctx.tenant(),
            &q.window,
            q.metric.as_deref(),
        )
        .await
    }

    pub async fn time_series(&self, q: &TimeSeriesQuery) -> Result<Arc<TimeSeries>, QueryError> {
        q.interval.check_buckets(&q.window)?;
        let generation = {
            let mut g = self.generations.lock();
            *g.entry((q.tenant.clone(), q.metric.clone())).or_insert(0)
        };
        if let Some(cache) = &self.cache {
            if let Some((gen_cached, ts)) = cache.get(q)
                && gen_cached == generation
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(ts);
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        let ts = Arc::new(self.compute(q).await?);
        if let Some(cache) = &self.cache {
            cache.insert(q.clone(), (generation, Arc::clone(&ts)));
        }
        Ok(ts)
    }

    async fn compute(&self, q: &TimeSeriesQuery) -> Result<TimeSeries, QueryError> {
        let kind = self.kind(q).await?;
        let series = match (kind, q.aggregation) {
            (None, _) => Vec::new(),
            (
                Some(kind @ (MetricKind::Gauge | MetricKind::Sum)),
                Aggregation::Avg
                | Aggregation::Sum
                | Aggregation::Min
                | Aggregation::Max
                | Aggregation::Count,
            ) => self.aggregate(q, kind).await?,
            (Some(MetricKind::Sum), Aggregation::Rate | Aggregation::Increase) => {
                self.counter(q).await?
            }
            (Some(MetricKind::Histogram), Aggregation::Percentile(p)) => {
                self.percentile(q, f64::from(p) / 100.0).await?
            }
            (Some(kind), agg) => {
                let hint = match kind {
                    MetricKind::Gauge => "avg, sum, min, max or count",
                    MetricKind::Sum => "avg, sum, min, max, count, rate or increase",
                    MetricKind::Histogram => "p50, p75, p90, p95 or p99",
                    _ => "SQL (POST /api/v2/sql)",
                };
                return Err(invalid(
                    "aggregation",
                    format!(
                        "{agg} does not apply to {} `{}`: use {hint}",
                        kind.label(),
                        q.metric
                    ),
                ));
            }
        };
        Ok(TimeSeries {
            metric: q.metric.clone(),
            kind,
            interval: q.interval.to_string(),
            aggregation: q.aggregation.to_string(),
            start: q.window.start_ns / 1_000_000,
            end: q.window.end_ns / 1_000_000,
            series,
        })
    }

    /// The metric's type: the table holding most of its points in the
    /// window (a name used with two types is the caller's mistake; the
    /// catalog shows both). A count per table, far cheaper than the catalog.
    async fn kind(&self, q: &TimeSeriesQuery) -> Result<Option<MetricKind>, QueryError> {
        let parts: Vec<String> = MetricKind::ALL
            .iter()
            .map(|(kind, table)| {
                format!(
                    "SELECT '{label}' AS kind, CAST(count(*) AS BIGINT) AS points FROM {table} \
                     WHERE metric_name = $1 AND timestamp >= $2 AND timestamp < $3",
                    label = kind.label(),
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
        let result = self
            .read_model
            .query(&q.tenant, &sql, &params, &self.limits)
            .await?;
        for b in &result.batches {
            let kind = rows::strings(b, "kind")?;
            if b.num_rows() > 0 {
                return Ok(MetricKind::from_label(kind.value(0)));
            }
        }
        Ok(None)
    }

    /// `WHERE` over metric, window and service, binding `$1…$4`.
    fn filter(q: &TimeSeriesQuery) -> (String, Vec<SqlParam>) {
        let mut sql = "metric_name = $1 AND timestamp >= $2 AND timestamp < $3".to_owned();
        let mut params = vec![
            SqlParam::Utf8(q.metric.clone()),
            SqlParam::TimestampNs(q.window.start_ns),
            SqlParam::TimestampNs(q.window.end_ns),
        ];
        if let Some(s) = &q.service {
            sql.push_str(" AND service_name = $4");
            params.push(SqlParam::Utf8(s.clone()));
        }
        (sql, params)
    }

    /// `g0, g1, …`: the group-by labels (point attribute, else resource
    /// attribute; `service.name` is the service column).
    fn group_exprs(q: &TimeSeriesQuery) -> Vec<String> {
        q.group_by
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if k == "service.name" {
                    format!("service_name AS g{i}")
                } else {
                    let lit = sql_string(k);
                    format!("COALESCE(attributes[{lit}], resource_attributes[{lit}]) AS g{i}")
                }
            })
            .collect()
    }

    fn labels(
        q: &TimeSeriesQuery,
        groups: &[arrow::array::StringArray],
        row: usize,
    ) -> BTreeMap<String, String> {
        q.group_by
            .iter()
            .zip(groups)
            .filter_map(|(k, g)| rows::opt_str(g, row).map(|v| (k.clone(), v.to_owned())))
            .collect()
    }

    async fn aggregate(
        &self,
        q: &TimeSeriesQuery,
        kind: MetricKind,
    ) -> Result<Vec<Series>, QueryError> {
        let (filter, params) = Self::filter(q);
        let groups = Self::group_exprs(q);
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
            table = kind.table(),
        );
        let result = self
            .read_model
            .query(&q.tenant, &sql, &params, &self.unlimited())
            .await?;
        let mut out: BTreeMap<BTreeMap<String, String>, Vec<Point>> = BTreeMap::new();
        for b in &result.batches {
            let bucket = rows::int64s(b, "bucket")?;
            let value = rows::float64s(b, "value")?;
            let gs = (0..groups.len())
                .map(|i| rows::strings(b, &format!("g{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..b.num_rows() {
                let Some(v) = rows::opt_f64(&value, r) else {
                    continue;
                };
                out.entry(Self::labels(q, &gs, r)).or_default().push(Point {
                    timestamp: bucket.value(r) / 1_000_000,
                    value: v,
                });
            }
        }
        Ok(finish(out))
    }

    fn unlimited(&self) -> QueryLimits {
        QueryLimits {
            max_rows: MAX_RAW_POINTS,
            ..self.limits
        }
    }

    /// Raw points of one metric table with their series identity columns.
    async fn raw(
        &self,
        q: &TimeSeriesQuery,
        kind: MetricKind,
        value_cols: &str,
    ) -> Result<QueryResult, QueryError> {
        let (filter, params) = Self::filter(q);
        let groups: String = Self::group_exprs(q)
            .iter()
            .map(|g| format!(", {g}"))
            .collect();
        let sql = format!(
            "SELECT service_name, resource_attributes, scope_name, attributes, \
             CAST(start_timestamp AS BIGINT) AS start_ns, CAST(timestamp AS BIGINT) AS ts_ns, \
             aggregation_temporality, {value_cols}{groups} \
             FROM {table} WHERE {filter}",
            table = kind.table(),
        );
        let result = self
            .read_model
            .query(&q.tenant, &sql, &params, &self.unlimited())
            .await?;
        if result.truncated {
            return Err(invalid(
                "start",
                format!(
                    "more than {MAX_RAW_POINTS} points match; narrow the window or filter by service"
                ),
            ));
        }
        Ok(result)
    }

    /// `rate` / `increase` of a sum: per series, each point's increase over
    /// the previous (domain rule: resets, start times), summed per bucket.
    async fn counter(&self, q: &TimeSeriesQuery) -> Result<Vec<Series>, QueryError> {
        let result = self.raw(q, MetricKind::Sum, "value").await?;
        let series = group_series(
            q,
            &result,
            |b| rows::float64s(b, "value"),
            |v, r| v.value(r),
        )?;
        let interval = q.interval.nanos();
        let mut sums: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, f64>> = BTreeMap::new();
        for s in series {
            let buckets = sums.entry(s.labels).or_default();
            let mut prev = None;
            for pt in s.points {
                let inc = if pt.delta {
                    Some(pt.value)
                } else {
                    let inc = cumulative_increase(prev, pt.at, pt.value, q.window.start_ns);
                    prev = Some((pt.at, pt.value));
                    inc
                };
                if let Some(inc) = inc {
                    *buckets
                        .entry(bucket_start(pt.at.ts_ns, interval))
                        .or_default() += inc;
                }
            }
        }
        let per_sec = q.interval.secs() as f64;
        let rate = q.aggregation == Aggregation::Rate;
        Ok(finish(
            sums.into_iter()
                .map(|(labels, buckets)| {
                    let points = buckets
                        .into_iter()
                        .map(|(t, v)| Point {
                            timestamp: t / 1_000_000,
                            value: if rate { v / per_sec } else { v },
                        })
                        .collect();
                    (labels, points)
                })
                .collect(),
        ))
    }

    /// `pNN` of a histogram: bucket counts observed within each time bucket
    /// (delta points as they are, cumulative points as increases), merged
    /// across series, then interpolated.
    async fn percentile(
        &self,
        q: &TimeSeriesQuery,
        quantile: f64,
    ) -> Result<Vec<Series>, QueryError> {
        let result = self
            .raw(
                q,
                MetricKind::Histogram,
                "bucket_counts, explicit_bounds, min, max",
            )
            .await?;
        let series = group_series(
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
                h
            },
        )?;
        let interval = q.interval.nanos();
        let mut merged: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, MergedHistogram>> =
            BTreeMap::new();
        let mut inc = Vec::new();
        for s in series {
            let buckets = merged.entry(s.labels).or_default();
            let mut prev: Option<(CumulativePoint, Vec<u64>)> = None;
            for pt in s.points {
                let h = pt.value;
                // (counts observed in this point, min, max)
                let observed: Option<(&[u64], _, _)> = if pt.delta {
                    Some((&h.counts, h.min, h.max))
                } else if cumulative_bucket_increase(
                    prev.as_ref().map(|(pp, c)| (*pp, c.as_slice())),
                    pt.at,
                    &h.counts,
                    q.window.start_ns,
                    &mut inc,
                ) {
                    // A cumulative point's min/max cover its whole lifetime,
                    // not this bucket: don't clamp with them.
                    Some((&inc, None, None))
                } else {
                    None
                };
                if let Some((counts, lo, hi)) = observed {
                    buckets
                        .entry(bucket_start(pt.at.ts_ns, interval))
                        .or_default()
                        .add(&h.bounds, counts, lo, hi);
                }
                if !pt.delta {
                    prev = Some((pt.at, h.counts));
                }
            }
        }
        Ok(finish(
            merged
                .into_iter()
                .map(|(labels, buckets)| {
                    let points = buckets
                        .into_iter()
                        .filter_map(|(t, h)| {
                            h.quantile(quantile).map(|v| Point {
                                timestamp: t / 1_000_000,
                                value: v,
                            })
                        })
                        .collect();
                    (labels, points)
                })
                .collect(),
        ))
    }
}

/// One raw point of a series, as read for rate/increase/percentiles.
struct RawPoint<P> {
    at: CumulativePoint,
    /// Delta temporality: the value is already this point's increase.
    delta: bool,
    value: P,
}

/// The points of one series (service, resource, scope and point
/// attributes), in time order, with the series' group-by labels.
struct SeriesPoints<P> {
    labels: BTreeMap<String, String>,
    points: Vec<RawPoint<P>>,
}

/// A histogram point's buckets.
struct HistogramPoint {
    counts: Vec<u64>,
    bounds: Vec<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

/// Splits raw rows (from [`MetricQueries::raw`], in no particular order)
/// into series and sorts each by time. `columns` reads a batch's value
/// columns once; `value` takes one row's value from them. Grouping here
/// rather than `ORDER BY` in the engine keeps memory to the points
/// themselves: sorting millions of rows with their attribute maps exceeded
/// the per-query memory limit.
fn group_series<C, P>(
    q: &TimeSeriesQuery,
    result: &QueryResult,
    columns: impl Fn(&RecordBatch) -> Result<C, QueryError>,
    value: impl Fn(&C, usize) -> P,
) -> Result<Vec<SeriesPoints<P>>, QueryError> {
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
        let gs = (0..q.group_by.len())
            .map(|i| rows::strings(b, &format!("g{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let cols = columns(b)?;
        for r in 0..b.num_rows() {
            key.clear();
            rows::append_key(&fmts, r, &mut key)?;
            let i = match index.get(&key) {
                Some(&i) => i,
                None => {
                    series.push(SeriesPoints {
                        labels: MetricQueries::labels(q, &gs, r),
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
                value: value(&cols, r),
            });
        }
    }
    for s in &mut series {
        s.points.sort_by_key(|p| p.at.ts_ns);
    }
    Ok(series)
}

fn finish(map: BTreeMap<BTreeMap<String, String>, Vec<Point>>) -> Vec<Series> {
    map.into_iter()
        .filter(|(_, points)| !points.is_empty())
        .map(|(labels, mut points)| {
            points.sort_by_key(|p| p.timestamp);
            Series { labels, points }
        })
        .collect()
}

impl EventHandler for MetricQueries {
    fn handle(&self, event: &DomainEvent) {
        if let DomainEvent::MetricsIngested(e) = event {
            let mut g = self.generations.lock();
            for name in &e.metric_names {
                // Only metrics someone queried have an entry (and maybe a
                // cached answer); `time_series` adds it before computing.
                if let Some(v) = g.get_mut(&(e.tenant.clone(), name.clone())) {
                    *v += 1;
                }
            }
        }
    }
}

async fn catalog(
    read_model: &dyn ReadModel,
    limits: &QueryLimits,
    tenant: &TenantId,
    window: &TimeWindow,
    metric: Option<&str>,
) -> Result<Vec<MetricInfo>, QueryError> {
    let mut params = vec![
        SqlParam::TimestampNs(window.start_ns),
        SqlParam::TimestampNs(window.end_ns),
    ];
    let name_filter = match metric {
        Some(m) => {
            params.push(SqlParam::Utf8(m.to_owned()));
            " AND metric_name = $3"
        }
        None => "",
    };
    let parts: Vec<String> = MetricKind::ALL
        .iter()
        .map(|(kind, table)| {
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
            )
        })
        .collect();
    let sql = format!(
        "SELECT * FROM ({}) ORDER BY metric_name, points DESC",
        parts.join(" UNION ALL ")
    );
    let limits = QueryLimits {
        max_rows: usize::MAX,
        ..*limits
    };
    let result = read_model.query(tenant, &sql, &params, &limits).await?;
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
