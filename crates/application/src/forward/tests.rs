//! Forwarders against in-memory ports: order, grouping, keys, retries,
//! permanent refusals, partial success, both `on_full` policies, records
//! read back from the log, a restart resending its in-flight batch with the
//! same range, and the upstream side storing a forwarded batch once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::{ArrayRef, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{Forwarder, ForwarderConfig};
use crate::fakes::{MemoryDelivery, MemoryFileStore, MemoryWal, ScriptedExporter};
use crate::pipeline::{BufferConfig, PartitionBuffer, SourceMarks, WritePath};
use crate::ports::{
    ExportError, Exported, FileStore, ForwardCursor, IngestSink, Origin, TableBatch, WriteAheadLog,
    WriteError, Written,
};
use crate::records::DurableSubscriber as _;
use tf_domain::Table;
use tf_domain::telemetry::Signal;
use tf_domain::{NodeId, OnFull, SourceBatch, TenantId, WorkspaceId};

const T0: u64 = 1_767_225_600_000_000_000;

fn rows(table: Table, n: usize, workspace: &str) -> TableBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            Table::TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let ts = TimestampNanosecondArray::from_iter_values((0..n).map(|i| (T0 + i as u64) as i64))
        .with_timezone("UTC");
    let ws = StringArray::from_iter_values((0..n).map(|_| workspace));
    let payload = StringArray::from_iter_values((0..n).map(|_| "x".repeat(100)));
    let columns: Vec<ArrayRef> = vec![Arc::new(ts), Arc::new(ws), Arc::new(payload)];
    TableBatch {
        table,
        batch: RecordBatch::try_new(schema, columns).expect("valid batch"),
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid id")
}

fn fast(name: &str) -> ForwarderConfig {
    ForwarderConfig {
        batch_age: Duration::from_millis(1),
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..ForwarderConfig::new(name)
    }
}

struct Sidecar {
    path: Arc<WritePath>,
    wal: Arc<MemoryWal>,
    exporter: Arc<ScriptedExporter>,
    delivery: Arc<MemoryDelivery>,
    forwarder: Arc<Forwarder>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sidecar {
    /// A pure sidecar (nothing persisted) with one forwarder.
    async fn start(config: ForwarderConfig) -> Self {
        Self::start_at(
            config,
            ForwardCursor::default(),
            Arc::new(MemoryWal::new(1)),
        )
        .await
    }

    async fn start_at(config: ForwarderConfig, cursor: ForwardCursor, wal: Arc<MemoryWal>) -> Self {
        let buffer = Arc::new(PartitionBuffer::new(
            BufferConfig::default(),
            Arc::new(MemoryFileStore::new()) as Arc<dyn FileStore>,
            Vec::new(),
        ));
        let exporter = Arc::new(ScriptedExporter::new());
        let delivery = Arc::new(MemoryDelivery::default());
        let forwarder = Arc::new(Forwarder::new(
            config,
            NodeId::parse("edge").expect("valid id"),
            cursor,
            Arc::clone(&exporter) as _,
            Arc::clone(&delivery) as _,
        ));
        let path = Arc::new(
            WritePath::builder(buffer)
                .persist(false)
                .durable(Arc::clone(&forwarder) as _)
                .build(),
        );
        for r in wal.records() {
            path.replay(&r);
        }
        let log = path.set_wal(Arc::clone(&wal) as Arc<dyn WriteAheadLog>);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(Arc::clone(&forwarder).run(log, rx));
        Self {
            path,
            wal,
            exporter,
            delivery,
            forwarder,
            stop,
            task,
        }
    }

    async fn write(&self, tenant: &TenantId, batch: TableBatch) -> Result<Written, WriteError> {
        self.path.write(tenant, vec![batch], None, None).await
    }

    /// Waits (up to 10 s) until every record up to `seq` is delivered.
    async fn delivered(&self, seq: u64) {
        for _ in 0..2000 {
            if self.forwarder.delivered() >= seq {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "not delivered through {seq}: at {}",
            self.forwarder.delivered()
        );
    }

    async fn stop(self) -> Arc<MemoryWal> {
        let _ = self.stop.send(true);
        self.task.await.expect("joined");
        self.wal
    }
}

#[tokio::test]
async fn records_go_upstream_in_order_grouped_by_tenant_workspace_and_signal() {
    let s = Sidecar::start(ForwarderConfig {
        batch_age: Duration::from_secs(3600),
        batch_bytes: usize::MAX,
        ..fast("central")
    })
    .await;
    let (a, b) = (tenant("acme"), tenant("beta"));
    s.write(&a, rows(Table::TRACES, 3, "default"))
        .await
        .unwrap();
    s.write(&b, rows(Table::LOGS, 2, "default")).await.unwrap();
    s.write(&a, rows(Table::TRACES, 4, "default"))
        .await
        .unwrap();
    s.write(&a, rows(Table::TRACES, 5, "shop")).await.unwrap();
    s.write(&a, rows(Table::METRICS_SUM, 6, "default"))
        .await
        .unwrap();
    assert!(
        s.exporter.received.lock().is_empty(),
        "the batch is not due yet"
    );
    // Nothing is released before it is delivered (nothing is persisted).
    assert_eq!(s.wal.records().len(), 5);
    assert_eq!(s.forwarder.queued_records(), 5);
    let wal = s.stop().await;

    // The next start, with batches due at once: the five records replayed
    // from the log go as one batch.
    let s = Sidecar::start_at(fast("central"), ForwardCursor::default(), wal).await;
    s.delivered(5).await;
    let got = s.exporter.received.lock().clone();
    let summary: Vec<_> = got
        .iter()
        .map(|r| {
            (
                r.tenant.to_string(),
                r.workspace.to_string(),
                r.signal,
                r.items,
                r.key.as_ref().map(ToString::to_string).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "acme".into(),
                "default".into(),
                Signal::Traces,
                7,
                "edge/1-5".into()
            ),
            (
                "beta".into(),
                "default".into(),
                Signal::Logs,
                2,
                "edge/1-5".into()
            ),
            (
                "acme".into(),
                "shop".into(),
                Signal::Traces,
                5,
                "edge/1-5".into()
            ),
            (
                "acme".into(),
                "default".into(),
                Signal::Metrics,
                6,
                "edge/1-5".into()
            ),
        ]
    );
    let stats = s.forwarder.stats();
    assert_eq!(stats.sent[0].load(Ordering::Relaxed), 12);
    assert_eq!(stats.sent[1].load(Ordering::Relaxed), 6);
    assert_eq!(stats.sent[2].load(Ordering::Relaxed), 2);
    // Delivered: the cursor is saved and the log released.
    assert_eq!(
        s.delivery.saves.lock().last().map(|c| c.1),
        Some(ForwardCursor {
            delivered: 5,
            in_flight: None
        })
    );
    assert!(s.wal.records().is_empty());
    assert_eq!(s.wal.released_before(), 6);
    s.stop().await;
}

#[tokio::test]
async fn a_forwarder_sends_only_its_signals_and_passes_over_the_rest() {
    let s = Sidecar::start(ForwarderConfig {
        signals: vec![Signal::Logs],
        ..fast("logs-only")
    })
    .await;
    let a = tenant("acme");
    s.write(&a, rows(Table::TRACES, 3, "default"))
        .await
        .unwrap();
    s.write(&a, rows(Table::LOGS, 2, "default")).await.unwrap();
    s.write(&a, rows(Table::TRACES, 3, "default"))
        .await
        .unwrap();
    s.delivered(3).await;
    assert_eq!(s.exporter.items(Signal::Logs), 2);
    assert_eq!(s.exporter.items(Signal::Traces), 0);
    assert!(s.wal.records().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_everything_once_when_it_returns() {
    let s = Sidecar::start(fast("central")).await;
    s.exporter.set_down(true);
    let a = tenant("acme");
    for _ in 0..20 {
        // Ingest is not slowed by the upstream being down.
        s.write(&a, rows(Table::LOGS, 10, "default")).await.unwrap();
    }
    while s.exporter.attempts.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(s.forwarder.delivered(), 0);
    assert_eq!(
        s.wal.records().len(),
        20,
        "undelivered records stay in the log"
    );
    s.exporter.set_down(false);
    s.delivered(20).await;
    assert_eq!(s.exporter.items(Signal::Logs), 200);
    assert!(s.forwarder.stats().retries.load(Ordering::Relaxed) >= 5);
    s.stop().await;
}

#[tokio::test]
async fn permanent_refusals_and_partial_success_are_counted_and_not_retried() {
    let s = Sidecar::start(fast("central")).await;
    s.exporter.script([
        Err(ExportError::Permanent {
            reason: "HTTP 400: bad data".into(),
        }),
        Ok(Exported {
            rejected: 3,
            message: "3 log records too old".into(),
        }),
    ]);
    let a = tenant("acme");
    s.write(&a, rows(Table::LOGS, 10, "default")).await.unwrap();
    s.delivered(1).await;
    s.write(&a, rows(Table::LOGS, 10, "default")).await.unwrap();
    s.delivered(2).await;
    s.write(&a, rows(Table::LOGS, 10, "default")).await.unwrap();
    s.delivered(3).await;
    let stats = s.forwarder.stats();
    assert_eq!(stats.failed[2].load(Ordering::Relaxed), 13);
    assert_eq!(stats.sent[2].load(Ordering::Relaxed), 17);
    assert_eq!(s.exporter.attempts.load(Ordering::SeqCst), 3);
    s.stop().await;
}

#[tokio::test]
async fn a_full_queue_refuses_writes_under_backpressure() {
    let s = Sidecar::start(ForwarderConfig {
        max_queue_bytes: 10_000,
        ..fast("central")
    })
    .await;
    s.exporter.set_down(true);
    let a = tenant("acme");
    let mut accepted = 0;
    let refused = loop {
        match s.write(&a, rows(Table::LOGS, 10, "default")).await {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 1000, "never refused");
    };
    assert!(
        matches!(&refused, WriteError::Overloaded { reason, .. } if reason.contains("max_queue_bytes")),
        "{refused}"
    );
    assert!(s.forwarder.stats().refused_writes.load(Ordering::Relaxed) >= 1);
    s.exporter.set_down(false);
    s.delivered(accepted).await;
    s.write(&a, rows(Table::LOGS, 10, "default"))
        .await
        .expect("accepted again once delivered");
    s.delivered(accepted + 1).await;
    assert_eq!(s.exporter.items(Signal::Logs), 10 * (accepted + 1));
    assert_eq!(s.forwarder.stats().dropped[2].load(Ordering::Relaxed), 0);
    s.stop().await;
}

#[tokio::test]
async fn a_full_queue_gives_up_its_oldest_items_under_drop_oldest() {
    let s = Sidecar::start(ForwarderConfig {
        max_queue_bytes: 20_000,
        on_full: OnFull::DropOldest,
        ..fast("central")
    })
    .await;
    s.exporter.set_down(true);
    let a = tenant("acme");
    for _ in 0..100 {
        s.write(&a, rows(Table::LOGS, 10, "default"))
            .await
            .expect("never refused");
    }
    let (bytes, _) = s.forwarder.backlog();
    assert!(bytes <= 20_000, "{bytes}");
    s.exporter.set_down(false);
    s.delivered(100).await;
    let stats = s.forwarder.stats();
    let (sent, dropped) = (
        stats.sent[2].load(Ordering::Relaxed),
        stats.dropped[2].load(Ordering::Relaxed),
    );
    assert!(dropped > 0 && sent > 0, "sent {sent}, dropped {dropped}");
    assert_eq!(
        sent + dropped,
        1000,
        "every item sent or counted as dropped"
    );
    // The newest records are the ones delivered.
    let last = s
        .exporter
        .received
        .lock()
        .last()
        .and_then(|r| r.key.as_ref().map(SourceBatch::last));
    assert_eq!(last, Some(100));
    s.stop().await;
}

#[tokio::test]
async fn records_over_the_memory_budget_are_read_back_from_the_log() {
    let s = Sidecar::start(ForwarderConfig {
        memory_bytes: 5_000,
        ..fast("central")
    })
    .await;
    s.exporter.set_down(true);
    let a = tenant("acme");
    for i in 0..30 {
        s.write(&a, rows(Table::LOGS, 1 + i % 4, "default"))
            .await
            .unwrap();
    }
    s.exporter.set_down(false);
    s.delivered(30).await;
    let expected: usize = (0..30).map(|i| 1 + i % 4).sum();
    assert_eq!(s.exporter.items(Signal::Logs), expected as u64);
    assert!(s.forwarder.stats().read_back.load(Ordering::Relaxed) > 0);
    s.stop().await;
}

/// A record that kept its request as received is sent as that request;
/// one read back from the log (which keeps rows only) as its rows.
#[tokio::test]
async fn records_with_their_request_as_received_are_sent_as_is() {
    // Two records fit the memory budget: what a record that kept its
    // request holds is that request, not its rows.
    let s = Sidecar::start(ForwarderConfig {
        memory_bytes: 25,
        ..fast("central")
    })
    .await;
    s.exporter.set_down(true);
    let a = tenant("acme");
    let request = |i: u8| bytes::Bytes::from(vec![i; 10]);
    for i in 0..4u8 {
        // The last two do not fit the memory budget: read back as rows.
        let written = s
            .path
            .write(
                &a,
                vec![rows(Table::LOGS, 2, "default")],
                None,
                Some(request(i)),
            )
            .await;
        assert_eq!(written.unwrap(), Written::Stored);
    }
    s.exporter.set_down(false);
    s.delivered(4).await;
    let sent = s.exporter.received.lock().clone();
    let encoded: Vec<_> = sent.iter().flat_map(|r| r.encoded.clone()).collect();
    let rows_sent: usize = sent
        .iter()
        .flat_map(|r| &r.batches)
        .map(|b| b.batch.num_rows())
        .sum();
    assert_eq!(encoded.len(), 2, "{encoded:?}");
    assert_eq!(
        encoded[..],
        (0..encoded.len() as u8).map(request).collect::<Vec<_>>()[..]
    );
    assert_eq!(rows_sent, 2 * (4 - encoded.len()));
    assert_eq!(s.exporter.items(Signal::Logs), 8);
    s.stop().await;
}

#[tokio::test]
async fn after_a_restart_the_batch_in_flight_is_resent_with_the_same_range() {
    // The log a crashed sidecar left: 6 records, cursor at 1, 2..=4 in flight.
    let wal = Arc::new(MemoryWal::new(1));
    let a = tenant("acme");
    for _ in 0..6 {
        wal.append(
            &a,
            &[rows(Table::LOGS, 2, "default")],
            None,
            Box::new(|_| {}),
        )
        .unwrap();
    }
    let cursor = ForwardCursor {
        delivered: 1,
        in_flight: Some((2, 4)),
    };
    let s = Sidecar::start_at(fast("central"), cursor, wal).await;
    s.delivered(6).await;
    let keys: Vec<String> = s
        .exporter
        .received
        .lock()
        .iter()
        .map(|r| r.key.as_ref().map(ToString::to_string).unwrap_or_default())
        .collect();
    assert_eq!(keys.first().map(String::as_str), Some("edge/2-4"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[1], "edge/5-6");
    assert_eq!(s.exporter.items(Signal::Logs), 10);
    s.stop().await;
}

async fn write(path: &WritePath, tenant: &TenantId, origin: Origin) -> Written {
    path.write(
        tenant,
        vec![rows(Table::LOGS, 3, "default")],
        Some(origin),
        None,
    )
    .await
    .expect("accepted")
}

#[tokio::test]
async fn an_upstream_stores_a_forwarded_batch_once_across_restarts() {
    let wal = Arc::new(MemoryWal::new(1));
    let delivery = Arc::new(MemoryDelivery::default());
    let upstream = |wal: &Arc<MemoryWal>| {
        let buffer = Arc::new(PartitionBuffer::new(
            BufferConfig::default(),
            Arc::new(MemoryFileStore::new()) as Arc<dyn FileStore>,
            Vec::new(),
        ));
        let marks = SourceMarks::load(Arc::clone(&delivery) as _).expect("loaded");
        let path = Arc::new(WritePath::builder(buffer).sources(Arc::new(marks)).build());
        for r in wal.records() {
            path.replay(&r);
        }
        path.set_wal(Arc::clone(wal) as Arc<dyn WriteAheadLog>);
        path
    };
    let origin = |first, last| Origin {
        batch: SourceBatch::new(NodeId::parse("edge").unwrap(), first, last).unwrap(),
        workspace: WorkspaceId::default_id(),
        signal: Signal::Logs,
    };
    let a = tenant("acme");
    let path = upstream(&wal);
    assert_eq!(write(&path, &a, origin(1, 4)).await, Written::Stored);
    assert_eq!(write(&path, &a, origin(1, 4)).await, Written::Duplicate);
    // Another signal's stream with the same range is another batch.
    let traces = Origin {
        signal: Signal::Traces,
        ..origin(1, 4)
    };
    assert_eq!(
        path.write(
            &a,
            vec![rows(Table::TRACES, 1, "default")],
            Some(traces),
            None
        )
        .await
        .unwrap(),
        Written::Stored
    );
    assert_eq!(wal.records().len(), 2);

    // Restart: the marks come back from the log's records.
    let path = upstream(&wal);
    assert_eq!(write(&path, &a, origin(1, 4)).await, Written::Duplicate);
    assert_eq!(write(&path, &a, origin(5, 9)).await, Written::Stored);
    // Records released (flushed): the marks were saved first.
    path.flush_all().await.expect("flushed");
    assert!(wal.records().is_empty());
    let path = upstream(&wal);
    assert_eq!(write(&path, &a, origin(5, 9)).await, Written::Duplicate);
    assert_eq!(write(&path, &a, origin(1, 4)).await, Written::Duplicate);
    assert_eq!(wal.records().len(), 0);
}
