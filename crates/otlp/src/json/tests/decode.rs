//! Decoding whole requests: every field set, snake_case keys, and the
//! specification's examples under `testdata/otlp-json/`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use serde_json::Value;

use crate::json::*;
use any_value::Value as V;

use super::fixtures::*;

// ----- round trips over every field ------------------------------------

#[test]
fn full_traces_round_trip() {
    assert_eq!(
        decode_traces(&bytes(&full_traces_json())).unwrap(),
        full_traces()
    );
}

#[test]
fn full_metrics_round_trip() {
    assert_eq!(
        decode_metrics(&bytes(&full_metrics_json())).unwrap(),
        full_metrics()
    );
}

#[test]
fn full_logs_round_trip() {
    assert_eq!(decode_logs(&bytes(&full_logs_json())).unwrap(), full_logs());
}

#[test]
fn snake_case_keys_everywhere() {
    let t = snake_keys(&full_traces_json());
    assert!(t.to_string().contains("\"start_time_unix_nano\""));
    assert!(t.to_string().contains("\"string_value_strindex\""));
    assert_eq!(decode_traces(&bytes(&t)).unwrap(), full_traces());
    let m = snake_keys(&full_metrics_json());
    assert!(m.to_string().contains("\"exponential_histogram\""));
    assert_eq!(decode_metrics(&bytes(&m)).unwrap(), full_metrics());
    let l = snake_keys(&full_logs_json());
    assert!(l.to_string().contains("\"observed_time_unix_nano\""));
    assert_eq!(decode_logs(&bytes(&l)).unwrap(), full_logs());
}

/// Every key of the full samples is consumed: removing any one of them
/// changes the decoded message (catches misspelled / forgotten field names).
#[test]
fn every_key_of_full_samples_is_read() {
    fn check<T: PartialEq + std::fmt::Debug>(sample: Value, decode: fn(&[u8]) -> Result<T>) {
        let full = decode(&bytes(&sample)).unwrap();
        let (mut nodes, mut members) = (Vec::new(), Vec::new());
        walk(&sample, String::new(), &mut nodes, &mut members);
        assert!(members.len() > 50);
        for (parent, key) in members {
            let mut v = sample.clone();
            v.pointer_mut(&parent)
                .and_then(Value::as_object_mut)
                .unwrap()
                .remove(&key);
            let got = decode(&bytes(&v)).unwrap();
            assert_ne!(got, full, "removing {parent}/{key} changed nothing");
        }
    }
    check(full_traces_json(), decode_traces);
    check(full_metrics_json(), decode_metrics);
    check(full_logs_json(), decode_logs);
    check(snake_keys(&full_logs_json()), decode_logs);
}

// ----- OTLP spec examples (opentelemetry-proto/examples) ---------------

#[test]
fn spec_trace_example() {
    assert_eq!(
        decode_traces(SPEC_TRACE.as_bytes()).unwrap(),
        spec_trace_expected()
    );
    // Older revision of the example used JSON numbers for the timestamps.
    let numeric = SPEC_TRACE
        .replace("\"1544712660000000000\"", "1544712660000000000")
        .replace("\"1544712661000000000\"", "1544712661000000000");
    assert_ne!(numeric, SPEC_TRACE);
    assert_eq!(
        decode_traces(numeric.as_bytes()).unwrap(),
        spec_trace_expected()
    );
}

/// The spec example (sum, gauge, histogram, exponential histogram) plus a
/// summary metric appended, since the spec example has none.
const SPEC_METRICS: &str = include_str!("../../../../../testdata/otlp-json/spec_metrics.json");

#[test]
fn spec_metrics_example_all_five_types() {
    const T: u64 = 1_544_712_660_300_000_000;
    let m = |name: &str, unit: &str, description: &str, data: metric::Data| Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        metadata: vec![],
        data: Some(data),
    };
    let expected = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(spec_resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(spec_scope()),
                metrics: vec![
                    m(
                        "my.counter",
                        "1",
                        "I am a Counter",
                        metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("my.counter.attr", s("some value"))],
                                start_time_unix_nano: T,
                                time_unix_nano: T,
                                exemplars: vec![],
                                flags: 0,
                                value: Some(number_data_point::Value::AsDouble(5.0)),
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        }),
                    ),
                    m(
                        "my.gauge",
                        "1",
                        "I am a Gauge",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("my.gauge.attr", s("some value"))],
                                start_time_unix_nano: 0,
                                time_unix_nano: T,
                                exemplars: vec![],
                                flags: 0,
                                value: Some(number_data_point::Value::AsDouble(10.0)),
                            }],
                        }),
                    ),
                    m(
                        "my.histogram",
                        "1",
                        "I am a Histogram",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: vec![kv("my.histogram.attr", s("some value"))],
                                start_time_unix_nano: T,
                                time_unix_nano: T,
                                count: 2,
                                sum: Some(2.0),
                                bucket_counts: vec![1, 1],
                                explicit_bounds: vec![1.0],
                                exemplars: vec![],
                                flags: 0,
                                min: Some(0.0),
                                max: Some(2.0),
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        }),
                    ),
                    m(
                        "my.exponential.histogram",
                        "1",
                        "I am an Exponential Histogram",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: vec![kv(
                                    "my.exponential.histogram.attr",
                                    s("some value"),
                                )],
                                start_time_unix_nano: T,
                                time_unix_nano: T,
                                count: 3,
                                sum: Some(10.0),
                                scale: 0,
                                zero_count: 1,
                                positive: Some(exponential_histogram_data_point::Buckets {
                                    offset: 1,
                                    bucket_counts: vec![0, 2],
                                }),
                                negative: None,
                                flags: 0,
                                exemplars: vec![],
                                min: Some(0.0),
                                max: Some(5.0),
                                zero_threshold: 0.0,
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        }),
                    ),
                    m(
                        "my.summary",
                        "ms",
                        "I am a Summary",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: vec![kv("my.summary.attr", s("some value"))],
                                start_time_unix_nano: T,
                                time_unix_nano: T,
                                count: 4,
                                sum: 12.5,
                                quantile_values: vec![
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.0,
                                        value: 1.0,
                                    },
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 1.5,
                                    },
                                ],
                                flags: 0,
                            }],
                        }),
                    ),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    assert_eq!(decode_metrics(SPEC_METRICS.as_bytes()).unwrap(), expected);
}

const SPEC_LOGS: &str = include_str!("../../../../../testdata/otlp-json/spec_logs.json");

#[test]
fn spec_logs_example() {
    const T: u64 = 1_544_712_660_300_000_000;
    let expected = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(spec_resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(spec_scope()),
                log_records: vec![LogRecord {
                    time_unix_nano: T,
                    observed_time_unix_nano: T,
                    severity_number: 0,
                    severity_text: "Information".into(),
                    body: Some(av(s("Example log record"))),
                    attributes: vec![
                        kv("string.attribute", s("some string")),
                        kv("boolean.attribute", V::BoolValue(true)),
                        kv("int.attribute", V::IntValue(10)),
                        kv("double.attribute", V::DoubleValue(637.704)),
                        kv(
                            "array.attribute",
                            V::ArrayValue(ArrayValue {
                                values: vec![av(s("many")), av(s("values"))],
                            }),
                        ),
                        kv(
                            "map.attribute",
                            V::KvlistValue(KeyValueList {
                                values: vec![kv("some.map.key", s("some value"))],
                            }),
                        ),
                    ],
                    dropped_attributes_count: 0,
                    flags: 0,
                    trace_id: h("5b8efff798038103d269b633813fc60c"),
                    span_id: h("eee19b7ec3c1b174"),
                    event_name: String::new(),
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    assert_eq!(decode_logs(SPEC_LOGS.as_bytes()).unwrap(), expected);
}

#[test]
fn spec_events_example() {
    let body = r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "eventName": "browser.page_view",
        "timeUnixNano": "1544712660300000000",
        "observedTimeUnixNano": "1544712660300000000",
        "severityNumber": 9,
        "severityText": "test severity text",
        "attributes": [{"key": "event.attribute", "value": {"stringValue": "some event attribute"}}],
        "body": {"kvlistValue": {"values": [
            {"key": "type", "value": {"intValue": "0"}},
            {"key": "url", "value": {"stringValue": "https://example.com/"}}
        ]}}
    }]}]}]}"#;
    let req = decode_logs(body.as_bytes()).unwrap();
    let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(rec.event_name, "browser.page_view");
    assert_eq!(rec.severity_number, SeverityNumber::Info as i32);
    assert_eq!(
        rec.body,
        Some(av(V::KvlistValue(KeyValueList {
            values: vec![
                kv("type", V::IntValue(0)),
                kv("url", s("https://example.com/")),
            ],
        })))
    );
    assert!(req.resource_logs[0].resource.is_none());
    assert!(req.resource_logs[0].scope_logs[0].scope.is_none());
}

// ----- the shared fixtures under testdata/otlp-json ----------------------

/// Every shared fixture decodes as the signal its name announces (all three
/// when it names none); `bad_id_lengths_*` is refused naming the id's path;
/// `rejections_*` decode, and the domain rules then reject part of them;
/// the specification's and the SDKs' requests are accepted whole.
#[test]
fn shared_fixtures_decode_as_named() {
    use crate::convert::{convert_logs, convert_metrics, convert_traces};
    use tf_application::commands::ShardedCounterStore;
    use tf_domain::TenantContext;

    let fixtures = crate::synth::seeds::fixtures();
    assert!(fixtures.len() >= 15, "{} fixtures", fixtures.len());
    let ctx = TenantContext::default();
    for (name, body) in fixtures {
        if name.starts_with("bad_id_lengths") {
            let (path, message) = invalid(decode_traces(&body));
            assert!(path.contains("Id"), "{name}: {path}: {message}");
            continue;
        }
        let named = |s: &str| {
            name.contains(s)
                || !["traces", "metrics", "logs"]
                    .iter()
                    .any(|s| name.contains(s))
        };
        let mut rejected = 0;
        if named("traces") {
            let req = decode_traces(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            rejected += convert_traces(&req, &ctx).unwrap().summary.rejected();
        }
        if named("metrics") {
            let req = decode_metrics(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let counters = ShardedCounterStore::new(1000);
            rejected += convert_metrics(&req, &ctx, &counters)
                .unwrap()
                .summary
                .rejected();
        }
        if named("logs") {
            let req = decode_logs(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            rejected += convert_logs(&req, &ctx).unwrap().summary.rejected();
        }
        if name.starts_with("rejections") {
            assert!(rejected > 0, "{name}: nothing rejected");
        } else if name.starts_with("spec_") || name.starts_with("sdk_") {
            assert_eq!(rejected, 0, "{name}");
        }
    }
}
