//! The application layer: use cases (commands and queries with their
//! handlers), the ports they need, the event bus and the write pipeline.
//!
//! Knows Arrow (rows travel as record batches) but no protocol, file format,
//! object store or query engine: those are adapters in `infrastructure`.

pub mod commands;
pub mod compaction;
pub mod event_bus;
pub mod fakes;
pub mod pipeline;
pub mod ports;
pub mod queries;

pub use ports::{Table, TableBatch};
