//! Spans → `otel_traces`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, UInt32Builder};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use super::columns::{
    AttrBuilder, ContextColumns, RowContext, TsBuilder, attributes_depth, finish_struct_list,
    hex_id,
};
use super::{Converted, Result};
use tf_application::TableBatch;
use tf_domain::Table;
use tf_domain::TenantContext;
use tf_domain::telemetry::{SpanBatch, SpanKind, StatusCode, check_timestamps, check_value_depth};
use tf_schema::{event_fields, link_fields};

#[derive(Default)]
struct EventColumns {
    ts: TsBuilder,
    name: StringBuilder,
    attrs: AttrBuilder,
    dropped: UInt32Builder,
    offsets: Vec<i32>,
}

#[derive(Default)]
struct LinkColumns {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attrs: AttrBuilder,
    dropped: UInt32Builder,
    flags: UInt32Builder,
    offsets: Vec<i32>,
}

#[derive(Default)]
struct SpanColumns {
    ts: TsBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent: StringBuilder,
    trace_state: StringBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    duration: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    flags: UInt32Builder,
    ctx: ContextColumns,
    attrs: AttrBuilder,
    dropped_attrs: UInt32Builder,
    events: EventColumns,
    dropped_events: UInt32Builder,
    links: LinkColumns,
    dropped_links: UInt32Builder,
    rows: usize,
}

impl SpanColumns {
    fn append(&mut self, workspace: &str, ctx: &RowContext, span: &Span) {
        let mut buf = [0u8; 64];
        self.ts.append(span.start_time_unix_nano);
        self.trace_id.append_value(hex_id(&span.trace_id, &mut buf));
        self.span_id.append_value(hex_id(&span.span_id, &mut buf));
        self.parent
            .append_value(hex_id(&span.parent_span_id, &mut buf));
        self.trace_state.append_value(&span.trace_state);
        self.name.append_value(&span.name);
        self.kind
            .append_value(SpanKind::from_otlp(span.kind).name());
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        self.duration
            .append_value(i64::try_from(duration).unwrap_or(i64::MAX));
        let default_status = Status::default();
        let status = span.status.as_ref().unwrap_or(&default_status);
        self.status_code
            .append_value(StatusCode::from_otlp(status.code).name());
        self.status_message.append_value(&status.message);
        self.flags.append_value(span.flags);
        self.ctx.append(workspace, ctx);
        self.attrs.append(&span.attributes);
        self.dropped_attrs
            .append_value(span.dropped_attributes_count);

        let ev = &mut self.events;
        for e in &span.events {
            ev.ts.append(e.time_unix_nano);
            ev.name.append_value(&e.name);
            ev.attrs.append(&e.attributes);
            ev.dropped.append_value(e.dropped_attributes_count);
        }
        let last = ev.offsets.last().copied().unwrap_or(0);
        ev.offsets.push(last + span.events.len() as i32);
        self.dropped_events.append_value(span.dropped_events_count);

        let lk = &mut self.links;
        for l in &span.links {
            lk.trace_id.append_value(hex_id(&l.trace_id, &mut buf));
            lk.span_id.append_value(hex_id(&l.span_id, &mut buf));
            lk.trace_state.append_value(&l.trace_state);
            lk.attrs.append(&l.attributes);
            lk.dropped.append_value(l.dropped_attributes_count);
            lk.flags.append_value(l.flags);
        }
        let last = lk.offsets.last().copied().unwrap_or(0);
        lk.offsets.push(last + span.links.len() as i32);
        self.dropped_links.append_value(span.dropped_links_count);
        self.rows += 1;
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut c: Vec<ArrayRef> = vec![
            self.ts.finish(),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.flags.finish()),
        ];
        self.ctx.finish_into(&mut c);
        self.attrs.finish_into(&mut c);
        c.push(Arc::new(self.dropped_attrs.finish()));

        let ev = &mut self.events;
        let mut children = vec![ev.ts.finish(), Arc::new(ev.name.finish()) as ArrayRef];
        ev.attrs.finish_into(&mut children);
        children.push(Arc::new(ev.dropped.finish()));
        ev.offsets.insert(0, 0);
        c.push(finish_struct_list(
            event_fields(),
            children,
            &mut ev.offsets,
        )?);
        c.push(Arc::new(self.dropped_events.finish()));

        let lk = &mut self.links;
        let mut children: Vec<ArrayRef> = vec![
            Arc::new(lk.trace_id.finish()),
            Arc::new(lk.span_id.finish()),
            Arc::new(lk.trace_state.finish()),
        ];
        lk.attrs.finish_into(&mut children);
        children.push(Arc::new(lk.dropped.finish()));
        children.push(Arc::new(lk.flags.finish()));
        lk.offsets.insert(0, 0);
        c.push(finish_struct_list(
            link_fields(),
            children,
            &mut lk.offsets,
        )?);
        c.push(Arc::new(self.dropped_links.finish()));
        super::finish_batch(Table::TRACES, c)
    }
}

/// The deepest attribute value of a span, its events and links.
fn span_value_depth(span: &Span) -> u32 {
    let events = span.events.iter().map(|e| attributes_depth(&e.attributes));
    let links = span.links.iter().map(|l| attributes_depth(&l.attributes));
    events
        .chain(links)
        .fold(attributes_depth(&span.attributes), u32::max)
}

/// Applies the span rules and converts the accepted spans.
pub fn convert_traces(
    req: &ExportTraceServiceRequest,
    tenant: &TenantContext,
) -> Result<Converted> {
    let mut batch = SpanBatch::new(tenant.clone());
    let mut cols = SpanColumns::default();
    let workspace = tenant.workspace().as_str();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            if ss.spans.is_empty() {
                continue;
            }
            let ctx = RowContext::new(
                rs.resource.as_ref(),
                &rs.schema_url,
                ss.scope.as_ref(),
                &ss.schema_url,
            );
            for span in &ss.spans {
                let times = [span.start_time_unix_nano, span.end_time_unix_nano]
                    .into_iter()
                    .chain(span.events.iter().map(|e| e.time_unix_nano));
                let rules = check_value_depth(ctx.value_depth.max(span_value_depth(span)))
                    .and_then(|()| check_timestamps(times));
                if let Err(r) = rules {
                    batch.reject(r);
                    continue;
                }
                let admitted = batch.admit(
                    &span.trace_id,
                    &span.span_id,
                    &span.parent_span_id,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                );
                if admitted.is_ok() {
                    cols.append(workspace, &ctx, span);
                }
            }
        }
    }
    let batches = if cols.rows > 0 {
        vec![TableBatch {
            table: Table::TRACES,
            batch: cols.finish()?,
        }]
    } else {
        Vec::new()
    };
    Ok(Converted {
        summary: batch.finish(),
        batches,
    })
}
