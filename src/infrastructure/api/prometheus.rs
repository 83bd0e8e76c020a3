//! `GET /metrics`: Prometheus text format, OpenTelemetry-Collector-style
//! counters plus the write path's gauges.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::application::commands::IngestStats;
use crate::application::compaction::Compactor;
use crate::application::event_bus::EventBus;
use crate::application::forward::Forwarder;
use crate::application::pipeline::WritePath;
use crate::application::queries::MetricQueries;
use crate::application::retention::Retention;
use crate::domain::telemetry::Signal;

/// What `/metrics` reads.
#[derive(Clone)]
pub struct MetricsSources {
    pub pipeline: Arc<WritePath>,
    /// The forwarders among the pipeline's durable subscribers.
    pub forwarders: Vec<Arc<Forwarder>>,
    pub ingest: Arc<IngestStats>,
    pub events: Arc<EventBus>,
    pub queries: Arc<MetricQueries>,
    pub compactor: Arc<Compactor>,
    pub retention: Arc<Retention>,
}

fn item(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric_points",
        Signal::Logs => "log_records",
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Unlabelled counters and gauges read from atomics: (name, kind, help, value).
fn atomics(out: &mut String, rows: &[(&str, &str, &str, &AtomicU64)]) {
    for (name, kind, help, v) in rows {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
    }
}

pub fn render(src: &MetricsSources) -> String {
    let mut out = String::new();
    let snapshot = src.ingest.snapshot();
    for (what, help, pick) in [
        ("accepted", "Items stored.", 0usize),
        (
            "rejected",
            "Items dropped for breaking a domain rule (reported in partial_success).",
            1,
        ),
        (
            "refused",
            "Items of requests refused as a whole (overload, shutdown, storage failure).",
            2,
        ),
    ] {
        for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
            let name = format!("telemetryflow_receiver_{what}_{}_total", item(signal));
            header(&mut out, &name, "counter", help);
            for (tenant, s, a, r, f) in &snapshot {
                if *s == signal {
                    let v = [a, r, f][pick];
                    let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {v}");
                }
            }
        }
    }
    if let Some(wal) = src.pipeline.wal() {
        let w = wal.stats();
        header(
            &mut out,
            "telemetryflow_wal_bytes_written_total",
            "counter",
            "Bytes appended to the write-ahead log.",
        );
        let _ = writeln!(
            out,
            "telemetryflow_wal_bytes_written_total {}",
            w.bytes_written
        );
        header(
            &mut out,
            "telemetryflow_wal_records_total",
            "counter",
            "Records appended to the write-ahead log.",
        );
        let _ = writeln!(out, "telemetryflow_wal_records_total {}", w.records);
        header(
            &mut out,
            "telemetryflow_wal_bytes",
            "gauge",
            "Bytes of write-ahead log on disk.",
        );
        let _ = writeln!(out, "telemetryflow_wal_bytes {}", w.bytes_on_disk);
        header(
            &mut out,
            "telemetryflow_wal_queue_depth",
            "gauge",
            "Requests waiting for the WAL writer.",
        );
        let _ = writeln!(out, "telemetryflow_wal_queue_depth {}", w.queued);
        header(
            &mut out,
            "telemetryflow_wal_segments_deleted_total",
            "counter",
            "WAL segments deleted after their data was committed.",
        );
        let _ = writeln!(
            out,
            "telemetryflow_wal_segments_deleted_total {}",
            w.segments_deleted
        );
        header(
            &mut out,
            "telemetryflow_wal_fsync_seconds",
            "histogram",
            "fsync latency of WAL group commits.",
        );
        let mut cumulative = 0;
        for (le, n) in &w.fsync_buckets {
            cumulative += n;
            let _ = writeln!(
                out,
                "telemetryflow_wal_fsync_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += w.fsync_bucket_inf;
        let _ = writeln!(
            out,
            "telemetryflow_wal_fsync_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "telemetryflow_wal_fsync_seconds_sum {}",
            w.fsync_seconds_sum
        );
        let _ = writeln!(out, "telemetryflow_wal_fsync_seconds_count {}", w.fsyncs);
    }
    let c = src.compactor.stats();
    atomics(
        &mut out,
        &[
            (
                "telemetryflow_compaction_passes_total",
                "counter",
                "Compaction passes run.",
                &c.passes,
            ),
            (
                "telemetryflow_compactions_total",
                "counter",
                "Partitions compacted (one merge committed each).",
                &c.compactions,
            ),
            (
                "telemetryflow_compaction_files_in_total",
                "counter",
                "Files replaced by compaction.",
                &c.files_in,
            ),
            (
                "telemetryflow_compaction_files_out_total",
                "counter",
                "Files written by compaction.",
                &c.files_out,
            ),
            (
                "telemetryflow_compaction_rows_total",
                "counter",
                "Rows rewritten by compaction.",
                &c.rows,
            ),
            (
                "telemetryflow_compaction_bytes_in_total",
                "counter",
                "Bytes of the files compaction replaced.",
                &c.bytes_in,
            ),
            (
                "telemetryflow_compaction_bytes_out_total",
                "counter",
                "Bytes of the files compaction wrote.",
                &c.bytes_out,
            ),
            (
                "telemetryflow_compaction_conflicts_total",
                "counter",
                "Merges not committed because another writer replaced an input first.",
                &c.conflicts,
            ),
            (
                "telemetryflow_compaction_failures_total",
                "counter",
                "Merges that failed (inputs left as they were).",
                &c.failures,
            ),
            (
                "telemetryflow_files_deleted_total",
                "counter",
                "Data files deleted: replaced ones after the grace period, and orphans.",
                &c.deleted,
            ),
            (
                "telemetryflow_files_pending_deletion",
                "gauge",
                "Replaced files still readable, waiting for the grace period.",
                &c.pending_deletion,
            ),
        ],
    );
    let r = src.retention.stats();
    atomics(
        &mut out,
        &[
            (
                "telemetryflow_retention_passes_total",
                "counter",
                "Retention passes run.",
                &r.passes,
            ),
            (
                "telemetryflow_retention_expired_partitions_total",
                "counter",
                "Hour partitions expired by retention.",
                &r.partitions,
            ),
            (
                "telemetryflow_retention_expired_files_total",
                "counter",
                "Data files expired by retention.",
                &r.files,
            ),
            (
                "telemetryflow_retention_expired_rows_total",
                "counter",
                "Rows expired by retention.",
                &r.rows,
            ),
            (
                "telemetryflow_retention_expired_bytes_total",
                "counter",
                "Bytes of the data files expired by retention.",
                &r.bytes,
            ),
            (
                "telemetryflow_retention_failures_total",
                "counter",
                "Tables whose retention pass failed (their files stay until the next).",
                &r.failures,
            ),
            (
                "telemetryflow_retention_last_pass_timestamp_seconds",
                "gauge",
                "When the last retention pass ended (Unix seconds; 0: none yet).",
                &r.last_pass_unix_secs,
            ),
        ],
    );
    header(
        &mut out,
        "telemetryflow_compaction_seconds_total",
        "counter",
        "Time spent merging and committing (counted per merge).",
    );
    let _ = writeln!(
        out,
        "telemetryflow_compaction_seconds_total {}",
        c.nanos.load(Ordering::Relaxed) as f64 / 1e9
    );
    let buffer = src.pipeline.buffer();
    header(
        &mut out,
        "telemetryflow_buffered_bytes",
        "gauge",
        "Arrow bytes buffered, not yet in Parquet.",
    );
    let _ = writeln!(
        out,
        "telemetryflow_buffered_bytes {}",
        buffer.buffered_bytes()
    );
    let f = buffer.stats();
    header(
        &mut out,
        "telemetryflow_flushes_total",
        "counter",
        "Parquet files written and committed.",
    );
    let _ = writeln!(
        out,
        "telemetryflow_flushes_total {}",
        f.files.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "telemetryflow_flushed_rows_total",
        "counter",
        "Rows written to Parquet.",
    );
    let _ = writeln!(
        out,
        "telemetryflow_flushed_rows_total {}",
        f.rows.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "telemetryflow_flush_failures_total",
        "counter",
        "Failed flushes (retried with backoff).",
    );
    let _ = writeln!(
        out,
        "telemetryflow_flush_failures_total {}",
        f.failures.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "telemetryflow_flush_seconds_total",
        "counter",
        "Time spent writing and committing files.",
    );
    let _ = writeln!(
        out,
        "telemetryflow_flush_seconds_total {}",
        f.nanos.load(Ordering::Relaxed) as f64 / 1e9
    );
    header(
        &mut out,
        "telemetryflow_manifest_version",
        "gauge",
        "Current manifest version per table.",
    );
    for (tenant, table, version, _) in buffer.manifest_versions() {
        let _ = writeln!(
            out,
            "telemetryflow_manifest_version{{tenant=\"{tenant}\",table=\"{table}\"}} {version}"
        );
    }
    header(
        &mut out,
        "telemetryflow_domain_events_total",
        "counter",
        "Domain events published.",
    );
    let _ = writeln!(
        out,
        "telemetryflow_domain_events_total {}",
        src.events.published()
    );
    let (hits, misses) = src.queries.cache_stats();
    for (name, help, v) in [
        (
            "telemetryflow_query_cache_hits_total",
            "Time-series queries answered from the result cache.",
            hits,
        ),
        (
            "telemetryflow_query_cache_misses_total",
            "Time-series queries computed (not cached, expired, or invalidated by ingest).",
            misses,
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    forwarding(&mut out, src);
    out
}

/// Per forwarder: items sent, failed and dropped per signal, the queue,
/// retries and upstream latency; and forwarded items received twice.
fn forwarding(out: &mut String, src: &MetricsSources) {
    let forwarders = &src.forwarders;
    if !forwarders.is_empty() {
        for (what, help, pick) in [
            ("sent", "Items the upstream acknowledged.", 0usize),
            (
                "failed",
                "Items the upstream refused for good (permanent errors, partial success).",
                1,
            ),
            (
                "dropped",
                "Items given up because the queue was full (on_full = drop_oldest).",
                2,
            ),
        ] {
            let name = format!("telemetryflow_forward_{what}_items_total");
            header(out, &name, "counter", help);
            for f in forwarders {
                let st = f.stats();
                let per = [&st.sent, &st.failed, &st.dropped][pick];
                for (i, signal) in Signal::ALL.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}{{forwarder=\"{}\",signal=\"{}\"}} {}",
                        f.name(),
                        item(*signal),
                        per[i].load(Ordering::Relaxed)
                    );
                }
            }
        }
        type Read = fn(&crate::application::forward::Forwarder) -> String;
        let rows: [(&str, &str, &str, Read); 7] = [
            (
                "telemetryflow_forward_queue_bytes",
                "gauge",
                "Arrow bytes of the undelivered records (what max_queue_bytes limits).",
                |f| f.backlog().0.to_string(),
            ),
            (
                "telemetryflow_forward_queue_records",
                "gauge",
                "Undelivered records.",
                |f| f.queued_records().to_string(),
            ),
            (
                "telemetryflow_forward_oldest_age_seconds",
                "gauge",
                "Age of the oldest undelivered record.",
                |f| f.backlog().1.as_secs_f64().to_string(),
            ),
            (
                "telemetryflow_forward_requests_total",
                "counter",
                "Requests sent upstream, retries included.",
                |f| f.stats().requests.load(Ordering::Relaxed).to_string(),
            ),
            (
                "telemetryflow_forward_retries_total",
                "counter",
                "Requests retried after a retryable failure.",
                |f| f.stats().retries.load(Ordering::Relaxed).to_string(),
            ),
            (
                "telemetryflow_forward_refused_writes_total",
                "counter",
                "Writes refused because the queue was full (on_full = backpressure).",
                |f| f.stats().refused_writes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "telemetryflow_forward_delivered_seq",
                "gauge",
                "Every record of the log up to this sequence number is delivered.",
                |f| f.delivered().to_string(),
            ),
        ];
        for (name, kind, help, read) in rows {
            header(out, name, kind, help);
            for f in forwarders {
                let _ = writeln!(out, "{name}{{forwarder=\"{}\"}} {}", f.name(), read(f));
            }
        }
        let name = "telemetryflow_forward_latency_seconds";
        header(
            out,
            name,
            "summary",
            "Upstream round trips that got an answer.",
        );
        for f in forwarders {
            let st = f.stats();
            let _ = writeln!(
                out,
                "{name}_sum{{forwarder=\"{}\"}} {}\n{name}_count{{forwarder=\"{}\"}} {}",
                f.name(),
                st.latency_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                f.name(),
                st.latency_count.load(Ordering::Relaxed)
            );
        }
    }
    let name = "telemetryflow_receiver_duplicate_items_total";
    header(
        out,
        name,
        "counter",
        "Items of batches forwarded by another node and accepted before: acknowledged, not stored again.",
    );
    for (tenant, signal, n) in src.ingest.duplicates() {
        let _ = writeln!(
            out,
            "{name}{{tenant=\"{tenant}\",signal=\"{}\"}} {n}",
            item(signal)
        );
    }
}
