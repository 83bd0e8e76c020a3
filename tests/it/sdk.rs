//! The real OpenTelemetry Rust SDK exporters, over gRPC, HTTP/protobuf and
//! HTTP/JSON, for all three signals.

use datafusion::assert_batches_sorted_eq;
use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{LogExporter, MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::support::TestServer;

/// Emits the same telemetry through any set of exporters.
fn emit(
    service: &str,
    spans: SpanExporter,
    metrics: MetricExporter,
    logs: LogExporter,
) -> [Box<dyn FnOnce() + Send>; 3] {
    let resource = || {
        Resource::builder()
            .with_service_name(service.to_owned())
            .build()
    };
    let tp = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource())
        .build();
    let tracer = tp.tracer("it");
    tracer.in_span("parent", |_| {
        tracer.in_span("child", |_| {});
    });
    let mp = SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource())
        .build();
    let meter = mp.meter("it");
    let counter = meter.u64_counter("sdk.requests").build();
    counter.add(3, &[KeyValue::new("route", "/a")]);
    counter.add(4, &[KeyValue::new("route", "/a")]);
    meter.f64_histogram("sdk.latency").build().record(12.5, &[]);
    meter.f64_gauge("sdk.temperature").build().record(21.5, &[]);
    let lp = SdkLoggerProvider::builder()
        .with_batch_exporter(logs)
        .with_resource(resource())
        .build();
    let logger = lp.logger("it");
    let mut rec = logger.create_log_record();
    rec.set_body(AnyValue::from("hello from the sdk"));
    rec.set_severity_number(Severity::Warn);
    rec.set_severity_text("WARN");
    logger.emit(rec);
    [
        Box::new(move || {
            tp.force_flush().unwrap();
            tp.shutdown().unwrap();
        }),
        // Shutdown collects and exports once; a force_flush before it would
        // export the cumulative points a second time (with a later timestamp).
        Box::new(move || {
            mp.shutdown().unwrap();
        }),
        Box::new(move || {
            lp.force_flush().unwrap();
            lp.shutdown().unwrap();
        }),
    ]
}

async fn check(s: &TestServer, service: &str) {
    let filter = format!("service_name = '{service}'");
    s.wait_for_count(
        &format!("SELECT count(*) FROM otel_traces WHERE {filter}"),
        2,
    )
    .await;
    s.wait_for_count(&format!("SELECT count(*) FROM otel_logs WHERE {filter}"), 1)
        .await;
    s.wait_for_count(
        &format!("SELECT count(*) FROM otel_metrics_histogram WHERE {filter}"),
        1,
    )
    .await;
    let b = s
        .sql(&format!(
            "SELECT a.span_name, b.span_name AS parent FROM otel_traces a LEFT JOIN otel_traces b \
             ON a.parent_span_id = b.span_id AND a.trace_id = b.trace_id WHERE a.{filter}"
        ))
        .await;
    assert_batches_sorted_eq!(
        [
            "+-----------+--------+",
            "| span_name | parent |",
            "+-----------+--------+",
            "| child     | parent |",
            "| parent    |        |",
            "+-----------+--------+"
        ],
        &b
    );
    let b = s
        .sql(&format!(
            "SELECT metric_name, value, is_monotonic, attributes['route'] AS route FROM otel_metrics_sum WHERE {filter} \
             UNION ALL SELECT metric_name, value, NULL, NULL FROM otel_metrics_gauge WHERE {filter} \
             UNION ALL SELECT metric_name, sum, NULL, NULL FROM otel_metrics_histogram WHERE {filter}"
        ))
        .await;
    assert_batches_sorted_eq!(
        [
            "+-----------------+-------+--------------+-------+",
            "| metric_name     | value | is_monotonic | route |",
            "+-----------------+-------+--------------+-------+",
            "| sdk.latency     | 12.5  |              |       |",
            "| sdk.requests    | 7.0   | true         | /a    |",
            "| sdk.temperature | 21.5  |              |       |",
            "+-----------------+-------+--------------+-------+",
        ],
        &b
    );
    let b = s
        .sql(&format!(
            "SELECT body, severity_text, severity_number FROM otel_logs WHERE {filter}"
        ))
        .await;
    assert_batches_sorted_eq!(
        [
            "+--------------------+---------------+-----------------+",
            "| body               | severity_text | severity_number |",
            "+--------------------+---------------+-----------------+",
            "| hello from the sdk | WARN          | 13              |",
            "+--------------------+---------------+-----------------+",
        ],
        &b
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exporters_over_grpc() {
    let s = TestServer::start().await;
    // The tonic exporters are built inside the runtime; flushing blocks, so it
    // runs on a blocking thread.
    let ep = s.grpc.clone();
    let flushers = emit(
        "sdk-grpc",
        SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&ep)
            .build()
            .unwrap(),
        MetricExporter::builder()
            .with_tonic()
            .with_endpoint(&ep)
            .build()
            .unwrap(),
        LogExporter::builder()
            .with_tonic()
            .with_endpoint(&ep)
            .build()
            .unwrap(),
    );
    tokio::task::spawn_blocking(move || flushers.into_iter().for_each(|f| f()))
        .await
        .unwrap();
    check(&s, "sdk-grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exporters_over_http_protobuf_and_json() {
    let s = TestServer::start().await;
    for (service, protocol) in [
        ("sdk-http-proto", Protocol::HttpBinary),
        ("sdk-http-json", Protocol::HttpJson),
    ] {
        let base = s.http.clone();
        tokio::task::spawn_blocking(move || {
            let flushers = emit(
                service,
                SpanExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{base}/v1/traces"))
                    .build()
                    .unwrap(),
                MetricExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{base}/v1/metrics"))
                    .build()
                    .unwrap(),
                LogExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{base}/v1/logs"))
                    .build()
                    .unwrap(),
            );
            flushers.into_iter().for_each(|f| f());
        })
        .await
        .unwrap();
        check(&s, service).await;
    }
}
