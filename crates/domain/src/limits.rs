//! Tenant limits: how much one tenant may send and ask for, so that no
//! tenant can slow down or starve another. Each limit is a number where 0
//! means unlimited; rules resolve from the tenant's own value, then the
//! default. The rate limits are token buckets ([`TokenBucket`]), pure
//! arithmetic over a time the caller passes in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::TenantId;

/// One kind of limit; its key is the configuration key that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    IngestItemsPerSec,
    IngestBytesPerSec,
    MaxActiveSeries,
    MaxConcurrentQueries,
    QueryMemoryMb,
}

impl Limit {
    pub const ALL: [Limit; 5] = [
        Limit::IngestItemsPerSec,
        Limit::IngestBytesPerSec,
        Limit::MaxActiveSeries,
        Limit::MaxConcurrentQueries,
        Limit::QueryMemoryMb,
    ];

    /// The key under `[limits]` (and `[limits.tenants.<id>]`).
    pub fn key(self) -> &'static str {
        match self {
            Limit::IngestItemsPerSec => "ingest_items_per_sec",
            Limit::IngestBytesPerSec => "ingest_bytes_per_sec",
            Limit::MaxActiveSeries => "max_active_series",
            Limit::MaxConcurrentQueries => "max_concurrent_queries",
            Limit::QueryMemoryMb => "query_memory_mb",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "limits.{}", self.key())
    }
}

/// The limits of one tenant; 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantLimits {
    pub ingest_items_per_sec: u64,
    pub ingest_bytes_per_sec: u64,
    /// How many seconds of the rate may arrive at once (the bucket's size);
    /// at least one.
    pub ingest_burst_secs: u64,
    /// Series seen recently per metric table.
    pub max_active_series: u64,
    pub max_concurrent_queries: u64,
    pub query_memory_mb: u64,
}

impl TenantLimits {
    pub const UNLIMITED: Self = Self {
        ingest_items_per_sec: 0,
        ingest_bytes_per_sec: 0,
        ingest_burst_secs: 1,
        max_active_series: 0,
        max_concurrent_queries: 0,
        query_memory_mb: 0,
    };

    /// The value of `limit` (0 = unlimited).
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::IngestItemsPerSec => self.ingest_items_per_sec,
            Limit::IngestBytesPerSec => self.ingest_bytes_per_sec,
            Limit::MaxActiveSeries => self.max_active_series,
            Limit::MaxConcurrentQueries => self.max_concurrent_queries,
            Limit::QueryMemoryMb => self.query_memory_mb,
        }
    }

    /// `limit`'s value, `None` when unlimited.
    pub fn bound(&self, limit: Limit) -> Option<u64> {
        Some(self.get(limit)).filter(|&v| v > 0)
    }

    /// True when no limit applies at all.
    pub fn is_unlimited(&self) -> bool {
        Limit::ALL.iter().all(|&l| self.get(l) == 0)
    }
}

/// The limits of every tenant: a default and per-tenant values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRules {
    default: TenantLimits,
    tenants: BTreeMap<TenantId, TenantLimits>,
}

impl Default for LimitRules {
    fn default() -> Self {
        Self::new(TenantLimits::UNLIMITED, BTreeMap::new())
    }
}

impl LimitRules {
    pub fn new(default: TenantLimits, tenants: BTreeMap<TenantId, TenantLimits>) -> Self {
        Self { default, tenants }
    }

    pub fn for_tenant(&self, tenant: &TenantId) -> &TenantLimits {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// True when no tenant has any limit.
    pub fn is_unlimited(&self) -> bool {
        self.default.is_unlimited() && self.tenants.values().all(TenantLimits::is_unlimited)
    }

    /// True when some tenant has `limit`.
    pub fn any(&self, limit: Limit) -> bool {
        self.default.get(limit) > 0 || self.tenants.values().any(|t| t.get(limit) > 0)
    }

    /// The configuration key that sets `limit` for `tenant`, for messages.
    pub fn key_for(&self, tenant: &TenantId, limit: Limit) -> String {
        match self.tenants.contains_key(tenant) {
            true => format!("limits.tenants.{tenant}.{}", limit.key()),
            false => limit.to_string(),
        }
    }
}

/// A tenant over one of its limits: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {tenant} is over its limit {key} = {value}{unit}; retry after {}s", self.retry_secs())]
pub struct LimitExceeded {
    pub tenant: TenantId,
    pub limit: Limit,
    /// The configuration key naming the limit (`limits.ingest_items_per_sec`
    /// or `limits.tenants.<id>.ingest_items_per_sec`).
    pub key: String,
    pub value: u64,
    unit: &'static str,
    pub retry_after: Duration,
}

impl LimitExceeded {
    /// Whole seconds to wait, rounded up, at least one (`Retry-After`).
    pub fn retry_secs(&self) -> u64 {
        (self.retry_after.as_secs_f64().ceil() as u64).max(1)
    }

    pub fn new(rules: &LimitRules, tenant: &TenantId, limit: Limit, retry_after: Duration) -> Self {
        let unit = match limit {
            Limit::IngestItemsPerSec => " items/s",
            Limit::IngestBytesPerSec => " bytes/s",
            Limit::MaxActiveSeries => " series",
            Limit::MaxConcurrentQueries => " queries",
            Limit::QueryMemoryMb => " MB",
        };
        Self {
            tenant: tenant.clone(),
            limit,
            key: rules.key_for(tenant, limit),
            value: rules.for_tenant(tenant).get(limit),
            unit,
            retry_after,
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `capacity` saved up.
///
/// A request costing more than the whole capacity is let through when the
/// bucket is full and leaves it in debt, so a single large request is
/// delayed, never refused forever; the debt is paid back at `rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    /// Nanoseconds on the caller's clock of the last refill.
    at_nanos: u64,
}

impl TokenBucket {
    /// A full bucket of `rate` per second and `burst_secs` seconds of it.
    pub fn new(rate: u64, burst_secs: u64, now_nanos: u64) -> Self {
        let rate = rate as f64;
        let capacity = rate * burst_secs.max(1) as f64;
        Self {
            rate,
            capacity,
            tokens: capacity,
            at_nanos: now_nanos,
        }
    }

    fn refill(&mut self, now_nanos: u64) {
        let elapsed = now_nanos.saturating_sub(self.at_nanos) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at_nanos = self.at_nanos.max(now_nanos);
    }

    /// How long until `cost` could be taken; zero when it can now.
    pub fn wait_for(&mut self, cost: u64, now_nanos: u64) -> Duration {
        self.refill(now_nanos);
        let need = (cost as f64).min(self.capacity);
        if self.tokens >= need || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((need - self.tokens) / self.rate).min(86_400.0))
    }

    /// How long until `cost` could be lent: zero while taking it leaves at
    /// most one burst of debt (a request costing more than two bursts needs
    /// a full bucket). For a request that was already let in on credit (its
    /// tenant's bucket held a token when its headers arrived): charging it
    /// in full, rather than refusing it for tokens that concurrent requests
    /// took meanwhile, keeps a tenant's refusals at its headers, where they
    /// cost nothing to decode. The debt is paid back at `rate` before the
    /// next request passes [`Self::wait_for`]`(1)`.
    pub fn lend_wait(&mut self, cost: u64, now_nanos: u64) -> Duration {
        self.refill(now_nanos);
        let need = (cost as f64).min(2.0 * self.capacity) - self.capacity;
        if self.tokens >= need || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((need - self.tokens) / self.rate).min(86_400.0))
    }

    /// Takes `cost` tokens (possibly into debt); call after [`Self::wait_for`]
    /// or [`Self::lend_wait`] answered zero for every bucket the request
    /// needs.
    pub fn take(&mut self, cost: u64) {
        self.tokens -= cost as f64;
    }

    /// Changes the rate and burst, keeping the tokens saved (up to the new
    /// capacity).
    pub fn reconfigure(&mut self, rate: u64, burst_secs: u64) {
        self.rate = rate as f64;
        self.capacity = self.rate * burst_secs.max(1) as f64;
        self.tokens = self.tokens.min(self.capacity);
    }

    pub fn is_full(&mut self, now_nanos: u64) -> bool {
        self.refill(now_nanos);
        self.tokens >= self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_bucket_lets_its_burst_through_then_the_rate() {
        let mut b = TokenBucket::new(100, 2, 0);
        assert_eq!(b.wait_for(200, 0), Duration::ZERO);
        b.take(200);
        // Empty: 50 more take half a second.
        assert_eq!(b.wait_for(50, 0), Duration::from_millis(500));
        assert_eq!(b.wait_for(50, S / 2), Duration::ZERO);
        b.take(50);
        assert_eq!(b.wait_for(1, S / 2), Duration::from_millis(10));
        // Idle time saves up to the capacity only.
        assert!(b.is_full(100 * S));
        assert_eq!(b.wait_for(200, 100 * S), Duration::ZERO);
        assert_eq!(b.wait_for(201, 100 * S), Duration::ZERO);
    }

    #[test]
    fn a_request_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_debt() {
        let mut b = TokenBucket::new(10, 1, 0);
        assert_eq!(b.wait_for(1000, 0), Duration::ZERO);
        b.take(1000);
        // 990 tokens of debt plus 1 for the next item: 99.1 s at 10/s.
        assert_eq!(b.wait_for(1, 0), Duration::from_millis(99_100));
        assert_eq!(b.wait_for(1, 100 * S), Duration::ZERO);
    }

    #[test]
    fn a_request_let_in_is_lent_up_to_one_burst() {
        let mut b = TokenBucket::new(100, 1, 0);
        // 16 requests of 60 let in together: a full bucket lends 100 more.
        for _ in 0..3 {
            assert_eq!(b.lend_wait(60, 0), Duration::ZERO);
            b.take(60);
        }
        assert_eq!(b.lend_wait(20, 0), Duration::ZERO);
        b.take(20);
        // 100 tokens of debt: nothing more, and the header check waits for
        // the debt to be paid back.
        assert_eq!(b.lend_wait(1, 0), Duration::from_millis(10));
        assert_eq!(b.wait_for(1, 0), Duration::from_millis(1010));
        assert_eq!(b.wait_for(1, S + S / 100), Duration::ZERO);
        // Larger than two bursts: only on a full bucket.
        assert_eq!(b.lend_wait(250, 3 * S), Duration::ZERO);
        b.take(250);
        assert_eq!(b.lend_wait(250, 3 * S), Duration::from_millis(2500));
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut b = TokenBucket::new(10, 1, 10 * S);
        b.take(10);
        assert_eq!(b.wait_for(10, 5 * S), Duration::from_secs(1));
    }

    #[test]
    fn tenant_values_replace_the_default_and_name_their_key() {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        let default = TenantLimits {
            ingest_items_per_sec: 1000,
            ..TenantLimits::UNLIMITED
        };
        let own = TenantLimits {
            ingest_items_per_sec: 5,
            ..TenantLimits::UNLIMITED
        };
        let rules = LimitRules::new(default, BTreeMap::from([(acme.clone(), own)]));
        assert_eq!(rules.for_tenant(&acme).ingest_items_per_sec, 5);
        assert_eq!(rules.for_tenant(&other).ingest_items_per_sec, 1000);
        assert_eq!(rules.for_tenant(&other).bound(Limit::MaxActiveSeries), None);
        assert!(rules.any(Limit::IngestItemsPerSec));
        assert!(!rules.any(Limit::QueryMemoryMb));
        let e = LimitExceeded::new(
            &rules,
            &acme,
            Limit::IngestItemsPerSec,
            Duration::from_millis(1500),
        );
        assert_eq!(
            e.to_string(),
            "tenant acme is over its limit limits.tenants.acme.ingest_items_per_sec = 5 items/s; retry after 2s"
        );
        let e = LimitExceeded::new(
            &rules,
            &other,
            Limit::IngestItemsPerSec,
            Duration::from_secs(3),
        );
        assert_eq!(
            e.to_string(),
            "tenant other is over its limit limits.ingest_items_per_sec = 1000 items/s; retry after 3s"
        );
        assert!(LimitRules::default().is_unlimited());
    }
}
