//! Operator routes under `/api/v2/admin/`: maintenance that spans tenants.
//! (When authentication exists, these need an operator-level key.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiState;
use super::query::{now_ns, query_error};
use crate::application::ports::{QueryError, StoreError};

/// How long one pass may run when asked for over HTTP.
const PASS_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Runs `pass` on the query runtime, then deletes replaced files whose
/// grace period is over; answers the pass's summary when both are done.
async fn pass_then_collect<S, F>(state: &ApiState, pass: F) -> Response
where
    S: Serialize + Send + 'static,
    F: Future<Output = Result<S, StoreError>> + Send + 'static,
{
    let compactor = Arc::clone(&state.compactor);
    let grace = state.gc_grace;
    let done = state
        .offload
        .runtime
        .offload(PASS_TIMEOUT, async move {
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
