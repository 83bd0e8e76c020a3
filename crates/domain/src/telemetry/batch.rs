//! Batch aggregates: the spans, metric points or log records of one export
//! request of one tenant.
//!
//! An aggregate here is a *batch*, not one object per item: the converter that
//! turns wire data into columns calls `admit_*` once per item with borrowed
//! fields, the aggregate applies the domain rules and tallies the outcome, and
//! `finish` yields the [`BatchSummary`] that the command handler reports
//! (OTLP partial success) and turns into a domain event.

use super::counters::{CounterObservation, CounterStore};
use super::ids::{SpanId, TraceId, check_optional_id};
use super::metric_name::MetricName;
use super::rejection::{Rejection, Rejections};
use super::timestamp::{TimeRange, Timestamp};
use crate::tenancy::TenantContext;

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The signal's name in settings, files and URLs (`/v1/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// Parses [`Signal::name`]; the error names the accepted values.
    pub fn parse(s: &str) -> Result<Signal, String> {
        Signal::ALL
            .into_iter()
            .find(|sig| sig.name() == s)
            .ok_or_else(|| format!("{s:?} is not traces, metrics or logs"))
    }

    /// Position in [`Signal::ALL`] (per-signal counters).
    pub fn index(self) -> usize {
        match self {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        }
    }

    /// What one item of the signal is called in messages.
    pub fn item_noun(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }
}

#[derive(Debug)]
struct Tally {
    ctx: TenantContext,
    received: u64,
    accepted: u64,
    rejections: Rejections,
    time_range: Option<TimeRange>,
}

impl Tally {
    fn new(ctx: TenantContext) -> Self {
        Self {
            ctx,
            received: 0,
            accepted: 0,
            rejections: Rejections::default(),
            time_range: None,
        }
    }

    fn outcome(&mut self, r: Result<(), Rejection>, ts: u64) -> Result<(), Rejection> {
        self.received += 1;
        match r {
            Ok(()) => {
                self.accepted += 1;
                TimeRange::extend(&mut self.time_range, Timestamp::from_unix_nanos(ts));
                Ok(())
            }
            Err(e) => {
                self.rejections.record(e);
                Err(e)
            }
        }
    }

    fn reject(&mut self, r: Rejection) {
        self.received += 1;
        self.rejections.record(r);
    }

    fn finish(self, signal: Signal, metric_names: Vec<String>) -> BatchSummary {
        BatchSummary {
            signal,
            ctx: self.ctx,
            received: self.received,
            accepted: self.accepted,
            rejections: self.rejections,
            time_range: self.time_range,
            metric_names,
        }
    }
}

/// The spans of one request, being admitted.
#[derive(Debug)]
pub struct SpanBatch(Tally);

impl SpanBatch {
    pub fn new(ctx: TenantContext) -> Self {
        Self(Tally::new(ctx))
    }

    /// Applies the span rules: valid non-zero trace and span ids, a valid or
    /// empty parent, and end not before start.
    pub fn admit(
        &mut self,
        trace_id: &[u8],
        span_id: &[u8],
        parent_span_id: &[u8],
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<(), Rejection> {
        let r = if TraceId::from_bytes(trace_id).is_err() {
            Err(Rejection::InvalidTraceId)
        } else if SpanId::from_bytes(span_id).is_err() {
            Err(Rejection::InvalidSpanId)
        } else if !check_optional_id(parent_span_id, 8) {
            Err(Rejection::InvalidParentSpanId)
        } else if end_unix_nanos < start_unix_nanos {
            Err(Rejection::EndBeforeStart)
        } else {
            Ok(())
        };
        self.0.outcome(r, start_unix_nanos)
    }

    /// Rejects a span for a rule checked outside [`Self::admit`]
    /// (e.g. [`super::check_value_depth`]).
    pub fn reject(&mut self, r: Rejection) {
        self.0.reject(r);
    }

    pub fn finish(self) -> BatchSummary {
        self.0.finish(Signal::Traces, Vec::new())
    }
}

/// The metric data points of one request, being admitted.
#[derive(Debug)]
pub struct MetricBatch {
    tally: Tally,
    names: Vec<String>,
}

impl MetricBatch {
    pub fn new(ctx: TenantContext) -> Self {
        Self {
            tally: Tally::new(ctx),
            names: Vec::new(),
        }
    }

    /// Checks a metric's name. When it is invalid, all `points` of the metric
    /// are rejected at once.
    pub fn admit_metric<'a>(
        &mut self,
        name: &'a str,
        points: u64,
    ) -> Result<MetricName<'a>, Rejection> {
        match MetricName::parse(name) {
            Ok(n) => {
                if points > 0 && !self.names.iter().any(|m| m == name) {
                    self.names.push(name.to_owned());
                }
                Ok(n)
            }
            Err(_) => {
                self.tally.received += points;
                self.tally
                    .rejections
                    .record_n(Rejection::InvalidMetricName, points);
                Err(Rejection::InvalidMetricName)
            }
        }
    }

    /// Admits a point with no further rule (gauge, histogram, summary, or a
    /// non-monotonic sum).
    pub fn admit_point(&mut self, unix_nanos: u64) {
        let _ = self.tally.outcome(Ok(()), unix_nanos);
    }

    /// Admits a monotonic sum point: never negative, and never decreasing for a
    /// cumulative series with the same start time.
    pub fn admit_counter_point(
        &mut self,
        store: &dyn CounterStore,
        obs: CounterObservation,
    ) -> Result<(), Rejection> {
        let r = store.observe(obs);
        self.tally.outcome(r, obs.unix_nanos)
    }

    /// Rejects a data point for a rule checked outside the `admit_*` methods.
    pub fn reject(&mut self, r: Rejection) {
        self.tally.reject(r);
    }

    /// Rejects a metric that carries no data point
    /// ([`Rejection::NoDataPoints`]): counted as one rejected point, so the
    /// client learns of it. Its name is not checked: there is nothing to
    /// store under it.
    pub fn reject_empty_metric(&mut self) {
        self.tally.reject(Rejection::NoDataPoints);
    }

    pub fn finish(self) -> BatchSummary {
        self.tally.finish(Signal::Metrics, self.names)
    }
}

/// The log records of one request, being admitted.
#[derive(Debug)]
pub struct LogBatch(Tally);

impl LogBatch {
    pub fn new(ctx: TenantContext) -> Self {
        Self(Tally::new(ctx))
    }

    /// Applies the log rules: a trace context that is empty or valid, and a
    /// severity number in the OTLP range.
    pub fn admit(
        &mut self,
        trace_id: &[u8],
        span_id: &[u8],
        severity_number: i32,
        unix_nanos: u64,
    ) -> Result<(), Rejection> {
        let r = if !check_optional_id(trace_id, 16) || !check_optional_id(span_id, 8) {
            Err(Rejection::InvalidLogContext)
        } else if !(0..=24).contains(&severity_number) {
            Err(Rejection::InvalidSeverityNumber)
        } else {
            Ok(())
        };
        self.0.outcome(r, unix_nanos)
    }

    /// Rejects a log record for a rule checked outside [`Self::admit`].
    pub fn reject(&mut self, r: Rejection) {
        self.0.reject(r);
    }

    pub fn finish(self) -> BatchSummary {
        self.0.finish(Signal::Logs, Vec::new())
    }
}

/// The outcome of admitting one batch: what was accepted, what was rejected
/// and why. Fields are private; it is built only by the batch aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSummary {
    signal: Signal,
    ctx: TenantContext,
    received: u64,
    accepted: u64,
    rejections: Rejections,
    time_range: Option<TimeRange>,
    metric_names: Vec<String>,
}

impl BatchSummary {
    pub fn signal(&self) -> Signal {
        self.signal
    }

    pub fn context(&self) -> &TenantContext {
        &self.ctx
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    pub fn rejected(&self) -> u64 {
        self.rejections.total()
    }

    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    pub fn time_range(&self) -> Option<TimeRange> {
        self.time_range
    }

    /// Distinct names of metrics with accepted points (metrics batches only).
    pub fn metric_names(&self) -> &[String] {
        &self.metric_names
    }

    /// Rejects `n` accepted items whose hour partition has expired
    /// ([`Rejection::Expired`]): the retention rule, applied to the
    /// converted rows of the batch (it depends on the table an item is
    /// stored in, which the per-item rules do not know).
    pub fn expire(&mut self, n: u64) {
        self.reject_accepted(Rejection::Expired, n);
    }

    /// Rejects `n` accepted items for reason `r` after conversion: for the
    /// rules that apply to converted rows (retention, the active series
    /// limit).
    pub fn reject_accepted(&mut self, r: Rejection, n: u64) {
        let n = n.min(self.accepted);
        self.accepted -= n;
        self.rejections.record_n(r, n);
        if self.accepted == 0 {
            self.time_range = None;
            self.metric_names.clear();
        }
    }

    /// The OTLP partial-success message; empty when nothing was rejected.
    pub fn rejection_message(&self) -> String {
        self.rejections
            .message(self.signal.item_noun(), self.received)
    }
}

#[cfg(test)]
mod tests {
    use crate::events::DomainEvent;

    #[test]
    fn signal_names_parse_back_and_index_all() {
        for (i, s) in Signal::ALL.into_iter().enumerate() {
            assert_eq!(Signal::parse(s.name()), Ok(s));
            assert_eq!(s.index(), i);
        }
        assert!(Signal::parse("profiles").unwrap_err().contains("traces"));
    }

    use std::sync::Mutex;

    use super::*;
    use crate::telemetry::counters::CounterSeries;

    struct Store(Mutex<CounterSeries>);
    impl CounterStore for Store {
        fn observe(&self, obs: CounterObservation) -> Result<(), Rejection> {
            self.0.lock().unwrap().observe(obs)
        }
    }

    #[test]
    fn span_batch_tallies_rules_and_raises_event() {
        let mut b = SpanBatch::new(TenantContext::default());
        assert!(b.admit(&[1; 16], &[2; 8], &[], 10, 20).is_ok());
        assert!(b.admit(&[1; 16], &[3; 8], &[2; 8], 15, 15).is_ok());
        assert_eq!(
            b.admit(&[0; 16], &[2; 8], &[], 10, 20),
            Err(Rejection::InvalidTraceId)
        );
        assert_eq!(
            b.admit(&[1; 16], &[0; 8], &[], 10, 20),
            Err(Rejection::InvalidSpanId)
        );
        assert_eq!(
            b.admit(&[1; 16], &[2; 8], &[0; 8], 10, 20),
            Err(Rejection::InvalidParentSpanId)
        );
        assert_eq!(
            b.admit(&[1; 16], &[2; 8], &[], 30, 20),
            Err(Rejection::EndBeforeStart)
        );
        let s = b.finish();
        assert_eq!((s.received(), s.accepted(), s.rejected()), (6, 2, 4));
        let Some(DomainEvent::SpansIngested(e)) = DomainEvent::ingested(&s) else {
            panic!("expected SpansIngested")
        };
        assert_eq!(e.spans, 2);
        assert_eq!(e.time_range.min().unix_nanos(), 10);
        assert_eq!(e.time_range.max().unix_nanos(), 15);
        assert!(s.rejection_message().starts_with("rejected 4 of 6 spans: "));
    }

    #[test]
    fn metric_batch_rejects_bad_names_and_counters() {
        let store = Store(Mutex::new(CounterSeries::with_capacity(10)));
        let mut b = MetricBatch::new(TenantContext::default());
        assert!(b.admit_metric("9bad", 3).is_err());
        let name = b.admit_metric("requests", 2).unwrap();
        assert_eq!(name.as_str(), "requests");
        let obs = |ts, value| CounterObservation {
            series: 7,
            start_unix_nanos: 1,
            unix_nanos: ts,
            value,
            cumulative: true,
        };
        assert!(b.admit_counter_point(&store, obs(5, 10.0)).is_ok());
        assert_eq!(
            b.admit_counter_point(&store, obs(6, 9.0)),
            Err(Rejection::DecreasingCounter)
        );
        b.admit_metric("gauge.x", 1).unwrap();
        b.admit_point(100);
        let s = b.finish();
        assert_eq!((s.received(), s.accepted(), s.rejected()), (6, 2, 4));
        assert_eq!(s.rejections().count(Rejection::InvalidMetricName), 3);
        assert_eq!(s.metric_names(), ["requests", "gauge.x"]);
    }

    #[test]
    fn an_empty_metric_counts_as_one_rejected_point() {
        let mut b = MetricBatch::new(TenantContext::default());
        b.reject_empty_metric();
        b.admit_metric("gauge.x", 1).unwrap();
        b.admit_point(100);
        let s = b.finish();
        assert_eq!((s.received(), s.accepted(), s.rejected()), (2, 1, 1));
        assert_eq!(s.rejections().count(Rejection::NoDataPoints), 1);
        assert_eq!(s.metric_names(), ["gauge.x"]);
        assert_eq!(
            s.rejection_message(),
            format!(
                "rejected 1 of 2 data points: 1 with {}",
                Rejection::NoDataPoints.describe()
            )
        );
    }

    #[test]
    fn log_batch_rules() {
        let mut b = LogBatch::new(TenantContext::default());
        assert!(b.admit(&[], &[], 9, 1).is_ok());
        assert!(b.admit(&[1; 16], &[1; 8], 24, 1).is_ok());
        assert_eq!(
            b.admit(&[1; 3], &[], 9, 1),
            Err(Rejection::InvalidLogContext)
        );
        assert_eq!(
            b.admit(&[], &[], 25, 1),
            Err(Rejection::InvalidSeverityNumber)
        );
        let s = b.finish();
        assert_eq!((s.accepted(), s.rejected()), (2, 2));
        assert!(DomainEvent::ingested(&LogBatch::new(TenantContext::default()).finish()).is_none());
    }
}
