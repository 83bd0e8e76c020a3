//! The OTLP messages as OTLP/JSON sees them, each declared once: its fields
//! in proto order with the [`Codec`] of each, and its `oneof`, if any. The
//! [`message!`] macro turns a declaration into the message's streaming
//! decoder and its encoder; JSON names are derived from the Rust field names
//! at compile time (`start_time_unix_nano` → `startTimeUnixNano`, the oneof
//! member `StringValue` → `stringValue` / `string_value`).
//!
//! The encoder destructures each message without `..`, so a field that
//! opentelemetry-proto adds and this table does not name is a compile error
//! here, not a silently dropped value.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
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

use super::Failure;
use super::codec::{
    Base64, Bool, Case, Codec, F64, I32, I64, List, Opt, SpanId, Str, TraceId, U32, U64,
    enum_codec, json_name, message_start,
};
use super::read::Reader;
use super::write::Writer;
use tf_domain::telemetry::MAX_ANY_VALUE_DEPTH;

/// Declares how one message maps to OTLP/JSON; see the module docs.
///
/// `nested` before a message makes it count one level of `AnyValue` nesting.
macro_rules! message {
    ($(#[$nested:ident])? $msg:ident $(:: $seg:ident)* {
        $($field:ident : $codec:ty),* $(,)?
    } $(oneof $of:ident : $of_mod:ident :: $of_enum:ident {
        $($var:ident : $var_codec:ty),* $(,)?
    })?) => {
        impl Codec for $msg $(:: $seg)* {
            type T = Self;

            #[allow(unused_mut, unused_variables)]
            fn decode(r: &mut Reader<'_>, depth: u32) -> Result<Self, Failure> {
                $(message!(@$nested depth);)?
                let mut m = Self::default();
                if !message_start(r)? {
                    return Ok(m);
                }
                // Fields set under their lowerCamelCase name; those win over
                // the proto (snake_case) name whatever the order.
                #[allow(non_camel_case_types, dead_code)]
                #[derive(Default)]
                struct Camel { $($field: bool,)* $($of: bool)? }
                let mut camel = Camel::default();
                $(let mut $of: Option<&'static str> = None;)?
                r.object(|r, key| {
                    $(
                        let json = json_name!(stringify!($field), Case::SnakeToLowerCamel);
                        let by_camel = key == json;
                        if by_camel || key == stringify!($field) {
                            if r.null()? {
                                return Ok(());
                            }
                            if !by_camel && camel.$field {
                                return r.skip();
                            }
                            m.$field = <$codec>::decode(r, depth).map_err(|e| e.at_key(json))?;
                            camel.$field |= by_camel;
                            return Ok(());
                        }
                    )*
                    $($(
                        let json = json_name!(stringify!($var), Case::UpperToLowerCamel);
                        let by_camel = key == json;
                        if by_camel || key == json_name!(stringify!($var), Case::UpperToSnake) {
                            if r.null()? {
                                return Ok(());
                            }
                            match $of {
                                Some(set) if set != json => {
                                    return Err(Failure::invalid(format!(
                                        "only one of `{set}` and `{json}` may be set"
                                    )));
                                }
                                Some(_) if !by_camel && camel.$of => return r.skip(),
                                _ => {}
                            }
                            let v = <$var_codec>::decode(r, depth).map_err(|e| e.at_key(json))?;
                            m.$of = Some($of_mod::$of_enum::$var(v));
                            $of = Some(json);
                            camel.$of |= by_camel;
                            return Ok(());
                        }
                    )*)?
                    r.skip()
                })?;
                Ok(m)
            }

            fn omit(_: &Self) -> bool {
                false
            }

            fn encode(v: &Self, w: &mut Writer) {
                let $msg $(:: $seg)* { $($field,)* $($of)? } = v;
                let mut first = true;
                w.byte(b'{');
                $(
                    if !<$codec>::omit($field) {
                        w.key(&mut first, json_name!(stringify!($field), Case::SnakeToLowerCamel));
                        <$codec>::encode($field, w);
                    }
                )*
                $(match $of {
                    $(Some($of_mod::$of_enum::$var(v)) => {
                        w.key(&mut first, json_name!(stringify!($var), Case::UpperToLowerCamel));
                        <$var_codec>::encode(v, w);
                    })*
                    None => {}
                })?
                w.byte(b'}');
            }
        }
    };
    (@nested $depth:ident) => {
        if $depth >= MAX_ANY_VALUE_DEPTH {
            return Err(Failure::invalid(format!(
                "AnyValue nesting exceeds the maximum depth of {MAX_ANY_VALUE_DEPTH}"
            )));
        }
        let $depth = $depth + 1;
    };
}

enum_codec!(SpanKindName, span::SpanKind);
enum_codec!(StatusCodeName, status::StatusCode);
enum_codec!(SeverityName, SeverityNumber);
enum_codec!(TemporalityName, AggregationTemporality);

// ----- common ------------------------------------------------------------------

message!(KeyValue {
    key: Str,
    value: Opt<AnyValue>,
    key_strindex: I32,
});

message!(#[nested] AnyValue {} oneof value: any_value::Value {
    StringValue: Str,
    BoolValue: Bool,
    IntValue: I64,
    DoubleValue: F64,
    ArrayValue: ArrayValue,
    KvlistValue: KeyValueList,
    BytesValue: Base64,
    StringValueStrindex: I32,
});

message!(ArrayValue { values: List<AnyValue> });

message!(KeyValueList { values: List<KeyValue> });

message!(Resource {
    attributes: List<KeyValue>,
    dropped_attributes_count: U32,
    entity_refs: List<EntityRef>,
});

message!(EntityRef {
    schema_url: Str,
    r#type: Str,
    id_keys: List<Str>,
    description_keys: List<Str>,
});

message!(InstrumentationScope {
    name: Str,
    version: Str,
    attributes: List<KeyValue>,
    dropped_attributes_count: U32,
});

// ----- traces ------------------------------------------------------------------

message!(ExportTraceServiceRequest { resource_spans: List<ResourceSpans> });

message!(ResourceSpans {
    resource: Opt<Resource>,
    scope_spans: List<ScopeSpans>,
    schema_url: Str,
});

message!(ScopeSpans {
    scope: Opt<InstrumentationScope>,
    spans: List<Span>,
    schema_url: Str,
});

message!(Span {
    trace_id: TraceId,
    span_id: SpanId,
    trace_state: Str,
    parent_span_id: SpanId,
    flags: U32,
    name: Str,
    kind: SpanKindName,
    start_time_unix_nano: U64,
    end_time_unix_nano: U64,
    attributes: List<KeyValue>,
    dropped_attributes_count: U32,
    events: List<span::Event>,
    dropped_events_count: U32,
    links: List<span::Link>,
    dropped_links_count: U32,
    status: Opt<Status>,
});

message!(span::Event {
    time_unix_nano: U64,
    name: Str,
    attributes: List<KeyValue>,
    dropped_attributes_count: U32,
});

message!(span::Link {
    trace_id: TraceId,
    span_id: SpanId,
    trace_state: Str,
    attributes: List<KeyValue>,
    dropped_attributes_count: U32,
    flags: U32,
});

message!(Status {
    message: Str,
    code: StatusCodeName,
});

// ----- metrics -----------------------------------------------------------------

message!(ExportMetricsServiceRequest { resource_metrics: List<ResourceMetrics> });

message!(ResourceMetrics {
    resource: Opt<Resource>,
    scope_metrics: List<ScopeMetrics>,
    schema_url: Str,
});

message!(ScopeMetrics {
    scope: Opt<InstrumentationScope>,
    metrics: List<Metric>,
    schema_url: Str,
});

message!(Metric {
    name: Str,
    description: Str,
    unit: Str,
    metadata: List<KeyValue>,
} oneof data: metric::Data {
    Gauge: Gauge,
    Sum: Sum,
    Histogram: Histogram,
    ExponentialHistogram: ExponentialHistogram,
    Summary: Summary,
});

message!(Gauge { data_points: List<NumberDataPoint> });

message!(Sum {
    data_points: List<NumberDataPoint>,
    aggregation_temporality: TemporalityName,
    is_monotonic: Bool,
});

message!(Histogram {
    data_points: List<HistogramDataPoint>,
    aggregation_temporality: TemporalityName,
});

message!(ExponentialHistogram {
    data_points: List<ExponentialHistogramDataPoint>,
    aggregation_temporality: TemporalityName,
});

message!(Summary { data_points: List<SummaryDataPoint> });

message!(NumberDataPoint {
    attributes: List<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    exemplars: List<Exemplar>,
    flags: U32,
} oneof value: number_data_point::Value {
    AsDouble: F64,
    AsInt: I64,
});

message!(HistogramDataPoint {
    attributes: List<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: Opt<F64>,
    bucket_counts: List<U64>,
    explicit_bounds: List<F64>,
    exemplars: List<Exemplar>,
    flags: U32,
    min: Opt<F64>,
    max: Opt<F64>,
});

message!(ExponentialHistogramDataPoint {
    attributes: List<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: Opt<F64>,
    scale: I32,
    zero_count: U64,
    positive: Opt<exponential_histogram_data_point::Buckets>,
    negative: Opt<exponential_histogram_data_point::Buckets>,
    flags: U32,
    exemplars: List<Exemplar>,
    min: Opt<F64>,
    max: Opt<F64>,
    zero_threshold: F64,
});

message!(exponential_histogram_data_point::Buckets {
    offset: I32,
    bucket_counts: List<U64>,
});

message!(SummaryDataPoint {
    attributes: List<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: F64,
    quantile_values: List<summary_data_point::ValueAtQuantile>,
    flags: U32,
});

message!(summary_data_point::ValueAtQuantile {
    quantile: F64,
    value: F64,
});

message!(Exemplar {
    filtered_attributes: List<KeyValue>,
    time_unix_nano: U64,
    span_id: SpanId,
    trace_id: TraceId,
} oneof value: exemplar::Value {
    AsDouble: F64,
    AsInt: I64,
});

// ----- logs --------------------------------------------------------------------

message!(ExportLogsServiceRequest { resource_logs: List<ResourceLogs> });

message!(ResourceLogs {
    resource: Opt<Resource>,
    scope_logs: List<ScopeLogs>,
    schema_url: Str,
});

message!(ScopeLogs {
    scope: Opt<InstrumentationScope>,
    log_records: List<LogRecord>,
    schema_url: Str,
});

message!(LogRecord {
    time_unix_nano: U64,
    observed_time_unix_nano: U64,
    severity_number: SeverityName,
    severity_text: Str,
    body: Opt<AnyValue>,
    attributes: List<KeyValue>,
    dropped_attributes_count: U32,
    flags: U32,
    trace_id: TraceId,
    span_id: SpanId,
    event_name: Str,
});

// ----- responses ---------------------------------------------------------------

message!(ExportTraceServiceResponse { partial_success: Opt<ExportTracePartialSuccess> });

message!(ExportTracePartialSuccess {
    rejected_spans: I64,
    error_message: Str,
});

message!(ExportMetricsServiceResponse { partial_success: Opt<ExportMetricsPartialSuccess> });

message!(ExportMetricsPartialSuccess {
    rejected_data_points: I64,
    error_message: Str,
});

message!(ExportLogsServiceResponse { partial_success: Opt<ExportLogsPartialSuccess> });

message!(ExportLogsPartialSuccess {
    rejected_log_records: I64,
    error_message: Str,
});
