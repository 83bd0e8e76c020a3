//! OTLP receivers: gRPC (`grpc`) and HTTP (`http`) adapters over one shared
//! [`OtlpReceiver`] that decodes, converts and hands batches to the ingest
//! command handler. Receivers stay thin: conversion lives in `convert`, the
//! OTLP/JSON codec (decoder and encoder, from one declaration per message)
//! in `json`, body decompression in `decode`. Each is written once for all
//! three signals, generic over [`signal::OtlpSignal`].

pub mod admission;
pub mod convert;
pub(crate) mod decode;
pub mod export;
pub mod grpc;
pub mod http;
pub mod json;
pub mod signal;
pub mod status;
pub mod synth;

use std::sync::Arc;

use convert::{ConvertError, Converted};
use signal::{OtlpSignal, PartialSuccess};
use tf_application::commands::{IngestCommand, IngestHandler};
use tf_application::pipeline::{Admission, Reservation};
use tf_application::ports::WriteError;
use tf_domain::delivery::BatchKeyError;
use tf_domain::ports::CounterStore;
use tf_domain::tenancy::IdError;
use tf_domain::{LimitExceeded, Principal, SourceBatch, TenantContext, TenantId, WorkspaceId};

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
    /// The tenant is over one of its limits: retryable after a while.
    #[error(transparent)]
    Limited(#[from] LimitExceeded),
}

pub type Result<T, E = ReceiveError> = std::result::Result<T, E>;

/// Builds the tenant context from the raw bytes of the two header values
/// (absent = `default`). A value that is not a valid id — empty or blank,
/// bytes outside ASCII included — is an error, never a fallback to
/// `default`: a client whose tenant setting came out empty must not write
/// into (or read) the default tenant.
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
            None => Ok(default()),
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

/// Set in a request's extensions by the access check when a relay key sent
/// it: the forwarded batch it names is that principal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedBy(pub Principal);

/// The tenant context and the forwarded batch that an export request's
/// headers name; `header` reads one header by name, `relay` is the
/// request's [`RelayedBy`], if any.
pub(crate) fn export_context<'a>(
    header: impl Fn(&str) -> Option<&'a [u8]>,
    relay: Option<&RelayedBy>,
) -> Result<(TenantContext, Option<SourceBatch>)> {
    let ctx = tenant_context(header(TENANT_HEADER), header(WORKSPACE_HEADER))?;
    let batch =
        source_batch(header(BATCH_HEADER))?.map(|b| b.relayed_by(relay.map(|r| r.0.clone())));
    Ok((ctx, batch))
}

/// What both receivers share: conversion and the ingest use case.
pub struct OtlpReceiver {
    handler: Arc<IngestHandler>,
    counters: Arc<dyn CounterStore>,
    admission: Option<Arc<Admission>>,
    /// Whether requests are passed on as received, in OTLP/protobuf (for
    /// forwarders, which then send them without encoding the rows again).
    keep_requests: bool,
}

impl OtlpReceiver {
    pub fn new(handler: Arc<IngestHandler>, counters: Arc<dyn CounterStore>) -> Self {
        Self {
            handler,
            counters,
            admission: None,
            keep_requests: false,
        }
    }

    /// Passes every request on as received (OTLP/protobuf; one that came as
    /// JSON or over gRPC is encoded once), for forwarders.
    pub fn keeping_requests(mut self, keep: bool) -> Self {
        self.keep_requests = keep;
        self
    }

    pub fn keeps_requests(&self) -> bool {
        self.keep_requests
    }

    /// Counts the bodies being read against the write path's memory budget.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Refuses a request before its body is read when the tenant its
    /// headers name (`header` reads one) has exhausted its ingest rate.
    /// A header that does not parse is left for the export to answer.
    /// Answers the tenant the headers name (the default one for a header
    /// that does not parse: the export answers that).
    pub fn precheck<'a>(&self, header: impl Fn(&str) -> Option<&'a [u8]>) -> Result<TenantId> {
        match tenant_context(header(TENANT_HEADER), header(WORKSPACE_HEADER)) {
            Ok(ctx) => {
                self.handler.precheck(ctx.tenant())?;
                Ok(ctx.tenant().clone())
            }
            Err(_) => Ok(TenantId::default_id()),
        }
    }

    /// Reserves `declared` bytes for a request's body of `tenant`; `None`
    /// without admission.
    pub fn reserve(
        &self,
        tenant: TenantId,
        declared: usize,
    ) -> Result<Option<Arc<Reservation>>, WriteError> {
        match &self.admission {
            Some(a) => Ok(Some(Arc::new(a.reserve(tenant, declared)?))),
            None => Ok(None),
        }
    }

    /// Converts and ingests one export request of signal `S`; answers
    /// with what was rejected, if anything. `received` is the request's
    /// OTLP/protobuf body, when the caller has it.
    pub async fn export<S: OtlpSignal>(
        &self,
        ctx: &TenantContext,
        source: Option<SourceBatch>,
        req: S::Request,
        received: Option<bytes::Bytes>,
    ) -> Result<S::Response> {
        if self.handler.limits_ingest(ctx.tenant()) {
            let bytes = prost::Message::encoded_len(&req) as u64;
            self.handler
                .admit(ctx.tenant(), S::SIGNAL, S::items(&req), bytes)?;
        }
        let Converted { summary, batches } = S::convert(&req, ctx, self.counters.as_ref())?;
        let otlp = self.keep_requests.then(|| {
            received.unwrap_or_else(|| bytes::Bytes::from(prost::Message::encode_to_vec(&req)))
        });
        // The decoded request (several times its wire size) is not kept
        // while the WAL fsync is awaited.
        drop(req);
        let out = self
            .handler
            .handle(IngestCommand {
                summary,
                batches,
                source,
                otlp,
            })
            .await?;
        Ok(S::response((out.rejected > 0).then_some(PartialSuccess {
            rejected: out.rejected as i64,
            error_message: out.message,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_tenant_header_is_default_and_an_empty_one_is_refused() {
        let ctx = tenant_context(None, None).unwrap();
        assert_eq!(
            (ctx.tenant().as_str(), ctx.workspace().as_str()),
            ("default", "default")
        );
        for blank in [&b""[..], b"   ", b"\t"] {
            let e = tenant_context(Some(blank), None).unwrap_err();
            assert!(e.to_string().contains("x-tenant-id"), "{e}");
            let e = tenant_context(None, Some(blank)).unwrap_err();
            assert!(e.to_string().contains("x-workspace-id"), "{e}");
        }
        let ctx = tenant_context(Some(b" acme\t"), None).unwrap();
        assert_eq!(ctx.tenant().as_str(), "acme");
    }
}
