//! Crash recovery of the real binary: SIGKILL at random moments while clients
//! send, and aborts at chosen crash points (between Parquet write and
//! manifest commit, during WAL replay, after a WAL write before its fsync).
//! After every restart: each acknowledged span is queryable exactly once, and
//! each request is all-or-nothing (nothing unacknowledged is half-visible).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;

use crate::fixtures::*;
use crate::support::ServerProcess;
use crate::support::parquet_files;

const BIN: &str = env!("CARGO_BIN_EXE_telemetryflow");
const SPANS_PER_REQUEST: u8 = 8;

type Proc = ServerProcess;

/// Starts the server on `dir` with small, frequent flushes.
fn spawn(dir: &Path, crash_at: Option<&str>) -> Proc {
    spawn_with(dir, crash_at, &[])
}

/// As [`spawn`], with more settings (`TELEMETRYFLOW_*` variables).
fn spawn_with(dir: &Path, crash_at: Option<&str>, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .env("TELEMETRYFLOW_BUFFER_FLUSH_INTERVAL_MS", "150")
        .env("TELEMETRYFLOW_BUFFER_FLUSH_ROWS", "64")
        .env("TELEMETRYFLOW_STORAGE_GC_GRACE_SECS", "0")
        .env("TELEMETRYFLOW_WAL_SEGMENT_BYTES", "65536")
        .env_remove("TFLOW_CRASH_AT");
    if let Some(c) = crash_at {
        cmd.env("TFLOW_CRASH_AT", c);
    }
    cmd.envs(env.iter().copied());
    ServerProcess::spawn(cmd)
}

fn kill9(p: &mut Proc) {
    let _ = Command::new("kill")
        .args(["-KILL", &p.child.id().to_string()])
        .status();
    let _ = p.child.wait();
}

/// One request of `SPANS_PER_REQUEST` spans named `r{req}-{i}`; all share
/// trace id bytes derived from `req`.
async fn send_request(http: &str, req: u32) -> bool {
    send_request_at(http, req, T0 + u64::from(req) * SEC).await
}

/// As [`send_request`], the spans starting at `start` (Unix ns).
async fn send_request_at(http: &str, req: u32, start: u64) -> bool {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let mut s = span(1, i + 1, &format!("r{req}-{i}"), start);
            s.trace_id = {
                let mut t = vec![0xee; 16];
                t[..4].copy_from_slice(&req.to_be_bytes());
                t
            };
            s
        })
        .collect();
    let body = traces("crash", spans).encode_to_vec();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    match client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16() == 200,
        Err(_) => false,
    }
}

/// Sends until acknowledged, as an OTLP exporter retries (a slow, loaded
/// machine may time a request out; a retry of a stored request is harmless
/// to the checks, which allow a request to be wholly present).
async fn send_acked(http: &str, req: u32) {
    send_acked_at(http, req, T0 + u64::from(req) * SEC).await;
}

/// As [`send_acked`], the spans starting at `start` (Unix ns).
async fn send_acked_at(http: &str, req: u32, start: u64) {
    for _ in 0..20 {
        if send_request_at(http, req, start).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("request {req} was never acknowledged");
}

/// Span names per request id, as stored.
fn stored(dir: &Path) -> BTreeMap<u32, Vec<String>> {
    stored_with(dir, &[])
}

/// As [`stored`], with settings (`TELEMETRYFLOW_*`) for the CLI.
fn stored_with(dir: &Path, env: &[(&str, &str)]) -> BTreeMap<u32, Vec<String>> {
    let out = Command::new(BIN)
        .args(["sql", "--data-dir"])
        .arg(dir)
        .args(["--format", "csv", "SELECT span_name FROM otel_traces"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_req: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines().skip(1) {
        let req: u32 = line[1..line.find('-').unwrap()].parse().unwrap();
        by_req.entry(req).or_default().push(line.to_owned());
    }
    by_req
}

/// Every acked request is stored exactly once; every other request is
/// either wholly stored (acked just before the kill) or not at all.
fn check(dir: &Path, acked: &BTreeSet<u32>, sent: u32) {
    let by_req = stored(dir);
    for (req, names) in &by_req {
        assert!(*req < sent, "request {req} was never sent");
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            distinct.len(),
            names.len(),
            "request {req} duplicated: {names:?}"
        );
        assert_eq!(
            names.len(),
            usize::from(SPANS_PER_REQUEST),
            "request {req} half-visible: {names:?}"
        );
    }
    for req in acked {
        assert!(by_req.contains_key(req), "acked request {req} lost");
    }
}

/// Committed files only: every Parquet file on disk is listed by a manifest
/// after a restart (orphans are garbage-collected), and no staging file of
/// an upload the kills cut short is left anywhere.
fn no_orphans(dir: &Path) {
    let mut stack = vec![dir.join("parquet")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains('#'), "{} is left over", e.path().display());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    let mut listed = BTreeSet::new();
    let mdir = dir.join("parquet/default/otel_traces/_manifest");
    for e in std::fs::read_dir(&mdir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for f in v["add"]
            .as_array()
            .or(v["files"].as_array())
            .into_iter()
            .flatten()
        {
            listed.insert(f["path"].as_str().unwrap().to_owned());
        }
    }
    for f in parquet_files(&dir.join("parquet")) {
        let rel = f
            .strip_prefix(dir.join("parquet"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(listed.contains(&rel), "{rel} is on disk but in no manifest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acked = BTreeSet::new();
    let mut next_req = 0u32;
    // A deterministic spread of kill delays: during appends, flushes, idle.
    let delays_ms = [90u64, 310, 170, 520, 40, 260];
    for delay in &delays_ms {
        let mut p = spawn(&data, None);
        p.ready().await;
        let http = p.http.clone();
        let start = next_req;
        let deadline = Instant::now() + Duration::from_millis(*delay);
        // Four concurrent senders until the kill.
        let senders: Vec<_> = (0..4u32)
            .map(|k| {
                let http = http.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let mut req = start + k;
                    while Instant::now() < deadline {
                        if send_request(&http, req).await {
                            mine.push(req);
                        }
                        req += 4;
                    }
                    (mine, req)
                })
            })
            .collect();
        tokio::time::sleep_until(deadline.into()).await;
        kill9(&mut p);
        for s in senders {
            let (mine, last) = s.await.unwrap();
            acked.extend(mine);
            next_req = next_req.max(last);
        }
        next_req += 4;
        // Recovery: replay, then everything acked is there exactly once.
        let mut p = spawn(&data, None);
        p.ready().await;
        kill9(&mut p);
        check(&data, &acked, next_req);
    }
    assert!(
        acked.len() > 20,
        "too few acked requests to mean anything: {}",
        acked.len()
    );
    // A clean start and shutdown leaves no orphan files, and sweeps the
    // staging file of an upload killed between its write and its rename
    // (planted, as the kills above leave one only by chance).
    let staged = data.join("parquet/default/otel_traces/_manifest/99999999999999999999.json#7");
    std::fs::write(&staged, b"").unwrap();
    let mut p = spawn(&data, None);
    p.ready().await;
    let _ = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status();
    assert!(p.child.wait().unwrap().success());
    no_orphans(&data);
    check(&data, &acked, next_req);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_parquet_write_and_manifest_commit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = spawn(&data, Some("after_parquet_write"));
    p.ready().await;
    let mut acked = BTreeSet::new();
    for req in 0..20 {
        if send_request(&p.http, req).await {
            acked.insert(req);
        }
    }
    // The first flush writes a file and aborts before committing it.
    let status = tokio::task::spawn_blocking(move || {
        let s = p.child.wait().unwrap();
        drop(p);
        s
    })
    .await
    .unwrap();
    assert!(!status.success(), "the crash point must have fired");
    assert!(
        !parquet_files(&data.join("parquet")).is_empty(),
        "an uncommitted file was left"
    );
    assert!(!acked.is_empty());
    // Restart: the orphan is never visible and is collected; the WAL restores all.
    let mut p = spawn(&data, None);
    p.ready().await;
    let r = reqwest::Client::new()
                .post(format!("{}/api/v2/sql?format=csv", p.http))
        .header("content-type", "application/json")
        .body(r#"{"sql":"SELECT count(*) = count(DISTINCT span_name) AS exactly_once FROM otel_traces"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "exactly_once\ntrue\n");
    let _ = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status();
    assert!(p.child.wait().unwrap().success());
    no_orphans(&data);
    check(&data, &acked, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_replay_and_twice_replayed_data_is_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = spawn(&data, None);
    p.ready().await;
    let mut acked = BTreeSet::new();
    for req in 0..30 {
        send_acked(&p.http, req).await;
        acked.insert(req);
    }
    kill9(&mut p);
    // Replay aborts half-way, twice; then a full replay.
    for _ in 0..2 {
        let mut p = spawn(&data, Some("during_replay:2"));
        assert!(
            !p.wait_ready().await,
            "the crash point must fire during replay"
        );
    }
    let mut p = spawn(&data, None);
    p.ready().await;
    kill9(&mut p);
    // And once more: replaying what may already be flushed adds nothing.
    let mut p = spawn(&data, None);
    p.ready().await;
    tokio::time::sleep(Duration::from_millis(400)).await; // let it flush
    kill9(&mut p);
    check(&data, &acked, 30);
    assert_eq!(stored(&data).len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_a_wal_write_before_its_ack() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = spawn(&data, None);
    p.ready().await;
    let mut acked = BTreeSet::new();
    for req in 0..5 {
        send_acked(&p.http, req).await;
        acked.insert(req);
    }
    kill9(&mut p);
    // The 3rd write of the next run aborts between write and fsync/ack.
    let mut p = spawn(&data, Some("after_wal_write:3"));
    p.ready().await;
    for req in 5..10 {
        if send_request(&p.http, req).await {
            acked.insert(req);
        }
    }
    let _ = p.child.wait();
    assert_eq!(
        acked.len(),
        7,
        "two writes succeeded before the crash point"
    );
    let mut p = spawn(&data, None);
    p.ready().await;
    kill9(&mut p);
    check(&data, &acked, 10);
}

/// Bytes of the WAL's segment files.
fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

async fn buffered_bytes(http: &str) -> u64 {
    crate::support::metric_value(http, "telemetryflow_buffered_bytes")
        .await
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_under_load_writes_are_accepted_as_soon_as_ready() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Nothing is flushed by age or size: what was sent stays in the WAL.
    let env = [
        ("TELEMETRYFLOW_BUFFER_FLUSH_INTERVAL_MS", "600000"),
        ("TELEMETRYFLOW_BUFFER_FLUSH_ROWS", "10000000"),
        ("TELEMETRYFLOW_BUFFER_MAX_BUFFERED_BYTES", "33554432"),
        ("TELEMETRYFLOW_WAL_SEGMENT_BYTES", "67108864"),
    ];
    let mut p = spawn_with(&data, None, &env);
    p.ready().await;
    let body = |req: u32| {
        let spans = (0..500u32)
            .map(|i| {
                let mut s = span(1, 1, &format!("r{req}-{i}"), T0 + u64::from(i) * SEC);
                s.span_id = (u64::from(req) << 32 | u64::from(i) | 1)
                    .to_be_bytes()
                    .to_vec();
                s
            })
            .collect();
        traces("load", spans).encode_to_vec()
    };
    let senders: Vec<_> = (0..4u32)
        .map(|k| {
            let (http, bodies) = (
                p.http.clone(),
                (0..12).map(|n| body(k * 100 + n)).collect::<Vec<_>>(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = 0;
                for b in bodies {
                    let r = client
                        .post(format!("{http}/v1/traces"))
                        .header("content-type", "application/x-protobuf")
                        .body(b)
                        .send()
                        .await;
                    acked += u32::from(r.is_ok_and(|r| r.status().as_u16() == 200));
                }
                acked
            })
        })
        .collect();
    // Kill while the last requests are still arriving.
    let mut acked = 0;
    for (i, s) in senders.into_iter().enumerate() {
        if i == 3 {
            kill9(&mut p);
        }
        acked += s.await.unwrap();
    }
    assert!(
        acked >= 30,
        "too little load before the kill: {acked} requests"
    );
    let on_disk = wal_bytes(&data);

    let mut p = spawn_with(&data, None, &env);
    p.ready().await;
    // The first write after /readyz is accepted, not refused as overloaded.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", p.http))
        .header("content-type", "application/x-protobuf")
        .body(body(9_999))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    // Replayed rows are accounted by the memory they hold: about the size
    // of the records they came from, not once per column sharing it — so
    // they fit the budget and stay buffered (no flush was forced).
    let buffered = buffered_bytes(&p.http).await;
    assert!(
        (on_disk / 2..=2 * on_disk).contains(&buffered),
        "{buffered} bytes accounted for {on_disk} bytes of WAL ({acked} requests acked)"
    );
}

/// Compaction killed at each of its steps — outputs written but not
/// committed, committed but inputs not deleted, some inputs deleted but
/// still recorded — while clients send: afterwards every acknowledged span
/// is stored exactly once (the old files or the new one, never both or
/// neither), and a final pass leaves no file on disk the manifest does not
/// hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_killed_at_every_step_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A pass every second; the data's hour (T0) closed long ago.
    let env = [
        ("TELEMETRYFLOW_COMPACTION_INTERVAL_SECS", "1"),
        ("TELEMETRYFLOW_COMPACTION_MIN_FILES", "2"),
        ("TELEMETRYFLOW_COMPACTION_SETTLE_SECS", "0"),
    ];
    let mut acked = BTreeSet::new();
    let mut next = 0u32;
    for point in [
        "after_compaction_write",
        "after_compaction_commit",
        "during_gc_delete",
    ] {
        let mut p = spawn_with(&data, Some(point), &env);
        if !p.wait_ready().await {
            // Start-up's collection deletes what the last crash replaced:
            // the point can fire before the server is ready.
            let status = p.child.wait().unwrap();
            assert!(!status.success(), "{point}: exited without crashing");
            check(&data, &acked, next);
            continue;
        }
        let started = Instant::now();
        while p.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{point} was never reached"
            );
            if send_request(&p.http, next).await {
                acked.insert(next);
            }
            next += 1;
        }
        check(&data, &acked, next);
    }
    // A clean run folds everything in, deletes what was replaced (grace 0)
    // and whatever the crashes left uncommitted.
    let mut p = spawn_with(&data, None, &env);
    p.ready().await;
    for _ in 0..3 {
        send_acked(&p.http, next).await;
        acked.insert(next);
        next += 1;
    }
    // Until a pass merged, every file it replaced was deleted (the pass's
    // collection, grace 0, may take a while: it also sweeps orphans), and
    // the next pass (a second later) changed nothing more.
    let reading = || async {
        let m = |name: &'static str| crate::support::metric_value(&p.http, name);
        let n = |v: String| v.parse::<u64>().unwrap();
        (
            n(m("telemetryflow_compactions_total").await),
            n(m("telemetryflow_compaction_files_in_total").await),
            n(m("telemetryflow_files_deleted_total").await),
        )
    };
    let started = Instant::now();
    let mut last = reading().await;
    loop {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let now = reading().await;
        let (merges, replaced, deleted) = now;
        if merges >= 1 && deleted >= replaced && now == last {
            break;
        }
        last = now;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "compaction never settled: {now:?}; log:\n{}",
            p.log()
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status();
    assert!(p.child.wait().unwrap().success());
    let log = p.log();
    check(&data, &acked, next);
    let stored_rows: usize = stored(&data).values().map(Vec::len).sum();
    let on_disk: i64 = parquet_files(&data.join("parquet"))
        .iter()
        .map(|f| {
            let file = std::fs::File::open(f).unwrap();
            parquet::file::reader::SerializedFileReader::new(file)
                .map(|r| {
                    use parquet::file::reader::FileReader as _;
                    r.metadata().file_metadata().num_rows()
                })
                .unwrap()
        })
        .sum();
    assert_eq!(
        on_disk as usize,
        stored_rows,
        "rows in files on disk = rows the manifest holds (no replaced or orphan file left); \
         files: {:?}; last server's log:\n{log}",
        parquet_files(&data.join("parquet"))
    );
}

/// Two nodes (each its own data directory: WAL and node id) on one bucket,
/// flushing and compacting the same tenant's partitions at once, both
/// killed and restarted: each acknowledged span is stored exactly once. A
/// node's commits never make the other skip its own uncommitted rows on
/// replay (watermarks are per node), and of two merges of the same files
/// only one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_bucket_flush_compact_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let url = format!("file://{}", bucket.display());
    let env = [
        ("TELEMETRYFLOW_STORAGE_URL", url.as_str()),
        ("TELEMETRYFLOW_COMPACTION_INTERVAL_SECS", "1"),
        ("TELEMETRYFLOW_COMPACTION_MIN_FILES", "2"),
        ("TELEMETRYFLOW_COMPACTION_SETTLE_SECS", "0"),
        // Replaced files outlive the test: the other node may still list them.
        ("TELEMETRYFLOW_STORAGE_GC_GRACE_SECS", "3600"),
    ];
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut acked = BTreeSet::new();
    let mut next = 0u32;
    for round in 0..3 {
        let mut pa = spawn_with(&a, None, &env);
        let mut pb = spawn_with(&b, None, &env);
        pa.ready().await;
        pb.ready().await;
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            let http = if next.is_multiple_of(2) {
                &pa.http
            } else {
                &pb.http
            };
            if send_request(http, next).await {
                acked.insert(next);
            }
            next += 1;
        }
        if round < 2 {
            kill9(&mut pa);
            kill9(&mut pb);
        } else {
            for p in [&mut pa, &mut pb] {
                let _ = Command::new("kill")
                    .args(["-TERM", &p.child.id().to_string()])
                    .status();
                assert!(p.child.wait().unwrap().success());
            }
        }
    }
    // Both shut down cleanly: everything is in the bucket, and either node's
    // view of it holds every acknowledged span once.
    let bucket_env = [("TELEMETRYFLOW_STORAGE_URL", url.as_str())];
    for data in [&a, &b] {
        let by_req = stored_with(data, &bucket_env);
        for req in &acked {
            let names = by_req
                .get(req)
                .unwrap_or_else(|| panic!("acked request {req} lost"));
            assert_eq!(
                names.len(),
                usize::from(SPANS_PER_REQUEST),
                "request {req}: {names:?}"
            );
        }
        for (req, names) in &by_req {
            let distinct: BTreeSet<&String> = names.iter().collect();
            assert_eq!(distinct.len(), names.len(), "request {req} duplicated");
        }
    }
    assert!(
        acked.len() > 20,
        "too little load: {} requests",
        acked.len()
    );
}

/// Kill -9 in the middle of a retention pass — right after it removed the
/// expired partitions from the manifest, and while it deletes their files —
/// with expired rows both in flushed files and only in the WAL: afterwards
/// nothing expired is visible (not from files, not from replay), every
/// unexpired acknowledged span is there exactly once, and no file is left
/// that no manifest records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_pass_killed_midway_loses_nothing_unexpired_and_revives_nothing() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let old = now - 72 * 3600 * SEC;
    let keep_a_day = [(
        "TELEMETRYFLOW_RETENTION_TABLES",
        r#"{ otel_traces = "24h" }"#,
    )];
    for point in ["after_expiry_commit", "during_gc_delete"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Old and recent spans, flushed; then more of both, only in the WAL.
        let mut p = spawn(&data, None);
        p.ready().await;
        for req in 0..6 {
            send_acked_at(&p.http, req, old + u64::from(req) * SEC).await;
        }
        for req in 6..10 {
            send_acked_at(&p.http, req, now + u64::from(req) * SEC).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(hours_on_disk(&data).contains(&(old - old % HOUR)));
        for req in 10..13 {
            send_acked_at(&p.http, req, old + u64::from(req) * SEC).await;
        }
        for req in 13..16 {
            send_acked_at(&p.http, req, now + u64::from(req) * SEC).await;
        }
        kill9(&mut p);
        // With the rule now in force, the start-up pass dies at `point`.
        let mut env = keep_a_day.to_vec();
        env.push(("TFLOW_CRASH_AT", point));
        let mut p = spawn_with(&data, None, &env);
        let started = Instant::now();
        let status = loop {
            if let Some(s) = p.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{point}: the crash point never fired; log:\n{}",
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!status.success(), "{point}: {status:?}");
        drop(p);
        // Restart: the pass completes; replay keeps expired WAL rows out.
        let mut p = spawn_with(&data, None, &keep_a_day);
        p.ready().await;
        let _ = reqwest::Client::new()
            .post(format!("{}/api/v2/admin/retention", p.http))
            .send()
            .await
            .unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &p.child.id().to_string()])
            .status();
        assert!(p.child.wait().unwrap().success(), "{}", p.log());
        let by_req = stored_with(&data, &keep_a_day);
        let reqs: Vec<u32> = by_req.keys().copied().collect();
        assert_eq!(
            reqs,
            (6..10).chain(13..16).collect::<Vec<_>>(),
            "{point}: exactly the unexpired requests"
        );
        for (req, names) in &by_req {
            assert_eq!(
                names.len(),
                usize::from(SPANS_PER_REQUEST),
                "{point}: request {req} once, whole"
            );
        }
        no_orphans(&data);
        // Deleted, not just hidden (the grace period is 0 here).
        let cut = now - 24 * HOUR;
        assert!(
            hours_on_disk(&data).iter().all(|&h| h + HOUR > cut),
            "{point}: expired files left on disk"
        );
    }
}

const HOUR: u64 = 3600 * SEC;

/// Start of the hour partition of every traces file on disk (from the
/// `date=…/hour=…` directories).
fn hours_on_disk(data: &Path) -> BTreeSet<u64> {
    parquet_files(&data.join("parquet"))
        .iter()
        .map(|f| {
            let s = f.to_string_lossy();
            let date = s.split("date=").nth(1).unwrap().split('/').next().unwrap();
            let hour: u32 = s
                .split("hour=")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
            let t = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
            t.timestamp_nanos_opt().unwrap() as u64
        })
        .collect()
}

/// The server runs with transparent huge pages off (the kernel reports the
/// process's flag in `/proc/<pid>/status`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), None);
    assert!(p.wait_ready().await, "{}", p.log());
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status();
    let _ = p.child.wait();
    // Kernels before 5.0 do not print the flag; then there is nothing to check.
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}
