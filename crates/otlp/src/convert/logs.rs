//! Log records → `otel_logs`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, StringBuilder, UInt32Builder};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::columns::{
    AttrBuilder, ContextColumns, RowContext, TsBuilder, attributes_depth, hex_id, render_any_value,
    value_depth,
};
use super::{Converted, Result};
use tf_application::TableBatch;
use tf_domain::Table;
use tf_domain::TenantContext;
use tf_domain::telemetry::{LogBatch, LogTimes, check_timestamps, check_value_depth};

/// The times a log record is stored with ([`LogTimes`]).
fn times(r: &LogRecord, received_unix_nanos: u64) -> LogTimes {
    LogTimes::resolve(
        r.time_unix_nano,
        r.observed_time_unix_nano,
        received_unix_nanos,
    )
}

#[derive(Default)]
struct LogColumns {
    ts: TsBuilder,
    observed: TsBuilder,
    derived: BooleanBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    flags: UInt32Builder,
    severity_text: StringBuilder,
    severity_number: Int32Builder,
    body: StringBuilder,
    body_type: StringBuilder,
    event_name: StringBuilder,
    ctx: ContextColumns,
    attrs: AttrBuilder,
    dropped: UInt32Builder,
    scratch: String,
    rows: usize,
}

impl LogColumns {
    fn append(&mut self, workspace: &str, ctx: &RowContext, r: &LogRecord, t: LogTimes) {
        let mut buf = [0u8; 64];
        self.ts.append(t.timestamp);
        self.observed.append(t.observed);
        self.derived.append_value(t.derived);
        self.trace_id.append_value(hex_id(&r.trace_id, &mut buf));
        self.span_id.append_value(hex_id(&r.span_id, &mut buf));
        self.flags.append_value(r.flags);
        self.severity_text.append_value(&r.severity_text);
        self.severity_number.append_value(r.severity_number);
        let ty = render_any_value(r.body.as_ref(), &mut self.scratch);
        self.body.append_value(&self.scratch);
        self.body_type.append_value(ty);
        self.event_name.append_value(&r.event_name);
        self.ctx.append(workspace, ctx);
        self.attrs.append(&r.attributes);
        self.dropped.append_value(r.dropped_attributes_count);
        self.rows += 1;
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut c: Vec<ArrayRef> = vec![
            self.ts.finish(),
            self.observed.finish(),
            Arc::new(self.derived.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.body_type.finish()),
            Arc::new(self.event_name.finish()),
        ];
        self.ctx.finish_into(&mut c);
        self.attrs.finish_into(&mut c);
        c.push(Arc::new(self.dropped.finish()));
        super::finish_batch(Table::LOGS, c)
    }
}

/// Applies the log rules and converts the accepted records, received now.
pub fn convert_logs(req: &ExportLogsServiceRequest, tenant: &TenantContext) -> Result<Converted> {
    convert_logs_received(req, tenant, tf_application::wall_clock().unix_nanos())
}

/// [`convert_logs`] of a request received at `received_unix_nanos`: a
/// record without event and observed time is filed under it.
pub fn convert_logs_received(
    req: &ExportLogsServiceRequest,
    tenant: &TenantContext,
    received_unix_nanos: u64,
) -> Result<Converted> {
    let mut batch = LogBatch::new(tenant.clone());
    let mut cols = LogColumns::default();
    let workspace = tenant.workspace().as_str();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            if sl.log_records.is_empty() {
                continue;
            }
            let ctx = RowContext::new(
                rl.resource.as_ref(),
                &rl.schema_url,
                sl.scope.as_ref(),
                &sl.schema_url,
            );
            for r in &sl.log_records {
                let depth = r
                    .body
                    .as_ref()
                    .map_or(0, |b| value_depth(b, 0))
                    .max(attributes_depth(&r.attributes))
                    .max(ctx.value_depth);
                let rules = check_value_depth(depth)
                    .and_then(|()| check_timestamps([r.time_unix_nano, r.observed_time_unix_nano]));
                if let Err(e) = rules {
                    batch.reject(e);
                    continue;
                }
                let t = times(r, received_unix_nanos);
                if batch
                    .admit(&r.trace_id, &r.span_id, r.severity_number, t.timestamp)
                    .is_ok()
                {
                    cols.append(workspace, &ctx, r, t);
                }
            }
        }
    }
    let batches = if cols.rows > 0 {
        vec![TableBatch {
            table: Table::LOGS,
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
