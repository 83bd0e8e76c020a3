//! The stored rows `telemetryflow replay` sends: per-hour counts and every
//! row of a window.

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use super::{Where, rows};
use crate::engine::DataFusionEngine;
use tf_application::ports::{QueryError, QueryLimits};
use tf_application::queries::params::TimeWindow;
use tf_application::replay::StoredRows;
use tf_domain::{Table, TenantId};

#[async_trait]
impl StoredRows for DataFusionEngine {
    async fn rows_per_hour(
        &self,
        tenant: &TenantId,
        table: Table,
        window: TimeWindow,
        limits: &QueryLimits,
    ) -> Result<Vec<(i64, u64)>, QueryError> {
        let w = Where::window(&window);
        let sql = format!(
            "SELECT CAST(date_trunc('hour', timestamp) AS BIGINT) AS hour, \
             CAST(count(*) AS BIGINT) AS n FROM {table} WHERE {} GROUP BY 1 ORDER BY 1",
            w.sql
        );
        let result = self.query_with(tenant, &sql, &w.params, limits).await?;
        let mut out = Vec::new();
        for b in &result.batches {
            let (hours, counts) = (rows::int64s(b, "hour")?, rows::int64s(b, "n")?);
            for r in 0..b.num_rows() {
                if hours.is_valid(r) {
                    out.push((hours.value(r), counts.value(r).max(0) as u64));
                }
            }
        }
        Ok(out)
    }

    async fn rows(
        &self,
        tenant: &TenantId,
        table: Table,
        window: TimeWindow,
        limits: &QueryLimits,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let w = Where::window(&window);
        let sql = format!("SELECT * FROM {table} WHERE {}", w.sql);
        Ok(self
            .query_with(tenant, &sql, &w.params, limits)
            .await?
            .batches)
    }
}
