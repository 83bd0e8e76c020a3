//! OTLP/JSON bodies → `infrastructure::otlp::json::decode_*` → converters.
//!
//! The decoder must never panic (it returns `JsonError` for anything it
//! refuses); every request it accepts goes through its converter and the
//! invariants in `common`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use telemetryflow::infrastructure::otlp::json::{decode_logs, decode_metrics, decode_traces};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_traces(data) {
        common::check_traces(&req);
    }
    if let Ok(req) = decode_metrics(data) {
        common::check_metrics(&req);
    }
    if let Ok(req) = decode_logs(data) {
        common::check_logs(&req);
    }
});
