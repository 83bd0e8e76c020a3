//! `ObjectDocumentStore`: the [`DocumentStore`] port over object_store, in
//! the store's reserved `_system/` prefix.
//!
//! Layout: `_system/<collection>/<v:020>.json`, one immutable object per
//! version, each holding the whole document. A write creates the next
//! version with `PutMode::Create` only (the local store has no
//! `PutMode::Update`; S3 answers a create of an existing name with a
//! conflict), so of two nodes writing the same version number one fails and
//! reads again. No tenant id can name `_system` (a tenant id never starts
//! with `_`), so the tenant listings (manifests, garbage collection,
//! retention) never take it for a tenant, and the orphan sweep never
//! enters it.
//!
//! Old versions are pruned once they are neither among the newest
//! `keep` nor younger than `prune_after`: a write checks first that no
//! version after the one it read exists, and the age keeps a write delayed
//! past that check (a slow request, a paused process) from re-creating a
//! pruned version number after newer ones.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::versions::{parse_version, version_path, versions_after};
use tf_application::documents::{Collection, DocumentStore, PutOutcome, Versioned};
use tf_application::ports::StoreError;

/// The top-level prefix of the store's own, cluster-wide state. Never a
/// tenant's: tenant ids cannot start with `_`
/// (`tf_domain::tenancy::RESERVED_TENANT_PREFIX`).
pub const SYSTEM_PREFIX: &str = "_system";

/// Versions kept by default (each holds the whole document).
const KEEP_VERSIONS: u64 = 10;
/// A version younger than this is never pruned.
const PRUNE_AFTER: Duration = Duration::from_secs(600);
/// Reads of the newest version that may find it pruned after listing it.
const LOAD_ATTEMPTS: usize = 3;

/// Cluster-wide documents in an object store (see the module docs).
#[derive(Debug)]
pub struct ObjectDocumentStore {
    store: Arc<dyn ObjectStore>,
    keep: u64,
    prune_after: Duration,
}

impl ObjectDocumentStore {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            keep: KEEP_VERSIONS,
            prune_after: PRUNE_AFTER,
        }
    }

    /// Keeps the newest `keep` versions (at least one) and every version
    /// younger than `prune_after`; the rest is deleted after each write.
    pub fn with_pruning(mut self, keep: u64, prune_after: Duration) -> Self {
        self.keep = keep.max(1);
        self.prune_after = prune_after;
        self
    }

    /// Deletes the versions of `dir` that are older than the newest `keep`
    /// (the newest is `newest`) and than `prune_after`. Best effort: what
    /// is left is pruned after a later write.
    async fn prune(&self, dir: &str, newest: u64) {
        let Some(below) = newest.checked_sub(self.keep - 1) else {
            return;
        };
        let cutoff = Utc::now() - chrono::Duration::from_std(self.prune_after).unwrap_or_default();
        let listed: Vec<_> = match self.store.list(Some(&Path::from(dir))).try_collect().await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(dir, error = %e, "could not list old document versions");
                return;
            }
        };
        for m in listed {
            let old = m
                .location
                .filename()
                .and_then(parse_version)
                .is_some_and(|v| v < below);
            if old && m.last_modified <= cutoff {
                match self.store.delete(&m.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::debug!(path = %m.location, error = %e, "could not delete an old document version")
                    }
                }
            }
        }
    }

    /// Creates the object `path` holding `body`; `false` if another writer
    /// created it first.
    async fn create(&self, path: &Path, body: Bytes) -> Result<bool, StoreError> {
        let put = self
            .store
            .put_opts(
                path,
                PutPayload::from(body.clone()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => Ok(true),
            // Another writer won — or an earlier attempt of this put whose
            // answer was lost (the client retries): the same bytes are this
            // write, or one that cannot be told from it.
            Err(object_store::Error::AlreadyExists { .. }) => {
                Ok(self.get(path).await.is_ok_and(|stored| stored == body))
            }
            Err(e) => Err(StoreError::new(format!("writing {path}"), e)),
        }
    }

    async fn get(&self, path: &Path) -> object_store::Result<Bytes> {
        self.store.get(path).await?.bytes().await
    }
}

fn collection_dir(collection: &Collection) -> String {
    format!("{SYSTEM_PREFIX}/{collection}")
}

#[async_trait]
impl DocumentStore for ObjectDocumentStore {
    async fn load_since(
        &self,
        collection: &Collection,
        known: u64,
    ) -> Result<Option<Versioned<Vec<u8>>>, StoreError> {
        let dir = collection_dir(collection);
        for _ in 0..LOAD_ATTEMPTS {
            let newer = versions_after(self.store.as_ref(), &dir, known).await?;
            let Some(newest) = newer.iter().map(|&(v, _)| v).max() else {
                return Ok(None);
            };
            let path = version_path(&dir, newest);
            match self.get(&path).await {
                Ok(body) => {
                    return Ok(Some(Versioned {
                        version: newest,
                        body: body.to_vec(),
                    }));
                }
                // Pruned since the listing: newer versions exist.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StoreError::new(format!("reading {path}"), e)),
            }
        }
        Err(StoreError::new(
            format!("reading {dir}"),
            std::io::Error::other("the newest version keeps vanishing"),
        ))
    }

    async fn put(
        &self,
        collection: &Collection,
        expected: Option<u64>,
        body: Vec<u8>,
    ) -> Result<PutOutcome, StoreError> {
        let dir = collection_dir(collection);
        // One listing from just before `expected`: it must show exactly
        // `expected` (none when the caller found none) — the caller read the
        // newest, and no write is made on a version number that pruning
        // freed below newer ones.
        let from = expected.map_or(0, |v| v.saturating_sub(1));
        let listed: Vec<u64> = versions_after(self.store.as_ref(), &dir, from)
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        if listed != expected.into_iter().collect::<Vec<_>>() {
            return Ok(PutOutcome::Conflict);
        }
        let version = expected.unwrap_or(0) + 1;
        if !self
            .create(&version_path(&dir, version), Bytes::from(body))
            .await?
        {
            return Ok(PutOutcome::Conflict);
        }
        self.prune(&dir, version).await;
        Ok(PutOutcome::Written(version))
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::storage::StorageLocation;
    use crate::storage::counting::{CountingStore, RequestCounts};
    use crate::storage::manifest::tests::names;
    use tf_application::documents::{Cached, CachedDocument};

    const KEYS: Collection = Collection::from_static("keys");

    /// The stores the adapter is tested on: memory, and a local directory
    /// (object_store's `LocalFileSystem`, as `storage.url` builds it).
    fn stores() -> Vec<(Arc<dyn ObjectStore>, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let local = StorageLocation::Local(dir.path().to_path_buf())
            .build()
            .unwrap();
        vec![(Arc::new(InMemory::new()), None), (local, Some(dir))]
    }

    fn doc(version: u64, body: &str) -> Option<Versioned<Vec<u8>>> {
        Some(Versioned {
            version,
            body: body.as_bytes().to_vec(),
        })
    }

    #[tokio::test]
    async fn writes_create_the_next_version_or_conflict() {
        for (store, _dir) in stores() {
            let a = ObjectDocumentStore::new(Arc::clone(&store));
            let b = ObjectDocumentStore::new(Arc::clone(&store));
            assert_eq!(a.load(&KEYS).await.unwrap(), None);
            assert_eq!(
                a.put(&KEYS, None, b"{}".to_vec()).await.unwrap(),
                PutOutcome::Written(1)
            );
            assert_eq!(b.load(&KEYS).await.unwrap(), doc(1, "{}"));
            // Both read version 1: the first write wins, the second is stale.
            assert_eq!(
                a.put(&KEYS, Some(1), br#"{"a":1}"#.to_vec()).await.unwrap(),
                PutOutcome::Written(2)
            );
            assert_eq!(
                b.put(&KEYS, Some(1), br#"{"b":1}"#.to_vec()).await.unwrap(),
                PutOutcome::Conflict
            );
            // Nor may it write as if it found nothing, or a version to come.
            for stale in [None, Some(0), Some(3)] {
                assert_eq!(
                    b.put(&KEYS, stale, b"{}".to_vec()).await.unwrap(),
                    PutOutcome::Conflict,
                    "{stale:?}"
                );
            }
            // It reads again and writes on top.
            assert_eq!(b.load_since(&KEYS, 1).await.unwrap(), doc(2, r#"{"a":1}"#));
            assert_eq!(
                b.put(&KEYS, Some(2), br#"{"a":1,"b":1}"#.to_vec())
                    .await
                    .unwrap(),
                PutOutcome::Written(3)
            );
            assert_eq!(a.load(&KEYS).await.unwrap(), doc(3, r#"{"a":1,"b":1}"#));
            assert_eq!(
                names(&store).await,
                (1..=3)
                    .map(|v| format!("_system/keys/{v:020}.json"))
                    .collect::<Vec<_>>()
            );
        }
    }

    /// Writers racing for the same version number: exactly one wins. Past
    /// the check, the store's create decides: other bytes under the name
    /// are a conflict, the same bytes (a put retried after its answer was
    /// lost) are this write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_writers_of_one_version_conflict() {
        for (store, _dir) in stores() {
            let docs = Arc::new(ObjectDocumentStore::new(Arc::clone(&store)));
            docs.put(&KEYS, None, b"0".to_vec()).await.unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let docs = Arc::clone(&docs);
                    tokio::spawn(async move {
                        let body = format!("{i}").into_bytes();
                        docs.put(&KEYS, Some(1), body).await.unwrap()
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            outcomes.sort_by_key(|o| *o == PutOutcome::Conflict);
            assert_eq!(outcomes[0], PutOutcome::Written(2));
            assert!(outcomes[1..].iter().all(|o| *o == PutOutcome::Conflict));

            let winner = docs.load(&KEYS).await.unwrap().unwrap();
            let path = version_path("_system/keys", 2);
            let same = Bytes::from(winner.body.clone());
            assert!(docs.create(&path, same).await.unwrap());
            let other = Bytes::from_static(b"other");
            assert!(!docs.create(&path, other).await.unwrap());
            assert_eq!(docs.load(&KEYS).await.unwrap(), Some(winner));
        }
    }

    /// A node picks up another node's write with one listing, and pays only
    /// that listing while nothing changed.
    #[tokio::test]
    async fn a_refresh_sees_another_writer_for_one_listing() {
        for (store, _dir) in stores() {
            let writer = ObjectDocumentStore::new(Arc::clone(&store));
            let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
            let reader = Arc::new(ObjectDocumentStore::new(
                Arc::clone(&counting) as Arc<dyn ObjectStore>
            ));
            let cache: CachedDocument<Vec<String>> =
                CachedDocument::new(Arc::clone(&reader) as Arc<dyn DocumentStore>, KEYS);
            assert!(cache.refresh().await.unwrap());
            assert!(matches!(cache.get(), Cached::Absent));

            writer
                .put(&KEYS, None, br#"["k1"]"#.to_vec())
                .await
                .unwrap();
            assert!(cache.refresh().await.unwrap());
            let before = counting.counts();
            assert!(!cache.refresh().await.unwrap());
            assert_eq!(
                counting.counts().since(before),
                RequestCounts {
                    list: 1,
                    ..RequestCounts::default()
                }
            );
            writer
                .put(&KEYS, Some(1), br#"["k1","k2"]"#.to_vec())
                .await
                .unwrap();
            let before = counting.counts();
            assert!(cache.refresh().await.unwrap());
            assert_eq!(
                counting.counts().since(before),
                RequestCounts {
                    list: 1,
                    get: 1,
                    ..RequestCounts::default()
                }
            );
            let Cached::Present(keys) = cache.get() else {
                panic!("not loaded");
            };
            assert_eq!((keys.version, keys.body.len()), (2, 2));
            // And writes on top of what it now knows.
            let keys = cache
                .update(|keys| [keys.unwrap().clone(), vec!["k3".to_owned()]].concat())
                .await
                .unwrap();
            assert_eq!((keys.version, keys.body.len()), (3, 3));
        }
    }

    #[tokio::test]
    async fn pruning_keeps_the_newest_versions() {
        for (store, _dir) in stores() {
            let docs = ObjectDocumentStore::new(Arc::clone(&store)).with_pruning(3, Duration::ZERO);
            let mut version = None;
            for n in 0..7 {
                let PutOutcome::Written(v) =
                    docs.put(&KEYS, version, vec![b'0' + n]).await.unwrap()
                else {
                    panic!("conflict");
                };
                version = Some(v);
            }
            assert_eq!(
                names(&store).await,
                (5..=7)
                    .map(|v| format!("_system/keys/{v:020}.json"))
                    .collect::<Vec<_>>()
            );
            assert_eq!(docs.load(&KEYS).await.unwrap(), doc(7, "6"));
            // A writer that read a pruned version cannot re-create it.
            assert_eq!(
                docs.put(&KEYS, Some(1), b"stale".to_vec()).await.unwrap(),
                PutOutcome::Conflict
            );
            // Young versions are not pruned, however many.
            let young = ObjectDocumentStore::new(Arc::clone(&store))
                .with_pruning(1, Duration::from_secs(3600));
            young.put(&KEYS, Some(7), b"8".to_vec()).await.unwrap();
            assert_eq!(names(&store).await.len(), 4);
        }
    }

    /// One store that can be made unreachable: an S3 endpoint nothing
    /// listens on, asked once without retries.
    struct Flaky {
        up: ObjectDocumentStore,
        unreachable: ObjectDocumentStore,
        down: std::sync::atomic::AtomicBool,
    }

    impl Flaky {
        fn current(&self) -> &ObjectDocumentStore {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                &self.unreachable
            } else {
                &self.up
            }
        }
    }

    #[async_trait]
    impl DocumentStore for Flaky {
        async fn load_since(
            &self,
            collection: &Collection,
            known: u64,
        ) -> Result<Option<Versioned<Vec<u8>>>, StoreError> {
            self.current().load_since(collection, known).await
        }

        async fn put(
            &self,
            collection: &Collection,
            expected: Option<u64>,
            body: Vec<u8>,
        ) -> Result<PutOutcome, StoreError> {
            self.current().put(collection, expected, body).await
        }
    }

    fn unreachable_s3() -> Arc<dyn ObjectStore> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("docs")
            .with_region("us-east-1")
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap();
        Arc::new(s3)
    }

    #[tokio::test]
    async fn an_outage_keeps_the_cached_document() {
        for (store, _dir) in stores() {
            let flaky = Arc::new(Flaky {
                up: ObjectDocumentStore::new(Arc::clone(&store)),
                unreachable: ObjectDocumentStore::new(unreachable_s3()),
                down: Default::default(),
            });
            let cache: CachedDocument<Vec<String>> =
                CachedDocument::new(Arc::clone(&flaky) as Arc<dyn DocumentStore>, KEYS);
            cache.update(|_| vec!["k1".to_owned()]).await.unwrap();
            flaky.down.store(true, std::sync::atomic::Ordering::SeqCst);
            // Errors, not "nothing newer": the caller knows it is stale.
            assert!(cache.refresh().await.is_err());
            assert!(cache.update(|_| Vec::new()).await.is_err());
            let Cached::Present(keys) = cache.get() else {
                panic!("the copy was dropped");
            };
            assert_eq!(
                (keys.version, keys.body.clone()),
                (1, vec!["k1".to_owned()])
            );
            flaky.down.store(false, std::sync::atomic::Ordering::SeqCst);
            assert!(!cache.refresh().await.unwrap());
            assert_eq!(cache.get().version(), 1);
        }
    }

    /// `_system/` is nobody's tenant and no sweep's: a garbage collection
    /// with zero grace deletes an uncommitted tenant file beside it and
    /// leaves every document, even one named like a data file, and even a
    /// staging file of an upload.
    #[tokio::test]
    async fn documents_survive_garbage_collection_and_are_no_tenant() {
        use crate::storage::ObjectFileStore;
        use tf_application::ports::{FileMeta, FileStore};
        use tf_domain::Table;
        use tf_domain::TenantId;

        let dir = tempfile::tempdir().unwrap();
        let store = StorageLocation::Local(dir.path().to_path_buf())
            .build()
            .unwrap();
        let files = ObjectFileStore::new(Arc::clone(&store), "node-a")
            .with_local_root(Some(dir.path().to_path_buf()));
        let docs = ObjectDocumentStore::new(Arc::clone(&store));
        docs.put(&KEYS, None, b"{}".to_vec()).await.unwrap();

        let put = |path: &'static str| {
            let store = Arc::clone(&store);
            async move {
                store
                    .put(&Path::from(path), PutPayload::from_static(b"x"))
                    .await
                    .unwrap();
            }
        };
        let committed = "acme/otel_logs/date=2026-11-26/hour=10/kept.parquet";
        put(committed).await;
        put("acme/otel_logs/date=2026-11-26/hour=10/orphan.parquet").await;
        let lookalike = "_system/otel_logs/date=2026-11-26/hour=10/x.parquet";
        put(lookalike).await;
        let staging = dir.path().join("_system/keys/00000000000000000002.json#1");
        std::fs::write(&staging, b"{").unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let file = FileMeta {
            path: committed.to_owned(),
            size: 1,
            rows: 1,
            hour_start: 0,
            max_seq: 1,
            min_ts: 0,
            max_ts: 0,
            node: Some("node-a".to_owned()),
            services: None,
        };
        files
            .commit(&acme, Table::LOGS, vec![file], Vec::new())
            .await
            .unwrap();

        let gc = files.collect_garbage(Duration::ZERO, true).await.unwrap();
        assert_eq!(gc.orphans, 1);
        assert_eq!(docs.load(&KEYS).await.unwrap(), doc(1, "{}"));
        let left = names(&store).await;
        assert!(left.contains(&lookalike.to_owned()), "{left:?}");
        assert!(left.contains(&committed.to_owned()), "{left:?}");
        assert!(staging.exists());
        assert_eq!(
            files.list_tables().await.unwrap(),
            vec![(acme.clone(), Table::LOGS)]
        );
        let catalog = files.load_catalog().await.unwrap();
        assert_eq!(catalog.len(), 1);
        assert_eq!(catalog[0].tenant, acme);
        assert!(TenantId::parse(SYSTEM_PREFIX).is_err());
    }
}
