//! Test support: a real server on ephemeral ports, and SQL helpers.

use std::path::PathBuf;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::arrow;
use telemetryflow::Config;
use telemetryflow::infrastructure::query::format::from_arrow_ipc;

pub struct TestServer {
    pub server: Option<telemetryflow::Server>,
    pub dir: tempfile::TempDir,
    pub grpc: String,
    pub http: String,
}

pub(crate) fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
    c.server.http_addr = "127.0.0.1:0".parse().unwrap();
    c.storage.data_dir = dir.to_path_buf();
    c.server.shutdown_timeout_secs = 10;
    c
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        Self::from_config(config, dir, None).await
    }

    /// Starts a server on `dir` (kept alive by the returned value) and waits
    /// until it accepts writes.
    pub async fn from_config(
        config: Config,
        dir: tempfile::TempDir,
        store: Option<std::sync::Arc<dyn object_store::ObjectStore>>,
    ) -> Self {
        let mut server = telemetryflow::bootstrap::start_with_store(config, store)
            .await
            .expect("server starts");
        server.ready().await.expect("WAL replay");
        Self {
            grpc: format!("http://{}", server.grpc_addr),
            http: format!("http://{}", server.http_addr),
            server: Some(server),
            dir,
        }
    }

    pub fn parquet_dir(&self) -> PathBuf {
        self.dir.path().join("parquet")
    }

    /// Runs SQL through the HTTP API as `tenant`; panics on an error status.
    pub async fn sql_as(&self, tenant: &str, sql: &str) -> Vec<RecordBatch> {
        let (status, body) = self.sql_raw(tenant, sql, "arrow").await;
        assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&body));
        from_arrow_ipc(&body, false).unwrap().batches
    }

    pub async fn sql(&self, sql: &str) -> Vec<RecordBatch> {
        self.sql_as("default", sql).await
    }

    pub async fn sql_raw(&self, tenant: &str, sql: &str, format: &str) -> (u16, Vec<u8>) {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2/sql?format={format}", self.http))
            .header("x-tenant-id", tenant)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "sql": sql }).to_string())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
    }

    /// Polls `sql` until its first column's first value, as text, equals `want`
    /// (data from async SDK exporters arrives a little later), or fails.
    pub async fn wait_for_count(&self, sql: &str, want: u64) {
        let mut last = String::new();
        for _ in 0..100 {
            let batches = self.sql(sql).await;
            last = first_value(&batches);
            if last == want.to_string() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{sql}: wanted {want}, last saw {last}");
    }

    /// Flushes every buffered partition to Parquet now.
    pub async fn flush(&self) {
        self.server
            .as_ref()
            .expect("server running")
            .pipeline
            .flush_due(true)
            .await
            .expect("flush");
    }

    pub async fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }
}

pub(crate) fn first_value(batches: &[RecordBatch]) -> String {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| arrow::util::display::array_value_to_string(b.column(0), 0).unwrap())
        .unwrap_or_default()
}

/// Every `*.parquet` file under `dir`.
pub(crate) fn parquet_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A port nothing listens on right now (for spawning the real binary).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the unlabelled metric `name` in the server's `/metrics`.
pub(crate) async fn metric_value(http: &str, name: &str) -> String {
    let text = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .to_owned()
}

/// Runs the `telemetryflow` binary with `args` and `env`; panics with its
/// stderr unless it succeeds; returns its stdout.
pub(crate) fn run_cli(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_telemetryflow"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The real binary, started on ephemeral ports (`127.0.0.1:0`: no port is
/// picked and released first, so parallel tests never race for one). Its
/// JSON log goes to a file; the bound addresses are read from its
/// "serving" line, and [`ServerProcess::log`] is shown when a test fails.
pub(crate) struct ServerProcess {
    pub(crate) child: std::process::Child,
    /// `http://HOST:PORT`, known once [`ServerProcess::wait_ready`] saw it.
    pub(crate) http: String,
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Runs `serve` with `cmd`'s settings (the address flags are added here).
    pub(crate) fn spawn(mut cmd: std::process::Command) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        cmd.args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env("TELEMETRYFLOW_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap());
        Self {
            child: cmd.spawn().unwrap(),
            http: String::new(),
            log,
        }
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The HTTP address from the "serving" log line, once written.
    fn bound_http(&self) -> Option<String> {
        self.log().lines().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = v.get("fields")?;
            (fields.get("message")?.as_str()? == "TelemetryFlow serving OTLP").then(|| {
                fields
                    .get("http_addr")?
                    .as_str()
                    .map(|a| format!("http://{a}"))
            })?
        })
    }

    /// Waits for `/readyz` = 200 (true) or for the process to exit (false).
    pub(crate) async fn wait_ready(&mut self) -> bool {
        let started = std::time::Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.http.is_empty() {
                self.http = self.bound_http().unwrap_or_default();
            }
            if !self.http.is_empty()
                && let Ok(r) = reqwest::get(format!("{}/readyz", self.http)).await
                && r.status().as_u16() == 200
            {
                return true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server not ready after 60 s; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// As [`ServerProcess::wait_ready`], failing the test (with the log)
    /// when the server exits instead.
    pub(crate) async fn ready(&mut self) {
        assert!(
            self.wait_ready().await,
            "the server exited ({:?}); its log:\n{}",
            self.child.try_wait(),
            self.log()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
