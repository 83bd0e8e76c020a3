//! Numbered versions under a directory of the store: `<dir>/<v:020>.json`.
//!
//! The number is zero-padded to 20 digits (every `u64`), so the names sort
//! lexicographically in numeric order and "every version after `v`" is one
//! listing that starts after `v`'s name. The table manifests and the
//! document store name their versions so.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use tf_application::ports::StoreError;

/// The object of version `v` under `dir`.
pub(crate) fn version_path(dir: &str, v: u64) -> Path {
    Path::from(format!("{dir}/{v:020}.json"))
}

/// The version a file name `<v>.json` names.
pub(crate) fn parse_version(name: &str) -> Option<u64> {
    name.strip_suffix(".json")?.parse().ok()
}

/// Every object under `dir` whose name sorts after version `known`'s:
/// one listing that starts there.
pub(crate) async fn listed_after(
    store: &dyn ObjectStore,
    dir: &str,
    known: u64,
) -> Result<Vec<ObjectMeta>, StoreError> {
    store
        .list_with_offset(Some(&Path::from(dir)), &version_path(dir, known))
        .try_collect()
        .await
        .map_err(|e| StoreError::new(format!("listing {dir}"), e))
}

/// The versions under `dir` after `known`, with their sizes, in no
/// particular order.
pub(crate) async fn versions_after(
    store: &dyn ObjectStore,
    dir: &str,
    known: u64,
) -> Result<Vec<(u64, u64)>, StoreError> {
    Ok(listed_after(store, dir, known)
        .await?
        .iter()
        .filter_map(|m| {
            let v = m.location.filename().and_then(parse_version)?;
            (v > known).then_some((v, m.size))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_sort_in_numeric_order() {
        assert_eq!(version_path("d", 7).as_ref(), "d/00000000000000000007.json");
        let names: Vec<String> = [9, 10, 100, u64::MAX]
            .map(|v| version_path("d", v).to_string())
            .to_vec();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(parse_version("00000000000000000010.json"), Some(10));
        assert_eq!(parse_version("00000000000000000010.checkpoint.json"), None);
        assert_eq!(parse_version("x.json"), None);
    }
}
