//! A table's schema gains a nullable column: a Parquet file and a WAL record
//! written before, and rows written after, all query together — the old
//! rows with the column null — and compact into one file.
//!
//! `otel_metrics_gauge.value_int` (nullable) plays the added column: the
//! old rows are today's rows without it.

use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::assert_batches_sorted_eq;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;

use telemetryflow::application::TableBatch;
use telemetryflow::application::commands::ShardedCounterStore;
use telemetryflow::application::ports::WriteAheadLog;
use telemetryflow::domain::{Table, TenantContext, TenantId};
use telemetryflow::infrastructure::otlp::convert::convert_metrics;
use telemetryflow::infrastructure::wal::Wal;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{TestServer, parquet_files, test_config};

/// Gauge points `g` = first..first+n at one second apart from `T0`, as
/// stored rows; `old` leaves out `value_int`, as rows written before it
/// existed.
fn gauge_rows(first: i64, n: i64, old: bool) -> RecordBatch {
    let points = (first..first + n)
        .map(|i| number_point(T0 + i as u64 * SEC, T0, Value::AsInt(i), vec![]))
        .collect();
    let req = metrics("evolve", vec![gauge("g", points)]);
    let counters = ShardedCounterStore::new(16);
    let converted = convert_metrics(&req, &TenantContext::default(), &counters).expect("converts");
    let rows = converted
        .batches
        .into_iter()
        .find(|b| b.table == Table::METRICS_GAUGE)
        .expect("gauge rows")
        .batch;
    if !old {
        return rows;
    }
    let keep: Vec<usize> = (0..rows.num_columns())
        .filter(|&i| rows.schema().field(i).name() != "value_int")
        .collect();
    rows.project(&keep).expect("projected")
}

async fn count_by_kind(s: &TestServer) -> Vec<RecordBatch> {
    s.sql(
        "SELECT value_int IS NULL AS old, count(*) AS points, sum(value) AS total \
         FROM otel_metrics_gauge GROUP BY value_int IS NULL",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_files_old_wal_records_and_new_rows_query_and_compact_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let tenant = TenantId::default_id();
    // A file written before the column existed.
    let next_seq = {
        let storage = telemetryflow::bootstrap::open_storage(&config, None, false)
            .await
            .expect("storage opens");
        let buffer = storage.pipeline.buffer();
        buffer.insert(
            &tenant,
            Table::METRICS_GAUGE,
            &gauge_rows(0, 10, true),
            1,
            false,
        );
        storage.pipeline.flush_due(true).await.expect("flushed");
        storage.pipeline.buffer().max_committed_seq() + 1
    };
    // A WAL record written before it existed, not yet flushed.
    {
        let (wal, _) = Wal::open(config.wal_config(), next_seq, |_| {}).expect("WAL opens");
        let (tx, rx) = std::sync::mpsc::channel();
        let rows = TableBatch {
            table: Table::METRICS_GAUGE,
            batch: gauge_rows(10, 10, true),
        };
        wal.append(
            &tenant,
            &[rows],
            None,
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        )
        .expect("queued");
        assert!(rx.recv_timeout(Duration::from_secs(10)).expect("durable"));
        wal.close();
    }
    // Rows written now.
    let mut s = TestServer::from_config(config, dir, None).await;
    let body = metrics(
        "evolve",
        vec![gauge(
            "g",
            (20..30)
                .map(|i| number_point(T0 + i * SEC, T0, Value::AsInt(i as i64), vec![]))
                .collect(),
        )],
    );
    let reply = post(
        &format!("{}/v1/metrics", s.http),
        "application/x-protobuf",
        None,
        body.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    let expected = [
        "+-------+--------+-------+",
        "| old   | points | total |",
        "+-------+--------+-------+",
        "| false | 10     | 245.0 |",
        "| true  | 20     | 190.0 |",
        "+-------+--------+-------+",
    ];
    assert_batches_sorted_eq!(expected, &count_by_kind(&s).await);
    // Flushed, the three kinds of rows are three files of one closed hour;
    // compaction merges them into one file under the newest schema.
    s.flush().await;
    let gauge_files = |s: &TestServer| {
        parquet_files(&s.parquet_dir())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("otel_metrics_gauge"))
            .count()
    };
    assert_eq!(gauge_files(&s), 2, "one file before, one flushed now");
    let summary: serde_json::Value = serde_json::from_slice(
        &reqwest::Client::new()
            .post(format!("{}/api/v2/admin/compact", s.http))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["files_in"], 2, "{summary}");
    assert_eq!(summary["files_out"], 1, "{summary}");
    assert_eq!(summary["rows"], 30, "{summary}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_batches_sorted_eq!(expected, &count_by_kind(&s).await);
    let files = s
        .server
        .as_ref()
        .unwrap()
        .pipeline
        .buffer()
        .snapshot(&tenant, Table::METRICS_GAUGE)
        .files;
    assert_eq!(files.len(), 1, "{files:?}");
    s.shutdown().await;
}
