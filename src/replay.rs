//! `telemetryflow replay`: re-sends stored telemetry as OTLP to any endpoint
//! — to backfill a new backend, migrate, or re-export an incident's time
//! range.
//!
//! Reads a data directory (or a bucket) without changing its data: committed files
//! and the rows still in the write-ahead log. Per signal table, per window
//! of time (an hour that holds rows, or a part of one), the rows of the
//! range are queried, split by workspace, turned
//! back into OTLP (`convert::to_otlp`) and sent with their tenant and
//! workspace headers, in requests of at most `--batch-items` items.
//! Retryable answers (backpressure included) are retried with backoff,
//! honouring the upstream's delay, for up to `--max-retry-secs` in a row;
//! permanent refusals are counted and reported. A progress bar shows items,
//! rate and ETA; a JSON summary is printed at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arrow::array::{Array, StringArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use clap::Args;

use crate::application::ports::ReadModel as _;
use crate::application::ports::{
    ExportBatch, ExportError, Exporter, QueryLimits, Table, TableBatch,
};
use crate::config::{Config, Overrides};
use crate::domain::telemetry::Signal;
use crate::domain::{TenantId, WorkspaceId};
use crate::infrastructure::otlp::export::{Compression, ExporterConfig, OtlpExporter, Protocol};

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
    /// A header sent with every request (repeatable), e.g. authorization=Bearer…;
    /// x-tenant-id or x-workspace-id override the stored ones.
    #[arg(long = "header", value_name = "K=V")]
    pub headers: Vec<String>,
    /// At most this many items per request.
    #[arg(long, default_value_t = 5000)]
    pub batch_items: usize,
    /// Give up when the endpoint has refused retryably for this long in a row.
    #[arg(long, default_value_t = 300)]
    pub max_retry_secs: u64,
}

/// What a replay did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReplaySummary {
    pub items: u64,
    pub rejected: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
}

/// Rows are read an hour at a time, or in equal parts of an hour holding
/// more than this many rows.
const MAX_WINDOW_ROWS: i64 = 500_000;

const HOUR_NS: i64 = 3_600_000_000_000;

fn parse_time(flag: &str, s: &str) -> anyhow::Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--{flag} {s:?} is not an RFC 3339 time"))?;
    t.timestamp_nanos_opt()
        .with_context(|| format!("--{flag} {s:?} is out of range"))
}

/// The rows of `batch` per workspace.
fn by_workspace(batch: &RecordBatch) -> anyhow::Result<Vec<(WorkspaceId, RecordBatch)>> {
    let col = batch
        .column_by_name("workspace_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .context("rows without a workspace_id column")?;
    let mut names: Vec<&str> = (0..col.len())
        .filter(|&i| col.is_valid(i))
        .map(|i| col.value(i))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let keep: arrow::array::BooleanArray = (0..col.len())
            .map(|i| Some(col.is_valid(i) && col.value(i) == name))
            .collect();
        let rows = filter_record_batch(batch, &keep)?;
        let workspace = WorkspaceId::parse(name).unwrap_or_else(|_| WorkspaceId::default_id());
        out.push((workspace, rows));
    }
    Ok(out)
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
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .with_context(|| format!("--header {h:?} is not K=V"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let exporter = OtlpExporter::new(ExporterConfig {
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
        timeout: Duration::from_secs(30),
    })
    .context("--to")?;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let storage = crate::bootstrap::open_storage(&config, None, false).await?;
        if args.data_dir.is_some() {
            crate::bootstrap::replay_read_only(&config, &storage)?;
        }
        let limits = QueryLimits {
            max_rows: usize::MAX,
            ..config.query_limits()
        };
        let range = |from: i64, to: i64| {
            let ts = |ns: i64| {
                chrono::DateTime::from_timestamp_nanos(ns)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            };
            format!(
                "timestamp >= TIMESTAMP '{}' AND timestamp < TIMESTAMP '{}'",
                ts(from),
                ts(to)
            )
        };
        // Per table, the windows to read: each hour of the range that holds
        // rows, split when it holds many.
        let mut total = 0u64;
        let mut windows: Vec<(Signal, Table, i64, i64)> = Vec::new();
        for &signal in &signals {
            for table in Table::ALL.into_iter().filter(|t| t.signal() == signal) {
                let sql = format!(
                    "SELECT CAST(date_trunc('hour', timestamp) AS BIGINT) AS h, count(*) AS n \
                     FROM {table} WHERE {} GROUP BY 1 ORDER BY 1",
                    range(start, end)
                );
                let r = storage.engine.query(&tenant, &sql, &limits).await?;
                for b in &r.batches {
                    let hours = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>();
                    let counts = b
                        .column(1)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>();
                    let (Some(hours), Some(counts)) = (hours, counts) else {
                        bail!("unexpected types counting {table} per hour");
                    };
                    for i in 0..b.num_rows() {
                        let (hour, n) = (hours.value(i), counts.value(i));
                        total += n.max(0) as u64;
                        let (lo, hi) = (hour.max(start), hour.saturating_add(HOUR_NS).min(end));
                        let parts = (n / MAX_WINDOW_ROWS + 1).min(3600);
                        let step = ((hi - lo) / parts).max(1);
                        let mut from = lo;
                        while from < hi {
                            let to = from.saturating_add(step).min(hi);
                            windows.push((signal, table, from, to));
                            from = to;
                        }
                    }
                }
            }
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        let mut summary = ReplaySummary::default();
        for (signal, table, from, to) in windows {
            let sql = format!("SELECT * FROM {table} WHERE {}", range(from, to));
            let rows = storage.engine.query(&tenant, &sql, &limits).await?;
            for batch in &rows.batches {
                for (workspace, rows) in by_workspace(batch)? {
                    let mut offset = 0;
                    while offset < rows.num_rows() {
                        let len = args.batch_items.max(1).min(rows.num_rows() - offset);
                        let request = ExportBatch {
                            tenant: tenant.clone(),
                            workspace: workspace.clone(),
                            signal,
                            batches: vec![TableBatch {
                                table,
                                batch: rows.slice(offset, len),
                            }],
                            items: len as u64,
                            key: None,
                        };
                        send(&exporter, &request, args, &mut summary).await?;
                        bar.inc(len as u64);
                        offset += len;
                    }
                }
            }
        }
        bar.finish_and_clear();
        summary.seconds = started.elapsed().as_secs_f64();
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

/// Sends one request, retrying while the endpoint asks for it.
async fn send(
    exporter: &OtlpExporter,
    request: &ExportBatch,
    args: &ReplayArgs,
    summary: &mut ReplaySummary,
) -> anyhow::Result<()> {
    let mut failing_since: Option<Instant> = None;
    let mut delay = Duration::from_millis(100);
    loop {
        summary.requests += 1;
        match exporter.export(request).await {
            Ok(ack) => {
                let rejected = ack.rejected.min(request.items);
                summary.items += request.items - rejected;
                summary.rejected += rejected;
                if rejected > 0 {
                    tracing::warn!(rejected, reason = %ack.message, "the endpoint rejected part of a request");
                }
                return Ok(());
            }
            Err(ExportError::Permanent { reason }) => {
                summary.rejected += request.items;
                tracing::warn!(items = request.items, %reason, "the endpoint refused a request");
                return Ok(());
            }
            Err(ExportError::Retryable {
                reason,
                retry_after,
            }) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(args.max_retry_secs) {
                    bail!(
                        "the endpoint kept refusing for {} s (last: {reason}); {} items were sent",
                        args.max_retry_secs,
                        summary.items
                    );
                }
                summary.retries += 1;
                tokio::time::sleep(retry_after.unwrap_or(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
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
