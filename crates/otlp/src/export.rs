//! `OtlpExporter`: the `Exporter` port over OTLP — gRPC (tonic) or
//! HTTP/protobuf (reqwest), optionally compressed with gzip or zstd.
//!
//! Rows go back to OTLP through `convert::to_otlp`. Every request carries
//! its tenant and workspace (`x-tenant-id`, `x-workspace-id`) and, when
//! forwarded, its idempotency key (`x-telemetryflow-batch`, which other OTLP
//! receivers ignore), then the configured headers (which may override
//! them).
//!
//! Answers are classified as the OTLP specification says. HTTP: 2xx is
//! success (its body may report partial success); 429, 502, 503 and 504 are
//! retryable, honouring `Retry-After` (seconds or an HTTP date); any other
//! status is permanent. gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED,
//! OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retryable, and
//! RESOURCE_EXHAUSTED when the status carries `RetryInfo` (whose delay is
//! honoured); any other code is permanent. One departure: a refused key
//! (HTTP 401, UNAUTHENTICATED) is retried slowly rather than dropping
//! accepted data ([`REFUSED_KEY_RETRY`]). Connection failures, timeouts
//! and statuses the client made from a transport error are retryable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use prost::Message;
use reqwest_012 as reqwest;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::signal::{Logs, Metrics, OtlpSignal, Traces};
use crate::status::{RETRY_INFO_TYPE_URL, RetryInfo, RpcStatus};
use crate::{BATCH_HEADER, TENANT_HEADER, WORKSPACE_HEADER};
use tf_application::TableBatch;
use tf_application::ports::{Encoded, ExportBatch, ExportError, Exported, Exporter};
use tf_domain::telemetry::Signal;

/// How requests travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    /// The endpoint is the base URL; `/v1/<signal>` is appended.
    HttpProtobuf,
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(format!(
                "protocol must be \"grpc\" or \"http/protobuf\", got {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            other => Err(format!(
                "compression must be \"gzip\", \"zstd\" or \"none\", got {other:?}"
            )),
        }
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub endpoint: String,
    pub protocol: Protocol,
    pub compression: Compression,
    /// Sent with every request, after the tenant headers (so they may
    /// override them). Names are lower-case.
    pub headers: Vec<(String, String)>,
    /// Per request, connecting included.
    pub timeout: Duration,
    /// The CA certificates (a PEM bundle) an https endpoint is verified
    /// against, instead of the system's root certificates.
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("header {name:?}: {message}")]
    Header { name: String, message: String },
    #[error("CA bundle {path}: {message}")]
    Ca { path: PathBuf, message: String },
}

enum Transport {
    Grpc(Channel),
    Http(reqwest::Client),
}

pub struct OtlpExporter {
    config: ExporterConfig,
    transport: Transport,
}

impl ExporterConfig {
    /// Checks the endpoint and the headers (no runtime or network needed:
    /// configuration is checked before the server starts).
    pub fn check(&self) -> Result<(), SetupError> {
        let bad_endpoint = |message: String| SetupError::Endpoint {
            endpoint: self.endpoint.clone(),
            message,
        };
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(bad_endpoint("must start with http:// or https://".into()));
        }
        Endpoint::from_shared(self.endpoint.clone()).map_err(|e| bad_endpoint(e.to_string()))?;
        for (name, value) in &self.headers {
            let bad = |message: String| SetupError::Header {
                name: name.clone(),
                message,
            };
            MetadataKey::<tonic::metadata::Ascii>::from_bytes(name.as_bytes())
                .map_err(|e| bad(e.to_string()))?;
            MetadataValue::<tonic::metadata::Ascii>::try_from(value.as_str())
                .map_err(|e| bad(e.to_string()))?;
        }
        if let Some(path) = &self.tls_ca
            && !self.endpoint.starts_with("https://")
        {
            return Err(SetupError::Ca {
                path: path.clone(),
                message: format!(
                    "verifies https:// endpoints only, and the endpoint is {:?}",
                    self.endpoint
                ),
            });
        }
        Ok(())
    }

    /// The endpoint's host when the configured headers carry credentials
    /// (`authorization`) and the endpoint is plain `http://` to a host that
    /// is not loopback: they would travel in clear.
    pub fn credentials_in_clear(&self) -> Option<String> {
        if !self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            return None;
        }
        let uri = self.endpoint.parse::<http::Uri>().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        (!loopback).then(|| host.to_owned())
    }

    /// The CA bundle's bytes, checked to hold a certificate at least.
    fn read_ca(&self) -> Result<Option<Vec<u8>>, SetupError> {
        let Some(path) = &self.tls_ca else {
            return Ok(None);
        };
        let bad = |message: String| SetupError::Ca {
            path: path.clone(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("reading it: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not a PEM certificate bundle ({e})")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM CERTIFICATE".into()));
        }
        Ok(Some(pem))
    }
}

impl OtlpExporter {
    /// Checks the configuration; connects lazily, on the first request (an
    /// upstream that is down at start-up is retried like any). Call within
    /// a tokio runtime. Warns when the configured credentials would travel
    /// in clear ([`ExporterConfig::credentials_in_clear`]).
    pub fn new(config: ExporterConfig) -> Result<Self, SetupError> {
        config.check()?;
        let ca = config.read_ca()?;
        if let Some(host) = config.credentials_in_clear() {
            tracing::warn!(
                endpoint = %config.endpoint,
                "an API key would travel in clear to {host}: the headers carry authorization and the endpoint is plain http://"
            );
        }
        let bad_endpoint = |message: String| SetupError::Endpoint {
            endpoint: config.endpoint.clone(),
            message,
        };
        let transport = match config.protocol {
            Protocol::Grpc => {
                let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| bad_endpoint(e.to_string()))?
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout.min(Duration::from_secs(10)));
                if config.endpoint.starts_with("https://") {
                    let tls = tonic::transport::ClientTlsConfig::new();
                    let tls = match &ca {
                        Some(pem) => {
                            tls.ca_certificate(tonic::transport::Certificate::from_pem(pem))
                        }
                        None => tls.with_native_roots(),
                    };
                    endpoint = endpoint
                        .tls_config(tls)
                        .map_err(|e| bad_endpoint(e.to_string()))?;
                }
                Transport::Grpc(endpoint.connect_lazy())
            }
            Protocol::HttpProtobuf => {
                let mut builder = reqwest::Client::builder()
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout.min(Duration::from_secs(10)));
                if let Some(pem) = &ca {
                    let certs =
                        reqwest::Certificate::from_pem_bundle(pem).map_err(|e| SetupError::Ca {
                            path: config.tls_ca.clone().unwrap_or_default(),
                            message: e.to_string(),
                        })?;
                    builder = builder.tls_built_in_root_certs(false);
                    for cert in certs {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                let client = builder.build().map_err(|e| bad_endpoint(e.to_string()))?;
                Transport::Http(client)
            }
        };
        Ok(Self { config, transport })
    }

    /// The tenant, workspace and key headers, then the configured ones.
    fn headers(&self, batch: &ExportBatch) -> Vec<(String, String)> {
        let mut h = vec![
            (TENANT_HEADER.to_owned(), batch.tenant.to_string()),
            (WORKSPACE_HEADER.to_owned(), batch.workspace.to_string()),
        ];
        if let Some(key) = &batch.key {
            h.push((BATCH_HEADER.to_owned(), key.to_string()));
        }
        for (k, v) in &self.config.headers {
            h.retain(|(name, _)| name != k);
            h.push((k.clone(), v.clone()));
        }
        h
    }

    /// The batch, of signal `S`, as one protobuf request: its requests as
    /// received followed by its rows encoded (concatenated protobuf
    /// messages of one type are one message); for HTTP compressed as
    /// configured (gRPC compresses its frames itself).
    fn encode_as<S: OtlpSignal>(&self, batch: &ExportBatch) -> Result<Encoded, ExportError> {
        let rows = if batch.batches.is_empty() {
            Vec::new()
        } else {
            encode_rows::<S>(&batch.batches).map_err(|e| ExportError::Permanent {
                reason: format!("the stored rows could not be turned back into OTLP: {e}"),
            })?
        };
        let body: bytes::Bytes = match &batch.encoded[..] {
            [] => rows.into(),
            [one] if rows.is_empty() => one.clone(),
            parts => {
                let len = parts.iter().map(bytes::Bytes::len).sum::<usize>() + rows.len();
                let mut body = Vec::with_capacity(len);
                for p in parts {
                    body.extend_from_slice(p);
                }
                body.extend_from_slice(&rows);
                body.into()
            }
        };
        let body = match (&self.transport, self.config.compression) {
            (Transport::Grpc(_), _) | (_, Compression::None) => body,
            (Transport::Http(_), Compression::Gzip) => gzip(&body).into(),
            (Transport::Http(_), Compression::Zstd) => zstd::encode_all(&body[..], 3)
                .map_err(|e| ExportError::Permanent {
                    reason: format!("compressing the request: {e}"),
                })?
                .into(),
        };
        Ok(Encoded(body))
    }

    /// Sends the encoded request of signal `S`.
    async fn send_as<S: OtlpSignal>(
        &self,
        batch: &ExportBatch,
        encoded: &Encoded,
    ) -> Result<Exported, ExportError> {
        let response = match &self.transport {
            Transport::Grpc(channel) => self.grpc::<S>(channel, batch, encoded).await?,
            Transport::Http(client) => self.http::<S>(client, batch, encoded).await?,
        };
        Ok(
            S::partial_success(response).map_or_else(Exported::default, |p| Exported {
                rejected: p.rejected.max(0) as u64,
                message: p.error_message,
            }),
        )
    }

    async fn grpc<S: OtlpSignal>(
        &self,
        channel: &Channel,
        batch: &ExportBatch,
        encoded: &Encoded,
    ) -> Result<S::Response, ExportError> {
        let mut md = tonic::metadata::MetadataMap::new();
        for (k, v) in self.headers(batch) {
            // Checked in `new` (configured) or valid ids (ours).
            if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(k.as_bytes()),
                MetadataValue::try_from(v.as_str()),
            ) {
                md.insert(k, v);
            }
        }
        let mut client = tonic::client::Grpc::new(channel.clone())
            .max_encoding_message_size(usize::MAX)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        match self.config.compression {
            Compression::None => {}
            Compression::Gzip => client = client.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => client = client.send_compressed(CompressionEncoding::Zstd),
        }
        // What the clients opentelemetry-proto generates do for a call.
        client.ready().await.map_err(|e| {
            grpc_error(&tonic::Status::unknown(format!(
                "Service was not ready: {e}"
            )))
        })?;
        let mut request = tonic::Request::from_parts(md, Default::default(), encoded.0.clone());
        request
            .extensions_mut()
            .insert(tonic::GrpcMethod::new(S::GRPC_SERVICE, "Export"));
        client
            .unary(
                request,
                http::uri::PathAndQuery::from_static(S::GRPC_PATH),
                RawCodec::<S::Response>::new(),
            )
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| grpc_error(&s))
    }

    async fn http<S: OtlpSignal>(
        &self,
        client: &reqwest::Client,
        batch: &ExportBatch,
        encoded: &Encoded,
    ) -> Result<S::Response, ExportError> {
        let url = format!(
            "{}{}",
            self.config.endpoint.trim_end_matches('/'),
            S::HTTP_PATH
        );
        let mut req = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(encoded.0.clone());
        match self.config.compression {
            Compression::None => {}
            Compression::Gzip => req = req.header("content-encoding", "gzip"),
            Compression::Zstd => req = req.header("content-encoding", "zstd"),
        }
        for (k, v) in self.headers(batch) {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| ExportError::Retryable {
            reason: format!("POST {url}: {}", error_chain(&e)),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = resp.bytes().await.map_err(|e| ExportError::Retryable {
            reason: format!("reading the answer of {url}: {}", error_chain(&e)),
            retry_after: None,
        })?;
        if status.is_success() {
            return Ok(S::Response::decode(&bytes[..]).unwrap_or_default());
        }
        let message = RpcStatus::decode(&bytes[..])
            .ok()
            .filter(|s| !s.message.is_empty())
            .map(|s| s.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into());
        let reason = format!("POST {url}: HTTP {status}: {message}");
        Err(match status.as_u16() {
            429 | 502 | 503 | 504 => ExportError::Retryable {
                reason,
                retry_after,
            },
            401 => refused_key(reason),
            _ => ExportError::Permanent { reason },
        })
    }
}

#[async_trait]
impl Exporter for OtlpExporter {
    fn encode(&self, batch: &ExportBatch) -> Result<Encoded, ExportError> {
        match batch.signal {
            Signal::Traces => self.encode_as::<Traces>(batch),
            Signal::Metrics => self.encode_as::<Metrics>(batch),
            Signal::Logs => self.encode_as::<Logs>(batch),
        }
    }

    async fn send(&self, batch: &ExportBatch, encoded: &Encoded) -> Result<Exported, ExportError> {
        match batch.signal {
            Signal::Traces => self.send_as::<Traces>(batch, encoded).await,
            Signal::Metrics => self.send_as::<Metrics>(batch, encoded).await,
            Signal::Logs => self.send_as::<Logs>(batch, encoded).await,
        }
    }

    fn endpoint(&self) -> &str {
        &self.config.endpoint
    }
}

/// Rows at least per part when a request's rows are encoded in parallel.
const MIN_PART_ROWS: usize = 4096;

/// The rows of signal `S` as one protobuf request. Large ones are cut into
/// parts of consecutive rows, encoded on up to as many threads as there are
/// cores, and concatenated: a protobuf message followed by another of its
/// type decodes as one message whose repeated fields hold both's elements,
/// so the upstream reads every row, in order, with each part's resources
/// and scopes as their own `Resource*`/`Scope*` messages.
pub fn encode_rows<S: OtlpSignal>(
    rows: &[TableBatch],
) -> Result<Vec<u8>, crate::convert::ConvertError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let parts = split_rows(rows, threads, MIN_PART_ROWS);
    let one = |part: &[TableBatch]| S::from_rows(part).map(|r| r.encode_to_vec());
    let [first, rest @ ..] = &parts[..] else {
        return one(rows);
    };
    let encoded = std::thread::scope(|s| {
        let others: Vec<_> = rest.iter().map(|p| s.spawn(move || one(p))).collect();
        let mut all = vec![one(first)];
        for h in others {
            all.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    let mut out = Vec::with_capacity(encoded.iter().flatten().map(Vec::len).sum());
    for part in encoded {
        out.extend_from_slice(&part?);
    }
    Ok(out)
}

/// `rows` as up to `parts` runs of consecutive rows of at least `min_rows`
/// each (zero-copy slices); one part when there are too few rows.
fn split_rows(rows: &[TableBatch], parts: usize, min_rows: usize) -> Vec<Vec<TableBatch>> {
    let total: usize = rows.iter().map(|b| b.batch.num_rows()).sum();
    let per = total.div_ceil(parts.max(1)).max(min_rows);
    if total <= per {
        return vec![rows.to_vec()];
    }
    let mut out = Vec::new();
    let mut part = Vec::new();
    let mut filled = 0;
    for b in rows {
        let len = b.batch.num_rows();
        let mut at = 0;
        while at < len {
            let take = (per - filled).min(len - at);
            part.push(TableBatch {
                table: b.table,
                batch: b.batch.slice(at, take),
            });
            filled += take;
            at += take;
            if filled == per {
                out.push(std::mem::take(&mut part));
                filled = 0;
            }
        }
    }
    if !part.is_empty() {
        out.push(part);
    }
    out
}

/// A gRPC codec that sends a request encoded already (`bytes::Bytes`) and
/// decodes the answer `R` with prost.
pub struct RawCodec<R>(std::marker::PhantomData<R>);

impl<R> RawCodec<R> {
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<R> {
    type Encode = bytes::Bytes;
    type Decode = R;
    type Encoder = RawCodec<bytes::Bytes>;
    type Decoder = RawCodec<R>;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec::new()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec::new()
    }
}

impl tonic::codec::Encoder for RawCodec<bytes::Bytes> {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put(item);
        Ok(())
    }
}

impl<R: Message + Default + Send + 'static> tonic::codec::Decoder for RawCodec<R> {
    type Item = R;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<R>, tonic::Status> {
        R::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("decoding the answer: {e}")))
    }
}
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// The error and its causes, `: `-separated (reqwest's own message is
/// terse: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// How long to wait after the upstream refused the key.
pub const REFUSED_KEY_RETRY: Duration = Duration::from_secs(30);

/// The upstream refused the key (HTTP 401, UNAUTHENTICATED). The
/// specification calls this permanent, but the rows were accepted durably
/// here, and a key refused is fixed by configuration — a key revoked,
/// rotated, or not yet read by every upstream node — not by dropping data:
/// the batch is kept and tried again every [`REFUSED_KEY_RETRY`], while the
/// queue fills as for any outage. A key that is valid but may not do what
/// a request asks (403, PERMISSION_DENIED: another tenant, no relay scope)
/// stays permanent, so one tenant's refusal does not hold back the rest.
fn refused_key(reason: String) -> ExportError {
    ExportError::Retryable {
        reason: format!("the upstream refused the key: {reason}"),
        retry_after: Some(REFUSED_KEY_RETRY),
    }
}

/// The OTLP specification's classification of a gRPC status.
fn grpc_error(s: &tonic::Status) -> ExportError {
    use tonic::Code;
    let retry_after = retry_info(s);
    let reason = format!("gRPC {:?}: {}", s.code(), s.message());
    // A status with a source error was made by the client from a transport
    // failure (connection reset, HTTP/2 error), not sent by the server:
    // whether the request arrived is unknown, and resending is safe.
    if std::error::Error::source(s).is_some() {
        return ExportError::Retryable {
            reason,
            retry_after,
        };
    }
    match s.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::Retryable {
            reason,
            retry_after,
        },
        Code::ResourceExhausted if retry_after.is_some() => ExportError::Retryable {
            reason,
            retry_after,
        },
        Code::Unauthenticated => refused_key(reason),
        _ => ExportError::Permanent { reason },
    }
}

/// The delay of a `RetryInfo` detail of the status, if any.
fn retry_info(s: &tonic::Status) -> Option<Duration> {
    let status = RpcStatus::decode(s.details()).ok()?;
    status
        .details
        .iter()
        .filter(|d| d.type_url == RETRY_INFO_TYPE_URL)
        .find_map(|d| RetryInfo::decode(&d.value[..]).ok()?.retry_delay)
        .map(|d| {
            Duration::new(
                d.seconds.max(0) as u64,
                d.nanos.clamp(0, 999_999_999) as u32,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows encoded in parts, concatenated, decode to the same spans, with
    /// the same resources and scopes, as the rows encoded whole.
    #[test]
    fn rows_encoded_in_parallel_parts_decode_to_the_same_spans() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        let mut synth = crate::synth::Synth::new(7, 1_700_000_000_000_000_000);
        let mut rows = Vec::new();
        for n in [3000, 1, 2500, 0, 4000] {
            let req = synth.traces(n);
            let c = crate::convert::convert_traces(&req, &tf_domain::TenantContext::default())
                .expect("converted");
            rows.extend(c.batches);
        }
        let total: usize = rows.iter().map(|b| b.batch.num_rows()).sum();
        let parts = split_rows(&rows, 3, 1000);
        assert_eq!(parts.len(), 3);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| p.iter().map(|b| b.batch.num_rows()).sum())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), total);
        assert!(
            sizes.iter().all(|&n| n >= 1000 && n <= total.div_ceil(3)),
            "{sizes:?}"
        );
        assert_eq!(split_rows(&rows, 3, total).len(), 1);

        let spans = |req: ExportTraceServiceRequest| {
            req.resource_spans
                .into_iter()
                .flat_map(|r| {
                    let resource = r.resource;
                    r.scope_spans.into_iter().flat_map(move |s| {
                        let (resource, scope) = (resource.clone(), s.scope);
                        s.spans
                            .into_iter()
                            .map(move |span| (resource.clone(), scope.clone(), span))
                    })
                })
                .collect::<Vec<_>>()
        };
        let whole = crate::convert::spans_to_otlp(
            &rows.iter().map(|b| b.batch.clone()).collect::<Vec<_>>(),
        )
        .expect("whole");
        let parted = encode_rows::<Traces>(&rows).expect("encoded");
        let parted = ExportTraceServiceRequest::decode(&parted[..]).expect("decodes");
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            assert!(parted.resource_spans.len() > whole.resource_spans.len());
        }
        // Grouping by resource orders spans by their resource's first
        // appearance, per request: compare them as sets.
        let sorted = |mut v: Vec<(_, _, opentelemetry_proto::tonic::trace::v1::Span)>| {
            v.sort_by(|a, b| (&a.2.trace_id, &a.2.span_id).cmp(&(&b.2.trace_id, &b.2.span_id)));
            v
        };
        let (a, b) = (sorted(spans(whole)), sorted(spans(parted)));
        assert_eq!(a.len(), total);
        assert!(a == b, "the spans differ");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(90));
        let d = parse_retry_after(&later).expect("a date");
        assert!(
            d > Duration::from_secs(80) && d <= Duration::from_secs(90),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn grpc_statuses_are_classified_as_the_spec_says() {
        let retryable = |s: tonic::Status| matches!(grpc_error(&s), ExportError::Retryable { .. });
        assert!(retryable(tonic::Status::unavailable("down")));
        assert!(retryable(tonic::Status::deadline_exceeded("slow")));
        assert!(!retryable(tonic::Status::invalid_argument("bad")));
        assert!(!retryable(tonic::Status::resource_exhausted("too big")));
        // A refused key keeps the data, and is retried slowly; a key that
        // may not do this is permanent.
        match grpc_error(&tonic::Status::unauthenticated("who")) {
            ExportError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(REFUSED_KEY_RETRY));
            }
            other => panic!("{other:?}"),
        }
        assert!(!retryable(tonic::Status::permission_denied("not yours")));
        assert!(!retryable(tonic::Status::unknown("the server said so")));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(retryable(tonic::Status::from_error(Box::new(io))));
        let with_info = RpcStatus::new(8, "busy").with_retry_after(Duration::from_millis(1500));
        let s = tonic::Status::with_details(
            tonic::Code::ResourceExhausted,
            "busy",
            with_info.encode_to_vec().into(),
        );
        match grpc_error(&s) {
            ExportError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_millis(1500)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_endpoints_and_headers_are_refused_up_front() {
        let config = |endpoint: &str, headers: Vec<(String, String)>| ExporterConfig {
            endpoint: endpoint.into(),
            protocol: Protocol::HttpProtobuf,
            compression: Compression::None,
            headers,
            timeout: Duration::from_secs(5),
            tls_ca: None,
        };
        assert!(OtlpExporter::new(config("central:4318", vec![])).is_err());
        let e = OtlpExporter::new(config(
            "http://central:4318",
            vec![("bad header".into(), "x".into())],
        ))
        .err()
        .expect("refused");
        assert!(e.to_string().contains("bad header"), "{e}");
        assert!(OtlpExporter::new(config("http://central:4318", vec![])).is_ok());
        assert_eq!("grpc".parse(), Ok(Protocol::Grpc));
        assert!("http/json".parse::<Protocol>().is_err());
        assert_eq!("zstd".parse(), Ok(Compression::Zstd));
    }

    #[test]
    fn credentials_in_clear_are_those_sent_over_http_beyond_loopback() {
        let config = |endpoint: &str, header: &str| ExporterConfig {
            endpoint: endpoint.into(),
            protocol: Protocol::Grpc,
            compression: Compression::None,
            headers: vec![(header.into(), "Bearer k".into())],
            timeout: Duration::from_secs(5),
            tls_ca: None,
        };
        let clear = |endpoint: &str, header: &str| config(endpoint, header).credentials_in_clear();
        assert_eq!(
            clear("http://central.example:4317", "authorization").as_deref(),
            Some("central.example")
        );
        assert_eq!(
            clear("http://10.1.2.3:4318/", "Authorization").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            clear("http://[2001:db8::1]:4317", "authorization").as_deref(),
            Some("[2001:db8::1]")
        );
        for quiet in [
            ("https://central.example:4317", "authorization"),
            ("http://central.example:4317", "x-api-key"),
            ("http://localhost:4317", "authorization"),
            ("http://LOCALHOST:4317", "authorization"),
            ("http://127.0.0.1:4317", "authorization"),
            ("http://127.8.9.10:4317", "authorization"),
            ("http://[::1]:4317", "authorization"),
        ] {
            assert_eq!(clear(quiet.0, quiet.1), None, "{quiet:?}");
        }
    }

    #[test]
    fn a_ca_bundle_is_read_up_front_and_only_for_https() {
        let dir = tempfile_dir();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let config = |endpoint: &str, ca: &std::path::Path| ExporterConfig {
            endpoint: endpoint.into(),
            protocol: Protocol::HttpProtobuf,
            compression: Compression::None,
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            tls_ca: Some(ca.to_path_buf()),
        };
        let e = config("http://central:4318", &empty).check().unwrap_err();
        assert!(matches!(e, SetupError::Ca { .. }), "{e}");
        let e = OtlpExporter::new(config("https://central:4318", &empty))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("no PEM CERTIFICATE"), "{e}");
        let e = OtlpExporter::new(config("https://central:4318", &dir.join("missing.pem")))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tf-otlp-export-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
