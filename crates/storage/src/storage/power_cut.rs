//! `PowerCutStore`: an in-memory object store that models a disk's page
//! cache, for tests of what survives a power cut.
//!
//! Writes and deletes land in a volatile view that reads see at once (as a
//! page cache does). Only [`Syncer::sync`] of a location copies that
//! location's current state to the durable view. [`PowerCutStore::power_cut`]
//! throws the volatile view away: what was never synced is gone, deletes not
//! synced are undone. Use it under [`super::durable::DurableStore`] to check
//! that every commit is durable before it counts, or alone to see what a
//! store that never syncs would lose.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parking_lot::{Mutex, RwLock};

use super::durable::Syncer;

#[derive(Debug, Default)]
pub struct PowerCutStore {
    volatile: RwLock<Arc<InMemory>>,
    durable: Mutex<BTreeMap<Path, Bytes>>,
}

impl fmt::Display for PowerCutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PowerCutStore")
    }
}

impl PowerCutStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn view(&self) -> Arc<InMemory> {
        Arc::clone(&self.volatile.read())
    }

    /// Loses everything not synced: afterwards the store holds exactly the
    /// durable view.
    pub async fn power_cut(&self) {
        let fresh = Arc::new(InMemory::new());
        let durable = self.durable.lock().clone();
        for (path, bytes) in durable {
            // InMemory's put cannot fail.
            let _ = fresh.put(&path, PutPayload::from(bytes)).await;
        }
        *self.volatile.write() = fresh;
    }
}

#[async_trait]
impl Syncer for PowerCutStore {
    async fn sync(&self, location: &Path) -> object_store::Result<()> {
        match self.view().get(location).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                self.durable.lock().insert(location.clone(), bytes);
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.durable.lock().remove(location);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for PowerCutStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.view().put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.view().put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.view().get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.view().get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.view().delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.view().list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.view().list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.view().copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::durable::DurableStore;

    #[tokio::test]
    async fn only_synced_state_survives() {
        let fake = Arc::new(PowerCutStore::new());
        let (a, b) = (Path::from("a"), Path::from("b"));
        fake.put(&a, PutPayload::from_static(b"1")).await.unwrap();
        fake.sync(&a).await.unwrap();
        fake.put(&b, PutPayload::from_static(b"2")).await.unwrap();
        fake.delete(&a).await.unwrap();
        assert!(fake.get(&a).await.is_err());
        fake.power_cut().await;
        // The unsynced delete is undone, the unsynced put is lost.
        assert_eq!(fake.get(&a).await.unwrap().bytes().await.unwrap(), "1");
        assert!(fake.get(&b).await.is_err());

        // Through DurableStore every put is synced before it returns.
        let durable = DurableStore::new(Arc::clone(&fake) as _, Arc::clone(&fake) as _);
        durable
            .put(&b, PutPayload::from_static(b"3"))
            .await
            .unwrap();
        fake.power_cut().await;
        assert_eq!(fake.get(&b).await.unwrap().bytes().await.unwrap(), "3");
    }
}
