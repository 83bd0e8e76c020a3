//! What is recorded beside each data file as it is written (a flush or a
//! merge output): its distinct service names, for the manifest, and its
//! trace-id filter, in a sidecar object.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use tf_application::ports::{FileMeta, StoreError};
use tf_schema::trace_filter::{hashes, sidecar_path};

/// The trace ids of `batch`'s `trace_id` column, as filter fingerprints.
pub(crate) fn trace_fingerprints(batch: &RecordBatch, ids: &mut HashSet<(u64, u64)>) {
    let Some(col) = batch.column_by_name("trace_id") else {
        return;
    };
    let Ok(col) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) else {
        return;
    };
    if let Some(a) = col.as_any().downcast_ref::<arrow::array::StringArray>() {
        ids.extend(a.iter().flatten().map(|id| hashes(id.as_bytes())));
    }
}

/// The distinct `service_name`s of the batches of one file, as
/// [`FileMeta::services`] records them.
#[derive(Debug, Default)]
pub(crate) struct ServiceNames {
    names: BTreeSet<String>,
    /// More than [`FileMeta::MAX_SERVICES`], or a batch without the column.
    unknown: bool,
}

impl ServiceNames {
    pub(crate) fn add(&mut self, batch: &RecordBatch) {
        if self.unknown {
            return;
        }
        let col = batch
            .column_by_name("service_name")
            .and_then(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).ok());
        let Some(col) = col else {
            self.unknown = true;
            return;
        };
        let Some(a) = col.as_any().downcast_ref::<arrow::array::StringArray>() else {
            self.unknown = true;
            return;
        };
        let mut last = None;
        for name in a.iter().flatten() {
            if last == Some(name) {
                continue;
            }
            last = Some(name);
            if self.names.contains(name) {
                continue;
            }
            if self.names.len() == FileMeta::MAX_SERVICES {
                self.unknown = true;
                self.names.clear();
                return;
            }
            self.names.insert(name.to_owned());
        }
    }

    /// The names added since the last call, and starts afresh.
    pub(crate) fn take(&mut self) -> Option<Arc<[String]>> {
        let names = std::mem::take(&mut self.names);
        let unknown = std::mem::replace(&mut self.unknown, false);
        (!unknown).then(|| names.into_iter().collect())
    }
}

/// Writes the trace-id filter of the data file at `path` beside it.
pub(crate) async fn put_sidecar(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    filter: Vec<u8>,
) -> Result<(), StoreError> {
    let sidecar = sidecar_path(path);
    store
        .put(&Path::from(sidecar.as_str()), PutPayload::from(filter))
        .await
        .map(|_| ())
        .map_err(|e| StoreError::new(format!("writing {sidecar}"), e))
}
