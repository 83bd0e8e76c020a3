//! Metric read use cases: the metric catalog and `GetMetricTimeSeriesQuery`
//! (the seed's), with a TTL cache that ingest events invalidate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::Array;
use arrow::util::display::FormatOptions;
use parking_lot::Mutex;
use serde::Serialize;

use super::params::{Aggregation, Interval, TimeWindow, invalid, sql_string};
use super::rows;
use crate::application::event_bus::EventHandler;
use crate::application::ports::{QueryError, QueryLimits, ReadModel, SqlParam};
use crate::domain::telemetry::series::{
    CumulativePoint, MergedHistogram, bucket_start, cumulative_bucket_increase, cumulative_increase,
};
use crate::domain::{DomainEvent, TenantContext, TenantId};

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
        let kinds = catalog(
            &*self.read_model,
            &self.limits,
            &q.tenant,
            &q.window,
            Some(&q.metric),
        )
        .await?;
        let info = kinds.first();
        let series = match (info.map(|i| i.kind), q.aggregation) {
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
            kind: info.map(|i| i.kind),
            interval: q.interval.to_string(),
            aggregation: q.aggregation.to_string(),
            start: q.window.start_ns / 1_000_000,
            end: q.window.end_ns / 1_000_000,
            series,
        })
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
    ) -> Result<crate::application::ports::QueryResult, QueryError> {
        let (filter, params) = Self::filter(q);
        let groups: String = Self::group_exprs(q)
            .iter()
            .map(|g| format!(", {g}"))
            .collect();
        let sql = format!(
            "SELECT service_name, resource_attributes, scope_name, attributes, \
             CAST(start_timestamp AS BIGINT) AS start_ns, CAST(timestamp AS BIGINT) AS ts_ns, \
             aggregation_temporality, {value_cols}{groups} \
             FROM {table} WHERE {filter} ORDER BY timestamp",
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
        let interval = q.interval.nanos();
        let mut last: HashMap<String, (CumulativePoint, f64)> = HashMap::new();
        let mut sums: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, f64>> = BTreeMap::new();
        let options = FormatOptions::default();
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
            let value = rows::float64s(b, "value")?;
            let gs = (0..q.group_by.len())
                .map(|i| rows::strings(b, &format!("g{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..b.num_rows() {
                let v = value.value(r);
                let p = CumulativePoint {
                    start_ns: start.value(r),
                    ts_ns: ts.value(r),
                };
                let inc = if temporality.value(r) == 1 {
                    Some(v)
                } else {
                    key.clear();
                    rows::append_key(&fmts, r, &mut key)?;
                    let prev = last.get(&key).copied();
                    let inc = cumulative_increase(prev, p, v, q.window.start_ns);
                    last.insert(key.clone(), (p, v));
                    inc
                };
                if let Some(inc) = inc {
                    *sums
                        .entry(Self::labels(q, &gs, r))
                        .or_default()
                        .entry(bucket_start(p.ts_ns, interval))
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
        let interval = q.interval.nanos();
        let mut last: HashMap<String, (CumulativePoint, Vec<u64>)> = HashMap::new();
        let mut merged: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, MergedHistogram>> =
            BTreeMap::new();
        let options = FormatOptions::default();
        let (mut key, mut counts, mut bounds, mut inc) =
            (String::new(), Vec::new(), Vec::new(), Vec::new());
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
            let bucket_counts = rows::u64_lists(b, "bucket_counts")?;
            let explicit_bounds = rows::f64_lists(b, "explicit_bounds")?;
            let min = rows::float64s(b, "min")?;
            let max = rows::float64s(b, "max")?;
            let gs = (0..q.group_by.len())
                .map(|i| rows::strings(b, &format!("g{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..b.num_rows() {
                rows::list_u64(&bucket_counts, r, &mut counts);
                rows::list_f64(&explicit_bounds, r, &mut bounds);
                let p = CumulativePoint {
                    start_ns: start.value(r),
                    ts_ns: ts.value(r),
                };
                let (observed, lo, hi) = if temporality.value(r) == 1 {
                    inc.clone_from(&counts);
                    (true, rows::opt_f64(&min, r), rows::opt_f64(&max, r))
                } else {
                    key.clear();
                    rows::append_key(&fmts, r, &mut key)?;
                    let prev = last.get(&key);
                    let ok = cumulative_bucket_increase(
                        prev.map(|(pp, c)| (*pp, c.as_slice())),
                        p,
                        &counts,
                        q.window.start_ns,
                        &mut inc,
                    );
                    last.insert(key.clone(), (p, counts.clone()));
                    // A cumulative point's min/max cover its whole lifetime,
                    // not this bucket: don't clamp with them.
                    (ok, None, None)
                };
                if observed {
                    merged
                        .entry(Self::labels(q, &gs, r))
                        .or_default()
                        .entry(bucket_start(p.ts_ns, interval))
                        .or_default()
                        .add(&bounds, &inc, lo, hi);
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
