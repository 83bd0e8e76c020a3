use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Sum, Summary, summary_data_point,
};
use prost::Message as _;
use serde_json::json;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, EntityRef, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, SummaryDataPoint, exemplar, exponential_histogram_data_point,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde_json::Value;

use crate::json;

/// The encoder's output, parsed (the assertions compare JSON values).
fn encode_traces(r: &ExportTraceServiceRequest) -> Value {
    serde_json::from_slice(&json::encode_traces(r)).unwrap()
}

fn encode_metrics(r: &ExportMetricsServiceRequest) -> Value {
    serde_json::from_slice(&json::encode_metrics(r)).unwrap()
}

fn encode_logs(r: &ExportLogsServiceRequest) -> Value {
    serde_json::from_slice(&json::encode_logs(r)).unwrap()
}

fn encode_any_value(v: &AnyValue) -> Value {
    serde_json::from_slice(&json::encode_any_value(v)).unwrap()
}
use crate::synth::Synth;
use any_value::Value as V;

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

/// Attributes of every AnyValue kind, nested kinds included.
fn every_kind_attrs() -> Vec<KeyValue> {
    vec![
        kv("str", V::StringValue("a \"quoted\" ✓ value\n".into())),
        kv("empty.str", V::StringValue(String::new())),
        kv("bool.true", V::BoolValue(true)),
        kv("bool.false", V::BoolValue(false)),
        kv("int", V::IntValue(i64::MIN)),
        kv("int.max", V::IntValue(i64::MAX)),
        kv("int.zero", V::IntValue(0)),
        kv("double", V::DoubleValue(0.1)),
        kv("double.zero", V::DoubleValue(0.0)),
        kv("double.neg.zero", V::DoubleValue(-0.0)),
        kv("double.inf", V::DoubleValue(f64::INFINITY)),
        kv("double.ninf", V::DoubleValue(f64::NEG_INFINITY)),
        kv("double.tiny", V::DoubleValue(5e-324)),
        kv("double.big", V::DoubleValue(1.7976931348623157e308)),
        kv("bytes", V::BytesValue(vec![0, 1, 2, 0xfe, 0xff])),
        kv("bytes.empty", V::BytesValue(Vec::new())),
        kv(
            "array",
            V::ArrayValue(ArrayValue {
                values: vec![
                    av(V::StringValue("x".into())),
                    av(V::IntValue(-3)),
                    av(V::DoubleValue(2.5)),
                    av(V::BoolValue(false)),
                    av(V::BytesValue(vec![9])),
                    AnyValue { value: None },
                    av(V::ArrayValue(ArrayValue { values: vec![] })),
                ],
            }),
        ),
        kv("array.empty", V::ArrayValue(ArrayValue { values: vec![] })),
        kv(
            "kvlist",
            V::KvlistValue(KeyValueList {
                values: vec![
                    kv("inner", V::IntValue(1)),
                    KeyValue {
                        key: "no.value".into(),
                        value: None,
                        key_strindex: 0,
                    },
                    KeyValue {
                        key: "empty.value".into(),
                        value: Some(AnyValue { value: None }),
                        key_strindex: 0,
                    },
                    kv(
                        "nested",
                        V::KvlistValue(KeyValueList {
                            values: vec![kv("deep", V::BoolValue(true))],
                        }),
                    ),
                ],
            }),
        ),
        kv(
            "kvlist.empty",
            V::KvlistValue(KeyValueList { values: vec![] }),
        ),
        kv("strindex", V::StringValueStrindex(0)),
        KeyValue {
            key: String::new(),
            value: Some(av(V::StringValue("empty key".into()))),
            key_strindex: 7,
        },
        KeyValue {
            key: "absent".into(),
            value: None,
            key_strindex: 0,
        },
        KeyValue {
            key: "empty".into(),
            value: Some(AnyValue { value: None }),
            key_strindex: 0,
        },
    ]
}

fn full_resource() -> Resource {
    Resource {
        attributes: every_kind_attrs(),
        dropped_attributes_count: 3,
        entity_refs: vec![
            EntityRef {
                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                r#type: "service".into(),
                id_keys: vec!["service.name".into(), "service.namespace".into()],
                description_keys: vec!["service.version".into()],
            },
            EntityRef {
                r#type: "host".into(),
                ..Default::default()
            },
        ],
    }
}

fn full_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "my.library".into(),
        version: "1.2.3".into(),
        attributes: vec![kv("scope.attr", V::IntValue(5))],
        dropped_attributes_count: 2,
    }
}

fn full_traces() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        trace_state: "vendor=value,other=1".into(),
        parent_span_id: vec![0xff; 8],
        flags: 0x301,
        name: "GET /items/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_544_712_660_000_000_000,
        end_time_unix_nano: u64::MAX,
        attributes: every_kind_attrs(),
        dropped_attributes_count: 4,
        events: vec![
            span::Event {
                time_unix_nano: 1_544_712_660_500_000_000,
                name: "exception".into(),
                attributes: vec![kv("exception.type", V::StringValue("E".into()))],
                dropped_attributes_count: 1,
            },
            span::Event::default(),
        ],
        dropped_events_count: 5,
        links: vec![
            span::Link {
                trace_id: vec![0xab; 16],
                span_id: vec![0xcd; 8],
                trace_state: "k=v".into(),
                attributes: vec![kv("link.attr", V::DoubleValue(1.5))],
                dropped_attributes_count: 6,
                flags: 0x100,
            },
            span::Link::default(),
        ],
        dropped_links_count: 7,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(full_resource()),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(full_scope()),
                        spans: vec![
                            span,
                            Span {
                                status: Some(Status::default()),
                                kind: 99, // unknown enum values are kept
                                ..Default::default()
                            },
                        ],
                        schema_url: "https://scope/schema".into(),
                    },
                    ScopeSpans {
                        scope: Some(InstrumentationScope::default()),
                        spans: vec![Span::default()],
                        schema_url: String::new(),
                    },
                    ScopeSpans::default(),
                ],
                schema_url: "https://resource/schema".into(),
            },
            ResourceSpans {
                resource: Some(Resource::default()),
                ..Default::default()
            },
            ResourceSpans::default(),
        ],
    }
}

fn exemplars() -> Vec<Exemplar> {
    vec![
        Exemplar {
            filtered_attributes: vec![kv("ex", V::StringValue("a".into()))],
            time_unix_nano: 1_000,
            span_id: vec![0x11; 8],
            trace_id: vec![0x22; 16],
            value: Some(exemplar::Value::AsDouble(0.0)),
        },
        Exemplar {
            value: Some(exemplar::Value::AsInt(0)),
            ..Default::default()
        },
        Exemplar {
            value: Some(exemplar::Value::AsInt(-42)),
            ..Default::default()
        },
        Exemplar::default(),
    ]
}

fn number_points() -> Vec<NumberDataPoint> {
    vec![
        NumberDataPoint {
            attributes: every_kind_attrs(),
            start_time_unix_nano: 1,
            time_unix_nano: u64::MAX,
            exemplars: exemplars(),
            flags: 1,
            value: Some(number_data_point::Value::AsDouble(-1.25e-7)),
        },
        NumberDataPoint {
            value: Some(number_data_point::Value::AsInt(i64::MIN)),
            ..Default::default()
        },
        NumberDataPoint {
            value: Some(number_data_point::Value::AsInt(0)),
            ..Default::default()
        },
        NumberDataPoint {
            value: Some(number_data_point::Value::AsDouble(0.0)),
            ..Default::default()
        },
        NumberDataPoint::default(),
    ]
}

fn full_metrics() -> ExportMetricsServiceRequest {
    let m = |name: &str, data| Metric {
        name: name.into(),
        description: format!("{name} description"),
        unit: "ms".into(),
        metadata: vec![kv("meta", V::BoolValue(true))],
        data,
    };
    let metrics = vec![
        m(
            "gauge",
            Some(metric::Data::Gauge(Gauge {
                data_points: number_points(),
            })),
        ),
        m(
            "sum",
            Some(metric::Data::Sum(Sum {
                data_points: number_points(),
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
        ),
        m(
            "sum.default",
            Some(metric::Data::Sum(Sum {
                data_points: vec![],
                aggregation_temporality: 0,
                is_monotonic: false,
            })),
        ),
        m(
            "histogram",
            Some(metric::Data::Histogram(Histogram {
                data_points: vec![
                    HistogramDataPoint {
                        attributes: vec![kv("h", V::IntValue(1))],
                        start_time_unix_nano: 10,
                        time_unix_nano: 20,
                        count: u64::MAX,
                        sum: Some(0.0),
                        bucket_counts: vec![0, 1, u64::MAX],
                        explicit_bounds: vec![-1.5, 0.0, 1e300],
                        exemplars: exemplars(),
                        flags: 1,
                        min: Some(-0.0),
                        max: Some(0.0),
                    },
                    HistogramDataPoint::default(),
                ],
                aggregation_temporality: 1,
            })),
        ),
        m(
            "exp",
            Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![
                    ExponentialHistogramDataPoint {
                        attributes: vec![kv("e", V::DoubleValue(2.0))],
                        start_time_unix_nano: 10,
                        time_unix_nano: 20,
                        count: 30,
                        sum: Some(12.5),
                        scale: -3,
                        zero_count: 4,
                        positive: Some(exponential_histogram_data_point::Buckets {
                            offset: -2,
                            bucket_counts: vec![1, 0, 3],
                        }),
                        negative: Some(exponential_histogram_data_point::Buckets {
                            offset: 0,
                            bucket_counts: vec![],
                        }),
                        flags: 1,
                        exemplars: exemplars(),
                        min: Some(0.001),
                        max: Some(99.0),
                        zero_threshold: 1e-9,
                    },
                    ExponentialHistogramDataPoint {
                        positive: Some(Default::default()),
                        ..Default::default()
                    },
                    ExponentialHistogramDataPoint::default(),
                ],
                aggregation_temporality: 2,
            })),
        ),
        m(
            "summary",
            Some(metric::Data::Summary(Summary {
                data_points: vec![
                    SummaryDataPoint {
                        attributes: vec![kv("s", V::StringValue("x".into()))],
                        start_time_unix_nano: 10,
                        time_unix_nano: 20,
                        count: 100,
                        sum: 1234.5,
                        quantile_values: vec![
                            summary_data_point::ValueAtQuantile {
                                quantile: 0.0,
                                value: 0.0,
                            },
                            summary_data_point::ValueAtQuantile {
                                quantile: 0.99,
                                value: 99.9,
                            },
                        ],
                        flags: 1,
                    },
                    SummaryDataPoint::default(),
                ],
            })),
        ),
        m("no.data", None),
        Metric::default(),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics {
                resource: Some(full_resource()),
                scope_metrics: vec![
                    ScopeMetrics {
                        scope: Some(full_scope()),
                        metrics,
                        schema_url: "https://scope/schema".into(),
                    },
                    ScopeMetrics::default(),
                ],
                schema_url: "https://resource/schema".into(),
            },
            ResourceMetrics::default(),
        ],
    }
}

fn full_logs() -> ExportLogsServiceRequest {
    let bodies: Vec<Option<AnyValue>> = every_kind_attrs().into_iter().map(|kv| kv.value).collect();
    let mut records: Vec<LogRecord> = bodies
        .into_iter()
        .map(|body| LogRecord {
            body,
            ..Default::default()
        })
        .collect();
    records.insert(
        0,
        LogRecord {
            time_unix_nano: 1_544_712_660_300_000_000,
            observed_time_unix_nano: 1_544_712_660_300_000_001,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(av(V::StringValue("something failed".into()))),
            attributes: every_kind_attrs(),
            dropped_attributes_count: 3,
            flags: 1,
            trace_id: vec![0x5b; 16],
            span_id: vec![0xee; 8],
            event_name: "browser.click".into(),
        },
    );
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: Some(full_resource()),
                scope_logs: vec![
                    ScopeLogs {
                        scope: Some(full_scope()),
                        log_records: records,
                        schema_url: "https://scope/schema".into(),
                    },
                    ScopeLogs::default(),
                ],
                schema_url: "https://resource/schema".into(),
            },
            ResourceLogs::default(),
        ],
    }
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Equal as messages and byte-for-byte in protobuf (which also tells
/// -0.0 from 0.0).
#[track_caller]
fn assert_same<M: prost::Message + PartialEq + std::fmt::Debug>(got: &M, want: &M) {
    assert_eq!(got, want);
    assert_eq!(got.encode_to_vec(), want.encode_to_vec());
}

#[test]
fn synth_traces_round_trip() {
    for seed in [1, 2, 3] {
        let req = Synth::new(seed, 1_795_687_200_000_000_000).traces(512);
        let back = json::decode_traces(&body(&encode_traces(&req))).unwrap();
        assert_same(&back, &req);
    }
}

#[test]
fn synth_metrics_round_trip() {
    for seed in [1, 2, 3] {
        let req = Synth::new(seed, 1_795_687_200_000_000_000).metrics(500);
        let back = json::decode_metrics(&body(&encode_metrics(&req))).unwrap();
        assert_same(&back, &req);
    }
}

#[test]
fn synth_logs_round_trip() {
    for seed in [1, 2, 3] {
        let req = Synth::new(seed, 1_795_687_200_000_000_000).logs(512);
        let back = json::decode_logs(&body(&encode_logs(&req))).unwrap();
        assert_same(&back, &req);
    }
}

#[test]
fn every_trace_field_round_trips() {
    let req = full_traces();
    let back = json::decode_traces(&body(&encode_traces(&req))).unwrap();
    assert_same(&back, &req);
}

#[test]
fn every_metric_field_round_trips() {
    let req = full_metrics();
    let back = json::decode_metrics(&body(&encode_metrics(&req))).unwrap();
    assert_same(&back, &req);
}

#[test]
fn every_log_field_round_trips() {
    let req = full_logs();
    let back = json::decode_logs(&body(&encode_logs(&req))).unwrap();
    assert_same(&back, &req);
}

/// NaN is not equal to itself: compare the protobuf encodings instead.
#[test]
fn nan_round_trips() {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![kv("nan", V::DoubleValue(f64::NAN))],
                            value: Some(number_data_point::Value::AsDouble(f64::NAN)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let v = encode_metrics(&req);
    let dp = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0];
    assert_eq!(dp["asDouble"], json!("NaN"));
    assert_eq!(dp["attributes"][0]["value"], json!({"doubleValue": "NaN"}));
    let back = json::decode_metrics(&body(&v)).unwrap();
    assert_eq!(back.encode_to_vec(), req.encode_to_vec());
}

#[test]
fn encoding_follows_the_otlp_json_rules() {
    let req = full_traces();
    let v = encode_traces(&req);
    let rs = &v["resourceSpans"][0];
    let sp = &rs["scopeSpans"][0]["spans"][0];
    // Ids are lowercase hex, not base64.
    assert_eq!(sp["traceId"], json!("0102030405060708090a0b0c0d0e0f10"));
    assert_eq!(sp["spanId"], json!("0102030405060708"));
    assert_eq!(sp["parentSpanId"], json!("ffffffffffffffff"));
    // 64-bit integers are strings, 32-bit ones and enums numbers.
    assert_eq!(sp["startTimeUnixNano"], json!("1544712660000000000"));
    assert_eq!(sp["endTimeUnixNano"], json!(u64::MAX.to_string()));
    assert_eq!(sp["kind"], json!(2));
    assert_eq!(sp["flags"], json!(0x301));
    assert_eq!(sp["droppedAttributesCount"], json!(4));
    assert_eq!(sp["status"], json!({"message": "boom", "code": 2}));
    let attr = |key: &str| {
        sp["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == json!(key))
            .unwrap()
            .clone()
    };
    assert_eq!(
        attr("int")["value"],
        json!({"intValue": i64::MIN.to_string()})
    );
    assert_eq!(attr("int.zero")["value"], json!({"intValue": "0"}));
    assert_eq!(attr("double")["value"], json!({"doubleValue": 0.1}));
    assert_eq!(attr("double.zero")["value"], json!({"doubleValue": 0.0}));
    assert_eq!(
        attr("double.inf")["value"],
        json!({"doubleValue": "Infinity"})
    );
    assert_eq!(
        attr("double.ninf")["value"],
        json!({"doubleValue": "-Infinity"})
    );
    assert_eq!(attr("bool.false")["value"], json!({"boolValue": false}));
    assert_eq!(attr("empty.str")["value"], json!({"stringValue": ""}));
    assert_eq!(attr("bytes")["value"], json!({"bytesValue": "AAEC/v8="}));
    assert_eq!(attr("array.empty")["value"], json!({"arrayValue": {}}));
    assert_eq!(attr("kvlist.empty")["value"], json!({"kvlistValue": {}}));
    assert_eq!(attr("strindex")["value"], json!({"stringValueStrindex": 0}));
    assert_eq!(attr("absent"), json!({"key": "absent"}));
    assert_eq!(attr("empty"), json!({"key": "empty", "value": {}}));
    assert_eq!(
        attr("kvlist")["value"]["kvlistValue"]["values"][0],
        json!({"key": "inner", "value": {"intValue": "1"}})
    );
    // Defaults are omitted; present empty messages are kept.
    let default_span = &rs["scopeSpans"][1]["spans"][0];
    assert_eq!(default_span, &json!({}));
    assert_eq!(rs["scopeSpans"][1]["scope"], json!({}));
    assert_eq!(rs["scopeSpans"][2], json!({}));
    assert_eq!(v["resourceSpans"][1], json!({"resource": {}}));
    assert_eq!(v["resourceSpans"][2], json!({}));
    assert_eq!(
        rs["scopeSpans"][0]["spans"][1],
        json!({"kind": 99, "status": {}})
    );
    assert_eq!(rs["resource"]["entityRefs"][1], json!({"type": "host"}));
    assert_eq!(
        encode_traces(&ExportTraceServiceRequest::default()),
        json!({})
    );
}

#[test]
fn metric_encoding_details() {
    let v = encode_metrics(&full_metrics());
    let ms = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    let hist = &ms[3]["histogram"];
    assert_eq!(hist["aggregationTemporality"], json!(1));
    let p = &hist["dataPoints"][0];
    assert_eq!(p["count"], json!(u64::MAX.to_string()));
    assert_eq!(p["bucketCounts"], json!(["0", "1", u64::MAX.to_string()]));
    assert_eq!(p["explicitBounds"], json!([-1.5, 0.0, 1e300]));
    // Optional doubles are written whenever present, even as zero.
    assert_eq!(p["sum"], json!(0.0));
    assert_eq!(p["max"], json!(0.0));
    assert_eq!(hist["dataPoints"][1], json!({}));
    let sum = &ms[1]["sum"];
    assert_eq!(sum["isMonotonic"], json!(true));
    assert_eq!(sum["dataPoints"][1]["asInt"], json!(i64::MIN.to_string()));
    assert_eq!(sum["dataPoints"][2], json!({"asInt": "0"}));
    assert_eq!(sum["dataPoints"][3], json!({"asDouble": 0.0}));
    assert_eq!(sum["dataPoints"][4], json!({}));
    assert_eq!(
        ms[2],
        json!({"name": "sum.default", "description": "sum.default description", "unit": "ms", "metadata": [{"key": "meta", "value": {"boolValue": true}}], "sum": {}})
    );
    let exp = &ms[4]["exponentialHistogram"]["dataPoints"];
    assert_eq!(exp[0]["scale"], json!(-3));
    assert_eq!(exp[0]["zeroCount"], json!("4"));
    assert_eq!(exp[0]["zeroThreshold"], json!(1e-9));
    assert_eq!(
        exp[0]["positive"],
        json!({"offset": -2, "bucketCounts": ["1", "0", "3"]})
    );
    assert_eq!(exp[0]["negative"], json!({}));
    assert_eq!(exp[1], json!({"positive": {}}));
    let q = &ms[5]["summary"]["dataPoints"][0]["quantileValues"];
    assert_eq!(q, &json!([{}, {"quantile": 0.99, "value": 99.9}]));
    let ex = &ms[0]["gauge"]["dataPoints"][0]["exemplars"];
    assert_eq!(ex[0]["spanId"], json!("1111111111111111"));
    assert_eq!(ex[0]["asDouble"], json!(0.0));
    assert_eq!(ex[1], json!({"asInt": "0"}));
    assert_eq!(ex[3], json!({}));
    assert_eq!(ms[6].get("gauge"), None);
}

#[test]
fn log_encoding_details() {
    let v = encode_logs(&full_logs());
    let r = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(r["severityNumber"], json!(17));
    assert_eq!(r["observedTimeUnixNano"], json!("1544712660300000001"));
    assert_eq!(r["eventName"], json!("browser.click"));
    assert_eq!(r["traceId"], json!("5b".repeat(16)));
    assert_eq!(r["flags"], json!(1));
    assert_eq!(r["body"], json!({"stringValue": "something failed"}));
}

/// A second opinion: `opentelemetry-proto`'s own serde mapping (enabled
/// for tests through the `http-json` feature of the `opentelemetry-otlp`
/// dev-dependency) reads the encoded synth requests back identically.
#[test]
fn opentelemetry_proto_serde_reads_the_encoding() {
    let mut synth = Synth::new(5, 1_795_687_200_000_000_000);
    let req = synth.traces(64);
    let back: ExportTraceServiceRequest = serde_json::from_value(encode_traces(&req)).unwrap();
    assert_same(&back, &req);
    let req = synth.metrics(64);
    let back: ExportMetricsServiceRequest = serde_json::from_value(encode_metrics(&req)).unwrap();
    assert_same(&back, &req);
    let req = synth.logs(64);
    let back: ExportLogsServiceRequest = serde_json::from_value(encode_logs(&req)).unwrap();
    assert_same(&back, &req);
}

/// `encode_any_value` is the inverse of the decoder for every kind.
#[test]
fn any_values_round_trip_alone() {
    for kv in every_kind_attrs() {
        let Some(v) = kv.value else { continue };
        let back = super::decode_any_value(&encode_any_value(&v)).unwrap();
        assert_eq!(back.encode_to_vec(), v.encode_to_vec(), "{}", kv.key);
    }
}

#[test]
fn an_encoding_within_a_limit_is_the_same_or_refused() {
    let r = full_traces();
    let full = json::encode_traces(&r);
    assert_eq!(json::encode_traces_within(&r, full.len()).unwrap(), full);
    let e = json::encode_traces_within(&r, full.len() - 1).unwrap_err();
    assert_eq!(e.limit, full.len() - 1);
    // A large value stops the output at the limit, not after it.
    let mut big = full_traces();
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("blob", V::StringValue("\u{1}".repeat(1 << 20))));
    assert!(json::encode_traces_within(&big, full.len() + 1000).is_err());
}
