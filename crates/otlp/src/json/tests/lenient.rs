//! The decoder's leniencies and limits per value kind: integers, doubles,
//! ids, enums and AnyValue nesting.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use serde_json::Value;

use crate::json::*;
use any_value::Value as V;
use serde_json::json;
use tf_domain::telemetry::MAX_ANY_VALUE_DEPTH;

use super::fixtures::*;

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
