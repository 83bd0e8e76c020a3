//! OTLP/gRPC: the `TraceService`, `MetricsService` and `LogsService` Export
//! methods (gzip and zstd accepted), as a thin adapter over [`OtlpReceiver`].

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::status::{RpcStatus, code};
use super::{OtlpReceiver, ReceiveError, TENANT_HEADER, WORKSPACE_HEADER, tenant_context};
use crate::application::ports::WriteError;
use crate::domain::TenantContext;

/// The gRPC service object; cheap to clone.
#[derive(Clone)]
pub struct GrpcReceiver {
    inner: Arc<OtlpReceiver>,
}

fn context(md: &MetadataMap) -> Result<TenantContext, Status> {
    let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
    tenant_context(get(TENANT_HEADER), get(WORKSPACE_HEADER)).map_err(to_status)
}

/// Maps receive errors to gRPC codes: client faults are INVALID_ARGUMENT
/// (not retryable), overload and shutdown UNAVAILABLE (retryable).
pub fn to_status(e: ReceiveError) -> Status {
    let retry_after = match &e {
        ReceiveError::BadTenant { .. } => return Status::invalid_argument(e.to_string()),
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
        TraceServiceServer<GrpcReceiver>,
        MetricsServiceServer<GrpcReceiver>,
        LogsServiceServer<GrpcReceiver>,
    ) {
        macro_rules! configure {
            ($server:ident) => {
                $server::new(self.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Zstd)
                    .send_compressed(CompressionEncoding::Gzip)
                    .send_compressed(CompressionEncoding::Zstd)
                    .max_decoding_message_size(max_message_bytes)
            };
        }
        (
            configure!(TraceServiceServer),
            configure!(MetricsServiceServer),
            configure!(LogsServiceServer),
        )
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let ctx = context(request.metadata())?;
        let resp = self
            .inner
            .export_traces(&ctx, request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(resp))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let ctx = context(request.metadata())?;
        let resp = self
            .inner
            .export_metrics(&ctx, request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(resp))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let ctx = context(request.metadata())?;
        let resp = self
            .inner
            .export_logs(&ctx, request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(resp))
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
