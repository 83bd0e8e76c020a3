//! Routes: `POST /v1/{traces,metrics,logs}` (OTLP/HTTP), the query API
//! under `/api/v2` (see `query.rs`), `GET /healthz`, `/readyz`, `/metrics`. Unknown paths get 404 and wrong methods 405.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::{ApiState, admin, query};
use crate::infrastructure::otlp;
use crate::infrastructure::otlp::http::{BodyFormat, error_response};
use crate::infrastructure::otlp::status::{RpcStatus, code};

async fn healthz(State(state): State<ApiState>) -> Response {
    if state.serving.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

/// 200 once start-up recovery (WAL replay) is done and while serving.
async fn readyz(State(state): State<ApiState>) -> Response {
    if !state.serving.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if !state.metrics.pipeline.is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "replaying the write-ahead log",
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready").into_response()
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::prometheus::render(&state.metrics),
    )
        .into_response()
}

async fn not_found(headers: HeaderMap) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = BodyFormat::from_content_type(ct).unwrap_or(BodyFormat::Json);
    error_response(
        StatusCode::NOT_FOUND,
        RpcStatus::new(
            code::NOT_FOUND,
            "unknown path: OTLP/HTTP paths are /v1/traces, /v1/metrics and /v1/logs",
        ),
        format,
    )
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
                HeaderName::from_static(otlp::TENANT_HEADER),
                HeaderName::from_static(otlp::WORKSPACE_HEADER),
            ])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// The HTTP router.
pub fn router(state: ApiState) -> Router {
    let otlp_routes = state.otlp.clone().routes();
    let limit = state.otlp.max_body_bytes;
    let origins = state.cors_allowed_origins.clone();
    let router = Router::new()
        .route("/api/v2/sql", post(query::sql))
        .route("/api/v2/metrics", get(query::metrics_catalog))
        .route("/api/v2/metrics/timeseries", get(query::timeseries))
        .route("/api/v2/traces", get(query::search_traces))
        .route("/api/v2/traces/{trace_id}", get(query::trace))
        .route("/api/v2/services", get(query::services))
        .route(
            "/api/v2/services/{service}/operations",
            get(query::operations),
        )
        .route("/api/v2/logs", get(query::logs))
        .route("/api/v2/admin/compact", post(admin::compact))
        .route("/api/v2/admin/retention", post(admin::retention))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(otlp_routes)
        .fallback(not_found)
        // Compressed bodies can't exceed the decompressed limit either.
        .layer(DefaultBodyLimit::max(limit));
    match cors(&origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}
