//! Ports of the application layer: what the use cases need from storage and
//! the query engine. Adapters in `infrastructure` implement them.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use tf_domain::telemetry::Signal;
use tf_domain::{NodeId, Principal, SourceBatch, Table, TenantId, WorkspaceId};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Rows for one table, converted from one request.
#[derive(Debug, Clone)]
pub struct TableBatch {
    pub table: Table,
    pub batch: RecordBatch,
}

/// Why a write was refused. Nothing refused was accepted.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Too much is buffered or queued: the client should retry later.
    #[error("server overloaded: {reason}; retry after {retry_after:?}")]
    Overloaded {
        reason: String,
        retry_after: Duration,
    },
    /// Start-up recovery (WAL replay) is still running.
    #[error("server is recovering its write-ahead log; retry shortly")]
    NotReady,
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("write failed: {0}")]
    Internal(BoxError),
}

/// Where forwarded rows came from: a batch of another node's log, on one
/// stream (that node, the record's tenant, this workspace and signal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub batch: SourceBatch,
    pub workspace: WorkspaceId,
    pub signal: Signal,
}

impl Origin {
    /// The stream the batch belongs to: its high-water mark is kept per
    /// stream.
    pub fn stream(&self, tenant: &TenantId) -> SourceStream {
        SourceStream {
            relay: self.batch.relay().cloned(),
            node: self.batch.node().clone(),
            tenant: tenant.clone(),
            workspace: self.workspace.clone(),
            signal: self.signal,
        }
    }
}

/// One sending node's rows of one tenant, workspace and signal, as sent by
/// one relay principal (none when requests are not authenticated).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceStream {
    pub relay: Option<Principal>,
    pub node: NodeId,
    pub tenant: TenantId,
    pub workspace: WorkspaceId,
    pub signal: Signal,
}

/// What became of an accepted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Durable in the log.
    Stored,
    /// A forwarded batch accepted before: nothing was written again.
    Duplicate,
}

/// Accepts converted batches on the write path.
#[async_trait]
pub trait IngestSink: Send + Sync {
    /// Returns once the batches are durable (in the fsync'd write-ahead log)
    /// and visible to queries. An error means nothing of the call was
    /// accepted. Rows another node forwarded name their `origin`: a batch
    /// accepted before is acknowledged without being written again. `otlp`
    /// is the request the rows are, as received (see [`WalRecord::otlp`]).
    async fn write(
        &self,
        tenant: &TenantId,
        batches: Vec<TableBatch>,
        origin: Option<Origin>,
        otlp: Option<bytes::Bytes>,
    ) -> Result<Written, WriteError>;

    /// Persists everything buffered; returns when all of it is in committed files.
    async fn flush_all(&self) -> Result<(), WriteError>;
}

/// Why the write-ahead log refused or failed an append.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    #[error(
        "write-ahead log is full ({bytes} bytes on disk, limit {max}): storage is not keeping up"
    )]
    Full { bytes: u64, max: u64 },
    #[error("write-ahead log queue is full")]
    QueueFull,
    #[error("write-ahead log is closed")]
    Closed,
    /// The log could not be written; one cause is shared by every append of
    /// the failed group commit.
    #[error("write-ahead log I/O error: {0}")]
    Io(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// Runs on the log's writer thread, in sequence order, once the record is
/// durable (`Ok(seq)`) or has failed.
pub type DurableCallback = Box<dyn FnOnce(Result<u64, WalError>) + Send>;

/// Counters of the write-ahead log.
#[derive(Debug, Clone, Default)]
pub struct WalStats {
    pub bytes_written: u64,
    pub records: u64,
    pub fsyncs: u64,
    pub fsync_seconds_sum: f64,
    /// (upper bound in seconds, count) — not cumulative.
    pub fsync_buckets: Vec<(f64, u64)>,
    pub fsync_bucket_inf: u64,
    pub bytes_on_disk: u64,
    pub queued: u64,
    pub segments_deleted: u64,
}

/// One record of the write-ahead log: the accepted rows of one request.
#[derive(Debug, Clone)]
pub struct WalRecord {
    pub seq: u64,
    pub tenant: TenantId,
    pub batches: Vec<TableBatch>,
    pub origin: Option<Origin>,
    /// The request as received, in OTLP/protobuf, when every item of it was
    /// accepted and a forwarder wants it; in memory only (a record read back
    /// from the log has none). Forwarders send it instead of encoding the
    /// rows again.
    pub otlp: Option<bytes::Bytes>,
}

/// The write-ahead log port.
pub trait WriteAheadLog: Send + Sync {
    /// Encodes the record on the caller's thread and queues it; `on_durable`
    /// runs once it is fsync'd (group commit). An immediate error means it was
    /// not queued.
    fn append(
        &self,
        tenant: &TenantId,
        batches: &[TableBatch],
        origin: Option<&Origin>,
        on_durable: DurableCallback,
    ) -> Result<(), WalError>;

    /// Reads back the durable records with `from <= seq <= through`, in
    /// order, stopping after the first record that brings the payload read
    /// past `max_bytes`. Records already released are not there.
    fn read(&self, from: u64, through: u64, max_bytes: usize) -> Result<Vec<WalRecord>, WalError>;

    /// Allows deleting every record with `seq < watermark` (they are in
    /// committed Parquet files and delivered by every forwarder).
    fn release_before(&self, watermark: u64);

    fn stats(&self) -> WalStats;
}

/// A committed Parquet file of one tenant's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Path inside the object store (no scheme), e.g.
    /// `acme/otel_traces/date=2026-11-26/hour=13/0193….parquet`.
    pub path: String,
    pub size: u64,
    pub rows: u64,
    /// Start of the hour partition, Unix ns.
    pub hour_start: u64,
    /// For a flushed file: the highest WAL sequence number (of the writing
    /// node's log) whose rows for this partition are in this file — all lower
    /// ones for the partition are in this or earlier files. 0 for a file
    /// that compaction wrote (its rows' sequence numbers stay recorded as the
    /// partition's watermark).
    pub max_seq: u64,
    /// Event-time range of the rows, Unix ns.
    pub min_ts: i64,
    pub max_ts: i64,
    /// The node that wrote the file; `None` for files from before nodes had
    /// ids. Opaque here: only storage compares it.
    pub node: Option<String>,
    /// Every distinct `service_name` of the file's rows, sorted; `None` when
    /// not recorded (files from before it was, or with more names than
    /// [`FileMeta::MAX_SERVICES`]). Lets the service list answer from the
    /// manifest for files wholly inside its window.
    pub services: Option<Arc<[String]>>,
}

impl FileMeta {
    /// The most service names recorded for one file: beyond it the manifest
    /// would grow with the cardinality of a label that is not meant to have
    /// any, and the file is read instead.
    pub const MAX_SERVICES: usize = 64;
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct StoreError {
    pub context: String,
    #[source]
    pub source: BoxError,
}

impl StoreError {
    /// `source` while doing `context` (e.g. "writing a/b.parquet").
    pub fn new(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// The committed files of one tenant's table, at a manifest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCatalog {
    pub tenant: TenantId,
    pub table: Table,
    pub version: u64,
    pub files: Vec<FileMeta>,
    /// Per hour partition (start, Unix ns): the highest sequence number of
    /// this node's write-ahead log whose rows are committed — whether their
    /// files are still listed, were compacted, or expired.
    pub committed_seqs: Vec<(u64, u64)>,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The table's manifest is at this version and holds the commit.
    Committed(u64),
    /// A file to remove had already left the table (another writer replaced
    /// it first): nothing was committed.
    Conflict,
}

/// What one garbage collection deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GarbageCollected {
    /// Files no manifest lists, left by a crash between write and commit.
    pub orphans: usize,
    /// Files replaced by compaction whose grace period had passed.
    pub replaced: usize,
    /// Replaced files still within their grace period.
    pub pending: usize,
}

/// The repository of committed data: immutable Parquet files listed by a
/// versioned manifest per table.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Writes one data file of rows for `(tenant, table)`, all within the hour
    /// starting at `hour_start`. The file is not visible until committed.
    async fn write_file(
        &self,
        tenant: &TenantId,
        table: Table,
        hour_start: u64,
        max_seq: u64,
        batch: RecordBatch,
    ) -> Result<FileMeta, StoreError>;

    /// Atomically adds `added` to the table's manifest and removes the files
    /// at `removed`, in one version. Removed files stay readable until the
    /// garbage collector deletes them after the grace period.
    async fn commit(
        &self,
        tenant: &TenantId,
        table: Table,
        added: Vec<FileMeta>,
        removed: Vec<String>,
    ) -> Result<CommitOutcome, StoreError>;

    /// Merges committed files of one partition (each sorted by the table's
    /// sort key) into new sorted files of about `target_bytes` each, written
    /// but not committed. Streams: memory does not grow with the inputs.
    async fn merge_files(
        &self,
        tenant: &TenantId,
        table: Table,
        hour_start: u64,
        inputs: &[FileMeta],
        target_bytes: u64,
    ) -> Result<Vec<FileMeta>, StoreError>;

    /// The committed files of every table.
    async fn load_catalog(&self) -> Result<Vec<TableCatalog>, StoreError>;

    /// Catches up with the table's manifest (commits of other nodes sharing
    /// the store) and returns its catalog when the manifest is past version
    /// `since`; `None` otherwise. One small request when nothing changed.
    async fn refresh(
        &self,
        tenant: &TenantId,
        table: Table,
        since: u64,
    ) -> Result<Option<TableCatalog>, StoreError>;

    /// Every (tenant, table) that has a manifest in the store.
    async fn list_tables(&self) -> Result<Vec<(TenantId, Table)>, StoreError>;

    /// Deletes replaced files that left their manifest more than `grace`
    /// ago and, with `sweep_orphans`, data files that no manifest records
    /// and that are older than `grace` (left by a crash between write and
    /// commit; finding them lists the whole store).
    async fn collect_garbage(
        &self,
        grace: Duration,
        sweep_orphans: bool,
    ) -> Result<GarbageCollected, StoreError>;
}

/// A consistent view of one tenant's table: committed files plus rows not yet
/// flushed. A row is in exactly one of the two.
#[derive(Debug, Clone, Default)]
pub struct TableSnapshot {
    pub files: Vec<FileMeta>,
    pub batches: Vec<RecordBatch>,
}

/// Source of table snapshots for the read side.
#[async_trait]
pub trait SnapshotSource: Send + Sync {
    fn snapshot(&self, tenant: &TenantId, table: Table) -> TableSnapshot;

    /// Before a query: catches up with commits other nodes made to the
    /// tenant's tables, where the last look is older than the refresh
    /// interval. A failure is logged; the query reads what is known.
    async fn refresh_stale(&self, _tenant: &TenantId) {}
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is wrong (syntax, unknown column, type error, bad
    /// parameter): the caller's fault.
    #[error("{0}")]
    Invalid(String),
    /// The query tries something API callers may not do.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing matched where one thing was asked for (a trace id).
    #[error("{0}")]
    NotFound(String),
    /// The query ran past its time limit and was cancelled.
    #[error("query cancelled after the {0:?} timeout (query.timeout_secs)")]
    Timeout(Duration),
    /// The query needed more memory than one query may use.
    #[error("query exceeded its memory limit (query.memory_limit_mb): {0}")]
    ResourcesExhausted(String),
    /// Our fault; the cause is kept as the error's `source()`.
    #[error("query failed: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl QueryError {
    /// An internal error caused by `e` (an error, or a message).
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(e.into())
    }
}

/// Rows answered by a query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// More rows matched than the row cap allowed; `batches` hold the first.
    pub truncated: bool,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// What one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    /// Rows returned at most; beyond, the result is cut and `truncated`.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 1 << 30,
            max_rows: 100_000,
        }
    }
}

/// One request for an upstream: rows of one tenant, workspace and signal
/// from one batch of this node's log.
#[derive(Debug, Clone)]
pub struct ExportBatch {
    pub tenant: TenantId,
    pub workspace: WorkspaceId,
    pub signal: Signal,
    pub batches: Vec<TableBatch>,
    /// Requests in OTLP/protobuf (records that kept theirs), sent along
    /// with the rows of `batches`: the request is their concatenation.
    pub encoded: Vec<bytes::Bytes>,
    /// Spans, data points or log records, of both.
    pub items: u64,
    /// The log records it holds (the idempotency key); none for a replay
    /// of stored data.
    pub key: Option<SourceBatch>,
}

/// An upstream's acknowledgement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    /// Items the upstream rejected (OTLP partial success), and why.
    pub rejected: u64,
    pub message: String,
}

/// Why an upstream did not take a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// Try again later (unreachable, 429/502/503/504, UNAVAILABLE…), no
    /// sooner than `retry_after` when the upstream said so.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The upstream will never take it (400, INVALID_ARGUMENT…).
    #[error("{reason}")]
    Permanent { reason: String },
}

/// A request in its upstream's wire form: encoded once, on a blocking
/// thread, and sent as often as retries need.
#[derive(Debug, Clone, Default)]
pub struct Encoded(pub bytes::Bytes);

/// Sends OTLP upstream, in two halves: [`Exporter::encode`] is CPU work
/// (rows → OTLP → protobuf, compression), run off the async runtime;
/// [`Exporter::send`] is the round trip.
#[async_trait]
pub trait Exporter: Send + Sync {
    /// The request for `batch` in wire form. An error is permanent: these
    /// rows cannot be sent.
    fn encode(&self, batch: &ExportBatch) -> Result<Encoded, ExportError>;

    /// Sends `batch`, as `encode` encoded it, and waits for the upstream's
    /// answer.
    async fn send(&self, batch: &ExportBatch, encoded: &Encoded) -> Result<Exported, ExportError>;

    /// Where it sends to, for logs.
    fn endpoint(&self) -> &str;
}

/// A forwarder's durable position in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardCursor {
    /// Every record with `seq <= delivered` is delivered (or given up).
    pub delivered: u64,
    /// The batch being sent: resent with the same range after a restart.
    pub in_flight: Option<(u64, u64)>,
}

/// Where forwarders keep their cursors and an upstream its per-stream
/// high-water marks of forwarded batches (both durable before they count).
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn load_cursor(&self, forwarder: &str) -> Result<Option<ForwardCursor>, StoreError>;
    async fn save_cursor(&self, forwarder: &str, cursor: ForwardCursor) -> Result<(), StoreError>;
    fn load_marks(&self) -> Result<Vec<(SourceStream, u64)>, StoreError>;
    fn save_marks(&self, marks: &[(SourceStream, u64)]) -> Result<(), StoreError>;
}
