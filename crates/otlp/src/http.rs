//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or
//! JSON bodies, optionally gzip/zstd/deflate-compressed. The response uses the
//! request's content type; errors carry a `google.rpc.Status`.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;

use super::admission::{ReservingBody, refusal_in};
use super::decode::{DecodeError, Encoding, decompress};
use super::signal::{Logs, Metrics, OtlpSignal, Traces};
use super::status::{RpcStatus, code};
use super::{OtlpReceiver, ReceiveError, RelayedBy, export_context};
use tf_application::pipeline::Reservation;
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

    /// As error messages name it.
    fn name(self) -> &'static str {
        match self {
            BodyFormat::Protobuf => "OTLP/protobuf",
            BodyFormat::Json => "OTLP/JSON",
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
        ReceiveError::Limited(e) => {
            let after = Duration::from_secs(e.retry_secs());
            retry_later(
                error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    RpcStatus::new(code::RESOURCE_EXHAUSTED, msg).with_retry_after(after),
                    format,
                ),
                after,
            )
        }
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

impl HttpReceiver {
    /// The OTLP/HTTP routes: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`.
    /// A body whose `Content-Length` is over the limit is refused before
    /// any of it is read.
    pub fn routes(self) -> Router {
        let declared = axum::middleware::from_fn_with_state(self.clone(), admit_body);
        Router::new()
            .route(Traces::HTTP_PATH, post(export::<Traces>))
            .route(Metrics::HTTP_PATH, post(export::<Metrics>))
            .route(Logs::HTTP_PATH, post(export::<Logs>))
            .route_layer(declared)
            .with_state(self)
    }
}

/// The 413 of a body over `max` bytes, in the request's format.
fn too_large(headers: &HeaderMap, size: &str, max: usize) -> Response {
    let format = request_format(headers);
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        RpcStatus::new(
            code::RESOURCE_EXHAUSTED,
            format!(
                "request body of {size} is over the limit of {max} bytes (server.max_request_bytes)"
            ),
        ),
        format,
    )
}

/// Refuses a request whose declared `Content-Length` is over the limit,
/// and reserves its body in the memory budget before any of it is read
/// (the declared size at once, the rest as it arrives): over the budget,
/// 429 with Retry-After. The reservation is held until the answer.
async fn admit_body(
    State(rx): State<HttpReceiver>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let max = rx.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared
        && len > max as u64
    {
        return too_large(request.headers(), &format!("{len} bytes"), max);
    }
    let tenant = match rx
        .receiver
        .precheck(|k| request.headers().get(k).map(|v| v.as_bytes()))
    {
        Ok(t) => t,
        Err(e) => return receive_error(e, request_format(request.headers())),
    };
    let reservation = match rx.receiver.reserve(tenant, declared.unwrap_or(0) as usize) {
        Ok(Some(r)) => r,
        Ok(None) => return next.run(request).await,
        Err(e) => return receive_error(e.into(), request_format(request.headers())),
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(Arc::clone(&reservation));
    let body = axum::body::Body::new(ReservingBody::new(body, Arc::clone(&reservation)));
    let response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    drop(reservation);
    response
}

/// True when reading a body failed because it stalled (the listener's
/// body-read timeout).
fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        // tower-http's `TimeoutError`, as the listener wraps bodies.
        if err
            .to_string()
            .contains("not received within the designated timeout")
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The request's format by its `Content-Type` (protobuf when unknown).
fn request_format(headers: &HeaderMap) -> BodyFormat {
    BodyFormat::from_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
    .unwrap_or(BodyFormat::Protobuf)
}

/// `POST` of signal `S`: decode, ingest, answer in the request's format.
async fn export<S: OtlpSignal>(
    State(rx): State<HttpReceiver>,
    relay: Option<Extension<RelayedBy>>,
    reservation: Option<Extension<Arc<Reservation>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // A body sent without a length stops being read at the limit.
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return too_large(&headers, "more bytes", rx.max_body_bytes);
        }
        Err(BytesRejection::FailedToBufferBody(e))
            if refusal_in(&e).is_some_and(|s| s.code() == tonic::Code::Unavailable) =>
        {
            let message = refusal_in(&e).map(|s| s.message().to_owned());
            let e = WriteError::Overloaded {
                reason: message.unwrap_or_default(),
                retry_after: Duration::from_secs(1),
            };
            return receive_error(e.into(), request_format(&headers));
        }
        Err(BytesRejection::FailedToBufferBody(e)) if body_timed_out(&e) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                RpcStatus::new(
                    code::DEADLINE_EXCEEDED,
                    "the request body stalled longer than server.body_read_timeout_secs",
                ),
                request_format(&headers),
            );
        }
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                RpcStatus::new(
                    code::INVALID_ARGUMENT,
                    format!("reading the request body: {e}"),
                ),
                BodyFormat::Protobuf,
            );
        }
    };
    let compressed = headers.contains_key(header::CONTENT_ENCODING);
    let (format, body) = match read_body(&headers, body, rx.max_body_bytes) {
        Ok(read) => read,
        Err((status, rpc, format)) => return error_response(status, rpc, format),
    };
    // A decompressed body is held next to the compressed one.
    if compressed
        && let Some(Extension(r)) = &reservation
        && let Err(e) = r.add(body.len())
    {
        return receive_error(e.into(), format);
    }
    let relay = relay.map(|Extension(r)| r);
    let (ctx, source) =
        match export_context(|k| headers.get(k).map(|v| v.as_bytes()), relay.as_ref()) {
            Ok(named) => named,
            Err(e) => return receive_error(e, format),
        };
    // The request as received goes to forwarders, if they want it.
    let raw =
        (format == BodyFormat::Protobuf && rx.receiver.keeps_requests()).then(|| body.clone());
    let decoded = match format {
        BodyFormat::Protobuf => S::Request::decode(body).map_err(|e| e.to_string()),
        BodyFormat::Json => S::decode_json(&body).map_err(|e| e.to_string()),
    };
    let request = match decoded {
        Ok(r) => r,
        Err(e) => {
            let message = format!(
                "invalid {} {} request: {e}",
                format.name(),
                S::SIGNAL.name()
            );
            return error_response(
                StatusCode::BAD_REQUEST,
                RpcStatus::new(code::INVALID_ARGUMENT, message),
                format,
            );
        }
    };
    let response = match rx.receiver.export::<S>(&ctx, source, request, raw).await {
        Ok(r) => r,
        Err(e) => return receive_error(e, format),
    };
    let body = match format {
        BodyFormat::Protobuf => response.encode_to_vec(),
        BodyFormat::Json => S::encode_json(&response),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// An error answer: its status, and the `google.rpc.Status` it carries in
/// the request's format.
type Refusal = (StatusCode, RpcStatus, BodyFormat);

/// The body's format (from `Content-Type`) and the body, decompressed as
/// `Content-Encoding` says within `max_bytes`.
fn read_body(
    headers: &HeaderMap,
    body: Bytes,
    max_bytes: usize,
) -> Result<(BodyFormat, Bytes), Refusal> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(format) = BodyFormat::from_content_type(ct) else {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RpcStatus::new(
                code::INVALID_ARGUMENT,
                format!(
                    "unsupported content type {:?}: use application/x-protobuf or application/json",
                    ct.unwrap_or("")
                ),
            ),
            BodyFormat::Protobuf,
        ));
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("<non-ascii>"));
    match Encoding::parse(encoding).and_then(|enc| decompress(enc, body, max_bytes)) {
        Ok(body) => Ok((format, body)),
        Err(e @ DecodeError::TooLarge { .. }) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            RpcStatus::new(code::RESOURCE_EXHAUSTED, e.to_string()),
            format,
        )),
        Err(e @ DecodeError::UnsupportedEncoding(_)) => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RpcStatus::new(code::INVALID_ARGUMENT, e.to_string()),
            format,
        )),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            RpcStatus::new(code::INVALID_ARGUMENT, e.to_string()),
            format,
        )),
    }
}
