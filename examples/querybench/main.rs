//! Query-latency benchmark on a generated store (issue 4): time-series
//! aggregation and trace lookup through our handlers and through plain SQL
//! on the engine, on the same Parquet files that `scripts/bench_query_duckdb.py`
//! queries with DuckDB.
//!
//! ```sh
//! cargo build --release --example querybench
//! target/release/examples/querybench generate --data-dir ./bench-data            # 10M spans + 10M points
//! target/release/examples/querybench run --data-dir ./bench-data --json ours.json
//! scripts/bench-query.sh                                                         # both + DuckDB, side by side
//! ```
//!
//! `generate` writes a store exactly as the server does: OTLP requests (spans
//! from `telemetryflow::synth::Synth`, metric series from a seeded generator
//! here: a gauge, a cumulative counter with resets, a delta histogram) go
//! through the real converters (domain rules included) into the server's own
//! `PartitionBuffer`, which cuts them into (tenant, table, hour) partitions
//! and flushes them as the server's flusher does under a bulk load (by
//! `buffer.flush_rows`, `buffer.flush_bytes` and memory pressure): sorted,
//! zstd, statistics, trace-id bloom filter, `storage.row_group_rows` per row
//! group, committed to the table's manifest. The WAL is skipped (nothing to
//! recover). Event times span `--hours` from `--start`; the same seed gives
//! the same rows.
//! A description of the store (time range, metric names, a deterministic
//! sample of stored trace ids) goes to `<data-dir>/querybench.json`, which
//! `run` and the DuckDB script read.
//!
//! `run` opens the store with `bootstrap::open_storage` (the server's engine
//! and default query settings: memory limit, target partitions = cores) and
//! times each query `--iterations` times after `--warmup` runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arrow::array::{Array, Float64Array, StringArray};
use clap::{Args, Parser, Subcommand};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use serde_json::json;
use telemetryflow::Config;
use telemetryflow::application::TableBatch;
use telemetryflow::application::commands::ShardedCounterStore;
use telemetryflow::application::pipeline::PartitionBuffer;
use telemetryflow::application::ports::{QueryLimits, QueryResult};
use telemetryflow::application::queries::params::{Aggregation, Interval, TimeWindow};
use telemetryflow::application::queries::{
    GetTraceQuery, MetricQueries, TimeSeriesQuery, TraceQueries,
};
use telemetryflow::bootstrap::open_storage;
use telemetryflow::config::Overrides;
use telemetryflow::domain::Table;
use telemetryflow::domain::{TenantContext, TenantId, WorkspaceId};
use telemetryflow::infrastructure::otlp::convert::{Converted, convert_metrics, convert_traces};
use telemetryflow::infrastructure::query::{DataFusionEngine, SqlParam};
use telemetryflow::synth::{METHODS, ROUTES, Rng, SERVICES, Synth, metric};

/// The server's allocator (src/main.rs), so both phases cost what they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NANOS_PER_SEC: u64 = 1_000_000_000;
const HOUR_NS: u64 = 3600 * NANOS_PER_SEC;
const META_FILE: &str = "querybench.json";
/// Spans per generated OTLP request (a multiple of Synth's 8-span traces).
const SPANS_PER_REQUEST: usize = 8192;
/// Metric points per generated OTLP request, about.
const POINTS_PER_REQUEST: usize = 8192;
/// Trace ids sampled into the store description.
const TRACE_SAMPLE: usize = 32;

const GAUGE: &str = "system.cpu.utilization";
const COUNTER: &str = "http.server.requests";
const HISTOGRAM: &str = "http.server.request.duration";
const GROUP_BY: &str = "http.route";

const BOUNDS: [f64; 7] = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0];

#[derive(Debug, Parser)]
#[command(about = "Query-latency benchmark: generate a store, then time queries on it")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Builds a store of spans and metric points in DATA_DIR/parquet.
    Generate(GenerateArgs),
    /// Times the queries on a generated store.
    Run(RunArgs),
    /// Ages a store in simulated time (many small flushes) and measures it.
    Soak(soak::SoakArgs),
    /// What table manifests cost as they grow: commits, checkpoints, start-up, refresh.
    Catalog(catalog::CatalogArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Data directory (Parquet files go to <data-dir>/parquet, as the server's).
    #[arg(long, default_value = "./bench-data")]
    data_dir: PathBuf,
    /// Spans to store.
    #[arg(long, default_value_t = 10_000_000)]
    spans: usize,
    /// Metric points to store, at least (gauge 40%, counter 40%, histogram 20%).
    #[arg(long, default_value_t = 10_000_000)]
    points: usize,
    /// Hours of event time the data covers.
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// Event time of the first item, RFC 3339, on a whole hour.
    #[arg(long, default_value = "2026-11-26T00:00:00Z")]
    start: String,
    /// Seed of every generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Instances per service (hosts); metric series = 4 services x instances x 18.
    #[arg(long, default_value_t = 8)]
    instances: usize,
    /// Tenant the data belongs to.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Delete an existing store in DATA_DIR first.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Data directory of a store made by `generate`.
    #[arg(long, default_value = "./bench-data")]
    data_dir: PathBuf,
    /// Timed iterations per query.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Untimed runs per query before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Results as JSON here.
    #[arg(long, default_value = "querybench-ours.json")]
    json: PathBuf,
}

/// What `generate` made; read by `run` and by the DuckDB script.
#[derive(Debug, Serialize, Deserialize)]
struct StoreMeta {
    tenant: String,
    seed: u64,
    start_ns: i64,
    end_ns: i64,
    hours: u64,
    spans: u64,
    gauge_points: u64,
    counter_points: u64,
    histogram_points: u64,
    metric_series: u64,
    scrape_interval_ns: u64,
    gauge_metric: String,
    counter_metric: String,
    histogram_metric: String,
    group_by: String,
    /// Stored trace ids (lowercase hex), spread over the time range.
    trace_ids: Vec<String>,
    /// Per table: files, rows, Parquet bytes.
    tables: BTreeMap<String, TableStats>,
    parquet_bytes: u64,
    generate_seconds: f64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct TableStats {
    files: u64,
    rows: u64,
    bytes: u64,
}

fn main() -> anyhow::Result<()> {
    // As the server runs (its lookups measured twice as fast without them).
    if let Err(e) = telemetryflow::bootstrap::disable_transparent_huge_pages() {
        eprintln!("could not turn transparent huge pages off: {e}");
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.cmd {
        Cmd::Generate(args) => rt.block_on(generate::generate(args)),
        Cmd::Run(args) => rt.block_on(run::run(args)),
        Cmd::Soak(args) => rt.block_on(soak::soak(args)),
        Cmd::Catalog(args) => rt.block_on(catalog::catalog(args)),
    }
}

fn load_config(data_dir: &Path) -> anyhow::Result<Config> {
    let overrides = Overrides {
        data_dir: Some(data_dir.to_owned()),
        ..Overrides::default()
    };
    Config::load(None, std::env::vars(), &overrides).context("loading the configuration")
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

mod catalog;
mod generate;
mod run;
mod soak;
