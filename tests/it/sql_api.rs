//! `POST /api/v2/sql`: formats, row cap, timeout, memory limit, what API
//! callers may not do; pruning proven with DataFusion's scan metrics.

use std::num::NonZero;
use std::sync::Arc;

use datafusion::assert_batches_sorted_eq;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, collect};
use prost::Message;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{TestServer, parquet_files, test_config};

async fn send_traces(s: &TestServer, req: Vec<u8>) {
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        req,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn sql_response(s: &TestServer, sql: &str, format: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v2/sql?format={format}", s.http))
        .header("x-tenant-id", "default")
        .header("content-type", "application/json")
        .body(json!({ "sql": sql }).to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn formats_and_the_row_cap() {
    let mut s = TestServer::start_with(|c| c.query.max_rows = NonZero::new(3).unwrap()).await;
    let q = "SELECT value AS n FROM generate_series(1, 2) ORDER BY n";
    let (status, body) = s.sql_raw("default", q, "json").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"columns": [{"name": "n", "type": "Int64"}], "rows": [[1], [2]], "truncated": false})
    );
    let (_, body) = s.sql_raw("default", q, "ndjson").await;
    assert_eq!(String::from_utf8(body).unwrap(), "{\"n\":1}\n{\"n\":2}\n");
    let (_, body) = s.sql_raw("default", q, "csv").await;
    assert_eq!(String::from_utf8(body).unwrap(), "n\n1\n2\n");
    assert_batches_sorted_eq!(
        ["+---+", "| n |", "+---+", "| 1 |", "| 2 |", "+---+"],
        &s.sql(q).await
    );

    // More rows than the cap: the first 3, flagged.
    let q = "SELECT value AS n FROM generate_series(1, 10) ORDER BY n";
    let (_, body) = s.sql_raw("default", q, "json").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["rows"], json!([[1], [2], [3]]));
    assert_eq!(v["truncated"], true);
    for format in ["csv", "ndjson", "arrow"] {
        let resp = sql_response(&s, q, format).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("x-telemetryflow-truncated")
                .map(|v| v.to_str().unwrap()),
            Some("true"),
            "{format}"
        );
    }
    let resp = sql_response(&s, "SELECT 1", "csv").await;
    assert!(resp.headers().get("x-telemetryflow-truncated").is_none());

    let (status, body) = s.sql_raw("default", "SELECT 1", "xml").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    s.shutdown().await;
}

#[tokio::test]
async fn api_callers_can_only_read_their_tables() {
    let mut s = TestServer::start().await;
    for sql in [
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 's3://bucket/data.parquet'",
        "SELECT * FROM \"file:///etc/passwd\"",
        "EXPLAIN SELECT * FROM read_json('/etc/hosts')",
        "SELECT * FROM otel_traces t JOIN read_parquet('x.parquet') p ON true",
        "COPY (SELECT 1) TO '/tmp/tf-leak.csv'",
        "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "DROP TABLE otel_traces",
        "INSERT INTO otel_logs SELECT * FROM otel_logs",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let (status, body) = s.sql_raw("default", sql, "json").await;
        assert_eq!(status, 403, "{sql}: {}", String::from_utf8_lossy(&body));
    }
    assert!(!std::path::Path::new("/tmp/tf-leak.csv").exists());
    // Generators are fine, as is information_schema.
    for sql in [
        "SELECT count(*) FROM generate_series(1, 3)",
        "SELECT count(*) FROM range(3)",
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'otel_traces'",
    ] {
        let (status, body) = s.sql_raw("default", sql, "json").await;
        assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&body));
    }
    // A typo is the caller's mistake, not a forbidden act.
    let (status, _) = s
        .sql_raw("default", "SELECT * FROM otel_tracez", "json")
        .await;
    assert_eq!(status, 400);
    s.shutdown().await;
}

#[tokio::test]
async fn slow_and_memory_hungry_queries_are_stopped() {
    let mut s = TestServer::start_with(|c| {
        c.query.timeout_secs = NonZero::new(1).unwrap();
        c.query.memory_limit_mb = NonZero::new(1).unwrap();
    })
    .await;
    let started = std::time::Instant::now();
    let (status, body) = s
        .sql_raw(
            "default",
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            "json",
        )
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, v["error_type"].as_str()),
        (503, Some("timeout")),
        "{v}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let (status, body) = s
        .sql_raw(
            "default",
            "SELECT count(*) FROM generate_series(1, 2000000) a \
             JOIN generate_series(1, 2000000) b ON a.value = b.value",
            "json",
        )
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, v["error_type"].as_str()),
        (422, Some("resources_exhausted")),
        "{v}"
    );
    // The server is fine afterwards.
    let (status, _) = s.sql_raw("default", "SELECT 1", "json").await;
    assert_eq!(status, 200);
    s.shutdown().await;
}

/// Sums DataFusion's metric `name` over every node of an executed plan.
fn pruning(plan: &Arc<dyn ExecutionPlan>, name: &str) -> (usize, usize) {
    let mut pruned_matched = (0, 0);
    if let Some(m) = plan.metrics()
        && let Some(MetricValue::PruningMetrics {
            pruning_metrics, ..
        }) = m.sum_by_name(name)
    {
        pruned_matched.0 += pruning_metrics.pruned();
        pruned_matched.1 += pruning_metrics.matched();
    }
    for c in plan.children() {
        let (p, m) = pruning(c, name);
        pruned_matched.0 += p;
        pruned_matched.1 += m;
    }
    pruned_matched
}

/// Runs `sql` in-process on the server's store and returns the executed plan.
async fn executed(dir: &std::path::Path, sql: &str) -> (Arc<dyn ExecutionPlan>, usize) {
    let config = test_config(dir);
    let storage = telemetryflow::bootstrap::open_storage(&config, None, false)
        .await
        .unwrap();
    let tenant = telemetryflow::domain::TenantId::parse("default").unwrap();
    let ctx = storage.engine.session(&tenant, 1 << 30).unwrap();
    let df = ctx.sql(sql).await.unwrap();
    let plan = df.create_physical_plan().await.unwrap();
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    (plan, batches.iter().map(|b| b.num_rows()).sum())
}

/// Files opened by the plan's Parquet scans.
fn files_in_plan(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    text.matches(".parquet").count()
}

#[tokio::test]
async fn a_one_hour_query_opens_only_that_hours_files() {
    let mut s = TestServer::start().await;
    // Six hours of spans, each hour flushed to its own file.
    for h in 0..6u64 {
        let spans = (0..10)
            .map(|i| {
                span(
                    h as u8 + 1,
                    i + 1,
                    "op",
                    T0 + h * 3600 * SEC + u64::from(i) * SEC,
                )
            })
            .collect();
        send_traces(&s, traces("svc", spans).encode_to_vec()).await;
    }
    s.flush().await;
    s.shutdown().await;
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 6);
    let (plan, rows) = executed(
        s.dir.path(),
        "SELECT * FROM otel_traces \
         WHERE timestamp >= '2026-11-26T13:00:00Z' AND timestamp < '2026-11-26T14:00:00Z'",
    )
    .await;
    assert_eq!(rows, 10);
    assert_eq!(files_in_plan(&plan), 1, "only hour 13's file is opened");
    let (plan, rows) = executed(s.dir.path(), "SELECT * FROM otel_traces").await;
    assert_eq!((files_in_plan(&plan), rows), (6, 60));
}

#[tokio::test]
async fn a_trace_lookup_reads_a_small_fraction_of_row_groups() {
    let mut s =
        TestServer::start_with(|c| c.storage.row_group_rows = NonZero::new(100).unwrap()).await;
    // 2,000 spans of 2,000 traces in one file of 20 row groups. Trace ids
    // are random with respect to time (as real ones are), so min/max
    // statistics cannot prune: only the bloom filter can.
    let id = |i: u32| {
        let mut id = vec![0x5a; 16];
        id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        id[12..].copy_from_slice(&i.to_be_bytes());
        id
    };
    let mut spans = Vec::new();
    for i in 0..2000u32 {
        let mut sp = span(0, 1, "op", T0 + u64::from(i) * 1_000_000);
        sp.trace_id = id(i);
        spans.push(sp);
    }
    send_traces(&s, traces("svc", spans).encode_to_vec()).await;
    s.flush().await;
    s.shutdown().await;
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 1);
    let wanted = id(1234);
    let (plan, rows) = executed(
        s.dir.path(),
        &format!(
            "SELECT span_name FROM otel_traces WHERE trace_id = '{}'",
            hex::encode(wanted)
        ),
    )
    .await;
    assert_eq!(rows, 1);
    let (stats_pruned, stats_matched) = pruning(&plan, "row_groups_pruned_statistics");
    let (bloom_pruned, bloom_matched) = pruning(&plan, "row_groups_pruned_bloom_filter");
    assert_eq!(
        stats_pruned + stats_matched,
        20,
        "20 row groups in the file"
    );
    // The bloom filter leaves 1 of 20 (2 allowing for its 1% false positives).
    assert!(
        bloom_matched <= 2 && bloom_pruned + bloom_matched == stats_matched,
        "statistics pruned {stats_pruned} matched {stats_matched}; \
         bloom filter pruned {bloom_pruned} matched {bloom_matched}"
    );
}

#[tokio::test]
async fn sql_errors_are_clear() {
    let s = TestServer::start().await;
    let (status, body) = s.sql_raw("default", "SELEC 1", "json").await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("SELEC"), "{v}");

    let (status, body) = s
        .sql_raw("default", "SELECT nope FROM otel_traces", "json")
        .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("nope"));

    let post = |content_type: Option<&'static str>, body: &'static str| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/api/v2/sql", s.http))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(Some("application/json"), "not json").await, 400);
    // Not said to be JSON: 415, whatever the body (a form cannot post SQL).
    let sql = r#"{"sql": "SELECT 1"}"#;
    assert_eq!(post(None, sql).await, 415);
    assert_eq!(post(Some("text/plain"), sql).await, 415);
    assert_eq!(
        post(Some("application/x-www-form-urlencoded"), sql).await,
        415
    );
    assert_eq!(
        post(Some("application/json; charset=utf-8"), sql).await,
        200
    );

    // JSON and CSV renderings.
    let (status, body) = s
        .sql_raw("default", "SELECT 1 AS one, 'a' AS s", "json")
        .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"columns":[{"name":"one","type":"Int64"},{"name":"s","type":"Utf8"}],"rows":[[1,"a"]],"truncated":false})
    );
    let resp = reqwest::get(format!("{}/healthz", s.http)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
