//! `DataFusionEngine`: implements the [`ReadModel`] port with DataFusion.
//!
//! Each query gets a fresh `SessionContext` holding only the caller's
//! tenant's tables, so no SQL can name another tenant's data. DDL, DML,
//! other statements, table functions that could read files, and paths or
//! URLs in `FROM` are refused, and so are statements beyond the size limits
//! (`guard`). Each query has its own memory pool, a timeout (covering
//! planning) and a row cap, and runs on the query runtime (`executor`), never
//! on the caller's. The pool counts what DataFusion's operators hold, the
//! results of the functions that amplify their inputs (`bounded`) and the
//! answer's rows as they are collected.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::ObjectStore;

use super::bounded;
pub use super::executor::ExecutorConfig;
use super::executor::QueryExecutor;
use super::guard::{SqlLimits, guard};
use super::table::TenantTable;
use super::trace_index::TraceFilters;
use tf_application::ports::{QueryError, QueryLimits, QueryResult, SnapshotSource, TableSnapshot};
use tf_application::queries::ReadModel;
use tf_domain::Table;
use tf_domain::TenantId;
use tf_domain::{Limit, LimitRules};
use tf_schema::table_schema;

/// The URL under which the storage object store is registered with DataFusion.
pub const STORE_URL: &str = "tf://store/";

/// Memory for cached trace-id filters (about 1.2 bytes per distinct trace
/// id: 256 MiB covers some 200 million traces).
const TRACE_FILTER_CACHE_BYTES: u64 = 256 << 20;

pub struct DataFusionEngine {
    sessions: Arc<Sessions>,
    executor: Arc<QueryExecutor>,
    /// Each tenant's `query_memory_mb` caps the memory of its queries.
    tenant_limits: Arc<LimitRules>,
}

/// Builds per-query sessions and runs queries in them.
struct Sessions {
    source: Arc<dyn SnapshotSource>,
    trace_filters: Arc<TraceFilters>,
    runtime: Arc<RuntimeEnv>,
    store_url: ObjectStoreUrl,
    config: SessionConfig,
    sql_limits: SqlLimits,
}

impl DataFusionEngine {
    pub fn new(
        source: Arc<dyn SnapshotSource>,
        store: Arc<dyn ObjectStore>,
        sql_limits: SqlLimits,
        executor: ExecutorConfig,
    ) -> Result<Self, QueryError> {
        let store_url = ObjectStoreUrl::parse(STORE_URL).map_err(QueryError::internal)?;
        let runtime = RuntimeEnvBuilder::new()
            .build_arc()
            .map_err(QueryError::internal)?;
        let trace_filters = Arc::new(TraceFilters::new(
            Arc::clone(&store),
            TRACE_FILTER_CACHE_BYTES,
        ));
        runtime.register_object_store(store_url.as_ref(), store);
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true);
        let executor = QueryExecutor::new(executor)
            .map_err(|e| QueryError::internal(format!("starting the query runtime: {e}")))?;
        Ok(Self {
            sessions: Arc::new(Sessions {
                source,
                trace_filters,
                runtime,
                store_url,
                config,
                sql_limits,
            }),
            executor: Arc::new(executor),
            tenant_limits: Arc::default(),
        })
    }

    /// Caps each tenant's queries at its `query_memory_mb` (never above the
    /// limits a query is run with).
    pub fn with_tenant_limits(mut self, rules: Arc<LimitRules>) -> Self {
        self.tenant_limits = rules;
        self
    }

    /// The query runtime, for the read side's work around queries.
    pub fn executor(&self) -> Arc<QueryExecutor> {
        Arc::clone(&self.executor)
    }

    /// A session with exactly the tenant's tables (see [`Sessions::session`]).
    pub fn session(
        &self,
        tenant: &TenantId,
        memory_bytes: usize,
    ) -> Result<SessionContext, QueryError> {
        self.sessions.session(tenant, memory_bytes)
    }
}

impl Sessions {
    /// A session with exactly the tenant's tables, each a consistent
    /// snapshot, and a memory pool of its own of `memory_bytes`.
    pub(crate) fn session(
        &self,
        tenant: &TenantId,
        memory_bytes: usize,
    ) -> Result<SessionContext, QueryError> {
        self.session_over(self.snapshots(tenant), memory_bytes)
    }

    /// A snapshot of each of the tenant's tables.
    fn snapshots(&self, tenant: &TenantId) -> Vec<(Table, TableSnapshot)> {
        Table::all()
            .into_iter()
            .map(|table| (table, self.source.snapshot(tenant, table)))
            .collect()
    }

    /// A session with exactly `tables`.
    fn session_over(
        &self,
        tables: Vec<(Table, TableSnapshot)>,
        memory_bytes: usize,
    ) -> Result<SessionContext, QueryError> {
        let mut runtime = RuntimeEnv::clone(&self.runtime);
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(memory_bytes));
        runtime.memory_pool = Arc::clone(&pool);
        let ctx = SessionContext::new_with_config_rt(self.config.clone(), Arc::new(runtime));
        bounded::register(&ctx, &pool).map_err(QueryError::internal)?;
        for (table, snapshot) in tables {
            let provider = TenantTable::new(
                table_schema(table),
                snapshot,
                self.store_url.clone(),
                (table == Table::TRACES).then(|| Arc::clone(&self.trace_filters)),
            );
            ctx.register_table(table.name(), Arc::new(provider))
                .map_err(QueryError::internal)?;
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
        _ => QueryError::internal(e),
    }
}

/// A value bound to a placeholder (`$1`, `$2`, … in order) of a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Utf8(String),
    Int64(i64),
    Float64(f64),
    /// Compared with the `Timestamp(ns, UTC)` columns.
    TimestampNs(i64),
}

fn scalar(p: &SqlParam) -> ScalarValue {
    match p {
        SqlParam::Utf8(s) => ScalarValue::Utf8(Some(s.clone())),
        SqlParam::Int64(v) => ScalarValue::Int64(Some(*v)),
        SqlParam::Float64(v) => ScalarValue::Float64(Some(*v)),
        SqlParam::TimestampNs(v) => ScalarValue::TimestampNanosecond(Some(*v), Some("UTC".into())),
    }
}

impl Sessions {
    /// Runs `sql` over `tables` (the tenant's, possibly narrowed).
    async fn run_over(
        &self,
        tables: Vec<(Table, TableSnapshot)>,
        sql: &str,
        params: &[SqlParam],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let ctx = self.session_over(tables, limits.memory_bytes)?;
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(classify)?;
        guard(&statement, &self.sql_limits)?;
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
        // The answer's rows count against the query's pool as they are
        // collected, beside what the operators still hold.
        let answer = MemoryConsumer::new("query answer").register(&ctx.runtime_env().memory_pool);
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let mut batch = batch.map_err(classify)?;
            let room = limits.max_rows - rows;
            if batch.num_rows() > room {
                batch = batch.slice(0, room);
                truncated = true;
            }
            answer.try_grow(answer_bytes(&batch)).map_err(|e| {
                QueryError::ResourcesExhausted(format!(
                    "the answer's rows take more memory than the query may use \
                     ({} rows collected): {}",
                    rows,
                    e.find_root()
                ))
            })?;
            rows += batch.num_rows();
            batches.push(batch);
            if truncated {
                break;
            }
        }
        Ok(QueryResult {
            schema,
            batches,
            truncated,
        })
    }
}

/// Bytes the rows of `batch` take: a slice counts its own rows, not the
/// buffers it shares with rows outside it.
fn answer_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

impl DataFusionEngine {
    /// Runs one read-only statement over the tenant's tables with `params`
    /// bound to its placeholders, under `limits` (time, memory, rows).
    pub async fn query_with(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: &[SqlParam],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        self.query_narrowed(tenant, sql, params, limits, |_| ())
            .await
            .map(|(result, ())| result)
    }

    /// Like [`Self::query_with`], over snapshots of the tenant's tables that
    /// `narrow` may cut down first — taking out the files it can answer for
    /// from the manifest alone, say. Its own answer comes back beside the
    /// statement's.
    pub(crate) async fn query_narrowed<T: Send + 'static>(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: &[SqlParam],
        limits: &QueryLimits,
        narrow: impl FnOnce(&mut [(Table, TableSnapshot)]) -> T + Send + 'static,
    ) -> Result<(QueryResult, T), QueryError> {
        let sessions = Arc::clone(&self.sessions);
        let (tenant, sql, params, mut run_limits) =
            (tenant.clone(), sql.to_owned(), params.to_vec(), *limits);
        let mut tenant_cap = None;
        if let Some(mb) = self
            .tenant_limits
            .for_tenant(&tenant)
            .bound(Limit::QueryMemoryMb)
        {
            let bytes = usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
            if bytes < run_limits.memory_bytes {
                run_limits.memory_bytes = bytes;
                let key = self.tenant_limits.key_for(&tenant, Limit::QueryMemoryMb);
                tenant_cap = Some(format!("; tenant {tenant} is held to {key} = {mb} MB"));
            }
        }
        self.executor
            .run(limits.timeout, async move {
                sessions.sql_limits.check_text(&sql)?;
                sessions.source.refresh_stale(&tenant).await;
                let mut tables = sessions.snapshots(&tenant);
                let own = narrow(&mut tables);
                let result = sessions
                    .run_over(tables, &sql, &params, &run_limits)
                    .await?;
                Ok((result, own))
            })
            .await
            .map_err(|e| match (e, tenant_cap) {
                (QueryError::ResourcesExhausted(m), Some(cap)) => {
                    QueryError::ResourcesExhausted(m + &cap)
                }
                (e, _) => e,
            })
    }
}

#[async_trait]
impl ReadModel for DataFusionEngine {
    async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        self.query_with(tenant, sql, &[], limits).await
    }
}
