//! Tenant limits: one tenant over its ingest rate or its active series is
//! refused (429 / RESOURCE_EXHAUSTED naming the limit, or points rejected in
//! partial success), while other tenants are untouched; `/metrics` counts
//! the refusals per tenant and holds a bounded number of tenants.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;
use std::collections::BTreeMap;
use std::num::NonZero;
use telemetryflow::config::{TenantLimitSettings, TenantName};

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::TestServer;

fn spans(n: u8) -> Vec<u8> {
    traces("svc", (1..=n).map(|i| span(1, i, "s", T0)).collect()).encode_to_vec()
}

async fn send_spans(s: &TestServer, tenant: &str, n: u8) -> crate::otlp_http::Reply {
    let url = format!("{}/v1/traces", s.http);
    post(&url, "application/x-protobuf", None, spans(n), Some(tenant)).await
}

async fn metrics_text(s: &TestServer) -> String {
    let r = reqwest::get(format!("{}/metrics", s.http)).await.unwrap();
    r.text().await.unwrap()
}

fn tenant_limits(
    tenant: &str,
    own: TenantLimitSettings,
) -> BTreeMap<TenantName, TenantLimitSettings> {
    BTreeMap::from([(tenant.parse().unwrap(), own)])
}

#[tokio::test]
async fn a_tenant_over_its_ingest_rate_gets_429_naming_the_limit_and_others_flow() {
    let s = TestServer::start_with(|c| {
        c.limits.ingest_burst_secs = NonZero::new(10).unwrap();
        c.limits.tenants = tenant_limits(
            "acme",
            TenantLimitSettings {
                ingest_items_per_sec: Some(1),
                ..Default::default()
            },
        );
    })
    .await;
    assert_eq!(send_spans(&s, "acme", 10).await.status, 200);
    let r = send_spans(&s, "acme", 10).await;
    assert_eq!(r.status, 429);
    let status =
        telemetryflow::infrastructure::otlp::status::RpcStatus::decode(&r.body[..]).unwrap();
    assert_eq!(status.code, 8, "RESOURCE_EXHAUSTED");
    assert!(
        status
            .message
            .starts_with("tenant acme is over its limit limits.tenants.acme.ingest_items_per_sec = 1 items/s; retry after"),
        "{}",
        status.message
    );
    // gRPC answers the same refusal with RESOURCE_EXHAUSTED (the bucket
    // refills one item a second).
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let mut req = tonic::Request::new(traces("svc", vec![span(2, 1, "g", T0)]));
    req.metadata_mut()
        .insert("x-tenant-id", "acme".parse().unwrap());
    let e = client.export(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message()
            .contains("limits.tenants.acme.ingest_items_per_sec"),
        "{e:?}"
    );
    assert!(!e.details().is_empty(), "RetryInfo in the details");

    // While acme's bucket is empty its requests are refused before their
    // body is read: garbage gets the 429, not the 400 of decoding it.
    let url = format!("{}/v1/traces", s.http);
    let garbage = post(
        &url,
        "application/x-protobuf",
        None,
        vec![0xff; 64],
        Some("acme"),
    )
    .await;
    assert_eq!(garbage.status, 429);
    // Other tenants have no limit: the default is unlimited.
    for _ in 0..5 {
        assert_eq!(send_spans(&s, "beta", 100).await.status, 200);
    }
    // Refused before they were read, their items are not counted: the
    // refusals are.
    let text = metrics_text(&s).await;
    for line in [
        r#"telemetryflow_limit_refusals_total{tenant="acme",limit="ingest_items_per_sec"} 3"#,
        r#"telemetryflow_receiver_refused_spans_total{tenant="acme"} 0"#,
        r#"telemetryflow_receiver_accepted_spans_total{tenant="acme"} 10"#,
        r#"telemetryflow_receiver_accepted_spans_total{tenant="beta"} 500"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    s.flush().await;
    let rows = s
        .sql_as("acme", "SELECT count(*) AS n FROM otel_traces")
        .await;
    datafusion::assert_batches_eq!(["+----+", "| n  |", "+----+", "| 10 |", "+----+"], &rows);
}

#[tokio::test]
async fn the_retry_after_of_a_rate_refusal_is_when_the_request_would_pass() {
    let s = TestServer::start_with(|c| {
        c.limits.ingest_items_per_sec = 1;
        c.limits.ingest_burst_secs = NonZero::new(5).unwrap();
    })
    .await;
    assert_eq!(send_spans(&s, "acme", 5).await.status, 200);
    let url = format!("{}/v1/traces", s.http);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-tenant-id", "acme")
        .body(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("limits.ingest_items_per_sec = 1 items/s"),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(send_spans(&s, "acme", 1).await.status, 200);
}

#[tokio::test]
async fn new_series_beyond_max_active_series_are_rejected_and_known_ones_keep_flowing() {
    let s = TestServer::start_with(|c| c.limits.max_active_series = 2).await;
    let point =
        |host: &str, t: u64| number_point(t, 0, Value::AsDouble(1.0), vec![kv_str("host", host)]);
    let send = |points: Vec<_>| {
        let body = metrics("svc", vec![gauge("cpu", points)]).encode_to_vec();
        let url = format!("{}/v1/metrics", s.http);
        async move {
            let r = post(&url, "application/x-protobuf", None, body, Some("acme")).await;
            assert_eq!(r.status, 200);
            ExportMetricsServiceResponse::decode(&r.body[..])
                .unwrap()
                .partial_success
        }
    };
    assert_eq!(send(vec![point("a", T0), point("b", T0)]).await, None);
    let ps = send(vec![
        point("c", T0 + 1),
        point("a", T0 + 1),
        point("d", T0 + 1),
    ])
    .await
    .unwrap();
    assert_eq!(ps.rejected_data_points, 2);
    assert_eq!(
        ps.error_message,
        "rejected 2 of 3 data points: 2 with a new series beyond the tenant's active series limit (limits.max_active_series)"
    );
    assert_eq!(
        send(vec![point("b", T0 + 2), point("a", T0 + 2)]).await,
        None
    );
    // Another tenant has series of its own.
    let body = metrics(
        "svc",
        vec![gauge("cpu", vec![point("x", T0), point("y", T0)])],
    );
    let r = post(
        &format!("{}/v1/metrics", s.http),
        "application/x-protobuf",
        None,
        body.encode_to_vec(),
        Some("beta"),
    )
    .await;
    assert!(
        ExportMetricsServiceResponse::decode(&r.body[..])
            .unwrap()
            .partial_success
            .is_none()
    );
    s.flush().await;
    let rows = s
        .sql_as(
            "acme",
            "SELECT attributes['host'] AS host, count(*) AS n FROM otel_metrics_gauge GROUP BY 1",
        )
        .await;
    datafusion::assert_batches_sorted_eq!(
        [
            "+------+---+",
            "| host | n |",
            "+------+---+",
            "| a    | 3 |",
            "| b    | 2 |",
            "+------+---+",
        ],
        &rows
    );
    let text = metrics_text(&s).await;
    let line = r#"telemetryflow_limit_refusals_total{tenant="acme",limit="max_active_series"} 1"#;
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
}

#[tokio::test]
async fn metrics_hold_a_bounded_number_of_tenants_and_empty_requests_add_none() {
    let s =
        TestServer::start_with(|c| c.server.metrics_max_tenants = NonZero::new(2).unwrap()).await;
    // An empty request names a tenant but carries nothing: no counters.
    let empty = traces("svc", vec![]).encode_to_vec();
    for t in ["e1", "e2", "e3"] {
        let url = format!("{}/v1/traces", s.http);
        assert_eq!(
            post(&url, "application/x-protobuf", None, empty.clone(), Some(t))
                .await
                .status,
            200
        );
    }
    for (t, n) in [("t1", 1), ("t2", 2), ("t3", 3), ("t4", 4)] {
        assert_eq!(send_spans(&s, t, n).await.status, 200);
    }
    let text = metrics_text(&s).await;
    let accepted: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("telemetryflow_receiver_accepted_spans_total"))
        .collect();
    assert_eq!(
        accepted,
        [
            r#"telemetryflow_receiver_accepted_spans_total{tenant="t1"} 1"#,
            r#"telemetryflow_receiver_accepted_spans_total{tenant="t2"} 2"#,
            r#"telemetryflow_receiver_accepted_spans_total{tenant="_other"} 7"#,
        ]
    );
    assert!(!text.contains("tenant=\"e1\""), "{text}");
}

#[tokio::test]
async fn a_tenant_runs_at_most_max_concurrent_queries_and_others_are_not_held_up() {
    let s = std::sync::Arc::new(
        TestServer::start_with(|c| {
            c.query.timeout_secs = NonZero::new(3).unwrap();
            c.limits.tenants = tenant_limits(
                "acme",
                TenantLimitSettings {
                    max_concurrent_queries: Some(1),
                    ..Default::default()
                },
            );
        })
        .await,
    );
    // A query that runs until its timeout holds acme's one slot.
    let heavy = {
        let s = std::sync::Arc::clone(&s);
        tokio::spawn(async move {
            s.sql_raw(
                "acme",
                "SELECT count(*) FROM generate_series(1, 100000000000) a(v) WHERE v % 7 = 3",
                "json",
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, body) = s.sql_raw("acme", "SELECT 1", "json").await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("limits.tenants.acme.max_concurrent_queries = 1 queries"),
        "{body}"
    );
    // Another tenant is not limited by acme's slot.
    assert_eq!(s.sql_raw("beta", "SELECT 1", "json").await.0, 200);
    let (status, _) = heavy.await.unwrap();
    assert_eq!(status, 503, "the heavy query timed out");
    // The slot is free again.
    assert_eq!(s.sql_raw("acme", "SELECT 1", "json").await.0, 200);
    let text = metrics_text(&s).await;
    let line =
        r#"telemetryflow_limit_refusals_total{tenant="acme",limit="max_concurrent_queries"} 1"#;
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
}

/// Opens a connection that sends the headers of an OTLP/HTTP request
/// declaring `declared` bytes and a little of the body, then stalls.
async fn stalled_request(s: &TestServer, declared: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = s.http.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {declared}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[0x0a; 100]).await.unwrap();
    tcp
}

async fn in_flight(s: &TestServer) -> u64 {
    crate::support::metric_value(&s.http, "telemetryflow_in_flight_request_bytes")
        .await
        .parse()
        .unwrap()
}

#[tokio::test]
async fn bodies_in_flight_count_against_the_memory_budget_before_they_are_read() {
    let s = TestServer::start_with(|c| {
        c.buffer.max_buffered_bytes = NonZero::new(16 << 20).unwrap();
        c.server.max_request_bytes = NonZero::new(8 << 20).unwrap();
    })
    .await;
    // One request is always admitted; a body in flight counts four times
    // its bytes (its working set while it is decoded and written).
    let stalled = stalled_request(&s, 3 << 20).await;
    for _ in 0..100 {
        if in_flight(&s).await >= 12 << 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight(&s).await, 12 << 20);
    // A second that declares 2 MB (8 MB held) is refused before its body
    // is read.
    let big = traces(
        "svc",
        vec![{
            let mut sp = span(1, 1, "big", T0);
            sp.attributes = vec![kv_str("blob", &"x".repeat(2 << 20))];
            sp
        }],
    )
    .encode_to_vec();
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        big.clone(),
        None,
    )
    .await;
    assert_eq!(r.status, 429);
    let status =
        telemetryflow::infrastructure::otlp::status::RpcStatus::decode(&r.body[..]).unwrap();
    assert_eq!(status.code, 14, "UNAVAILABLE: {}", status.message);
    assert!(
        status
            .message
            .contains("over the memory budget of 16777216 bytes (buffer.max_buffered_bytes)"),
        "{}",
        status.message
    );
    // gRPC, which declares no size: refused as its frames arrive.
    let mut client = TraceServiceClient::connect(s.grpc.clone())
        .await
        .unwrap()
        .max_encoding_message_size(16 << 20);
    let req = traces(
        "svc",
        vec![{
            let mut sp = span(1, 2, "big", T0);
            sp.attributes = vec![kv_str("blob", &"x".repeat(2 << 20))];
            sp
        }],
    );
    let e = client.export(req.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("buffer.max_buffered_bytes"), "{e:?}");
    // The stalled request gone, its reservation is returned: both pass.
    drop(stalled);
    for _ in 0..100 {
        if in_flight(&s).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight(&s).await, 0);
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        big,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    client.export(req).await.unwrap();
    assert_eq!(in_flight(&s).await, 0);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_its_reservation_returned_after_the_body_timeout() {
    use tokio::io::AsyncReadExt;
    let s = TestServer::start_with(|c| {
        c.server.body_read_timeout_secs = NonZero::new(1).unwrap();
    })
    .await;
    let mut stalled = stalled_request(&s, 1 << 20).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stalled.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the server answers within the body timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_read_timeout_secs"), "{answer}");
    assert_eq!(in_flight(&s).await, 0);
}

#[tokio::test]
async fn headers_that_never_finish_are_dropped_and_connections_beyond_the_limit_wait() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.server.header_read_timeout_secs = NonZero::new(1).unwrap();
        c.server.max_connections = NonZero::new(2).unwrap();
    })
    .await;
    let addr = s.http.trim_start_matches("http://").to_owned();
    // Two connections that send half a request line hold both slots.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"GET /healthz HT").await.unwrap();
        slow.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A third client is not served while they hold them...
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("{}/healthz", s.http);
    assert!(
        client.get(&url).send().await.is_err(),
        "served beyond max_connections"
    );
    // ...and is once the header timeout has closed them.
    for tcp in &mut slow {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tcp.read_to_end(&mut rest),
        )
        .await;
        assert!(closed.is_ok(), "the header timeout closes the connection");
    }
    let ok = reqwest::get(&url).await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_tenant_query_memory_limit_holds_its_queries_below_the_servers() {
    let s = TestServer::start_with(|c| {
        c.limits.tenants = tenant_limits(
            "acme",
            TenantLimitSettings {
                query_memory_mb: Some(1),
                ..Default::default()
            },
        );
    })
    .await;
    let sql = "SELECT length(repeat('x', 4000000)) AS n";
    let (status, body) = s.sql_raw("acme", sql, "json").await;
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("limits.tenants.acme.query_memory_mb = 1 MB"),
        "{body}"
    );
    // The same query is within the server's limit for another tenant.
    let rows = s.sql_as("beta", sql).await;
    datafusion::assert_batches_eq!(
        [
            "+---------+",
            "| n       |",
            "+---------+",
            "| 4000000 |",
            "+---------+"
        ],
        &rows
    );
}
