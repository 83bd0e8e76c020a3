//! How both listeners hold up against clients that hold resources: at
//! most `server.max_connections` connections per listener (beyond them the
//! listener stops accepting until one closes, and the kernel's backlog
//! queues the rest), HTTP/1 headers within `server.header_read_timeout_secs`,
//! no request body idle for longer than `server.body_read_timeout_secs`
//! between frames, and at most `server.max_concurrent_streams` HTTP/2
//! streams per connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use futures::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

/// What one listener allows each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_concurrent_streams: u32,
}

/// Serves `app` on the connections `listener` accepts until `stop`
/// resolves, then waits for the open connections to finish their
/// requests. Handlers find the client's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve_http<L>(
    mut listener: L,
    app: axum::Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let body_timeout = limits.body_read_timeout;
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let svc = app
            .clone()
            .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(|b| axum::body::Body::new(TimeoutBody::new(body_timeout, b)))
            });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let builder = Arc::clone(&builder);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection that holds one of its listener's slots while open.
pub struct Limited<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// `incoming`, yielding a connection only while fewer than
/// `max_connections` of those it yielded are open.
pub fn limit_incoming<IO, S>(
    incoming: S,
    max_connections: usize,
) -> impl Stream<Item = io::Result<Limited<IO>>> + Send
where
    S: Stream<Item = io::Result<IO>> + Send + 'static,
    IO: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    futures::stream::unfold(
        (Box::pin(incoming), slots),
        |(mut incoming, slots)| async move {
            use futures::StreamExt as _;
            let slot = Arc::clone(&slots).acquire_owned().await.ok()?;
            let next = incoming.next().await?;
            Some((
                next.map(|io| Limited { io, _slot: slot }),
                (incoming, slots),
            ))
        },
    )
}

/// The request body of a gRPC call, failing when idle between frames for
/// longer than `timeout` (tonic's services take `tonic::body::Body`).
pub fn grpc_body_timeout(
    timeout: Duration,
) -> tower::util::MapRequestLayer<
    impl Fn(http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> + Clone,
> {
    tower::util::MapRequestLayer::new(move |req: http::Request<tonic::body::Body>| {
        req.map(|b| tonic::body::Body::new(TimeoutBody::new(timeout, b)))
    })
}
