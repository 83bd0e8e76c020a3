//! Storage: table schemas, Parquet encoding and the object-store repository.

pub(crate) mod compact;
pub mod counting;
pub(crate) mod documents;
pub mod durable;
pub(crate) mod file_index;
pub(crate) mod manifest;
pub(crate) mod object_store;
pub mod parquet;
pub mod power_cut;
pub(crate) mod versions;

pub use self::documents::{ObjectDocumentStore, SYSTEM_PREFIX};
pub use self::object_store::{ObjectFileStore, StorageLocation};
pub use tf_schema::{self as schema, table_schema};
