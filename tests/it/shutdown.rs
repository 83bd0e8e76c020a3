//! The real binary: zero-config start, SIGTERM → graceful shutdown that
//! persists everything buffered, and `telemetryflow sql --data-dir`.

use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::ServerProcess;
use crate::support::parquet_files;

const BIN: &str = env!("CARGO_BIN_EXE_telemetryflow");

#[tokio::test]
async fn sigterm_persists_everything_buffered_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).arg("serve");
    let mut server = ServerProcess::spawn(cmd);
    server.ready().await;
    let base = server.http.clone();
    let req = traces("svc", (1..=20).map(|i| span(i, 1, "op", T0)).collect());
    let r = post(
        &format!("{base}/v1/traces"),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(&format!("{base}/v1/logs"), "application/json", None, br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1795687200000000000","body":{"stringValue":"bye"}}]}]}]}"#.to_vec(), None).await;
    assert_eq!(r.status, 200);
    // Nothing is flushed yet (default age is 10 s).
    assert!(parquet_files(&dir.path().join("data/parquet")).is_empty());

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        exit.success(),
        "exit status {exit:?}; log:\n{}",
        server.log()
    );
    assert_eq!(parquet_files(&dir.path().join("data/parquet")).len(), 2);

    // The CLI reads the data dir directly.
    let out = Command::new(BIN)
        .args(["sql", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--format", "csv", "SELECT (SELECT count(*) FROM otel_traces) AS spans, (SELECT count(*) FROM otel_logs) AS logs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "spans,logs\n20,1\n");

    // A bad query is a clear error and a non-zero exit.
    let out = Command::new(BIN)
        .args(["sql", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("SELECT nope FROM otel_traces")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["serve", "--grpc-addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.grpc_addr"), "{err}");
    let out = Command::new(BIN)
        .env("TELEMETRYFLOW_BUFER_FLUSH_ROWS", "1")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TELEMETRYFLOW_BUFER_FLUSH_ROWS"));
}
