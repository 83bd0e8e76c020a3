//! The metric use cases over the in-memory read model: the rules they apply
//! to what the engine returns, without an engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::metric_queries::{
    HistogramPoint, MetricKind, MetricQueries, Point, RawPoint, RawSeries, SeriesPoints,
    TimeSeriesQuery,
};
use super::params::{Aggregation, Interval, TimeWindow};
use crate::event_bus::EventHandler;
use crate::fakes::{MemoryMetrics, MetricAnswers};
use crate::ports::{QueryError, QueryLimits};
use tf_domain::events::MetricsIngested;
use tf_domain::telemetry::series::CumulativePoint;
use tf_domain::telemetry::{TimeRange, Timestamp};
use tf_domain::{DomainEvent, TenantId, WorkspaceId};

const S: i64 = 1_000_000_000;
/// Window start, a multiple of the 60 s interval.
const W0: i64 = 1_700_000_400 * S;

fn query(aggregation: Aggregation) -> TimeSeriesQuery {
    TimeSeriesQuery {
        tenant: TenantId::default_id(),
        metric: "http.server.requests".into(),
        window: TimeWindow {
            start_ns: W0,
            end_ns: W0 + 600 * S,
        },
        interval: Interval::parse("60s").unwrap(),
        aggregation,
        service: None,
        filters: Vec::new(),
        group_by: Vec::new(),
    }
}

fn point<P>(start_s: i64, at_s: i64, delta: bool, value: P) -> RawPoint<P> {
    RawPoint {
        at: CumulativePoint {
            start_ns: W0 + start_s * S,
            ts_ns: W0 + at_s * S,
        },
        delta,
        value,
    }
}

fn series<P>(points: Vec<RawPoint<P>>) -> SeriesPoints<P> {
    SeriesPoints {
        labels: BTreeMap::new(),
        points,
    }
}

fn queries(answers: MetricAnswers) -> (Arc<MemoryMetrics>, MetricQueries) {
    let model = Arc::new(MemoryMetrics::new(answers));
    let q = MetricQueries::new(
        Arc::clone(&model) as _,
        QueryLimits::default(),
        Duration::from_secs(60),
        100,
    );
    (model, q)
}

/// A cumulative counter that started before the window (its first point
/// has no baseline), grows, resets, plus a delta series of the same labels.
fn counter() -> MetricAnswers {
    MetricAnswers {
        kind: Some(MetricKind::Sum),
        sums: RawSeries {
            series: vec![
                series(vec![
                    point(-3600, 10, false, 100.0),
                    point(-3600, 70, false, 160.0),
                    point(-3600, 80, false, 190.0),
                    // A new start time: the counter counted from zero again.
                    point(100, 130, false, 25.0),
                ]),
                series(vec![point(74, 75, true, 5.0)]),
            ],
            truncated: false,
        },
        ..MetricAnswers::default()
    }
}

fn at(bucket_s: i64, value: f64) -> Point {
    Point {
        timestamp: (W0 + bucket_s * S) / 1_000_000,
        value,
    }
}

#[tokio::test]
async fn increase_and_rate_follow_resets_and_delta_points() {
    let (_, q) = queries(counter());
    let ts = q.time_series(&query(Aggregation::Increase)).await.unwrap();
    assert_eq!(ts.kind, Some(MetricKind::Sum));
    assert_eq!(ts.series.len(), 1);
    assert_eq!(ts.series[0].points, vec![at(60, 95.0), at(120, 25.0)]);

    let ts = q.time_series(&query(Aggregation::Rate)).await.unwrap();
    assert_eq!(
        ts.series[0].points,
        vec![at(60, 95.0 / 60.0), at(120, 25.0 / 60.0)]
    );
}

#[tokio::test]
async fn answers_are_cached_until_the_metric_is_ingested_again() {
    let (model, q) = queries(counter());
    let rate = query(Aggregation::Rate);
    q.time_series(&rate).await.unwrap();
    let asked = model.asked();
    q.time_series(&rate).await.unwrap();
    assert_eq!(
        model.asked(),
        asked,
        "the second answer came from the cache"
    );
    assert_eq!(q.cache_stats(), (1, 1));

    // Points of another metric change nothing; points of this one do.
    let ingested = |name: &str| {
        DomainEvent::MetricsIngested(MetricsIngested {
            tenant: TenantId::default_id(),
            workspace: WorkspaceId::default_id(),
            points: 1,
            rejected: 0,
            time_range: TimeRange::point(Timestamp::from_unix_nanos(W0 as u64)),
            metric_names: vec![name.into()],
        })
    };
    q.handle(&ingested("other.metric"));
    q.time_series(&rate).await.unwrap();
    assert_eq!(model.asked(), asked);
    q.handle(&ingested("http.server.requests"));
    q.time_series(&rate).await.unwrap();
    assert!(model.asked() > asked, "recomputed after new points");
}

#[tokio::test]
async fn too_many_raw_points_is_the_callers_error() {
    let mut answers = counter();
    answers.sums.truncated = true;
    let (_, q) = queries(answers);
    match q.time_series(&query(Aggregation::Rate)).await {
        Err(QueryError::Invalid(m)) => assert!(m.contains("narrow the window"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn aggregations_that_do_not_apply_say_what_does() {
    let (_, q) = queries(MetricAnswers {
        kind: Some(MetricKind::Histogram),
        ..MetricAnswers::default()
    });
    match q.time_series(&query(Aggregation::Rate)).await {
        Err(QueryError::Invalid(m)) => assert!(m.contains("a percentile, p1 to p99"), "{m}"),
        other => panic!("{other:?}"),
    }
    // An unknown metric is an empty answer, not an error.
    let (_, q) = queries(MetricAnswers::default());
    let ts = q.time_series(&query(Aggregation::Avg)).await.unwrap();
    assert_eq!((ts.kind, ts.series.len()), (None, 0));
}

#[tokio::test]
async fn percentiles_merge_delta_and_cumulative_increases() {
    let h = |counts: Vec<u64>| HistogramPoint {
        counts,
        bounds: vec![10.0, 20.0],
        min: None,
        max: None,
    };
    let (_, q) = queries(MetricAnswers {
        kind: Some(MetricKind::Histogram),
        histograms: RawSeries {
            series: vec![
                // Cumulative from inside the window: 4 in (10, 20] at first,
                // then 4 more (the increase, not the running total).
                series(vec![
                    point(0, 10, false, h(vec![0, 4, 0])),
                    point(0, 70, false, h(vec![0, 8, 0])),
                ]),
                // Delta: everything observed is new.
                series(vec![point(65, 75, true, h(vec![0, 0, 4]))]),
            ],
            truncated: false,
        },
        ..MetricAnswers::default()
    });
    let ts = q
        .time_series(&query(Aggregation::Percentile(50)))
        .await
        .unwrap();
    let points = &ts.series[0].points;
    assert_eq!(points.len(), 2);
    // First bucket: all 4 observations in (10, 20].
    assert_eq!(points[0].timestamp, at(0, 0.0).timestamp);
    assert!(
        points[0].value > 10.0 && points[0].value <= 20.0,
        "{points:?}"
    );
    // Second: 4 in (10, 20] and 4 above 20: the median is at most 20.
    assert_eq!(points[1].timestamp, at(60, 0.0).timestamp);
    assert!(
        points[1].value > 10.0 && points[1].value <= 20.0,
        "{points:?}"
    );
}
