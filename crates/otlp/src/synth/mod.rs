//! Deterministic synthetic OTLP workloads (by seed) for the load generator,
//! the benchmarks and fuzz seeds: spans with service/route/status/HTTP
//! attributes and parent/child structure, metric series of all five types
//! with stable label sets, logs with templated bodies and severities.
//! [`every_field`] fills in what these leave at defaults, for round-trip
//! tests and fuzz seeds.

pub mod every_field;
#[cfg(test)]
pub(crate) mod seeds;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

/// The services, routes and methods the synthetic workloads use.
pub const SERVICES: [&str; 4] = ["checkout", "cart", "payment", "frontend"];
pub const ROUTES: [&str; 6] = [
    "/",
    "/cart",
    "/cart/add",
    "/checkout",
    "/pay",
    "/product/{id}",
];
pub const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const BODIES: [&str; 5] = [
    "request completed",
    "cache miss for key {}",
    "payment declined: insufficient funds",
    "retrying upstream call, attempt {}",
    "connection reset by peer",
];

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(k: &str, v: impl Into<String>) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

fn i(k: &str, v: i64) -> KeyValue {
    kv(k, any_value::Value::IntValue(v))
}

/// A synthetic metric named `name` (described as such) holding `data`.
pub fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("synthetic {name}"),
        data: Some(data),
        ..Default::default()
    }
}

/// xorshift64*: the one pseudo-random source of the generators (seeded,
/// reproducible, not for anything that needs unpredictability).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seeded generator; the same seed gives the same requests.
#[derive(Debug, Clone)]
pub struct Synth {
    rng: Rng,
    /// Event time of the next item (Unix ns); advances 1 ms per item.
    pub now: u64,
    counter: u64,
}

impl Synth {
    /// `start` is the event time of the first item (Unix ns).
    pub fn new(seed: u64, start: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            now: start,
            counter: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng.next()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn tick(&mut self) -> u64 {
        self.now += 1_000_000;
        self.now
    }

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![
                s("service.name", service),
                s("service.version", "1.4.2"),
                s("deployment.environment", "production"),
                s("host.name", format!("{service}-7d9f8b-x2k4p")),
                s("telemetry.sdk.language", "rust"),
            ],
            ..Default::default()
        })
    }

    fn scope() -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: "telemetryflow.synth".into(),
            version: "0.1.0".into(),
            ..Default::default()
        })
    }

    /// About `n` spans in traces of 8 (a server root and its children), ~10
    /// attributes each, grouped by service.
    pub fn traces(&mut self, n: usize) -> ExportTraceServiceRequest {
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        let mut made = 0;
        while made < n {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&self.next().to_be_bytes());
            trace_id[8..].copy_from_slice(&self.next().to_be_bytes());
            let root_id = self.next().max(1).to_be_bytes();
            let start = self.tick();
            let svc = (self.next() % SERVICES.len() as u64) as usize;
            let route = self.pick(&ROUTES);
            let method = self.pick(&METHODS);
            let error = self.next().is_multiple_of(50);
            for k in 0..8.min(n - made) {
                let id = if k == 0 {
                    root_id
                } else {
                    self.next().max(1).to_be_bytes()
                };
                let dur = 1_000_000 + self.next() % 50_000_000;
                let status_code = if error && k == 0 { 500 } else { 200 };
                let span = Span {
                    trace_id: trace_id.to_vec(),
                    span_id: id.to_vec(),
                    parent_span_id: if k == 0 { Vec::new() } else { root_id.to_vec() },
                    name: if k == 0 {
                        format!("{method} {route}")
                    } else {
                        format!(
                            "SELECT {}",
                            self.pick(&["orders", "carts", "users", "items"])
                        )
                    },
                    kind: if k == 0 { 2 } else { 3 },
                    start_time_unix_nano: start + k as u64 * 1000,
                    end_time_unix_nano: start + k as u64 * 1000 + dur,
                    attributes: vec![
                        s("http.request.method", method),
                        s("http.route", route),
                        i("http.response.status_code", status_code),
                        s("url.scheme", "https"),
                        s("server.address", "shop.example.com"),
                        i("server.port", 443),
                        s("network.protocol.version", "1.1"),
                        s("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                        s(
                            "client.address",
                            format!("10.0.{}.{}", self.next() % 256, self.next() % 256),
                        ),
                        i("app.items", (self.next() % 20) as i64),
                    ],
                    status: Some(Status {
                        code: if error && k == 0 { 2 } else { 0 },
                        message: if error && k == 0 {
                            "internal error".into()
                        } else {
                            String::new()
                        },
                    }),
                    events: if error && k == 0 {
                        vec![span::Event {
                            time_unix_nano: start + dur / 2,
                            name: "exception".into(),
                            attributes: vec![s("exception.type", "TimeoutError")],
                            dropped_attributes_count: 0,
                        }]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                };
                by_service[svc].push(span);
                made += 1;
            }
        }
        ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .enumerate()
                .filter(|(_, spans)| !spans.is_empty())
                .map(|(k, spans)| ResourceSpans {
                    resource: Self::resource(SERVICES[k]),
                    scope_spans: vec![ScopeSpans {
                        scope: Self::scope(),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn labels(&mut self, series: u64) -> Vec<KeyValue> {
        vec![
            s(
                "http.route",
                ROUTES[(series % ROUTES.len() as u64) as usize],
            ),
            s(
                "http.request.method",
                METHODS[(series % METHODS.len() as u64) as usize],
            ),
            i(
                "http.response.status_code",
                if series.is_multiple_of(7) { 500 } else { 200 },
            ),
            s("instance", format!("i-{:03}", series % 16)),
        ]
    }

    /// About `n` data points over metrics of all five types (sums are delta,
    /// so repeated requests never break the counter rule), ~4 labels each.
    pub fn metrics(&mut self, n: usize) -> ExportMetricsServiceRequest {
        let per = (n / 5).max(1);
        let mut metrics = Vec::new();
        let start = self.now;
        let mut gauge = Vec::with_capacity(per);
        let mut sum = Vec::with_capacity(per);
        let mut hist = Vec::with_capacity(per);
        let mut exp = Vec::with_capacity(per);
        let mut summ = Vec::with_capacity(per);
        for k in 0..per as u64 {
            let t = self.tick();
            let series = k % 64;
            let attrs = self.labels(series);
            gauge.push(NumberDataPoint {
                attributes: attrs.clone(),
                time_unix_nano: t,
                value: Some(number_data_point::Value::AsDouble(
                    (self.next() % 10_000) as f64 / 100.0,
                )),
                ..Default::default()
            });
            sum.push(NumberDataPoint {
                attributes: attrs.clone(),
                start_time_unix_nano: start,
                time_unix_nano: t,
                value: Some(number_data_point::Value::AsInt((self.next() % 100) as i64)),
                ..Default::default()
            });
            let counts: Vec<u64> = (0..8).map(|_| self.next() % 50).collect();
            hist.push(HistogramDataPoint {
                attributes: attrs.clone(),
                start_time_unix_nano: start,
                time_unix_nano: t,
                count: counts.iter().sum(),
                sum: Some((self.next() % 100_000) as f64),
                bucket_counts: counts,
                explicit_bounds: vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
                min: Some(0.5),
                max: Some(750.0),
                ..Default::default()
            });
            exp.push(ExponentialHistogramDataPoint {
                attributes: attrs.clone(),
                start_time_unix_nano: start,
                time_unix_nano: t,
                count: 10,
                sum: Some(42.0),
                scale: 3,
                zero_count: 1,
                positive: Some(exponential_histogram_data_point::Buckets {
                    offset: 2,
                    bucket_counts: vec![1, 2, 3, 2, 1],
                }),
                ..Default::default()
            });
            summ.push(SummaryDataPoint {
                attributes: attrs,
                start_time_unix_nano: start,
                time_unix_nano: t,
                count: 100,
                sum: 1234.5,
                quantile_values: vec![
                    summary_data_point::ValueAtQuantile {
                        quantile: 0.5,
                        value: 10.0,
                    },
                    summary_data_point::ValueAtQuantile {
                        quantile: 0.99,
                        value: 99.0,
                    },
                ],
                ..Default::default()
            });
        }
        let m = metric;
        metrics.push(m(
            "system.cpu.utilization",
            "1",
            metric::Data::Gauge(Gauge { data_points: gauge }),
        ));
        metrics.push(m(
            "http.server.requests",
            "{request}",
            metric::Data::Sum(Sum {
                data_points: sum,
                aggregation_temporality: 1,
                is_monotonic: true,
            }),
        ));
        metrics.push(m(
            "http.server.request.duration",
            "ms",
            metric::Data::Histogram(Histogram {
                data_points: hist,
                aggregation_temporality: 1,
            }),
        ));
        metrics.push(m(
            "rpc.client.duration",
            "ms",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: exp,
                aggregation_temporality: 1,
            }),
        ));
        metrics.push(m(
            "gc.pause",
            "ms",
            metric::Data::Summary(Summary { data_points: summ }),
        ));
        let service = self.pick(&SERVICES);
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Self::resource(service),
                scope_metrics: vec![ScopeMetrics {
                    scope: Self::scope(),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// `n` log records with templated bodies, severities and trace context.
    pub fn logs(&mut self, n: usize) -> ExportLogsServiceRequest {
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let t = self.tick();
            let sev = [9, 9, 9, 13, 17][(self.next() % 5) as usize];
            let body = self
                .pick(&BODIES)
                .replace("{}", &(self.next() % 1000).to_string());
            self.counter += 1;
            records.push(LogRecord {
                time_unix_nano: t,
                observed_time_unix_nano: t + 1000,
                severity_number: sev,
                severity_text: match sev {
                    9 => "INFO",
                    13 => "WARN",
                    _ => "ERROR",
                }
                .into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                attributes: vec![
                    s("logger", "app.handlers"),
                    s("thread.name", "tokio-runtime-worker"),
                    i("request.seq", self.counter as i64),
                    s("http.route", self.pick(&ROUTES)),
                ],
                trace_id: self.next().to_be_bytes().repeat(2),
                span_id: self.next().max(1).to_be_bytes().to_vec(),
                flags: 1,
                ..Default::default()
            });
        }
        let service = self.pick(&SERVICES);
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Self::resource(service),
                scope_logs: vec![ScopeLogs {
                    scope: Self::scope(),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_by_seed_and_sized_as_asked() {
        let a = Synth::new(7, 1_000).traces(512);
        let b = Synth::new(7, 1_000).traces(512);
        assert_eq!(a, b);
        let spans: usize = a
            .resource_spans
            .iter()
            .map(|r| r.scope_spans[0].spans.len())
            .sum();
        assert_eq!(spans, 512);
        assert_ne!(a, Synth::new(8, 1_000).traces(512));
        let m = Synth::new(1, 1_000).metrics(500);
        let points: usize = m.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| match m.data.as_ref().unwrap() {
                metric::Data::Gauge(g) => g.data_points.len(),
                metric::Data::Sum(s) => s.data_points.len(),
                metric::Data::Histogram(h) => h.data_points.len(),
                metric::Data::ExponentialHistogram(e) => e.data_points.len(),
                metric::Data::Summary(s) => s.data_points.len(),
            })
            .sum();
        assert_eq!(points, 500);
        assert_eq!(
            Synth::new(1, 1_000).logs(512).resource_logs[0].scope_logs[0]
                .log_records
                .len(),
            512
        );
    }
}
