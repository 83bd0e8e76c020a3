//! `DurableStore`: an object store whose writes have reached stable storage
//! before they return.
//!
//! A commit releases the WAL records it covers, so the data file and the
//! manifest version it names must survive a power cut by then. S3 gives that
//! with every PUT; object_store's `LocalFileSystem` syncs nothing — neither
//! the file nor the directory entry that names it, nor the directories it
//! created. `DurableStore` wraps a store and, after every successful put,
//! multipart completion, copy or rename, has a [`Syncer`] make the written
//! object durable before returning. Writes are ordered by the caller (a data
//! file is put before the manifest version that names it), so syncing each
//! before it returns keeps that order on disk.
//!
//! Deletes are not synced: a delete lost at a power cut brings back an
//! object nothing needs (an old manifest version, a replaced or uncommitted
//! file), which start-up handles.
//!
//! A failed `fsync` is fatal, as in PostgreSQL: Linux reports a writeback
//! error once and may drop the dirty pages, so neither retrying nor
//! reporting "not written" is true — the object is visible now but may not
//! survive. The process aborts; the restart recovers from the WAL, which
//! still holds every record the unsynced commit covered. (Failing to *open*
//! the file or directory for syncing is retried first: nothing was lost yet.)

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};
use parking_lot::Mutex;

use super::documents::SYSTEM_PREFIX;

/// Makes one written object durable.
#[async_trait]
pub trait Syncer: Send + Sync + fmt::Debug + 'static {
    async fn sync(&self, location: &Path) -> object_store::Result<()>;
}

/// A store whose writes are durable when they return (see the module docs).
#[derive(Debug)]
pub struct DurableStore {
    inner: Arc<dyn ObjectStore>,
    syncer: Arc<dyn Syncer>,
}

impl DurableStore {
    pub fn new(inner: Arc<dyn ObjectStore>, syncer: Arc<dyn Syncer>) -> Self {
        Self { inner, syncer }
    }

    /// A local directory whose files and directories are fsync'd.
    pub fn local(fs: LocalFileSystem, root: PathBuf) -> Self {
        let fs = Arc::new(fs);
        let syncer = Arc::new(LocalSyncer {
            fs: Arc::clone(&fs),
            root,
            durable_dirs: Mutex::new(HashSet::new()),
        });
        Self::new(fs, syncer)
    }
}

impl fmt::Display for DurableStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Durable({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for DurableStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.inner.put_opts(location, payload, opts).await {
            Ok(r) => {
                self.syncer.sync(location).await?;
                Ok(r)
            }
            Err(e @ object_store::Error::AlreadyExists { .. }) => {
                // Another attempt (or writer) created it, maybe without
                // syncing yet: the caller will build on it, so make it
                // durable first.
                self.syncer.sync(location).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload {
            upload,
            location: location.clone(),
            syncer: Arc::clone(&self.syncer),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.syncer.sync(to).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.syncer.sync(to).await
    }
}

/// A multipart upload whose completion is durable when it returns.
#[derive(Debug)]
struct DurableUpload {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    syncer: Arc<dyn Syncer>,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.upload.complete().await?;
        self.syncer.sync(&self.location).await?;
        Ok(r)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}

/// fsyncs a file of a local directory, the directory that holds it, and
/// every directory above it up to the root that is not yet known durable
/// (directories the store created for it).
#[derive(Debug)]
struct LocalSyncer {
    fs: Arc<LocalFileSystem>,
    root: PathBuf,
    /// Directories whose own entry in their parent is durable.
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

fn sync_error(path: &FsPath, source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("syncing {}: {source}", path.display()).into(),
    }
}

/// fsyncs `path` (a file or a directory). Opening is retried a few times;
/// a failed fsync aborts the process (see the module docs).
fn fsync(path: &FsPath) -> Result<(), object_store::Error> {
    let mut attempt = 0;
    let file = loop {
        match std::fs::File::open(path) {
            Ok(f) => break f,
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(path = %path.display(), error = %e, attempt, "cannot open for fsync; retrying");
                std::thread::sleep(std::time::Duration::from_millis(20 << attempt));
            }
            Err(e) => return Err(sync_error(path, e)),
        }
    };
    if let Err(e) = file.sync_all() {
        tracing::error!(path = %path.display(), error = %e, "fsync failed: aborting so that recovery replays the write-ahead log");
        std::process::abort();
    }
    Ok(())
}

/// fsync of a directory: makes its entries (names of new files) durable.
pub fn sync_dir(dir: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl Syncer for LocalSyncer {
    async fn sync(&self, location: &Path) -> object_store::Result<()> {
        let file = self.fs.path_to_filesystem(location)?;
        let root = self.root.clone();
        let known: Vec<PathBuf> = {
            // Snapshot of the known directories on this file's path.
            let set = self.durable_dirs.lock();
            file.ancestors()
                .skip(1)
                .filter(|d| set.contains(*d))
                .map(FsPath::to_path_buf)
                .collect()
        };
        let synced = tokio::task::spawn_blocking(move || {
            fsync(&file)?;
            let mut newly_durable = Vec::new();
            for dir in file.ancestors().skip(1) {
                fsync(dir)?;
                if dir == root || known.iter().any(|k| k == dir) || !dir.starts_with(&root) {
                    break;
                }
                // `dir`'s entry is in its parent, synced next.
                newly_durable.push(dir.to_path_buf());
            }
            Ok::<_, object_store::Error>(newly_durable)
        })
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })??;
        self.durable_dirs.lock().extend(synced);
        Ok(())
    }
}

/// Whether `name` is a staging file of `LocalFileSystem`: `{object}#{n}`.
/// An upload writes one, then links or renames it to the object's name and
/// removes it; a process killed in between leaves it behind. The store's
/// listings hide such files, so no manifest or orphan sweep ever sees them.
fn is_staged_upload(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((object, n)) => {
            !object.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Deletes the staging files of uploads abandoned by a killed process under
/// the local data directory `root`, if older than `grace` (an upload of a
/// live process on the same directory is younger), except under
/// `_system/`, which no sweep enters. Returns how many it deleted. Only an
/// unreadable `root` is an error: entries that vanish meanwhile (another
/// node's retention or collection) are skipped, and a file that cannot be
/// deleted is logged and skipped.
pub(crate) fn remove_abandoned_uploads(
    root: &FsPath,
    grace: std::time::Duration,
) -> std::io::Result<usize> {
    let cutoff = std::time::SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let list = match std::fs::read_dir(&dir) {
            Ok(list) => list,
            Err(e) if dir == root => return Err(e),
            Err(_) => continue,
        };
        for entry in list.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                // The store's own state is left alone (see `SYSTEM_PREFIX`).
                if dir != root || entry.file_name() != SYSTEM_PREFIX {
                    dirs.push(entry.path());
                }
                continue;
            }
            let staged = entry.file_name().to_str().is_some_and(is_staged_upload);
            let old = || {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t <= cutoff)
            };
            if !kind.is_file() || !staged || !old() {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "deleted the staging file of an abandoned upload");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete the staging file of an abandoned upload")
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn staging_names_are_an_object_name_a_hash_and_digits() {
        assert!(is_staged_upload("00000000000000000012.json#3"));
        assert!(is_staged_upload("x.parquet#17"));
        for name in ["x.parquet", "x#", "#3", "x#3a", "x#-1", "a#b.json"] {
            assert!(!is_staged_upload(name), "{name}");
        }
    }

    #[test]
    fn abandoned_staging_files_are_deleted_once_older_than_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("t/otel_traces/_manifest");
        std::fs::create_dir_all(&deep).unwrap();
        let staged = deep.join("00000000000000000004.json#1");
        let object = deep.join("00000000000000000003.json");
        let other = dir.path().join("t/notes#draft");
        let system = dir.path().join("_system/keys");
        std::fs::create_dir_all(&system).unwrap();
        let system = system.join("00000000000000000002.json#1");
        for f in [&staged, &object, &other, &system] {
            std::fs::write(f, b"").unwrap();
        }
        // Young: possibly a live upload.
        let n = remove_abandoned_uploads(dir.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!(n, 0);
        assert!(staged.exists());
        let n = remove_abandoned_uploads(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(n, 1);
        assert!(!staged.exists());
        assert!(object.exists() && other.exists() && system.exists());
    }
}
