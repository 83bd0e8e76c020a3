//! Hostile inputs against the real server, over real HTTP and gRPC: bytes
//! that do not decode, lying encodings, compression bombs, values nested
//! past any sane depth, huge requests, non-finite numbers, extreme
//! timestamps and histograms, hostile tenant headers and batch keys,
//! connections that stall, and SQL sandbox escapes with another tenant's
//! key. Every input is a named case with the one answer it must get; after
//! each group the server still answers `/healthz`, still accepts a normal
//! export over both protocols, and still holds the data it accepted before.

use std::num::NonZero;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::assert_batches_sorted_eq;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric,
    metric, number_data_point,
};
use prost::Message;
use serde_json::json;
use telemetryflow::infrastructure::otlp::status::RpcStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::{Codec, EncodeBuf, Encoder};

use crate::auth::{create, key, keyed_server_with};
use crate::fixtures::*;
use crate::otlp_http::gzip;
use crate::support::{TestServer, parquet_files};

// ---------------------------------------------------------------------------
// Helpers: signals, requests, answers, and the after-check of every group.
// ---------------------------------------------------------------------------

/// Tests that allocate hundreds of megabytes take this exclusively, the
/// memory test too; the others share it. The memory test reads the whole
/// process's resident set, so nothing big may run beside it.
static HEAVY: LazyLock<tokio::sync::RwLock<()>> = LazyLock::new(Default::default);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    fn http_path(self) -> String {
        format!("/v1/{}", self.name())
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }

    /// A valid request of one item, encoded.
    fn valid(self, service: &str, n: u8) -> Vec<u8> {
        match self {
            Signal::Traces => traces(service, vec![span(n, 1, "op", T0)]).encode_to_vec(),
            Signal::Metrics => metrics(
                service,
                vec![gauge(
                    "queue.depth",
                    vec![number_point(
                        T0 + u64::from(n),
                        0,
                        number_data_point::Value::AsDouble(1.5),
                        vec![kv_str("queue", "q1")],
                    )],
                )],
            )
            .encode_to_vec(),
            Signal::Logs => logs(service, vec![log(T0, 9, "hello")]).encode_to_vec(),
        }
    }

    /// Whether `bytes` decode as this signal's request.
    fn decodes(self, bytes: &[u8]) -> bool {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest as L;
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest as M;
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as T;
        match self {
            Signal::Traces => T::decode(bytes).is_ok(),
            Signal::Metrics => M::decode(bytes).is_ok(),
            Signal::Logs => L::decode(bytes).is_ok(),
        }
    }
}

/// An HTTP answer.
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    /// The `google.rpc.Status` of an error answer, in either format.
    fn rpc_status(&self) -> RpcStatus {
        if self.content_type.starts_with("application/json") {
            let v: serde_json::Value = serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()));
            RpcStatus::new(
                v["code"].as_i64().expect("a code") as i32,
                v["message"].as_str().expect("a message"),
            )
        } else {
            assert_eq!(
                self.content_type,
                "application/x-protobuf",
                "{}",
                self.text()
            );
            RpcStatus::decode(&self.body[..]).expect("a google.rpc.Status")
        }
    }

    /// The `error` of a query API answer.
    fn error(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.text())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(600)]).into_owned()
    }
}

/// `POST {s.http}{path}` with raw header values and `body`.
async fn post(s: &TestServer, path: &str, headers: &[(&str, &[u8])], body: Vec<u8>) -> Reply {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", s.http))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
    }
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

const PROTOBUF: (&str, &[u8]) = ("content-type", b"application/x-protobuf");
const JSON: (&str, &[u8]) = ("content-type", b"application/json");

/// `Authorization: Bearer <key>` as a raw header, when there is a key.
fn bearer(key: Option<&str>) -> Option<(&'static str, Vec<u8>)> {
    key.map(|k| ("authorization", format!("Bearer {k}").into_bytes()))
}

/// A protobuf export of `signal` as `key` (if any) for `tenant`.
async fn export(
    s: &TestServer,
    key: Option<&str>,
    tenant: &str,
    signal: Signal,
    body: Vec<u8>,
) -> Reply {
    let auth = bearer(key);
    let mut headers = vec![PROTOBUF, ("x-tenant-id", tenant.as_bytes())];
    if let Some((k, v)) = &auth {
        headers.push((k, v));
    }
    post(s, &signal.http_path(), &headers, body).await
}

/// SQL as `key` (if any) for `tenant`: the answer, unparsed.
async fn sql_reply(s: &TestServer, key: Option<&str>, tenant: &str, sql: &str) -> Reply {
    let auth = bearer(key);
    let mut headers = vec![JSON, ("x-tenant-id", tenant.as_bytes())];
    if let Some((k, v)) = &auth {
        headers.push((k, v));
    }
    let body = json!({ "sql": sql }).to_string().into_bytes();
    post(s, "/api/v2/sql?format=arrow", &headers, body).await
}

/// SQL as `key` (if any) for `tenant`; fails the test unless it answers.
async fn query(s: &TestServer, key: Option<&str>, tenant: &str, sql: &str) -> Vec<RecordBatch> {
    let r = sql_reply(s, key, tenant, sql).await;
    assert_eq!(r.status, 200, "{sql}: {}", r.error());
    telemetryflow::infrastructure::query::format::from_arrow_ipc(&r.body, false)
        .unwrap()
        .batches
}

/// Writes one span, one gauge point and one log record of service
/// `baseline`: what every group checks is still there afterwards.
async fn write_baseline(s: &TestServer, key: Option<&str>, tenant: &str) {
    for signal in Signal::ALL {
        let r = export(s, key, tenant, signal, signal.valid("baseline", 1)).await;
        assert_eq!(r.status, 200, "baseline {signal:?}: {}", r.text());
    }
}

async fn healthy(s: &TestServer) -> bool {
    reqwest::get(format!("{}/healthz", s.http))
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// The server is alive: `/healthz` answers 200, a normal export succeeds
/// over HTTP and over gRPC, and the baseline written before the hostile
/// inputs is all there, once.
async fn assert_alive_and_intact(s: &TestServer, key: Option<&str>, tenant: &str) {
    assert!(healthy(s).await, "/healthz is not 200");
    let r = export(
        s,
        key,
        tenant,
        Signal::Traces,
        Signal::Traces.valid("after", 1),
    )
    .await;
    assert_eq!(r.status, 200, "a normal HTTP export: {}", r.text());
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let mut req = tonic::Request::new(traces("after", vec![span(2, 1, "op", T0)]));
    req.metadata_mut()
        .insert("x-tenant-id", tenant.parse().unwrap());
    if let Some(k) = key {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    let answer = client.export(req).await.expect("a normal gRPC export");
    assert_eq!(answer.into_inner().partial_success, None);
    let rows = query(
        s,
        key,
        tenant,
        "SELECT 'traces' AS t, count(*) AS n FROM otel_traces WHERE service_name = 'baseline' \
         UNION ALL SELECT 'gauge', count(*) FROM otel_metrics_gauge WHERE service_name = 'baseline' \
         UNION ALL SELECT 'logs', count(*) FROM otel_logs WHERE service_name = 'baseline' \
         UNION ALL SELECT 'traces after', count(*) FROM otel_traces WHERE service_name = 'after'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+--------------+---+",
            "| t            | n |",
            "+--------------+---+",
            "| gauge        | 1 |",
            "| logs         | 1 |",
            "| traces       | 1 |",
            "| traces after | 2 |",
            "+--------------+---+",
        ],
        &rows
    );
}

/// A protobuf field of wire type 2 (length-delimited): key, length, bytes.
fn len_field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// An export request of one item given as encoded bytes: traces, metrics
/// and logs nest the same way (request field 1 → resource field 2 →
/// scope field 2 → the item), so one function wraps all three.
fn wrap_item(service: &str, item: &[u8]) -> Vec<u8> {
    let resource = len_field(1, &resource(service).unwrap().encode_to_vec());
    let scope = len_field(1, &scope().unwrap().encode_to_vec());
    let scoped = [scope, len_field(2, item)].concat();
    let resourced = [resource, len_field(2, &scoped)].concat();
    len_field(1, &resourced)
}

/// An `AnyValue` nested `depth` arrays deep around a string, encoded from
/// the outside in without recursion (prost would recurse once per level).
fn deep_any_value(depth: usize) -> Vec<u8> {
    use prost::encoding::{encode_varint, encoded_len_varint};
    let leaf = AnyValue {
        value: Some(any_value::Value::StringValue("x".into())),
    }
    .encode_to_vec();
    let array_len = |inner: usize| 1 + encoded_len_varint(inner as u64) + inner;
    // lens[i]: the encoded length of the AnyValue at level i (0 = the leaf).
    let mut lens = vec![leaf.len()];
    for i in 0..depth {
        let array = array_len(lens[i]);
        lens.push(1 + encoded_len_varint(array as u64) + array);
    }
    let mut out = Vec::with_capacity(lens[depth]);
    for i in (0..depth).rev() {
        out.push(0x2a); // AnyValue.array_value (5), length-delimited
        encode_varint(array_len(lens[i]) as u64, &mut out);
        out.push(0x0a); // ArrayValue.values (1), length-delimited
        encode_varint(lens[i] as u64, &mut out);
    }
    out.extend_from_slice(&leaf);
    assert_eq!(out.len(), lens[depth]);
    out
}

/// A span whose attribute `deep` is an `AnyValue` `depth` arrays deep.
fn span_with_deep_value(depth: usize) -> Vec<u8> {
    let mut item = span(9, 9, "deep", T0).encode_to_vec();
    let kv = [len_field(1, b"deep"), len_field(2, &deep_any_value(depth))].concat();
    item.extend(len_field(9, &kv)); // Span.attributes
    wrap_item("deep", &item)
}

/// Deterministic noise (xorshift).
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends bytes as they are as one gRPC message; the answer's message is
/// decoded into nothing (only the status matters here).
#[derive(Default)]
struct RawCodec;

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<()>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// One gRPC call of `path` with `message` sent as it is.
async fn grpc_raw(
    s: &TestServer,
    path: &'static str,
    message: Vec<u8>,
) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(message),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|_| ())
}

/// One gRPC message framed by hand (the compressed flag set, with
/// `grpc-encoding: encoding`), sent over HTTP/2: the `grpc-status` and
/// `grpc-message` of the answer's headers (errors are trailers-only).
async fn grpc_frame(
    s: &TestServer,
    path: &str,
    encoding: &str,
    payload: &[u8],
) -> (String, String) {
    let client = reqwest_012::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    let resp = client
        .post(format!("{}{path}", s.grpc))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", encoding)
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (header("grpc-status"), header("grpc-message"))
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A raw deflate stream of `mib` MiB of zeros, made without compressing
/// them all: one MiB compressed with a sync flush gives byte-aligned,
/// non-final blocks whose matches reach back only within that MiB, so
/// copies of them in a row inflate to a MiB each; an empty final block
/// ends the stream.
fn deflate_zeros(mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let mut one = Vec::with_capacity(64 << 10);
    let mut c = Compress::new(Compression::best(), false);
    let status = c
        .compress_vec(&vec![0u8; 1 << 20], &mut one, FlushCompress::Sync)
        .unwrap();
    assert_eq!((status, c.total_in()), (Status::Ok, 1 << 20));
    let mut end = Vec::with_capacity(64);
    let status = Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut end, FlushCompress::Finish)
        .unwrap();
    assert_eq!(status, Status::StreamEnd);
    [one.repeat(mib), end].concat()
}

/// A gzip member of `mib` MiB of zeros (see [`deflate_zeros`]), with the
/// CRC-32 and length of what it inflates to.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut one = flate2::Crc::new();
    one.update(&vec![0u8; 1 << 20]);
    let mut crc = flate2::Crc::new();
    for _ in 0..mib {
        crc.combine(&one);
    }
    let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let trailer = [crc.sum().to_le_bytes(), crc.amount().to_le_bytes()].concat();
    [&header[..], &deflate_zeros(mib), &trailer].concat()
}

/// A zlib stream (HTTP's `deflate`) of `mib` MiB of zeros, with their
/// Adler-32 (1 + the sum of the bytes = 1; the sum of those sums = the
/// length, both modulo 65521).
fn zlib_bomb(mib: usize) -> Vec<u8> {
    let b = ((mib as u64) << 20) % 65521;
    let adler = ((b as u32) << 16) | 1;
    [&[0x78, 0xda][..], &deflate_zeros(mib), &adler.to_be_bytes()].concat()
}

/// A zstd frame of `mib` MiB of zeros as RLE blocks of 128 KiB: four bytes
/// a block (a three-byte block header and the byte to repeat).
fn zstd_bomb(mib: usize) -> Vec<u8> {
    const BLOCK: u32 = 128 << 10;
    let blocks = (mib << 20) / BLOCK as usize;
    // Magic number; frame header: no content size, no checksum, single
    // segment off; window descriptor 2^17 = 128 KiB.
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | (BLOCK << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

fn ok_or_code(r: Result<(), tonic::Status>) -> Result<(), tonic::Code> {
    r.map_err(|e| e.code())
}

// ---------------------------------------------------------------------------
// Bytes that do not decode.
// ---------------------------------------------------------------------------

/// Truncated protobuf and random bytes, for each signal, over HTTP (400
/// with a protobuf google.rpc.Status INVALID_ARGUMENT naming the signal)
/// and over gRPC (INVALID_ARGUMENT): 12 inputs.
#[tokio::test]
async fn undecodable_protobuf_is_invalid_argument_on_every_signal_and_protocol() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    for signal in Signal::ALL {
        let valid = signal.valid("hostile", 7);
        let truncated = valid[..valid.len() / 2].to_vec();
        let random = random_bytes(0x9e37_79b9_7f4a_7c15 ^ signal as u64, 1024);
        for (case, bytes) in [("truncated", truncated), ("random", random)] {
            assert!(!signal.decodes(&bytes), "{signal:?} {case}: decodes");
            let r = post(&s, &signal.http_path(), &[PROTOBUF], bytes.clone()).await;
            assert_eq!(r.status, 400, "HTTP {signal:?} {case}: {}", r.text());
            let status = r.rpc_status();
            assert_eq!(status.code, 3, "HTTP {signal:?} {case}");
            assert!(
                status
                    .message
                    .contains(&format!("invalid OTLP/protobuf {} request", signal.name())),
                "HTTP {signal:?} {case}: {}",
                status.message
            );
            let answer = grpc_raw(&s, signal.grpc_path(), bytes).await;
            assert_eq!(
                ok_or_code(answer),
                Err(tonic::Code::InvalidArgument),
                "gRPC {signal:?} {case}"
            );
        }
    }
    assert_alive_and_intact(&s, None, "default").await;
}

// ---------------------------------------------------------------------------
// Encodings that lie, and compression bombs.
// ---------------------------------------------------------------------------

/// A `Content-Encoding` (or `grpc-encoding`) that does not match the body
/// is the client's fault (400 / INVALID_ARGUMENT); one the server does not
/// know is 415 (gRPC: UNIMPLEMENTED, as the gRPC specification says). The
/// error comes in the request's format.
#[tokio::test]
async fn lying_content_encodings_are_refused_in_the_requests_format() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let proto = Signal::Traces.valid("lies", 3);
    let json_body = br#"{"resourceSpans":[]}"#.to_vec();
    struct Case {
        name: &'static str,
        content_type: &'static [u8],
        encoding: &'static [u8],
        body: Vec<u8>,
        status: u16,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "says gzip, is plain protobuf",
            content_type: b"application/x-protobuf",
            encoding: b"gzip",
            body: proto.clone(),
            status: 400,
            message: "corrupt gzip body",
        },
        Case {
            name: "says gzip, is plain JSON",
            content_type: b"application/json",
            encoding: b"gzip",
            body: json_body.clone(),
            status: 400,
            message: "corrupt gzip body",
        },
        Case {
            name: "says zstd, is gzip",
            content_type: b"application/x-protobuf",
            encoding: b"zstd",
            body: gzip(&proto),
            status: 400,
            message: "corrupt zstd body",
        },
        Case {
            name: "says gzip, is zstd",
            content_type: b"application/x-protobuf",
            encoding: b"gzip",
            body: zstd(&proto),
            status: 400,
            message: "corrupt gzip body",
        },
        Case {
            name: "says deflate, is gzip",
            content_type: b"application/x-protobuf",
            encoding: b"deflate",
            body: gzip(&proto),
            status: 400,
            message: "corrupt deflate body",
        },
        Case {
            name: "unknown encoding br",
            content_type: b"application/x-protobuf",
            encoding: b"br",
            body: proto.clone(),
            status: 415,
            message: "unsupported content encoding \"br\"",
        },
        Case {
            name: "stacked encodings gzip, zstd",
            content_type: b"application/x-protobuf",
            encoding: b"gzip, zstd",
            body: zstd(&gzip(&proto)),
            status: 415,
            message: "unsupported content encoding",
        },
        Case {
            name: "non-ASCII encoding name",
            content_type: b"application/json",
            encoding: b"gz\xefp",
            body: json_body.clone(),
            status: 415,
            message: "unsupported content encoding \"<non-ascii>\"",
        },
    ];
    for case in cases {
        let r = post(
            &s,
            "/v1/traces",
            &[
                ("content-type", case.content_type),
                ("content-encoding", case.encoding),
            ],
            case.body,
        )
        .await;
        assert_eq!(r.status, case.status, "{}: {}", case.name, r.text());
        let expected_type = std::str::from_utf8(case.content_type).unwrap();
        assert_eq!(r.content_type, expected_type, "{}", case.name);
        let status = r.rpc_status();
        assert_eq!(status.code, 3, "{}", case.name);
        assert!(
            status.message.contains(case.message),
            "{}: {}",
            case.name,
            status.message
        );
    }
    // gRPC: a message flagged compressed whose bytes are another encoding's
    // (or none) is INVALID_ARGUMENT; an encoding the server does not offer
    // is UNIMPLEMENTED.
    let path = Signal::Traces.grpc_path();
    for (name, encoding, payload, code) in [
        ("gRPC says zstd, is gzip", "zstd", gzip(&proto), "3"),
        ("gRPC says gzip, is plain", "gzip", proto.clone(), "3"),
        ("gRPC unknown encoding br", "br", proto.clone(), "12"),
    ] {
        let (status, message) = grpc_frame(&s, path, encoding, &payload).await;
        assert_eq!(status, code, "{name}: {message}");
    }
    assert_alive_and_intact(&s, None, "default").await;
}

/// `(VmRSS, VmHWM)` of this process, in bytes.
fn resident() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |field: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    * 1024
            })
            .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Resets this process's peak resident set size (VmHWM) to its current
/// one; false where the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Small compressed bodies that inflate far past `server.max_request_bytes`
/// are refused once the limit is reached: HTTP 413 with a google.rpc.Status
/// RESOURCE_EXHAUSTED in the request's format, gRPC RESOURCE_EXHAUSTED (the
/// gRPC specification's code for a message over the receive limit). The
/// server (in this process) never holds much more than the limit: for
/// bombs of 64 times the limit, the process's peak resident set grows by
/// less than three times the limit.
#[tokio::test]
async fn compression_bombs_are_refused_at_the_limit_in_bounded_memory() {
    const LIMIT: usize = 16 << 20;
    const INFLATED_MIB: usize = 1024;
    let _alone = HEAVY.write().await;
    let s =
        TestServer::start_with(|c| c.server.max_request_bytes = NonZero::new(LIMIT).unwrap()).await;
    write_baseline(&s, None, "default").await;
    // The bombs are valid streams: small ones inflate to their zeros.
    let small = vec![0u8; 3 << 20];
    let inflate = |r: &mut dyn std::io::Read| {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    };
    assert!(inflate(&mut flate2::read::GzDecoder::new(&gzip_bomb(3)[..])) == small);
    assert!(inflate(&mut flate2::read::ZlibDecoder::new(&zlib_bomb(3)[..])) == small);
    assert!(zstd::decode_all(&zstd_bomb(3)[..]).unwrap() == small);
    let (gzip_bomb, zstd_bomb, deflate_bomb) = (
        gzip_bomb(INFLATED_MIB),
        zstd_bomb(INFLATED_MIB),
        zlib_bomb(INFLATED_MIB),
    );
    for bomb in [&gzip_bomb, &zstd_bomb, &deflate_bomb] {
        assert!(bomb.len() < LIMIT / 8, "a bomb of {} bytes", bomb.len());
    }
    // (case, protocol and encoding, bomb, content type for HTTP)
    let cases: [(&str, &str, &Vec<u8>, &[u8]); 5] = [
        (
            "HTTP gzip bomb, protobuf",
            "gzip",
            &gzip_bomb,
            b"application/x-protobuf",
        ),
        (
            "HTTP zstd bomb, JSON",
            "zstd",
            &zstd_bomb,
            b"application/json",
        ),
        (
            "HTTP deflate bomb, protobuf",
            "deflate",
            &deflate_bomb,
            b"application/x-protobuf",
        ),
        ("gRPC gzip bomb", "gzip", &gzip_bomb, b""),
        ("gRPC zstd bomb", "zstd", &zstd_bomb, b""),
    ];
    // Inflating to the limit holds the limit once; growing the buffer that
    // holds it may copy it once (both copies resident for a moment, once
    // this process's allocator serves such sizes from its heap, as it does
    // after earlier tests freed large buffers). All of a bomb would be 64
    // times the limit.
    let bound = 3 * LIMIT as u64;
    for (name, encoding, bomb, content_type) in cases {
        // Tests of other modules may allocate beside this one; what they
        // add only raises a measurement, so the least of three stands.
        let mut least = u64::MAX;
        for _ in 0..3 {
            let peak_reset = reset_peak();
            let (before, _) = resident();
            if content_type.is_empty() {
                let (code, message) =
                    grpc_frame(&s, Signal::Logs.grpc_path(), encoding, bomb).await;
                assert_eq!(code, "8", "{name}: {message}");
            } else {
                let r = post(
                    &s,
                    "/v1/logs",
                    &[
                        ("content-type", content_type),
                        ("content-encoding", encoding.as_bytes()),
                    ],
                    bomb.clone(),
                )
                .await;
                assert_eq!(r.status, 413, "{name}: {}", r.text());
                let status = r.rpc_status();
                assert_eq!(status.code, 8, "{name}");
                assert!(
                    status
                        .message
                        .contains(&format!("larger than {LIMIT} bytes after decompression")),
                    "{name}: {}",
                    status.message
                );
            }
            let (after, peak) = resident();
            let grown = if peak_reset { peak } else { after }.saturating_sub(before);
            eprintln!(
                "{name}: resident {} MiB before, {} MiB after, {} MiB at the peak \
                 (peak reset: {peak_reset})",
                before >> 20,
                after >> 20,
                peak >> 20
            );
            least = least.min(grown);
            if least < bound {
                break;
            }
        }
        assert!(
            least < bound,
            "{name}: the process grew by {} MiB for a limit of {} MiB",
            least >> 20,
            LIMIT >> 20
        );
    }
    drop((gzip_bomb, zstd_bomb, deflate_bomb));
    assert_alive_and_intact(&s, None, "default").await;
}

// ---------------------------------------------------------------------------
// Values nested too deep, requests too wide, strings too long.
// ---------------------------------------------------------------------------

/// An `AnyValue` nested 100,000 deep in protobuf stops at prost's recursion
/// limit (a 400 / INVALID_ARGUMENT, not a stack overflow); one 40 deep
/// decodes and is rejected by the one nesting rule in partial success; one
/// 10,000 deep in OTLP/JSON is a 400 that names the nesting.
#[tokio::test]
async fn deeply_nested_values_are_refused_without_overflowing_the_stack() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;

    let deepest = span_with_deep_value(100_000);
    let r = post(&s, "/v1/traces", &[PROTOBUF], deepest.clone()).await;
    assert_eq!(r.status, 400, "protobuf 100,000 deep: {}", r.text());
    let status = r.rpc_status();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("recursion limit reached"),
        "{}",
        status.message
    );
    assert_eq!(
        ok_or_code(grpc_raw(&s, Signal::Traces.grpc_path(), deepest).await),
        Err(tonic::Code::InvalidArgument),
        "gRPC 100,000 deep"
    );

    let r = post(&s, "/v1/traces", &[PROTOBUF], span_with_deep_value(40)).await;
    assert_eq!(r.status, 200, "protobuf 40 deep: {}", r.text());
    let partial = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial
            .error_message
            .contains("nested deeper than 30 levels"),
        "{}",
        partial.error_message
    );

    let depth = 10_000;
    let deep_json = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{T0}","body":{}{}{}}}]}}]}}]}}"#,
        r#"{"kvlistValue":{"values":[{"key":"a","value":"#.repeat(depth),
        r#"{"stringValue":"x"}"#,
        "}}]}}".repeat(depth),
    );
    let r = post(&s, "/v1/logs", &[JSON], deep_json.into_bytes()).await;
    assert_eq!(r.status, 400, "JSON 10,000 deep: {}", r.text());
    let status = r.rpc_status();
    assert_eq!(status.code, 3);
    assert!(status.message.contains("nest"), "{}", status.message);
    assert_alive_and_intact(&s, None, "default").await;
}

/// One span with a million attributes (about 20 MB of protobuf, within the
/// default 64 MiB limit) is stored whole, and the server keeps serving.
#[tokio::test]
async fn a_span_with_a_million_attributes_is_stored_and_the_server_keeps_serving() {
    let _alone = HEAVY.write().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let mut wide = span(5, 5, "wide", T0);
    wide.attributes = (0..1_000_000)
        .map(|i| kv_int(&format!("k{i}"), i))
        .collect();
    let body = traces("wide", vec![wide]).encode_to_vec();
    eprintln!("a million attributes: {} bytes", body.len());
    let started = Instant::now();
    let r = post(&s, "/v1/traces", &[PROTOBUF], body).await;
    eprintln!("answered in {:?}", started.elapsed());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ExportTraceServiceResponse::decode(&r.body[..])
            .unwrap()
            .partial_success,
        None
    );
    let rows = query(
        &s,
        None,
        "default",
        "SELECT cardinality(span_attributes) AS n, span_attributes['k999999'] AS last \
         FROM otel_traces WHERE service_name = 'wide'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+---------+--------+",
            "| n       | last   |",
            "+---------+--------+",
            "| 1000000 | 999999 |",
            "+---------+--------+",
        ],
        &rows
    );
    assert_alive_and_intact(&s, None, "default").await;
}

/// A 50 MB string attribute and a 50 MB log body (each request within a
/// 64 MiB limit) are stored and read back whole; invalid UTF-8 in a
/// protobuf string field is a 400 (prost refuses it), and in OTLP/JSON
/// too, raw or as an escaped lone surrogate.
#[tokio::test]
async fn fifty_megabyte_strings_are_stored_and_invalid_utf8_is_refused() {
    const BIG: usize = 50_000_000;
    let _alone = HEAVY.write().await;
    let s = TestServer::start_with(|c| {
        c.server.max_request_bytes = NonZero::new(64 << 20).unwrap();
    })
    .await;
    write_baseline(&s, None, "default").await;

    let blob = "x".repeat(BIG);
    let mut big = span(6, 6, "big", T0);
    big.attributes.push(kv_str("blob", &blob));
    let r = post(
        &s,
        "/v1/traces",
        &[PROTOBUF],
        traces("big", vec![big]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "50 MB attribute: {}", r.text());
    let r = post(
        &s,
        "/v1/logs",
        &[PROTOBUF],
        logs("big", vec![log(T0, 9, &blob)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "50 MB log body: {}", r.text());
    drop(blob);
    let rows = query(
        &s,
        None,
        "default",
        "SELECT 'attribute' AS what, length(span_attributes['blob']) AS n FROM otel_traces \
         WHERE service_name = 'big' \
         UNION ALL SELECT 'body', length(body) FROM otel_logs WHERE service_name = 'big'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+-----------+----------+",
            "| what      | n        |",
            "+-----------+----------+",
            "| attribute | 50000000 |",
            "| body      | 50000000 |",
            "+-----------+----------+",
        ],
        &rows
    );

    // Span.name (field 5) and a log body's string_value, not UTF-8.
    let mut bad_name = span(7, 7, "", T0).encode_to_vec();
    bad_name.extend(len_field(5, b"\xff\xfe"));
    let mut bad_body = log(T0, 9, "").encode_to_vec();
    bad_body.extend(len_field(5, &len_field(1, b"ok \xc3\x28")));
    for (name, path, body) in [
        (
            "protobuf span name",
            "/v1/traces",
            wrap_item("utf8", &bad_name),
        ),
        (
            "protobuf log body",
            "/v1/logs",
            wrap_item("utf8", &bad_body),
        ),
    ] {
        let r = post(&s, path, &[PROTOBUF], body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        let status = r.rpc_status();
        assert!(
            status.message.contains("UTF-8"),
            "{name}: {}",
            status.message
        );
    }
    let json_log = |body: &[u8]| {
        [
            &br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":""#[..],
            body,
            br#""}}]}]}]}"#,
        ]
        .concat()
    };
    for (name, body) in [
        ("JSON raw invalid UTF-8", json_log(b"ok \xc3\x28")),
        ("JSON escaped lone surrogate", json_log(br"\ud800")),
    ] {
        let r = post(&s, "/v1/logs", &[JSON], body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_eq!(r.rpc_status().code, 3, "{name}");
    }
    assert_alive_and_intact(&s, None, "default").await;
}

// ---------------------------------------------------------------------------
// Numbers and times at the edges.
// ---------------------------------------------------------------------------

/// An OTLP/JSON metrics request of one metric of service `nonfinite`.
fn metric_json(metric: serde_json::Value) -> Vec<u8> {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "nonfinite"}}]},
        "scopeMetrics": [{"metrics": [metric]}]
    }]})
    .to_string()
    .into_bytes()
}

/// NaN, +Inf and -Inf (OTLP/JSON's "NaN", "Infinity", "-Infinity") as
/// gauge values, up-down counter values and histogram sums are stored and
/// read back as they were sent; on a monotonic counter they are rejected in
/// partial success with the reason; a misspelt "nan" is a 400. Reading them
/// back as JSON and through the metrics API answers, not a 500.
#[tokio::test]
async fn non_finite_values_are_stored_faithfully_or_rejected_with_a_reason() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let t = T0.to_string();
    let gauge = |name: &str, v: &str| json!({"name": name, "gauge": {"dataPoints": [{"timeUnixNano": t, "asDouble": v}]}});
    let sum = |name: &str, v: &str, monotonic: bool| {
        json!({"name": name, "sum": {"aggregationTemporality": 2, "isMonotonic": monotonic,
            "dataPoints": [{"startTimeUnixNano": (T0 - SEC).to_string(), "timeUnixNano": t, "asDouble": v}]}})
    };
    let histogram = |name: &str, v: &str| {
        json!({"name": name, "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "startTimeUnixNano": (T0 - SEC).to_string(), "timeUnixNano": t,
            "count": "1", "sum": v, "bucketCounts": ["0", "1"], "explicitBounds": [1.0]}]}})
    };
    // (case, metric, rejected points and the reason, if any)
    let counter_reason = Some("NaN or infinite value on a monotonic counter");
    let cases = [
        ("gauge NaN", gauge("g_nan", "NaN"), None),
        ("gauge +Inf", gauge("g_pinf", "Infinity"), None),
        ("gauge -Inf", gauge("g_ninf", "-Infinity"), None),
        ("up-down counter NaN", sum("u_nan", "NaN", false), None),
        ("histogram sum NaN", histogram("h_nan", "NaN"), None),
        ("histogram sum +Inf", histogram("h_pinf", "Infinity"), None),
        ("histogram sum -Inf", histogram("h_ninf", "-Infinity"), None),
        (
            "monotonic counter NaN",
            sum("c_nan", "NaN", true),
            counter_reason,
        ),
        (
            "monotonic counter +Inf",
            sum("c_pinf", "Infinity", true),
            counter_reason,
        ),
    ];
    for (name, metric, rejected) in cases {
        let r = post(&s, "/v1/metrics", &[JSON], metric_json(metric)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        match rejected {
            None => assert!(v.get("partialSuccess").is_none(), "{name}: {v}"),
            Some(reason) => {
                assert_eq!(
                    v["partialSuccess"]["rejectedDataPoints"], "1",
                    "{name}: {v}"
                );
                let message = v["partialSuccess"]["errorMessage"].as_str().unwrap();
                assert!(message.contains(reason), "{name}: {message}");
            }
        }
    }
    let r = post(
        &s,
        "/v1/metrics",
        &[JSON],
        metric_json(gauge("g_typo", "nan")),
    )
    .await;
    assert_eq!(r.status, 400, "gauge \"nan\": {}", r.text());
    assert!(r.rpc_status().message.contains("asDouble"), "{}", r.text());

    let rows = query(
        &s,
        None,
        "default",
        "SELECT metric_name, value FROM otel_metrics_gauge WHERE service_name = 'nonfinite' \
         UNION ALL SELECT metric_name, value FROM otel_metrics_sum WHERE service_name = 'nonfinite' \
         UNION ALL SELECT metric_name, sum FROM otel_metrics_histogram WHERE service_name = 'nonfinite'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-------+",
            "| metric_name | value |",
            "+-------------+-------+",
            "| g_nan       | NaN   |",
            "| g_ninf      | -inf  |",
            "| g_pinf      | inf   |",
            "| h_nan       | NaN   |",
            "| h_ninf      | -inf  |",
            "| h_pinf      | inf   |",
            "| u_nan       | NaN   |",
            "+-------------+-------+",
        ],
        &rows
    );
    // The same values through the JSON rendering: OTLP/JSON's strings, not
    // null (which would read as a missing value).
    let r = post(
        &s,
        "/api/v2/sql?format=json",
        &[JSON],
        json!({"sql": "SELECT metric_name, value FROM otel_metrics_gauge \
                       WHERE service_name = 'nonfinite' ORDER BY metric_name"})
        .to_string()
        .into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "SQL as JSON: {}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["rows"],
        json!([
            ["g_nan", "NaN"],
            ["g_ninf", "-Infinity"],
            ["g_pinf", "Infinity"]
        ])
    );
    // The metrics API answers over them (one point each), not a 500.
    for (metric, aggregation) in [("g_nan", "avg"), ("g_pinf", "max"), ("h_nan", "p99")] {
        let url = format!(
            "{}/api/v2/metrics/timeseries?metric={metric}&aggregation={aggregation}&start={}&end={}",
            s.http,
            T0 - 60 * SEC,
            T0 + 60 * SEC
        );
        let resp = reqwest::get(url).await.unwrap();
        let status = resp.status().as_u16();
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(status, 200, "timeseries of {metric}: {v}");
        let points = v["series"][0]["points"].as_array();
        assert_eq!(points.map(Vec::len), Some(1), "timeseries of {metric}: {v}");
    }
    assert_alive_and_intact(&s, None, "default").await;
}

/// Timestamp 0 on a span, a log record (time and observed time) and a
/// gauge point is the Unix epoch, stored as such.
#[tokio::test]
async fn zero_timestamps_are_stored_as_the_epoch_and_a_log_without_times_at_receipt() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let mut at_zero = span(3, 3, "zero", 0);
    at_zero.end_time_unix_nano = 0;
    let mut record = log(0, 9, "zero");
    record.observed_time_unix_nano = 0;
    let point = number_point(0, 0, number_data_point::Value::AsInt(1), vec![]);
    for (name, path, body) in [
        (
            "span at 0",
            "/v1/traces",
            traces("zero", vec![at_zero]).encode_to_vec(),
        ),
        (
            "log at 0",
            "/v1/logs",
            logs("zero", vec![record]).encode_to_vec(),
        ),
        (
            "gauge point at 0",
            "/v1/metrics",
            metrics("zero", vec![gauge("at.zero", vec![point])]).encode_to_vec(),
        ),
    ] {
        let r = post(&s, path, &[PROTOBUF], body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    let rows = query(
        &s,
        None,
        "default",
        "SELECT 'span' AS what, timestamp FROM otel_traces WHERE service_name = 'zero' \
         UNION ALL SELECT 'point', timestamp FROM otel_metrics_gauge WHERE service_name = 'zero'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+-------+----------------------+",
            "| what  | timestamp            |",
            "+-------+----------------------+",
            "| point | 1970-01-01T00:00:00Z |",
            "| span  | 1970-01-01T00:00:00Z |",
            "+-------+----------------------+",
        ],
        &rows
    );
    // A log record with neither time was observed when it was received.
    let rows = query(
        &s,
        None,
        "default",
        "SELECT timestamp_derived, timestamp = observed_timestamp AS observed, \
         timestamp > now() - INTERVAL '10 minutes' AND timestamp <= now() AS received \
         FROM otel_logs WHERE service_name = 'zero'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+-------------------+----------+----------+",
            "| timestamp_derived | observed | received |",
            "+-------------------+----------+----------+",
            "| true              | true     | true     |",
            "+-------------------+----------+----------+",
        ],
        &rows
    );
    assert_alive_and_intact(&s, None, "default").await;
}

/// A histogram metric of service `extreme` with `points`.
fn histogram_metric(name: &str, points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: 2,
        })),
        ..Default::default()
    }
}

fn exp_histogram_metric(name: &str, scale: i32, positive: i32, negative: i32) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                start_time_unix_nano: T0 - SEC,
                time_unix_nano: T0,
                count: 6,
                sum: Some(1.0),
                scale,
                positive: Some(Buckets {
                    offset: positive,
                    bucket_counts: vec![1, 2],
                }),
                negative: Some(Buckets {
                    offset: negative,
                    bucket_counts: vec![3],
                }),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    }
}

/// A histogram point of a million buckets is stored whole (and its
/// percentiles answered); exponential histograms at the edges of OTLP's
/// scale range (-10 and 20) with offsets i32::MIN and i32::MAX are stored
/// as sent, and scales beyond it (-128, 127) rejected in partial success.
#[tokio::test]
async fn extreme_histograms_are_stored_as_sent() {
    let _alone = HEAVY.write().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let million = HistogramDataPoint {
        start_time_unix_nano: T0 - SEC,
        time_unix_nano: T0,
        count: 1_000_001,
        sum: Some(1.0),
        bucket_counts: vec![1; 1_000_001],
        explicit_bounds: (0..1_000_000).map(f64::from).collect(),
        ..Default::default()
    };
    let body = metrics(
        "extreme",
        vec![histogram_metric("h.million", vec![million])],
    )
    .encode_to_vec();
    let r = post(&s, "/v1/metrics", &[PROTOBUF], body).await;
    assert_eq!(r.status, 200, "a million buckets: {}", r.text());
    for (name, scale) in [("exp.below", -128), ("exp.above", 127)] {
        let body =
            metrics("extreme", vec![exp_histogram_metric(name, scale, 0, 0)]).encode_to_vec();
        let r = post(&s, "/v1/metrics", &[PROTOBUF], body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let answer = ExportMetricsServiceResponse::decode(&r.body[..]).unwrap();
        let ps = answer.partial_success.expect(name);
        assert_eq!(ps.rejected_data_points, 1, "{name}");
        assert!(
            ps.error_message.contains("scale"),
            "{name}: {}",
            ps.error_message
        );
    }
    for (name, scale, positive, negative) in [
        ("exp.min", -10, i32::MIN, i32::MAX),
        ("exp.max", 20, i32::MAX, i32::MIN),
    ] {
        let body = metrics(
            "extreme",
            vec![exp_histogram_metric(name, scale, positive, negative)],
        )
        .encode_to_vec();
        let r = post(&s, "/v1/metrics", &[PROTOBUF], body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let answer = ExportMetricsServiceResponse::decode(&r.body[..]).unwrap();
        assert_eq!(answer.partial_success, None, "{name}");
    }
    let rows = query(
        &s,
        None,
        "default",
        "SELECT cardinality(bucket_counts) AS buckets, cardinality(explicit_bounds) AS bounds \
         FROM otel_metrics_histogram WHERE service_name = 'extreme'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+---------+---------+",
            "| buckets | bounds  |",
            "+---------+---------+",
            "| 1000001 | 1000000 |",
            "+---------+---------+",
        ],
        &rows
    );
    let rows = query(
        &s,
        None,
        "default",
        "SELECT metric_name, scale, positive_offset, positive_bucket_counts, negative_offset, \
         negative_bucket_counts FROM otel_metrics_exp_histogram WHERE service_name = 'extreme'",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-------+-----------------+------------------------+-----------------+------------------------+",
            "| metric_name | scale | positive_offset | positive_bucket_counts | negative_offset | negative_bucket_counts |",
            "+-------------+-------+-----------------+------------------------+-----------------+------------------------+",
            "| exp.max     | 20    | 2147483647      | [1, 2]                 | -2147483648     | [3]                    |",
            "| exp.min     | -10   | -2147483648     | [1, 2]                 | 2147483647      | [3]                    |",
            "+-------------+-------+-----------------+------------------------+-----------------+------------------------+",
        ],
        &rows
    );
    let url = format!(
        "{}/api/v2/metrics/timeseries?metric=h.million&aggregation=p99&start={}&end={}",
        s.http,
        T0 - 60 * SEC,
        T0 + 60 * SEC
    );
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(
        status,
        200,
        "p99 of a million buckets: {}",
        &text[..text.len().min(400)]
    );
    assert_alive_and_intact(&s, None, "default").await;
}

// ---------------------------------------------------------------------------
// Tenant headers and batch keys.
// ---------------------------------------------------------------------------

/// Tenant and workspace header values that are not ids: each is a 400 (gRPC
/// INVALID_ARGUMENT) naming the header, on the OTLP receivers and the query
/// API alike — empty and blank values included, which are not an absent
/// header; nothing is stored under any tenant but `default`. `_system` is
/// refused as a tenant (the store's own prefix) but is an ordinary
/// workspace, which is a column, not a path.
#[tokio::test]
async fn hostile_tenant_and_workspace_headers_are_400_naming_the_header() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let long = "a".repeat(1000);
    let values: [(&str, &[u8]); 11] = [
        ("parent directory path", b"../etc"),
        ("dot-dot", b".."),
        ("the store's own prefix", b"_system"),
        ("1000 characters", long.as_bytes()),
        ("non-UTF-8 bytes", b"acme\xff\xfe"),
        ("non-ASCII letters", "m\u{fc}ller".as_bytes()),
        ("empty", b""),
        ("whitespace only", b"  \t "),
        ("wildcard", b"*"),
        ("slash", b"acme/prod"),
        ("percent-encoded dots", b"%2e%2e"),
    ];
    let refused = ["x-tenant-id", "x-workspace-id"]
        .into_iter()
        .flat_map(|header| values.map(|(name, value)| (header, name, value)))
        .filter(|(header, _, value)| !(*header == "x-workspace-id" && *value == b"_system"));
    for (header, name, value) in refused {
        {
            let case = format!("{header} {name}");
            let r = post(
                &s,
                "/v1/traces",
                &[PROTOBUF, (header, value)],
                Signal::Traces.valid("hostile", 4),
            )
            .await;
            assert_eq!(r.status, 400, "{case}: {}", r.text());
            let status = r.rpc_status();
            assert_eq!(status.code, 3, "{case}");
            assert!(
                status.message.contains(header),
                "{case}: {}",
                status.message
            );

            let r = post(
                &s,
                "/api/v2/sql",
                &[JSON, (header, value)],
                br#"{"sql":"SELECT count(*) FROM otel_traces"}"#.to_vec(),
            )
            .await;
            assert_eq!(r.status, 400, "SQL {case}: {}", r.text());
            assert!(r.error().contains(header), "SQL {case}: {}", r.error());

            let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
            let mut req = tonic::Request::new(traces("hostile", vec![span(4, 1, "op", T0)]));
            req.metadata_mut().insert(
                header,
                tonic::metadata::MetadataValue::try_from(value).unwrap(),
            );
            let e = client.export(req).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "gRPC {case}: {e:?}");
            assert!(e.message().contains(header), "gRPC {case}: {e:?}");
        }
    }
    let r = post(
        &s,
        "/v1/traces",
        &[PROTOBUF, ("x-workspace-id", b"_system")],
        Signal::Traces.valid("workspace", 4),
    )
    .await;
    assert_eq!(r.status, 200, "x-workspace-id _system: {}", r.text());
    assert_alive_and_intact(&s, None, "default").await;
    // Nothing of service `hostile` anywhere; the `_system` workspace's span
    // is the default tenant's; no tenant but `default` in the store.
    let rows = query(
        &s,
        None,
        "default",
        "SELECT service_name, workspace_id, count(*) AS n FROM otel_traces \
         WHERE service_name IN ('hostile', 'workspace') GROUP BY 1, 2",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+--------------+--------------+---+",
            "| service_name | workspace_id | n |",
            "+--------------+--------------+---+",
            "| workspace    | _system      | 1 |",
            "+--------------+--------------+---+",
        ],
        &rows
    );
    s.flush().await;
    let root = s.parquet_dir();
    let files = parquet_files(&root);
    assert!(!files.is_empty());
    for file in files {
        let tenant = file
            .strip_prefix(&root)
            .unwrap()
            .components()
            .next()
            .unwrap();
        assert_eq!(tenant.as_os_str(), "default", "{}", file.display());
    }
}

/// On a keyed server: a malformed `x-telemetryflow-batch` is a 400 even
/// from a relay key; a well-formed one from a key without the relay scope
/// is 403; a relay key's batch is stored once, however often it is sent.
#[tokio::test]
async fn forged_batch_keys_are_refused_and_a_relay_batch_is_stored_once() {
    let _shared = HEAVY.read().await;
    let (s, operator) = keyed_server_with(|_| {}).await;
    let acme = key(&s, &operator, "acme", "ingest,query").await;
    let (status, v) = create(
        &s,
        &operator,
        json!({"tenant": "*", "scopes": "relay,ingest", "name": "edge"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let relay = v["key"].as_str().unwrap().to_owned();
    write_baseline(&s, Some(&acme), "acme").await;

    let send = |key: String, batch: &'static [u8]| {
        let s = &s;
        async move {
            let auth = format!("Bearer {key}");
            post(
                s,
                "/v1/traces",
                &[
                    PROTOBUF,
                    ("authorization", auth.as_bytes()),
                    ("x-tenant-id", b"acme"),
                    ("x-telemetryflow-batch", batch),
                ],
                Signal::Traces.valid("relayed", 8),
            )
            .await
        }
    };
    let cases: [(&str, &String, &[u8], u16); 11] = [
        ("no range", &relay, b"edge", 400),
        ("not numbers", &relay, b"edge/a-b", 400),
        ("range backwards", &relay, b"edge/9-1", 400),
        ("sequence 0", &relay, b"edge/0-5", 400),
        ("open range", &relay, b"edge/1-", 400),
        ("beyond u64", &relay, b"edge/1-99999999999999999999", 400),
        ("path as node id", &relay, b"../etc/1-2", 400),
        ("ingest key, well-formed", &acme, b"edge/1-5", 403),
        ("relay key, first time", &relay, b"edge/1-5", 200),
        ("relay key, the same batch again", &relay, b"edge/1-5", 200),
        ("relay key, a batch inside it", &relay, b"edge/2-4", 200),
    ];
    for (name, key, batch, expected) in cases {
        let r = send(key.clone(), batch).await;
        assert_eq!(r.status, expected, "{name}: {}", r.text());
        if expected == 400 {
            let status = r.rpc_status();
            assert!(
                status.message.contains("x-telemetryflow-batch"),
                "{name}: {}",
                status.message
            );
        }
    }
    let rows = query(
        &s,
        Some(&acme),
        "acme",
        "SELECT count(*) AS n FROM otel_traces WHERE service_name = 'relayed'",
    )
    .await;
    assert_batches_sorted_eq!(["+---+", "| n |", "+---+", "| 1 |", "+---+"], &rows);
    assert_alive_and_intact(&s, Some(&acme), "acme").await;
}

// ---------------------------------------------------------------------------
// Connections that stall.
// ---------------------------------------------------------------------------

/// 50 HTTP/1.1 requests that declare a 1000-byte body, send 10 bytes and
/// stall, and 10 whose headers never end, all held open: other clients are
/// still served at once, over HTTP and gRPC. (Nothing here waits for the
/// server to drop the stalled connections.)
#[tokio::test]
async fn stalled_http_requests_do_not_stop_other_clients() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let addr = s.http.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for i in 0..60 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = if i < 50 {
            "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n0123456789"
        } else {
            "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
        };
        conn.write_all(head.as_bytes()).await.unwrap();
        stalled.push(conn);
    }
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        assert_alive_and_intact(&s, None, "default"),
    )
    .await
    .expect("other clients served within 10 s");
    eprintln!(
        "served beside 60 stalled requests in {:?}",
        started.elapsed()
    );
    // The stalled requests got no answer: the server is still waiting.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(200), stalled[0].read(&mut buf)).await;
    assert!(read.is_err(), "a stalled request was answered: {read:?}");
}

/// A request body that sends `first` and then never ends.
fn stalled_body(first: Vec<u8>) -> axum::body::Body {
    use futures::StreamExt as _;
    let first = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(first))]);
    axum::body::Body::from_stream(first.chain(futures::stream::pending()))
}

/// Ten gRPC calls whose message declares 60 MB (under the default 64 MiB
/// limit), sends 10 bytes and stalls: other clients are still served. A
/// message declaring 100 MB (over the limit) is RESOURCE_EXHAUSTED at once.
#[tokio::test]
async fn stalled_grpc_messages_do_not_stop_other_clients() {
    use tower::Service;
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let call = |declared: u32| {
        let grpc = s.grpc.clone();
        async move {
            let mut channel = tonic::transport::Endpoint::from_shared(grpc)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut first = vec![0u8];
            first.extend_from_slice(&declared.to_be_bytes());
            first.extend_from_slice(b"0123456789");
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("http://127.0.0.1{}", Signal::Traces.grpc_path()))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(tonic::body::Body::new(stalled_body(first)))
                .unwrap();
            std::future::poll_fn(|cx| channel.poll_ready(cx))
                .await
                .unwrap();
            channel.call(req).await
        }
    };
    let (rss_before, _) = resident();
    let stalled: Vec<_> = (0..10).map(|_| tokio::spawn(call(60_000_000))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        assert_alive_and_intact(&s, None, "default"),
    )
    .await
    .expect("other clients served within 10 s");
    eprintln!(
        "served beside 10 stalled gRPC calls in {:?}; resident {} -> {} MiB",
        started.elapsed(),
        rss_before >> 20,
        resident().0 >> 20
    );
    assert!(
        stalled.iter().all(|c| !c.is_finished()),
        "a stalled call was answered"
    );
    for c in &stalled {
        c.abort();
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), call(100_000_000))
        .await
        .expect("answered at once")
        .unwrap();
    let code = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(code.as_deref(), Some("8"), "{:?}", resp.headers());
}

// ---------------------------------------------------------------------------
// The SQL API.
// ---------------------------------------------------------------------------

/// With a key of tenant `evil`, every way to another tenant's rows, the
/// store's `_system` area, files, URLs, DDL, DML and settings is refused
/// (403 when forbidden, 400 when it names what does not exist), and none of
/// tenant `acme`'s rows comes back.
#[tokio::test]
async fn sql_sandbox_escapes_with_another_tenants_key_are_refused() {
    let _shared = HEAVY.read().await;
    let (s, operator) = keyed_server_with(|_| {}).await;
    let acme = key(&s, &operator, "acme", "ingest,query").await;
    let evil = key(&s, &operator, "evil", "ingest,query").await;
    write_baseline(&s, Some(&acme), "acme").await;
    s.flush().await;
    let victim_file = parquet_files(&s.parquet_dir())
        .into_iter()
        .find(|f| f.to_string_lossy().contains("/acme/"))
        .expect("a file of acme");
    let victim_file = victim_file.display().to_string();
    let victim_dir = s.parquet_dir().join("acme").display().to_string();
    let leak = s.dir.path().join("leak.csv");
    let leak_path = leak.display().to_string();
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "schema-qualified table",
            "SELECT * FROM acme.otel_traces".into(),
            400,
        ),
        (
            "catalog-qualified table",
            "SELECT * FROM datafusion.acme.otel_traces".into(),
            400,
        ),
        (
            "union with the other tenant",
            "SELECT count(*) FROM otel_traces UNION ALL SELECT count(*) FROM acme.otel_traces"
                .into(),
            400,
        ),
        (
            "the _system area",
            "SELECT * FROM _system.api_keys".into(),
            400,
        ),
        (
            "a quoted path as table",
            format!("SELECT * FROM '{victim_file}'"),
            403,
        ),
        (
            "read_parquet of the other tenant's file",
            format!("SELECT * FROM read_parquet('{victim_file}')"),
            403,
        ),
        (
            "read_csv of /etc/passwd",
            "SELECT * FROM read_csv('/etc/passwd')".into(),
            403,
        ),
        (
            "a file URL",
            format!("SELECT * FROM \"file://{victim_file}\""),
            403,
        ),
        (
            "CREATE EXTERNAL TABLE over the other tenant's directory",
            format!("CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{victim_dir}'"),
            403,
        ),
        (
            "COPY TO a file",
            format!("COPY (SELECT * FROM otel_traces) TO '{leak_path}'"),
            403,
        ),
        (
            "SET a session option",
            "SET datafusion.execution.batch_size = 1".into(),
            403,
        ),
    ];
    for (name, sql, expected) in &cases {
        let r = sql_reply(&s, Some(&evil), "evil", sql).await;
        assert_eq!(r.status, *expected, "{name}: {}", r.error());
    }
    assert!(!leak.exists(), "COPY wrote {leak_path}");
    // Naming the other tenant outright.
    let r = sql_reply(&s, Some(&evil), "acme", "SELECT count(*) FROM otel_traces").await;
    assert_eq!(
        r.status,
        403,
        "x-tenant-id of another tenant: {}",
        r.error()
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v2/services", s.http))
        .bearer_auth(&evil)
        .header("x-tenant-id", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403, "services of another tenant");
    // An empty tenant header is refused as such, not taken for the key's.
    let r = sql_reply(&s, Some(&evil), "", "SELECT count(*) FROM otel_traces").await;
    assert_eq!(r.status, 400, "empty x-tenant-id with a key: {}", r.error());
    assert!(r.error().contains("x-tenant-id"), "{}", r.error());
    // information_schema answers with the caller's own tables only, and
    // nothing in it names the other tenant or the store's paths.
    let rows = query(
        &s,
        Some(&evil),
        "evil",
        "SELECT count(*) AS n FROM information_schema.tables \
         WHERE table_schema <> 'information_schema'",
    )
    .await;
    assert_batches_sorted_eq!(["+---+", "| n |", "+---+", "| 7 |", "+---+"], &rows);
    let root = s.dir.path().display().to_string();
    let rows = query(
        &s,
        Some(&evil),
        "evil",
        &format!(
            "SELECT count(*) AS n FROM information_schema.df_settings \
             WHERE value LIKE '%acme%' OR value LIKE '%{root}%'"
        ),
    )
    .await;
    assert_batches_sorted_eq!(["+---+", "| n |", "+---+", "| 0 |", "+---+"], &rows);
    // evil sees no rows at all; acme's are all there.
    let rows = query(
        &s,
        Some(&evil),
        "evil",
        "SELECT count(*) AS n FROM otel_traces",
    )
    .await;
    assert_batches_sorted_eq!(["+---+", "| n |", "+---+", "| 0 |", "+---+"], &rows);
    assert_alive_and_intact(&s, Some(&acme), "acme").await;
}

/// `/api/v2/sql` refuses a body not declared JSON (415), SQL text over
/// `query.max_sql_bytes` (400 naming it) and a query string of 1000
/// parameters (400), as does a GET route, and a `sql` that is an array
/// 10,000 deep (400); JSON nested 10,000 deep in a field it ignores is
/// skipped without recursion and the query answered.
#[tokio::test]
async fn the_sql_api_refuses_wrong_types_oversized_text_and_a_thousand_parameters() {
    let _shared = HEAVY.read().await;
    let s = TestServer::start().await;
    write_baseline(&s, None, "default").await;
    let sql = br#"{"sql":"SELECT 1"}"#.to_vec();
    let big_sql = json!({ "sql": format!("SELECT '{}'", "x".repeat(300 << 10)) })
        .to_string()
        .into_bytes();
    // Nested in a field the body does not have, which the parser skips
    // without recursion: the query runs.
    let nested = format!(
        "{{\"x\":{}{},\"sql\":\"SELECT 1\"}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    )
    .into_bytes();
    let thousand: Vec<String> = (0..1000).map(|i| format!("k{i}=v")).collect();
    let thousand = thousand.join("&");
    /// A request to the query API: a POST with `content_type`, or a GET
    /// without one.
    struct Case {
        name: &'static str,
        path: String,
        content_type: Option<&'static [u8]>,
        body: Vec<u8>,
        status: u16,
        message: &'static str,
    }
    let sql_post = |name, content_type, body, status, message| Case {
        name,
        path: "/api/v2/sql".into(),
        content_type: Some(content_type),
        body,
        status,
        message,
    };
    let cases = [
        sql_post("text/plain", b"text/plain", sql.clone(), 415, "JSON"),
        sql_post(
            "protobuf content type",
            b"application/x-protobuf",
            sql.clone(),
            415,
            "JSON",
        ),
        sql_post(
            "300 KB of SQL",
            b"application/json",
            big_sql,
            400,
            "query.max_sql_bytes",
        ),
        sql_post(
            "sql as an array 10,000 deep",
            b"application/json",
            format!("{{\"sql\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            400,
            "request body must be JSON {\"sql\": \"...\"}",
        ),
        sql_post(
            "JSON 10,000 deep in an unknown field",
            b"application/json",
            nested,
            200,
            r#""rows":[[1]]"#,
        ),
        Case {
            path: format!("/api/v2/sql?{thousand}"),
            ..sql_post(
                "1000 query parameters",
                b"application/json",
                sql.clone(),
                400,
                "more than 32 parameters",
            )
        },
        Case {
            name: "1000 parameters on a GET route",
            path: format!("/api/v2/traces?{thousand}"),
            content_type: None,
            body: Vec::new(),
            status: 400,
            message: "more than 32 parameters",
        },
    ];
    for case in cases {
        let (name, status, message) = (case.name, case.status, case.message);
        let r = match case.content_type {
            Some(content_type) => {
                post(&s, &case.path, &[("content-type", content_type)], case.body).await
            }
            None => {
                let resp = reqwest::get(format!("{}{}", s.http, case.path))
                    .await
                    .unwrap();
                Reply {
                    status: resp.status().as_u16(),
                    content_type: String::new(),
                    body: resp.bytes().await.unwrap().to_vec(),
                }
            }
        };
        assert_eq!(r.status, status, "{name}: {}", r.text());
        assert!(r.error().contains(message), "{name}: {}", r.error());
    }
    assert_alive_and_intact(&s, None, "default").await;
}
