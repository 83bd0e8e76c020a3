//! Metric read use cases: the metric catalog and `GetMetricTimeSeriesQuery`
//! (the seed's), with a TTL cache that ingest events invalidate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use super::matcher::LabelMatcher;
use super::params::{Aggregation, Interval, TimeWindow, invalid};
use crate::event_bus::EventHandler;
use crate::ports::{QueryError, QueryLimits};
use async_trait::async_trait;
use tf_domain::Table;
use tf_domain::telemetry::quantile::{
    ExpBuckets, MergedExpHistogram, cumulative_exp_increase, summary_quantile,
};
use tf_domain::telemetry::series::{
    CumulativePoint, MergedHistogram, bucket_start, cumulative_bucket_increase, cumulative_increase,
};
use tf_domain::{DomainEvent, TenantContext, TenantId};

/// The metric questions of the read side.
#[async_trait]
pub trait MetricReadModel: Send + Sync {
    /// Per metric name and type: unit, description, services, monotonicity,
    /// temporality and point count in the window, by name then most points.
    async fn catalog(
        &self,
        q: &MetricCatalogQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<MetricInfo>, QueryError>;

    /// The type holding most of the metric's points in the window (a name
    /// used with two types is the sender's mistake; the catalog shows both).
    async fn metric_kind(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<Option<MetricKind>, QueryError>;

    /// `q.aggregation` (avg, sum, min, max or count) of a gauge's or sum's
    /// values per interval bucket (bucket starts in Unix ms), per group-by
    /// label set.
    async fn bucketed(
        &self,
        q: &TimeSeriesQuery,
        kind: MetricKind,
        limits: &QueryLimits,
    ) -> Result<Vec<Series>, QueryError>;

    /// Every point of the sum's series in the window, each series in time order.
    async fn sum_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<f64>, QueryError>;

    /// Every point of the histogram's series in the window, each series in
    /// time order.
    async fn histogram_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<HistogramPoint>, QueryError>;

    /// Every point of the exponential histogram's series in the window,
    /// each series in time order.
    async fn exp_histogram_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<ExpHistogramPoint>, QueryError>;

    /// Every point of the summary's series in the window, each series in
    /// time order.
    async fn summary_points(
        &self,
        q: &TimeSeriesQuery,
        limits: &QueryLimits,
    ) -> Result<RawSeries<SummaryPoint>, QueryError>;
}

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
    pub const ALL: [MetricKind; 5] = [
        MetricKind::Gauge,
        MetricKind::Sum,
        MetricKind::Histogram,
        MetricKind::ExponentialHistogram,
        MetricKind::Summary,
    ];

    /// The table holding this type's points.
    pub fn table(self) -> Table {
        match self {
            MetricKind::Gauge => Table::METRICS_GAUGE,
            MetricKind::Sum => Table::METRICS_SUM,
            MetricKind::Histogram => Table::METRICS_HISTOGRAM,
            MetricKind::ExponentialHistogram => Table::METRICS_EXP_HISTOGRAM,
            MetricKind::Summary => Table::METRICS_SUMMARY,
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.label() == s)
    }

    /// The name in the API (`type` of the catalog and time series).
    pub fn label(self) -> &'static str {
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
    /// A point matches every one (point attribute, else resource attribute).
    pub filters: Vec<LabelMatcher>,
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
    read_model: Arc<dyn MetricReadModel>,
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
        read_model: Arc<dyn MetricReadModel>,
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
        let limits = QueryLimits {
            max_rows: usize::MAX,
            ..self.limits
        };
        self.read_model.catalog(q, &limits).await
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
        let kind = self.read_model.metric_kind(q, &self.limits).await?;
        let series = match (kind, q.aggregation) {
            (None, _) => Vec::new(),
            (
                Some(kind @ (MetricKind::Gauge | MetricKind::Sum)),
                Aggregation::Avg
                | Aggregation::Sum
                | Aggregation::Min
                | Aggregation::Max
                | Aggregation::Count,
            ) => finish(
                self.read_model
                    .bucketed(q, kind, &self.unlimited())
                    .await?
                    .into_iter()
                    .map(|s| (s.labels, s.points))
                    .collect(),
            ),
            (Some(MetricKind::Sum), Aggregation::Rate | Aggregation::Increase) => {
                self.counter(q).await?
            }
            (Some(MetricKind::Histogram), Aggregation::Percentile(p)) => {
                self.percentile(q, f64::from(p) / 100.0).await?
            }
            (Some(MetricKind::ExponentialHistogram), Aggregation::Percentile(p)) => {
                self.exp_percentile(q, f64::from(p) / 100.0).await?
            }
            (Some(MetricKind::Summary), Aggregation::Percentile(p)) => {
                self.summary_percentile(q, f64::from(p) / 100.0).await?
            }
            (Some(kind), agg) => {
                let hint = match kind {
                    MetricKind::Gauge => "avg, sum, min, max or count",
                    MetricKind::Sum => "avg, sum, min, max, count, rate or increase",
                    MetricKind::Histogram
                    | MetricKind::ExponentialHistogram
                    | MetricKind::Summary => "a percentile, p1 to p99 (p50, p90, p99 …)",
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

    fn unlimited(&self) -> QueryLimits {
        QueryLimits {
            max_rows: MAX_RAW_POINTS,
            ..self.limits
        }
    }

    /// Every raw point of the query's series; refused past `MAX_RAW_POINTS`.
    fn check_raw<P>(raw: RawSeries<P>) -> Result<Vec<SeriesPoints<P>>, QueryError> {
        if raw.truncated {
            return Err(invalid(
                "start",
                format!(
                    "more than {MAX_RAW_POINTS} points match; narrow the window or filter by service"
                ),
            ));
        }
        Ok(raw.series)
    }

    /// `rate` / `increase` of a sum: per series, each point's increase over
    /// the previous (domain rule: resets, start times), summed per bucket.
    async fn counter(&self, q: &TimeSeriesQuery) -> Result<Vec<Series>, QueryError> {
        let series = Self::check_raw(self.read_model.sum_points(q, &self.unlimited()).await?)?;
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
        let series = Self::check_raw(
            self.read_model
                .histogram_points(q, &self.unlimited())
                .await?,
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
                    // A cumulative point's min/max cover its whole lifetime:
                    // wider than this bucket's observations, but still a
                    // sound bound for every quantile of them.
                    Some((&inc, h.min, h.max))
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
        Ok(quantile_series(merged, |h| h.quantile(quantile)))
    }

    /// `pNN` of an exponential histogram: as [`Self::percentile`], with the
    /// buckets merged at the coarsest scale among them and interpolated
    /// exponentially within a bucket.
    async fn exp_percentile(
        &self,
        q: &TimeSeriesQuery,
        quantile: f64,
    ) -> Result<Vec<Series>, QueryError> {
        let series = Self::check_raw(
            self.read_model
                .exp_histogram_points(q, &self.unlimited())
                .await?,
        )?;
        let interval = q.interval.nanos();
        let mut merged: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, MergedExpHistogram>> =
            BTreeMap::new();
        for s in series {
            let buckets = merged.entry(s.labels).or_default();
            let mut prev: Option<(CumulativePoint, ExpBuckets)> = None;
            for pt in s.points {
                let h = pt.value;
                let bucket = buckets
                    .entry(bucket_start(pt.at.ts_ns, interval))
                    .or_default();
                if pt.delta {
                    bucket.add(&h.buckets, h.min, h.max);
                    continue;
                }
                // Cumulative: the increase over the previous point, bounded
                // by the point's lifetime min/max.
                if let Some(inc) = cumulative_exp_increase(
                    prev.as_ref().map(|(p, b)| (*p, b)),
                    pt.at,
                    &h.buckets,
                    q.window.start_ns,
                ) {
                    bucket.add(&inc, h.min, h.max);
                }
                prev = Some((pt.at, h.buckets));
            }
        }
        Ok(quantile_series(merged, |h| h.quantile(quantile)))
    }

    /// `pNN` of a summary. Its quantiles were computed by the sender and
    /// cannot be merged: per time bucket, each series' latest point gives
    /// its quantile ([`summary_quantile`]: exact when sent, else
    /// interpolated between the sent ones), and the series of one group
    /// are averaged, weighted by their points' counts (equally when every
    /// count is zero).
    async fn summary_percentile(
        &self,
        q: &TimeSeriesQuery,
        quantile: f64,
    ) -> Result<Vec<Series>, QueryError> {
        let series = Self::check_raw(self.read_model.summary_points(q, &self.unlimited()).await?)?;
        let interval = q.interval.nanos();
        // Per group and bucket: (Σ count·value, Σ count, Σ value, series).
        type Acc = (f64, f64, f64, u32);
        let mut groups: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, Acc>> = BTreeMap::new();
        for s in series {
            let buckets = groups.entry(s.labels).or_default();
            let mut latest: BTreeMap<i64, &SummaryPoint> = BTreeMap::new();
            for pt in &s.points {
                // Points are in time order: the last one of a bucket wins.
                latest.insert(bucket_start(pt.at.ts_ns, interval), &pt.value);
            }
            for (t, p) in latest {
                let Some(v) = summary_quantile(&p.quantiles, quantile) else {
                    continue;
                };
                let acc = buckets.entry(t).or_insert((0.0, 0.0, 0.0, 0));
                acc.0 += p.count as f64 * v;
                acc.1 += p.count as f64;
                acc.2 += v;
                acc.3 += 1;
            }
        }
        Ok(finish(
            groups
                .into_iter()
                .map(|(labels, buckets)| {
                    let points = buckets
                        .into_iter()
                        .map(|(t, (weighted, counts, plain, n))| Point {
                            timestamp: t / 1_000_000,
                            value: if counts > 0.0 {
                                weighted / counts
                            } else {
                                plain / f64::from(n)
                            },
                        })
                        .collect();
                    (labels, points)
                })
                .collect(),
        ))
    }
}

/// One raw point of a series, as read for rate/increase/percentiles.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint<P> {
    pub at: CumulativePoint,
    /// Delta temporality: the value is already this point's increase.
    pub delta: bool,
    pub value: P,
}

/// The points of one series (service, resource, scope and point
/// attributes), in time order, with the series' group-by labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints<P> {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<RawPoint<P>>,
}

/// The raw points of a query's series.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSeries<P> {
    pub series: Vec<SeriesPoints<P>>,
    /// More points matched than the limits' `max_rows`; `series` is partial.
    pub truncated: bool,
}

/// A histogram point's buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub counts: Vec<u64>,
    pub bounds: Vec<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// An exponential histogram point's buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpHistogramPoint {
    pub buckets: ExpBuckets,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A summary point: its count and the (quantile, value) pairs it sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPoint {
    pub count: u64,
    pub quantiles: Vec<(f64, f64)>,
}

/// One point per time bucket holding a quantile (`quantile` of its merged
/// histogram `H`), per label set.
fn quantile_series<H>(
    merged: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, H>>,
    quantile: impl Fn(&H) -> Option<f64>,
) -> Vec<Series> {
    finish(
        merged
            .into_iter()
            .map(|(labels, buckets)| {
                let points = buckets
                    .into_iter()
                    .filter_map(|(t, h)| {
                        quantile(&h).map(|value| Point {
                            timestamp: t / 1_000_000,
                            value,
                        })
                    })
                    .collect();
                (labels, points)
            })
            .collect(),
    )
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
