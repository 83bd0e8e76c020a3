//! TLS on both listeners, with certificates made here (rcgen): OTLP/HTTP,
//! the query API and OTLP/gRPC over TLS; plain and untrusting clients
//! refused; mutual TLS; certificate files replaced while serving; and a
//! forwarder and `replay` verifying a TLS upstream against a given CA.

use std::net::SocketAddr;
use std::num::NonZero;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::assert_batches_sorted_eq;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use reqwest_012 as reqwest;
use tokio::io::AsyncWriteExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::fixtures::*;
use crate::support::TestServer;
use telemetryflow::config::ForwardSettings;
use telemetryflow::infrastructure::otlp::export::Protocol;
use telemetryflow::infrastructure::query::format::from_arrow_ipc;

/// The names a server certificate is for (the tests connect to the IP).
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate authority made for one test.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key, PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Leaf {
    fn identity(&self) -> String {
        format!("{}{}", self.cert, self.key)
    }
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf(&SERVER_NAMES, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The PEM files a server is configured with, in a directory of their own.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `leaf` as `cert.pem` and `key.pem`.
    fn server(&self, leaf: &Leaf) {
        self.write("key.pem", &leaf.key);
        self.write("cert.pem", &leaf.cert);
    }
}

/// A server with TLS on both listeners (and mutual TLS with `client_ca`).
async fn start_tls(files: &Files, client_ca: Option<&Path>) -> TestServer {
    let cert = files.path("cert.pem");
    let key = files.path("key.pem");
    let client_ca = client_ca.map(Path::to_path_buf);
    TestServer::start_with(move |c| {
        c.server.tls_cert = Some(cert);
        c.server.tls_key = Some(key);
        c.server.tls_client_ca = client_ca;
    })
    .await
}

fn addrs(s: &TestServer) -> (SocketAddr, SocketAddr) {
    let server = s.server.as_ref().expect("running");
    (server.http_addr, server.grpc_addr)
}

fn https(s: &TestServer) -> String {
    format!("https://{}", addrs(s).0)
}

/// An HTTPS client that trusts only `ca` (a new connection pool each time),
/// presenting `identity` when given.
fn client(ca: &str, identity: Option<&Leaf>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(leaf) = identity {
        b = b.identity(reqwest::Identity::from_pem(leaf.identity().as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn post_logs(client: &reqwest::Client, base: &str, body: &str) -> reqwest::Result<u16> {
    let req = logs("tls-svc", vec![log(T0, 9, body)]);
    let resp = client
        .post(format!("{base}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .header("x-tenant-id", "acme")
        .body(req.encode_to_vec())
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

/// `sql` as tenant `acme` over HTTPS (Arrow IPC).
async fn sql(client: &reqwest::Client, base: &str, sql: &str) -> Vec<RecordBatch> {
    let resp = client
        .post(format!("{base}/api/v2/sql?format=arrow"))
        .header("x-tenant-id", "acme")
        .header("content-type", "application/json")
        .body(serde_json::json!({ "sql": sql }).to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&body));
    from_arrow_ipc(&body, false).unwrap().batches
}

/// Polls `sql` (up to 30 s) until it has `rows` rows.
async fn wait_rows(client: &reqwest::Client, base: &str, q: &str, rows: usize) -> Vec<RecordBatch> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let batches = sql(client, base, q).await;
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if n >= rows || Instant::now() > deadline {
            return batches;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gRPC channel to `addr` over TLS, trusting `ca`, verifying the name
/// `localhost`, presenting `identity` when given.
async fn grpc_channel(
    addr: SocketAddr,
    ca: &str,
    identity: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

fn tenant<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("x-tenant-id", "acme".parse().unwrap());
    req
}

/// OTLP/HTTP and the query API over HTTPS, with a client trusting the
/// test CA.
#[tokio::test]
async fn otlp_http_and_the_query_api_over_https() {
    let ca = Ca::new("test CA");
    let files = Files::new();
    files.server(&ca.server());
    let mut s = start_tls(&files, None).await;
    let c = client(&ca.pem(), None);
    let base = https(&s);
    assert_eq!(post_logs(&c, &base, "over https").await.unwrap(), 200);
    let req = traces("cart", vec![span(1, 1, "checkout", T0)]);
    let resp = c
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-tenant-id", "acme")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let resp = c
        .get(format!(
            "{base}/api/v2/services?start=2026-11-26T10:00:00Z&end=2026-11-26T11:00:00Z"
        ))
        .header("x-tenant-id", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        v["services"],
        serde_json::json!([
            {"name": "cart", "signals": ["traces"]},
            {"name": "tls-svc", "signals": ["logs"]},
        ]),
        "{v}"
    );

    let batches = wait_rows(&c, &base, "SELECT service_name, body FROM otel_logs", 1).await;
    assert_batches_sorted_eq!(
        [
            "+--------------+------------+",
            "| service_name | body       |",
            "+--------------+------------+",
            "| tls-svc      | over https |",
            "+--------------+------------+",
        ],
        &batches
    );
    s.shutdown().await;
}

/// OTLP/gRPC over TLS with a tonic client; the rows are queryable.
#[tokio::test]
async fn otlp_grpc_over_tls() {
    let ca = Ca::new("test CA");
    let files = Files::new();
    files.server(&ca.server());
    let mut s = start_tls(&files, None).await;
    let (_, grpc) = addrs(&s);
    let channel = grpc_channel(grpc, &ca.pem(), None).await.unwrap();
    let resp = TraceServiceClient::new(channel.clone())
        .export(tenant(traces(
            "cart",
            vec![span(1, 1, "add", T0), span(1, 2, "pay", T0 + SEC)],
        )))
        .await
        .unwrap();
    assert_eq!(resp.get_ref().partial_success, None);
    LogsServiceClient::new(channel)
        .export(tenant(logs("cart", vec![log(T0, 17, "paid over grpc")])))
        .await
        .unwrap();

    let c = client(&ca.pem(), None);
    let base = https(&s);
    let batches = wait_rows(&c, &base, "SELECT span_name FROM otel_traces", 2).await;
    assert_batches_sorted_eq!(
        [
            "+-----------+",
            "| span_name |",
            "+-----------+",
            "| add       |",
            "| pay       |",
            "+-----------+",
        ],
        &batches
    );
    let batches = wait_rows(&c, &base, "SELECT body FROM otel_logs", 1).await;
    assert_batches_sorted_eq!(
        [
            "+----------------+",
            "| body           |",
            "+----------------+",
            "| paid over grpc |",
            "+----------------+",
        ],
        &batches
    );
    s.shutdown().await;
}

/// Plain-TCP clients, and TLS clients that do not trust the server's CA,
/// get no answer; a client that never starts its handshake holds up no
/// other.
#[tokio::test]
async fn plain_and_untrusting_clients_are_refused() {
    let ca = Ca::new("test CA");
    let files = Files::new();
    files.server(&ca.server());
    let mut s = start_tls(&files, None).await;
    let (http, grpc) = addrs(&s);

    // Connected, silent: its handshake waits in a task of its own.
    let mut silent = tokio::net::TcpStream::connect(http).await.unwrap();
    let mut silent_grpc = tokio::net::TcpStream::connect(grpc).await.unwrap();

    let plain = reqwest::Client::new();
    let e = plain
        .get(format!("http://{http}/healthz"))
        .send()
        .await
        .expect_err("plain HTTP to a TLS listener");
    assert!(!e.is_status(), "{e:?}");
    let e = post_logs(&plain, &format!("http://{http}"), "plain")
        .await
        .expect_err("plain HTTP POST");
    assert!(!e.is_status(), "{e:?}");

    let export = async {
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .timeout(Duration::from_secs(10))
            .connect()
            .await?;
        TraceServiceClient::new(channel)
            .export(tenant(traces("cart", vec![span(1, 1, "plain", T0)])))
            .await
            .map_err(Into::into)
    };
    let r: Result<_, Box<dyn std::error::Error>> = export.await;
    assert!(r.is_err(), "plain gRPC to a TLS listener: {r:?}");

    let other = Ca::new("another CA");
    assert!(
        post_logs(&client(&other.pem(), None), &https(&s), "untrusted")
            .await
            .is_err()
    );
    assert!(grpc_channel(grpc, &other.pem(), None).await.is_err());

    // Still serving, with the silent connections open.
    let c = client(&ca.pem(), None);
    assert_eq!(post_logs(&c, &https(&s), "trusted").await.unwrap(), 200);
    let channel = grpc_channel(grpc, &ca.pem(), None).await.unwrap();
    TraceServiceClient::new(channel)
        .export(tenant(traces("cart", vec![span(1, 1, "tls", T0)])))
        .await
        .unwrap();
    let batches = wait_rows(&c, &https(&s), "SELECT body FROM otel_logs", 1).await;
    assert_batches_sorted_eq!(
        [
            "+---------+",
            "| body    |",
            "+---------+",
            "| trusted |",
            "+---------+",
        ],
        &batches
    );
    let _ = silent.shutdown().await;
    let _ = silent_grpc.shutdown().await;
    s.shutdown().await;
}

/// With `tls_client_ca`, only clients presenting a certificate signed by
/// that CA are served, over HTTP and gRPC.
#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_client_ca() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let stranger_ca = Ca::new("stranger CA");
    let files = Files::new();
    files.server(&server_ca.server());
    let client_ca_path = files.write("clients.pem", &client_ca.pem());
    let mut s = start_tls(&files, Some(&client_ca_path)).await;
    let (_, grpc) = addrs(&s);
    let base = https(&s);
    let ca = server_ca.pem();
    let member = client_ca.client("agent-1");
    let stranger = stranger_ca.client("agent-2");

    assert!(
        post_logs(&client(&ca, None), &base, "no certificate")
            .await
            .is_err()
    );
    assert!(
        post_logs(&client(&ca, Some(&stranger)), &base, "stranger")
            .await
            .is_err()
    );
    assert_eq!(
        post_logs(&client(&ca, Some(&member)), &base, "member")
            .await
            .unwrap(),
        200
    );

    let export = |channel: Channel| async move {
        TraceServiceClient::new(channel)
            .export(tenant(traces("cart", vec![span(1, 1, "mtls", T0)])))
            .await
    };
    // The client sees a refused certificate when it first reads (TLS 1.3):
    // at connecting or at the first call.
    for identity in [None, Some(&stranger)] {
        if let Ok(channel) = grpc_channel(grpc, &ca, identity).await {
            assert!(export(channel).await.is_err());
        }
    }
    let channel = grpc_channel(grpc, &ca, Some(&member)).await.unwrap();
    export(channel).await.unwrap();

    let c = client(&ca, Some(&member));
    let batches = wait_rows(&c, &base, "SELECT body FROM otel_logs", 1).await;
    assert_batches_sorted_eq!(
        [
            "+--------+",
            "| body   |",
            "+--------+",
            "| member |",
            "+--------+",
        ],
        &batches
    );
    let batches = wait_rows(&c, &base, "SELECT span_name FROM otel_traces", 1).await;
    assert_batches_sorted_eq!(
        [
            "+-----------+",
            "| span_name |",
            "+-----------+",
            "| mtls      |",
            "+-----------+",
        ],
        &batches
    );
    s.shutdown().await;
}

/// Replacing the certificate and key files: new connections get the new
/// certificate within a few seconds (polled); an established gRPC
/// connection keeps working.
#[tokio::test]
async fn replaced_certificate_files_are_used_by_new_connections() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let files = Files::new();
    files.server(&old_ca.server());
    let mut s = start_tls(&files, None).await;
    let (_, grpc) = addrs(&s);
    let base = https(&s);
    assert_eq!(
        post_logs(&client(&old_ca.pem(), None), &base, "before")
            .await
            .unwrap(),
        200
    );
    let established = grpc_channel(grpc, &old_ca.pem(), None).await.unwrap();
    let export = |channel: Channel, name: &'static str| async move {
        TraceServiceClient::new(channel)
            .export(tenant(traces("cart", vec![span(1, 1, name, T0)])))
            .await
    };
    export(established.clone(), "before").await.unwrap();

    files.server(&new_ca.server());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A new client each time: a new connection, a new handshake.
        match post_logs(&client(&new_ca.pem(), None), &base, "after").await {
            Ok(status) => {
                assert_eq!(status, 200);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the new certificate was not served within 20 s: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        post_logs(&client(&old_ca.pem(), None), &base, "old CA")
            .await
            .is_err(),
        "a new connection still got the old certificate"
    );
    assert!(grpc_channel(grpc, &old_ca.pem(), None).await.is_err());
    let fresh = grpc_channel(grpc, &new_ca.pem(), None).await.unwrap();
    export(fresh, "new").await.unwrap();
    export(established, "kept").await.unwrap();

    let c = client(&new_ca.pem(), None);
    let batches = wait_rows(&c, &base, "SELECT span_name FROM otel_traces", 3).await;
    assert_batches_sorted_eq!(
        [
            "+-----------+",
            "| span_name |",
            "+-----------+",
            "| before    |",
            "| kept      |",
            "| new       |",
            "+-----------+",
        ],
        &batches
    );
    s.shutdown().await;
}

/// A sidecar forwards to a central server over TLS, verifying it with
/// `tls_ca`, over gRPC and over HTTP/protobuf.
#[tokio::test]
async fn a_forwarder_delivers_to_a_tls_upstream_verified_with_its_ca() {
    let ca = Ca::new("central CA");
    let files = Files::new();
    files.server(&ca.server());
    let ca_path = files.write("ca.pem", &ca.pem());
    let mut central = start_tls(&files, None).await;
    let (http, grpc) = addrs(&central);
    let forward = |name: &str, endpoint: String, protocol: Protocol| ForwardSettings {
        name: name.into(),
        endpoint,
        protocol,
        tls_ca: Some(ca_path.clone()),
        batch_age_ms: NonZero::new(20).unwrap(),
        retry_initial_ms: NonZero::new(20).unwrap(),
        retry_max_secs: NonZero::new(1).unwrap(),
        ..ForwardSettings::default()
    };
    let mut sidecars = Vec::new();
    for (name, endpoint, protocol) in [
        ("via-grpc", format!("https://{grpc}"), Protocol::Grpc),
        (
            "via-http",
            format!("https://{http}"),
            Protocol::HttpProtobuf,
        ),
    ] {
        let f = forward(name, endpoint, protocol);
        let sidecar = TestServer::start_with(move |c| {
            c.storage.persist = false;
            c.forward = vec![f];
        })
        .await;
        let body = logs(name, vec![log(T0, 9, &format!("forwarded {name}"))]).encode_to_vec();
        assert_eq!(
            crate::otlp_http::post(
                &format!("{}/v1/logs", sidecar.http),
                "application/x-protobuf",
                None,
                body,
                Some("acme"),
            )
            .await
            .status,
            200
        );
        sidecars.push(sidecar);
    }
    let c = client(&ca.pem(), None);
    let batches = wait_rows(
        &c,
        &https(&central),
        "SELECT service_name, body FROM otel_logs",
        2,
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+--------------+--------------------+",
            "| service_name | body               |",
            "+--------------+--------------------+",
            "| via-grpc     | forwarded via-grpc |",
            "| via-http     | forwarded via-http |",
            "+--------------+--------------------+",
        ],
        &batches
    );
    for mut s in sidecars {
        s.shutdown().await;
    }
    central.shutdown().await;
}

/// `replay --ca` sends to a TLS upstream over gRPC; without it the
/// upstream is not trusted and replay gives up.
#[tokio::test]
async fn replay_verifies_its_upstream_with_the_given_ca() {
    let ca = Ca::new("target CA");
    let files = Files::new();
    files.server(&ca.server());
    let ca_path = files.write("ca.pem", &ca.pem());
    let mut source = TestServer::start().await;
    let body = logs("replayed", vec![log(T0, 9, "again")]).encode_to_vec();
    assert_eq!(
        crate::otlp_http::post(
            &format!("{}/v1/logs", source.http),
            "application/x-protobuf",
            None,
            body,
            Some("acme"),
        )
        .await
        .status,
        200
    );
    let data_dir = source.dir.path().to_owned();
    source.shutdown().await;
    let mut target = start_tls(&files, None).await;
    let (_, grpc) = addrs(&target);
    let to = format!("https://{grpc}");
    let run = move |ca: Option<PathBuf>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_telemetryflow"));
        cmd.arg("replay")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--tenant", "acme", "--protocol", "grpc"])
            .args([
                "--start",
                "2026-01-01T00:00:00Z",
                "--end",
                "2027-01-01T00:00:00Z",
            ])
            .args(["--to", &to, "--max-retry-secs", "1"]);
        if let Some(ca) = ca {
            cmd.arg("--ca").arg(ca);
        }
        cmd.output().unwrap()
    };
    let without = {
        let run = run.clone();
        tokio::task::spawn_blocking(move || run(None))
            .await
            .unwrap()
    };
    assert!(
        !without.status.success(),
        "replay trusted a CA it was not given: {}",
        String::from_utf8_lossy(&without.stdout)
    );
    let with = tokio::task::spawn_blocking(move || run(Some(ca_path)))
        .await
        .unwrap();
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&with.stdout).unwrap();
    assert_eq!(summary["items"], 1, "{summary}");
    let c = client(&ca.pem(), None);
    let batches = wait_rows(
        &c,
        &https(&target),
        "SELECT service_name, body FROM otel_logs",
        1,
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+--------------+-------+",
            "| service_name | body  |",
            "+--------------+-------+",
            "| replayed     | again |",
            "+--------------+-------+",
        ],
        &batches
    );
    target.shutdown().await;
}
