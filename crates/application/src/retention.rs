//! Retention passes: expired hour partitions leave their table's manifest,
//! then their files are deleted.
//!
//! A pass looks at every table's committed files and, per table, removes
//! the files of every expired partition (see `tf_domain::retention`) in one
//! manifest commit — the same commit that compaction uses to replace files,
//! so a pass racing a compaction or another node conflicts and retries, and
//! a crash leaves either the old manifest or the new one. The removed files
//! are recorded as replaced and deleted by the garbage collector after the
//! grace period; the partitions' WAL watermarks stay, so replay never brings
//! expired rows back. Buffered rows of expired partitions are dropped too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::pipeline::PartitionBuffer;
use crate::ports::{CommitOutcome, FileMeta, FileStore, StoreError};
use tf_domain::Table;
use tf_domain::telemetry::Timestamp;
use tf_domain::{RetentionRules, TenantId};

/// Attempts per table when another writer replaced files under a pass.
const MAX_ATTEMPTS: usize = 4;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct RetentionSummary {
    /// Hour partitions that left their manifests.
    pub partitions: u64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Buffered (not yet flushed) rows dropped.
    pub buffered_rows: u64,
    /// Tables left for the next pass after repeated conflicts.
    pub conflicts: u64,
    pub seconds: f64,
}

/// Counters for `/metrics`, over the process's life.
#[derive(Debug, Default)]
pub struct RetentionStats {
    pub passes: AtomicU64,
    pub partitions: AtomicU64,
    pub files: AtomicU64,
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    pub failures: AtomicU64,
    /// Unix seconds of the end of the last pass; 0 before the first.
    pub last_pass_unix_secs: AtomicU64,
}

/// Runs retention passes over the partition buffer's committed files.
pub struct Retention {
    store: Arc<dyn FileStore>,
    buffer: Arc<PartitionBuffer>,
    stats: RetentionStats,
    /// One pass at a time (the timer's and the admin endpoint's).
    running: tokio::sync::Mutex<()>,
}

/// The files of `files` in partitions that start before `keep_from`.
fn expired(files: &[FileMeta], keep_from: Timestamp) -> Vec<&FileMeta> {
    files
        .iter()
        .filter(|f| f.hour_start < keep_from.unix_nanos())
        .collect()
}

impl Retention {
    pub fn new(store: Arc<dyn FileStore>, buffer: Arc<PartitionBuffer>) -> Self {
        Self {
            store,
            buffer,
            stats: RetentionStats::default(),
            running: tokio::sync::Mutex::new(()),
        }
    }

    pub fn stats(&self) -> &RetentionStats {
        &self.stats
    }

    pub fn rules(&self) -> &RetentionRules {
        &self.buffer.config().retention
    }

    /// One pass at `now`: drops expired buffered rows, then expires every
    /// table's expired partitions. A failing table is logged and counted;
    /// the others go on, and the first error is returned after the pass.
    pub async fn run_once(&self, now: Timestamp) -> Result<RetentionSummary, StoreError> {
        let _one = self.running.lock().await;
        let started = Instant::now();
        if let Err(e) = self.buffer.refresh_all().await {
            tracing::warn!(error = %e, "reading the manifests again failed; expiring from this node's view");
        }
        let mut summary = RetentionSummary {
            buffered_rows: self.buffer.drop_expired(now),
            ..RetentionSummary::default()
        };
        let mut first_err = None;
        if self.rules().expires_anything() {
            for (tenant, table) in self.buffer.tables() {
                match self.expire_table(&tenant, table, now, &mut summary).await {
                    Ok(()) => {}
                    Err(e) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%tenant, %table, error = %e, "retention pass failed for this table; its files stay");
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        let s = &self.stats;
        s.passes.fetch_add(1, Ordering::Relaxed);
        s.partitions
            .fetch_add(summary.partitions, Ordering::Relaxed);
        s.files.fetch_add(summary.files, Ordering::Relaxed);
        s.rows.fetch_add(summary.rows, Ordering::Relaxed);
        s.bytes.fetch_add(summary.bytes, Ordering::Relaxed);
        s.last_pass_unix_secs.store(
            crate::wall_clock().unix_nanos() / 1_000_000_000,
            Ordering::Relaxed,
        );
        if summary.partitions > 0 || summary.buffered_rows > 0 {
            tracing::info!(
                partitions = summary.partitions,
                files = summary.files,
                rows = summary.rows,
                bytes = summary.bytes,
                buffered_rows = summary.buffered_rows,
                "expired data past its retention period"
            );
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    async fn expire_table(
        &self,
        tenant: &TenantId,
        table: Table,
        now: Timestamp,
        summary: &mut RetentionSummary,
    ) -> Result<(), StoreError> {
        let Some(keep_from) = self.rules().keep_from(tenant, table, now) else {
            return Ok(());
        };
        for _ in 0..MAX_ATTEMPTS {
            let files = self.buffer.files(tenant, table);
            let gone = expired(&files, keep_from);
            if gone.is_empty() {
                return Ok(());
            }
            let paths: Vec<String> = gone.iter().map(|f| f.path.clone()).collect();
            match self
                .store
                .commit(tenant, table, Vec::new(), paths.clone())
                .await?
            {
                CommitOutcome::Committed(version) => {
                    let mut hours: Vec<u64> = gone.iter().map(|f| f.hour_start).collect();
                    hours.sort_unstable();
                    hours.dedup();
                    summary.partitions += hours.len() as u64;
                    summary.files += gone.len() as u64;
                    summary.rows += gone.iter().map(|f| f.rows).sum::<u64>();
                    summary.bytes += gone.iter().map(|f| f.size).sum::<u64>();
                    self.buffer
                        .replace_files(tenant, table, version, &paths, Vec::new());
                    return Ok(());
                }
                // Another writer (a compaction, here or on another node)
                // replaced some of these files first: look again.
                CommitOutcome::Conflict => {
                    self.buffer.refresh_table(tenant, table).await?;
                }
            }
        }
        summary.conflicts += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hour: u64) -> FileMeta {
        FileMeta {
            path: format!("f{hour}"),
            size: 1,
            rows: 1,
            hour_start: hour * Timestamp::NANOS_PER_HOUR,
            max_seq: 0,
            min_ts: 0,
            max_ts: 0,
            node: None,
            services: None,
        }
    }

    #[test]
    fn only_partitions_before_the_first_kept_hour_expire() {
        let files = [file(1), file(2), file(3), file(2)];
        let keep = Timestamp::from_unix_nanos(2 * Timestamp::NANOS_PER_HOUR);
        let gone: Vec<&str> = expired(&files, keep)
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(gone, ["f1"]);
    }
}
