//! Why an item was rejected, and the tally a batch reports back to the client
//! in OTLP `partial_success`.

use std::fmt::Write as _;

/// One reason for rejecting a single item (span, data point or log record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Trace id absent, not 16 bytes, or all zero.
    InvalidTraceId,
    /// Span id absent, not 8 bytes, or all zero.
    InvalidSpanId,
    /// Parent span id present but not 8 bytes or all zero.
    InvalidParentSpanId,
    /// Span end time before its start time.
    EndBeforeStart,
    /// Metric name breaks the naming rule (see `MetricName`).
    InvalidMetricName,
    /// A monotonic sum (counter) point with a negative value.
    NegativeCounter,
    /// A monotonic sum point that is NaN or infinite.
    NonFiniteCounter,
    /// A cumulative monotonic series whose value went down without a new start time.
    DecreasingCounter,
    /// A log record whose trace/span context is malformed (wrong length or all zero).
    InvalidLogContext,
    /// Severity number outside 0..=24.
    InvalidSeverityNumber,
    /// An attribute or log body whose arrays and kvlists nest too deep (see
    /// [`super::MAX_ANY_VALUE_DEPTH`]).
    ValueTooDeep,
    /// Timestamp in an hour partition that its table's retention period has
    /// already expired (see `crate::retention`).
    Expired,
    /// A number data point (gauge or sum) with neither `as_int` nor
    /// `as_double`: storing it as 0 would invent a value.
    MissingValue,
    /// A point of a new metric series while the tenant's table already has
    /// `limits.max_active_series` active series; points of series already
    /// active keep flowing.
    SeriesLimit,
    /// A histogram whose bucket counts (and, exponential, zero count) do not
    /// add up to its count, or add up beyond `u64` (see
    /// [`super::histogram`]).
    HistogramCountMismatch,
    /// An explicit-bucket histogram whose `bucket_counts` are neither empty
    /// (with no bounds) nor one more than its `explicit_bounds`.
    HistogramBucketsMismatch,
    /// An explicit-bucket histogram whose bounds are not strictly ascending
    /// (a NaN bound included).
    HistogramBoundsNotAscending,
    /// An exponential histogram whose scale is outside the data model's
    /// `-10..=20`.
    ExponentialScaleOutOfRange,
    /// A summary with a quantile outside `[0, 1]` (or NaN).
    QuantileOutOfRange,
    /// A timestamp after 2262-04-11, beyond what storage can hold (see
    /// [`super::timestamp::check_timestamps`]).
    TimestampOutOfRange,
    /// A metric without data (no type) or whose data has no data points:
    /// counted as one rejected data point, so that it is reported rather
    /// than lost (OpenTelemetry Collector exporters refuse such metrics as
    /// "empty data points" too).
    NoDataPoints,
}

impl Rejection {
    pub const ALL: [Rejection; 21] = [
        Rejection::InvalidTraceId,
        Rejection::InvalidSpanId,
        Rejection::InvalidParentSpanId,
        Rejection::EndBeforeStart,
        Rejection::InvalidMetricName,
        Rejection::NegativeCounter,
        Rejection::NonFiniteCounter,
        Rejection::DecreasingCounter,
        Rejection::InvalidLogContext,
        Rejection::InvalidSeverityNumber,
        Rejection::ValueTooDeep,
        Rejection::Expired,
        Rejection::MissingValue,
        Rejection::SeriesLimit,
        Rejection::HistogramCountMismatch,
        Rejection::HistogramBucketsMismatch,
        Rejection::HistogramBoundsNotAscending,
        Rejection::ExponentialScaleOutOfRange,
        Rejection::QuantileOutOfRange,
        Rejection::TimestampOutOfRange,
        Rejection::NoDataPoints,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// English description used in the OTLP `error_message`.
    pub fn describe(self) -> &'static str {
        match self {
            Rejection::InvalidTraceId => "invalid trace id (must be 16 bytes, not all zero)",
            Rejection::InvalidSpanId => "invalid span id (must be 8 bytes, not all zero)",
            Rejection::InvalidParentSpanId => {
                "invalid parent span id (must be empty or 8 bytes, not all zero)"
            }
            Rejection::EndBeforeStart => "end time before start time",
            Rejection::InvalidMetricName => {
                "invalid metric name (must match ^[a-zA-Z][a-zA-Z0-9._-]*$, at most 255 characters)"
            }
            Rejection::NegativeCounter => "negative value on a monotonic counter",
            Rejection::NonFiniteCounter => "NaN or infinite value on a monotonic counter",
            Rejection::DecreasingCounter => {
                "cumulative monotonic counter decreased without a new start time"
            }
            Rejection::InvalidLogContext => {
                "invalid trace context (trace id must be empty or 16 bytes, span id empty or 8 bytes, not all zero)"
            }
            Rejection::InvalidSeverityNumber => "severity number outside 0..=24",
            Rejection::ValueTooDeep => {
                "attribute or body value nested deeper than 30 levels of arrays and kvlists"
            }
            Rejection::MissingValue => {
                "number data point without a value (neither as_int nor as_double)"
            }
            Rejection::SeriesLimit => {
                "a new series beyond the tenant's active series limit (limits.max_active_series)"
            }
            Rejection::Expired => {
                "a timestamp in an hour already past its table's retention period"
            }
            Rejection::HistogramCountMismatch => {
                "histogram whose bucket counts (and zero count) do not add up to its count"
            }
            Rejection::HistogramBucketsMismatch => {
                "histogram whose bucket_counts are not one more than its explicit_bounds (or both empty)"
            }
            Rejection::HistogramBoundsNotAscending => {
                "histogram whose explicit_bounds are not strictly ascending (or NaN)"
            }
            Rejection::ExponentialScaleOutOfRange => "exponential histogram scale outside -10..=20",
            Rejection::QuantileOutOfRange => "summary quantile outside [0, 1]",
            Rejection::TimestampOutOfRange => {
                "timestamp beyond 2262-04-11T23:47:16.854775807Z (the latest nanosecond timestamp storage holds)"
            }
            Rejection::NoDataPoints => {
                "metric without data points (no gauge, sum, histogram, exponential histogram or summary, or one with an empty data_points list; counted as one)"
            }
        }
    }
}

/// Counts of rejected items by reason. Fixed size: recording costs no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    counts: [u64; Rejection::ALL.len()],
}

impl Rejections {
    pub fn record(&mut self, r: Rejection) {
        self.record_n(r, 1);
    }

    pub fn record_n(&mut self, r: Rejection, n: u64) {
        self.counts[r.index()] += n;
    }

    pub fn count(&self, r: Rejection) -> u64 {
        self.counts[r.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The OTLP partial-success message, e.g. "rejected 3 of 10 spans: 2 invalid
    /// trace id (...); 1 end time before start time". Empty when nothing was rejected.
    pub fn message(&self, noun: &str, received: u64) -> String {
        let total = self.total();
        if total == 0 {
            return String::new();
        }
        let mut msg = format!("rejected {total} of {received} {noun}: ");
        let mut first = true;
        for r in Rejection::ALL {
            let n = self.count(r);
            if n > 0 {
                if !first {
                    msg.push_str("; ");
                }
                first = false;
                let _ = write!(msg, "{n} with {}", r.describe());
            }
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_every_reason_with_counts() {
        let mut r = Rejections::default();
        assert_eq!(r.message("spans", 5), "");
        r.record(Rejection::InvalidTraceId);
        r.record(Rejection::InvalidTraceId);
        r.record(Rejection::EndBeforeStart);
        assert_eq!(r.total(), 3);
        assert_eq!(
            r.message("spans", 10),
            "rejected 3 of 10 spans: 2 with invalid trace id (must be 16 bytes, not all zero); \
             1 with end time before start time"
        );
    }
}
