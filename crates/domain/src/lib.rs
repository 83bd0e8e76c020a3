//! The domain layer: TelemetryFlow's business vocabulary and rules.
//!
//! Pure Rust: std and thiserror only. No async runtime, no network, no file or
//! columnar format types (the architecture test in `tests/it/architecture.rs`
//! enforces this). Rules are pure functions over small borrowed or `Copy`
//! values, so the ingest hot path can call them per item without allocating.

pub mod access;
pub mod delivery;
pub mod events;
pub mod limits;
pub mod ports;
pub mod retention;
pub mod telemetry;
pub mod tenancy;

pub use delivery::{Admission, OnFull, SourceBatch};
pub use events::DomainEvent;
pub use limits::{Limit, LimitExceeded, LimitRules, TenantLimits, TokenBucket};
pub use retention::{RetentionPeriod, RetentionRules, TenantRetention};
pub use telemetry::{Signal, Table};
pub use tenancy::{NodeId, Principal, TenantContext, TenantId, WorkspaceId};
