//! The query API (`/api/v2/*`): thin adapters from HTTP to the query
//! handlers. Each route decodes its query string into a typed parameter
//! struct (an unknown or malformed parameter is a 400 naming it, so a typo
//! never silently widens a query), builds a query object, and renders the
//! answer as JSON. Answers made of rows (SQL, a trace, logs) are rendered
//! straight into a body of at most the query memory limit: a larger one is a
//! 422 naming `query.memory_limit_mb`, not a heap that grows with it.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ApiState, Offload};
use crate::application::ports::{QueryError, QueryResult};
use crate::application::queries::matcher::parse_matchers;
use crate::application::queries::params::{self, Aggregation, Interval, TimeWindow, invalid};
use crate::application::queries::traces::parse_status;
use crate::application::queries::{
    GetTraceQuery, LabelMatcher, MetricCatalogQuery, OperationsQuery, SearchLogsQuery,
    SearchTracesQuery, ServicesQuery, SqlQuery, TimeSeriesQuery,
};
use crate::domain::TenantContext;
use crate::infrastructure::otlp::convert::spans_to_otlp;
use crate::infrastructure::otlp::{TENANT_HEADER, WORKSPACE_HEADER, json, tenant_context};
use crate::infrastructure::query::format::{self, Capped, Format, FormatError};

/// Set (to `true`) on SQL answers cut at the row cap.
pub const TRUNCATED_HEADER: &str = "x-telemetryflow-truncated";

pub(super) fn query_error(e: QueryError) -> Response {
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

pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Query-string parameters decoded into `T`, whose fields are the route's
/// parameters (`deny_unknown_fields`). A parameter given twice takes its
/// last value.
pub(super) struct Params<T>(T);

/// More query parameters than any route takes is refused before decoding.
const MAX_PARAMS: usize = 32;

fn bad_params(e: &dyn std::fmt::Display) -> QueryError {
    QueryError::Invalid(format!("query parameters: {e}"))
}

fn query_pairs(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    if query.split('&').count() > MAX_PARAMS {
        return Err(bad_params(&format!("more than {MAX_PARAMS} parameters")));
    }
    serde_urlencoded::from_str(query).map_err(|e| bad_params(&e))
}

fn decode_params<T: DeserializeOwned>(query: &str) -> Result<T, QueryError> {
    decode_pairs(query_pairs(query)?)
}

fn decode_pairs<T: DeserializeOwned>(pairs: Vec<(String, String)>) -> Result<T, QueryError> {
    let mut last: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match last.iter_mut().find(|(seen, _)| *seen == k) {
            Some(entry) => entry.1 = v,
            None => last.push((k, v)),
        }
    }
    let canonical = serde_urlencoded::to_string(&last).map_err(|e| bad_params(&e))?;
    serde_urlencoded::from_str(&canonical).map_err(|e| bad_params(&e))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        decode_params(parts.uri.query().unwrap_or(""))
            .map(Params)
            .map_err(query_error)
    }
}

/// [`Params`] of a route that also takes label matchers: every `filter`
/// parameter, in order (the one parameter that may repeat).
pub(super) struct Filtered<T>(T, Vec<LabelMatcher>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Filtered<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let decode = || {
            let (filters, rest): (Vec<_>, Vec<_>) = query_pairs(parts.uri.query().unwrap_or(""))?
                .into_iter()
                .partition(|(k, _)| k == "filter");
            let filters: Vec<String> = filters.into_iter().map(|(_, v)| v).collect();
            Ok::<_, QueryError>(Filtered(
                decode_pairs(rest)?,
                parse_matchers("filter", &filters)?,
            ))
        };
        decode().map_err(query_error)
    }
}

/// `start`/`end` of a route, shared by every windowed route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowParams {
    start: Option<String>,
    end: Option<String>,
}

impl WindowParams {
    fn window(&self) -> Result<TimeWindow, QueryError> {
        TimeWindow::parse(self.start.as_deref(), self.end.as_deref(), now_ns())
    }
}

fn opt_label(name: &str, v: Option<&str>) -> Result<Option<String>, QueryError> {
    v.map(|v| params::label(name, v)).transpose()
}

/// `v` as a JSON body of at most `limit` bytes.
fn json_ok<T: serde::Serialize>(v: &T, limit: usize) -> Result<Response, QueryError> {
    let mut out = Capped::new(limit);
    let written = serde_json::to_writer(&mut out, v);
    let body = out.finish().map_err(render_error)?;
    written.map_err(QueryError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Runs `f` with the tenant context, rendering errors.
///
/// The route's work runs on the query runtime, not on the threads that
/// serve HTTP and accept OTLP: what the handlers do around their queries
/// (grouping raw points per series, rendering rows) is proportional to the
/// rows returned and must not delay ingest either.
async fn respond<F, Fut>(offload: Offload, headers: &HeaderMap, f: F) -> Response
where
    F: FnOnce(TenantContext) -> Fut,
    Fut: Future<Output = Result<Response, QueryError>> + Send + 'static,
{
    match ctx(headers) {
        Ok(c) => offload
            .runtime
            .offload(offload.timeout, f(c))
            .await
            .unwrap_or_else(query_error),
        Err(e) => query_error(e),
    }
}

/// A rendering error: over the limit is the caller's (HTTP 422 naming
/// `query.memory_limit_mb`), anything else ours.
fn render_error(e: FormatError) -> QueryError {
    match e {
        FormatError::TooLarge { .. } => QueryError::ResourcesExhausted(e.to_string()),
        FormatError::Arrow(_) => QueryError::internal(e),
    }
}

/// `{"<key>": <value>, …, "<rows_key>": [<row objects>]}` rendered straight
/// into a body of at most `limit` bytes.
fn rows_body(
    fields: &[(&str, Value)],
    rows_key: &str,
    result: &QueryResult,
    limit: usize,
) -> Result<Response, QueryError> {
    let mut out = Capped::new(limit);
    out.put(b"{").map_err(render_error)?;
    for (key, value) in fields {
        let field = format!("{}:{},", Value::from(*key), value);
        out.put(field.as_bytes()).map_err(render_error)?;
    }
    out.put(format!("{}:", Value::from(rows_key)).as_bytes())
        .map_err(render_error)?;
    format::write_objects(&result.batches, &mut out).map_err(render_error)?;
    out.put(b"}").map_err(render_error)?;
    let body = out.finish().map_err(render_error)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CatalogParams {
    start: Option<String>,
    end: Option<String>,
    metric: Option<String>,
}

/// `GET /api/v2/metrics`
pub(super) async fn metrics_catalog(
    State(state): State<ApiState>,
    Params(p): Params<CatalogParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let metric = p
            .metric
            .as_deref()
            .map(|m| params::metric_name("metric", m))
            .transpose()?;
        let q = MetricCatalogQuery {
            ctx,
            window: TimeWindow::parse(p.start.as_deref(), p.end.as_deref(), now_ns())?,
            metric,
        };
        let metrics = state.metric_queries.catalog(&q).await?;
        json_ok(&json!({ "metrics": metrics }), state.offload.render_limit())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimeSeriesParams {
    metric: Option<String>,
    start: Option<String>,
    end: Option<String>,
    interval: Option<String>,
    aggregation: Option<String>,
    service: Option<String>,
    group_by: Option<String>,
}

/// `GET /api/v2/metrics/timeseries`
pub(super) async fn timeseries(
    State(state): State<ApiState>,
    Filtered(p, filters): Filtered<TimeSeriesParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let metric = match p.metric.as_deref() {
            Some(m) => params::metric_name("metric", m)?,
            None => return Err(invalid("metric", "is required")),
        };
        let q = TimeSeriesQuery {
            tenant: ctx.tenant().clone(),
            metric,
            window: TimeWindow::parse(p.start.as_deref(), p.end.as_deref(), now_ns())?,
            interval: p
                .interval
                .as_deref()
                .map(Interval::parse)
                .transpose()?
                .unwrap_or(Interval::DEFAULT),
            aggregation: p
                .aggregation
                .as_deref()
                .map(Aggregation::parse)
                .transpose()?
                .unwrap_or(Aggregation::Avg),
            service: opt_label("service", p.service.as_deref())?,
            filters,
            group_by: p
                .group_by
                .as_deref()
                .map(params::group_by)
                .transpose()?
                .unwrap_or_default(),
        };
        let ts = state.metric_queries.time_series(&q).await?;
        json_ok(&*ts, state.offload.render_limit())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TraceParams {
    format: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

/// `GET /api/v2/traces/{trace_id}` (`?format=otlp` for OTLP/JSON).
pub(super) async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
    Params(p): Params<TraceParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let otlp = match p.format.as_deref() {
            None | Some("json") => false,
            Some("otlp") => true,
            Some(other) => {
                return Err(invalid("format", format!("{other:?}: use json or otlp")));
            }
        };
        let q = GetTraceQuery {
            ctx,
            trace_id: params::trace_id("trace_id", &trace_id)?,
            window: TimeWindow::parse_optional(p.start.as_deref(), p.end.as_deref(), now_ns())?,
        };
        let result = state.trace_queries.trace(&q).await?;
        let limit = state.offload.render_limit();
        if otlp {
            let req = spans_to_otlp(&result.batches).map_err(QueryError::internal)?;
            drop(result);
            let body = json::encode_traces_within(&req, limit)
                .map_err(|e| QueryError::ResourcesExhausted(format!("the rendered trace {e}")))?;
            return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
        }
        rows_body(
            &[("trace_id", Value::from(q.trace_id))],
            "spans",
            &result,
            limit,
        )
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchTracesParams {
    service: Option<String>,
    span_name: Option<String>,
    min_duration_ms: Option<String>,
    status: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v2/traces`
pub(super) async fn search_traces(
    State(state): State<ApiState>,
    Filtered(p, filters): Filtered<SearchTracesParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let q = SearchTracesQuery {
            ctx,
            window: TimeWindow::parse(p.start.as_deref(), p.end.as_deref(), now_ns())?,
            service: opt_label("service", p.service.as_deref())?,
            span_name: opt_label("span_name", p.span_name.as_deref())?,
            min_duration_ns: p
                .min_duration_ms
                .as_deref()
                .map(|v| params::duration_ms("min_duration_ms", v))
                .transpose()?,
            status: p.status.as_deref().map(parse_status).transpose()?,
            filters,
            limit: params::limit(p.limit.as_deref(), 20, 1000)?,
        };
        let traces = state.trace_queries.search(&q).await?;
        json_ok(&json!({ "traces": traces }), state.offload.render_limit())
    })
    .await
}

/// `GET /api/v2/services`
pub(super) async fn services(
    State(state): State<ApiState>,
    Params(p): Params<WindowParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let q = ServicesQuery {
            ctx,
            window: p.window()?,
        };
        let services = state.trace_queries.services(&q).await?;
        json_ok(
            &json!({ "services": services }),
            state.offload.render_limit(),
        )
    })
    .await
}

/// `GET /api/v2/services/{service}/operations`
pub(super) async fn operations(
    State(state): State<ApiState>,
    Path(service): Path<String>,
    Params(p): Params<WindowParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let q = OperationsQuery {
            ctx,
            window: p.window()?,
            service: params::label("service", &service)?,
        };
        let operations = state.trace_queries.operations(&q).await?;
        json_ok(
            &json!({ "service": q.service, "operations": operations }),
            state.offload.render_limit(),
        )
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsParams {
    q: Option<String>,
    service: Option<String>,
    min_severity: Option<String>,
    trace_id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v2/logs`
pub(super) async fn logs(
    State(state): State<ApiState>,
    Filtered(p, filters): Filtered<LogsParams>,
    headers: HeaderMap,
) -> Response {
    respond(state.offload.clone(), &headers, |ctx| async move {
        let text = match p.q.as_deref() {
            Some(t) if !t.is_empty() => Some(params::label("q", t)?),
            _ => None,
        };
        let q = SearchLogsQuery {
            ctx,
            window: TimeWindow::parse(p.start.as_deref(), p.end.as_deref(), now_ns())?,
            text,
            service: opt_label("service", p.service.as_deref())?,
            min_severity: p
                .min_severity
                .as_deref()
                .map(params::severity)
                .transpose()?,
            trace_id: p
                .trace_id
                .as_deref()
                .map(|t| params::trace_id("trace_id", t))
                .transpose()?,
            filters,
            limit: params::limit(p.limit.as_deref(), 100, 10_000)?,
        };
        let result = state.trace_queries.logs(&q).await?;
        rows_body(&[], "logs", &result, state.offload.render_limit())
    })
    .await
}

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SqlParams {
    format: Option<String>,
}

/// `POST /api/v2/sql?format=json|ndjson|csv|arrow`
/// A body that does not say it is JSON is refused (415): besides telling a
/// client what to send, it keeps a web page from posting SQL with a plain
/// form, which a browser sends without asking the server first (CORS).
fn not_json(headers: &HeaderMap) -> Option<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return None;
    }
    let message = format!(
        "the body must be JSON {{\"sql\": \"...\"}} sent as Content-Type: application/json (got {ct:?})"
    );
    Some(
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(json!({"error": message, "error_type": "unsupported_media_type"})),
        )
            .into_response(),
    )
}

pub(super) async fn sql(
    State(state): State<ApiState>,
    Params(p): Params<SqlParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = not_json(&headers) {
        return refused;
    }
    respond(state.offload.clone(), &headers, |ctx| async move {
        // The text table is the command line's.
        let format = match p.format.as_deref().map(str::parse) {
            None => Format::Json,
            Some(Ok(f)) if f != Format::Table => f,
            Some(_) => {
                let name = p.format.unwrap_or_default();
                return Err(invalid(
                    "format",
                    format!("{name:?}: use json, ndjson, csv or arrow"),
                ));
            }
        };
        let body: SqlBody = serde_json::from_slice(&body).map_err(|e| {
            QueryError::Invalid(format!(
                "request body must be JSON {{\"sql\": \"...\"}}: {e}"
            ))
        })?;
        let result = state.sql.handle(&SqlQuery { ctx, sql: body.sql }).await?;
        let bytes = format
            .render_within(&result, state.offload.render_limit())
            .map_err(render_error)?;
        let content_type = [(header::CONTENT_TYPE, format.content_type())];
        let mut resp = (StatusCode::OK, content_type, bytes).into_response();
        if result.truncated {
            resp.headers_mut()
                .insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
        }
        Ok(resp)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_typed_and_the_last_value_wins() {
        let p: SearchTracesParams =
            decode_params("service=a&limit=5&service=b%20c&start=1").unwrap();
        assert_eq!(p.service.as_deref(), Some("b c"));
        assert_eq!(p.limit.as_deref(), Some("5"));
        assert_eq!(p.end, None);
        let e = decode_params::<WindowParams>("start=1&strat=2").unwrap_err();
        assert!(e.to_string().contains("unknown field `strat`"), "{e}");
        assert!(e.to_string().contains("expected `start` or `end`"), "{e}");
        let many = vec!["start=1"; 40].join("&");
        let e = decode_params::<WindowParams>(&many).unwrap_err();
        assert!(e.to_string().contains("more than 32 parameters"), "{e}");
        let p: WindowParams = decode_params("").unwrap();
        assert_eq!((p.start, p.end), (None, None));
    }
}
