//! `[[forward]]`: upstream OTLP endpoints every accepted item is forwarded
//! to, and the forwarder and exporter settings built from them.

use std::collections::BTreeMap;
use std::num::{NonZero, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Config, ConfigError, Result};
use crate::application::forward::ForwarderConfig;
use crate::domain::OnFull;
use crate::domain::telemetry::Signal;
use crate::infrastructure::otlp::export::{Compression, ExporterConfig, Protocol, SetupError};

/// One `[[forward]]` entry. `name` and `endpoint` have no default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardSettings {
    /// Names the cursor file and the metrics: a node id.
    #[serde(deserialize_with = "forwarder_name")]
    pub name: String,
    /// An http(s) URL (see [`ExporterConfig::check`]).
    pub endpoint: String,
    #[serde(with = "ProtocolName")]
    pub protocol: Protocol,
    #[serde(with = "signal_names")]
    pub signals: Vec<Signal>,
    #[serde(with = "CompressionName")]
    pub compression: Compression,
    /// Sent with every request (names are case-insensitive); the headers
    /// set per request cannot be.
    #[serde(deserialize_with = "header_names")]
    pub headers: BTreeMap<String, String>,
    /// Below `wal.max_bytes`.
    pub max_queue_bytes: NonZeroU64,
    #[serde(with = "OnFullName")]
    pub on_full: OnFull,
    pub timeout_secs: NonZeroU64,
    pub batch_bytes: NonZeroUsize,
    pub batch_age_ms: NonZeroU64,
    pub memory_bytes: NonZeroUsize,
    pub retry_initial_ms: NonZeroU64,
    /// An hour at most.
    #[serde(deserialize_with = "an_hour_at_most")]
    pub retry_max_secs: NonZeroU64,
    /// The CA certificates (PEM bundle) that verify an https endpoint,
    /// instead of the system's roots.
    #[serde(with = "super::sections::optional_path")]
    pub tls_ca: Option<PathBuf>,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        let d = ForwarderConfig::new("");
        Self {
            name: String::new(),
            endpoint: String::new(),
            protocol: Protocol::Grpc,
            signals: d.signals,
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            max_queue_bytes: NonZero::new(d.max_queue_bytes).unwrap(),
            on_full: d.on_full,
            timeout_secs: NonZero::new(10).unwrap(),
            batch_bytes: NonZero::new(d.batch_bytes).unwrap(),
            batch_age_ms: NonZero::new(d.batch_age.as_millis() as u64).unwrap(),
            memory_bytes: NonZero::new(d.memory_bytes).unwrap(),
            retry_initial_ms: NonZero::new(d.retry_initial.as_millis() as u64).unwrap(),
            retry_max_secs: NonZero::new(d.retry_max.as_secs()).unwrap(),
            tls_ca: None,
        }
    }
}

// The settings' spellings of the forwarders' enums (serde's "remote"
// derive: a variant added to the enum and not here fails to compile).

#[derive(Serialize, Deserialize)]
#[serde(remote = "Protocol")]
enum ProtocolName {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Compression", rename_all = "lowercase")]
enum CompressionName {
    None,
    Gzip,
    Zstd,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "OnFull", rename_all = "snake_case")]
enum OnFullName {
    Backpressure,
    DropOldest,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Signal", rename_all = "lowercase")]
enum SignalName {
    Traces,
    Metrics,
    Logs,
}

/// `signals`: one signal at least.
mod signal_names {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Signal, SignalName};

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Named(#[serde(with = "SignalName")] Signal);

    pub(super) fn serialize<S: Serializer>(signals: &[Signal], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(signals.iter().map(|&signal| Named(signal)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Signal>, D::Error> {
        let signals = Vec::<Named>::deserialize(d)?;
        if signals.is_empty() {
            return Err(D::Error::custom("names no signal"));
        }
        Ok(signals.into_iter().map(|n| n.0).collect())
    }
}

fn forwarder_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    crate::domain::NodeId::parse(&name).map_err(|e| {
        D::Error::custom(format!(
            "{name:?}: {e} (it names the forwarder's cursor file)"
        ))
    })?;
    Ok(name)
}

/// Refuses the headers set per request.
fn header_names<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use crate::infrastructure::otlp::{BATCH_HEADER, TENANT_HEADER, WORKSPACE_HEADER};
    let headers = BTreeMap::<String, String>::deserialize(d)?;
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if [TENANT_HEADER, WORKSPACE_HEADER, BATCH_HEADER].contains(&lower.as_str()) {
            return Err(D::Error::custom(format!(
                "{name:?} is set per request (each item's own tenant and workspace, the batch key)"
            )));
        }
    }
    Ok(headers)
}

fn an_hour_at_most<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU64, D::Error> {
    let secs = NonZeroU64::deserialize(d)?;
    if secs.get() > 3600 {
        return Err(D::Error::custom(format!("{secs} is above an hour")));
    }
    Ok(secs)
}

/// One `[[forward]]` entry, checked: the forwarder's settings and its
/// exporter's.
pub struct Forward {
    pub forwarder: ForwarderConfig,
    pub exporter: ExporterConfig,
}

impl ForwardSettings {
    /// The exporter these settings make (also `telemetryflow replay`'s,
    /// from its flags): header names in lower case.
    pub fn exporter(&self) -> ExporterConfig {
        ExporterConfig {
            endpoint: self.endpoint.clone(),
            protocol: self.protocol,
            compression: self.compression,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            timeout: Duration::from_secs(self.timeout_secs.get()),
            tls_ca: self.tls_ca.clone(),
        }
    }

    fn forward(&self) -> Forward {
        Forward {
            forwarder: ForwarderConfig {
                name: self.name.clone(),
                signals: self.signals.clone(),
                max_queue_bytes: self.max_queue_bytes.get(),
                on_full: self.on_full,
                batch_bytes: self.batch_bytes.get(),
                batch_age: Duration::from_millis(self.batch_age_ms.get()),
                memory_bytes: self.memory_bytes.get(),
                retry_initial: Duration::from_millis(self.retry_initial_ms.get()),
                retry_max: Duration::from_secs(self.retry_max_secs.get()),
            },
            exporter: self.exporter(),
        }
    }
}

impl Config {
    /// The `[[forward]]` entries, with the rules between keys checked:
    /// names given and unique, endpoints and headers an exporter takes,
    /// queues below the log's limit, and something keeps the data.
    pub fn forwarders(&self) -> Result<Vec<Forward>> {
        let mut out: Vec<Forward> = Vec::new();
        for (i, f) in self.forward.iter().enumerate() {
            let bad = |k: &str, message: String| ConfigError::BadValue {
                key: format!("forward[{i}].{k}"),
                message,
            };
            if f.name.is_empty() {
                return Err(bad(
                    "name",
                    "missing (it names the forwarder's cursor file)".into(),
                ));
            }
            if out.iter().any(|o| o.forwarder.name == f.name) {
                return Err(bad("name", format!("{:?} is used twice", f.name)));
            }
            if f.max_queue_bytes >= self.wal.max_bytes {
                return Err(bad(
                    "max_queue_bytes",
                    format!(
                        "{} must be below wal.max_bytes ({}), which refuses ingest first",
                        f.max_queue_bytes, self.wal.max_bytes
                    ),
                ));
            }
            let forward = f.forward();
            forward.exporter.check().map_err(|e| match e {
                SetupError::Header { .. } => bad("headers", e.to_string()),
                SetupError::Ca { .. } => bad("tls_ca", e.to_string()),
                SetupError::Endpoint { .. } => bad("endpoint", e.to_string()),
            })?;
            out.push(forward);
        }
        if !self.storage.persist && out.is_empty() {
            return Err(ConfigError::BadValue {
                key: "storage.persist".into(),
                message: "false needs at least one [[forward]]: nothing would keep the data".into(),
            });
        }
        Ok(out)
    }
}
