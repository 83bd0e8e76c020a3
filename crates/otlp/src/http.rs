//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or
//! JSON bodies, optionally gzip/zstd/deflate-compressed. The response uses the
//! request's content type; errors carry a `google.rpc.Status`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::decode::{DecodeError, Encoding, decompress};
use super::status::{RpcStatus, code};
use super::{
    BATCH_HEADER, OtlpReceiver, ReceiveError, TENANT_HEADER, WORKSPACE_HEADER, json, source_batch,
    tenant_context,
};
use tf_application::ports::WriteError;

/// Request body encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Protobuf,
    Json,
}

impl BodyFormat {
    fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Protobuf => "application/x-protobuf",
            BodyFormat::Json => "application/json",
        }
    }

    /// From a `Content-Type` header; parameters such as `charset` are ignored.
    pub fn from_content_type(ct: Option<&str>) -> Option<BodyFormat> {
        let essence = ct?.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(BodyFormat::Protobuf),
            "application/json" => Some(BodyFormat::Json),
            _ => None,
        }
    }
}

/// State of the OTLP/HTTP routes.
#[derive(Clone)]
pub struct HttpReceiver {
    pub receiver: Arc<OtlpReceiver>,
    /// Largest accepted body after decompression.
    pub max_body_bytes: usize,
}

/// An error response in the request's format.
pub fn error_response(status: StatusCode, rpc: RpcStatus, format: BodyFormat) -> Response {
    let body = match format {
        BodyFormat::Protobuf => rpc.encode_to_vec(),
        BodyFormat::Json => rpc.to_json(),
    };
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

fn retry_later(mut resp: Response, after: Duration) -> Response {
    let secs = after.as_secs().max(1).to_string();
    if let Ok(v) = HeaderValue::from_str(&secs) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn receive_error(e: ReceiveError, format: BodyFormat) -> Response {
    let msg = e.to_string();
    match e {
        ReceiveError::BadTenant { .. } | ReceiveError::BadBatchKey(_) => error_response(
            StatusCode::BAD_REQUEST,
            RpcStatus::new(code::INVALID_ARGUMENT, msg),
            format,
        ),
        ReceiveError::Write(WriteError::Overloaded { retry_after, .. }) => retry_later(
            error_response(
                StatusCode::TOO_MANY_REQUESTS,
                RpcStatus::new(code::UNAVAILABLE, msg).with_retry_after(retry_after),
                format,
            ),
            retry_after,
        ),
        ReceiveError::Write(_) => retry_later(
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                RpcStatus::new(code::UNAVAILABLE, msg).with_retry_after(Duration::from_secs(1)),
                format,
            ),
            Duration::from_secs(1),
        ),
        ReceiveError::Convert(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            RpcStatus::new(code::INTERNAL, msg),
            format,
        ),
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

async fn handle(rx: HttpReceiver, signal: Signal, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(format) = BodyFormat::from_content_type(ct) else {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RpcStatus::new(
                code::INVALID_ARGUMENT,
                format!(
                    "unsupported content type {:?}: use application/x-protobuf or application/json",
                    ct.unwrap_or("")
                ),
            ),
            BodyFormat::Protobuf,
        );
    };
    let bad_request = |msg: String| {
        error_response(
            StatusCode::BAD_REQUEST,
            RpcStatus::new(code::INVALID_ARGUMENT, msg),
            format,
        )
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("<non-ascii>"));
    let body =
        match Encoding::parse(encoding).and_then(|enc| decompress(enc, body, rx.max_body_bytes)) {
            Ok(b) => b,
            Err(e @ DecodeError::TooLarge { .. }) => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    RpcStatus::new(code::RESOURCE_EXHAUSTED, e.to_string()),
                    format,
                );
            }
            Err(e @ DecodeError::UnsupportedEncoding(_)) => {
                return error_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    RpcStatus::new(code::INVALID_ARGUMENT, e.to_string()),
                    format,
                );
            }
            Err(e) => return bad_request(e.to_string()),
        };
    let get = |k: &str| headers.get(k).map(|v| v.as_bytes());
    let ctx = match tenant_context(get(TENANT_HEADER), get(WORKSPACE_HEADER)) {
        Ok(c) => c,
        Err(e) => return receive_error(e, format),
    };
    let source = match source_batch(get(BATCH_HEADER)) {
        Ok(s) => s,
        Err(e) => return receive_error(e, format),
    };
    let r = &rx.receiver;
    // Decode, ingest, encode the response in the request's format.
    let result: Result<Vec<u8>, Response> = match (signal, format) {
        (Signal::Traces, BodyFormat::Protobuf) => {
            match opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body) {
                Ok(req) => r.export_traces(&ctx, source, req).await.map(|x| x.encode_to_vec()),
                Err(e) => return bad_request(format!("invalid OTLP/protobuf traces request: {e}")),
            }
        }
        (Signal::Traces, BodyFormat::Json) => match json::decode_traces(&body) {
            Ok(req) => r.export_traces(&ctx, source, req).await.map(|x| json::encode_trace_response(&x)),
            Err(e) => return bad_request(format!("invalid OTLP/JSON traces request: {e}")),
        },
        (Signal::Metrics, BodyFormat::Protobuf) => {
            match opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(body) {
                Ok(req) => r.export_metrics(&ctx, source, req).await.map(|x| x.encode_to_vec()),
                Err(e) => return bad_request(format!("invalid OTLP/protobuf metrics request: {e}")),
            }
        }
        (Signal::Metrics, BodyFormat::Json) => match json::decode_metrics(&body) {
            Ok(req) => r
                .export_metrics(&ctx, source, req)
                .await
                .map(|x| json::encode_metrics_response(&x)),
            Err(e) => return bad_request(format!("invalid OTLP/JSON metrics request: {e}")),
        },
        (Signal::Logs, BodyFormat::Protobuf) => {
            match opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(body) {
                Ok(req) => r.export_logs(&ctx, source, req).await.map(|x| x.encode_to_vec()),
                Err(e) => return bad_request(format!("invalid OTLP/protobuf logs request: {e}")),
            }
        }
        (Signal::Logs, BodyFormat::Json) => match json::decode_logs(&body) {
            Ok(req) => r.export_logs(&ctx, source, req).await.map(|x| json::encode_logs_response(&x)),
            Err(e) => return bad_request(format!("invalid OTLP/JSON logs request: {e}")),
        },
    }
    .map_err(|e| receive_error(e, format));
    match result {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            body,
        )
            .into_response(),
        Err(resp) => resp,
    }
}

pub async fn traces(State(rx): State<HttpReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    handle(rx, Signal::Traces, headers, body).await
}

pub async fn metrics(State(rx): State<HttpReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    handle(rx, Signal::Metrics, headers, body).await
}

pub async fn logs(State(rx): State<HttpReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    handle(rx, Signal::Logs, headers, body).await
}
