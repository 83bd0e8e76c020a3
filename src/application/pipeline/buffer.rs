//! `MemoryWriteBuffer`: accepted rows wait here, visible to queries, until a
//! flush writes them as one Parquet file per (tenant, table, hour).
//!
//! A flush moves a partition's batches to an *in-flight* list (still visible),
//! writes the file without holding any lock, then — in one critical section —
//! drops the in-flight batches and adds the committed file to the catalog. A
//! query snapshot therefore sees every row exactly once, before, during and
//! after a flush. A failed flush puts its batches back and is retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampNanosecondArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parking_lot::RwLock;

use crate::application::ports::{
    FileMeta, FileStore, SnapshotSource, StoreError, Table, TableBatch, TableSnapshot, WriteBuffer,
    WriteError,
};
use crate::domain::TenantId;
use crate::domain::telemetry::Timestamp;

/// When partitions are flushed, and how much may be buffered.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Flush a partition once it holds this many rows.
    pub flush_rows: usize,
    /// … or this many bytes of Arrow memory.
    pub flush_bytes: usize,
    /// … or once its oldest row has waited this long.
    pub max_age: Duration,
    /// Refuse writes (retryable) while more than this is buffered in total.
    pub max_buffered_bytes: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            flush_rows: 1_000_000,
            flush_bytes: 64 << 20,
            max_age: Duration::from_secs(10),
            max_buffered_bytes: 512 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionKey {
    tenant: TenantId,
    table: Table,
    hour_start: u64,
}

#[derive(Debug)]
struct Partition {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
    since: Instant,
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    key: PartitionKey,
    batches: Vec<RecordBatch>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<PartitionKey, Partition>,
    in_flight: Vec<InFlight>,
    files: HashMap<(TenantId, Table), Vec<FileMeta>>,
    buffered_bytes: usize,
}

/// The in-memory write buffer with size/age flushing to a [`FileStore`].
pub struct MemoryWriteBuffer {
    config: BufferConfig,
    store: Arc<dyn FileStore>,
    state: RwLock<State>,
    next_flush_id: AtomicU64,
    closed: AtomicBool,
    stats: BufferStats,
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct BufferStats {
    pub files_written: AtomicU64,
    pub rows_flushed: AtomicU64,
    pub flush_failures: AtomicU64,
}

impl MemoryWriteBuffer {
    /// Builds the buffer and loads the catalog of committed files.
    pub async fn open(config: BufferConfig, store: Arc<dyn FileStore>) -> Result<Self, StoreError> {
        let mut files: HashMap<(TenantId, Table), Vec<FileMeta>> = HashMap::new();
        for (tenant, table, meta) in store.list_files().await? {
            files.entry((tenant, table)).or_default().push(meta);
        }
        Ok(Self {
            config,
            store,
            state: RwLock::new(State {
                files,
                ..State::default()
            }),
            next_flush_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            stats: BufferStats::default(),
        })
    }

    pub fn stats(&self) -> &BufferStats {
        &self.stats
    }

    /// Bytes of Arrow memory held (open and in flight).
    pub fn buffered_bytes(&self) -> usize {
        self.state.read().buffered_bytes
    }

    /// Refuses further writes (graceful shutdown); flushing still works.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Flushes every partition that is due (by rows, bytes or age), or all of
    /// them when `force`. Returns how many files were committed.
    pub async fn flush_due(&self, force: bool) -> Result<usize, StoreError> {
        let now = Instant::now();
        let jobs: Vec<InFlight> = {
            let mut st = self.state.write();
            let due: Vec<PartitionKey> = st
                .open
                .iter()
                .filter(|(_, p)| {
                    force
                        || p.rows >= self.config.flush_rows
                        || p.bytes >= self.config.flush_bytes
                        || now.duration_since(p.since) >= self.config.max_age
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut jobs = Vec::with_capacity(due.len());
            for key in due {
                if let Some(p) = st.open.remove(&key) {
                    let job = InFlight {
                        id: self.next_flush_id.fetch_add(1, Ordering::Relaxed),
                        key,
                        batches: p.batches,
                        bytes: p.bytes,
                    };
                    st.in_flight.push(InFlight {
                        id: job.id,
                        key: job.key.clone(),
                        batches: job.batches.clone(),
                        bytes: 0,
                    });
                    jobs.push(job);
                }
            }
            jobs
        };
        let mut committed = 0;
        let mut first_err = None;
        for job in jobs {
            match self.write_job(&job).await {
                Ok(meta) => {
                    let rows = meta.rows;
                    let mut st = self.state.write();
                    st.in_flight.retain(|f| f.id != job.id);
                    st.buffered_bytes = st.buffered_bytes.saturating_sub(job.bytes);
                    st.files
                        .entry((job.key.tenant.clone(), job.key.table))
                        .or_default()
                        .push(meta);
                    committed += 1;
                    self.stats.files_written.fetch_add(1, Ordering::Relaxed);
                    self.stats.rows_flushed.fetch_add(rows, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(tenant = %job.key.tenant, table = %job.key.table, error = %e, "flush failed; will retry");
                    self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                    let mut st = self.state.write();
                    st.in_flight.retain(|f| f.id != job.id);
                    let rows: usize = job.batches.iter().map(|b| b.num_rows()).sum();
                    let p = st.open.entry(job.key).or_insert_with(|| Partition {
                        batches: Vec::new(),
                        rows: 0,
                        bytes: 0,
                        since: now,
                    });
                    let mut batches = job.batches;
                    batches.append(&mut p.batches);
                    p.batches = batches;
                    p.rows += rows;
                    p.bytes += job.bytes;
                    p.since = p.since.min(now);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(committed),
        }
    }

    async fn write_job(&self, job: &InFlight) -> Result<FileMeta, StoreError> {
        let schema = job.batches[0].schema();
        let batch = concat_batches(&schema, &job.batches).map_err(|e| StoreError {
            context: "concatenating buffered batches".into(),
            source: Box::new(e),
        })?;
        self.store
            .write_file(&job.key.tenant, job.key.table, job.key.hour_start, batch)
            .await
    }

    fn insert(
        &self,
        tenant: &TenantId,
        table: Table,
        batch: RecordBatch,
    ) -> Result<(), WriteError> {
        let parts = split_by_hour(&batch).map_err(|e| WriteError::Internal(e.into()))?;
        let now = Instant::now();
        let mut st = self.state.write();
        for (hour_start, part) in parts {
            let bytes = part.get_array_memory_size();
            let rows = part.num_rows();
            let p = st
                .open
                .entry(PartitionKey {
                    tenant: tenant.clone(),
                    table,
                    hour_start,
                })
                .or_insert_with(|| Partition {
                    batches: Vec::new(),
                    rows: 0,
                    bytes: 0,
                    since: now,
                });
            p.batches.push(part);
            p.rows += rows;
            p.bytes += bytes;
            st.buffered_bytes += bytes;
        }
        Ok(())
    }
}

/// Splits rows by the hour of their `timestamp` column.
fn split_by_hour(batch: &RecordBatch) -> Result<Vec<(u64, RecordBatch)>, String> {
    let col = batch
        .column_by_name(Table::TIMESTAMP_COLUMN)
        .ok_or("batch has no timestamp column")?;
    let ts = col
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or("timestamp column is not Timestamp(ns)")?;
    let hour = |i: usize| {
        Timestamp::from_unix_nanos(ts.value(i).max(0) as u64)
            .hour_start()
            .unix_nanos()
    };
    if ts.is_empty() {
        return Ok(Vec::new());
    }
    let first = hour(0);
    if (1..ts.len()).all(|i| hour(i) == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut groups: HashMap<u64, Vec<u32>> = HashMap::new();
    for i in 0..ts.len() {
        groups.entry(hour(i)).or_default().push(i as u32);
    }
    let mut out: Vec<(u64, RecordBatch)> = groups
        .into_iter()
        .map(|(h, idx)| {
            take_record_batch(batch, &UInt32Array::from(idx))
                .map(|b| (h, b))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    out.sort_by_key(|(h, _)| *h);
    Ok(out)
}

#[async_trait]
impl WriteBuffer for MemoryWriteBuffer {
    async fn write(&self, tenant: &TenantId, batches: Vec<TableBatch>) -> Result<(), WriteError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WriteError::ShuttingDown);
        }
        let buffered = self.buffered_bytes();
        if buffered > self.config.max_buffered_bytes {
            return Err(WriteError::Overloaded {
                reason: format!(
                    "{buffered} bytes buffered, over the limit of {}",
                    self.config.max_buffered_bytes
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        for b in batches {
            self.insert(tenant, b.table, b.batch)?;
        }
        Ok(())
    }

    async fn flush_all(&self) -> Result<(), WriteError> {
        self.flush_due(true)
            .await
            .map(|_| ())
            .map_err(|e| WriteError::Internal(Box::new(e)))
    }
}

impl SnapshotSource for MemoryWriteBuffer {
    fn snapshot(&self, tenant: &TenantId, table: Table) -> TableSnapshot {
        let st = self.state.read();
        let files = st
            .files
            .get(&(tenant.clone(), table))
            .cloned()
            .unwrap_or_default();
        let mut batches = Vec::new();
        for (k, p) in &st.open {
            if k.table == table && &k.tenant == tenant {
                batches.extend(p.batches.iter().cloned());
            }
        }
        for f in &st.in_flight {
            if f.key.table == table && &f.key.tenant == tenant {
                batches.extend(f.batches.iter().cloned());
            }
        }
        TableSnapshot { files, batches }
    }
}
