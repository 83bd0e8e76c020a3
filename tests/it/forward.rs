//! The sidecar collector: a server with `persist = false` forwarding to a
//! central server (both real, on ephemeral ports), a real binary killed
//! mid-stream, and standard OTLP receivers (a tonic gRPC service and an
//! HTTP server that answers 429 / 400 / partial success) upstream.

use std::collections::BTreeMap;
use std::num::NonZero;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::util::pretty::pretty_format_batches;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{ServerProcess, TestServer, first_value, metric_value};
use telemetryflow::config::ForwardSettings;
use telemetryflow::domain::OnFull;
use telemetryflow::domain::telemetry::Signal;
use telemetryflow::infrastructure::otlp::export::Compression::{self, Gzip, Zstd};
use telemetryflow::infrastructure::otlp::export::Protocol::{self, Grpc, HttpProtobuf};

const BIN: &str = env!("CARGO_BIN_EXE_telemetryflow");

const TABLES: [&str; 7] = [
    "otel_traces",
    "otel_logs",
    "otel_metrics_gauge",
    "otel_metrics_sum",
    "otel_metrics_histogram",
    "otel_metrics_exp_histogram",
    "otel_metrics_summary",
];

pub(crate) fn forward_to(
    name: &str,
    endpoint: &str,
    protocol: Protocol,
    compression: Compression,
) -> ForwardSettings {
    ForwardSettings {
        name: name.into(),
        endpoint: endpoint.into(),
        protocol,
        compression,
        batch_age_ms: NonZero::new(20).unwrap(),
        retry_initial_ms: NonZero::new(20).unwrap(),
        retry_max_secs: NonZero::new(1).unwrap(),
        ..ForwardSettings::default()
    }
}

/// Every row of every table the tenant has, each table's rows as sorted
/// text lines (all columns; a value with line breaks spans several).
async fn all_rows(s: &TestServer, tenant: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in TABLES {
        let batches = s.sql_as(tenant, &format!("SELECT * FROM {table}")).await;
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(str::to_owned)
            .collect();
        lines.sort();
        out.insert(table, lines);
    }
    out
}

async fn count(s: &TestServer, tenant: &str, table: &str) -> u64 {
    first_value(
        &s.sql_as(tenant, &format!("SELECT count(*) FROM {table}"))
            .await,
    )
    .parse()
    .unwrap()
}

/// Waits (up to 30 s) until `tenant` has `want` rows in `table`.
async fn wait_rows(s: &TestServer, tenant: &str, table: &str, want: u64) {
    let mut last = 0;
    for _ in 0..600 {
        last = count(s, tenant, table).await;
        if last >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, want, "{table} of {tenant}");
}

async fn send(http: &str, signal: &str, body: Vec<u8>, tenant: &str) -> u16 {
    post(
        &format!("{http}/v1/{signal}"),
        "application/x-protobuf",
        None,
        body,
        Some(tenant),
    )
    .await
    .status
}

/// What the sidecar received arrives at the central, field for field, over
/// gRPC (zstd) and HTTP/protobuf (gzip), with its tenant and workspace; the
/// sidecar stores nothing itself.
#[tokio::test]
async fn a_sidecar_forwards_every_signal_field_for_field_with_its_tenant() {
    let grpc_central = TestServer::start().await;
    let http_central = TestServer::start().await;
    let reference = TestServer::start().await;
    let (g, h) = (grpc_central.grpc.clone(), http_central.http.clone());
    let mut sidecar = TestServer::start_with(|c| {
        c.storage.persist = false;
        c.forward = vec![
            forward_to("grpc-central", &g, Grpc, Zstd),
            forward_to("http-central", &h, HttpProtobuf, Gzip),
        ];
    })
    .await;
    let requests = [
        (
            "traces",
            telemetryflow::synth::every_field::traces(1).encode_to_vec(),
        ),
        (
            "traces",
            telemetryflow::synth::every_field::traces(2).encode_to_vec(),
        ),
        (
            "metrics",
            telemetryflow::synth::every_field::metrics(3).encode_to_vec(),
        ),
        (
            "logs",
            telemetryflow::synth::every_field::logs(4).encode_to_vec(),
        ),
    ];
    for (signal, body) in &requests {
        for target in [&sidecar, &reference] {
            assert_eq!(send(&target.http, signal, body.clone(), "acme").await, 200);
        }
    }
    // A second tenant and a workspace, through the sidecar only.
    let mut synth = telemetryflow::synth::Synth::new(5, T0);
    let other = synth.logs(7).encode_to_vec();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/logs", sidecar.http))
        .header("content-type", "application/x-protobuf")
        .header("x-tenant-id", "beta")
        .header("x-workspace-id", "shop")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let want = all_rows(&reference, "acme").await;
    for table in TABLES {
        let rows = count(&reference, "acme", table).await;
        wait_rows(&grpc_central, "acme", table, rows).await;
        wait_rows(&http_central, "acme", table, rows).await;
    }
    assert!(
        want.values().all(|rows| !rows.is_empty()),
        "every table has rows"
    );
    assert_eq!(all_rows(&grpc_central, "acme").await, want);
    assert_eq!(all_rows(&http_central, "acme").await, want);
    for central in [&grpc_central, &http_central] {
        wait_rows(central, "beta", "otel_logs", 7).await;
        let b = central
            .sql_as("beta", "SELECT DISTINCT workspace_id FROM otel_logs")
            .await;
        assert_eq!(first_value(&b), "shop");
        assert_eq!(count(central, "default", "otel_logs").await, 0);
    }
    // Nothing stored on the sidecar.
    for table in TABLES {
        assert_eq!(count(&sidecar, "acme", table).await, 0, "{table}");
    }
    let sent = metric_value(
        &sidecar.http,
        "telemetryflow_forward_sent_items_total{forwarder=\"grpc-central\",signal=\"log_records\"}",
    )
    .await;
    let logs = count(&reference, "acme", "otel_logs").await;
    assert_eq!(sent, (logs + 7).to_string());
    sidecar.shutdown().await;
}

fn sidecar_process(dir: &Path, forward: &str, crash_at: Option<&str>) -> ServerProcess {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .env("TELEMETRYFLOW_STORAGE_PERSIST", "false")
        .env("TELEMETRYFLOW_FORWARD", forward)
        .env("TELEMETRYFLOW_WAL_SEGMENT_BYTES", "65536")
        .env_remove("TFLOW_CRASH_AT");
    if let Some(c) = crash_at {
        cmd.env("TFLOW_CRASH_AT", c);
    }
    ServerProcess::spawn(cmd)
}

/// One log record whose body names request `n`.
fn numbered(n: u32) -> Vec<u8> {
    logs(
        "svc",
        vec![log(T0 + u64::from(n) * SEC, 9, &format!("req-{n}"))],
    )
    .encode_to_vec()
}

/// How often each request's record is stored at the central.
async fn stored_counts(central: &TestServer) -> BTreeMap<u32, u64> {
    let b = central
        .sql_as(
            "acme",
            "SELECT body, count(*) AS n FROM otel_logs GROUP BY body",
        )
        .await;
    let mut out = BTreeMap::new();
    for batch in &b {
        let body = batch.column(0);
        let n = batch.column(1);
        for i in 0..batch.num_rows() {
            let body = datafusion::arrow::util::display::array_value_to_string(body, i).unwrap();
            let n = datafusion::arrow::util::display::array_value_to_string(n, i).unwrap();
            let req: u32 = body.trim_start_matches("req-").parse().unwrap();
            out.insert(req, n.parse().unwrap());
        }
    }
    out
}

/// Requests `range` sent to the sidecar; returns the acknowledged ones.
async fn send_numbered(http: &str, range: std::ops::Range<u32>) -> Vec<u32> {
    let mut acked = Vec::new();
    for n in range {
        let r = reqwest::Client::new()
            .post(format!("{http}/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .header("x-tenant-id", "acme")
            .body(numbered(n))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().as_u16() == 200) {
            acked.push(n);
        }
    }
    acked
}

/// Waits until the central holds every acked request, then checks none is
/// there twice and nothing unacked beyond `sent` appears.
async fn check_exactly_once(central: &TestServer, acked: &[u32], sent: u32) {
    let mut got = BTreeMap::new();
    for _ in 0..600 {
        got = stored_counts(central).await;
        if acked.iter().all(|n| got.contains_key(n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<_> = acked.iter().filter(|n| !got.contains_key(n)).collect();
    assert!(missing.is_empty(), "acked but never arrived: {missing:?}");
    let twice: Vec<_> = got.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    assert!(got.keys().all(|n| *n < sent), "{got:?}");
}

/// The sidecar dies right after the central acknowledged a batch, before
/// its cursor moved: restarted, it sends that batch again with the same
/// key, and the central stores it once. Then a SIGKILL mid-stream: nothing
/// acked is lost, nothing is stored twice.
#[tokio::test]
async fn a_sidecar_killed_mid_stream_loses_nothing_and_duplicates_nothing() {
    let central = TestServer::start().await;
    let forward = format!(
        "[{{name = \"central\", endpoint = \"{}\", protocol = \"http/protobuf\", batch_age_ms = 5}}]",
        central.http
    );
    let dir = tempfile::tempdir().unwrap();
    let mut sidecar = sidecar_process(dir.path(), &forward, Some("after_forward_ack:3"));
    sidecar.ready().await;
    let mut acked = send_numbered(&sidecar.http, 0..40).await;
    // The third delivered batch kills it.
    for _ in 0..400 {
        if sidecar.child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        sidecar.child.try_wait().unwrap().is_some(),
        "the crash point was never reached; log:\n{}",
        sidecar.log()
    );
    let before = stored_counts(&central).await;
    assert!(
        !before.is_empty(),
        "batches were delivered before the crash"
    );

    let mut sidecar = sidecar_process(dir.path(), &forward, None);
    sidecar.ready().await;
    // Kill it while requests keep coming, after some were acked.
    let second: Arc<Mutex<Vec<u32>>> = Arc::default();
    let sender = {
        let (http, second) = (sidecar.http.clone(), Arc::clone(&second));
        tokio::spawn(async move {
            for n in 40..400 {
                if send_numbered(&http, n..n + 1).await == [n] {
                    second.lock().unwrap().push(n);
                }
            }
        })
    };
    for _ in 0..1200 {
        if second.lock().unwrap().len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &sidecar.child.id().to_string()])
        .status();
    let _ = sidecar.child.wait();
    sender.await.unwrap();
    let second = second.lock().unwrap().clone();
    assert!(second.len() >= 30 && second.len() < 360, "{}", second.len());
    acked.extend(second);
    let mut sidecar = sidecar_process(dir.path(), &forward, None);
    sidecar.ready().await;
    acked.extend(send_numbered(&sidecar.http, 400..420).await);
    check_exactly_once(&central, &acked, 420).await;
    let dups = metric_value(
        &central.http,
        "telemetryflow_receiver_duplicate_items_total{tenant=\"acme\",signal=\"log_records\"}",
    )
    .await;
    assert!(
        dups.parse::<u64>().unwrap_or(0) >= 1,
        "the resent batch was recognised: {dups:?}"
    );
}

/// The central stopped for a while and restarted on the same address and
/// data: the sidecar queues meanwhile (ingest and /readyz unaffected) and
/// everything arrives once.
#[tokio::test]
async fn a_central_down_for_a_while_gets_everything_once() {
    let mut central = TestServer::start().await;
    let central_dir = tempfile::tempdir().unwrap();
    let (grpc_addr, http_addr) = {
        let s = central.server.as_ref().unwrap();
        (s.grpc_addr, s.http_addr)
    };
    central.shutdown().await;
    let restart_central = || {
        let mut c = crate::support::test_config(central_dir.path());
        c.server.grpc_addr = grpc_addr;
        c.server.http_addr = http_addr;
        c
    };
    let central_grpc = format!("http://{grpc_addr}");
    let mut sidecar = TestServer::start_with(|c| {
        c.storage.persist = false;
        c.forward = vec![forward_to("central", &central_grpc, Grpc, Gzip)];
    })
    .await;
    // The central is down: requests are still acknowledged, the sidecar ready.
    let acked = send_numbered(&sidecar.http, 0..30).await;
    assert_eq!(acked.len(), 30);
    let ready = reqwest::get(format!("{}/readyz", sidecar.http))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let queued: u64 = metric_value(
        &sidecar.http,
        "telemetryflow_forward_queue_records{forwarder=\"central\"}",
    )
    .await
    .parse()
    .unwrap();
    assert!(queued > 0);
    // Up again.
    let dir = tempfile::tempdir_in(central_dir.path()).unwrap();
    let central = TestServer::from_config(restart_central(), dir, None).await;
    let mut acked = acked;
    acked.extend(send_numbered(&sidecar.http, 30..60).await);
    check_exactly_once(&central, &acked, 60).await;
    assert_eq!(acked.len(), 60);
    let retries: u64 = metric_value(
        &sidecar.http,
        "telemetryflow_forward_retries_total{forwarder=\"central\"}",
    )
    .await
    .parse()
    .unwrap();
    assert!(retries > 0);
    sidecar.shutdown().await;
}

/// An answer: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);
/// A request seen: its headers and decoded body.
type Seen<R> = Arc<Mutex<Vec<(BTreeMap<String, String>, R)>>>;

/// A standard OTLP/HTTP receiver upstream that answers from a script:
/// records each request's headers and decoded body.
#[derive(Clone, Default)]
struct ScriptedUpstream {
    answers: Arc<Mutex<Vec<Answer>>>,
    seen: Seen<ExportLogsServiceRequest>,
}

async fn scripted_logs(
    axum::extract::State(up): axum::extract::State<ScriptedUpstream>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = match headers.get("content-encoding").map(|v| v.to_str().unwrap()) {
        Some("zstd") => zstd::decode_all(&body[..]).unwrap(),
        Some(other) => panic!("unexpected encoding {other}"),
        None => body.to_vec(),
    };
    let req = ExportLogsServiceRequest::decode(&body[..]).unwrap();
    let h = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    up.seen.lock().unwrap().push((h, req));
    let next = {
        let mut a = up.answers.lock().unwrap();
        (!a.is_empty()).then(|| a.remove(0))
    };
    let (status, extra, body) = next.unwrap_or((200, Vec::new(), Vec::new()));
    let mut resp = (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/x-protobuf")],
        body,
    )
        .into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

/// 429 with `Retry-After` is retried (after the delay), 400 is given up
/// (counted as failed), partial success is counted; the configured headers
/// and the tenant travel with each request.
#[tokio::test]
async fn an_upstream_answering_429_400_and_partial_success_is_handled_as_the_spec_says() {
    let up = ScriptedUpstream::default();
    let partial = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 1,
            error_message: "one too old".into(),
        }),
    }
    .encode_to_vec();
    *up.answers.lock().unwrap() = vec![
        (429, vec![("retry-after".into(), "1".into())], Vec::new()),
        (200, Vec::new(), Vec::new()),
        (400, Vec::new(), b"bad data".to_vec()),
        (200, Vec::new(), partial),
    ];
    let app = axum::Router::new()
        .route("/v1/logs", axum::routing::post(scripted_logs))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut sidecar = TestServer::start_with(|c| {
        c.storage.persist = false;
        let mut f = forward_to("plain", &format!("http://{addr}/"), HttpProtobuf, Zstd);
        f.headers
            .insert("Authorization".into(), "Bearer s3cret".into());
        c.forward = vec![f];
    })
    .await;
    let started = std::time::Instant::now();
    for n in 0..3u32 {
        let body = logs(
            "svc",
            vec![log(T0 + u64::from(n), 9, &format!("b{n}")), log(T0, 9, "x")],
        );
        assert_eq!(
            send(&sidecar.http, "logs", body.encode_to_vec(), "acme").await,
            200
        );
        // One batch per request: wait until it is delivered.
        let want = [2, 3, 4][n as usize];
        for _ in 0..200 {
            if up.seen.lock().unwrap().len() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(up.seen.lock().unwrap().len(), want, "request {n}");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let seen = up.seen.lock().unwrap().clone();
    let bodies: Vec<String> = seen
        .iter()
        .map(|(_, r)| {
            let rec = &r.resource_logs[0].scope_logs[0].log_records[0];
            format!("{:?}", rec.body.as_ref().unwrap().value)
        })
        .collect();
    assert!(
        bodies[0].contains("b0") && bodies[1].contains("b0"),
        "{bodies:?}"
    );
    for (headers, _) in &seen {
        assert_eq!(headers["x-tenant-id"], "acme");
        assert_eq!(headers["authorization"], "Bearer s3cret");
        assert_eq!(headers["content-encoding"], "zstd");
        assert!(headers["x-telemetryflow-batch"].contains('/'));
    }
    let m = |name: &'static str| {
        let http = sidecar.http.clone();
        async move { metric_value(&http, name).await }
    };
    assert_eq!(
        m("telemetryflow_forward_sent_items_total{forwarder=\"plain\",signal=\"log_records\"}")
            .await,
        "3"
    );
    assert_eq!(
        m("telemetryflow_forward_failed_items_total{forwarder=\"plain\",signal=\"log_records\"}")
            .await,
        "3"
    );
    assert_eq!(
        m("telemetryflow_forward_retries_total{forwarder=\"plain\"}").await,
        "1"
    );
    sidecar.shutdown().await;
}

/// A standard OTLP/gRPC receiver (a tonic service) upstream.
#[derive(Clone, Default)]
struct GrpcUpstream {
    seen: Seen<ExportTraceServiceRequest>,
}

#[tonic::async_trait]
impl TraceService for GrpcUpstream {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        self.seen
            .lock()
            .unwrap()
            .push((headers, request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn a_sidecar_forwards_to_a_standard_grpc_receiver() {
    let up = GrpcUpstream::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(up.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    let mut sidecar = TestServer::start_with(|c| {
        c.storage.persist = false;
        c.forward = vec![ForwardSettings {
            signals: vec![Signal::Traces],
            ..forward_to("otel", &format!("http://{addr}"), Grpc, Gzip)
        }];
    })
    .await;
    let mut synth = telemetryflow::synth::Synth::new(9, T0);
    let req = synth.traces(25);
    let spans: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(
        send(&sidecar.http, "traces", req.encode_to_vec(), "acme").await,
        200
    );
    // Logs are not this forwarder's: passed over.
    let l = logs("svc", vec![log(T0, 9, "x")]).encode_to_vec();
    assert_eq!(send(&sidecar.http, "logs", l, "acme").await, 200);
    let mut got = 0;
    for _ in 0..200 {
        got = up
            .seen
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, r)| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum::<usize>();
        if got >= spans {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(got, spans);
    assert!(
        up.seen
            .lock()
            .unwrap()
            .iter()
            .all(|(h, _)| h.get("x-tenant-id").map(String::as_str) == Some("acme"))
    );
    sidecar.shutdown().await;
}

/// A full queue: `backpressure` refuses writes retryably (the sidecar stays
/// ready); `drop_oldest` keeps accepting and counts what it gave up.
#[tokio::test]
async fn full_queues_refuse_or_drop_as_configured() {
    // Nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for (policy, refused) in [(OnFull::Backpressure, true), (OnFull::DropOldest, false)] {
        let mut sidecar = TestServer::start_with(|c| {
            c.storage.persist = false;
            c.forward = vec![ForwardSettings {
                max_queue_bytes: NonZero::new(4_000).unwrap(),
                on_full: policy,
                ..forward_to("central", &dead, HttpProtobuf, Compression::None)
            }];
        })
        .await;
        let mut statuses = Vec::new();
        for n in 0..60 {
            statuses.push(send(&sidecar.http, "logs", numbered(n), "acme").await);
        }
        assert_eq!(statuses.contains(&429), refused, "{policy:?}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 429));
        let ready = reqwest::get(format!("{}/readyz", sidecar.http))
            .await
            .unwrap();
        assert_eq!(ready.status().as_u16(), 200, "{policy:?}");
        let dropped: u64 = metric_value(
            &sidecar.http,
            "telemetryflow_forward_dropped_items_total{forwarder=\"central\",signal=\"log_records\"}",
        )
        .await
        .parse()
        .unwrap();
        assert_eq!(dropped > 0, !refused, "{policy:?}: dropped {dropped}");
        sidecar.shutdown().await;
    }
}

/// `telemetryflow replay` of a stopped server's data directory into a fresh
/// server yields the same rows, field for field, for the time range asked:
/// nothing outside it, every tenant header and workspace kept.
#[tokio::test]
async fn replay_sends_a_stored_range_to_a_fresh_server_field_for_field() {
    let mut source = TestServer::start().await;
    let reference = TestServer::start().await;
    let target = TestServer::start().await;
    let mut synth = telemetryflow::synth::Synth::new(11, T0);
    let in_range = [
        (
            "traces",
            telemetryflow::synth::every_field::traces(21).encode_to_vec(),
        ),
        (
            "metrics",
            telemetryflow::synth::every_field::metrics(22).encode_to_vec(),
        ),
        (
            "logs",
            telemetryflow::synth::every_field::logs(23).encode_to_vec(),
        ),
        ("traces", synth.traces(40).encode_to_vec()),
        ("metrics", synth.metrics(40).encode_to_vec()),
    ];
    for (i, (signal, body)) in in_range.iter().enumerate() {
        for s in [&source, &reference] {
            assert_eq!(send(&s.http, signal, body.clone(), "acme").await, 200);
        }
        if i == 2 {
            source.flush().await;
        }
    }
    // In another workspace, and outside the range (2020), and another tenant.
    let shop = logs("svc", vec![log(T0, 9, "in shop")]).encode_to_vec();
    for s in [&source, &reference] {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/logs", s.http))
            .header("content-type", "application/x-protobuf")
            .header("x-tenant-id", "acme")
            .header("x-workspace-id", "shop")
            .body(shop.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let old = logs("svc", vec![log(1_600_000_000 * SEC, 9, "too old")]).encode_to_vec();
    assert_eq!(send(&source.http, "logs", old, "acme").await, 200);
    let other = logs("svc", vec![log(T0, 9, "beta's")]).encode_to_vec();
    assert_eq!(send(&source.http, "logs", other, "beta").await, 200);
    let dir = source.dir.path().to_owned();
    source.shutdown().await;

    let to = target.http.clone();
    let out = tokio::task::spawn_blocking(move || {
        crate::support::run_cli(
            &[
                "replay".as_ref(),
                "--data-dir".as_ref(),
                dir.as_os_str(),
                "--tenant".as_ref(),
                "acme".as_ref(),
                "--start".as_ref(),
                "2023-01-01T00:00:00Z".as_ref(),
                "--end".as_ref(),
                "2030-01-01T00:00:00Z".as_ref(),
                "--to".as_ref(),
                to.as_ref(),
                "--batch-items".as_ref(),
                "7".as_ref(),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut want_items = 0;
    for table in TABLES {
        want_items += count(&reference, "acme", table).await;
    }
    assert_eq!(summary["items"], want_items, "{out}");
    assert_eq!(summary["rejected"], 0, "{out}");
    assert_eq!(
        all_rows(&target, "acme").await,
        all_rows(&reference, "acme").await
    );
    assert_eq!(count(&target, "beta", "otel_logs").await, 0);
}
