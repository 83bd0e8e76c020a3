//! The per-table manifest: which Parquet files are committed.
//!
//! Versions are immutable objects `<tenant>/<table>/_manifest/<v:020>.json`,
//! each adding (and, for compaction and retention later, removing) files. A
//! commit creates the next version with a conditional put
//! (`PutMode::Create`): if another writer got there first, it reloads and
//! retries, so several nodes can share a bucket. Every `CHECKPOINT_EVERY`
//! versions a checkpoint `<v:020>.checkpoint.json` holds the full file list;
//! loading reads the newest checkpoint plus the versions after it, and
//! versions older than the previous checkpoint are deleted, so reading stays
//! cheap however many versions there were.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use tf_application::Table;
use tf_application::ports::{FileMeta, StoreError, TableCatalog};
use tf_domain::TenantId;

pub(crate) const CHECKPOINT_EVERY: u64 = 20;
const MAX_COMMIT_ATTEMPTS: usize = 16;

/// A file as the manifest stores it (the on-disk form of [`FileMeta`],
/// which the application layer knows without any serialization).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFile {
    path: String,
    size: u64,
    rows: u64,
    hour_start: u64,
    max_seq: u64,
    min_ts: i64,
    max_ts: i64,
}

impl From<&FileMeta> for StoredFile {
    fn from(f: &FileMeta) -> Self {
        Self {
            path: f.path.clone(),
            size: f.size,
            rows: f.rows,
            hour_start: f.hour_start,
            max_seq: f.max_seq,
            min_ts: f.min_ts,
            max_ts: f.max_ts,
        }
    }
}

impl From<StoredFile> for FileMeta {
    fn from(f: StoredFile) -> Self {
        Self {
            path: f.path,
            size: f.size,
            rows: f.rows,
            hour_start: f.hour_start,
            max_seq: f.max_seq,
            min_ts: f.min_ts,
            max_ts: f.max_ts,
        }
    }
}

fn stored(files: &[FileMeta]) -> Vec<StoredFile> {
    files.iter().map(StoredFile::from).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Version {
    version: u64,
    #[serde(default)]
    add: Vec<StoredFile>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    version: u64,
    files: Vec<StoredFile>,
}

#[derive(Debug, Clone, Default)]
struct TableState {
    version: u64,
    files: Vec<FileMeta>,
}

impl TableState {
    fn apply(&mut self, v: &Version) {
        self.files.retain(|f| !v.remove.contains(&f.path));
        self.files.extend(v.add.iter().cloned().map(FileMeta::from));
        self.version = v.version;
    }
}

pub(crate) fn manifest_dir(tenant: &TenantId, table: Table) -> String {
    format!("{tenant}/{}/_manifest", table.name())
}

fn version_path(dir: &str, v: u64) -> Path {
    Path::from(format!("{dir}/{v:020}.json"))
}

fn checkpoint_path(dir: &str, v: u64) -> Path {
    Path::from(format!("{dir}/{v:020}.checkpoint.json"))
}

enum Entry {
    Version(u64),
    Checkpoint(u64),
}

fn parse_entry(name: &str) -> Option<Entry> {
    if let Some(v) = name.strip_suffix(".checkpoint.json") {
        return v.parse().ok().map(Entry::Checkpoint);
    }
    name.strip_suffix(".json")?.parse().ok().map(Entry::Version)
}

pub(crate) struct Manifests {
    store: Arc<dyn ObjectStore>,
    tables: Mutex<HashMap<(TenantId, Table), TableState>>,
}

impl Manifests {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            tables: Mutex::new(HashMap::new()),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> Result<T, StoreError> {
        let bytes = self
            .store
            .get(path)
            .await
            .map_err(|e| StoreError::new(format!("reading {path}"), e))?
            .bytes()
            .await
            .map_err(|e| StoreError::new(format!("reading {path}"), e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::new(format!("parsing {path}"), e))
    }

    /// Reads the newest state of a table's manifest from the store.
    async fn load_table(&self, tenant: &TenantId, table: Table) -> Result<TableState, StoreError> {
        let dir = manifest_dir(tenant, table);
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(dir.as_str())))
            .try_collect()
            .await
            .map_err(|e| StoreError::new(format!("listing {dir}"), e))?;
        let mut versions = Vec::new();
        let mut checkpoint = 0;
        for m in &metas {
            match m.location.filename().and_then(parse_entry) {
                Some(Entry::Version(v)) => versions.push(v),
                Some(Entry::Checkpoint(v)) => checkpoint = checkpoint.max(v),
                None => {}
            }
        }
        let mut state = TableState::default();
        if checkpoint > 0 {
            let c: Checkpoint = self.get_json(&checkpoint_path(&dir, checkpoint)).await?;
            state = TableState {
                version: c.version,
                files: c.files.into_iter().map(FileMeta::from).collect(),
            };
        }
        versions.sort_unstable();
        let from = state.version;
        for v in versions.into_iter().filter(|&v| v > from) {
            if v != state.version + 1 {
                // A gap: a version being written by another node, or deleted
                // under us. Stop at the last contiguous version.
                break;
            }
            let version: Version = self.get_json(&version_path(&dir, v)).await?;
            state.apply(&version);
        }
        Ok(state)
    }

    /// Every table's committed files.
    pub(crate) async fn load_all(&self) -> Result<Vec<TableCatalog>, StoreError> {
        let root = self
            .store
            .list_with_delimiter(None)
            .await
            .map_err(|e| StoreError::new("listing tenants", e))?;
        let mut out = Vec::new();
        for tenant_dir in root.common_prefixes {
            let Some(tenant) = tenant_dir.filename().and_then(|t| TenantId::parse(t).ok()) else {
                continue;
            };
            let tables = self
                .store
                .list_with_delimiter(Some(&tenant_dir))
                .await
                .map_err(|e| StoreError::new(format!("listing {tenant_dir}"), e))?;
            for table_dir in tables.common_prefixes {
                let Some(table) = table_dir.filename().and_then(Table::from_name) else {
                    continue;
                };
                let state = self.load_table(&tenant, table).await?;
                if state.version > 0 {
                    self.tables
                        .lock()
                        .await
                        .insert((tenant.clone(), table), state.clone());
                    out.push(TableCatalog {
                        tenant: tenant.clone(),
                        table,
                        version: state.version,
                        files: state.files,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Commits `add` as the next version; returns it.
    pub(crate) async fn commit(
        &self,
        tenant: &TenantId,
        table: Table,
        add: Vec<FileMeta>,
    ) -> Result<u64, StoreError> {
        let dir = manifest_dir(tenant, table);
        let mut tables = self.tables.lock().await;
        let key = (tenant.clone(), table);
        let mut state = match tables.get(&key) {
            Some(s) => s.clone(),
            None => self.load_table(tenant, table).await?,
        };
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let version = Version {
                version: state.version + 1,
                add: stored(&add),
                remove: Vec::new(),
            };
            let body = serde_json::to_vec(&version)
                .map_err(|e| StoreError::new("encoding manifest", e))?;
            let put = self
                .store
                .put_opts(
                    &version_path(&dir, version.version),
                    PutPayload::from(body),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_) => {
                    state.apply(&version);
                    if version.version.is_multiple_of(CHECKPOINT_EVERY) {
                        self.checkpoint(&dir, &state).await;
                    }
                    let v = state.version;
                    tables.insert(key, state);
                    return Ok(v);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Someone else committed this version — or an earlier
                    // attempt of ours whose answer was lost: catch up, and
                    // retry unless our files are already in.
                    state = self.load_table(tenant, table).await?;
                    if !add.is_empty()
                        && add
                            .iter()
                            .all(|f| state.files.iter().any(|s| s.path == f.path))
                    {
                        let v = state.version;
                        tables.insert(key, state);
                        return Ok(v);
                    }
                }
                Err(e) => {
                    return Err(StoreError::new(
                        format!("committing {dir} v{}", version.version),
                        e,
                    ));
                }
            }
        }
        Err(StoreError::new(
            format!("committing {dir}"),
            std::io::Error::other("too many concurrent commits"),
        ))
    }

    /// Writes a checkpoint of `state` and deletes versions before the previous one.
    async fn checkpoint(&self, dir: &str, state: &TableState) {
        let c = Checkpoint {
            version: state.version,
            files: stored(&state.files),
        };
        let Ok(body) = serde_json::to_vec(&c) else {
            return;
        };
        if let Err(e) = self
            .store
            .put(&checkpoint_path(dir, c.version), PutPayload::from(body))
            .await
        {
            tracing::warn!(error = %e, dir, "manifest checkpoint failed (reads stay correct, just slower)");
            return;
        }
        // Keep one older checkpoint and the versions after it for readers in flight.
        let keep_from = c.version.saturating_sub(CHECKPOINT_EVERY);
        let old: Vec<_> = match self
            .store
            .list(Some(&Path::from(dir)))
            .try_collect::<Vec<_>>()
            .await
        {
            Ok(m) => m,
            Err(_) => return,
        };
        for m in old {
            let stale = match m.location.filename().and_then(parse_entry) {
                Some(Entry::Version(v)) => v <= keep_from,
                Some(Entry::Checkpoint(v)) => v < keep_from,
                None => false,
            };
            if stale {
                let _ = self.store.delete(&m.location).await;
            }
        }
    }

    /// Paths of every committed file known to this process.
    pub(crate) async fn committed_paths(&self) -> std::collections::HashSet<String> {
        self.tables
            .lock()
            .await
            .values()
            .flat_map(|s| s.files.iter().map(|f| f.path.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn file(n: u64) -> FileMeta {
        FileMeta {
            path: format!("t/otel_logs/date=2026-11-26/hour=10/{n}.parquet"),
            size: 10,
            rows: 1,
            hour_start: 0,
            max_seq: n,
            min_ts: 0,
            max_ts: 0,
        }
    }

    async fn names(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let mut v: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        v.sort();
        v
    }

    #[tokio::test]
    async fn commits_checkpoint_and_reload() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = TenantId::parse("t").unwrap();
        let m = Manifests::new(Arc::clone(&store));
        for n in 1..=45 {
            assert_eq!(
                m.commit(&tenant, Table::Logs, vec![file(n)]).await.unwrap(),
                n
            );
        }
        // Checkpoints at 20 and 40; versions up to 20 were deleted after the
        // second checkpoint, so a load reads one checkpoint and five versions.
        let listed = names(&store).await;
        assert!(
            listed.contains(
                &"t/otel_logs/_manifest/00000000000000000040.checkpoint.json".to_string()
            )
        );
        assert!(
            !listed
                .iter()
                .any(|p| p.ends_with("00000000000000000005.json")),
            "{listed:?}"
        );
        assert!(
            listed.len() <= 2 * CHECKPOINT_EVERY as usize + 2,
            "{}",
            listed.len()
        );

        let fresh = Manifests::new(Arc::clone(&store));
        let all = fresh.load_all().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].version, 45);
        let mut seqs: Vec<u64> = all[0].files.iter().map(|f| f.max_seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=45).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn concurrent_writers_never_lose_a_commit() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = TenantId::parse("t").unwrap();
        let a = Manifests::new(Arc::clone(&store));
        let b = Manifests::new(Arc::clone(&store));
        // Interleaved: each writer's cached version goes stale in turn, its
        // conditional put fails, it reloads and commits the next version.
        for n in 0..10 {
            let w = if n % 2 == 0 { &a } else { &b };
            w.commit(&tenant, Table::Logs, vec![file(n + 1)])
                .await
                .unwrap();
        }
        let all = Manifests::new(store).load_all().await.unwrap();
        assert_eq!(all[0].version, 10);
        assert_eq!(all[0].files.len(), 10);
    }
}
