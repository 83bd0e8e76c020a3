//! OTLP/protobuf bodies → prost decode → converters.
//!
//! The input is tried as each of the three export requests; every one that
//! decodes goes through its converter and the invariants in `common`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = ExportTraceServiceRequest::decode(data) {
        common::check_traces(&req);
    }
    if let Ok(req) = ExportMetricsServiceRequest::decode(data) {
        common::check_metrics(&req);
    }
    if let Ok(req) = ExportLogsServiceRequest::decode(data) {
        common::check_logs(&req);
    }
});
