//! `IngestCommand`: store the accepted part of one validated export request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, TimestampNanosecondArray};
use arrow::compute::filter_record_batch;
use parking_lot::RwLock;

use crate::limits::{LimitCounters, TenantLimiter};
use crate::ports::{IngestSink, Origin, TableBatch, WriteError, Written};
use tf_domain::Table;
use tf_domain::ports::EventPublisher;
use tf_domain::telemetry::Timestamp;
use tf_domain::telemetry::{BatchSummary, Rejection, Signal};
use tf_domain::{DomainEvent, RetentionRules, SourceBatch, TenantId};
use tf_domain::{Limit, LimitExceeded};

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
    /// The request as received, in OTLP/protobuf, if the receiver kept it
    /// for forwarders: passed on when every item was accepted.
    pub otlp: Option<bytes::Bytes>,
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
/// request was turned away: overload, a tenant limit, shutdown, storage
/// failure).
#[derive(Debug, Default)]
pub(crate) struct SignalCounters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub refused: AtomicU64,
    /// Items of forwarded batches accepted before, not stored again.
    pub duplicate: AtomicU64,
}

/// One tenant's counters.
#[derive(Debug, Default)]
pub(crate) struct TenantCounters {
    signals: [SignalCounters; 3],
    limits: LimitCounters,
    /// Seconds since the stats were created, at the last use.
    last_seen: AtomicU64,
}

impl TenantCounters {
    fn signal(&self, signal: Signal) -> &SignalCounters {
        &self.signals[signal.index()]
    }
}

/// The label of the counters shared by tenants beyond
/// [`IngestStats::max_tenants`]; never a tenant id (those never start with
/// `_`).
pub const OTHER_TENANTS: &str = "_other";

/// A tenant whose counters were not used for this long drops out of the
/// stats (and of `/metrics`); if it comes back its counters start again
/// from zero, which Prometheus reads as a counter reset.
pub const TENANT_IDLE: Duration = Duration::from_secs(3600);

/// Counters per tenant, for `/metrics`. At most `max_tenants` tenants have
/// counters of their own, so tenant ids chosen by clients cannot grow the
/// stats without bound: beyond them, new tenants share the
/// [`OTHER_TENANTS`] counters, and tenants idle for [`TENANT_IDLE`] make
/// room.
#[derive(Debug)]
pub struct IngestStats {
    tenants: RwLock<HashMap<TenantId, Arc<TenantCounters>>>,
    other: Arc<TenantCounters>,
    other_used: AtomicBool,
    max_tenants: usize,
    epoch: Instant,
}

impl Default for IngestStats {
    fn default() -> Self {
        Self::new(1000)
    }
}

/// A tenant's label in the stats: its id, or [`OTHER_TENANTS`].
pub type TenantLabel = Arc<str>;

impl IngestStats {
    pub fn new(max_tenants: usize) -> Self {
        Self {
            tenants: RwLock::default(),
            other: Arc::default(),
            other_used: AtomicBool::new(false),
            max_tenants: max_tenants.max(1),
            epoch: Instant::now(),
        }
    }

    fn now_secs(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    pub(crate) fn tenant(&self, tenant: &TenantId) -> Arc<TenantCounters> {
        let now = self.now_secs();
        let found = self.tenants.read().get(tenant).cloned();
        let counters = match found {
            Some(c) => c,
            None => {
                let mut map = self.tenants.write();
                if !map.contains_key(tenant) && map.len() >= self.max_tenants {
                    Self::drop_idle(&mut map, now);
                }
                match map.get(tenant) {
                    Some(c) => Arc::clone(c),
                    None if map.len() < self.max_tenants => {
                        Arc::clone(map.entry(tenant.clone()).or_default())
                    }
                    None => {
                        self.other_used.store(true, Ordering::Relaxed);
                        Arc::clone(&self.other)
                    }
                }
            }
        };
        counters.last_seen.store(now, Ordering::Relaxed);
        counters
    }

    fn drop_idle(map: &mut HashMap<TenantId, Arc<TenantCounters>>, now: u64) {
        let idle = TENANT_IDLE.as_secs();
        map.retain(|_, c| now.saturating_sub(c.last_seen.load(Ordering::Relaxed)) < idle);
    }

    /// Counts one refusal of a request of `tenant` by `limit`.
    pub fn limit_refused(&self, tenant: &TenantId, limit: Limit) {
        self.tenant(tenant).limits.add(limit);
    }

    /// Every tenant's counters, under its label, sorted by label; the
    /// idle ones are dropped first.
    fn each(&self) -> Vec<(TenantLabel, Arc<TenantCounters>)> {
        let now = self.now_secs();
        let mut map = self.tenants.write();
        Self::drop_idle(&mut map, now);
        let mut v: Vec<_> = map
            .iter()
            .map(|(t, c)| (TenantLabel::from(t.as_str()), Arc::clone(c)))
            .collect();
        drop(map);
        v.sort_by(|a, b| a.0.cmp(&b.0));
        if self.other_used.load(Ordering::Relaxed) {
            v.push((TenantLabel::from(OTHER_TENANTS), Arc::clone(&self.other)));
        }
        v
    }

    /// Items of forwarded batches acknowledged again without being stored:
    /// `(tenant, signal, items)`, sorted.
    pub fn duplicates(&self) -> Vec<(TenantLabel, Signal, u64)> {
        let mut v = Vec::new();
        for (t, c) in self.each() {
            for s in Signal::ALL {
                let n = c.signal(s).duplicate.load(Ordering::Relaxed);
                if n > 0 {
                    v.push((t.clone(), s, n));
                }
            }
        }
        v
    }

    /// `(tenant, signal, accepted, rejected, refused)` of the signals a
    /// tenant sent, sorted.
    pub fn snapshot(&self) -> Vec<(TenantLabel, Signal, u64, u64, u64)> {
        let mut v = Vec::new();
        for (t, c) in self.each() {
            for s in Signal::ALL {
                let c = c.signal(s);
                let n = [&c.accepted, &c.rejected, &c.refused].map(|n| n.load(Ordering::Relaxed));
                if n.iter().any(|&n| n > 0) {
                    v.push((t.clone(), s, n[0], n[1], n[2]));
                }
            }
        }
        v
    }

    /// `(tenant, limit, refusals)` of the limits that refused anything.
    pub fn limit_refusals(&self) -> Vec<(TenantLabel, Limit, u64)> {
        let mut v = Vec::new();
        for (t, c) in self.each() {
            for (limit, n) in c.limits.snapshot() {
                v.push((t.clone(), limit, n));
            }
        }
        v
    }
}

pub struct IngestHandler {
    buffer: Arc<dyn IngestSink>,
    events: Arc<dyn EventPublisher>,
    stats: Arc<IngestStats>,
    retention: Arc<RetentionRules>,
    limits: Arc<TenantLimiter>,
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
    drop_rows(batch, &keep)
}

/// Keeps the rows of `batch` that `keep` marks; returns how many were
/// dropped.
fn drop_rows(batch: &mut TableBatch, keep: &BooleanArray) -> u64 {
    let dropped = keep.false_count() as u64;
    match filter_record_batch(&batch.batch, keep) {
        Ok(kept) => {
            batch.batch = kept;
            dropped
        }
        Err(e) => {
            tracing::error!(error = %e, "filtering rows failed; keeping them");
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
            limits: Arc::default(),
        }
    }

    /// Applies the tenants' limits (ingest rate, active series).
    pub fn with_limits(mut self, limits: Arc<TenantLimiter>) -> Self {
        self.limits = limits;
        self
    }

    /// True when `tenant` has an ingest rate ([`Self::admit`] may refuse).
    pub fn limits_ingest(&self, tenant: &TenantId) -> bool {
        let l = self.limits.rules().for_tenant(tenant);
        l.ingest_items_per_sec > 0 || l.ingest_bytes_per_sec > 0
    }

    /// Refuses a request of `tenant` before its body is read while the
    /// tenant's ingest rate is exhausted; counted like [`Self::admit`]
    /// (its items unknown).
    pub fn precheck(&self, tenant: &TenantId) -> Result<(), LimitExceeded> {
        self.limits
            .precheck_ingest(tenant)
            .inspect_err(|e| self.stats.tenant(tenant).limits.add(e.limit))
    }

    /// Admits a request of `items` items and `bytes` bytes under the
    /// tenant's ingest rate, before it is converted; a refusal is counted
    /// in the tenant's stats.
    pub fn admit(
        &self,
        tenant: &TenantId,
        signal: Signal,
        items: u64,
        bytes: u64,
    ) -> Result<(), LimitExceeded> {
        self.limits
            .admit_ingest(tenant, items, bytes)
            .inspect_err(|e| {
                let counters = self.stats.tenant(tenant);
                counters.limits.add(e.limit);
                counters
                    .signal(signal)
                    .refused
                    .fetch_add(items, Ordering::Relaxed);
            })
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
            otlp,
        } = cmd;
        if summary.received() == 0 {
            return Ok(IngestOutcome {
                accepted: 0,
                rejected: 0,
                message: String::new(),
            });
        }
        let tenant_counters = self.stats.tenant(summary.context().tenant());
        let counters = tenant_counters.signal(summary.signal());
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
        let tenant = summary.context().tenant().clone();
        if summary.signal() == Signal::Metrics && self.limits.limits_series(&tenant) {
            let mut refused = 0;
            for b in &mut batches {
                if let Some(keep) = self.limits.admit_series(&tenant, b.table, &b.batch) {
                    refused += drop_rows(b, &keep);
                }
            }
            if refused > 0 {
                summary.reject_accepted(Rejection::SeriesLimit, refused);
                tenant_counters.limits.add(Limit::MaxActiveSeries);
            }
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
        // The request as received is what was stored only when all of it was.
        let otlp = otlp.filter(|_| summary.accepted() == summary.received());
        if !batches.is_empty() {
            match self
                .buffer
                .write(summary.context().tenant(), batches, origin, otlp)
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
