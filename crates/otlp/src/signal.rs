//! What sets the three OTLP signals apart, stated once per signal: the
//! messages of its export call, their conversion and encodings, and its
//! names on the wire. The receiver, the gRPC services, the OTLP/HTTP
//! routes and the exporter are each written once, generic over
//! [`OtlpSignal`], and instantiated for [`Traces`], [`Metrics`] and [`Logs`].

use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tf_application::TableBatch;
use tf_domain::TenantContext;
use tf_domain::ports::CounterStore;
use tf_domain::telemetry::Signal;

use crate::convert::{self, ConvertError, Converted};
use crate::json;

/// One OTLP signal's export call. Implemented by the zero-sized
/// [`Traces`], [`Metrics`] and [`Logs`].
pub trait OtlpSignal: Copy + Send + Sync + 'static {
    const SIGNAL: Signal;
    /// The fully qualified gRPC service, e.g.
    /// `opentelemetry.proto.collector.trace.v1.TraceService`.
    const GRPC_SERVICE: &'static str;
    /// `/<GRPC_SERVICE>/Export`, the path of the service's one method.
    const GRPC_PATH: &'static str;
    /// The OTLP/HTTP path, `/v1/<signal>`.
    const HTTP_PATH: &'static str;

    type Request: prost::Message + Default + Send + 'static;
    type Response: prost::Message + Default + Send + 'static;

    /// Runs the request's items through the domain rules into Arrow rows.
    fn convert(
        req: &Self::Request,
        ctx: &TenantContext,
        counters: &dyn CounterStore,
    ) -> Result<Converted, ConvertError>;

    /// The items (spans, data points, log records) of a request: what the
    /// tenant's ingest rate counts, before conversion.
    fn items(req: &Self::Request) -> u64;

    /// Stored rows of the signal's tables back to a request (forwarding).
    fn from_rows(rows: &[TableBatch]) -> Result<Self::Request, ConvertError>;

    /// The response: with a partial success when something was rejected.
    fn response(partial_success: Option<PartialSuccess>) -> Self::Response;

    /// What a response says was rejected, if anything.
    fn partial_success(response: Self::Response) -> Option<PartialSuccess>;

    /// Decodes an OTLP/JSON request body.
    fn decode_json(body: &[u8]) -> json::Result<Self::Request>;

    /// Encodes a response as OTLP/JSON.
    fn encode_json(response: &Self::Response) -> Vec<u8>;
}

/// The partial success of an export response, whatever its signal calls
/// the rejected items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    pub rejected: i64,
    pub error_message: String,
}

/// Declares a signal's gRPC service and the path of its `Export` method
/// from one spelling of the service name.
macro_rules! grpc_service {
    ($service:literal) => {
        const GRPC_SERVICE: &'static str = $service;
        const GRPC_PATH: &'static str = concat!("/", $service, "/Export");
    };
}

/// Spans: `TraceService`, `/v1/traces`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traces;

impl OtlpSignal for Traces {
    const SIGNAL: Signal = Signal::Traces;
    grpc_service!("opentelemetry.proto.collector.trace.v1.TraceService");
    const HTTP_PATH: &'static str = "/v1/traces";

    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;

    fn convert(
        req: &Self::Request,
        ctx: &TenantContext,
        _: &dyn CounterStore,
    ) -> Result<Converted, ConvertError> {
        convert::convert_traces(req, ctx)
    }

    fn items(req: &Self::Request) -> u64 {
        let spans = req.resource_spans.iter().flat_map(|r| &r.scope_spans);
        spans.map(|s| s.spans.len() as u64).sum()
    }

    fn from_rows(rows: &[TableBatch]) -> Result<Self::Request, ConvertError> {
        convert::spans_to_otlp(&record_batches(rows))
    }

    fn response(partial_success: Option<PartialSuccess>) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: partial_success.map(|p| ExportTracePartialSuccess {
                rejected_spans: p.rejected,
                error_message: p.error_message,
            }),
        }
    }

    fn partial_success(response: Self::Response) -> Option<PartialSuccess> {
        response.partial_success.map(|p| PartialSuccess {
            rejected: p.rejected_spans,
            error_message: p.error_message,
        })
    }

    fn decode_json(body: &[u8]) -> json::Result<Self::Request> {
        json::decode_traces(body)
    }

    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_trace_response(response)
    }
}

/// Metric data points: `MetricsService`, `/v1/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics;

impl OtlpSignal for Metrics {
    const SIGNAL: Signal = Signal::Metrics;
    grpc_service!("opentelemetry.proto.collector.metrics.v1.MetricsService");
    const HTTP_PATH: &'static str = "/v1/metrics";

    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    fn convert(
        req: &Self::Request,
        ctx: &TenantContext,
        counters: &dyn CounterStore,
    ) -> Result<Converted, ConvertError> {
        convert::convert_metrics(req, ctx, counters)
    }

    fn items(req: &Self::Request) -> u64 {
        let metrics = req.resource_metrics.iter().flat_map(|r| &r.scope_metrics);
        let metrics = metrics.flat_map(|s| &s.metrics);
        metrics.map(convert::data_points).sum()
    }

    fn from_rows(rows: &[TableBatch]) -> Result<Self::Request, ConvertError> {
        convert::metrics_to_otlp(rows)
    }

    fn response(partial_success: Option<PartialSuccess>) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: partial_success.map(|p| ExportMetricsPartialSuccess {
                rejected_data_points: p.rejected,
                error_message: p.error_message,
            }),
        }
    }

    fn partial_success(response: Self::Response) -> Option<PartialSuccess> {
        response.partial_success.map(|p| PartialSuccess {
            rejected: p.rejected_data_points,
            error_message: p.error_message,
        })
    }

    fn decode_json(body: &[u8]) -> json::Result<Self::Request> {
        json::decode_metrics(body)
    }

    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_metrics_response(response)
    }
}

/// Log records: `LogsService`, `/v1/logs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logs;

impl OtlpSignal for Logs {
    const SIGNAL: Signal = Signal::Logs;
    grpc_service!("opentelemetry.proto.collector.logs.v1.LogsService");
    const HTTP_PATH: &'static str = "/v1/logs";

    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    fn convert(
        req: &Self::Request,
        ctx: &TenantContext,
        _: &dyn CounterStore,
    ) -> Result<Converted, ConvertError> {
        convert::convert_logs(req, ctx)
    }

    fn items(req: &Self::Request) -> u64 {
        let logs = req.resource_logs.iter().flat_map(|r| &r.scope_logs);
        logs.map(|s| s.log_records.len() as u64).sum()
    }

    fn from_rows(rows: &[TableBatch]) -> Result<Self::Request, ConvertError> {
        convert::logs_to_otlp(&record_batches(rows))
    }

    fn response(partial_success: Option<PartialSuccess>) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: partial_success.map(|p| ExportLogsPartialSuccess {
                rejected_log_records: p.rejected,
                error_message: p.error_message,
            }),
        }
    }

    fn partial_success(response: Self::Response) -> Option<PartialSuccess> {
        response.partial_success.map(|p| PartialSuccess {
            rejected: p.rejected_log_records,
            error_message: p.error_message,
        })
    }

    fn decode_json(body: &[u8]) -> json::Result<Self::Request> {
        json::decode_logs(body)
    }

    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_logs_response(response)
    }
}

/// The record batches of one table's rows.
fn record_batches(rows: &[TableBatch]) -> Vec<RecordBatch> {
    rows.iter().map(|t| t.batch.clone()).collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server;

    use super::*;

    /// Each signal's wire names are the ones opentelemetry-proto generates.
    #[test]
    fn wire_names_are_otlps() {
        fn check<S: OtlpSignal>(service: &str) {
            assert_eq!(S::GRPC_SERVICE, service);
            assert_eq!(S::GRPC_PATH, format!("/{service}/Export"));
            assert_eq!(S::HTTP_PATH, format!("/v1/{}", S::SIGNAL.name()));
        }
        check::<Traces>(trace_service_server::SERVICE_NAME);
        check::<Metrics>(metrics_service_server::SERVICE_NAME);
        check::<Logs>(logs_service_server::SERVICE_NAME);
    }
}
