//! Measures of record batches that the write path and its consumers share,
//! and the split of rows into hour partitions.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayData, TimestampNanosecondArray, UInt32Array};
use arrow::record_batch::RecordBatch;
use tf_domain::Table;
use tf_domain::telemetry::Timestamp;

use crate::ports::BoxError;

/// The smallest and largest [`Table::TIMESTAMP_COLUMN`] value of `batch`
/// (`(0, 0)` if it has none).
pub fn time_range(batch: &RecordBatch) -> (i64, i64) {
    batch
        .column_by_name(Table::TIMESTAMP_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .map(|ts| {
            (
                arrow::compute::min(ts).unwrap_or(0),
                arrow::compute::max(ts).unwrap_or(0),
            )
        })
        .unwrap_or((0, 0))
}

/// Bytes of memory `batch` keeps alive, each allocation counted once.
///
/// `RecordBatch::get_array_memory_size` counts a buffer once per array that
/// shares it. Arrays decoded from one Arrow IPC message (WAL replay) all
/// share the message's single allocation, so that sum counts it once per
/// column and child array — tens of times what is held.
pub fn held_bytes(batch: &RecordBatch) -> usize {
    fn add(data: &ArrayData, seen: &mut HashSet<usize>, total: &mut usize) {
        let nulls = data.nulls().map(|n| n.buffer());
        for buf in data.buffers().iter().chain(nulls) {
            if seen.insert(buf.data_ptr().as_ptr() as usize) {
                // Externally owned buffers report no capacity: count their length.
                *total += buf.capacity().max(buf.len());
            }
        }
        for child in data.child_data() {
            add(child, seen, total);
        }
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for column in batch.columns() {
        add(&column.to_data(), &mut seen, &mut total);
    }
    total
}

/// Splits rows by the hour of their `timestamp` column.
pub(crate) fn split_by_hour(batch: &RecordBatch) -> Result<Vec<(u64, RecordBatch)>, BoxError> {
    let col = batch
        .column_by_name(Table::TIMESTAMP_COLUMN)
        .ok_or("batch has no timestamp column")?;
    let ts = col
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or("timestamp column is not Timestamp(ns)")?;
    let hour = |i: usize| {
        Timestamp::from_unix_nanos(ts.value(i).max(0) as u64)
            .hour_start()
            .unix_nanos()
    };
    if ts.is_empty() {
        return Ok(Vec::new());
    }
    let first = hour(0);
    if (1..ts.len()).all(|i| hour(i) == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut groups: HashMap<u64, Vec<u32>> = HashMap::new();
    for i in 0..ts.len() {
        groups.entry(hour(i)).or_default().push(i as u32);
    }
    let mut out: Vec<(u64, RecordBatch)> = groups
        .into_iter()
        .map(|(h, idx)| {
            crate::gather::take_rows(batch, &UInt32Array::from(idx))
                .map(|b| (h, b))
                .map_err(BoxError::from)
        })
        .collect::<Result<_, _>>()?;
    out.sort_by_key(|(h, _)| *h);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::reader::StreamReader;
    use arrow::ipc::writer::StreamWriter;

    use super::*;

    #[test]
    fn held_bytes_counts_a_shared_allocation_once() {
        let n = 10_000;
        let columns: Vec<ArrayRef> = (0..20)
            .map(|c| {
                if c % 2 == 0 {
                    Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * c))) as ArrayRef
                } else {
                    Arc::new(StringArray::from_iter_values(
                        (0..n).map(|i| format!("v{i}")),
                    ))
                }
            })
            .collect();
        let fields: Vec<Field> = (0..20)
            .map(|c| {
                let t = if c % 2 == 0 {
                    DataType::Int64
                } else {
                    DataType::Utf8
                };
                Field::new(format!("c{c}"), t, false)
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let own = held_bytes(&batch);
        // Unshared buffers: the same as arrow's count, less its per-array
        // struct overhead.
        let arrow_count = batch.get_array_memory_size();
        assert!(
            own <= arrow_count && own + 4096 >= arrow_count,
            "{own} vs {arrow_count}"
        );

        // Decoded from IPC, every column shares the message's allocation.
        let mut ipc = Vec::new();
        let mut w = StreamWriter::try_new(&mut ipc, &batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        drop(w);
        let decoded = StreamReader::try_new(std::io::Cursor::new(&ipc), None)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let held = held_bytes(&decoded);
        assert!(
            held <= ipc.len() + 4096 && held >= own / 2,
            "held {held}, IPC {}, own {own}",
            ipc.len()
        );
        assert!(decoded.get_array_memory_size() > 10 * held);
    }
}
