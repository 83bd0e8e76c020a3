//! Reading typed values back out of Arrow columns: column lookup and casts,
//! attribute maps with their type maps, ids, times. Errors name the column.

use arrow::array::{
    Array, ArrayRef, AsArray, ListArray, MapArray, PrimitiveArray, StringArray, StructArray,
};
use arrow::datatypes::{ArrowPrimitiveType, DataType};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, KeyValue, any_value,
};

use super::super::{ConvertError, Result};
use crate::json;

pub(super) type Entries<'a> = Vec<(&'a str, &'a str)>;

/// A bad value: the column (or nested field) and what is wrong.
pub(super) struct Bad {
    pub(super) column: String,
    pub(super) message: String,
}

pub(super) fn bad(column: &str, message: impl Into<String>) -> Bad {
    Bad {
        column: column.to_owned(),
        message: message.into(),
    }
}

/// `name` of `batch`, cast to `want` if it is of another type.
pub(super) fn column(batch: &RecordBatch, name: &str, want: &DataType) -> Result<ArrayRef> {
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

pub(super) fn type_mismatch(column: &str, want: &str) -> ConvertError {
    ConvertError::Column {
        column: column.to_owned(),
        message: format!("expected {want}"),
    }
}

pub(super) fn as_strings(a: &ArrayRef, name: &str) -> Result<StringArray> {
    a.as_string_opt::<i32>()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "Utf8"))
}

pub(super) fn as_prims<T: ArrowPrimitiveType>(
    a: &ArrayRef,
    name: &str,
) -> Result<PrimitiveArray<T>> {
    a.as_primitive_opt::<T>()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "a primitive array"))
}

pub(super) fn as_map(a: &ArrayRef, name: &str) -> Result<MapArray> {
    a.as_map_opt()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "Map<Utf8, Utf8>"))
}

pub(super) fn as_list(a: &ArrayRef, name: &str) -> Result<ListArray> {
    a.as_list_opt::<i32>()
        .cloned()
        .ok_or_else(|| type_mismatch(name, "List"))
}

pub(super) fn string<'a>(a: &'a StringArray, i: usize, column: &str) -> Result<&'a str, Bad> {
    if i >= a.len() || a.is_null(i) {
        return Err(bad(column, "null or missing value"));
    }
    Ok(a.value(i))
}

pub(super) fn prim<T: ArrowPrimitiveType>(
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
pub(super) fn child_range(
    offsets: &[i32],
    i: usize,
    column: &str,
) -> Result<std::ops::Range<usize>, Bad> {
    let (Some(&start), Some(&end)) = (offsets.get(i), offsets.get(i + 1)) else {
        return Err(bad(column, "row out of range"));
    };
    match (usize::try_from(start), usize::try_from(end)) {
        (Ok(s), Ok(e)) if s <= e => Ok(s..e),
        _ => Err(bad(column, "invalid offsets")),
    }
}

/// An attribute map and its type map.
pub(super) struct AttrCols {
    name: String,
    values: MapArray,
    types: MapArray,
}

impl AttrCols {
    pub(super) fn new(
        values: &ArrayRef,
        types: &ArrayRef,
        name: &str,
        types_name: &str,
    ) -> Result<Self> {
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

    /// Whether rows `i` and `j` hold the same attributes and types
    /// (`false` when either is null or out of range), without allocating.
    pub(super) fn same(&self, i: usize, j: usize) -> bool {
        same_entries(&self.values, i, j) && same_entries(&self.types, i, j)
    }

    pub(super) fn entries(&self, i: usize) -> Result<Entries<'_>, Bad> {
        map_entries(&self.values, i, &self.name)
    }

    pub(super) fn type_entries(&self, i: usize) -> Result<Entries<'_>, Bad> {
        map_entries(&self.types, i, &self.name)
    }

    pub(super) fn attributes(&self, i: usize) -> Result<Vec<KeyValue>, Bad> {
        attributes(&self.entries(i)?, &self.type_entries(i)?, &self.name)
    }
}

fn same_entries(m: &MapArray, i: usize, j: usize) -> bool {
    if i >= m.len() || j >= m.len() || m.is_null(i) || m.is_null(j) {
        return false;
    }
    let (Some(keys), Some(values)) = (
        m.keys().as_string_opt::<i32>(),
        m.values().as_string_opt::<i32>(),
    ) else {
        return false;
    };
    let (Ok(a), Ok(b)) = (
        child_range(m.value_offsets(), i, ""),
        child_range(m.value_offsets(), j, ""),
    ) else {
        return false;
    };
    let same = |a: usize, b: usize, s: &StringArray| {
        a < s.len() && b < s.len() && s.is_valid(a) && s.is_valid(b) && s.value(a) == s.value(b)
    };
    a.len() == b.len()
        && a.zip(b)
            .all(|(a, b)| same(a, b, keys) && same(a, b, values))
}

pub(super) fn map_entries<'a>(m: &'a MapArray, i: usize, column: &str) -> Result<Entries<'a>, Bad> {
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
pub(super) fn attributes(
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
pub(super) fn typed_value(text: &str, ty: &str) -> Result<AnyValue, String> {
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
pub(super) fn fill_absent_values(v: &mut AnyValue) {
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

pub(super) fn entity_refs_from_json(text: &str) -> Result<Vec<EntityRef>, Bad> {
    const COLUMN: &str = "resource_entity_refs";
    if text.is_empty() {
        return Ok(Vec::new());
    }
    json::decode_entity_refs(text.as_bytes()).map_err(|e| bad(COLUMN, format!("{e}")))
}

pub(super) fn hex_bytes(text: &str, column: &str) -> Result<Vec<u8>, Bad> {
    hex::decode(text).map_err(|e| bad(column, format!("invalid hex id {text:?}: {e}")))
}

pub(super) fn unix_nanos(t: i64, column: &str) -> Result<u64, Bad> {
    u64::try_from(t).map_err(|_| bad(column, format!("negative timestamp {t}")))
}

/// Field `field` of the items of list column `list`.
pub(super) fn struct_field<'a>(
    s: &'a StructArray,
    list: &str,
    field: &str,
) -> Result<&'a ArrayRef> {
    s.column_by_name(field).ok_or_else(|| ConvertError::Column {
        column: format!("{list}.{field}"),
        message: "missing".to_owned(),
    })
}

/// The struct items of a list column.
pub(super) fn list_items<'a>(list: &'a ListArray, name: &str) -> Result<&'a StructArray> {
    list.values()
        .as_struct_opt()
        .ok_or_else(|| type_mismatch(name, "List<Struct>"))
}

/// The columns of one batch of a table, looked up by name and cast to the
/// table schema's type when Arrow can (e.g. `Utf8View` → `Utf8`).
pub(super) struct Columns<'b> {
    batch: &'b RecordBatch,
    schema: arrow::datatypes::SchemaRef,
}

impl<'b> Columns<'b> {
    pub(super) fn new(batch: &'b RecordBatch, table: tf_domain::Table) -> Self {
        Self {
            batch,
            schema: tf_schema::table_schema(table),
        }
    }

    pub(super) fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub(super) fn col(&self, name: &str) -> Result<ArrayRef> {
        let want = self
            .schema
            .field_with_name(name)
            .map_err(ConvertError::Arrow)?
            .data_type();
        column(self.batch, name, want)
    }

    pub(super) fn strings(&self, name: &str) -> Result<StringArray> {
        as_strings(&self.col(name)?, name)
    }

    pub(super) fn prims<T: ArrowPrimitiveType>(&self, name: &str) -> Result<PrimitiveArray<T>> {
        as_prims(&self.col(name)?, name)
    }

    /// A boolean column the batch may lack (one added to the schema later).
    pub(super) fn opt_bools(&self, name: &str) -> Result<Option<arrow::array::BooleanArray>> {
        if self.batch.column_by_name(name).is_none() {
            return Ok(None);
        }
        let c = self.col(name)?;
        c.as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                ConvertError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                    "column {name} is not boolean"
                )))
            })
    }

    /// `{prefix}attributes` with `{prefix}attribute_types`.
    pub(super) fn attrs(&self, prefix: &str) -> Result<AttrCols> {
        let (n, t) = (
            format!("{prefix}attributes"),
            format!("{prefix}attribute_types"),
        );
        AttrCols::new(&self.col(&n)?, &self.col(&t)?, &n, &t)
    }

    pub(super) fn list(&self, name: &str) -> Result<ListCols> {
        let list = as_list(&self.col(name)?, name)?;
        let items = list_items(&list, name)?.clone();
        Ok(ListCols {
            list,
            items,
            name: name.to_owned(),
        })
    }

    pub(super) fn prim_list<T: ArrowPrimitiveType>(&self, name: &str) -> Result<PrimList<T>> {
        let list = as_list(&self.col(name)?, name)?;
        let values = as_prims(list.values(), name)?;
        Ok(PrimList { list, values })
    }
}

/// A list-of-struct column (events, links, exemplars, quantiles).
pub(super) struct ListCols {
    list: ListArray,
    items: StructArray,
    name: String,
}

impl ListCols {
    fn field(&self, field: &str) -> Result<&ArrayRef> {
        struct_field(&self.items, &self.name, field)
    }

    pub(super) fn strings(&self, field: &str) -> Result<StringArray> {
        as_strings(self.field(field)?, &format!("{}.{field}", self.name))
    }

    pub(super) fn prims<T: ArrowPrimitiveType>(&self, field: &str) -> Result<PrimitiveArray<T>> {
        as_prims(self.field(field)?, &format!("{}.{field}", self.name))
    }

    pub(super) fn attrs(&self, prefix: &str) -> Result<AttrCols> {
        let (n, t) = (
            format!("{prefix}attributes"),
            format!("{prefix}attribute_types"),
        );
        AttrCols::new(
            self.field(&n)?,
            self.field(&t)?,
            &format!("{}.{n}", self.name),
            &format!("{}.{t}", self.name),
        )
    }

    /// The item indices of row `row`.
    pub(super) fn range(&self, row: usize) -> Result<std::ops::Range<usize>, Bad> {
        if row >= self.list.len() || self.list.is_null(row) {
            return Err(bad(&self.name, "null or missing list"));
        }
        child_range(self.list.value_offsets(), row, &self.name)
    }
}

/// A list-of-primitive column (bucket counts, explicit bounds).
pub(super) struct PrimList<T: ArrowPrimitiveType> {
    list: ListArray,
    values: PrimitiveArray<T>,
}

impl<T: ArrowPrimitiveType> PrimList<T> {
    pub(super) fn get(&self, row: usize, column: &str) -> Result<Vec<T::Native>, Bad> {
        if row >= self.list.len() || self.list.is_null(row) {
            return Err(bad(column, "null or missing list"));
        }
        child_range(self.list.value_offsets(), row, column)?
            .map(|j| prim(&self.values, j, column))
            .collect()
    }
}

/// A nullable float column's value.
pub(super) fn opt_f64(
    a: &PrimitiveArray<arrow::datatypes::Float64Type>,
    i: usize,
    column: &str,
) -> Result<Option<f64>, Bad> {
    if i >= a.len() {
        return Err(bad(column, "missing value"));
    }
    Ok((!a.is_null(i)).then(|| a.value(i)))
}
