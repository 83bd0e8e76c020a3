//! Domain events: facts that happened, named in the past tense. Raised per
//! accepted *batch* (never per item) and published on the in-process event bus.

use crate::telemetry::{BatchSummary, Signal, TimeRange};
use crate::tenancy::{TenantId, WorkspaceId};

#[derive(Debug, Clone, PartialEq)]
pub struct SpansIngested {
    pub tenant: TenantId,
    pub workspace: WorkspaceId,
    pub spans: u64,
    pub rejected: u64,
    pub time_range: TimeRange,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsIngested {
    pub tenant: TenantId,
    pub workspace: WorkspaceId,
    pub points: u64,
    pub rejected: u64,
    pub time_range: TimeRange,
    /// Distinct metric names with accepted points (for cache invalidation).
    pub metric_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogsIngested {
    pub tenant: TenantId,
    pub workspace: WorkspaceId,
    pub log_records: u64,
    pub rejected: u64,
    pub time_range: TimeRange,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    SpansIngested(SpansIngested),
    MetricsIngested(MetricsIngested),
    LogsIngested(LogsIngested),
}

impl DomainEvent {
    /// The event raised by accepting `batch`; `None` when nothing was
    /// accepted.
    pub fn ingested(batch: &BatchSummary) -> Option<DomainEvent> {
        let time_range = batch.time_range()?;
        let tenant = batch.context().tenant().clone();
        let workspace = batch.context().workspace().clone();
        let rejected = batch.rejected();
        Some(match batch.signal() {
            Signal::Traces => DomainEvent::SpansIngested(SpansIngested {
                tenant,
                workspace,
                spans: batch.accepted(),
                rejected,
                time_range,
            }),
            Signal::Metrics => DomainEvent::MetricsIngested(MetricsIngested {
                tenant,
                workspace,
                points: batch.accepted(),
                rejected,
                time_range,
                metric_names: batch.metric_names().to_vec(),
            }),
            Signal::Logs => DomainEvent::LogsIngested(LogsIngested {
                tenant,
                workspace,
                log_records: batch.accepted(),
                rejected,
                time_range,
            }),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            DomainEvent::SpansIngested(_) => "SpansIngested",
            DomainEvent::MetricsIngested(_) => "MetricsIngested",
            DomainEvent::LogsIngested(_) => "LogsIngested",
        }
    }

    pub fn tenant(&self) -> &TenantId {
        match self {
            DomainEvent::SpansIngested(e) => &e.tenant,
            DomainEvent::MetricsIngested(e) => &e.tenant,
            DomainEvent::LogsIngested(e) => &e.tenant,
        }
    }
}
