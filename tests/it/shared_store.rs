//! Several servers on one store (sidecars sharing a bucket, each with its
//! own data directory and WAL): each sees the others' commits within
//! `storage.manifest_refresh_secs`, and background passes work from every
//! node's commits.

use std::time::Duration;

use telemetryflow::config::StorageUrl;

use crate::storage::send_spans;
use crate::support::{TestServer, first_value, test_config};

async fn node(
    shared: &std::path::Path,
    tweak: impl FnOnce(&mut telemetryflow::Config),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.storage.url = StorageUrl::File(shared.to_path_buf());
    config.storage.manifest_refresh_secs = 1;
    config.compaction.enabled = false;
    tweak(&mut config);
    TestServer::from_config(config, dir, None).await
}

async fn spans(s: &TestServer) -> String {
    first_value(&s.sql("SELECT count(*) FROM otel_traces").await)
}

#[tokio::test]
async fn each_node_sees_the_others_commits_within_the_refresh_interval() {
    let shared = tempfile::tempdir().unwrap();
    let a = node(shared.path(), |_| {}).await;
    let b = node(shared.path(), |_| {}).await;
    // Each node has read the (empty) store once.
    assert_eq!(spans(&a).await, "0");
    assert_eq!(spans(&b).await, "0");

    send_spans(&a, 1, 3, 0).await;
    a.flush().await;
    send_spans(&b, 10, 2, 0).await;
    b.flush().await;
    // The other node's commits, once the interval is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(spans(&a).await, "5");
    assert_eq!(spans(&b).await, "5");

    // A compaction on one node merges both nodes' files; the other node
    // reads the merged file instead, each row once.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/admin/compact", b.http))
        .send()
        .await
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(summary["files_in"], 2, "{summary}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(spans(&a).await, "5");
    let names = a
        .sql("SELECT count(DISTINCT span_name) FROM otel_traces")
        .await;
    assert_eq!(first_value(&names), "5");
    // And the first node keeps committing on top of the merged manifest.
    send_spans(&a, 20, 1, 0).await;
    a.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(spans(&b).await, "6");
}

#[tokio::test]
async fn with_refresh_off_a_node_sees_only_its_own_commits() {
    let shared = tempfile::tempdir().unwrap();
    let a = node(shared.path(), |c| c.storage.manifest_refresh_secs = 0).await;
    let b = node(shared.path(), |_| {}).await;
    send_spans(&b, 1, 2, 0).await;
    b.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(spans(&a).await, "0");
}
