//! The pipeline and partition buffer against in-memory ports: flush policy,
//! admission control, failed flushes and replay, with exact outcomes.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{BufferConfig, PartitionBuffer, WritePath};
use crate::fakes::{MemoryFileStore, MemoryWal};
use crate::ports::{
    FileStore, IngestSink, SnapshotSource, TableBatch, WalError, WriteAheadLog, WriteError,
};
use tf_domain::Table;
use tf_domain::TenantId;

const HOUR: u64 = 3_600_000_000_000;
/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000_000_000;

/// `rows` rows in the hour `hour` after T0, each with a payload of `width` bytes.
fn rows(hour: u64, rows: usize, width: usize) -> TableBatch {
    rows_at(T0 + hour * HOUR, rows, width)
}

/// `rows` rows from `start` (Unix ns) on, 1 ns apart.
fn rows_at(start: u64, rows: usize, width: usize) -> TableBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            Table::TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let ts =
        TimestampNanosecondArray::from_iter_values((0..rows).map(|i| (start + i as u64) as i64))
            .with_timezone("UTC");
    let payload = StringArray::from_iter_values((0..rows).map(|_| "x".repeat(width)));
    let columns: Vec<ArrayRef> = vec![Arc::new(ts), Arc::new(payload)];
    TableBatch {
        table: Table::LOGS,
        batch: RecordBatch::try_new(schema, columns).expect("valid batch"),
    }
}

fn config(max_buffered_bytes: usize) -> BufferConfig {
    BufferConfig {
        flush_rows: usize::MAX,
        flush_bytes: usize::MAX,
        max_age: std::time::Duration::from_secs(3600),
        max_buffered_bytes,
        retention: Arc::default(),
        manifest_refresh: None,
    }
}

struct Setup {
    store: Arc<MemoryFileStore>,
    wal: Arc<MemoryWal>,
    pipeline: Arc<WritePath>,
    tenant: TenantId,
}

fn setup(max_buffered_bytes: usize) -> Setup {
    setup_with(config(max_buffered_bytes))
}

fn setup_with(config: BufferConfig) -> Setup {
    let store = Arc::new(MemoryFileStore::new());
    let buffer = Arc::new(PartitionBuffer::new(
        config,
        Arc::clone(&store) as Arc<dyn FileStore>,
        Vec::new(),
    ));
    let pipeline = Arc::new(WritePath::new(buffer));
    let wal = Arc::new(MemoryWal::new(1));
    pipeline.set_wal(Arc::clone(&wal) as Arc<dyn WriteAheadLog>);
    Setup {
        store,
        wal,
        pipeline,
        tenant: TenantId::parse("acme").expect("valid id"),
    }
}

impl Setup {
    /// Writes `batch` as one acknowledged request.
    async fn write(&self, batch: TableBatch) -> Result<(), WriteError> {
        self.pipeline
            .write(&self.tenant, vec![batch], None, None)
            .await
            .map(|_| ())
    }
}

fn visible_rows(p: &WritePath, tenant: &TenantId) -> (u64, usize) {
    let snap = p.snapshot(tenant, Table::LOGS);
    let committed = snap.files.iter().map(|f| f.rows).sum();
    let buffered = snap.batches.iter().map(RecordBatch::num_rows).sum();
    (committed, buffered)
}

#[tokio::test]
async fn acked_rows_are_visible_at_once_and_committed_exactly_once() {
    let s = setup(64 << 20);
    s.write(rows(0, 10, 8)).await.unwrap();
    s.write(rows(1, 5, 8)).await.unwrap();
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (0, 15));
    assert_eq!(s.wal.records().len(), 2);

    assert_eq!(s.pipeline.flush_due(true).await.unwrap(), 2);
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (15, 0));
    assert_eq!(s.store.committed_rows(&s.tenant, Table::LOGS), 15);
    assert_eq!(s.pipeline.buffer().buffered_bytes(), 0);
    // Everything is committed: the log may drop both records.
    assert!(s.wal.records().is_empty());
    assert_eq!(s.wal.released_before(), 3);
}

#[tokio::test]
async fn memory_pressure_flushes_the_largest_partitions_until_under_half() {
    // Budget 1 MiB; nothing is due by rows, bytes or age.
    let s = setup(1 << 20);
    for (hour, width) in [(0, 400), (1, 200), (2, 100)] {
        s.write(rows(hour, 1000, width)).await.unwrap();
    }
    let before = s.pipeline.buffer().buffered_bytes();
    assert!(before > 1 << 19, "{before} bytes: over half the budget");
    assert_eq!(s.pipeline.flush_due(false).await.unwrap(), 1);
    let flushed = s.store.committed(&s.tenant, Table::LOGS);
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].hour_start, T0, "the largest partition");
    let after = s.pipeline.buffer().buffered_bytes();
    assert!(after <= 1 << 19, "{after} bytes left");
    // Under half the budget nothing more is due.
    assert_eq!(s.pipeline.flush_due(false).await.unwrap(), 0);
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (1000, 2000));
}

#[tokio::test]
async fn writes_over_the_budget_are_refused_until_a_flush() {
    let s = setup(1 << 20);
    // A write is admitted while the buffers are within the budget, even if
    // it takes them over.
    s.write(rows(0, 3000, 400)).await.unwrap();
    let err = s
        .pipeline
        .write(&s.tenant, vec![rows(0, 1, 8)], None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WriteError::Overloaded { retry_after, .. } if retry_after.as_secs() == 1),
        "{err}"
    );
    assert_eq!(s.wal.records().len(), 1, "a refused write is not logged");
    assert_eq!(s.pipeline.flush_due(false).await.unwrap(), 1);
    s.write(rows(0, 1, 8)).await.unwrap();
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (3000, 1));
}

/// Ingest reports pressure (for merges to yield to) once its buffers hold
/// over half the budget, and when it refuses a write as overloaded.
#[tokio::test]
async fn ingest_reports_pressure_when_buffers_fill_or_writes_are_refused() {
    let s = setup(64 << 20);
    s.write(rows(0, 10, 8)).await.expect("accepted");
    assert!(!s.pipeline.pressure().is_high());
    // Over half the budget: a sign, and over all of it a refusal.
    let s = setup(1);
    s.write(rows(0, 10, 8))
        .await
        .expect("the buffers were empty");
    assert!(!s.pipeline.pressure().is_high());
    assert!(s.write(rows(0, 10, 8)).await.is_err());
    assert!(s.pipeline.pressure().is_high());
    // A refusal by the log.
    let s = setup(64 << 20);
    s.wal.refuse(Some(WalError::QueueFull));
    assert!(s.write(rows(0, 1, 8)).await.is_err());
    assert!(s.pipeline.pressure().is_high());
}

#[tokio::test]
async fn a_full_log_refuses_writes_retryably() {
    let s = setup(64 << 20);
    s.wal.refuse(Some(WalError::Full { bytes: 10, max: 5 }));
    let err = s
        .pipeline
        .write(&s.tenant, vec![rows(0, 1, 8)], None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Overloaded { .. }), "{err}");
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (0, 0));
    s.wal.refuse(None);
    s.write(rows(0, 1, 8)).await.unwrap();
}

#[tokio::test]
async fn a_failed_flush_keeps_rows_visible_and_logged_until_storage_heals() {
    let s = setup(64 << 20);
    s.write(rows(0, 10, 8)).await.unwrap();
    s.store.set_down(true);
    assert!(s.pipeline.flush_due(true).await.is_err());
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (0, 10));
    assert_eq!(s.wal.records().len(), 1, "not released");
    // Rows written meanwhile queue behind the failed ones.
    s.write(rows(0, 5, 8)).await.unwrap();
    // Backing off: not due without force.
    assert_eq!(s.pipeline.flush_due(false).await.unwrap(), 0);
    s.store.set_down(false);
    assert_eq!(s.pipeline.flush_due(true).await.unwrap(), 1);
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (15, 0));
    let files = s.store.committed(&s.tenant, Table::LOGS);
    assert_eq!((files.len(), files[0].rows, files[0].max_seq), (1, 15, 2));
    assert!(s.wal.records().is_empty());
}

#[tokio::test]
async fn replay_adds_only_what_no_committed_file_covers() {
    let s = setup(64 << 20);
    s.write(rows(0, 10, 8)).await.unwrap();
    s.write(rows(0, 20, 8)).await.unwrap();
    // Commit without releasing the log (a crash right after the commit).
    s.pipeline.buffer().flush_due(true).await.unwrap();
    s.write(rows(0, 5, 8)).await.unwrap();
    s.write(rows(1, 7, 8)).await.unwrap();
    let log = s.wal.records();
    assert_eq!(log.len(), 4);

    // Restart: the catalog from the store, then the whole log replayed.
    let catalog = s.store.load_catalog().await.unwrap();
    let buffer = PartitionBuffer::new(
        config(64 << 20),
        Arc::clone(&s.store) as Arc<dyn FileStore>,
        catalog,
    );
    for r in &log {
        for b in &r.batches {
            buffer.insert(&r.tenant, b.table, &b.batch, r.seq, true);
        }
        buffer.note_seq(r.seq);
    }
    let snap = buffer.snapshot(&s.tenant, Table::LOGS);
    let buffered: usize = snap.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(snap.files.iter().map(|f| f.rows).sum::<u64>(), 30);
    assert_eq!(buffered, 12, "records 3 and 4 only");
    // Records 1 and 2 are covered: only 3 and up must be kept.
    assert_eq!(buffer.watermark(), 3);
}

/// A manifest refresh that reads the store between a flush's commit and its
/// local completion must not show the flushed rows twice (as the new file
/// and as the flushing job's batches): a query sees every row exactly once.
#[tokio::test]
async fn a_refresh_racing_a_flush_commit_shows_every_row_once() {
    let mut c = config(64 << 20);
    c.manifest_refresh = Some(std::time::Duration::ZERO);
    let s = setup_with(c);
    s.write(rows(0, 10, 8)).await.expect("accepted");
    let hold = s.store.hold_commits();
    let buffer = Arc::clone(s.pipeline.buffer());
    let flush = tokio::spawn(async move { buffer.flush_due(true).await });
    // The file is in the store's manifest; the flush has not returned.
    hold.recorded.acquire().await.expect("open").forget();
    assert_eq!(s.store.committed_rows(&s.tenant, Table::LOGS), 10);

    let buffer = Arc::clone(s.pipeline.buffer());
    let tenant = s.tenant.clone();
    let refresh = tokio::spawn(async move { buffer.refresh_table(&tenant, Table::LOGS).await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
        let (committed, buffered) = visible_rows(&s.pipeline, &s.tenant);
        assert_eq!(committed + buffered as u64, 10, "({committed}, {buffered})");
    }
    hold.release.add_permits(1);
    assert_eq!(flush.await.expect("joined").expect("flushed"), 1);
    refresh.await.expect("joined").expect("refreshed");
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (10, 0));
}

/// Compaction over the in-memory store: the small files of a closed hour
/// become one, queries see every row exactly once before and after, replay
/// still knows what is committed, and the inputs are deleted only after the
/// grace period.
#[tokio::test]
async fn compaction_swaps_files_without_changing_what_queries_or_replay_see() {
    use crate::compaction::{CompactionPolicy, Compactor};
    let s = setup(usize::MAX);
    for _ in 0..5 {
        s.write(rows(0, 10, 8)).await.expect("accepted");
        s.pipeline.flush_all().await.expect("flushed");
    }
    s.write(rows(1, 4, 8)).await.expect("accepted");
    s.pipeline.flush_all().await.expect("flushed");
    let buffer = s.pipeline.buffer();
    assert_eq!(s.store.committed(&s.tenant, Table::LOGS).len(), 6);
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (54, 0));
    let committed_before = buffer.committed_seq(&s.tenant, Table::LOGS, T0);
    assert_eq!(committed_before, 5);

    let compactor = Compactor::new(
        Arc::clone(&s.store) as Arc<dyn FileStore>,
        Arc::clone(buffer),
        CompactionPolicy {
            target_file_bytes: 1 << 30,
            min_files: 8,
            max_input_bytes: 1 << 30,
            max_inputs: 32,
            settle: std::time::Duration::ZERO,
        },
    );
    // Hour 0 is closed at T0 + 2h; hour 1 holds one file: nothing to merge.
    let summary = compactor.run_once(T0 + 2 * HOUR).await.expect("compacted");
    assert_eq!(
        (
            summary.partitions,
            summary.files_in,
            summary.files_out,
            summary.rows
        ),
        (1, 5, 1, 50)
    );
    let files = s.store.committed(&s.tenant, Table::LOGS);
    assert_eq!(files.len(), 2);
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (54, 0));
    let snap = s.pipeline.snapshot(&s.tenant, Table::LOGS);
    assert_eq!(
        snap.files.len(),
        2,
        "the buffer's catalog swapped the files"
    );
    assert_eq!(buffer.committed_seq(&s.tenant, Table::LOGS, T0), 5);

    // A second pass finds nothing; the replaced files wait for the grace period.
    let again = compactor.run_once(T0 + 2 * HOUR).await.expect("pass");
    assert_eq!(again.partitions, 0);
    compactor
        .collect_garbage(std::time::Duration::from_secs(3600))
        .await
        .expect("gc");
    let stats = compactor.stats();
    use std::sync::atomic::Ordering;
    assert_eq!(stats.pending_deletion.load(Ordering::Relaxed), 5);
    compactor
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .expect("gc");
    assert_eq!(stats.pending_deletion.load(Ordering::Relaxed), 0);
    assert_eq!(stats.deleted.load(Ordering::Relaxed), 5);

    // Replay after a restart: the catalog's watermark (not the files' own
    // sequence numbers, compacted away) tells what to skip.
    let catalog = s.store.load_catalog().await.expect("catalog");
    let fresh = PartitionBuffer::new(
        config(usize::MAX),
        Arc::clone(&s.store) as Arc<dyn FileStore>,
        catalog,
    );
    assert_eq!(fresh.committed_seq(&s.tenant, Table::LOGS, T0), 5);
    let replayed = rows(0, 10, 8);
    fresh.insert(&s.tenant, Table::LOGS, &replayed.batch, 3, true);
    assert!(fresh.is_empty(), "a committed record is not inserted again");
}

/// Logs kept 24 hours, everything else forever.
fn logs_for_a_day() -> Arc<tf_domain::RetentionRules> {
    Arc::new(tf_domain::RetentionRules {
        tables: [(
            Table::LOGS,
            tf_domain::RetentionPeriod::parse("24h").expect("period"),
        )]
        .into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_retention_pass_expires_whole_partitions_and_buffered_rows() {
    use crate::retention::Retention;
    use tf_domain::telemetry::Timestamp;
    let s = setup_with(BufferConfig {
        retention: logs_for_a_day(),
        ..config(64 << 20)
    });
    for hour in 0..3 {
        s.write(rows(hour, 10, 8)).await.unwrap();
    }
    s.pipeline.flush_due(true).await.unwrap();
    // Late rows for hour 0, still buffered.
    s.write(rows(0, 4, 8)).await.unwrap();
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (30, 4));
    let retention = Retention::new(
        Arc::clone(&s.store) as Arc<dyn FileStore>,
        Arc::clone(s.pipeline.buffer()),
    );
    // 24 h after 02:30: the cut-off falls inside hour 2, which stays whole;
    // hours 0 and 1 are past it.
    let now = Timestamp::from_unix_nanos(T0 + 26 * HOUR + HOUR / 2);
    let summary = retention.run_once(now).await.expect("pass");
    assert_eq!(
        (
            summary.partitions,
            summary.files,
            summary.rows,
            summary.buffered_rows,
            summary.conflicts
        ),
        (2, 2, 20, 4, 0)
    );
    assert_eq!(visible_rows(&s.pipeline, &s.tenant), (10, 0));
    let left = s.store.committed(&s.tenant, Table::LOGS);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].hour_start, T0 + 2 * HOUR);
    // The dropped rows no longer hold the WAL.
    s.pipeline.flush_due(false).await.unwrap();
    assert!(s.wal.records().is_empty());
    // Nothing more to do; other tables are kept forever.
    let again = retention.run_once(now).await.expect("pass");
    assert_eq!((again.partitions, again.buffered_rows), (0, 0));
    use std::sync::atomic::Ordering;
    assert_eq!(retention.stats().partitions.load(Ordering::Relaxed), 2);
    assert!(
        retention
            .stats()
            .last_pass_unix_secs
            .load(Ordering::Relaxed)
            > 0
    );
}

#[tokio::test]
async fn replay_drops_rows_of_expired_partitions() {
    let buffer = PartitionBuffer::new(
        BufferConfig {
            retention: logs_for_a_day(),
            ..config(usize::MAX)
        },
        Arc::new(MemoryFileStore::new()) as Arc<dyn FileStore>,
        Vec::new(),
    );
    let tenant = TenantId::parse("acme").expect("valid id");
    let now = crate::wall_clock().unix_nanos();
    // Replayed: a record of long ago, and one of now.
    buffer.insert(&tenant, Table::LOGS, &rows(0, 5, 8).batch, 1, true);
    buffer.insert(&tenant, Table::LOGS, &rows_at(now, 3, 8).batch, 2, true);
    let snap = buffer.snapshot(&tenant, Table::LOGS);
    assert_eq!(
        snap.batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        3
    );
    use std::sync::atomic::Ordering;
    assert_eq!(buffer.stats().expired_rows.load(Ordering::Relaxed), 5);
    // Live writes are not filtered here: the ingest handler rejects them
    // before they reach the WAL.
    buffer.insert(&tenant, Table::LOGS, &rows(0, 5, 8).batch, 3, false);
    assert_eq!(buffer.snapshot(&tenant, Table::LOGS).batches.len(), 2);
}

#[tokio::test]
async fn the_ingest_handler_rejects_items_of_expired_partitions() {
    use crate::commands::{IngestCommand, IngestHandler, IngestStats};
    use crate::event_bus::EventBus;
    use tf_domain::telemetry::LogBatch;
    use tf_domain::{TenantContext, WorkspaceId};
    let s = setup(64 << 20);
    let handler = IngestHandler::new(
        s.pipeline as Arc<dyn IngestSink>,
        Arc::new(EventBus::new()) as _,
        Arc::new(IngestStats::default()),
    )
    .with_retention(logs_for_a_day());
    let now = crate::wall_clock().unix_nanos();
    let old = rows(0, 4, 8);
    let fresh = rows_at(now, 3, 8);
    let ctx = TenantContext::new(s.tenant.clone(), WorkspaceId::default_id());
    let mut tally = LogBatch::new(ctx);
    for t in [T0; 4].into_iter().chain([now; 3]) {
        tally.admit(&[], &[], 9, t).expect("valid record");
    }
    let batch = arrow::compute::concat_batches(&old.batch.schema(), [&old.batch, &fresh.batch])
        .expect("same schema");
    let outcome = handler
        .handle(IngestCommand {
            source: None,
            otlp: None,
            summary: tally.finish(),
            batches: vec![TableBatch {
                table: Table::LOGS,
                batch,
            }],
        })
        .await
        .expect("written");
    assert_eq!((outcome.accepted, outcome.rejected), (3, 4));
    assert!(
        outcome
            .message
            .contains("4 with a timestamp in an hour already past its table's retention period"),
        "{}",
        outcome.message
    );
    assert_eq!(s.wal.records().len(), 1);
}
