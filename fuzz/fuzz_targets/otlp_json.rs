//! OTLP/JSON bodies → `tf_otlp::json::decode_*` → converters.
//!
//! The decoder must never panic (it returns `JsonError` for anything it
//! refuses); every request it accepts encodes to JSON that decodes to the
//! same request (compared as protobuf bytes, so NaN equals NaN), and goes
//! through its converter and the invariants in `common`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tf_otlp::json::{
    decode_logs, decode_metrics, decode_traces, encode_logs, encode_metrics, encode_traces,
};

/// `decode(encode(req)) == req`, compared as protobuf bytes.
fn round_trips<M: Message>(req: &M, encode: fn(&M) -> Vec<u8>, decode: fn(&[u8]) -> Option<M>) {
    let again = decode(&encode(req)).expect("the encoder's output decodes");
    assert_eq!(again.encode_to_vec(), req.encode_to_vec());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_traces(data) {
        round_trips(&req, encode_traces, |b| decode_traces(b).ok());
        common::check_traces(&req);
    }
    if let Ok(req) = decode_metrics(data) {
        round_trips(&req, encode_metrics, |b| decode_metrics(b).ok());
        common::check_metrics(&req);
    }
    if let Ok(req) = decode_logs(data) {
        round_trips(&req, encode_logs, |b| decode_logs(b).ok());
        common::check_logs(&req);
    }
});
