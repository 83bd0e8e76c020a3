//! Adapters to the outside world: OTLP receivers, the HTTP API, storage
//! (Parquet through object_store) and the DataFusion query engine.

pub mod api;
pub mod otlp;
pub mod query;
pub mod storage;
pub mod wal;
