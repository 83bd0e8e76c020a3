//! OTLP/JSON ("JSON Protobuf Encoding", OTLP spec 1.x): requests and
//! responses decoded from and encoded to the prost types of
//! `opentelemetry-proto`.
//!
//! Every message is declared once, in [`mapping`]; a macro derives from the
//! declaration both a streaming decoder (a pull [`read::Reader`] over the
//! bytes, no intermediate tree) and an encoder. What the decoder accepts:
//!
//! * lowerCamelCase and original snake_case field names (camelCase wins when
//!   both are present); unknown fields ignored; `null` means "absent";
//! * trace/span ids as hex of any case, never base64;
//! * 64-bit integers as decimal strings or JSON numbers, 32-bit ints as
//!   numbers or numeric strings, doubles as numbers, numeric strings, `"NaN"`,
//!   `"Infinity"`, `"-Infinity"`; enums by integer or by value name;
//! * `bytesValue` as standard or URL-safe base64, padded or not.
//!
//! Every error names the JSON path of the offending value. The decoder never
//! panics, bounds `AnyValue` nesting to [`tf_domain::telemetry::MAX_ANY_VALUE_DEPTH`] levels
//! and any JSON nesting to [`read::MAX_JSON_NESTING`].
//!
//! The encoder follows the proto3 JSON mapping as OTLP amends it: keys in
//! lowerCamelCase; ids as lowercase hex; other bytes as standard padded
//! base64; 64-bit integers as strings, 32-bit integers and enums as numbers;
//! doubles as numbers, NaN and the infinities as strings; default values
//! omitted, except members of a `oneof`, `optional` fields and present
//! messages, whose presence is information (`"intValue":"0"`, `"status":{}`).
//! `decode(encode(m)) == m` for every message whose ids have the lengths OTLP
//! requires.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

mod codec;
mod mapping;
mod read;
mod write;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, KeyValueList};

use codec::{Codec, List, encode_list};
use read::Reader;
use write::Writer;

/// Result type of this module.
pub type Result<T, E = JsonError> = std::result::Result<T, E>;

/// Decoding error.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The body is not syntactically valid JSON (or nests deeper than
    /// [`read::MAX_JSON_NESTING`]).
    #[error("malformed JSON: {message} at line {line} column {column}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// The JSON is well-formed but a value is not acceptable at `path`.
    #[error("{path}: {message}")]
    Invalid {
        /// JSON path, e.g. `resourceSpans[0].scopeSpans[1].spans[3].traceId`.
        path: String,
        /// What is wrong with the value.
        message: String,
    },
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    decode_root(body)
}

/// Decodes an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    decode_root(body)
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    decode_root(body)
}

/// Encodes an `ExportTraceServiceRequest` as OTLP/JSON.
pub fn encode_traces(req: &ExportTraceServiceRequest) -> Vec<u8> {
    encode(req, 256 * req.resource_spans.len())
}

/// Encodes an `ExportTraceServiceRequest` as OTLP/JSON in at most `limit`
/// bytes, or says it is larger.
pub fn encode_traces_within(
    req: &ExportTraceServiceRequest,
    limit: usize,
) -> Result<Vec<u8>, TooLarge> {
    let mut w = Writer::new(Vec::new(), limit);
    <ExportTraceServiceRequest as Codec>::encode(req, &mut w);
    if w.over || w.buf.len() > limit {
        return Err(TooLarge { limit });
    }
    Ok(w.buf)
}

/// An encoding larger than it may be.
#[derive(Debug, thiserror::Error)]
#[error("is larger than {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// Encodes an `ExportMetricsServiceRequest` as OTLP/JSON.
pub fn encode_metrics(req: &ExportMetricsServiceRequest) -> Vec<u8> {
    encode(req, 256 * req.resource_metrics.len())
}

/// Encodes an `ExportLogsServiceRequest` as OTLP/JSON.
pub fn encode_logs(req: &ExportLogsServiceRequest) -> Vec<u8> {
    encode(req, 256 * req.resource_logs.len())
}

/// Encodes an export response (`{}` without partial success).
pub fn encode_trace_response(r: &ExportTraceServiceResponse) -> Vec<u8> {
    encode(r, 64)
}

/// See [`encode_trace_response`].
pub fn encode_metrics_response(r: &ExportMetricsServiceResponse) -> Vec<u8> {
    encode(r, 64)
}

/// See [`encode_trace_response`].
pub fn encode_logs_response(r: &ExportLogsServiceResponse) -> Vec<u8> {
    encode(r, 64)
}

/// Encodes one `AnyValue` (`{"intValue":"1"}`; `{}` when it holds no value).
pub fn encode_any_value(v: &AnyValue) -> Vec<u8> {
    encode(v, 32)
}

/// Appends the items of an array `AnyValue` as a JSON array of `AnyValue`s.
pub fn write_any_values(values: &[AnyValue], out: &mut String) {
    append(out, |w| encode_list::<AnyValue>(values, w));
}

/// Appends a kvlist `AnyValue`'s list (`{"values":[{"key":…,"value":…}]}`).
pub fn write_kvlist(list: &KeyValueList, out: &mut String) {
    append(out, |w| KeyValueList::encode(list, w));
}

/// Appends a list of entity references as a JSON array.
pub fn write_entity_refs(refs: &[EntityRef], out: &mut String) {
    append(out, |w| encode_list::<EntityRef>(refs, w));
}

/// Decodes what [`write_any_values`] wrote: the items of an array that is
/// itself one level of `AnyValue` nesting.
pub fn decode_any_values(text: &[u8]) -> Result<Vec<AnyValue>> {
    decode_value::<List<AnyValue>>(text, 1)
}

/// Decodes what [`write_kvlist`] wrote: the list of a kvlist that is itself
/// one level of `AnyValue` nesting.
pub fn decode_kvlist(text: &[u8]) -> Result<KeyValueList> {
    decode_value::<KeyValueList>(text, 1)
}

/// Decodes what [`write_entity_refs`] wrote.
pub fn decode_entity_refs(text: &[u8]) -> Result<Vec<EntityRef>> {
    decode_value::<List<EntityRef>>(text, 0)
}

fn encode<C: Codec<T = C>>(v: &C, capacity: usize) -> Vec<u8> {
    let mut w = Writer::with_capacity(capacity);
    C::encode(v, &mut w);
    w.buf
}

fn append(out: &mut String, write: impl FnOnce(&mut Writer)) {
    let mut w = Writer::new(std::mem::take(out).into_bytes(), usize::MAX);
    write(&mut w);
    // The writer only ever writes UTF-8 (string values are `String`s).
    *out = String::from_utf8(w.buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// A request: the top level must be an object.
fn decode_root<C: Codec<T = C>>(body: &[u8]) -> Result<C> {
    let mut r = Reader::new(body).map_err(Failure::into_error)?;
    if r.peek() != Some(b'{') {
        // Malformed JSON is a syntax error first; well-formed, it is the wrong kind.
        let kind = r.next_kind();
        r.skip()
            .and_then(|()| r.finish())
            .map_err(Failure::into_error)?;
        return Err(JsonError::Invalid {
            path: "<root>".to_owned(),
            message: format!("expected a JSON object at the top level, got {kind}"),
        });
    }
    decode_value::<C>(body, 0)
}

fn decode_value<C: Codec>(text: &[u8], depth: u32) -> Result<C::T> {
    let run = || {
        let mut r = Reader::new(text)?;
        if r.peek().is_none() {
            return Err(r.syntax("empty input"));
        }
        let v = C::decode(&mut r, depth)?;
        r.finish()?;
        Ok(v)
    };
    run().map_err(Failure::into_error)
}

// ---------------------------------------------------------------------------
// Failures and their paths
// ---------------------------------------------------------------------------

enum Seg {
    Key(&'static str),
    Index(usize),
}

enum FailureKind {
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    Invalid(String),
}

/// A decoding failure on its way up: each level it passes adds its path
/// segment, so the success path never builds a path at all.
pub(crate) struct Failure(Box<(FailureKind, Vec<Seg>)>);

impl Failure {
    pub(crate) fn invalid(message: String) -> Self {
        Self(Box::new((FailureKind::Invalid(message), Vec::new())))
    }

    pub(crate) fn syntax(message: String, text: &[u8], pos: usize) -> Self {
        let before = text.get(..pos).unwrap_or(text);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = pos
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        Self(Box::new((
            FailureKind::Syntax {
                message,
                line,
                column,
            },
            Vec::new(),
        )))
    }

    pub(crate) fn at_key(mut self, key: &'static str) -> Self {
        self.0.1.push(Seg::Key(key));
        self
    }

    pub(crate) fn at_index(mut self, i: usize) -> Self {
        self.0.1.push(Seg::Index(i));
        self
    }

    fn into_error(self) -> JsonError {
        let (kind, segs) = *self.0;
        match kind {
            FailureKind::Syntax {
                message,
                line,
                column,
            } => JsonError::Syntax {
                message,
                line,
                column,
            },
            FailureKind::Invalid(message) => {
                let mut path = String::new();
                for seg in segs.iter().rev() {
                    match seg {
                        Seg::Key(k) => {
                            if !path.is_empty() {
                                path.push('.');
                            }
                            path.push_str(k);
                        }
                        Seg::Index(i) => {
                            let _ = write!(path, "[{i}]");
                        }
                    }
                }
                if path.is_empty() {
                    path.push_str("<root>");
                }
                JsonError::Invalid { path, message }
            }
        }
    }
}
