use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary, SummaryDataPoint, exemplar, exponential_histogram_data_point, metric,
    number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::Value;

use crate::json::*;
use any_value::Value as V;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use serde_json::json;
use tf_domain::telemetry::MAX_ANY_VALUE_DEPTH;

// ----- helpers ---------------------------------------------------------

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn av(v: V) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn kv(key: &str, v: V) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(av(v)),
        key_strindex: 0,
    }
}

fn s(x: &str) -> V {
    V::StringValue(x.into())
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Asserts an `Invalid` error and returns (path, message).
#[track_caller]
fn invalid<T: std::fmt::Debug>(r: Result<T>) -> (String, String) {
    match r {
        Err(JsonError::Invalid { path, message }) => (path, message),
        other => panic!("expected JsonError::Invalid, got {other:?}"),
    }
}

fn camel_to_snake(k: &str) -> String {
    let mut out = String::new();
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rewrites every object key from lowerCamelCase to the proto (snake_case) name.
fn snake_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (camel_to_snake(k), snake_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(snake_keys).collect()),
        other => other.clone(),
    }
}

/// JSON pointers of every node, and of every object member as (parent, key).
fn walk(v: &Value, ptr: String, nodes: &mut Vec<String>, members: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                members.push((ptr.clone(), k.clone()));
                let esc = k.replace('~', "~0").replace('/', "~1");
                walk(child, format!("{ptr}/{esc}"), nodes, members);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, format!("{ptr}/{i}"), nodes, members);
            }
        }
        _ => {}
    }
    nodes.push(ptr);
}

// ----- shared fixtures -------------------------------------------------

fn rich_attrs_json() -> Value {
    json!([
        {"key": "str", "value": {"stringValue": "s"}},
        {"key": "bool", "value": {"boolValue": true}},
        {"key": "int_s", "value": {"intValue": "-7"}},
        {"key": "int_n", "value": {"intValue": 42}},
        {"key": "dbl", "value": {"doubleValue": 1.5}},
        {"key": "dbl_inf", "value": {"doubleValue": "-Infinity"}},
        {"key": "bytes", "value": {"bytesValue": "AQID/w=="}},
        {"key": "arr", "value": {"arrayValue": {"values": [
            {"stringValue": "a"}, {"intValue": "1"}, {}
        ]}}},
        {"key": "map", "value": {"kvlistValue": {"values": [
            {"key": "inner", "value": {"boolValue": false}},
            {"key": "deeper", "value": {"kvlistValue": {"values": [
                {"key": "x", "value": {"doubleValue": 2.0}}
            ]}}}
        ]}}},
        {"key": "empty", "value": {}},
        {"key": "novalue"},
        {"key": "idx", "keyStrindex": 5, "value": {"stringValueStrindex": 9}}
    ])
}

fn rich_attrs() -> Vec<KeyValue> {
    vec![
        kv("str", s("s")),
        kv("bool", V::BoolValue(true)),
        kv("int_s", V::IntValue(-7)),
        kv("int_n", V::IntValue(42)),
        kv("dbl", V::DoubleValue(1.5)),
        kv("dbl_inf", V::DoubleValue(f64::NEG_INFINITY)),
        kv("bytes", V::BytesValue(vec![1, 2, 3, 255])),
        kv(
            "arr",
            V::ArrayValue(ArrayValue {
                values: vec![av(s("a")), av(V::IntValue(1)), AnyValue { value: None }],
            }),
        ),
        kv(
            "map",
            V::KvlistValue(KeyValueList {
                values: vec![
                    kv("inner", V::BoolValue(false)),
                    kv(
                        "deeper",
                        V::KvlistValue(KeyValueList {
                            values: vec![kv("x", V::DoubleValue(2.0))],
                        }),
                    ),
                ],
            }),
        ),
        KeyValue {
            key: "empty".into(),
            value: Some(AnyValue { value: None }),
            key_strindex: 0,
        },
        KeyValue {
            key: "novalue".into(),
            value: None,
            key_strindex: 0,
        },
        KeyValue {
            key: "idx".into(),
            value: Some(av(V::StringValueStrindex(9))),
            key_strindex: 5,
        },
    ]
}

fn full_resource_json() -> Value {
    json!({
        "attributes": rich_attrs_json(),
        "droppedAttributesCount": 1,
        "entityRefs": [{
            "schemaUrl": "https://entity",
            "type": "service",
            "idKeys": ["service.name", "service.namespace"],
            "descriptionKeys": ["service.version"]
        }]
    })
}

fn full_resource() -> Resource {
    Resource {
        attributes: rich_attrs(),
        dropped_attributes_count: 1,
        entity_refs: vec![EntityRef {
            schema_url: "https://entity".into(),
            r#type: "service".into(),
            id_keys: vec!["service.name".into(), "service.namespace".into()],
            description_keys: vec!["service.version".into()],
        }],
    }
}

fn full_scope_json() -> Value {
    json!({
        "name": "lib",
        "version": "1.2.3",
        "attributes": [{"key": "scope.attr", "value": {"stringValue": "x"}}],
        "droppedAttributesCount": "2"
    })
}

fn full_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "lib".into(),
        version: "1.2.3".into(),
        attributes: vec![kv("scope.attr", s("x"))],
        dropped_attributes_count: 2,
    }
}

fn spec_resource() -> Resource {
    Resource {
        attributes: vec![kv("service.name", s("my.service"))],
        dropped_attributes_count: 0,
        entity_refs: vec![],
    }
}

fn spec_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "my.library".into(),
        version: "1.0.0".into(),
        attributes: vec![kv("my.scope.attribute", s("some scope attribute"))],
        dropped_attributes_count: 0,
    }
}

// ----- full ("every field set") samples --------------------------------

fn full_traces_json() -> Value {
    json!({"resourceSpans": [{
        "resource": full_resource_json(),
        "scopeSpans": [{
            "scope": full_scope_json(),
            "spans": [{
                "traceId": "0102030405060708090A0B0C0D0E0F10",
                "spanId": "1112131415161718",
                "traceState": "vendor=value",
                "parentSpanId": "21222324252627aB",
                "flags": 769,
                "name": "GET /",
                "kind": "SPAN_KIND_CLIENT",
                "startTimeUnixNano": "1700000000000000001",
                "endTimeUnixNano": 1_700_000_000_000_000_002u64,
                "attributes": rich_attrs_json(),
                "droppedAttributesCount": 3,
                "events": [{
                    "timeUnixNano": "1700000000000000003",
                    "name": "exception",
                    "attributes": [{"key": "e", "value": {"intValue": "1"}}],
                    "droppedAttributesCount": 4
                }],
                "droppedEventsCount": 5,
                "links": [{
                    "traceId": "a1a2a3a4a5a6a7a8a9aaabacadaeafb0",
                    "spanId": "b1b2b3b4b5b6b7b8",
                    "traceState": "l=1",
                    "attributes": [{"key": "l", "value": {"boolValue": true}}],
                    "droppedAttributesCount": 6,
                    "flags": 256
                }],
                "droppedLinksCount": 7,
                "status": {"message": "boom", "code": "STATUS_CODE_ERROR"}
            }],
            "schemaUrl": "https://opentelemetry.io/schemas/1.2.0"
        }],
        "schemaUrl": "https://opentelemetry.io/schemas/1.1.0"
    }]})
}

fn full_traces() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(full_resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(full_scope()),
                spans: vec![Span {
                    trace_id: h("0102030405060708090a0b0c0d0e0f10"),
                    span_id: h("1112131415161718"),
                    trace_state: "vendor=value".into(),
                    parent_span_id: h("21222324252627ab"),
                    flags: 769,
                    name: "GET /".into(),
                    kind: span::SpanKind::Client as i32,
                    start_time_unix_nano: 1_700_000_000_000_000_001,
                    end_time_unix_nano: 1_700_000_000_000_000_002,
                    attributes: rich_attrs(),
                    dropped_attributes_count: 3,
                    events: vec![span::Event {
                        time_unix_nano: 1_700_000_000_000_000_003,
                        name: "exception".into(),
                        attributes: vec![kv("e", V::IntValue(1))],
                        dropped_attributes_count: 4,
                    }],
                    dropped_events_count: 5,
                    links: vec![span::Link {
                        trace_id: h("a1a2a3a4a5a6a7a8a9aaabacadaeafb0"),
                        span_id: h("b1b2b3b4b5b6b7b8"),
                        trace_state: "l=1".into(),
                        attributes: vec![kv("l", V::BoolValue(true))],
                        dropped_attributes_count: 6,
                        flags: 256,
                    }],
                    dropped_links_count: 7,
                    status: Some(Status {
                        message: "boom".into(),
                        code: status::StatusCode::Error as i32,
                    }),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.2.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.1.0".into(),
        }],
    }
}

fn ex_double_json() -> Value {
    json!({
        "filteredAttributes": [{"key": "f", "value": {"stringValue": "v"}}],
        "timeUnixNano": "3",
        "spanId": "c1c2c3c4c5c6c7c8",
        "traceId": "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0",
        "asDouble": 0.5
    })
}

fn ex_double() -> Exemplar {
    Exemplar {
        filtered_attributes: vec![kv("f", s("v"))],
        time_unix_nano: 3,
        span_id: h("c1c2c3c4c5c6c7c8"),
        trace_id: h("d1d2d3d4d5d6d7d8d9dadbdcdddedfe0"),
        value: Some(exemplar::Value::AsDouble(0.5)),
    }
}

fn ex_int_json() -> Value {
    json!({
        "filteredAttributes": [{"key": "g", "value": {"intValue": 1}}],
        "timeUnixNano": 4,
        "spanId": "E1E2E3E4E5E6E7E8",
        "traceId": "F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF00",
        "asInt": "-9"
    })
}

fn ex_int() -> Exemplar {
    Exemplar {
        filtered_attributes: vec![kv("g", V::IntValue(1))],
        time_unix_nano: 4,
        span_id: h("e1e2e3e4e5e6e7e8"),
        trace_id: h("f1f2f3f4f5f6f7f8f9fafbfcfdfeff00"),
        value: Some(exemplar::Value::AsInt(-9)),
    }
}

fn full_metrics_json() -> Value {
    let meta = json!([{"key": "m", "value": {"stringValue": "meta"}}]);
    let dp_attrs = json!([{"key": "dp", "value": {"stringValue": "x"}}]);
    json!({"resourceMetrics": [{
        "resource": full_resource_json(),
        "scopeMetrics": [{
            "scope": full_scope_json(),
            "metrics": [
                {
                    "name": "g", "description": "a gauge", "unit": "ms", "metadata": meta,
                    "gauge": {"dataPoints": [{
                        "attributes": dp_attrs,
                        "startTimeUnixNano": "1",
                        "timeUnixNano": "2",
                        "exemplars": [ex_double_json(), ex_int_json()],
                        "flags": 1,
                        "asDouble": 3.25
                    }]}
                },
                {
                    "name": "s", "description": "a sum", "unit": "By", "metadata": meta,
                    "sum": {
                        "dataPoints": [{
                            "attributes": dp_attrs,
                            "startTimeUnixNano": 5,
                            "timeUnixNano": "6",
                            "exemplars": [ex_int_json()],
                            "flags": "1",
                            "asInt": "-3"
                        }],
                        "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                        "isMonotonic": true
                    }
                },
                {
                    "name": "h", "description": "a histogram", "unit": "s", "metadata": meta,
                    "histogram": {
                        "dataPoints": [{
                            "attributes": dp_attrs,
                            "startTimeUnixNano": "7",
                            "timeUnixNano": "8",
                            "count": "6",
                            "sum": 12.5,
                            "bucketCounts": ["1", 2, "3"],
                            "explicitBounds": [1.0, "5", 10],
                            "exemplars": [ex_double_json()],
                            "flags": 1,
                            "min": "-1.5",
                            "max": 9
                        }],
                        "aggregationTemporality": 1
                    }
                },
                {
                    "name": "eh", "description": "an exp histogram", "unit": "s", "metadata": meta,
                    "exponentialHistogram": {
                        "dataPoints": [{
                            "attributes": dp_attrs,
                            "startTimeUnixNano": "9",
                            "timeUnixNano": "10",
                            "count": "10",
                            "sum": "20.5",
                            "scale": -3,
                            "zeroCount": "2",
                            "positive": {"offset": -2, "bucketCounts": ["1", "2"]},
                            "negative": {"offset": "3", "bucketCounts": [4]},
                            "flags": 1,
                            "exemplars": [ex_int_json()],
                            "min": 0.25,
                            "max": 7,
                            "zeroThreshold": "1e-9"
                        }],
                        "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA"
                    }
                },
                {
                    "name": "sm", "description": "a summary", "unit": "ms", "metadata": meta,
                    "summary": {"dataPoints": [{
                        "attributes": dp_attrs,
                        "startTimeUnixNano": "11",
                        "timeUnixNano": "12",
                        "count": "100",
                        "sum": 250.75,
                        "quantileValues": [
                            {"quantile": 0.5, "value": 1.5},
                            {"quantile": "0.99", "value": "9.5"}
                        ],
                        "flags": 1
                    }]}
                }
            ],
            "schemaUrl": "https://scope-schema"
        }],
        "schemaUrl": "https://resource-schema"
    }]})
}

fn full_metrics() -> ExportMetricsServiceRequest {
    let meta = vec![kv("m", s("meta"))];
    let dp_attrs = vec![kv("dp", s("x"))];
    let m = |name: &str, description: &str, unit: &str, data: metric::Data| Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        metadata: meta.clone(),
        data: Some(data),
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(full_resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(full_scope()),
                metrics: vec![
                    m(
                        "g",
                        "a gauge",
                        "ms",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: dp_attrs.clone(),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                exemplars: vec![ex_double(), ex_int()],
                                flags: 1,
                                value: Some(number_data_point::Value::AsDouble(3.25)),
                            }],
                        }),
                    ),
                    m(
                        "s",
                        "a sum",
                        "By",
                        metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: dp_attrs.clone(),
                                start_time_unix_nano: 5,
                                time_unix_nano: 6,
                                exemplars: vec![ex_int()],
                                flags: 1,
                                value: Some(number_data_point::Value::AsInt(-3)),
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                    ),
                    m(
                        "h",
                        "a histogram",
                        "s",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: dp_attrs.clone(),
                                start_time_unix_nano: 7,
                                time_unix_nano: 8,
                                count: 6,
                                sum: Some(12.5),
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![1.0, 5.0, 10.0],
                                exemplars: vec![ex_double()],
                                flags: 1,
                                min: Some(-1.5),
                                max: Some(9.0),
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        }),
                    ),
                    m(
                        "eh",
                        "an exp histogram",
                        "s",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: dp_attrs.clone(),
                                start_time_unix_nano: 9,
                                time_unix_nano: 10,
                                count: 10,
                                sum: Some(20.5),
                                scale: -3,
                                zero_count: 2,
                                positive: Some(exponential_histogram_data_point::Buckets {
                                    offset: -2,
                                    bucket_counts: vec![1, 2],
                                }),
                                negative: Some(exponential_histogram_data_point::Buckets {
                                    offset: 3,
                                    bucket_counts: vec![4],
                                }),
                                flags: 1,
                                exemplars: vec![ex_int()],
                                min: Some(0.25),
                                max: Some(7.0),
                                zero_threshold: 1e-9,
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        }),
                    ),
                    m(
                        "sm",
                        "a summary",
                        "ms",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: dp_attrs.clone(),
                                start_time_unix_nano: 11,
                                time_unix_nano: 12,
                                count: 100,
                                sum: 250.75,
                                quantile_values: vec![
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 1.5,
                                    },
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 9.5,
                                    },
                                ],
                                flags: 1,
                            }],
                        }),
                    ),
                ],
                schema_url: "https://scope-schema".into(),
            }],
            schema_url: "https://resource-schema".into(),
        }],
    }
}

fn full_logs_json() -> Value {
    json!({"resourceLogs": [{
        "resource": full_resource_json(),
        "scopeLogs": [{
            "scope": full_scope_json(),
            "logRecords": [{
                "timeUnixNano": "1700000000000000001",
                "observedTimeUnixNano": 1_700_000_000_000_000_002u64,
                "severityNumber": "SEVERITY_NUMBER_WARN",
                "severityText": "WARN",
                "body": {"kvlistValue": {"values": [
                    {"key": "msg", "value": {"stringValue": "hello"}}
                ]}},
                "attributes": rich_attrs_json(),
                "droppedAttributesCount": 2,
                "flags": 1,
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "EEE19B7EC3C1B174",
                "eventName": "app.event"
            }],
            "schemaUrl": "https://scope-schema"
        }],
        "schemaUrl": "https://resource-schema"
    }]})
}

fn full_logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(full_resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(full_scope()),
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_001,
                    observed_time_unix_nano: 1_700_000_000_000_000_002,
                    severity_number: SeverityNumber::Warn as i32,
                    severity_text: "WARN".into(),
                    body: Some(av(V::KvlistValue(KeyValueList {
                        values: vec![kv("msg", s("hello"))],
                    }))),
                    attributes: rich_attrs(),
                    dropped_attributes_count: 2,
                    flags: 1,
                    trace_id: h("5b8efff798038103d269b633813fc60c"),
                    span_id: h("eee19b7ec3c1b174"),
                    event_name: "app.event".into(),
                }],
                schema_url: "https://scope-schema".into(),
            }],
            schema_url: "https://resource-schema".into(),
        }],
    }
}

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

const SPEC_TRACE: &str = include_str!("../../../../../testdata/otlp-json/spec_traces.json");

fn spec_trace_expected() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(spec_resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(spec_scope()),
                spans: vec![Span {
                    trace_id: h("5b8efff798038103d269b633813fc60c"),
                    span_id: h("eee19b7ec3c1b174"),
                    trace_state: String::new(),
                    parent_span_id: h("eee19b7ec3c1b173"),
                    flags: 0,
                    name: "I'm a server span".into(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: 1_544_712_660_000_000_000,
                    end_time_unix_nano: 1_544_712_661_000_000_000,
                    attributes: vec![kv("my.span.attr", s("some value"))],
                    dropped_attributes_count: 0,
                    events: vec![],
                    dropped_events_count: 0,
                    links: vec![],
                    dropped_links_count: 0,
                    status: None,
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

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

// ----- integers --------------------------------------------------------

fn gauge_value(dp: Value) -> Result<Option<number_data_point::Value>> {
    let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "m", "gauge": {"dataPoints": [dp]}}
    ]}]}]});
    let req = decode_metrics(&bytes(&body))?;
    match &req.resource_metrics[0].scope_metrics[0].metrics[0].data {
        Some(metric::Data::Gauge(g)) => Ok(g.data_points[0].value),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn as_int_as_string_and_as_number() {
    use number_data_point::Value::{AsDouble, AsInt};
    assert_eq!(gauge_value(json!({"asInt": "7"})).unwrap(), Some(AsInt(7)));
    assert_eq!(gauge_value(json!({"asInt": 7})).unwrap(), Some(AsInt(7)));
    assert_eq!(
        gauge_value(json!({"asInt": "-5"})).unwrap(),
        Some(AsInt(-5))
    );
    assert_eq!(gauge_value(json!({"as_int": -5})).unwrap(), Some(AsInt(-5)));
    assert_eq!(
        gauge_value(json!({"asInt": "-9223372036854775808"})).unwrap(),
        Some(AsInt(i64::MIN))
    );
    assert_eq!(
        gauge_value(json!({"asInt": 9_223_372_036_854_775_807i64})).unwrap(),
        Some(AsInt(i64::MAX))
    );
    assert_eq!(
        gauge_value(json!({"asInt": 1e3})).unwrap(),
        Some(AsInt(1000))
    );
    assert_eq!(
        gauge_value(json!({"asInt": "2.0"})).unwrap(),
        Some(AsInt(2))
    );
    assert_eq!(
        gauge_value(json!({"asDouble": 7})).unwrap(),
        Some(AsDouble(7.0))
    );
    assert_eq!(gauge_value(json!({})).unwrap(), None);
    assert_eq!(gauge_value(json!({"asInt": null})).unwrap(), None);

    let path = "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asInt";
    let (p, m) = invalid(gauge_value(json!({"asInt": 9_223_372_036_854_775_808u64})));
    assert_eq!(p, path);
    assert!(m.contains("out of range for int64"), "{m}");
    let (p, m) = invalid(gauge_value(json!({"asInt": 1.5})));
    assert_eq!(p, path);
    assert!(m.contains("fractional"), "{m}");
    let (_, m) = invalid(gauge_value(json!({"asInt": "1.5"})));
    assert!(m.contains("fractional"), "{m}");
    let (_, m) = invalid(gauge_value(json!({"asInt": "seven"})));
    assert!(m.contains("invalid integer"), "{m}");
    let (_, m) = invalid(gauge_value(json!({"asInt": ""})));
    assert!(m.contains("invalid integer"), "{m}");
    let (_, m) = invalid(gauge_value(json!({"asInt": " 7"})));
    assert!(m.contains("invalid integer"), "{m}");
    let (_, m) = invalid(gauge_value(json!({"asInt": true})));
    assert!(m.contains("got boolean"), "{m}");
    let (_, m) = invalid(gauge_value(
        json!({"asInt": "99999999999999999999999999999999999999999"}),
    ));
    assert!(m.contains("out of range"), "{m}");
    let (p, m) = invalid(gauge_value(json!({"asInt": 1, "asDouble": 2.0})));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]"
    );
    assert!(m.contains("only one of"), "{m}");
}

#[test]
fn uint64_and_uint32_ranges() {
    let dp = |count: Value| {
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"histogram": {"dataPoints": [{"count": count}]}}
        ]}]}]});
        decode_metrics(&bytes(&body)).map(|r| {
            match &r.resource_metrics[0].scope_metrics[0].metrics[0].data {
                Some(metric::Data::Histogram(h)) => h.data_points[0].count,
                other => panic!("{other:?}"),
            }
        })
    };
    assert_eq!(dp(json!("18446744073709551615")).unwrap(), u64::MAX);
    assert_eq!(dp(json!(u64::MAX)).unwrap(), u64::MAX);
    assert_eq!(dp(json!("0")).unwrap(), 0);
    let (p, m) = invalid(dp(json!("18446744073709551616")));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0].count"
    );
    assert!(m.contains("out of range for uint64"), "{m}");
    let (_, m) = invalid(dp(json!(-1)));
    assert!(m.contains("out of range for uint64"), "{m}");
    let (_, m) = invalid(dp(json!("-1")));
    assert!(m.contains("out of range for uint64"), "{m}");
    let (_, m) = invalid(dp(json!(1e20)));
    assert!(m.contains("out of range"), "{m}");

    let flags = |f: Value| {
        decode_traces(&bytes(
            &json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"flags": f}]}]}]}),
        ))
        .map(|r| r.resource_spans[0].scope_spans[0].spans[0].flags)
    };
    assert_eq!(flags(json!(4_294_967_295u64)).unwrap(), u32::MAX);
    assert_eq!(flags(json!("257")).unwrap(), 257);
    let (p, m) = invalid(flags(json!(4_294_967_296u64)));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].flags");
    assert!(m.contains("out of range for uint32"), "{m}");
    let (_, m) = invalid(flags(json!(-1)));
    assert!(m.contains("out of range for uint32"), "{m}");

    let scale = |v: Value| {
        let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"exponentialHistogram": {"dataPoints": [{"scale": v, "negative": {"offset": v}}]}}
        ]}]}]});
        decode_metrics(&bytes(&body)).map(|r| {
            match &r.resource_metrics[0].scope_metrics[0].metrics[0].data {
                Some(metric::Data::ExponentialHistogram(e)) => {
                    let dp = &e.data_points[0];
                    (dp.scale, dp.negative.as_ref().unwrap().offset)
                }
                other => panic!("{other:?}"),
            }
        })
    };
    assert_eq!(scale(json!(-20)).unwrap(), (-20, -20));
    assert_eq!(scale(json!("-20")).unwrap(), (-20, -20));
    // The first offending value in document order is reported (serde_json
    // writes keys sorted: `negative` before `scale`).
    let (p, _) = invalid(scale(json!(2_147_483_648u64)));
    assert!(p.ends_with("dataPoints[0].negative.offset"), "{p}");
}

// ----- doubles ---------------------------------------------------------

#[test]
fn doubles_special_values_and_strings() {
    let d = |v: Value| {
        gauge_value(json!({"asDouble": v})).map(|v| match v {
            Some(number_data_point::Value::AsDouble(d)) => d,
            other => panic!("{other:?}"),
        })
    };
    assert!(d(json!("NaN")).unwrap().is_nan());
    assert_eq!(d(json!("Infinity")).unwrap(), f64::INFINITY);
    assert_eq!(d(json!("-Infinity")).unwrap(), f64::NEG_INFINITY);
    assert_eq!(d(json!("1.5")).unwrap(), 1.5);
    assert_eq!(d(json!("-2e3")).unwrap(), -2000.0);
    assert_eq!(d(json!(1e308)).unwrap(), 1e308);
    assert_eq!(d(json!(-0.25)).unwrap(), -0.25);
    for bad in ["inf", "nan", "infinity", "abc", "", "1e999", "0x10"] {
        let (p, _) = invalid(d(json!(bad)));
        assert!(p.ends_with("dataPoints[0].asDouble"), "{bad}: {p}");
    }
    let (_, m) = invalid(d(json!([1.0])));
    assert!(m.contains("got array"), "{m}");

    let (p, _) = invalid(decode_metrics(
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[{"explicitBounds":[1,"x"]}]}}]}]}]}"#,
    ));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0].explicitBounds[1]"
    );
}

// ----- ids -------------------------------------------------------------

#[test]
fn hex_ids_case_insensitive_and_empty() {
    let span = |t: &str, s: &str, p: &str| {
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": t, "spanId": s, "parentSpanId": p}
        ]}]}]});
        decode_traces(&bytes(&body)).map(|r| r.resource_spans[0].scope_spans[0].spans[0].clone())
    };
    let upper = span("5B8EFFF798038103D269B633813FC60C", "EEE19B7EC3C1B174", "").unwrap();
    let lower = span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "").unwrap();
    let mixed = span("5b8EFFF798038103d269B633813fc60C", "eEe19b7eC3c1B174", "").unwrap();
    assert_eq!(upper, lower);
    assert_eq!(upper, mixed);
    assert_eq!(upper.trace_id, h("5b8efff798038103d269b633813fc60c"));
    assert_eq!(upper.span_id, h("eee19b7ec3c1b174"));
    assert!(upper.parent_span_id.is_empty());
    let empty = span("", "", "").unwrap();
    assert!(empty.trace_id.is_empty() && empty.span_id.is_empty());
    // All-zero ids are kept; rejecting them is the domain layer's job.
    let zero = span(&"0".repeat(32), &"0".repeat(16), &"0".repeat(16)).unwrap();
    assert_eq!(zero.trace_id, vec![0; 16]);
    assert_eq!(zero.span_id, vec![0; 8]);
    assert_eq!(zero.parent_span_id, vec![0; 8]);
}

#[test]
fn bad_ids_name_the_path() {
    // The exact example from the module's contract.
    let body = json!({"resourceSpans": [{"scopeSpans": [
        {},
        {"spans": [{}, {}, {}, {"traceId": "5B8EFFF798038103D269B633813FC6"}]}
    ]}]});
    let err = decode_traces(&bytes(&body)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resourceSpans[0].scopeSpans[1].spans[3].traceId: expected 32 hex characters, got 30"
    );

    let one = |span: Value| {
        decode_traces(&bytes(
            &json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}),
        ))
    };
    let (p, m) = invalid(one(json!({"traceId": "zz8EFFF798038103D269B633813FC60C"})));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].traceId");
    assert!(m.contains("invalid hex"), "{m}");
    let (p, m) = invalid(one(json!({"spanId": "EEE19B7EC3C1B1"})));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].spanId");
    assert_eq!(m, "expected 16 hex characters, got 14");
    let (p, _) = invalid(one(json!({"parentSpanId": "EEE19B7EC3C1B17é"})));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId");
    // base64 ids are not accepted (16 bytes of base64 = 24 chars)
    let (_, m) = invalid(one(json!({"traceId": "W47/95gDgQPSabYzgT/GDA=="})));
    assert_eq!(m, "expected 32 hex characters, got 24");
    let (_, m) = invalid(one(json!({"traceId": 12})));
    assert!(m.contains("got number"), "{m}");
    let (p, _) = invalid(one(json!({"links": [{}, {"spanId": "xyz"}]})));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].links[1].spanId");

    let (p, _) = invalid(decode_logs(
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"00"}]}]}]}"#,
    ));
    assert_eq!(p, "resourceLogs[0].scopeLogs[0].logRecords[0].traceId");
    let (p, _) = invalid(decode_metrics(
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"dataPoints":[{"exemplars":[{"span_id":"0g00000000000000"}]}]}}]}]}]}"#,
    ));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].exemplars[0].spanId"
    );
}

// ----- enums -----------------------------------------------------------

#[test]
fn enums_by_name_or_integer() {
    let sp = |kind: Value, code: Value| {
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"kind": kind, "status": {"code": code}}
        ]}]}]});
        decode_traces(&bytes(&body)).map(|r| {
            let s = &r.resource_spans[0].scope_spans[0].spans[0];
            (s.kind, s.status.as_ref().unwrap().code)
        })
    };
    assert_eq!(
        sp(json!("SPAN_KIND_SERVER"), json!("STATUS_CODE_ERROR")).unwrap(),
        (2, 2)
    );
    assert_eq!(sp(json!(2), json!(2)).unwrap(), (2, 2));
    assert_eq!(
        sp(json!("SPAN_KIND_CONSUMER"), json!("STATUS_CODE_OK")).unwrap(),
        (5, 1)
    );
    assert_eq!(sp(json!("3"), json!(0)).unwrap(), (3, 0));
    // Unknown integers are kept (open enums).
    assert_eq!(sp(json!(42), json!(-1)).unwrap(), (42, -1));
    let (p, m) = invalid(sp(json!("SPAN_KIND_BOGUS"), json!(0)));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].kind");
    assert!(
        m.contains("unknown enum value name \"SPAN_KIND_BOGUS\""),
        "{m}"
    );
    let (p, _) = invalid(sp(json!(1), json!("STATUS_CODE_SERVER")));
    assert_eq!(p, "resourceSpans[0].scopeSpans[0].spans[0].status.code");
    // Names are case-sensitive, and must belong to the right enum.
    invalid(sp(json!("span_kind_server"), json!(0)));
    invalid(sp(json!("STATUS_CODE_OK"), json!(0)));
    invalid(sp(json!(1.5), json!(0)));
    invalid(sp(json!(true), json!(0)));

    let sev = |v: Value| {
        decode_logs(&bytes(
            &json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
                {"severityNumber": v}
            ]}]}]}),
        ))
        .map(|r| r.resource_logs[0].scope_logs[0].log_records[0].severity_number)
    };
    assert_eq!(sev(json!("SEVERITY_NUMBER_INFO")).unwrap(), 9);
    assert_eq!(sev(json!("SEVERITY_NUMBER_FATAL4")).unwrap(), 24);
    assert_eq!(sev(json!(17)).unwrap(), 17);
    assert_eq!(sev(json!("17")).unwrap(), 17);
    let (p, _) = invalid(sev(json!("INFO")));
    assert_eq!(
        p,
        "resourceLogs[0].scopeLogs[0].logRecords[0].severityNumber"
    );

    let temp = |v: Value| {
        decode_metrics(&bytes(
            &json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
                {"sum": {"aggregationTemporality": v}}
            ]}]}]}),
        ))
        .map(
            |r| match &r.resource_metrics[0].scope_metrics[0].metrics[0].data {
                Some(metric::Data::Sum(s)) => s.aggregation_temporality,
                other => panic!("{other:?}"),
            },
        )
    };
    assert_eq!(
        temp(json!("AGGREGATION_TEMPORALITY_CUMULATIVE")).unwrap(),
        2
    );
    assert_eq!(temp(json!("AGGREGATION_TEMPORALITY_DELTA")).unwrap(), 1);
    assert_eq!(temp(json!(2)).unwrap(), 2);
    let (p, _) = invalid(temp(json!("CUMULATIVE")));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.aggregationTemporality"
    );
}

// ----- AnyValue --------------------------------------------------------

fn body_of(any: Value) -> Result<Option<AnyValue>> {
    decode_logs(&bytes(
        &json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"body": any}
        ]}]}]}),
    ))
    .map(|r| r.resource_logs[0].scope_logs[0].log_records[0].body.clone())
}

#[test]
fn any_value_variants() {
    assert_eq!(body_of(json!({})).unwrap(), Some(AnyValue { value: None }));
    assert_eq!(body_of(json!(null)).unwrap(), None);
    assert_eq!(
        body_of(json!({"intValue": "7"})).unwrap(),
        Some(av(V::IntValue(7)))
    );
    assert_eq!(
        body_of(json!({"int_value": 7})).unwrap(),
        Some(av(V::IntValue(7)))
    );
    assert_eq!(
        body_of(json!({"bool_value": false})).unwrap(),
        Some(av(V::BoolValue(false)))
    );
    assert_eq!(
        body_of(json!({"string_value": ""})).unwrap(),
        Some(av(s("")))
    );
    assert_eq!(
        body_of(json!({"double_value": "NaN"}))
            .unwrap()
            .map(|a| match a.value {
                Some(V::DoubleValue(d)) => d.is_nan(),
                _ => false,
            }),
        Some(true)
    );
    assert_eq!(
        body_of(json!({"array_value": {"values": [{"intValue": 1}]}})).unwrap(),
        Some(av(V::ArrayValue(ArrayValue {
            values: vec![av(V::IntValue(1))]
        })))
    );
    assert_eq!(
        body_of(json!({"arrayValue": {}})).unwrap(),
        Some(av(V::ArrayValue(ArrayValue { values: vec![] })))
    );
    assert_eq!(
        body_of(json!({"kvlist_value": {"values": [{"key": "k"}]}})).unwrap(),
        Some(av(V::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: None,
                key_strindex: 0
            }]
        })))
    );
    // base64: standard padded, standard unpadded, URL-safe padded and unpadded
    let b = |x: &str| body_of(json!({"bytesValue": x}));
    let want = Some(av(V::BytesValue(vec![0xfb, 0xff, 0xbf])));
    assert_eq!(b("+/+/").unwrap(), want);
    assert_eq!(b("-_-_").unwrap(), want);
    assert_eq!(
        b("AQID/w==").unwrap(),
        Some(av(V::BytesValue(vec![1, 2, 3, 255])))
    );
    assert_eq!(
        b("AQID/w").unwrap(),
        Some(av(V::BytesValue(vec![1, 2, 3, 255])))
    );
    assert_eq!(
        b("AQID_w").unwrap(),
        Some(av(V::BytesValue(vec![1, 2, 3, 255])))
    );
    assert_eq!(
        b("AQID_w==").unwrap(),
        Some(av(V::BytesValue(vec![1, 2, 3, 255])))
    );
    assert_eq!(b("").unwrap(), Some(av(V::BytesValue(vec![]))));
    let (p, m) = invalid(b("not base64!"));
    assert_eq!(
        p,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue"
    );
    assert!(m.contains("invalid base64"), "{m}");

    let (p, m) = invalid(body_of(json!({"stringValue": "a", "intValue": 1})));
    assert_eq!(p, "resourceLogs[0].scopeLogs[0].logRecords[0].body");
    assert!(m.contains("only one of"), "{m}");
    let (p, _) = invalid(body_of(
        json!({"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": 5}}]}}),
    ));
    assert_eq!(
        p,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.kvlistValue.values[0].value.stringValue"
    );
    let (p, m) = invalid(body_of(json!("plain string")));
    assert_eq!(p, "resourceLogs[0].scopeLogs[0].logRecords[0].body");
    assert!(m.contains("expected an object, got string"), "{m}");
}

fn nested_arrays(levels: usize) -> String {
    let mut s = String::from(r#"{"stringValue":"leaf"}"#);
    for _ in 0..levels {
        s = format!(r#"{{"arrayValue":{{"values":[{s}]}}}}"#);
    }
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{s}}}]}}]}}]}}"#)
}

fn nested_kvlists(levels: usize) -> String {
    let mut s = String::from(r#"{"stringValue":"leaf"}"#);
    for _ in 0..levels {
        s = format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{s}}}]}}}}"#);
    }
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{s}}}]}}]}}]}}"#)
}

#[test]
fn nesting_depth_is_capped() {
    // Leaf at depth MAX-1 is fine, at depth MAX it is rejected with a path.
    assert!(decode_logs(nested_arrays(MAX_ANY_VALUE_DEPTH as usize - 1).as_bytes()).is_ok());
    let (p, m) = invalid(decode_logs(
        nested_arrays(MAX_ANY_VALUE_DEPTH as usize).as_bytes(),
    ));
    assert!(
        p.starts_with(
            "resourceLogs[0].scopeLogs[0].logRecords[0].body.arrayValue.values[0].arrayValue"
        ),
        "{p}"
    );
    assert!(p.ends_with("arrayValue.values[0]"), "{p}");
    assert!(m.contains("maximum depth"), "{m}");

    assert!(decode_logs(nested_kvlists(25).as_bytes()).is_ok());
    // Deeper kvlists are refused too.
    assert!(decode_logs(nested_kvlists(40).as_bytes()).is_err());
    assert!(decode_logs(nested_arrays(1000).as_bytes()).is_err());

    // Nesting through attributes (depth starts at 0 for every attribute value).
    let mut s = String::from(r#"{"boolValue":true}"#);
    for _ in 0..MAX_ANY_VALUE_DEPTH {
        s = format!(r#"{{"arrayValue":{{"values":[{s}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"a","value":{s}}}]}}}}]}}"#
    );
    let (p, _) = invalid(decode_traces(body.as_bytes()));
    assert!(
        p.starts_with("resourceSpans[0].resource.attributes[0].value.arrayValue"),
        "{p}"
    );

    // Pathologically deep raw JSON: the reader's nesting limit, no stack overflow.
    let deep = "[".repeat(100_000);
    assert!(matches!(
        decode_traces(deep.as_bytes()),
        Err(JsonError::Syntax { .. })
    ));
    let deep = format!("{}{}", r#"{"a":"#.repeat(50_000), "1");
    assert!(matches!(
        decode_metrics(deep.as_bytes()),
        Err(JsonError::Syntax { .. })
    ));
}

// ----- structure -------------------------------------------------------

#[test]
fn empty_requests() {
    assert_eq!(
        decode_traces(b"{}").unwrap(),
        ExportTraceServiceRequest::default()
    );
    assert_eq!(
        decode_metrics(b"{}").unwrap(),
        ExportMetricsServiceRequest::default()
    );
    assert_eq!(
        decode_logs(b" { } \n").unwrap(),
        ExportLogsServiceRequest::default()
    );
    assert_eq!(
        decode_traces(br#"{"resourceSpans":null}"#).unwrap(),
        ExportTraceServiceRequest::default()
    );
    assert_eq!(
        decode_logs(br#"{"resourceLogs":[]}"#).unwrap(),
        ExportLogsServiceRequest::default()
    );
    assert_eq!(
        decode_metrics(br#"{"resourceMetrics":[{}]}"#).unwrap(),
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics::default()]
        }
    );
}

#[test]
fn null_means_default() {
    let body = br#"{"resourceSpans":[{"resource":null,"schemaUrl":null,"scopeSpans":[{"scope":null,
        "spans":[{"traceId":null,"spanId":null,"name":null,"kind":null,"attributes":null,
        "startTimeUnixNano":null,"status":null,"events":[{"name":null}]}]}]}]}"#;
    let req = decode_traces(body).unwrap();
    let rs = &req.resource_spans[0];
    assert!(rs.resource.is_none());
    assert!(rs.scope_spans[0].scope.is_none());
    let sp = &rs.scope_spans[0].spans[0];
    assert_eq!(
        sp,
        &Span {
            events: vec![span::Event::default()],
            ..Span::default()
        }
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let mut v: Value = serde_json::from_str(SPEC_TRACE).unwrap();
    fn add_junk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for child in m.values_mut() {
                    add_junk(child);
                }
                m.insert(
                    "zzUnknown".into(),
                    json!({"nested": [1, "x", null, {"a": true}]}),
                );
                m.insert("another_unknown".into(), json!(null));
            }
            Value::Array(a) => a.iter_mut().for_each(add_junk),
            _ => {}
        }
    }
    add_junk(&mut v);
    assert!(v.to_string().matches("zzUnknown").count() > 10);
    assert_eq!(decode_traces(&bytes(&v)).unwrap(), spec_trace_expected());
}

#[test]
fn camel_case_wins_over_snake_case_when_both_present() {
    let req = decode_traces(
        br#"{"resourceSpans":[{"schemaUrl":"camel","schema_url":"snake"}],
        "resource_spans":[{}, {}]}"#,
    )
    .unwrap();
    assert_eq!(req.resource_spans.len(), 1);
    assert_eq!(req.resource_spans[0].schema_url, "camel");
    let req = decode_traces(br#"{"resourceSpans":null,"resource_spans":[{"schema_url":"snake"}]}"#)
        .unwrap();
    assert_eq!(req.resource_spans[0].schema_url, "snake");
}

#[test]
fn metric_data_oneof() {
    let one = |m: Value| {
        decode_metrics(&bytes(
            &json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [m]}]}]}),
        ))
        .map(|r| r.resource_metrics[0].scope_metrics[0].metrics[0].clone())
    };
    assert_eq!(one(json!({"name": "x"})).unwrap().data, None);
    assert_eq!(
        one(json!({"exponential_histogram": {}})).unwrap().data,
        Some(metric::Data::ExponentialHistogram(
            ExponentialHistogram::default()
        ))
    );
    assert_eq!(
        one(json!({"summary": {"dataPoints": [{}]}})).unwrap().data,
        Some(metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint::default()]
        }))
    );
    let (p, m) = invalid(one(json!({"gauge": {}, "sum": {}})));
    assert_eq!(p, "resourceMetrics[0].scopeMetrics[0].metrics[0]");
    assert!(m.contains("`gauge`") && m.contains("`sum`"), "{m}");
    let (p, _) = invalid(one(json!({"gauge": []})));
    assert_eq!(p, "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge");
}

#[test]
fn top_level_must_be_an_object() {
    for body in [
        &b"[]"[..],
        b"\"x\"",
        b"1",
        b"null",
        b"true",
        br#"[{"resourceSpans":[]}]"#,
    ] {
        let (p, m) = invalid(decode_traces(body));
        assert_eq!(p, "<root>");
        assert!(m.contains("JSON object"), "{m}");
        invalid(decode_metrics(body));
        invalid(decode_logs(body));
    }
}

#[test]
fn wrong_types_name_the_path() {
    let cases: &[(&str, &str)] = &[
        (r#"{"resourceSpans":{}}"#, "resourceSpans"),
        (r#"{"resourceSpans":[1]}"#, "resourceSpans[0]"),
        (
            r#"{"resourceSpans":[{"resource":[]}]}"#,
            "resourceSpans[0].resource",
        ),
        (
            r#"{"resourceSpans":[{"resource":{"attributes":{}}}]}"#,
            "resourceSpans[0].resource.attributes",
        ),
        (
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":1}]}}]}"#,
            "resourceSpans[0].resource.attributes[0].key",
        ),
        (
            r#"{"resourceSpans":[{"resource":{"entityRefs":[{"idKeys":[1]}]}}]}"#,
            "resourceSpans[0].resource.entityRefs[0].idKeys[0]",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"scope":{"droppedAttributesCount":"x"}}]}]}"#,
            "resourceSpans[0].scopeSpans[0].scope.droppedAttributesCount",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":false}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].name",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"events":[{"time_unix_nano":"x"}]}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].events[0].timeUnixNano",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"status":{"message":1}}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].status.message",
        ),
    ];
    for (body, want) in cases {
        let (p, _) = invalid(decode_traces(body.as_bytes()));
        assert_eq!(&p, want, "{body}");
    }
    let (p, _) = invalid(decode_metrics(
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"isMonotonic":"true"}}]}]}]}"#,
    ));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotonic"
    );
    let (p, _) = invalid(decode_metrics(
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"summary":{"dataPoints":[{"quantileValues":[{"quantile":"high"}]}]}}]}]}]}"#,
    ));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].summary.dataPoints[0].quantileValues[0].quantile"
    );
    let (p, _) = invalid(decode_metrics(
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"exponentialHistogram":{"dataPoints":[{"positive":{"bucketCounts":[1,-2]}}]}}]}]}]}"#,
    ));
    assert_eq!(
        p,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].exponentialHistogram.dataPoints[0].positive.bucketCounts[1]"
    );
}

#[test]
fn malformed_json_is_a_syntax_error() {
    for body in [
        &b""[..],
        b"{",
        b"{\"resourceSpans\":[",
        b"{'a':1}",
        b"\xff\xfe",
        b"{} {}",
        b"{\"a\":1,}",
    ] {
        assert!(
            matches!(decode_traces(body), Err(JsonError::Syntax { .. })),
            "{body:?}"
        );
    }
}

// ----- no panics -------------------------------------------------------

#[test]
fn no_panic_on_truncations_and_type_confusion() {
    fn exercise<T>(sample: Value, decode: fn(&[u8]) -> Result<T>) {
        let raw = bytes(&sample);
        for cut in 0..raw.len() {
            let _ = decode(raw.get(..cut).unwrap());
        }
        let replacements = [
            json!(null),
            json!(true),
            json!(0),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!(u64::MAX),
            json!(""),
            json!("x"),
            json!("NaN"),
            json!([]),
            json!([null]),
            json!({}),
            json!({"values": [{}]}),
        ];
        let (mut nodes, mut members) = (Vec::new(), Vec::new());
        walk(&sample, String::new(), &mut nodes, &mut members);
        for ptr in &nodes {
            for r in &replacements {
                let mut v = sample.clone();
                *v.pointer_mut(ptr).unwrap() = r.clone();
                let _ = decode(&bytes(&v));
            }
        }
    }
    exercise(full_traces_json(), decode_traces);
    exercise(full_metrics_json(), decode_metrics);
    exercise(full_logs_json(), decode_logs);
    // Cross-feeding the wrong signal is harmless too.
    let _ = decode_traces(&bytes(&full_logs_json()));
    let _ = decode_logs(&bytes(&full_metrics_json()));
}

#[test]
fn no_panic_on_pseudo_random_input() {
    const ALPHABET: &[u8] = b"{}[]:,\"0123456789-+.eEaAfF \\ntrulsNIy_xbVkv";
    let tokens = [
        "\"resourceSpans\"",
        "\"resourceMetrics\"",
        "\"resourceLogs\"",
        "\"scopeSpans\"",
        "\"scopeMetrics\"",
        "\"scopeLogs\"",
        "\"spans\"",
        "\"metrics\"",
        "\"logRecords\"",
        "\"traceId\"",
        "\"spanId\"",
        "\"gauge\"",
        "\"dataPoints\"",
        "\"asInt\"",
        "\"body\"",
        "\"arrayValue\"",
        "\"values\"",
        "\"kvlistValue\"",
        "\"bytesValue\"",
        "\"kind\"",
        "\"histogram\"",
        "\"bucketCounts\"",
        "\"attributes\"",
        "\"value\"",
        "\"key\"",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let len = (next() % 120) as usize;
        let mut buf = Vec::with_capacity(len + 16);
        buf.push(b'{');
        for _ in 0..len {
            let r = next();
            if r % 4 == 0 {
                buf.extend_from_slice(tokens[(r / 4 % tokens.len() as u64) as usize].as_bytes());
            } else {
                buf.push(ALPHABET[(r / 4 % ALPHABET.len() as u64) as usize]);
            }
        }
        let _ = decode_traces(&buf);
        let _ = decode_metrics(&buf);
        let _ = decode_logs(&buf);
    }
}

// ----- responses -------------------------------------------------------

fn text(b: Vec<u8>) -> String {
    let s = String::from_utf8(b).unwrap();
    // Always valid JSON.
    let _: Value = serde_json::from_str(&s).unwrap();
    s
}

#[test]
fn response_encoding() {
    assert_eq!(
        text(encode_trace_response(&ExportTraceServiceResponse::default())),
        "{}"
    );
    assert_eq!(
        text(encode_metrics_response(
            &ExportMetricsServiceResponse::default()
        )),
        "{}"
    );
    assert_eq!(
        text(encode_logs_response(&ExportLogsServiceResponse::default())),
        "{}"
    );

    let r = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "bad \"ids\"\n…".into(),
        }),
    };
    assert_eq!(
        text(encode_trace_response(&r)),
        r#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"bad \"ids\"\n…"}}"#
    );
    let r = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess::default()),
    };
    assert_eq!(text(encode_trace_response(&r)), r#"{"partialSuccess":{}}"#);

    let r = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 9_007_199_254_740_993,
            error_message: String::new(),
        }),
    };
    assert_eq!(
        text(encode_metrics_response(&r)),
        r#"{"partialSuccess":{"rejectedDataPoints":"9007199254740993"}}"#
    );
    let r = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess::default()),
    };
    assert_eq!(
        text(encode_metrics_response(&r)),
        r#"{"partialSuccess":{}}"#
    );

    let r = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 0,
            error_message: "only a warning".into(),
        }),
    };
    assert_eq!(
        text(encode_logs_response(&r)),
        r#"{"partialSuccess":{"errorMessage":"only a warning"}}"#
    );
    let r = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: -2,
            error_message: "x".into(),
        }),
    };
    assert_eq!(
        text(encode_logs_response(&r)),
        r#"{"partialSuccess":{"rejectedLogRecords":"-2","errorMessage":"x"}}"#
    );
    let r = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess::default()),
    };
    assert_eq!(text(encode_logs_response(&r)), r#"{"partialSuccess":{}}"#);
}

#[test]
fn syntax_error_display() {
    let e = decode_logs(b"{").unwrap_err();
    assert!(e.to_string().starts_with("malformed JSON: "), "{e}");
}

/// Doubles survive OTLP/JSON exactly (serde_json's `float_roundtrip`):
/// the same request gives the same values over JSON as over protobuf.
#[test]
fn doubles_round_trip_exactly() {
    let v = 1364.0 * 0.087;
    let body = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","gauge":{{"dataPoints":[{{"asDouble":{}}}]}}}}]}}]}}]}}"#,
        serde_json::to_string(&v).unwrap()
    );
    let req = decode_metrics(body.as_bytes()).unwrap();
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(g)) =
        &req.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("gauge expected")
    };
    assert_eq!(
        g.data_points[0].value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v))
    );
}
