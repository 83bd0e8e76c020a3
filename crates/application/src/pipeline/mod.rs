//! The write pipeline: receivers → (bounded queue) → WAL writer (group
//! commit, fsync) → partition buffers → Parquet flushers → manifest.
//!
//! [`WritePath`] implements the `IngestSink` port: a write is acknowledged
//! only after its WAL record is fsync'd and its rows are in the buffers
//! (visible to queries). Memory is bounded: over the budget, or when the WAL
//! is full because storage is not keeping up, writes are refused with a
//! retryable error — never accepted and then dropped.

pub mod admission;
pub(crate) mod buffer;
pub mod pressure;
pub mod sources;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;

pub use admission::{Admission, Reservation};
pub use buffer::{BufferConfig, FlushStats, PartitionBuffer};
pub use pressure::IngestPressure;
pub use sources::SourceMarks;

use crate::ports::{
    IngestSink, Origin, SnapshotSource, StoreError, TableBatch, TableSnapshot, WalError, WalRecord,
    WriteAheadLog, WriteError, Written,
};
use crate::records::{
    Arrival, DurableLog, DurableSubscriber, RecordSubscriber, Subscribers, SubscribersBuilder,
};
use sources::Begin;
use tf_domain::{Table, TenantId};

pub struct WritePath {
    buffer: Arc<PartitionBuffer>,
    wal: OnceLock<Arc<dyn WriteAheadLog>>,
    closed: AtomicBool,
    /// Rows go to the partition buffers (and on to Parquet); when false the
    /// log is only the durable subscribers' queue.
    persist: bool,
    subscribers: Arc<Subscribers>,
    sources: Arc<SourceMarks>,
    pressure: Arc<IngestPressure>,
    admission: Arc<Admission>,
}

/// Puts the write path together: what it persists, and who consumes its
/// durable records (see [`crate::records`]).
pub struct WritePathBuilder {
    buffer: Arc<PartitionBuffer>,
    persist: bool,
    sources: Arc<SourceMarks>,
    pressure: Arc<IngestPressure>,
    subscribers: SubscribersBuilder,
}

impl WritePathBuilder {
    /// With `false` nothing goes to the partition buffers (a pure sidecar:
    /// the log is only its forwarders' queue).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// The high-water marks of batches other nodes forwarded here.
    pub fn sources(mut self, sources: Arc<SourceMarks>) -> Self {
        self.sources = sources;
        self
    }

    /// Where this path reports pressure (overload refusals, buffers over
    /// half their budget) for background work to yield to.
    pub fn pressure(mut self, pressure: Arc<IngestPressure>) -> Self {
        self.pressure = pressure;
        self
    }

    /// A consumer run on the log's writer thread, after the buffers and the
    /// source marks.
    pub fn synchronous(mut self, s: Arc<dyn RecordSubscriber>) -> Self {
        self.subscribers = self.subscribers.synchronous(s);
        self
    }

    /// A consumer with a durable position (a forwarder).
    pub fn durable(mut self, s: Arc<dyn DurableSubscriber>) -> Self {
        self.subscribers = self.subscribers.durable(s);
        self
    }

    /// A path that refuses writes (`NotReady`) until [`WritePath::set_wal`].
    pub fn build(self) -> WritePath {
        let rows = Arc::new(BufferedRows {
            buffer: Arc::clone(&self.buffer),
            persist: self.persist,
        });
        let marks = Arc::new(RaiseMarks(Arc::clone(&self.sources)));
        // Marks first: a forwarded batch counts as accepted before its rows
        // are visible, as the ack that follows says.
        let all = Subscribers::builder()
            .synchronous(marks as Arc<dyn RecordSubscriber>)
            .synchronous(rows as Arc<dyn RecordSubscriber>)
            .extend(self.subscribers);
        WritePath {
            admission: Arc::new(Admission::new(
                Arc::clone(&self.buffer),
                Arc::clone(&self.pressure),
            )),
            buffer: self.buffer,
            wal: OnceLock::new(),
            closed: AtomicBool::new(false),
            persist: self.persist,
            subscribers: Arc::new(all.build()),
            sources: self.sources,
            pressure: self.pressure,
        }
    }
}

/// The partition buffers as a subscriber: a record's rows become visible
/// (replayed ones unless committed already); without persisting, only the
/// sequence number is noted.
struct BufferedRows {
    buffer: Arc<PartitionBuffer>,
    persist: bool,
}

impl RecordSubscriber for BufferedRows {
    fn apply(&self, record: &WalRecord, arrival: Arrival) {
        if !self.persist {
            self.buffer.note_seq(record.seq);
            return;
        }
        let replayed = arrival == Arrival::Replay;
        for b in &record.batches {
            self.buffer
                .insert(&record.tenant, b.table, &b.batch, record.seq, replayed);
        }
        if replayed {
            self.buffer.note_seq(record.seq);
        }
    }
}

/// The source marks as a subscriber: a forwarded batch's stream mark rises
/// once its record is durable, and is rebuilt from the log on replay.
struct RaiseMarks(Arc<SourceMarks>);

impl RecordSubscriber for RaiseMarks {
    fn apply(&self, record: &WalRecord, arrival: Arrival) {
        let Some(origin) = &record.origin else {
            return;
        };
        let stream = origin.stream(&record.tenant);
        match arrival {
            Arrival::Live => self.0.accepted(&stream, origin.batch.last()),
            Arrival::Replay => self.0.observe(&stream, origin.batch.last()),
        }
    }
}

impl WritePath {
    pub fn builder(buffer: Arc<PartitionBuffer>) -> WritePathBuilder {
        WritePathBuilder {
            buffer,
            persist: true,
            sources: Arc::new(SourceMarks::in_memory()),
            pressure: Arc::new(IngestPressure::new()),
            subscribers: Subscribers::builder(),
        }
    }

    /// A path that persists, with no other consumer of its records.
    pub fn new(buffer: Arc<PartitionBuffer>) -> Self {
        Self::builder(buffer).build()
    }

    pub fn pressure(&self) -> &IngestPressure {
        &self.pressure
    }

    /// Every consumer of the durable records.
    pub fn subscribers(&self) -> &Arc<Subscribers> {
        &self.subscribers
    }

    pub fn sources(&self) -> &SourceMarks {
        &self.sources
    }

    pub fn persists(&self) -> bool {
        self.persist
    }

    /// A record of the log, replayed at start-up, to every consumer.
    pub fn replay(&self, record: &WalRecord) {
        self.subscribers.apply(record, Arrival::Replay);
    }

    /// Called once WAL replay is done: writes are accepted from now on.
    /// Returns what the durable subscribers run with.
    pub fn set_wal(self: &Arc<Self>, wal: Arc<dyn WriteAheadLog>) -> DurableLog {
        let _ = self.wal.set(Arc::clone(&wal));
        self.release_wal();
        let path: Weak<WritePath> = Arc::downgrade(self);
        DurableLog::new(
            wal,
            Arc::new(move || {
                if let Some(p) = path.upgrade() {
                    p.release_wal();
                }
            }),
        )
    }

    pub fn is_ready(&self) -> bool {
        self.wal.get().is_some()
    }

    /// Where receivers reserve the bodies they read.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    pub fn buffer(&self) -> &Arc<PartitionBuffer> {
        &self.buffer
    }

    pub fn wal(&self) -> Option<&Arc<dyn WriteAheadLog>> {
        self.wal.get()
    }

    /// Refuses further writes (graceful shutdown); flushing still works.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Lets the log drop every record that is flushed (when persisting)
    /// and done by every durable subscriber, once the source marks they
    /// raised are saved.
    pub fn release_wal(&self) {
        let Some(wal) = self.wal.get() else {
            return;
        };
        let mut watermark = self.buffer.watermark();
        if let Some(floor) = self.subscribers.durable_floor() {
            watermark = watermark.min(floor + 1);
        }
        if let Err(e) = self.sources.persist() {
            tracing::error!(error = %e, "saving the forwarded batches' high-water marks failed; the log keeps its records");
            return;
        }
        wal.release_before(watermark);
    }

    /// Flushes due partitions (all with `force`), then lets the WAL drop what
    /// is now committed.
    pub async fn flush_due(&self, force: bool) -> Result<usize, StoreError> {
        let r = self.buffer.flush_due(force).await;
        self.release_wal();
        r
    }
}

fn refused(e: WalError) -> WriteError {
    match e {
        WalError::Full { .. } | WalError::QueueFull => WriteError::Overloaded {
            reason: e.to_string(),
            retry_after: Duration::from_secs(1),
        },
        WalError::Closed => WriteError::ShuttingDown,
        WalError::Io(_) => WriteError::Internal(Box::new(e)),
    }
}

#[async_trait]
impl IngestSink for WritePath {
    async fn write(
        &self,
        tenant: &TenantId,
        batches: Vec<TableBatch>,
        origin: Option<Origin>,
        otlp: Option<bytes::Bytes>,
    ) -> Result<Written, WriteError> {
        let written = self.write_once(tenant, batches, origin, otlp).await;
        if let Err(WriteError::Overloaded { .. }) = &written {
            self.pressure.mark();
        }
        written
    }

    async fn flush_all(&self) -> Result<(), WriteError> {
        self.flush_all_buffered().await
    }
}

impl WritePath {
    async fn write_once(
        &self,
        tenant: &TenantId,
        batches: Vec<TableBatch>,
        origin: Option<Origin>,
        otlp: Option<bytes::Bytes>,
    ) -> Result<Written, WriteError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WriteError::ShuttingDown);
        }
        let Some(wal) = self.wal.get() else {
            return Err(WriteError::NotReady);
        };
        let budget = self.buffer.config().max_buffered_bytes;
        let buffered = self.buffer.buffered_bytes();
        if buffered > budget / 2 {
            self.pressure.mark();
        }
        // Admission let the request's body in under the budget, or up to
        // the hard limit for a tenant below its share.
        if buffered > admission::hard_limit(budget) {
            return Err(WriteError::Overloaded {
                reason: format!("{buffered} bytes buffered, over the memory budget of {budget}"),
                retry_after: Duration::from_secs(1),
            });
        }
        if let Some(reason) = self.subscribers.refusal() {
            return Err(WriteError::Overloaded {
                reason,
                retry_after: Duration::from_secs(1),
            });
        }
        let stream = origin.as_ref().map(|o| (o.stream(tenant), o.batch.last()));
        if let (Some(o), Some((stream, _))) = (&origin, &stream) {
            match self.sources.begin(stream, &o.batch) {
                Begin::Write => {}
                Begin::Duplicate => return Ok(Written::Duplicate),
                Begin::Busy => {
                    return Err(WriteError::Overloaded {
                        reason: format!("batch {} of this stream is being written", o.batch),
                        retry_after: Duration::from_secs(1),
                    });
                }
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let subscribers = Arc::clone(&self.subscribers);
        let sources = Arc::clone(&self.sources);
        let owner = tenant.clone();
        let rows = batches.clone();
        let written_origin = origin.clone();
        let marked = stream.clone();
        let appended = wal.append(
            tenant,
            &batches,
            origin.as_ref(),
            Box::new(move |result| {
                match result {
                    Ok(seq) => subscribers.apply_shared(
                        &Arc::new(WalRecord {
                            seq,
                            tenant: owner,
                            batches: rows,
                            origin: written_origin,
                            otlp,
                        }),
                        Arrival::Live,
                    ),
                    Err(_) => {
                        if let Some((stream, _)) = &marked {
                            sources.abandoned(stream);
                        }
                    }
                }
                let _ = tx.send(result);
            }),
        );
        if let Err(e) = appended {
            if let Some((stream, _)) = &stream {
                self.sources.abandoned(stream);
            }
            return Err(refused(e));
        }
        match rx.await {
            Ok(Ok(_seq)) => Ok(Written::Stored),
            Ok(Err(e)) => Err(refused(e)),
            Err(_) => Err(WriteError::ShuttingDown),
        }
    }

    async fn flush_all_buffered(&self) -> Result<(), WriteError> {
        // A partition being flushed by the periodic task is skipped by a
        // concurrent call: loop until nothing is left.
        for _ in 0..1000 {
            self.flush_due(true)
                .await
                .map_err(|e| WriteError::Internal(Box::new(e)))?;
            if self.buffer.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(WriteError::Internal("buffer did not drain".into()))
    }
}

#[async_trait]
impl SnapshotSource for WritePath {
    fn snapshot(&self, tenant: &TenantId, table: Table) -> TableSnapshot {
        self.buffer.snapshot(tenant, table)
    }

    async fn refresh_stale(&self, tenant: &TenantId) {
        self.buffer.refresh_stale(tenant).await;
    }
}

#[async_trait]
impl SnapshotSource for PartitionBuffer {
    fn snapshot(&self, tenant: &TenantId, table: Table) -> TableSnapshot {
        PartitionBuffer::snapshot(self, tenant, table)
    }

    async fn refresh_stale(&self, tenant: &TenantId) {
        PartitionBuffer::refresh_stale(self, tenant).await;
    }
}
