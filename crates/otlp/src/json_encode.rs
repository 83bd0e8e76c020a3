//! OTLP/JSON ("JSON Protobuf Encoding", OTLP spec 1.x) request encoder: the
//! counterpart of the decoder in [`super::json`].
//!
//! It follows the proto3 JSON mapping as the OTLP specification amends it:
//!
//! * keys in lowerCamelCase;
//! * trace and span ids as lowercase hex (not base64); other `bytes` (the
//!   `bytesValue` of an `AnyValue`) as standard, padded base64;
//! * 64-bit integers (`int64`, `uint64`, `fixed64`, `sfixed64`) as decimal
//!   strings, 32-bit integers as JSON numbers;
//! * enums as their integer values;
//! * doubles as JSON numbers, NaN and the infinities as the strings `"NaN"`,
//!   `"Infinity"` and `"-Infinity"`;
//! * fields holding their default value (0, `""`, `false`, empty lists, absent
//!   messages) omitted. Set members of a `oneof`, `optional` fields (a
//!   histogram's `sum`, `min`, `max`) and present messages are written even
//!   when their value is the default, since their presence is information
//!   (`"intValue":"0"`, `"status":{}`). A double is default only when it is
//!   `+0.0`: `-0.0` is written, as Go's `protojson` does.
//!
//! `json::decode_*(serde_json::to_vec(&encode_*(&req)))` gives back `req`
//! for every request whose ids have the lengths OTLP requires (16-byte trace
//! ids, 8-byte span ids, or none); the decoder rejects other lengths.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

use base64::Engine as _;
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
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Encodes an `ExportTraceServiceRequest` as OTLP/JSON.
pub fn encode_traces(req: &ExportTraceServiceRequest) -> Value {
    Obj::new()
        .list("resourceSpans", &req.resource_spans, resource_spans)
        .done()
}

/// Encodes an `ExportMetricsServiceRequest` as OTLP/JSON.
pub fn encode_metrics(req: &ExportMetricsServiceRequest) -> Value {
    Obj::new()
        .list("resourceMetrics", &req.resource_metrics, resource_metrics)
        .done()
}

/// Encodes an `ExportLogsServiceRequest` as OTLP/JSON.
pub fn encode_logs(req: &ExportLogsServiceRequest) -> Value {
    Obj::new()
        .list("resourceLogs", &req.resource_logs, resource_logs)
        .done()
}

/// Encodes one `AnyValue` as OTLP/JSON (`{"intValue":"1"}`; `{}` when it
/// holds no value).
pub fn encode_any_value(v: &AnyValue) -> Value {
    use any_value::Value as V;
    let o = Obj::new();
    match &v.value {
        None => o,
        // Oneof members are written even when they hold the default value.
        Some(V::StringValue(s)) => o.put("stringValue", Value::String(s.clone())),
        Some(V::BoolValue(b)) => o.put("boolValue", Value::Bool(*b)),
        Some(V::IntValue(i)) => o.put("intValue", Value::String(i.to_string())),
        Some(V::DoubleValue(d)) => o.put("doubleValue", double(*d)),
        Some(V::ArrayValue(a)) => o.put(
            "arrayValue",
            Obj::new()
                .list("values", &a.values, encode_any_value)
                .done(),
        ),
        Some(V::KvlistValue(kv)) => o.put(
            "kvlistValue",
            Obj::new().list("values", &kv.values, key_value).done(),
        ),
        Some(V::BytesValue(b)) => o.put(
            "bytesValue",
            Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        Some(V::StringValueStrindex(i)) => o.put("stringValueStrindex", Value::from(*i)),
    }
    .done()
}

// ---------------------------------------------------------------------------
// Object building
// ---------------------------------------------------------------------------

/// A JSON object under construction; each setter omits default values.
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self(Map::new())
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }

    /// Sets `key` unconditionally.
    fn put(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.to_owned(), v);
        self
    }

    fn string(self, key: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, Value::String(v.to_owned()))
        }
    }

    fn boolean(self, key: &str, v: bool) -> Self {
        if v {
            self.put(key, Value::Bool(true))
        } else {
            self
        }
    }

    /// `uint64` / `fixed64`: a decimal string.
    fn uint64(self, key: &str, v: u64) -> Self {
        if v == 0 {
            self
        } else {
            self.put(key, Value::String(v.to_string()))
        }
    }

    /// `uint32` / `fixed32`: a number.
    fn uint32(self, key: &str, v: u32) -> Self {
        if v == 0 {
            self
        } else {
            self.put(key, Value::from(v))
        }
    }

    /// `int32` / `sint32` and enums: a number.
    fn int32(self, key: &str, v: i32) -> Self {
        if v == 0 {
            self
        } else {
            self.put(key, Value::from(v))
        }
    }

    fn double(self, key: &str, v: f64) -> Self {
        // Only +0.0 is the default: -0.0 is a different value.
        if v.to_bits() == 0 {
            self
        } else {
            self.put(key, double(v))
        }
    }

    /// An `optional double`: written whenever present.
    fn opt_double(self, key: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.put(key, double(v)),
            None => self,
        }
    }

    /// A trace or span id: lowercase hex.
    fn id(self, key: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.put(key, Value::String(hex::encode(v)))
        }
    }

    fn list<T>(self, key: &str, items: &[T], f: impl Fn(&T) -> Value) -> Self {
        if items.is_empty() {
            self
        } else {
            self.put(key, Value::Array(items.iter().map(f).collect()))
        }
    }

    /// An optional message: written whenever present, even if empty.
    fn message<T>(self, key: &str, v: Option<&T>, f: impl FnOnce(&T) -> Value) -> Self {
        match v {
            Some(v) => self.put(key, f(v)),
            None => self,
        }
    }

    fn attributes(self, key: &str, kvs: &[KeyValue]) -> Self {
        self.list(key, kvs, key_value)
    }
}

/// A double: a JSON number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
fn double(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".to_owned()),
        None if v > 0.0 => Value::String("Infinity".to_owned()),
        None => Value::String("-Infinity".to_owned()),
    }
}

fn uint64_list(v: &[u64]) -> Vec<Value> {
    v.iter().map(|n| Value::String(n.to_string())).collect()
}

// ---------------------------------------------------------------------------
// Common messages
// ---------------------------------------------------------------------------

fn key_value(kv: &KeyValue) -> Value {
    Obj::new()
        .string("key", &kv.key)
        .message("value", kv.value.as_ref(), encode_any_value)
        .int32("keyStrindex", kv.key_strindex)
        .done()
}

fn resource(r: &Resource) -> Value {
    Obj::new()
        .attributes("attributes", &r.attributes)
        .uint32("droppedAttributesCount", r.dropped_attributes_count)
        .list("entityRefs", &r.entity_refs, entity_ref)
        .done()
}

fn entity_ref(e: &EntityRef) -> Value {
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    let o = Obj::new()
        .string("schemaUrl", &e.schema_url)
        .string("type", &e.r#type);
    let o = if e.id_keys.is_empty() {
        o
    } else {
        o.put("idKeys", strings(&e.id_keys))
    };
    let o = if e.description_keys.is_empty() {
        o
    } else {
        o.put("descriptionKeys", strings(&e.description_keys))
    };
    o.done()
}

fn scope(s: &InstrumentationScope) -> Value {
    Obj::new()
        .string("name", &s.name)
        .string("version", &s.version)
        .attributes("attributes", &s.attributes)
        .uint32("droppedAttributesCount", s.dropped_attributes_count)
        .done()
}

// ---------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------

fn resource_spans(rs: &ResourceSpans) -> Value {
    Obj::new()
        .message("resource", rs.resource.as_ref(), resource)
        .list("scopeSpans", &rs.scope_spans, scope_spans)
        .string("schemaUrl", &rs.schema_url)
        .done()
}

fn scope_spans(ss: &ScopeSpans) -> Value {
    Obj::new()
        .message("scope", ss.scope.as_ref(), scope)
        .list("spans", &ss.spans, span)
        .string("schemaUrl", &ss.schema_url)
        .done()
}

fn span(s: &Span) -> Value {
    Obj::new()
        .id("traceId", &s.trace_id)
        .id("spanId", &s.span_id)
        .string("traceState", &s.trace_state)
        .id("parentSpanId", &s.parent_span_id)
        .uint32("flags", s.flags)
        .string("name", &s.name)
        .int32("kind", s.kind)
        .uint64("startTimeUnixNano", s.start_time_unix_nano)
        .uint64("endTimeUnixNano", s.end_time_unix_nano)
        .attributes("attributes", &s.attributes)
        .uint32("droppedAttributesCount", s.dropped_attributes_count)
        .list("events", &s.events, span_event)
        .uint32("droppedEventsCount", s.dropped_events_count)
        .list("links", &s.links, span_link)
        .uint32("droppedLinksCount", s.dropped_links_count)
        .message("status", s.status.as_ref(), status)
        .done()
}

fn span_event(e: &span::Event) -> Value {
    Obj::new()
        .uint64("timeUnixNano", e.time_unix_nano)
        .string("name", &e.name)
        .attributes("attributes", &e.attributes)
        .uint32("droppedAttributesCount", e.dropped_attributes_count)
        .done()
}

fn span_link(l: &span::Link) -> Value {
    Obj::new()
        .id("traceId", &l.trace_id)
        .id("spanId", &l.span_id)
        .string("traceState", &l.trace_state)
        .attributes("attributes", &l.attributes)
        .uint32("droppedAttributesCount", l.dropped_attributes_count)
        .uint32("flags", l.flags)
        .done()
}

fn status(s: &Status) -> Value {
    Obj::new()
        .string("message", &s.message)
        .int32("code", s.code)
        .done()
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

fn resource_metrics(rm: &ResourceMetrics) -> Value {
    Obj::new()
        .message("resource", rm.resource.as_ref(), resource)
        .list("scopeMetrics", &rm.scope_metrics, scope_metrics)
        .string("schemaUrl", &rm.schema_url)
        .done()
}

fn scope_metrics(sm: &ScopeMetrics) -> Value {
    Obj::new()
        .message("scope", sm.scope.as_ref(), scope)
        .list("metrics", &sm.metrics, metric)
        .string("schemaUrl", &sm.schema_url)
        .done()
}

fn metric(m: &Metric) -> Value {
    use metric::Data as D;
    let o = Obj::new()
        .string("name", &m.name)
        .string("description", &m.description)
        .string("unit", &m.unit);
    let o = match &m.data {
        None => o,
        Some(D::Gauge(g)) => o.put(
            "gauge",
            Obj::new()
                .list("dataPoints", &g.data_points, number_data_point)
                .done(),
        ),
        Some(D::Sum(s)) => o.put(
            "sum",
            Obj::new()
                .list("dataPoints", &s.data_points, number_data_point)
                .int32("aggregationTemporality", s.aggregation_temporality)
                .boolean("isMonotonic", s.is_monotonic)
                .done(),
        ),
        Some(D::Histogram(h)) => o.put(
            "histogram",
            Obj::new()
                .list("dataPoints", &h.data_points, histogram_data_point)
                .int32("aggregationTemporality", h.aggregation_temporality)
                .done(),
        ),
        Some(D::ExponentialHistogram(e)) => o.put(
            "exponentialHistogram",
            Obj::new()
                .list("dataPoints", &e.data_points, exp_histogram_data_point)
                .int32("aggregationTemporality", e.aggregation_temporality)
                .done(),
        ),
        Some(D::Summary(s)) => o.put(
            "summary",
            Obj::new()
                .list("dataPoints", &s.data_points, summary_data_point)
                .done(),
        ),
    };
    o.attributes("metadata", &m.metadata).done()
}

fn number_data_point(p: &NumberDataPoint) -> Value {
    use number_data_point::Value as V;
    let o = Obj::new()
        .attributes("attributes", &p.attributes)
        .uint64("startTimeUnixNano", p.start_time_unix_nano)
        .uint64("timeUnixNano", p.time_unix_nano);
    let o = match p.value {
        None => o,
        Some(V::AsDouble(d)) => o.put("asDouble", double(d)),
        Some(V::AsInt(i)) => o.put("asInt", Value::String(i.to_string())),
    };
    o.list("exemplars", &p.exemplars, exemplar)
        .uint32("flags", p.flags)
        .done()
}

fn histogram_data_point(p: &HistogramDataPoint) -> Value {
    let o = Obj::new()
        .attributes("attributes", &p.attributes)
        .uint64("startTimeUnixNano", p.start_time_unix_nano)
        .uint64("timeUnixNano", p.time_unix_nano)
        .uint64("count", p.count)
        .opt_double("sum", p.sum);
    let o = if p.bucket_counts.is_empty() {
        o
    } else {
        o.put("bucketCounts", Value::Array(uint64_list(&p.bucket_counts)))
    };
    let o = if p.explicit_bounds.is_empty() {
        o
    } else {
        o.put(
            "explicitBounds",
            Value::Array(p.explicit_bounds.iter().copied().map(double).collect()),
        )
    };
    o.list("exemplars", &p.exemplars, exemplar)
        .uint32("flags", p.flags)
        .opt_double("min", p.min)
        .opt_double("max", p.max)
        .done()
}

fn exp_histogram_data_point(p: &ExponentialHistogramDataPoint) -> Value {
    Obj::new()
        .attributes("attributes", &p.attributes)
        .uint64("startTimeUnixNano", p.start_time_unix_nano)
        .uint64("timeUnixNano", p.time_unix_nano)
        .uint64("count", p.count)
        .opt_double("sum", p.sum)
        .int32("scale", p.scale)
        .uint64("zeroCount", p.zero_count)
        .message("positive", p.positive.as_ref(), buckets)
        .message("negative", p.negative.as_ref(), buckets)
        .uint32("flags", p.flags)
        .list("exemplars", &p.exemplars, exemplar)
        .opt_double("min", p.min)
        .opt_double("max", p.max)
        .double("zeroThreshold", p.zero_threshold)
        .done()
}

fn buckets(b: &exponential_histogram_data_point::Buckets) -> Value {
    let o = Obj::new().int32("offset", b.offset);
    if b.bucket_counts.is_empty() {
        o
    } else {
        o.put("bucketCounts", Value::Array(uint64_list(&b.bucket_counts)))
    }
    .done()
}

fn summary_data_point(p: &SummaryDataPoint) -> Value {
    Obj::new()
        .attributes("attributes", &p.attributes)
        .uint64("startTimeUnixNano", p.start_time_unix_nano)
        .uint64("timeUnixNano", p.time_unix_nano)
        .uint64("count", p.count)
        .double("sum", p.sum)
        .list("quantileValues", &p.quantile_values, |q| {
            Obj::new()
                .double("quantile", q.quantile)
                .double("value", q.value)
                .done()
        })
        .uint32("flags", p.flags)
        .done()
}

fn exemplar(e: &Exemplar) -> Value {
    use exemplar::Value as V;
    let o = Obj::new()
        .attributes("filteredAttributes", &e.filtered_attributes)
        .uint64("timeUnixNano", e.time_unix_nano);
    let o = match e.value {
        None => o,
        Some(V::AsDouble(d)) => o.put("asDouble", double(d)),
        Some(V::AsInt(i)) => o.put("asInt", Value::String(i.to_string())),
    };
    o.id("spanId", &e.span_id).id("traceId", &e.trace_id).done()
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

fn resource_logs(rl: &ResourceLogs) -> Value {
    Obj::new()
        .message("resource", rl.resource.as_ref(), resource)
        .list("scopeLogs", &rl.scope_logs, scope_logs)
        .string("schemaUrl", &rl.schema_url)
        .done()
}

fn scope_logs(sl: &ScopeLogs) -> Value {
    Obj::new()
        .message("scope", sl.scope.as_ref(), scope)
        .list("logRecords", &sl.log_records, log_record)
        .string("schemaUrl", &sl.schema_url)
        .done()
}

fn log_record(r: &LogRecord) -> Value {
    Obj::new()
        .uint64("timeUnixNano", r.time_unix_nano)
        .uint64("observedTimeUnixNano", r.observed_time_unix_nano)
        .int32("severityNumber", r.severity_number)
        .string("severityText", &r.severity_text)
        .message("body", r.body.as_ref(), encode_any_value)
        .attributes("attributes", &r.attributes)
        .uint32("droppedAttributesCount", r.dropped_attributes_count)
        .uint32("flags", r.flags)
        .id("traceId", &r.trace_id)
        .id("spanId", &r.span_id)
        .string("eventName", &r.event_name)
        .done()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, Sum, Summary, summary_data_point,
    };
    use prost::Message as _;
    use serde_json::json;

    use super::*;
    use crate::json;
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
        let bodies: Vec<Option<AnyValue>> =
            every_kind_attrs().into_iter().map(|kv| kv.value).collect();
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
        let dp =
            &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0];
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
        let back: ExportMetricsServiceRequest =
            serde_json::from_value(encode_metrics(&req)).unwrap();
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
            let back = json::decode_any_value(&encode_any_value(&v)).unwrap();
            assert_eq!(back.encode_to_vec(), v.encode_to_vec(), "{}", kv.key);
        }
    }
}
