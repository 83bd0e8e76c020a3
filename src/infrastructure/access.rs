//! The access check in front of every entry point, for both protocols.
//!
//! [`AccessControl::check`] reads a request's head: who sent it (an API key
//! or token in `Authorization: Bearer`, HTTP Basic's password, or a token
//! in `access_token=`), whether that key may use the entry point (its
//! [`Need`]) and send a forwarded batch, and which tenant and workspace the
//! request acts for. A request that passes leaves with its tenant and
//! workspace headers set to those the key allows, and with its [`Caller`]
//! (and, for a relay's batch, [`RelayedBy`]) in its extensions — so the
//! receivers and routes behind it read one resolved context.
//!
//! Refusals: no key or a bad one → [`Refusal::Unauthenticated`] (401,
//! `UNAUTHENTICATED`); more than `max_failures_per_minute` of those from one
//! address → [`Refusal::Limited`] (429 with `Retry-After`; requests with a
//! good key are still served); a key that may not → [`Refusal::Forbidden`]
//! (403, `PERMISSION_DENIED`); keys not loaded yet → [`Refusal::Unavailable`]
//! (503, retryable). Without keys (`auth.mode = "none"`) only the `Host`
//! is checked: a loopback server answers only loopback names, so a web
//! page cannot reach it by rebinding its DNS name to 127.0.0.1.
//!
//! [`http_guard`] renders refusals for axum routes (a `google.rpc.Status`
//! on the OTLP paths, JSON elsewhere); [`GrpcAccessLayer`] as gRPC statuses.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::request::Parts;
use parking_lot::Mutex;

use crate::application::access::{AuthError, Caller, KeyRing};
use crate::domain::access::Need;
use crate::domain::{TenantId, WorkspaceId};
use crate::infrastructure::otlp::http::{BodyFormat, error_response};
use crate::infrastructure::otlp::status::{RpcStatus, code};
use crate::infrastructure::otlp::{BATCH_HEADER, RelayedBy, TENANT_HEADER, WORKSPACE_HEADER};

/// The query parameter that may carry a token (never a key: keys stay out
/// of URLs and access logs).
pub const TOKEN_PARAM: &str = "access_token";

/// Why a request was refused. Messages never hold a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    Forbidden(String),
    Limited { retry_after: Duration },
    Unavailable(String),
    BadRequest(String),
}

/// How requests are let in.
pub enum Mode {
    /// No keys. A listener bound to loopback answers only loopback `Host`s.
    Open,
    Keys(Arc<KeyRing>),
}

/// The listeners, each with its own `Host` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Http = 0,
    Grpc = 1,
    /// `server.metrics_addr`.
    Metrics = 2,
}

/// The refusals counted in `/metrics`, by reason.
#[derive(Debug, Default)]
pub struct AccessStats {
    counts: [AtomicU64; REASONS.len()],
}

/// The `reason` label values of refused requests.
pub const REASONS: [&str; 10] = [
    "missing",
    "malformed",
    "unknown",
    "wrong_secret",
    "expired",
    "bad_token",
    "unavailable",
    "forbidden",
    "rate_limited",
    "foreign_host",
];

impl AccessStats {
    fn count(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (reason, refusals) for each reason.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Failed authentications per address in the current minute.
struct FailureLimit {
    max: u64,
    windows: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond, windows that ended are dropped first.
const MAX_ADDRESSES: usize = 65_536;

impl FailureLimit {
    /// Counts a failure; returns how long the address must wait when it is
    /// over the limit.
    fn fail(&self, ip: IpAddr) -> Option<Duration> {
        let ip = counted_as(ip);
        let now = Instant::now();
        let mut windows = self.windows.lock();
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&ip) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            // Still full: the window that started first makes room.
            let oldest = windows
                .iter()
                .min_by_key(|(_, (start, _))| *start)
                .map(|(k, _)| *k);
            if windows.len() >= MAX_ADDRESSES
                && let Some(oldest) = oldest
            {
                windows.remove(&oldest);
            }
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        (*count > self.max).then(|| WINDOW.saturating_sub(now.duration_since(*start)))
    }
}

/// The address failures are counted under: an IPv6 client controls its
/// whole /64, so the /64 is one address.
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The access check; one per server, shared by the listeners.
pub struct AccessControl {
    mode: Mode,
    /// Per [`Listener`]: it is bound to loopback, so (without keys) it
    /// answers loopback `Host`s only.
    loopback: [bool; 3],
    failures: FailureLimit,
    stats: AccessStats,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AccessControl {
    /// `loopback`: whether each [`Listener`] (by index) is bound to a
    /// loopback address.
    pub fn new(mode: Mode, loopback: [bool; 3], max_failures_per_minute: u64) -> Self {
        Self {
            mode,
            loopback,
            failures: FailureLimit {
                max: max_failures_per_minute,
                windows: Mutex::default(),
            },
            stats: AccessStats::default(),
        }
    }

    /// Whether requests need keys.
    pub fn keys(&self) -> Option<&Arc<KeyRing>> {
        match &self.mode {
            Mode::Keys(ring) => Some(ring),
            Mode::Open => None,
        }
    }

    pub fn stats(&self) -> &AccessStats {
        &self.stats
    }

    /// Decides on a request to an entry point that needs `need`, from
    /// `peer`. On success the request's tenant headers name the tenant and
    /// workspace it acts for, and its extensions hold its [`Caller`].
    pub fn check(
        &self,
        listener: Listener,
        need: Need,
        parts: &mut Parts,
        peer: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        if need == Need::Open {
            return Ok(());
        }
        let ring = match &self.mode {
            Mode::Open => {
                self.check_host(listener, parts)?;
                parts.extensions.insert(Caller::anonymous());
                return Ok(());
            }
            Mode::Keys(ring) => ring,
        };
        let caller = match credential(parts) {
            Ok(None) => Err(AuthError::Missing),
            Ok(Some(presented)) => ring.authenticate(&presented, now_secs()),
            Err(e) => Err(e),
        };
        let caller = match caller {
            Ok(caller) => caller,
            Err(AuthError::Unavailable) => {
                self.stats.count("unavailable");
                return Err(Refusal::Unavailable(AuthError::Unavailable.to_string()));
            }
            Err(e) => return Err(self.failed(&e, peer)),
        };
        let batch = parts.headers.contains_key(BATCH_HEADER);
        let forbidden = |e: &dyn std::fmt::Display| {
            self.stats.count("forbidden");
            Refusal::Forbidden(e.to_string())
        };
        caller
            .grant
            .permits(need, batch)
            .map_err(|e| forbidden(&e))?;
        // A token (made for clients that cannot send headers, and possibly
        // seen in a URL) only sends and queries telemetry.
        if caller.token && !matches!(need, Need::Ingest | Need::Query) {
            return Err(forbidden(&crate::domain::access::Denied::Token));
        }
        let tenant = named(parts, TENANT_HEADER, TenantId::parse)?;
        let workspace = named(parts, WORKSPACE_HEADER, WorkspaceId::parse)?;
        let ctx = caller
            .grant
            .context(tenant, workspace)
            .map_err(|e| forbidden(&e))?;
        for (name, value) in [
            (TENANT_HEADER, ctx.tenant().as_str()),
            (WORKSPACE_HEADER, ctx.workspace().as_str()),
        ] {
            // Ids are ASCII letters, digits, '-' and '_': valid header
            // values; were one not, the request must not go on with the
            // caller's own header.
            let v = HeaderValue::from_str(value)
                .map_err(|_| Refusal::BadRequest(format!("{name}: not a header value")))?;
            parts.headers.insert(name, v);
        }
        strip_token_param(parts);
        if batch && let Some(principal) = &caller.principal {
            parts.extensions.insert(RelayedBy(principal.clone()));
        }
        parts.extensions.insert(caller);
        Ok(())
    }

    /// Without keys, a listener bound to loopback answers only requests
    /// naming a loopback host: a web page cannot reach it by rebinding its
    /// own name to 127.0.0.1.
    pub fn check_host(&self, listener: Listener, parts: &Parts) -> Result<(), Refusal> {
        if self.keys().is_some() || !self.loopback[listener as usize] || loopback_host(parts) {
            return Ok(());
        }
        self.stats.count("foreign_host");
        Err(Refusal::Forbidden(
            "this server answers only requests to a loopback name or address (its Host header named another)".into(),
        ))
    }

    fn failed(&self, e: &AuthError, peer: Option<IpAddr>) -> Refusal {
        if let Some(retry_after) = peer.and_then(|ip| self.failures.fail(ip)) {
            self.stats.count("rate_limited");
            return Refusal::Limited { retry_after };
        }
        self.stats.count(e.reason());
        tracing::info!(peer = ?peer, reason = e.reason(), error = %e, "refused a request: authentication failed");
        Refusal::Unauthenticated(e.to_string())
    }
}

/// The key or token a request presents; an `Authorization` header that
/// holds none is malformed.
fn credential(parts: &Parts) -> Result<Option<String>, AuthError> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| AuthError::Malformed)?.trim();
        let (scheme, rest) = v.split_once(' ').ok_or(AuthError::Malformed)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Some(rest.to_owned()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| AuthError::Malformed)?;
            let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
            let (_user, password) = decoded.split_once(':').ok_or(AuthError::Malformed)?;
            return Ok(Some(password.to_owned()));
        }
        return Err(AuthError::Malformed);
    }
    let Some(query) = parts.uri.query() else {
        return Ok(None);
    };
    Ok(url_param(query, TOKEN_PARAM)
        .filter(|t| t.starts_with(crate::application::access::TOKEN_PREFIX)))
}

/// The value of `name` in a query string (tokens are URL-safe as they are).
fn url_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Removes [`TOKEN_PARAM`] from the query string, so routes see only their
/// own parameters.
fn strip_token_param(parts: &mut Parts) {
    let Some(query) = parts.uri.query() else {
        return;
    };
    if !query
        .split('&')
        .any(|kv| kv.split('=').next() == Some(TOKEN_PARAM))
    {
        return;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.split('=').next() != Some(TOKEN_PARAM))
        .collect();
    let path = parts.uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    // Scheme and authority (HTTP/2) stay as they were.
    let mut uri = parts.uri.clone().into_parts();
    if let Ok(pq) = rebuilt.parse() {
        uri.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
}

/// The id a header names; absent is `None`, and empty or blank is refused
/// as the receivers refuse it.
fn named<T>(
    parts: &Parts,
    header: &'static str,
    parse: fn(&str) -> Result<T, crate::domain::tenancy::IdError>,
) -> Result<Option<T>, Refusal> {
    match parts.headers.get(header).map(|v| v.as_bytes().trim_ascii()) {
        None => Ok(None),
        Some(bytes) => parse(&String::from_utf8_lossy(bytes))
            .map(Some)
            .map_err(|e| Refusal::BadRequest(format!("invalid {header} header: {e}"))),
    }
}

/// Whether the request's `Host` (or HTTP/2 `:authority`) is a loopback
/// name or address; a request naming none passes (a browser always names
/// one).
fn loopback_host(parts: &Parts) -> bool {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
    match host {
        None => true,
        Some(h) => is_loopback_name(&h),
    }
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `::1`, with or without a port.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`, nothing else.
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = match after.strip_prefix(':') {
            None => after.is_empty(),
            Some(port) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        };
        if !port_ok {
            return false;
        }
        v6
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The client's address, as either listener recorded it.
fn peer(ext: &http::Extensions) -> Option<IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    if let Some(ConnectInfo(addr)) = ext.get::<ConnectInfo<SocketAddr>>() {
        return Some(addr.ip());
    }
    if let Some(info) = ext.get::<TcpConnectInfo>() {
        return info.remote_addr().map(|a| a.ip());
    }
    ext.get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
        .map(|a| a.ip())
}

/// axum middleware: the access check of one route.
pub async fn http_guard(
    State((access, need)): State<(Arc<AccessControl>, Need)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let ip = peer(&parts.extensions);
    match access.check(Listener::Http, need, &mut parts, ip) {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(refusal) => http_refusal(&parts, refusal),
    }
}

/// axum middleware of the `/metrics` listener: the `Host` rule only (its
/// address is private by configuration).
pub async fn metrics_host_guard(
    State(access): State<Arc<AccessControl>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match access.check_host(Listener::Metrics, &parts) {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(refusal) => http_refusal(&parts, refusal),
    }
}

fn http_refusal(parts: &Parts, refusal: Refusal) -> Response {
    let (status, kind, message, retry_after) = match refusal {
        Refusal::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m, None),
        Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, None),
        Refusal::Limited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentications from this address; retry later".to_owned(),
            Some(retry_after),
        ),
        Refusal::Unavailable(m) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            m,
            Some(Duration::from_secs(1)),
        ),
        Refusal::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m, None),
    };
    let mut response = if parts.uri.path().starts_with("/v1/") {
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let format = BodyFormat::from_content_type(ct).unwrap_or(BodyFormat::Json);
        let rpc_code = match status {
            StatusCode::UNAUTHORIZED => code::UNAUTHENTICATED,
            StatusCode::FORBIDDEN => code::PERMISSION_DENIED,
            StatusCode::TOO_MANY_REQUESTS => code::RESOURCE_EXHAUSTED,
            StatusCode::SERVICE_UNAVAILABLE => code::UNAVAILABLE,
            _ => code::INVALID_ARGUMENT,
        };
        error_response(status, RpcStatus::new(rpc_code, message), format)
    } else {
        (
            status,
            axum::Json(serde_json::json!({"error": message, "error_type": kind})),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"telemetryflow\""),
        );
    }
    if let Some(after) = retry_after {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    response
}

fn grpc_refusal(refusal: Refusal) -> tonic::Status {
    match refusal {
        Refusal::Unauthenticated(m) => tonic::Status::unauthenticated(m),
        Refusal::Forbidden(m) => tonic::Status::permission_denied(m),
        Refusal::BadRequest(m) => tonic::Status::invalid_argument(m),
        Refusal::Unavailable(m) => tonic::Status::unavailable(m),
        Refusal::Limited { retry_after } => {
            let msg = "too many failed authentications from this address; retry later";
            let details =
                RpcStatus::new(code::RESOURCE_EXHAUSTED, msg).with_retry_after(retry_after);
            tonic::Status::with_details(
                tonic::Code::ResourceExhausted,
                msg,
                prost::Message::encode_to_vec(&details).into(),
            )
        }
    }
}

/// The access check of the gRPC listener: every service on it is OTLP
/// export, which needs [`Need::Ingest`].
#[derive(Clone)]
pub struct GrpcAccessLayer {
    access: Arc<AccessControl>,
}

impl GrpcAccessLayer {
    pub fn new(access: Arc<AccessControl>) -> Self {
        Self { access }
    }
}

impl<S> tower::Layer<S> for GrpcAccessLayer {
    type Service = GrpcAccess<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcAccess {
            inner,
            access: Arc::clone(&self.access),
        }
    }
}

#[derive(Clone)]
pub struct GrpcAccess<S> {
    inner: S,
    access: Arc<AccessControl>,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcAccess<S>
where
    S: tower::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let ip = peer(&parts.extensions);
        match self
            .access
            .check(Listener::Grpc, Need::Ingest, &mut parts, ip)
        {
            Ok(()) => {
                // The clone is the one that was not polled ready: swap so
                // the ready one serves this call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(http::Request::from_parts(parts, body)).await })
            }
            Err(refusal) => {
                let response = grpc_refusal(refusal).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for good in [
            "localhost",
            "localhost:4318",
            "LOCALHOST.",
            "app.localhost:80",
            "127.0.0.1",
            "127.9.9.9:4318",
            "[::1]:4318",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_name(good), "{good}");
        }
        for bad in [
            "example.com",
            "evil.com:4318",
            "localhost.evil.com",
            "10.0.0.1:4318",
            "[::2]:80",
            "[::1]evil.com",
            "[::1]:",
            "[::1",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
    }

    #[test]
    fn credentials_come_from_bearer_basic_or_a_token_parameter() {
        let parts = |auth: Option<&str>, uri: &str| {
            let mut b = http::Request::builder().uri(uri);
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            b.body(()).unwrap().into_parts().0
        };
        let credential = |p: &Parts| credential(p).ok().flatten();
        assert_eq!(
            credential(&parts(Some("Bearer tf_x"), "/")),
            Some("tf_x".into())
        );
        assert_eq!(
            credential(&parts(Some("bearer  tf_x "), "/")),
            Some("tf_x".into())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("otel:tf_y");
        assert_eq!(
            credential(&parts(Some(&format!("Basic {basic}")), "/")),
            Some("tf_y".into())
        );
        assert_eq!(credential(&parts(Some("Digest x"), "/")), None);
        assert_eq!(
            credential(&parts(None, "/api/v2/logs?access_token=tft_abc.def")),
            Some("tft_abc.def".into())
        );
        // A key in a URL is not taken (it would end up in access logs).
        assert_eq!(
            credential(&parts(None, "/api/v2/logs?access_token=tf_abc")),
            None
        );
    }

    #[test]
    fn failures_beyond_the_limit_are_rate_limited_per_address() {
        let limit = FailureLimit {
            max: 3,
            windows: Mutex::default(),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.fail(a), None);
        }
        assert!(
            limit
                .fail(a)
                .is_some_and(|d| d <= WINDOW && d > Duration::ZERO)
        );
        assert_eq!(limit.fail(b), None);
        // One IPv6 /64 is one address.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.fail(v6("2001:db8:1:2::1")), None);
        }
        assert!(limit.fail(v6("2001:db8:1:2:ffff::9")).is_some());
        assert_eq!(limit.fail(v6("2001:db8:1:3::1")), None);
    }
}
