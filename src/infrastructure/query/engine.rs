//! `DataFusionEngine`: implements the [`ReadModel`] port with DataFusion.
//!
//! Each query gets a fresh `SessionContext` holding only the caller's
//! tenant's tables, so no SQL can name another tenant's data. DDL, DML,
//! other statements, table functions that could read files, and paths or
//! URLs in `FROM` are refused. Each query has its own memory pool, a
//! timeout and a row cap.

use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, TableFactor, Visit, Visitor};
use futures::StreamExt;
use object_store::ObjectStore;

use super::table::TenantTable;
use crate::application::Table;
use crate::application::ports::{
    QueryError, QueryLimits, QueryResult, ReadModel, SnapshotSource, SqlParam,
};
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

    /// A session with exactly the tenant's tables, each a consistent
    /// snapshot, and a memory pool of its own of `memory_bytes`.
    pub fn session(
        &self,
        tenant: &TenantId,
        memory_bytes: usize,
    ) -> Result<SessionContext, QueryError> {
        let mut runtime = RuntimeEnv::clone(&self.runtime);
        runtime.memory_pool = Arc::new(GreedyMemoryPool::new(memory_bytes));
        let ctx = SessionContext::new_with_config_rt(self.config.clone(), Arc::new(runtime));
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
        DataFusionError::ResourcesExhausted(msg) => QueryError::ResourcesExhausted(msg.clone()),
        DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => {
            QueryError::Invalid(e.to_string())
        }
        _ => QueryError::Internal(e.to_string()),
    }
}

/// Table functions API callers may use: they generate rows, read nothing.
const ALLOWED_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// Refuses what could read anything but the tenant's tables: table functions
/// other than generators, and file paths or URLs in `FROM` (DataFusion would
/// not resolve them in our sessions either; this says so with a 403).
struct ReadGuard(Option<String>);

impl ReadGuard {
    fn check_name(&mut self, name: &ObjectName, is_function: bool) {
        let text = name.to_string();
        let last = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| (i.value.as_str(), i.quote_style));
        let lower = text.to_ascii_lowercase();
        if is_function {
            let fname = last
                .map(|(v, _)| v.to_ascii_lowercase())
                .unwrap_or_default();
            if name.0.len() != 1 || !ALLOWED_TABLE_FUNCTIONS.contains(&fname.as_str()) {
                self.0 = Some(format!(
                    "table function {text} is not allowed: queries may read only the tenant's \
                     tables (allowed table functions: {})",
                    ALLOWED_TABLE_FUNCTIONS.join(", ")
                ));
            }
        } else if last.is_some_and(|(v, q)| {
            q == Some('\'') || v.contains('/') || v.contains("://") || v.contains('\\')
        }) || lower.contains("://")
        {
            self.0 = Some(format!(
                "reading files or URLs ({text}) is not allowed: queries may read only the \
                 tenant's tables"
            ));
        }
    }
}

impl Visitor for ReadGuard {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, args, .. } => self.check_name(name, args.is_some()),
            TableFactor::Function { name, .. } => self.check_name(name, true),
            TableFactor::TableFunction { expr, .. } => {
                self.0 = Some(format!("table function TABLE({expr}) is not allowed"));
            }
            TableFactor::JsonTable { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::XmlTable { .. } => {
                self.0 = Some("JSON_TABLE/OPENJSON/XMLTABLE are not allowed".into());
            }
            _ => {}
        }
        if self.0.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// `Forbidden` for statements that are not a read of the tenant's tables.
fn guard(statement: &DfStatement) -> Result<(), QueryError> {
    match statement {
        DfStatement::Statement(s) => {
            let mut g = ReadGuard(None);
            let _ = s.visit(&mut g);
            match g.0 {
                Some(msg) => Err(QueryError::Forbidden(msg)),
                None => Ok(()),
            }
        }
        DfStatement::Explain(e) => guard(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(QueryError::Forbidden(
            "CREATE EXTERNAL TABLE is not allowed: DDL is not supported".into(),
        )),
        DfStatement::CopyTo(_) => Err(QueryError::Forbidden(
            "COPY is not allowed: DML is not supported".into(),
        )),
        DfStatement::Reset(_) => Err(QueryError::Forbidden(
            "RESET is not allowed: Statement is not supported".into(),
        )),
    }
}

fn scalar(p: &SqlParam) -> ScalarValue {
    match p {
        SqlParam::Utf8(s) => ScalarValue::Utf8(Some(s.clone())),
        SqlParam::Int64(v) => ScalarValue::Int64(Some(*v)),
        SqlParam::Float64(v) => ScalarValue::Float64(Some(*v)),
        SqlParam::TimestampNs(v) => ScalarValue::TimestampNanosecond(Some(*v), Some("UTC".into())),
    }
}

impl DataFusionEngine {
    async fn run(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: &[SqlParam],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let ctx = self.session(tenant, limits.memory_bytes)?;
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(classify)?;
        guard(&statement)?;
        let plan = state.statement_to_plan(statement).await.map_err(classify)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(classify)?;
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(params.iter().map(scalar).collect::<Vec<_>>())
                .map_err(classify)?
        };
        let df = ctx.execute_logical_plan(plan).await.map_err(classify)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await.map_err(classify)?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(classify)?;
            let room = limits.max_rows - rows;
            if batch.num_rows() > room {
                batches.push(batch.slice(0, room));
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok(QueryResult {
            schema,
            batches,
            truncated,
        })
    }
}

#[async_trait]
impl ReadModel for DataFusionEngine {
    async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: &[SqlParam],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        match tokio::time::timeout(limits.timeout, self.run(tenant, sql, params, limits)).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Timeout(limits.timeout)),
        }
    }
}
