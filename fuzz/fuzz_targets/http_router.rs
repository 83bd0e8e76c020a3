//! Whole OTLP/HTTP requests → the real axum router of
//! `tf_otlp::http::HttpReceiver`, in process (`tower::ServiceExt::oneshot`
//! on a current-thread runtime built once), over a real `OtlpReceiver` and
//! `IngestHandler` whose sink keeps nothing and answers what the input says.
//!
//! The input is a small header of selector bytes, then the body (see
//! [`Input::parse`]; `fuzz/README.md` describes the layout, and the seeds
//! under `fuzz/seeds/http_router/` are written in it).
//!
//! Invariants (a violation panics):
//! * the router never panics;
//! * a POST to an OTLP path answers 200, 400, 413, 415, 429 or 503 — 429 and
//!   503 only when the sink refused the write, with `Retry-After`; a 500
//!   (a `ConvertError`) is a bug;
//! * another method on an OTLP path is 405 (413 when it declares a body
//!   over the limit: the size is checked first), any other path 404;
//! * a 200 carries the export response of the path's signal, in the
//!   request's format, with `error_message` set exactly when something was
//!   rejected;
//! * an error body is a `google.rpc.Status` (code and message set) in the
//!   format its `Content-Type` names, which is the request's format when
//!   the request named one we read;
//! * the sink only ever gets non-empty batches of the signal's tables.
#![no_main]

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tower::ServiceExt as _;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tf_application::TableBatch;
use tf_application::commands::{IngestHandler, IngestStats, ShardedCounterStore};
use tf_application::event_bus::EventBus;
use tf_application::ports::{IngestSink, Origin, WriteError, Written};
use tf_domain::{Table, TenantId};
use tf_otlp::OtlpReceiver;
use tf_otlp::http::HttpReceiver;
use tf_otlp::status::RpcStatus;

/// Decompressed-body limit of the router under test: small, so that
/// 413s (declared, streamed and decompression bombs) are within reach.
const MAX_BODY: usize = 64 << 10;

/// What the sink answers the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Stored,
    /// A forwarded batch seen before (only when the request names one).
    Duplicate,
    Overloaded,
    NotReady,
    ShuttingDown,
    Internal,
}

impl Answer {
    fn from_bits(b: u8) -> Self {
        match b & 7 {
            0..=2 => Answer::Stored,
            3 => Answer::Duplicate,
            4 => Answer::Overloaded,
            5 => Answer::NotReady,
            6 => Answer::ShuttingDown,
            _ => Answer::Internal,
        }
    }
}

/// The sink: checks what it is given, keeps nothing, answers as told.
struct Sink {
    answer: AtomicU8,
    /// The table set of the request's signal (`Table::signal`).
    signal: AtomicU8,
    called: AtomicBool,
}

impl Sink {
    fn answer(&self) -> Answer {
        Answer::from_bits(self.answer.load(Ordering::Relaxed))
    }
}

fn signal_index(table: Table) -> Option<u8> {
    table.signal().map(|s| s.index() as u8)
}

#[async_trait]
impl IngestSink for Sink {
    async fn write(
        &self,
        _tenant: &TenantId,
        batches: Vec<TableBatch>,
        origin: Option<Origin>,
    ) -> Result<Written, WriteError> {
        self.called.store(true, Ordering::Relaxed);
        let signal = self.signal.load(Ordering::Relaxed);
        assert!(!batches.is_empty(), "the sink got no batch");
        for b in &batches {
            assert!(b.batch.num_rows() > 0, "an empty batch of {:?}", b.table);
            assert_eq!(
                signal_index(b.table),
                Some(signal),
                "a batch of {:?} on another signal's path",
                b.table
            );
        }
        match self.answer() {
            Answer::Stored => Ok(Written::Stored),
            Answer::Duplicate if origin.is_some() => Ok(Written::Duplicate),
            Answer::Duplicate => Ok(Written::Stored),
            Answer::Overloaded => Err(WriteError::Overloaded {
                reason: "fuzz".into(),
                retry_after: Duration::from_millis(1500),
            }),
            Answer::NotReady => Err(WriteError::NotReady),
            Answer::ShuttingDown => Err(WriteError::ShuttingDown),
            Answer::Internal => Err(WriteError::Internal("fuzz".into())),
        }
    }

    async fn flush_all(&self) -> Result<(), WriteError> {
        Ok(())
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    sink: Arc<Sink>,
    router: Router,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let sink = Arc::new(Sink {
            answer: AtomicU8::new(0),
            signal: AtomicU8::new(0),
            called: AtomicBool::new(false),
        });
        let handler = Arc::new(IngestHandler::new(
            Arc::clone(&sink) as Arc<dyn IngestSink>,
            Arc::new(EventBus::new()),
            Arc::new(IngestStats::default()),
        ));
        let receiver = Arc::new(OtlpReceiver::new(
            handler,
            Arc::new(ShardedCounterStore::new(4096)),
        ));
        // As the server mounts it: the body limit around the OTLP routes.
        let router = HttpReceiver {
            receiver,
            max_body_bytes: MAX_BODY,
        }
        .routes()
        .layer(DefaultBodyLimit::max(MAX_BODY));
        Harness { rt, sink, router }
    })
}

/// The signal a path routes to, if it is an OTLP path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

const PATHS: [(&str, Option<Signal>); 16] = [
    ("/v1/traces", Some(Signal::Traces)),
    ("/v1/traces", Some(Signal::Traces)),
    ("/v1/metrics", Some(Signal::Metrics)),
    ("/v1/metrics", Some(Signal::Metrics)),
    ("/v1/logs", Some(Signal::Logs)),
    ("/v1/logs", Some(Signal::Logs)),
    ("/v1/traces?x=1&y", Some(Signal::Traces)),
    ("/v1/metrics?", Some(Signal::Metrics)),
    ("/v1/logs#frag", Some(Signal::Logs)),
    ("/v1/traces/", None),
    ("/v1/TRACES", None),
    ("/", None),
    ("/v1/profiles", None),
    ("/v1//logs", None),
    ("/v1/metrics/../logs", None),
    ("/api/v2/sql", None),
];

const METHODS: [Method; 8] = [
    Method::POST,
    Method::POST,
    Method::POST,
    Method::POST,
    Method::GET,
    Method::PUT,
    Method::HEAD,
    Method::OPTIONS,
];

/// One fuzz input, parsed:
///
/// | byte | meaning |
/// |---|---|
/// | 0 | method: `% 8` into [`METHODS`] (half POST) |
/// | 1 | path: `% 16` into [`PATHS`] |
/// | 2 | `Content-Type`: `% 8` → protobuf, JSON, `application/protobuf`, JSON with charset, `text/plain`, none, odd-cased protobuf with a parameter, raw bytes |
/// | 3 | `Content-Encoding`: bits 0-2 → none, identity, gzip, zstd, deflate, x-gzip, br, raw bytes; bit 3: the harness compresses the body with it (gzip, zstd, deflate) |
/// | 4 | `Content-Length`: `% 5` → none, the true length, one byte's value (a lie), eight bytes' big-endian value, raw bytes |
/// | 5 | bit 0: `x-tenant-id`, bit 1: `x-workspace-id`, bit 2: `x-telemetryflow-batch` (each raw bytes); bits 3-5: the sink's answer ([`Answer::from_bits`]) |
///
/// Then, in this order and only when selected, the raw header values, each
/// one length byte and that many bytes: `Content-Type`, `Content-Encoding`,
/// `Content-Length`, the eight bytes of a big `Content-Length` (no length
/// byte), tenant, workspace, batch. The rest is the body. Missing bytes
/// read as zero.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    fn raw(&mut self) -> &'a [u8] {
        let n = self.byte() as usize;
        self.bytes(n)
    }
}

fn compress(encoding: u8, body: &[u8]) -> Vec<u8> {
    match encoding {
        2 | 5 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).expect("gzip to memory");
            e.finish().expect("gzip to memory")
        }
        3 => zstd::encode_all(body, 1).expect("zstd to memory"),
        4 => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).expect("zlib to memory");
            e.finish().expect("zlib to memory")
        }
        _ => body.to_vec(),
    }
}

/// The format a request's `Content-Type` names, as the receiver reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

fn format_of(content_type: Option<&HeaderValue>) -> Option<Format> {
    let ct = content_type?.to_str().ok()?;
    match tf_otlp::http::BodyFormat::from_content_type(Some(ct))? {
        tf_otlp::http::BodyFormat::Protobuf => Some(Format::Protobuf),
        tf_otlp::http::BodyFormat::Json => Some(Format::Json),
    }
}

fn response_format(ct: Option<&HeaderValue>) -> Format {
    match ct.and_then(|v| v.to_str().ok()) {
        Some("application/x-protobuf") => Format::Protobuf,
        Some("application/json") => Format::Json,
        other => panic!("response content type {other:?}"),
    }
}

/// A 200's body: the export response of `signal` in `format`; returns
/// `(rejected, error_message)`.
fn decode_ok(signal: Signal, format: Format, body: &[u8]) -> (i64, String) {
    match format {
        Format::Protobuf => {
            let ps = match signal {
                Signal::Traces => ExportTraceServiceResponse::decode(body)
                    .expect("a traces response")
                    .partial_success
                    .map(|p| (p.rejected_spans, p.error_message)),
                Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                    .expect("a metrics response")
                    .partial_success
                    .map(|p| (p.rejected_data_points, p.error_message)),
                Signal::Logs => ExportLogsServiceResponse::decode(body)
                    .expect("a logs response")
                    .partial_success
                    .map(|p| (p.rejected_log_records, p.error_message)),
            };
            ps.unwrap_or_default()
        }
        Format::Json => {
            let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON response");
            let obj = v.as_object().expect("a JSON object");
            assert!(
                obj.keys().all(|k| k == "partialSuccess"),
                "unexpected fields in {v}"
            );
            let Some(ps) = obj.get("partialSuccess") else {
                return (0, String::new());
            };
            let ps = ps.as_object().expect("partialSuccess is an object");
            let field = match signal {
                Signal::Traces => "rejectedSpans",
                Signal::Metrics => "rejectedDataPoints",
                Signal::Logs => "rejectedLogRecords",
            };
            assert!(
                ps.keys().all(|k| k == field || k == "errorMessage"),
                "unexpected partialSuccess fields in {v}"
            );
            let rejected = match ps.get(field) {
                None => 0,
                Some(serde_json::Value::String(s)) => s.parse().expect("an int64 string"),
                Some(n) => n.as_i64().expect("an int64"),
            };
            let message = ps
                .get("errorMessage")
                .map(|m| m.as_str().expect("a string").to_owned())
                .unwrap_or_default();
            (rejected, message)
        }
    }
}

/// An error body: a `google.rpc.Status` in `format`.
fn decode_status(format: Format, body: &[u8]) -> RpcStatus {
    match format {
        Format::Protobuf => RpcStatus::decode(body).expect("a google.rpc.Status"),
        Format::Json => {
            let v: serde_json::Value =
                serde_json::from_slice(body).expect("a JSON google.rpc.Status");
            RpcStatus::new(
                v["code"].as_i64().expect("a code") as i32,
                v["message"].as_str().expect("a message"),
            )
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let mut input = Input { data };
    let method = METHODS[input.byte() as usize % METHODS.len()].clone();
    let (path, signal) = PATHS[input.byte() as usize % PATHS.len()];
    let ct_sel = input.byte() % 8;
    let enc_sel = input.byte();
    let len_sel = input.byte() % 5;
    let flags = input.byte();

    let mut req = Request::builder().method(method.clone()).uri(path);
    let mut headers: Vec<(header::HeaderName, Vec<u8>)> = Vec::new();
    let ct: Option<&[u8]> = match ct_sel {
        0 => Some(b"application/x-protobuf"),
        1 => Some(b"application/json"),
        2 => Some(b"application/protobuf"),
        3 => Some(b"application/json; charset=utf-8"),
        4 => Some(b"text/plain"),
        5 => None,
        6 => Some(b" Application/X-Protobuf ; q=1"),
        _ => Some(input.raw()),
    };
    if let Some(ct) = ct {
        headers.push((header::CONTENT_TYPE, ct.to_vec()));
    }
    let encoding = enc_sel & 7;
    let enc: Option<&[u8]> = match encoding {
        0 => None,
        1 => Some(b"identity"),
        2 => Some(b"gzip"),
        3 => Some(b"zstd"),
        4 => Some(b"deflate"),
        5 => Some(b"x-gzip"),
        6 => Some(b"br"),
        _ => Some(input.raw()),
    };
    if let Some(enc) = enc {
        headers.push((header::CONTENT_ENCODING, enc.to_vec()));
    }
    let raw_len = match len_sel {
        4 => Some(input.raw().to_vec()),
        _ => None,
    };
    let lie = match len_sel {
        2 => Some(u64::from(input.byte())),
        3 => Some(u64::from_be_bytes(
            input
                .bytes(8)
                .iter()
                .copied()
                .chain([0; 8])
                .take(8)
                .collect::<Vec<_>>()[..]
                .try_into()
                .expect("eight bytes"),
        )),
        _ => None,
    };
    for (bit, name) in [
        (1, tf_otlp::TENANT_HEADER),
        (2, tf_otlp::WORKSPACE_HEADER),
        (4, tf_otlp::BATCH_HEADER),
    ] {
        if flags & bit != 0 {
            headers.push((header::HeaderName::from_static(name), input.raw().to_vec()));
        }
    }
    let answer = Answer::from_bits(flags >> 3);
    let mut body = input.data.to_vec();
    if enc_sel & 8 != 0 {
        body = compress(encoding, &body);
    }
    let length = match (len_sel, lie, raw_len) {
        (1, _, _) => Some(body.len().to_string().into_bytes()),
        (_, Some(n), _) => Some(n.to_string().into_bytes()),
        (_, _, Some(raw)) => Some(raw),
        _ => None,
    };
    if let Some(length) = length {
        headers.push((header::CONTENT_LENGTH, length));
    }
    for (name, value) in headers {
        // Bytes no HTTP/1 or HTTP/2 parser lets through never reach the router.
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            req = req.header(name, v);
        }
    }
    let req = req.body(Body::from(body)).expect("a request");
    let request_format = format_of(req.headers().get(header::CONTENT_TYPE));
    let declared_over_limit = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);

    h.sink.answer.store(flags >> 3, Ordering::Relaxed);
    h.sink.called.store(false, Ordering::Relaxed);
    h.sink.signal.store(
        match signal {
            Some(Signal::Traces) | None => 0,
            Some(Signal::Metrics) => 1,
            Some(Signal::Logs) => 2,
        },
        Ordering::Relaxed,
    );
    let resp =
        h.rt.block_on(h.router.clone().oneshot(req))
            .expect("the router is infallible");
    let called = h.sink.called.load(Ordering::Relaxed);
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    let body =
        h.rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
            .expect("a response body");

    let Some(signal) = signal else {
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        return;
    };
    if method != Method::POST {
        // The declared size is checked first, whatever the method.
        if declared_over_limit && status == StatusCode::PAYLOAD_TOO_LARGE {
            return;
        }
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        return;
    }
    assert!(
        [200, 400, 413, 415, 429, 503].contains(&status.as_u16()),
        "status {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let format = response_format(resp_headers.get(header::CONTENT_TYPE));
    if status == StatusCode::OK {
        if let Some(f) = request_format {
            assert_eq!(format, f, "a 200 in another format than the request's");
        }
        assert!(
            !called || matches!(answer, Answer::Stored | Answer::Duplicate),
            "200 though the sink answered {answer:?}"
        );
        let (rejected, message) = decode_ok(signal, format, &body);
        assert!(rejected >= 0, "rejected {rejected}");
        assert_eq!(
            rejected > 0,
            !message.is_empty(),
            "rejected {rejected} with message {message:?}"
        );
        return;
    }
    // 415 for a content type we do not read is answered in protobuf; every
    // other error in the request's format.
    if let Some(f) = request_format {
        assert_eq!(format, f, "a {status} in another format than the request's");
    }
    let rpc = decode_status(format, &body);
    assert!(rpc.code != 0, "an error status with code 0");
    assert!(!rpc.message.is_empty(), "an error status without a message");
    match status.as_u16() {
        429 => {
            assert!(
                called && answer == Answer::Overloaded,
                "429 though the sink answered {answer:?}"
            );
            assert!(resp_headers.contains_key(header::RETRY_AFTER));
        }
        503 => {
            assert!(
                called
                    && !matches!(
                        answer,
                        Answer::Stored | Answer::Duplicate | Answer::Overloaded
                    ),
                "503 though the sink answered {answer:?}"
            );
            assert!(resp_headers.contains_key(header::RETRY_AFTER));
        }
        _ => assert!(!called, "{status} after the sink was written"),
    }
});
