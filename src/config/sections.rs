//! The sections whose keys are plain numbers, switches and addresses:
//! `[server]`, `[buffer]`, `[wal]`, `[ingest]`, `[query]`, `[compaction]`
//! and `[log]`, with what the server builds from them.

use std::net::SocketAddr;
use std::num::{NonZero, NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Config, ConfigError, Result};
use crate::infrastructure::tls::{ServerTls, TlsFile, TlsFiles};

/// `[server]`: listeners and requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    #[serde(deserialize_with = "host_port")]
    pub grpc_addr: SocketAddr,
    #[serde(deserialize_with = "host_port")]
    pub http_addr: SocketAddr,
    pub max_request_bytes: NonZeroUsize,
    pub cors_allowed_origins: Vec<String>,
    pub shutdown_timeout_secs: u64,
    /// A listener serving only `GET /metrics`, without a key (for a
    /// Prometheus on a private network); none by default.
    #[serde(with = "optional_host_port")]
    pub metrics_addr: Option<SocketAddr>,
    /// Both listeners serve TLS with this certificate chain (PEM) and key;
    /// both or neither (see [`Config::server_tls`]).
    #[serde(with = "optional_path")]
    pub tls_cert: Option<PathBuf>,
    #[serde(with = "optional_path")]
    pub tls_key: Option<PathBuf>,
    /// Clients must present a certificate signed by one of these CAs
    /// (PEM bundle): mutual TLS. Only with `tls_cert` and `tls_key`.
    #[serde(with = "optional_path")]
    pub tls_client_ca: Option<PathBuf>,
    /// Tenants with counters of their own in `/metrics`; beyond them new
    /// tenants share the `tenant="_other"` series (idle tenants drop out
    /// after an hour and make room).
    pub metrics_max_tenants: NonZeroUsize,
    /// Open connections per listener; beyond them the listener stops
    /// accepting until one closes.
    pub max_connections: NonZeroUsize,
    /// An HTTP/1 request's headers must arrive within this.
    pub header_read_timeout_secs: NonZeroU64,
    /// A request body idle for longer than this between two reads fails
    /// (both listeners).
    pub body_read_timeout_secs: NonZeroU64,
    /// HTTP/2 streams (gRPC calls) one connection may have open at once.
    pub max_concurrent_streams: NonZeroU32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_request_bytes: NonZero::new(64 << 20).unwrap(),
            cors_allowed_origins: Vec::new(),
            shutdown_timeout_secs: 30,
            metrics_addr: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            metrics_max_tenants: NonZero::new(1000).unwrap(),
            max_connections: NonZero::new(4096).unwrap(),
            header_read_timeout_secs: NonZero::new(10).unwrap(),
            body_read_timeout_secs: NonZero::new(30).unwrap(),
            max_concurrent_streams: NonZero::new(256).unwrap(),
        }
    }
}

impl ServerSettings {
    /// What each listener allows one client.
    pub fn connection_limits(&self) -> crate::infrastructure::serve::ConnectionLimits {
        crate::infrastructure::serve::ConnectionLimits {
            max_connections: self.max_connections.get(),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.get()),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_secs.get()),
            max_concurrent_streams: self.max_concurrent_streams.get(),
        }
    }
}

/// An optional listen address: the empty string is none (so that the key
/// has a default, and an environment variable, like every other).
mod optional_host_port {
    use std::net::SocketAddr;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        addr: &Option<SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match addr {
            Some(a) => s.collect_str(a),
            None => s.serialize_str(""),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{s:?} is not HOST:PORT ({e})")))
    }
}

/// `[auth]`: who may send and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// With mode `none`, serve on addresses other than loopback anyway.
    pub allow_unauthenticated: bool,
    /// How often each node reads the keys again (revocations and new keys
    /// take effect within it).
    pub refresh_secs: NonZeroU64,
    /// Failed authentications per minute from one address before it gets
    /// 429 (Too Many Requests) instead of 401.
    pub max_failures_per_minute: NonZeroU64,
    /// A file holding the secret tokens are signed with (at least 32
    /// bytes, the same on every node). Without it the secret is kept in
    /// the store, and whoever can read the store can forge tokens.
    #[serde(with = "optional_path")]
    pub token_signing_secret_file: Option<std::path::PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            allow_unauthenticated: false,
            refresh_secs: NonZero::new(2).unwrap(),
            max_failures_per_minute: NonZero::new(10).unwrap(),
            token_signing_secret_file: None,
        }
    }
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No keys: requests name their tenant in `X-Tenant-ID`. Loopback only,
    /// unless `allow_unauthenticated`.
    None,
    /// Every entry point but the health checks needs an API key.
    ApiKey,
}

/// An optional file: the empty string is none (so that the key has a
/// default, and an environment variable, like every other).
pub(super) mod optional_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(in crate::config) fn serialize<S: Serializer>(
        path: &Option<PathBuf>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match path {
            Some(p) => p.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PathBuf>, D::Error> {
        let path = PathBuf::deserialize(d)?;
        Ok((!path.as_os_str().is_empty()).then_some(path))
    }
}

/// A listen address, `IP:PORT`.
fn host_port<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|e| D::Error::custom(format!("{s:?} is not HOST:PORT ({e})")))
}

/// `[buffer]`: when a partition is written as a Parquet file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferSettings {
    pub flush_rows: NonZeroUsize,
    pub flush_bytes: NonZeroUsize,
    pub flush_interval_ms: NonZeroU64,
    pub max_buffered_bytes: NonZeroUsize,
}

impl Default for BufferSettings {
    fn default() -> Self {
        let d = crate::application::pipeline::BufferConfig::default();
        Self {
            flush_rows: NonZero::new(d.flush_rows).unwrap(),
            flush_bytes: NonZero::new(d.flush_bytes).unwrap(),
            flush_interval_ms: NonZero::new(d.max_age.as_millis() as u64).unwrap(),
            max_buffered_bytes: NonZero::new(d.max_buffered_bytes).unwrap(),
        }
    }
}

/// `[wal]`: the write-ahead log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSettings {
    pub fsync: bool,
    pub segment_bytes: NonZeroU64,
    pub max_bytes: NonZeroU64,
    pub queue_capacity: NonZeroUsize,
}

impl Default for WalSettings {
    fn default() -> Self {
        Self {
            fsync: true,
            segment_bytes: NonZero::new(64 << 20).unwrap(),
            max_bytes: NonZero::new(4 << 30).unwrap(),
            queue_capacity: NonZero::new(1024).unwrap(),
        }
    }
}

/// `[ingest]`: the rules applied to accepted items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    pub max_counter_series: NonZeroUsize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_counter_series: NonZero::new(1_000_000).unwrap(),
        }
    }
}

/// `[query]`: limits of queries and the time-series cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySettings {
    pub timeout_secs: NonZeroU64,
    pub memory_limit_mb: NonZeroUsize,
    pub max_rows: NonZeroUsize,
    /// 0 disables the cache.
    pub cache_ttl_secs: u64,
    pub cache_max_entries: u64,
    pub max_sql_bytes: NonZeroUsize,
    pub max_expr_depth: NonZeroUsize,
    pub max_in_list: NonZeroUsize,
    /// 0: one per CPU.
    pub threads: usize,
    pub max_concurrent: NonZeroUsize,
    /// How long a compaction or retention pass asked for over HTTP may run.
    pub admin_timeout_secs: NonZeroU64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        let sql = crate::infrastructure::query::guard::SqlLimits::default();
        let executor = crate::infrastructure::query::engine::ExecutorConfig::default();
        Self {
            timeout_secs: NonZero::new(30).unwrap(),
            memory_limit_mb: NonZero::new(1024).unwrap(),
            max_rows: NonZero::new(100_000).unwrap(),
            cache_ttl_secs: 300,
            cache_max_entries: 10_000,
            max_sql_bytes: NonZero::new(sql.max_sql_bytes).unwrap(),
            max_expr_depth: NonZero::new(sql.max_expr_depth).unwrap(),
            max_in_list: NonZero::new(sql.max_in_list).unwrap(),
            threads: executor.threads,
            max_concurrent: NonZero::new(executor.max_concurrent).unwrap(),
            admin_timeout_secs: NonZero::new(600).unwrap(),
        }
    }
}

/// `[compaction]`: merging small files in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionSettings {
    pub enabled: bool,
    pub interval_secs: NonZeroU64,
    pub target_file_mb: NonZeroU64,
    #[serde(deserialize_with = "file_count")]
    pub min_files: usize,
    pub max_input_mb: NonZeroU64,
    #[serde(deserialize_with = "file_count")]
    pub max_inputs: usize,
    pub settle_secs: u64,
    /// A share of one core, in (0, 1].
    #[serde(deserialize_with = "cpu_share")]
    pub max_cpu_share: f64,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        let d = crate::application::compaction::CompactionPolicy::default();
        Self {
            enabled: true,
            interval_secs: NonZero::new(60).unwrap(),
            target_file_mb: NonZero::new(d.target_file_bytes >> 20).unwrap(),
            min_files: d.min_files,
            max_input_mb: NonZero::new(d.max_input_bytes >> 20).unwrap(),
            max_inputs: d.max_inputs,
            settle_secs: d.settle.as_secs(),
            max_cpu_share: 0.25,
        }
    }
}

/// A number of files a merge takes: two at least.
fn file_count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n < 2 {
        return Err(D::Error::custom(format!(
            "{n}: must be at least 2 (a merge takes two files or more)"
        )));
    }
    Ok(n)
}

fn cpu_share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let share = f64::deserialize(d)?;
    if !(share > 0.0 && share <= 1.0) {
        return Err(D::Error::custom(format!(
            "{share}: use a share of one core, in (0, 1]"
        )));
    }
    Ok(share)
}

/// `[log]`: the server's own log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. "info" or "telemetryflow=debug,info".
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The listeners' TLS files: none unless `server.tls_cert` and
    /// `server.tls_key` are both set; an error names the key missing.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>> {
        let s = &self.server;
        let bad = |key: &str, message: &str| ConfigError::BadValue {
            key: format!("server.{key}"),
            message: message.into(),
        };
        match (&s.tls_cert, &s.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: s.tls_client_ca.clone(),
            })),
            (Some(_), None) => Err(bad(
                "tls_key",
                "missing: server.tls_cert is set (both or neither)",
            )),
            (None, Some(_)) => Err(bad(
                "tls_cert",
                "missing: server.tls_key is set (both or neither)",
            )),
            (None, None) if s.tls_client_ca.is_some() => Err(bad(
                "tls_client_ca",
                "needs server.tls_cert and server.tls_key (clients are verified over TLS)",
            )),
            (None, None) => Ok(None),
        }
    }

    /// The listeners' TLS, its files read and checked; an error names the
    /// key of the file it is about.
    pub fn server_tls(&self) -> Result<Option<Arc<ServerTls>>> {
        let Some(files) = self.tls_files()? else {
            return Ok(None);
        };
        ServerTls::load(files).map(Some).map_err(|e| {
            let key = match e.file {
                TlsFile::Cert => "tls_cert",
                TlsFile::Key => "tls_key",
                TlsFile::ClientCa => "tls_client_ca",
            };
            ConfigError::BadValue {
                key: format!("server.{key}"),
                message: e.to_string(),
            }
        })
    }

    pub fn query_limits(&self) -> crate::application::ports::QueryLimits {
        crate::application::ports::QueryLimits {
            timeout: Duration::from_secs(self.query.timeout_secs.get()),
            memory_bytes: self.query.memory_limit_mb.get() << 20,
            max_rows: self.query.max_rows.get(),
        }
    }

    pub fn sql_limits(&self) -> crate::infrastructure::query::guard::SqlLimits {
        crate::infrastructure::query::guard::SqlLimits {
            max_sql_bytes: self.query.max_sql_bytes.get(),
            max_expr_depth: self.query.max_expr_depth.get(),
            max_in_list: self.query.max_in_list.get(),
        }
    }

    pub fn query_executor(&self) -> crate::infrastructure::query::engine::ExecutorConfig {
        crate::infrastructure::query::engine::ExecutorConfig {
            threads: self.query.threads,
            max_concurrent: self.query.max_concurrent.get(),
            ..Default::default()
        }
    }

    pub fn compaction_policy(&self) -> crate::application::compaction::CompactionPolicy {
        let c = &self.compaction;
        crate::application::compaction::CompactionPolicy {
            target_file_bytes: c.target_file_mb.get() << 20,
            min_files: c.min_files,
            max_input_bytes: c.max_input_mb.get() << 20,
            max_inputs: c.max_inputs,
            settle: Duration::from_secs(c.settle_secs),
        }
    }

    pub fn buffer_config(&self) -> crate::application::pipeline::BufferConfig {
        let manifest_refresh = self.storage.manifest_refresh_secs;
        crate::application::pipeline::BufferConfig {
            flush_rows: self.buffer.flush_rows.get(),
            flush_bytes: self.buffer.flush_bytes.get(),
            max_age: Duration::from_millis(self.buffer.flush_interval_ms.get()),
            max_buffered_bytes: self.buffer.max_buffered_bytes.get(),
            retention: std::sync::Arc::new(self.retention_rules()),
            manifest_refresh: (manifest_refresh > 0).then(|| Duration::from_secs(manifest_refresh)),
        }
    }
}
