//! One request must not kill or stall the server: SQL beyond the size limits
//! is refused with a 400 (the process stays up), heavy queries do not delay
//! OTLP acknowledgements, invalid tenant headers are refused on every
//! protocol, and undecodable gRPC messages are the client's fault.

use std::num::NonZero;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{TestServer, first_value};

fn error_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v["error"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

async fn healthy(s: &TestServer) -> bool {
    reqwest::get(format!("{}/healthz", s.http))
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}

#[tokio::test]
async fn sql_beyond_the_size_limits_is_a_400_and_the_server_stays_up() {
    // Planning a 1,000-level expression takes a while in a debug build on a
    // busy machine (query threads run at a lower priority than the rest):
    // this test is about answers, not speed.
    let s = TestServer::start_with(|c| c.query.timeout_secs = NonZero::new(600).unwrap()).await;
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        traces("svc", vec![span(1, 1, "op", T0)]).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);

    let sum = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
    let chain = |n: usize, op: &str| {
        let terms: Vec<String> = (0..n).map(|i| format!("span_name = 'n{i}'")).collect();
        format!("SELECT count(*) FROM otel_traces WHERE {}", terms.join(op))
    };
    let concat = |n: usize| format!("SELECT {}", vec!["'a'"; n].join(" || "));
    let in_list = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        format!(
            "SELECT count(*) FROM otel_traces WHERE duration_ns IN ({})",
            items.join(",")
        )
    };
    for (sql, limit) in [
        (sum(5_000), "query.max_expr_depth"),
        (chain(5_000, " OR "), "query.max_expr_depth"),
        (chain(5_000, " AND "), "query.max_expr_depth"),
        (concat(5_000), "query.max_expr_depth"),
        (in_list(20_000), "query.max_in_list"),
        (in_list(1_000_000), "query.max_sql_bytes"),
    ] {
        let (status, body) = s.sql_raw("default", &sql, "json").await;
        let error = error_of(&body);
        assert_eq!(status, 400, "{}…: {error}", &sql[..40]);
        assert!(error.contains(limit), "{}…: {error}", &sql[..40]);
        assert!(healthy(&s).await, "server down after {}…", &sql[..40]);
    }

    // Right at the limits, queries run and answer correctly.
    let started = Instant::now();
    let b = s.sql(&sum(1_000)).await;
    eprintln!(
        "a 1,000-level expression answered in {:?}",
        started.elapsed()
    );
    assert_eq!(first_value(&b), "1000");
    let b = s.sql(&chain(400, " OR ").replace("'n0'", "'op'")).await;
    assert_eq!(first_value(&b), "1");
    let b = s.sql(&in_list(10_000)).await;
    assert_eq!(first_value(&b), "0");
}

/// Sends one small trace request over HTTP and one over gRPC; returns the
/// slower acknowledgement.
async fn ack_latency(
    s: &TestServer,
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    n: u8,
) -> Duration {
    let started = Instant::now();
    let req = traces("ingest", vec![span(n, 1, "op", T0)]);
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let http = started.elapsed();
    let started = Instant::now();
    client.export(req).await.expect("gRPC export");
    http.max(started.elapsed())
}

#[tokio::test]
async fn heavy_queries_do_not_stall_ingest() {
    let s = TestServer::start_with(|c| c.query.timeout_secs = NonZero::new(4).unwrap()).await;
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    ack_latency(&s, &mut client, 0).await;

    // Two queries that run until their timeout, and two clients sending IN
    // lists that once planned for tens of seconds on the ingest threads.
    let heavy = "SELECT sum(a.value * b.value) FROM generate_series(1, 200000) AS a(value) \
                 CROSS JOIN generate_series(1, 200000) AS b(value)";
    let big_in = {
        let items: Vec<String> = (0..300_000).map(|i| i.to_string()).collect();
        format!(
            "SELECT count(*) FROM otel_traces WHERE duration_ns IN ({})",
            items.join(",")
        )
    };
    let started = Instant::now();
    let mut queries = Vec::new();
    for sql in [heavy.to_owned(), heavy.to_owned()] {
        let http = s.http.clone();
        queries.push(tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .post(format!("{http}/api/v2/sql"))
                .header("content-type", "application/json")
                .body(serde_json::json!({ "sql": sql }).to_string())
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), started.elapsed())
        }));
    }
    for _ in 0..2 {
        let (http, sql) = (s.http.clone(), big_in.clone());
        tokio::spawn(async move {
            for _ in 0..5 {
                let _ = reqwest::Client::new()
                    .post(format!("{http}/api/v2/sql"))
                    .header("content-type", "application/json")
                    .body(serde_json::json!({ "sql": sql }).to_string())
                    .send()
                    .await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    let mut n = 1u8;
    while queries.iter().any(|q| !q.is_finished()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "queries never ended"
        );
        worst = worst.max(ack_latency(&s, &mut client, n).await);
        assert!(healthy(&s).await);
        n = n.wrapping_add(1).max(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{n} acks while the queries ran, slowest {worst:?}");
    assert!(n > 5, "too few requests sent while the queries ran ({n})");
    assert!(
        worst < Duration::from_secs(1),
        "an OTLP request waited {worst:?} for its ack while queries ran"
    );
    for q in queries {
        let (status, took) = q.await.unwrap();
        assert_eq!(status, 503, "the heavy query should time out");
        assert!(
            took < Duration::from_secs(10),
            "timed out only after {took:?}"
        );
    }
}

#[tokio::test]
async fn a_tenant_header_that_is_not_an_id_is_refused_everywhere() {
    let s = TestServer::start().await;
    let body = traces("svc", vec![span(1, 1, "op", T0)]).encode_to_vec();
    for raw in [
        &b"\xc3\xbc"[..],
        b"acme\xff",
        b"a/b",
        b"acme\xc2\xa0",
        b"\xc2\xa0",
    ] {
        let value = reqwest::header::HeaderValue::from_bytes(raw).unwrap();
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/traces", s.http))
            .header("content-type", "application/x-protobuf")
            .header("x-tenant-id", value.clone())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{raw:?}");
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2/sql", s.http))
            .header("content-type", "application/json")
            .header("x-tenant-id", value.clone())
            .body(r#"{"sql":"SELECT count(*) FROM otel_traces"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{raw:?}");
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v2/services", s.http))
            .header("x-workspace-id", value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{raw:?}");

        let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
        let mut req = tonic::Request::new(traces("svc", vec![span(1, 1, "op", T0)]));
        req.metadata_mut().insert(
            "x-tenant-id",
            tonic::metadata::MetadataValue::try_from(raw).unwrap(),
        );
        let status = client.export(req).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{raw:?}: {status:?}"
        );
    }
    // Nothing was stored under any tenant, `default` included.
    s.wait_for_count("SELECT count(*) FROM otel_traces", 0)
        .await;
}

/// A message whose field 1 (`resource_spans`, a message) holds bytes that do
/// not decode as one.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    junk: Vec<u8>,
}

#[tokio::test]
async fn an_undecodable_grpc_message_is_invalid_argument() {
    let s = TestServer::start().await;
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Garbage, ExportTraceServiceResponse>::default();
    let status = grpc
        .unary(
            tonic::Request::new(Garbage {
                junk: vec![0xff, 0xff, 0xff, 0xff],
            }),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("invalid OTLP/protobuf request"),
        "{status:?}"
    );
    // HTTP answers the same bytes with 400.
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        Garbage {
            junk: vec![0xff, 0xff, 0xff, 0xff],
        }
        .encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
}
