//! OTLP/gRPC: the `TraceService`, `MetricsService` and `LogsService` Export
//! methods (gzip and zstd accepted), as a thin adapter over [`OtlpReceiver`]:
//! one [`ExportServer`], generic over the signal.
//!
//! The services are served by [`ExportServer`] rather than the servers
//! generated in opentelemetry-proto: those decode with tonic-prost's codec,
//! which answers an undecodable message with INTERNAL — a server fault. It
//! is the client's: [`OtlpCodec`] answers INVALID_ARGUMENT, as OTLP/HTTP
//! answers the same bytes with 400. (A body that does not decompress is
//! still reported by tonic itself, before any codec runs, as INTERNAL.)
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::{Request, Response, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::admission::{ReservingBody, over_budget};
use super::signal::{Logs, Metrics, OtlpSignal, Traces};
use super::status::{RpcStatus, code};
use super::{OtlpReceiver, ReceiveError, RelayedBy, export_context};
use tf_application::ports::WriteError;

/// The gRPC service object; cheap to clone.
#[derive(Clone)]
pub struct GrpcReceiver {
    inner: Arc<OtlpReceiver>,
}

/// Maps receive errors to gRPC codes: client faults are INVALID_ARGUMENT
/// (not retryable), overload and shutdown UNAVAILABLE (retryable).
pub fn to_status(e: ReceiveError) -> Status {
    let retry_after = match &e {
        ReceiveError::BadTenant { .. } | ReceiveError::BadBatchKey(_) => {
            return Status::invalid_argument(e.to_string());
        }
        ReceiveError::Convert(_) => return Status::internal(e.to_string()),
        // RESOURCE_EXHAUSTED is retryable for OTLP clients only with the
        // RetryInfo that says when.
        ReceiveError::Limited(limit) => {
            let after = std::time::Duration::from_secs(limit.retry_secs());
            let msg = limit.to_string();
            let details =
                RpcStatus::new(code::RESOURCE_EXHAUSTED, msg.clone()).with_retry_after(after);
            return Status::with_details(
                tonic::Code::ResourceExhausted,
                msg,
                prost::Message::encode_to_vec(&details).into(),
            );
        }
        ReceiveError::Write(WriteError::Overloaded { retry_after, .. }) => *retry_after,
        ReceiveError::Write(_) => std::time::Duration::from_secs(1),
    };
    // UNAVAILABLE is retryable for OTLP clients; RetryInfo says when.
    let msg = e.to_string();
    let details = RpcStatus::new(code::UNAVAILABLE, msg.clone()).with_retry_after(retry_after);
    Status::with_details(
        tonic::Code::Unavailable,
        msg,
        prost::Message::encode_to_vec(&details).into(),
    )
}

impl GrpcReceiver {
    pub fn new(inner: Arc<OtlpReceiver>) -> Self {
        Self { inner }
    }

    /// The three services, with compression and the decoded-size limit.
    pub fn services(
        self,
        max_message_bytes: usize,
    ) -> (
        ExportServer<Traces>,
        ExportServer<Metrics>,
        ExportServer<Logs>,
    ) {
        (
            self.service(max_message_bytes),
            self.service(max_message_bytes),
            self.service(max_message_bytes),
        )
    }

    /// The service of signal `S`.
    pub fn service<S: OtlpSignal>(&self, max_message_bytes: usize) -> ExportServer<S> {
        let mut compression = EnabledCompressionEncodings::default();
        compression.enable(CompressionEncoding::Gzip);
        compression.enable(CompressionEncoding::Zstd);
        ExportServer {
            receiver: Arc::clone(&self.inner),
            compression,
            max_message_bytes,
            signal: PhantomData,
        }
    }
}

/// A tonic service serving signal `S`'s one unary method, `Export`, with
/// [`OtlpCodec`].
#[derive(Clone)]
pub struct ExportServer<S> {
    receiver: Arc<OtlpReceiver>,
    compression: EnabledCompressionEncodings,
    max_message_bytes: usize,
    signal: PhantomData<S>,
}

impl<S: OtlpSignal> tonic::server::NamedService for ExportServer<S> {
    const NAME: &'static str = S::GRPC_SERVICE;
}

/// The `Export` method of signal `S`.
struct Export<S> {
    receiver: Arc<OtlpReceiver>,
    signal: PhantomData<S>,
}

impl<S: OtlpSignal> tonic::server::UnaryService<S::Request> for Export<S> {
    type Response = S::Response;
    type Future = BoxFuture<'static, Result<Response<S::Response>, Status>>;

    fn call(&mut self, request: Request<S::Request>) -> Self::Future {
        let receiver = Arc::clone(&self.receiver);
        Box::pin(async move {
            let md = request.metadata();
            let relay = request.extensions().get::<RelayedBy>();
            let (ctx, source) =
                export_context(|k| md.get(k).map(|v| v.as_bytes()), relay).map_err(to_status)?;
            let response = receiver
                .export::<S>(&ctx, source, request.into_inner(), None)
                .await
                .map_err(to_status)?;
            Ok(Response::new(response))
        })
    }
}

impl<S, B> tower::Service<http::Request<B>> for ExportServer<S>
where
    S: OtlpSignal,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != S::GRPC_PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let (compression, max) = (self.compression, self.max_message_bytes);
        // A tenant over its rate is refused before its body is read.
        let tenant = match self
            .receiver
            .precheck(|k| req.headers().get(k).map(|v| v.as_bytes()))
        {
            Ok(t) => t,
            Err(e) => return Box::pin(async move { Ok(to_status(e).into_http()) }),
        };
        // The body counts against the memory budget as it is read.
        let reservation = match self.receiver.reserve(tenant, 0) {
            Ok(r) => r,
            Err(e) => return Box::pin(async move { Ok(over_budget(&e).into_http()) }),
        };
        let export = Export::<S> {
            receiver: Arc::clone(&self.receiver),
            signal: PhantomData,
        };
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(OtlpCodec::<S::Response, S::Request>::default())
                    .apply_compression_config(compression, compression)
                    .apply_max_message_size_config(Some(max), None);
            match reservation {
                Some(r) => {
                    let req = req.map(|b| ReservingBody::new(b, Arc::clone(&r)));
                    let resp = grpc.unary(export, req).await;
                    drop(r);
                    Ok(resp)
                }
                None => Ok(grpc.unary(export, req).await),
            }
        })
    }
}

/// tonic-prost's codec, except that a message that does not decode is
/// INVALID_ARGUMENT (the client's fault; not to be retried).
pub struct OtlpCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for OtlpCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for OtlpCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = OtlpDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder(ProstDecoder::default())
    }
}

pub struct OtlpDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for OtlpDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            Status::invalid_argument(format!("invalid OTLP/protobuf request: {}", s.message()))
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
}

/// Codes tonic gives the client's faults before our service runs, made what
/// OTLP clients expect:
/// - a message over `max_decoding_message_size` is OUT_OF_RANGE (a
///   compressed one that inflates past it RESOURCE_EXHAUSTED): both become
///   RESOURCE_EXHAUSTED (our services never return OUT_OF_RANGE themselves);
/// - a body that does not decompress is INTERNAL ("Error decompressing"):
///   it becomes INVALID_ARGUMENT, the client's fault, not to be retried.
pub fn size_limit_status_layer<B>()
-> tower::util::MapResponseLayer<fn(http::Response<B>) -> http::Response<B>> {
    fn rewrite<B>(mut resp: http::Response<B>) -> http::Response<B> {
        let headers = resp.headers();
        let code = headers.get("grpc-status").map(|v| v.as_bytes());
        let message = headers
            .get("grpc-message")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let undecompressable = message.starts_with(b"Error decompressing")
            || message.starts_with(b"Error%20decompressing");
        let rewritten = match code {
            Some(b"11") => Some("8"),
            Some(b"13") if undecompressable => Some("3"),
            _ => None,
        };
        if let Some(code) = rewritten {
            resp.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static(code));
        }
        resp
    }
    tower::util::MapResponseLayer::new(rewrite::<B>)
}
