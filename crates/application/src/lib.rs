//! The application layer: use cases (commands and queries with their
//! handlers), the ports they need, the event bus and the write pipeline.
//!
//! Knows Arrow (rows travel as record batches) but no protocol, file format,
//! object store or query engine: those are the adapter crates (`tf-otlp`,
//! `tf-storage`, `tf-query`).

pub mod access;
pub mod batches;
pub mod commands;
pub mod compaction;
pub mod documents;
pub mod event_bus;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod forward;
pub mod gather;
pub mod limits;
pub mod pipeline;
pub mod ports;
pub mod queries;
pub mod records;
pub mod replay;
pub mod retention;

pub use documents::{
    Cached, CachedDocument, Collection, CollectionError, DocumentStore, PutOutcome, Versioned,
};
pub use ports::TableBatch;

/// The wall clock as a domain timestamp (retention cut-offs, pass times).
pub fn wall_clock() -> tf_domain::telemetry::Timestamp {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    tf_domain::telemetry::Timestamp::from_unix_nanos(ns)
}
