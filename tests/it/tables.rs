//! Room for new tables and columns.
//!
//! A table's schema gains a nullable column: a Parquet file and a WAL record
//! written before, and rows written after, all query together — the old
//! rows with the column null — and compact into one file.
//! (`otel_metrics_gauge.value_int`, nullable, plays the added column: the
//! old rows are today's rows without it.)
//!
//! A table declared here, beside the OTLP tables, is replayed from the WAL,
//! flushed, queried, compacted, expired and loaded again like them.

use std::sync::Arc;
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
use telemetryflow::application::ports::IngestSink as _;
use telemetryflow::infrastructure::storage::schema as tf_schema;

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

/// Leaves `rows` of the default tenant in the WAL of `config`'s data
/// directory, as record `seq`, as a run that stopped before flushing would.
fn left_in_the_wal(config: &telemetryflow::Config, seq: u64, rows: TableBatch) {
    let (wal, _) = Wal::open(config.wal_config(), seq, |_| {}).expect("WAL opens");
    let (tx, rx) = std::sync::mpsc::channel();
    wal.append(
        &TenantId::default_id(),
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
    left_in_the_wal(
        &config,
        next_seq,
        TableBatch {
            table: Table::METRICS_GAUGE,
            batch: gauge_rows(10, 10, true),
        },
    );
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

/// `test_rollups`: (timestamp, service_name, value), sorted by service.
fn declared() -> Table {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("timestamp", tf_schema::ts_type(), false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
    ]));
    tf_schema::declare_table("test_rollups", schema, &["service_name", "timestamp"])
        .expect("declared")
}

/// `n` rows of `test_rollups` in the hour starting `hour_ns`, each `value`.
fn rollup_rows(hour_ns: i64, n: usize, value: i64) -> TableBatch {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampNanosecondArray};
    let table = declared();
    let ts: Vec<i64> = (0..n as i64).map(|i| hour_ns + i * SEC as i64).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("svc{}", i % 2)),
        )),
        Arc::new(Int64Array::from(vec![value; n])),
    ];
    TableBatch {
        table,
        batch: RecordBatch::try_new(tf_schema::table_schema(table), columns).expect("rows"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_table_is_replayed_flushed_compacted_expired_and_loaded_like_the_others() {
    let table = declared();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.retention = toml::from_str(r#"tables = { test_rollups = "2d" }"#).unwrap();
    let tenant = TenantId::default_id();
    let hour = 3_600 * SEC as i64;
    let now = telemetryflow::application::wall_clock().unix_nanos() as i64;
    // Two hours back: closed and settled (compaction waits ten minutes
    // after an hour ends) at any minute the test runs.
    let recent = (now / hour - 2) * hour;
    let old = (now / hour - 72) * hour;
    // A WAL record of the table, left by an earlier run.
    left_in_the_wal(&config, 1, rollup_rows(recent, 5, 3));
    let mut s = TestServer::from_config(config.clone(), dir, None).await;
    let pipeline = Arc::clone(&s.server.as_ref().unwrap().pipeline);
    let totals = "SELECT count(*) AS n, sum(value) AS total FROM test_rollups";
    assert_batches_sorted_eq!(
        [
            "+---+-------+",
            "| n | total |",
            "+---+-------+",
            "| 5 | 15    |",
            "+---+-------+"
        ],
        &s.sql(totals).await
    );
    // Two files in an expired hour, two in a recent one.
    s.flush().await;
    for (at, n, value) in [(old, 4, 1), (old, 4, 1), (recent, 6, 2)] {
        pipeline
            .write(&tenant, vec![rollup_rows(at, n, value)], None, None)
            .await
            .expect("written");
        s.flush().await;
    }
    let files = || pipeline.buffer().snapshot(&tenant, table).files.len();
    assert_eq!(files(), 4);
    assert_batches_sorted_eq!(
        [
            "+----+-------+",
            "| n  | total |",
            "+----+-------+",
            "| 19 | 35    |",
            "+----+-------+"
        ],
        &s.sql(totals).await
    );
    let admin = |route: &'static str| {
        let url = format!("{}/api/v2/admin/{route}", s.http);
        async move {
            let r = reqwest::Client::new().post(url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap()
        }
    };
    let compacted = admin("compact").await;
    assert_eq!(
        (
            compacted["files_in"].as_u64(),
            compacted["files_out"].as_u64()
        ),
        (Some(4), Some(2)),
        "{compacted}"
    );
    let expired = admin("retention").await;
    assert_eq!(expired["rows"].as_u64(), Some(8), "{expired}");
    let after = [
        "+----+-------+",
        "| n  | total |",
        "+----+-------+",
        "| 11 | 27    |",
        "+----+-------+",
    ];
    assert_batches_sorted_eq!(after, &s.sql(totals).await);
    assert_eq!(files(), 1);
    // Loaded again from its manifest by a new process.
    let dir = s.dir.path().to_path_buf();
    s.shutdown().await;
    drop(pipeline);
    let mut config = test_config(&dir);
    config.retention = toml::from_str(r#"tables = { test_rollups = "2d" }"#).unwrap();
    let s = TestServer::from_config(config, tempfile::tempdir().unwrap(), None).await;
    assert_batches_sorted_eq!(after, &s.sql(totals).await);
}
