//! Tenant limits as the write and read paths apply them ([`TenantLimiter`]):
//! the ingest rate (a token bucket of items and one of bytes per tenant),
//! the active series per metric table, and the queries a tenant runs at
//! once. The rules are the domain's [`LimitRules`]; a tenant without limits
//! costs one map lookup and takes no lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use parking_lot::Mutex;

use tf_domain::{Limit, LimitExceeded, LimitRules, Table, TenantId, TokenBucket};

/// A series not seen for this long no longer counts as active (as in
/// Mimir, whose default idle timeout is 20 minutes).
pub const SERIES_IDLE: Duration = Duration::from_secs(20 * 60);

/// How often a table's series set drops its idle series.
const SERIES_PURGE_EVERY: Duration = Duration::from_secs(60);

/// Bucket entries kept before full (idle) buckets are dropped: a full
/// bucket behaves exactly like a missing one.
const BUCKETS_PRUNE_AT: usize = 1024;

/// What the identity of a metric series is made of: the columns every
/// metric table has that name the series (its points differ in time and
/// value only).
const SERIES_COLUMNS: [&str; 7] = [
    "workspace_id",
    "service_name",
    "resource_attributes",
    "scope_name",
    "scope_version",
    "metric_name",
    "attributes",
];

struct IngestBuckets {
    items: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl IngestBuckets {
    fn is_full(&mut self, now: u64) -> bool {
        self.items.as_mut().is_none_or(|b| b.is_full(now))
            && self.bytes.as_mut().is_none_or(|b| b.is_full(now))
    }
}

/// The series of one tenant's metric table seen within [`SERIES_IDLE`]:
/// series hash → last seen (seconds since the limiter started).
#[derive(Default)]
struct SeriesSet {
    seen: HashMap<u64, u32>,
    purged_at: u32,
}

/// Applies [`LimitRules`] to what tenants send and ask.
pub struct TenantLimiter {
    rules: Arc<LimitRules>,
    epoch: Instant,
    buckets: Mutex<HashMap<TenantId, IngestBuckets>>,
    series: Mutex<HashMap<(TenantId, Table), SeriesSet>>,
    queries: Mutex<HashMap<TenantId, u64>>,
    /// Hashes series identities; fixed per process.
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for TenantLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLimiter")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Default for TenantLimiter {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl TenantLimiter {
    pub fn new(rules: Arc<LimitRules>) -> Self {
        Self {
            rules,
            epoch: Instant::now(),
            buckets: Mutex::default(),
            series: Mutex::default(),
            queries: Mutex::default(),
            hasher: Default::default(),
        }
    }

    pub fn rules(&self) -> &LimitRules {
        &self.rules
    }

    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn exceeded(&self, tenant: &TenantId, limit: Limit, wait: Duration) -> LimitExceeded {
        LimitExceeded::new(&self.rules, tenant, limit, wait)
    }

    /// Takes `items` and `bytes` from the tenant's ingest buckets, or says
    /// which rate the request is over and when to retry (then nothing is
    /// taken). The request passed [`Self::precheck_ingest`] at its headers,
    /// so it is charged in full on credit of up to one burst
    /// ([`TokenBucket::lend_wait`]): concurrent requests let in together
    /// are not refused after being read and decoded, and the debt keeps the
    /// tenant's next requests out at their headers until it is paid back.
    pub fn admit_ingest(
        &self,
        tenant: &TenantId,
        items: u64,
        bytes: u64,
    ) -> Result<(), LimitExceeded> {
        let l = self.rules.for_tenant(tenant);
        if l.ingest_items_per_sec == 0 && l.ingest_bytes_per_sec == 0 {
            return Ok(());
        }
        let now = self.now_nanos();
        let mut map = self.buckets.lock();
        if map.len() >= BUCKETS_PRUNE_AT {
            map.retain(|_, b| !b.is_full(now));
        }
        let b = map.entry(tenant.clone()).or_insert_with(|| IngestBuckets {
            items: l
                .bound(Limit::IngestItemsPerSec)
                .map(|r| TokenBucket::new(r, l.ingest_burst_secs, now)),
            bytes: l
                .bound(Limit::IngestBytesPerSec)
                .map(|r| TokenBucket::new(r, l.ingest_burst_secs, now)),
        });
        for (bucket, cost, limit) in [
            (&mut b.items, items, Limit::IngestItemsPerSec),
            (&mut b.bytes, bytes, Limit::IngestBytesPerSec),
        ] {
            if let Some(bucket) = bucket {
                let wait = bucket.lend_wait(cost, now);
                if !wait.is_zero() {
                    return Err(self.exceeded(tenant, limit, wait));
                }
            }
        }
        if let Some(bucket) = &mut b.items {
            bucket.take(items);
        }
        if let Some(bucket) = &mut b.bytes {
            bucket.take(bytes);
        }
        Ok(())
    }

    /// Refuses a request of `tenant` before its body is read when its
    /// ingest buckets hold less than one token (it is paying back a burst):
    /// a flooding tenant's requests then cost no decoding.
    pub fn precheck_ingest(&self, tenant: &TenantId) -> Result<(), LimitExceeded> {
        let l = self.rules.for_tenant(tenant);
        if l.ingest_items_per_sec == 0 && l.ingest_bytes_per_sec == 0 {
            return Ok(());
        }
        let now = self.now_nanos();
        let mut map = self.buckets.lock();
        let Some(b) = map.get_mut(tenant) else {
            return Ok(());
        };
        for (bucket, limit) in [
            (&mut b.items, Limit::IngestItemsPerSec),
            (&mut b.bytes, Limit::IngestBytesPerSec),
        ] {
            if let Some(bucket) = bucket {
                let wait = bucket.wait_for(1, now);
                if !wait.is_zero() {
                    return Err(self.exceeded(tenant, limit, wait));
                }
            }
        }
        Ok(())
    }

    /// True when `tenant`'s new series are limited in metric tables.
    pub fn limits_series(&self, tenant: &TenantId) -> bool {
        self.rules
            .for_tenant(tenant)
            .bound(Limit::MaxActiveSeries)
            .is_some()
    }

    /// Applies the active-series limit to one converted batch of a metric
    /// table: rows of series already active, and new series while the
    /// table has room, are kept. Returns the rows to keep, or `None` when
    /// all are (always, for a tenant without the limit).
    pub fn admit_series(
        &self,
        tenant: &TenantId,
        table: Table,
        batch: &RecordBatch,
    ) -> Option<BooleanArray> {
        let max = self
            .rules
            .for_tenant(tenant)
            .bound(Limit::MaxActiveSeries)?;
        let hashes = self.series_hashes(batch);
        let now = self.epoch.elapsed().as_secs() as u32;
        let mut map = self.series.lock();
        let set = map.entry((tenant.clone(), table)).or_default();
        if now.saturating_sub(set.purged_at) >= SERIES_PURGE_EVERY.as_secs() as u32 {
            let idle = SERIES_IDLE.as_secs() as u32;
            set.seen
                .retain(|_, &mut seen| now.saturating_sub(seen) < idle);
            set.purged_at = now;
        }
        let mut refused = false;
        let keep: BooleanArray = hashes
            .iter()
            .map(|h| {
                let known = set.seen.contains_key(h);
                let admitted = known || (set.seen.len() as u64) < max;
                if admitted {
                    set.seen.insert(*h, now);
                } else {
                    refused = true;
                }
                Some(admitted)
            })
            .collect();
        refused.then_some(keep)
    }

    /// The series identity of each row of a metric batch.
    fn series_hashes(&self, batch: &RecordBatch) -> Vec<u64> {
        let rows = batch.num_rows();
        let mut hashers: Vec<_> = (0..rows).map(|_| self.hasher.build_hasher()).collect();
        for name in SERIES_COLUMNS {
            let Some(col) = batch.column_by_name(name) else {
                continue;
            };
            if let Some(s) = col.as_string_opt::<i32>() {
                for (h, v) in hashers.iter_mut().zip(s.iter()) {
                    h.write(v.unwrap_or_default().as_bytes());
                    h.write_u8(0xff);
                }
            } else if let Some(m) = col.as_map_opt() {
                let keys = m.keys().as_string_opt::<i32>();
                let values = m.values().as_string_opt::<i32>();
                let (Some(keys), Some(values)) = (keys, values) else {
                    continue;
                };
                let offsets = m.value_offsets();
                for (row, h) in hashers.iter_mut().enumerate() {
                    for e in offsets[row] as usize..offsets[row + 1] as usize {
                        h.write(keys.value(e).as_bytes());
                        h.write_u8(0xfe);
                        h.write(values.value(e).as_bytes());
                        h.write_u8(0xff);
                    }
                    h.write_u8(0xfd);
                }
            }
        }
        hashers.into_iter().map(|h| h.finish()).collect()
    }

    /// Active series of a tenant's table (for tests and `/metrics`).
    pub fn active_series(&self, tenant: &TenantId, table: Table) -> usize {
        self.series
            .lock()
            .get(&(tenant.clone(), table))
            .map_or(0, |s| s.seen.len())
    }

    /// A slot for one query of `tenant`, held until the permit is dropped;
    /// refused when the tenant already runs `max_concurrent_queries`.
    pub fn begin_query(self: &Arc<Self>, tenant: &TenantId) -> Result<QueryPermit, LimitExceeded> {
        let max = self
            .rules
            .for_tenant(tenant)
            .bound(Limit::MaxConcurrentQueries);
        let Some(max) = max else {
            return Ok(QueryPermit { held: None });
        };
        let mut running = self.queries.lock();
        let n = running.entry(tenant.clone()).or_default();
        if *n >= max {
            return Err(self.exceeded(tenant, Limit::MaxConcurrentQueries, Duration::from_secs(1)));
        }
        *n += 1;
        Ok(QueryPermit {
            held: Some((Arc::clone(self), tenant.clone())),
        })
    }
}

/// A running query's slot (see [`TenantLimiter::begin_query`]).
pub struct QueryPermit {
    held: Option<(Arc<TenantLimiter>, TenantId)>,
}

impl Drop for QueryPermit {
    fn drop(&mut self) {
        if let Some((limiter, tenant)) = self.held.take() {
            let mut running = limiter.queries.lock();
            if let Some(n) = running.get_mut(&tenant) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    running.remove(&tenant);
                }
            }
        }
    }
}

/// Refusals per limit, for one tenant.
#[derive(Debug, Default)]
pub struct LimitCounters([AtomicU64; Limit::ALL.len()]);

impl LimitCounters {
    pub fn add(&self, limit: Limit) {
        self.0[Limit::ALL.iter().position(|&l| l == limit).unwrap_or(0)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// `(limit, refusals)` of the limits that refused anything.
    pub fn snapshot(&self) -> Vec<(Limit, u64)> {
        Limit::ALL
            .iter()
            .zip(&self.0)
            .map(|(&l, n)| (l, n.load(Ordering::Relaxed)))
            .filter(|e| e.1 > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Array, MapBuilder, StringBuilder};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use tf_domain::TenantLimits;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn limiter(acme: TenantLimits) -> Arc<TenantLimiter> {
        let rules = LimitRules::new(
            TenantLimits::UNLIMITED,
            BTreeMap::from([(tenant("acme"), acme)]),
        );
        Arc::new(TenantLimiter::new(Arc::new(rules)))
    }

    #[test]
    fn the_ingest_rate_of_one_tenant_leaves_others_alone() {
        let l = limiter(TenantLimits {
            ingest_items_per_sec: 100,
            ingest_bytes_per_sec: 1000,
            ..TenantLimits::UNLIMITED
        });
        l.admit_ingest(&tenant("acme"), 60, 10).unwrap();
        // Let in at their headers, requests are charged in full on credit
        // of up to one burst (100 items).
        l.admit_ingest(&tenant("acme"), 60, 10).unwrap();
        l.admit_ingest(&tenant("acme"), 60, 10).unwrap();
        let e = l.admit_ingest(&tenant("acme"), 60, 10).unwrap_err();
        assert_eq!(e.limit, Limit::IngestItemsPerSec);
        assert_eq!(e.key, "limits.tenants.acme.ingest_items_per_sec");
        assert!(e.retry_after > Duration::from_millis(300), "{e}");
        // Refused requests take nothing: 20 more items still fit.
        l.admit_ingest(&tenant("acme"), 20, 10).unwrap();
        let e = l.admit_ingest(&tenant("acme"), 0, 2000).unwrap_err();
        assert_eq!(e.limit, Limit::IngestBytesPerSec);
        // In debt: the next request is refused before it is read.
        let e = l.precheck_ingest(&tenant("acme")).unwrap_err();
        assert_eq!(e.limit, Limit::IngestItemsPerSec);
        assert!(e.retry_after > Duration::from_millis(900), "{e}");
        l.precheck_ingest(&tenant("beta")).unwrap();
        for _ in 0..1000 {
            l.admit_ingest(&tenant("beta"), 1_000_000, 1 << 30).unwrap();
        }
    }

    fn metric_batch(series: &[(&str, &str)]) -> RecordBatch {
        let mut names = StringBuilder::new();
        let mut attrs = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for (name, host) in series {
            names.append_value(name);
            attrs.keys().append_value("host");
            attrs.values().append_value(host);
            attrs.append(true).unwrap();
        }
        let names = names.finish();
        let attrs = attrs.finish();
        let schema = Schema::new(vec![
            Field::new("metric_name", names.data_type().clone(), false),
            Field::new("attributes", attrs.data_type().clone(), false),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(names), Arc::new(attrs)]).unwrap()
    }

    #[test]
    fn new_series_beyond_the_limit_are_refused_and_known_ones_keep_flowing() {
        let l = limiter(TenantLimits {
            max_active_series: 2,
            ..TenantLimits::UNLIMITED
        });
        let acme = tenant("acme");
        let first = metric_batch(&[("cpu", "a"), ("cpu", "a"), ("cpu", "b")]);
        assert_eq!(l.admit_series(&acme, Table::METRICS_GAUGE, &first), None);
        let next = metric_batch(&[("cpu", "c"), ("cpu", "a"), ("mem", "a"), ("cpu", "b")]);
        let keep = l
            .admit_series(&acme, Table::METRICS_GAUGE, &next)
            .expect("some refused");
        assert_eq!(
            keep.iter().collect::<Vec<_>>(),
            [Some(false), Some(true), Some(false), Some(true)]
        );
        assert_eq!(l.active_series(&acme, Table::METRICS_GAUGE), 2);
        // Each metric table counts its own series; other tenants are free.
        assert_eq!(
            l.admit_series(&acme, Table::METRICS_SUM, &next),
            Some(
                [Some(true), Some(true), Some(false), Some(false)]
                    .into_iter()
                    .collect()
            )
        );
        assert_eq!(
            l.admit_series(&tenant("beta"), Table::METRICS_GAUGE, &next),
            None
        );
    }

    #[test]
    fn a_tenant_runs_at_most_its_queries_at_once() {
        let l = limiter(TenantLimits {
            max_concurrent_queries: 2,
            ..TenantLimits::UNLIMITED
        });
        let acme = tenant("acme");
        let a = l.begin_query(&acme).unwrap();
        let _b = l.begin_query(&acme).unwrap();
        let e = l.begin_query(&acme).err().unwrap();
        assert_eq!(e.limit, Limit::MaxConcurrentQueries);
        let _others: Vec<_> = (0..10)
            .map(|_| l.begin_query(&tenant("beta")).unwrap())
            .collect();
        drop(a);
        let _c = l.begin_query(&acme).unwrap();
    }
}
