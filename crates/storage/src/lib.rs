//! The write side's storage adapters: Parquet files through object_store
//! under per-table manifests (`storage`), the write-ahead log (`wal`), and the
//! crash points the crash tests use (`failpoint`).

pub mod delivery;
pub mod failpoint;
pub mod node;
pub mod storage;
pub mod wal;
