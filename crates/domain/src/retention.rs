//! Retention: how long a tenant's telemetry is kept, per table.
//!
//! Data is stored in hour partitions and expires a whole partition at a
//! time: a partition is expired once its *whole* hour is older than the
//! retention period. So a partition that straddles the cut-off stays whole
//! (never half-visible), and data is kept for at least the period and less
//! than an hour longer. An item that arrives for an already expired
//! partition is rejected ([`super::telemetry::Rejection::Expired`]): storing
//! it would only make it disappear at the next retention pass.
//!
//! Rules resolve from the most specific: tenant and table, then the
//! tenant's default, then the table's, then the global default.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::TenantId;
use crate::telemetry::{Table, Timestamp};

/// How long data is kept; [`RetentionPeriod::FOREVER`] keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPeriod(Option<Duration>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a retention period ({why}); use e.g. \"30d\", \"12h\", \"1w2d\" or \"0\" for forever"
)]
pub struct RetentionPeriodError {
    input: String,
    why: &'static str,
}

impl RetentionPeriod {
    pub const FOREVER: Self = Self(None);

    /// A period of `d`; zero keeps forever.
    pub fn of(d: Duration) -> Self {
        Self((!d.is_zero()).then_some(d))
    }

    /// Parses `"0"` (forever) or numbers with units `s`, `m`, `h`, `d`, `w`,
    /// e.g. `"30d"`, `"36h"`, `"1w2d"`.
    pub fn parse(s: &str) -> Result<Self, RetentionPeriodError> {
        let err = |why| RetentionPeriodError {
            input: s.to_owned(),
            why,
        };
        let t = s.trim();
        if t == "0" {
            return Ok(Self::FOREVER);
        }
        if t.is_empty() {
            return Err(err("empty"));
        }
        let mut secs: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let unit = rest.chars().next().ok_or(err("a number needs a unit"))?;
            let per = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(err("units are s, m, h, d and w")),
            };
            rest = &rest[unit.len_utf8()..];
            secs = n
                .checked_mul(per)
                .and_then(|x| secs.checked_add(x))
                .filter(|&x| x <= u64::MAX / 1_000_000_000)
                .ok_or(err("too long"))?;
        }
        Ok(Self::of(Duration::from_secs(secs)))
    }

    pub fn duration(self) -> Option<Duration> {
        self.0
    }

    pub fn is_forever(self) -> bool {
        self.0.is_none()
    }

    /// The start of the oldest hour partition still kept at `now`: data
    /// before it is expired. `None` when kept forever.
    pub fn keep_from(self, now: Timestamp) -> Option<Timestamp> {
        let ttl = self.0?.as_nanos().min(u64::MAX as u128) as u64;
        let cut = now.unix_nanos().saturating_sub(ttl);
        Some(Timestamp::from_unix_nanos(cut).hour_start())
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(d) = self.0 else {
            return f.write_str("forever");
        };
        let s = d.as_secs();
        match s {
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

/// One tenant's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRetention {
    /// For every table of the tenant without its own rule.
    pub default: Option<RetentionPeriod>,
    pub tables: BTreeMap<Table, RetentionPeriod>,
}

/// Every retention rule of the deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRules {
    pub default: RetentionPeriod,
    pub tables: BTreeMap<Table, RetentionPeriod>,
    pub tenants: BTreeMap<TenantId, TenantRetention>,
}

impl RetentionRules {
    /// The period that applies to `table` of `tenant`.
    pub fn period(&self, tenant: &TenantId, table: Table) -> RetentionPeriod {
        let t = self.tenants.get(tenant);
        t.and_then(|t| t.tables.get(&table).copied())
            .or_else(|| t.and_then(|t| t.default))
            .or_else(|| self.tables.get(&table).copied())
            .unwrap_or(self.default)
    }

    /// See [`RetentionPeriod::keep_from`].
    pub fn keep_from(&self, tenant: &TenantId, table: Table, now: Timestamp) -> Option<Timestamp> {
        self.period(tenant, table).keep_from(now)
    }

    /// Whether some data may ever expire.
    pub fn expires_anything(&self) -> bool {
        !self.default.is_forever()
            || self.tables.values().any(|p| !p.is_forever())
            || self.tenants.values().any(|t| {
                t.default.is_some_and(|p| !p.is_forever())
                    || t.tables.values().any(|p| !p.is_forever())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = Timestamp::NANOS_PER_HOUR;

    fn p(s: &str) -> RetentionPeriod {
        RetentionPeriod::parse(s).unwrap()
    }

    #[test]
    fn periods_parse_and_bad_ones_say_why() {
        assert_eq!(p("0"), RetentionPeriod::FOREVER);
        assert_eq!(p("30d").duration(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(p("1w2d").duration(), Some(Duration::from_secs(9 * 86_400)));
        assert_eq!(p("90m").duration(), Some(Duration::from_secs(5400)));
        assert_eq!(p(" 36h ").to_string(), "36h");
        assert_eq!(p("0h"), RetentionPeriod::FOREVER);
        for (bad, why) in [
            ("", "empty"),
            ("7", "needs a unit"),
            ("7x", "units are"),
            ("d", "expected a number"),
            ("-1d", "expected a number"),
            ("99999999999999999999d", "too large"),
            ("9999999999w", "too long"),
        ] {
            let e = RetentionPeriod::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("30d"), "{e}");
        }
    }

    #[test]
    fn a_partition_expires_only_once_its_whole_hour_is_past_the_period() {
        let day = p("24h");
        // now = 10:20 on day 2; the cut-off is 10:20 on day 1, inside the
        // 10:00 partition, which is kept whole.
        let now = Timestamp::from_unix_nanos(48 * H + 20 * 60 * 1_000_000_000);
        let keep = day.keep_from(now).unwrap();
        assert_eq!(keep.unix_nanos(), 24 * H);
        assert_eq!(RetentionPeriod::FOREVER.keep_from(now), None);
        // Longer than the epoch: nothing has expired.
        assert_eq!(p("1000w").keep_from(now).unwrap().unix_nanos(), 0);
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let acme = TenantId::parse("acme").unwrap();
        let beta = TenantId::parse("beta").unwrap();
        let other = TenantId::parse("other").unwrap();
        let rules = RetentionRules {
            default: p("30d"),
            tables: [(Table::LOGS, p("7d"))].into(),
            tenants: [
                (
                    acme.clone(),
                    TenantRetention {
                        default: None,
                        tables: [(Table::LOGS, p("24h"))].into(),
                    },
                ),
                (
                    beta.clone(),
                    TenantRetention {
                        default: Some(p("0")),
                        tables: BTreeMap::new(),
                    },
                ),
            ]
            .into(),
        };
        assert_eq!(rules.period(&acme, Table::LOGS), p("24h"));
        assert_eq!(rules.period(&acme, Table::TRACES), p("30d"));
        assert_eq!(rules.period(&beta, Table::LOGS), RetentionPeriod::FOREVER);
        assert_eq!(rules.period(&other, Table::LOGS), p("7d"));
        assert_eq!(rules.period(&other, Table::TRACES), p("30d"));
        assert!(rules.expires_anything());
        assert!(!RetentionRules::default().expires_anything());
    }
}
