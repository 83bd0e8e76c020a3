//! The write pipeline: receivers → (bounded queue) → WAL writer (group
//! commit, fsync) → partition buffers → Parquet flushers → manifest.
//!
//! [`WritePath`] implements the `IngestSink` port: a write is acknowledged
//! only after its WAL record is fsync'd and its rows are in the buffers
//! (visible to queries). Memory is bounded: over the budget, or when the WAL
//! is full because storage is not keeping up, writes are refused with a
//! retryable error — never accepted and then dropped.

pub(crate) mod buffer;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

pub use buffer::{BufferConfig, FlushStats, PartitionBuffer};

use crate::ports::{
    IngestSink, SnapshotSource, StoreError, Table, TableBatch, TableSnapshot, WalError,
    WriteAheadLog, WriteError,
};
use tf_domain::TenantId;

pub struct WritePath {
    buffer: Arc<PartitionBuffer>,
    wal: OnceLock<Arc<dyn WriteAheadLog>>,
    closed: AtomicBool,
}

impl WritePath {
    /// A pipeline that refuses writes (`NotReady`) until [`WritePath::set_wal`].
    pub fn new(buffer: Arc<PartitionBuffer>) -> Self {
        Self {
            buffer,
            wal: OnceLock::new(),
            closed: AtomicBool::new(false),
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

    fn release_wal(&self) {
        if let Some(wal) = self.wal.get() {
            wal.release_before(self.buffer.watermark());
        }
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
    async fn write(&self, tenant: &TenantId, batches: Vec<TableBatch>) -> Result<(), WriteError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WriteError::ShuttingDown);
        }
        let Some(wal) = self.wal.get() else {
            return Err(WriteError::NotReady);
        };
        let budget = self.buffer.config().max_buffered_bytes;
        let buffered = self.buffer.buffered_bytes();
        if buffered > budget {
            return Err(WriteError::Overloaded {
                reason: format!("{buffered} bytes buffered, over the memory budget of {budget}"),
                retry_after: Duration::from_secs(1),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let buffer = Arc::clone(&self.buffer);
        let owner = tenant.clone();
        let rows = batches.clone();
        wal.append(
            tenant,
            &batches,
            Box::new(move |result| {
                if let Ok(seq) = result {
                    for b in &rows {
                        buffer.insert(&owner, b.table, &b.batch, seq, false);
                    }
                }
                let _ = tx.send(result);
            }),
        )
        .map_err(refused)?;
        match rx.await {
            Ok(Ok(_seq)) => Ok(()),
            Ok(Err(e)) => Err(refused(e)),
            Err(_) => Err(WriteError::ShuttingDown),
        }
    }

    async fn flush_all(&self) -> Result<(), WriteError> {
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
