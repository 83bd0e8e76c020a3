//! The composition root: builds the adapters, wires them into the use cases,
//! starts the servers and background tasks, recovers the write-ahead log, and
//! shuts everything down in order. The only module that knows every layer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::application::DocumentStore;
use crate::application::access::KeyRing;
use crate::application::commands::{IngestHandler, IngestStats, ShardedCounterStore};
use crate::application::compaction::Compactor;
use crate::application::event_bus::EventBus;
use crate::application::event_bus::EventHandler;
use crate::application::forward::Forwarder;
use crate::application::limits::TenantLimiter;
use crate::application::pipeline::{IngestPressure, PartitionBuffer, SourceMarks, WritePath};
use crate::application::ports::{
    DeliveryStore, Exporter, FileStore, IngestSink, SnapshotSource, WriteAheadLog,
};
use crate::application::queries::{MetricQueries, ReadModel, SqlHandler, TraceQueries};
use crate::application::records::DurableSubscriber;
use crate::application::retention::Retention;
use crate::config::{AuthMode, Config};
use crate::infrastructure::access::{AccessControl, GrpcAccessLayer, Mode};
use crate::infrastructure::api::admin::AdminPasses;
use crate::infrastructure::api::prometheus::MetricsSources;
use crate::infrastructure::api::{ApiState, Offload, metrics_router, router};
use crate::infrastructure::delivery::DeliveryFiles;
use crate::infrastructure::otlp::OtlpReceiver;
use crate::infrastructure::otlp::export::OtlpExporter;
use crate::infrastructure::otlp::grpc::GrpcReceiver;
use crate::infrastructure::otlp::http::HttpReceiver;
use crate::infrastructure::query::DataFusionEngine;
use crate::infrastructure::serve::{self, ConnectionLimits, grpc_body_timeout, limit_incoming};
use crate::infrastructure::storage::{ObjectDocumentStore, ObjectFileStore, StorageLocation};
use crate::infrastructure::tls::{ServerTls, TlsListener};
use crate::infrastructure::wal::{ReplayReport, Wal, read_only_replay};

/// The storage side, also used by `telemetryflow sql --data-dir` without a server.
pub struct Storage {
    pub pipeline: Arc<WritePath>,
    pub engine: Arc<DataFusionEngine>,
    pub compactor: Arc<Compactor>,
    pub retention: Arc<Retention>,
    /// One more than the highest WAL sequence number in committed files or
    /// seen by a forwarder's cursor.
    pub next_seq: u64,
    /// The configured forwarders (durable subscribers of the pipeline).
    pub forwarders: Vec<Arc<Forwarder>>,
    /// The cluster-wide documents (API keys), beside the data.
    pub documents: Arc<dyn DocumentStore>,
}

/// Opens the object store (or uses `store`), loads the committed files from
/// the manifests, and builds the pipeline (not yet accepting writes) and the
/// query engine over them. With `gc`, deletes uncommitted data files (and,
/// in a local directory, staging files of abandoned uploads) older than the
/// configured grace period.
pub async fn open_storage(
    config: &Config,
    store: Option<Arc<dyn ObjectStore>>,
    gc: bool,
) -> anyhow::Result<Storage> {
    open_storage_with(config, store, gc, Vec::new()).await
}

/// As [`open_storage`], with more durable subscribers of the write path
/// (after the forwarders).
async fn open_storage_with(
    config: &Config,
    store: Option<Arc<dyn ObjectStore>>,
    gc: bool,
    subscribers: Vec<Arc<dyn DurableSubscriber>>,
) -> anyhow::Result<Storage> {
    crate::infrastructure::node::create_private_dir(&config.storage.data_dir)
        .with_context(|| format!("creating {}", config.storage.data_dir.display()))?;
    warn_if_shared(&config.storage.data_dir);
    let (store, local_root) = match store {
        Some(s) => (s, None),
        None => {
            let location = config.storage_location();
            let store = location.build().context("opening storage")?;
            match location {
                StorageLocation::Local(dir) => (store, Some(dir)),
                StorageLocation::S3 { .. } => (store, None),
            }
        }
    };
    let node = crate::infrastructure::node::load_or_create(&config.storage.data_dir).with_context(
        || {
            format!(
                "reading the node id in {}",
                config.storage.data_dir.display()
            )
        },
    )?;
    let node_id = crate::domain::NodeId::parse(&node).context("the node id")?;
    // Ingest reports pressure here; merges yield to it.
    let pressure = Arc::new(IngestPressure::new());
    let files = Arc::new(
        ObjectFileStore::new(Arc::clone(&store), node)
            .with_local_root(local_root)
            .with_row_group_rows(config.storage.row_group_rows.get())
            .with_page_rows(config.storage.page_rows.get())
            .with_merge_cpu_share(config.compaction.max_cpu_share)
            .with_merge_yield({
                let pressure = Arc::clone(&pressure);
                Arc::new(move || pressure.is_high())
            }),
    );
    let catalog = files
        .load_catalog()
        .await
        .context("loading the table manifests")?;
    if gc {
        match files
            .collect_garbage(Duration::from_secs(config.storage.gc_grace_secs), true)
            .await
        {
            Ok(gc) if gc.orphans + gc.replaced == 0 => {}
            Ok(gc) => tracing::info!(
                orphans = gc.orphans,
                replaced = gc.replaced,
                pending = gc.pending,
                "deleted data files"
            ),
            Err(e) => tracing::warn!(error = %e, "garbage collection of data files failed"),
        }
    }
    let buffer = Arc::new(PartitionBuffer::new(
        config.buffer_config(),
        Arc::clone(&files) as Arc<dyn FileStore>,
        catalog,
    ));
    // Sequence numbers continue above everything this node committed, even
    // when its WAL is gone.
    let next_seq = buffer.max_committed_seq() + 1;
    let compactor = Arc::new(Compactor::new(
        Arc::clone(&files) as Arc<dyn FileStore>,
        Arc::clone(&buffer),
        config.compaction_policy(),
    ));
    let retention = Arc::new(Retention::new(
        files as Arc<dyn FileStore>,
        Arc::clone(&buffer),
    ));
    let delivery: Arc<dyn DeliveryStore> = Arc::new(DeliveryFiles::new(&config.storage.data_dir));
    let forwarders = build_forwarders(config, &node_id, &delivery).await?;
    let sources = SourceMarks::load(Arc::clone(&delivery))
        .context("reading the marks of batches other nodes forwarded")?;
    let mut path = WritePath::builder(buffer)
        .persist(config.storage.persist)
        .sources(Arc::new(sources))
        .pressure(pressure);
    for f in &forwarders {
        path = path.durable(Arc::clone(f) as Arc<dyn DurableSubscriber>);
    }
    for s in subscribers {
        path = path.durable(s);
    }
    let pipeline = Arc::new(path.build());
    let documents: Arc<dyn DocumentStore> = Arc::new(ObjectDocumentStore::new(Arc::clone(&store)));
    let engine = Arc::new(
        DataFusionEngine::new(
            Arc::clone(&pipeline) as Arc<dyn SnapshotSource>,
            store,
            config.sql_limits(),
            config.query_executor(),
        )
        .context("starting the query engine")?
        .with_tenant_limits(Arc::new(config.limit_rules())),
    );
    // Nor below anything a durable subscriber has seen (a pure sidecar
    // commits no files).
    let next_seq = next_seq.max(pipeline.subscribers().next_seq_floor());
    Ok(Storage {
        pipeline,
        engine,
        compactor,
        retention,
        next_seq,
        forwarders,
        documents,
    })
}

/// The configured forwarders, each resuming at its saved cursor.
async fn build_forwarders(
    config: &Config,
    node_id: &crate::domain::NodeId,
    delivery: &Arc<dyn DeliveryStore>,
) -> anyhow::Result<Vec<Arc<Forwarder>>> {
    let mut forwarders = Vec::new();
    for f in config.forwarders()? {
        let name = f.forwarder.name.clone();
        let cursor = delivery
            .load_cursor(&name)
            .await
            .with_context(|| format!("reading the cursor of forwarder {name:?}"))?
            .unwrap_or_default();
        let exporter =
            OtlpExporter::new(f.exporter).with_context(|| format!("forwarder {name:?}"))?;
        forwarders.push(Arc::new(Forwarder::new(
            f.forwarder,
            node_id.clone(),
            cursor,
            Arc::new(exporter) as Arc<dyn Exporter>,
            Arc::clone(delivery),
        )));
    }
    Ok(forwarders)
}

/// Warns when other users may read or enter the data directory: offline
/// commands trust its permissions (TelemetryFlow creates it 0700).
fn warn_if_shared(dir: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the data directory is open to other users; its files hold every tenant's data (chmod 700)"
            );
        }
    }
}

/// Reads the WAL of `config` into `storage` without writing anything (for
/// the CLI on a data directory): unflushed data becomes queryable too.
pub fn replay_read_only(config: &Config, storage: &Storage) -> anyhow::Result<ReplayReport> {
    let buffer = Arc::clone(storage.pipeline.buffer());
    let dir = config.wal_config().dir;
    read_only_replay(&dir, |record| {
        for b in &record.batches {
            buffer.insert(&record.tenant, b.table, &b.batch, record.seq, true);
        }
    })
    .context("reading the write-ahead log")
}

/// After replay: flushes the largest partitions until the buffers hold at
/// most half the memory budget, so that once the server reports ready its
/// writes are accepted rather than refused as overloaded. Gives up (and
/// lets admission control refuse, retryably) if storage fails or does not
/// drain within a minute.
async fn relieve_memory(pipeline: &WritePath) {
    let half = pipeline.buffer().config().max_buffered_bytes / 2;
    let started = std::time::Instant::now();
    while pipeline.buffer().buffered_bytes() > half && started.elapsed() < Duration::from_secs(60) {
        match pipeline.flush_due(false).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "flushing replayed data failed; accepting writes within the memory budget only");
                return;
            }
        }
    }
}

/// WAL replay running in the background; yields the opened log and the
/// tasks of the durable subscribers it started.
type RecoveryTask = JoinHandle<anyhow::Result<Recovered>>;

struct Recovered {
    wal: Arc<Wal>,
    report: ReplayReport,
    subscribers: Vec<JoinHandle<()>>,
}

/// A running server.
pub struct Server {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The `/metrics`-only listener, when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Tasks that end with `stop`: the key refresh and the metrics
    /// listener.
    background: Vec<JoinHandle<()>>,
    pub events: Arc<EventBus>,
    pub pipeline: Arc<WritePath>,
    serving: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    recovery: Option<RecoveryTask>,
    wal: Option<Arc<Wal>>,
    grpc_task: JoinHandle<anyhow::Result<()>>,
    http_task: JoinHandle<anyhow::Result<()>>,
    flusher: JoinHandle<()>,
    compaction: Option<JoinHandle<()>>,
    retention: Option<JoinHandle<()>>,
    /// The durable subscribers' tasks (started once recovery is done).
    subscribers: Vec<JoinHandle<()>>,
    subscribers_stop: watch::Sender<bool>,
    shutdown_timeout: Duration,
}

/// Builds everything from `config` and starts serving. Addresses with port 0
/// bind ephemeral ports; the bound ones are in [`Server`]. Writes are
/// accepted once WAL replay is done ([`Server::ready`]).
pub async fn start(config: Config) -> anyhow::Result<Server> {
    start_with_store(config, None).await
}

/// As [`start`], with the object store given (tests inject faults this way).
pub async fn start_with_store(
    config: Config,
    store: Option<Arc<dyn ObjectStore>>,
) -> anyhow::Result<Server> {
    start_with_subscribers(config, store, Vec::new()).await
}

/// As [`start_with_store`], with more consumers of the durable records:
/// each is offered every record above its position, live and replayed, and
/// runs once recovery is done (see `application::records`).
pub async fn start_with_subscribers(
    config: Config,
    store: Option<Arc<dyn ObjectStore>>,
    subscribers: Vec<Arc<dyn DurableSubscriber>>,
) -> anyhow::Result<Server> {
    config.check_exposure()?;
    let tls = config.server_tls()?;
    let Storage {
        pipeline,
        engine,
        compactor,
        retention,
        next_seq,
        forwarders,
        documents,
    } = open_storage_with(&config, store, true, subscribers).await?;
    let events = Arc::new(EventBus::new());
    let stats = Arc::new(IngestStats::new(config.server.metrics_max_tenants.get()));
    let tenant_limits = Arc::new(TenantLimiter::new(Arc::new(config.limit_rules())));
    let counters = Arc::new(ShardedCounterStore::new(
        config.ingest.max_counter_series.get(),
    ));
    let ingest = Arc::new(
        IngestHandler::new(
            Arc::clone(&pipeline) as Arc<dyn IngestSink>,
            Arc::clone(&events) as _,
            Arc::clone(&stats),
        )
        .with_retention(Arc::clone(&pipeline.buffer().config().retention))
        .with_limits(Arc::clone(&tenant_limits)),
    );
    // Forwarders send requests as received rather than encoding rows again.
    let receiver = Arc::new(
        OtlpReceiver::new(ingest, counters)
            .with_admission(Arc::clone(pipeline.admission()))
            .keeping_requests(!forwarders.is_empty()),
    );
    let limits = config.query_limits();
    let read_model = Arc::clone(&engine) as Arc<dyn ReadModel>;
    let sql = Arc::new(SqlHandler::new(read_model, limits));
    let metric_queries = Arc::new(MetricQueries::new(
        Arc::clone(&engine) as _,
        limits,
        Duration::from_secs(config.query.cache_ttl_secs),
        config.query.cache_max_entries,
    ));
    events.subscribe(Arc::clone(&metric_queries) as Arc<dyn EventHandler>);
    let trace_queries = Arc::new(TraceQueries::new(Arc::clone(&engine) as _, limits));
    let serving = Arc::new(AtomicBool::new(true));
    let (stop, stop_rx) = watch::channel(false);
    let keys = Arc::new(key_ring(&config, documents)?);
    let on_loopback = |addr: Option<SocketAddr>| addr.is_some_and(|a| a.ip().is_loopback());
    let access = Arc::new(AccessControl::new(
        match config.auth.mode {
            AuthMode::None => Mode::Open,
            AuthMode::ApiKey => Mode::Keys(Arc::clone(&keys)),
        },
        [
            on_loopback(Some(config.server.http_addr)),
            on_loopback(Some(config.server.grpc_addr)),
            on_loopback(config.server.metrics_addr),
        ],
        config.auth.max_failures_per_minute.get(),
    ));
    let key_refresh = spawn_key_refresh(&config, &keys, stop_rx.clone()).await;

    let grpc_listener = TcpListener::bind(&config.server.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {}", config.server.grpc_addr))?;
    let http_listener = TcpListener::bind(&config.server.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.server.http_addr))?;
    let metrics_listener = match config.server.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding /metrics on {addr}"))?,
        ),
        None => None,
    };
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };

    let (subscribers_stop, subscribers_stop_rx) = watch::channel(false);
    let recovery = spawn_recovery(&config, &pipeline, next_seq, subscribers_stop_rx);
    let max = config.server.max_request_bytes.get();
    if let Some(tls) = &tls {
        tls.spawn_reload(TLS_RELOAD_INTERVAL, stop_rx.clone());
    }
    let grpc_task = serve_grpc(
        grpc_listener,
        tls.clone(),
        &receiver,
        max,
        config.server.connection_limits(),
        GrpcAccessLayer::new(Arc::clone(&access)),
        stop_rx.clone(),
    );
    let state = ApiState {
        access: Arc::clone(&access),
        keys,
        otlp: HttpReceiver {
            receiver,
            max_body_bytes: max,
        },
        sql,
        metric_queries: Arc::clone(&metric_queries),
        trace_queries,
        serving: Arc::clone(&serving),
        metrics: MetricsSources {
            pipeline: Arc::clone(&pipeline),
            access: Arc::clone(&access),
            forwarders,
            ingest: stats,
            events: Arc::clone(&events),
            queries: metric_queries,
            compactor: Arc::clone(&compactor),
            retention: Arc::clone(&retention),
        },
        cors_allowed_origins: config.server.cors_allowed_origins.clone(),
        // A route may run a few queries (a time series looks up the
        // metric's type first), each within the query timeout.
        offload: Offload {
            runtime: engine.executor(),
            timeout: limits.timeout * 2,
            limits,
        },
        compactor: Arc::clone(&compactor),
        retention: Arc::clone(&retention),
        gc_grace: Duration::from_secs(config.storage.gc_grace_secs),
        tenant_limits: Arc::clone(&tenant_limits),
        admin: AdminPasses::new(Duration::from_secs(config.query.admin_timeout_secs.get())),
    };
    let metrics_task = metrics_listener.map(|listener| {
        let task = serve_http(
            listener,
            tls.clone(),
            metrics_router(state.clone()),
            config.server.connection_limits(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the /metrics listener stopped"),
                Err(e) => tracing::warn!(error = %e, "the /metrics listener failed"),
            }
        })
    });
    let http_task = serve_http(
        http_listener,
        tls.clone(),
        router(state),
        config.server.connection_limits(),
        stop_rx.clone(),
    );
    let stop_rx_for_compaction = stop_rx.clone();
    let flusher = spawn_flusher(&config, &pipeline, stop_rx);
    let retention_task = spawn_retention(
        &config,
        retention,
        Arc::clone(&compactor),
        &engine,
        stop_rx_for_compaction.clone(),
    );
    let compaction = spawn_compaction(&config, compactor, &engine, stop_rx_for_compaction);
    tracing::info!(
        %grpc_addr,
        %http_addr,
        tls = tls.is_some(),
        "TelemetryFlow serving OTLP"
    );
    Ok(Server {
        grpc_addr,
        http_addr,
        metrics_addr,
        background: [key_refresh, metrics_task].into_iter().flatten().collect(),
        events,
        pipeline,
        serving,
        stop,
        recovery: Some(recovery),
        wal: None,
        grpc_task,
        http_task,
        flusher,
        compaction,
        retention: retention_task,
        subscribers: Vec::new(),
        subscribers_stop,
        shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
    })
}

/// Recovery: replays the WAL to every consumer of durable records
/// (skipping what the manifests already hold), then accepts writes and
/// starts the durable subscribers. Queries and /readyz work meanwhile.
fn spawn_recovery(
    config: &Config,
    pipeline: &Arc<WritePath>,
    next_seq: u64,
    stop: watch::Receiver<bool>,
) -> RecoveryTask {
    let pipeline = Arc::clone(pipeline);
    let wal_config = config.wal_config();
    tokio::spawn(async move {
        let replaying = Arc::clone(&pipeline);
        let (wal, report) = tokio::task::spawn_blocking(move || {
            Wal::open(wal_config, next_seq, |record| replaying.replay(&record))
                .context("opening the write-ahead log")
        })
        .await
        .context("WAL replay task")??;
        relieve_memory(&pipeline).await;
        let wal = Arc::new(wal);
        let log = pipeline.set_wal(Arc::clone(&wal) as Arc<dyn WriteAheadLog>);
        let subscribers = pipeline
            .subscribers()
            .durable()
            .iter()
            .map(|s| tokio::spawn(Arc::clone(s).run(log.clone(), stop.clone())))
            .collect();
        tracing::info!(
            records = report.records,
            segments = report.segments,
            torn = report.torn_tails,
            corrupt = report.corrupt,
            buffered_bytes = pipeline.buffer().buffered_bytes(),
            "write-ahead log replayed; accepting writes"
        );
        Ok(Recovered {
            wal,
            report,
            subscribers,
        })
    })
}

/// How often the listeners' TLS files are compared with those in use.
const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Serves OTLP/gRPC on `listener` (over TLS with `tls`) until `stop`.
fn serve_grpc(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    receiver: &Arc<OtlpReceiver>,
    max_request_bytes: usize,
    limits: ConnectionLimits,
    access: GrpcAccessLayer,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    let (traces, metrics, logs) =
        GrpcReceiver::new(Arc::clone(receiver)).services(max_request_bytes);
    tokio::spawn(async move {
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .layer(crate::infrastructure::otlp::grpc::size_limit_status_layer())
            .layer(grpc_body_timeout(limits.body_read_timeout))
            .layer(access)
            .add_service(traces)
            .add_service(metrics)
            .add_service(logs);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        match tls {
            None => {
                // Without TCP_NODELAY an answer's HTTP/2 frames wait for the
                // client's delayed ACK (Nagle): tens of ms.
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                let incoming = limit_incoming(incoming, limits.max_connections);
                router.serve_with_incoming_shutdown(incoming, stopped).await
            }
            Some(tls) => {
                let incoming = TlsListener::new(listener, tls)
                    .context("gRPC listener")?
                    .into_incoming();
                let incoming = limit_incoming(incoming, limits.max_connections);
                router.serve_with_incoming_shutdown(incoming, stopped).await
            }
        }
        .context("gRPC server")
    })
}

/// Serves the HTTP API on `listener` (over TLS with `tls`) until `stop`.
/// Handlers find the client's address as `ConnectInfo<SocketAddr>`.
fn serve_http(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    app: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    use axum::serve::ListenerExt as _;

    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        match tls {
            None => {
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                serve::serve_http(listener, app, limits, stopped).await;
            }
            Some(tls) => {
                let listener = TlsListener::new(listener, tls).context("HTTP listener")?;
                serve::serve_http(listener, app, limits, stopped).await;
            }
        }
        Ok(())
    })
}

/// The keys of the store, with the token-signing secret of
/// `auth.token_signing_secret_file` when one is configured.
fn key_ring(config: &Config, documents: Arc<dyn DocumentStore>) -> anyhow::Result<KeyRing> {
    let ring = KeyRing::new(documents);
    let Some(path) = &config.auth.token_signing_secret_file else {
        return Ok(ring);
    };
    let secret = std::fs::read(path)
        .with_context(|| format!("auth.token_signing_secret_file: reading {}", path.display()))?;
    let secret = secret.trim_ascii();
    if secret.len() < 32 {
        anyhow::bail!(
            "auth.token_signing_secret_file: {} holds {} bytes; a signing secret needs at least 32 (e.g. `openssl rand -hex 32`)",
            path.display(),
            secret.len()
        );
    }
    Ok(ring.with_signing_secret(secret))
}

/// Reads the API keys once (with keys on, a failure leaves every key
/// refused as unavailable until a read succeeds), then again every
/// `auth.refresh_secs` until `stop`, so that new keys and revocations take
/// effect on every node within that time.
async fn spawn_key_refresh(
    config: &Config,
    keys: &Arc<KeyRing>,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if config.auth.mode == AuthMode::None {
        return None;
    }
    if let Err(e) = keys.refresh().await {
        tracing::warn!(error = %e, "reading the API keys failed; requests are refused until they are read");
    }
    let keys = Arc::clone(keys);
    let every = Duration::from_secs(config.auth.refresh_secs.get());
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = interval.tick() => match keys.refresh().await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("reading the API keys works again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "reading the API keys failed; the keys read last stay in force");
                    }
                    Err(_) => {}
                },
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    }))
}

/// Flushes due partitions until `stop`: often enough that memory pressure
/// is relieved before the budget refuses writes; a tick with nothing due
/// only takes a lock briefly.
fn spawn_flusher(
    config: &Config,
    pipeline: &Arc<WritePath>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let pipeline = Arc::clone(pipeline);
    let tick = (config.buffer_config().max_age / 2).min(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick.max(Duration::from_millis(10)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if let Err(e) = pipeline.flush_due(false).await {
                        tracing::debug!(error = %e, "periodic flush failed");
                    }
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    })
}

/// Runs `pass` every `every` (the first after `first`) on the query runtime,
/// whose threads run at a lower priority than ingest's, until `stop`.
fn spawn_periodic<F, Fut>(
    engine: &DataFusionEngine,
    first: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    mut pass: F,
) -> Option<JoinHandle<()>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let handle = engine.executor().handle()?;
    Some(handle.spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => pass().await,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    }))
}

/// Runs a compaction pass (and the deletion of replaced files past the grace
/// period) every `compaction.interval_secs`, on the query runtime, so a busy
/// compactor slows queries before it slows the write path. A pass
/// interrupted by shutdown leaves only uncommitted outputs, which a later
/// collection deletes.
fn spawn_compaction(
    config: &Config,
    compactor: Arc<Compactor>,
    engine: &DataFusionEngine,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if !config.compaction.enabled {
        return None;
    }
    let every = Duration::from_secs(config.compaction.interval_secs.get());
    let grace = Duration::from_secs(config.storage.gc_grace_secs);
    spawn_periodic(engine, every, every, stop, move || {
        let compactor = Arc::clone(&compactor);
        async move {
            let now = crate::application::wall_clock().unix_nanos();
            if let Err(e) = compactor.run_once(now).await {
                tracing::warn!(error = %e, "compaction pass failed");
            }
            if let Err(e) = compactor.collect_garbage(grace).await {
                tracing::warn!(error = %e, "deleting replaced files failed");
            }
        }
    })
}

/// Runs a retention pass every `retention.check_interval_secs` (the first
/// at start-up, so changed rules apply at once), then deletes replaced files
/// whose grace period is over; on the query runtime, as compaction. Not
/// started when no rule ever expires anything.
fn spawn_retention(
    config: &Config,
    retention: Arc<Retention>,
    compactor: Arc<Compactor>,
    engine: &DataFusionEngine,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if !retention.rules().expires_anything() {
        return None;
    }
    let every = Duration::from_secs(config.retention.check_interval_secs.get());
    let grace = Duration::from_secs(config.storage.gc_grace_secs);
    spawn_periodic(engine, Duration::ZERO, every, stop, move || {
        let (retention, compactor) = (Arc::clone(&retention), Arc::clone(&compactor));
        async move {
            match retention.run_once(crate::application::wall_clock()).await {
                Ok(s) if s.files == 0 => {}
                Ok(_) => {
                    if let Err(e) = compactor.collect_garbage(grace).await {
                        tracing::warn!(error = %e, "deleting expired files failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
    })
}

impl Server {
    /// Gives the durable subscribers (the forwarders) a few seconds to
    /// finish what is queued, then stops them; whatever is not done stays in
    /// the log for the next start.
    async fn stop_subscribers(&mut self) {
        let subscribers = Arc::clone(self.pipeline.subscribers());
        let drain = self.shutdown_timeout.min(Duration::from_secs(5));
        let started = std::time::Instant::now();
        while started.elapsed() < drain && subscribers.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let undelivered = subscribers.pending();
        if undelivered > 0 {
            tracing::info!(
                records = undelivered,
                "undelivered records stay in the write-ahead log for the next start"
            );
        }
        let _ = self.subscribers_stop.send(true);
        for task in self.subscribers.drain(..) {
            let _ = task.await;
        }
    }

    /// Waits until WAL replay is done and writes are accepted.
    pub async fn ready(&mut self) -> anyhow::Result<ReplayReport> {
        match self.recovery.take() {
            Some(task) => {
                let recovered = task.await.context("recovery task")??;
                self.wal = Some(recovered.wal);
                self.subscribers = recovered.subscribers;
                Ok(recovered.report)
            }
            None => Ok(ReplayReport::default()),
        }
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests, persist
    /// everything buffered, close the WAL. Returns an error only if buffered
    /// data could not be persisted (it is still in the WAL then).
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new requests, flushing buffered data");
        self.serving.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
        let deadline = self.shutdown_timeout;
        let servers = async {
            let (g, h) = tokio::join!(&mut self.grpc_task, &mut self.http_task);
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
        let _ = (&mut self.flusher).await;
        for task in self.background.drain(..) {
            let _ = task.await;
        }
        // A merge in progress is abandoned: its outputs are uncommitted and
        // a later collection deletes them. A retention pass is one commit per
        // table: stopped between commits, the next pass does the rest.
        for task in [self.compaction.take(), self.retention.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        self.ready().await?;
        self.pipeline.close();
        let started = std::time::Instant::now();
        loop {
            match self.pipeline.flush_all().await {
                Ok(()) => break,
                Err(e) if started.elapsed() < deadline => {
                    tracing::warn!(error = %e, "final flush failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    self.stop_subscribers().await;
                    if let Some(wal) = &self.wal {
                        wal.close();
                    }
                    return Err(e)
                        .context("persisting buffered data at shutdown (it stays in the WAL)");
                }
            }
        }
        self.stop_subscribers().await;
        if let Some(wal) = &self.wal {
            wal.close();
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Turns transparent huge pages off for this process. mimalloc advises its
/// arenas for them, so the first touch of each 2 MiB region faults in a whole
/// zeroed huge page; buffers of requests, flushes and queries are freed and
/// allocated anew all the time, and with huge pages the kernel's page zeroing
/// was over half of a trace lookup's CPU. Measured without them: trace
/// lookups twice as fast at half the RSS, ingest unchanged
/// (docs/benchmarks.md). Binaries that run the store call it first thing.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and reads or writes
        // no memory of this process.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::extract::ConnectInfo;
    use reqwest_012 as reqwest;

    use super::*;
    use crate::infrastructure::tls::TlsFiles;

    async fn peer(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> String {
        addr.ip().to_string()
    }

    /// The HTTP API's handlers find the client's address, plain or over
    /// TLS, and both stop on `stop`.
    #[tokio::test]
    async fn handlers_see_the_clients_address_with_and_without_tls() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        let tls = ServerTls::load(files).unwrap();
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (scheme, tls) in [("http", None), ("https", Some(tls))] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new().route("/peer", axum::routing::get(peer));
            let limits = crate::config::ServerSettings::default().connection_limits();
            tasks.push(serve_http(listener, tls, app, limits, stop_rx.clone()));
            let resp = client
                .get(format!("{scheme}://{addr}/peer"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{scheme}");
            assert_eq!(resp.text().await.unwrap(), "127.0.0.1", "{scheme}");
        }
        drop(client);
        stop.send(true).unwrap();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("stopped")
                .unwrap()
                .unwrap();
        }
    }
}
