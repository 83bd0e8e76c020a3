//! `SqlQuery`: ad-hoc SQL over the caller's tenant's tables.

use std::sync::Arc;

use crate::ports::{QueryError, QueryLimits, QueryResult};
use async_trait::async_trait;
use tf_domain::TenantContext;
use tf_domain::TenantId;

/// Ad-hoc SQL from API callers: read-only statements over one tenant's
/// tables (the [`Table`]s, by name), in the engine's dialect. The
/// application passes the text through; it writes none itself.
#[async_trait]
pub trait ReadModel: Send + Sync {
    async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError>;
}

#[derive(Debug, Clone)]
pub struct SqlQuery {
    pub ctx: TenantContext,
    pub sql: String,
}

pub struct SqlHandler {
    read_model: Arc<dyn ReadModel>,
    limits: QueryLimits,
}

impl SqlHandler {
    pub fn new(read_model: Arc<dyn ReadModel>, limits: QueryLimits) -> Self {
        Self { read_model, limits }
    }

    pub async fn handle(&self, q: &SqlQuery) -> Result<QueryResult, QueryError> {
        if q.sql.trim().is_empty() {
            return Err(QueryError::Invalid("sql must not be empty".into()));
        }
        self.read_model
            .query(q.ctx.tenant(), &q.sql, &self.limits)
            .await
    }
}
