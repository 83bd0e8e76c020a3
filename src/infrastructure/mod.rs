//! Adapters to the outside world: OTLP receivers, the HTTP API, storage
//! (Parquet through object_store), the DataFusion query engine, and the
//! listeners' TLS.

pub mod access;
pub mod api;
pub mod serve;
pub mod tls;

pub use tf_otlp as otlp;
pub use tf_query as query;
pub use tf_storage::{delivery, node, storage, wal};
