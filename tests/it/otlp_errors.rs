//! Every error status of the OTLP receivers and the SQL API.

use std::num::NonZero;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use telemetryflow::infrastructure::otlp::status::RpcStatus;
use tonic::codec::CompressionEncoding;

use crate::fixtures::*;
use crate::otlp_http::{gzip, post};
use crate::support::TestServer;

fn rpc_status(body: &[u8]) -> RpcStatus {
    RpcStatus::decode(body).expect("a google.rpc.Status body")
}

#[tokio::test]
async fn http_error_statuses() {
    let s = TestServer::start_with(|c| c.server.max_request_bytes = NonZero::new(1 << 20).unwrap())
        .await;
    let url = format!("{}/v1/traces", s.http);

    // Undecodable protobuf → 400 with a google.rpc.Status.
    let r = post(
        &url,
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let st = rpc_status(&r.body);
    assert_eq!(st.code, 3);
    assert!(
        st.message.contains("invalid OTLP/protobuf traces request"),
        "{}",
        st.message
    );

    // Bad JSON → 400 with a JSON Status naming the problem.
    let r = post(
        &url,
        "application/json",
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], 3);
    assert!(v["message"].as_str().unwrap().contains("traceId"), "{v}");

    // Corrupt gzip → 400.
    let r = post(
        &url,
        "application/x-protobuf",
        Some("gzip"),
        b"not gzip at all".to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(rpc_status(&r.body).message.contains("gzip"));

    // Unknown content encoding → 415.
    let r = post(&url, "application/x-protobuf", Some("br"), vec![], None).await;
    assert_eq!(r.status, 415);

    // Wrong content type → 415.
    let r = post(&url, "text/plain", None, b"hello".to_vec(), None).await;
    assert_eq!(r.status, 415);
    assert!(rpc_status(&r.body).message.contains("text/plain"));

    // Wrong method → 405.
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    // Unknown path → 404.
    let r = post(
        &format!("{}/v1/profiles-or-whatever", s.http),
        "application/x-protobuf",
        None,
        vec![],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(rpc_status(&r.body).code, 5);

    // A gzip bomb: 40 KiB compressed, 40 MiB inflated, limit 1 MiB → 413.
    let bomb = gzip(&vec![0u8; 40 << 20]);
    assert!(bomb.len() < 100 << 10);
    let r = post(&url, "application/x-protobuf", Some("gzip"), bomb, None).await;
    assert_eq!(r.status, 413);
    assert!(
        rpc_status(&r.body)
            .message
            .contains("larger than 1048576 bytes")
    );

    // An uncompressed body over the limit → 413, a google.rpc.Status in
    // the request's format naming the setting.
    let r = post(
        &url,
        "application/x-protobuf",
        None,
        vec![0u8; (1 << 20) + 1],
        None,
    )
    .await;
    assert_eq!(r.status, 413);
    let status = rpc_status(&r.body);
    assert_eq!(status.code, 8);
    assert!(
        status.message.contains("server.max_request_bytes"),
        "{}",
        status.message
    );
    let r = post(
        &url,
        "application/json",
        None,
        vec![b' '; (1 << 20) + 1],
        None,
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], 8, "{v}");

    // A bad tenant header → 400.
    let r = post(&url, "application/x-protobuf", None, vec![], Some("../etc")).await;
    assert_eq!(r.status, 400);
    assert!(rpc_status(&r.body).message.contains("x-tenant-id"));

    // Empty requests succeed.
    for (ct, body) in [
        ("application/x-protobuf", vec![]),
        ("application/json", b"{}".to_vec()),
    ] {
        for path in ["traces", "metrics", "logs"] {
            let r = post(
                &format!("{}/v1/{path}", s.http),
                ct,
                None,
                body.clone(),
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{path} {ct}");
        }
    }

    // Nothing of the failed requests was stored.
    assert_eq!(
        s.sql("SELECT count(*) AS n FROM otel_traces").await[0].num_rows(),
        1
    );
    s.wait_for_count("SELECT count(*) FROM otel_traces", 0)
        .await;
}

#[tokio::test]
async fn grpc_limits_are_resource_exhausted() {
    let s = TestServer::start_with(|c| c.server.max_request_bytes = NonZero::new(1 << 20).unwrap())
        .await;
    let mut client = TraceServiceClient::connect(s.grpc.clone())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    // A compressed message that inflates past the limit.
    let mut big = span(1, 1, "big", T0);
    big.attributes.push(kv_str("blob", &"x".repeat(2 << 20)));
    let err = client
        .export(traces("svc", vec![big.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    // The same message uncompressed.
    let mut plain = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let err = plain.export(traces("svc", vec![big])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    // A bad tenant is INVALID_ARGUMENT; an empty request is fine.
    let mut req = tonic::Request::new(ExportTraceServiceRequest::default());
    req.metadata_mut()
        .insert("x-tenant-id", "bad tenant".parse().unwrap());
    assert_eq!(
        plain.export(req).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    plain
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap();
    s.wait_for_count("SELECT count(*) FROM otel_traces", 0)
        .await;
}

#[tokio::test]
async fn cors_allows_configured_origins() {
    let s = TestServer::start_with(|c| {
        c.server.cors_allowed_origins = vec!["https://app.example".into()]
    })
    .await;
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/v1/traces", s.http))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/v1/traces", s.http))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

/// A request that declares a body over the limit is refused from its
/// headers, before a byte of the body is sent; one sent in chunks, without
/// a length, is refused at the limit. Both answer a google.rpc.Status.
#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.server.max_request_bytes = NonZero::new(1 << 20).unwrap())
        .await;
    let addr = s.http.trim_start_matches("http://").to_owned();
    let exchange = |head: String, body: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
            conn.write_all(head.as_bytes()).await.unwrap();
            // Whatever of the body the server takes; it may close first.
            let _ = conn.write_all(&body).await;
            let mut answer = Vec::new();
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                conn.read_to_end(&mut answer),
            )
            .await;
            assert!(read.is_ok(), "no answer within 10 s");
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    // 100 MB declared, nothing sent: answered at once.
    let answer = exchange(
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n".into(),
        Vec::new(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("server.max_request_bytes"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    // Chunked, no length: refused at the limit.
    let chunk = vec![b'x'; (1 << 20) + 16];
    let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
    body.extend_from_slice(&chunk);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = exchange(
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".into(),
        body,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("server.max_request_bytes"),
        "{}",
        &answer[..answer.len().min(400)]
    );
}

/// A gRPC message flagged compressed that does not decompress is the
/// client's fault: INVALID_ARGUMENT, not INTERNAL.
#[tokio::test]
async fn a_grpc_body_that_does_not_decompress_is_invalid_argument() {
    let s = TestServer::start().await;
    let client = reqwest_012::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let garbage = b"this is not gzip at all";
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(garbage.len() as u32).to_be_bytes());
    frame.extend_from_slice(garbage);
    let resp = client
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            s.grpc
        ))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    let code = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(code.as_deref(), Some("3"), "{:?}", resp.headers());
}
