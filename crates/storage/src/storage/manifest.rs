//! The per-table manifest: which Parquet files are committed.
//!
//! Versions are immutable objects `<tenant>/<table>/_manifest/<v:020>.json`,
//! each adding files and/or replacing some (compaction: the outputs added and
//! the inputs removed in one version, so a reader sees either). A removed
//! file stays recorded as *replaced*, with the time it left, until the
//! garbage collector has deleted it after the grace period and commits a
//! version that forgets it. Every added flush file raises its partition's
//! watermark for the node that wrote it (`(hour, node) → highest WAL
//! sequence number committed`); watermarks outlive the files, so replay never
//! re-inserts rows whose files were compacted or expired. A commit creates
//! the next version with a conditional put
//! (`PutMode::Create`): if another writer got there first, it reloads and
//! retries, so several nodes can share a bucket. Once the versions since
//! the last checkpoint are at least `CHECKPOINT_EVERY` and hold a tenth of
//! its bytes (or reach `MAX_CHECKPOINT_EVERY`), a checkpoint
//! `<v:020>.checkpoint.json` holds the full file list;
//! loading reads the newest checkpoint plus the versions after it, and
//! versions older than the previous checkpoint are deleted, so reading stays
//! cheap however many versions there were.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::versions::{listed_after, parse_version, version_path};
use tf_application::ports::{FileMeta, StoreError};
use tf_domain::Table;
use tf_domain::TenantId;

/// A checkpoint is written once at least this many versions follow the
/// last one …
pub(crate) const CHECKPOINT_EVERY: u64 = 20;
/// … and those versions hold a tenth of the last checkpoint's bytes, so
/// writing checkpoints costs a commit about ten times its own size however
/// large the table grows (a fixed count would cost every commit a share of
/// the whole file list) …
const CHECKPOINT_SHARE: u64 = 10;
/// … or this many versions follow it: a load reads at most this many
/// versions after the checkpoint (concurrently).
const MAX_CHECKPOINT_EVERY: u64 = 1000;
/// Concurrent reads when loading versions or tables.
const LOAD_CONCURRENCY: usize = 16;
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
    /// Absent in files written before nodes had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    /// Absent when not recorded (see [`FileMeta::services`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    services: Option<Vec<String>>,
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
            node: f.node.clone(),
            services: f.services.as_deref().map(<[String]>::to_vec),
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
            node: f.node,
            services: f.services.map(Arc::from),
        }
    }
}

fn stored(files: &[FileMeta]) -> Vec<StoredFile> {
    files.iter().map(StoredFile::from).collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Version {
    version: u64,
    #[serde(default)]
    add: Vec<StoredFile>,
    #[serde(default)]
    remove: Vec<String>,
    /// When the `remove`d files left the table (Unix ms): their grace period
    /// starts here.
    #[serde(default)]
    removed_at_ms: u64,
    /// Replaced files that are deleted: no longer recorded.
    #[serde(default)]
    forget: Vec<String>,
}

/// A file that left the table and is not deleted yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Replaced {
    pub(crate) path: String,
    pub(crate) removed_at_ms: u64,
}

/// The node a watermark belongs to; `""` for files from before node ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredWatermark {
    hour_start: u64,
    node: String,
    seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    version: u64,
    files: Vec<StoredFile>,
    #[serde(default)]
    replaced: Vec<Replaced>,
    #[serde(default)]
    watermarks: Vec<StoredWatermark>,
}

/// A table's manifest as of one version.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableState {
    pub(crate) version: u64,
    pub(crate) files: Vec<FileMeta>,
    pub(crate) replaced: Vec<Replaced>,
    /// `(hour_start, node)` → the highest WAL sequence number of `node`
    /// whose rows of that partition are committed.
    pub(crate) watermarks: BTreeMap<(u64, String), u64>,
    /// Versions after the newest checkpoint, and their bytes.
    pending_versions: u64,
    pending_bytes: u64,
    /// Size of the newest checkpoint (0: none).
    checkpoint_bytes: u64,
}

impl TableState {
    fn apply(&mut self, v: &Version) {
        if !v.remove.is_empty() {
            let remove: HashSet<&str> = v.remove.iter().map(String::as_str).collect();
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.files)
                .into_iter()
                .partition(|f| remove.contains(f.path.as_str()));
            self.files = kept;
            self.replaced.extend(gone.into_iter().map(|f| Replaced {
                path: f.path,
                removed_at_ms: v.removed_at_ms,
            }));
        }
        for f in &v.add {
            if f.max_seq > 0 {
                let node = f.node.clone().unwrap_or_default();
                let w = self.watermarks.entry((f.hour_start, node)).or_insert(0);
                *w = (*w).max(f.max_seq);
            }
        }
        self.files.extend(v.add.iter().cloned().map(FileMeta::from));
        if !v.forget.is_empty() {
            let forget: HashSet<&str> = v.forget.iter().map(String::as_str).collect();
            self.replaced.retain(|r| !forget.contains(r.path.as_str()));
        }
        self.version = v.version;
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            version: self.version,
            files: stored(&self.files),
            replaced: self.replaced.clone(),
            watermarks: self
                .watermarks
                .iter()
                .map(|((hour_start, node), seq)| StoredWatermark {
                    hour_start: *hour_start,
                    node: node.clone(),
                    seq: *seq,
                })
                .collect(),
        }
    }

    fn from_checkpoint(c: Checkpoint) -> Self {
        Self {
            version: c.version,
            files: c.files.into_iter().map(FileMeta::from).collect(),
            replaced: c.replaced,
            watermarks: c
                .watermarks
                .into_iter()
                .map(|w| ((w.hour_start, w.node), w.seq))
                .collect(),
            ..Self::default()
        }
    }

    /// Counts a version of `bytes` applied after the newest checkpoint.
    fn pending(&mut self, bytes: u64) {
        self.pending_versions += 1;
        self.pending_bytes += bytes;
    }

    /// Whether the versions since the newest checkpoint call for another.
    fn checkpoint_due(&self) -> bool {
        self.pending_versions >= MAX_CHECKPOINT_EVERY
            || (self.pending_versions >= CHECKPOINT_EVERY
                && self.pending_bytes * CHECKPOINT_SHARE >= self.checkpoint_bytes)
    }

    /// Whether every one of `paths` is a file of the table (one pass over
    /// the files, however many paths).
    /// Whether `version` took effect here: its files are in, or (a version
    /// that only removes) the files it removed are out.
    fn shows(&self, version: &Version) -> bool {
        if version.add.is_empty() {
            !version.remove.iter().any(|p| self.holds_all([p.as_str()]))
        } else {
            self.holds_all(version.add.iter().map(|f| f.path.as_str()))
        }
    }

    fn holds_all<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> bool {
        let wanted: HashSet<&str> = paths.into_iter().collect();
        wanted.is_empty()
            || self
                .files
                .iter()
                .filter(|f| wanted.contains(f.path.as_str()))
                .count()
                == wanted.len()
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Committed as this version (or found already committed).
    Done(u64),
    /// A file to remove is no longer in the table (another writer replaced
    /// it): nothing was committed.
    Conflict,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn manifest_dir(tenant: &TenantId, table: Table) -> String {
    format!("{tenant}/{}/_manifest", table.name())
}

fn checkpoint_path(dir: &str, v: u64) -> Path {
    Path::from(format!("{dir}/{v:020}.checkpoint.json"))
}

enum Entry {
    Version(u64),
    Checkpoint(u64),
}

/// The run of `versions` (ascending, with sizes) that follows `from`
/// without a gap: a missing version is being written by another node, or
/// was deleted under us; reading stops before it.
fn contiguous_after(from: u64, versions: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    versions
        .into_iter()
        .filter(|&(v, _)| v > from)
        .enumerate()
        .take_while(|&(i, (v, _))| v == from + 1 + i as u64)
        .map(|(_, e)| e)
        .collect()
}

fn parse_entry(name: &str) -> Option<Entry> {
    if let Some(v) = name.strip_suffix(".checkpoint.json") {
        return v.parse().ok().map(Entry::Checkpoint);
    }
    parse_version(name).map(Entry::Version)
}

/// A table's manifest state, as loaded.
type Loaded = (TenantId, Table, TableState);

pub(crate) struct Manifests {
    store: Arc<dyn ObjectStore>,
    tables: Mutex<HashMap<(TenantId, Table), TableState>>,
    /// How long a version folded into a checkpoint stays before it is
    /// deleted (see [`VERSION_GRACE`]).
    version_grace: Duration,
}

/// A version is deleted only this long after it was written, however many
/// checkpoints follow it. A commit lists what follows the version it knows
/// before it puts the next one; if the put returns later than half of this
/// after that listing, the commit checks it was not written into a number
/// that was freed meanwhile.
pub(crate) const VERSION_GRACE: Duration = Duration::from_secs(120);

impl Manifests {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            tables: Mutex::new(HashMap::new()),
            version_grace: VERSION_GRACE,
        }
    }

    /// Deletes folded versions after `grace` instead of [`VERSION_GRACE`]
    /// (zero: at once, and commits skip the slow-put check).
    #[cfg(test)]
    pub(crate) fn with_version_grace(mut self, grace: Duration) -> Self {
        self.version_grace = grace;
        self
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
        let mut checkpoint = (0, 0);
        for m in &metas {
            match m.location.filename().and_then(parse_entry) {
                Some(Entry::Version(v)) => versions.push((v, m.size)),
                Some(Entry::Checkpoint(v)) if v > checkpoint.0 => checkpoint = (v, m.size),
                _ => {}
            }
        }
        let mut state = TableState::default();
        if checkpoint.0 > 0 {
            let c: Checkpoint = self.get_json(&checkpoint_path(&dir, checkpoint.0)).await?;
            state = TableState::from_checkpoint(c);
            state.checkpoint_bytes = checkpoint.1;
        }
        versions.sort_unstable();
        let from = state.version;
        let contiguous = contiguous_after(from, versions);
        self.apply_versions(&dir, &mut state, &contiguous).await?;
        Ok(state)
    }

    /// Reads `versions` (contiguous, ascending, with their sizes)
    /// concurrently and applies them to `state` in order.
    async fn apply_versions(
        &self,
        dir: &str,
        state: &mut TableState,
        versions: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        let reads: Vec<BoxFuture<'_, Result<Version, StoreError>>> = versions
            .iter()
            .map(|&(v, _)| {
                let path = version_path(dir, v);
                Box::pin(async move { self.get_json::<Version>(&path).await }) as BoxFuture<'_, _>
            })
            .collect();
        let mut read = futures::stream::iter(reads).buffered(LOAD_CONCURRENCY);
        let mut sizes = versions.iter().map(|&(_, size)| size);
        while let Some(version) = read.try_next().await? {
            state.apply(&version);
            state.pending(sizes.next().unwrap_or(0));
        }
        Ok(())
    }

    /// Catches up with versions other writers committed, and returns the
    /// table's state if it is past version `since`; `None` otherwise. When
    /// nothing changed this costs one listing of the version names after
    /// the newest known one (none); otherwise a read per new version, or a
    /// fresh load when the versions in between were folded into a
    /// checkpoint.
    pub(crate) async fn refresh(
        &self,
        tenant: &TenantId,
        table: Table,
        since: u64,
    ) -> Result<Option<TableState>, StoreError> {
        let dir = manifest_dir(tenant, table);
        let mut tables = self.tables.lock().await;
        let state = tables.entry((tenant.clone(), table)).or_default();
        self.catch_up(tenant, table, &dir, state).await?;
        Ok((state.version > since).then(|| state.clone()))
    }

    /// Brings `state` up to the newest version in the store. When nothing
    /// changed this costs one listing of the names after its version; when
    /// the versions after it are all there, a read per version; when some
    /// were folded into a checkpoint and deleted, a fresh load.
    async fn catch_up(
        &self,
        tenant: &TenantId,
        table: Table,
        dir: &str,
        state: &mut TableState,
    ) -> Result<(), StoreError> {
        let known = state.version;
        let mut versions = Vec::new();
        let mut checkpointed = false;
        for m in listed_after(self.store.as_ref(), dir, known).await? {
            match m.location.filename().and_then(parse_entry) {
                Some(Entry::Version(v)) if v > known => versions.push((v, m.size)),
                Some(Entry::Checkpoint(v)) if v > known => checkpointed = true,
                _ => {}
            }
        }
        versions.sort_unstable();
        match versions.first() {
            Some(&(first, _)) if first == known + 1 => {
                let contiguous = contiguous_after(known, versions);
                self.apply_versions(dir, state, &contiguous).await
            }
            None if !checkpointed => Ok(()),
            _ => {
                *state = self.load_table(tenant, table).await?;
                Ok(())
            }
        }
    }

    /// The (tenant, table) pairs that have a manifest in the store.
    pub(crate) async fn list_tables(&self) -> Result<Vec<(TenantId, Table)>, StoreError> {
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
            out.extend(
                tables
                    .common_prefixes
                    .iter()
                    .filter_map(|d| d.filename().and_then(Table::from_name))
                    .map(|t| (tenant.clone(), t)),
            );
        }
        Ok(out)
    }

    /// Every table's manifest state.
    pub(crate) async fn load_all(&self) -> Result<Vec<(TenantId, Table, TableState)>, StoreError> {
        let tables = self.list_tables().await?;
        let loads: Vec<BoxFuture<'_, Result<Loaded, StoreError>>> = tables
            .into_iter()
            .map(|(tenant, table)| {
                Box::pin(async move {
                    let state = self.load_table(&tenant, table).await?;
                    Ok((tenant, table, state))
                }) as BoxFuture<'_, _>
            })
            .collect();
        let loaded: Vec<Loaded> = futures::stream::iter(loads)
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        let mut cached = self.tables.lock().await;
        let mut out = Vec::new();
        for (tenant, table, state) in loaded {
            if state.version > 0 {
                cached.insert((tenant.clone(), table), state.clone());
                out.push((tenant, table, state));
            }
        }
        Ok(out)
    }

    /// Commits the next version: `add` joins the table and `remove` leaves
    /// it, in one version. `Conflict` (nothing committed) when a file to
    /// remove is no longer in the table.
    pub(crate) async fn commit(
        &self,
        tenant: &TenantId,
        table: Table,
        add: Vec<FileMeta>,
        remove: Vec<String>,
    ) -> Result<Commit, StoreError> {
        self.commit_version(
            tenant,
            table,
            Version {
                add: stored(&add),
                remove,
                removed_at_ms: now_ms(),
                ..Version::default()
            },
        )
        .await
    }

    /// Stops recording replaced files (their objects are deleted).
    pub(crate) async fn forget(
        &self,
        tenant: &TenantId,
        table: Table,
        paths: Vec<String>,
    ) -> Result<Commit, StoreError> {
        self.commit_version(
            tenant,
            table,
            Version {
                forget: paths,
                ..Version::default()
            },
        )
        .await
    }

    async fn commit_version(
        &self,
        tenant: &TenantId,
        table: Table,
        mut version: Version,
    ) -> Result<Commit, StoreError> {
        let dir = manifest_dir(tenant, table);
        let mut tables = self.tables.lock().await;
        let key = (tenant.clone(), table);
        if !tables.contains_key(&key) {
            let loaded = self.load_table(tenant, table).await?;
            tables.insert(key.clone(), loaded);
        }
        // The cached state is changed in place (no copy per commit: that
        // would cost every flush as much as the table has files), and only
        // once the version is stored.
        let state = tables.entry(key).or_default();
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            // Other nodes may have committed after the version this node
            // knows, and folded those versions into checkpoints and deleted
            // them: a put into such a freed number would succeed and never
            // be read. So catch up first.
            self.catch_up(tenant, table, &dir, state).await?;
            let listed = Instant::now();
            if !state.holds_all(version.remove.iter().map(String::as_str)) {
                return Ok(Commit::Conflict);
            }
            version.version = state.version + 1;
            let body = serde_json::to_vec(&version)
                .map_err(|e| StoreError::new("encoding manifest", e))?;
            let size = body.len() as u64;
            let put = self
                .store
                .put_opts(
                    &version_path(&dir, version.version),
                    PutPayload::from(body),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_)
                    if !self.version_grace.is_zero()
                        && listed.elapsed() >= self.version_grace / 2 =>
                {
                    // Slow enough that the number may have been freed after
                    // the listing: the version counts only if a fresh load
                    // shows it.
                    *state = self.load_table(tenant, table).await?;
                    if state.shows(&version) {
                        return Ok(Commit::Done(state.version));
                    }
                }
                Ok(_) => {
                    if !version.remove.is_empty() {
                        crate::failpoint::crash_point(if version.add.is_empty() {
                            "after_expiry_commit"
                        } else {
                            "after_compaction_commit"
                        });
                    }
                    state.apply(&version);
                    state.pending(size);
                    if state.checkpoint_due() {
                        self.checkpoint(&dir, state).await;
                    }
                    return Ok(Commit::Done(state.version));
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Someone else committed this version — or an earlier
                    // attempt of ours whose answer was lost: catch up, and
                    // retry unless our files are already in (added file
                    // names are unique, so that means it was ours).
                    *state = self.load_table(tenant, table).await?;
                    if !version.add.is_empty()
                        && state.holds_all(version.add.iter().map(|f| f.path.as_str()))
                    {
                        return Ok(Commit::Done(state.version));
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

    /// Writes a checkpoint of `state` and deletes versions before the
    /// previous one that are older than the version grace.
    async fn checkpoint(&self, dir: &str, state: &mut TableState) {
        let c = state.checkpoint();
        let Ok(body) = serde_json::to_vec(&c) else {
            return;
        };
        let size = body.len() as u64;
        if let Err(e) = self
            .store
            .put(&checkpoint_path(dir, c.version), PutPayload::from(body))
            .await
        {
            tracing::warn!(error = %e, dir, "manifest checkpoint failed (reads stay correct, just slower)");
            return;
        }
        state.checkpoint_bytes = size;
        state.pending_versions = 0;
        state.pending_bytes = 0;
        let old: Vec<_> = match self
            .store
            .list(Some(&Path::from(dir)))
            .try_collect::<Vec<_>>()
            .await
        {
            Ok(m) => m,
            Err(_) => return,
        };
        // Keep the previous checkpoint and the versions after it for readers
        // in flight.
        let Some(keep_from) = old
            .iter()
            .filter_map(|m| match m.location.filename().and_then(parse_entry) {
                Some(Entry::Checkpoint(v)) if v < c.version => Some(v),
                _ => None,
            })
            .max()
        else {
            return;
        };
        for m in old {
            let old_enough = chrono::Utc::now()
                .signed_duration_since(m.last_modified)
                .to_std()
                .is_ok_and(|age| age >= self.version_grace);
            let stale = match m.location.filename().and_then(parse_entry) {
                Some(Entry::Version(v)) => v <= keep_from && old_enough,
                Some(Entry::Checkpoint(v)) => v < keep_from,
                None => false,
            };
            if stale {
                let _ = self.store.delete(&m.location).await;
            }
        }
    }

    /// Paths of every file this process knows to be committed or replaced
    /// and not yet deleted: the orphan sweep leaves them alone.
    pub(crate) async fn recorded_paths(&self) -> HashSet<String> {
        self.tables
            .lock()
            .await
            .values()
            .flat_map(|s| {
                s.files
                    .iter()
                    .map(|f| f.path.clone())
                    .chain(s.replaced.iter().map(|r| r.path.clone()))
            })
            .collect()
    }

    /// Replaced files per table, as this process knows them.
    pub(crate) async fn replaced(&self) -> Vec<(TenantId, Table, Vec<Replaced>)> {
        self.tables
            .lock()
            .await
            .iter()
            .filter(|(_, s)| !s.replaced.is_empty())
            .map(|((t, tb), s)| (t.clone(), *tb, s.replaced.clone()))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
