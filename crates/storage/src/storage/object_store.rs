//! `ObjectFileStore`: the [`FileStore`] repository over object_store — a local
//! directory by default, S3 (or any S3-compatible server) when configured.
//!
//! Layout: `<root>/<tenant>/<table>/date=YYYY-MM-DD/hour=HH/<uuid v7>.parquet`.
//! A file appears atomically (the local store writes a temporary file and
//! renames it; S3 PUT is atomic) and durably before the put returns (S3 by
//! itself; the local store through [`DurableStore`], which fsyncs).

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use std::collections::HashSet;

use super::compact;
use super::documents::SYSTEM_PREFIX;
use super::durable::{DurableStore, remove_abandoned_uploads, sync_dir};
use super::file_index::{ServiceNames, put_sidecar, trace_fingerprints};
use super::manifest::{Commit, Manifests, TableState};
use super::parquet::{FileLayout, encode};
use tf_application::ports::{
    CommitOutcome, FileMeta, FileStore, GarbageCollected, StoreError, TableCatalog,
};
use tf_domain::Table;
use tf_domain::TenantId;
use tf_schema::trace_filter::{filter_of, sidecar_of, sidecar_path};

/// Where Parquet files live.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageLocation {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        allow_http: bool,
    },
}

impl StorageLocation {
    /// Builds the object store for this location.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        match self {
            StorageLocation::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::new(format!("creating {}", dir.display()), e))?;
                let root = dir
                    .canonicalize()
                    .map_err(|e| StoreError::new(format!("opening {}", dir.display()), e))?;
                // The root and the entries naming it and the directories above
                // it (`create_dir_all` may have made several) made durable
                // once. Directories above the root may be unreadable to us:
                // those are best effort.
                sync_dir(&root)
                    .map_err(|e| StoreError::new(format!("syncing {}", root.display()), e))?;
                for d in root.ancestors().skip(1) {
                    if let Err(e) = sync_dir(d) {
                        tracing::debug!(dir = %d.display(), error = %e, "could not sync a directory above the data directory");
                    }
                }
                let fs = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| StoreError::new(format!("opening {}", dir.display()), e))?;
                Ok(Arc::new(DurableStore::local(fs, root)))
            }
            StorageLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_allow_http(*allow_http)
                    .with_conditional_put(S3ConditionalPut::ETagMatch);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                if let Some(k) = access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(s) = secret_access_key {
                    b = b.with_secret_access_key(s);
                }
                let s3 = b
                    .build()
                    .map_err(|e| StoreError::new(format!("configuring s3://{bucket}"), e))?;
                let prefix = prefix.trim_matches('/');
                if prefix.is_empty() {
                    Ok(Arc::new(s3))
                } else {
                    Ok(Arc::new(PrefixStore::new(s3, prefix)))
                }
            }
        }
    }
}

/// Parquet files in an object store, committed through per-table manifests.
pub struct ObjectFileStore {
    store: Arc<dyn ObjectStore>,
    manifests: Manifests,
    layout: FileLayout,
    /// This node's id: stamped on the files it writes; its watermarks are
    /// the ones replay consults.
    node: String,
    /// Share of one core a merge may use (1.0: unthrottled).
    merge_cpu_share: f64,
    /// Whether ingest is under pressure: merges then take a tenth of
    /// their share.
    ingest_busy: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The directory of a local store, whose staging files the orphan sweep
    /// also deletes.
    local_root: Option<PathBuf>,
}

impl ObjectFileStore {
    /// The store of node `node` (see [`crate::node`]).
    pub fn new(store: Arc<dyn ObjectStore>, node: impl Into<String>) -> Self {
        Self {
            manifests: Manifests::new(Arc::clone(&store)),
            store,
            layout: FileLayout::default(),
            node: node.into(),
            merge_cpu_share: 1.0,
            ingest_busy: Arc::new(|| false),
            local_root: None,
        }
    }

    /// The local directory the store is, if it is one: the orphan sweep
    /// then also deletes the staging files of uploads that a killed process
    /// left there (see [`remove_abandoned_uploads`]), which the store's
    /// listings hide.
    pub fn with_local_root(mut self, root: Option<PathBuf>) -> Self {
        self.local_root = root;
        self
    }

    /// Merges yield further (a tenth of their CPU share) while `busy` says
    /// ingest is under pressure.
    pub fn with_merge_yield(mut self, busy: Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        self.ingest_busy = busy;
        self
    }

    /// Throttles merges to `share` of one core (0 < share ≤ 1): after each
    /// chunk a merge sleeps so that its busy time stays at that share, and
    /// ingest on the same machine keeps the rest.
    pub fn with_merge_cpu_share(mut self, share: f64) -> Self {
        self.merge_cpu_share = share.clamp(0.01, 1.0);
        self
    }

    /// Rows per Parquet row group (the unit statistics and bloom filters
    /// prune); default [`super::parquet::ROW_GROUP_ROWS`].
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.layout.row_group_rows = rows.max(1);
        self
    }

    /// Rows per data page at most (the unit a read decodes); default
    /// [`super::parquet::PAGE_ROWS`].
    pub fn with_page_rows(mut self, rows: usize) -> Self {
        self.layout.page_rows = rows.max(1);
        self
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }
}

/// The directory of a partition: `<tenant>/<table>/date=YYYY-MM-DD/hour=HH`.
pub(crate) fn partition_dir(tenant: &TenantId, table: Table, hour_start_nanos: u64) -> String {
    let secs = (hour_start_nanos / 1_000_000_000) as i64;
    let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
    format!(
        "{tenant}/{}/date={}/hour={}",
        table.name(),
        t.format("%Y-%m-%d"),
        t.format("%H")
    )
}

/// Parses `<tenant>/<table>/date=…/hour=…/<name>.parquet`.
fn parse_path(path: &str) -> Option<(TenantId, Table)> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [tenant, table, date, hour, file]
            if date.starts_with("date=")
                && hour.starts_with("hour=")
                && file.ends_with(".parquet") =>
        {
            Some((TenantId::parse(tenant).ok()?, Table::from_name(table)?))
        }
        _ => None,
    }
}

#[async_trait]
impl FileStore for ObjectFileStore {
    async fn write_file(
        &self,
        tenant: &TenantId,
        table: Table,
        hour_start: u64,
        max_seq: u64,
        batch: RecordBatch,
    ) -> Result<FileMeta, StoreError> {
        let rows = batch.num_rows() as u64;
        let (min_ts, max_ts) = tf_application::batches::time_range(&batch);
        let layout = self.layout;
        let (bytes, filter, services) = tokio::task::spawn_blocking(move || {
            let filter = (table == Table::TRACES).then(|| {
                let mut ids = HashSet::new();
                trace_fingerprints(&batch, &mut ids);
                filter_of(&ids).to_bytes()
            });
            let mut services = ServiceNames::default();
            services.add(&batch);
            encode(table, batch, layout).map(|b| (b, filter, services.take()))
        })
        .await
        .map_err(|e| StoreError::new("encoding task", e))?
        .map_err(|e| StoreError::new(format!("encoding {table}"), e))?;
        let path = format!(
            "{}/{}.parquet",
            partition_dir(tenant, table, hour_start),
            uuid::Uuid::now_v7()
        );
        if let Some(filter) = filter {
            put_sidecar(&self.store, &path, filter).await?;
        }
        let size = bytes.len() as u64;
        self.store
            .put(&Path::from(path.as_str()), PutPayload::from(bytes))
            .await
            .map_err(|e| StoreError::new(format!("writing {path}"), e))?;
        crate::failpoint::crash_point("after_parquet_write");
        Ok(FileMeta {
            path,
            size,
            rows,
            hour_start,
            max_seq,
            min_ts,
            max_ts,
            node: Some(self.node.clone()),
            services,
        })
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        table: Table,
        added: Vec<FileMeta>,
        removed: Vec<String>,
    ) -> Result<CommitOutcome, StoreError> {
        Ok(
            match self.manifests.commit(tenant, table, added, removed).await? {
                Commit::Done(v) => CommitOutcome::Committed(v),
                Commit::Conflict => CommitOutcome::Conflict,
            },
        )
    }

    async fn merge_files(
        &self,
        tenant: &TenantId,
        table: Table,
        hour_start: u64,
        inputs: &[FileMeta],
        target_bytes: u64,
    ) -> Result<Vec<FileMeta>, StoreError> {
        let dir = partition_dir(tenant, table, hour_start);
        let outputs = compact::merge(
            &self.store,
            table,
            inputs,
            &dir,
            target_bytes,
            self.layout,
            compact::Pace {
                cpu_share: self.merge_cpu_share,
                ingest_busy: self.ingest_busy.as_ref(),
            },
        )
        .await?;
        crate::failpoint::crash_point("after_compaction_write");
        Ok(outputs
            .into_iter()
            .map(|o| FileMeta {
                path: o.path,
                size: o.size,
                rows: o.rows,
                hour_start,
                max_seq: 0,
                min_ts: o.min_ts,
                max_ts: o.max_ts,
                node: Some(self.node.clone()),
                services: o.services,
            })
            .collect())
    }

    async fn load_catalog(&self) -> Result<Vec<TableCatalog>, StoreError> {
        Ok(self
            .manifests
            .load_all()
            .await?
            .into_iter()
            .map(|(tenant, table, state)| self.catalog(tenant, table, state))
            .collect())
    }

    async fn refresh(
        &self,
        tenant: &TenantId,
        table: Table,
        since: u64,
    ) -> Result<Option<TableCatalog>, StoreError> {
        Ok(self
            .manifests
            .refresh(tenant, table, since)
            .await?
            .map(|state| self.catalog(tenant.clone(), table, state)))
    }

    async fn list_tables(&self) -> Result<Vec<(TenantId, Table)>, StoreError> {
        self.manifests.list_tables().await
    }

    async fn collect_garbage(
        &self,
        grace: Duration,
        sweep_orphans: bool,
    ) -> Result<GarbageCollected, StoreError> {
        let mut out = GarbageCollected::default();
        let grace_ms = grace.as_millis() as u64;
        let now_ms = Utc::now().timestamp_millis().max(0) as u64;
        for (tenant, table, replaced) in self.manifests.replaced().await {
            let (due, waiting): (Vec<_>, Vec<_>) = replaced
                .into_iter()
                .partition(|r| r.removed_at_ms.saturating_add(grace_ms) <= now_ms);
            out.pending += waiting.len();
            let mut deleted = Vec::new();
            for r in due {
                // The sidecar first: a file is never left without its index.
                let sidecar = Path::from(sidecar_path(&r.path));
                let _ = self.store.delete(&sidecar).await;
                match self.store.delete(&Path::from(r.path.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        crate::failpoint::crash_point("during_gc_delete");
                        deleted.push(r.path);
                    }
                    Err(e) => {
                        tracing::warn!(path = %r.path, error = %e, "could not delete a replaced data file");
                    }
                }
            }
            if !deleted.is_empty() {
                out.replaced += deleted.len();
                self.manifests.forget(&tenant, table, deleted).await?;
            }
        }
        if sweep_orphans {
            out.orphans = self.collect_orphans(grace).await?;
        }
        Ok(out)
    }
}

impl ObjectFileStore {
    fn catalog(&self, tenant: TenantId, table: Table, state: TableState) -> TableCatalog {
        // This node's watermark per hour, and the one of files from before
        // node ids (which were written by whichever node had this WAL).
        let mut committed: std::collections::BTreeMap<u64, u64> = Default::default();
        for ((hour, node), seq) in &state.watermarks {
            if node.is_empty() || *node == self.node {
                let w = committed.entry(*hour).or_insert(0);
                *w = (*w).max(*seq);
            }
        }
        TableCatalog {
            tenant,
            table,
            version: state.version,
            files: state.files,
            committed_seqs: committed.into_iter().collect(),
        }
    }

    /// Deletes data files that no manifest records, and staging files of
    /// abandoned uploads in a local store, older than `grace`.
    async fn collect_orphans(&self, grace: Duration) -> Result<usize, StoreError> {
        // Every manifest as stored now: other nodes' recent commits are no
        // orphans.
        self.manifests.load_all().await?;
        let committed = self.manifests.recorded_paths().await;
        let metas: Vec<_> = self
            .store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| StoreError::new("listing stored files", e))?;
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let mut deleted = 0;
        let system = Path::from(SYSTEM_PREFIX);
        for m in metas {
            // The store's own state is no tenant's data: never swept.
            if m.location.prefix_matches(&system) {
                continue;
            }
            let path = m.location.to_string();
            // A trace-id sidecar goes with its data file.
            let (data, sidecar) = match sidecar_of(&path) {
                Some(d) => (d, true),
                None => (path.as_str(), false),
            };
            if parse_path(data).is_some() && !committed.contains(data) && m.last_modified <= cutoff
            {
                match self.store.delete(&m.location).await {
                    Ok(()) if sidecar => {}
                    Ok(()) => {
                        tracing::info!(%path, "deleted an uncommitted data file");
                        deleted += 1;
                    }
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "could not delete an uncommitted data file")
                    }
                }
            }
        }
        if let Some(root) = self.local_root.clone() {
            deleted += tokio::task::spawn_blocking(move || remove_abandoned_uploads(&root, grace))
                .await
                .map_err(|e| StoreError::new("sweeping abandoned uploads", e))?
                .map_err(|e| StoreError::new("sweeping abandoned uploads", e))?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_tenant_table_date_hour() {
        let t = TenantId::parse("acme").unwrap();
        // 2026-11-26T13:00:00Z
        let hour = 1_795_698_000u64 * 1_000_000_000;
        assert_eq!(
            partition_dir(&t, Table::TRACES, hour),
            "acme/otel_traces/date=2026-11-26/hour=13"
        );
        let p = "acme/otel_logs/date=2026-11-26/hour=13/x.parquet";
        assert_eq!(parse_path(p), Some((t, Table::LOGS)));
        assert_eq!(parse_path("acme/otel_logs/x.parquet"), None);
        assert_eq!(parse_path("acme/other/date=1/hour=2/x.parquet"), None);
    }

    fn services(names: &[&str]) -> RecordBatch {
        let col = arrow::array::StringArray::from(names.to_vec());
        RecordBatch::try_from_iter([("service_name", Arc::new(col) as _)]).unwrap()
    }

    #[test]
    fn a_file_records_its_distinct_services_up_to_a_limit() {
        let mut names = ServiceNames::default();
        names.add(&services(&["web", "web", "api", "web"]));
        names.add(&services(&["db", "api"]));
        let want = ["api", "db", "web"].map(String::from);
        assert_eq!(names.take().as_deref(), Some(&want[..]));
        // `take` starts afresh.
        assert_eq!(names.take().as_deref(), Some(&[][..]));

        let many: Vec<String> = (0..=FileMeta::MAX_SERVICES)
            .map(|i| format!("pod-{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        names.add(&services(&many[..FileMeta::MAX_SERVICES]));
        assert_eq!(names.take().unwrap().len(), FileMeta::MAX_SERVICES);
        names.add(&services(&many));
        names.add(&services(&["web"]));
        assert_eq!(names.take(), None);
        // A batch without the column: unknown.
        let other = RecordBatch::try_from_iter([(
            "body",
            Arc::new(arrow::array::StringArray::from(vec!["x"])) as _,
        )])
        .unwrap();
        names.add(&other);
        assert_eq!(names.take(), None);
    }
}
