//! `[retention]`: how long data is kept, per table and tenant. Periods,
//! table names and tenant ids are parsed when the file is read, so a bad
//! one names its key (`retention.tenants.acme.otel_logs`).

use std::collections::BTreeMap;
use std::num::{NonZero, NonZeroU64};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::domain::retention::RetentionPeriodError;
use crate::domain::tenancy::IdError;
use crate::domain::{RetentionPeriod, RetentionRules, Table, TenantId, TenantRetention};

/// `[retention]`: periods like "30d", "36h", "1w2d"; "0" keeps forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    pub default: Period,
    pub check_interval_secs: NonZeroU64,
    /// Table name → period.
    pub tables: BTreeMap<TableName, Period>,
    /// Tenant → (table name or "default") → period.
    pub tenants: BTreeMap<TenantName, BTreeMap<TenantTable, Period>>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            default: Period(RetentionPeriod::FOREVER),
            check_interval_secs: NonZero::new(300).unwrap(),
            tables: BTreeMap::new(),
            tenants: BTreeMap::new(),
        }
    }
}

/// A retention period as the file spells it: "30d", "36h", "1w2d", or "0"
/// for forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period(pub RetentionPeriod);

impl FromStr for Period {
    type Err = RetentionPeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RetentionPeriod::parse(s).map(Self)
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        match p.0.is_forever() {
            true => "0".into(),
            false => p.0.to_string(),
        }
    }
}

/// The name of a stored table, e.g. `otel_logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableName(pub Table);

impl FromStr for TableName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Table::parse(name).map(Self)
    }
}

impl From<TableName> for String {
    fn from(t: TableName) -> String {
        t.0.name().to_owned()
    }
}

/// A key of `[retention.tenants.<tenant>]`: a table, or "default" for all
/// of the tenant's tables without a rule of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TenantTable {
    Default,
    Table(TableName),
}

impl FromStr for TenantTable {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "default" => Ok(Self::Default),
            _ => name.parse().map(Self::Table),
        }
    }
}

impl From<TenantTable> for String {
    fn from(t: TenantTable) -> String {
        match t {
            TenantTable::Default => "default".into(),
            TenantTable::Table(t) => t.into(),
        }
    }
}

/// A tenant id as a key of `[retention.tenants]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(pub TenantId);

impl FromStr for TenantName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s).map(Self)
    }
}

impl From<TenantName> for String {
    fn from(t: TenantName) -> String {
        t.0.as_str().to_owned()
    }
}

super::try_from_string!(Period, TableName, TenantTable, TenantName);

impl Config {
    /// The `[retention]` rules.
    pub fn retention_rules(&self) -> RetentionRules {
        let r = &self.retention;
        let mut rules = RetentionRules {
            default: r.default.0,
            tables: r.tables.iter().map(|(t, p)| (t.0, p.0)).collect(),
            ..RetentionRules::default()
        };
        for (tenant, tables) in &r.tenants {
            let mut t = TenantRetention::default();
            for (key, p) in tables {
                match key {
                    TenantTable::Default => t.default = Some(p.0),
                    TenantTable::Table(table) => {
                        t.tables.insert(table.0, p.0);
                    }
                }
            }
            rules.tenants.insert(tenant.0.clone(), t);
        }
        rules
    }
}
