//! Tests of the OTLP/JSON codec: `decode` pins the decoder's leniency, limits
//! and error paths on the specification's examples and hand-made bodies;
//! `encode` pins the canonical output and the round trip through both.

use serde_json::Value;

use super::{Result, decode_value};
use opentelemetry_proto::tonic::common::v1::AnyValue;

mod decode;
mod encode;
mod fixtures;
mod lenient;
mod structure;
mod syntax;

/// Decodes one `AnyValue` given as a parsed JSON value.
fn decode_any_value(v: &Value) -> Result<AnyValue> {
    decode_value::<AnyValue>(&serde_json::to_vec(v).unwrap(), 0)
}
