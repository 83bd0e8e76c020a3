//! The tables TelemetryFlow stores, and which signal fills each.

use std::fmt;
use std::sync::RwLock;

use super::Signal;

/// A stored table; the OTLP tables' names follow the OpenTelemetry
/// ClickHouse exporter.
///
/// Every table is partitioned by tenant and hour of its `timestamp` column,
/// and flushed, compacted, expired and replayed the same way; what differs
/// is its schema (`tf-schema`) and the signal its rows come from, if any.
/// Besides the OTLP tables ([`Table::ALL`]), a feature may declare tables
/// of its own ([`Table::derived`]: rows such as rollups), which every one
/// of those mechanisms then handles without code of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table {
    name: &'static str,
    signal: Option<Signal>,
}

/// Derived tables declared at start-up, beside [`Table::ALL`] (the
/// process's table catalogue; filled before storage opens).
static DECLARED: RwLock<Vec<Table>> = RwLock::new(Vec::new());

/// Why a table cannot be declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(
        "table name {0:?} must be 1 to 64 lowercase letters, digits or '_', starting with a letter"
    )]
    BadName(String),
    #[error("table {0:?} is an OTLP table")]
    Clash(String),
}

impl Table {
    pub const TRACES: Table = Table::otlp("otel_traces", Signal::Traces);
    pub const LOGS: Table = Table::otlp("otel_logs", Signal::Logs);
    pub const METRICS_GAUGE: Table = Table::otlp("otel_metrics_gauge", Signal::Metrics);
    pub const METRICS_SUM: Table = Table::otlp("otel_metrics_sum", Signal::Metrics);
    pub const METRICS_HISTOGRAM: Table = Table::otlp("otel_metrics_histogram", Signal::Metrics);
    pub const METRICS_EXP_HISTOGRAM: Table =
        Table::otlp("otel_metrics_exp_histogram", Signal::Metrics);
    pub const METRICS_SUMMARY: Table = Table::otlp("otel_metrics_summary", Signal::Metrics);

    /// The tables OTLP fills, in the order their codes are written.
    pub const ALL: [Table; 7] = [
        Table::TRACES,
        Table::LOGS,
        Table::METRICS_GAUGE,
        Table::METRICS_SUM,
        Table::METRICS_HISTOGRAM,
        Table::METRICS_EXP_HISTOGRAM,
        Table::METRICS_SUMMARY,
    ];

    /// The event-time column every table has (`Timestamp(ns, UTC)`), used for
    /// hourly partitioning.
    pub const TIMESTAMP_COLUMN: &'static str = "timestamp";

    const fn otlp(name: &'static str, signal: Signal) -> Table {
        Table {
            name,
            signal: Some(signal),
        }
    }

    /// A table derived from others (rollups, audit events): it has no
    /// signal, so it is never forwarded or replayed as OTLP. Its name is a
    /// safe path segment that no OTLP table has; [`Table::register`] makes
    /// it known (`tf_schema::declare_table` does both, with its schema).
    pub fn derived(name: &'static str) -> Result<Table, TableError> {
        let valid = (1..=64).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(TableError::BadName(name.to_owned()));
        }
        if Table::ALL.iter().any(|t| t.name == name) {
            return Err(TableError::Clash(name.to_owned()));
        }
        Ok(Table { name, signal: None })
    }

    /// Makes a [`Table::derived`] table known by name (once per process;
    /// registering it again does nothing).
    pub fn register(table: Table) {
        let mut declared = DECLARED.write().unwrap_or_else(|e| e.into_inner());
        if !declared.contains(&table) {
            declared.push(table);
        }
    }

    /// Every table: the OTLP ones, then the declared ones in the order of
    /// their declaration.
    pub fn all() -> Vec<Table> {
        let mut all = Table::ALL.to_vec();
        all.extend(DECLARED.read().unwrap_or_else(|e| e.into_inner()).iter());
        all
    }

    pub fn name(self) -> &'static str {
        self.name
    }

    /// The signal whose items the table stores; `None` for a table derived
    /// from others rather than received over OTLP (it is not forwarded).
    pub fn signal(self) -> Option<Signal> {
        self.signal
    }

    /// The tables that store `signal`'s items.
    pub fn of_signal(signal: Signal) -> impl Iterator<Item = Table> {
        Table::all()
            .into_iter()
            .filter(move |t| t.signal() == Some(signal))
    }

    /// Position in [`Table::ALL`] (the code records give an OTLP table);
    /// `None` for a declared table.
    pub fn otlp_code(self) -> Option<u8> {
        Table::ALL.iter().position(|&t| t == self).map(|i| i as u8)
    }

    /// The OTLP table of [`Table::otlp_code`] `code`.
    pub fn from_otlp_code(code: u8) -> Option<Table> {
        Table::ALL.get(usize::from(code)).copied()
    }

    pub fn from_name(name: &str) -> Option<Table> {
        if let Some(t) = Table::ALL.into_iter().find(|t| t.name == name) {
            return Some(t);
        }
        let declared = DECLARED.read().unwrap_or_else(|e| e.into_inner());
        declared.iter().find(|t| t.name == name).copied()
    }

    /// Parses [`Table::name`]; the error names every table.
    pub fn parse(name: &str) -> Result<Table, String> {
        Table::from_name(name).ok_or_else(|| {
            let known: Vec<_> = Table::all().iter().map(|t| t.name()).collect();
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
            assert_eq!(t.otlp_code().and_then(Table::from_otlp_code), Some(t));
        }
        assert!(
            Table::parse("otel_spans")
                .unwrap_err()
                .contains("otel_traces")
        );
        assert_eq!(
            Table::of_signal(Signal::Traces).collect::<Vec<_>>(),
            [Table::TRACES]
        );
        assert_eq!(Table::of_signal(Signal::Metrics).count(), 5);
    }

    #[test]
    fn a_derived_table_is_known_by_name_once_registered() {
        let t = Table::derived("test_rollups").unwrap();
        assert_eq!(Table::from_name("test_rollups"), None);
        Table::register(t);
        Table::register(t);
        assert_eq!(Table::from_name("test_rollups"), Some(t));
        assert_eq!(Table::all().iter().filter(|&&x| x == t).count(), 1);
        assert_eq!((t.signal(), t.otlp_code()), (None, None));
        assert_eq!(
            Table::derived("otel_logs"),
            Err(TableError::Clash("otel_logs".into()))
        );
        for bad in ["", "_system", "Upper", "a/b", "9x", "a-b"] {
            assert!(Table::derived(bad).is_err(), "{bad}");
        }
    }
}
