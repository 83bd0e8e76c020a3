//! The fan-out of durable records, from outside: a consumer that is one
//! type and one registration line, killed with SIGKILL under load, counts
//! every stored record exactly once — what it persisted before each kill
//! plus what replay offered it again.
//!
//! The server runs in a child process: this test binary again, with
//! `TF_COUNTING_SERVER` naming its directory, entering
//! [`counting_server_process`] — a server with the counting subscriber
//! registered.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prost::Message;
use serde::{Deserialize, Serialize};

use telemetryflow::application::ports::WalRecord;
use telemetryflow::application::records::{DurableLog, DurableSubscriber};

use crate::fixtures::*;
use crate::support::test_config;

const CHILD: &str = "TF_COUNTING_SERVER";
const SPANS_PER_REQUEST: u8 = 4;

/// What the counter persists: every record through `position` is counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Counted {
    position: u64,
    records: u64,
    spans: u64,
    /// Records offered again at or below the saved position.
    offered_twice: u64,
}

/// A durable subscriber that counts records and rows, saving its count and
/// position together (temporary file, fsync, rename) before it tells the
/// log it may release them.
struct RecordCounter {
    file: PathBuf,
    saved: Mutex<Counted>,
    position: AtomicU64,
    offered: Mutex<Vec<(u64, u64)>>,
}

impl RecordCounter {
    fn load(file: PathBuf) -> Self {
        let saved: Counted = std::fs::read(&file)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("counter file"))
            .unwrap_or_default();
        Self {
            file,
            position: AtomicU64::new(saved.position),
            saved: Mutex::new(saved),
            offered: Mutex::new(Vec::new()),
        }
    }

    fn save(&self, counted: Counted) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = self.file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&counted)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)?;
        if let Some(dir) = self.file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl DurableSubscriber for RecordCounter {
    fn name(&self) -> &str {
        "record-counter"
    }

    fn position(&self) -> u64 {
        self.position.load(Ordering::SeqCst)
    }

    fn offer(&self, record: &WalRecord) {
        let rows = record.batches.iter().map(|b| b.batch.num_rows() as u64);
        self.offered.lock().push((record.seq, rows.sum()));
    }

    fn pending(&self) -> usize {
        self.offered.lock().len()
    }

    async fn run(self: Arc<Self>, log: DurableLog, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let taken = std::mem::take(&mut *self.offered.lock());
            if !taken.is_empty() {
                let mut next = *self.saved.lock();
                for (seq, spans) in taken {
                    if seq <= next.position {
                        next.offered_twice += 1;
                        continue;
                    }
                    next.position = seq;
                    next.records += 1;
                    next.spans += spans;
                }
                self.save(next).expect("counter saved");
                *self.saved.lock() = next;
                self.position.store(next.position, Ordering::SeqCst);
                log.advanced();
            }
            // A slow consumer: the log flushes and releases far more often,
            // so every kill finds records it has not saved yet.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(400)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Not a test of its own: the server process of
/// [`a_durable_subscriber_killed_under_load_counts_every_record_once`]. It
/// returns at once unless `TF_COUNTING_SERVER` names a directory; then it
/// serves on it, with the counter registered, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_server_process() {
    let Some(dir) = std::env::var_os(CHILD).map(PathBuf::from) else {
        return;
    };
    let mut config = test_config(&dir.join("data"));
    config.buffer.flush_rows = std::num::NonZero::new(64).unwrap();
    config.buffer.flush_interval_ms = std::num::NonZero::new(150).unwrap();
    config.wal.segment_bytes = std::num::NonZero::new(65536).unwrap();
    let counter = Arc::new(RecordCounter::load(dir.join("counter.json")));
    let server = telemetryflow::bootstrap::start_with_subscribers(config, None, vec![counter])
        .await
        .expect("server starts");
    let addr = dir.join("http.addr");
    std::fs::write(addr.with_extension("tmp"), server.http_addr.to_string()).unwrap();
    std::fs::rename(addr.with_extension("tmp"), &addr).unwrap();
    std::future::pending::<()>().await;
}

struct Child9 {
    child: Child,
    http: String,
}

impl Child9 {
    /// Starts the counting server on `dir` and waits until it accepts writes.
    async fn start(dir: &Path) -> Self {
        let _ = std::fs::remove_file(dir.join("http.addr"));
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "records::counting_server_process", "--nocapture"])
            .env(CHILD, dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let http = loop {
            if let Ok(a) = std::fs::read_to_string(dir.join("http.addr")) {
                break format!("http://{a}");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no server");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        loop {
            if let Ok(r) = reqwest::get(format!("{http}/readyz")).await
                && r.status().as_u16() == 200
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, http }
    }

    fn kill9(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Spans stored, as the server's SQL API counts them.
    async fn stored_spans(&self) -> u64 {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2/sql?format=json", self.http))
            .header("content-type", "application/json")
            .body(r#"{"sql":"SELECT count(*) AS n FROM otel_traces"}"#)
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        v["rows"][0][0]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {v}"))
    }
}

impl Drop for Child9 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(http: &str, req: u32) -> bool {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| span(1, i + 1, &format!("r{req}-{i}"), T0 + u64::from(req) * SEC))
        .collect();
    let body = traces("counted", spans).encode_to_vec();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}

fn counted(dir: &Path) -> Counted {
    std::fs::read(dir.join("counter.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscriber_killed_under_load_counts_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut next = 0u32;
    for round in 0..4u64 {
        let server = Child9::start(dir.path()).await;
        // Load from two clients, killed mid-stream at a different moment
        // each round.
        let deadline = Instant::now() + Duration::from_millis(300 + 170 * round);
        let (a, b) = (next, next + 1_000_000);
        let (mut i, mut j) = (0u32, 0u32);
        while Instant::now() < deadline {
            let (ra, rb) = tokio::join!(send(&server.http, a + i), send(&server.http, b + j));
            if ra {
                acked.insert(a + i);
            }
            if rb {
                acked.insert(b + j);
            }
            i += 1;
            j += 1;
        }
        next += i + 1;
        server.kill9();
    }
    // A last start: replay offers the counter what it had not saved.
    let server = Child9::start(dir.path()).await;
    let started = Instant::now();
    let (stored, count) = loop {
        let stored = server.stored_spans().await;
        let count = counted(dir.path());
        if count.spans == stored || started.elapsed() > Duration::from_secs(30) {
            break (stored, count);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.kill9();
    let acked_spans = acked.len() as u64 * u64::from(SPANS_PER_REQUEST);
    assert_eq!(count.offered_twice, 0, "{count:?}");
    assert!(acked_spans > 0, "nothing was acknowledged");
    assert_eq!(
        count.spans, stored,
        "the counter ({count:?}) and the store ({stored} spans) disagree"
    );
    assert!(
        stored >= acked_spans,
        "{acked_spans} spans acknowledged, {stored} stored"
    );
    assert_eq!(
        stored % u64::from(SPANS_PER_REQUEST),
        0,
        "a request is half-stored"
    );
    // Nothing it saved is counted again after one more restart.
    let server = Child9::start(dir.path()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counted(dir.path()), count);
    assert_eq!(server.stored_spans().await, stored);
    server.kill9();
}
