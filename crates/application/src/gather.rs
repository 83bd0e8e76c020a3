//! Reordering rows (`take`) for tables with nested columns.
//!
//! Arrow's `take` copies a list or map column row by row: one
//! `MutableArrayData::extend` per row, each walking every child column
//! through dynamic dispatch and growing its buffers as it goes. Our
//! attribute maps, events and links make that the most expensive part of
//! sorting a flush. Here a list's (or map's) new offsets and the indices of
//! its child rows are computed once, and the children are gathered with one
//! `take` of those indices, recursively, so strings are copied by the
//! byte-array kernel that sizes its output before it copies.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, MapArray, OffsetSizeTrait, RecordBatch,
    RecordBatchOptions, StructArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, FieldRef};
use arrow::error::ArrowError;

/// The rows of `batch` at `indices`, in that order (as
/// `arrow::compute::take_record_batch`).
pub fn take_rows(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take_array(c.as_ref(), indices))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )
}

/// The values of `array` at `indices` (as `arrow::compute::take`). Indices
/// may not be null.
pub fn take_array(array: &dyn Array, indices: &UInt32Array) -> Result<ArrayRef, ArrowError> {
    if indices.null_count() > 0 {
        return arrow::compute::take(array, indices, None);
    }
    match array.data_type() {
        DataType::List(field) => take_list(array.as_list::<i32>(), field, indices),
        DataType::LargeList(field) => take_list(array.as_list::<i64>(), field, indices),
        DataType::Map(field, ordered) => {
            let map = array.as_map();
            let Some((offsets, child)) = gather(map.value_offsets(), map.nulls(), indices)? else {
                return arrow::compute::take(array, indices, None);
            };
            let entries = take_array(map.entries(), &child)?;
            Ok(Arc::new(MapArray::try_new(
                Arc::clone(field),
                offsets,
                entries.as_struct().clone(),
                take_nulls(map.nulls(), indices),
                *ordered,
            )?))
        }
        DataType::Struct(fields) if !fields.is_empty() => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .map(|c| take_array(c.as_ref(), indices))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                take_nulls(s.nulls(), indices),
            )?))
        }
        _ => arrow::compute::take(array, indices, None),
    }
}

fn take_list<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    field: &FieldRef,
    indices: &UInt32Array,
) -> Result<ArrayRef, ArrowError> {
    let Some((offsets, child)) = gather(list.value_offsets(), list.nulls(), indices)? else {
        return arrow::compute::take(list, indices, None);
    };
    let values = take_array(list.values().as_ref(), &child)?;
    Ok(Arc::new(GenericListArray::<O>::try_new(
        Arc::clone(field),
        offsets,
        values,
        take_nulls(list.nulls(), indices),
    )?))
}

/// The offsets of a list taken at `indices` and the indices of the child
/// rows it holds (a null entry holds none). `None` when the child rows do
/// not fit `u32` indices.
fn gather<O: OffsetSizeTrait>(
    offsets: &[O],
    nulls: Option<&NullBuffer>,
    indices: &UInt32Array,
) -> Result<Option<(OffsetBuffer<O>, UInt32Array)>, ArrowError> {
    let rows = offsets.len().saturating_sub(1);
    let range = |i: usize| -> Result<(usize, usize), ArrowError> {
        if i >= rows {
            return Err(ArrowError::InvalidArgumentError(format!(
                "take index {i} is out of bounds for a list of {rows} rows"
            )));
        }
        if nulls.is_some_and(|n| n.is_null(i)) {
            return Ok((0, 0));
        }
        Ok((offsets[i].as_usize(), offsets[i + 1].as_usize()))
    };
    let mut total = 0usize;
    for &i in indices.values() {
        let (start, end) = range(i as usize)?;
        total += end - start;
    }
    if offsets.last().map_or(0, |o| o.as_usize()) > u32::MAX as usize {
        return Ok(None);
    }
    let mut new_offsets = Vec::with_capacity(indices.len() + 1);
    let mut child = Vec::with_capacity(total);
    new_offsets.push(O::usize_as(0));
    for &i in indices.values() {
        let (start, end) = range(i as usize)?;
        child.extend(start as u32..end as u32);
        new_offsets.push(O::usize_as(child.len()));
    }
    let offsets = OffsetBuffer::new(new_offsets.into());
    Ok(Some((offsets, UInt32Array::from(child))))
}

fn take_nulls(nulls: Option<&NullBuffer>, indices: &UInt32Array) -> Option<NullBuffer> {
    let nulls = nulls.filter(|n| n.null_count() > 0)?;
    let taken: BooleanBuffer = indices
        .values()
        .iter()
        .map(|&i| nulls.is_valid(i as usize))
        .collect();
    Some(NullBuffer::new(taken)).filter(|n| n.null_count() > 0)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, ListArray, MapBuilder, StringArray, StringBuilder};
    use arrow::datatypes::{Field, Fields, Schema};

    use super::*;

    /// A map column, a list of structs holding a map (as events and links
    /// are), a plain column; nulls in each.
    fn batch(rows: usize) -> RecordBatch {
        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        // Events: a name and a map per event, a list of them per row.
        let mut event_names = StringBuilder::new();
        let mut event_attrs = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut event_offsets = vec![0i32];
        let mut event_valid = Vec::new();
        let mut plain = Vec::new();
        for r in 0..rows {
            if r % 7 == 3 {
                map.append(false).unwrap();
            } else {
                for k in 0..r % 4 {
                    map.keys().append_value(format!("k{k}"));
                    if (r + k) % 5 == 0 {
                        map.values().append_null();
                    } else {
                        map.values().append_value(format!("v{r}.{k}"));
                    }
                }
                map.append(true).unwrap();
            }
            let mut events = 0;
            if r % 5 != 2 {
                for e in 0..r % 3 {
                    event_names.append_value(format!("e{r}.{e}"));
                    for k in 0..(r + e) % 3 {
                        event_attrs.keys().append_value(format!("a{k}"));
                        event_attrs.values().append_value(format!("x{r}.{e}.{k}"));
                    }
                    event_attrs.append(e % 2 == 0).unwrap();
                    events += 1;
                }
            }
            event_valid.push(r % 5 != 2);
            event_offsets.push(event_offsets.last().unwrap() + events);
            plain.push((r % 9 != 4).then_some(r as i64));
        }
        let event_attrs = Arc::new(event_attrs.finish()) as ArrayRef;
        let event_struct = StructArray::try_new(
            Fields::from(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("attributes", event_attrs.data_type().clone(), true),
            ]),
            vec![Arc::new(event_names.finish()) as ArrayRef, event_attrs],
            None,
        )
        .unwrap();
        let events = Arc::new(
            ListArray::try_new(
                Arc::new(Field::new("item", event_struct.data_type().clone(), true)),
                OffsetBuffer::new(event_offsets.into()),
                Arc::new(event_struct),
                Some(NullBuffer::from(event_valid)),
            )
            .unwrap(),
        ) as ArrayRef;
        let map = Arc::new(map.finish()) as ArrayRef;
        let plain = Arc::new(Int64Array::from(plain)) as ArrayRef;
        let names = Arc::new(StringArray::from_iter(
            (0..rows).map(|r| (r % 6 != 1).then(|| format!("n{r}"))),
        )) as ArrayRef;
        let schema = Schema::new(vec![
            Field::new("attrs", map.data_type().clone(), true),
            Field::new("events", events.data_type().clone(), true),
            Field::new("plain", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![map, events, plain, names]).unwrap()
    }

    #[test]
    fn takes_the_same_rows_as_arrow() {
        let b = batch(200);
        let orders: Vec<Vec<u32>> = vec![
            (0..200).rev().collect(),
            (0..200).map(|i| (i * 37) % 200).collect(),
            vec![5, 5, 3, 199, 0],
            vec![],
        ];
        for order in orders {
            let idx = UInt32Array::from(order.clone());
            let want = arrow::compute::take_record_batch(&b, &idx).unwrap();
            let got = take_rows(&b, &idx).unwrap();
            assert_eq!(got, want, "order {order:?}");
            got.columns()
                .iter()
                .for_each(|c| c.to_data().validate_full().unwrap());
        }
        // From a slice: offsets that do not start at zero.
        let sliced = b.slice(50, 100);
        let idx = UInt32Array::from((0..100).rev().collect::<Vec<u32>>());
        let want = arrow::compute::take_record_batch(&sliced, &idx).unwrap();
        assert_eq!(take_rows(&sliced, &idx).unwrap(), want);
    }

    #[test]
    fn an_index_out_of_bounds_is_an_error() {
        let b = batch(10);
        assert!(take_rows(&b, &UInt32Array::from(vec![10])).is_err());
    }
}
