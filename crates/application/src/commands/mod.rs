//! Commands (write use cases) and their handlers.

pub mod counters;
pub mod ingest;

pub use counters::ShardedCounterStore;
pub use ingest::{IngestCommand, IngestHandler, IngestOutcome, IngestStats};
