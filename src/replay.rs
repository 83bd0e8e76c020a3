//! `telemetryflow replay`: re-sends stored telemetry as OTLP to any endpoint
//! — to backfill a new backend, migrate, or re-export an incident's time
//! range.
//!
//! Reads a data directory (or a bucket) without changing its data: committed
//! files and the rows still in the write-ahead log. The use case
//! (`application::replay`) reads the range window by window through the
//! query engine and sends it with the forwarders' sender and retry policy;
//! here are its flags, a progress bar with items, rate and ETA, and the JSON
//! summary printed at the end.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::application::forward::RetryPolicy;
use crate::application::ports::QueryLimits;
use crate::application::queries::params::TimeWindow;
use crate::application::replay::{Replay, ReplayCommand};
use crate::config::{Config, ForwardSettings, Overrides};
use crate::domain::TenantId;
use crate::domain::telemetry::Signal;
use crate::infrastructure::otlp::export::{Compression, OtlpExporter, Protocol, SetupError};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The data directory to read (its manifests, files and write-ahead log).
    #[arg(long, required_unless_present = "storage_url")]
    pub data_dir: Option<PathBuf>,
    /// Read this store instead (s3://bucket/prefix or file:///path; S3
    /// credentials per --config or TELEMETRYFLOW_STORAGE_S3_*).
    #[arg(long)]
    pub storage_url: Option<String>,
    /// The configuration file (storage settings).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Whose telemetry to send.
    #[arg(long)]
    pub tenant: String,
    /// Which signals, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "traces,metrics,logs")]
    pub signals: Vec<String>,
    /// Start of the range (RFC 3339, inclusive).
    #[arg(long)]
    pub start: String,
    /// End of the range (RFC 3339, exclusive).
    #[arg(long)]
    pub end: String,
    /// The OTLP endpoint: the base URL for http/protobuf (/v1/<signal> is
    /// appended), host:port URL for grpc.
    #[arg(long)]
    pub to: String,
    /// grpc or http/protobuf.
    #[arg(long, default_value = "http/protobuf")]
    pub protocol: String,
    /// gzip, zstd or none.
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    /// A header sent with every request (repeatable); x-tenant-id or
    /// x-workspace-id override the stored ones. The API key comes from
    /// TELEMETRYFLOW_API_KEY (sent as `authorization: Bearer`), not argv.
    #[arg(long = "header", value_name = "K=V")]
    pub headers: Vec<String>,
    /// Verify an https endpoint against the CA certificates in this PEM
    /// bundle instead of the system's roots.
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// At most this many items per request.
    #[arg(long, default_value_t = 5000)]
    pub batch_items: usize,
    /// Give up when the endpoint has refused retryably for this long in a row.
    #[arg(long, default_value_t = 300)]
    pub max_retry_secs: u64,
}

fn parse_time(flag: &str, s: &str) -> anyhow::Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--{flag} {s:?} is not an RFC 3339 time"))?;
    t.timestamp_nanos_opt()
        .with_context(|| format!("--{flag} {s:?} is out of range"))
}

pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let tenant = TenantId::parse(&args.tenant).context("--tenant")?;
    let start = parse_time("start", &args.start)?;
    let end = parse_time("end", &args.end)?;
    if end <= start {
        bail!("--end must be after --start");
    }
    let mut signals = Vec::new();
    for s in &args.signals {
        signals.push(Signal::parse(s.trim()).map_err(|e| anyhow::anyhow!("--signals: {e}"))?);
    }
    let mut headers = BTreeMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .with_context(|| format!("--header {h:?} is not K=V"))?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    if !headers.contains_key("authorization")
        && let Some(key) = crate::keys::api_key_from_env()
    {
        headers.insert("authorization".to_owned(), format!("Bearer {key}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The forwarders' settings, so that the exporter is made as theirs is
    // (a gRPC channel is made within a runtime).
    let exporter = {
        let _runtime = rt.enter();
        OtlpExporter::new(
            ForwardSettings {
                endpoint: args.to.clone(),
                protocol: args
                    .protocol
                    .parse::<Protocol>()
                    .map_err(anyhow::Error::msg)?,
                compression: args
                    .compression
                    .parse::<Compression>()
                    .map_err(anyhow::Error::msg)?,
                headers,
                timeout_secs: NonZeroU64::new(30).unwrap(),
                tls_ca: args.ca.clone(),
                ..ForwardSettings::default()
            }
            .exporter(),
        )
        .map_err(|e| {
            let flag = match e {
                SetupError::Ca { .. } => "--ca",
                _ => "--to",
            };
            anyhow::Error::new(e).context(flag)
        })?
    };
    // Reading a bucket alone: the node id and cursors the store code may
    // create go to a directory that is deleted afterwards.
    let scratch = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let overrides = Overrides {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| scratch.as_ref().map(|d| d.0.clone())),
        storage_url: args.storage_url.clone(),
        ..Default::default()
    };
    let mut config = Config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    // The forwarders of the data directory's configuration do not run here.
    config.forward.clear();
    config.storage.persist = true;
    let command = ReplayCommand {
        tenant,
        signals,
        window: TimeWindow {
            start_ns: start,
            end_ns: end,
        },
        batch_items: args.batch_items,
        give_up_after: Duration::from_secs(args.max_retry_secs),
        retry: RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        },
        limits: QueryLimits {
            max_rows: usize::MAX,
            ..config.query_limits()
        },
    };
    let summary = rt.block_on(async {
        let storage = crate::bootstrap::open_storage(&config, None, false).await?;
        if args.data_dir.is_some() {
            crate::bootstrap::replay_read_only(&config, &storage)?;
        }
        let replay = Replay::new(storage.engine.as_ref(), &exporter);
        let plan = replay.plan(&command).await?;
        let bar = indicatif::ProgressBar::new(plan.items);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let summary = replay.run(&command, &plan, |n| bar.inc(n)).await?;
        bar.finish_and_clear();
        anyhow::Ok(summary)
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if summary.rejected > 0 {
        eprintln!(
            "warning: the endpoint rejected {} of {} items (see the log above)",
            summary.rejected,
            summary.items + summary.rejected
        );
    }
    Ok(())
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> anyhow::Result<Scratch> {
    let dir = std::env::temp_dir().join(format!(
        "telemetryflow-replay-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Scratch(dir))
}
