//! Column builders shared by the converters: attribute maps, AnyValue
//! rendering, hex ids, and the resource/scope context columns every table has.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ListArray, MapArray, MapBuilder, StringBuilder, StructArray,
    TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Fields};
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, EntityRef, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{ConvertError, Result};
use crate::json;
use tf_domain::telemetry::MAX_ANY_VALUE_DEPTH;

/// Renders an AnyValue into `out` and returns its type tag. Strings are kept
/// as they are; other scalars in their canonical text form; arrays and kvlists
/// as OTLP/JSON (`[{"intValue":"1"}]`), so the exact value can be recovered.
pub fn render_any_value(v: Option<&AnyValue>, out: &mut String) -> &'static str {
    out.clear();
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return "empty";
    };
    match value {
        any_value::Value::StringValue(s) => {
            out.push_str(s);
            "string"
        }
        any_value::Value::BoolValue(b) => {
            out.push_str(if *b { "true" } else { "false" });
            "bool"
        }
        any_value::Value::IntValue(i) => {
            let _ = write!(out, "{i}");
            "int"
        }
        any_value::Value::DoubleValue(d) => {
            push_f64(out, *d);
            "double"
        }
        any_value::Value::BytesValue(b) => {
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            "bytes"
        }
        any_value::Value::ArrayValue(a) => {
            json::write_any_values(&a.values, out);
            "array"
        }
        any_value::Value::KvlistValue(kv) => {
            json::write_kvlist(kv, out);
            "kvlist"
        }
        // Profiles-only: an index into a string table we do not receive.
        any_value::Value::StringValueStrindex(i) => {
            let _ = write!(out, "{i}");
            "strindex"
        }
    }
}

fn push_f64(out: &mut String, d: f64) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let _ = write!(out, "{d}");
    }
}

/// Depth of the deepest `AnyValue` among attribute values: 0 when all are
/// scalars, 1 for a scalar inside an array, and so on; counting stops at
/// [`MAX_ANY_VALUE_DEPTH`] (see `tf_domain::telemetry::check_value_depth`).
pub(super) fn attributes_depth(kvs: &[KeyValue]) -> u32 {
    kvs.iter()
        .filter_map(|kv| kv.value.as_ref())
        .map(|v| value_depth(v, 0))
        .max()
        .unwrap_or(0)
}

/// See [`attributes_depth`]; `v` sits at depth `d`.
pub(super) fn value_depth(v: &AnyValue, d: u32) -> u32 {
    if d >= MAX_ANY_VALUE_DEPTH {
        return d;
    }
    match &v.value {
        Some(any_value::Value::ArrayValue(a)) => a
            .values
            .iter()
            .map(|c| value_depth(c, d + 1))
            .max()
            .unwrap_or(d),
        Some(any_value::Value::KvlistValue(l)) => l
            .values
            .iter()
            .filter_map(|kv| kv.value.as_ref())
            .map(|c| value_depth(c, d + 1))
            .max()
            .unwrap_or(d),
        _ => d,
    }
}

/// Lowercase hex of an id, without allocating (ids are at most 16 bytes;
/// longer input is rejected by the domain rules before it gets here, but is
/// still rendered, truncated to 32 bytes, rather than panicking).
pub(super) fn hex_id<'a>(bytes: &[u8], buf: &'a mut [u8; 64]) -> &'a str {
    let n = bytes.len().min(32);
    if hex::encode_to_slice(&bytes[..n], &mut buf[..2 * n]).is_err() {
        return "";
    }
    std::str::from_utf8(&buf[..2 * n]).unwrap_or("")
}

/// OTLP's unsigned nanoseconds as Arrow's signed ones. Admitted items have
/// passed the timestamp rule (`check_timestamps`), so every value fits; the
/// saturation only keeps this total.
pub(super) fn nanos(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Attributes rendered once, appended to many rows (resource, scope, metric metadata).
#[derive(Debug, Default)]
pub(super) struct RenderedAttrs {
    entries: Vec<(String, String, &'static str)>,
}

impl RenderedAttrs {
    pub(super) fn new(kvs: &[KeyValue]) -> Self {
        let mut scratch = String::new();
        let entries = kvs
            .iter()
            .map(|kv| {
                let ty = render_any_value(kv.value.as_ref(), &mut scratch);
                (kv.key.clone(), scratch.clone(), ty)
            })
            .collect();
        Self { entries }
    }

    /// The string value of `key`, if present and a string.
    pub(super) fn get_str(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _, ty)| k == key && *ty == "string")
            .map(|(_, v, _)| v.as_str())
    }

    pub(super) fn hash_into(&self, h: &mut impl std::hash::Hasher) {
        for (k, v, ty) in &self.entries {
            h.write(k.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write(ty.as_bytes());
        }
    }
}

/// An attribute map column and its companion type map.
pub(super) struct AttrBuilder {
    map: MapBuilder<StringBuilder, StringBuilder>,
    types: MapBuilder<StringBuilder, StringBuilder>,
    scratch: String,
}

impl Default for AttrBuilder {
    fn default() -> Self {
        Self {
            map: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            types: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            scratch: String::new(),
        }
    }
}

impl AttrBuilder {
    /// Appends one row's attributes.
    pub(super) fn append(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            let ty = render_any_value(kv.value.as_ref(), &mut self.scratch);
            self.map.keys().append_value(&kv.key);
            self.map.values().append_value(&self.scratch);
            if ty != "string" {
                self.types.keys().append_value(&kv.key);
                self.types.values().append_value(ty);
            }
        }
        self.close_row();
    }

    /// Appends one row of pre-rendered attributes.
    pub(super) fn append_rendered(&mut self, attrs: &RenderedAttrs) {
        for (k, v, ty) in &attrs.entries {
            self.map.keys().append_value(k);
            self.map.values().append_value(v);
            if *ty != "string" {
                self.types.keys().append_value(k);
                self.types.values().append_value(ty);
            }
        }
        self.close_row();
    }

    fn close_row(&mut self) {
        self.map
            .append(true)
            .expect("keys and values are appended in pairs");
        self.types
            .append(true)
            .expect("keys and values are appended in pairs");
    }

    pub(super) fn finish_into(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(Arc::new(shrink_map(self.map.finish())));
        cols.push(Arc::new(shrink_map(self.types.finish())));
    }
}

/// `MapArray` has no `shrink_to_fit` of its own: shrink its parts.
fn shrink_map(m: MapArray) -> MapArray {
    let (field, offsets, mut entries, nulls, ordered) = m.into_parts();
    entries.shrink_to_fit();
    let mut buf = offsets.into_inner().into_inner();
    buf.shrink_to_fit();
    // The offsets are the builder's own, so they are valid.
    let offsets = OffsetBuffer::new(ScalarBuffer::from(buf));
    MapArray::new(field, offsets, entries, nulls, ordered)
}

/// A timestamp column builder in UTC.
#[derive(Default)]
pub(super) struct TsBuilder(TimestampNanosecondBuilder);

impl TsBuilder {
    pub(super) fn append(&mut self, unix_nanos: u64) {
        self.0.append_value(nanos(unix_nanos));
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish().with_timezone("UTC"))
    }
}

/// Builds a `List<Struct>` column from child columns and row offsets.
pub(super) fn finish_struct_list(
    fields: Vec<Field>,
    children: Vec<ArrayRef>,
    offsets: &mut Vec<i32>,
) -> Result<ArrayRef> {
    let fields = Fields::from(fields);
    let len = offsets.last().copied().unwrap_or(0) as usize;
    let values = if fields.is_empty() {
        StructArray::new_empty_fields(len, None)
    } else {
        StructArray::try_new(fields.clone(), children, None).map_err(ConvertError::Arrow)?
    };
    let item = Arc::new(Field::new("item", DataType::Struct(fields), false));
    let offsets = std::mem::replace(offsets, vec![0]);
    let list = ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    )
    .map_err(ConvertError::Arrow)?;
    Ok(Arc::new(list))
}

/// Resource and scope of the rows being converted, rendered once.
pub(super) struct RowContext {
    pub service_name: String,
    pub resource_attrs: RenderedAttrs,
    pub resource_dropped: u32,
    pub resource_schema_url: String,
    pub resource_entity_refs: String,
    pub scope_name: String,
    pub scope_version: String,
    pub scope_attrs: RenderedAttrs,
    pub scope_dropped: u32,
    pub scope_schema_url: String,
    /// Hash of resource and scope identity (for series keys).
    pub identity_hash: u64,
    /// Nesting of the deepest resource or scope attribute value.
    pub value_depth: u32,
}

impl RowContext {
    pub(super) fn new(
        resource: Option<&Resource>,
        resource_schema_url: &str,
        scope: Option<&InstrumentationScope>,
        scope_schema_url: &str,
    ) -> Self {
        use std::hash::Hasher as _;
        let resource_attrs = RenderedAttrs::new(resource.map_or(&[][..], |r| &r.attributes));
        let service_name = tf_domain::telemetry::ServiceName::from_attribute(
            resource_attrs.get_str("service.name"),
        )
        .as_str()
        .to_owned();
        let scope_attrs = RenderedAttrs::new(scope.map_or(&[][..], |s| &s.attributes));
        let scope_name = scope.map_or("", |s| &s.name).to_owned();
        let scope_version = scope.map_or("", |s| &s.version).to_owned();
        let value_depth = attributes_depth(resource.map_or(&[][..], |r| &r.attributes))
            .max(attributes_depth(scope.map_or(&[][..], |s| &s.attributes)));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        resource_attrs.hash_into(&mut h);
        h.write(scope_name.as_bytes());
        h.write_u8(0xfe);
        h.write(scope_version.as_bytes());
        scope_attrs.hash_into(&mut h);
        Self {
            value_depth,
            service_name,
            resource_attrs,
            resource_dropped: resource.map_or(0, |r| r.dropped_attributes_count),
            resource_schema_url: resource_schema_url.to_owned(),
            resource_entity_refs: resource
                .map_or_else(String::new, |r| entity_refs_json(&r.entity_refs)),
            scope_name,
            scope_version,
            scope_attrs,
            scope_dropped: scope.map_or(0, |s| s.dropped_attributes_count),
            scope_schema_url: scope_schema_url.to_owned(),
            identity_hash: h.finish(),
        }
    }
}

/// Entity references as OTLP/JSON (empty string when there are none).
fn entity_refs_json(refs: &[EntityRef]) -> String {
    let mut out = String::new();
    if !refs.is_empty() {
        json::write_entity_refs(refs, &mut out);
    }
    out
}

/// The context columns (see `schema::context_fields`).
#[derive(Default)]
pub(super) struct ContextColumns {
    workspace: StringBuilder,
    service: StringBuilder,
    resource_attrs: AttrBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    resource_entity_refs: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: AttrBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
}

impl ContextColumns {
    pub(super) fn append(&mut self, workspace: &str, ctx: &RowContext) {
        self.workspace.append_value(workspace);
        self.service.append_value(&ctx.service_name);
        self.resource_attrs.append_rendered(&ctx.resource_attrs);
        self.resource_dropped.append_value(ctx.resource_dropped);
        self.resource_schema_url
            .append_value(&ctx.resource_schema_url);
        self.resource_entity_refs
            .append_value(&ctx.resource_entity_refs);
        self.scope_name.append_value(&ctx.scope_name);
        self.scope_version.append_value(&ctx.scope_version);
        self.scope_attrs.append_rendered(&ctx.scope_attrs);
        self.scope_dropped.append_value(ctx.scope_dropped);
        self.scope_schema_url.append_value(&ctx.scope_schema_url);
    }

    pub(super) fn finish_into(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(Arc::new(self.workspace.finish()));
        cols.push(Arc::new(self.service.finish()));
        self.resource_attrs.finish_into(cols);
        cols.push(Arc::new(self.resource_dropped.finish()));
        cols.push(Arc::new(self.resource_schema_url.finish()));
        cols.push(Arc::new(self.resource_entity_refs.finish()));
        cols.push(Arc::new(self.scope_name.finish()));
        cols.push(Arc::new(self.scope_version.finish()));
        self.scope_attrs.finish_into(cols);
        cols.push(Arc::new(self.scope_dropped.finish()));
        cols.push(Arc::new(self.scope_schema_url.finish()));
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    use super::*;

    fn av(v: any_value::Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    #[test]
    fn renders_every_anyvalue_kind() {
        let mut s = String::new();
        assert_eq!(render_any_value(None, &mut s), "empty");
        assert_eq!(s, "");
        assert_eq!(
            render_any_value(Some(&av(any_value::Value::IntValue(-7))), &mut s),
            "int"
        );
        assert_eq!(s, "-7");
        assert_eq!(
            render_any_value(Some(&av(any_value::Value::DoubleValue(0.1))), &mut s),
            "double"
        );
        assert_eq!(s, "0.1");
        assert_eq!(
            render_any_value(
                Some(&av(any_value::Value::BytesValue(vec![1, 2, 3]))),
                &mut s
            ),
            "bytes"
        );
        assert_eq!(s, "AQID");
        let arr = av(any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                av(any_value::Value::StringValue("a\"b".into())),
                av(any_value::Value::IntValue(1)),
                av(any_value::Value::DoubleValue(f64::NAN)),
            ],
        }));
        assert_eq!(render_any_value(Some(&arr), &mut s), "array");
        assert_eq!(
            s,
            r#"[{"stringValue":"a\"b"},{"intValue":"1"},{"doubleValue":"NaN"}]"#
        );
        let kv = av(any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(av(any_value::Value::BoolValue(true))),
                ..Default::default()
            }],
        }));
        assert_eq!(render_any_value(Some(&kv), &mut s), "kvlist");
        assert_eq!(s, r#"{"values":[{"key":"k","value":{"boolValue":true}}]}"#);
    }

    #[test]
    fn hex_ids_are_lowercase() {
        let mut buf = [0u8; 64];
        assert_eq!(hex_id(&[0xAB, 0x01], &mut buf), "ab01");
        assert_eq!(hex_id(&[], &mut buf), "");
    }
}
