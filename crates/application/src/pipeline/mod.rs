//! The write pipeline: receivers → (bounded queue) → WAL writer (group
//! commit, fsync) → partition buffers → Parquet flushers → manifest.
//!
//! [`WritePath`] implements the `IngestSink` port: a write is acknowledged
//! only after its WAL record is fsync'd and its rows are in the buffers
//! (visible to queries). Memory is bounded: over the budget, or when the WAL
//! is full because storage is not keeping up, writes are refused with a
//! retryable error — never accepted and then dropped.

pub(crate) mod buffer;
pub mod pressure;
pub mod sources;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

pub use buffer::{BufferConfig, FlushStats, PartitionBuffer};
pub use pressure::IngestPressure;
pub use sources::SourceMarks;

use crate::forward::Forwarder;
use crate::ports::{
    IngestSink, Origin, SnapshotSource, StoreError, Table, TableBatch, TableSnapshot, WalError,
    WalRecord, WriteAheadLog, WriteError, Written,
};
use sources::Begin;
use tf_domain::TenantId;

pub struct WritePath {
    buffer: Arc<PartitionBuffer>,
    wal: OnceLock<Arc<dyn WriteAheadLog>>,
    closed: AtomicBool,
    /// Rows go to the partition buffers (and on to Parquet); when false the
    /// log is only the forwarders' queue.
    persist: bool,
    forwarders: Arc<[Arc<Forwarder>]>,
    sources: Arc<SourceMarks>,
    pressure: Arc<IngestPressure>,
}

impl WritePath {
    /// A pipeline that refuses writes (`NotReady`) until [`WritePath::set_wal`].
    pub fn new(buffer: Arc<PartitionBuffer>) -> Self {
        Self {
            buffer,
            wal: OnceLock::new(),
            closed: AtomicBool::new(false),
            persist: true,
            forwarders: Arc::from(Vec::new()),
            sources: Arc::new(SourceMarks::in_memory()),
            pressure: Arc::new(IngestPressure::new()),
        }
    }

    /// Where this path reports pressure (overload refusals, buffers over
    /// half their budget) for background work to yield to.
    pub fn with_pressure(mut self, pressure: Arc<IngestPressure>) -> Self {
        self.pressure = pressure;
        self
    }

    /// Forwards every durable record through `forwarders`; with `persist`
    /// false nothing goes to the partition buffers (a pure sidecar).
    pub fn with_forwarding(mut self, persist: bool, forwarders: Vec<Arc<Forwarder>>) -> Self {
        self.persist = persist;
        self.forwarders = Arc::from(forwarders);
        self
    }

    /// The high-water marks of batches other nodes forwarded here.
    pub fn with_sources(mut self, sources: Arc<SourceMarks>) -> Self {
        self.sources = sources;
        self
    }

    pub fn pressure(&self) -> &IngestPressure {
        &self.pressure
    }

    pub fn forwarders(&self) -> &[Arc<Forwarder>] {
        &self.forwarders
    }

    pub fn sources(&self) -> &SourceMarks {
        &self.sources
    }

    pub fn persists(&self) -> bool {
        self.persist
    }

    /// A record of the log, replayed at start-up: to the buffers (unless
    /// committed already), the forwarders (unless delivered) and the source
    /// marks.
    pub fn replay(&self, record: &WalRecord) {
        if let Some(origin) = &record.origin {
            self.sources
                .observe(&origin.stream(&record.tenant), origin.batch.last());
        }
        if self.persist {
            for b in &record.batches {
                self.buffer
                    .insert(&record.tenant, b.table, &b.batch, record.seq, true);
            }
        }
        self.buffer.note_seq(record.seq);
        for f in self.forwarders.iter() {
            f.offer(record.seq, &record.tenant, &record.batches);
        }
    }

    /// Called once WAL replay is done: writes are accepted from now on.
    pub fn set_wal(&self, wal: Arc<dyn WriteAheadLog>) {
        let _ = self.wal.set(wal);
        self.release_wal();
    }

    pub fn is_ready(&self) -> bool {
        self.wal.get().is_some()
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
    /// and delivered by every forwarder, once the source marks they raised
    /// are saved.
    pub fn release_wal(&self) {
        let Some(wal) = self.wal.get() else {
            return;
        };
        let mut watermark = self.buffer.watermark();
        for f in self.forwarders.iter() {
            watermark = watermark.min(f.delivered() + 1);
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
    ) -> Result<Written, WriteError> {
        let written = self.write_once(tenant, batches, origin).await;
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
        if buffered > budget {
            return Err(WriteError::Overloaded {
                reason: format!("{buffered} bytes buffered, over the memory budget of {budget}"),
                retry_after: Duration::from_secs(1),
            });
        }
        if let Some(reason) = self.forwarders.iter().find_map(|f| f.refusal()) {
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
        let buffer = Arc::clone(&self.buffer);
        let forwarders = Arc::clone(&self.forwarders);
        let sources = Arc::clone(&self.sources);
        let persist = self.persist;
        let owner = tenant.clone();
        let rows = batches.clone();
        let marked = stream.clone();
        let appended = wal.append(
            tenant,
            &batches,
            origin.as_ref(),
            Box::new(move |result| {
                if let Some((stream, last)) = &marked {
                    match result {
                        Ok(_) => sources.accepted(stream, *last),
                        Err(_) => sources.abandoned(stream),
                    }
                }
                if let Ok(seq) = result {
                    if persist {
                        for b in &rows {
                            buffer.insert(&owner, b.table, &b.batch, seq, false);
                        }
                    } else {
                        buffer.note_seq(seq);
                    }
                    for f in forwarders.iter() {
                        f.offer(seq, &owner, &rows);
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
