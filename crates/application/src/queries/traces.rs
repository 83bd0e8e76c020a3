//! Trace and log read use cases: a trace by id, trace search, services and
//! their operations, log search.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::matcher::LabelMatcher;
use super::params::TimeWindow;
use crate::ports::{QueryError, QueryLimits, QueryResult};
use async_trait::async_trait;
use tf_domain::telemetry::StatusCode;
use tf_domain::{Signal, TenantContext};

/// The trace, service and log questions of the read side, answered by the
/// query engine over the query's tenant's tables. Where an answer is rows,
/// `limits.max_rows` caps them.
#[async_trait]
pub trait TraceReadModel: Send + Sync {
    /// Every span of the trace (all columns of the traces table), oldest first.
    async fn trace_spans(
        &self,
        q: &GetTraceQuery,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError>;

    /// Traces with a span matching every filter, newest first, at most `q.limit`.
    async fn search_traces(
        &self,
        q: &SearchTracesQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<TraceSummary>, QueryError>;

    /// `(service, signal)` for every service that sent a signal (`traces`,
    /// `logs` or `metrics`) in the window, in no particular order.
    async fn service_signals(
        &self,
        q: &ServicesQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<(String, Signal)>, QueryError>;

    /// The span names and kinds of a service, by name then kind.
    async fn operations(
        &self,
        q: &OperationsQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<Operation>, QueryError>;

    /// Log records (all columns) matching every filter, newest first.
    async fn search_logs(
        &self,
        q: &SearchLogsQuery,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError>;
}

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
    pub status: Option<StatusCode>,
    /// A span matches every one (span attribute, else resource attribute).
    pub filters: Vec<LabelMatcher>,
    pub limit: usize,
}

/// The `status` parameter of a trace search: a status code in any case.
pub fn parse_status(s: &str) -> Result<StatusCode, QueryError> {
    StatusCode::parse_any_case(s)
        .ok_or_else(|| super::params::invalid("status", format!("{s:?}: use error, ok or unset")))
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
    /// A record matches every one (log attribute, else resource attribute).
    pub filters: Vec<LabelMatcher>,
    pub limit: usize,
}

/// Handlers of the trace, service and log queries.
pub struct TraceQueries {
    read_model: Arc<dyn TraceReadModel>,
    limits: QueryLimits,
}

impl TraceQueries {
    pub fn new(read_model: Arc<dyn TraceReadModel>, limits: QueryLimits) -> Self {
        Self { read_model, limits }
    }

    fn limits(&self, max_rows: usize) -> QueryLimits {
        QueryLimits {
            max_rows,
            ..self.limits
        }
    }

    /// Every span of the trace, oldest first; `NotFound` if none.
    pub async fn trace(&self, q: &GetTraceQuery) -> Result<QueryResult, QueryError> {
        let result = self.read_model.trace_spans(q, &self.limits).await?;
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
        self.read_model
            .search_traces(q, &self.limits(q.limit))
            .await
    }

    /// Services that sent anything in the window, with the signals they sent.
    pub async fn services(&self, q: &ServicesQuery) -> Result<Vec<ServiceInfo>, QueryError> {
        let pairs = self
            .read_model
            .service_signals(q, &self.limits(usize::MAX))
            .await?;
        let mut by_name: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for (name, signal) in pairs {
            let e = by_name.entry(name).or_default();
            if !e.contains(&signal.name()) {
                e.push(signal.name());
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
        self.read_model
            .operations(q, &self.limits(usize::MAX))
            .await
    }

    /// Log records matching every filter, newest first.
    pub async fn logs(&self, q: &SearchLogsQuery) -> Result<QueryResult, QueryError> {
        self.read_model.search_logs(q, &self.limits(q.limit)).await
    }
}
