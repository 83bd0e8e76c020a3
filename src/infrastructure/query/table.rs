//! `TenantTable`: one tenant's table as a DataFusion `TableProvider` — a
//! snapshot of its committed Parquet files unioned with its buffered rows.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use crate::application::ports::TableSnapshot;

#[derive(Debug)]
pub struct TenantTable {
    schema: SchemaRef,
    snapshot: TableSnapshot,
    store_url: ObjectStoreUrl,
}

impl TenantTable {
    pub fn new(schema: SchemaRef, snapshot: TableSnapshot, store_url: ObjectStoreUrl) -> Self {
        Self {
            schema,
            snapshot,
            store_url,
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
        if !self.snapshot.files.is_empty() {
            let files: Vec<PartitionedFile> = self
                .snapshot
                .files
                .iter()
                .map(|f| PartitionedFile::new(f.path.clone(), f.size))
                .collect();
            let groups = FileGroup::new(files).split_files(state.config().target_partitions());
            let source = Arc::new(ParquetSource::new(Arc::clone(&self.schema)));
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
