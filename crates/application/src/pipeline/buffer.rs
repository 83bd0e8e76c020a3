//! `PartitionBuffer`: durable (already in the WAL) rows wait here, visible to
//! queries, until a flush writes them as one Parquet file per
//! (tenant, table, hour) partition and commits it to the table's manifest.
//!
//! Rows enter in WAL-sequence order (from the WAL writer thread, or replay).
//! A partition has *open* batches and at most one *flushing* job. A flush
//! moves the open batches into the job (still visible), writes and commits
//! the file without holding any lock, then — in one critical section — drops
//! the job and adds the file to the catalog. A query snapshot therefore sees
//! every row exactly once, before, during and after a flush. A failed flush
//! puts its batches back in front and retries with backoff. One job at a
//! time per partition keeps each file's `max_seq` a watermark: every row of
//! the partition with a lower sequence number is committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use parking_lot::RwLock;

use crate::batches::{held_bytes, split_by_hour};
use crate::ports::{CommitOutcome, FileMeta, FileStore, StoreError, TableCatalog, TableSnapshot};
use tf_domain::Table;
use tf_domain::telemetry::Timestamp;
use tf_domain::{RetentionRules, TenantId};

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
    /// Rows of expired partitions are dropped on WAL replay and by
    /// [`PartitionBuffer::drop_expired`].
    pub retention: Arc<RetentionRules>,
    /// How stale this node's view of a table's manifest may get before a
    /// query reads it again (other nodes commit to the same store); `None`:
    /// never (this node is the only writer).
    pub manifest_refresh: Option<Duration>,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            flush_rows: 1_000_000,
            flush_bytes: 32 << 20,
            max_age: Duration::from_secs(10),
            max_buffered_bytes: 128 << 20,
            retention: Arc::default(),
            manifest_refresh: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionKey {
    tenant: TenantId,
    table: Table,
    hour_start: u64,
}

#[derive(Debug, Default, Clone)]
struct Chunk {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
    min_seq: u64,
    max_seq: u64,
}

impl Chunk {
    /// Adds `batch`, which holds `bytes` of memory (see [`crate::batches::held_bytes`]).
    fn push(&mut self, batch: RecordBatch, seq: u64, bytes: usize) {
        if self.batches.is_empty() {
            self.min_seq = seq;
        }
        self.rows += batch.num_rows();
        self.bytes += bytes;
        self.max_seq = self.max_seq.max(seq);
        self.batches.push(batch);
    }
}

#[derive(Debug)]
struct Partition {
    open: Chunk,
    since: Option<Instant>,
    flushing: Option<Arc<Chunk>>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Local commits remembered for re-applying over a refreshed manifest at
/// most: a refresh normally comes long before this many accumulate.
const MAX_LOCAL_COMMITS: usize = 4096;

/// One of this node's manifest commits, as applied to a table's files.
#[derive(Debug)]
struct LocalCommit {
    version: u64,
    removed: Vec<String>,
    added: Vec<FileMeta>,
}

/// A table's committed files as this node knows them: its own commits as
/// they happen, other nodes' when a refresh reads the manifest.
#[derive(Debug, Default)]
struct TableFiles {
    /// The highest manifest version reflected.
    version: u64,
    files: Vec<FileMeta>,
    /// Version of the last whole manifest state read from the store: this
    /// node's commits up to it are in that state.
    refreshed: u64,
    /// This node's commits applied since, to re-apply on top of a refreshed
    /// state that predates them (commits finish out of version order, and a
    /// refresh may overtake one).
    local: std::collections::VecDeque<LocalCommit>,
}

impl TableFiles {
    /// Applies this node's commit at `version`, unless a refreshed state
    /// already holds it.
    fn commit(&mut self, version: u64, removed: Vec<String>, added: Vec<FileMeta>) {
        if version <= self.refreshed {
            return;
        }
        self.apply(&removed, &added);
        self.version = self.version.max(version);
        if self.local.len() == MAX_LOCAL_COMMITS {
            self.local.pop_front();
        }
        self.local.push_back(LocalCommit {
            version,
            removed,
            added,
        });
    }

    fn apply(&mut self, removed: &[String], added: &[FileMeta]) {
        if !removed.is_empty() {
            let removed: HashSet<&str> = removed.iter().map(String::as_str).collect();
            self.files.retain(|f| !removed.contains(f.path.as_str()));
        }
        self.files.extend(added.iter().cloned());
    }

    /// Takes the manifest's state at `version` (every commit up to it, this
    /// node's and others'), then this node's later commits on top.
    fn refresh(&mut self, version: u64, files: Vec<FileMeta>) -> bool {
        if version <= self.refreshed {
            return false;
        }
        self.files = files;
        self.refreshed = version;
        self.local.retain(|c| c.version > version);
        let mut later = std::mem::take(&mut self.local);
        later.make_contiguous().sort_by_key(|c| c.version);
        for c in &later {
            self.apply(&c.removed, &c.added);
        }
        self.local = later;
        self.version = self.version.max(version);
        true
    }
}

#[derive(Debug, Default)]
struct State {
    partitions: HashMap<PartitionKey, Partition>,
    catalog: HashMap<(TenantId, Table), TableFiles>,
    /// Per partition: the highest WAL sequence number of this node whose
    /// rows are committed (outlives the files: compaction replaces them).
    committed: HashMap<PartitionKey, u64>,
    buffered_bytes: usize,
    max_inserted_seq: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub files: AtomicU64,
    pub rows: AtomicU64,
    pub failures: AtomicU64,
    pub nanos: AtomicU64,
    /// Buffered or replayed rows dropped because their partition expired.
    pub expired_rows: AtomicU64,
}

pub struct PartitionBuffer {
    config: BufferConfig,
    store: Arc<dyn FileStore>,
    state: RwLock<State>,
    stats: FlushStats,
    /// When each table's manifest was last read for a query.
    looked_at: parking_lot::Mutex<HashMap<(TenantId, Table), Instant>>,
    /// Per table: held by a flush from its manifest commit until its rows
    /// leave the buffer, and by a refresh from reading the manifest until
    /// applying it.
    gates: parking_lot::Mutex<HashMap<(TenantId, Table), CommitGate>>,
}

/// See [`PartitionBuffer::gate`].
type CommitGate = Arc<tokio::sync::Mutex<()>>;

/// One partition's flush, taken out of the lock.
struct Job {
    key: PartitionKey,
    chunk: Arc<Chunk>,
}

impl PartitionBuffer {
    /// An empty buffer over the committed files of `catalog`.
    pub fn new(
        config: BufferConfig,
        store: Arc<dyn FileStore>,
        catalog: Vec<TableCatalog>,
    ) -> Self {
        let mut committed = HashMap::new();
        for c in &catalog {
            for &(hour_start, seq) in &c.committed_seqs {
                let key = PartitionKey {
                    tenant: c.tenant.clone(),
                    table: c.table,
                    hour_start,
                };
                committed.insert(key, seq);
            }
        }
        let catalog = catalog
            .into_iter()
            .map(|c| {
                let files = TableFiles {
                    version: c.version,
                    files: c.files,
                    refreshed: c.version,
                    local: Default::default(),
                };
                ((c.tenant, c.table), files)
            })
            .collect();
        Self {
            config,
            store,
            state: RwLock::new(State {
                catalog,
                committed,
                ..State::default()
            }),
            stats: FlushStats::default(),
            looked_at: parking_lot::Mutex::new(HashMap::new()),
            gates: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The table's commit gate: a flush holds it from its manifest commit
    /// until its rows leave the buffer, a refresh from reading the manifest
    /// until applying it.
    fn gate(&self, tenant: &TenantId, table: Table) -> CommitGate {
        Arc::clone(
            self.gates
                .lock()
                .entry((tenant.clone(), table))
                .or_default(),
        )
    }

    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    pub fn stats(&self) -> &FlushStats {
        &self.stats
    }

    /// Bytes of Arrow memory held (open and flushing).
    pub fn buffered_bytes(&self) -> usize {
        self.state.read().buffered_bytes
    }

    /// Manifest versions of every table: `(tenant, table, version, files)`.
    pub fn manifest_versions(&self) -> Vec<(TenantId, Table, u64, usize)> {
        let st = self.state.read();
        let mut v: Vec<_> = st
            .catalog
            .iter()
            .map(|((t, tb), f)| (t.clone(), *tb, f.version, f.files.len()))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// Highest WAL sequence number of the partition's committed rows (0 if none).
    pub fn committed_seq(&self, tenant: &TenantId, table: Table, hour_start: u64) -> u64 {
        let key = PartitionKey {
            tenant: tenant.clone(),
            table,
            hour_start,
        };
        self.state.read().committed.get(&key).copied().unwrap_or(0)
    }

    /// Highest WAL sequence number committed in any partition (0 if none).
    pub fn max_committed_seq(&self) -> u64 {
        self.state
            .read()
            .committed
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The committed files of every table.
    pub fn committed_files(&self) -> Vec<(TenantId, Table, Vec<FileMeta>)> {
        self.state
            .read()
            .catalog
            .iter()
            .map(|((t, tb), f)| (t.clone(), *tb, f.files.clone()))
            .collect()
    }

    /// The tables this node knows committed files of.
    pub fn tables(&self) -> Vec<(TenantId, Table)> {
        self.state.read().catalog.keys().cloned().collect()
    }

    /// The committed files of one table.
    pub fn files(&self, tenant: &TenantId, table: Table) -> Vec<FileMeta> {
        self.state
            .read()
            .catalog
            .get(&(tenant.clone(), table))
            .map(|f| f.files.clone())
            .unwrap_or_default()
    }

    /// After a commit that replaced `removed` with `added` in a table's
    /// manifest (compaction), in one step for queries: a snapshot sees either
    /// the old files or the new ones.
    pub fn replace_files(
        &self,
        tenant: &TenantId,
        table: Table,
        version: u64,
        removed: &[String],
        added: Vec<FileMeta>,
    ) {
        self.state
            .write()
            .catalog
            .entry((tenant.clone(), table))
            .or_default()
            .commit(version, removed.to_vec(), added);
    }

    /// Reads one table's manifest again and takes what other nodes
    /// committed. Returns whether anything changed.
    pub async fn refresh_table(&self, tenant: &TenantId, table: Table) -> Result<bool, StoreError> {
        let gate = self.gate(tenant, table);
        let _committing = gate.lock().await;
        let since = self
            .state
            .read()
            .catalog
            .get(&(tenant.clone(), table))
            .map_or(0, |f| f.refreshed);
        match self.store.refresh(tenant, table, since).await? {
            Some(catalog) => Ok(self.refresh(catalog)),
            None => Ok(false),
        }
    }

    /// Reads every table's manifest again, including tables only other
    /// nodes have written (background passes plan from this). Returns how
    /// many tables changed. Does nothing when refreshing is off.
    pub async fn refresh_all(&self) -> Result<usize, StoreError> {
        if self.config.manifest_refresh.is_none() {
            return Ok(0);
        }
        let mut tables: HashSet<(TenantId, Table)> =
            self.store.list_tables().await?.into_iter().collect();
        tables.extend(self.tables());
        let mut changed = 0;
        for (tenant, table) in tables {
            if self.refresh_table(&tenant, table).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Reads the tenant's table manifests again where the last read is
    /// older than [`BufferConfig::manifest_refresh`] (one small request per
    /// table when nothing changed). Failures are logged: the caller goes on
    /// with what this node knows.
    pub async fn refresh_stale(&self, tenant: &TenantId) {
        let Some(every) = self.config.manifest_refresh else {
            return;
        };
        let now = Instant::now();
        let due: Vec<Table> = {
            let mut looked = self.looked_at.lock();
            Table::all()
                .into_iter()
                .filter(|&table| {
                    let key = (tenant.clone(), table);
                    let stale = looked
                        .get(&key)
                        .is_none_or(|at| now.duration_since(*at) >= every);
                    if stale {
                        // Concurrent queries of the tenant do not all read.
                        looked.insert(key, now);
                    }
                    stale
                })
                .collect()
        };
        for table in due {
            if let Err(e) = self.refresh_table(tenant, table).await {
                tracing::warn!(%tenant, %table, error = %e, "reading the manifest again failed; queries see this node's view");
            }
        }
    }

    /// Takes a table's manifest state read from the store (other nodes'
    /// commits included); this node's commits that the state predates stay
    /// applied. Returns whether anything changed.
    fn refresh(&self, catalog: TableCatalog) -> bool {
        let mut st = self.state.write();
        for &(hour_start, seq) in &catalog.committed_seqs {
            let key = PartitionKey {
                tenant: catalog.tenant.clone(),
                table: catalog.table,
                hour_start,
            };
            let w = st.committed.entry(key).or_insert(0);
            *w = (*w).max(seq);
        }
        st.catalog
            .entry((catalog.tenant, catalog.table))
            .or_default()
            .refresh(catalog.version, catalog.files)
    }

    /// The lowest sequence number whose rows are not all committed yet: WAL
    /// records below it may be deleted.
    pub fn watermark(&self) -> u64 {
        let st = self.state.read();
        st.partitions
            .values()
            .flat_map(|p| {
                let open = (!p.open.batches.is_empty()).then_some(p.open.min_seq);
                let flushing = p.flushing.as_ref().map(|c| c.min_seq);
                open.into_iter().chain(flushing)
            })
            .min()
            .unwrap_or(st.max_inserted_seq + 1)
    }

    /// Adds durable rows with WAL sequence number `seq`, split by hour. With
    /// `skip_committed`, rows of partitions already committed up to `seq`
    /// and rows of expired partitions are dropped (WAL replay after a
    /// crash: expired data never comes back).
    pub fn insert(
        &self,
        tenant: &TenantId,
        table: Table,
        batch: &RecordBatch,
        seq: u64,
        skip_committed: bool,
    ) {
        let parts = match split_by_hour(batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, %table, "batch without a valid timestamp column dropped");
                return;
            }
        };
        let now = Instant::now();
        let keep_from = if skip_committed {
            self.config
                .retention
                .keep_from(tenant, table, crate::wall_clock())
                .map_or(0, |t| t.unix_nanos())
        } else {
            0
        };
        for (hour_start, part) in parts {
            if skip_committed && self.committed_seq(tenant, table, hour_start) >= seq {
                continue;
            }
            if hour_start < keep_from {
                self.stats
                    .expired_rows
                    .fetch_add(part.num_rows() as u64, Ordering::Relaxed);
                continue;
            }
            // Measured before taking the lock queries and flushes share.
            let bytes = held_bytes(&part);
            let mut st = self.state.write();
            st.max_inserted_seq = st.max_inserted_seq.max(seq);
            let p = st
                .partitions
                .entry(PartitionKey {
                    tenant: tenant.clone(),
                    table,
                    hour_start,
                })
                .or_insert_with(|| Partition {
                    open: Chunk::default(),
                    since: None,
                    flushing: None,
                    failures: 0,
                    retry_at: None,
                });
            p.since.get_or_insert(now);
            p.open.push(part, seq, bytes);
            st.buffered_bytes += bytes;
        }
    }

    /// Drops the open (not yet flushing) rows of partitions expired at
    /// `now`; returns how many. A partition being flushed is left alone: its
    /// file is committed and expires at the next retention pass.
    pub fn drop_expired(&self, now: Timestamp) -> u64 {
        let rules = &self.config.retention;
        if !rules.expires_anything() {
            return 0;
        }
        let mut st = self.state.write();
        let mut dropped_rows = 0;
        let mut dropped_bytes = 0;
        st.partitions.retain(|key, p| {
            let expired = rules
                .keep_from(&key.tenant, key.table, now)
                .is_some_and(|k| key.hour_start < k.unix_nanos());
            if !expired {
                return true;
            }
            let open = std::mem::take(&mut p.open);
            dropped_rows += open.rows as u64;
            dropped_bytes += open.bytes;
            p.since = None;
            p.flushing.is_some()
        });
        st.buffered_bytes = st.buffered_bytes.saturating_sub(dropped_bytes);
        self.stats
            .expired_rows
            .fetch_add(dropped_rows, Ordering::Relaxed);
        dropped_rows
    }

    /// Records that everything up to `seq` was inserted (replay skipped it).
    pub fn note_seq(&self, seq: u64) {
        let mut st = self.state.write();
        st.max_inserted_seq = st.max_inserted_seq.max(seq);
    }

    fn take_due(&self, force: bool) -> Vec<Job> {
        let now = Instant::now();
        let mut st = self.state.write();
        // Memory pressure: above half the budget, the largest open
        // partitions are due too, until what stays open is under half.
        // Without this, several partitions each below `flush_bytes` (five
        // metric tables, many tenants) fill the budget and writes are
        // refused while nothing is due.
        let pressured = {
            let half = self.config.max_buffered_bytes / 2;
            let mut excess = st.buffered_bytes.saturating_sub(half);
            let mut open: Vec<(usize, &PartitionKey)> = st
                .partitions
                .iter()
                .filter(|(_, p)| p.flushing.is_none() && !p.open.batches.is_empty())
                .map(|(k, p)| (p.open.bytes, k))
                .collect();
            open.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
            let mut keys = Vec::new();
            for (bytes, key) in open {
                if excess == 0 {
                    break;
                }
                excess = excess.saturating_sub(bytes);
                keys.push(key.clone());
            }
            keys
        };
        let mut jobs = Vec::new();
        for (key, p) in st.partitions.iter_mut() {
            if p.flushing.is_some() || p.open.batches.is_empty() {
                continue;
            }
            let due = p.open.rows >= self.config.flush_rows
                || p.open.bytes >= self.config.flush_bytes
                || p.since
                    .is_some_and(|s| now.duration_since(s) >= self.config.max_age)
                || pressured.contains(key);
            let backing_off = p.retry_at.is_some_and(|t| now < t);
            if force || (due && !backing_off) {
                let chunk = Arc::new(std::mem::take(&mut p.open));
                p.since = None;
                p.flushing = Some(Arc::clone(&chunk));
                jobs.push(Job {
                    key: key.clone(),
                    chunk,
                });
            }
        }
        jobs
    }

    /// Flushes every partition that is due (by rows, bytes or age), or all of
    /// them when `force`. Returns how many files were committed.
    pub async fn flush_due(&self, force: bool) -> Result<usize, StoreError> {
        let jobs = self.take_due(force);
        let mut committed = 0;
        let mut first_err = None;
        // Partitions are independent: flush them concurrently.
        let results = futures::future::join_all(jobs.iter().map(|j| self.flush_one(j))).await;
        for (job, result) in jobs.into_iter().zip(results) {
            match result {
                Ok(()) => committed += 1,
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let mut st = self.state.write();
                    if let Some(p) = st.partitions.get_mut(&job.key) {
                        // Put the rows back in front of newer ones, in order.
                        p.flushing = None;
                        let mut merged =
                            Arc::try_unwrap(job.chunk).unwrap_or_else(|c| (*c).clone());
                        let newer = std::mem::take(&mut p.open);
                        if !newer.batches.is_empty() {
                            merged.batches.extend(newer.batches);
                            merged.rows += newer.rows;
                            merged.bytes += newer.bytes;
                            merged.max_seq = newer.max_seq;
                        }
                        p.open = merged;
                        p.since.get_or_insert_with(Instant::now);
                        p.failures += 1;
                        let backoff =
                            Duration::from_millis(100) * 2u32.saturating_pow(p.failures.min(9));
                        p.retry_at = Some(Instant::now() + backoff.min(Duration::from_secs(30)));
                        tracing::warn!(tenant = %job.key.tenant, table = %job.key.table, failures = p.failures, ?backoff, error = %e, "flush failed; rows stay in the WAL and will be retried");
                    }
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(committed),
        }
    }

    async fn flush_one(&self, job: &Job) -> Result<(), StoreError> {
        let started = Instant::now();
        let schema = job.chunk.batches[0].schema();
        let batch = concat_batches(&schema, &job.chunk.batches)
            .map_err(|e| StoreError::new("concatenating buffered batches", e))?;
        let meta = self
            .store
            .write_file(
                &job.key.tenant,
                job.key.table,
                job.key.hour_start,
                job.chunk.max_seq,
                batch,
            )
            .await?;
        let gate = self.gate(&job.key.tenant, job.key.table);
        let _committing = gate.lock().await;
        let version = match self
            .store
            .commit(
                &job.key.tenant,
                job.key.table,
                vec![meta.clone()],
                Vec::new(),
            )
            .await?
        {
            CommitOutcome::Committed(v) => v,
            // Only a commit that removes files can conflict.
            CommitOutcome::Conflict => {
                return Err(StoreError::new(
                    format!("committing {}", meta.path),
                    std::io::Error::other("unexpected conflict adding a file"),
                ));
            }
        };
        self.stats.files.fetch_add(1, Ordering::Relaxed);
        self.stats.rows.fetch_add(meta.rows, Ordering::Relaxed);
        self.stats
            .nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.flushed(job, version, meta);
        Ok(())
    }

    /// A flush's commit, seen by queries in one step: the file joins the
    /// catalog as the job's rows leave the buffer.
    fn flushed(&self, job: &Job, version: u64, meta: FileMeta) {
        let mut st = self.state.write();
        st.catalog
            .entry((job.key.tenant.clone(), job.key.table))
            .or_default()
            .commit(version, Vec::new(), vec![meta]);
        let w = st.committed.entry(job.key.clone()).or_insert(0);
        *w = (*w).max(job.chunk.max_seq);
        st.buffered_bytes = st.buffered_bytes.saturating_sub(job.chunk.bytes);
        let remove = match st.partitions.get_mut(&job.key) {
            Some(p) => {
                p.flushing = None;
                p.failures = 0;
                p.retry_at = None;
                p.open.batches.is_empty()
            }
            None => false,
        };
        if remove {
            st.partitions.remove(&job.key);
        }
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.state.read().partitions.is_empty()
    }

    pub fn snapshot(&self, tenant: &TenantId, table: Table) -> TableSnapshot {
        let st = self.state.read();
        let files = st
            .catalog
            .get(&(tenant.clone(), table))
            .map(|f| f.files.clone())
            .unwrap_or_default();
        let mut batches = Vec::new();
        for (k, p) in &st.partitions {
            if k.table == table && &k.tenant == tenant {
                if let Some(f) = &p.flushing {
                    batches.extend(f.batches.iter().cloned());
                }
                batches.extend(p.open.batches.iter().cloned());
            }
        }
        TableSnapshot { files, batches }
    }
}

#[cfg(test)]
mod tests;
