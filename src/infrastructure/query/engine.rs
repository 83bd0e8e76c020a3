//! `DataFusionEngine`: implements the [`ReadModel`] port with DataFusion.
//!
//! Each query gets a fresh `SessionContext` holding only the caller's
//! tenant's tables, so no SQL can name another tenant's data. DDL, DML and
//! other statements are refused.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use object_store::ObjectStore;

use super::table::TenantTable;
use crate::application::Table;
use crate::application::ports::{QueryError, QueryResult, ReadModel, SnapshotSource};
use crate::domain::TenantId;
use crate::infrastructure::storage::table_schema;

/// The URL under which the storage object store is registered with DataFusion.
pub const STORE_URL: &str = "tf://store/";

pub struct DataFusionEngine {
    source: Arc<dyn SnapshotSource>,
    runtime: Arc<RuntimeEnv>,
    store_url: ObjectStoreUrl,
    config: SessionConfig,
}

impl DataFusionEngine {
    pub fn new(
        source: Arc<dyn SnapshotSource>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, QueryError> {
        let store_url =
            ObjectStoreUrl::parse(STORE_URL).map_err(|e| QueryError::Internal(e.to_string()))?;
        let runtime = RuntimeEnvBuilder::new()
            .build_arc()
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        runtime.register_object_store(store_url.as_ref(), store);
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true);
        Ok(Self {
            source,
            runtime,
            store_url,
            config,
        })
    }

    /// A session with exactly the tenant's tables, each a consistent snapshot.
    pub fn session(&self, tenant: &TenantId) -> Result<SessionContext, QueryError> {
        let ctx =
            SessionContext::new_with_config_rt(self.config.clone(), Arc::clone(&self.runtime));
        for table in Table::ALL {
            let provider = TenantTable::new(
                table_schema(table),
                self.source.snapshot(tenant, table),
                self.store_url.clone(),
            );
            ctx.register_table(table.name(), Arc::new(provider))
                .map_err(|e| QueryError::Internal(e.to_string()))?;
        }
        Ok(ctx)
    }
}

/// Sorts DataFusion's errors into the caller's fault or ours.
pub fn classify(e: DataFusionError) -> QueryError {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => {
            let msg = e.to_string();
            if msg.contains("not supported")
                && (msg.contains("DDL") || msg.contains("DML") || msg.contains("Statement"))
            {
                QueryError::Forbidden(msg)
            } else {
                QueryError::Invalid(msg)
            }
        }
        DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => {
            QueryError::Invalid(e.to_string())
        }
        _ => QueryError::Internal(e.to_string()),
    }
}

#[async_trait]
impl ReadModel for DataFusionEngine {
    async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult, QueryError> {
        let ctx = self.session(tenant)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await.map_err(classify)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(classify)?;
        Ok(QueryResult { schema, batches })
    }
}
