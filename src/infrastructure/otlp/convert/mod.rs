//! OTLP (prost types) → validated Arrow record batches.
//!
//! One pass per request: every item goes through its batch aggregate's rules
//! (`domain::telemetry::{SpanBatch, MetricBatch, LogBatch}`) and, when
//! admitted, straight into column builders. Nothing is allocated per item
//! beyond what Arrow's builders grow.

mod columns;
mod logs;
mod metrics;
mod traces;

pub use columns::{render_any_value, write_any_value_json};
pub use logs::convert_logs;
pub use metrics::convert_metrics;
pub use traces::convert_traces;

use crate::application::TableBatch;
use crate::domain::telemetry::BatchSummary;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Column construction failed: a bug, not bad input.
    #[error("building Arrow columns: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// A converted request: the aggregate's outcome and the accepted rows.
#[derive(Debug)]
pub struct Converted {
    pub summary: BatchSummary,
    pub batches: Vec<TableBatch>,
}
