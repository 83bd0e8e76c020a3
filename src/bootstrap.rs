//! The composition root: builds the adapters, wires them into the use cases,
//! starts the servers and background tasks, and shuts everything down in
//! order. The only module that knows every layer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::application::commands::{IngestHandler, ShardedCounterStore};
use crate::application::event_bus::EventBus;
use crate::application::pipeline::MemoryWriteBuffer;
use crate::application::ports::{FileStore, SnapshotSource, WriteBuffer};
use crate::application::queries::SqlHandler;
use crate::config::Config;
use crate::infrastructure::api::{ApiState, router};
use crate::infrastructure::otlp::OtlpReceiver;
use crate::infrastructure::otlp::grpc::GrpcReceiver;
use crate::infrastructure::otlp::http::HttpReceiver;
use crate::infrastructure::query::DataFusionEngine;
use crate::infrastructure::storage::ObjectFileStore;

/// The storage side, also used by `telemetryflow sql --data-dir` without a server.
pub struct Storage {
    pub buffer: Arc<MemoryWriteBuffer>,
    pub engine: Arc<DataFusionEngine>,
}

/// Opens the object store, loads the catalog of committed files, and builds
/// the write buffer and the query engine over them.
pub async fn open_storage(config: &Config) -> anyhow::Result<Storage> {
    let location = config.storage_location();
    let store = location.build().context("opening storage")?;
    let files = Arc::new(ObjectFileStore::new(Arc::clone(&store)));
    let buffer = Arc::new(
        MemoryWriteBuffer::open(config.buffer_config(), files as Arc<dyn FileStore>)
            .await
            .context("loading the catalog of stored files")?,
    );
    let engine = Arc::new(
        DataFusionEngine::new(Arc::clone(&buffer) as Arc<dyn SnapshotSource>, store)
            .context("starting the query engine")?,
    );
    Ok(Storage { buffer, engine })
}

/// A running server.
pub struct Server {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub events: Arc<EventBus>,
    pub buffer: Arc<MemoryWriteBuffer>,
    serving: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    grpc_task: JoinHandle<anyhow::Result<()>>,
    http_task: JoinHandle<anyhow::Result<()>>,
    flusher: JoinHandle<()>,
    shutdown_timeout: Duration,
}

/// Builds everything from `config` and starts serving. Addresses with port 0
/// bind ephemeral ports; the bound ones are in [`Server`].
pub async fn start(config: Config) -> anyhow::Result<Server> {
    let Storage { buffer, engine } = open_storage(&config).await?;
    let events = Arc::new(EventBus::new());
    let counters = Arc::new(ShardedCounterStore::new(config.ingest.max_counter_series));
    let ingest = Arc::new(IngestHandler::new(
        Arc::clone(&buffer) as Arc<dyn WriteBuffer>,
        Arc::clone(&events) as _,
    ));
    let receiver = Arc::new(OtlpReceiver::new(ingest, counters));
    let sql = Arc::new(SqlHandler::new(engine));
    let serving = Arc::new(AtomicBool::new(true));
    let (stop, stop_rx) = watch::channel(false);

    let grpc_listener = TcpListener::bind(&config.server.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {}", config.server.grpc_addr))?;
    let http_listener = TcpListener::bind(&config.server.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.server.http_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let max = config.server.max_request_bytes;
    let (traces, metrics, logs) = GrpcReceiver::new(Arc::clone(&receiver)).services(max);
    let grpc_task = {
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(crate::infrastructure::otlp::grpc::size_limit_status_layer())
                .add_service(traces)
                .add_service(metrics)
                .add_service(logs)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(grpc_listener),
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    },
                )
                .await
                .context("gRPC server")
        })
    };
    let app = router(ApiState {
        otlp: HttpReceiver {
            receiver,
            max_body_bytes: max,
        },
        sql,
        serving: Arc::clone(&serving),
        cors_allowed_origins: config.server.cors_allowed_origins.clone(),
    });
    let http_task = {
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            axum::serve(http_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
                .context("HTTP server")
        })
    };
    let flusher = {
        let buffer = Arc::clone(&buffer);
        let mut rx = stop_rx;
        let tick = config.buffer_config().max_age.min(Duration::from_secs(1)) / 2;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick.max(Duration::from_millis(10)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        if let Err(e) = buffer.flush_due(false).await {
                            tracing::warn!(error = %e, "periodic flush failed");
                        }
                    }
                    _ = async { let _ = rx.wait_for(|s| *s).await; } => break,
                }
            }
        })
    };
    tracing::info!(%grpc_addr, %http_addr, "TelemetryFlow serving OTLP");
    Ok(Server {
        grpc_addr,
        http_addr,
        events,
        buffer,
        serving,
        stop,
        grpc_task,
        http_task,
        flusher,
        shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
    })
}

impl Server {
    /// Graceful shutdown: stop accepting, finish in-flight requests, persist
    /// everything buffered. Returns an error only if buffered data could not
    /// be persisted.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new requests, flushing buffered data");
        self.serving.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
        let deadline = self.shutdown_timeout;
        let servers = async {
            let (g, h) = tokio::join!(self.grpc_task, self.http_task);
            for r in [g, h] {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "server stopped with an error"),
                    Err(e) => tracing::warn!(error = %e, "server task failed"),
                }
            }
        };
        if tokio::time::timeout(deadline, servers).await.is_err() {
            tracing::warn!("in-flight requests did not finish within {deadline:?}");
        }
        let _ = self.flusher.await;
        self.buffer.close();
        // Retry the final flush until it succeeds or the deadline passes.
        let started = std::time::Instant::now();
        loop {
            match self.buffer.flush_all().await {
                Ok(()) => break,
                Err(e) if started.elapsed() < deadline => {
                    tracing::warn!(error = %e, "final flush failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e).context("persisting buffered data at shutdown"),
            }
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}
