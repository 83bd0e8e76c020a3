//! Telemetry value objects, batch aggregates and the rules they enforce.

pub mod batch;
pub mod counters;
pub mod ids;
pub mod metric_name;
pub mod rejection;
pub mod series;
pub mod service_name;
pub mod timestamp;

pub use batch::{BatchSummary, LogBatch, MetricBatch, Signal, SpanBatch};
pub use counters::{CounterObservation, CounterSeries, CounterStore};
pub use ids::{SpanId, TraceId};
pub use metric_name::MetricName;
pub use rejection::{Rejection, Rejections};
pub use service_name::ServiceName;
pub use timestamp::{TimeRange, Timestamp};
