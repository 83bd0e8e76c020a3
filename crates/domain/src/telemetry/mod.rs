//! Telemetry value objects, batch aggregates and the rules they enforce.

pub(crate) mod batch;
pub(crate) mod counters;
pub mod histogram;
pub(crate) mod ids;
pub(crate) mod metric_name;
pub mod quantile;
pub(crate) mod rejection;
pub mod series;
pub(crate) mod service_name;
pub(crate) mod span;
pub(crate) mod table;
pub(crate) mod timestamp;

pub use batch::{BatchSummary, LogBatch, MetricBatch, Signal, SpanBatch};
pub use counters::{CounterObservation, CounterSeries, CounterStore};
pub use histogram::{check_explicit_histogram, check_exponential_histogram, check_summary};
pub use ids::{SpanId, TraceId};
pub use metric_name::MetricName;
pub use rejection::{Rejection, Rejections};
pub use service_name::ServiceName;
pub use span::{SpanKind, StatusCode};
pub use table::{Table, TableError};
pub use timestamp::{LogTimes, MAX_STORED_UNIX_NANOS, TimeRange, Timestamp, check_timestamps};

/// Deepest nesting of `AnyValue`s (an array or kvlist inside an array or
/// kvlist …) accepted in any attribute or log body, over every protocol: a
/// top-level value is at depth 0, and values at this depth or deeper are
/// refused.
///
/// prost refuses protobuf messages nested deeper than 100 levels. The deepest
/// place an `AnyValue` starts is an exemplar's filtered attribute, 8 messages
/// down from the export request; each kvlist level costs 3 messages
/// (`AnyValue`, `KeyValueList`, `KeyValue`). So 30 levels is what every
/// position can carry over protobuf; OTLP/JSON accepts the same, so whatever
/// is stored can be forwarded as protobuf.
pub const MAX_ANY_VALUE_DEPTH: u32 = 30;

/// The nesting rule: an item whose deepest attribute or body value sits at
/// `deepest` levels of arrays and kvlists is admitted only below
/// [`MAX_ANY_VALUE_DEPTH`].
pub fn check_value_depth(deepest: u32) -> Result<(), Rejection> {
    if deepest < MAX_ANY_VALUE_DEPTH {
        Ok(())
    } else {
        Err(Rejection::ValueTooDeep)
    }
}
