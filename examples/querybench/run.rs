//! `querybench run`: each query against the generated store, timed.

use super::*;

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

fn answer_ts(ts: &telemetryflow::application::queries::metric_queries::TimeSeries) -> Answer {
    Answer {
        rows: ts.series.iter().map(|s| s.points.len() as u64).sum(),
        checksum: Some(
            ts.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.value))
                .sum(),
        ),
    }
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
    /// Times one statement through the engine (the SQL the handlers' ports
    /// send, with the same bound parameters).
    async fn sql(
        &mut self,
        (id, group): (&str, &str),
        engine: &DataFusionEngine,
        tenant: &TenantId,
        (sql, params, limits): (&str, &[SqlParam], &QueryLimits),
    ) {
        self.time(
            id,
            group,
            "ours: SQL (DataFusionEngine::query_with)",
            sql,
            |_| async move {
                Ok(result_answer(
                    &engine.query_with(tenant, sql, params, limits).await?,
                ))
            },
        )
        .await;
    }

    /// Times one time-series query through the use case.
    async fn handler(
        &mut self,
        (id, group): (&str, &str),
        description: &str,
        queries: &MetricQueries,
        q: &TimeSeriesQuery,
    ) {
        self.time(
            id,
            group,
            "ours: MetricQueries::time_series",
            description,
            |_| async move { Ok(answer_ts(&*queries.time_series(q).await?)) },
        )
        .await;
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

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
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
    let read_model = Arc::clone(&storage.engine);
    let metric_queries = MetricQueries::new(
        Arc::clone(&read_model) as _,
        limits,
        Duration::ZERO,
        config.query.cache_max_entries,
    );
    let trace_queries = TraceQueries::new(Arc::clone(&read_model) as _, limits);
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
            filters: Vec::new(),
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
        .handler(
            ("avg_1h_handler", "avg_1h"),
            "avg of the gauge, 1 h, 1m buckets",
            &metric_queries,
            &q,
        )
        .await;
    let sql = sql_aggregate("avg(value)", "otel_metrics_gauge", 60, None);
    let p = params(&meta.gauge_metric, hour);
    bench
        .sql(
            ("avg_1h_sql", "avg_1h"),
            &read_model,
            &tenant,
            (&sql, &p, &sql_limits),
        )
        .await;

    // 2. avg over the whole range by http.route at 5m.
    let q = ts_query(&meta.gauge_metric, all, m5, "avg", true)?;
    bench
        .handler(
            ("avg_24h_by_route_handler", "avg_24h_by_route"),
            "avg of the gauge by http.route, whole range, 5m buckets",
            &metric_queries,
            &q,
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
        .sql(
            ("avg_24h_by_route_sql", "avg_24h_by_route"),
            &read_model,
            &tenant,
            (&sql, &p, &sql_limits),
        )
        .await;

    // 3. rate of the counter over 1 h at 1m.
    let q = ts_query(&meta.counter_metric, hour, m1, "rate", false)?;
    bench
        .handler(("rate_1h_handler", "rate_1h"), "rate of the cumulative counter, 1 h, 1m buckets (raw points + domain reset rules in Rust)", &metric_queries, &q)
        .await;
    let sql = sql_rate_lag(60);
    let p = params(&meta.counter_metric, hour);
    bench
        .sql(
            ("rate_1h_sql", "rate_1h"),
            &read_model,
            &tenant,
            (&sql, &p, &sql_limits),
        )
        .await;
    let raw_limits = QueryLimits {
        max_rows: 5_000_000,
        ..limits
    };
    bench
        .sql(
            ("rate_1h_raw_fetch_sql", "rate_1h_raw_fetch"),
            &read_model,
            &tenant,
            (sql_rate_raw(), &p, &raw_limits),
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
            "ours: SQL (DataFusionEngine::query_with)",
            "SELECT * FROM otel_traces WHERE trace_id = '<id>'",
            |i| {
                let sql = format!("SELECT * FROM otel_traces WHERE trace_id = '{}'", id_at(i));
                let (rm, t, l) = (&read_model, &tenant, &sql_limits);
                async move {
                    let r = rm.query_with(t, &sql, &[], l).await?;
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
    let explain = match read_model
        .query_with(&tenant, &explain_sql, &[], &limits)
        .await
    {
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
