//! OTLP (prost types) → validated Arrow record batches, and back for traces
//! (`spans_to_otlp`).
//!
//! One pass per request: every item goes through its batch aggregate's rules
//! (`domain::telemetry::{SpanBatch, MetricBatch, LogBatch}`) and, when
//! admitted, straight into column builders. Nothing is allocated per item
//! beyond what Arrow's builders grow.

mod columns;
mod logs;
mod metrics;
mod to_otlp;
mod traces;

pub use columns::{render_any_value, write_any_value_json};
pub use logs::convert_logs;
pub use metrics::convert_metrics;
pub use to_otlp::spans_to_otlp;
pub use traces::convert_traces;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use tf_application::{Table, TableBatch};
use tf_domain::telemetry::BatchSummary;
use tf_schema::table_schema;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Column construction failed: a bug, not bad input.
    #[error("building Arrow columns: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Rows → OTLP: a column is missing or of a type that cannot be read.
    #[error("column `{column}`: {message}")]
    Column { column: String, message: String },
    /// Rows → OTLP: a row holds a value that does not convert back
    /// (bad hex id, unknown enum name, a value that does not parse as its
    /// recorded attribute type, a negative time).
    #[error("batch {batch}, row {row}, column `{column}`: {message}")]
    MalformedRow {
        batch: usize,
        row: usize,
        column: String,
        message: String,
    },
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// A converted request: the aggregate's outcome and the accepted rows.
#[derive(Debug)]
pub struct Converted {
    pub summary: BatchSummary,
    pub batches: Vec<TableBatch>,
}

/// Builds a table's record batch, first handing back what the builders
/// over-allocated (they start at 1024 items and grow by doubling): while
/// buffered, a small request's batch would otherwise hold several times its
/// size. Shrinking reallocates in place; nothing is copied.
pub(crate) fn finish_batch(table: Table, mut columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    for c in &mut columns {
        arrow::array::Array::shrink_to_fit(c);
    }
    Ok(RecordBatch::try_new(table_schema(table), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Synth;
    use tf_application::commands::ShardedCounterStore;
    use tf_domain::TenantContext;

    /// Buffered memory is close to the data, not to the builders' capacity.
    /// Measured: a 512-point, 5-table metrics request took 1,028 KB of Arrow
    /// memory before shrinking and 335 KB after (protobuf: 95 KB; the rest is
    /// resource and scope attributes repeated per row).
    #[test]
    fn converted_batches_do_not_hold_builder_slack() {
        use prost::Message;
        let ctx = TenantContext::default();
        let counters = ShardedCounterStore::new(1000);
        let mut synth = Synth::new(3, 1_795_687_200_000_000_000);
        let req = synth.metrics(512);
        let proto = req.encode_to_vec().len();
        let c = convert_metrics(&req, &ctx, &counters).unwrap();
        assert_eq!(c.batches.len(), 5);
        let arrow: usize = c
            .batches
            .iter()
            .map(|b| b.batch.get_array_memory_size())
            .sum();
        assert!(
            arrow < 4 * proto,
            "metrics: arrow {arrow} B vs protobuf {proto} B"
        );
        let req = synth.traces(512);
        let proto = req.encode_to_vec().len();
        let arrow: usize = convert_traces(&req, &ctx)
            .unwrap()
            .batches
            .iter()
            .map(|b| b.batch.get_array_memory_size())
            .sum();
        assert!(
            arrow < 3 * proto,
            "traces: arrow {arrow} B vs protobuf {proto} B"
        );
    }
}
