//! Trace lookups that do not open the whole store: each traces file has a
//! trace-id Bloom filter beside it (`<file>.tid`, written with the file).
//! A scan whose filters pin `trace_id` to one value keeps only the files
//! whose filter may hold it, before DataFusion opens anything. Filters are
//! immutable like their files, so they are cached by path after the first
//! read; a file without a filter (written before filters existed, or
//! unreadable) is kept.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use tf_application::ports::FileMeta;
use tf_schema::trace_filter::{TraceIdFilter, sidecar_path};

/// Filters read at once while pruning.
const CONCURRENT_READS: usize = 32;

/// The trace id a filter list pins `trace_id` to (`trace_id = 'x'`, either
/// side), if any.
pub(crate) fn pinned_trace_id(filters: &[Expr]) -> Option<String> {
    let literal = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    };
    let is_col = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "trace_id");
    filters.iter().find_map(|f| match f {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_col(left) {
                literal(right)
            } else if is_col(right) {
                literal(left)
            } else {
                None
            }
        }
        _ => None,
    })
}

/// The filters of traces files, by path.
pub(crate) struct TraceFilters {
    store: Arc<dyn ObjectStore>,
    /// `None`: the file has no readable filter (it may hold any trace).
    cache: moka::sync::Cache<String, Option<Arc<TraceIdFilter>>>,
}

impl std::fmt::Debug for TraceFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceFilters")
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl TraceFilters {
    /// Keeps at most `max_bytes` of filters in memory.
    pub(crate) fn new(store: Arc<dyn ObjectStore>, max_bytes: u64) -> Self {
        Self {
            store,
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Option<Arc<TraceIdFilter>>| {
                    let bytes = k.len() + v.as_ref().map_or(0, |f| f.encoded_len());
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    async fn filter(&self, path: &str) -> Option<Arc<TraceIdFilter>> {
        if let Some(f) = self.cache.get(path) {
            return f;
        }
        let sidecar = Path::from(sidecar_path(path));
        let loaded = match self.store.get(&sidecar).await {
            Ok(r) => r
                .bytes()
                .await
                .ok()
                .and_then(|b| TraceIdFilter::from_bytes(&b))
                .map(Arc::new),
            Err(_) => None,
        };
        self.cache.insert(path.to_owned(), loaded.clone());
        loaded
    }

    /// The files that may hold spans of `trace_id`, in their order.
    pub(crate) async fn may_hold<'a>(
        &self,
        files: Vec<&'a FileMeta>,
        trace_id: &str,
    ) -> Vec<&'a FileMeta> {
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let keep: Vec<bool> = futures::stream::iter(paths)
            .map(|path| async move {
                self.filter(&path)
                    .await
                    .is_none_or(|filter| filter.may_contain(trace_id))
            })
            .buffered(CONCURRENT_READS)
            .collect()
            .await;
        files
            .into_iter()
            .zip(keep)
            .filter_map(|(f, k)| k.then_some(f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn a_trace_id_is_pinned_by_equality_only() {
        assert_eq!(
            pinned_trace_id(&[col("trace_id").eq(lit("ab"))]).as_deref(),
            Some("ab")
        );
        assert_eq!(
            pinned_trace_id(&[lit("cd").eq(col("trace_id"))]).as_deref(),
            Some("cd")
        );
        assert_eq!(
            pinned_trace_id(&[col("span_id").eq(lit("ab")), col("trace_id").eq(lit("ef"))])
                .as_deref(),
            Some("ef")
        );
        assert_eq!(pinned_trace_id(&[col("trace_id").not_eq(lit("ab"))]), None);
        assert_eq!(
            pinned_trace_id(&[col("trace_id")
                .eq(lit("a"))
                .or(col("trace_id").eq(lit("b")))]),
            None
        );
    }
}
