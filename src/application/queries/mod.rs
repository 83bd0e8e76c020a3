//! Queries (read use cases) and their handlers.

pub mod sql;

pub use sql::{SqlHandler, SqlQuery};
