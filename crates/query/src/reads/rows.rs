//! Reading typed columns out of query results, whatever physical type the
//! engine chose (e.g. `Utf8View` vs `Utf8`): each accessor casts first.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray,
    StringArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use tf_application::ports::QueryError;

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef, QueryError> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::internal(format!("result has no column {name}")))?;
    if c.data_type() == to {
        return Ok(Arc::clone(c));
    }
    cast(c, to).map_err(|e| QueryError::internal(format!("column {name}: {e}")))
}

pub(super) fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray, QueryError> {
    Ok(column(batch, name, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

pub(super) fn int64s(batch: &RecordBatch, name: &str) -> Result<Int64Array, QueryError> {
    Ok(column(batch, name, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

pub(super) fn uint64s(batch: &RecordBatch, name: &str) -> Result<UInt64Array, QueryError> {
    Ok(column(batch, name, &DataType::UInt64)?
        .as_primitive::<UInt64Type>()
        .clone())
}

pub(super) fn int32s(batch: &RecordBatch, name: &str) -> Result<Int32Array, QueryError> {
    Ok(column(batch, name, &DataType::Int32)?
        .as_primitive::<Int32Type>()
        .clone())
}

/// A list-of-struct column as it is (its item fields are read by name).
pub(super) fn struct_lists(batch: &RecordBatch, name: &str) -> Result<ListArray, QueryError> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::internal(format!("result has no column {name}")))?;
    c.as_list_opt::<i32>()
        .cloned()
        .ok_or_else(|| QueryError::internal(format!("column {name} is not a list")))
}

/// Row `row` of a `List<Struct<{a}: Float64, {b}: Float64>>` column as pairs.
pub(super) fn list_f64_pairs(
    list: &ListArray,
    row: usize,
    (a, b): (&str, &str),
    out: &mut Vec<(f64, f64)>,
) -> Result<(), QueryError> {
    out.clear();
    if !list.is_valid(row) {
        return Ok(());
    }
    let items = list.value(row);
    let items = items
        .as_struct_opt()
        .ok_or_else(|| QueryError::internal("list items are not structs"))?;
    let field = |n: &str| -> Result<Float64Array, QueryError> {
        let c = items
            .column_by_name(n)
            .ok_or_else(|| QueryError::internal(format!("list items have no field {n}")))?;
        Ok(cast(c, &DataType::Float64)
            .map_err(QueryError::internal)?
            .as_primitive::<Float64Type>()
            .clone())
    };
    let (xs, ys) = (field(a)?, field(b)?);
    out.extend((0..items.len()).map(|i| (xs.value(i), ys.value(i))));
    Ok(())
}

pub(super) fn float64s(batch: &RecordBatch, name: &str) -> Result<Float64Array, QueryError> {
    Ok(column(batch, name, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

pub(super) fn bools(batch: &RecordBatch, name: &str) -> Result<BooleanArray, QueryError> {
    Ok(column(batch, name, &DataType::Boolean)?
        .as_boolean()
        .clone())
}

/// A `List<UInt64>` column.
pub(super) fn u64_lists(batch: &RecordBatch, name: &str) -> Result<ListArray, QueryError> {
    let t = DataType::List(Arc::new(Field::new("item", DataType::UInt64, true)));
    Ok(column(batch, name, &t)?.as_list::<i32>().clone())
}

/// A `List<Float64>` column.
pub(super) fn f64_lists(batch: &RecordBatch, name: &str) -> Result<ListArray, QueryError> {
    let t = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
    Ok(column(batch, name, &t)?.as_list::<i32>().clone())
}

pub(super) fn list_u64(list: &ListArray, row: usize, out: &mut Vec<u64>) {
    out.clear();
    if list.is_valid(row) {
        let v = list.value(row);
        let v = v.as_primitive::<UInt64Type>();
        out.extend(v.iter().map(|x| x.unwrap_or(0)));
    }
}

pub(super) fn list_f64(list: &ListArray, row: usize, out: &mut Vec<f64>) {
    out.clear();
    if list.is_valid(row) {
        let v = list.value(row);
        let v = v.as_primitive::<Float64Type>();
        out.extend(v.iter().map(|x| x.unwrap_or(f64::NAN)));
    }
}

pub(super) fn opt_f64(a: &Float64Array, row: usize) -> Option<f64> {
    a.is_valid(row).then(|| a.value(row))
}

pub(super) fn opt_str(a: &StringArray, row: usize) -> Option<&str> {
    a.is_valid(row).then(|| a.value(row))
}

/// Appends a canonical rendering of `columns` at `row` to `key` (the
/// identity of a series: service, resource, scope and point attributes).
pub(super) fn append_key(
    formatters: &[ArrayFormatter<'_>],
    row: usize,
    key: &mut String,
) -> Result<(), QueryError> {
    use std::fmt::Write;
    for f in formatters {
        write!(key, "{}\u{1f}", f.value(row)).map_err(QueryError::internal)?;
    }
    Ok(())
}

pub(super) fn formatters<'a>(
    batch: &'a RecordBatch,
    names: &[&str],
    options: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>, QueryError> {
    names
        .iter()
        .map(|n| {
            let c = batch
                .column_by_name(n)
                .ok_or_else(|| QueryError::internal(format!("result has no column {n}")))?;
            ArrayFormatter::try_new(c.as_ref(), options).map_err(QueryError::internal)
        })
        .collect()
}
