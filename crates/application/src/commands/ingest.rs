//! `IngestCommand`: store the accepted part of one validated export request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, BooleanArray, TimestampNanosecondArray};
use arrow::compute::filter_record_batch;
use parking_lot::RwLock;

use crate::ports::{IngestSink, Origin, TableBatch, WriteError, Written};
use tf_domain::Table;
use tf_domain::ports::EventPublisher;
use tf_domain::telemetry::Timestamp;
use tf_domain::telemetry::{BatchSummary, Signal};
use tf_domain::{DomainEvent, RetentionRules, SourceBatch, TenantId};

/// One export request after conversion: the batch aggregate's summary (what
/// was accepted and rejected) and the accepted rows, as columns per table.
#[derive(Debug)]
pub struct IngestCommand {
    pub summary: BatchSummary,
    pub batches: Vec<TableBatch>,
    /// The forwarded batch of another node these rows are (header
    /// `X-TelemetryFlow-Batch`): a batch accepted before is acknowledged
    /// again without being stored twice.
    pub source: Option<SourceBatch>,
}

/// What the client is told (OTLP partial success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty when nothing was rejected.
    pub message: String,
}

/// Items per tenant and signal, as the OpenTelemetry Collector counts them:
/// accepted (stored), rejected (broke a domain rule), refused (the whole
/// request was turned away: overload, shutdown, storage failure).
#[derive(Debug, Default)]
pub(crate) struct SignalCounters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub refused: AtomicU64,
    /// Items of forwarded batches accepted before, not stored again.
    pub duplicate: AtomicU64,
}

#[derive(Debug, Default)]
pub struct IngestStats {
    counters: RwLock<HashMap<(TenantId, Signal), Arc<SignalCounters>>>,
}

impl IngestStats {
    fn get(&self, tenant: &TenantId, signal: Signal) -> Arc<SignalCounters> {
        let key = (tenant.clone(), signal);
        if let Some(c) = self.counters.read().get(&key) {
            return Arc::clone(c);
        }
        Arc::clone(self.counters.write().entry(key).or_default())
    }

    /// Items of forwarded batches acknowledged again without being stored:
    /// `(tenant, signal, items)`, sorted.
    pub fn duplicates(&self) -> Vec<(TenantId, Signal, u64)> {
        let mut v: Vec<_> = self
            .counters
            .read()
            .iter()
            .map(|((t, s), c)| (t.clone(), *s, c.duplicate.load(Ordering::Relaxed)))
            .filter(|e| e.2 > 0)
            .collect();
        v.sort_by(|a, b| (&a.0, a.1.item_noun()).cmp(&(&b.0, b.1.item_noun())));
        v
    }

    /// `(tenant, signal, accepted, rejected, refused)`, sorted.
    pub fn snapshot(&self) -> Vec<(TenantId, Signal, u64, u64, u64)> {
        let mut v: Vec<_> = self
            .counters
            .read()
            .iter()
            .map(|((t, s), c)| {
                (
                    t.clone(),
                    *s,
                    c.accepted.load(Ordering::Relaxed),
                    c.rejected.load(Ordering::Relaxed),
                    c.refused.load(Ordering::Relaxed),
                )
            })
            .collect();
        v.sort_by(|a, b| (&a.0, a.1.item_noun()).cmp(&(&b.0, b.1.item_noun())));
        v
    }
}

pub struct IngestHandler {
    buffer: Arc<dyn IngestSink>,
    events: Arc<dyn EventPublisher>,
    stats: Arc<IngestStats>,
    retention: Arc<RetentionRules>,
}

/// Drops the rows of `batch` (of `table`) older than `keep_from`; returns
/// how many. Rows without a readable timestamp are kept (the partition
/// buffer reports them).
fn drop_expired_rows(batch: &mut TableBatch, keep_from: Timestamp) -> u64 {
    let Some(ts) = batch
        .batch
        .column_by_name(Table::TIMESTAMP_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
    else {
        return 0;
    };
    let k = keep_from.unix_nanos().min(i64::MAX as u64) as i64;
    let expired = ts.values().iter().filter(|&&t| t < k).count();
    if expired == 0 {
        return 0;
    }
    let keep: BooleanArray = ts.values().iter().map(|&t| Some(t >= k)).collect();
    match filter_record_batch(&batch.batch, &keep) {
        Ok(kept) => {
            batch.batch = kept;
            expired as u64
        }
        Err(e) => {
            tracing::error!(error = %e, "filtering expired rows failed; keeping them");
            0
        }
    }
}

impl IngestHandler {
    pub fn new(
        buffer: Arc<dyn IngestSink>,
        events: Arc<dyn EventPublisher>,
        stats: Arc<IngestStats>,
    ) -> Self {
        Self {
            buffer,
            events,
            stats,
            retention: Arc::default(),
        }
    }

    /// Rejects items whose partition the retention rules have expired.
    pub fn with_retention(mut self, rules: Arc<RetentionRules>) -> Self {
        self.retention = rules;
        self
    }

    /// Writes the accepted rows (durably), then raises the batch's ingested
    /// event. On error nothing of the request was accepted and the client may
    /// retry.
    pub async fn handle(&self, cmd: IngestCommand) -> Result<IngestOutcome, WriteError> {
        let IngestCommand {
            mut summary,
            mut batches,
            source,
        } = cmd;
        let counters = self.stats.get(summary.context().tenant(), summary.signal());
        if self.retention.expires_anything() {
            let now = crate::wall_clock();
            let tenant = summary.context().tenant().clone();
            let mut expired = 0;
            for b in &mut batches {
                if let Some(k) = self.retention.keep_from(&tenant, b.table, now) {
                    expired += drop_expired_rows(b, k);
                }
            }
            summary.expire(expired);
        }
        let batches: Vec<TableBatch> = batches
            .into_iter()
            .filter(|b| b.batch.num_rows() > 0)
            .collect();
        let origin = source.map(|batch| Origin {
            batch,
            workspace: summary.context().workspace().clone(),
            signal: summary.signal(),
        });
        if !batches.is_empty() {
            match self
                .buffer
                .write(summary.context().tenant(), batches, origin)
                .await
            {
                Ok(Written::Stored) => {}
                Ok(Written::Duplicate) => {
                    counters
                        .duplicate
                        .fetch_add(summary.accepted(), Ordering::Relaxed);
                    return Ok(IngestOutcome {
                        accepted: summary.accepted(),
                        rejected: summary.rejected(),
                        message: summary.rejection_message(),
                    });
                }
                Err(e) => {
                    counters
                        .refused
                        .fetch_add(summary.accepted(), Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        counters
            .accepted
            .fetch_add(summary.accepted(), Ordering::Relaxed);
        counters
            .rejected
            .fetch_add(summary.rejected(), Ordering::Relaxed);
        if let Some(event) = DomainEvent::ingested(&summary) {
            self.events.publish(event);
        }
        Ok(IngestOutcome {
            accepted: summary.accepted(),
            rejected: summary.rejected(),
            message: summary.rejection_message(),
        })
    }
}
