//! `otel_logs` rows → log records.

use arrow::array::{
    Array, BooleanArray, Int32Array, StringArray, TimestampNanosecondArray, UInt32Array,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::Rows;
use super::values::{
    AttrCols, Bad, Columns, bad, hex_bytes, prim, string, typed_value, unix_nanos,
};
use crate::convert::Result;
use tf_domain::Table;

/// The log columns of one `otel_logs` batch.
pub(super) struct LogRows {
    ts: TimestampNanosecondArray,
    observed: TimestampNanosecondArray,
    /// Absent in rows written before the column existed.
    derived: Option<BooleanArray>,
    trace_id: StringArray,
    span_id: StringArray,
    flags: UInt32Array,
    severity_text: StringArray,
    severity_number: Int32Array,
    body: StringArray,
    body_type: StringArray,
    event_name: StringArray,
    attrs: AttrCols,
    dropped: UInt32Array,
}

impl Rows for LogRows {
    type Item = LogRecord;

    fn new(c: &Columns<'_>, _: Table) -> Result<Self> {
        Ok(Self {
            ts: c.prims("timestamp")?,
            observed: c.prims("observed_timestamp")?,
            derived: c.opt_bools("timestamp_derived")?,
            trace_id: c.strings("trace_id")?,
            span_id: c.strings("span_id")?,
            flags: c.prims("trace_flags")?,
            severity_text: c.strings("severity_text")?,
            severity_number: c.prims("severity_number")?,
            body: c.strings("body")?,
            body_type: c.strings("body_type")?,
            event_name: c.strings("event_name")?,
            attrs: c.attrs("log_")?,
            dropped: c.prims("dropped_attributes_count")?,
        })
    }

    fn item(&self, row: usize) -> Result<LogRecord, Bad> {
        let body_type = string(&self.body_type, row, "body_type")?;
        let body = match body_type {
            "empty" => None,
            ty => Some(
                typed_value(string(&self.body, row, "body")?, ty)
                    .map_err(|m| bad("body", format!("body of type `{ty}`: {m}")))?,
            ),
        };
        // A derived event time was not sent: the record goes on without
        // one, and its receiver derives it again from the observed time.
        let derived = self
            .derived
            .as_ref()
            .is_some_and(|d| row < d.len() && d.is_valid(row) && d.value(row));
        let time_unix_nano = if derived {
            0
        } else {
            unix_nanos(prim(&self.ts, row, "timestamp")?, "timestamp")?
        };
        Ok(LogRecord {
            time_unix_nano,
            observed_time_unix_nano: unix_nanos(
                prim(&self.observed, row, "observed_timestamp")?,
                "observed_timestamp",
            )?,
            severity_number: prim(&self.severity_number, row, "severity_number")?,
            severity_text: string(&self.severity_text, row, "severity_text")?.to_owned(),
            body,
            attributes: self.attrs.attributes(row)?,
            dropped_attributes_count: prim(&self.dropped, row, "dropped_attributes_count")?,
            flags: prim(&self.flags, row, "trace_flags")?,
            trace_id: hex_bytes(string(&self.trace_id, row, "trace_id")?, "trace_id")?,
            span_id: hex_bytes(string(&self.span_id, row, "span_id")?, "span_id")?,
            event_name: string(&self.event_name, row, "event_name")?.to_owned(),
        })
    }
}
