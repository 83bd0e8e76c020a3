//! Ingest-path benchmarks: what conversion costs on top of decoding.
//!
//! One group per signal (`traces`, `metrics`, `logs`), each over one request
//! of 512 items (spans / data points / log records) with ~10 attributes each:
//!
//! * `decode_only`        prost-decode the protobuf body;
//! * `decode_convert`     decode + `convert_*` (domain rules → validated Arrow batches);
//! * `json_decode`        OTLP/JSON body → prost types (`infrastructure::otlp::json`);
//! * `json_decode_convert` the same plus conversion.
//!
//! Throughput is reported in items/s, so `decode_only` vs `decode_convert`
//! shows directly what the conversion costs.
//!
//! ```sh
//! cargo bench --bench main                  # everything
//! cargo bench --bench main -- traces/       # one group
//! cargo bench --bench main -- decode_convert
//! ```
//!
//! The data is generated deterministically (fixed-seed PRNG, fixed
//! timestamps) and the JSON bodies by the library's encoder
//! (`infrastructure::otlp::json_encode`); before measuring, `setup` checks
//! that the JSON body decodes to exactly the protobuf request and that every
//! item is accepted.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use telemetryflow::application::commands::ShardedCounterStore;
use telemetryflow::domain::TenantContext;
use telemetryflow::infrastructure::otlp::convert::{convert_logs, convert_metrics, convert_traces};
use telemetryflow::infrastructure::otlp::{json, json_encode};

/// Items (spans, data points, log records) per request.
const ITEMS: usize = 512;
/// Services (resources) per request; items are spread evenly over them.
const SERVICES: [&str; 4] = ["frontend", "orders", "inventory", "payments"];
/// 2026-01-01T00:00:00Z in Unix nanoseconds.
const T0: u64 = 1_767_225_600_000_000_000;

// ---------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------

/// SplitMix64: tiny, fixed-seed, good enough for benchmark data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// A non-zero id of `N` bytes.
    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(N);
        while out.len() < N {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(N);
        out[0] |= 1;
        out
    }
}

fn s(k: &str, v: impl Into<String>) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

fn i(k: &str, v: i64) -> KeyValue {
    kv(k, any_value::Value::IntValue(v))
}

fn d(k: &str, v: f64) -> KeyValue {
    kv(k, any_value::Value::DoubleValue(v))
}

fn b(k: &str, v: bool) -> KeyValue {
    kv(k, any_value::Value::BoolValue(v))
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn resource(service: &str, idx: usize) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("service.version", format!("1.{idx}.3")),
            s("service.namespace", "shop"),
            s(
                "service.instance.id",
                format!("{service}-7c9f8d6b5-{idx}x2k4"),
            ),
            s("deployment.environment.name", "production"),
            s("host.name", format!("ip-10-0-{idx}-17")),
            s("cloud.region", "eu-west-1"),
            s("k8s.namespace.name", "shop"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.language", "rust"),
        ],
        ..Default::default()
    }
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_owned(),
        version: "0.33.0".to_owned(),
        ..Default::default()
    })
}

const ROUTES: [&str; 8] = [
    "/api/orders/{id}",
    "/api/orders",
    "/api/cart",
    "/api/cart/items/{id}",
    "/api/products/{id}",
    "/api/products",
    "/api/checkout",
    "/api/users/{id}",
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

fn gen_traces() -> ExportTraceServiceRequest {
    let mut rng = Rng(0x7261_6365);
    let per_service = ITEMS / SERVICES.len();
    let resource_spans = SERVICES
        .iter()
        .enumerate()
        .map(|(si, service)| {
            let mut spans = Vec::with_capacity(per_service);
            // Traces of 8 spans: one server root, then clients / internals
            // whose parent is the root or the previous span.
            while spans.len() < per_service {
                let trace_id = rng.id::<16>();
                let start = T0 + rng.below(60_000_000_000);
                let root_id = rng.id::<8>();
                let route = *rng.pick(&ROUTES);
                let method = *rng.pick(&METHODS);
                let failed = rng.below(16) == 0;
                let code = if failed { 500 } else { 200 };
                spans.push(Span {
                    trace_id: trace_id.clone(),
                    span_id: root_id.clone(),
                    name: format!("{method} {route}"),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 40_000_000 + rng.below(20_000_000),
                    flags: 0x101,
                    attributes: vec![
                        s("http.request.method", method),
                        s("http.route", route),
                        s(
                            "url.path",
                            route.replace("{id}", &rng.below(100_000).to_string()),
                        ),
                        s("url.scheme", "https"),
                        i("http.response.status_code", code),
                        s("server.address", format!("{service}.shop.internal")),
                        i("server.port", 443),
                        s(
                            "client.address",
                            format!("10.0.{}.{}", rng.below(256), rng.below(256)),
                        ),
                        s(
                            "user_agent.original",
                            "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
                        ),
                        s("network.protocol.version", "1.1"),
                    ],
                    status: Some(Status {
                        code: if failed { 2 } else { 1 },
                        message: if failed {
                            "internal error".into()
                        } else {
                            String::new()
                        },
                    }),
                    events: if failed {
                        vec![span::Event {
                            time_unix_nano: start + 39_000_000,
                            name: "exception".into(),
                            attributes: vec![
                                s("exception.type", "UpstreamUnavailable"),
                                s("exception.message", "inventory returned 503"),
                            ],
                            dropped_attributes_count: 0,
                        }]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                });
                let mut parent = root_id;
                for child in 1..8u64 {
                    let id = rng.id::<8>();
                    let cstart = start + child * 4_000_000;
                    let is_db = child % 2 == 1;
                    spans.push(Span {
                        trace_id: trace_id.clone(),
                        span_id: id.clone(),
                        parent_span_id: parent.clone(),
                        name: if is_db {
                            "SELECT orders".into()
                        } else {
                            "POST /reserve".into()
                        },
                        kind: span::SpanKind::Client as i32,
                        start_time_unix_nano: cstart,
                        end_time_unix_nano: cstart + 1_000_000 + rng.below(3_000_000),
                        flags: 0x101,
                        attributes: if is_db {
                            vec![
                                s("db.system.name", "postgresql"),
                                s("db.namespace", "orders"),
                                s("db.operation.name", "SELECT"),
                                s("db.query.text", "SELECT * FROM orders WHERE id = $1"),
                                s("server.address", "pg-primary.shop.internal"),
                                i("server.port", 5432),
                                i("db.response.returned_rows", rng.below(50) as i64),
                                i("thread.id", rng.below(16) as i64),
                                s("code.function.name", "orders::repo::find"),
                                b("db.cached", false),
                            ]
                        } else {
                            vec![
                                s("http.request.method", "POST"),
                                s("url.full", "https://inventory.shop.internal/api/reserve"),
                                s("server.address", "inventory.shop.internal"),
                                i("server.port", 443),
                                i("http.response.status_code", 200),
                                i("http.request.body.size", rng.below(4096) as i64),
                                i("http.request.resend_count", 0),
                                s("network.protocol.name", "http"),
                                s("network.protocol.version", "2"),
                                d("retry.backoff_ms", 12.5),
                            ]
                        },
                        status: Some(Status::default()),
                        ..Default::default()
                    });
                    // Alternate between siblings of the root and a chain.
                    if child % 3 == 0 {
                        parent = id;
                    }
                }
            }
            spans.truncate(per_service);
            ResourceSpans {
                resource: Some(resource(service, si)),
                scope_spans: vec![ScopeSpans {
                    scope: scope("opentelemetry-http"),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Stable label set number `n` of a metric: 10 attributes, unique per `n < 64`.
fn labels(n: usize, service: &str) -> Vec<KeyValue> {
    vec![
        s("http.request.method", METHODS[(n / 8) % 4]),
        s("http.route", ROUTES[n % 8]),
        i(
            "http.response.status_code",
            if (n / 32).is_multiple_of(2) { 200 } else { 500 },
        ),
        s("url.scheme", "https"),
        s("server.address", format!("{service}.shop.internal")),
        i("server.port", 443),
        s("network.protocol.name", "http"),
        s("network.protocol.version", "1.1"),
        s("deployment.region", "eu-west-1"),
        s("k8s.pod.name", format!("{service}-7c9f8d6b5-x2k4q")),
    ]
}

fn gen_metrics() -> ExportMetricsServiceRequest {
    // Per service: 32 gauge points + 64 monotonic cumulative sum points +
    // 32 histogram points = 128; 4 services = 512 points.
    let mut rng = Rng(0x6d65_7472);
    let start = T0 - 3_600_000_000_000;
    let time = T0;
    let bounds = vec![
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
    ];
    let resource_metrics = SERVICES
        .iter()
        .enumerate()
        .map(|(si, service)| {
            let gauge = Metric {
                name: "process.memory.usage".into(),
                unit: "By".into(),
                description: "Resident memory".into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: (0..32)
                        .map(|n| NumberDataPoint {
                            attributes: labels(n, service),
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsDouble(
                                150_000_000.0 + rng.below(50_000_000) as f64,
                            )),
                            ..Default::default()
                        })
                        .collect(),
                })),
                ..Default::default()
            };
            let sum = Metric {
                name: "http.server.request.count".into(),
                unit: "{request}".into(),
                data: Some(metric::Data::Sum(Sum {
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                    data_points: (0..64)
                        .map(|n| NumberDataPoint {
                            attributes: labels(n, service),
                            start_time_unix_nano: start,
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsInt(
                                (n as i64 + 1) * 1000 + rng.below(1000) as i64,
                            )),
                            ..Default::default()
                        })
                        .collect(),
                })),
                ..Default::default()
            };
            let histogram = Metric {
                name: "http.server.request.duration".into(),
                unit: "s".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    data_points: (0..32)
                        .map(|n| {
                            let bucket_counts: Vec<u64> =
                                (0..=bounds.len()).map(|_| rng.below(200)).collect();
                            let count = bucket_counts.iter().sum();
                            HistogramDataPoint {
                                attributes: labels(n, service),
                                start_time_unix_nano: start,
                                time_unix_nano: time,
                                count,
                                // A short decimal (`k / 1000`): serde_json without its
                                // `float_roundtrip` feature misreads some 17-digit
                                // doubles by 1 ulp, which the JSON check in `bodies`
                                // would flag (e.g. 1364.0 * 0.087 = 118.66799999999999).
                                sum: Some((count * 87) as f64 / 1000.0),
                                bucket_counts,
                                explicit_bounds: bounds.clone(),
                                min: Some(0.001),
                                max: Some(3.2),
                                ..Default::default()
                            }
                        })
                        .collect(),
                })),
                ..Default::default()
            };
            ResourceMetrics {
                resource: Some(resource(service, si)),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope("opentelemetry-metrics"),
                    metrics: vec![gauge, sum, histogram],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

fn gen_logs() -> ExportLogsServiceRequest {
    const TEMPLATES: [(i32, &str, &str); 6] = [
        (9, "INFO", "order {} created for customer c-{}"),
        (9, "INFO", "GET /api/orders/{} 200 in {}ms"),
        (13, "WARN", "retrying reservation for order {} (attempt {})"),
        (
            17,
            "ERROR",
            "inventory returned 503 for order {} after {}ms",
        ),
        (5, "DEBUG", "cache miss key=order:{} shard={}"),
        (9, "INFO", "payment {} authorised, amount {} EUR"),
    ];
    let mut rng = Rng(0x6c6f_6773);
    let per_service = ITEMS / SERVICES.len();
    let resource_logs = SERVICES
        .iter()
        .enumerate()
        .map(|(si, service)| {
            let log_records = (0..per_service)
                .map(|n| {
                    let (sev, text, tpl) = *rng.pick(&TEMPLATES);
                    let (a, b2) = (rng.below(100_000), rng.below(1000));
                    let body =
                        tpl.replacen("{}", &a.to_string(), 1)
                            .replacen("{}", &b2.to_string(), 1);
                    let t = T0 + n as u64 * 1_000_000 + rng.below(1_000_000);
                    let with_ctx = n % 2 == 0;
                    LogRecord {
                        time_unix_nano: t,
                        observed_time_unix_nano: t + 50_000,
                        severity_number: sev,
                        severity_text: text.into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(body)),
                        }),
                        attributes: vec![
                            s("code.function.name", format!("{service}::handler")),
                            s("code.file.path", "src/handler.rs"),
                            i("code.line.number", 40 + rng.below(200) as i64),
                            s(
                                "thread.name",
                                format!("tokio-runtime-worker-{}", rng.below(4)),
                            ),
                            i("order.id", a as i64),
                            s("log.logger", format!("{service}.http")),
                            s("http.route", *rng.pick(&ROUTES)),
                            s("http.request.method", *rng.pick(&METHODS)),
                            d("duration_ms", b2 as f64 + 0.25),
                            b("sampled", with_ctx),
                        ],
                        trace_id: if with_ctx { rng.id::<16>() } else { Vec::new() },
                        span_id: if with_ctx { rng.id::<8>() } else { Vec::new() },
                        flags: u32::from(with_ctx),
                        ..Default::default()
                    }
                })
                .collect();
            ResourceLogs {
                resource: Some(resource(service, si)),
                scope_logs: vec![ScopeLogs {
                    scope: scope("tracing-opentelemetry"),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// OTLP/JSON bodies of the generated requests, by the library's encoder.
fn traces_json(req: &ExportTraceServiceRequest) -> Vec<u8> {
    serde_json::to_vec(&json_encode::encode_traces(req)).expect("a JSON value serializes")
}

fn metrics_json(req: &ExportMetricsServiceRequest) -> Vec<u8> {
    serde_json::to_vec(&json_encode::encode_metrics(req)).expect("a JSON value serializes")
}

fn logs_json(req: &ExportLogsServiceRequest) -> Vec<u8> {
    serde_json::to_vec(&json_encode::encode_logs(req)).expect("a JSON value serializes")
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

/// The request of one signal, in both encodings.
struct Bodies {
    proto: Vec<u8>,
    json: Vec<u8>,
}

fn bodies<M: Message + PartialEq + std::fmt::Debug>(
    req: &M,
    to_json: fn(&M) -> Vec<u8>,
    from_json: fn(&[u8]) -> json::Result<M>,
) -> Bodies {
    let bodies = Bodies {
        proto: req.encode_to_vec(),
        json: to_json(req),
    };
    let decoded = from_json(&bodies.json).expect("generated OTLP/JSON body decodes");
    if decoded != *req {
        let (a, b) = (format!("{req:#?}"), format!("{decoded:#?}"));
        let diff = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map(|(n, (x, y))| {
                format!(
                    "line {n}: generated `{}` vs decoded `{}`",
                    x.trim(),
                    y.trim()
                )
            })
            .unwrap_or_else(|| "lengths differ".into());
        panic!("OTLP/JSON body does not decode to the generated request: {diff}");
    }
    bodies
}

fn bench_traces(c: &mut Criterion) {
    let ctx = TenantContext::default();
    let req = gen_traces();
    let bodies = bodies(&req, traces_json, json::decode_traces);
    let check = convert_traces(&req, &ctx).unwrap();
    assert_eq!(
        check.summary.accepted(),
        ITEMS as u64,
        "every generated span is valid"
    );

    let mut g = c.benchmark_group("traces");
    g.throughput(Throughput::Elements(ITEMS as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(&bodies.proto[..])).unwrap())
    });
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            let req = ExportTraceServiceRequest::decode(black_box(&bodies.proto[..])).unwrap();
            convert_traces(&req, &ctx).unwrap()
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| json::decode_traces(black_box(&bodies.json)).unwrap())
    });
    g.bench_function("json_decode_convert", |b| {
        b.iter(|| {
            let req = json::decode_traces(black_box(&bodies.json)).unwrap();
            convert_traces(&req, &ctx).unwrap()
        })
    });
    g.finish();
}

fn bench_metrics(c: &mut Criterion) {
    let ctx = TenantContext::default();
    let req = gen_metrics();
    let bodies = bodies(&req, metrics_json, json::decode_metrics);
    let points: usize = req
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match m.data.as_ref().unwrap() {
            metric::Data::Gauge(g) => g.data_points.len(),
            metric::Data::Sum(s) => s.data_points.len(),
            metric::Data::Histogram(h) => h.data_points.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(points, ITEMS);
    let check = convert_metrics(&req, &ctx, &ShardedCounterStore::new(1 << 16)).unwrap();
    assert_eq!(
        check.summary.accepted(),
        ITEMS as u64,
        "every generated point is valid"
    );

    // A fresh counter store per iteration: the same request sent again would
    // otherwise be judged against the state of the previous iteration. Its
    // construction (16 empty shards) is negligible next to the conversion.
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(ITEMS as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| ExportMetricsServiceRequest::decode(black_box(&bodies.proto[..])).unwrap())
    });
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            let counters = ShardedCounterStore::new(1 << 16);
            let req = ExportMetricsServiceRequest::decode(black_box(&bodies.proto[..])).unwrap();
            convert_metrics(&req, &ctx, &counters).unwrap()
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| json::decode_metrics(black_box(&bodies.json)).unwrap())
    });
    g.bench_function("json_decode_convert", |b| {
        b.iter(|| {
            let counters = ShardedCounterStore::new(1 << 16);
            let req = json::decode_metrics(black_box(&bodies.json)).unwrap();
            convert_metrics(&req, &ctx, &counters).unwrap()
        })
    });
    g.finish();
}

fn bench_logs(c: &mut Criterion) {
    let ctx = TenantContext::default();
    let req = gen_logs();
    let bodies = bodies(&req, logs_json, json::decode_logs);
    let check = convert_logs(&req, &ctx).unwrap();
    assert_eq!(
        check.summary.accepted(),
        ITEMS as u64,
        "every generated log record is valid"
    );

    let mut g = c.benchmark_group("logs");
    g.throughput(Throughput::Elements(ITEMS as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| ExportLogsServiceRequest::decode(black_box(&bodies.proto[..])).unwrap())
    });
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            let req = ExportLogsServiceRequest::decode(black_box(&bodies.proto[..])).unwrap();
            convert_logs(&req, &ctx).unwrap()
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| json::decode_logs(black_box(&bodies.json)).unwrap())
    });
    g.bench_function("json_decode_convert", |b| {
        b.iter(|| {
            let req = json::decode_logs(black_box(&bodies.json)).unwrap();
            convert_logs(&req, &ctx).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_traces, bench_metrics, bench_logs);
criterion_main!(benches);
