//! `TenantTable`: one tenant's table as a DataFusion `TableProvider` — a
//! snapshot of its committed Parquet files unioned with its buffered rows.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use crate::trace_index::{TraceFilters, pinned_trace_id};
use tf_application::ports::TableSnapshot;
use tf_domain::Table;

fn ts_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _) => Some(*v),
        Expr::Cast(c) => ts_literal(&c.expr),
        _ => None,
    }
}

fn is_ts_column(e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == Table::TIMESTAMP_COLUMN)
}

/// Inclusive bounds on `timestamp` implied by the pushed-down filters
/// (comparisons with nanosecond literals, `BETWEEN`); anything else is ignored,
/// which only means less pruning.
pub(crate) fn time_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let mut lows = Vec::new();
    let mut highs = Vec::new();
    for f in filters {
        match f {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, v) = if is_ts_column(left) {
                    match ts_literal(right) {
                        Some(v) => (*op, v),
                        None => continue,
                    }
                } else if is_ts_column(right) {
                    match (ts_literal(left), op.swap()) {
                        (Some(v), Some(op)) => (op, v),
                        _ => continue,
                    }
                } else {
                    continue;
                };
                match op {
                    Operator::Gt => lows.push(v.saturating_add(1)),
                    Operator::GtEq => lows.push(v),
                    Operator::Lt => highs.push(v.saturating_sub(1)),
                    Operator::LtEq => highs.push(v),
                    Operator::Eq => {
                        lows.push(v);
                        highs.push(v);
                    }
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_ts_column(expr) => {
                if let Some(v) = ts_literal(low) {
                    lows.push(v);
                }
                if let Some(v) = ts_literal(high) {
                    highs.push(v);
                }
            }
            _ => {}
        }
    }
    (lows.into_iter().max(), highs.into_iter().min())
}

#[derive(Debug)]
pub(crate) struct TenantTable {
    schema: SchemaRef,
    snapshot: TableSnapshot,
    store_url: ObjectStoreUrl,
    /// For the traces table: prunes files by trace id.
    trace_filters: Option<Arc<TraceFilters>>,
}

impl TenantTable {
    pub(crate) fn new(
        schema: SchemaRef,
        snapshot: TableSnapshot,
        store_url: ObjectStoreUrl,
        trace_filters: Option<Arc<TraceFilters>>,
    ) -> Self {
        Self {
            schema,
            snapshot,
            store_url,
            trace_filters,
        }
    }
}

#[async_trait]
impl TableProvider for TenantTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used for pruning; DataFusion still applies every filter exactly.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        // Prune by the manifest's per-file time range, then (a trace
        // lookup) by each file's trace-id filter, before opening anything.
        let (lo, hi) = time_bounds(filters);
        let mut candidates: Vec<_> = self
            .snapshot
            .files
            .iter()
            .filter(|f| !(lo.is_some_and(|l| f.max_ts < l) || hi.is_some_and(|h| f.min_ts > h)))
            .collect();
        if let (Some(index), Some(id)) = (&self.trace_filters, pinned_trace_id(filters)) {
            candidates = index.may_hold(candidates, &id).await;
        }
        let files: Vec<PartitionedFile> = candidates
            .into_iter()
            .map(|f| PartitionedFile::new(f.path.clone(), f.size))
            .collect();
        if !files.is_empty() {
            let groups = FileGroup::new(files).split_files(state.config().target_partitions());
            // The session's Parquet options (filter pushdown, bloom filters
            // on read) and its footer cache: repeated lookups skip re-reading
            // file metadata. Filters reach the source through DataFusion's
            // physical filter pushdown (row-group statistics, bloom filters).
            let store = state.runtime_env().object_store(&self.store_url)?;
            let metadata_cache = state.runtime_env().cache_manager.get_file_metadata_cache();
            let source = Arc::new(
                ParquetSource::new(Arc::clone(&self.schema))
                    .with_table_parquet_options(state.table_options().parquet.clone())
                    .with_parquet_file_reader_factory(Arc::new(
                        CachedParquetFileReaderFactory::new(store, metadata_cache),
                    )),
            );
            let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            plans.push(DataSourceExec::from_data_source(config));
        }
        if !self.snapshot.batches.is_empty() || plans.is_empty() {
            let mem = MemTable::try_new(
                Arc::clone(&self.schema),
                vec![self.snapshot.batches.clone()],
            )?;
            plans.push(mem.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(plans)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_bounds_from_filters() {
        assert_eq!(time_bounds(&[]), (None, None));
        assert_eq!(
            time_bounds(&[col("timestamp").gt_eq(ts(10)), col("timestamp").lt(ts(20))]),
            (Some(10), Some(19))
        );
        assert_eq!(
            time_bounds(&[ts(10).lt(col("timestamp"))]),
            (Some(11), None)
        );
        assert_eq!(
            time_bounds(&[col("timestamp").between(ts(5), ts(7))]),
            (Some(5), Some(7))
        );
        assert_eq!(
            time_bounds(&[col("timestamp").eq(ts(3))]),
            (Some(3), Some(3))
        );
        assert_eq!(
            time_bounds(&[col("timestamp").gt(ts(1)), col("timestamp").gt(ts(9))]),
            (Some(10), None)
        );
        // Other columns and shapes are ignored.
        assert_eq!(
            time_bounds(&[col("observed_timestamp").gt(ts(1))]),
            (None, None)
        );
        assert_eq!(
            time_bounds(&[col("timestamp").gt(ts(1)).or(col("timestamp").lt(ts(0)))]),
            (None, None)
        );
    }
}
