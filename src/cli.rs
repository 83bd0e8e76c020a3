//! The command line: `telemetryflow serve`, `telemetryflow sql` and
//! `telemetryflow compact`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};

use crate::application::ports::QueryLimits;
use crate::application::queries::ReadModel;
use crate::config::{Config, Overrides};
use crate::domain::TenantId;
use crate::infrastructure::api::TRUNCATED_HEADER;
use crate::infrastructure::query::format::{self, Format};

#[derive(Debug, Parser)]
#[command(
    name = "telemetryflow",
    version,
    about = "OpenTelemetry-native OTLP collector and columnar store"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (OTLP gRPC on :4317, OTLP/HTTP and the query API on :4318).
    Serve(ServeArgs),
    /// Run a SQL query against a server or directly against a data directory.
    Sql(SqlArgs),
    /// Run one compaction pass over a data directory with the server stopped
    /// (for a running server: POST /api/v2/admin/compact), then delete
    /// replaced files whose grace period is over. Prints the summary as JSON.
    Compact(OfflineArgs),
    /// Run one retention pass over a data directory with the server stopped
    /// (for a running server: POST /api/v2/admin/retention): expired hour
    /// partitions leave the manifests, then replaced files whose grace period
    /// is over are deleted. Prints the summary as JSON.
    Retention(OfflineArgs),
    /// Re-send stored telemetry of a tenant and time range as OTLP to any
    /// endpoint (backfill, migration, re-export of an incident).
    Replay(crate::replay::ReplayArgs),
    /// Make, list and revoke API keys in a store (no server needed).
    Keys(crate::keys::KeysArgs),
}

/// A maintenance pass over a data directory, without a server.
#[derive(Debug, Args)]
pub struct OfflineArgs {
    /// The data directory (its manifests and files; S3 per --config).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The configuration file (storage, [compaction] and [retention] settings).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file (see config/telemetryflow.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Local state directory [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// OTLP/HTTP and API listen address [default: 127.0.0.1:4318].
    #[arg(long)]
    pub http_addr: Option<String>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The SQL query, e.g. "SELECT count(*) FROM otel_traces".
    pub query: String,
    /// Query a running server at this base URL [default: http://127.0.0.1:4318].
    #[arg(long, conflicts_with = "data_dir")]
    pub server: Option<String>,
    /// Query the files in this data directory directly, without a server.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: the configuration file (for S3 storage settings).
    #[arg(long, requires = "data_dir")]
    pub config: Option<PathBuf>,
    /// Tenant whose tables are queried: `default` if not named (with
    /// --server and an API key, the key's tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Output format (arrow is for the HTTP API).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

impl ServeArgs {
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            grpc_addr: self.grpc_addr.clone(),
            http_addr: self.http_addr.clone(),
            ..Default::default()
        };
        Ok(Config::load(
            self.config.as_deref(),
            std::env::vars(),
            &overrides,
        )?)
    }
}

/// Runs `telemetryflow serve` until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let server = crate::bootstrap::start(config).await?;
    wait_for_signal().await;
    server.shutdown().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `telemetryflow sql` and prints the result.
pub fn sql(args: &SqlArgs) -> anyhow::Result<()> {
    if args.format == Format::Arrow {
        bail!("--format arrow is for the HTTP API; use table, json, ndjson or csv");
    }
    let tenant = match &args.tenant {
        Some(t) => Some(TenantId::parse(t).context("--tenant")?),
        None => None,
    };
    let result = match &args.data_dir {
        Some(dir) => {
            let overrides = Overrides {
                data_dir: Some(dir.clone()),
                ..Default::default()
            };
            let config = Config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let storage = crate::bootstrap::open_storage(&config, None, false).await?;
                crate::bootstrap::replay_read_only(&config, &storage)?;
                let limits = QueryLimits {
                    max_rows: usize::MAX,
                    ..config.query_limits()
                };
                storage
                    .engine
                    .query(
                        &tenant.clone().unwrap_or_else(TenantId::default_id),
                        &args.query,
                        &limits,
                    )
                    .await
                    .map_err(anyhow::Error::from)
            })?
        }
        None => {
            let base = args.server.as_deref().unwrap_or("http://127.0.0.1:4318");
            let url = format!("{}/api/v2/sql?format=arrow", base.trim_end_matches('/'));
            let body = serde_json::json!({"sql": args.query}).to_string();
            let mut request = reqwest::blocking::Client::new()
                .post(&url)
                .header("content-type", "application/json");
            if let Some(tenant) = &tenant {
                request =
                    request.header(crate::infrastructure::otlp::TENANT_HEADER, tenant.as_str());
            }
            if let Some(key) = crate::keys::api_key_from_env() {
                request = request.bearer_auth(key);
            }
            let resp = request
                .body(body)
                .send()
                .with_context(|| format!("POST {url}"))?;
            let status = resp.status();
            let truncated = resp.headers().contains_key(TRUNCATED_HEADER);
            let bytes = resp.bytes().context("reading the response")?;
            if !status.is_success() {
                let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
                bail!("{status}: {msg}");
            }
            format::from_arrow_ipc(&bytes, truncated)?
        }
    };
    let mut out = args.format.render(&result)?;
    if matches!(args.format, Format::Table | Format::Json) {
        out.push(b'\n');
    }
    std::io::stdout().write_all(&out)?;
    if result.truncated {
        eprintln!(
            "warning: result truncated to {} rows (the server's query.max_rows)",
            result.num_rows()
        );
    }
    Ok(())
}

/// Opens the store of `args` (settings adjusted by `tweak`), runs `pass`
/// at the current time, then deletes replaced files whose grace period is
/// over, and prints the pass's summary as JSON.
fn offline_pass<S, F, Fut>(
    args: &OfflineArgs,
    tweak: impl FnOnce(&mut Config),
    what: &'static str,
    pass: F,
) -> anyhow::Result<()>
where
    S: serde::Serialize,
    F: FnOnce(crate::bootstrap::Storage, crate::domain::telemetry::Timestamp) -> Fut,
    Fut: std::future::Future<Output = Result<S, crate::application::ports::StoreError>>,
{
    let overrides = Overrides {
        data_dir: Some(args.data_dir.clone()),
        ..Default::default()
    };
    let mut config = Config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    tweak(&mut config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let storage = crate::bootstrap::open_storage(&config, None, true).await?;
        let compactor = std::sync::Arc::clone(&storage.compactor);
        let summary = pass(storage, crate::application::wall_clock())
            .await
            .context(what)?;
        compactor
            .collect_garbage(std::time::Duration::from_secs(config.storage.gc_grace_secs))
            .await
            .context("deleting replaced files")?;
        anyhow::Ok(summary)
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Runs `telemetryflow compact`: one pass, as the server's timer would.
pub fn compact(args: &OfflineArgs) -> anyhow::Result<()> {
    offline_pass(
        args,
        // Nothing else runs: no reason to pause.
        |c| c.compaction.max_cpu_share = 1.0,
        "compacting",
        |storage, now| async move { storage.compactor.run_once(now.unix_nanos()).await },
    )
}

/// Runs `telemetryflow retention`: one pass, as the server's timer would.
/// The WAL is not replayed: rows of expired partitions still in it are
/// dropped by the server's replay.
pub fn retention(args: &OfflineArgs) -> anyhow::Result<()> {
    offline_pass(
        args,
        |_| {},
        "expiring data",
        |storage, now| async move { storage.retention.run_once(now).await },
    )
}
