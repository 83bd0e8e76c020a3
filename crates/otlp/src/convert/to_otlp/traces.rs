//! `otel_traces` rows → spans.

use arrow::array::{Int64Array, StringArray, TimestampNanosecondArray, UInt32Array};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span};

use super::Rows;
use super::values::{AttrCols, Bad, Columns, ListCols, bad, hex_bytes, prim, string, unix_nanos};
use crate::convert::Result;
use tf_domain::Table;
use tf_domain::telemetry::{SpanKind, StatusCode};

/// The fields of the `events` list.
struct EventCols {
    list: ListCols,
    ts: TimestampNanosecondArray,
    name: StringArray,
    attrs: AttrCols,
    dropped: UInt32Array,
}

/// The fields of the `links` list.
struct LinkCols {
    list: ListCols,
    trace_id: StringArray,
    span_id: StringArray,
    trace_state: StringArray,
    attrs: AttrCols,
    dropped: UInt32Array,
    flags: UInt32Array,
}

/// The span columns of one `otel_traces` batch.
pub(super) struct SpanRows {
    ts: TimestampNanosecondArray,
    trace_id: StringArray,
    span_id: StringArray,
    parent_span_id: StringArray,
    trace_state: StringArray,
    span_name: StringArray,
    span_kind: StringArray,
    duration: Int64Array,
    status_code: StringArray,
    status_message: StringArray,
    flags: UInt32Array,
    span_attrs: AttrCols,
    dropped_attrs: UInt32Array,
    events: EventCols,
    dropped_events: UInt32Array,
    links: LinkCols,
    dropped_links: UInt32Array,
}

impl Rows for SpanRows {
    type Item = Span;

    fn new(c: &Columns<'_>, _: Table) -> Result<Self> {
        let list = c.list("events")?;
        let events = EventCols {
            ts: list.prims("timestamp")?,
            name: list.strings("name")?,
            attrs: list.attrs("")?,
            dropped: list.prims("dropped_attributes_count")?,
            list,
        };
        let list = c.list("links")?;
        let links = LinkCols {
            trace_id: list.strings("trace_id")?,
            span_id: list.strings("span_id")?,
            trace_state: list.strings("trace_state")?,
            attrs: list.attrs("")?,
            dropped: list.prims("dropped_attributes_count")?,
            flags: list.prims("flags")?,
            list,
        };
        Ok(Self {
            ts: c.prims("timestamp")?,
            trace_id: c.strings("trace_id")?,
            span_id: c.strings("span_id")?,
            parent_span_id: c.strings("parent_span_id")?,
            trace_state: c.strings("trace_state")?,
            span_name: c.strings("span_name")?,
            span_kind: c.strings("span_kind")?,
            duration: c.prims("duration_ns")?,
            status_code: c.strings("status_code")?,
            status_message: c.strings("status_message")?,
            flags: c.prims("flags")?,
            span_attrs: c.attrs("span_")?,
            dropped_attrs: c.prims("dropped_attributes_count")?,
            events,
            dropped_events: c.prims("dropped_events_count")?,
            links,
            dropped_links: c.prims("dropped_links_count")?,
        })
    }

    fn item(&self, row: usize) -> Result<Span, Bad> {
        let start = unix_nanos(prim(&self.ts, row, "timestamp")?, "timestamp")?;
        let duration = prim(&self.duration, row, "duration_ns")?;
        let end = u64::try_from(duration)
            .ok()
            .and_then(|d| start.checked_add(d))
            .ok_or_else(|| bad("duration_ns", format!("invalid duration {duration}")))?;
        let kind = string(&self.span_kind, row, "span_kind")?;
        let code = string(&self.status_code, row, "status_code")?;
        Ok(Span {
            trace_id: hex_bytes(string(&self.trace_id, row, "trace_id")?, "trace_id")?,
            span_id: hex_bytes(string(&self.span_id, row, "span_id")?, "span_id")?,
            trace_state: string(&self.trace_state, row, "trace_state")?.to_owned(),
            parent_span_id: hex_bytes(
                string(&self.parent_span_id, row, "parent_span_id")?,
                "parent_span_id",
            )?,
            flags: prim(&self.flags, row, "flags")?,
            name: string(&self.span_name, row, "span_name")?.to_owned(),
            kind: SpanKind::from_name(kind)
                .map(SpanKind::otlp)
                .ok_or_else(|| bad("span_kind", format!("unknown span kind {kind:?}")))?,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: self.span_attrs.attributes(row)?,
            dropped_attributes_count: prim(&self.dropped_attrs, row, "dropped_attributes_count")?,
            events: self.events(row)?,
            dropped_events_count: prim(&self.dropped_events, row, "dropped_events_count")?,
            links: self.links(row)?,
            dropped_links_count: prim(&self.dropped_links, row, "dropped_links_count")?,
            status: Some(Status {
                message: string(&self.status_message, row, "status_message")?.to_owned(),
                code: StatusCode::from_name(code)
                    .map(StatusCode::otlp)
                    .ok_or_else(|| bad("status_code", format!("unknown status code {code:?}")))?,
            }),
        })
    }
}

impl SpanRows {
    fn events(&self, row: usize) -> Result<Vec<span::Event>, Bad> {
        let e = &self.events;
        e.list
            .range(row)?
            .map(|j| {
                Ok(span::Event {
                    time_unix_nano: unix_nanos(
                        prim(&e.ts, j, "events.timestamp")?,
                        "events.timestamp",
                    )?,
                    name: string(&e.name, j, "events.name")?.to_owned(),
                    attributes: e.attrs.attributes(j)?,
                    dropped_attributes_count: prim(
                        &e.dropped,
                        j,
                        "events.dropped_attributes_count",
                    )?,
                })
            })
            .collect()
    }

    fn links(&self, row: usize) -> Result<Vec<span::Link>, Bad> {
        let l = &self.links;
        l.list
            .range(row)?
            .map(|j| {
                Ok(span::Link {
                    trace_id: hex_bytes(
                        string(&l.trace_id, j, "links.trace_id")?,
                        "links.trace_id",
                    )?,
                    span_id: hex_bytes(string(&l.span_id, j, "links.span_id")?, "links.span_id")?,
                    trace_state: string(&l.trace_state, j, "links.trace_state")?.to_owned(),
                    attributes: l.attrs.attributes(j)?,
                    dropped_attributes_count: prim(
                        &l.dropped,
                        j,
                        "links.dropped_attributes_count",
                    )?,
                    flags: prim(&l.flags, j, "links.flags")?,
                })
            })
            .collect()
    }
}
