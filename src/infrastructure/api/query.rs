//! The query API (`/api/v2/*`): thin adapters from HTTP to the query
//! handlers. Each route checks its parameters (unknown ones are a 400 too),
//! builds a query object, and renders the answer as JSON.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::ApiState;
use crate::application::ports::{QueryError, QueryResult};
use crate::application::queries::params::{self, Aggregation, Interval, TimeWindow, invalid};
use crate::application::queries::traces::SpanStatus;
use crate::application::queries::{
    GetTraceQuery, MetricCatalogQuery, OperationsQuery, SearchLogsQuery, SearchTracesQuery,
    ServicesQuery, SqlQuery, TimeSeriesQuery,
};
use crate::domain::TenantContext;
use crate::infrastructure::otlp::{TENANT_HEADER, WORKSPACE_HEADER, tenant_context};
use crate::infrastructure::query::format;

/// Set (to `true`) on SQL answers cut at the row cap.
pub const TRUNCATED_HEADER: &str = "x-telemetryflow-truncated";

type Params = HashMap<String, String>;

fn query_error(e: QueryError) -> Response {
    let (status, kind) = match &e {
        QueryError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        QueryError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        QueryError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        QueryError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        QueryError::ResourcesExhausted(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "resources_exhausted")
        }
        QueryError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    (
        status,
        axum::Json(json!({"error": e.to_string(), "error_type": kind})),
    )
        .into_response()
}

fn ctx(headers: &HeaderMap) -> Result<TenantContext, QueryError> {
    let get = |k: &str| headers.get(k).map(|v| v.as_bytes());
    tenant_context(get(TENANT_HEADER), get(WORKSPACE_HEADER))
        .map_err(|e| QueryError::Invalid(e.to_string()))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Refuses parameters the route does not know (a typo would otherwise
/// silently widen the query).
fn known(p: &Params, allowed: &[&str]) -> Result<(), QueryError> {
    for k in p.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(
                k,
                format!(
                    "unknown parameter; this endpoint takes {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn opt<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str)
}

fn window(p: &Params) -> Result<TimeWindow, QueryError> {
    TimeWindow::parse(opt(p, "start"), opt(p, "end"), now_ns())
}

fn opt_label(p: &Params, k: &str) -> Result<Option<String>, QueryError> {
    opt(p, k).map(|v| params::label(k, v)).transpose()
}

fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

/// Runs `f` with the tenant context, rendering errors.
async fn respond<F, Fut>(headers: &HeaderMap, f: F) -> Response
where
    F: FnOnce(TenantContext) -> Fut,
    Fut: Future<Output = Result<Response, QueryError>>,
{
    match ctx(headers) {
        Ok(c) => f(c).await.unwrap_or_else(query_error),
        Err(e) => query_error(e),
    }
}

fn rows_json(result: &QueryResult) -> Result<Vec<serde_json::Map<String, Value>>, QueryError> {
    format::to_objects(&result.batches).map_err(|e| QueryError::Internal(e.to_string()))
}

/// `GET /api/v2/metrics`
pub async fn metrics_catalog(
    State(state): State<ApiState>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(&p, &["start", "end", "metric"])?;
        let metric = opt(&p, "metric")
            .map(|m| params::metric_name("metric", m))
            .transpose()?;
        let q = MetricCatalogQuery {
            ctx,
            window: window(&p)?,
            metric,
        };
        let metrics = state.metric_queries.catalog(&q).await?;
        Ok(json_ok(json!({ "metrics": metrics })))
    })
    .await
}

/// `GET /api/v2/metrics/timeseries`
pub async fn timeseries(
    State(state): State<ApiState>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(
            &p,
            &[
                "metric",
                "start",
                "end",
                "interval",
                "aggregation",
                "service",
                "group_by",
            ],
        )?;
        let metric = match opt(&p, "metric") {
            Some(m) => params::metric_name("metric", m)?,
            None => return Err(invalid("metric", "is required")),
        };
        let q = TimeSeriesQuery {
            tenant: ctx.tenant().clone(),
            metric,
            window: window(&p)?,
            interval: opt(&p, "interval")
                .map(Interval::parse)
                .transpose()?
                .unwrap_or(Interval::DEFAULT),
            aggregation: opt(&p, "aggregation")
                .map(Aggregation::parse)
                .transpose()?
                .unwrap_or(Aggregation::Avg),
            service: opt_label(&p, "service")?,
            group_by: opt(&p, "group_by")
                .map(params::group_by)
                .transpose()?
                .unwrap_or_default(),
        };
        let ts = state.metric_queries.time_series(&q).await?;
        Ok(json_ok(
            serde_json::to_value(&*ts).map_err(|e| QueryError::Internal(e.to_string()))?,
        ))
    })
    .await
}

/// `GET /api/v2/traces/{trace_id}` (`?format=otlp` for OTLP/JSON).
pub async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(&p, &["format", "start", "end"])?;
        let otlp = match opt(&p, "format") {
            None | Some("json") => false,
            Some("otlp") => true,
            Some(other) => {
                return Err(invalid("format", format!("{other:?}: use json or otlp")));
            }
        };
        let q = GetTraceQuery {
            ctx,
            trace_id: params::trace_id("trace_id", &trace_id)?,
            window: TimeWindow::parse_optional(opt(&p, "start"), opt(&p, "end"), now_ns())?,
        };
        let result = state.trace_queries.trace(&q).await?;
        if otlp {
            let body = super::otlp_json::trace_as_otlp_json(&result)?;
            return Ok(json_ok(body));
        }
        Ok(json_ok(
            json!({ "trace_id": q.trace_id, "spans": rows_json(&result)? }),
        ))
    })
    .await
}

/// `GET /api/v2/traces`
pub async fn search_traces(
    State(state): State<ApiState>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(
            &p,
            &[
                "service",
                "span_name",
                "min_duration_ms",
                "status",
                "start",
                "end",
                "limit",
            ],
        )?;
        let q = SearchTracesQuery {
            ctx,
            window: window(&p)?,
            service: opt_label(&p, "service")?,
            span_name: opt_label(&p, "span_name")?,
            min_duration_ns: opt(&p, "min_duration_ms")
                .map(|v| params::duration_ms("min_duration_ms", v))
                .transpose()?,
            status: opt(&p, "status").map(SpanStatus::parse).transpose()?,
            limit: params::limit(opt(&p, "limit"), 20, 1000)?,
        };
        let traces = state.trace_queries.search(&q).await?;
        Ok(json_ok(json!({ "traces": traces })))
    })
    .await
}

/// `GET /api/v2/services`
pub async fn services(
    State(state): State<ApiState>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(&p, &["start", "end"])?;
        let q = ServicesQuery {
            ctx,
            window: window(&p)?,
        };
        let services = state.trace_queries.services(&q).await?;
        Ok(json_ok(json!({ "services": services })))
    })
    .await
}

/// `GET /api/v2/services/{service}/operations`
pub async fn operations(
    State(state): State<ApiState>,
    Path(service): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(&p, &["start", "end"])?;
        let q = OperationsQuery {
            ctx,
            window: window(&p)?,
            service: params::label("service", &service)?,
        };
        let operations = state.trace_queries.operations(&q).await?;
        Ok(json_ok(
            json!({ "service": q.service, "operations": operations }),
        ))
    })
    .await
}

/// `GET /api/v2/logs`
pub async fn logs(
    State(state): State<ApiState>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, |ctx| async move {
        known(
            &p,
            &[
                "q",
                "service",
                "min_severity",
                "trace_id",
                "start",
                "end",
                "limit",
            ],
        )?;
        let text = match opt(&p, "q") {
            Some(t) if !t.is_empty() => Some(params::label("q", t)?),
            _ => None,
        };
        let q = SearchLogsQuery {
            ctx,
            window: window(&p)?,
            text,
            service: opt_label(&p, "service")?,
            min_severity: opt(&p, "min_severity").map(params::severity).transpose()?,
            trace_id: opt(&p, "trace_id")
                .map(|t| params::trace_id("trace_id", t))
                .transpose()?,
            limit: params::limit(opt(&p, "limit"), 100, 10_000)?,
        };
        let result = state.trace_queries.logs(&q).await?;
        Ok(json_ok(json!({ "logs": rows_json(&result)? })))
    })
    .await
}

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

/// `POST /api/v2/sql?format=json|ndjson|csv|arrow`
pub async fn sql(
    State(state): State<ApiState>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(&headers, |ctx| async move {
        known(&p, &["format"])?;
        let fmt = opt(&p, "format").unwrap_or("json");
        if !matches!(fmt, "json" | "ndjson" | "csv" | "arrow") {
            return Err(invalid(
                "format",
                format!("{fmt:?}: use json, ndjson, csv or arrow"),
            ));
        }
        let body: SqlBody = serde_json::from_slice(&body).map_err(|e| {
            QueryError::Invalid(format!(
                "request body must be JSON {{\"sql\": \"...\"}}: {e}"
            ))
        })?;
        let result = state.sql.handle(&SqlQuery { ctx, sql: body.sql }).await?;
        let rendered = match fmt {
            "csv" => format::to_csv(&result).map(|b| ("text/csv", b)),
            "ndjson" => format::to_ndjson(&result).map(|b| ("application/x-ndjson", b)),
            "arrow" => {
                format::to_arrow_ipc(&result).map(|b| ("application/vnd.apache.arrow.stream", b))
            }
            _ => format::to_json(&result).map(|v| ("application/json", v.to_string().into_bytes())),
        };
        let (ct, bytes) = rendered.map_err(|e| QueryError::Internal(e.to_string()))?;
        let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, ct)], bytes).into_response();
        if result.truncated {
            resp.headers_mut()
                .insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
        }
        Ok(resp)
    })
    .await
}
