//! Memory that holds on the read side: functions that amplify their input,
//! the collected answer and the rendered body all stay within
//! `query.memory_limit_mb` (HTTP 422 naming it beyond); admin passes run in
//! a query slot, one at a time, within `query.admin_timeout_secs`.

use std::num::NonZero;
use std::time::{Duration, Instant};

use datafusion::assert_batches_sorted_eq;
use prost::Message;
use serde_json::Value;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::TestServer;

/// Runs `sql` and checks it was refused with 422 naming the memory limit;
/// returns the message.
async fn refused(s: &TestServer, sql: &str) -> String {
    let (status, body) = s.sql_raw("default", sql, "json").await;
    over_the_limit(status, &body, sql)
}

fn over_the_limit(status: u16, body: &[u8], what: &str) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: {status} {e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(
        (status, v["error_type"].as_str()),
        (422, Some("resources_exhausted")),
        "{what}: {v}"
    );
    let message = v["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("query.memory_limit_mb"),
        "{what}: {message}"
    );
    message
}

#[tokio::test]
async fn amplifying_functions_are_refused_before_they_allocate() {
    // The default limits: 1 GiB of memory per query.
    let mut s = TestServer::start().await;
    for sql in [
        "SELECT length(repeat('x', 1000000000)) AS n",
        "SELECT length(lpad('x', 2000000000)) AS n",
        "SELECT length(rpad('x', 2000000000, 'ab')) AS n",
        "SELECT cardinality(array_repeat(1, 200000000)) AS n",
        "SELECT cardinality(range(200000000)) AS n",
        "SELECT cardinality(generate_series(1, 200000000)) AS n",
        "SELECT length(replace(repeat('a', 100000), 'a', repeat('b', 100000))) AS n",
        // Not constant: evaluated per batch, bounded all the same.
        "SELECT max(length(repeat('x', CAST(value AS BIGINT) * 100000000))) AS n \
         FROM generate_series(1, 20)",
    ] {
        let message = refused(&s, sql).await;
        assert!(message.contains("would build up to"), "{sql}: {message}");
    }
    // Sane sizes answer as ever.
    let batches = s
        .sql(
            "SELECT length(repeat('ab', 1000)) AS a, length(lpad('x', 100)) AS b, \
             cardinality(array_repeat(7, 1000)) AS c, cardinality(range(5)) AS d, \
             cardinality(generate_series(1, 5)) AS e, \
             sum(length(repeat('y', CAST(value AS BIGINT)))) AS f \
             FROM generate_series(1, 100)",
        )
        .await;
    assert_batches_sorted_eq!(
        [
            "+------+-----+------+---+---+------+",
            "| a    | b   | c    | d | e | f    |",
            "+------+-----+------+---+---+------+",
            "| 2000 | 100 | 1000 | 5 | 5 | 5050 |",
            "+------+-----+------+---+---+------+",
        ],
        &batches
    );
    s.shutdown().await;
}

#[tokio::test]
async fn generator_tables_stream_within_the_row_cap_and_the_timeout() {
    let mut s = TestServer::start_with(|c| {
        c.query.max_rows = NonZero::new(1000).unwrap();
        c.query.timeout_secs = NonZero::new(2).unwrap();
    })
    .await;
    let started = Instant::now();
    let (status, body) = s
        .sql_raw(
            "default",
            "SELECT value FROM generate_series(1, 1000000000000)",
            "json",
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(1000));
    assert_eq!(v["truncated"], true);
    let (status, body) = s
        .sql_raw(
            "default",
            "SELECT count(*) FROM range(1000000000000)",
            "json",
        )
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, v["error_type"].as_str()), (503, Some("timeout")));
    assert!(started.elapsed() < Duration::from_secs(20));
    s.shutdown().await;
}

#[tokio::test]
async fn a_collected_answer_over_the_memory_limit_is_refused() {
    let mut s =
        TestServer::start_with(|c| c.query.memory_limit_mb = NonZero::new(1).unwrap()).await;
    // 100,000 rows of 100 bytes: 10 MB of answer, under the row cap.
    let message = refused(
        &s,
        "SELECT repeat('x', 100) AS s, value FROM generate_series(1, 100000)",
    )
    .await;
    assert!(message.contains("answer"), "{message}");
    // A smaller answer fits.
    let batches = s
        .sql("SELECT count(*) AS n, max(length(s)) AS l FROM (SELECT repeat('x', 100) AS s FROM generate_series(1, 1000))")
        .await;
    assert_batches_sorted_eq!(
        [
            "+------+-----+",
            "| n    | l   |",
            "+------+-----+",
            "| 1000 | 100 |",
            "+------+-----+",
        ],
        &batches
    );
    s.shutdown().await;
}

/// A trace of one span carrying a 2 MB attribute of control characters,
/// each rendered as six bytes (`\u0001`) in JSON: 12 MB of body.
async fn store_big_trace(s: &TestServer) -> String {
    let mut big = span(7, 1, "big", T0);
    big.attributes
        .push(kv_str("blob", &"\u{1}".repeat(2_000_000)));
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        traces("svc", vec![big]).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    trace_id(7).iter().map(|b| format!("{b:02x}")).collect()
}

async fn get(s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", s.http))
        .header("x-tenant-id", "default")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_trace_rendered_beyond_the_memory_limit_is_refused() {
    for (limit_mb, flushed) in [(1, false), (1, true)] {
        let mut s =
            TestServer::start_with(|c| c.query.memory_limit_mb = NonZero::new(limit_mb).unwrap())
                .await;
        let id = store_big_trace(&s).await;
        if flushed {
            s.flush().await;
        }
        for path in [
            format!("/api/v2/traces/{id}"),
            format!("/api/v2/traces/{id}?format=otlp"),
        ] {
            let (status, body) = get(&s, &path).await;
            let what = format!("{path} under {limit_mb} MiB (flushed: {flushed})");
            over_the_limit(status, &body, &what);
        }
        s.shutdown().await;
    }
    // Under the default limit it renders, in both forms.
    let mut s = TestServer::start().await;
    let id = store_big_trace(&s).await;
    let (status, body) = get(&s, &format!("/api/v2/traces/{id}")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["trace_id"], id);
    let spans = v["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1);
    assert!(body.len() > 12_000_000, "{}", body.len());
    let (status, body) = get(&s, &format!("/api/v2/traces/{id}?format=otlp")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let attrs = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    let blob = attrs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "blob")
        .unwrap();
    assert_eq!(
        blob["value"]["stringValue"].as_str().map(str::len),
        Some(2_000_000)
    );
    s.shutdown().await;
}

#[tokio::test]
async fn log_answers_are_rendered_within_the_memory_limit() {
    let mut s =
        TestServer::start_with(|c| c.query.memory_limit_mb = NonZero::new(8).unwrap()).await;
    // A 2 MB body of control characters: 12 MB as JSON escapes. Its rows
    // fit in 8 MiB; their rendering does not.
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        logs("svc", vec![log(T0, 9, &"\u{1}".repeat(2_000_000))]).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let window = "start=2026-11-26T10:00:00Z&end=2026-11-26T11:00:00Z";
    let (status, body) = get(&s, &format!("/api/v2/logs?{window}")).await;
    let message = over_the_limit(status, &body, "the logs");
    assert!(message.contains("rendered"), "{message}");
    s.shutdown().await;
    // Under the default limit it renders.
    let mut s = TestServer::start().await;
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        logs("svc", vec![log(T0, 9, &"\u{1}".repeat(2_000_000))]).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let (status, body) = get(&s, &format!("/api/v2/logs?{window}")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["logs"][0]["body"].as_str().map(str::len), Some(2_000_000));
    s.shutdown().await;
}

#[tokio::test]
async fn rendered_sql_answers_stay_within_the_memory_limit() {
    let mut s =
        TestServer::start_with(|c| c.query.memory_limit_mb = NonZero::new(2).unwrap()).await;
    // 300 KB of rows, each byte a control character: 1.8 MB as JSON
    // escapes, within 2 MiB; twice that is not.
    let sql = |n: u32| format!("SELECT repeat(chr(1), 1000) AS s FROM generate_series(1, {n})");
    let (status, body) = s.sql_raw("default", &sql(300), "json").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = s.sql_raw("default", &sql(600), "json").await;
    let message = over_the_limit(status, &body, "600 rows as JSON");
    assert!(message.contains("rendered"), "{message}");
    for format in ["ndjson", "csv"] {
        let (status, _) = s.sql_raw("default", &sql(300), format).await;
        assert_eq!(status, 200, "{format}");
    }
    s.shutdown().await;
}

async fn admin(s: &TestServer, pass: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v2/admin/{pass}", s.http))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_passes_take_a_query_slot_one_at_a_time_within_their_timeout() {
    let mut s = TestServer::start_with(|c| {
        c.query.max_concurrent = NonZero::new(1).unwrap();
        c.query.timeout_secs = NonZero::new(4).unwrap();
        c.query.admin_timeout_secs = NonZero::new(1).unwrap();
    })
    .await;
    // A query holds the only slot until its timeout.
    let http = s.http.clone();
    let busy = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{http}/api/v2/sql"))
            .header("content-type", "application/json")
            .body(r#"{"sql": "SELECT count(*) FROM generate_series(1, 1000000000000)"}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A compaction pass waits for the slot, and its timeout covers the wait.
    let http = s.http.clone();
    let started = Instant::now();
    let first = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(format!("{http}/api/v2/admin/compact"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap(),
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While it runs (or waits), another pass is refused at once.
    let r = admin(&s, "retention").await;
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("10")
    );
    let (status, v, took) = first.await.unwrap();
    assert_eq!(
        (status, v["error_type"].as_str()),
        (503, Some("timeout")),
        "{v}"
    );
    let message = v["error"].as_str().unwrap_or_default();
    assert!(message.contains("query.admin_timeout_secs"), "{message}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        busy.await.unwrap(),
        503,
        "the query ran into its own timeout"
    );
    // With the slot free, passes run, one after another.
    for pass in ["compact", "retention"] {
        let r = admin(&s, pass).await;
        assert_eq!(r.status().as_u16(), 200, "{pass}");
    }
    s.shutdown().await;
}
