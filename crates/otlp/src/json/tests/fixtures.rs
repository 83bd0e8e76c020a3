//! Helpers and hand-made samples shared by the decoder tests: every field
//! set, once as OTLP/JSON and once as the request it must decode to.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
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
use serde_json::json;

// ----- helpers ---------------------------------------------------------

pub(super) fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

pub(super) fn av(v: V) -> AnyValue {
    AnyValue { value: Some(v) }
}

pub(super) fn kv(key: &str, v: V) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(av(v)),
        key_strindex: 0,
    }
}

pub(super) fn s(x: &str) -> V {
    V::StringValue(x.into())
}

pub(super) fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Asserts an `Invalid` error and returns (path, message).
#[track_caller]
pub(super) fn invalid<T: std::fmt::Debug>(r: Result<T>) -> (String, String) {
    match r {
        Err(JsonError::Invalid { path, message }) => (path, message),
        other => panic!("expected JsonError::Invalid, got {other:?}"),
    }
}

pub(super) fn camel_to_snake(k: &str) -> String {
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
pub(super) fn snake_keys(v: &Value) -> Value {
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
pub(super) fn walk(
    v: &Value,
    ptr: String,
    nodes: &mut Vec<String>,
    members: &mut Vec<(String, String)>,
) {
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

pub(super) fn rich_attrs_json() -> Value {
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

pub(super) fn rich_attrs() -> Vec<KeyValue> {
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

pub(super) fn full_resource_json() -> Value {
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

pub(super) fn full_resource() -> Resource {
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

pub(super) fn full_scope_json() -> Value {
    json!({
        "name": "lib",
        "version": "1.2.3",
        "attributes": [{"key": "scope.attr", "value": {"stringValue": "x"}}],
        "droppedAttributesCount": "2"
    })
}

pub(super) fn full_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "lib".into(),
        version: "1.2.3".into(),
        attributes: vec![kv("scope.attr", s("x"))],
        dropped_attributes_count: 2,
    }
}

pub(super) fn spec_resource() -> Resource {
    Resource {
        attributes: vec![kv("service.name", s("my.service"))],
        dropped_attributes_count: 0,
        entity_refs: vec![],
    }
}

pub(super) fn spec_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "my.library".into(),
        version: "1.0.0".into(),
        attributes: vec![kv("my.scope.attribute", s("some scope attribute"))],
        dropped_attributes_count: 0,
    }
}

// ----- full ("every field set") samples --------------------------------

pub(super) fn full_traces_json() -> Value {
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

pub(super) fn full_traces() -> ExportTraceServiceRequest {
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

pub(super) fn ex_double_json() -> Value {
    json!({
        "filteredAttributes": [{"key": "f", "value": {"stringValue": "v"}}],
        "timeUnixNano": "3",
        "spanId": "c1c2c3c4c5c6c7c8",
        "traceId": "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0",
        "asDouble": 0.5
    })
}

pub(super) fn ex_double() -> Exemplar {
    Exemplar {
        filtered_attributes: vec![kv("f", s("v"))],
        time_unix_nano: 3,
        span_id: h("c1c2c3c4c5c6c7c8"),
        trace_id: h("d1d2d3d4d5d6d7d8d9dadbdcdddedfe0"),
        value: Some(exemplar::Value::AsDouble(0.5)),
    }
}

pub(super) fn ex_int_json() -> Value {
    json!({
        "filteredAttributes": [{"key": "g", "value": {"intValue": 1}}],
        "timeUnixNano": 4,
        "spanId": "E1E2E3E4E5E6E7E8",
        "traceId": "F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF00",
        "asInt": "-9"
    })
}

pub(super) fn ex_int() -> Exemplar {
    Exemplar {
        filtered_attributes: vec![kv("g", V::IntValue(1))],
        time_unix_nano: 4,
        span_id: h("e1e2e3e4e5e6e7e8"),
        trace_id: h("f1f2f3f4f5f6f7f8f9fafbfcfdfeff00"),
        value: Some(exemplar::Value::AsInt(-9)),
    }
}

pub(super) fn full_metrics_json() -> Value {
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

pub(super) fn full_metrics() -> ExportMetricsServiceRequest {
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

pub(super) fn full_logs_json() -> Value {
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

pub(super) fn full_logs() -> ExportLogsServiceRequest {
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

pub(super) const SPEC_TRACE: &str =
    include_str!("../../../../../testdata/otlp-json/spec_traces.json");

pub(super) fn spec_trace_expected() -> ExportTraceServiceRequest {
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
