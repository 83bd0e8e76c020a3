//! Routes: `POST /v1/{traces,metrics,logs}` (OTLP/HTTP), the query API
//! under `/api/v2` (see `query.rs`), key management (`keys.rs`),
//! `GET /healthz`, `/readyz`, `/metrics`. Each is declared with the
//! [`Need`] its requests must meet ([`routes`]). Unknown paths get 404 and
//! wrong methods 405.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use std::sync::Arc;

use super::{ApiState, admin, keys, query};
use crate::application::commands::IngestStats;
use crate::application::limits::TenantLimiter;
use crate::domain::access::Need;
use crate::infrastructure::access::{http_guard, metrics_host_guard};
use crate::infrastructure::otlp;
use crate::infrastructure::otlp::http::{BodyFormat, error_response};
use crate::infrastructure::otlp::signal::{Logs, Metrics, OtlpSignal, Traces};
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

fn cors(origins: &[String], keys: bool) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let mut headers = vec![
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::AUTHORIZATION,
        HeaderName::from_static(otlp::WORKSPACE_HEADER),
    ];
    // With keys, the tenant comes from the key; a page may not name one.
    if !keys {
        headers.push(HeaderName::from_static(otlp::TENANT_HEADER));
    }
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::GET, Method::DELETE, Method::OPTIONS])
            .allow_headers(headers)
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// One path of the API, the methods it answers, and what each request to
/// it needs of its key. Routes are added only through [`Route`], so none
/// exists without a [`Need`].
pub struct Route {
    pub path: &'static str,
    pub need: Need,
    pub methods: Vec<Method>,
    handler: MethodRouter<ApiState>,
}

impl Route {
    fn new(
        path: &'static str,
        need: Need,
        method: Method,
        handler: MethodRouter<ApiState>,
    ) -> Self {
        Self {
            path,
            need,
            methods: vec![method],
            handler,
        }
    }

    fn get<H, T>(path: &'static str, need: Need, h: H) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        Self::new(path, need, Method::GET, get(h))
    }

    fn post<H, T>(path: &'static str, need: Need, h: H) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        Self::new(path, need, Method::POST, post(h))
    }

    fn delete<H, T>(path: &'static str, need: Need, h: H) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        Self::new(path, need, Method::DELETE, delete(h))
    }

    fn and_post<H, T>(mut self, h: H) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        self.methods.push(Method::POST);
        self.handler = self.handler.post(h);
        self
    }
}

/// The OTLP/HTTP paths (served by the receiver's own router), each needing
/// [`Need::Ingest`].
pub const OTLP_PATHS: [&str; 3] = [Traces::HTTP_PATH, Metrics::HTTP_PATH, Logs::HTTP_PATH];

/// Every route of the HTTP API but the OTLP paths.
pub fn routes() -> Vec<Route> {
    use Need::{Admin, Key, Open, Operator, Query};
    vec![
        Route::post("/api/v2/sql", Query, query::sql),
        Route::get("/api/v2/metrics", Query, query::metrics_catalog),
        Route::get("/api/v2/metrics/timeseries", Query, query::timeseries),
        Route::get("/api/v2/traces", Query, query::search_traces),
        Route::get("/api/v2/traces/{trace_id}", Query, query::trace),
        Route::get("/api/v2/services", Query, query::services),
        Route::get(
            "/api/v2/services/{service}/operations",
            Query,
            query::operations,
        ),
        Route::get("/api/v2/logs", Query, query::logs),
        Route::post("/api/v2/admin/compact", Operator, admin::compact),
        Route::post("/api/v2/admin/retention", Operator, admin::retention),
        Route::get("/api/v2/admin/keys", Admin, keys::list).and_post(keys::create),
        Route::delete("/api/v2/admin/keys/{id}", Admin, keys::revoke),
        Route::post("/api/v2/auth/token", Key, keys::token),
        Route::get("/metrics", Operator, metrics),
        Route::get("/healthz", Open, healthz),
        Route::get("/readyz", Open, readyz),
    ]
}

/// Holds one of the tenant's query slots (`limits.max_concurrent_queries`)
/// while a query route answers; over the limit, 429 at once. The tenant is
/// the request's after the access check (a key's own tenant).
async fn query_slot(
    State((limits, stats)): State<(Arc<TenantLimiter>, Arc<IngestStats>)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let named = {
        let header = |k: &str| request.headers().get(k).map(|v| v.as_bytes());
        otlp::tenant_context(header(otlp::TENANT_HEADER), header(otlp::WORKSPACE_HEADER)).ok()
    };
    let Some(ctx) = named else {
        // The route answers the bad header itself.
        return next.run(request).await;
    };
    match limits.begin_query(ctx.tenant()) {
        Ok(_slot) => next.run(request).await,
        Err(e) => {
            stats.limit_refused(ctx.tenant(), e.limit);
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({"error": e.to_string(), "error_type": "limit"})),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(e.retry_secs()));
            resp
        }
    }
}

/// The HTTP router: every route behind the access check of its need.
pub fn router(state: ApiState) -> Router {
    let access = Arc::clone(&state.access);
    let guard =
        |need: Need| axum::middleware::from_fn_with_state((Arc::clone(&access), need), http_guard);
    let otlp_routes = state.otlp.clone().routes().route_layer(guard(Need::Ingest));
    let limit = state.otlp.max_body_bytes;
    let origins = state.cors_allowed_origins.clone();
    let keys = access.keys().is_some();
    let slots = (
        Arc::clone(&state.tenant_limits),
        Arc::clone(&state.metrics.ingest),
    );
    let query_slot = axum::middleware::from_fn_with_state(slots, query_slot);
    let mut router = Router::new();
    for route in routes() {
        let handler = match route.need {
            Need::Query => route.handler.route_layer(query_slot.clone()),
            _ => route.handler,
        };
        router = router.route(route.path, handler.route_layer(guard(route.need)));
    }
    let router = router
        .with_state(state)
        .merge(otlp_routes)
        .fallback(not_found)
        // Compressed bodies can't exceed the decompressed limit either.
        .layer(DefaultBodyLimit::max(limit));
    match cors(&origins, keys) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// The router of `server.metrics_addr`: `/metrics` without a key.
pub fn metrics_router(state: ApiState) -> Router {
    let host = axum::middleware::from_fn_with_state(Arc::clone(&state.access), metrics_host_guard);
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(host)
}
