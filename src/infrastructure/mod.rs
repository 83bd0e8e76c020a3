//! Adapters to the outside world: OTLP receivers, the HTTP API, storage
//! (Parquet through object_store) and the DataFusion query engine.

pub mod access;
pub mod api;

pub use tf_otlp as otlp;
pub use tf_query as query;
pub use tf_storage::{delivery, node, storage, wal};
