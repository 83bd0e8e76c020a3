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
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use serde_json::json;
use telemetryflow::Config;
use telemetryflow::application::commands::ShardedCounterStore;
use telemetryflow::application::pipeline::PartitionBuffer;
use telemetryflow::application::ports::{QueryLimits, QueryResult, ReadModel, SqlParam};
use telemetryflow::application::queries::params::{Aggregation, Interval, TimeWindow};
use telemetryflow::application::queries::{
    GetTraceQuery, MetricQueries, TimeSeriesQuery, TraceQueries,
};
use telemetryflow::application::{Table, TableBatch};
use telemetryflow::bootstrap::open_storage;
use telemetryflow::config::Overrides;
use telemetryflow::domain::{TenantContext, TenantId, WorkspaceId};
use telemetryflow::infrastructure::otlp::convert::{Converted, convert_metrics, convert_traces};
use telemetryflow::synth::Synth;

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

const SERVICES: [&str; 4] = ["checkout", "cart", "payment", "frontend"];
const ROUTES: [&str; 6] = [
    "/",
    "/cart",
    "/cart/add",
    "/checkout",
    "/pay",
    "/product/{id}",
];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
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
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.cmd {
        Cmd::Generate(args) => rt.block_on(generate(args)),
        Cmd::Run(args) => rt.block_on(run(args)),
    }
}

fn load_config(data_dir: &Path) -> anyhow::Result<Config> {
    let overrides = Overrides {
        data_dir: Some(data_dir.to_owned()),
        ..Overrides::default()
    };
    Config::load(None, std::env::vars(), &overrides).context("loading the configuration")
}

/// xorshift64*, as `Synth`.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------- generate

/// Feeds converted rows to the server's partition buffer and flushes what
/// is due after each request, as the server's flusher would.
struct Loader {
    buffer: Arc<PartitionBuffer>,
    tenant: TenantId,
    seq: u64,
}

impl Loader {
    async fn add(&mut self, converted: Converted) -> anyhow::Result<()> {
        if converted.summary.rejected() > 0 {
            bail!(
                "the converter rejected generated items: {}",
                converted.summary.rejection_message()
            );
        }
        self.seq += 1;
        for TableBatch { table, batch } in &converted.batches {
            self.buffer
                .insert(&self.tenant, *table, batch, self.seq, false);
        }
        self.buffer
            .flush_due(false)
            .await
            .context("flushing to Parquet")?;
        Ok(())
    }
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn kv_str(k: &str, v: &str) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

/// Metric series scraped at a fixed interval: per (service, instance) one
/// resource; per (route, method) one series of each metric.
struct MetricGen {
    rng: Rng,
    instances: usize,
    start_ns: u64,
    interval_ns: u64,
    scrapes: u64,
    /// Per series: (start time, value) of the cumulative counter.
    counters: Vec<(u64, i64)>,
    resets: u64,
}

impl MetricGen {
    fn series_per_resource() -> usize {
        ROUTES.len() * METHODS.len()
    }

    fn series(&self) -> usize {
        SERVICES.len() * self.instances * Self::series_per_resource()
    }

    /// A series' scrape `k` happens at its own offset within the interval.
    fn time(&self, series: usize, k: u64) -> u64 {
        let offset = self.interval_ns * series as u64 / self.series() as u64;
        self.start_ns + k * self.interval_ns + offset
    }

    /// The points of scrapes `from..to` of every series; histogram points
    /// on even scrapes only.
    fn request(&mut self, from: u64, to: u64) -> ExportMetricsServiceRequest {
        let mut resources = Vec::new();
        let per = Self::series_per_resource();
        for (si, service) in SERVICES.iter().enumerate() {
            for inst in 0..self.instances {
                let (mut gauge, mut sum, mut hist) = (Vec::new(), Vec::new(), Vec::new());
                for (route, route_name) in ROUTES.iter().enumerate() {
                    for (method, method_name) in METHODS.iter().enumerate() {
                        let series =
                            (si * self.instances + inst) * per + route * METHODS.len() + method;
                        let attrs = vec![
                            kv_str("http.route", route_name),
                            kv_str("http.request.method", method_name),
                            kv("http.response.status_code", any_value::Value::IntValue(200)),
                        ];
                        for k in from..to {
                            let t = self.time(series, k);
                            let prev_t = if k == 0 {
                                t.saturating_sub(self.interval_ns)
                            } else {
                                self.time(series, k - 1)
                            };
                            let base = 10.0 + 5.0 * route as f64;
                            gauge.push(NumberDataPoint {
                                attributes: attrs.clone(),
                                time_unix_nano: t,
                                value: Some(number_data_point::Value::AsDouble(
                                    base + self.rng.below(10_000) as f64 / 100.0,
                                )),
                                ..Default::default()
                            });
                            let c = &mut self.counters[series];
                            if k > 0 && self.rng.below(3000) == 0 {
                                // A restart: a new start time, counting from zero.
                                self.resets += 1;
                                *c = (prev_t + 1 + self.rng.below(t - prev_t - 1), 0);
                            }
                            c.1 += self.rng.below(50 * (route as u64 + 1)) as i64;
                            sum.push(NumberDataPoint {
                                attributes: attrs.clone(),
                                start_time_unix_nano: c.0,
                                time_unix_nano: t,
                                value: Some(number_data_point::Value::AsInt(c.1)),
                                ..Default::default()
                            });
                            if k % 2 == 0 {
                                let counts: Vec<u64> =
                                    (0..=BOUNDS.len()).map(|_| self.rng.below(40)).collect();
                                let count = counts.iter().sum();
                                hist.push(HistogramDataPoint {
                                    attributes: attrs.clone(),
                                    start_time_unix_nano: prev_t,
                                    time_unix_nano: t,
                                    count,
                                    sum: Some((count * (1 + self.rng.below(200))) as f64),
                                    bucket_counts: counts,
                                    explicit_bounds: BOUNDS.to_vec(),
                                    min: Some(0.5),
                                    max: Some(900.0),
                                    ..Default::default()
                                });
                            }
                        }
                    }
                }
                let m = |name: &str, unit: &str, data| Metric {
                    name: name.into(),
                    unit: unit.into(),
                    description: format!("synthetic {name}"),
                    data: Some(data),
                    ..Default::default()
                };
                let mut metrics = vec![
                    m(
                        GAUGE,
                        "1",
                        metric::Data::Gauge(Gauge { data_points: gauge }),
                    ),
                    m(
                        COUNTER,
                        "{request}",
                        metric::Data::Sum(Sum {
                            data_points: sum,
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                    ),
                ];
                if !hist.is_empty() {
                    metrics.push(m(
                        HISTOGRAM,
                        "ms",
                        metric::Data::Histogram(Histogram {
                            data_points: hist,
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        }),
                    ));
                }
                resources.push(ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![
                            kv_str("service.name", service),
                            kv_str("service.version", "1.4.2"),
                            kv_str("deployment.environment", "production"),
                            kv_str("host.name", &format!("{service}-{inst:02}")),
                            kv_str("telemetry.sdk.language", "rust"),
                        ],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "telemetryflow.querybench".into(),
                            version: "0.1.0".into(),
                            ..Default::default()
                        }),
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                });
            }
        }
        ExportMetricsServiceRequest {
            resource_metrics: resources,
        }
    }
}

fn parse_rfc3339(s: &str) -> anyhow::Result<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--start {s:?} is not RFC 3339"))?;
    let ns = t
        .timestamp_nanos_opt()
        .filter(|&n| n > 0)
        .with_context(|| format!("--start {s:?} is out of range"))? as u64;
    if !ns.is_multiple_of(HOUR_NS) {
        bail!("--start {s:?} must be on a whole hour");
    }
    Ok(ns)
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.hours == 0 || args.instances == 0 {
        bail!("--hours and --instances must be at least 1");
    }
    let config = load_config(&args.data_dir)?;
    let parquet_dir = args.data_dir.join("parquet");
    let meta_path = args.data_dir.join(META_FILE);
    if parquet_dir.exists() || meta_path.exists() {
        if !args.force {
            bail!(
                "{} already holds a store; pass --force to replace it",
                args.data_dir.display()
            );
        }
        for dir in [parquet_dir.clone(), args.data_dir.join("wal")] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("deleting {}", dir.display()))?;
            }
        }
        if meta_path.exists() {
            std::fs::remove_file(&meta_path)
                .with_context(|| format!("deleting {}", meta_path.display()))?;
        }
    }
    std::fs::create_dir_all(&parquet_dir)
        .with_context(|| format!("creating {}", parquet_dir.display()))?;

    let tenant = TenantId::parse(&args.tenant).context("--tenant")?;
    let ctx = TenantContext::new(tenant.clone(), WorkspaceId::default_id());
    let start_ns = parse_rfc3339(&args.start)?;
    let span_ns = args.hours * HOUR_NS;
    let end_ns = start_ns + span_ns;

    let storage = open_storage(&config, None, false)
        .await
        .context("opening the storage")?;
    let mut loader = Loader {
        buffer: Arc::clone(storage.pipeline.buffer()),
        tenant: tenant.clone(),
        seq: 0,
    };

    // Spans: Synth's traces of 8 spans, each request's traces 1 ms apart,
    // requests spread evenly over the time range.
    let mut synth = Synth::new(args.seed, start_ns);
    let mut pick = Rng::new(args.seed ^ 0x7472_6163_6573);
    let requests = args.spans.div_ceil(SPANS_PER_REQUEST).max(1);
    let spacing = span_ns / requests as u64;
    let sample_at: Vec<usize> = (0..TRACE_SAMPLE)
        .map(|j| j * requests / TRACE_SAMPLE)
        .collect();
    let mut trace_ids = Vec::new();
    let mut spans_done = 0usize;
    for i in 0..requests {
        let n = SPANS_PER_REQUEST.min(args.spans - spans_done);
        if n == 0 {
            break;
        }
        synth.now = synth.now.max(start_ns + i as u64 * spacing);
        let req = synth.traces(n);
        for _ in sample_at.iter().filter(|&&r| r == i) {
            let rs = &req.resource_spans[pick.below(req.resource_spans.len() as u64) as usize];
            let spans = &rs.scope_spans[0].spans;
            let span = &spans[pick.below(spans.len() as u64) as usize];
            let id = hex::encode(&span.trace_id);
            if !trace_ids.contains(&id) {
                trace_ids.push(id);
            }
        }
        let converted = convert_traces(&req, &ctx).context("converting spans")?;
        loader.add(converted).await?;
        spans_done += n;
    }
    if synth.now >= end_ns {
        eprintln!(
            "note: spans run {:.1} min past the time range (more spans than {} ms slots)",
            (synth.now - end_ns) as f64 / 6e10,
            span_ns / 1_000_000
        );
    }
    eprintln!("spans generated in {:.1}s", started.elapsed().as_secs_f64());

    // Metrics: every series scraped `scrapes` times over the range.
    let instances = args.instances;
    let series = SERVICES.len() * instances * MetricGen::series_per_resource();
    let scrapes = ((args.points as f64 / (2.5 * series as f64)).ceil() as u64).max(1);
    let mut mgen = MetricGen {
        rng: Rng::new(args.seed ^ 0x6d65_7472_6963),
        instances,
        start_ns,
        interval_ns: span_ns / scrapes,
        scrapes,
        counters: vec![(start_ns.saturating_sub(HOUR_NS), 0); series],
        resets: 0,
    };
    let counters = ShardedCounterStore::new(config.ingest.max_counter_series.max(series));
    let per_request = ((POINTS_PER_REQUEST as f64 / (2.5 * series as f64)) as u64).max(1);
    let metric_tables = [
        Table::MetricsGauge,
        Table::MetricsSum,
        Table::MetricsHistogram,
    ];
    let (mut gauge_points, mut counter_points, mut hist_points) = (0u64, 0u64, 0u64);
    let mut k = 0;
    while k < mgen.scrapes {
        let to = (k + per_request).min(mgen.scrapes);
        let req = mgen.request(k, to);
        let converted =
            convert_metrics(&req, &ctx, &counters).context("converting metric points")?;
        for b in &converted.batches {
            let rows = b.batch.num_rows() as u64;
            match b.table {
                Table::MetricsGauge => gauge_points += rows,
                Table::MetricsSum => counter_points += rows,
                Table::MetricsHistogram => hist_points += rows,
                _ => {}
            }
        }
        loader.add(converted).await?;
        k = to;
    }
    loader
        .buffer
        .flush_due(true)
        .await
        .context("flushing to Parquet")?;

    let mut tables: BTreeMap<String, TableStats> = BTreeMap::new();
    for table in [Table::Traces].into_iter().chain(metric_tables) {
        let snapshot = loader.buffer.snapshot(&tenant, table);
        let s = tables.entry(table.name().to_owned()).or_default();
        for f in &snapshot.files {
            s.files += 1;
            s.rows += f.rows;
            s.bytes += f.size;
        }
    }
    let parquet_bytes: u64 = tables.values().map(|s| s.bytes).sum();
    let stored_spans = tables.get("otel_traces").map(|s| s.rows).unwrap_or(0);
    let meta = StoreMeta {
        tenant: args.tenant.clone(),
        seed: args.seed,
        start_ns: start_ns as i64,
        end_ns: end_ns as i64,
        hours: args.hours,
        spans: stored_spans,
        gauge_points,
        counter_points,
        histogram_points: hist_points,
        metric_series: series as u64,
        scrape_interval_ns: mgen.interval_ns,
        gauge_metric: GAUGE.into(),
        counter_metric: COUNTER.into(),
        histogram_metric: HISTOGRAM.into(),
        group_by: GROUP_BY.into(),
        trace_ids,
        tables: tables.clone(),
        parquet_bytes,
        generate_seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta)?)
        .with_context(|| format!("writing {}", meta_path.display()))?;

    println!("store: {}", parquet_dir.display());
    println!("| table | files | rows | Parquet bytes |");
    println!("|---|---:|---:|---:|");
    for (name, s) in &tables {
        println!(
            "| {name} | {} | {} | {} |",
            s.files,
            thousands(s.rows),
            thousands(s.bytes)
        );
    }
    println!(
        "spans stored: {}; metric points stored: {} (gauge {}, counter {} with {} resets, histogram {}) \
         in {} series scraped every {:.1}s",
        thousands(stored_spans),
        thousands(gauge_points + counter_points + hist_points),
        thousands(gauge_points),
        thousands(counter_points),
        mgen.resets,
        thousands(hist_points),
        series,
        mgen.interval_ns as f64 / 1e9
    );
    println!(
        "Parquet bytes: {} ({:.1} MiB; {} on disk with manifests); generated in {:.1}s",
        thousands(parquet_bytes),
        parquet_bytes as f64 / (1 << 20) as f64,
        thousands(dir_bytes(&parquet_dir)),
        meta.generate_seconds
    );
    Ok(())
}

// --------------------------------------------------------------------- run

#[derive(Debug, Clone, Serialize)]
struct Measured {
    id: String,
    group: String,
    engine: String,
    description: String,
    iterations: usize,
    min_ms: Option<f64>,
    median_ms: Option<f64>,
    p90_ms: Option<f64>,
    /// Rows (points, spans) of the last answer.
    rows: Option<u64>,
    /// Sum of the answer's values (time series), to compare engines.
    checksum: Option<f64>,
    error: Option<String>,
}

/// Median (mean of the middle two for an even count) and nearest-rank p90,
/// as the DuckDB script computes them.
fn summarize(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    let p90 = ms[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1];
    (ms[0], median, p90)
}

/// One answer's size and checksum.
struct Answer {
    rows: u64,
    checksum: Option<f64>,
}

fn result_answer(r: &QueryResult) -> Answer {
    let checksum = r.schema.index_of("value").ok().map(|i| {
        r.batches
            .iter()
            .filter_map(|b| b.column(i).as_any().downcast_ref::<Float64Array>())
            .flat_map(|a| a.iter().flatten())
            .sum()
    });
    Answer {
        rows: r.num_rows() as u64,
        checksum,
    }
}

struct Bench {
    iterations: usize,
    warmup: usize,
    results: Vec<Measured>,
}

impl Bench {
    /// Runs `f(i)` for warm-up (i = usize::MAX - w) and timed iterations (i = 0..).
    async fn time<F, Fut>(&mut self, id: &str, group: &str, engine: &str, description: &str, f: F)
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Answer>>,
    {
        eprintln!("running {id} …");
        let mut m = Measured {
            id: id.into(),
            group: group.into(),
            engine: engine.into(),
            description: description.into(),
            iterations: 0,
            min_ms: None,
            median_ms: None,
            p90_ms: None,
            rows: None,
            checksum: None,
            error: None,
        };
        let mut times = Vec::with_capacity(self.iterations);
        let runs = (0..self.warmup)
            .map(|w| (true, usize::MAX - w))
            .chain((0..self.iterations).map(|i| (false, i)));
        for (warm, i) in runs {
            let t = Instant::now();
            let r = f(i).await;
            let elapsed = t.elapsed();
            match r {
                Ok(a) => {
                    if !warm {
                        times.push(elapsed.as_secs_f64() * 1e3);
                    }
                    m.rows = Some(a.rows);
                    m.checksum = a.checksum;
                }
                Err(e) => {
                    m.error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        if !times.is_empty() && m.error.is_none() {
            let (min, median, p90) = summarize(&mut times);
            m.iterations = times.len();
            m.min_ms = Some(min);
            m.median_ms = Some(median);
            m.p90_ms = Some(p90);
        }
        self.results.push(m);
    }
}

fn sql_aggregate(func: &str, table: &str, interval_secs: i64, group_by: Option<&str>) -> String {
    // What MetricQueries::aggregate sends, with the same bound parameters.
    let (cols, inner) = match group_by {
        Some(k) => (
            ", g0".to_owned(),
            format!(", COALESCE(attributes['{k}'], resource_attributes['{k}']) AS g0"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "SELECT CAST(date_bin(INTERVAL '{interval_secs} seconds', timestamp) AS BIGINT) AS bucket{cols}, \
         {func} AS value \
         FROM (SELECT timestamp, value{inner} FROM {table} \
         WHERE metric_name = $1 AND timestamp >= $2 AND timestamp < $3) \
         GROUP BY bucket{cols} ORDER BY bucket"
    )
}

/// A counter's rate in SQL (the DuckDB script's query): per series (service,
/// resource, scope, attributes) the increase over the previous point by
/// `lag()`, with the handler's rules (a new start time or a drop is a reset;
/// a series' first point in the window counts only if it started inside).
fn sql_rate_lag(interval_secs: i64) -> String {
    format!(
        "SELECT CAST(date_bin(INTERVAL '{interval_secs} seconds', timestamp) AS BIGINT) AS bucket, \
         sum(inc) / {interval_secs}.0 AS value FROM ( \
           SELECT timestamp, CASE \
             WHEN aggregation_temporality = 1 THEN value \
             WHEN prev_value IS NULL THEN CASE WHEN start_timestamp >= $2 THEN value END \
             WHEN start_timestamp = prev_start AND value >= prev_value THEN value - prev_value \
             ELSE value END AS inc \
           FROM ( \
             SELECT timestamp, start_timestamp, value, aggregation_temporality, \
               lag(value) OVER (PARTITION BY service_name, resource_attributes, scope_name, attributes ORDER BY timestamp) AS prev_value, \
               lag(start_timestamp) OVER (PARTITION BY service_name, resource_attributes, scope_name, attributes ORDER BY timestamp) AS prev_start \
             FROM otel_metrics_sum WHERE metric_name = $1 AND timestamp >= $2 AND timestamp < $3)) \
         WHERE inc IS NOT NULL GROUP BY bucket ORDER BY bucket"
    )
}

/// The handler's raw-point fetch for rate/increase (MetricQueries::raw).
fn sql_rate_raw() -> &'static str {
    "SELECT service_name, resource_attributes, scope_name, attributes, \
     CAST(start_timestamp AS BIGINT) AS start_ns, CAST(timestamp AS BIGINT) AS ts_ns, \
     aggregation_temporality, value \
     FROM otel_metrics_sum WHERE metric_name = $1 AND timestamp >= $2 AND timestamp < $3"
}

/// `name=value` pairs of the scan's metrics in an EXPLAIN ANALYZE plan.
fn scan_metrics(plan: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in plan.lines() {
        let trimmed = line.trim();
        if !(trimmed.starts_with("DataSourceExec") || trimmed.starts_with("ParquetExec")) {
            continue;
        }
        let Some(start) = trimmed.find("metrics=[") else {
            continue;
        };
        let body = &trimmed[start + "metrics=[".len()..];
        let body = body.strip_suffix(']').unwrap_or(body);
        out.push(body.to_owned());
    }
    out
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "—".into())
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

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let meta_path = args.data_dir.join(META_FILE);
    let meta: StoreMeta =
        serde_json::from_slice(&std::fs::read(&meta_path).with_context(|| {
            format!(
                "reading {} (generate the store first: querybench generate --data-dir {})",
                meta_path.display(),
                args.data_dir.display()
            )
        })?)
        .with_context(|| format!("parsing {}", meta_path.display()))?;
    if meta.trace_ids.is_empty() {
        bail!("{} lists no trace ids", meta_path.display());
    }
    let config = load_config(&args.data_dir)?;
    let storage = open_storage(&config, None, false)
        .await
        .context("opening the store")?;
    let tenant = TenantId::parse(&meta.tenant).context("tenant in the store description")?;
    let ctx = TenantContext::new(tenant.clone(), WorkspaceId::default_id());
    let limits: QueryLimits = config.query_limits();
    let read_model = Arc::clone(&storage.engine) as Arc<dyn ReadModel>;
    let metric_queries = MetricQueries::new(
        Arc::clone(&read_model),
        limits,
        Duration::ZERO,
        config.query.cache_max_entries,
    );
    let trace_queries = TraceQueries::new(Arc::clone(&read_model), limits);
    let target_partitions = storage
        .engine
        .session(&tenant, limits.memory_bytes)
        .context("opening a query session")?
        .state()
        .config()
        .target_partitions();
    let files: usize = storage
        .pipeline
        .buffer()
        .manifest_versions()
        .iter()
        .filter(|(t, ..)| *t == tenant)
        .map(|(.., n)| *n)
        .sum();

    // Windows: one hour in the middle of the range, and the whole range.
    let mid_hour = meta.start_ns + (meta.hours / 2) as i64 * HOUR_NS as i64;
    let hour = TimeWindow {
        start_ns: mid_hour,
        end_ns: mid_hour + HOUR_NS as i64,
    };
    let all = TimeWindow {
        start_ns: meta.start_ns,
        end_ns: meta.end_ns,
    };
    let m1 = Interval::parse("1m")?;
    let m5 = Interval::parse("5m")?;
    let ts_query = |metric: &str, window: TimeWindow, interval, agg: &str, group: bool| {
        Ok::<_, anyhow::Error>(TimeSeriesQuery {
            tenant: tenant.clone(),
            metric: metric.to_owned(),
            window,
            interval,
            aggregation: Aggregation::parse(agg)?,
            service: None,
            group_by: if group {
                vec![meta.group_by.clone()]
            } else {
                Vec::new()
            },
        })
    };
    let params = |metric: &str, w: TimeWindow| {
        vec![
            SqlParam::Utf8(metric.to_owned()),
            SqlParam::TimestampNs(w.start_ns),
            SqlParam::TimestampNs(w.end_ns),
        ]
    };
    let answer_ts = |ts: &telemetryflow::application::queries::metric_queries::TimeSeries| Answer {
        rows: ts.series.iter().map(|s| s.points.len() as u64).sum(),
        checksum: Some(
            ts.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.value))
                .sum(),
        ),
    };

    let mut bench = Bench {
        iterations: args.iterations,
        warmup: args.warmup,
        results: Vec::new(),
    };
    // The answers an API caller gets are capped at query.max_rows; the
    // aggregates here are far below it.
    let sql_limits = limits;

    // 1. avg of the gauge over 1 h at 1m.
    let q = ts_query(&meta.gauge_metric, hour, m1, "avg", false)?;
    bench
        .time(
            "avg_1h_handler",
            "avg_1h",
            "ours: MetricQueries::time_series",
            "avg of the gauge, 1 h, 1m buckets",
            |_| {
                let (mq, q) = (&metric_queries, &q);
                async move { Ok(answer_ts(&*mq.time_series(q).await?)) }
            },
        )
        .await;
    let sql = sql_aggregate("avg(value)", "otel_metrics_gauge", 60, None);
    let p = params(&meta.gauge_metric, hour);
    bench
        .time(
            "avg_1h_sql",
            "avg_1h",
            "ours: SQL (ReadModel::query)",
            &sql,
            |_| {
                let (rm, sql, p, t, l) = (&read_model, &sql, &p, &tenant, &sql_limits);
                async move { Ok(result_answer(&rm.query(t, sql, p, l).await?)) }
            },
        )
        .await;

    // 2. avg over the whole range by http.route at 5m.
    let q = ts_query(&meta.gauge_metric, all, m5, "avg", true)?;
    bench
        .time(
            "avg_24h_by_route_handler",
            "avg_24h_by_route",
            "ours: MetricQueries::time_series",
            "avg of the gauge by http.route, whole range, 5m buckets",
            |_| {
                let (mq, q) = (&metric_queries, &q);
                async move { Ok(answer_ts(&*mq.time_series(q).await?)) }
            },
        )
        .await;
    let sql = sql_aggregate(
        "avg(value)",
        "otel_metrics_gauge",
        300,
        Some(&meta.group_by),
    );
    let p = params(&meta.gauge_metric, all);
    bench
        .time(
            "avg_24h_by_route_sql",
            "avg_24h_by_route",
            "ours: SQL (ReadModel::query)",
            &sql,
            |_| {
                let (rm, sql, p, t, l) = (&read_model, &sql, &p, &tenant, &sql_limits);
                async move { Ok(result_answer(&rm.query(t, sql, p, l).await?)) }
            },
        )
        .await;

    // 3. rate of the counter over 1 h at 1m.
    let q = ts_query(&meta.counter_metric, hour, m1, "rate", false)?;
    bench
        .time("rate_1h_handler", "rate_1h", "ours: MetricQueries::time_series", "rate of the cumulative counter, 1 h, 1m buckets (raw points + domain reset rules in Rust)", |_| {
            let (mq, q) = (&metric_queries, &q);
            async move { Ok(answer_ts(&*mq.time_series(q).await?)) }
        })
        .await;
    let sql = sql_rate_lag(60);
    let p = params(&meta.counter_metric, hour);
    bench
        .time(
            "rate_1h_sql",
            "rate_1h",
            "ours: SQL (ReadModel::query)",
            &sql,
            |_| {
                let (rm, sql, p, t, l) = (&read_model, &sql, &p, &tenant, &sql_limits);
                async move { Ok(result_answer(&rm.query(t, sql, p, l).await?)) }
            },
        )
        .await;
    let raw_limits = QueryLimits {
        max_rows: 5_000_000,
        ..limits
    };
    bench
        .time(
            "rate_1h_raw_fetch_sql",
            "rate_1h_raw_fetch",
            "ours: SQL (ReadModel::query)",
            sql_rate_raw(),
            |_| {
                let (rm, sql, p, t, l) = (&read_model, sql_rate_raw(), &p, &tenant, &raw_limits);
                async move { Ok(result_answer(&rm.query(t, sql, p, l).await?)) }
            },
        )
        .await;

    // 4. trace by id: iteration i looks up trace_ids[i % n]; warm-up the last.
    let ids = &meta.trace_ids;
    let id_at = |i: usize| {
        if i >= args.iterations {
            &ids[ids.len() - 1 - (usize::MAX - i) % ids.len()]
        } else {
            &ids[i % ids.len()]
        }
    };
    bench
        .time(
            "trace_lookup_handler",
            "trace_lookup",
            "ours: TraceQueries::trace",
            "every span of a trace by id (ORDER BY timestamp, span_id), no time window",
            |i| {
                let q = GetTraceQuery {
                    ctx: ctx.clone(),
                    trace_id: id_at(i).clone(),
                    window: None,
                };
                let tq = &trace_queries;
                async move {
                    let r = tq.trace(&q).await?;
                    Ok(Answer {
                        rows: r.num_rows() as u64,
                        checksum: None,
                    })
                }
            },
        )
        .await;
    bench
        .time(
            "trace_lookup_sql",
            "trace_lookup",
            "ours: SQL (ReadModel::query)",
            "SELECT * FROM otel_traces WHERE trace_id = '<id>'",
            |i| {
                let sql = format!("SELECT * FROM otel_traces WHERE trace_id = '{}'", id_at(i));
                let (rm, t, l) = (&read_model, &tenant, &sql_limits);
                async move {
                    let r = rm.query(t, &sql, &[], l).await?;
                    if r.num_rows() == 0 {
                        bail!("trace not found");
                    }
                    Ok(result_answer(&r))
                }
            },
        )
        .await;

    // Pruning of one trace lookup.
    let explain_sql = format!(
        "EXPLAIN ANALYZE SELECT * FROM otel_traces WHERE trace_id = '{}'",
        ids[0]
    );
    let explain = match read_model.query(&tenant, &explain_sql, &[], &limits).await {
        Ok(r) => {
            let mut text = String::new();
            for b in &r.batches {
                if let Some(plans) = b
                    .column_by_name("plan")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                {
                    for p in plans.iter().flatten() {
                        text.push_str(p);
                        text.push('\n');
                    }
                }
            }
            scan_metrics(&text)
        }
        Err(e) => vec![format!("EXPLAIN ANALYZE failed: {e}")],
    };

    // Report.
    println!(
        "\n## TelemetryFlow query latency ({} spans, {} metric points, {} files, {:.1} MiB Parquet)\n",
        thousands(meta.spans),
        thousands(meta.gauge_points + meta.counter_points + meta.histogram_points),
        files,
        meta.parquet_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "engine: DataFusion, target_partitions = {target_partitions}, query memory limit = {} MiB; \
         time-series cache off; {} iterations after {} warm-up",
        limits.memory_bytes >> 20,
        args.iterations,
        args.warmup
    );
    println!();
    println!("| query | engine | min ms | median ms | p90 ms | rows | checksum |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for m in &bench.results {
        let rows = m.rows.map(|r| r.to_string()).unwrap_or_else(|| "—".into());
        let checksum = m
            .checksum
            .map(|c| format!("{c:.3}"))
            .unwrap_or_else(|| "—".into());
        match &m.error {
            Some(e) => println!(
                "| {} | {} | error: {} | | | | |",
                m.id,
                m.engine,
                e.replace('|', "\\|")
            ),
            None => println!(
                "| {} | {} | {} | {} | {} | {rows} | {checksum} |",
                m.id,
                m.engine,
                fmt_ms(m.min_ms),
                fmt_ms(m.median_ms),
                fmt_ms(m.p90_ms)
            ),
        }
    }
    println!("\nEXPLAIN ANALYZE of a trace lookup (scan metrics):");
    for line in &explain {
        println!("  {line}");
    }

    let out = json!({
        "engine": "telemetryflow",
        "data_dir": args.data_dir,
        "store": meta,
        "files": files,
        "target_partitions": target_partitions,
        "memory_limit_mb": limits.memory_bytes >> 20,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "windows": {
            "hour": [hour.start_ns, hour.end_ns],
            "all": [all.start_ns, all.end_ns],
        },
        "trace_lookup_explain": explain,
        "results": bench.results,
    });
    if let Some(dir) = args.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&out)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("\nresults: {}", args.json.display());
    Ok(())
}
