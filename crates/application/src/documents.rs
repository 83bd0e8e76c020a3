//! Cluster-wide documents: small state that every node sharing the store
//! reads and writes (API keys, alert rules and their states, leases).
//!
//! A collection holds one JSON document, replaced whole by each write, at
//! versions numbered 1, 2, … A write names the version it read and creates
//! the next one only if that is still the newest: of two nodes writing on
//! the same version, one wins and the other gets [`PutOutcome::Conflict`],
//! reads again and decides again (optimistic concurrency; nothing is merged).
//! [`CachedDocument`] keeps a node's copy of one collection, typed, and
//! re-reads it only when a newer version exists.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::StoreError;

/// Writes a read-modify-write tries before giving up on conflicts.
const MAX_UPDATE_ATTEMPTS: usize = 16;

/// Why a collection name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a collection name is 1-64 lowercase ASCII letters, digits, '_' or '-', starting with a letter (got {0:?})"
)]
pub struct CollectionError(String);

/// The name of a collection, e.g. `keys` or `alert_rules`: 1–64 lowercase
/// ASCII letters, digits, `_` or `-`, starting with a letter. A safe path
/// segment, and one name on case-insensitive file systems too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Collection(Cow<'static, str>);

const MAX_COLLECTION_LEN: usize = 64;

const fn valid_collection(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > MAX_COLLECTION_LEN || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

impl Collection {
    pub fn parse(s: &str) -> Result<Self, CollectionError> {
        if valid_collection(s) {
            Ok(Self(Cow::Owned(s.to_owned())))
        } else {
            Err(CollectionError(s.chars().take(80).collect()))
        }
    }

    /// A name fixed in the code, checked when the program is compiled if
    /// used in a constant (`const KEYS: Collection =
    /// Collection::from_static("keys");`), else on first use.
    ///
    /// # Panics
    /// If `s` is not a valid name.
    pub const fn from_static(s: &'static str) -> Self {
        assert!(valid_collection(s), "invalid collection name");
        Self(Cow::Borrowed(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Collection({:?})", &*self.0)
    }
}

/// A document at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// 1 for the first version written, one more for each write after it.
    pub version: u64,
    pub body: T,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The document is at this version, which holds the body written.
    Written(u64),
    /// The version the caller read is not the newest (another node wrote
    /// since): nothing was written. Read again and decide again.
    Conflict,
}

/// Where cluster-wide documents live: shared by every node on the same
/// store. Bodies are JSON documents, stored and returned as given.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// The collection's newest version if it is newer than `known` (0 for
    /// none); `None` when `known` is the newest or nothing was written. When
    /// nothing changed this costs one listing of the version names after
    /// `known`.
    async fn load_since(
        &self,
        collection: &Collection,
        known: u64,
    ) -> Result<Option<Versioned<Vec<u8>>>, StoreError>;

    /// The collection's newest version; `None` when nothing was written.
    async fn load(
        &self,
        collection: &Collection,
    ) -> Result<Option<Versioned<Vec<u8>>>, StoreError> {
        self.load_since(collection, 0).await
    }

    /// Writes `body` as the version after `expected`, the version the caller
    /// read (`None`: it found none) — only if `expected` is still the
    /// newest; otherwise `Conflict` and nothing is written. Of concurrent
    /// writers naming the same version, exactly one gets `Written`.
    async fn put(
        &self,
        collection: &Collection,
        expected: Option<u64>,
        body: Vec<u8>,
    ) -> Result<PutOutcome, StoreError>;
}

/// What a node knows of a collection.
#[derive(Debug)]
pub enum Cached<T> {
    /// Nothing yet: no read has succeeded. Not the same as `Absent` — a
    /// caller deciding access (API keys) must refuse, not read it as
    /// "nothing configured".
    NotLoaded,
    /// The store holds no version.
    Absent,
    Present(Arc<Versioned<T>>),
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        match self {
            Cached::NotLoaded => Cached::NotLoaded,
            Cached::Absent => Cached::Absent,
            Cached::Present(v) => Cached::Present(Arc::clone(v)),
        }
    }
}

impl<T> Cached<T> {
    /// The version known (0 for none).
    pub fn version(&self) -> u64 {
        match self {
            Cached::Present(v) => v.version,
            _ => 0,
        }
    }
}

/// A node's copy of one collection's document, decoded as `T`. It changes
/// only by a successful read of a newer version or a successful write:
/// when the store is unreachable or a version does not decode, the copy
/// stays as it was and the error is returned.
pub struct CachedDocument<T> {
    store: Arc<dyn DocumentStore>,
    collection: Collection,
    current: parking_lot::RwLock<Cached<T>>,
    /// One read or write at a time, so a slower one never replaces the copy
    /// with an older version.
    busy: tokio::sync::Mutex<()>,
}

impl<T> CachedDocument<T>
where
    T: Serialize + DeserializeOwned + Send + Sync,
{
    /// Nothing is read until [`Self::refresh`].
    pub fn new(store: Arc<dyn DocumentStore>, collection: Collection) -> Self {
        Self {
            store,
            collection,
            current: parking_lot::RwLock::new(Cached::NotLoaded),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    pub fn collection(&self) -> &Collection {
        &self.collection
    }

    /// The copy as of the last successful read or write; no I/O.
    pub fn get(&self) -> Cached<T> {
        self.current.read().clone()
    }

    /// Reads the collection if a newer version than the copy's exists (one
    /// listing when none does). Returns whether the copy changed. On error
    /// the copy is kept.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let _busy = self.busy.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<bool, StoreError> {
        let known = self.current.read().clone();
        match self
            .store
            .load_since(&self.collection, known.version())
            .await?
        {
            Some(newer) => {
                let doc = self.decode(newer)?;
                *self.current.write() = Cached::Present(Arc::new(doc));
                Ok(true)
            }
            None if matches!(known, Cached::NotLoaded) => {
                *self.current.write() = Cached::Absent;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Read-modify-write: `change` gets the newest document (`None` if there
    /// is none) and returns the next one, which is written on top of it. On
    /// a conflict the collection is read again and `change` called again,
    /// so it must not have effects of its own. Returns what was written.
    pub async fn update(
        &self,
        mut change: impl FnMut(Option<&T>) -> T + Send,
    ) -> Result<Arc<Versioned<T>>, StoreError> {
        let _busy = self.busy.lock().await;
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            self.refresh_locked().await?;
            let current = self.current.read().clone();
            let (expected, next) = match &current {
                Cached::Present(v) => (Some(v.version), change(Some(&v.body))),
                _ => (None, change(None)),
            };
            let body = serde_json::to_vec(&next).map_err(|e| {
                StoreError::new(format!("encoding the {} document", self.collection), e)
            })?;
            match self.store.put(&self.collection, expected, body).await? {
                PutOutcome::Written(version) => {
                    let doc = Arc::new(Versioned {
                        version,
                        body: next,
                    });
                    *self.current.write() = Cached::Present(Arc::clone(&doc));
                    return Ok(doc);
                }
                PutOutcome::Conflict => continue,
            }
        }
        Err(StoreError::new(
            format!("writing the {} document", self.collection),
            std::io::Error::other("too many concurrent writes"),
        ))
    }

    fn decode(&self, doc: Versioned<Vec<u8>>) -> Result<Versioned<T>, StoreError> {
        let body = serde_json::from_slice(&doc.body).map_err(|e| {
            StoreError::new(
                format!("parsing the {} document v{}", self.collection, doc.version),
                e,
            )
        })?;
        Ok(Versioned {
            version: doc.version,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::MemoryDocuments;

    const RULES: Collection = Collection::from_static("alert_rules");

    #[test]
    fn collection_names_are_safe_path_segments() {
        for good in ["keys", "alert_rules", "leases-v2", "a", &"x".repeat(64)] {
            assert_eq!(Collection::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "_system",
            "../keys",
            "a/b",
            ".",
            "Keys",
            "1keys",
            "keys.json",
            "a b",
            "ключи",
            &"x".repeat(65),
        ] {
            let err = Collection::parse(bad).unwrap_err();
            assert!(err.to_string().contains("collection name"), "{bad}: {err}");
        }
        assert_eq!(RULES.as_str(), "alert_rules");
    }

    #[test]
    #[should_panic(expected = "invalid collection name")]
    fn a_static_name_is_checked_too() {
        let _ = Collection::from_static("Bad/Name");
    }

    fn cache(store: &Arc<MemoryDocuments>) -> CachedDocument<Vec<String>> {
        CachedDocument::new(Arc::clone(store) as Arc<dyn DocumentStore>, RULES)
    }

    #[tokio::test]
    async fn the_fake_conflicts_like_the_store() {
        let store = MemoryDocuments::default();
        assert_eq!(store.load(&RULES).await.unwrap(), None);
        assert_eq!(
            store.put(&RULES, None, b"[]".to_vec()).await.unwrap(),
            PutOutcome::Written(1)
        );
        // Both read version 1; the second writer loses.
        assert_eq!(
            store.put(&RULES, Some(1), b"[1]".to_vec()).await.unwrap(),
            PutOutcome::Written(2)
        );
        for stale in [None, Some(1), Some(3)] {
            assert_eq!(
                store.put(&RULES, stale, b"[2]".to_vec()).await.unwrap(),
                PutOutcome::Conflict,
                "{stale:?}"
            );
        }
        assert_eq!(store.load_since(&RULES, 2).await.unwrap(), None);
        assert_eq!(
            store.load_since(&RULES, 1).await.unwrap(),
            Some(Versioned {
                version: 2,
                body: b"[1]".to_vec()
            })
        );
    }

    /// The copy follows the store only forward, by successful reads: an
    /// outage keeps it, and so does a version that does not decode.
    #[tokio::test]
    async fn a_cached_document_keeps_its_copy_through_an_outage() {
        let store = Arc::new(MemoryDocuments::default());
        let node = cache(&store);
        assert!(matches!(node.get(), Cached::NotLoaded));
        // The first read tells "absent" from "not loaded".
        assert!(node.refresh().await.unwrap());
        assert!(matches!(node.get(), Cached::Absent));
        assert!(!node.refresh().await.unwrap());

        let other = cache(&store);
        other.update(|_| vec!["cpu".to_owned()]).await.unwrap();
        assert!(node.refresh().await.unwrap());
        let Cached::Present(doc) = node.get() else {
            panic!("not loaded");
        };
        assert_eq!((doc.version, doc.body.clone()), (1, vec!["cpu".to_owned()]));

        other
            .update(|rules| [rules.unwrap().clone(), vec!["disk".to_owned()]].concat())
            .await
            .unwrap();
        store.set_down(true);
        assert!(node.refresh().await.is_err());
        assert_eq!(node.get().version(), 1);
        assert!(node.update(|_| Vec::new()).await.is_err());
        assert_eq!(node.get().version(), 1);
        store.set_down(false);

        store
            .put(&RULES, Some(2), b"not json".to_vec())
            .await
            .unwrap();
        let err = node.refresh().await.unwrap_err().to_string();
        assert!(err.contains("parsing the alert_rules document v3"), "{err}");
        assert_eq!(node.get().version(), 1);

        // A store that never answered leaves nothing known.
        store.set_down(true);
        let fresh = cache(&store);
        assert!(fresh.refresh().await.is_err());
        assert!(matches!(fresh.get(), Cached::NotLoaded));
    }

    /// Concurrent read-modify-writes of several nodes each land once: a
    /// loser of a race reads the winner's version and applies its change
    /// on top.
    #[tokio::test]
    async fn concurrent_updates_all_land() {
        let store = Arc::new(MemoryDocuments::default());
        let nodes: Vec<_> = (0..4).map(|_| Arc::new(cache(&store))).collect();
        let mut tasks = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for j in 0..5 {
                let node = Arc::clone(node);
                tasks.push(tokio::spawn(async move {
                    node.update(|rules| {
                        let mut rules = rules.cloned().unwrap_or_default();
                        rules.push(format!("{i}-{j}"));
                        rules
                    })
                    .await
                    .unwrap();
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let reader = cache(&store);
        reader.refresh().await.unwrap();
        let Cached::Present(doc) = reader.get() else {
            panic!("nothing written");
        };
        assert_eq!(doc.version, 20);
        let mut rules = doc.body.clone();
        rules.sort();
        rules.dedup();
        assert_eq!(rules.len(), 20);
    }
}
