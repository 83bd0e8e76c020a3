//! The query API over known data: exact answers for every endpoint and
//! aggregation, over flushed and unflushed rows, per tenant.

use opentelemetry_proto::tonic::metrics::v1::{
    Histogram, HistogramDataPoint, Metric, Sum, metric, number_data_point::Value as NV,
};
use prost::Message;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::TestServer;

pub const TENANT: &str = "acme";
/// T0 in Unix milliseconds (bucket timestamps).
const T0_MS: i64 = (T0 / 1_000_000) as i64;
const MIN_MS: i64 = 60_000;

pub async fn get(s: &TestServer, path_and_query: &str, tenant: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path_and_query}", s.http))
        .header("x-tenant-id", tenant)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path_and_query}: not JSON ({e}): {body:?}"));
    (status, v)
}

/// GET as [`TENANT`], expecting 200 and JSON.
pub async fn ok(s: &TestServer, path_and_query: &str) -> Value {
    let (status, v) = get(s, path_and_query, TENANT).await;
    assert_eq!(status, 200, "{path_and_query}: {v}");
    v
}

/// Sends a protobuf request and expects every item accepted.
pub async fn send(s: &TestServer, signal: &str, body: Vec<u8>, tenant: &str) {
    let r = post(
        &format!("{}/v1/{signal}", s.http),
        "application/x-protobuf",
        None,
        body,
        Some(tenant),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Every item accepted: no partial success.
    assert!(r.body.is_empty(), "partial success: {:?}", r.body);
}

fn host(h: &str) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    vec![kv_str("host", h)]
}

fn delta_sum(name: &str, points: Vec<(u64, f64)>) -> Metric {
    Metric {
        name: name.into(),
        unit: "By".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points
                .into_iter()
                .map(|(t, v)| number_point(t, t - 10 * SEC, NV::AsDouble(v), host("a")))
                .collect(),
            aggregation_temporality: 1,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn histogram(name: &str, temporality: i32, points: Vec<(u64, u64, [u64; 3])>) -> Metric {
    Metric {
        name: name.into(),
        unit: "ms".into(),
        description: format!("{name} latency"),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: points
                .into_iter()
                .map(|(t, start, counts)| HistogramDataPoint {
                    attributes: host("a"),
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    count: counts.iter().sum(),
                    bucket_counts: counts.to_vec(),
                    explicit_bounds: vec![10.0, 20.0],
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: temporality,
        })),
        ..Default::default()
    }
}

/// The known data set: part flushed to Parquet, part still buffered.
async fn load_metrics(s: &TestServer, tenant: &str) {
    let p = |t: u64, v: f64, h: &str| number_point(t, T0 - 100 * SEC, NV::AsDouble(v), host(h));
    // Flushed: the first gauge points, the first counter points.
    let first = metrics(
        "api",
        vec![
            gauge(
                "cpu.usage",
                vec![p(T0 + 10 * SEC, 1.0, "a"), p(T0 + 20 * SEC, 3.0, "b")],
            ),
            counter(
                "http.requests",
                vec![
                    p(T0, 10.0, "a"),
                    p(T0 + 30 * SEC, 15.0, "a"),
                    p(T0 + 60 * SEC, 20.0, "a"),
                ],
            ),
        ],
    );
    send(s, "metrics", first.encode_to_vec(), tenant).await;
    s.flush().await;
    // Buffered: the rest.
    let rest = metrics(
        "api",
        vec![
            gauge("cpu.usage", vec![p(T0 + 70 * SEC, 5.0, "a")]),
            counter(
                "http.requests",
                vec![
                    // A reset: the counter restarted at T0+85s.
                    number_point(T0 + 90 * SEC, T0 + 85 * SEC, NV::AsDouble(5.0), host("a")),
                    number_point(T0 + 120 * SEC, T0 + 85 * SEC, NV::AsDouble(12.0), host("a")),
                    // A series that started inside the window counts from zero.
                    number_point(T0 + 10 * SEC, T0 + 5 * SEC, NV::AsInt(3), host("b")),
                ],
            ),
            delta_sum(
                "bytes.sent",
                vec![
                    (T0 + 10 * SEC, 100.0),
                    (T0 + 20 * SEC, 50.0),
                    (T0 + 70 * SEC, 25.0),
                ],
            ),
            histogram("http.duration", 1, vec![(T0 + 10 * SEC, T0, [10, 10, 0])]),
            histogram(
                "db.duration",
                2,
                vec![
                    (T0, T0 - 3600 * SEC, [1, 1, 0]),
                    (T0 + 30 * SEC, T0 - 3600 * SEC, [11, 1, 0]),
                    (T0 + 60 * SEC, T0 - 3600 * SEC, [11, 11, 0]),
                ],
            ),
        ],
    );
    send(s, "metrics", rest.encode_to_vec(), tenant).await;
    let worker = metrics(
        "worker",
        vec![gauge("cpu.usage", vec![p(T0 + 30 * SEC, 8.0, "a")])],
    );
    send(s, "metrics", worker.encode_to_vec(), tenant).await;
}

const WINDOW: &str = "start=2026-11-26T10:00:00Z&end=2026-11-26T10:03:00Z";

async fn series(s: &TestServer, query: &str) -> Value {
    let v = ok(
        s,
        &format!("/api/v2/metrics/timeseries?{WINDOW}&interval=1m&{query}"),
    )
    .await;
    v["series"].clone()
}

fn one(points: &[(i64, f64)]) -> Value {
    json!([{ "labels": {}, "points": pts(points) }])
}

fn pts(points: &[(i64, f64)]) -> Value {
    points
        .iter()
        .map(|(t, v)| json!({ "timestamp": T0_MS + t * MIN_MS, "value": v }))
        .collect()
}

#[tokio::test]
async fn time_series_aggregations_are_exact() {
    let mut s = TestServer::start().await;
    load_metrics(&s, TENANT).await;

    // Gauge: every aggregation, over flushed (bucket 0) and buffered (bucket 1) rows.
    let cpu = "metric=cpu.usage";
    assert_eq!(
        series(&s, &format!("{cpu}&aggregation=avg")).await,
        one(&[(0, 4.0), (1, 5.0)])
    );
    assert_eq!(
        series(&s, cpu).await,
        one(&[(0, 4.0), (1, 5.0)]),
        "avg is the default"
    );
    assert_eq!(
        series(&s, &format!("{cpu}&aggregation=sum")).await,
        one(&[(0, 12.0), (1, 5.0)])
    );
    assert_eq!(
        series(&s, &format!("{cpu}&aggregation=min")).await,
        one(&[(0, 1.0), (1, 5.0)])
    );
    assert_eq!(
        series(&s, &format!("{cpu}&aggregation=max")).await,
        one(&[(0, 8.0), (1, 5.0)])
    );
    assert_eq!(
        series(&s, &format!("{cpu}&aggregation=count")).await,
        one(&[(0, 3.0), (1, 1.0)])
    );
    assert_eq!(
        series(&s, &format!("{cpu}&service=api&aggregation=avg")).await,
        one(&[(0, 2.0), (1, 5.0)])
    );
    assert_eq!(
        series(&s, &format!("{cpu}&service=api&group_by=host")).await,
        json!([
            { "labels": { "host": "a" }, "points": pts(&[(0, 1.0), (1, 5.0)]) },
            { "labels": { "host": "b" }, "points": pts(&[(0, 3.0)]) },
        ])
    );
    assert_eq!(
        series(
            &s,
            &format!("{cpu}&group_by=service.name,host&aggregation=max")
        )
        .await,
        json!([
            { "labels": { "host": "a", "service.name": "api" }, "points": pts(&[(0, 1.0), (1, 5.0)]) },
            { "labels": { "host": "a", "service.name": "worker" }, "points": pts(&[(0, 8.0)]) },
            { "labels": { "host": "b", "service.name": "api" }, "points": pts(&[(0, 3.0)]) },
        ])
    );
    // Resource attributes group too (host.name is on the resource).
    assert_eq!(
        series(&s, &format!("{cpu}&group_by=host.name&aggregation=count")).await,
        json!([{ "labels": { "host.name": "h1" }, "points": pts(&[(0, 3.0), (1, 1.0)]) }])
    );

    // Cumulative counter: the first point has no baseline, a reset counts
    // from zero, a series started inside the window counts from zero.
    let req = "metric=http.requests";
    assert_eq!(
        series(&s, &format!("{req}&aggregation=increase")).await,
        one(&[(0, 8.0), (1, 10.0), (2, 7.0)])
    );
    assert_eq!(
        series(&s, &format!("{req}&aggregation=increase&group_by=host")).await,
        json!([
            { "labels": { "host": "a" }, "points": pts(&[(0, 5.0), (1, 10.0), (2, 7.0)]) },
            { "labels": { "host": "b" }, "points": pts(&[(0, 3.0)]) },
        ])
    );
    assert_eq!(
        series(&s, &format!("{req}&aggregation=rate")).await,
        one(&[(0, 8.0 / 60.0), (1, 10.0 / 60.0), (2, 7.0 / 60.0)])
    );
    // Delta temporality: the points are the increases.
    assert_eq!(
        series(&s, "metric=bytes.sent&aggregation=increase").await,
        one(&[(0, 150.0), (1, 25.0)])
    );
    assert_eq!(
        series(&s, "metric=bytes.sent&aggregation=rate").await,
        one(&[(0, 2.5), (1, 25.0 / 60.0)])
    );

    // Histogram quantiles from bucket counts (linear within a bucket).
    let h = "metric=http.duration";
    assert_eq!(
        series(&s, &format!("{h}&aggregation=p50")).await,
        one(&[(0, 10.0)])
    );
    assert_eq!(
        series(&s, &format!("{h}&aggregation=p90")).await,
        one(&[(0, 18.0)])
    );
    let p99 = series(&s, &format!("{h}&aggregation=p99")).await;
    assert!(
        (p99[0]["points"][0]["value"].as_f64().unwrap() - 19.8).abs() < 1e-9,
        "{p99}"
    );
    // Cumulative histogram: increases between points.
    assert_eq!(
        series(&s, "metric=db.duration&aggregation=p50").await,
        one(&[(0, 5.0), (1, 15.0)])
    );

    // Empty range, unknown metric: no series.
    let v = ok(
        &s,
        "/api/v2/metrics/timeseries?metric=cpu.usage&start=2026-11-26T12:00:00Z&end=2026-11-26T13:00:00Z",
    )
    .await;
    assert_eq!(v["series"], json!([]));
    assert_eq!(series(&s, "metric=no.such.metric").await, json!([]));
    // Unix nanoseconds work as times; the answer names what it computed.
    let v = ok(
        &s,
        &format!(
            "/api/v2/metrics/timeseries?metric=cpu.usage&start={T0}&end={}&interval=1h&aggregation=max",
            T0 + 3600 * SEC
        ),
    )
    .await;
    assert_eq!(
        v,
        json!({
            "metric": "cpu.usage", "type": "gauge", "interval": "1h", "aggregation": "max",
            "start": T0_MS, "end": T0_MS + 3_600_000,
            "series": one(&[(0, 8.0)]),
        })
    );

    // Bad parameters: 400 naming the parameter.
    for (query, param) in [
        ("metric=cpu.usage&aggregation=rate", "aggregation"),
        ("metric=http.duration&aggregation=avg", "aggregation"),
        ("metric=cpu.usage&aggregation=median", "aggregation"),
        ("metric=1cpu", "metric"),
        ("aggregation=avg", "metric"),
        ("metric=cpu.usage&interval=5x", "interval"),
        (
            "metric=cpu.usage&interval=1s&start=2026-11-01T00:00:00Z",
            "interval",
        ),
        ("metric=cpu.usage&start=yesterday", "start"),
        (
            "metric=cpu.usage&start=2026-11-26T11:00:00Z&end=2026-11-26T10:00:00Z",
            "start",
        ),
        ("metric=cpu.usage&servce=api", "servce"),
    ] {
        // Later parameters win: the data window unless the case sets its own.
        let url = format!("/api/v2/metrics/timeseries?{WINDOW}&{query}");
        let (status, v) = get(&s, &url, TENANT).await;
        assert_eq!(status, 400, "{query}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(&format!("`{param}`")), "{query}: {msg}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn metric_catalog_lists_names_types_units_and_services() {
    let mut s = TestServer::start().await;
    load_metrics(&s, TENANT).await;
    let v = ok(&s, &format!("/api/v2/metrics?{WINDOW}")).await;
    assert_eq!(
        v["metrics"],
        json!([
            { "name": "bytes.sent", "type": "sum", "unit": "By", "description": "",
              "services": ["api"], "monotonic": true, "temporality": "delta", "points": 3 },
            { "name": "cpu.usage", "type": "gauge", "unit": "1", "description": "",
              "services": ["api", "worker"], "points": 4 },
            { "name": "db.duration", "type": "histogram", "unit": "ms",
              "description": "db.duration latency", "services": ["api"],
              "temporality": "cumulative", "points": 3 },
            { "name": "http.duration", "type": "histogram", "unit": "ms",
              "description": "http.duration latency", "services": ["api"],
              "temporality": "delta", "points": 1 },
            { "name": "http.requests", "type": "sum", "unit": "1", "description": "",
              "services": ["api"], "monotonic": true, "temporality": "cumulative", "points": 6 },
        ])
    );
    let v = ok(&s, &format!("/api/v2/metrics?{WINDOW}&metric=cpu.usage")).await;
    assert_eq!(v["metrics"].as_array().unwrap().len(), 1);
    // Another tenant sees nothing.
    let (status, v) = get(&s, &format!("/api/v2/metrics?{WINDOW}"), "globex").await;
    assert_eq!((status, v), (200, json!({ "metrics": [] })));
    s.shutdown().await;
}

async fn cache_counts(s: &TestServer) -> (u64, u64) {
    let read = async |name: &str| -> u64 {
        crate::support::metric_value(&s.http, name)
            .await
            .parse()
            .unwrap()
    };
    (
        read("telemetryflow_query_cache_hits_total").await,
        read("telemetryflow_query_cache_misses_total").await,
    )
}

#[tokio::test]
async fn the_result_cache_is_invalidated_by_ingest_of_that_metric() {
    let mut s = TestServer::start().await;
    let p = |t: u64, v: f64| number_point(t, T0, NV::AsDouble(v), host("a"));
    let send_cpu = |v: f64, name: &'static str| {
        metrics("api", vec![gauge(name, vec![p(T0 + 10 * SEC, v)])]).encode_to_vec()
    };
    send(&s, "metrics", send_cpu(1.0, "cpu.usage"), TENANT).await;
    let q = "metric=cpu.usage&aggregation=sum";
    assert_eq!(series(&s, q).await, one(&[(0, 1.0)]));
    assert_eq!(cache_counts(&s).await, (0, 1));
    assert_eq!(series(&s, q).await, one(&[(0, 1.0)]));
    assert_eq!(cache_counts(&s).await, (1, 1), "second ask is a hit");
    // Another metric, or another tenant's cpu.usage, leaves the entry alone.
    send(&s, "metrics", send_cpu(5.0, "mem.usage"), TENANT).await;
    send(&s, "metrics", send_cpu(7.0, "cpu.usage"), "globex").await;
    assert_eq!(series(&s, q).await, one(&[(0, 1.0)]));
    assert_eq!(cache_counts(&s).await, (2, 1));
    // New points of cpu.usage: the cached answer is never served again.
    send(&s, "metrics", send_cpu(2.0, "cpu.usage"), TENANT).await;
    assert_eq!(series(&s, q).await, one(&[(0, 3.0)]));
    assert_eq!(cache_counts(&s).await, (2, 2));
    assert_eq!(series(&s, q).await, one(&[(0, 3.0)]));
    assert_eq!(cache_counts(&s).await, (3, 2));
    // globex's answer is its own.
    let (_, v) = get(
        &s,
        &format!("/api/v2/metrics/timeseries?{WINDOW}&interval=1m&{q}"),
        "globex",
    )
    .await;
    assert_eq!(v["series"], one(&[(0, 7.0)]));
    s.shutdown().await;
}
