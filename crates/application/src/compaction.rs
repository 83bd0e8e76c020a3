//! Compaction: the use case that keeps the store fast as it ages. Every
//! flush leaves a small file; a pass merges the small committed files of
//! each (tenant, table, hour) partition into files of about the target size,
//! sorted like flushed files, and commits the outputs in place of the inputs
//! in one manifest version. A query holding an older snapshot keeps reading
//! the inputs: they are deleted by the garbage collector only after the
//! grace period.
//!
//! Which partitions (the policy, a pure function: [`plan`]): a closed hour
//! whose small files are at least two — merged into its final files — and,
//! while the hour is open, size tiers: files within a factor of four of each
//! other (1 MiB, 4 MiB, 16 MiB, …) are merged once `min_files` of them
//! exist, so a busy hour's rows are rewritten about log4(target / 1 MiB)
//! times before the hour closes, not once per pass. A file is small below
//! half the target size; large files are never rewritten. Inputs of one
//! merge are capped at `max_input_bytes` and `max_inputs` (a merge holds a
//! batch of every input in memory); a partition with more small files is
//! merged in several groups — smallest files together — in one pass, and
//! their outputs in a later one.
//!
//! A commit that finds an input already gone (another node compacted the
//! partition first) is a conflict: nothing is committed, the outputs are left
//! for the garbage collector, and the partition is planned again next pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::pipeline::PartitionBuffer;
use crate::ports::{CommitOutcome, FileMeta, FileStore, StoreError};
use tf_domain::Table;
use tf_domain::TenantId;

const HOUR_NS: u64 = 3_600_000_000_000;
/// How often the periodic collection also looks for orphans.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How compaction chooses and sizes its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Size an output file is cut at; files below half of it are "small".
    pub target_file_bytes: u64,
    /// Small files that make the open hour worth compacting.
    pub min_files: usize,
    /// Input bytes one merge reads at most.
    pub max_input_bytes: u64,
    /// Files one merge reads at most: a merge holds a batch of every input
    /// in memory, so this bounds its memory, not only the bytes.
    pub max_inputs: usize,
    /// An hour counts as closed this long after its end (late data and the
    /// last flushes have arrived).
    pub settle: Duration,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            target_file_bytes: 128 << 20,
            min_files: 8,
            max_input_bytes: 1 << 30,
            max_inputs: 32,
            settle: Duration::from_secs(600),
        }
    }
}

/// One merge: inputs of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub tenant: TenantId,
    pub table: Table,
    pub hour_start: u64,
    pub inputs: Vec<FileMeta>,
}

/// A file's size tier: 0 up to 1 MiB, then one tier per factor of four.
fn tier(size: u64) -> u32 {
    let mib = size >> 20;
    if mib == 0 { 0 } else { 1 + mib.ilog(4) }
}

/// The merges worth doing now, oldest partition first.
pub fn plan(
    files: &[(TenantId, Table, Vec<FileMeta>)],
    policy: &CompactionPolicy,
    now_ns: u64,
) -> Vec<Task> {
    let small = policy.target_file_bytes / 2;
    let mut tasks = Vec::new();
    for (tenant, table, table_files) in files {
        let mut by_hour: BTreeMap<u64, Vec<&FileMeta>> = BTreeMap::new();
        for f in table_files.iter().filter(|f| f.size < small) {
            by_hour.entry(f.hour_start).or_default().push(f);
        }
        for (hour_start, mut hour_files) in by_hour {
            let closed = hour_start
                .saturating_add(HOUR_NS)
                .saturating_add(policy.settle.as_nanos() as u64)
                <= now_ns;
            if !closed {
                // The lowest size tier holding enough files, if any.
                let mut tiers: BTreeMap<u32, Vec<&FileMeta>> = BTreeMap::new();
                for f in hour_files {
                    tiers.entry(tier(f.size)).or_default().push(f);
                }
                match tiers
                    .into_values()
                    .find(|t| t.len() >= policy.min_files.max(2))
                {
                    Some(t) => hour_files = t,
                    None => continue,
                }
            } else if hour_files.len() < 2 {
                continue;
            }
            // Smallest first (then oldest): a backlog of many small files is
            // merged in groups of similar size, so a row is rewritten about
            // log_max_inputs(files) times, not once per group. Each group is
            // a merge of its own; groups share no file, so all of them can
            // commit in one pass.
            hour_files
                .sort_by(|a, b| (a.size, a.min_ts, &a.path).cmp(&(b.size, b.min_ts, &b.path)));
            let mut inputs: Vec<FileMeta> = Vec::new();
            let mut bytes = 0;
            for f in hour_files {
                if !inputs.is_empty()
                    && (bytes + f.size > policy.max_input_bytes
                        || inputs.len() >= policy.max_inputs.max(2))
                {
                    if inputs.len() >= 2 {
                        tasks.push(Task {
                            tenant: tenant.clone(),
                            table: *table,
                            hour_start,
                            inputs: std::mem::take(&mut inputs),
                        });
                    }
                    inputs.clear();
                    bytes = 0;
                }
                bytes += f.size;
                inputs.push(f.clone());
            }
            if inputs.len() >= 2 {
                tasks.push(Task {
                    tenant: tenant.clone(),
                    table: *table,
                    hour_start,
                    inputs,
                });
            }
        }
    }
    tasks.sort_by(|a, b| {
        (a.hour_start, &a.tenant, a.table).cmp(&(b.hour_start, &b.tenant, b.table))
    });
    tasks
}

/// What one pass did (the admin endpoint's and the CLI's answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionSummary {
    pub partitions: u64,
    pub files_in: u64,
    pub files_out: u64,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Partitions another writer compacted first (retried next pass).
    pub conflicts: u64,
    pub seconds: f64,
}

/// Counters for `/metrics`, over the process's life.
#[derive(Debug, Default)]
pub struct CompactionStats {
    pub passes: AtomicU64,
    pub compactions: AtomicU64,
    pub files_in: AtomicU64,
    pub files_out: AtomicU64,
    pub rows: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub conflicts: AtomicU64,
    pub failures: AtomicU64,
    pub nanos: AtomicU64,
    /// Replaced files waiting for their grace period (last collection).
    pub pending_deletion: AtomicU64,
    pub deleted: AtomicU64,
}

/// Runs compaction passes over the partition buffer's committed files.
pub struct Compactor {
    store: Arc<dyn FileStore>,
    buffer: Arc<PartitionBuffer>,
    policy: CompactionPolicy,
    stats: CompactionStats,
    /// One pass at a time (the timer's and the admin endpoint's).
    running: tokio::sync::Mutex<()>,
    last_orphan_sweep: parking_lot::Mutex<Option<Instant>>,
}

impl Compactor {
    pub fn new(
        store: Arc<dyn FileStore>,
        buffer: Arc<PartitionBuffer>,
        policy: CompactionPolicy,
    ) -> Self {
        Self {
            store,
            buffer,
            policy,
            stats: CompactionStats::default(),
            running: tokio::sync::Mutex::new(()),
            last_orphan_sweep: parking_lot::Mutex::new(None),
        }
    }

    pub fn stats(&self) -> &CompactionStats {
        &self.stats
    }

    pub fn policy(&self) -> &CompactionPolicy {
        &self.policy
    }

    /// One pass: plans and runs every merge due now. A failed merge is
    /// logged and counted; the others go on, and the first error is returned
    /// after the pass.
    pub async fn run_once(&self, now_ns: u64) -> Result<CompactionSummary, StoreError> {
        let _one = self.running.lock().await;
        let started = Instant::now();
        if let Err(e) = self.buffer.refresh_all().await {
            tracing::warn!(error = %e, "reading the manifests again failed; planning from this node's view");
        }
        let tasks = plan(&self.buffer.committed_files(), &self.policy, now_ns);
        let mut summary = CompactionSummary::default();
        let mut first_err = None;
        let s = &self.stats;
        for task in tasks {
            let merge_started = Instant::now();
            let done = self.compact(&task).await;
            // Counted per merge, so /metrics moves during a long pass.
            s.nanos
                .fetch_add(merge_started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            match done {
                Ok(Some((outputs, rows))) => {
                    let (files_in, files_out) = (task.inputs.len() as u64, outputs.len() as u64);
                    let bytes_in = task.inputs.iter().map(|f| f.size).sum::<u64>();
                    let bytes_out = outputs.iter().map(|f| f.size).sum::<u64>();
                    summary.partitions += 1;
                    summary.files_in += files_in;
                    summary.files_out += files_out;
                    summary.rows += rows;
                    summary.bytes_in += bytes_in;
                    summary.bytes_out += bytes_out;
                    s.compactions.fetch_add(1, Ordering::Relaxed);
                    s.files_in.fetch_add(files_in, Ordering::Relaxed);
                    s.files_out.fetch_add(files_out, Ordering::Relaxed);
                    s.rows.fetch_add(rows, Ordering::Relaxed);
                    s.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
                    s.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
                }
                Ok(None) => {
                    summary.conflicts += 1;
                    s.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tenant = %task.tenant, table = %task.table, hour_start = task.hour_start, error = %e, "compaction failed; the inputs stay as they are");
                    first_err.get_or_insert(e);
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        s.passes.fetch_add(1, Ordering::Relaxed);
        match first_err {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    /// Merges one task's inputs and commits the outputs in their place;
    /// `None` on a conflict.
    async fn compact(&self, task: &Task) -> Result<Option<(Vec<FileMeta>, u64)>, StoreError> {
        let outputs = self
            .store
            .merge_files(
                &task.tenant,
                task.table,
                task.hour_start,
                &task.inputs,
                self.policy.target_file_bytes,
            )
            .await?;
        let rows_in: u64 = task.inputs.iter().map(|f| f.rows).sum();
        let rows_out: u64 = outputs.iter().map(|f| f.rows).sum();
        if rows_in != rows_out {
            // Never commit a merge that lost or invented rows.
            return Err(StoreError::new(
                format!(
                    "compacting {} {} hour {}",
                    task.tenant, task.table, task.hour_start
                ),
                std::io::Error::other(format!(
                    "merged {rows_out} rows from inputs holding {rows_in}"
                )),
            ));
        }
        let removed: Vec<String> = task.inputs.iter().map(|f| f.path.clone()).collect();
        match self
            .store
            .commit(&task.tenant, task.table, outputs.clone(), removed.clone())
            .await?
        {
            CommitOutcome::Committed(version) => {
                self.buffer.replace_files(
                    &task.tenant,
                    task.table,
                    version,
                    &removed,
                    outputs.clone(),
                );
                tracing::info!(tenant = %task.tenant, table = %task.table, hour_start = task.hour_start, files_in = removed.len(), files_out = outputs.len(), rows = rows_out, "compacted");
                Ok(Some((outputs, rows_out)))
            }
            CommitOutcome::Conflict => {
                tracing::info!(tenant = %task.tenant, table = %task.table, hour_start = task.hour_start, "compaction conflict: another writer replaced an input first");
                Ok(None)
            }
        }
    }

    /// Deletes replaced files past the grace period — and orphans, when no
    /// sweep for them ran within the last `ORPHAN_SWEEP_EVERY` (or the grace
    /// period, if longer): finding orphans lists the whole store. Updates the
    /// pending-deletion gauge.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<(), StoreError> {
        let sweep = {
            let mut last = self.last_orphan_sweep.lock();
            let due = last.is_none_or(|t: Instant| t.elapsed() >= grace.max(ORPHAN_SWEEP_EVERY));
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        let gc = self.store.collect_garbage(grace, sweep).await?;
        self.stats
            .pending_deletion
            .store(gc.pending as u64, Ordering::Relaxed);
        self.stats
            .deleted
            .fetch_add((gc.replaced + gc.orphans) as u64, Ordering::Relaxed);
        if gc.replaced + gc.orphans > 0 {
            tracing::info!(
                replaced = gc.replaced,
                orphans = gc.orphans,
                pending = gc.pending,
                "deleted data files"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = HOUR_NS;

    fn file(n: u64, hour: u64, size: u64) -> FileMeta {
        FileMeta {
            path: format!("t/otel_logs/h{hour}/{n}.parquet"),
            size,
            rows: 10,
            hour_start: hour * H,
            max_seq: n,
            min_ts: (hour * H + n) as i64,
            max_ts: (hour * H + n) as i64,
            node: Some("a".into()),
            services: None,
        }
    }

    fn policy() -> CompactionPolicy {
        CompactionPolicy {
            target_file_bytes: 1000,
            min_files: 4,
            max_input_bytes: 2000,
            max_inputs: 32,
            settle: Duration::from_secs(60),
        }
    }

    fn tenant() -> TenantId {
        TenantId::parse("t").unwrap()
    }

    #[test]
    fn closed_hours_fold_small_files_open_hours_wait_for_enough() {
        let now = 10 * H + 30 * 60_000_000_000; // 10:30: hour 10 is open
        let files = vec![(
            tenant(),
            Table::LOGS,
            vec![
                // Hour 8: closed, two small files and a large one.
                file(1, 8, 100),
                file(2, 8, 100),
                file(3, 8, 900),
                // Hour 9: closed (settled at 10:01), one small file: nothing to do.
                file(4, 9, 100),
                // Hour 10: open, three small files: fewer than min_files.
                file(5, 10, 100),
                file(6, 10, 100),
                file(7, 10, 100),
            ],
        )];
        let tasks = plan(&files, &policy(), now);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].hour_start, 8 * H);
        let paths: Vec<_> = tasks[0].inputs.iter().map(|f| f.max_seq).collect();
        assert_eq!(paths, vec![1, 2], "the large file is left alone");

        // A fourth small file in the open hour makes it due.
        let mut more = files.clone();
        more[0].2.push(file(8, 10, 100));
        let tasks = plan(&more, &policy(), now);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[1].hour_start, 10 * H);
        assert_eq!(tasks[1].inputs.len(), 4);
    }

    /// In the open hour, a merged file is not rewritten with every few new
    /// flushes: only files of one size tier are merged together.
    #[test]
    fn the_open_hour_merges_files_of_a_size_tier() {
        let mib = 1 << 20;
        let policy = CompactionPolicy {
            target_file_bytes: 512 * mib,
            min_files: 4,
            max_input_bytes: 1 << 40,
            max_inputs: 32,
            settle: Duration::from_secs(60),
        };
        let now = 10 * H + 60_000_000_000;
        // One earlier merge (3 MiB, tier 1) and four new flushes (tier 0).
        let mut files = vec![file(1, 10, 3 * mib)];
        files.extend((2..=5).map(|n| file(n, 10, 100)));
        let tasks = plan(&[(tenant(), Table::LOGS, files.clone())], &policy, now);
        let seqs: Vec<_> = tasks[0].inputs.iter().map(|f| f.max_seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5], "the 3 MiB file is left alone");
        // Four files of tier 1 are merged with each other.
        let tier1: Vec<_> = (1..=4).map(|n| file(n, 10, 2 * mib + n)).collect();
        let tasks = plan(&[(tenant(), Table::LOGS, tier1)], &policy, now);
        assert_eq!(tasks[0].inputs.len(), 4);
        // Once the hour closes, everything small is folded together.
        let tasks = plan(&[(tenant(), Table::LOGS, files)], &policy, 12 * H);
        assert_eq!(tasks[0].inputs.len(), 5);
        assert_eq!(
            (
                tier(0),
                tier(mib - 1),
                tier(mib),
                tier(4 * mib),
                tier(16 * mib)
            ),
            (0, 0, 1, 2, 3)
        );
    }

    /// A backlog is merged in groups bounded by bytes and by file count —
    /// disjoint, so they all commit in one pass — smallest files together.
    #[test]
    fn a_backlog_is_merged_in_bounded_disjoint_groups() {
        let files = vec![(
            tenant(),
            Table::LOGS,
            (1..=30).rev().map(|n| file(n, 3, 300)).collect(),
        )];
        let groups = |policy: &CompactionPolicy| -> Vec<Vec<u64>> {
            plan(&files, policy, 100 * H)
                .iter()
                .map(|t| t.inputs.iter().map(|f| f.max_seq).collect())
                .collect()
        };
        // 2000 bytes of 300-byte files: six per merge, the oldest rows first.
        let by_bytes = groups(&policy());
        assert_eq!(by_bytes.len(), 5);
        assert_eq!(by_bytes[0], vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(by_bytes[4], vec![25, 26, 27, 28, 29, 30]);
        // At most four files per merge: 7 merges of four, one of two.
        let by_count = groups(&CompactionPolicy {
            max_input_bytes: 1 << 40,
            max_inputs: 4,
            ..policy()
        });
        assert_eq!(by_count.len(), 8);
        assert!(by_count[..7].iter().all(|g| g.len() == 4));
        let mut all: Vec<u64> = by_count.concat();
        all.sort_unstable();
        assert_eq!(all, (1..=30).collect::<Vec<_>>(), "each file in one merge");
        // Smaller files go together first.
        let mixed = vec![(
            tenant(),
            Table::LOGS,
            vec![
                file(1, 3, 900),
                file(2, 3, 10),
                file(3, 3, 20),
                file(4, 3, 800),
            ],
        )];
        let tasks = plan(
            &mixed,
            &CompactionPolicy {
                max_inputs: 2,
                ..policy()
            },
            100 * H,
        );
        let seqs: Vec<Vec<u64>> = tasks
            .iter()
            .map(|t| t.inputs.iter().map(|f| f.max_seq).collect())
            .collect();
        assert_eq!(seqs, vec![vec![2, 3]], "the large files are left alone");
    }

    #[test]
    fn the_hour_settles_before_it_counts_as_closed() {
        let files = vec![(tenant(), Table::LOGS, vec![file(1, 5, 10), file(2, 5, 10)])];
        // 6:00:30 — hour 5 ended, but not 60 s ago.
        assert!(plan(&files, &policy(), 6 * H + 30_000_000_000).is_empty());
        assert_eq!(plan(&files, &policy(), 6 * H + 61_000_000_000).len(), 1);
    }
}
