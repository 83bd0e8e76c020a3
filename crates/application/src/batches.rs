//! Measures of record batches that the write path and its consumers share.

use std::collections::HashSet;

use arrow::array::ArrayData;
use arrow::record_batch::RecordBatch;
use tf_domain::Table;

/// The smallest and largest [`Table::TIMESTAMP_COLUMN`] value of `batch`
/// (`(0, 0)` if it has none).
pub fn time_range(batch: &RecordBatch) -> (i64, i64) {
    use arrow::array::{Array, TimestampNanosecondArray};
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
