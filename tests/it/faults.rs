//! Fault tests: an object store that fails. Ingest continues into the WAL,
//! flushes are retried with backoff, memory stays within the budget and new
//! requests get retryable refusals (HTTP 429 + Retry-After, gRPC UNAVAILABLE
//! + RetryInfo); once the store heals, everything reaches Parquet, nothing lost.

use std::fmt;
use std::num::NonZero;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use telemetryflow::infrastructure::otlp::status::{RETRY_INFO_TYPE_URL, RetryInfo, RpcStatus};

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{TestServer, parquet_files, test_config};

/// A local store whose writes fail while `down` is set, and whose reads
/// and listings of the cluster-wide documents (`_system/`) fail while
/// `documents_down` is.
#[derive(Debug)]
pub(crate) struct FlakyStore {
    inner: LocalFileSystem,
    down: Arc<AtomicBool>,
    documents_down: Arc<AtomicBool>,
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlakyStore({})", self.inner)
    }
}

impl FlakyStore {
    pub(crate) fn new(
        inner: LocalFileSystem,
        down: Arc<AtomicBool>,
        documents_down: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner,
            down,
            documents_down,
        }
    }

    fn check_read(&self, location: Option<&Path>) -> object_store::Result<()> {
        let document = location.is_some_and(|l| l.as_ref().starts_with("_system"));
        if document && self.documents_down.load(Ordering::SeqCst) {
            Err(object_store::Error::Generic {
                store: "flaky",
                source: "injected read outage".into(),
            })
        } else {
            Ok(())
        }
    }

    fn check(&self) -> object_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(object_store::Error::Generic {
                store: "flaky",
                source: "injected outage".into(),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check_read(Some(location))?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check_read(prefix) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check_read(prefix)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// A server whose object store is down until the returned flag is cleared.
async fn flaky_server(
    tweak: impl FnOnce(&mut telemetryflow::Config),
) -> (TestServer, Arc<AtomicBool>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("parquet")).unwrap();
    let down = Arc::new(AtomicBool::new(true));
    let store = Arc::new(FlakyStore::new(
        LocalFileSystem::new_with_prefix(dir.path().join("parquet")).unwrap(),
        Arc::clone(&down),
        Arc::new(AtomicBool::new(false)),
    ));
    let mut config = test_config(dir.path());
    tweak(&mut config);
    (
        TestServer::from_config(config, dir, Some(store)).await,
        down,
    )
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_outage_means_backpressure_not_loss() {
    let budget = (2 << 20) as f64;
    let (mut s, down) = flaky_server(|c| {
        c.buffer.flush_interval_ms = NonZero::new(50).unwrap();
        c.buffer.max_buffered_bytes = NonZero::new(2 << 20).unwrap();
    })
    .await;

    // While the store is down, requests are accepted into the WAL until the
    // memory budget is reached; then they are refused, retryably.
    let mut acked = 0u32;
    let mut refused = None;
    for req in 0..2000u32 {
        let spans = (0..32u8)
            .map(|i| span(i + 1, 1, &format!("r{req}-{i}"), T0))
            .collect();
        let r = post(
            &format!("{}/v1/traces", s.http),
            "application/x-protobuf",
            None,
            traces("svc", spans).encode_to_vec(),
            None,
        )
        .await;
        if r.status == 200 {
            acked += 1;
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the memory budget must lead to backpressure");
    assert_eq!(r.status, 429);
    let st = RpcStatus::decode(&r.body[..]).unwrap();
    assert_eq!(st.code, 14);
    assert!(st.message.contains("memory budget"), "{}", st.message);
    assert!(acked >= 3, "acked {acked}");

    // gRPC clients get UNAVAILABLE with RetryInfo.
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let err = client
        .export(traces("svc", vec![span(1, 1, "g", T0)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let details = RpcStatus::decode(err.details()).unwrap();
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    let info = RetryInfo::decode(&details.details[0].value[..]).unwrap();
    assert!(info.retry_delay.unwrap().seconds >= 1);

    // Memory stayed within the budget (plus at most the last request), the
    // server is alive and everything acked is queryable from memory.
    let mut m = String::new();
    for _ in 0..100 {
        m = reqwest::get(format!("{}/metrics", s.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&m, "telemetryflow_flush_failures_total") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metric(&m, "telemetryflow_flush_failures_total") >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "telemetryflow_buffered_bytes") <= budget * 1.5,
        "{m}"
    );
    assert!(metric(&m, "telemetryflow_wal_records_total") >= f64::from(acked));
    s.wait_for_count("SELECT count(*) FROM otel_traces", u64::from(acked) * 32)
        .await;
    assert!(parquet_files(&s.parquet_dir()).is_empty());

    // The store heals: retries flush everything, the budget frees up, and
    // new requests are accepted again.
    down.store(false, Ordering::SeqCst);
    let mut drained = false;
    for _ in 0..300 {
        let m = reqwest::get(format!("{}/metrics", s.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&m, "telemetryflow_buffered_bytes") == 0.0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drained, "buffer never drained after the store came back");
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        traces("svc", vec![span(1, 1, "after", T0)]).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    s.shutdown().await;
    assert!(!parquet_files(&s.parquet_dir()).is_empty());
    let config = test_config(s.dir.path());
    let s2 = TestServer::from_config(config, s.dir, None).await;
    s2.wait_for_count(
        "SELECT count(*) FROM otel_traces",
        u64::from(acked) * 32 + 1,
    )
    .await;
    s2.wait_for_count(
        "SELECT count(DISTINCT span_name) FROM otel_traces",
        u64::from(acked) * 32 + 1,
    )
    .await;
}

#[tokio::test]
async fn readiness_and_prometheus_metrics() {
    let s = TestServer::start_with(|c| c.wal.fsync = true).await;
    assert_eq!(
        reqwest::get(format!("{}/readyz", s.http))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let mut bad = span(1, 2, "bad", T0);
    bad.trace_id = vec![0; 16];
    post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        traces("svc", vec![span(1, 1, "ok", T0), bad]).encode_to_vec(),
        Some("acme"),
    )
    .await;
    s.flush().await;
    let m = reqwest::get(format!("{}/metrics", s.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("telemetryflow_receiver_accepted_spans_total{tenant=\"acme\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("telemetryflow_receiver_rejected_spans_total{tenant=\"acme\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("telemetryflow_manifest_version{tenant=\"acme\",table=\"otel_traces\"} 1"),
        "{m}"
    );
    assert_eq!(metric(&m, "telemetryflow_flushes_total"), 1.0);
    assert_eq!(metric(&m, "telemetryflow_wal_records_total"), 1.0);
    assert_eq!(metric(&m, "telemetryflow_wal_fsync_seconds_count"), 1.0);
    assert_eq!(metric(&m, "telemetryflow_domain_events_total"), 1.0);
    assert!(m.contains("# TYPE telemetryflow_wal_fsync_seconds histogram"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wal_refuses_writes_until_storage_catches_up() {
    let (s, down) = flaky_server(|c| {
        c.buffer.flush_interval_ms = NonZero::new(50).unwrap();
        c.wal.max_bytes = NonZero::new(256 << 10).unwrap();
        c.wal.segment_bytes = NonZero::new(64 << 10).unwrap();
    })
    .await;
    let mut acked = 0u64;
    let mut refusal = None;
    for req in 0..500u32 {
        let spans = (0..16u8)
            .map(|i| span(i + 1, 1, &format!("w{req}-{i}"), T0))
            .collect();
        let r = post(
            &format!("{}/v1/traces", s.http),
            "application/x-protobuf",
            None,
            traces("svc", spans).encode_to_vec(),
            None,
        )
        .await;
        if r.status == 200 {
            acked += 16;
        } else {
            refusal = Some(r);
            break;
        }
    }
    let r = refusal.expect("a full WAL must refuse writes");
    assert_eq!(r.status, 429);
    let st = RpcStatus::decode(&r.body[..]).unwrap();
    assert!(
        st.message.contains("write-ahead log is full"),
        "{}",
        st.message
    );
    // Storage comes back: flushes commit, segments are released, writes resume.
    down.store(false, Ordering::SeqCst);
    let mut resumed = false;
    for _ in 0..200 {
        let spans = vec![span(1, 1, "resumed", T0)];
        let r = post(
            &format!("{}/v1/traces", s.http),
            "application/x-protobuf",
            None,
            traces("svc", spans).encode_to_vec(),
            None,
        )
        .await;
        if r.status == 200 {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "writes never resumed");
    s.wait_for_count("SELECT count(*) FROM otel_traces", acked + 1)
        .await;
    let m = reqwest::get(format!("{}/metrics", s.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(&m, "telemetryflow_wal_segments_deleted_total") >= 1.0,
        "{m}"
    );
}
