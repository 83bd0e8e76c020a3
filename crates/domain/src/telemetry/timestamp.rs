//! Points in time, as Unix nanoseconds (UTC), the OTLP representation, and
//! the rule that every timestamp of a stored item fits the storage's.

use super::rejection::Rejection;

/// The latest instant a table can hold: stored timestamps are Arrow's (and
/// Parquet's) `timestamp(ns)`, a signed 64-bit count, so
/// 2262-04-11T23:47:16.854775807Z. OTLP's are unsigned.
pub const MAX_STORED_UNIX_NANOS: u64 = i64::MAX as u64;

/// The timestamp rule: an item is admitted only when every timestamp it
/// carries (its own, its start or observed time, those of its events or
/// exemplars) is at most [`MAX_STORED_UNIX_NANOS`]; a later one could only
/// be stored altered. Zero, OTLP's "unknown", is a valid timestamp.
pub fn check_timestamps(unix_nanos: impl IntoIterator<Item = u64>) -> Result<(), Rejection> {
    if unix_nanos.into_iter().all(|t| t <= MAX_STORED_UNIX_NANOS) {
        Ok(())
    } else {
        Err(Rejection::TimestampOutOfRange)
    }
}

/// The times a log record is stored with (OpenTelemetry log data model):
/// its event time, else the time it was observed; a record that carries
/// neither was observed when the store received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTimes {
    /// The event time the record is filed and searched under.
    pub timestamp: u64,
    /// When a collector (or this store) observed the record.
    pub observed: u64,
    /// The event time was not sent: it is the observed or received time.
    pub derived: bool,
}

impl LogTimes {
    /// `time` and `observed` as sent (0: not set), `received_unix_nanos`
    /// when the request arrived.
    pub fn resolve(time: u64, observed: u64, received_unix_nanos: u64) -> Self {
        let observed = if observed != 0 {
            observed
        } else if time == 0 {
            received_unix_nanos
        } else {
            0
        };
        if time != 0 {
            Self {
                timestamp: time,
                observed,
                derived: false,
            }
        } else {
            Self {
                timestamp: observed,
                observed,
                derived: true,
            }
        }
    }
}

/// A point in time in nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const NANOS_PER_HOUR: u64 = 3_600_000_000_000;

    pub fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    pub fn unix_nanos(&self) -> u64 {
        self.0
    }

    /// Start of the hour this instant falls in (storage partitions are hourly).
    pub fn hour_start(&self) -> Timestamp {
        Timestamp(self.0 - self.0 % Self::NANOS_PER_HOUR)
    }
}

/// The closed time range `[min, max]` covered by a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    min: Timestamp,
    max: Timestamp,
}

impl TimeRange {
    pub fn point(t: Timestamp) -> Self {
        Self { min: t, max: t }
    }

    pub fn min(&self) -> Timestamp {
        self.min
    }

    pub fn max(&self) -> Timestamp {
        self.max
    }

    pub fn include(&mut self, t: Timestamp) {
        self.min = self.min.min(t);
        self.max = self.max.max(t);
    }

    /// Extends an optional range by one instant.
    pub fn extend(range: &mut Option<TimeRange>, t: Timestamp) {
        match range {
            Some(r) => r.include(t),
            None => *range = Some(TimeRange::point(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_hours() {
        let mut r = None;
        TimeRange::extend(&mut r, Timestamp::from_unix_nanos(50));
        TimeRange::extend(&mut r, Timestamp::from_unix_nanos(10));
        TimeRange::extend(&mut r, Timestamp::from_unix_nanos(30));
        let r = r.unwrap();
        assert_eq!((r.min().unix_nanos(), r.max().unix_nanos()), (10, 50));
        let t = Timestamp::from_unix_nanos(2 * Timestamp::NANOS_PER_HOUR + 17);
        assert_eq!(t.hour_start().unix_nanos(), 2 * Timestamp::NANOS_PER_HOUR);
    }

    #[test]
    fn a_log_without_event_time_is_filed_under_its_observed_or_received_time() {
        let t = |timestamp, observed, derived| LogTimes {
            timestamp,
            observed,
            derived,
        };
        assert_eq!(LogTimes::resolve(5, 7, 9), t(5, 7, false));
        // An event time without an observed time keeps observed unset.
        assert_eq!(LogTimes::resolve(5, 0, 9), t(5, 0, false));
        assert_eq!(LogTimes::resolve(0, 7, 9), t(7, 7, true));
        assert_eq!(LogTimes::resolve(0, 0, 9), t(9, 9, true));
    }

    #[test]
    fn timestamps_beyond_2262_are_out_of_range() {
        assert_eq!(check_timestamps([]), Ok(()));
        assert_eq!(check_timestamps([0, 1, i64::MAX as u64]), Ok(()));
        for late in [i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(
                check_timestamps([0, late]),
                Err(Rejection::TimestampOutOfRange),
                "{late}"
            );
        }
    }
}
