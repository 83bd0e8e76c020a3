//! What a new user of the time-series, trace and log searches relies on:
//! label matchers (`filter`) with PromQL's semantics on all three, metric
//! names as the OpenTelemetry API allows them, and log times that say where
//! they came from.

use std::collections::BTreeSet;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ResourceMetrics, ScopeMetrics, number_data_point::Value as NV,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use serde_json::Value;

use crate::fixtures::*;
use crate::queries::send;
use crate::support::TestServer;

const TENANT: &str = "acme";
/// One hour from T0 (an hour boundary): one `interval=1h` bucket.
const WINDOW: [(&str, &str); 2] = [
    ("start", "2026-11-26T10:00:00Z"),
    ("end", "2026-11-26T11:00:00Z"),
];

/// Item `i` of the matcher data set: its service, region (resource) and
/// own attributes. Item `i` has the value `2^i` (metrics), is trace
/// `i + 1` (traces) and has the body `log<i>` (logs).
fn items() -> Vec<(&'static str, &'static str, Vec<KeyValue>)> {
    vec![
        ("svc1", "eu", vec![kv_str("route", "/a")]),
        ("svc1", "eu", vec![kv_str("route", "/b")]),
        ("svc2", "us", vec![kv_str("route", "/api/v1")]),
        ("svc2", "us", vec![kv_str("k=x", "1")]),
        (
            "svc1",
            "eu",
            vec![kv_str("route", "/q?a=b"), kv_str("region", "ap")],
        ),
    ]
}

fn resource_of(service: &str, region: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv_str("service.name", service), kv_str("region", region)],
        ..Default::default()
    })
}

async fn load_matcher_data(s: &TestServer) {
    let mut m = ExportMetricsServiceRequest::default();
    let mut t = ExportTraceServiceRequest::default();
    let mut l = ExportLogsServiceRequest::default();
    for (i, (service, region, attrs)) in items().into_iter().enumerate() {
        let at = T0 + i as u64 * SEC;
        let point = number_point(at, at, NV::AsDouble((1u64 << i) as f64), attrs.clone());
        m.resource_metrics.push(ResourceMetrics {
            resource: resource_of(service, region),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![gauge("matched", vec![point])],
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut sp = span(i as u8 + 1, 1, "op", at);
        sp.attributes = attrs.clone();
        t.resource_spans.push(ResourceSpans {
            resource: resource_of(service, region),
            scope_spans: vec![ScopeSpans {
                spans: vec![sp],
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut rec = log(at, 9, &format!("log{i}"));
        rec.attributes = attrs;
        l.resource_logs.push(ResourceLogs {
            resource: resource_of(service, region),
            scope_logs: vec![ScopeLogs {
                log_records: vec![rec],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    send(s, "metrics", m.encode_to_vec(), TENANT).await;
    send(s, "traces", t.encode_to_vec(), TENANT).await;
    send(s, "logs", l.encode_to_vec(), TENANT).await;
}

/// GET `path` with `params` (URL-encoded here) as [`TENANT`].
async fn get(s: &TestServer, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let query = serde_urlencoded::to_string(params).unwrap();
    crate::queries::get(s, &format!("{path}?{query}"), TENANT).await
}

#[derive(Clone, Copy, Debug)]
enum Api {
    TimeSeries,
    Traces,
    Logs,
}

/// The items an API returns for `filters`.
async fn matched(s: &TestServer, api: Api, filters: &[&str]) -> BTreeSet<usize> {
    let mut params: Vec<(&str, &str)> = WINDOW.to_vec();
    params.extend(filters.iter().map(|f| ("filter", *f)));
    let path = match api {
        Api::TimeSeries => {
            params.extend([
                ("metric", "matched"),
                ("interval", "1h"),
                ("aggregation", "sum"),
            ]);
            "/api/v2/metrics/timeseries"
        }
        Api::Traces => {
            params.push(("limit", "100"));
            "/api/v2/traces"
        }
        Api::Logs => "/api/v2/logs",
    };
    let (status, v) = get(s, path, &params).await;
    assert_eq!(status, 200, "{api:?} {filters:?}: {v}");
    match api {
        Api::TimeSeries => {
            let series = v["series"].as_array().unwrap();
            let Some(one) = series.first() else {
                return BTreeSet::new();
            };
            assert_eq!(series.len(), 1, "{v}");
            let bits = one["points"][0]["value"].as_f64().unwrap() as u64;
            (0..64).filter(|i| bits & (1 << i) != 0).collect()
        }
        Api::Traces => v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let id = t["trace_id"].as_str().unwrap();
                usize::from_str_radix(&id[30..], 16).unwrap() - 1
            })
            .collect(),
        Api::Logs => v["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["body"].as_str().unwrap()[3..].parse().unwrap())
            .collect(),
    }
}

#[tokio::test]
async fn filters_match_labels_the_same_way_on_series_traces_and_logs() {
    let s = TestServer::start().await;
    load_matcher_data(&s).await;
    let cases: &[(&[&str], &[usize])] = &[
        (&[], &[0, 1, 2, 3, 4]),
        (&["route=/a"], &[0]),
        // An absent label is empty: `!=` matches items without it.
        (&["route!=/a"], &[1, 2, 3, 4]),
        (&["route="], &[3]),
        // Regexes are fully anchored.
        (&["route=~/a.*"], &[0, 2]),
        (&["route=~a"], &[]),
        (&["route!~/a.*"], &[1, 3, 4]),
        // The key ends at the first operator; the value may hold `=` and `?`.
        (&["route=/q?a=b"], &[4]),
        // A key holding `=` is quoted.
        (&[r#""k=x"=1"#], &[3]),
        // The item's own attribute first, then the resource's.
        (&["region=eu"], &[0, 1]),
        (&["region=ap"], &[4]),
        (&["region=~eu|us"], &[0, 1, 2, 3]),
        // `service.name` is the service.
        (&["service.name=svc2"], &[2, 3]),
        // Several matchers all hold.
        (&["service.name=svc1", "route!=/a"], &[1, 4]),
    ];
    for api in [Api::TimeSeries, Api::Traces, Api::Logs] {
        for (filters, want) in cases {
            let want: BTreeSet<usize> = want.iter().copied().collect();
            assert_eq!(matched(&s, api, filters).await, want, "{api:?} {filters:?}");
        }
    }
}

#[tokio::test]
async fn a_bad_matcher_is_a_400_naming_it() {
    let s = TestServer::start().await;
    for path in [
        "/api/v2/metrics/timeseries",
        "/api/v2/traces",
        "/api/v2/logs",
    ] {
        for (filter, says) in [
            ("route=~(unclosed", "(unclosed"),
            ("no-operator", "no operator"),
            ("=v", "key is empty"),
        ] {
            let mut params = vec![("filter", "route=/a"), ("filter", filter)];
            if path.contains("metrics") {
                params.push(("metric", "m"));
            }
            let (status, v) = get(&s, path, &params).await;
            let msg = v["error"].as_str().unwrap_or_default();
            assert_eq!(status, 400, "{path} {filter}: {v}");
            assert!(
                msg.contains("parameter `filter`") && msg.contains(says),
                "{path} {filter}: {msg}"
            );
        }
    }
    // A route without matchers still refuses `filter` as unknown.
    let (status, v) = get(&s, "/api/v2/services", &[("filter", "a=b")]).await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn a_metric_named_with_a_slash_is_stored_and_queryable() {
    let s = TestServer::start().await;
    let p = number_point(T0 + SEC, T0, NV::AsInt(7), vec![]);
    let body = metrics("web", vec![counter("app/requests", vec![p])]);
    // `send` asserts nothing was rejected.
    send(&s, "metrics", body.encode_to_vec(), TENANT).await;
    let mut params = WINDOW.to_vec();
    params.extend([
        ("metric", "app/requests"),
        ("interval", "1h"),
        ("aggregation", "max"),
    ]);
    let (status, v) = get(&s, "/api/v2/metrics/timeseries", &params).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "sum", "{v}");
    assert_eq!(v["series"][0]["points"][0]["value"], 7.0, "{v}");
    let (_, catalog) = get(&s, "/api/v2/metrics", &WINDOW).await;
    let names: Vec<&str> = catalog["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app/requests"], "{catalog}");
}

/// A log record of service `times` with the given times (0: not sent).
fn timed_log(body: &str, time: u64, observed: u64) -> LogRecord {
    let mut r = log(time, 9, body);
    r.observed_time_unix_nano = observed;
    r
}

#[tokio::test]
async fn log_times_say_whether_they_were_sent_or_derived() {
    let s = TestServer::start().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let body = logs(
        "times",
        vec![
            timed_log("sent", T0 + SEC, T0 + 2 * SEC),
            timed_log("observed only", 0, T0 + 3 * SEC),
            timed_log("neither", 0, 0),
        ],
    );
    send(&s, "logs", body.encode_to_vec(), TENANT).await;
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let rows = s
        .sql_as(
            TENANT,
            "SELECT body, timestamp_derived, \
             CAST(timestamp AS BIGINT) AS t, CAST(observed_timestamp AS BIGINT) AS o \
             FROM otel_logs ORDER BY body",
        )
        .await;
    let mut got = Vec::new();
    for b in &rows {
        use arrow::array::{AsArray, BooleanArray};
        use arrow::datatypes::Int64Type;
        let body = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let body = body.as_string::<i32>();
        let derived: &BooleanArray = b.column(1).as_boolean();
        let t = b.column(2).as_primitive::<Int64Type>();
        let o = b.column(3).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            got.push((
                body.value(r).to_owned(),
                derived.value(r),
                t.value(r) as u64,
                o.value(r) as u64,
            ));
        }
    }
    assert_eq!(got.len(), 3, "{got:?}");
    let (_, derived, t, o) = &got[0];
    assert_eq!(got[0].0, "neither");
    assert!(*derived, "{got:?}");
    assert_eq!(t, o, "filed under the time it was received");
    assert!((before..=after).contains(t), "{before} <= {t} <= {after}");
    assert_eq!(
        got[1],
        ("observed only".into(), true, T0 + 3 * SEC, T0 + 3 * SEC)
    );
    assert_eq!(got[2], ("sent".into(), false, T0 + SEC, T0 + 2 * SEC));

    // The log search shows the flag; the record without times is found in
    // the default window (the last hour).
    let (status, v) = get(&s, "/api/v2/logs", &[]).await;
    assert_eq!(status, 200, "{v}");
    let found = v["logs"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["body"], "neither");
    assert_eq!(found[0]["timestamp_derived"], true);
    let (_, v) = get(&s, "/api/v2/logs", &WINDOW).await;
    let flags: Vec<(&str, &Value)> = v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["body"].as_str().unwrap(), &r["timestamp_derived"]))
        .collect();
    assert_eq!(
        flags,
        [
            ("observed only", &Value::Bool(true)),
            ("sent", &Value::Bool(false))
        ],
        "{v}"
    );
}

/// `p<nn>` of `metric` over the window in one 1h bucket, per `group_by`.
async fn percentile(s: &TestServer, metric: &str, p: &str, group_by: Option<&str>) -> Value {
    let mut params = WINDOW.to_vec();
    params.extend([("metric", metric), ("interval", "1h"), ("aggregation", p)]);
    if let Some(g) = group_by {
        params.push(("group_by", g));
    }
    let (status, v) = get(s, "/api/v2/metrics/timeseries", &params).await;
    assert_eq!(status, 200, "{metric} {p}: {v}");
    v
}

fn only_value(v: &Value) -> f64 {
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    let points = series[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{v}");
    points[0]["value"].as_f64().unwrap()
}

#[tokio::test]
async fn a_cumulative_histograms_quantiles_stay_within_its_min_and_max() {
    use opentelemetry_proto::tonic::metrics::v1::{Histogram, HistogramDataPoint, Metric, metric};
    let s = TestServer::start().await;
    // Observations between 150 and 300, in the bucket (100, 1000]: linear
    // interpolation alone would put p99 at 991.
    let point = |at: u64, n: u64| HistogramDataPoint {
        start_time_unix_nano: T0 + SEC,
        time_unix_nano: at,
        count: n,
        sum: Some(200.0 * n as f64),
        bucket_counts: vec![0, n, 0],
        explicit_bounds: vec![100.0, 1000.0],
        min: Some(150.0),
        max: Some(300.0),
        ..Default::default()
    };
    let m = Metric {
        name: "latency".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![point(T0 + 10 * SEC, 10), point(T0 + 70 * SEC, 25)],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    };
    send(
        &s,
        "metrics",
        metrics("web", vec![m]).encode_to_vec(),
        TENANT,
    )
    .await;
    let v = percentile(&s, "latency", "p99", None).await;
    assert_eq!(only_value(&v), 300.0, "{v}");
    for p in ["p1", "p50", "p90"] {
        let v = only_value(&percentile(&s, "latency", p, None).await);
        assert!((150.0..=300.0).contains(&v), "{p}: {v}");
    }
}

/// An exponential histogram point as the test describes it: scale, zero
/// count, positive (offset, counts), negative (offset, counts).
type Exp = (i32, u64, (i32, Vec<u64>), (i32, Vec<u64>));

/// The documented quantile of exponential-histogram points, computed here
/// from their buckets: every bucket brought to the coarsest scale
/// (index `i` at scale `s` is `i >> (s - coarsest)`), then walked from the
/// most negative value up, interpolating exponentially within the bucket
/// holding rank `q · count` (base^(i + f) for positive bucket `i`,
/// -base^(i + 1 - f) for negative bucket `i`, 0 in the zero bucket).
fn reference_quantile(points: &[Exp], q: f64) -> f64 {
    use std::collections::BTreeMap;
    let coarsest = points.iter().map(|p| p.0).min().unwrap();
    let (mut pos, mut neg, mut zero) = (BTreeMap::new(), BTreeMap::new(), 0u64);
    for (scale, z, (po, pc), (no, nc)) in points {
        let shift = scale - coarsest;
        zero += z;
        for (j, c) in pc.iter().enumerate() {
            *pos.entry((po + j as i32) >> shift).or_insert(0u64) += c;
        }
        for (j, c) in nc.iter().enumerate() {
            *neg.entry((no + j as i32) >> shift).or_insert(0u64) += c;
        }
    }
    let base = 2f64.powf(2f64.powi(-coarsest));
    // (count, sign, bucket index) in value order; sign 0 is the zero bucket.
    let mut walk: Vec<(u64, i8, i32)> = neg.iter().rev().map(|(&i, &c)| (c, -1, i)).collect();
    walk.push((zero, 0, 0));
    walk.extend(pos.iter().map(|(&i, &c)| (c, 1, i)));
    let total: u64 = walk.iter().map(|(c, _, _)| c).sum();
    let rank = q * total as f64;
    let mut below = 0u64;
    for &(c, sign, i) in &walk {
        if c > 0 && (below + c) as f64 >= rank {
            let f = (rank - below as f64) / c as f64;
            return match sign {
                -1 => -base.powf(f64::from(i) + 1.0 - f),
                0 => 0.0,
                _ => base.powf(f64::from(i) + f),
            };
        }
        below += c;
    }
    unreachable!()
}

#[tokio::test]
async fn exponential_histogram_quantiles_match_their_buckets() {
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Metric,
        exponential_histogram_data_point::Buckets, metric,
    };
    let s = TestServer::start().await;
    // Two delta series at scales 1 and 0, with negative values and zeros.
    let a: Exp = (1, 1, (2, vec![3, 5, 2]), (0, vec![4]));
    let b: Exp = (0, 0, (1, vec![6]), (1, vec![2, 1]));
    let point =
        |(scale, zero, (po, pc), (no, nc)): &Exp, host: &str| ExponentialHistogramDataPoint {
            attributes: vec![kv_str("host", host)],
            start_time_unix_nano: T0,
            time_unix_nano: T0 + 10 * SEC,
            count: zero + pc.iter().sum::<u64>() + nc.iter().sum::<u64>(),
            scale: *scale,
            zero_count: *zero,
            positive: Some(Buckets {
                offset: *po,
                bucket_counts: pc.clone(),
            }),
            negative: Some(Buckets {
                offset: *no,
                bucket_counts: nc.clone(),
            }),
            ..Default::default()
        };
    let m = Metric {
        name: "rtt".into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![point(&a, "a"), point(&b, "b")],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    send(
        &s,
        "metrics",
        metrics("net", vec![m]).encode_to_vec(),
        TENANT,
    )
    .await;
    for p in [1u8, 10, 25, 30, 50, 75, 90, 99] {
        let q = f64::from(p) / 100.0;
        let got = only_value(&percentile(&s, "rtt", &format!("p{p}"), None).await);
        let want = reference_quantile(&[a.clone(), b.clone()], q);
        assert!((got - want).abs() < 1e-9, "p{p}: {got} vs {want}");
        // Each series alone, at its own scale.
        let v = percentile(&s, "rtt", &format!("p{p}"), Some("host")).await;
        for (i, own) in [&a, &b].into_iter().enumerate() {
            let got = v["series"][i]["points"][0]["value"].as_f64().unwrap();
            let want = reference_quantile(std::slice::from_ref(own), q);
            assert!(
                (got - want).abs() < 1e-9,
                "p{p} series {i}: {got} vs {want}: {v}"
            );
        }
    }
    // The median of the merged series lies in (2, 4]; p10 is negative.
    let p50 = only_value(&percentile(&s, "rtt", "p50", None).await);
    assert!(p50 > 2.0 && p50 <= 4.0, "{p50}");
    assert!(only_value(&percentile(&s, "rtt", "p10", None).await) < 0.0);
}

#[tokio::test]
async fn summary_quantiles_are_exact_when_sent_and_interpolated_otherwise() {
    use opentelemetry_proto::tonic::metrics::v1::{
        Metric, Summary, SummaryDataPoint, metric, summary_data_point::ValueAtQuantile,
    };
    let s = TestServer::start().await;
    let point = |host: &str, at: u64, count: u64, qs: &[(f64, f64)]| SummaryDataPoint {
        attributes: vec![kv_str("host", host)],
        start_time_unix_nano: T0,
        time_unix_nano: at,
        count,
        sum: 1000.0,
        quantile_values: qs
            .iter()
            .map(|&(quantile, value)| ValueAtQuantile { quantile, value })
            .collect(),
        ..Default::default()
    };
    let m = Metric {
        name: "gc.pause".into(),
        data: Some(metric::Data::Summary(Summary {
            data_points: vec![
                // An older point of series a: the latest one counts.
                point(
                    "a",
                    T0 + 5 * SEC,
                    50,
                    &[(0.5, 1.0), (0.9, 2.0), (0.99, 3.0)],
                ),
                point(
                    "a",
                    T0 + 10 * SEC,
                    100,
                    &[(0.5, 10.0), (0.9, 50.0), (0.99, 90.0)],
                ),
                point("b", T0 + 10 * SEC, 300, &[(0.5, 20.0), (0.99, 40.0)]),
            ],
        })),
        ..Default::default()
    };
    send(
        &s,
        "metrics",
        metrics("jvm", vec![m]).encode_to_vec(),
        TENANT,
    )
    .await;
    let per_host = |v: &Value| -> Vec<f64> {
        (0..2)
            .map(|i| v["series"][i]["points"][0]["value"].as_f64().unwrap())
            .collect()
    };
    // Sent: exact.
    let v = percentile(&s, "gc.pause", "p50", Some("host")).await;
    assert_eq!(per_host(&v), [10.0, 20.0], "{v}");
    let v = percentile(&s, "gc.pause", "p99", Some("host")).await;
    assert_eq!(per_host(&v), [90.0, 40.0], "{v}");
    // Not sent: linear between the neighbours; below the lowest, the lowest.
    let v = percentile(&s, "gc.pause", "p95", Some("host")).await;
    let [pa, pb] = per_host(&v)[..] else { panic!() };
    assert!((pa - (50.0 + 40.0 * 5.0 / 9.0)).abs() < 1e-9, "{v}");
    assert!((pb - (20.0 + 20.0 * 45.0 / 49.0)).abs() < 1e-9, "{v}");
    let v = percentile(&s, "gc.pause", "p10", Some("host")).await;
    assert_eq!(per_host(&v), [10.0, 20.0], "{v}");
    // Grouped together: weighted by count (100 and 300).
    let v = percentile(&s, "gc.pause", "p50", None).await;
    assert_eq!(only_value(&v), (100.0 * 10.0 + 300.0 * 20.0) / 400.0, "{v}");
}
