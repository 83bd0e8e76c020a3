//! Shared by both fuzz targets: runs the three converters on decoded
//! requests and checks the batch-accounting invariants.
//!
//! Invariants checked (a violation panics, which libFuzzer reports as a crash):
//! * conversion never fails (`ConvertError` only signals a bug, never bad input);
//! * `accepted + rejected == received` in every summary;
//! * traces/logs: at most one batch, of the signal's table, with exactly
//!   `accepted` rows, and none when nothing was accepted;
//! * metrics: the rows of all batches add up to `accepted`, one batch per table.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tf_application::commands::ShardedCounterStore;
use tf_domain::Table;
use tf_domain::TenantContext;
use tf_domain::telemetry::BatchSummary;
use tf_otlp::convert::{Converted, convert_logs, convert_metrics, convert_traces};

fn check_summary(what: &str, s: &BatchSummary) {
    assert_eq!(
        s.accepted() + s.rejected(),
        s.received(),
        "{what}: accepted {} + rejected {} != received {}",
        s.accepted(),
        s.rejected(),
        s.received()
    );
}

fn check_single_table(what: &str, table: Table, c: &Converted) {
    check_summary(what, &c.summary);
    let accepted = c.summary.accepted();
    if accepted == 0 {
        assert!(
            c.batches.is_empty(),
            "{what}: a batch though nothing was accepted"
        );
        return;
    }
    assert_eq!(c.batches.len(), 1, "{what}: expected one batch");
    for b in &c.batches {
        assert_eq!(b.table, table, "{what}: wrong table");
        assert_eq!(
            b.batch.num_rows() as u64,
            accepted,
            "{what}: batch rows != accepted"
        );
    }
}

pub fn check_traces(req: &ExportTraceServiceRequest) {
    let ctx = TenantContext::default();
    let c = convert_traces(req, &ctx).expect("convert_traces returned an error");
    check_single_table("traces", Table::TRACES, &c);
}

pub fn check_logs(req: &ExportLogsServiceRequest) {
    let ctx = TenantContext::default();
    let c = convert_logs(req, &ctx).expect("convert_logs returned an error");
    check_single_table("logs", Table::LOGS, &c);
}

pub fn check_metrics(req: &ExportMetricsServiceRequest) {
    let ctx = TenantContext::default();
    let counters = ShardedCounterStore::new(1024);
    // Twice through the same store: the second pass runs the counter rule
    // against the state the first one left.
    for pass in ["metrics (1st pass)", "metrics (2nd pass)"] {
        let c = convert_metrics(req, &ctx, &counters).expect("convert_metrics returned an error");
        check_summary(pass, &c.summary);
        let rows: u64 = c.batches.iter().map(|b| b.batch.num_rows() as u64).sum();
        assert_eq!(
            rows,
            c.summary.accepted(),
            "{pass}: sum of batch rows != accepted"
        );
        for (i, b) in c.batches.iter().enumerate() {
            assert!(
                b.batch.num_rows() > 0,
                "{pass}: empty batch for {:?}",
                b.table
            );
            assert!(
                c.batches[..i].iter().all(|o| o.table != b.table),
                "{pass}: two batches for {:?}",
                b.table
            );
        }
    }
}
