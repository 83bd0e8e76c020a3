//! Sends a few traces, metrics and logs to TelemetryFlow (or any OTLP
//! receiver) with the OpenTelemetry Rust SDK.
//!
//! ```sh
//! cargo run --example send_telemetry                                  # gRPC, 127.0.0.1:4317
//! cargo run --example send_telemetry -- --protocol http-proto         # http://127.0.0.1:4318/v1/*
//! cargo run --example send_telemetry -- --protocol http-json --endpoint http://127.0.0.1:14318
//! cargo run --example send_telemetry -- --tenant acme --service checkout
//! ```
//!
//! It emits one trace (a server span with three children, one of them failed,
//! one grandchild), a counter, a histogram, a gauge and a handful of log
//! records (some inside the trace, so they carry its ids), then flushes and
//! shuts the three providers down, which exports everything before exit.
//!
//! Runtimes: the gRPC (tonic) exporters must be built inside a Tokio runtime,
//! which must stay alive while they export; the HTTP exporters use a blocking
//! reqwest client, which must not be built or driven from async code. The SDK's
//! batch processors and periodic reader export from their own threads, so the
//! telemetry itself is produced from plain (non-async) code in both cases.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, ValueEnum};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{
    LogExporter, MetricExporter, SpanExporter, WithExportConfig as _, WithHttpConfig as _,
    WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// OTLP/gRPC (default endpoint http://127.0.0.1:4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default endpoint http://127.0.0.1:4318).
    HttpProto,
    /// OTLP/HTTP with JSON bodies (default endpoint http://127.0.0.1:4318).
    HttpJson,
}

#[derive(Debug, Parser)]
#[command(about = "Send sample traces, metrics and logs over OTLP with the OpenTelemetry SDK")]
struct Args {
    /// Receiver URL. gRPC: the server address; HTTP: the base URL, to which
    /// /v1/traces, /v1/metrics and /v1/logs are appended.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// Tenant (`x-tenant-id`); the server's default tenant when omitted.
    #[arg(long)]
    tenant: Option<String>,
    /// `service.name` of the resource.
    #[arg(long, default_value = "send-telemetry-example")]
    service: String,
    /// Export timeout.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

struct Providers {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    logger: SdkLoggerProvider,
}

impl Providers {
    fn new(args: &Args, spans: SpanExporter, metrics: MetricExporter, logs: LogExporter) -> Self {
        let resource = Resource::builder()
            .with_service_name(args.service.clone())
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.namespace", "examples"),
                KeyValue::new("deployment.environment.name", "dev"),
                KeyValue::new("host.name", "localhost"),
            ])
            .build();
        Self {
            tracer: SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_batch_exporter(spans)
                .build(),
            meter: SdkMeterProvider::builder()
                .with_resource(resource.clone())
                .with_periodic_exporter(metrics)
                .build(),
            logger: SdkLoggerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(logs)
                .build(),
        }
    }

    /// Flushes and shuts down every provider (blocking); reports every failure.
    fn flush_and_shutdown(&self) -> Result<(), Error> {
        let mut errors = Vec::new();
        let mut check = |what: &str, r: opentelemetry_sdk::error::OTelSdkResult| {
            if let Err(e) = r {
                errors.push(format!("{what}: {e}"));
            }
        };
        check("flushing traces", self.tracer.force_flush());
        check("flushing logs", self.logger.force_flush());
        check("shutting down traces", self.tracer.shutdown());
        check("shutting down logs", self.logger.shutdown());
        // Shutting the meter provider down collects and exports one last time.
        // A force_flush first would export every cumulative series twice
        // (same values, two timestamps): harmless, but twice the points.
        check("shutting down metrics", self.meter.shutdown());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; ").into())
        }
    }
}

fn grpc_exporters(
    args: &Args,
    endpoint: &str,
) -> Result<(SpanExporter, MetricExporter, LogExporter), Error> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some(t) = &args.tenant {
        metadata.insert("x-tenant-id", t.parse()?);
    }
    let spans = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_metadata(metadata.clone())
        .build()?;
    let metrics = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_metadata(metadata.clone())
        .build()?;
    let logs = LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_metadata(metadata)
        .build()?;
    Ok((spans, metrics, logs))
}

fn http_exporters(
    args: &Args,
    base: &str,
    protocol: opentelemetry_otlp::Protocol,
) -> Result<(SpanExporter, MetricExporter, LogExporter), Error> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let base = base.trim_end_matches('/');
    let headers: HashMap<String, String> = args
        .tenant
        .iter()
        .map(|t| ("x-tenant-id".to_owned(), t.clone()))
        .collect();
    let spans = SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{base}/v1/traces"))
        .with_timeout(timeout)
        .with_headers(headers.clone())
        .build()?;
    let metrics = MetricExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{base}/v1/metrics"))
        .with_timeout(timeout)
        .with_headers(headers.clone())
        .build()?;
    let logs = LogExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{base}/v1/logs"))
        .with_timeout(timeout)
        .with_headers(headers)
        .build()?;
    Ok((spans, metrics, logs))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Error> {
    match args.protocol {
        Protocol::Grpc => {
            let endpoint = args.endpoint.as_deref().unwrap_or("http://127.0.0.1:4317");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            // tonic channels spawn their connection tasks on the current
            // runtime, so the exporters are built inside it...
            let (spans, metrics, logs) = rt.block_on(async { grpc_exporters(args, endpoint) })?;
            let providers = Providers::new(args, spans, metrics, logs);
            // ...which keeps running (`rt` is alive) while the SDK threads export.
            emit(&providers);
            let result = providers.flush_and_shutdown();
            drop(providers);
            rt.shutdown_timeout(Duration::from_secs(5));
            result?;
            println!("sent traces, metrics and logs to {endpoint} over OTLP/gRPC");
        }
        Protocol::HttpProto | Protocol::HttpJson => {
            let endpoint = args
                .endpoint
                .as_deref()
                .unwrap_or("http://127.0.0.1:4318")
                .trim_end_matches('/');
            let (protocol, name) = if args.protocol == Protocol::HttpJson {
                (opentelemetry_otlp::Protocol::HttpJson, "OTLP/HTTP+JSON")
            } else {
                (
                    opentelemetry_otlp::Protocol::HttpBinary,
                    "OTLP/HTTP+protobuf",
                )
            };
            // No async runtime here at all: the blocking reqwest client is
            // built, used (from the SDK's threads) and dropped outside async code.
            let (spans, metrics, logs) = http_exporters(args, endpoint, protocol)?;
            let providers = Providers::new(args, spans, metrics, logs);
            emit(&providers);
            providers.flush_and_shutdown()?;
            println!(
                "sent traces, metrics and logs to {endpoint}/v1/{{traces,metrics,logs}} over {name}"
            );
        }
    }
    Ok(())
}

/// Produces the sample telemetry.
fn emit(p: &Providers) {
    let tracer = p.tracer.tracer("send_telemetry");
    let meter = p.meter.meter("send_telemetry");
    let logger = p.logger.logger("send_telemetry");

    let requests = meter
        .u64_counter("http.server.request.count")
        .with_unit("{request}")
        .with_description("HTTP requests served")
        .build();
    let duration = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_description("HTTP request duration")
        .with_boundaries(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
        .build();
    let queue = meter
        .i64_gauge("orders.queue.length")
        .with_unit("{order}")
        .with_description("orders waiting to be processed")
        .build();

    let log = |severity: Severity,
               text: &'static str,
               body: String,
               attrs: Vec<(&'static str, AnyValue)>| {
        let mut rec = logger.create_log_record();
        rec.set_timestamp(SystemTime::now());
        rec.set_severity_number(severity);
        rec.set_severity_text(text);
        rec.set_body(AnyValue::from(body));
        for (k, v) in attrs {
            rec.add_attribute(k, v);
        }
        // Emitted inside an active span, the SDK fills in its trace context.
        logger.emit(rec);
    };

    log(
        Severity::Info,
        "INFO",
        "example starting".into(),
        vec![("example.phase", "start".into())],
    );

    for (i, (route, status)) in [
        ("/api/orders/{id}", 200i64),
        ("/api/orders", 201),
        ("/api/cart", 503),
    ]
    .into_iter()
    .enumerate()
    {
        let http_attrs = vec![
            KeyValue::new(
                "http.request.method",
                if status == 201 { "POST" } else { "GET" },
            ),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", status),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("server.address", "127.0.0.1"),
        ];
        let root = tracer
            .span_builder(format!("GET {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes(http_attrs.clone())
            .start(&tracer);
        let root_cx = Context::current_with_span(root);
        let _active = root_cx.clone().attach();

        // Child 1: a database call, with a grandchild cache lookup.
        let db = tracer
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.operation.name", "SELECT"),
                KeyValue::new("db.query.text", "SELECT * FROM orders WHERE id = $1"),
            ])
            .start_with_context(&tracer, &root_cx);
        let db_cx = root_cx.with_span(db);
        let mut cache = tracer
            .span_builder("redis GET")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("cache.hit", false),
            ])
            .start_with_context(&tracer, &db_cx);
        std::thread::sleep(Duration::from_millis(2));
        cache.end();
        std::thread::sleep(Duration::from_millis(3));
        db_cx.span().add_event(
            "rows fetched",
            vec![KeyValue::new("db.response.returned_rows", 1 + i as i64)],
        );
        db_cx.span().end();

        // Child 2: a downstream HTTP call; fails for the 503 route.
        let mut call = tracer
            .span_builder("POST /reserve")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("url.full", "http://inventory.local/reserve"),
            ])
            .start_with_context(&tracer, &root_cx);
        std::thread::sleep(Duration::from_millis(2));
        if status >= 500 {
            call.add_event(
                "exception",
                vec![
                    KeyValue::new("exception.type", "UpstreamUnavailable"),
                    KeyValue::new("exception.message", "inventory returned 503"),
                ],
            );
            call.set_status(Status::error("inventory returned 503"));
            log(
                Severity::Error,
                "ERROR",
                format!("reservation failed for {route}: inventory returned 503"),
                vec![
                    ("http.route", route.into()),
                    ("retry", AnyValue::from(false)),
                ],
            );
        } else {
            log(
                Severity::Info,
                "INFO",
                format!("handled {route} with {status}"),
                vec![
                    ("http.route", route.into()),
                    ("http.response.status_code", status.into()),
                ],
            );
        }
        call.end();

        // Child 3: internal work.
        let mut render = tracer
            .span_builder("render response")
            .with_kind(SpanKind::Internal)
            .start_with_context(&tracer, &root_cx);
        render.set_attribute(KeyValue::new("response.bytes", 512 * (i as i64 + 1)));
        render.end();

        let root = root_cx.span();
        if status >= 500 {
            root.set_status(Status::error("upstream unavailable"));
        } else {
            root.set_status(Status::Ok);
        }
        root.end();

        requests.add(1 + i as u64, &http_attrs);
        duration.record(0.004 + 0.017 * i as f64, &http_attrs);
        duration.record(0.03 + 0.05 * i as f64, &http_attrs);
        queue.record(7 - 2 * i as i64, &[KeyValue::new("queue", "orders")]);
    }

    log(
        Severity::Warn,
        "WARN",
        "example finished; 1 of 3 requests failed".into(),
        vec![
            ("example.phase", "end".into()),
            ("requests", AnyValue::from(3i64)),
        ],
    );
}
