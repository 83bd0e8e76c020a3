//! Ingest-path benchmarks, each in items/s so every stage can be read
//! against `decode_only` (prost decoding of the same body).
//!
//! Per signal (`traces`, `metrics`, `logs`), over one request of 512 items
//! (spans / data points / log records) from `telemetryflow::synth` (~10
//! span attributes, 5 resource attributes, all five metric types):
//!
//! * `decode_only`          prost-decode the protobuf body;
//! * `decode_convert`       decode + `convert_*` (domain rules → validated Arrow batches);
//! * `json_decode`          OTLP/JSON body → prost types (our decoder);
//! * `json_decode_convert`  the same plus conversion;
//! * `parquet_encode`       sort + encode 64 requests' rows as one Parquet file
//!   (what a flush does), items/s of rows written;
//! * `sort_take_arrow`, `sort_take_gather`  the rows of that file put in
//!   sort order, by arrow's `take` and by `tf_application::gather`;
//! * `wal_append_fsync`     one request's batches appended to the WAL and
//!   fsync'd (one writer, so no group commit helps);
//! * `ingest_end_to_end`    decode + convert + WAL append + fsync + buffer insert,
//!   plus the flushes they make due, in process, one request at a time (an
//!   ack per iteration, as a single client would see);
//! * `ingest_end_to_end_8_clients` the same for 8 requests sent at once.
//!
//! And `flush_commit/{small,large}_{synced,unsynced}`: one flush's Parquet
//! file written to the local store and committed to its manifest, with the
//! server's durable local store (file, manifest version and their
//! directories fsync'd) and with object_store's plain `LocalFileSystem`
//! (nothing synced); `small` is one request's spans, `large` 64 requests'.
//!
//! ```sh
//! cargo bench --bench main                     # everything
//! cargo bench --bench main -- traces/          # one signal
//! cargo bench --bench main -- 'decode_only|ingest_end_to_end'
//! ```
//!
//! Before measuring, each group prints the request's protobuf size, its
//! protobuf+zstd size and the Parquet bytes per item, and checks that the
//! JSON body decodes to exactly the protobuf request and that every item is
//! accepted.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::compute::take_record_batch;
use prost::Message;
use telemetryflow::application::TableBatch;
use telemetryflow::application::commands::{IngestHandler, IngestStats, ShardedCounterStore};
use telemetryflow::application::event_bus::EventBus;
use telemetryflow::application::gather::take_rows;
use telemetryflow::application::ports::{IngestSink, WriteAheadLog};
use telemetryflow::domain::{TenantContext, TenantId};
use telemetryflow::infrastructure::otlp::OtlpReceiver;
use telemetryflow::infrastructure::otlp::convert::Converted;
use telemetryflow::infrastructure::otlp::json;
use telemetryflow::infrastructure::otlp::signal::{Logs, Metrics, OtlpSignal, Traces};
use telemetryflow::infrastructure::storage::parquet::{FileLayout, encode, sort_indices};
use telemetryflow::infrastructure::wal::Wal;
use telemetryflow::synth::Synth;

/// The server's allocator (src/main.rs), so the stages cost what they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Items (spans, data points, log records) per request.
const ITEMS: usize = 512;
/// Requests whose rows make one Parquet file in `parquet_encode`.
const FILE_REQUESTS: usize = 64;
/// 2026-01-01T00:00:00Z in Unix nanoseconds.
const T0: u64 = 1_767_225_600_000_000_000;

/// One signal's request in both encodings.
struct Requests<S: OtlpSignal> {
    proto: Vec<u8>,
    json: Vec<u8>,
    /// `FILE_REQUESTS` further requests (later event times) for Parquet.
    more: Vec<S::Request>,
}

fn requests<S: OtlpSignal>(
    mut generate: impl FnMut(&mut Synth) -> S::Request,
    to_json: fn(&S::Request) -> Vec<u8>,
) -> Requests<S>
where
    S::Request: PartialEq + std::fmt::Debug,
{
    let mut synth = Synth::new(42, T0);
    let req = generate(&mut synth);
    let json_body = to_json(&req);
    assert_eq!(
        S::decode_json(&json_body).expect("generated OTLP/JSON decodes"),
        req,
        "{}: the OTLP/JSON body decodes to the protobuf request",
        S::SIGNAL.name()
    );
    let more = (0..FILE_REQUESTS).map(|_| generate(&mut synth)).collect();
    Requests {
        proto: req.encode_to_vec(),
        json: json_body,
        more,
    }
}

fn traces() -> Requests<Traces> {
    requests(|s| s.traces(ITEMS), json::encode_traces)
}

fn metrics() -> Requests<Metrics> {
    requests(|s| s.metrics(ITEMS), json::encode_metrics)
}

fn logs() -> Requests<Logs> {
    requests(|s| s.logs(ITEMS), json::encode_logs)
}

fn convert<S: OtlpSignal>(
    req: &S::Request,
    ctx: &TenantContext,
    counters: &ShardedCounterStore,
) -> Converted {
    S::convert(req, ctx, counters).expect("converts")
}

/// Rows of `reqs` per table, concatenated (one flush's worth).
fn file_batches<S: OtlpSignal>(sig: &Requests<S>, ctx: &TenantContext) -> Vec<TableBatch> {
    let counters = ShardedCounterStore::new(1 << 20);
    let mut by_table: std::collections::BTreeMap<_, Vec<_>> = Default::default();
    for r in &sig.more {
        for b in convert::<S>(r, ctx, &counters).batches {
            by_table.entry(b.table).or_default().push(b.batch);
        }
    }
    by_table
        .into_iter()
        .map(|(table, batches)| TableBatch {
            table,
            batch: arrow::compute::concat_batches(&batches[0].schema(), &batches)
                .expect("same schema"),
        })
        .collect()
}

fn zstd_len(bytes: &[u8]) -> usize {
    zstd::encode_all(bytes, 3).expect("zstd").len()
}

/// An in-process write path in a temporary directory: object store, WAL
/// (fsync on), pipeline, ingest handler, receiver.
struct WritePath {
    _dir: tempfile::TempDir,
    pipeline: Arc<telemetryflow::application::pipeline::WritePath>,
    receiver: OtlpReceiver,
    wal: Arc<Wal>,
}

fn write_path(rt: &tokio::runtime::Runtime) -> WritePath {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = telemetryflow::Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    let storage = rt
        .block_on(telemetryflow::bootstrap::open_storage(&config, None, false))
        .expect("storage opens");
    let (wal, _) = Wal::open(config.wal_config(), storage.next_seq, |_| {}).expect("WAL opens");
    let wal = Arc::new(wal);
    storage
        .pipeline
        .set_wal(Arc::clone(&wal) as Arc<dyn WriteAheadLog>);
    let ingest = Arc::new(IngestHandler::new(
        Arc::clone(&storage.pipeline) as Arc<dyn IngestSink>,
        Arc::new(EventBus::new()),
        Arc::new(IngestStats::default()),
    ));
    WritePath {
        _dir: dir,
        pipeline: storage.pipeline,
        receiver: OtlpReceiver::new(ingest, Arc::new(ShardedCounterStore::new(1 << 20))),
        wal,
    }
}

fn bench_signal<S: OtlpSignal>(c: &mut Criterion, sig: Requests<S>)
where
    S::Request: Sync,
{
    let name = S::SIGNAL.name();
    let ctx = TenantContext::default();
    let tenant = TenantId::default_id();
    let req = S::Request::decode(&sig.proto[..]).expect("decodes");
    let converted = convert::<S>(&req, &ctx, &ShardedCounterStore::new(1 << 20));
    // Synth makes "about" ITEMS items (metrics: a multiple of the 5 types).
    let items = converted.summary.accepted();
    assert_eq!(
        converted.summary.rejected(),
        0,
        "{name}: every item is valid"
    );
    assert!(items.abs_diff(ITEMS as u64) < 8, "{name}: {items} items");
    let file = file_batches(&sig, &ctx);
    let file_rows: usize = file.iter().map(|b| b.batch.num_rows()).sum();
    let parquet_bytes: usize = file
        .iter()
        .map(|b| {
            encode(b.table, b.batch.clone(), FileLayout::default())
                .expect("encodes")
                .len()
        })
        .sum();
    let otlp_zstd: usize = sig.more.iter().map(|r| zstd_len(&r.encode_to_vec())).sum();
    let otlp_raw: usize = sig.more.iter().map(|r| r.encoded_len()).sum();
    eprintln!(
        "{name}: {} B/item OTLP protobuf, {:.1} B/item OTLP protobuf+zstd(3) per request, \
         {:.1} B/item Parquet ({} rows/file) = {:.2}x OTLP+zstd",
        otlp_raw / file_rows,
        otlp_zstd as f64 / file_rows as f64,
        parquet_bytes as f64 / file_rows as f64,
        file_rows,
        parquet_bytes as f64 / otlp_zstd as f64,
    );

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(items));
    g.bench_function("decode_only", |b| {
        b.iter(|| S::Request::decode(black_box(&sig.proto[..])).expect("decodes"))
    });
    // A fresh counter store per iteration: the same metrics request sent
    // again would otherwise be judged against the previous iteration's state.
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            let counters = ShardedCounterStore::new(1 << 16);
            let req = S::Request::decode(black_box(&sig.proto[..])).expect("decodes");
            convert::<S>(&req, &ctx, &counters)
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| S::decode_json(black_box(&sig.json)).expect("decodes"))
    });
    g.bench_function("json_decode_convert", |b| {
        b.iter(|| {
            let counters = ShardedCounterStore::new(1 << 16);
            let req = S::decode_json(black_box(&sig.json)).expect("decodes");
            convert::<S>(&req, &ctx, &counters)
        })
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    {
        let path = write_path(&rt);
        g.bench_function("wal_append_fsync", |b| {
            b.iter(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                path.wal
                    .append(
                        &tenant,
                        &converted.batches,
                        None,
                        Box::new(move |r| {
                            let _ = tx.send(r.is_ok());
                        }),
                    )
                    .expect("queued");
                assert!(rx.recv().expect("callback runs"), "durable");
                // Keep the log from filling up.
                path.wal.release_before(u64::MAX);
            })
        });
    }
    {
        // Each iteration sends the next of a cycle of distinct requests (so
        // metric counters never go backwards); due flushes run inline.
        let path = write_path(&rt);
        let bodies: Vec<Vec<u8>> = sig.more.iter().map(|r| r.encode_to_vec()).collect();
        let mut k = 0usize;
        g.bench_function("ingest_end_to_end", |b| {
            b.iter(|| {
                let body = &bodies[k % bodies.len()];
                k += 1;
                rt.block_on(async {
                    let req = S::Request::decode(&body[..]).expect("decodes");
                    path.receiver
                        .export::<S>(&ctx, None, req, None)
                        .await
                        .expect("accepted");
                    path.pipeline.flush_due(false).await.expect("flushes");
                })
            })
        });
        // Eight clients at once: their WAL records share fsyncs (group commit).
        g.throughput(Throughput::Elements(8 * items));
        g.bench_function("ingest_end_to_end_8_clients", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let sends = (0..8).map(|_| {
                        let body = &bodies[k % bodies.len()];
                        k += 1;
                        let (receiver, ctx) = (&path.receiver, &ctx);
                        async move {
                            let req = S::Request::decode(&body[..]).expect("decodes");
                            receiver
                                .export::<S>(ctx, None, req, None)
                                .await
                                .expect("accepted");
                        }
                    });
                    futures::future::join_all(sends).await;
                    path.pipeline.flush_due(false).await.expect("flushes");
                })
            })
        });
        let _ = rt.block_on(path.pipeline.flush_all());
    }
    g.throughput(Throughput::Elements(file_rows as u64));
    g.sample_size(10);
    // The flush's sort alone: the sort indices once, then the rows
    // reordered by arrow's `take` and by ours.
    let sorted: Vec<_> = file
        .iter()
        .filter_map(|t| {
            let idx = sort_indices(t.table, &t.batch).expect("sorts")?;
            Some((&t.batch, idx))
        })
        .collect();
    g.bench_function("sort_take_arrow", |b| {
        b.iter(|| {
            for (batch, idx) in &sorted {
                black_box(take_record_batch(batch, idx).expect("takes"));
            }
        })
    });
    g.bench_function("sort_take_gather", |b| {
        b.iter(|| {
            for (batch, idx) in &sorted {
                black_box(take_rows(batch, idx).expect("takes"));
            }
        })
    });
    g.bench_function("parquet_encode", |b| {
        b.iter(|| {
            for t in &file {
                black_box(
                    encode(t.table, t.batch.clone(), FileLayout::default()).expect("encodes"),
                );
            }
        })
    });
    g.finish();
}

/// Flush + commit latency of the durable local store against a plain one.
fn bench_flush_commit(c: &mut Criterion) {
    use object_store::local::LocalFileSystem;
    use telemetryflow::application::ports::FileStore;
    use telemetryflow::infrastructure::storage::{ObjectFileStore, StorageLocation};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sig = traces();
    let ctx = TenantContext::default();
    let large = file_batches(&sig, &ctx)
        .into_iter()
        .next()
        .expect("a traces batch")
        .batch;
    let small = large.slice(0, ITEMS);
    let hour = T0 - T0 % 3_600_000_000_000;
    let mut g = c.benchmark_group("flush_commit");
    g.sample_size(20);
    for (size, batch) in [("small", &small), ("large", &large)] {
        for synced in [true, false] {
            let dir = tempfile::tempdir().expect("temp dir");
            let store: Arc<dyn object_store::ObjectStore> = if synced {
                StorageLocation::Local(dir.path().to_path_buf())
                    .build()
                    .expect("store")
            } else {
                Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("store"))
            };
            let files = ObjectFileStore::new(store, "bench");
            let mut seq = 0u64;
            g.throughput(Throughput::Elements(batch.num_rows() as u64));
            let name = format!("{size}_{}", if synced { "synced" } else { "unsynced" });
            g.bench_function(name, |b| {
                b.iter(|| {
                    seq += 1;
                    // A fresh tenant every 16 commits keeps the manifest
                    // small (its growth is not what this measures) while
                    // most commits go to directories that already exist.
                    let tenant = TenantId::parse(&format!("t{}", seq / 16)).expect("tenant id");
                    rt.block_on(async {
                        let meta = files
                            .write_file(
                                &tenant,
                                telemetryflow::domain::Table::TRACES,
                                hour,
                                seq,
                                batch.clone(),
                            )
                            .await
                            .expect("writes");
                        files
                            .commit(
                                &tenant,
                                telemetryflow::domain::Table::TRACES,
                                vec![meta],
                                Vec::new(),
                            )
                            .await
                            .expect("commits")
                    })
                })
            });
        }
    }
    g.finish();
}

fn bench_traces(c: &mut Criterion) {
    bench_signal(c, traces());
}

fn bench_metrics(c: &mut Criterion) {
    bench_signal(c, metrics());
}

fn bench_logs(c: &mut Criterion) {
    bench_signal(c, logs());
}

criterion_group!(
    benches,
    bench_traces,
    bench_metrics,
    bench_logs,
    bench_flush_commit
);
criterion_main!(benches);
