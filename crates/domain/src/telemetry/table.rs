//! The tables TelemetryFlow stores, and which signal fills each.

use std::fmt;

use super::Signal;

/// A stored table; names follow the OpenTelemetry ClickHouse exporter.
///
/// Every table is partitioned by tenant and hour of its `timestamp` column,
/// flushed, compacted, expired and replayed the same way; what differs is
/// its schema (`tf-schema`) and the signal its rows come from, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Traces,
    Logs,
    MetricsGauge,
    MetricsSum,
    MetricsHistogram,
    MetricsExpHistogram,
    MetricsSummary,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Traces,
        Table::Logs,
        Table::MetricsGauge,
        Table::MetricsSum,
        Table::MetricsHistogram,
        Table::MetricsExpHistogram,
        Table::MetricsSummary,
    ];

    /// The event-time column every table has (`Timestamp(ns, UTC)`), used for
    /// hourly partitioning.
    pub const TIMESTAMP_COLUMN: &'static str = "timestamp";

    pub fn name(self) -> &'static str {
        match self {
            Table::Traces => "otel_traces",
            Table::Logs => "otel_logs",
            Table::MetricsGauge => "otel_metrics_gauge",
            Table::MetricsSum => "otel_metrics_sum",
            Table::MetricsHistogram => "otel_metrics_histogram",
            Table::MetricsExpHistogram => "otel_metrics_exp_histogram",
            Table::MetricsSummary => "otel_metrics_summary",
        }
    }

    /// The signal whose items the table stores; `None` for a table derived
    /// from others rather than received over OTLP (it is not forwarded).
    pub fn signal(self) -> Option<Signal> {
        match self {
            Table::Traces => Some(Signal::Traces),
            Table::Logs => Some(Signal::Logs),
            Table::MetricsGauge
            | Table::MetricsSum
            | Table::MetricsHistogram
            | Table::MetricsExpHistogram
            | Table::MetricsSummary => Some(Signal::Metrics),
        }
    }

    /// The tables that store `signal`'s items.
    pub fn of_signal(signal: Signal) -> impl Iterator<Item = Table> {
        Table::ALL
            .into_iter()
            .filter(move |t| t.signal() == Some(signal))
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Parses [`Table::name`]; the error names every table.
    pub fn parse(name: &str) -> Result<Table, String> {
        Table::from_name(name).ok_or_else(|| {
            let known: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
            format!("{name:?} is not a table (tables: {})", known.join(", "))
        })
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_every_signal_has_tables() {
        for t in Table::ALL {
            assert_eq!(Table::parse(t.name()), Ok(t));
        }
        assert!(
            Table::parse("otel_spans")
                .unwrap_err()
                .contains("otel_traces")
        );
        assert_eq!(
            Table::of_signal(Signal::Traces).collect::<Vec<_>>(),
            [Table::Traces]
        );
        assert_eq!(Table::of_signal(Signal::Metrics).count(), 5);
        assert_eq!(
            Table::of_signal(Signal::Logs).collect::<Vec<_>>(),
            [Table::Logs]
        );
    }
}
