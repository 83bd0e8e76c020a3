//! Parquet on object storage: layout, flushed + unflushed reads, restart,
//! readability by another engine (pyarrow), and S3 against a real
//! S3-compatible server (moto).

use std::num::NonZero;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use datafusion::assert_batches_sorted_eq;
use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::free_port;
use crate::support::{TestServer, first_value, parquet_files, test_config};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use telemetryflow::infrastructure::storage::StorageLocation;

pub(crate) async fn send_spans(s: &TestServer, first: u8, n: u8, hour_offset: u64) {
    let spans = (first..first + n)
        .map(|i| {
            span(
                i,
                1,
                &format!("op-{i}"),
                T0 + hour_offset * 3600 * SEC + u64::from(i),
            )
        })
        .collect();
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        traces("svc", spans).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn flushed_and_buffered_rows_are_read_exactly_once() {
    let mut s = TestServer::start().await;
    send_spans(&s, 1, 10, 0).await;
    send_spans(&s, 11, 5, 1).await; // the next hour: its own partition
    s.flush().await;
    send_spans(&s, 16, 3, 0).await; // buffered, not yet flushed
    let files = parquet_files(&s.parquet_dir());
    let rel: Vec<String> = files
        .iter()
        .map(|f| {
            let p = f
                .strip_prefix(s.parquet_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            p[..p.rfind('/').unwrap()].to_owned()
        })
        .collect();
    assert_eq!(
        rel,
        [
            "default/otel_traces/date=2026-11-26/hour=10",
            "default/otel_traces/date=2026-11-26/hour=11"
        ]
    );
    let b = s
        .sql("SELECT date_trunc('hour', timestamp) AS hour, count(*) AS spans, count(DISTINCT trace_id) AS traces FROM otel_traces GROUP BY 1")
        .await;
    assert_batches_sorted_eq!(
        [
            "+----------------------+-------+--------+",
            "| hour                 | spans | traces |",
            "+----------------------+-------+--------+",
            "| 2026-11-26T10:00:00Z | 13    | 13     |",
            "| 2026-11-26T11:00:00Z | 5     | 5      |",
            "+----------------------+-------+--------+",
        ],
        &b
    );
    // A time filter prunes files by the manifest's time ranges: only hour 11 is opened.
    let plan = s
        .sql("EXPLAIN SELECT count(*) FROM otel_traces WHERE timestamp >= '2026-11-26T11:00:00Z'")
        .await;
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("hour=11/"), "{plan}");
    assert!(!plan.contains("hour=10/"), "{plan}");
    s.wait_for_count(
        "SELECT count(*) FROM otel_traces WHERE timestamp >= '2026-11-26T11:00:00Z'",
        5,
    )
    .await;
    s.wait_for_count(
        "SELECT count(*) FROM otel_traces WHERE timestamp < '2026-11-26T11:00:00Z'",
        13,
    )
    .await;
    // After a restart everything was persisted and is read back from Parquet.
    s.shutdown().await;
    let config = test_config(s.dir.path());
    let s2 = TestServer::from_config(config, s.dir, None).await;
    s2.wait_for_count("SELECT count(*) FROM otel_traces", 18)
        .await;
    s2.wait_for_count("SELECT count(DISTINCT span_name) FROM otel_traces", 18)
        .await;
    assert_eq!(parquet_files(&s2.parquet_dir()).len(), 3);
}

#[tokio::test]
async fn parquet_files_are_readable_by_pyarrow_with_the_same_row_counts() {
    let mut s = TestServer::start().await;
    send_spans(&s, 1, 7, 0).await;
    let req = logs("svc", (0..4).map(|i| log(T0 + i, 9, "hello")).collect());
    post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    let req = metrics(
        "svc",
        vec![gauge(
            "g",
            (0..5)
                .map(|i| {
                    number_point(
                        T0 + i,
                        0,
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                            1.0,
                        ),
                        vec![kv_str("k", "v")],
                    )
                })
                .collect(),
        )],
    );
    post(
        &format!("{}/v1/metrics", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    s.shutdown().await;
    let files = parquet_files(&s.parquet_dir());
    assert_eq!(files.len(), 3);
    let script = r#"
import sys, pyarrow.parquet as pq
for f in sys.argv[1:]:
    t = pq.read_table(f)
    table = f.split('/parquet/')[1].split('/')[1]
    print(table, t.num_rows, t.schema.field('timestamp').type)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow failed (is it installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "otel_logs 4 timestamp[ns, tz=UTC]",
            "otel_metrics_gauge 5 timestamp[ns, tz=UTC]",
            "otel_traces 7 timestamp[ns, tz=UTC]",
        ]
    );
}

/// Where the store of `bucket` on the moto server at `endpoint` is, under
/// `prefix`.
fn moto_location(endpoint: &str, bucket: &str, prefix: &str) -> StorageLocation {
    StorageLocation::S3 {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(endpoint.into()),
        region: "us-east-1".into(),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: true,
    }
}

/// The server's listing (XML) of the objects of `bucket` under `prefix`.
async fn bucket_listing(endpoint: &str, bucket: &str, prefix: &str) -> String {
    reqwest::get(format!("{endpoint}/{bucket}?list-type=2&prefix={prefix}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A real S3-compatible server, stopped on drop.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real S3-compatible server holding the empty bucket `bucket`, and its
/// endpoint.
async fn start_moto(bucket: &str) -> (Moto, String) {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (pip install 'moto[server]'; .ci/run does)");
    let moto = Moto(child);
    for _ in 0..200 {
        if reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .is_ok()
        {
            let endpoint = format!("http://127.0.0.1:{port}");
            let resp = reqwest::Client::new()
                .put(format!("{endpoint}/{bucket}"))
                .send()
                .await
                .unwrap();
            assert!(
                resp.status().is_success(),
                "create bucket: {}",
                resp.status()
            );
            return (moto, endpoint);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto_server did not start on port {port}");
}

#[tokio::test]
async fn s3_storage_against_a_real_s3_compatible_server() {
    let (_moto, endpoint) = start_moto("telemetry").await;
    let s3 = |c: &mut telemetryflow::Config| {
        c.storage.url = "s3://telemetry/tf-prefix".parse().unwrap();
        c.storage.s3.endpoint = endpoint.clone();
        c.storage.s3.allow_http = true;
        c.storage.s3.access_key_id = "test".into();
        c.storage.s3.secret_access_key = "test".into();
    };
    let mut s = TestServer::start_with(s3).await;
    send_spans(&s, 1, 6, 0).await;
    s.flush().await;
    send_spans(&s, 7, 2, 0).await;
    s.wait_for_count("SELECT count(*) FROM otel_traces", 8)
        .await;
    s.shutdown().await;
    assert!(
        parquet_files(&s.parquet_dir()).is_empty(),
        "nothing is written locally"
    );

    // The objects are in the bucket under the prefix.
    let listing = bucket_listing(&endpoint, "telemetry", "tf-prefix/default/otel_traces/").await;
    assert_eq!(listing.matches(".parquet</Key>").count(), 2, "{listing}");

    // A fresh server (new local data dir) reads them back from S3.
    let s2 = TestServer::start_with(s3).await;
    s2.wait_for_count("SELECT count(*) FROM otel_traces", 8)
        .await;
    let b = s2
        .sql("SELECT min(span_name) AS first, max(span_name) AS last FROM otel_traces")
        .await;
    assert_batches_sorted_eq!(
        [
            "+-------+------+",
            "| first | last |",
            "+-------+------+",
            "| op-1  | op-8 |",
            "+-------+------+"
        ],
        &b
    );
}

/// Above half the memory budget the largest partitions are flushed even if
/// none reached its size or age threshold, so a client that retries refused
/// requests (as OTLP exporters do) gets every one stored. (The policy itself
/// is pinned exactly by the pipeline's unit tests.)
#[tokio::test]
async fn memory_pressure_flushes_before_thresholds() {
    let mut s = TestServer::start_with(|c| {
        c.buffer.max_buffered_bytes = NonZero::new(4 << 20).unwrap();
        c.buffer.flush_bytes = NonZero::new(64 << 20).unwrap();
        c.buffer.flush_rows = NonZero::new(10_000_000).unwrap();
        c.buffer.flush_interval_ms = NonZero::new(3_600_000).unwrap();
    })
    .await;
    let mut synth = telemetryflow::synth::Synth::new(7, T0);
    let mut points = 0u64;
    // 60 requests of ~300 KB buffered each: 4x the budget.
    for _ in 0..60 {
        let req = synth.metrics(512);
        points += req
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(x)) => x.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                Some(Data::Summary(x)) => x.data_points.len(),
                None => 0,
            } as u64)
            .sum::<u64>();
        let body = req.encode_to_vec();
        let mut attempts = 0;
        loop {
            let r = post(
                &format!("{}/v1/metrics", s.http),
                "application/x-protobuf",
                None,
                body.clone(),
                None,
            )
            .await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 429, "only retryable refusals");
            attempts += 1;
            assert!(
                attempts < 100,
                "never accepted: nothing relieves the budget"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert!(
        !parquet_files(&s.parquet_dir()).is_empty(),
        "flushed under pressure, long before the hour-long age threshold"
    );
    let b = s
        .sql(
            "SELECT (SELECT count(*) FROM otel_metrics_gauge) + (SELECT count(*) FROM otel_metrics_sum) \
             + (SELECT count(*) FROM otel_metrics_histogram) \
             + (SELECT count(*) FROM otel_metrics_exp_histogram) \
             + (SELECT count(*) FROM otel_metrics_summary)",
        )
        .await;
    assert_eq!(first_value(&b), points.to_string());
    s.shutdown().await;
}

/// Multipart uploads in progress in `bucket` of the S3 server at `endpoint`.
async fn uploads_in_progress(endpoint: &str, bucket: &str) -> usize {
    let listing = reqwest::get(format!("{endpoint}/{bucket}?uploads"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    listing.matches("<UploadId>").count()
}

/// A compaction merge cut short (shutdown cancels a pass midway) aborts the
/// multipart upload of the output it was writing: S3 lists no upload left
/// behind, where it would otherwise keep and bill the parts for good.
#[tokio::test]
async fn a_merge_cut_short_leaves_no_multipart_upload_on_s3() {
    use arrow::array::{StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    use telemetryflow::application::ports::FileStore;
    use telemetryflow::domain::Table;
    use telemetryflow::domain::TenantId;
    use telemetryflow::infrastructure::storage::ObjectFileStore;

    let (_moto, endpoint) = start_moto("merges").await;
    let store = moto_location(&endpoint, "merges", "").build().unwrap();
    // A twentieth of a core: the merge rests long between its chunks.
    let files = ObjectFileStore::new(store, "n1")
        .with_row_group_rows(16)
        .with_merge_cpu_share(0.05);

    // Two files of 80 logs with 100 kB bodies that barely compress: their
    // merge's output is larger than the writer's 10 MiB buffer, so it is
    // written as a multipart upload.
    let hour = T0 - T0 % (3600 * SEC);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move |len: usize| -> String {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(
                    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
                        [(x % 64) as usize],
                )
            })
            .collect()
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("body", DataType::Utf8, false),
    ]));
    let tenant = TenantId::parse("acme").unwrap();
    let mut inputs = Vec::new();
    for file in 0..2u64 {
        let rows = 80;
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(
                    TimestampNanosecondArray::from(
                        (0..rows as u64)
                            .map(|r| (hour + (2 * r + file) * SEC) as i64)
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(
                    (0..rows).map(|_| noise(100_000)).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        inputs.push(
            files
                .write_file(&tenant, Table::LOGS, hour, file + 1, batch)
                .await
                .unwrap(),
        );
    }
    assert_eq!(uploads_in_progress(&endpoint, "merges").await, 0);

    let mut merge = Box::pin(files.merge_files(&tenant, Table::LOGS, hour, &inputs, u64::MAX));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            r = &mut merge => panic!("the merge ended before its output was uploading: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if uploads_in_progress(&endpoint, "merges").await > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no upload began");
    }
    // Cancelled, as a shutdown cancels a compaction pass.
    drop(merge);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while uploads_in_progress(&endpoint, "merges").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancelled merge's upload was left in the bucket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cluster-wide documents on a real S3-compatible server: writers racing
/// for one version are decided by the server's conditional create (exactly
/// one wins), a node picks up another's version, and the documents sit
/// under `_system/`, which no tenant listing takes for a tenant.
#[tokio::test]
async fn documents_on_a_real_s3_compatible_server() {
    use std::sync::Arc;
    use telemetryflow::application::ports::FileStore;
    use telemetryflow::application::{Collection, DocumentStore, PutOutcome};
    use telemetryflow::infrastructure::storage::{ObjectDocumentStore, ObjectFileStore};

    let (_moto, endpoint) = start_moto("docs").await;
    let store = moto_location(&endpoint, "docs", "tf").build().unwrap();
    let keys = Collection::from_static("keys");
    let a = ObjectDocumentStore::new(Arc::clone(&store));
    assert_eq!(
        a.put(&keys, None, b"[]".to_vec()).await.unwrap(),
        PutOutcome::Written(1)
    );
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let node = ObjectDocumentStore::new(Arc::clone(&store));
            tokio::spawn(async move {
                let keys = Collection::from_static("keys");
                let body = format!("[{i}]").into_bytes();
                node.put(&keys, Some(1), body).await.unwrap()
            })
        })
        .collect();
    let mut written = 0;
    for w in writers {
        match w.await.unwrap() {
            PutOutcome::Written(v) => {
                assert_eq!(v, 2);
                written += 1;
            }
            PutOutcome::Conflict => {}
        }
    }
    assert_eq!(written, 1);
    let newest = a.load_since(&keys, 1).await.unwrap().unwrap();
    assert_eq!(newest.version, 2);
    assert_eq!(a.load_since(&keys, 2).await.unwrap(), None);

    let listing = bucket_listing(&endpoint, "docs", "tf/_system/keys/").await;
    assert_eq!(listing.matches(".json</Key>").count(), 2, "{listing}");
    let files = ObjectFileStore::new(store, "n1");
    assert_eq!(files.list_tables().await.unwrap(), Vec::new());
    files.collect_garbage(Duration::ZERO, true).await.unwrap();
    assert_eq!(a.load(&keys).await.unwrap(), Some(newest));
}
