//! Commands (write use cases) and their handlers.

pub(crate) mod counters;
pub(crate) mod ingest;

pub use counters::ShardedCounterStore;
pub use ingest::{
    IngestCommand, IngestHandler, IngestOutcome, IngestStats, OTHER_TENANTS, TENANT_IDLE,
    TenantLabel,
};
