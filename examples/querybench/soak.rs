//! `querybench soak`: a store aged in simulated time. A quiet deployment
//! flushes one small traces file every `--flush-secs` (the server's default
//! `buffer.flush_interval_ms` is 10 s), hour after hour, through the server's
//! own partition buffer and durable commit; with `--compact` the server's
//! compactor runs every `--compact-secs` of simulated time (with the
//! simulated clock, so hours close as they would) and replaced files are
//! deleted once an hour. At each checkpoint the store is opened afresh, as a
//! restarted server would (start-up time), and the queries an SRE runs are
//! timed on that fresh engine: trace by id with and without a time window,
//! `count(*)`, the service list. Nothing else runs meanwhile: the numbers are
//! the store's shape, not contention.

use super::generate::{Loader, dir_bytes, parse_rfc3339};
use super::*;

use telemetryflow::application::queries::ServicesQuery;

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// Data directory (deleted and recreated).
    #[arg(long, default_value = "./soak-data")]
    data_dir: PathBuf,
    /// Simulated hours.
    #[arg(long, default_value_t = 168)]
    hours: u64,
    /// Simulated seconds between flushes (one file per flush).
    #[arg(long, default_value_t = 10)]
    flush_secs: u64,
    /// Spans per flush.
    #[arg(long, default_value_t = 512)]
    spans_per_flush: usize,
    /// Run the compactor.
    #[arg(long)]
    compact: bool,
    /// Simulated seconds between compaction passes.
    #[arg(long, default_value_t = 60)]
    compact_secs: u64,
    /// Simulated hours after which to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,6,24,72,168")]
    checkpoints: Vec<u64>,
    /// Timed runs per query at each checkpoint (after one cold run).
    #[arg(long, default_value_t = 5)]
    iterations: usize,
    /// Event time of the first flush, RFC 3339, on a whole hour.
    #[arg(long, default_value = "2026-11-02T00:00:00Z")]
    start: String,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Checkpoints as JSON lines here, too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The store and its queries at one checkpoint.
#[derive(Debug, Serialize)]
struct Checkpoint {
    compaction: bool,
    hours: u64,
    spans: u64,
    files: usize,
    files_per_closed_hour: f64,
    files_in_open_hour: usize,
    parquet_bytes: u64,
    manifest_bytes: u64,
    checkpoint_bytes: u64,
    #[serde(flatten)]
    timings: Timings,
    /// Seconds of simulated load (generation, flushes, compaction) so far.
    load_seconds: f64,
    compaction_seconds: f64,
    files_compacted: u64,
    peak_rss_mib: u64,
}

/// Start-up and query times on a freshly opened store.
#[derive(Debug, Serialize)]
struct Timings {
    startup_ms: f64,
    /// Cold (first) run, then the median of the timed runs, in ms.
    trace_in_window: (f64, f64),
    trace_no_window: (f64, f64),
    count_all: (f64, f64),
    services: (f64, f64),
}

/// The process's peak resident memory (VmHWM), MiB.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Cold run and median of `iterations` timed runs of `f(i)`, ms.
async fn cold_and_median<F, Fut>(iterations: usize, f: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let t = Instant::now();
    f(usize::MAX).await?;
    let cold = t.elapsed().as_secs_f64() * 1e3;
    let mut ms = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let t = Instant::now();
        f(i).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n == 0 {
        cold
    } else if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    Ok((cold, median))
}

pub(crate) async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    if args.hours == 0 || args.flush_secs == 0 || args.spans_per_flush == 0 {
        bail!("--hours, --flush-secs and --spans-per-flush must be at least 1");
    }
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("deleting {}", args.data_dir.display()))?;
    }
    let config = load_config(&args.data_dir)?;
    let tenant = TenantId::parse("default")?;
    let ctx = TenantContext::new(tenant.clone(), WorkspaceId::default_id());
    let start_ns = parse_rfc3339(&args.start)?;
    let storage = open_storage(&config, None, false)
        .await
        .context("opening the storage")?;
    let mut loader = Loader {
        buffer: Arc::clone(storage.pipeline.buffer()),
        tenant: tenant.clone(),
        seq: 0,
    };
    let mut json_out = match &args.json {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => None,
    };
    let mut synth = Synth::new(args.seed, start_ns);
    let flush_ns = args.flush_secs * NANOS_PER_SEC;
    let flushes_per_hour = (3600 / args.flush_secs).max(1);
    let compact_every = (args.compact_secs / args.flush_secs).max(1);
    // One sampled trace per hour: (hex id, event time).
    let mut samples: Vec<(String, u64)> = Vec::new();
    let (mut spans, mut compaction_seconds, mut files_compacted) = (0u64, 0f64, 0u64);
    let mut load = Duration::ZERO;
    let last = args.checkpoints.iter().copied().max().unwrap_or(args.hours);
    println!(
        "| compaction | hours | spans | files | files/closed hour | open hour | Parquet MiB | manifest KiB | checkpoint KiB | start-up ms | trace in hour ms (cold / warm) | trace, no window ms | count(*) ms | services ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for hour in 0..args.hours.min(last) {
        let loading = Instant::now();
        for f in 0..flushes_per_hour {
            let now = start_ns + hour * HOUR_NS + f * flush_ns;
            synth.now = synth.now.max(now);
            let req = synth.traces(args.spans_per_flush);
            if f == flushes_per_hour / 2 {
                let span = &req.resource_spans[0].scope_spans[0].spans[0];
                samples.push((hex::encode(&span.trace_id), span.start_time_unix_nano));
            }
            let converted = convert_traces(&req, &ctx).context("converting spans")?;
            loader.add(converted).await?;
            loader
                .buffer
                .flush_due(true)
                .await
                .context("flushing to Parquet")?;
            spans += args.spans_per_flush as u64;
            if args.compact && (f + 1) % compact_every == 0 {
                let s = storage
                    .compactor
                    .run_once(now + flush_ns)
                    .await
                    .context("compacting")?;
                compaction_seconds += s.seconds;
                files_compacted += s.files_in;
            }
        }
        if args.compact {
            storage
                .compactor
                .collect_garbage(Duration::ZERO)
                .await
                .context("deleting replaced files")?;
        }
        load += loading.elapsed();
        if !args.checkpoints.contains(&(hour + 1)) {
            continue;
        }
        let files = loader.buffer.snapshot(&tenant, Table::TRACES).files;
        let open_hour = start_ns + hour * HOUR_NS;
        let in_open = files.iter().filter(|f| f.hour_start == open_hour).count();
        let manifest_dir = args
            .data_dir
            .join("parquet")
            .join(tenant.as_str())
            .join(Table::TRACES.name())
            .join("_manifest");
        let checkpoint_bytes = std::fs::read_dir(&manifest_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .ends_with(".checkpoint.json")
                    })
                    .max_by_key(|e| e.file_name())
                    .and_then(|e| e.metadata().ok())
                    .map_or(0, |m| m.len())
            })
            .unwrap_or(0);
        let timings = measure(&args, &config, &ctx, &samples, hour + 1).await?;
        let cp = Checkpoint {
            compaction: args.compact,
            hours: hour + 1,
            spans,
            files: files.len(),
            files_per_closed_hour: if hour == 0 {
                0.0
            } else {
                (files.len() - in_open) as f64 / hour as f64
            },
            files_in_open_hour: in_open,
            parquet_bytes: files.iter().map(|f| f.size).sum(),
            manifest_bytes: dir_bytes(&manifest_dir),
            checkpoint_bytes,
            load_seconds: load.as_secs_f64(),
            compaction_seconds,
            files_compacted,
            peak_rss_mib: peak_rss_mib(),
            timings,
        };
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
            if cp.compaction { "on" } else { "off" },
            cp.hours,
            thousands(cp.spans),
            thousands(cp.files as u64),
            cp.files_per_closed_hour,
            cp.files_in_open_hour,
            cp.parquet_bytes as f64 / (1 << 20) as f64,
            cp.manifest_bytes as f64 / 1024.0,
            cp.checkpoint_bytes as f64 / 1024.0,
            cp.timings.startup_ms,
            cp.timings.trace_in_window.0,
            cp.timings.trace_in_window.1,
            cp.timings.trace_no_window.0,
            cp.timings.trace_no_window.1,
            cp.timings.count_all.0,
            cp.timings.count_all.1,
            cp.timings.services.0,
            cp.timings.services.1,
        );
        eprintln!(
            "after {} h: load {:.0} s (compaction {:.0} s, {} files merged), peak RSS {} MiB",
            cp.hours, cp.load_seconds, cp.compaction_seconds, cp.files_compacted, cp.peak_rss_mib
        );
        if let Some(out) = json_out.as_mut() {
            use std::io::Write as _;
            writeln!(out, "{}", serde_json::to_string(&cp)?)?;
        }
    }
    Ok(())
}

/// Opens the store as a restarting server does and times the queries.
async fn measure(
    args: &SoakArgs,
    config: &Config,
    ctx: &TenantContext,
    samples: &[(String, u64)],
    hours: u64,
) -> anyhow::Result<Timings> {
    let t = Instant::now();
    let storage = open_storage(config, None, false)
        .await
        .context("reopening the store")?;
    let startup_ms = t.elapsed().as_secs_f64() * 1e3;
    let limits = config.query_limits();
    let engine = Arc::clone(&storage.engine);
    let traces = TraceQueries::new(Arc::clone(&engine) as _, limits);
    // Lookups spread over the store's age; the cold run takes the newest.
    let sample = |i: usize| {
        let k = if i == usize::MAX {
            samples.len() - 1
        } else {
            i * 7919 % samples.len()
        };
        &samples[k]
    };
    let trace = |i: usize, windowed: bool| {
        let (id, at) = sample(i);
        let hour = *at - *at % HOUR_NS;
        let q = GetTraceQuery {
            ctx: ctx.clone(),
            trace_id: id.clone(),
            window: windowed.then_some(TimeWindow {
                start_ns: hour as i64,
                end_ns: (hour + HOUR_NS) as i64,
            }),
        };
        let traces = &traces;
        async move {
            let r = traces.trace(&q).await?;
            if r.num_rows() == 0 {
                bail!("trace {} not found", q.trace_id);
            }
            Ok(())
        }
    };
    let trace_in_window = cold_and_median(args.iterations, |i| trace(i, true)).await?;
    let trace_no_window = cold_and_median(args.iterations, |i| trace(i, false)).await?;
    let sql_limits = limits;
    let count_all = cold_and_median(args.iterations, |_| {
        let (engine, tenant) = (&engine, ctx.tenant());
        async move {
            let r = engine
                .query_with(tenant, "SELECT count(*) FROM otel_traces", &[], &sql_limits)
                .await?;
            if r.num_rows() != 1 {
                bail!("count(*) answered {} rows", r.num_rows());
            }
            Ok(())
        }
    })
    .await?;
    let start_ns = samples.first().map_or(0, |s| s.1 - s.1 % HOUR_NS);
    let everything = TimeWindow {
        start_ns: start_ns as i64,
        end_ns: (start_ns + hours * HOUR_NS) as i64,
    };
    let services = cold_and_median(args.iterations, |_| {
        let q = ServicesQuery {
            ctx: ctx.clone(),
            window: everything,
        };
        let traces = &traces;
        async move {
            let s = traces.services(&q).await?;
            if s.is_empty() {
                bail!("no services");
            }
            Ok(())
        }
    })
    .await?;
    Ok(Timings {
        startup_ms,
        trace_in_window,
        trace_no_window,
        count_all,
        services,
    })
}
