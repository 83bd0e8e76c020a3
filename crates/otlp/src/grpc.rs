//! OTLP/gRPC: the `TraceService`, `MetricsService` and `LogsService` Export
//! methods (gzip and zstd accepted), as a thin adapter over [`OtlpReceiver`].
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
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::status::{RpcStatus, code};
use super::{
    BATCH_HEADER, OtlpReceiver, ReceiveError, TENANT_HEADER, WORKSPACE_HEADER, source_batch,
    tenant_context,
};
use tf_application::ports::WriteError;
use tf_domain::{SourceBatch, TenantContext};

/// The gRPC service object; cheap to clone.
#[derive(Clone)]
pub struct GrpcReceiver {
    inner: Arc<OtlpReceiver>,
}

fn context(md: &MetadataMap) -> Result<(TenantContext, Option<SourceBatch>), Status> {
    let get = |k: &str| md.get(k).map(|v| v.as_bytes());
    let ctx = tenant_context(get(TENANT_HEADER), get(WORKSPACE_HEADER)).map_err(to_status)?;
    let source = source_batch(get(BATCH_HEADER)).map_err(to_status)?;
    Ok((ctx, source))
}

/// Maps receive errors to gRPC codes: client faults are INVALID_ARGUMENT
/// (not retryable), overload and shutdown UNAVAILABLE (retryable).
pub fn to_status(e: ReceiveError) -> Status {
    let retry_after = match &e {
        ReceiveError::BadTenant { .. } | ReceiveError::BadBatchKey(_) => {
            return Status::invalid_argument(e.to_string());
        }
        ReceiveError::Convert(_) => return Status::internal(e.to_string()),
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
        ExportServer<TracesExport>,
        ExportServer<MetricsExport>,
        ExportServer<LogsExport>,
    ) {
        (
            ExportServer::new(TracesExport(self.clone()), max_message_bytes),
            ExportServer::new(MetricsExport(self.clone()), max_message_bytes),
            ExportServer::new(LogsExport(self), max_message_bytes),
        )
    }
}

/// One OTLP service with its single unary `Export` method.
pub trait ExportMethod: Clone + Send + Sync + 'static {
    type Req: prost::Message + Default + Send + 'static;
    type Resp: prost::Message + Send + 'static;
    /// The fully qualified gRPC service name.
    const SERVICE: &'static str;
    /// `/<SERVICE>/Export`.
    const PATH: &'static str;
    fn export(
        &self,
        req: Request<Self::Req>,
    ) -> BoxFuture<'static, Result<Response<Self::Resp>, Status>>;
}

macro_rules! export_method {
    ($name:ident, $service:literal, $req:ty, $resp:ty, $method:ident) => {
        /// The Export method of
        #[doc = $service]
        #[derive(Clone)]
        pub struct $name(GrpcReceiver);

        impl ExportMethod for $name {
            type Req = $req;
            type Resp = $resp;
            const SERVICE: &'static str = $service;
            const PATH: &'static str = concat!("/", $service, "/Export");
            fn export(
                &self,
                request: Request<$req>,
            ) -> BoxFuture<'static, Result<Response<$resp>, Status>> {
                let inner = Arc::clone(&self.0.inner);
                Box::pin(async move {
                    let (ctx, source) = context(request.metadata())?;
                    let resp = inner
                        .$method(&ctx, source, request.into_inner())
                        .await
                        .map_err(to_status)?;
                    Ok(Response::new(resp))
                })
            }
        }
    };
}

export_method!(
    TracesExport,
    "opentelemetry.proto.collector.trace.v1.TraceService",
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    export_traces
);
export_method!(
    MetricsExport,
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    export_metrics
);
export_method!(
    LogsExport,
    "opentelemetry.proto.collector.logs.v1.LogsService",
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    export_logs
);

/// A tonic service serving one [`ExportMethod`] with [`OtlpCodec`].
#[derive(Clone)]
pub struct ExportServer<M> {
    method: M,
    compression: EnabledCompressionEncodings,
    max_message_bytes: usize,
}

impl<M: ExportMethod> ExportServer<M> {
    fn new(method: M, max_message_bytes: usize) -> Self {
        let mut compression = EnabledCompressionEncodings::default();
        compression.enable(CompressionEncoding::Gzip);
        compression.enable(CompressionEncoding::Zstd);
        Self {
            method,
            compression,
            max_message_bytes,
        }
    }
}

impl<M: ExportMethod> tonic::server::NamedService for ExportServer<M> {
    const NAME: &'static str = M::SERVICE;
}

struct Unary<M>(M);

impl<M: ExportMethod> tonic::server::UnaryService<M::Req> for Unary<M> {
    type Response = M::Resp;
    type Future = BoxFuture<'static, Result<Response<M::Resp>, Status>>;

    fn call(&mut self, request: Request<M::Req>) -> Self::Future {
        self.0.export(request)
    }
}

impl<M, B> tower::Service<http::Request<B>> for ExportServer<M>
where
    M: ExportMethod,
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
        if req.uri().path() != M::PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(OtlpCodec::<M::Resp, M::Req>::default())
                .apply_compression_config(this.compression, this.compression)
                .apply_max_message_size_config(Some(this.max_message_bytes), None);
            Ok(grpc.unary(Unary(this.method), req).await)
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

/// tonic answers a message over `max_decoding_message_size` with OUT_OF_RANGE
/// (a compressed one that inflates past it gets RESOURCE_EXHAUSTED). OTLP
/// clients expect RESOURCE_EXHAUSTED for both; our services never return
/// OUT_OF_RANGE themselves, so the layer rewrites that code.
pub fn size_limit_status_layer<B>()
-> tower::util::MapResponseLayer<fn(http::Response<B>) -> http::Response<B>> {
    fn rewrite<B>(mut resp: http::Response<B>) -> http::Response<B> {
        let out_of_range = resp
            .headers()
            .get("grpc-status")
            .is_some_and(|v| v.as_bytes() == b"11");
        if out_of_range {
            resp.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static("8"));
        }
        resp
    }
    tower::util::MapResponseLayer::new(rewrite::<B>)
}
