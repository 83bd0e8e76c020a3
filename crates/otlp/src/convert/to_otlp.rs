//! `otel_traces` rows → OTLP: the inverse of [`super::convert_traces`].
//!
//! Rows are grouped into `ResourceSpans` by resource (attributes and their
//! types, dropped count, schema URL, entity refs) and, within those, into
//! `ScopeSpans` by scope (name, version, attributes, dropped count, schema
//! URL), in order of first appearance; spans keep their row order. Typed
//! attribute values are rebuilt from the value map and the companion type map
//! (see `columns::render_any_value`). `service_name` and `workspace_id` are
//! not read: `service.name` is kept in the resource attributes.
//!
//! What the rows cannot tell apart comes back in one form:
//!
//! * a resource, scope or span status is always present (`Some`), possibly
//!   empty, as every OTLP SDK sends them;
//! * an attribute whose value is absent comes back as an `AnyValue` holding
//!   no value (both are stored as type `empty`), and so does a kvlist entry's
//!   inside arrays and kvlists;
//! * a `KeyValue`'s `key_strindex` (profiles only) is not stored;
//! * span kinds and status codes outside the enums are stored as
//!   `Unspecified` / `Unset`; timestamps past year 2262 are clamped;
//! * identical resources (or scopes) in separate `ResourceSpans` (`ScopeSpans`)
//!   of one request come back merged, and empty ones are not stored;
//! * duplicate attribute keys (which OTLP forbids) with both string and
//!   non-string values are ambiguous in the stored form: the type map names
//!   the key, not the position. Such rows can fail as malformed;
//! * arrays and kvlists nested deeper than the JSON decoder accepts (32
//!   levels) fail as malformed.
//!
//! Malformed rows (bad hex, unknown enum names, values that do not parse as
//! their recorded type, negative times) are [`ConvertError::MalformedRow`]s;
//! missing columns or columns of an unusable type are
//! [`ConvertError::Column`]s. Nothing here panics on row data.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

use std::collections::HashMap;

use arrow::array::{
    Array, ArrayRef, AsArray, ListArray, MapArray, PrimitiveArray, StringArray, StructArray,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Int64Type, TimestampNanosecondType, UInt32Type,
};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

use super::{ConvertError, Result};
use crate::json;
use tf_application::Table;
use tf_schema::table_schema;

/// Rebuilds an OTLP trace export request from rows of the `otel_traces`
/// schema. Columns are found by name, in any order; every column of the
/// schema except `workspace_id` and `service_name` is required, and one of
/// another type is cast to the schema's type when Arrow can (e.g. `Utf8View`).
pub fn spans_to_otlp(batches: &[RecordBatch]) -> Result<ExportTraceServiceRequest> {
    let cols = batches
        .iter()
        .map(BatchCols::new)
        .collect::<Result<Vec<_>>>()?;
    let mut out = Grouper::default();
    for (b, c) in cols.iter().enumerate() {
        for row in 0..c.rows {
            out.row(c, row)
                .map_err(|Bad { column, message }| ConvertError::MalformedRow {
                    batch: b,
                    row,
                    column,
                    message,
                })?;
        }
    }
    Ok(ExportTraceServiceRequest {
        resource_spans: out.resources,
    })
}

/// `span_kind` name → `SpanKind` value (see `traces::span_kind_name`).
fn span_kind(name: &str) -> Option<i32> {
    Some(match name {
        "Unspecified" => 0,
        "Internal" => 1,
        "Server" => 2,
        "Client" => 3,
        "Producer" => 4,
        "Consumer" => 5,
        _ => return None,
    })
}

/// `status_code` name → `StatusCode` value (see `traces::status_code_name`).
fn status_code(name: &str) -> Option<i32> {
    Some(match name {
        "Unset" => 0,
        "Ok" => 1,
        "Error" => 2,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Grouping
// ---------------------------------------------------------------------------

type Entries<'a> = Vec<(&'a str, &'a str)>;

/// What identifies a resource: attributes, their types, dropped count,
/// schema URL, entity refs.
type ResourceKey<'a> = (Entries<'a>, Entries<'a>, u32, &'a str, &'a str);

/// What identifies a scope: name, version, attributes, their types, dropped
/// count, schema URL.
type ScopeKey<'a> = (&'a str, &'a str, Entries<'a>, Entries<'a>, u32, &'a str);

#[derive(Default)]
struct Grouper<'a> {
    resources: Vec<ResourceSpans>,
    resource_index: HashMap<ResourceKey<'a>, usize>,
    /// Per resource: scope → index in that resource's `scope_spans`.
    scope_index: Vec<HashMap<ScopeKey<'a>, usize>>,
}

impl<'a> Grouper<'a> {
    fn row(&mut self, c: &'a BatchCols, row: usize) -> Result<(), Bad> {
        let r_attrs = c.resource_attrs.entries(row)?;
        let r_types = c.resource_attrs.type_entries(row)?;
        let rkey: ResourceKey<'a> = (
            r_attrs,
            r_types,
            prim(
                &c.resource_dropped,
                row,
                "resource_dropped_attributes_count",
            )?,
            string(&c.resource_schema_url, row, "resource_schema_url")?,
            string(&c.resource_entity_refs, row, "resource_entity_refs")?,
        );
        let r = match self.resource_index.get(&rkey) {
            Some(&r) => r,
            None => {
                let (attrs, types, dropped, schema_url, entity_refs) = &rkey;
                let resource = Resource {
                    attributes: attributes(attrs, types, "resource_attributes")?,
                    dropped_attributes_count: *dropped,
                    entity_refs: entity_refs_from_json(entity_refs)?,
                };
                self.resources.push(ResourceSpans {
                    resource: Some(resource),
                    scope_spans: Vec::new(),
                    schema_url: (*schema_url).to_owned(),
                });
                self.scope_index.push(HashMap::new());
                let r = self.resources.len() - 1;
                self.resource_index.insert(rkey, r);
                r
            }
        };

        let skey: ScopeKey<'a> = (
            string(&c.scope_name, row, "scope_name")?,
            string(&c.scope_version, row, "scope_version")?,
            c.scope_attrs.entries(row)?,
            c.scope_attrs.type_entries(row)?,
            prim(&c.scope_dropped, row, "scope_dropped_attributes_count")?,
            string(&c.scope_schema_url, row, "scope_schema_url")?,
        );
        let scopes = &mut self.resources[r].scope_spans;
        let scope_index = &mut self.scope_index[r];
        let s = match scope_index.get(&skey) {
            Some(&s) => s,
            None => {
                let (name, version, attrs, types, dropped, schema_url) = &skey;
                scopes.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: (*name).to_owned(),
                        version: (*version).to_owned(),
                        attributes: attributes(attrs, types, "scope_attributes")?,
                        dropped_attributes_count: *dropped,
                    }),
                    spans: Vec::new(),
                    schema_url: (*schema_url).to_owned(),
                });
                let s = scopes.len() - 1;
                scope_index.insert(skey, s);
                s
            }
        };
        scopes[s].spans.push(c.span(row)?);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------

/// A bad value: the column (or nested field) and what is wrong.
struct Bad {
    column: String,
    message: String,
}

fn bad(column: &str, message: impl Into<String>) -> Bad {
    Bad {
        column: column.to_owned(),
        message: message.into(),
    }
}

/// `name` of `batch`, cast to `want` if it is of another type.
fn column(batch: &RecordBatch, name: &str, want: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| ConvertError::Column {
            column: name.to_owned(),
            message: "missing".to_owned(),
        })?;
    if col.data_type() == want {
        return Ok(col.clone());
    }
    arrow::compute::cast(col, want).map_err(|e| ConvertError::Column {
        column: name.to_owned(),
        message: format!("is {}, expected {want}: {e}", col.data_type()),
    })
}

fn type_mismatch(column: &str, want: &str) -> ConvertError {
    ConvertError::Column {
        column: column.to_owned(),
        message: format!("expected {want}"),
    }
}

fn as_strings(a: &ArrayRef, name: &str) -> Result<StringArray> {
    a.as_string_opt::<i32>()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "Utf8"))
}

fn as_prims<T: ArrowPrimitiveType>(a: &ArrayRef, name: &str) -> Result<PrimitiveArray<T>> {
    a.as_primitive_opt::<T>()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "a primitive array"))
}

fn as_map(a: &ArrayRef, name: &str) -> Result<MapArray> {
    a.as_map_opt()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "Map<Utf8, Utf8>"))
}

fn as_list(a: &ArrayRef, name: &str) -> Result<ListArray> {
    a.as_list_opt::<i32>()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "List"))
}

fn string<'a>(a: &'a StringArray, i: usize, column: &str) -> Result<&'a str, Bad> {
    if i >= a.len() || a.is_null(i) {
        return Err(bad(column, "null or missing value"));
    }
    Ok(a.value(i))
}

fn prim<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    i: usize,
    column: &str,
) -> Result<T::Native, Bad> {
    if i >= a.len() || a.is_null(i) {
        return Err(bad(column, "null or missing value"));
    }
    Ok(a.value(i))
}

/// The range of child items of row `i` of a map or list.
fn child_range(offsets: &[i32], i: usize, column: &str) -> Result<std::ops::Range<usize>, Bad> {
    let (Some(&start), Some(&end)) = (offsets.get(i), offsets.get(i + 1)) else {
        return Err(bad(column, "row out of range"));
    };
    match (usize::try_from(start), usize::try_from(end)) {
        (Ok(s), Ok(e)) if s <= e => Ok(s..e),
        _ => Err(bad(column, "invalid offsets")),
    }
}

/// An attribute map and its type map.
struct AttrCols {
    name: String,
    values: MapArray,
    types: MapArray,
}

impl AttrCols {
    fn new(values: &ArrayRef, types: &ArrayRef, name: &str, types_name: &str) -> Result<Self> {
        let values = as_map(values, name)?;
        let types = as_map(types, types_name)?;
        for (m, n) in [(&values, name), (&types, types_name)] {
            if m.keys().as_string_opt::<i32>().is_none()
                || m.values().as_string_opt::<i32>().is_none()
            {
                return Err(type_mismatch(n, "Map<Utf8, Utf8>"));
            }
        }
        Ok(Self {
            name: name.to_owned(),
            values,
            types,
        })
    }

    fn entries(&self, i: usize) -> Result<Entries<'_>, Bad> {
        map_entries(&self.values, i, &self.name)
    }

    fn type_entries(&self, i: usize) -> Result<Entries<'_>, Bad> {
        map_entries(&self.types, i, &self.name)
    }

    fn attributes(&self, i: usize) -> Result<Vec<KeyValue>, Bad> {
        attributes(&self.entries(i)?, &self.type_entries(i)?, &self.name)
    }
}

fn map_entries<'a>(m: &'a MapArray, i: usize, column: &str) -> Result<Entries<'a>, Bad> {
    if i >= m.len() || m.is_null(i) {
        return Err(bad(column, "null or missing map"));
    }
    let (Some(keys), Some(values)) = (
        m.keys().as_string_opt::<i32>(),
        m.values().as_string_opt::<i32>(),
    ) else {
        return Err(bad(column, "not a Map<Utf8, Utf8>"));
    };
    child_range(m.value_offsets(), i, column)?
        .map(|j| Ok((string(keys, j, column)?, string(values, j, column)?)))
        .collect()
}

/// Typed attributes from the rendered values and the types of the
/// non-string ones. The type map lists its keys in the order of the value
/// map, so the two are merged in one pass.
fn attributes(
    values: &[(&str, &str)],
    types: &[(&str, &str)],
    column: &str,
) -> Result<Vec<KeyValue>, Bad> {
    let mut types = types.iter().peekable();
    let mut out = Vec::with_capacity(values.len());
    for &(key, text) in values {
        let ty = match types.peek() {
            Some(&&(k, ty)) if k == key => {
                types.next();
                ty
            }
            _ => "string",
        };
        let value = typed_value(text, ty)
            .map_err(|m| bad(column, format!("attribute `{key}` of type `{ty}`: {m}")))?;
        out.push(KeyValue {
            key: key.to_owned(),
            value: Some(value),
            key_strindex: 0,
        });
    }
    if let Some((k, ty)) = types.next() {
        return Err(bad(
            column,
            format!("type `{ty}` is recorded for `{k}`, which no attribute matches"),
        ));
    }
    Ok(out)
}

/// An AnyValue from its rendering (see `columns::render_any_value`).
fn typed_value(text: &str, ty: &str) -> Result<AnyValue, String> {
    use any_value::Value as V;
    let v = match ty {
        "string" => V::StringValue(text.to_owned()),
        "int" => V::IntValue(text.parse().map_err(|e| format!("{e}"))?),
        "double" => V::DoubleValue(match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => text.parse().map_err(|e| format!("{e}"))?,
        }),
        "bool" => V::BoolValue(match text {
            "true" => true,
            "false" => false,
            _ => return Err(format!("{text:?} is not a boolean")),
        }),
        "bytes" => V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("{e}"))?,
        ),
        "array" => V::ArrayValue(ArrayValue {
            values: json::decode_any_values(text.as_bytes()).map_err(|e| format!("{e}"))?,
        }),
        "kvlist" => {
            V::KvlistValue(json::decode_kvlist(text.as_bytes()).map_err(|e| format!("{e}"))?)
        }
        "strindex" => V::StringValueStrindex(text.parse().map_err(|e| format!("{e}"))?),
        "empty" => return Ok(AnyValue { value: None }),
        other => return Err(format!("unknown attribute type `{other}`")),
    };
    let mut v = AnyValue { value: Some(v) };
    fill_absent_values(&mut v);
    Ok(v)
}

/// A kvlist entry without a value comes back holding an empty `AnyValue`, as
/// attributes do (the stored form does not tell the two apart).
fn fill_absent_values(v: &mut AnyValue) {
    match &mut v.value {
        Some(any_value::Value::KvlistValue(list)) => {
            for kv in &mut list.values {
                fill_absent_values(kv.value.get_or_insert_with(AnyValue::default));
            }
        }
        Some(any_value::Value::ArrayValue(array)) => {
            array.values.iter_mut().for_each(fill_absent_values);
        }
        _ => {}
    }
}

fn entity_refs_from_json(text: &str) -> Result<Vec<EntityRef>, Bad> {
    const COLUMN: &str = "resource_entity_refs";
    if text.is_empty() {
        return Ok(Vec::new());
    }
    json::decode_entity_refs(text.as_bytes()).map_err(|e| bad(COLUMN, format!("{e}")))
}

fn hex_bytes(text: &str, column: &str) -> Result<Vec<u8>, Bad> {
    hex::decode(text).map_err(|e| bad(column, format!("invalid hex id {text:?}: {e}")))
}

fn unix_nanos(t: i64, column: &str) -> Result<u64, Bad> {
    u64::try_from(t).map_err(|_| bad(column, format!("negative timestamp {t}")))
}

/// The fields of the `events` list.
struct EventCols {
    list: ListArray,
    ts: PrimitiveArray<TimestampNanosecondType>,
    name: StringArray,
    attrs: AttrCols,
    dropped: PrimitiveArray<UInt32Type>,
}

/// The fields of the `links` list.
struct LinkCols {
    list: ListArray,
    trace_id: StringArray,
    span_id: StringArray,
    trace_state: StringArray,
    attrs: AttrCols,
    dropped: PrimitiveArray<UInt32Type>,
    flags: PrimitiveArray<UInt32Type>,
}

fn struct_field<'a>(s: &'a StructArray, list: &str, field: &str) -> Result<&'a ArrayRef> {
    s.column_by_name(field).ok_or_else(|| ConvertError::Column {
        column: format!("{list}.{field}"),
        message: "missing".to_owned(),
    })
}

fn list_items<'a>(list: &'a ListArray, name: &str) -> Result<&'a StructArray> {
    list.values()
        .as_struct_opt()
        .ok_or_else(|| type_mismatch(name, "List<Struct>"))
}

/// The `otel_traces` columns of one batch, typed.
struct BatchCols {
    rows: usize,
    ts: PrimitiveArray<TimestampNanosecondType>,
    trace_id: StringArray,
    span_id: StringArray,
    parent_span_id: StringArray,
    trace_state: StringArray,
    span_name: StringArray,
    span_kind: StringArray,
    duration: PrimitiveArray<Int64Type>,
    status_code: StringArray,
    status_message: StringArray,
    flags: PrimitiveArray<UInt32Type>,
    resource_attrs: AttrCols,
    resource_dropped: PrimitiveArray<UInt32Type>,
    resource_schema_url: StringArray,
    resource_entity_refs: StringArray,
    scope_name: StringArray,
    scope_version: StringArray,
    scope_attrs: AttrCols,
    scope_dropped: PrimitiveArray<UInt32Type>,
    scope_schema_url: StringArray,
    span_attrs: AttrCols,
    dropped_attrs: PrimitiveArray<UInt32Type>,
    events: EventCols,
    dropped_events: PrimitiveArray<UInt32Type>,
    links: LinkCols,
    dropped_links: PrimitiveArray<UInt32Type>,
}

impl BatchCols {
    fn new(batch: &RecordBatch) -> Result<Self> {
        let schema = table_schema(Table::Traces);
        let col = |name: &str| -> Result<ArrayRef> {
            let want = schema
                .field_with_name(name)
                .map_err(ConvertError::Arrow)?
                .data_type();
            column(batch, name, want)
        };
        let strings = |name: &str| as_strings(&col(name)?, name);
        let u32s = |name: &str| as_prims::<UInt32Type>(&col(name)?, name);
        let attrs = |prefix: &str| {
            let (n, t) = (
                format!("{prefix}attributes"),
                format!("{prefix}attribute_types"),
            );
            AttrCols::new(&col(&n)?, &col(&t)?, &n, &t)
        };

        let events = as_list(&col("events")?, "events")?;
        let items = list_items(&events, "events")?;
        let f = |field: &str| struct_field(items, "events", field);
        let events = EventCols {
            ts: as_prims(f("timestamp")?, "events.timestamp")?,
            name: as_strings(f("name")?, "events.name")?,
            attrs: AttrCols::new(
                f("attributes")?,
                f("attribute_types")?,
                "events.attributes",
                "events.attribute_types",
            )?,
            dropped: as_prims(
                f("dropped_attributes_count")?,
                "events.dropped_attributes_count",
            )?,
            list: events.clone(),
        };

        let links = as_list(&col("links")?, "links")?;
        let items = list_items(&links, "links")?;
        let f = |field: &str| struct_field(items, "links", field);
        let links = LinkCols {
            trace_id: as_strings(f("trace_id")?, "links.trace_id")?,
            span_id: as_strings(f("span_id")?, "links.span_id")?,
            trace_state: as_strings(f("trace_state")?, "links.trace_state")?,
            attrs: AttrCols::new(
                f("attributes")?,
                f("attribute_types")?,
                "links.attributes",
                "links.attribute_types",
            )?,
            dropped: as_prims(
                f("dropped_attributes_count")?,
                "links.dropped_attributes_count",
            )?,
            flags: as_prims(f("flags")?, "links.flags")?,
            list: links.clone(),
        };

        Ok(Self {
            rows: batch.num_rows(),
            ts: as_prims(&col("timestamp")?, "timestamp")?,
            trace_id: strings("trace_id")?,
            span_id: strings("span_id")?,
            parent_span_id: strings("parent_span_id")?,
            trace_state: strings("trace_state")?,
            span_name: strings("span_name")?,
            span_kind: strings("span_kind")?,
            duration: as_prims(&col("duration_ns")?, "duration_ns")?,
            status_code: strings("status_code")?,
            status_message: strings("status_message")?,
            flags: u32s("flags")?,
            resource_attrs: attrs("resource_")?,
            resource_dropped: u32s("resource_dropped_attributes_count")?,
            resource_schema_url: strings("resource_schema_url")?,
            resource_entity_refs: strings("resource_entity_refs")?,
            scope_name: strings("scope_name")?,
            scope_version: strings("scope_version")?,
            scope_attrs: attrs("scope_")?,
            scope_dropped: u32s("scope_dropped_attributes_count")?,
            scope_schema_url: strings("scope_schema_url")?,
            span_attrs: attrs("span_")?,
            dropped_attrs: u32s("dropped_attributes_count")?,
            events,
            dropped_events: u32s("dropped_events_count")?,
            links,
            dropped_links: u32s("dropped_links_count")?,
        })
    }

    fn span(&self, row: usize) -> Result<Span, Bad> {
        let start = unix_nanos(prim(&self.ts, row, "timestamp")?, "timestamp")?;
        let duration = prim(&self.duration, row, "duration_ns")?;
        let end = u64::try_from(duration)
            .ok()
            .and_then(|d| start.checked_add(d))
            .ok_or_else(|| bad("duration_ns", format!("invalid duration {duration}")))?;
        let kind = string(&self.span_kind, row, "span_kind")?;
        let code = string(&self.status_code, row, "status_code")?;
        Ok(Span {
            trace_id: hex_bytes(string(&self.trace_id, row, "trace_id")?, "trace_id")?,
            span_id: hex_bytes(string(&self.span_id, row, "span_id")?, "span_id")?,
            trace_state: string(&self.trace_state, row, "trace_state")?.to_owned(),
            parent_span_id: hex_bytes(
                string(&self.parent_span_id, row, "parent_span_id")?,
                "parent_span_id",
            )?,
            flags: prim(&self.flags, row, "flags")?,
            name: string(&self.span_name, row, "span_name")?.to_owned(),
            kind: span_kind(kind)
                .ok_or_else(|| bad("span_kind", format!("unknown span kind {kind:?}")))?,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: self.span_attrs.attributes(row)?,
            dropped_attributes_count: prim(&self.dropped_attrs, row, "dropped_attributes_count")?,
            events: self.events(row)?,
            dropped_events_count: prim(&self.dropped_events, row, "dropped_events_count")?,
            links: self.links(row)?,
            dropped_links_count: prim(&self.dropped_links, row, "dropped_links_count")?,
            status: Some(Status {
                message: string(&self.status_message, row, "status_message")?.to_owned(),
                code: status_code(code)
                    .ok_or_else(|| bad("status_code", format!("unknown status code {code:?}")))?,
            }),
        })
    }

    fn events(&self, row: usize) -> Result<Vec<span::Event>, Bad> {
        let e = &self.events;
        if row >= e.list.len() || e.list.is_null(row) {
            return Err(bad("events", "null or missing list"));
        }
        child_range(e.list.value_offsets(), row, "events")?
            .map(|j| {
                Ok(span::Event {
                    time_unix_nano: unix_nanos(
                        prim(&e.ts, j, "events.timestamp")?,
                        "events.timestamp",
                    )?,
                    name: string(&e.name, j, "events.name")?.to_owned(),
                    attributes: e.attrs.attributes(j)?,
                    dropped_attributes_count: prim(
                        &e.dropped,
                        j,
                        "events.dropped_attributes_count",
                    )?,
                })
            })
            .collect()
    }

    fn links(&self, row: usize) -> Result<Vec<span::Link>, Bad> {
        let l = &self.links;
        if row >= l.list.len() || l.list.is_null(row) {
            return Err(bad("links", "null or missing list"));
        }
        child_range(l.list.value_offsets(), row, "links")?
            .map(|j| {
                Ok(span::Link {
                    trace_id: hex_bytes(
                        string(&l.trace_id, j, "links.trace_id")?,
                        "links.trace_id",
                    )?,
                    span_id: hex_bytes(string(&l.span_id, j, "links.span_id")?, "links.span_id")?,
                    trace_state: string(&l.trace_state, j, "links.trace_state")?.to_owned(),
                    attributes: l.attrs.attributes(j)?,
                    dropped_attributes_count: prim(
                        &l.dropped,
                        j,
                        "links.dropped_attributes_count",
                    )?,
                    flags: prim(&l.flags, j, "links.flags")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, MapBuilder, StringBuilder};
    use arrow::datatypes::{Field, Schema};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use prost::Message as _;

    use super::*;
    use crate::convert::convert_traces;
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
}
