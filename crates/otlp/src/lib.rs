//! OTLP receivers: gRPC (`grpc`) and HTTP (`http`) adapters over one shared
//! [`OtlpReceiver`] that decodes, converts and hands batches to the ingest
//! command handler. Receivers stay thin: conversion lives in `convert`, the
//! OTLP/JSON codec (decoder and encoder, from one declaration per message)
//! in `json`, body decompression in `decode`.

pub mod convert;
pub(crate) mod decode;
pub mod export;
pub mod grpc;
pub mod http;
pub mod json;
pub mod status;
pub mod synth;

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use convert::{ConvertError, Converted};
use tf_application::commands::{IngestCommand, IngestHandler, IngestOutcome};
use tf_application::ports::WriteError;
use tf_domain::delivery::BatchKeyError;
use tf_domain::ports::CounterStore;
use tf_domain::tenancy::IdError;
use tf_domain::{SourceBatch, TenantContext, TenantId, WorkspaceId};

/// Header (HTTP) / metadata key (gRPC) naming the tenant.
pub const TENANT_HEADER: &str = "x-tenant-id";
/// Header / metadata key naming the workspace.
pub const WORKSPACE_HEADER: &str = "x-workspace-id";
/// Header / metadata key of a batch forwarded by another TelemetryFlow node:
/// `<node id>/<first seq>-<last seq>` of the sender's log. A batch accepted
/// before is acknowledged again without being stored twice.
pub const BATCH_HEADER: &str = "x-telemetryflow-batch";

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("invalid {header} header: {source}")]
    BadTenant {
        header: &'static str,
        #[source]
        source: IdError,
    },
    #[error("invalid {BATCH_HEADER} header: {0}")]
    BadBatchKey(#[from] BatchKeyError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

pub type Result<T, E = ReceiveError> = std::result::Result<T, E>;

/// Builds the tenant context from the raw bytes of the two header values
/// (absent or blank = `default`). A value that is not a valid id — bytes
/// outside ASCII included — is an error, never a fallback to `default`.
pub fn tenant_context(tenant: Option<&[u8]>, workspace: Option<&[u8]>) -> Result<TenantContext> {
    fn id<T>(
        raw: Option<&[u8]>,
        header: &'static str,
        parse: fn(&str) -> std::result::Result<T, IdError>,
        default: fn() -> T,
    ) -> Result<T> {
        // Only ASCII whitespace is trimmed; anything else that is not a valid
        // id (bytes outside ASCII included) is refused.
        match raw.map(<[u8]>::trim_ascii) {
            None | Some([]) => Ok(default()),
            Some(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                parse(&text).map_err(|source| ReceiveError::BadTenant { header, source })
            }
        }
    }
    Ok(TenantContext::new(
        id(tenant, TENANT_HEADER, TenantId::parse, TenantId::default_id)?,
        id(
            workspace,
            WORKSPACE_HEADER,
            WorkspaceId::parse,
            WorkspaceId::default_id,
        )?,
    ))
}

/// The forwarded batch a request names in [`BATCH_HEADER`], if any.
pub fn source_batch(raw: Option<&[u8]>) -> Result<Option<SourceBatch>> {
    match raw.map(<[u8]>::trim_ascii) {
        None | Some([]) => Ok(None),
        Some(bytes) => Ok(Some(SourceBatch::parse(&String::from_utf8_lossy(bytes))?)),
    }
}

/// What both receivers share: conversion and the ingest use case.
pub struct OtlpReceiver {
    handler: Arc<IngestHandler>,
    counters: Arc<dyn CounterStore>,
}

impl OtlpReceiver {
    pub fn new(handler: Arc<IngestHandler>, counters: Arc<dyn CounterStore>) -> Self {
        Self { handler, counters }
    }

    async fn ingest(
        &self,
        converted: Converted,
        source: Option<SourceBatch>,
    ) -> Result<IngestOutcome> {
        let Converted { summary, batches } = converted;
        Ok(self
            .handler
            .handle(IngestCommand {
                summary,
                batches,
                source,
            })
            .await?)
    }

    pub async fn export_traces(
        &self,
        ctx: &TenantContext,
        source: Option<SourceBatch>,
        req: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse> {
        let converted = convert::convert_traces(&req, ctx)?;
        // The decoded request (several times its wire size) is not kept
        // while the WAL fsync is awaited.
        drop(req);
        let out = self.ingest(converted, source).await?;
        Ok(ExportTraceServiceResponse {
            partial_success: (out.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: out.rejected as i64,
                error_message: out.message,
            }),
        })
    }

    pub async fn export_metrics(
        &self,
        ctx: &TenantContext,
        source: Option<SourceBatch>,
        req: ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse> {
        let converted = convert::convert_metrics(&req, ctx, self.counters.as_ref())?;
        drop(req);
        let out = self.ingest(converted, source).await?;
        Ok(ExportMetricsServiceResponse {
            partial_success: (out.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: out.rejected as i64,
                error_message: out.message,
            }),
        })
    }

    pub async fn export_logs(
        &self,
        ctx: &TenantContext,
        source: Option<SourceBatch>,
        req: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse> {
        let converted = convert::convert_logs(&req, ctx)?;
        drop(req);
        let out = self.ingest(converted, source).await?;
        Ok(ExportLogsServiceResponse {
            partial_success: (out.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: out.rejected as i64,
                error_message: out.message,
            }),
        })
    }
}
