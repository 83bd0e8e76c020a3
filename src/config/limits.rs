//! `[limits]`: what one tenant may send and ask for (see
//! [`crate::domain::limits`]). Defaults for every tenant, and
//! `[limits.tenants.<id>]` tables that replace some of them for one tenant.

use std::collections::BTreeMap;
use std::num::{NonZero, NonZeroU64};

use serde::{Deserialize, Serialize};

use super::{Config, TenantName};
use crate::domain::{LimitRules, TenantLimits};

/// `[limits]`: each limit 0 = unlimited (the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub ingest_items_per_sec: u64,
    pub ingest_bytes_per_sec: u64,
    /// Seconds of each rate that may arrive at once.
    pub ingest_burst_secs: NonZeroU64,
    pub max_active_series: u64,
    pub max_concurrent_queries: u64,
    pub query_memory_mb: u64,
    /// Tenant → the limits it has of its own.
    pub tenants: BTreeMap<TenantName, TenantLimitSettings>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            ingest_items_per_sec: 0,
            ingest_bytes_per_sec: 0,
            ingest_burst_secs: NonZero::new(5).unwrap(),
            max_active_series: 0,
            max_concurrent_queries: 0,
            query_memory_mb: 0,
            tenants: BTreeMap::new(),
        }
    }
}

/// `[limits.tenants.<id>]`: a key given replaces the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_items_per_sec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_bytes_per_sec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_burst_secs: Option<NonZeroU64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_active_series: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_queries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_memory_mb: Option<u64>,
}

impl LimitSettings {
    fn defaults(&self) -> TenantLimits {
        TenantLimits {
            ingest_items_per_sec: self.ingest_items_per_sec,
            ingest_bytes_per_sec: self.ingest_bytes_per_sec,
            ingest_burst_secs: self.ingest_burst_secs.get(),
            max_active_series: self.max_active_series,
            max_concurrent_queries: self.max_concurrent_queries,
            query_memory_mb: self.query_memory_mb,
        }
    }
}

impl TenantLimitSettings {
    fn over(&self, d: TenantLimits) -> TenantLimits {
        TenantLimits {
            ingest_items_per_sec: self.ingest_items_per_sec.unwrap_or(d.ingest_items_per_sec),
            ingest_bytes_per_sec: self.ingest_bytes_per_sec.unwrap_or(d.ingest_bytes_per_sec),
            ingest_burst_secs: self
                .ingest_burst_secs
                .map_or(d.ingest_burst_secs, NonZero::get),
            max_active_series: self.max_active_series.unwrap_or(d.max_active_series),
            max_concurrent_queries: self
                .max_concurrent_queries
                .unwrap_or(d.max_concurrent_queries),
            query_memory_mb: self.query_memory_mb.unwrap_or(d.query_memory_mb),
        }
    }
}

impl Config {
    /// The `[limits]` rules.
    pub fn limit_rules(&self) -> LimitRules {
        let defaults = self.limits.defaults();
        let tenants = self
            .limits
            .tenants
            .iter()
            .map(|(t, own)| (t.0.clone(), own.over(defaults)))
            .collect();
        LimitRules::new(defaults, tenants)
    }
}
