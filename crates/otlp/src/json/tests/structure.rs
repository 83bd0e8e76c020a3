//! Request structure (empty, null, unknown fields, oneofs, wrong types),
//! syntax errors, no panics on hostile input, and response encoding.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ResourceMetrics, Summary, SummaryDataPoint, metric,
};
use opentelemetry_proto::tonic::trace::v1::{Span, span};
use serde_json::Value;

use crate::json::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use serde_json::json;

use super::fixtures::*;

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
    let mut rng = crate::synth::Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut next = || rng.next();
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
