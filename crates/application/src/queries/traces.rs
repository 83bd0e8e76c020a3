//! Trace and log read use cases: a trace by id, trace search, services and
//! their operations, log search.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::Array;
use serde::Serialize;

use super::params::TimeWindow;
use super::rows;
use crate::ports::{QueryError, QueryLimits, QueryResult, ReadModel, SqlParam};
use tf_domain::TenantContext;

#[derive(Debug, Clone)]
pub struct GetTraceQuery {
    pub ctx: TenantContext,
    /// Lowercase hex.
    pub trace_id: String,
    /// Narrows the files searched; all time when absent.
    pub window: Option<TimeWindow>,
}

#[derive(Debug, Clone)]
pub struct SearchTracesQuery {
    pub ctx: TenantContext,
    pub window: TimeWindow,
    pub service: Option<String>,
    pub span_name: Option<String>,
    pub min_duration_ns: Option<i64>,
    pub status: Option<SpanStatus>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    Unset,
    Ok,
    Error,
}

impl SpanStatus {
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unset" => Ok(Self::Unset),
            "ok" => Ok(Self::Ok),
            "error" => Ok(Self::Error),
            _ => Err(super::params::invalid(
                "status",
                format!("{s:?}: use error, ok or unset"),
            )),
        }
    }

    fn stored(self) -> &'static str {
        match self {
            Self::Unset => "Unset",
            Self::Ok => "Ok",
            Self::Error => "Error",
        }
    }
}

/// One trace found by a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// Service and name of the root span (the earliest span if the root is
    /// not in the window).
    pub root_service: String,
    pub root_span: String,
    /// Unix nanoseconds of the earliest span start.
    pub start_time_unix_nano: i64,
    /// From the earliest start to the latest end, in milliseconds.
    pub duration_ms: f64,
    pub span_count: u64,
    pub error: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceInfo {
    pub name: String,
    /// `traces`, `logs`, `metrics`: which signals the service sent.
    pub signals: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    pub name: String,
    pub span_kind: String,
    pub spans: u64,
    pub errors: u64,
    pub avg_duration_ms: f64,
    pub max_duration_ms: f64,
}

#[derive(Debug, Clone)]
pub struct ServicesQuery {
    pub ctx: TenantContext,
    pub window: TimeWindow,
}

#[derive(Debug, Clone)]
pub struct OperationsQuery {
    pub ctx: TenantContext,
    pub window: TimeWindow,
    pub service: String,
}

#[derive(Debug, Clone)]
pub struct SearchLogsQuery {
    pub ctx: TenantContext,
    pub window: TimeWindow,
    /// Case-insensitive substring of the body.
    pub text: Option<String>,
    pub service: Option<String>,
    pub min_severity: Option<i32>,
    pub trace_id: Option<String>,
    pub limit: usize,
}

/// Handlers of the trace, service and log queries.
pub struct TraceQueries {
    read_model: Arc<dyn ReadModel>,
    limits: QueryLimits,
}

/// Builds `AND …` clauses with `$n` placeholders.
struct Where {
    sql: String,
    params: Vec<SqlParam>,
}

impl Where {
    fn window(w: &TimeWindow) -> Self {
        Self {
            sql: "timestamp >= $1 AND timestamp < $2".into(),
            params: vec![
                SqlParam::TimestampNs(w.start_ns),
                SqlParam::TimestampNs(w.end_ns),
            ],
        }
    }

    fn and(&mut self, clause: &str, param: SqlParam) {
        self.params.push(param);
        let n = self.params.len();
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &format!("${n}")));
    }
}

impl TraceQueries {
    pub fn new(read_model: Arc<dyn ReadModel>, limits: QueryLimits) -> Self {
        Self { read_model, limits }
    }

    async fn run(
        &self,
        ctx: &TenantContext,
        sql: &str,
        params: &[SqlParam],
        max_rows: usize,
    ) -> Result<QueryResult, QueryError> {
        let limits = QueryLimits {
            max_rows,
            ..self.limits
        };
        self.read_model
            .query(ctx.tenant(), sql, params, &limits)
            .await
    }

    /// Every span of the trace, oldest first; `NotFound` if none.
    pub async fn trace(&self, q: &GetTraceQuery) -> Result<QueryResult, QueryError> {
        let mut params = vec![SqlParam::Utf8(q.trace_id.clone())];
        let mut sql = "SELECT * FROM otel_traces WHERE trace_id = $1".to_owned();
        if let Some(w) = &q.window {
            sql.push_str(" AND timestamp >= $2 AND timestamp < $3");
            params.push(SqlParam::TimestampNs(w.start_ns));
            params.push(SqlParam::TimestampNs(w.end_ns));
        }
        sql.push_str(" ORDER BY timestamp, span_id");
        let result = self
            .run(&q.ctx, &sql, &params, self.limits.max_rows)
            .await?;
        if result.num_rows() == 0 {
            return Err(QueryError::NotFound(format!(
                "no spans of trace {} stored",
                q.trace_id
            )));
        }
        Ok(result)
    }

    /// Traces with a span matching every filter, newest first.
    pub async fn search(&self, q: &SearchTracesQuery) -> Result<Vec<TraceSummary>, QueryError> {
        let mut w = Where::window(&q.window);
        if let Some(s) = &q.service {
            w.and("service_name = ?", SqlParam::Utf8(s.clone()));
        }
        if let Some(s) = &q.span_name {
            w.and("span_name = ?", SqlParam::Utf8(s.clone()));
        }
        if let Some(d) = q.min_duration_ns {
            w.and("duration_ns >= ?", SqlParam::Int64(d));
        }
        if let Some(s) = q.status {
            w.and("status_code = ?", SqlParam::Utf8(s.stored().into()));
        }
        let sql = format!(
            "WITH hits AS (\
               SELECT trace_id, max(timestamp) AS last_seen FROM otel_traces WHERE {filter} \
               GROUP BY trace_id ORDER BY last_seen DESC LIMIT {limit}) \
             SELECT t.trace_id AS trace_id, \
               first_value(t.service_name ORDER BY t.parent_span_id <> '', t.timestamp) AS root_service, \
               first_value(t.span_name ORDER BY t.parent_span_id <> '', t.timestamp) AS root_span, \
               min(CAST(t.timestamp AS BIGINT)) AS start_ns, \
               max(CAST(t.timestamp AS BIGINT) + t.duration_ns) AS end_ns, \
               CAST(count(*) AS BIGINT) AS span_count, \
               bool_or(t.status_code = 'Error') AS error, \
               array_to_string(array_sort(array_agg(DISTINCT t.service_name)), '\u{1f}') AS services \
             FROM otel_traces t JOIN hits h ON t.trace_id = h.trace_id \
             WHERE t.timestamp >= $1 AND t.timestamp < $2 \
             GROUP BY t.trace_id ORDER BY start_ns DESC, trace_id",
            filter = w.sql,
            limit = q.limit,
        );
        let result = self.run(&q.ctx, &sql, &w.params, q.limit).await?;
        let mut out = Vec::new();
        for b in &result.batches {
            let id = rows::strings(b, "trace_id")?;
            let svc = rows::strings(b, "root_service")?;
            let span = rows::strings(b, "root_span")?;
            let start = rows::int64s(b, "start_ns")?;
            let end = rows::int64s(b, "end_ns")?;
            let count = rows::int64s(b, "span_count")?;
            let error = rows::bools(b, "error")?;
            let services = rows::strings(b, "services")?;
            for r in 0..b.num_rows() {
                out.push(TraceSummary {
                    trace_id: id.value(r).to_owned(),
                    root_service: rows::opt_str(&svc, r).unwrap_or("").to_owned(),
                    root_span: rows::opt_str(&span, r).unwrap_or("").to_owned(),
                    start_time_unix_nano: start.value(r),
                    duration_ms: (end.value(r) - start.value(r)) as f64 / 1e6,
                    span_count: count.value(r).max(0) as u64,
                    error: error.is_valid(r) && error.value(r),
                    services: rows::opt_str(&services, r)
                        .filter(|s| !s.is_empty())
                        .map(|s| s.split('\u{1f}').map(str::to_owned).collect())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Services that sent anything in the window, with the signals they sent.
    pub async fn services(&self, q: &ServicesQuery) -> Result<Vec<ServiceInfo>, QueryError> {
        let w = Where::window(&q.window);
        let parts: Vec<String> = [
            ("traces", "otel_traces"),
            ("logs", "otel_logs"),
            ("metrics", "otel_metrics_gauge"),
            ("metrics", "otel_metrics_sum"),
            ("metrics", "otel_metrics_histogram"),
            ("metrics", "otel_metrics_exp_histogram"),
            ("metrics", "otel_metrics_summary"),
        ]
        .iter()
        .map(|(signal, table)| {
            format!(
                "SELECT DISTINCT service_name, '{signal}' AS signal FROM {table} WHERE {}",
                w.sql
            )
        })
        .collect();
        let sql = parts.join(" UNION ALL ");
        let result = self.run(&q.ctx, &sql, &w.params, usize::MAX).await?;
        let mut by_name: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for b in &result.batches {
            let name = rows::strings(b, "service_name")?;
            let signal = rows::strings(b, "signal")?;
            for r in 0..b.num_rows() {
                let s = match signal.value(r) {
                    "traces" => "traces",
                    "logs" => "logs",
                    _ => "metrics",
                };
                let e = by_name.entry(name.value(r).to_owned()).or_default();
                if !e.contains(&s) {
                    e.push(s);
                }
            }
        }
        Ok(by_name
            .into_iter()
            .map(|(name, mut signals)| {
                signals.sort_unstable();
                ServiceInfo { name, signals }
            })
            .collect())
    }

    /// The span names of a service, with counts and durations.
    pub async fn operations(&self, q: &OperationsQuery) -> Result<Vec<Operation>, QueryError> {
        let mut w = Where::window(&q.window);
        w.and("service_name = ?", SqlParam::Utf8(q.service.clone()));
        let sql = format!(
            "SELECT span_name, span_kind, CAST(count(*) AS BIGINT) AS spans, \
               CAST(sum(CASE WHEN status_code = 'Error' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
               avg(CAST(duration_ns AS DOUBLE)) / 1e6 AS avg_ms, \
               CAST(max(duration_ns) AS DOUBLE) / 1e6 AS max_ms \
             FROM otel_traces WHERE {} GROUP BY span_name, span_kind \
             ORDER BY span_name, span_kind",
            w.sql
        );
        let result = self.run(&q.ctx, &sql, &w.params, usize::MAX).await?;
        let mut out = Vec::new();
        for b in &result.batches {
            let name = rows::strings(b, "span_name")?;
            let kind = rows::strings(b, "span_kind")?;
            let spans = rows::int64s(b, "spans")?;
            let errors = rows::int64s(b, "errors")?;
            let avg = rows::float64s(b, "avg_ms")?;
            let max = rows::float64s(b, "max_ms")?;
            for r in 0..b.num_rows() {
                out.push(Operation {
                    name: name.value(r).to_owned(),
                    span_kind: kind.value(r).to_owned(),
                    spans: spans.value(r).max(0) as u64,
                    errors: errors.value(r).max(0) as u64,
                    avg_duration_ms: avg.value(r),
                    max_duration_ms: max.value(r),
                });
            }
        }
        Ok(out)
    }

    /// Log records matching every filter, newest first.
    pub async fn logs(&self, q: &SearchLogsQuery) -> Result<QueryResult, QueryError> {
        let mut w = Where::window(&q.window);
        if let Some(s) = &q.service {
            w.and("service_name = ?", SqlParam::Utf8(s.clone()));
        }
        if let Some(n) = q.min_severity {
            w.and("severity_number >= ?", SqlParam::Int64(i64::from(n)));
        }
        if let Some(t) = &q.trace_id {
            w.and("trace_id = ?", SqlParam::Utf8(t.clone()));
        }
        if let Some(text) = &q.text {
            w.and(
                "strpos(lower(body), ?) > 0",
                SqlParam::Utf8(text.to_lowercase()),
            );
        }
        let sql = format!(
            "SELECT * FROM otel_logs WHERE {} ORDER BY timestamp DESC LIMIT {}",
            w.sql, q.limit
        );
        self.run(&q.ctx, &sql, &w.params, q.limit).await
    }
}
