//! Load generator: realistic synthetic OTLP (deterministic by seed) sent over
//! gRPC or HTTP (protobuf or JSON; gzip optional) by N concurrent connections, flat
//! out or at a target rate. Reports accepted/s, refused/s and ack latency
//! (p50/p99/max), then verifies with SQL that every acknowledged item is
//! stored.
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --release --example loadgen -- --signal traces --concurrency 8 --duration 20
//! cargo run --release --example loadgen -- --protocol http --gzip --signal logs --rate 200000
//! cargo run --release --example loadgen -- --protocol http --json --signal metrics
//! ```
//!
//! `--sink ADDR` instead runs a minimal OTLP/HTTP receiver that acknowledges
//! everything without decoding it: the upstream of a forwarding benchmark
//! that should cost the machine as little as possible (`--sink-decode`:
//! decoding every request with prost first, as a real upstream must).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest_012 as reqwest;
use telemetryflow::infrastructure::otlp::export::RawCodec;
use telemetryflow::infrastructure::otlp::json;
use telemetryflow::infrastructure::otlp::signal::{Logs, Metrics, OtlpSignal, Traces};
use telemetryflow::synth::Synth;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

#[derive(Debug, Parser)]
#[command(about = "OTLP load generator for TelemetryFlow")]
struct Args {
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// Default: http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318 (HTTP).
    #[arg(long)]
    endpoint: Option<String>,
    /// Where the SQL API is, for --verify.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    api: String,
    #[arg(long, value_enum, default_value_t = Signal::Traces)]
    signal: Signal,
    /// Items (spans, data points, log records) per request.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Target items per second over all connections; 0 = flat out.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// gzip request bodies.
    #[arg(long)]
    gzip: bool,
    /// OTLP/JSON bodies instead of protobuf (HTTP only).
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Distinct pre-generated requests, sent round-robin.
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// Tenant to write as (default: a fresh one per run, so --verify can count).
    #[arg(long)]
    tenant: Option<String>,
    /// Skip the SQL check of stored items at the end.
    #[arg(long)]
    no_verify: bool,
    /// Send on at the target rate when refused (429, UNAVAILABLE,
    /// RESOURCE_EXHAUSTED) instead of pausing 50 ms: a client that floods.
    #[arg(long)]
    flood: bool,
    /// A PEM CA certificate that https endpoints (and --api) are verified
    /// against. The API key, if any, comes from TELEMETRYFLOW_API_KEY.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Run an OTLP/HTTP sink on this address (acknowledges every request,
    /// decodes nothing) until killed, instead of generating load.
    #[arg(long)]
    sink: Option<String>,
    /// With --sink: decode every request with prost first (answering 400
    /// to one that does not decode), as a real upstream must.
    #[arg(long, requires = "sink")]
    sink_decode: bool,
}

/// Answers every OTLP/HTTP export with an empty success; with `decode`,
/// after decoding it (400 if it does not decode).
async fn sink(addr: &str, decode: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    type Answer = (
        axum::http::StatusCode,
        [(&'static str, &'static str); 1],
        Vec<u8>,
    );
    fn answer<M: Message + Default>(decode: bool, body: &[u8]) -> Answer {
        let ok = !decode || M::decode(body).is_ok();
        let status = if ok {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::BAD_REQUEST
        };
        (
            status,
            [("content-type", "application/x-protobuf")],
            Vec::new(),
        )
    }
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |b: Bytes| async move {
                answer::<ExportTraceServiceRequest>(decode, &b)
            }),
        )
        .route(
            "/v1/metrics",
            axum::routing::post(move |b: Bytes| async move {
                answer::<ExportMetricsServiceRequest>(decode, &b)
            }),
        )
        .route(
            "/v1/logs",
            axum::routing::post(move |b: Bytes| async move {
                answer::<ExportLogsServiceRequest>(decode, &b)
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("sink listening on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

enum Payload {
    Traces(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest),
    Metrics(opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest),
    Logs(opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest),
}

impl Payload {
    fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Traces(r) => r.encode_to_vec(),
            Payload::Metrics(r) => r.encode_to_vec(),
            Payload::Logs(r) => r.encode_to_vec(),
        }
    }

    /// OTLP/JSON, by the library's encoder.
    fn encode_json(&self) -> Vec<u8> {
        match self {
            Payload::Traces(r) => json::encode_traces(r),
            Payload::Metrics(r) => json::encode_metrics(r),
            Payload::Logs(r) => json::encode_logs(r),
        }
    }
}

/// One OTLP/gRPC export of signal `S` from an encoded request.
async fn grpc_export<S: OtlpSignal, R: Message + Default + Send + 'static>(
    channel: &tonic::transport::Channel,
    gzip: bool,
    metadata: tonic::metadata::MetadataMap,
    body: Bytes,
) -> Result<R, tonic::Status> {
    let mut client =
        tonic::client::Grpc::new(channel.clone()).max_encoding_message_size(usize::MAX);
    if gzip {
        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = tonic::Request::from_parts(metadata, Default::default(), body);
    client
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(S::GRPC_PATH),
            RawCodec::<R>::new(),
        )
        .await
        .map(tonic::Response::into_inner)
}

/// Rejected items from an OTLP/JSON response's `partialSuccess` (int64
/// fields may come as strings or numbers).
fn json_rejected(body: &[u8], field: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match &v["partialSuccess"][field] {
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

#[derive(Default)]
struct Totals {
    accepted: AtomicU64,
    rejected: AtomicU64,
    refused_items: AtomicU64,
    refused_requests: AtomicU64,
    errors: AtomicU64,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    if let Some(addr) = &args.sink {
        return sink(addr, args.sink_decode).await;
    }
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| match args.protocol {
            Protocol::Grpc => "http://127.0.0.1:4317".into(),
            Protocol::Http => "http://127.0.0.1:4318".into(),
        });
    let tenant = args.tenant.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("loadgen-{}-{t}", args.seed)
    });
    // Event times: now, so the data lands in the current hour.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let mut synth = Synth::new(args.seed, now);
    let pool: Vec<Arc<Payload>> = (0..args.pool.max(1))
        .map(|_| {
            Arc::new(match args.signal {
                Signal::Traces => Payload::Traces(synth.traces(args.batch)),
                Signal::Metrics => Payload::Metrics(synth.metrics(args.batch)),
                Signal::Logs => Payload::Logs(synth.logs(args.batch)),
            })
        })
        .collect();
    if args.json && args.protocol != Protocol::Http {
        return Err("--json needs --protocol http".into());
    }
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        pool.iter()
            .map(|p| {
                let raw = if args.json {
                    p.encode_json()
                } else {
                    p.encode()
                };
                Bytes::from(if args.gzip { gzip(&raw) } else { raw })
            })
            .collect(),
    );
    // gRPC sends the same bodies, encoded once like the HTTP ones (so both
    // protocols cost the load generator alike), uncompressed: tonic
    // compresses each message itself under --gzip.
    let grpc_bodies: Arc<Vec<Bytes>> = Arc::new(match args.protocol {
        Protocol::Grpc => pool.iter().map(|p| Bytes::from(p.encode())).collect(),
        Protocol::Http => Vec::new(),
    });
    let raw_bytes: usize = pool.iter().map(|p| p.encode().len()).sum::<usize>() / pool.len();
    let sent_bytes: usize = bodies.iter().map(Bytes::len).sum::<usize>() / bodies.len();
    eprintln!(
        "sending {:?} over {:?}{} to {endpoint} as tenant {tenant}: {} items/request, {} B/request as protobuf, {} B/request sent, {} connections, {} s",
        args.signal,
        args.protocol,
        if args.json { "/JSON" } else { "" },
        args.batch,
        raw_bytes,
        sent_bytes,
        args.concurrency,
        args.duration
    );

    let ca = match &args.ca {
        Some(path) => Some(std::fs::read(path)?),
        None => None,
    };
    let http_client = {
        let mut b = reqwest::Client::builder();
        if let Some(pem) = &ca {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        b.build()?
    };
    let key = std::env::var("TELEMETRYFLOW_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    let bearer: Option<Arc<str>> = key.map(|k| Arc::from(format!("Bearer {}", k.trim())));
    let totals = Arc::new(Totals::default());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let per_request_interval = (args.rate > 0).then(|| {
        Duration::from_secs_f64(args.batch as f64 * args.concurrency as f64 / args.rate as f64)
    });
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let pool = pool.clone();
        let bodies = Arc::clone(&bodies);
        let grpc_bodies = Arc::clone(&grpc_bodies);
        let totals = Arc::clone(&totals);
        let endpoint = endpoint.clone();
        let tenant = tenant.clone();
        let (protocol, signal, gz, json) = (args.protocol, args.signal, args.gzip, args.json);
        let flood = args.flood;
        let http = http_client.clone();
        let ca = ca.clone();
        let bearer = bearer.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u64> = Vec::new();
            let channel = match protocol {
                Protocol::Grpc => {
                    let mut ep = tonic::transport::Endpoint::from_shared(endpoint.clone())
                        .expect("valid endpoint");
                    if let Some(pem) = &ca {
                        ep = ep
                            .tls_config(
                                tonic::transport::ClientTlsConfig::new()
                                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                            )
                            .expect("TLS settings");
                    }
                    Some(ep.connect().await.expect("gRPC connection"))
                }
                Protocol::Http => None,
            };
            let with_key = |r: &mut tonic::metadata::MetadataMap| {
                if let Some(b) = &bearer {
                    r.insert("authorization", b.parse().expect("ascii key"));
                }
            };
            let mut k = w;
            let mut next_send = Instant::now();
            while Instant::now() < deadline {
                if let Some(iv) = per_request_interval {
                    tokio::time::sleep_until(next_send.into()).await;
                    next_send += iv;
                }
                let idx = k % pool.len();
                k += 1;
                let t = Instant::now();
                // (accepted+rejected items, rejected items) or Err(refused?)
                let outcome: Result<i64, bool> = match (&channel, pool[idx].as_ref()) {
                    (Some(ch), payload) => {
                        let mut md = tonic::metadata::MetadataMap::new();
                        md.insert("x-tenant-id", tenant.parse().expect("ascii tenant"));
                        with_key(&mut md);
                        let body = grpc_bodies[idx].clone();
                        let code = |s: tonic::Status| {
                            matches!(
                                s.code(),
                                tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                            )
                        };
                        match payload {
                            Payload::Traces(_) => {
                                grpc_export::<Traces, ExportTraceServiceResponse>(ch, gz, md, body)
                                    .await
                                    .map(|r| r.partial_success.map_or(0, |p| p.rejected_spans))
                                    .map_err(code)
                            }
                            Payload::Metrics(_) => grpc_export::<
                                Metrics,
                                ExportMetricsServiceResponse,
                            >(ch, gz, md, body)
                            .await
                            .map(|r| r.partial_success.map_or(0, |p| p.rejected_data_points))
                            .map_err(code),
                            Payload::Logs(_) => {
                                grpc_export::<Logs, ExportLogsServiceResponse>(ch, gz, md, body)
                                    .await
                                    .map(|r| {
                                        r.partial_success.map_or(0, |p| p.rejected_log_records)
                                    })
                                    .map_err(code)
                            }
                        }
                    }
                    (None, _) => {
                        let path = match signal {
                            Signal::Traces => "traces",
                            Signal::Metrics => "metrics",
                            Signal::Logs => "logs",
                        };
                        let mut rb = http
                            .post(format!("{endpoint}/v1/{path}"))
                            .header(
                                "content-type",
                                if json {
                                    "application/json"
                                } else {
                                    "application/x-protobuf"
                                },
                            )
                            .header("x-tenant-id", &tenant)
                            .body(bodies[idx].clone());
                        if gz {
                            rb = rb.header("content-encoding", "gzip");
                        }
                        if let Some(b) = &bearer {
                            rb = rb.header("authorization", &**b);
                        }
                        match rb.send().await {
                            Ok(resp) if resp.status().is_success() => {
                                let body = resp.bytes().await.unwrap_or_default();
                                Ok(match (signal, json) {
                                    (Signal::Traces, true) => json_rejected(&body, "rejectedSpans"),
                                    (Signal::Metrics, true) => {
                                        json_rejected(&body, "rejectedDataPoints")
                                    }
                                    (Signal::Logs, true) => {
                                        json_rejected(&body, "rejectedLogRecords")
                                    }
                                    (Signal::Traces, false) => {
                                        ExportTraceServiceResponse::decode(body)
                                            .ok()
                                            .and_then(|r| r.partial_success)
                                            .map_or(0, |p| p.rejected_spans)
                                    }
                                    (Signal::Metrics, false) => {
                                        ExportMetricsServiceResponse::decode(body)
                                            .ok()
                                            .and_then(|r| r.partial_success)
                                            .map_or(0, |p| p.rejected_data_points)
                                    }
                                    (Signal::Logs, false) => {
                                        ExportLogsServiceResponse::decode(body)
                                            .ok()
                                            .and_then(|r| r.partial_success)
                                            .map_or(0, |p| p.rejected_log_records)
                                    }
                                })
                            }
                            Ok(resp) => Err(matches!(resp.status().as_u16(), 429 | 503)),
                            Err(_) => Err(false),
                        }
                    }
                };
                match outcome {
                    Ok(rejected) => {
                        latencies.push(t.elapsed().as_micros() as u64);
                        let n = count_items(pool[idx].as_ref()) as u64;
                        totals
                            .accepted
                            .fetch_add(n - rejected as u64, Ordering::Relaxed);
                        totals
                            .rejected
                            .fetch_add(rejected as u64, Ordering::Relaxed);
                    }
                    Err(true) => {
                        totals.refused_requests.fetch_add(1, Ordering::Relaxed);
                        totals
                            .refused_items
                            .fetch_add(count_items(pool[idx].as_ref()) as u64, Ordering::Relaxed);
                        if !flood {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(false) => {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let accepted = totals.accepted.load(Ordering::Relaxed);
    let refused = totals.refused_items.load(Ordering::Relaxed);
    println!(
        "{{\"signal\":\"{:?}\",\"protocol\":\"{:?}\",\"json\":{},\"gzip\":{},\"connections\":{},\"seconds\":{elapsed:.2},\"requests\":{},\"accepted_items\":{accepted},\"accepted_per_s\":{:.0},\"rejected_items\":{},\"refused_items\":{refused},\"refused_per_s\":{:.0},\"refused_requests\":{},\"errors\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        args.signal,
        args.protocol,
        args.json,
        args.gzip,
        args.concurrency,
        latencies.len(),
        accepted as f64 / elapsed,
        totals.rejected.load(Ordering::Relaxed),
        refused as f64 / elapsed,
        totals.refused_requests.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    if !args.no_verify {
        let sql = match args.signal {
            Signal::Traces => "SELECT count(*) AS n FROM otel_traces".to_string(),
            Signal::Logs => "SELECT count(*) AS n FROM otel_logs".to_string(),
            Signal::Metrics => "SELECT (SELECT count(*) FROM otel_metrics_gauge) + (SELECT count(*) FROM otel_metrics_sum) + (SELECT count(*) FROM otel_metrics_histogram) + (SELECT count(*) FROM otel_metrics_exp_histogram) + (SELECT count(*) FROM otel_metrics_summary) AS n".to_string(),
        };
        let mut request = http_client
            .post(format!("{}/api/v2/sql?format=csv", args.api))
            .header("x-tenant-id", &tenant);
        if let Some(b) = &bearer {
            request = request.header("authorization", &**b);
        }
        let resp = request
            .header("content-type", "application/json")
            .body(serde_json::json!({ "sql": sql }).to_string())
            .send()
            .await?
            .text()
            .await?;
        let stored: u64 = resp
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if stored == accepted {
            eprintln!("verified: all {accepted} acknowledged items are stored");
        } else {
            eprintln!("VERIFY FAILED: {accepted} acknowledged, {stored} stored ({resp})");
            std::process::exit(1);
        }
    }
    Ok(())
}

fn count_items(p: &Payload) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match p {
        Payload::Traces(r) => r
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum(),
        Payload::Logs(r) => r
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
        Payload::Metrics(r) => r
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
                Some(Data::Summary(s)) => s.data_points.len(),
                None => 0,
            })
            .sum(),
    }
}
