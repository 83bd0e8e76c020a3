//! Configuration: defaults < file (`--config`, TOML) < environment
//! (`TELEMETRYFLOW_<SECTION>_<KEY>`) < command-line flags. Every key is
//! documented in `config/telemetryflow.toml`.
//!
//! Settings are deserialized into their types (enums, non-zero numbers,
//! addresses, retention periods), so a bad value or an unknown key is an
//! error of deserialization that names the key (`server.grpc_addr`,
//! `forward[0].protocol`). What types cannot say, rules between keys, is
//! checked once the layers are merged ([`Config::check`]).
//!
//! One module per section that has types of its own: [`forward`],
//! [`retention`], [`storage`]; the smaller sections are in [`sections`].

/// `TryFrom<String>` through `FromStr`, for the settings deserialized with
/// `#[serde(try_from = "String")]`.
macro_rules! try_from_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = <$t as std::str::FromStr>::Err;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    )*};
}
use try_from_string;

mod forward;
mod limits;
mod retention;
mod sections;
mod storage;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use forward::{Forward, ForwardSettings};
pub use limits::{LimitSettings, TenantLimitSettings};
pub use retention::{Period, RetentionSettings, TableName, TenantName, TenantTable};
pub use sections::{
    AuthMode, AuthSettings, BufferSettings, CompactionSettings, IngestSettings, LogFormat,
    LogSettings, QuerySettings, ServerSettings, WalSettings,
};
pub use storage::{S3Settings, StorageSettings, StorageUrl};

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
    #[error("invalid setting {key}: {message}")]
    BadValue { key: String, message: String },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub buffer: BufferSettings,
    pub wal: WalSettings,
    pub ingest: IngestSettings,
    pub query: QuerySettings,
    pub compaction: CompactionSettings,
    pub retention: RetentionSettings,
    pub limits: LimitSettings,
    /// Upstream OTLP endpoints every accepted item is forwarded to
    /// (`[[forward]]`).
    pub forward: Vec<ForwardSettings>,
    pub log: LogSettings,
}

/// Settings given on the command line (highest precedence). They are
/// deserialized like the other layers: a bad one names its key and flag.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    pub storage_url: Option<String>,
}

impl Overrides {
    /// (key, flag, value) of each flag given.
    fn given(&self) -> impl Iterator<Item = (&'static str, &'static str, String)> {
        [
            (
                "storage.data_dir",
                "--data-dir",
                self.data_dir.as_ref().map(|d| d.display().to_string()),
            ),
            ("server.grpc_addr", "--grpc-addr", self.grpc_addr.clone()),
            ("server.http_addr", "--http-addr", self.http_addr.clone()),
            ("storage.url", "--storage-url", self.storage_url.clone()),
        ]
        .into_iter()
        .filter_map(|(key, flag, v)| Some((key, flag, v?)))
    }
}

const ENV_PREFIX: &str = "TELEMETRYFLOW_";

/// The longest `auth.refresh_secs`: revocations reach every node within it.
const MAX_KEY_REFRESH_SECS: u64 = 5;

/// Variables of the same prefix that are not settings of the server: what
/// client commands (`sql --server`, `replay`) present.
const CLIENT_ENV: [&str; 1] = [API_KEY_ENV];

/// The environment variable holding the API key that `sql --server` and
/// `replay` present (kept out of argv, which other users can read).
pub const API_KEY_ENV: &str = "TELEMETRYFLOW_API_KEY";

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

/// Where the keys set by the environment or by flags came from, so that an
/// error about one names the variable or the flag as well.
#[derive(Default)]
struct Origins(Vec<(String, String)>);

impl Origins {
    fn set(&mut self, key: &str, origin: String) {
        self.0.push((key.to_owned(), origin));
    }

    /// `key`, followed by where its value came from when not from a file.
    fn name(&self, key: &str) -> String {
        let within = |k: &str| {
            key.strip_prefix(k)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        match self.0.iter().rev().find(|(k, _)| within(k)) {
            Some((_, origin)) => format!("{key} (from {origin})"),
            None => key.to_owned(),
        }
    }
}

/// Deserializes `de` into a [`Config`]; an error names the key it is about.
fn deserialize<'de, D>(de: D) -> std::result::Result<Config, (String, toml::de::Error)>
where
    D: serde::Deserializer<'de, Error = toml::de::Error>,
{
    serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.into_inner()))
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
            let file_value = Self::read_file(path)?;
            let mut leaves = Vec::new();
            leaf_paths("", &file_value, &mut leaves);
            for leaf in leaves {
                if let Some(v) = get_path(&file_value, &leaf) {
                    set_path(&mut merged, &leaf, v.clone());
                }
            }
        }
        let mut origins = Origins::default();
        let mut known = Vec::new();
        leaf_paths("", &defaults, &mut known);
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if CLIENT_ENV.contains(&var.as_str()) {
                continue;
            }
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
            origins.set(&key, var);
        }
        for (key, flag, value) in overrides.given() {
            set_path(&mut merged, key, toml::Value::String(value));
            origins.set(key, flag.to_owned());
        }
        let config = deserialize(merged).map_err(|(key, e)| ConfigError::BadValue {
            key: origins.name(&key),
            message: e.message().to_owned(),
        })?;
        config.check().map_err(|e| match e {
            ConfigError::BadValue { key, message } => ConfigError::BadValue {
                key: origins.name(&key),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// The file's table, after checking the file alone, so that its errors
    /// name the file, the key and the line.
    fn read_file(path: &Path) -> Result<toml::Value> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bad = |message: String| ConfigError::File {
            path: path.to_owned(),
            message,
        };
        let de = toml::de::Deserializer::parse(&text).map_err(|e| bad(e.to_string()))?;
        deserialize(de).map_err(|(key, e)| bad(format!("{key}: {}", e.to_string().trim_end())))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Ok(toml::Value::Table(table))
    }

    /// Without keys the server trusts whoever reaches it: it listens on
    /// loopback only, unless told otherwise.
    pub fn check_exposure(&self) -> Result<()> {
        if self.auth.refresh_secs.get() > MAX_KEY_REFRESH_SECS {
            return Err(ConfigError::BadValue {
                key: "auth.refresh_secs".into(),
                message: format!(
                    "{} is above {MAX_KEY_REFRESH_SECS}: a revoked key must stop working on every node within {MAX_KEY_REFRESH_SECS} s",
                    self.auth.refresh_secs
                ),
            });
        }
        if self.auth.mode != AuthMode::None || self.auth.allow_unauthenticated {
            return Ok(());
        }
        let listeners = [
            ("server.grpc_addr", Some(self.server.grpc_addr)),
            ("server.http_addr", Some(self.server.http_addr)),
            ("server.metrics_addr", self.server.metrics_addr),
        ];
        for (key, addr) in listeners {
            if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
                return Err(ConfigError::BadValue {
                    key: key.into(),
                    message: format!(
                        "{addr} is not a loopback address, and auth.mode is \"none\": anyone who reaches it could read and write every tenant. Set auth.mode = \"api_key\" (and make keys with `telemetryflow keys create`), or auth.allow_unauthenticated = true on a trusted network"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The rules between keys, which their types cannot express; errors
    /// name the key.
    pub fn check(&self) -> Result<()> {
        let s = &self.storage;
        if s.gc_grace_secs > 0 && s.manifest_refresh_secs >= s.gc_grace_secs {
            return Err(ConfigError::BadValue {
                key: "storage.manifest_refresh_secs".into(),
                message: format!(
                    "{} must be below storage.gc_grace_secs ({}): a node whose view is older than the grace period could look for deleted files",
                    s.manifest_refresh_secs, s.gc_grace_secs
                ),
            });
        }
        self.check_exposure()?;
        self.tls_files()?;
        self.forwarders()?;
        Ok(())
    }
}
