//! The DataFusion query engine: the read model over Parquet files plus rows
//! not yet flushed.

mod bounded;
pub mod engine;
pub mod executor;
pub mod format;
pub mod guard;
mod reads;
mod table;
mod trace_index;

pub use engine::{DataFusionEngine, SqlParam};
