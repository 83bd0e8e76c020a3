//! Replaying stored telemetry as OTLP to any endpoint — to backfill a new
//! backend, migrate, or re-export an incident's time range.
//!
//! Per signal table, per window of time (an hour that holds rows, or an
//! equal part of one that holds many), the rows are read through the
//! [`StoredRows`] port, split by workspace, and sent with the forwarders'
//! sender and retry policy in requests of at most `batch_items` items.
//! Permanent refusals and partial success are counted; a retryable refusal
//! that lasts longer than `give_up_after` ends the replay.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::forward::{Answer, Attempt, RetryPolicy, send_until_answered};
use crate::ports::{ExportBatch, Exporter, QueryError, QueryLimits, TableBatch};
use crate::queries::params::TimeWindow;
use tf_domain::{Signal, Table, TenantId, WorkspaceId};

/// The stored rows of a tenant's table, committed and buffered alike.
#[async_trait]
pub trait StoredRows: Send + Sync {
    /// `(hour start in Unix ns, rows)` for every hour of `window` that holds
    /// rows of `table`, by hour.
    async fn rows_per_hour(
        &self,
        tenant: &TenantId,
        table: Table,
        window: TimeWindow,
        limits: &QueryLimits,
    ) -> Result<Vec<(i64, u64)>, QueryError>;

    /// Every row of `table` in `window`.
    async fn rows(
        &self,
        tenant: &TenantId,
        table: Table,
        window: TimeWindow,
        limits: &QueryLimits,
    ) -> Result<Vec<RecordBatch>, QueryError>;
}

/// Rows are read an hour at a time, or in equal parts of an hour holding
/// more than this many rows.
pub const MAX_WINDOW_ROWS: u64 = 500_000;

const HOUR_NS: i64 = 3_600_000_000_000;

#[derive(Debug, Clone)]
pub struct ReplayCommand {
    pub tenant: TenantId,
    pub signals: Vec<Signal>,
    pub window: TimeWindow,
    /// At most this many items per request.
    pub batch_items: usize,
    /// Give up when the endpoint has refused retryably this long in a row.
    pub give_up_after: Duration,
    pub retry: RetryPolicy,
    pub limits: QueryLimits,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct ReplaySummary {
    pub items: u64,
    pub rejected: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading the stored rows: {0}")]
    Read(#[from] QueryError),
    #[error("rows of {0} have no workspace_id column")]
    NoWorkspace(Table),
    #[error(
        "the endpoint kept refusing for {} s (last: {reason}); {sent} items were sent",
        .secs
    )]
    GaveUp {
        secs: u64,
        reason: String,
        sent: u64,
    },
}

pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// One window to read and send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub signal: Signal,
    pub table: Table,
    pub window: TimeWindow,
}

/// What a replay will read: its windows and how many items they hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayPlan {
    pub windows: Vec<Window>,
    pub items: u64,
}

pub struct Replay<'a> {
    rows: &'a dyn StoredRows,
    exporter: &'a dyn Exporter,
}

impl<'a> Replay<'a> {
    pub fn new(rows: &'a dyn StoredRows, exporter: &'a dyn Exporter) -> Self {
        Self { rows, exporter }
    }

    /// The windows of `cmd`'s range that hold rows, per signal table.
    pub async fn plan(&self, cmd: &ReplayCommand) -> Result<ReplayPlan> {
        let mut plan = ReplayPlan::default();
        for &signal in &cmd.signals {
            for table in Table::of_signal(signal) {
                let hours = self
                    .rows
                    .rows_per_hour(&cmd.tenant, table, cmd.window, &cmd.limits)
                    .await?;
                for (hour, n) in hours {
                    plan.items += n;
                    let lo = hour.max(cmd.window.start_ns);
                    let hi = hour.saturating_add(HOUR_NS).min(cmd.window.end_ns);
                    let parts = (n / MAX_WINDOW_ROWS + 1).min(3600) as i64;
                    let step = ((hi - lo) / parts).max(1);
                    let mut from = lo;
                    while from < hi {
                        let to = from.saturating_add(step).min(hi);
                        plan.windows.push(Window {
                            signal,
                            table,
                            window: TimeWindow {
                                start_ns: from,
                                end_ns: to,
                            },
                        });
                        from = to;
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Sends the rows of `plan`'s windows; `sent(n)` after every request.
    pub async fn run(
        &self,
        cmd: &ReplayCommand,
        plan: &ReplayPlan,
        sent: impl Fn(u64),
    ) -> Result<ReplaySummary> {
        let started = Instant::now();
        let mut summary = ReplaySummary::default();
        for w in &plan.windows {
            let batches = self
                .rows
                .rows(&cmd.tenant, w.table, w.window, &cmd.limits)
                .await?;
            for batch in &batches {
                for (workspace, rows) in by_workspace(w.table, batch)? {
                    let mut offset = 0;
                    while offset < rows.num_rows() {
                        let len = cmd.batch_items.max(1).min(rows.num_rows() - offset);
                        let request = ExportBatch {
                            tenant: cmd.tenant.clone(),
                            workspace: workspace.clone(),
                            signal: w.signal,
                            batches: vec![TableBatch {
                                table: w.table,
                                batch: rows.slice(offset, len),
                            }],
                            encoded: Vec::new(),
                            items: len as u64,
                            key: None,
                        };
                        self.send(cmd, &request, &mut summary).await?;
                        sent(len as u64);
                        offset += len;
                    }
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    async fn send(
        &self,
        cmd: &ReplayCommand,
        request: &ExportBatch,
        summary: &mut ReplaySummary,
    ) -> Result<()> {
        let encoded = match self.exporter.encode(request) {
            Ok(e) => e,
            Err(e) => {
                summary.rejected += request.items;
                tracing::warn!(items = request.items, reason = %e, "a request could not be encoded");
                return Ok(());
            }
        };
        let mut failing_since: Option<Instant> = None;
        let mut last_reason = String::new();
        let answer = send_until_answered(self.exporter, request, &encoded, cmd.retry, |a| {
            if matches!(a, Attempt::Starting) {
                return ControlFlow::Continue(());
            }
            summary.requests += 1;
            if let Attempt::Retrying { reason, .. } = a {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > cmd.give_up_after {
                    last_reason = reason.to_owned();
                    return ControlFlow::Break(());
                }
                summary.retries += 1;
            }
            ControlFlow::Continue(())
        })
        .await;
        match answer {
            Some(Answer::Acked(ack)) => {
                let rejected = ack.rejected.min(request.items);
                summary.items += request.items - rejected;
                summary.rejected += rejected;
                if rejected > 0 {
                    tracing::warn!(rejected, reason = %ack.message, "the endpoint rejected part of a request");
                }
                Ok(())
            }
            Some(Answer::Refused(reason)) => {
                summary.rejected += request.items;
                tracing::warn!(items = request.items, %reason, "the endpoint refused a request");
                Ok(())
            }
            None => Err(ReplayError::GaveUp {
                secs: cmd.give_up_after.as_secs(),
                reason: last_reason,
                sent: summary.items,
            }),
        }
    }
}

/// The rows of `batch` per workspace.
fn by_workspace(table: Table, batch: &RecordBatch) -> Result<Vec<(WorkspaceId, RecordBatch)>> {
    let col = batch
        .column_by_name("workspace_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or(ReplayError::NoWorkspace(table))?;
    let mut names: Vec<&str> = (0..col.len())
        .filter(|&i| col.is_valid(i))
        .map(|i| col.value(i))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let keep: BooleanArray = (0..col.len())
            .map(|i| Some(col.is_valid(i) && col.value(i) == name))
            .collect();
        let rows = filter_record_batch(batch, &keep)
            .map_err(|e| ReplayError::Read(QueryError::internal(e)))?;
        let workspace = WorkspaceId::parse(name).unwrap_or_else(|_| WorkspaceId::default_id());
        out.push((workspace, rows));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::fakes::ScriptedExporter;
    use crate::ports::{ExportError, Exported};

    const H: i64 = HOUR_NS;

    /// Logs: `per_hour` rows at the start of each hour, half in workspace
    /// `a`, half in `b`.
    struct Rows {
        per_hour: Vec<(i64, u64)>,
    }

    fn logs(window: TimeWindow, per_hour: &[(i64, u64)]) -> RecordBatch {
        let mut ts = Vec::new();
        let mut ws = Vec::new();
        for &(hour, n) in per_hour {
            for i in 0..n as i64 {
                let t = hour + i;
                if t >= window.start_ns && t < window.end_ns {
                    ts.push(t);
                    ws.push(if i % 2 == 0 { "a" } else { "b" });
                }
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("workspace_id", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(ws)),
        ];
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    #[async_trait]
    impl StoredRows for Rows {
        async fn rows_per_hour(
            &self,
            _: &TenantId,
            table: Table,
            _: TimeWindow,
            _: &QueryLimits,
        ) -> Result<Vec<(i64, u64)>, QueryError> {
            Ok(if table == Table::LOGS {
                self.per_hour.clone()
            } else {
                Vec::new()
            })
        }

        async fn rows(
            &self,
            _: &TenantId,
            _: Table,
            window: TimeWindow,
            _: &QueryLimits,
        ) -> Result<Vec<RecordBatch>, QueryError> {
            Ok(vec![logs(window, &self.per_hour)])
        }
    }

    fn command(batch_items: usize) -> ReplayCommand {
        ReplayCommand {
            tenant: TenantId::default_id(),
            signals: vec![Signal::Logs, Signal::Traces],
            window: TimeWindow {
                start_ns: H / 2,
                end_ns: 3 * H,
            },
            batch_items,
            give_up_after: Duration::from_millis(50),
            retry: RetryPolicy {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            limits: QueryLimits::default(),
        }
    }

    #[tokio::test]
    async fn windows_follow_the_hours_and_requests_split_by_workspace_and_size() {
        let rows = Rows {
            per_hour: vec![(H, 10), (2 * H, 2 * MAX_WINDOW_ROWS + 1)],
        };
        let exporter = ScriptedExporter::new();
        let replay = Replay::new(&rows, &exporter);
        let plan = replay.plan(&command(3)).await.unwrap();
        assert_eq!(plan.items, 2 * MAX_WINDOW_ROWS + 11);
        // One window for the small hour, three equal parts of the big one.
        assert_eq!(plan.windows.len(), 4);
        assert_eq!(
            plan.windows[0].window,
            TimeWindow {
                start_ns: H,
                end_ns: 2 * H
            }
        );
        assert_eq!(plan.windows[3].window.end_ns, 3 * H);
        let small = ReplayPlan {
            windows: plan.windows[..1].to_vec(),
            items: 10,
        };
        let sent = std::sync::atomic::AtomicU64::new(0);
        let summary = replay
            .run(&command(3), &small, |n| {
                sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
        // Five rows per workspace, three per request: 2 + 2 requests.
        assert_eq!((summary.items, summary.requests), (10, 4));
        assert_eq!(sent.into_inner(), 10);
        assert_eq!(exporter.items(Signal::Logs), 10);
    }

    #[tokio::test]
    async fn refusals_are_counted_and_a_long_outage_ends_the_replay() {
        let rows = Rows {
            per_hour: vec![(H, 4)],
        };
        let exporter = ScriptedExporter::new();
        exporter.script([
            Err(ExportError::Retryable {
                reason: "busy".into(),
                retry_after: None,
            }),
            Ok(Exported {
                rejected: 1,
                message: "one bad".into(),
            }),
            Err(ExportError::Permanent {
                reason: "no".into(),
            }),
        ]);
        let replay = Replay::new(&rows, &exporter);
        let plan = replay.plan(&command(2)).await.unwrap();
        let s = replay.run(&command(2), &plan, |_| {}).await.unwrap();
        assert_eq!((s.items, s.rejected, s.retries, s.requests), (1, 3, 1, 3));
        exporter.set_down(true);
        let e = replay.run(&command(2), &plan, |_| {}).await.unwrap_err();
        assert!(matches!(e, ReplayError::GaveUp { sent: 0, .. }), "{e}");
    }
}
