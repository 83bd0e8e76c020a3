//! `querybench generate`: a store of synthetic traces and metric series.

use super::*;

// ---------------------------------------------------------------- generate

/// Feeds converted rows to the server's partition buffer and flushes what
/// is due after each request, as the server's flusher would.
pub(crate) struct Loader {
    pub(crate) buffer: Arc<PartitionBuffer>,
    pub(crate) tenant: TenantId,
    pub(crate) seq: u64,
}

impl Loader {
    pub(crate) async fn add(&mut self, converted: Converted) -> anyhow::Result<()> {
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
                let m = metric;
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

pub(crate) fn parse_rfc3339(s: &str) -> anyhow::Result<u64> {
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

pub(crate) fn dir_bytes(path: &Path) -> u64 {
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

pub(crate) async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
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
    let counters = ShardedCounterStore::new(config.ingest.max_counter_series.get().max(series));
    let per_request = ((POINTS_PER_REQUEST as f64 / (2.5 * series as f64)) as u64).max(1);
    let metric_tables = [
        Table::METRICS_GAUGE,
        Table::METRICS_SUM,
        Table::METRICS_HISTOGRAM,
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
                Table::METRICS_GAUGE => gauge_points += rows,
                Table::METRICS_SUM => counter_points += rows,
                Table::METRICS_HISTOGRAM => hist_points += rows,
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
    for table in [Table::TRACES].into_iter().chain(metric_tables) {
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
