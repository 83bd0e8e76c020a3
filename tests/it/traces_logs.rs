//! Trace, service and log queries over known data; OTLP/JSON round trip of
//! a trace; tenant isolation on every read endpoint.

use opentelemetry_proto::tonic::trace::v1::Status;
use prost::Message;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::queries::{TENANT, get, ok, send};
use crate::support::{TestServer, parquet_files};

const WINDOW: &str = "start=2026-11-26T10:00:00Z&end=2026-11-26T11:00:00Z";

fn hex_id(n: u8) -> String {
    hex::encode(trace_id(n))
}

/// Trace 1: frontend root (500 ms) → payment `charge` (error) and
/// `db.query`; trace 2: one frontend span a minute later. Logs from both.
async fn load(s: &TestServer, tenant: &str) {
    let ms = 1_000_000;
    let mut root = span(1, 1, "GET /checkout", T0);
    root.end_time_unix_nano = T0 + 500 * ms;
    let mut charge = span(1, 2, "charge", T0 + 50 * ms);
    charge.parent_span_id = span_id(1);
    charge.status = Some(Status {
        code: 2,
        message: "card declined".into(),
    });
    let mut db = span(1, 3, "db.query", T0 + 100 * ms);
    db.parent_span_id = span_id(2);
    db.kind = 3;
    send(
        s,
        "traces",
        traces("frontend", vec![root]).encode_to_vec(),
        tenant,
    )
    .await;
    // Part flushed, part buffered.
    s.flush().await;
    send(
        s,
        "traces",
        traces("payment", vec![charge, db]).encode_to_vec(),
        tenant,
    )
    .await;
    send(
        s,
        "traces",
        traces("frontend", vec![span(2, 4, "GET /", T0 + 60 * SEC)]).encode_to_vec(),
        tenant,
    )
    .await;
    let mut timeout = log(T0 + 2 * SEC, 17, "upstream TIMEOUT after 30s");
    timeout.trace_id = trace_id(1);
    timeout.span_id = span_id(2);
    let records = vec![
        log(T0 + SEC, 9, "request completed"),
        timeout,
        log(T0 + 3 * SEC, 13, "slow call, Timeout soon"),
    ];
    send(s, "logs", logs("payment", records).encode_to_vec(), tenant).await;
    send(
        s,
        "logs",
        logs("frontend", vec![log(T0 + 4 * SEC, 9, "ok")]).encode_to_vec(),
        tenant,
    )
    .await;
}

fn ids(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| x[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn traces_by_id_and_search() {
    let mut s = TestServer::start().await;
    load(&s, TENANT).await;

    let v = ok(&s, &format!("/api/v2/traces/{}", hex_id(1).to_uppercase())).await;
    assert_eq!(v["trace_id"], hex_id(1));
    let spans = v["spans"].as_array().unwrap();
    assert_eq!(
        spans
            .iter()
            .map(|s| s["span_name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["GET /checkout", "charge", "db.query"],
        "oldest first"
    );
    // Every column of the table is there.
    let names: Vec<&str> = spans[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let schema =
        telemetryflow::infrastructure::storage::table_schema(telemetryflow::domain::Table::TRACES);
    let mut want: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut got = names.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    let charge = &spans[1];
    assert_eq!(charge["service_name"], "payment");
    assert_eq!(charge["parent_span_id"], hex::encode(span_id(1)));
    assert_eq!(charge["status_code"], "Error");
    assert_eq!(charge["status_message"], "card declined");
    assert_eq!(charge["duration_ns"], 250_000_000);
    assert_eq!(charge["span_kind"], "Server");
    assert_eq!(
        charge["span_attributes"],
        json!({"http.method": "GET", "http.status_code": "200"})
    );
    assert_eq!(
        charge["span_attribute_types"],
        json!({"http.status_code": "int"})
    );

    // 404 for an unknown id, 400 for a malformed one.
    let (status, v) = get(&s, &format!("/api/v2/traces/{}", hex_id(9)), TENANT).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = get(&s, "/api/v2/traces/not-a-trace-id", TENANT).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("`trace_id`"), "{v}");

    // Search: newest first, one summary per trace.
    let v = ok(&s, &format!("/api/v2/traces?{WINDOW}")).await;
    assert_eq!(ids(&v, "traces", "trace_id"), [hex_id(2), hex_id(1)]);
    assert_eq!(
        v["traces"][1],
        json!({
            "trace_id": hex_id(1),
            "root_service": "frontend",
            "root_span": "GET /checkout",
            "start_time_unix_nano": T0,
            "duration_ms": 500.0,
            "span_count": 3,
            "error": true,
            "services": ["frontend", "payment"],
        })
    );
    for (filter, want) in [
        ("service=payment", vec![hex_id(1)]),
        ("span_name=GET%20/", vec![hex_id(2)]),
        ("status=error", vec![hex_id(1)]),
        ("status=ok", vec![hex_id(2), hex_id(1)]),
        ("min_duration_ms=400", vec![hex_id(1)]),
        ("min_duration_ms=600", vec![]),
        ("limit=1", vec![hex_id(2)]),
        ("service=nobody", vec![]),
    ] {
        let v = ok(&s, &format!("/api/v2/traces?{WINDOW}&{filter}")).await;
        assert_eq!(ids(&v, "traces", "trace_id"), want, "{filter}");
    }
    let v = ok(
        &s,
        "/api/v2/traces?start=2026-11-26T12:00:00Z&end=2026-11-26T13:00:00Z",
    )
    .await;
    assert_eq!(v, json!({"traces": []}));
    for (q, param) in [
        ("status=broken", "status"),
        ("limit=0", "limit"),
        ("min_duration_ms=-1", "min_duration_ms"),
        ("start=1", "start"),
    ] {
        let (status, v) = get(&s, &format!("/api/v2/traces?{q}"), TENANT).await;
        assert_eq!(status, 400, "{q}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(&format!("`{param}`")),
            "{v}"
        );
    }

    // Services and operations.
    let v = ok(&s, &format!("/api/v2/services?{WINDOW}")).await;
    assert_eq!(
        v,
        json!({"services": [
            {"name": "frontend", "signals": ["logs", "traces"]},
            {"name": "payment", "signals": ["logs", "traces"]},
        ]})
    );
    let v = ok(&s, &format!("/api/v2/services/payment/operations?{WINDOW}")).await;
    assert_eq!(
        v,
        json!({"service": "payment", "operations": [
            {"name": "charge", "span_kind": "Server", "spans": 1, "errors": 1,
             "avg_duration_ms": 250.0, "max_duration_ms": 250.0},
            {"name": "db.query", "span_kind": "Client", "spans": 1, "errors": 0,
             "avg_duration_ms": 250.0, "max_duration_ms": 250.0},
        ]})
    );
    s.shutdown().await;
}

#[tokio::test]
async fn log_search() {
    let mut s = TestServer::start().await;
    load(&s, TENANT).await;
    let bodies = |v: &Value| ids(v, "logs", "body");
    let v = ok(&s, &format!("/api/v2/logs?{WINDOW}")).await;
    assert_eq!(
        bodies(&v),
        [
            "ok",
            "slow call, Timeout soon",
            "upstream TIMEOUT after 30s",
            "request completed"
        ],
        "newest first"
    );
    assert_eq!(v["logs"][2]["trace_id"], hex_id(1));
    assert_eq!(v["logs"][2]["severity_number"], 17);
    assert_eq!(v["logs"][2]["log_attributes"], json!({"logger": "main"}));
    for (filter, want) in [
        (
            "q=timeout",
            vec!["slow call, Timeout soon", "upstream TIMEOUT after 30s"],
        ),
        ("q=TIMEOUT%20after", vec!["upstream TIMEOUT after 30s"]),
        ("q=%25", vec![]),
        ("min_severity=error", vec!["upstream TIMEOUT after 30s"]),
        (
            "min_severity=WARN",
            vec!["slow call, Timeout soon", "upstream TIMEOUT after 30s"],
        ),
        ("min_severity=17", vec!["upstream TIMEOUT after 30s"]),
        (
            &format!("trace_id={}", hex_id(1)),
            vec!["upstream TIMEOUT after 30s"],
        ),
        ("service=frontend", vec!["ok"]),
        ("service=payment&q=completed", vec!["request completed"]),
        ("limit=2", vec!["ok", "slow call, Timeout soon"]),
    ] {
        let v = ok(&s, &format!("/api/v2/logs?{WINDOW}&{filter}")).await;
        assert_eq!(bodies(&v), want, "{filter}");
    }
    for (q, param) in [
        ("min_severity=loud", "min_severity"),
        ("trace_id=123", "trace_id"),
        ("limit=100000", "limit"),
        ("level=error", "level"),
    ] {
        let (status, v) = get(&s, &format!("/api/v2/logs?{q}"), TENANT).await;
        assert_eq!(status, 400, "{q}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(&format!("`{param}`")),
            "{v}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn every_read_endpoint_is_tenant_isolated() {
    let mut s = TestServer::start().await;
    load(&s, TENANT).await;
    let other = "globex";
    for (path, want) in [
        (format!("/api/v2/traces?{WINDOW}"), json!({"traces": []})),
        (
            format!("/api/v2/services?{WINDOW}"),
            json!({"services": []}),
        ),
        (
            format!("/api/v2/services/payment/operations?{WINDOW}"),
            json!({"service": "payment", "operations": []}),
        ),
        (format!("/api/v2/logs?{WINDOW}"), json!({"logs": []})),
    ] {
        let (status, v) = get(&s, &path, other).await;
        assert_eq!((status, v), (200, want.clone()), "{path}");
        // The owner does see data there.
        let (status, v) = get(&s, &path, TENANT).await;
        assert_eq!(status, 200);
        assert_ne!(v, want, "{path}");
    }
    let (status, _) = get(&s, &format!("/api/v2/traces/{}", hex_id(1)), other).await;
    assert_eq!(status, 404);
    let (status, _) = get(
        &s,
        &format!("/api/v2/traces/{}?format=otlp", hex_id(1)),
        other,
    )
    .await;
    assert_eq!(status, 404);
    // An invalid tenant id is a 400 on every endpoint.
    let (status, v) = get(&s, "/api/v2/services", "../etc").await;
    assert_eq!(status, 400, "{v}");
    s.shutdown().await;
}

/// A trace sent as OTLP/JSON comes back from `?format=otlp` equal, field for
/// field: every attribute type, events, links, flags, trace state, dropped
/// counts, schema URLs, resource and scope.
#[tokio::test]
async fn trace_round_trips_as_otlp_json() {
    let mut s = TestServer::start().await;
    let sent = json!({"resourceSpans": [{
        "resource": {
            "attributes": [
                {"key": "service.name", "value": {"stringValue": "checkout"}},
                {"key": "host.cpus", "value": {"intValue": "8"}},
            ],
            "droppedAttributesCount": 1,
        },
        "scopeSpans": [{
            "scope": {
                "name": "io.opentelemetry.test", "version": "1.2.3",
                "attributes": [{"key": "lib.enabled", "value": {"boolValue": true}}],
            },
            "spans": [
                {
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "eee19b7ec3c1b174",
                    "traceState": "vendor=x",
                    "name": "GET /checkout",
                    "kind": 2,
                    "startTimeUnixNano": "1795687200000000000",
                    "endTimeUnixNano": "1795687200500000000",
                    "attributes": [
                        {"key": "http.method", "value": {"stringValue": "GET"}},
                        {"key": "http.status_code", "value": {"intValue": "500"}},
                        {"key": "sample.ratio", "value": {"doubleValue": 0.25}},
                        {"key": "tags", "value": {"arrayValue": {"values": [
                            {"stringValue": "a"}, {"intValue": "1"}, {"boolValue": false}]}}},
                        {"key": "blob", "value": {"bytesValue": "AQID"}},
                        {"key": "nested", "value": {"kvlistValue": {"values": [
                            {"key": "k", "value": {"stringValue": "v"}}]}}},
                    ],
                    "droppedAttributesCount": 2,
                    "events": [{
                        "timeUnixNano": "1795687200100000000",
                        "name": "exception",
                        "attributes": [{"key": "exception.type", "value": {"stringValue": "Timeout"}}],
                        "droppedAttributesCount": 1,
                    }],
                    "droppedEventsCount": 3,
                    "links": [{
                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                        "spanId": "b7ad6b7169203331",
                        "traceState": "k=v",
                        "attributes": [{"key": "link.kind", "value": {"stringValue": "follows"}}],
                        "flags": 257,
                    }],
                    "droppedLinksCount": 4,
                    "status": {"code": 2, "message": "upstream timeout"},
                    "flags": 257,
                },
                {
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "00f067aa0ba902b7",
                    "parentSpanId": "eee19b7ec3c1b174",
                    "name": "SELECT orders",
                    "kind": 3,
                    "startTimeUnixNano": "1795687200200000000",
                    "endTimeUnixNano": "1795687200300000000",
                    "status": {},
                },
            ],
            "schemaUrl": "https://opentelemetry.io/schemas/1.24.0",
        }],
        "schemaUrl": "https://opentelemetry.io/schemas/1.25.0",
    }]});
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/json",
        None,
        serde_json::to_vec(&sent).unwrap(),
        Some(TENANT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let path = "/api/v2/traces/5b8efff798038103d269b633813fc60c?format=otlp";
    assert_eq!(ok(&s, path).await, sent, "from the buffer");
    s.flush().await;
    assert_eq!(ok(&s, path).await, sent, "from Parquet");
    let (status, v) = get(&s, &format!("{path}x"), TENANT).await;
    assert_eq!(status, 400, "{v}");
    s.shutdown().await;
}

/// The service list's path between minutes `from` and `to` after 10:00 on
/// T0's day.
fn services_path(from: u64, to: u64) -> String {
    let at = |m: u64| format!("2026-11-26T{:02}:{:02}:00Z", 10 + m / 60, m % 60);
    format!("/api/v2/services?start={}&end={}", at(from), at(to))
}

async fn services_between(s: &TestServer, from: u64, to: u64) -> Value {
    ok(s, &services_path(from, to)).await
}

/// The service list takes the services of a file that lies wholly inside
/// its window from the manifest, which records them per file: with such
/// files' Parquet gone, it still names their services. Files that reach
/// past the window's edges are read, row by row, and so are rows not yet
/// flushed.
#[tokio::test]
async fn the_service_list_reads_only_the_files_at_its_window_s_edges() {
    let s = TestServer::start_with(|c| c.compaction.enabled = false).await;
    let min = 60 * SEC;
    let spans = vec![
        span(1, 1, "a", T0 + 10 * min),
        span(1, 2, "b", T0 + 20 * min),
    ];
    send(
        &s,
        "traces",
        traces("frontend", spans).encode_to_vec(),
        TENANT,
    )
    .await;
    let records = vec![log(T0 + 5 * min, 9, "paid")];
    send(&s, "logs", logs("payment", records).encode_to_vec(), TENANT).await;
    s.flush().await;
    let interior = parquet_files(&s.parquet_dir());
    assert_eq!(interior.len(), 2);
    for f in &interior {
        std::fs::remove_file(f).unwrap();
    }
    // One file from minute 30 to minute 50.
    let spans = vec![
        span(2, 1, "c", T0 + 30 * min),
        span(2, 2, "d", T0 + 50 * min),
    ];
    send(&s, "traces", traces("edge", spans).encode_to_vec(), TENANT).await;
    s.flush().await;
    // Buffered.
    let spans = vec![span(3, 1, "e", T0 + 15 * min)];
    send(&s, "traces", traces("fresh", spans).encode_to_vec(), TENANT).await;

    assert_eq!(
        services_between(&s, 0, 60).await,
        json!({"services": [
            {"name": "edge", "signals": ["traces"]},
            {"name": "fresh", "signals": ["traces"]},
            {"name": "frontend", "signals": ["traces"]},
            {"name": "payment", "signals": ["logs"]},
        ]})
    );
    // The edge file reaches past both ends and has a row inside …
    assert_eq!(
        services_between(&s, 25, 45).await,
        json!({"services": [{"name": "edge", "signals": ["traces"]}]})
    );
    // … or none.
    assert_eq!(services_between(&s, 35, 45).await, json!({"services": []}));
    // A window that cuts through a file whose Parquet is gone has to read
    // it, and says it could not.
    let (status, v) = get(&s, &services_path(0, 15), TENANT).await;
    assert!(status >= 500, "{status}: {v}");
}
