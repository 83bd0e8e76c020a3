//! The HTTP server on the OTLP/HTTP port: OTLP routes, the query API under
//! `/api/v2`, health and metrics.

pub mod admin;
pub mod http;
pub mod keys;
pub mod prometheus;
pub mod query;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use http::{metrics_router, router};
pub use query::TRUNCATED_HEADER;

use crate::application::access::KeyRing;
use crate::application::compaction::Compactor;
use crate::application::limits::TenantLimiter;
use crate::application::ports::QueryLimits;
use crate::application::queries::{MetricQueries, SqlHandler, TraceQueries};
use crate::application::retention::Retention;
use crate::infrastructure::access::AccessControl;
use crate::infrastructure::otlp::http::HttpReceiver;

/// Everything the routes need.
#[derive(Clone)]
pub struct ApiState {
    /// The access check of every route.
    pub access: Arc<AccessControl>,
    /// The API keys (managed through `/api/v2/admin/keys`).
    pub keys: Arc<KeyRing>,
    pub otlp: HttpReceiver,
    pub sql: Arc<SqlHandler>,
    pub metric_queries: Arc<MetricQueries>,
    pub trace_queries: Arc<TraceQueries>,
    pub serving: Arc<AtomicBool>,
    /// Sources of `/metrics`; the pipeline also tells readiness.
    pub metrics: prometheus::MetricsSources,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Where the query routes run.
    pub offload: Offload,
    /// The admin routes' compaction pass.
    pub compactor: Arc<Compactor>,
    /// The admin routes' retention pass.
    pub retention: Arc<Retention>,
    /// `storage.gc_grace_secs`: replaced files are deleted after it.
    pub gc_grace: Duration,
    /// The tenants' limits (query slots and memory).
    pub tenant_limits: Arc<TenantLimiter>,
    /// The admin routes' passes: one at a time, each within a timeout.
    pub admin: admin::AdminPasses,
}

/// The query runtime the query routes run on, how long one route may take
/// (its queries each have their own timeout within it), and the limits its
/// queries run under.
#[derive(Clone)]
pub struct Offload {
    pub runtime: Arc<tf_query::executor::QueryExecutor>,
    pub timeout: Duration,
    pub limits: QueryLimits,
}

impl Offload {
    /// Bytes a route's rendered answer may take: the memory limit of the
    /// queries it answers.
    pub fn render_limit(&self) -> usize {
        self.limits.memory_bytes
    }
}
