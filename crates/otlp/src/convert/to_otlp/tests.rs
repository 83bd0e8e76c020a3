use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, MapBuilder, StringArray, StringBuilder};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message as _;

use super::spans_to_otlp;
use crate::convert::ConvertError;
use crate::convert::convert_traces;
use crate::json;
use crate::synth::Synth;
use any_value::Value as V;
use tf_domain::TenantContext;

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

fn spans_in(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// `convert_traces` → record batches, checking that every span was admitted.
fn to_rows(req: &ExportTraceServiceRequest) -> Vec<RecordBatch> {
    let c = convert_traces(req, &TenantContext::default()).unwrap();
    let batches: Vec<RecordBatch> = c.batches.into_iter().map(|b| b.batch).collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, spans_in(req), "every span is admitted");
    batches
}

/// Equal as messages and as protobuf bytes (which also tells -0.0 from 0.0).
#[track_caller]
fn assert_same(got: &ExportTraceServiceRequest, want: &ExportTraceServiceRequest) {
    assert_eq!(got, want);
    assert_eq!(got.encode_to_vec(), want.encode_to_vec());
}

/// Attributes of every type the tables record, nested kinds included.
fn every_kind(prefix: &str) -> Vec<KeyValue> {
    let all_scalars = vec![
        av(V::StringValue("x \"q\"".into())),
        av(V::StringValue(String::new())),
        av(V::IntValue(-3)),
        av(V::DoubleValue(2.0)),
        av(V::DoubleValue(0.1)),
        av(V::DoubleValue(-0.0)),
        av(V::DoubleValue(f64::NEG_INFINITY)),
        av(V::BoolValue(false)),
        av(V::BytesValue(vec![0, 0xff])),
        av(V::StringValueStrindex(4)),
        AnyValue { value: None },
    ];
    let inner_kvlist = KeyValueList {
        values: vec![
            kv("a", V::IntValue(1)),
            KeyValue {
                key: "no.value".into(),
                value: Some(AnyValue { value: None }),
                key_strindex: 0,
            },
            kv(
                "arr",
                V::ArrayValue(ArrayValue {
                    values: all_scalars.clone(),
                }),
            ),
        ],
    };
    let mut nested = all_scalars.clone();
    nested.push(av(V::ArrayValue(ArrayValue { values: vec![] })));
    nested.push(av(V::KvlistValue(inner_kvlist.clone())));
    let k = |s: &str| format!("{prefix}{s}");
    vec![
        kv(&k("str"), V::StringValue("v ✓\n\"".into())),
        kv(&k("str.empty"), V::StringValue(String::new())),
        kv(&k("str.looks.int"), V::StringValue("42".into())),
        kv(&k("int.min"), V::IntValue(i64::MIN)),
        kv(&k("int.max"), V::IntValue(i64::MAX)),
        kv(&k("double"), V::DoubleValue(0.1)),
        kv(&k("double.int"), V::DoubleValue(3.0)),
        kv(&k("double.neg.zero"), V::DoubleValue(-0.0)),
        kv(&k("double.tiny"), V::DoubleValue(5e-324)),
        kv(&k("double.big"), V::DoubleValue(f64::MAX)),
        kv(&k("double.inf"), V::DoubleValue(f64::INFINITY)),
        kv(&k("double.ninf"), V::DoubleValue(f64::NEG_INFINITY)),
        kv(&k("bool.true"), V::BoolValue(true)),
        kv(&k("bool.false"), V::BoolValue(false)),
        kv(&k("bytes"), V::BytesValue(vec![0, 1, 2, 0xfe, 0xff])),
        kv(&k("bytes.empty"), V::BytesValue(Vec::new())),
        kv(&k("array"), V::ArrayValue(ArrayValue { values: nested })),
        kv(
            &k("array.empty"),
            V::ArrayValue(ArrayValue { values: vec![] }),
        ),
        kv(&k("kvlist"), V::KvlistValue(inner_kvlist)),
        kv(
            &k("kvlist.empty"),
            V::KvlistValue(KeyValueList { values: vec![] }),
        ),
        kv(&k("strindex"), V::StringValueStrindex(7)),
        KeyValue {
            key: k("empty"),
            value: Some(AnyValue { value: None }),
            key_strindex: 0,
        },
    ]
}

fn full_span() -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        trace_state: "vendor=value,other=1".into(),
        parent_span_id: vec![0xff; 8],
        flags: 0x301,
        name: "GET /items/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_123_456_789,
        attributes: every_kind("span."),
        dropped_attributes_count: 3,
        events: vec![
            span::Event {
                time_unix_nano: 1_700_000_000_000_000_500,
                name: "exception".into(),
                attributes: every_kind("event."),
                dropped_attributes_count: 1,
            },
            span::Event::default(),
        ],
        dropped_events_count: 4,
        links: vec![
            span::Link {
                trace_id: vec![0xab; 16],
                span_id: vec![0xcd; 8],
                trace_state: "k=v".into(),
                attributes: every_kind("link."),
                dropped_attributes_count: 6,
                flags: 0x100,
            },
            span::Link::default(),
        ],
        dropped_links_count: 5,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
    }
}

/// A span with only what the span rules require, of a given kind / status.
fn small_span(n: u8, kind: i32, code: i32) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        kind,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        status: Some(Status {
            code,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn full_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "my.library".into(),
        version: "1.2.3".into(),
        attributes: every_kind("scope."),
        dropped_attributes_count: 2,
    }
}

fn service(name: &str) -> KeyValue {
    kv("service.name", V::StringValue(name.into()))
}

fn full_request() -> ExportTraceServiceRequest {
    let mut resource_attrs = vec![service("checkout")];
    resource_attrs.extend(every_kind("resource."));
    let full_resource = Resource {
        attributes: resource_attrs,
        dropped_attributes_count: 9,
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
    };
    let only_service = || Resource {
        attributes: vec![service("cart")],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(full_resource),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(full_scope()),
                        spans: vec![full_span(), small_span(1, 0, 0)],
                        schema_url: "https://scope/schema".into(),
                    },
                    ScopeSpans {
                        scope: Some(InstrumentationScope::default()),
                        spans: (0..6).map(|k| small_span(10 + k as u8, k, k % 3)).collect(),
                        schema_url: String::new(),
                    },
                    // Same scope as the first, other schema URL: its own group.
                    ScopeSpans {
                        scope: Some(full_scope()),
                        spans: vec![small_span(2, 1, 1)],
                        schema_url: "https://scope/schema/2".into(),
                    },
                ],
                schema_url: "https://resource/schema".into(),
            },
            // No service.name: the rows say `unknown_service`, the
            // attributes stay empty.
            ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(full_scope()),
                    spans: vec![small_span(3, 3, 0)],
                    schema_url: "https://scope/schema".into(),
                }],
                schema_url: String::new(),
            },
            // Two resources that differ only by schema URL / dropped count.
            ResourceSpans {
                resource: Some(only_service()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans: vec![small_span(4, 4, 0)],
                    schema_url: String::new(),
                }],
                schema_url: "a".into(),
            },
            ResourceSpans {
                resource: Some(only_service()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans: vec![small_span(5, 5, 0)],
                    schema_url: String::new(),
                }],
                schema_url: "b".into(),
            },
            ResourceSpans {
                resource: Some(Resource {
                    dropped_attributes_count: 1,
                    ..only_service()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans: vec![small_span(6, 1, 0)],
                    schema_url: String::new(),
                }],
                schema_url: "b".into(),
            },
        ],
    }
}

#[test]
fn synth_traces_round_trip() {
    for seed in [1, 2, 3] {
        let req = Synth::new(seed, 1_795_687_200_000_000_000).traces(512);
        let back = spans_to_otlp(&to_rows(&req)).unwrap();
        // Exact, order included: the converter keeps the request's order.
        assert_same(&back, &req);
    }
}

/// Several batches, and sliced ones (offsets not starting at zero), give
/// the same request as one batch.
#[test]
fn sliced_batches_round_trip() {
    let req = Synth::new(9, 1_795_687_200_000_000_000).traces(512);
    let rows = to_rows(&req);
    assert_eq!(rows.len(), 1);
    let b = &rows[0];
    let parts = [
        b.slice(0, 100),
        b.slice(100, 0),
        b.slice(100, 312),
        b.slice(412, 100),
    ];
    assert_same(&spans_to_otlp(&parts).unwrap(), &req);
    let full = full_request();
    let b = &to_rows(&full)[0];
    let parts: Vec<RecordBatch> = (0..b.num_rows()).map(|i| b.slice(i, 1)).collect();
    assert_same(&spans_to_otlp(&parts).unwrap(), &full);
}

#[test]
fn every_field_and_attribute_type_round_trips() {
    let req = full_request();
    let back = spans_to_otlp(&to_rows(&req)).unwrap();
    assert_same(&back, &req);
    // And on through OTLP/JSON.
    let body = json::encode_traces(&back);
    assert_same(&json::decode_traces(&body).unwrap(), &req);
    // The service name column is derived, the attribute is what comes back.
    let rows = to_rows(&req);
    let services = rows[0]
        .column_by_name("service_name")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect::<Vec<_>>();
    assert!(services.contains(&"unknown_service"));
    assert!(
        back.resource_spans[1]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .is_empty()
    );
}

/// NaN is not equal to itself: compare protobuf bytes.
#[test]
fn nan_round_trips() {
    let mut span = small_span(1, 1, 0);
    span.attributes = vec![
        kv("nan", V::DoubleValue(f64::NAN)),
        kv(
            "arr",
            V::ArrayValue(ArrayValue {
                values: vec![av(V::DoubleValue(f64::NAN))],
            }),
        ),
    ];
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope::default()),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let back = spans_to_otlp(&to_rows(&req)).unwrap();
    assert_eq!(back.encode_to_vec(), req.encode_to_vec());
}

/// What the rows cannot tell apart comes back in one canonical form.
#[test]
fn indistinguishable_forms_come_back_canonical() {
    let mut span = small_span(1, 9, 7); // kind and code outside the enums
    span.status = None;
    span.attributes = vec![
        KeyValue {
            key: "absent".into(),
            value: None,
            key_strindex: 3,
        },
        kv(
            "kv",
            V::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "absent".into(),
                    value: None,
                    key_strindex: 0,
                }],
            }),
        ),
    ];
    let ss = |spans| ScopeSpans {
        scope: None,
        spans,
        schema_url: String::new(),
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: None,
                scope_spans: vec![ss(vec![span]), ss(vec![]), ss(vec![small_span(2, 1, 0)])],
                schema_url: String::new(),
            },
            ResourceSpans::default(),
            // The same (absent) resource again: merged into the first.
            ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ss(vec![small_span(3, 1, 0)])],
                schema_url: String::new(),
            },
        ],
    };
    let back = spans_to_otlp(&to_rows(&req)).unwrap();
    let mut want_span = small_span(1, 0, 0);
    want_span.attributes = vec![
        KeyValue {
            key: "absent".into(),
            value: Some(AnyValue { value: None }),
            key_strindex: 0,
        },
        kv(
            "kv",
            V::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "absent".into(),
                    value: Some(AnyValue { value: None }),
                    key_strindex: 0,
                }],
            }),
        ),
    ];
    let want = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope::default()),
                // Both scope groups are the same (absent) scope: merged.
                spans: vec![want_span, small_span(2, 1, 0), small_span(3, 1, 0)],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    assert_same(&back, &want);
    assert_eq!(
        spans_to_otlp(&[]).unwrap(),
        ExportTraceServiceRequest::default()
    );
}

// ----- malformed rows ---------------------------------------------------

fn one_row(span: Span) -> RecordBatch {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope::default()),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    to_rows(&req).remove(0)
}

/// `batch` with column `name` replaced (declared nullable, so nulls fit).
fn with_column(batch: &RecordBatch, name: &str, col: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let idx = schema.index_of(name).unwrap();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[idx] = Field::new(name, col.data_type().clone(), true);
    let mut cols = batch.columns().to_vec();
    cols[idx] = col;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn without_column(batch: &RecordBatch, name: &str) -> RecordBatch {
    let idx = batch.schema().index_of(name).unwrap();
    let mut b = batch.clone();
    b.remove_column(idx);
    b
}

fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn one_entry_map(key: &str, value: &str) -> ArrayRef {
    let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    m.keys().append_value(key);
    m.values().append_value(value);
    m.append(true).unwrap();
    Arc::new(m.finish())
}

#[track_caller]
fn malformed(batch: RecordBatch) -> (String, String) {
    match spans_to_otlp(&[batch]) {
        Err(ConvertError::MalformedRow {
            batch: 0,
            row: 0,
            column,
            message,
        }) => (column, message),
        other => panic!("expected a malformed row, got {other:?}"),
    }
}

#[test]
fn malformed_rows_are_errors_not_panics() {
    let mut span = small_span(1, 1, 0);
    span.attributes = vec![kv("k", V::StringValue("abc".into()))];
    span.links = vec![span::Link::default()];
    let b = one_row(span);
    assert!(spans_to_otlp(std::slice::from_ref(&b)).is_ok());

    let cases: Vec<(RecordBatch, &str, &str)> = vec![
        (
            with_column(&b, "trace_id", strings(&[Some("zz")])),
            "trace_id",
            "invalid hex",
        ),
        (
            with_column(&b, "span_id", strings(&[None])),
            "span_id",
            "null",
        ),
        (
            with_column(&b, "span_kind", strings(&[Some("Sideways")])),
            "span_kind",
            "unknown span kind",
        ),
        (
            with_column(&b, "status_code", strings(&[Some("")])),
            "status_code",
            "unknown status code",
        ),
        (
            with_column(&b, "duration_ns", Arc::new(Int64Array::from(vec![-1]))),
            "duration_ns",
            "invalid duration",
        ),
        (
            with_column(&b, "span_attribute_types", one_entry_map("k", "int")),
            "span_attributes",
            "attribute `k` of type `int`",
        ),
        (
            with_column(&b, "span_attribute_types", one_entry_map("k", "matrix")),
            "span_attributes",
            "unknown attribute type",
        ),
        (
            with_column(&b, "span_attribute_types", one_entry_map("other", "int")),
            "span_attributes",
            "which no attribute matches",
        ),
        (
            with_column(&b, "resource_entity_refs", strings(&[Some("{}")])),
            "resource_entity_refs",
            "expected an array",
        ),
    ];
    for (batch, column, message) in cases {
        let (c, m) = malformed(batch);
        assert_eq!(c, column, "{m}");
        assert!(m.contains(message), "{column}: {m}");
    }
    // Arrays and kvlists that are not their OTLP/JSON rendering.
    for (ty, text) in [
        ("array", "abc"),
        ("array", "{}"),
        ("kvlist", "[{\"intValue\":"),
    ] {
        let b2 = with_column(&b, "span_attribute_types", one_entry_map("k", ty));
        let b2 = with_column(&b2, "span_attributes", one_entry_map("k", text));
        assert_eq!(malformed(b2).0, "span_attributes", "{ty} {text}");
    }
    // Negative times.
    let ts = arrow::array::TimestampNanosecondArray::from(vec![-5]).with_timezone("UTC");
    assert!(
        malformed(with_column(&b, "timestamp", Arc::new(ts)))
            .1
            .contains("negative")
    );
}

#[test]
fn unusable_columns_are_errors() {
    let b = one_row(small_span(1, 1, 0));
    match spans_to_otlp(&[without_column(&b, "links")]) {
        Err(ConvertError::Column { column, message }) => {
            assert_eq!(column, "links");
            assert_eq!(message, "missing");
        }
        other => panic!("{other:?}"),
    }
    match spans_to_otlp(&[with_column(&b, "events", strings(&[Some("[]")]))]) {
        Err(ConvertError::Column { column, .. }) => assert_eq!(column, "events"),
        other => panic!("{other:?}"),
    }
    // A column of another but convertible type is cast.
    let views: ArrayRef = Arc::new(arrow::array::StringViewArray::from(vec!["Client"]));
    let back = spans_to_otlp(&[with_column(&b, "span_kind", views)]).unwrap();
    assert_eq!(back.resource_spans[0].scope_spans[0].spans[0].kind, 3);
}
