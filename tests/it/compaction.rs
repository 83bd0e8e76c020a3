//! Compaction through its triggers: `POST /api/v2/admin/compact` on a
//! running server, `telemetryflow compact` on a stopped one, and what
//! `/metrics` says about both.

use std::num::NonZero;

use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::storage::send_spans;
use crate::support::{TestServer, first_value, metric_value, parquet_files, run_cli};

async fn send_logs(s: &TestServer, first: u64, n: u64) {
    let records = (first..first + n)
        .map(|i| log(T0 + i * SEC, 9, &format!("line {i}")))
        .collect();
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        logs("svc", records).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn compact(s: &TestServer) -> serde_json::Value {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/admin/compact", s.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

async fn metric(s: &TestServer, name: &str) -> String {
    metric_value(&s.http, name).await
}

#[tokio::test]
async fn the_admin_endpoint_and_the_cli_compact_and_report() {
    // Only explicit passes (the timer is off), replaced files kept 15 min.
    let mut s = TestServer::start_with(|c| c.compaction.enabled = false).await;
    for k in 0..5 {
        send_logs(&s, k * 10, 10).await;
        s.flush().await;
    }
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 5);
    let count = "SELECT count(*) FROM otel_logs";
    assert_eq!(first_value(&s.sql(count).await), "50");

    let summary = compact(&s).await;
    assert_eq!(summary["partitions"], 1, "{summary}");
    assert_eq!(summary["files_in"], 5, "{summary}");
    assert_eq!(summary["files_out"], 1, "{summary}");
    assert_eq!(summary["rows"], 50, "{summary}");
    assert_eq!(summary["conflicts"], 0, "{summary}");
    assert!(summary["bytes_in"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["bytes_out"].as_u64().unwrap() > 0, "{summary}");
    // Every row once, in sort order within the hour's one file now.
    assert_eq!(first_value(&s.sql(count).await), "50");
    assert_eq!(
        first_value(&s.sql("SELECT count(DISTINCT body) FROM otel_logs").await),
        "50"
    );
    // The inputs stay on disk for queries that hold them, until the grace
    // period is over.
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 6);
    assert_eq!(metric(&s, "telemetryflow_compactions_total").await, "1");
    assert_eq!(
        metric(&s, "telemetryflow_compaction_files_in_total").await,
        "5"
    );
    assert_eq!(
        metric(&s, "telemetryflow_files_pending_deletion").await,
        "5"
    );

    // Nothing more to do: an empty pass.
    let again = compact(&s).await;
    assert_eq!(again["partitions"], 0, "{again}");
    s.shutdown().await;

    // Offline, with no grace: the replaced inputs are deleted.
    let out = run_cli(
        &[
            "compact".as_ref(),
            "--data-dir".as_ref(),
            s.dir.path().as_ref(),
        ],
        &[("TELEMETRYFLOW_STORAGE_GC_GRACE_SECS", "0")],
    );
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["partitions"], 0, "{printed}");
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 1);

    // A restart reads the compacted store: every row, once.
    let s2 = TestServer::from_config(
        crate::support::test_config(s.dir.path()),
        tempfile::tempdir().unwrap(),
        None,
    )
    .await;
    assert_eq!(first_value(&s2.sql(count).await), "50");
}

#[tokio::test]
async fn the_cli_compacts_a_stopped_servers_small_files() {
    let mut s = TestServer::start_with(|c| c.compaction.enabled = false).await;
    for k in 0..3 {
        send_logs(&s, k * 4, 4).await;
        s.flush().await;
    }
    s.shutdown().await;
    let out = run_cli(
        &[
            "compact".as_ref(),
            "--data-dir".as_ref(),
            s.dir.path().as_ref(),
        ],
        &[],
    );
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            printed["partitions"].as_u64(),
            printed["files_in"].as_u64(),
            printed["files_out"].as_u64(),
            printed["rows"].as_u64()
        ),
        (Some(1), Some(3), Some(1), Some(12)),
        "{printed}"
    );
    let csv = run_cli(
        &[
            "sql".as_ref(),
            "--data-dir".as_ref(),
            s.dir.path().as_ref(),
            "--format".as_ref(),
            "csv".as_ref(),
            "SELECT count(*) AS n FROM otel_logs".as_ref(),
        ],
        &[],
    );
    assert_eq!(csv.trim(), "n\n12");
}

/// Parquet files a trace lookup opened, from `EXPLAIN ANALYZE`'s scan
/// metrics (`files_opened`), and the spans it found.
async fn lookup(s: &TestServer, t: u8) -> (u64, usize) {
    let id = hex::encode(trace_id(t));
    let plan = explain_lookup(s, &id).await;
    let opened = plan
        .split("files_opened=")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let found = s
        .sql(&format!(
            "SELECT span_id FROM otel_traces WHERE trace_id = '{id}'"
        ))
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
    (opened, found)
}

/// A trace lookup without a time window opens the files that hold the trace
/// (and at most a false positive of the 1 % filters), not every file of the
/// tenant — before compaction, and after it, when the merged files carry
/// filters of their own.
#[tokio::test]
async fn trace_lookups_open_only_the_files_that_may_hold_the_trace() {
    let s = TestServer::start_with(|c| c.compaction.enabled = false).await;
    for t in 1..=40u8 {
        send_spans(&s, t, 1, u64::from(t % 8)).await;
        s.flush().await;
    }
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 40);
    for t in [1, 17, 40] {
        let (opened, found) = lookup(&s, t).await;
        assert_eq!(found, 1, "trace {t}");
        assert!(
            (1..=2).contains(&opened),
            "trace {t}: {opened} files opened"
        );
    }
    let (opened, found) = lookup(&s, 99).await;
    assert_eq!(found, 0);
    assert!(opened <= 1, "an absent trace opened {opened} files");

    let summary = compact(&s).await;
    assert_eq!(summary["files_out"], 8, "{summary}");
    for t in [1, 17, 40] {
        let (opened, found) = lookup(&s, t).await;
        assert_eq!(found, 1, "trace {t} after compaction");
        assert!(
            (1..=2).contains(&opened),
            "trace {t}: {opened} files opened"
        );
    }
}

/// The `EXPLAIN ANALYZE` text of a lookup of trace `id`.
async fn explain_lookup(s: &TestServer, id: &str) -> String {
    let explain = s
        .sql(&format!(
            "EXPLAIN ANALYZE SELECT * FROM otel_traces WHERE trace_id = '{id}'"
        ))
        .await;
    datafusion::arrow::util::pretty::pretty_format_batches(&explain)
        .unwrap()
        .to_string()
}

/// `X` and `Y` of a scan metric printed as `name=X total → Y matched`,
/// summed over the plan's scans.
fn pruned(plan: &str, name: &str) -> (u64, u64) {
    let number = |s: &str| -> u64 {
        let digits: String = s
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v: f64 = digits.parse().unwrap();
        let scale = match s.trim_start()[digits.len()..].chars().next() {
            Some('K') => 1e3,
            Some('M') => 1e6,
            _ => 1.0,
        };
        (v * scale).round() as u64
    };
    plan.split(&format!("{name}="))
        .skip(1)
        .map(|rest| {
            let (total, rest) = rest.split_once(" total → ").unwrap();
            (number(total), number(rest))
        })
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
}

/// Spans are stored sorted by trace: in a compacted file a trace's spans
/// from every service are contiguous, so a lookup by id keeps one row group
/// by its statistics and decodes only the pages that hold the trace.
#[tokio::test]
async fn a_trace_lookup_in_a_compacted_file_reads_only_the_trace_s_pages() {
    let s = TestServer::start_with(|c| {
        c.compaction.enabled = false;
        c.storage.row_group_rows = NonZero::new(400).unwrap();
        c.storage.page_rows = NonZero::new(50).unwrap();
    })
    .await;
    // 8 flushes; each holds a span of every trace from each of 5 services,
    // so every file (and, sorted by service, every row group) would hold
    // every trace.
    let services = ["api", "auth", "cart", "db", "web"];
    for k in 0..8u64 {
        for (n, svc) in services.iter().enumerate() {
            let spans = (1..=40u8)
                .map(|t| {
                    let start = T0 + (k * 5 + n as u64) * SEC + u64::from(t);
                    span(t, (k * 5) as u8 + n as u8, &format!("op-{svc}"), start)
                })
                .collect();
            let r = post(
                &format!("{}/v1/traces", s.http),
                "application/x-protobuf",
                None,
                traces(svc, spans).encode_to_vec(),
                None,
            )
            .await;
            assert_eq!(r.status, 200);
        }
        s.flush().await;
    }
    let summary = compact(&s).await;
    assert_eq!(summary["files_out"], 1, "{summary}");
    assert_eq!(summary["rows"], 1600, "{summary}");

    for t in [1u8, 20, 40] {
        let id = hex::encode(trace_id(t));
        let found = s
            .sql(&format!(
                "SELECT service_name, count(*) AS spans FROM otel_traces \
                 WHERE trace_id = '{id}' GROUP BY service_name"
            ))
            .await;
        datafusion::assert_batches_sorted_eq!(
            [
                "+--------------+-------+",
                "| service_name | spans |",
                "+--------------+-------+",
                "| api          | 8     |",
                "| auth         | 8     |",
                "| cart         | 8     |",
                "| db           | 8     |",
                "| web          | 8     |",
                "+--------------+-------+",
            ],
            &found
        );
        let plan = explain_lookup(&s, &id).await;
        let (groups, kept) = pruned(&plan, "row_groups_pruned_statistics");
        assert_eq!((groups, kept), (4, 1), "trace {t}: {plan}");
        // The trace's 40 rows lie in one or two 50-row pages of the 400.
        let (rows, read) = pruned(&plan, "page_index_rows_pruned");
        assert_eq!(rows, 400, "trace {t}: {plan}");
        assert!(read <= 100, "trace {t}: {read} rows decoded: {plan}");
    }
}
