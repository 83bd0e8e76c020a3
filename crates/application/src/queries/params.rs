//! Query parameters as value objects: each parses from the text an API
//! caller sends, and a bad one is a [`QueryError::Invalid`] naming the
//! parameter.

use std::fmt;

use crate::ports::QueryError;
use tf_domain::telemetry::MetricName;

/// `parameter `name`: message` as an invalid-query error.
pub fn invalid(param: &str, msg: impl fmt::Display) -> QueryError {
    QueryError::Invalid(format!("parameter `{param}`: {msg}"))
}

const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Below this, a number is certainly not Unix nanoseconds of this century
/// (it would be before 1973): the caller sent seconds or milliseconds.
const MIN_PLAUSIBLE_NANOS: i64 = 100_000_000_000_000_000;

/// A point in time: RFC 3339 (`2026-01-01T00:00:00Z`) or Unix nanoseconds.
pub fn parse_time(param: &str, s: &str) -> Result<i64, QueryError> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = s
            .parse()
            .map_err(|_| invalid(param, format!("{s:?} is out of range")))?;
        if v < MIN_PLAUSIBLE_NANOS {
            return Err(invalid(
                param,
                format!(
                    "{s} looks like seconds or milliseconds; give Unix nanoseconds or RFC 3339"
                ),
            ));
        }
        return Ok(v);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| {
            invalid(
                param,
                format!("{s:?} is neither RFC 3339 (2026-01-01T00:00:00Z) nor Unix nanoseconds"),
            )
        })
}

/// The half-open window `[start, end)` a query looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl TimeWindow {
    pub const DEFAULT_SPAN_NS: i64 = 3600 * NANOS_PER_SEC;

    /// `end` defaults to now, `start` to an hour before `end`.
    pub fn parse(start: Option<&str>, end: Option<&str>, now_ns: i64) -> Result<Self, QueryError> {
        let end_ns = match end {
            Some(s) => parse_time("end", s)?,
            None => now_ns,
        };
        let start_ns = match start {
            Some(s) => parse_time("start", s)?,
            None => end_ns.saturating_sub(Self::DEFAULT_SPAN_NS),
        };
        if start_ns >= end_ns {
            return Err(invalid("start", "must be before `end`"));
        }
        Ok(Self { start_ns, end_ns })
    }

    /// Only the bounds given; `None` when neither is.
    pub fn parse_optional(
        start: Option<&str>,
        end: Option<&str>,
        now_ns: i64,
    ) -> Result<Option<Self>, QueryError> {
        if start.is_none() && end.is_none() {
            return Ok(None);
        }
        let start_ns = match start {
            Some(s) => parse_time("start", s)?,
            None => i64::MIN,
        };
        let end_ns = match end {
            Some(s) => parse_time("end", s)?,
            None => now_ns.max(start_ns.saturating_add(1)),
        };
        if start_ns >= end_ns {
            return Err(invalid("start", "must be before `end`"));
        }
        Ok(Some(Self { start_ns, end_ns }))
    }
}

/// A bucket width: `<n><unit>` with unit `s`, `m`, `h` or `d`, at least 1 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    secs: i64,
}

impl Interval {
    pub const DEFAULT: Interval = Interval { secs: 300 };
    /// Buckets one query may produce (as Prometheus' 11,000 points).
    pub const MAX_BUCKETS: i64 = 11_000;

    pub fn parse(s: &str) -> Result<Self, QueryError> {
        let s = s.trim();
        let bad = || {
            invalid(
                "interval",
                format!("{s:?}: use a whole number with s, m, h or d, like 30s, 1m, 5m, 1h"),
            )
        };
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, unit) = s.split_at(split);
        let n: i64 = num.parse().map_err(|_| bad())?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        let secs = n.checked_mul(mult).ok_or_else(bad)?;
        if secs <= 0 || secs > 366 * 86_400 {
            return Err(invalid(
                "interval",
                format!("{s:?} must be between 1s and 366d"),
            ));
        }
        Ok(Self { secs })
    }

    pub fn secs(self) -> i64 {
        self.secs
    }

    pub fn nanos(self) -> i64 {
        self.secs * NANOS_PER_SEC
    }

    /// Refuses windows that would produce more than [`Self::MAX_BUCKETS`].
    pub fn check_buckets(self, window: &TimeWindow) -> Result<(), QueryError> {
        let span = (window.end_ns - window.start_ns) as i128;
        if span / self.nanos() as i128 > Self::MAX_BUCKETS as i128 {
            return Err(invalid(
                "interval",
                format!(
                    "{self} over this window gives more than {} buckets; use a larger interval",
                    Self::MAX_BUCKETS
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.secs;
        if s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// How the points of a bucket become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Avg,
    Sum,
    Min,
    Max,
    Count,
    /// Per-second increase of a counter.
    Rate,
    /// Increase of a counter within the bucket.
    Increase,
    /// A quantile from histogram buckets, in percent (50, 90, 95, 99).
    Percentile(u8),
}

impl Aggregation {
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "avg" => Self::Avg,
            "sum" => Self::Sum,
            "min" => Self::Min,
            "max" => Self::Max,
            "count" => Self::Count,
            "rate" => Self::Rate,
            "increase" => Self::Increase,
            other => match other
                .strip_prefix('p')
                .filter(|n| n.len() <= 2 && !n.starts_with('0'))
                .and_then(|n| n.parse::<u8>().ok())
            {
                Some(p @ 1..=99) => Self::Percentile(p),
                _ => {
                    return Err(invalid(
                        "aggregation",
                        format!(
                            "{other:?}: use avg, sum, min, max, count, rate, increase, or a percentile p1 to p99 (p50, p90, p99 …)"
                        ),
                    ));
                }
            },
        })
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Avg => f.write_str("avg"),
            Self::Sum => f.write_str("sum"),
            Self::Min => f.write_str("min"),
            Self::Max => f.write_str("max"),
            Self::Count => f.write_str("count"),
            Self::Rate => f.write_str("rate"),
            Self::Increase => f.write_str("increase"),
            Self::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

/// A metric name, owned, checked by the domain's naming rule.
pub fn metric_name(param: &str, s: &str) -> Result<String, QueryError> {
    MetricName::parse(s)
        .map(|m| m.as_str().to_owned())
        .map_err(|e| invalid(param, format!("{s:?}: {e}")))
}

/// A free-text filter value (service, span name, attribute key): non-empty,
/// at most 256 characters, no control characters.
pub fn label(param: &str, s: &str) -> Result<String, QueryError> {
    if s.is_empty() {
        return Err(invalid(param, "must not be empty"));
    }
    if s.chars().count() > 256 {
        return Err(invalid(param, "must be at most 256 characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(param, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// `group_by`: comma-separated attribute keys, at most 8.
pub fn group_by(s: &str) -> Result<Vec<String>, QueryError> {
    let keys: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| label("group_by", k))
        .collect::<Result<_, _>>()?;
    if keys.len() > 8 {
        return Err(invalid("group_by", "at most 8 keys"));
    }
    Ok(keys)
}

/// A row limit between 1 and `max`, `default` when absent.
pub fn limit(s: Option<&str>, default: usize, max: usize) -> Result<usize, QueryError> {
    let Some(s) = s else { return Ok(default) };
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            "limit",
            format!("{s:?}: use a number from 1 to {max}"),
        )),
    }
}

/// A trace id: 32 hex digits, not all zero; lowercased.
pub fn trace_id(param: &str, s: &str) -> Result<String, QueryError> {
    let s = s.trim();
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            param,
            format!("{s:?}: a trace id is 32 hex digits"),
        ));
    }
    if s.bytes().all(|b| b == b'0') {
        return Err(invalid(param, "the all-zero trace id is invalid"));
    }
    Ok(s.to_ascii_lowercase())
}

/// A minimum severity: a severity number 1–24 or a name (`trace`, `debug`,
/// `info`, `warn`, `error`, `fatal`, case-insensitive).
pub fn severity(s: &str) -> Result<i32, QueryError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=24).contains(&n) {
            return Ok(n);
        }
        return Err(invalid("min_severity", format!("{n} is not 1–24")));
    }
    Ok(match s.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => {
            return Err(invalid(
                "min_severity",
                format!("{s:?}: use 1–24 or trace, debug, info, warn, error, fatal"),
            ));
        }
    })
}

/// Milliseconds (may be fractional) as nanoseconds, non-negative.
pub fn duration_ms(param: &str, s: &str) -> Result<i64, QueryError> {
    match s.trim().parse::<f64>() {
        Ok(ms) if (0.0..1e12).contains(&ms) => Ok((ms * 1e6).round() as i64),
        _ => Err(invalid(param, format!("{s:?}: milliseconds, ≥ 0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_rfc3339_and_nanos() {
        assert_eq!(
            parse_time("start", "2026-01-01T00:00:00Z").unwrap(),
            1_767_225_600_000_000_000
        );
        assert_eq!(
            parse_time("start", "2026-01-01T01:00:00+01:00").unwrap(),
            1_767_225_600_000_000_000
        );
        assert_eq!(
            parse_time("start", "1767225600000000000").unwrap(),
            1_767_225_600_000_000_000
        );
        let e = parse_time("start", "1767225600").unwrap_err().to_string();
        assert!(e.contains("`start`") && e.contains("seconds"), "{e}");
        let e = parse_time("end", "yesterday").unwrap_err().to_string();
        assert!(e.contains("`end`"), "{e}");
    }

    #[test]
    fn windows_default_to_the_last_hour() {
        let now = 1_767_225_600_000_000_000;
        let w = TimeWindow::parse(None, None, now).unwrap();
        assert_eq!((w.start_ns, w.end_ns), (now - 3_600_000_000_000, now));
        assert!(
            TimeWindow::parse(
                Some("2026-01-02T00:00:00Z"),
                Some("2026-01-01T00:00:00Z"),
                now
            )
            .is_err()
        );
        assert_eq!(TimeWindow::parse_optional(None, None, now).unwrap(), None);
    }

    #[test]
    fn intervals() {
        assert_eq!(Interval::parse("30s").unwrap().secs(), 30);
        assert_eq!(Interval::parse("5m").unwrap().secs(), 300);
        assert_eq!(Interval::parse("1h").unwrap().to_string(), "1h");
        assert_eq!(Interval::parse("90s").unwrap().to_string(), "90s");
        for bad in [
            "",
            "5",
            "m",
            "0s",
            "-1m",
            "1.5m",
            "5w",
            "99999999999999999999s",
        ] {
            let e = Interval::parse(bad).unwrap_err().to_string();
            assert!(e.contains("`interval`"), "{bad}: {e}");
        }
        let w = TimeWindow {
            start_ns: 0,
            end_ns: 86_400 * NANOS_PER_SEC,
        };
        assert!(Interval::parse("1s").unwrap().check_buckets(&w).is_err());
        assert!(Interval::parse("1m").unwrap().check_buckets(&w).is_ok());
    }

    #[test]
    fn other_parameters() {
        assert_eq!(
            Aggregation::parse("P99").unwrap(),
            Aggregation::Percentile(99)
        );
        assert!(Aggregation::parse("median").is_err());
        assert_eq!(
            Aggregation::parse("p1").unwrap(),
            Aggregation::Percentile(1)
        );
        for bad in ["p0", "p100", "p05", "p", "p-1", "p999"] {
            assert!(Aggregation::parse(bad).is_err(), "{bad}");
        }
        assert!(
            metric_name("metric", "1abc")
                .unwrap_err()
                .to_string()
                .contains("`metric`")
        );
        assert_eq!(group_by("a, b,,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert!(limit(Some("0"), 20, 100).is_err());
        assert!(limit(Some("101"), 20, 100).is_err());
        assert_eq!(
            trace_id("trace_id", "5B8EFFF798038103D269B633813FC60C").unwrap(),
            "5b8efff798038103d269b633813fc60c"
        );
        assert!(trace_id("trace_id", "00000000000000000000000000000000").is_err());
        assert!(trace_id("trace_id", "xyz").is_err());
        assert_eq!(severity("WARN").unwrap(), 13);
        assert_eq!(severity("17").unwrap(), 17);
        assert!(severity("25").is_err());
        assert_eq!(duration_ms("min_duration_ms", "1.5").unwrap(), 1_500_000);
    }
}
