//! Operator routes under `/api/v2/admin/`: maintenance that spans tenants
//! (they need an operator key when keys are on).
//!
//! A pass asked for over HTTP (compaction, retention) runs like a query: in
//! a slot of the query runtime, within `query.admin_timeout_secs` (which
//! covers the wait for the slot). One pass runs at a time: a request while
//! another pass runs is answered at once with 429 and `Retry-After`, so a
//! client looping on the route queues nothing. A pass cut by its timeout
//! leaves what it committed (each commit is whole) and answers 503; the
//! next pass goes on from there.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::ApiState;
use super::query::{now_ns, query_error};
use crate::application::ports::{QueryError, StoreError};

/// Seconds a client is told to wait while another pass runs.
const BUSY_RETRY_AFTER_SECS: u64 = 10;

/// The admin passes asked for over HTTP: one at a time, each within
/// `timeout`.
#[derive(Clone)]
pub struct AdminPasses {
    running: Arc<Semaphore>,
    timeout: Duration,
}

impl AdminPasses {
    pub fn new(timeout: Duration) -> Self {
        Self {
            running: Arc::new(Semaphore::new(1)),
            timeout,
        }
    }
}

/// Runs `pass` in a slot of the query runtime, then deletes replaced files
/// whose grace period is over; answers the pass's summary when both are
/// done, 429 while another pass runs, 503 when the timeout cut it.
async fn pass_then_collect<S, F>(state: &ApiState, pass: F) -> Response
where
    S: Serialize + Send + 'static,
    F: Future<Output = Result<S, StoreError>> + Send + 'static,
{
    let Ok(running) = Arc::clone(&state.admin.running).try_acquire_owned() else {
        let mut busy = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({
                "error": "another admin pass (compaction or retention) is running; \
                          one runs at a time",
                "error_type": "busy",
            })),
        )
            .into_response();
        busy.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(BUSY_RETRY_AFTER_SECS),
        );
        return busy;
    };
    let compactor = Arc::clone(&state.compactor);
    let grace = state.gc_grace;
    let timeout = state.admin.timeout;
    let done = state
        .offload
        .runtime
        .run(timeout, async move {
            // Held until the pass's task ends, also when its caller is gone.
            let _running = running;
            let summary = pass.await.map_err(QueryError::internal)?;
            compactor
                .collect_garbage(grace)
                .await
                .map_err(QueryError::internal)?;
            Ok(summary)
        })
        .await;
    match done {
        Ok(summary) => (StatusCode::OK, axum::Json(summary)).into_response(),
        Err(QueryError::Timeout(after)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": format!(
                    "the pass was stopped after the {after:?} timeout \
                     (query.admin_timeout_secs); what it committed stays, the next pass \
                     goes on from there"
                ),
                "error_type": "timeout",
            })),
        )
            .into_response(),
        Err(e) => query_error(e),
    }
}

/// `POST /api/v2/admin/retention`: one retention pass now — expired hour
/// partitions leave their manifests, buffered rows of them are dropped —
/// then deletion of replaced files whose grace period is over. Answers when
/// done, with the pass's summary (partitions, files, rows, bytes).
pub(super) async fn retention(State(state): State<ApiState>) -> Response {
    let retention = Arc::clone(&state.retention);
    let now = crate::domain::telemetry::Timestamp::from_unix_nanos(now_ns().max(0) as u64);
    pass_then_collect(&state, async move { retention.run_once(now).await }).await
}

/// `POST /api/v2/admin/compact`: one compaction pass over every tenant now,
/// then deletion of replaced files whose grace period is over. Answers when
/// done, with the pass's summary (partitions, files in → out, rows, bytes).
pub(super) async fn compact(State(state): State<ApiState>) -> Response {
    let compactor = Arc::clone(&state.compactor);
    let now = now_ns().max(0) as u64;
    pass_then_collect(&state, async move { compactor.run_once(now).await }).await
}
