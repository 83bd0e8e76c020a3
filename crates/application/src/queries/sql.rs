//! `SqlQuery`: ad-hoc SQL over the caller's tenant's tables.

use std::sync::Arc;

use crate::ports::{QueryError, QueryLimits, QueryResult, ReadModel};
use tf_domain::TenantContext;

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
