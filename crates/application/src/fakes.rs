//! In-memory implementations of the ports, for fast tests of the pipeline,
//! the partition buffer, compaction and the read use cases.
//!
//! - [`MemoryFileStore`]: the `FileStore` port over a map — files keep their
//!   rows; commits bump a version per table, may replace files (a conflict
//!   when one is gone) and keep per-partition watermarks; merging
//!   concatenates; replaced files are deleted after the grace period; it can
//!   be set to fail every write and commit (an outage), or to hold each
//!   commit, once recorded, until the test lets it return.
//! - [`MemoryMetrics`]: the `MetricReadModel` port over canned answers —
//!   what a test sets is what the metric use cases receive, so the rules
//!   they apply (counter resets, rates, percentiles, the cache and its
//!   invalidation, the raw-point cap) are tested without a query engine; it
//!   counts the questions asked.
//! - [`MemoryDelivery`]: the `DeliveryStore` port over a map (cursors and
//!   source marks, as saved).
//! - [`ScriptedExporter`]: the `Exporter` port — records every request and
//!   answers from a script (then success); it can be set down (retryable
//!   errors) to play an unreachable upstream.
//! - [`MemoryWal`]: the `WriteAheadLog` port over a vector — an append is
//!   durable at once and its callback runs on the caller's thread; records
//!   stay until released, so a test can replay them; it can be set to refuse
//!   appends (a full log).
//! - [`MemoryDocuments`]: the `DocumentStore` port over a map — every version
//!   kept, a write conflicts unless it names the newest; it can be set down
//!   (every read and write fails), and yields before answering so that
//!   concurrent writers interleave.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parking_lot::Mutex;

use super::documents::{Collection, DocumentStore, PutOutcome, Versioned};
use super::ports::{
    CommitOutcome, DeliveryStore, DurableCallback, Encoded, ExportBatch, ExportError, Exported,
    Exporter, FileMeta, FileStore, ForwardCursor, GarbageCollected, Origin, QueryError,
    QueryLimits, SourceStream, StoreError, TableBatch, TableCatalog, WalError, WalRecord, WalStats,
    WriteAheadLog,
};
use super::queries::MetricReadModel;
use super::queries::metric_queries::{
    ExpHistogramPoint, HistogramPoint, MetricCatalogQuery, MetricInfo, MetricKind, RawSeries,
    Series, SummaryPoint, TimeSeriesQuery,
};
use tf_domain::Table;
use tf_domain::TenantId;

/// The injected outage of [`MemoryFileStore`].
#[derive(Debug, thiserror::Error)]
#[error("injected storage outage")]
pub struct Outage;

#[derive(Debug, Default)]
struct Files {
    /// Paths written, committed or not, with their rows.
    written: BTreeMap<String, RecordBatch>,
    /// Committed, per table: (version, files).
    catalog: BTreeMap<(TenantId, Table), (u64, Vec<FileMeta>)>,
    /// Per partition: the highest sequence number committed.
    watermarks: BTreeMap<(TenantId, Table, u64), u64>,
    /// Files removed from a table, with when, until collected.
    replaced: Vec<(String, std::time::Instant)>,
}

impl Files {
    fn table_catalog(&self, tenant: &TenantId, table: Table) -> Option<TableCatalog> {
        let (version, files) = self.catalog.get(&(tenant.clone(), table))?;
        Some(TableCatalog {
            tenant: tenant.clone(),
            table,
            version: *version,
            files: files.clone(),
            committed_seqs: self
                .watermarks
                .iter()
                .filter(|((t, tb, _), _)| t == tenant && *tb == table)
                .map(|((_, _, hour), seq)| (*hour, *seq))
                .collect(),
        })
    }
}

/// The `FileStore` port in memory.
#[derive(Debug, Default)]
pub struct MemoryFileStore {
    files: Mutex<Files>,
    down: AtomicBool,
    next_file: AtomicU64,
    hold: Mutex<Option<Arc<CommitHold>>>,
}

/// Holds commits between "recorded in the store" and "returned to the
/// committer": each held commit adds a permit to `recorded`, then waits for
/// one on `release`.
#[derive(Debug)]
pub struct CommitHold {
    pub recorded: tokio::sync::Semaphore,
    pub release: tokio::sync::Semaphore,
}

impl MemoryFileStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// While `down`, every write and commit fails.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// From now on every commit, once recorded, waits for the returned
    /// hold's `release` before it returns.
    pub fn hold_commits(&self) -> Arc<CommitHold> {
        let hold = Arc::new(CommitHold {
            recorded: tokio::sync::Semaphore::new(0),
            release: tokio::sync::Semaphore::new(0),
        });
        *self.hold.lock() = Some(Arc::clone(&hold));
        hold
    }

    fn check(&self, what: &str) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(what.to_owned(), Outage));
        }
        Ok(())
    }

    fn record_commit(
        &self,
        tenant: &TenantId,
        table: Table,
        added: Vec<FileMeta>,
        removed: Vec<String>,
    ) -> CommitOutcome {
        let mut files = self.files.lock();
        let files = &mut *files;
        let entry = files
            .catalog
            .entry((tenant.clone(), table))
            .or_insert((0, Vec::new()));
        if !removed.iter().all(|p| entry.1.iter().any(|f| &f.path == p)) {
            return CommitOutcome::Conflict;
        }
        entry.0 += 1;
        entry.1.retain(|f| !removed.contains(&f.path));
        let now = std::time::Instant::now();
        files.replaced.extend(removed.into_iter().map(|p| (p, now)));
        for f in &added {
            let w = files
                .watermarks
                .entry((tenant.clone(), table, f.hour_start))
                .or_insert(0);
            *w = (*w).max(f.max_seq);
        }
        entry.1.extend(added);
        CommitOutcome::Committed(entry.0)
    }

    /// Rows of the committed files of `(tenant, table)`.
    pub fn committed_rows(&self, tenant: &TenantId, table: Table) -> u64 {
        let files = self.files.lock();
        files
            .catalog
            .get(&(tenant.clone(), table))
            .map_or(0, |(_, f)| f.iter().map(|m| m.rows).sum())
    }

    /// The committed files of `(tenant, table)`, in commit order.
    pub fn committed(&self, tenant: &TenantId, table: Table) -> Vec<FileMeta> {
        let files = self.files.lock();
        files
            .catalog
            .get(&(tenant.clone(), table))
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl FileStore for MemoryFileStore {
    async fn write_file(
        &self,
        tenant: &TenantId,
        table: Table,
        hour_start: u64,
        max_seq: u64,
        batch: RecordBatch,
    ) -> Result<FileMeta, StoreError> {
        self.check("writing a file")?;
        let n = self.next_file.fetch_add(1, Ordering::SeqCst);
        let path = format!("{tenant}/{table}/{hour_start}/{n}.parquet");
        let (min_ts, max_ts) = crate::batches::time_range(&batch);
        let meta = FileMeta {
            path: path.clone(),
            size: batch.get_array_memory_size() as u64,
            rows: batch.num_rows() as u64,
            hour_start,
            max_seq,
            min_ts,
            max_ts,
            node: Some("memory".into()),
            services: None,
        };
        self.files.lock().written.insert(path, batch);
        Ok(meta)
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        table: Table,
        added: Vec<FileMeta>,
        removed: Vec<String>,
    ) -> Result<CommitOutcome, StoreError> {
        self.check("committing")?;
        let outcome = self.record_commit(tenant, table, added, removed);
        let hold = self.hold.lock().clone();
        if let Some(hold) = hold {
            hold.recorded.add_permits(1);
            if let Ok(permit) = hold.release.acquire().await {
                permit.forget();
            }
        }
        Ok(outcome)
    }

    /// Concatenates the inputs' rows into one output (no sorting: the fake
    /// keeps rows, not order).
    async fn merge_files(
        &self,
        tenant: &TenantId,
        table: Table,
        hour_start: u64,
        inputs: &[FileMeta],
        _target_bytes: u64,
    ) -> Result<Vec<FileMeta>, StoreError> {
        self.check("merging files")?;
        let batches: Vec<RecordBatch> = {
            let files = self.files.lock();
            inputs
                .iter()
                .filter_map(|f| files.written.get(&f.path).cloned())
                .collect()
        };
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let batch = arrow::compute::concat_batches(&first.schema(), &batches)
            .map_err(|e| StoreError::new("merging files", e))?;
        let mut out = self.write_file(tenant, table, hour_start, 0, batch).await?;
        out.max_seq = 0;
        Ok(vec![out])
    }

    async fn load_catalog(&self) -> Result<Vec<TableCatalog>, StoreError> {
        let files = self.files.lock();
        Ok(files
            .catalog
            .keys()
            .filter_map(|(tenant, table)| files.table_catalog(tenant, *table))
            .collect())
    }

    async fn refresh(
        &self,
        tenant: &TenantId,
        table: Table,
        since: u64,
    ) -> Result<Option<TableCatalog>, StoreError> {
        self.check("refreshing")?;
        Ok(self
            .files
            .lock()
            .table_catalog(tenant, table)
            .filter(|c| c.version > since))
    }

    async fn list_tables(&self) -> Result<Vec<(TenantId, Table)>, StoreError> {
        Ok(self.files.lock().catalog.keys().cloned().collect())
    }

    async fn collect_garbage(
        &self,
        grace: Duration,
        sweep_orphans: bool,
    ) -> Result<GarbageCollected, StoreError> {
        let mut files = self.files.lock();
        let files = &mut *files;
        let mut out = GarbageCollected::default();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut files.replaced)
            .into_iter()
            .partition(|(_, at)| at.elapsed() >= grace);
        out.pending = waiting.len();
        files.replaced = waiting;
        for (p, _) in due {
            files.written.remove(&p);
            out.replaced += 1;
        }
        let recorded: HashSet<String> = files
            .catalog
            .values()
            .flat_map(|(_, f)| f.iter().map(|m| m.path.clone()))
            .chain(files.replaced.iter().map(|(p, _)| p.clone()))
            .collect();
        if sweep_orphans {
            let before = files.written.len();
            files.written.retain(|p, _| recorded.contains(p));
            out.orphans = before - files.written.len();
        }
        Ok(out)
    }
}

#[derive(Debug, Default)]
struct Log {
    next_seq: u64,
    records: Vec<WalRecord>,
    released: u64,
}

/// The `WriteAheadLog` port in memory.
#[derive(Debug, Default)]
pub struct MemoryWal {
    log: Mutex<Log>,
    refuse: Mutex<Option<WalError>>,
}

impl MemoryWal {
    /// An empty log whose first record gets sequence number `first_seq`.
    pub fn new(first_seq: u64) -> Self {
        Self {
            log: Mutex::new(Log {
                next_seq: first_seq.max(1),
                ..Log::default()
            }),
            refuse: Mutex::new(None),
        }
    }

    /// Refuse every append with `e` (e.g. [`WalError::Full`]) until `None`.
    pub fn refuse(&self, e: Option<WalError>) {
        *self.refuse.lock() = e;
    }

    /// Records not released yet, in order.
    pub fn records(&self) -> Vec<WalRecord> {
        self.log.lock().records.clone()
    }

    /// The highest watermark given to `release_before`.
    pub fn released_before(&self) -> u64 {
        self.log.lock().released
    }
}

impl WriteAheadLog for MemoryWal {
    fn append(
        &self,
        tenant: &TenantId,
        batches: &[TableBatch],
        origin: Option<&Origin>,
        on_durable: DurableCallback,
    ) -> Result<(), WalError> {
        if let Some(e) = self.refuse.lock().clone() {
            return Err(e);
        }
        let seq = {
            let mut log = self.log.lock();
            let seq = log.next_seq;
            log.next_seq += 1;
            log.records.push(WalRecord {
                seq,
                tenant: tenant.clone(),
                batches: batches.to_vec(),
                origin: origin.cloned(),
                otlp: None,
            });
            seq
        };
        on_durable(Ok(seq));
        Ok(())
    }

    fn read(&self, from: u64, through: u64, max_bytes: usize) -> Result<Vec<WalRecord>, WalError> {
        let log = self.log.lock();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for r in log
            .records
            .iter()
            .filter(|r| (from..=through).contains(&r.seq))
        {
            if bytes > max_bytes {
                break;
            }
            bytes += r
                .batches
                .iter()
                .map(|b| b.batch.get_array_memory_size())
                .sum::<usize>();
            out.push(r.clone());
        }
        Ok(out)
    }

    fn release_before(&self, watermark: u64) {
        let mut log = self.log.lock();
        log.records.retain(|r| r.seq >= watermark);
        log.released = log.released.max(watermark);
    }

    fn stats(&self) -> WalStats {
        let log = self.log.lock();
        WalStats {
            records: log.records.len() as u64,
            ..WalStats::default()
        }
    }
}

/// What [`MemoryMetrics`] answers.
#[derive(Debug, Clone)]
pub struct MetricAnswers {
    pub kind: Option<MetricKind>,
    pub catalog: Vec<MetricInfo>,
    pub bucketed: Vec<Series>,
    pub sums: RawSeries<f64>,
    pub histograms: RawSeries<HistogramPoint>,
    pub exp_histograms: RawSeries<ExpHistogramPoint>,
    pub summaries: RawSeries<SummaryPoint>,
}

impl Default for MetricAnswers {
    fn default() -> Self {
        Self {
            kind: None,
            catalog: Vec::new(),
            bucketed: Vec::new(),
            sums: RawSeries {
                series: Vec::new(),
                truncated: false,
            },
            histograms: RawSeries {
                series: Vec::new(),
                truncated: false,
            },
            exp_histograms: RawSeries {
                series: Vec::new(),
                truncated: false,
            },
            summaries: RawSeries {
                series: Vec::new(),
                truncated: false,
            },
        }
    }
}

/// The `MetricReadModel` port over canned answers.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    answers: Mutex<MetricAnswers>,
    asked: AtomicU64,
}

impl MemoryMetrics {
    pub fn new(answers: MetricAnswers) -> Self {
        Self {
            answers: Mutex::new(answers),
            asked: AtomicU64::new(0),
        }
    }

    /// Replaces the answers (e.g. new points arrived).
    pub fn set(&self, answers: MetricAnswers) {
        *self.answers.lock() = answers;
    }

    /// Questions asked so far.
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }

    fn answers(&self) -> MetricAnswers {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.answers.lock().clone()
    }
}

#[async_trait]
impl MetricReadModel for MemoryMetrics {
    async fn catalog(
        &self,
        _: &MetricCatalogQuery,
        _: &QueryLimits,
    ) -> Result<Vec<MetricInfo>, QueryError> {
        Ok(self.answers().catalog)
    }

    async fn metric_kind(
        &self,
        _: &TimeSeriesQuery,
        _: &QueryLimits,
    ) -> Result<Option<MetricKind>, QueryError> {
        Ok(self.answers().kind)
    }

    async fn bucketed(
        &self,
        _: &TimeSeriesQuery,
        _: MetricKind,
        _: &QueryLimits,
    ) -> Result<Vec<Series>, QueryError> {
        Ok(self.answers().bucketed)
    }

    async fn sum_points(
        &self,
        _: &TimeSeriesQuery,
        _: &QueryLimits,
    ) -> Result<RawSeries<f64>, QueryError> {
        Ok(self.answers().sums)
    }

    async fn histogram_points(
        &self,
        _: &TimeSeriesQuery,
        _: &QueryLimits,
    ) -> Result<RawSeries<HistogramPoint>, QueryError> {
        Ok(self.answers().histograms)
    }

    async fn exp_histogram_points(
        &self,
        _: &TimeSeriesQuery,
        _: &QueryLimits,
    ) -> Result<RawSeries<ExpHistogramPoint>, QueryError> {
        Ok(self.answers().exp_histograms)
    }

    async fn summary_points(
        &self,
        _: &TimeSeriesQuery,
        _: &QueryLimits,
    ) -> Result<RawSeries<SummaryPoint>, QueryError> {
        Ok(self.answers().summaries)
    }
}

/// The `DeliveryStore` port in memory.
#[derive(Debug, Default)]
pub struct MemoryDelivery {
    cursors: Mutex<std::collections::HashMap<String, ForwardCursor>>,
    marks: Mutex<Vec<(SourceStream, u64)>>,
    /// Every cursor saved, in order.
    pub saves: Mutex<Vec<(String, ForwardCursor)>>,
}

#[async_trait]
impl DeliveryStore for MemoryDelivery {
    async fn load_cursor(&self, forwarder: &str) -> Result<Option<ForwardCursor>, StoreError> {
        Ok(self.cursors.lock().get(forwarder).copied())
    }

    async fn save_cursor(&self, forwarder: &str, cursor: ForwardCursor) -> Result<(), StoreError> {
        self.cursors.lock().insert(forwarder.to_owned(), cursor);
        self.saves.lock().push((forwarder.to_owned(), cursor));
        Ok(())
    }

    fn load_marks(&self) -> Result<Vec<(SourceStream, u64)>, StoreError> {
        Ok(self.marks.lock().clone())
    }

    fn save_marks(&self, marks: &[(SourceStream, u64)]) -> Result<(), StoreError> {
        *self.marks.lock() = marks.to_vec();
        Ok(())
    }
}

/// The `Exporter` port for tests: see the module docs.
#[derive(Debug, Default)]
pub struct ScriptedExporter {
    script: Mutex<std::collections::VecDeque<Result<Exported, ExportError>>>,
    down: AtomicBool,
    /// Every request answered with success or a permanent error, in order.
    pub received: Mutex<Vec<ExportBatch>>,
    /// Requests tried, answered or not.
    pub attempts: AtomicU64,
}

impl ScriptedExporter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next answers, before the default success.
    pub fn script(&self, answers: impl IntoIterator<Item = Result<Exported, ExportError>>) {
        self.script.lock().extend(answers);
    }

    /// While down, every request fails retryably.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Items received per signal, across requests.
    pub fn items(&self, signal: tf_domain::telemetry::Signal) -> u64 {
        self.received
            .lock()
            .iter()
            .filter(|r| r.signal == signal)
            .map(|r| r.items)
            .sum()
    }
}

#[async_trait]
impl Exporter for ScriptedExporter {
    fn encode(&self, _batch: &ExportBatch) -> Result<Encoded, ExportError> {
        Ok(Encoded::default())
    }

    async fn send(&self, batch: &ExportBatch, _: &Encoded) -> Result<Exported, ExportError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(ExportError::Retryable {
                reason: "upstream down".into(),
                retry_after: None,
            });
        }
        let answer = self
            .script
            .lock()
            .pop_front()
            .unwrap_or(Ok(Exported::default()));
        if !matches!(answer, Err(ExportError::Retryable { .. })) {
            self.received.lock().push(batch.clone());
        }
        answer
    }

    fn endpoint(&self) -> &str {
        "scripted"
    }
}

/// The `DocumentStore` port in memory.
#[derive(Debug, Default)]
pub struct MemoryDocuments {
    /// Per collection, every version written (the first is version 1).
    docs: Mutex<BTreeMap<Collection, Vec<Vec<u8>>>>,
    down: AtomicBool,
}

impl MemoryDocuments {
    /// While `down`, every read and write fails.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    async fn check(&self) -> Result<(), StoreError> {
        // A real store answers later: let other tasks run in between.
        tokio::task::yield_now().await;
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new("documents", Outage));
        }
        Ok(())
    }
}

#[async_trait]
impl DocumentStore for MemoryDocuments {
    async fn load_since(
        &self,
        collection: &Collection,
        known: u64,
    ) -> Result<Option<Versioned<Vec<u8>>>, StoreError> {
        self.check().await?;
        let docs = self.docs.lock();
        let versions = docs.get(collection).map_or(&[][..], Vec::as_slice);
        let newest = versions.len() as u64;
        Ok(versions
            .last()
            .filter(|_| newest > known)
            .map(|body| Versioned {
                version: newest,
                body: body.clone(),
            }))
    }

    async fn put(
        &self,
        collection: &Collection,
        expected: Option<u64>,
        body: Vec<u8>,
    ) -> Result<PutOutcome, StoreError> {
        self.check().await?;
        let mut docs = self.docs.lock();
        let versions = docs.entry(collection.clone()).or_default();
        let newest = (!versions.is_empty()).then_some(versions.len() as u64);
        if expected != newest {
            return Ok(PutOutcome::Conflict);
        }
        versions.push(body);
        Ok(PutOutcome::Written(versions.len() as u64))
    }
}
