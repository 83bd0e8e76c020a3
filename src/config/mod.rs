//! Configuration: defaults < file (`--config`, TOML) < environment
//! (`TELEMETRYFLOW_<SECTION>_<KEY>`) < command-line flags. Every key is
//! documented in `config/telemetryflow.toml`. Unknown keys and bad values are
//! errors that name the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: unknown setting (known: {known})")]
    UnknownEnv { var: String, known: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid value for {key}: {message}")]
    BadValue { key: String, message: String },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub buffer: BufferSettings,
    pub wal: WalSettings,
    pub ingest: IngestSettings,
    pub query: QuerySettings,
    pub compaction: CompactionSettings,
    pub retention: RetentionSettings,
    /// Upstream OTLP endpoints every accepted item is forwarded to
    /// (`[[forward]]`).
    pub forward: Vec<ForwardSettings>,
    pub log: LogConfig,
}

/// `[retention]`: periods like "30d", "36h", "1w2d"; "0" keeps forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardSettings {
    pub name: String,
    pub endpoint: String,
    pub protocol: String,
    pub signals: Vec<String>,
    pub compression: String,
    pub headers: BTreeMap<String, String>,
    pub max_queue_bytes: u64,
    pub on_full: String,
    pub timeout_secs: u64,
    pub batch_bytes: usize,
    pub batch_age_ms: u64,
    pub memory_bytes: usize,
    pub retry_initial_ms: u64,
    pub retry_max_secs: u64,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        let d = crate::application::forward::ForwarderConfig::new("");
        Self {
            name: String::new(),
            endpoint: String::new(),
            protocol: "grpc".into(),
            signals: vec!["traces".into(), "metrics".into(), "logs".into()],
            compression: "gzip".into(),
            headers: BTreeMap::new(),
            max_queue_bytes: d.max_queue_bytes,
            on_full: "backpressure".into(),
            timeout_secs: 10,
            batch_bytes: d.batch_bytes,
            batch_age_ms: d.batch_age.as_millis() as u64,
            memory_bytes: d.memory_bytes,
            retry_initial_ms: d.retry_initial.as_millis() as u64,
            retry_max_secs: d.retry_max.as_secs(),
        }
    }
}

/// One `[[forward]]` entry, checked: the forwarder's settings and its
/// exporter's.
pub struct Forward {
    pub forwarder: crate::application::forward::ForwarderConfig,
    pub exporter: crate::infrastructure::otlp::export::ExporterConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    pub default: String,
    pub check_interval_secs: u64,
    /// Table name → period.
    pub tables: BTreeMap<String, String>,
    /// Tenant → (table name or "default") → period.
    pub tenants: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            default: "0".into(),
            check_interval_secs: 300,
            tables: BTreeMap::new(),
            tenants: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionSettings {
    pub enabled: bool,
    pub interval_secs: u64,
    pub target_file_mb: u64,
    pub min_files: usize,
    pub max_input_mb: u64,
    pub max_inputs: usize,
    pub settle_secs: u64,
    pub max_cpu_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub grpc_addr: String,
    pub http_addr: String,
    pub max_request_bytes: usize,
    pub cors_allowed_origins: Vec<String>,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub url: String,
    pub gc_grace_secs: u64,
    pub manifest_refresh_secs: u64,
    /// Write accepted rows to Parquet; false makes a pure forwarding
    /// sidecar (the log is only the forwarders' queue).
    pub persist: bool,
    pub row_group_rows: usize,
    pub page_rows: usize,
    pub s3: S3Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferSettings {
    pub flush_rows: usize,
    pub flush_bytes: usize,
    pub flush_interval_ms: u64,
    pub max_buffered_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSettings {
    pub fsync: bool,
    pub segment_bytes: u64,
    pub max_bytes: u64,
    pub queue_capacity: usize,
}

impl Default for WalSettings {
    fn default() -> Self {
        Self {
            fsync: true,
            segment_bytes: 64 << 20,
            max_bytes: 4 << 30,
            queue_capacity: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    pub max_counter_series: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySettings {
    pub timeout_secs: u64,
    pub memory_limit_mb: usize,
    pub max_rows: usize,
    pub cache_ttl_secs: u64,
    pub cache_max_entries: u64,
    pub max_sql_bytes: usize,
    pub max_expr_depth: usize,
    pub max_in_list: usize,
    pub threads: usize,
    pub max_concurrent: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: "127.0.0.1:4317".into(),
            http_addr: "127.0.0.1:4318".into(),
            max_request_bytes: 64 << 20,
            cors_allowed_origins: Vec::new(),
            shutdown_timeout_secs: 30,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            url: String::new(),
            gc_grace_secs: 900,
            manifest_refresh_secs: 5,
            persist: true,
            row_group_rows: 131_072,
            page_rows: 20_000,
            s3: S3Config::default(),
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
        }
    }
}

impl Default for BufferSettings {
    fn default() -> Self {
        let d = crate::application::pipeline::BufferConfig::default();
        Self {
            flush_rows: d.flush_rows,
            flush_bytes: d.flush_bytes,
            flush_interval_ms: d.max_age.as_millis() as u64,
            max_buffered_bytes: d.max_buffered_bytes,
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_counter_series: 1_000_000,
        }
    }
}

impl Default for QuerySettings {
    fn default() -> Self {
        let sql = crate::infrastructure::query::guard::SqlLimits::default();
        let executor = crate::infrastructure::query::engine::ExecutorConfig::default();
        Self {
            timeout_secs: 30,
            memory_limit_mb: 1024,
            max_rows: 100_000,
            cache_ttl_secs: 300,
            cache_max_entries: 10_000,
            max_sql_bytes: sql.max_sql_bytes,
            max_expr_depth: sql.max_expr_depth,
            max_in_list: sql.max_in_list,
            threads: executor.threads,
            max_concurrent: executor.max_concurrent,
        }
    }
}

impl Default for CompactionSettings {
    fn default() -> Self {
        let d = crate::application::compaction::CompactionPolicy::default();
        Self {
            enabled: true,
            interval_secs: 60,
            target_file_mb: d.target_file_bytes >> 20,
            min_files: d.min_files,
            max_input_mb: d.max_input_bytes >> 20,
            max_inputs: d.max_inputs,
            settle_secs: d.settle.as_secs(),
            max_cpu_share: 0.25,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// Settings given on the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
}

const ENV_PREFIX: &str = "TELEMETRYFLOW_";

/// Short environment names for the settings that also have flags.
const ENV_ALIASES: [(&str, &str); 3] = [
    ("TELEMETRYFLOW_DATA_DIR", "storage.data_dir"),
    ("TELEMETRYFLOW_GRPC_ADDR", "server.grpc_addr"),
    ("TELEMETRYFLOW_HTTP_ADDR", "server.http_addr"),
];

fn leaf_paths(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        // An empty table is a setting of its own (a map, e.g. retention.tables).
        toml::Value::Table(t) if t.is_empty() && !prefix.is_empty() => out.push(prefix.to_owned()),
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(&p, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn set_path(root: &mut toml::Value, path: &str, value: toml::Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let toml::Value::Table(t) = cur else { return };
        if parts.peek().is_none() {
            t.insert(p.to_owned(), value);
            return;
        }
        cur = t
            .entry(p.to_owned())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
}

fn get_path<'a>(root: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    path.split('.').try_fold(root, |cur, p| cur.get(p))
}

/// Parses an environment value as the type the default has.
fn env_value(default: Option<&toml::Value>, raw: &str) -> toml::Value {
    match default {
        Some(toml::Value::String(_)) | None => toml::Value::String(raw.to_owned()),
        // An array of tables (`[[forward]]`) in inline TOML.
        Some(toml::Value::Array(_)) if raw.trim_start().starts_with('[') => {
            toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
        }
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        Some(_) => toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
    }
}

impl Config {
    /// Loads the configuration with full precedence.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self> {
        let defaults = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            // Validate the file alone first, so its errors name the file.
            toml::Value::Table(table.clone())
                .try_into::<Config>()
                .map_err(|e| ConfigError::File {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
            let mut leaves = Vec::new();
            let file_value = toml::Value::Table(table);
            leaf_paths("", &file_value, &mut leaves);
            for leaf in leaves {
                if let Some(v) = get_path(&file_value, &leaf) {
                    set_path(&mut merged, &leaf, v.clone());
                }
            }
        }
        let mut known = Vec::new();
        leaf_paths("", &defaults, &mut known);
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = ENV_ALIASES
                .iter()
                .find(|(alias, _)| *alias == var)
                .map(|(_, k)| (*k).to_owned())
                .or_else(|| {
                    let lower = rest.to_ascii_lowercase();
                    known.iter().find(|k| k.replace('.', "_") == lower).cloned()
                });
            let Some(key) = key else {
                return Err(ConfigError::UnknownEnv {
                    var,
                    known:
                        "TELEMETRYFLOW_<SECTION>_<KEY> for every key in config/telemetryflow.toml"
                            .into(),
                });
            };
            let value = env_value(get_path(&defaults, &key), &raw);
            set_path(&mut merged, &key, value);
        }
        if let Some(d) = &overrides.data_dir {
            set_path(
                &mut merged,
                "storage.data_dir",
                toml::Value::String(d.display().to_string()),
            );
        }
        if let Some(a) = &overrides.grpc_addr {
            set_path(
                &mut merged,
                "server.grpc_addr",
                toml::Value::String(a.clone()),
            );
        }
        if let Some(a) = &overrides.http_addr {
            set_path(
                &mut merged,
                "server.http_addr",
                toml::Value::String(a.clone()),
            );
        }
        let config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: String| ConfigError::BadValue {
            key: key.into(),
            message,
        };
        for (key, addr) in [
            ("server.grpc_addr", &self.server.grpc_addr),
            ("server.http_addr", &self.server.http_addr),
        ] {
            addr.parse::<SocketAddr>()
                .map_err(|e| bad(key, format!("{addr:?} is not HOST:PORT ({e})")))?;
        }
        if self.server.max_request_bytes == 0 {
            return Err(bad(
                "server.max_request_bytes",
                "must be greater than 0".into(),
            ));
        }
        for (key, v) in [
            ("buffer.flush_rows", self.buffer.flush_rows),
            ("storage.row_group_rows", self.storage.row_group_rows),
            ("storage.page_rows", self.storage.page_rows),
            ("buffer.flush_bytes", self.buffer.flush_bytes),
            ("buffer.max_buffered_bytes", self.buffer.max_buffered_bytes),
            ("ingest.max_counter_series", self.ingest.max_counter_series),
            ("wal.queue_capacity", self.wal.queue_capacity),
            ("wal.segment_bytes", self.wal.segment_bytes as usize),
            ("wal.max_bytes", self.wal.max_bytes as usize),
            ("query.timeout_secs", self.query.timeout_secs as usize),
            ("query.memory_limit_mb", self.query.memory_limit_mb),
            ("query.max_rows", self.query.max_rows),
            ("query.max_sql_bytes", self.query.max_sql_bytes),
            ("query.max_expr_depth", self.query.max_expr_depth),
            ("query.max_in_list", self.query.max_in_list),
            ("query.max_concurrent", self.query.max_concurrent),
            (
                "compaction.interval_secs",
                self.compaction.interval_secs as usize,
            ),
            (
                "compaction.target_file_mb",
                self.compaction.target_file_mb as usize,
            ),
            (
                "compaction.max_input_mb",
                self.compaction.max_input_mb as usize,
            ),
        ] {
            if v == 0 {
                return Err(bad(key, "must be greater than 0".into()));
            }
        }
        if self.buffer.flush_interval_ms == 0 {
            return Err(bad(
                "buffer.flush_interval_ms",
                "must be greater than 0".into(),
            ));
        }
        if !(self.compaction.max_cpu_share > 0.0 && self.compaction.max_cpu_share <= 1.0) {
            return Err(bad(
                "compaction.max_cpu_share",
                format!(
                    "{}: use a share of one core, in (0, 1]",
                    self.compaction.max_cpu_share
                ),
            ));
        }
        if self.compaction.max_inputs < 2 {
            return Err(bad(
                "compaction.max_inputs",
                "must be at least 2 (a merge needs two files)".into(),
            ));
        }
        if self.compaction.min_files < 2 {
            return Err(bad(
                "compaction.min_files",
                "must be at least 2 (merging one file changes nothing)".into(),
            ));
        }
        if !(self.storage.url.is_empty()
            || self.storage.url.starts_with("s3://")
            || self.storage.url.starts_with("file://"))
        {
            return Err(bad(
                "storage.url",
                format!(
                    "{:?}: use s3://bucket/prefix, file:///path, or leave empty",
                    self.storage.url
                ),
            ));
        }
        if self.retention.check_interval_secs == 0 {
            return Err(bad(
                "retention.check_interval_secs",
                "must be greater than 0".into(),
            ));
        }
        self.retention_rules()?;
        if self.storage.gc_grace_secs > 0
            && self.storage.manifest_refresh_secs >= self.storage.gc_grace_secs
        {
            return Err(bad(
                "storage.manifest_refresh_secs",
                format!(
                    "{} must be below storage.gc_grace_secs ({}): a node whose view is older than the grace period could look for deleted files",
                    self.storage.manifest_refresh_secs, self.storage.gc_grace_secs
                ),
            ));
        }
        self.forwarders()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(bad(
                "log.format",
                format!("{:?}: use text or json", self.log.format),
            ));
        }
        Ok(())
    }

    /// The `[[forward]]` entries, checked.
    pub fn forwarders(&self) -> Result<Vec<Forward>> {
        use crate::application::forward::ForwarderConfig;
        use crate::domain::OnFull;
        use crate::domain::telemetry::Signal;
        use crate::infrastructure::otlp::export::ExporterConfig;
        use std::time::Duration;
        let mut out: Vec<Forward> = Vec::new();
        for (i, f) in self.forward.iter().enumerate() {
            let key = |k: &str| format!("forward[{i}].{k}");
            let bad = |k: &str, message: String| ConfigError::BadValue {
                key: key(k),
                message,
            };
            crate::domain::NodeId::parse(&f.name).map_err(|e| {
                bad(
                    "name",
                    format!("{:?}: {e} (it names the forwarder's cursor file)", f.name),
                )
            })?;
            if out.iter().any(|o| o.forwarder.name == f.name) {
                return Err(bad("name", format!("{:?} is used twice", f.name)));
            }
            let protocol = f.protocol.parse().map_err(|e| bad("protocol", e))?;
            let compression = f.compression.parse().map_err(|e| bad("compression", e))?;
            let on_full = OnFull::parse(&f.on_full).map_err(|e| bad("on_full", e))?;
            let mut signals = Vec::new();
            for s in &f.signals {
                signals.push(Signal::parse(s).map_err(|e| bad("signals", e))?);
            }
            if signals.is_empty() {
                return Err(bad("signals", "names no signal".into()));
            }
            if f.max_queue_bytes == 0 || f.max_queue_bytes >= self.wal.max_bytes {
                return Err(bad(
                    "max_queue_bytes",
                    format!(
                        "{} must be above 0 and below wal.max_bytes ({}), which refuses ingest first",
                        f.max_queue_bytes, self.wal.max_bytes
                    ),
                ));
            }
            for name in f.headers.keys() {
                let lower = name.to_ascii_lowercase();
                if [
                    crate::infrastructure::otlp::TENANT_HEADER,
                    crate::infrastructure::otlp::WORKSPACE_HEADER,
                    crate::infrastructure::otlp::BATCH_HEADER,
                ]
                .contains(&lower.as_str())
                {
                    return Err(bad(
                        "headers",
                        format!(
                            "{name:?} is set per request (each item's own tenant and workspace, the batch key)"
                        ),
                    ));
                }
            }
            if f.retry_max_secs > 3600 {
                return Err(bad(
                    "retry_max_secs",
                    format!("{} is above an hour", f.retry_max_secs),
                ));
            }
            for (k, v) in [
                ("timeout_secs", f.timeout_secs),
                ("batch_age_ms", f.batch_age_ms),
                ("batch_bytes", f.batch_bytes as u64),
                ("memory_bytes", f.memory_bytes as u64),
                ("retry_max_secs", f.retry_max_secs),
                ("retry_initial_ms", f.retry_initial_ms),
            ] {
                if v == 0 {
                    return Err(bad(k, "must be greater than 0".into()));
                }
            }
            let exporter = ExporterConfig {
                endpoint: f.endpoint.clone(),
                protocol,
                compression,
                headers: f
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
                timeout: Duration::from_secs(f.timeout_secs),
            };
            exporter.check().map_err(|e| match e {
                crate::infrastructure::otlp::export::SetupError::Header { .. } => {
                    bad("headers", e.to_string())
                }
                _ => bad("endpoint", e.to_string()),
            })?;
            out.push(Forward {
                forwarder: ForwarderConfig {
                    name: f.name.clone(),
                    signals,
                    max_queue_bytes: f.max_queue_bytes,
                    on_full,
                    batch_bytes: f.batch_bytes,
                    batch_age: Duration::from_millis(f.batch_age_ms),
                    memory_bytes: f.memory_bytes,
                    retry_initial: Duration::from_millis(f.retry_initial_ms),
                    retry_max: Duration::from_secs(f.retry_max_secs),
                },
                exporter,
            });
        }
        if !self.storage.persist && out.is_empty() {
            return Err(ConfigError::BadValue {
                key: "storage.persist".into(),
                message: "false needs at least one [[forward]]: nothing would keep the data".into(),
            });
        }
        Ok(out)
    }

    /// Where Parquet files go.
    pub fn storage_location(&self) -> crate::infrastructure::storage::StorageLocation {
        use crate::infrastructure::storage::StorageLocation;
        let url = self.storage.url.as_str();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let s3 = &self.storage.s3;
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            StorageLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                endpoint: opt(&s3.endpoint),
                region: s3.region.clone(),
                access_key_id: opt(&s3.access_key_id),
                secret_access_key: opt(&s3.secret_access_key),
                allow_http: s3.allow_http,
            }
        } else if let Some(path) = url.strip_prefix("file://") {
            StorageLocation::Local(PathBuf::from(path))
        } else {
            StorageLocation::Local(self.storage.data_dir.join("parquet"))
        }
    }

    pub fn wal_config(&self) -> crate::infrastructure::wal::WalConfig {
        crate::infrastructure::wal::WalConfig {
            dir: self.storage.data_dir.join("wal"),
            segment_bytes: self.wal.segment_bytes,
            fsync: self.wal.fsync,
            max_bytes: self.wal.max_bytes,
            queue_capacity: self.wal.queue_capacity,
        }
    }

    pub fn query_limits(&self) -> crate::application::ports::QueryLimits {
        crate::application::ports::QueryLimits {
            timeout: std::time::Duration::from_secs(self.query.timeout_secs),
            memory_bytes: self.query.memory_limit_mb << 20,
            max_rows: self.query.max_rows,
        }
    }

    pub fn sql_limits(&self) -> crate::infrastructure::query::guard::SqlLimits {
        crate::infrastructure::query::guard::SqlLimits {
            max_sql_bytes: self.query.max_sql_bytes,
            max_expr_depth: self.query.max_expr_depth,
            max_in_list: self.query.max_in_list,
        }
    }

    pub fn query_executor(&self) -> crate::infrastructure::query::engine::ExecutorConfig {
        crate::infrastructure::query::engine::ExecutorConfig {
            threads: self.query.threads,
            max_concurrent: self.query.max_concurrent,
            ..Default::default()
        }
    }

    pub fn compaction_policy(&self) -> crate::application::compaction::CompactionPolicy {
        let c = &self.compaction;
        crate::application::compaction::CompactionPolicy {
            target_file_bytes: c.target_file_mb << 20,
            min_files: c.min_files,
            max_input_bytes: c.max_input_mb << 20,
            max_inputs: c.max_inputs,
            settle: std::time::Duration::from_secs(c.settle_secs),
        }
    }

    pub fn buffer_config(&self) -> crate::application::pipeline::BufferConfig {
        crate::application::pipeline::BufferConfig {
            flush_rows: self.buffer.flush_rows,
            flush_bytes: self.buffer.flush_bytes,
            max_age: std::time::Duration::from_millis(self.buffer.flush_interval_ms),
            max_buffered_bytes: self.buffer.max_buffered_bytes,
            retention: std::sync::Arc::new(self.retention_rules().unwrap_or_default()),
            manifest_refresh: (self.storage.manifest_refresh_secs > 0)
                .then(|| std::time::Duration::from_secs(self.storage.manifest_refresh_secs)),
        }
    }

    /// The `[retention]` rules, checked: periods parse, table names and
    /// tenant ids exist. Errors name the key.
    pub fn retention_rules(&self) -> Result<crate::domain::RetentionRules> {
        use crate::application::Table;
        use crate::domain::{RetentionPeriod, RetentionRules, TenantId, TenantRetention};
        let r = &self.retention;
        let period = |key: String, v: &str| {
            RetentionPeriod::parse(v).map_err(|e| ConfigError::BadValue {
                key,
                message: e.to_string(),
            })
        };
        let table = |key: &str, name: &str| {
            Table::from_name(name)
                .map(|_| name.to_owned())
                .ok_or_else(|| ConfigError::BadValue {
                    key: key.to_owned(),
                    message: format!(
                        "{name:?} is not a table (tables: {})",
                        Table::ALL
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
        };
        let mut rules = RetentionRules {
            default: period("retention.default".into(), &r.default)?,
            ..RetentionRules::default()
        };
        for (name, v) in &r.tables {
            let key = format!("retention.tables.{name}");
            rules
                .tables
                .insert(table(&key, name)?, period(key.clone(), v)?);
        }
        for (tenant, tables) in &r.tenants {
            let key = format!("retention.tenants.{tenant}");
            let id = TenantId::parse(tenant).map_err(|e| ConfigError::BadValue {
                key: key.clone(),
                message: e.to_string(),
            })?;
            let mut t = TenantRetention::default();
            for (name, v) in tables {
                let key = format!("{key}.{name}");
                if name == "default" {
                    t.default = Some(period(key, v)?);
                } else {
                    t.tables.insert(table(&key, name)?, period(key.clone(), v)?);
                }
            }
            rules.tenants.insert(id, t);
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests;
