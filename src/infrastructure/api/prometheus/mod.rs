//! `GET /metrics`: Prometheus text format, OpenTelemetry-Collector-style
//! counters plus the write path's gauges.
//!
//! Every metric is declared once, as a [`MetricDef`] (name, type, help)
//! above the function that renders the component it measures; the
//! [`Exposition`] writes a family's `# HELP` and `# TYPE` lines from the
//! declaration and its samples under the declared name.

mod exposition;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::application::commands::{IngestStats, TenantLabel};
use crate::application::compaction::{CompactionStats, Compactor};
use crate::application::event_bus::EventBus;
use crate::application::forward::{ForwardStats, Forwarder};
use crate::application::pipeline::{FlushStats, WritePath};
use crate::application::ports::WalStats;
use crate::application::queries::MetricQueries;
use crate::application::retention::{Retention, RetentionStats};
use crate::domain::telemetry::Signal;
use crate::domain::{Limit, Table, TenantId};
use crate::infrastructure::access::AccessControl;
use exposition::{Exposition, Labels, MetricDef};

/// What `/metrics` reads.
#[derive(Clone)]
pub struct MetricsSources {
    pub pipeline: Arc<WritePath>,
    /// Refused requests, by reason.
    pub access: Arc<AccessControl>,
    /// The forwarders among the pipeline's durable subscribers.
    pub forwarders: Vec<Arc<Forwarder>>,
    pub ingest: Arc<IngestStats>,
    pub events: Arc<EventBus>,
    pub queries: Arc<MetricQueries>,
    pub compactor: Arc<Compactor>,
    pub retention: Arc<Retention>,
}

pub fn render(src: &MetricsSources) -> String {
    let mut out = Exposition::default();
    receiver(&mut out, &src.ingest.snapshot(), &src.ingest.duplicates());
    limits(&mut out, &src.ingest.limit_refusals());
    if let Some(log) = src.pipeline.wal() {
        wal(&mut out, &log.stats());
    }
    let buffered = src.pipeline.buffer();
    buffer(
        &mut out,
        buffered.buffered_bytes(),
        buffered.stats(),
        &buffered.manifest_versions(),
    );
    out.family(&IN_FLIGHT_BYTES)
        .value(src.pipeline.admission().in_flight());
    compaction(&mut out, src.compactor.stats());
    retention(&mut out, src.retention.stats());
    out.family(&DOMAIN_EVENTS).value(src.events.published());
    query_cache(&mut out, src.queries.cache_stats());
    access(&mut out, &src.access);
    let forwarders: Vec<_> = src.forwarders.iter().map(|f| reading(f)).collect();
    forwarding(&mut out, &forwarders);
    out.into_text()
}

fn load(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

fn seconds(nanos: &AtomicU64) -> f64 {
    load(nanos) as f64 / 1e9
}

/// What the `signal` label calls a signal's items.
fn item(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric_points",
        Signal::Logs => "log_records",
    }
}

// ---------------------------------------------------------------------------
// The receivers (`IngestStats`)
// ---------------------------------------------------------------------------

const ACCEPTED: &str = "Items stored.";
const REJECTED: &str = "Items dropped for breaking a domain rule (reported in partial_success).";
const REFUSED: &str = "Items of requests refused as a whole (overload, shutdown, storage failure).";

/// Per signal, in [`Signal::ALL`] order.
const RECEIVER_ACCEPTED: [MetricDef; 3] = [
    MetricDef::counter("telemetryflow_receiver_accepted_spans_total", ACCEPTED),
    MetricDef::counter(
        "telemetryflow_receiver_accepted_metric_points_total",
        ACCEPTED,
    ),
    MetricDef::counter(
        "telemetryflow_receiver_accepted_log_records_total",
        ACCEPTED,
    ),
];
const RECEIVER_REJECTED: [MetricDef; 3] = [
    MetricDef::counter("telemetryflow_receiver_rejected_spans_total", REJECTED),
    MetricDef::counter(
        "telemetryflow_receiver_rejected_metric_points_total",
        REJECTED,
    ),
    MetricDef::counter(
        "telemetryflow_receiver_rejected_log_records_total",
        REJECTED,
    ),
];
const RECEIVER_REFUSED: [MetricDef; 3] = [
    MetricDef::counter("telemetryflow_receiver_refused_spans_total", REFUSED),
    MetricDef::counter(
        "telemetryflow_receiver_refused_metric_points_total",
        REFUSED,
    ),
    MetricDef::counter("telemetryflow_receiver_refused_log_records_total", REFUSED),
];
const RECEIVER_DUPLICATES: MetricDef = MetricDef::counter(
    "telemetryflow_receiver_duplicate_items_total",
    "Items of batches forwarded by another node and accepted before: acknowledged, not stored again.",
);

/// `IngestStats::snapshot`: (tenant, signal, accepted, rejected, refused).
type ItemCounts = (TenantLabel, Signal, u64, u64, u64);

/// Items per tenant and signal; forwarded items received twice.
fn receiver(out: &mut Exposition, items: &[ItemCounts], duplicates: &[(TenantLabel, Signal, u64)]) {
    let columns = [&RECEIVER_ACCEPTED, &RECEIVER_REJECTED, &RECEIVER_REFUSED];
    for (column, defs) in columns.into_iter().enumerate() {
        for (signal, def) in Signal::ALL.into_iter().zip(defs) {
            let mut family = out.family(def);
            for (tenant, _, accepted, rejected, refused) in items.iter().filter(|c| c.1 == signal) {
                family.labelled(&[("tenant", tenant)], [accepted, rejected, refused][column]);
            }
        }
    }
    let mut family = out.family(&RECEIVER_DUPLICATES);
    for (tenant, signal, n) in duplicates {
        family.labelled(&[("tenant", tenant), ("signal", &item(*signal))], n);
    }
}

const LIMIT_REFUSALS: MetricDef = MetricDef::counter(
    "telemetryflow_limit_refusals_total",
    "Requests (or, for max_active_series, requests with points) refused by a tenant limit, by the limit's key.",
);

/// Refusals per tenant and limit.
fn limits(out: &mut Exposition, refusals: &[(TenantLabel, Limit, u64)]) {
    let mut family = out.family(&LIMIT_REFUSALS);
    for (tenant, limit, n) in refusals {
        family.labelled(&[("tenant", tenant), ("limit", &limit.key())], n);
    }
}

// ---------------------------------------------------------------------------
// The write-ahead log (`WalStats`)
// ---------------------------------------------------------------------------

const WAL_BYTES_WRITTEN: MetricDef = MetricDef::counter(
    "telemetryflow_wal_bytes_written_total",
    "Bytes appended to the write-ahead log.",
);
const WAL_RECORDS: MetricDef = MetricDef::counter(
    "telemetryflow_wal_records_total",
    "Records appended to the write-ahead log.",
);
const WAL_BYTES: MetricDef = MetricDef::gauge(
    "telemetryflow_wal_bytes",
    "Bytes of write-ahead log on disk.",
);
const WAL_QUEUE_DEPTH: MetricDef = MetricDef::gauge(
    "telemetryflow_wal_queue_depth",
    "Requests waiting for the WAL writer.",
);
const WAL_SEGMENTS_DELETED: MetricDef = MetricDef::counter(
    "telemetryflow_wal_segments_deleted_total",
    "WAL segments deleted after their data was committed.",
);
const WAL_FSYNC_SECONDS: MetricDef = MetricDef::histogram(
    "telemetryflow_wal_fsync_seconds",
    "fsync latency of WAL group commits.",
);

fn wal(out: &mut Exposition, w: &WalStats) {
    out.family(&WAL_BYTES_WRITTEN).value(w.bytes_written);
    out.family(&WAL_RECORDS).value(w.records);
    out.family(&WAL_BYTES).value(w.bytes_on_disk);
    out.family(&WAL_QUEUE_DEPTH).value(w.queued);
    out.family(&WAL_SEGMENTS_DELETED).value(w.segments_deleted);
    let mut fsync = out.family(&WAL_FSYNC_SECONDS);
    let mut cumulative = 0;
    for (le, n) in &w.fsync_buckets {
        cumulative += n;
        fsync.sample("_bucket", &[("le", le)], cumulative);
    }
    cumulative += w.fsync_bucket_inf;
    fsync
        .sample("_bucket", &[("le", &"+Inf")], cumulative)
        .sample("_sum", &[], w.fsync_seconds_sum)
        .sample("_count", &[], w.fsyncs);
}

// ---------------------------------------------------------------------------
// The partition buffers and their flushes (`FlushStats`)
// ---------------------------------------------------------------------------

const BUFFERED_BYTES: MetricDef = MetricDef::gauge(
    "telemetryflow_buffered_bytes",
    "Arrow bytes buffered, not yet in Parquet.",
);
const IN_FLIGHT_BYTES: MetricDef = MetricDef::gauge(
    "telemetryflow_in_flight_request_bytes",
    "Bytes held for requests being read, decoded and written: four times their bodies, their working set (counted with the buffered bytes against buffer.max_buffered_bytes).",
);
const FLUSHES: MetricDef = MetricDef::counter(
    "telemetryflow_flushes_total",
    "Parquet files written and committed.",
);
const FLUSHED_ROWS: MetricDef = MetricDef::counter(
    "telemetryflow_flushed_rows_total",
    "Rows written to Parquet.",
);
const FLUSH_FAILURES: MetricDef = MetricDef::counter(
    "telemetryflow_flush_failures_total",
    "Failed flushes (retried with backoff).",
);
const FLUSH_SECONDS: MetricDef = MetricDef::counter(
    "telemetryflow_flush_seconds_total",
    "Time spent writing and committing files.",
);
const MANIFEST_VERSION: MetricDef = MetricDef::gauge(
    "telemetryflow_manifest_version",
    "Current manifest version per table.",
);

/// `PartitionBuffer::manifest_versions`: (tenant, table, version, files).
type ManifestVersion = (TenantId, Table, u64, usize);

fn buffer(
    out: &mut Exposition,
    buffered_bytes: usize,
    f: &FlushStats,
    versions: &[ManifestVersion],
) {
    out.family(&BUFFERED_BYTES).value(buffered_bytes);
    out.family(&FLUSHES).value(load(&f.files));
    out.family(&FLUSHED_ROWS).value(load(&f.rows));
    out.family(&FLUSH_FAILURES).value(load(&f.failures));
    out.family(&FLUSH_SECONDS).value(seconds(&f.nanos));
    let mut family = out.family(&MANIFEST_VERSION);
    for (tenant, table, version, _) in versions {
        family.labelled(&[("tenant", tenant), ("table", table)], version);
    }
}

// ---------------------------------------------------------------------------
// Compaction and the deletion of replaced files (`CompactionStats`)
// ---------------------------------------------------------------------------

const COMPACTION_PASSES: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_passes_total",
    "Compaction passes run.",
);
const COMPACTIONS: MetricDef = MetricDef::counter(
    "telemetryflow_compactions_total",
    "Partitions compacted (one merge committed each).",
);
const COMPACTION_FILES_IN: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_files_in_total",
    "Files replaced by compaction.",
);
const COMPACTION_FILES_OUT: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_files_out_total",
    "Files written by compaction.",
);
const COMPACTION_ROWS: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_rows_total",
    "Rows rewritten by compaction.",
);
const COMPACTION_BYTES_IN: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_bytes_in_total",
    "Bytes of the files compaction replaced.",
);
const COMPACTION_BYTES_OUT: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_bytes_out_total",
    "Bytes of the files compaction wrote.",
);
const COMPACTION_CONFLICTS: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_conflicts_total",
    "Merges not committed because another writer replaced an input first.",
);
const COMPACTION_FAILURES: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_failures_total",
    "Merges that failed (inputs left as they were).",
);
const FILES_DELETED: MetricDef = MetricDef::counter(
    "telemetryflow_files_deleted_total",
    "Data files deleted: replaced ones after the grace period, and orphans.",
);
const FILES_PENDING_DELETION: MetricDef = MetricDef::gauge(
    "telemetryflow_files_pending_deletion",
    "Replaced files still readable, waiting for the grace period.",
);
const COMPACTION_SECONDS: MetricDef = MetricDef::counter(
    "telemetryflow_compaction_seconds_total",
    "Time spent merging and committing (counted per merge).",
);

fn compaction(out: &mut Exposition, c: &CompactionStats) {
    for (def, v) in [
        (&COMPACTION_PASSES, &c.passes),
        (&COMPACTIONS, &c.compactions),
        (&COMPACTION_FILES_IN, &c.files_in),
        (&COMPACTION_FILES_OUT, &c.files_out),
        (&COMPACTION_ROWS, &c.rows),
        (&COMPACTION_BYTES_IN, &c.bytes_in),
        (&COMPACTION_BYTES_OUT, &c.bytes_out),
        (&COMPACTION_CONFLICTS, &c.conflicts),
        (&COMPACTION_FAILURES, &c.failures),
        (&FILES_DELETED, &c.deleted),
        (&FILES_PENDING_DELETION, &c.pending_deletion),
    ] {
        out.family(def).value(load(v));
    }
    out.family(&COMPACTION_SECONDS).value(seconds(&c.nanos));
}

// ---------------------------------------------------------------------------
// Retention (`RetentionStats`)
// ---------------------------------------------------------------------------

const RETENTION_PASSES: MetricDef = MetricDef::counter(
    "telemetryflow_retention_passes_total",
    "Retention passes run.",
);
const RETENTION_PARTITIONS: MetricDef = MetricDef::counter(
    "telemetryflow_retention_expired_partitions_total",
    "Hour partitions expired by retention.",
);
const RETENTION_FILES: MetricDef = MetricDef::counter(
    "telemetryflow_retention_expired_files_total",
    "Data files expired by retention.",
);
const RETENTION_ROWS: MetricDef = MetricDef::counter(
    "telemetryflow_retention_expired_rows_total",
    "Rows expired by retention.",
);
const RETENTION_BYTES: MetricDef = MetricDef::counter(
    "telemetryflow_retention_expired_bytes_total",
    "Bytes of the data files expired by retention.",
);
const RETENTION_FAILURES: MetricDef = MetricDef::counter(
    "telemetryflow_retention_failures_total",
    "Tables whose retention pass failed (their files stay until the next).",
);
const RETENTION_LAST_PASS: MetricDef = MetricDef::gauge(
    "telemetryflow_retention_last_pass_timestamp_seconds",
    "When the last retention pass ended (Unix seconds; 0: none yet).",
);

fn retention(out: &mut Exposition, r: &RetentionStats) {
    for (def, v) in [
        (&RETENTION_PASSES, &r.passes),
        (&RETENTION_PARTITIONS, &r.partitions),
        (&RETENTION_FILES, &r.files),
        (&RETENTION_ROWS, &r.rows),
        (&RETENTION_BYTES, &r.bytes),
        (&RETENTION_FAILURES, &r.failures),
        (&RETENTION_LAST_PASS, &r.last_pass_unix_secs),
    ] {
        out.family(def).value(load(v));
    }
}

// ---------------------------------------------------------------------------
// Domain events (`EventBus`) and the query cache (`MetricQueries`)
// ---------------------------------------------------------------------------

const DOMAIN_EVENTS: MetricDef = MetricDef::counter(
    "telemetryflow_domain_events_total",
    "Domain events published.",
);
const QUERY_CACHE_HITS: MetricDef = MetricDef::counter(
    "telemetryflow_query_cache_hits_total",
    "Time-series queries answered from the result cache.",
);
const QUERY_CACHE_MISSES: MetricDef = MetricDef::counter(
    "telemetryflow_query_cache_misses_total",
    "Time-series queries computed (not cached, expired, or invalidated by ingest).",
);

const AUTH_FAILURES: MetricDef = MetricDef::counter(
    "telemetryflow_auth_failures_total",
    "Requests refused by the access check, by reason (missing, malformed, unknown, wrong_secret, expired, bad_token, unavailable, forbidden, rate_limited, foreign_host).",
);

const AUTH_KEYS_AGE: MetricDef = MetricDef::gauge(
    "telemetryflow_auth_keys_age_seconds",
    "Seconds since this node last read the API keys (a revocation reaches it within auth.refresh_secs while reads succeed; alert when this grows).",
);

fn access(out: &mut Exposition, access: &AccessControl) {
    let mut family = out.family(&AUTH_FAILURES);
    for (reason, n) in access.stats().snapshot() {
        family.labelled(&[("reason", &reason)], n);
    }
    if let Some(age) = access.keys().and_then(|k| k.copy_age()) {
        out.family(&AUTH_KEYS_AGE).value(age.as_secs_f64());
    }
}

fn query_cache(out: &mut Exposition, (hits, misses): (u64, u64)) {
    out.family(&QUERY_CACHE_HITS).value(hits);
    out.family(&QUERY_CACHE_MISSES).value(misses);
}

// ---------------------------------------------------------------------------
// The forwarders (`ForwardStats` and each one's queue)
// ---------------------------------------------------------------------------

/// Per signal, labelled with [`item`].
const FORWARD_SENT: MetricDef = MetricDef::counter(
    "telemetryflow_forward_sent_items_total",
    "Items the upstream acknowledged.",
);
const FORWARD_FAILED: MetricDef = MetricDef::counter(
    "telemetryflow_forward_failed_items_total",
    "Items the upstream refused for good (permanent errors, partial success).",
);
const FORWARD_DROPPED: MetricDef = MetricDef::counter(
    "telemetryflow_forward_dropped_items_total",
    "Items given up because the queue was full (on_full = drop_oldest).",
);
const FORWARD_QUEUE_BYTES: MetricDef = MetricDef::gauge(
    "telemetryflow_forward_queue_bytes",
    "Arrow bytes of the undelivered records (what max_queue_bytes limits).",
);
const FORWARD_QUEUE_RECORDS: MetricDef = MetricDef::gauge(
    "telemetryflow_forward_queue_records",
    "Undelivered records.",
);
const FORWARD_OLDEST_AGE: MetricDef = MetricDef::gauge(
    "telemetryflow_forward_oldest_age_seconds",
    "Age of the oldest undelivered record.",
);
const FORWARD_REQUESTS: MetricDef = MetricDef::counter(
    "telemetryflow_forward_requests_total",
    "Requests sent upstream, retries included.",
);
const FORWARD_RETRIES: MetricDef = MetricDef::counter(
    "telemetryflow_forward_retries_total",
    "Requests retried after a retryable failure.",
);
const FORWARD_REFUSED_WRITES: MetricDef = MetricDef::counter(
    "telemetryflow_forward_refused_writes_total",
    "Writes refused because the queue was full (on_full = backpressure).",
);
const FORWARD_DELIVERED_SEQ: MetricDef = MetricDef::gauge(
    "telemetryflow_forward_delivered_seq",
    "Every record of the log up to this sequence number is delivered.",
);
const FORWARD_LATENCY: MetricDef = MetricDef::summary(
    "telemetryflow_forward_latency_seconds",
    "Upstream round trips that got an answer.",
);

/// What `/metrics` reads of one forwarder.
struct ForwarderReading<'a> {
    name: &'a str,
    stats: &'a ForwardStats,
    queue_bytes: u64,
    oldest_age: Duration,
    queued_records: usize,
    delivered: u64,
}

fn reading(f: &Forwarder) -> ForwarderReading<'_> {
    let (queue_bytes, oldest_age) = f.backlog();
    ForwarderReading {
        name: f.name(),
        stats: f.stats(),
        queue_bytes,
        oldest_age,
        queued_records: f.queued_records(),
        delivered: f.delivered(),
    }
}

/// Per forwarder: items sent, failed and dropped per signal, the queue,
/// retries and upstream latency. Nothing without forwarders.
fn forwarding(out: &mut Exposition, forwarders: &[ForwarderReading<'_>]) {
    if forwarders.is_empty() {
        return;
    }
    let per_signal = [&FORWARD_SENT, &FORWARD_FAILED, &FORWARD_DROPPED];
    for (column, def) in per_signal.into_iter().enumerate() {
        let mut family = out.family(def);
        for f in forwarders {
            let counts = [&f.stats.sent, &f.stats.failed, &f.stats.dropped][column];
            for (signal, n) in Signal::ALL.into_iter().zip(counts) {
                let labels: Labels<'_> = &[("forwarder", &f.name), ("signal", &item(signal))];
                family.labelled(labels, load(n));
            }
        }
    }
    type Read = fn(&ForwarderReading<'_>) -> String;
    let per_forwarder: [(&MetricDef, Read); 7] = [
        (&FORWARD_QUEUE_BYTES, |f| f.queue_bytes.to_string()),
        (&FORWARD_QUEUE_RECORDS, |f| f.queued_records.to_string()),
        (&FORWARD_OLDEST_AGE, |f| {
            f.oldest_age.as_secs_f64().to_string()
        }),
        (&FORWARD_REQUESTS, |f| load(&f.stats.requests).to_string()),
        (&FORWARD_RETRIES, |f| load(&f.stats.retries).to_string()),
        (&FORWARD_REFUSED_WRITES, |f| {
            load(&f.stats.refused_writes).to_string()
        }),
        (&FORWARD_DELIVERED_SEQ, |f| f.delivered.to_string()),
    ];
    for (def, read) in per_forwarder {
        let mut family = out.family(def);
        for f in forwarders {
            family.labelled(&[("forwarder", &f.name)], read(f));
        }
    }
    let mut latency = out.family(&FORWARD_LATENCY);
    for f in forwarders {
        let labels: Labels<'_> = &[("forwarder", &f.name)];
        latency
            .sample("_sum", labels, seconds(&f.stats.latency_nanos))
            .sample("_count", labels, load(&f.stats.latency_count));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn label(t: &str) -> TenantLabel {
        TenantLabel::from(t)
    }

    /// Every component's families, from readings of every shape: several
    /// tenants and signals, a table, a forwarder, WAL buckets.
    fn every_component() -> String {
        let mut out = Exposition::default();
        receiver(
            &mut out,
            &[
                (label("acme"), Signal::Traces, 3, 1, 0),
                (label("beta"), Signal::Traces, 5, 0, 0),
                (label("acme"), Signal::Logs, 2, 0, 7),
            ],
            &[(label("beta"), Signal::Metrics, 4)],
        );
        limits(&mut out, &[(label("_other"), Limit::IngestItemsPerSec, 2)]);
        let w = WalStats {
            fsyncs: 3,
            fsync_seconds_sum: 0.003,
            fsync_buckets: vec![(0.001, 1), (0.01, 1)],
            fsync_bucket_inf: 1,
            ..WalStats::default()
        };
        wal(&mut out, &w);
        buffer(
            &mut out,
            1024,
            &FlushStats::default(),
            &[(acme(), Table::LOGS, 3, 1)],
        );
        compaction(&mut out, &CompactionStats::default());
        retention(&mut out, &RetentionStats::default());
        out.family(&DOMAIN_EVENTS).value(1);
        query_cache(&mut out, (1, 2));
        let stats = ForwardStats::default();
        stats.sent[1].store(6, Ordering::Relaxed);
        let central = ForwarderReading {
            name: "central",
            stats: &stats,
            queue_bytes: 0,
            oldest_age: Duration::from_millis(1500),
            queued_records: 0,
            delivered: 9,
        };
        forwarding(&mut out, &[central]);
        out.into_text()
    }

    /// Each family's `# HELP` and `# TYPE` come once, before its samples;
    /// every sample belongs to the family above it (a histogram's and a
    /// summary's series by their suffixes); counters, and only they, end in
    /// `_total`.
    #[test]
    fn every_family_is_declared_once_before_its_samples() {
        let text = every_component();
        let mut names = HashSet::new();
        let mut family: Option<(&str, &str)> = None;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, help) = help.split_once(' ').unwrap();
                assert!(!help.is_empty(), "{name}: no help");
                assert!(names.insert(name), "{name} declared twice");
                let kind = lines
                    .next()
                    .unwrap()
                    .strip_prefix(&format!("# TYPE {name} "));
                let kind = kind.unwrap_or_else(|| panic!("{name}: no TYPE after HELP"));
                assert_eq!(name.ends_with("_total"), kind == "counter", "{name} {kind}");
                family = Some((name, kind));
                continue;
            }
            let (name, kind) = family.unwrap_or_else(|| panic!("{line}: no family"));
            let (series, value) = line.rsplit_once(' ').unwrap();
            let series = series.split('{').next().unwrap();
            let suffixes: &[&str] = match kind {
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["_sum", "_count"],
                _ => &[""],
            };
            assert!(
                suffixes.iter().any(|s| series == format!("{name}{s}")),
                "{line}: not a sample of {name} ({kind})"
            );
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(names.len() > 50, "{} families", names.len());
    }

    #[test]
    fn samples_carry_their_labels_and_histograms_count_cumulatively() {
        let text = every_component();
        let name = |def: &MetricDef, sample: &str| format!("{}{sample}", def.name);
        for line in [
            name(&RECEIVER_ACCEPTED[0], r#"{tenant="acme"} 3"#),
            name(&RECEIVER_ACCEPTED[0], r#"{tenant="beta"} 5"#),
            name(&RECEIVER_REFUSED[2], r#"{tenant="acme"} 7"#),
            name(
                &RECEIVER_DUPLICATES,
                r#"{tenant="beta",signal="metric_points"} 4"#,
            ),
            name(
                &LIMIT_REFUSALS,
                r#"{tenant="_other",limit="ingest_items_per_sec"} 2"#,
            ),
            name(&MANIFEST_VERSION, r#"{tenant="acme",table="otel_logs"} 3"#),
            name(
                &FORWARD_SENT,
                r#"{forwarder="central",signal="metric_points"} 6"#,
            ),
            name(&FORWARD_OLDEST_AGE, r#"{forwarder="central"} 1.5"#),
            name(&FORWARD_LATENCY, r#"_count{forwarder="central"} 0"#),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        let fsync: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with(WAL_FSYNC_SECONDS.name))
            .collect();
        assert_eq!(
            fsync,
            [
                name(&WAL_FSYNC_SECONDS, r#"_bucket{le="0.001"} 1"#),
                name(&WAL_FSYNC_SECONDS, r#"_bucket{le="0.01"} 2"#),
                name(&WAL_FSYNC_SECONDS, r#"_bucket{le="+Inf"} 3"#),
                name(&WAL_FSYNC_SECONDS, "_sum 0.003"),
                name(&WAL_FSYNC_SECONDS, "_count 3"),
            ]
        );
        // A tenant without items of a signal has no sample of it.
        assert!(!text.contains(&name(&RECEIVER_ACCEPTED[2], r#"{tenant="beta"}"#)));
    }
}
