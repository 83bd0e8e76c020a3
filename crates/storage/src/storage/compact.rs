//! The merge step of compaction: the committed files of one partition, each
//! sorted by the table's sort key, merged into new files sorted the same way
//! and cut at about a target size, with the flush's Parquet properties.
//!
//! Streamed: each input is read a batch at a time (Parquet row groups through
//! range requests), and outputs are written through multipart uploads, so
//! memory holds one decoded batch per input, the rows of one output chunk and
//! the writer's open row group — never a partition. The merge is a k-way merge
//! over the inputs' sort keys in Arrow's row format (byte-comparable), with a
//! heap of the inputs' current keys; output rows are gathered with
//! `interleave` a chunk at a time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, SortingColumn};
use parquet::file::properties::WriterProperties;

use super::file_index::{ServiceNames, put_sidecar, trace_fingerprints};
use super::parquet::{FileLayout, writer_properties};
use super::schema::evolution::{conform, union};
use super::schema::sort_columns;
use super::schema::trace_filter::filter_of;
use tf_application::ports::{FileMeta, StoreError};
use tf_domain::Table;

/// Rows per output chunk (one `interleave` per chunk).
const CHUNK_ROWS: usize = 8192;
/// Rows an input's cursor decodes at a time: a merge holds one such batch
/// per input, so its memory is about `max_inputs` times this.
const INPUT_BATCH_ROWS: usize = 2048;

/// Range reads of one stored file (its size is known from the manifest, so
/// the footer is one request).
struct FileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for FileReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn reader(store: &Arc<dyn ObjectStore>, file: &FileMeta) -> FileReader {
    FileReader {
        store: Arc::clone(store),
        path: Path::from(file.path.as_str()),
        size: file.size,
    }
}

/// One written output file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Output {
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) rows: u64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) services: Option<Arc<[String]>>,
}

/// An input file: its batches in order, the current one and its sort keys.
struct Cursor {
    stream: ParquetRecordBatchStream<FileReader>,
    /// The merge's schema, which every batch is read under.
    schema: SchemaRef,
    batch: RecordBatch,
    keys: Rows,
    row: usize,
    /// Index of `batch` in the current chunk's batch list, once a row of it
    /// was taken into the chunk.
    slot: Option<usize>,
    /// The file declares the table's current sort order (files written
    /// under an earlier order are merged all the same, but the output then
    /// declares none).
    sorted: bool,
}

/// Whether every row group of a file declares `sorting`.
fn declares(meta: &ParquetMetaData, sorting: &[SortingColumn]) -> bool {
    meta.row_groups().iter().all(|rg| {
        rg.sorting_columns()
            .is_some_and(|s| s.as_slice() == sorting)
    })
}

fn err(context: impl Into<String>) -> impl FnOnce(parquet::errors::ParquetError) -> StoreError {
    let context = context.into();
    move |e| StoreError::new(context, e)
}

fn arrow_err(context: &str) -> impl FnOnce(arrow::error::ArrowError) -> StoreError + '_ {
    move |e| StoreError::new(context.to_owned(), e)
}

/// The sort-key columns of `batch` in the row format.
fn keys(conv: &RowConverter, table: Table, batch: &RecordBatch) -> Result<Rows, StoreError> {
    let cols: Vec<_> = sort_columns(table)
        .iter()
        .filter_map(|c| batch.column_by_name(c).cloned())
        .collect();
    conv.convert_columns(&cols)
        .map_err(arrow_err("encoding sort keys"))
}

impl Cursor {
    /// Reads `file`'s footer: its schema, and whether it declares the
    /// table's current sort order (by the columns of its own schema).
    async fn open(
        store: &Arc<dyn ObjectStore>,
        file: &FileMeta,
        table: Table,
        layout: FileLayout,
    ) -> Result<(ParquetRecordBatchStreamBuilder<FileReader>, bool), StoreError> {
        let builder = ParquetRecordBatchStreamBuilder::new(reader(store, file))
            .await
            .map_err(err(format!("opening {}", file.path)))?;
        let props = writer_properties(table, builder.schema(), layout);
        let sorting = props.sorting_columns().cloned().unwrap_or_default();
        let sorted = declares(builder.metadata(), &sorting);
        Ok((builder, sorted))
    }

    /// Streams `file`'s rows under `schema` (the merge's: a file written
    /// before the table gained a column reads with it null).
    fn start(
        builder: ParquetRecordBatchStreamBuilder<FileReader>,
        file: &FileMeta,
        schema: &SchemaRef,
        conv: &RowConverter,
        sorted: bool,
    ) -> Result<Self, StoreError> {
        let stream = builder
            .with_batch_size(INPUT_BATCH_ROWS)
            .build()
            .map_err(err(format!("reading {}", file.path)))?;
        Ok(Self {
            stream,
            schema: Arc::clone(schema),
            batch: RecordBatch::new_empty(Arc::clone(schema)),
            keys: conv.empty_rows(0, 0),
            row: 0,
            slot: None,
            sorted,
        })
    }

    /// Loads the next non-empty batch; `false` at the end of the file.
    async fn advance_batch(
        &mut self,
        conv: &RowConverter,
        table: Table,
        path: &str,
    ) -> Result<bool, StoreError> {
        while let Some(b) = self.stream.next().await {
            let b = b.map_err(err(format!("reading {path}")))?;
            let b = conform(&b, &self.schema).map_err(arrow_err("reading an input"))?;
            if b.num_rows() > 0 {
                self.keys = keys(conv, table, &b)?;
                self.batch = b;
                self.row = 0;
                self.slot = None;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Writes outputs of about `target_bytes` each.
struct Outputs {
    store: Arc<dyn ObjectStore>,
    schema: SchemaRef,
    /// The Parquet properties of every output.
    props: WriterProperties,
    target_bytes: u64,
    dir: String,
    open: Option<(String, AsyncArrowWriter<BufWriter>, u64, i64, i64)>,
    /// Trace ids of the open output (traces only), for its sidecar filter.
    trace_ids: Option<HashSet<(u64, u64)>>,
    /// Service names of the open output.
    services: ServiceNames,
    done: Vec<Output>,
}

impl Outputs {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if self.open.is_none() {
            let path = format!("{}/{}.parquet", self.dir, uuid::Uuid::now_v7());
            let w = BufWriter::new(Arc::clone(&self.store), Path::from(path.as_str()));
            let writer =
                AsyncArrowWriter::try_new(w, Arc::clone(&self.schema), Some(self.props.clone()))
                    .map_err(err(format!("writing {path}")))?;
            self.open = Some((path, writer, 0, i64::MAX, i64::MIN));
        }
        let (min, max) = tf_application::batches::time_range(batch);
        if let Some(ids) = &mut self.trace_ids {
            trace_fingerprints(batch, ids);
        }
        self.services.add(batch);
        if let Some((path, writer, rows, lo, hi)) = &mut self.open {
            writer
                .write(batch)
                .await
                .map_err(err(format!("writing {path}")))?;
            *rows += batch.num_rows() as u64;
            *lo = (*lo).min(min);
            *hi = (*hi).max(max);
            let size = writer.bytes_written() + writer.in_progress_size();
            if size as u64 >= self.target_bytes {
                self.close().await?;
            }
        }
        Ok(())
    }

    /// Finishes the open output, if any, and records it as done.
    async fn close(&mut self) -> Result<(), StoreError> {
        if let Some((path, writer, rows, min_ts, max_ts)) = self.open.take() {
            writer
                .close()
                .await
                .map_err(err(format!("finishing {path}")))?;
            if let Some(ids) = &mut self.trace_ids {
                put_sidecar(&self.store, &path, filter_of(ids).to_bytes()).await?;
                ids.clear();
            }
            let size = self
                .store
                .head(&Path::from(path.as_str()))
                .await
                .map_err(|e| StoreError::new(format!("checking {path}"), e))?
                .size;
            self.done.push(Output {
                path,
                size,
                rows,
                min_ts,
                max_ts,
                services: self.services.take(),
            });
        }
        Ok(())
    }
}

/// A merge that fails or is dropped midway (shutdown cancels a pass) leaves
/// its open output unfinished. Once larger than the writer's buffer, that
/// output is a multipart upload in progress, which no listing shows and no
/// sweep of uncommitted files deletes, and which S3 keeps (and bills) until
/// it is aborted. So it is aborted here, in the background, as `drop`
/// cannot await. Outputs already finished are ordinary uncommitted files,
/// which the orphan sweep deletes.
impl Drop for Outputs {
    fn drop(&mut self) {
        let Some((path, writer, ..)) = self.open.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(%path, "an unfinished merge output's upload is left to the store");
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = writer.into_inner().abort().await {
                tracing::warn!(%path, error = %e, "could not abort the upload of an unfinished merge output");
            }
        });
    }
}

/// How fast a merge may go: `cpu_share` of a core, a tenth of it while
/// `ingest_busy` says ingest is under pressure.
#[derive(Clone, Copy)]
pub(crate) struct Pace<'a> {
    pub(crate) cpu_share: f64,
    pub(crate) ingest_busy: &'a (dyn Fn() -> bool + Send + Sync),
}

/// How long a merge rests after `busy` of work to stay at `cpu_share` of a
/// core — at a tenth of it while ingest is under pressure.
fn pause_after(
    busy: std::time::Duration,
    cpu_share: f64,
    ingest_busy: bool,
) -> std::time::Duration {
    let share = if ingest_busy {
        cpu_share / 10.0
    } else {
        cpu_share
    };
    busy.mul_f64((1.0 - share) / share)
}

/// Merges `inputs` (each sorted by the table's sort key; files written
/// before the table gained a column merge with newer ones, the column null
/// in their rows) into new files under `dir`, each of about `target_bytes`.
/// Nothing is committed: the caller commits the outputs in place of the
/// inputs, or leaves them to the garbage collector.
pub(crate) async fn merge(
    store: &Arc<dyn ObjectStore>,
    table: Table,
    inputs: &[FileMeta],
    dir: &str,
    target_bytes: u64,
    layout: FileLayout,
    pace: Pace<'_>,
) -> Result<Vec<Output>, StoreError> {
    let pause = |busy: std::time::Duration| pause_after(busy, pace.cpu_share, (pace.ingest_busy)());
    let mut chunk_started = std::time::Instant::now();
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let mut opened = Vec::with_capacity(inputs.len());
    for f in inputs {
        opened.push(Cursor::open(store, f, table, layout).await?);
    }
    // Files written before the table gained a column merge with newer ones
    // under the newest schema.
    let schemas: Vec<SchemaRef> = opened.iter().map(|(b, _)| Arc::clone(b.schema())).collect();
    let schema = union(&schemas).map_err(arrow_err("merging the inputs' schemas"))?;
    let fields: Vec<SortField> = sort_columns(table)
        .iter()
        .filter_map(|c| schema.field_with_name(c).ok())
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let conv = RowConverter::new(fields).map_err(arrow_err("building the sort-key encoder"))?;

    let props = writer_properties(table, &schema, layout);
    let mut cursors = Vec::with_capacity(inputs.len());
    let mut all_sorted = true;
    // (key of the input's current row, input index): the smallest on top.
    let mut heap: BinaryHeap<Reverse<(Vec<u8>, usize)>> = BinaryHeap::new();
    for (f, (builder, sorted)) in inputs.iter().zip(opened) {
        let mut c = Cursor::start(builder, f, &schema, &conv, sorted)?;
        all_sorted &= c.sorted;
        if c.advance_batch(&conv, table, &f.path).await? {
            let i = cursors.len();
            heap.push(Reverse((c.keys.row(0).as_ref().to_vec(), i)));
            cursors.push((c, f.path.as_str()));
        }
    }

    if !all_sorted {
        tracing::info!(
            %table, dir,
            "merging files written under an earlier sort order: the output declares no order"
        );
    }
    let mut out = Outputs {
        store: Arc::clone(store),
        schema: Arc::clone(&schema),
        props: if all_sorted {
            props
        } else {
            props.into_builder().set_sorting_columns(None).build()
        },
        target_bytes,
        dir: dir.to_owned(),
        open: None,
        trace_ids: (table == Table::TRACES).then(HashSet::new),
        services: ServiceNames::default(),
        done: Vec::new(),
    };
    let mut chunk: Vec<RecordBatch> = Vec::new();
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(CHUNK_ROWS);
    while let Some(Reverse((mut key, i))) = heap.pop() {
        let Some((c, path)) = cursors.get_mut(i) else {
            break;
        };
        let slot = match c.slot {
            Some(s) => s,
            None => {
                chunk.push(c.batch.clone());
                c.slot = Some(chunk.len() - 1);
                chunk.len() - 1
            }
        };
        picks.push((slot, c.row));
        c.row += 1;
        let more = c.row < c.batch.num_rows() || c.advance_batch(&conv, table, path).await?;
        if more {
            key.clear();
            key.extend_from_slice(c.keys.row(c.row).as_ref());
            heap.push(Reverse((key, i)));
        }
        if picks.len() == CHUNK_ROWS || heap.is_empty() {
            let refs: Vec<&RecordBatch> = chunk.iter().collect();
            let merged = interleave_record_batch(&refs, &picks)
                .map_err(arrow_err("gathering merged rows"))?;
            out.write(&merged).await?;
            picks.clear();
            chunk.clear();
            for (c, _) in &mut cursors {
                c.slot = None;
            }
            // Other work (ingest) gets its turn: the merge sleeps long
            // enough to stay within its share of a core.
            let rest = pause(chunk_started.elapsed());
            if rest.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(rest).await;
            }
            chunk_started = std::time::Instant::now();
        }
    }
    out.close().await?;
    Ok(std::mem::take(&mut out.done))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow::array::{AsArray, Int32Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit, TimestampNanosecondType};
    use bytes::Bytes;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::storage::ObjectFileStore;
    use tf_application::ports::{CommitOutcome, FileStore};
    use tf_domain::TenantId;

    /// A merge keeps to its share of a core, and to a tenth of it while
    /// ingest is under pressure.
    #[test]
    fn merges_rest_longer_while_ingest_is_under_pressure() {
        let busy = Duration::from_millis(10);
        // A quarter of a core: 30 ms of rest per 10 ms of work.
        assert_eq!(pause_after(busy, 0.25, false), Duration::from_millis(30));
        // Under pressure, 2.5 %: 390 ms of rest.
        assert_eq!(pause_after(busy, 0.25, true), Duration::from_millis(390));
        // Unthrottled: no rest, unless ingest is under pressure.
        assert_eq!(pause_after(busy, 1.0, false), Duration::ZERO);
        assert_eq!(pause_after(busy, 1.0, true), Duration::from_millis(90));
    }

    const HOUR: u64 = 1_795_698_000 * 1_000_000_000;

    /// A logs-like batch with the logs table's sort columns and a body that
    /// names each row.
    fn batch(file: u64, rows: u64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("service_name", DataType::Utf8, false),
            Field::new("severity_number", DataType::Int32, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("body", DataType::Utf8, false),
        ]));
        let mut x = file * 7919 + 1;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let (mut svc, mut sev, mut ts, mut body) = (vec![], vec![], vec![], vec![]);
        for r in 0..rows {
            svc.push(["api", "db", "web"][(next() % 3) as usize].to_owned());
            sev.push((next() % 4) as i32 * 4 + 1);
            ts.push((HOUR + next() % 3_600_000_000_000) as i64);
            body.push(format!("f{file}r{r}"));
        }
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(svc)),
                Arc::new(Int32Array::from(sev)),
                Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(StringArray::from(body)),
            ],
        )
        .unwrap()
    }

    /// A reader of a stored file.
    async fn stored(
        store: &Arc<dyn ObjectStore>,
        path: &str,
    ) -> ParquetRecordBatchReaderBuilder<Bytes> {
        let bytes: Bytes = store
            .get(&Path::from(path))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap()
    }

    /// (service, severity, timestamp, body) of every row of a stored file.
    async fn rows(store: &Arc<dyn ObjectStore>, path: &str) -> Vec<(String, i32, i64, String)> {
        let mut out = Vec::new();
        for b in stored(store, path).await.build().unwrap() {
            let b = b.unwrap();
            let svc = b.column(0).as_string::<i32>();
            let sev = b.column(1).as_primitive::<Int32Type>();
            let ts = b.column(2).as_primitive::<TimestampNanosecondType>();
            let body = b.column(3).as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((
                    svc.value(i).to_owned(),
                    sev.value(i),
                    ts.value(i),
                    body.value(i).to_owned(),
                ));
            }
        }
        out
    }

    async fn listed(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let mut v = crate::storage::manifest::tests::names(store).await;
        v.retain(|p| p.ends_with(".parquet"));
        v
    }

    #[tokio::test]
    async fn merged_files_hold_every_row_once_in_sort_order() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let files = ObjectFileStore::new(Arc::clone(&store), "n1").with_row_group_rows(1000);
        let tenant = TenantId::parse("t").unwrap();
        let mut inputs = Vec::new();
        for (i, n) in [(1, 10_000), (2, 10), (3, 12_000)] {
            let meta = files
                .write_file(&tenant, Table::LOGS, HOUR, i, batch(i, n))
                .await
                .unwrap();
            files
                .commit(&tenant, Table::LOGS, vec![meta.clone()], Vec::new())
                .await
                .unwrap();
            inputs.push(meta);
        }
        let mut want = Vec::new();
        for f in &inputs {
            want.extend(rows(&store, &f.path).await);
        }

        // One output: every row once, in (service, severity, timestamp) order.
        let out = files
            .merge_files(&tenant, Table::LOGS, HOUR, &inputs, u64::MAX)
            .await
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rows, 22_010);
        assert_eq!(out[0].max_seq, 0);
        assert_eq!(out[0].node.as_deref(), Some("n1"));
        let all_services = ["api", "db", "web"].map(String::from);
        assert_eq!(out[0].services.as_deref(), Some(&all_services[..]));
        assert_eq!(inputs[0].services.as_deref(), Some(&all_services[..]));
        let got = rows(&store, &out[0].path).await;
        assert!(
            got.windows(2)
                .all(|w| (&w[0].0, w[0].1, w[0].2) <= (&w[1].0, w[1].1, w[1].2))
        );
        let mut sorted_want = want.clone();
        sorted_want.sort();
        let mut sorted_got = got.clone();
        sorted_got.sort();
        assert_eq!(sorted_got, sorted_want);
        assert_eq!(
            (out[0].min_ts, out[0].max_ts),
            (
                want.iter().map(|r| r.2).min().unwrap(),
                want.iter().map(|r| r.2).max().unwrap()
            )
        );

        // A small target cuts several outputs (at chunk boundaries),
        // together the same rows.
        let small = files
            .merge_files(&tenant, Table::LOGS, HOUR, &inputs, 1)
            .await
            .unwrap();
        assert!(small.len() > 1, "{} outputs", small.len());
        assert_eq!(small.iter().map(|f| f.rows).sum::<u64>(), 22_010);
        let mut all = Vec::new();
        for f in &small {
            let rows = rows(&store, &f.path).await;
            // Each output records exactly the services of its own rows.
            let services: std::collections::BTreeSet<String> =
                rows.iter().map(|r| r.0.clone()).collect();
            let services: Vec<String> = services.into_iter().collect();
            assert_eq!(f.services.as_deref(), Some(services.as_slice()));
            all.extend(rows);
        }
        assert!(small.iter().any(|f| f.services.as_ref().unwrap().len() < 3));
        all.sort();
        assert_eq!(all, sorted_want);

        // Commit the first merge in place of the inputs; the second (same
        // inputs) conflicts and its outputs are orphans.
        let removed: Vec<String> = inputs.iter().map(|f| f.path.clone()).collect();
        assert!(matches!(
            files
                .commit(&tenant, Table::LOGS, out.clone(), removed.clone())
                .await
                .unwrap(),
            CommitOutcome::Committed(_)
        ));
        assert_eq!(
            files
                .commit(&tenant, Table::LOGS, small.clone(), removed.clone())
                .await
                .unwrap(),
            CommitOutcome::Conflict
        );
        // Within the grace period nothing committed or replaced is deleted
        // (orphans are young too).
        let gc = files
            .collect_garbage(Duration::from_secs(3600), true)
            .await
            .unwrap();
        assert_eq!((gc.replaced, gc.orphans, gc.pending), (0, 0, 3));
        assert_eq!(listed(&store).await.len(), 3 + 1 + small.len());
        // After it: the replaced inputs and the orphans go; the output stays.
        let gc = files.collect_garbage(Duration::ZERO, true).await.unwrap();
        assert_eq!((gc.replaced, gc.orphans, gc.pending), (3, small.len(), 0));
        assert_eq!(listed(&store).await, vec![out[0].path.clone()]);

        // A fresh reader: the output only, the watermark of node n1 kept.
        let fresh = ObjectFileStore::new(Arc::clone(&store), "n1");
        let catalog = fresh.load_catalog().await.unwrap();
        let paths: Vec<&str> = catalog[0].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec![out[0].path.as_str()]);
        assert_eq!(catalog[0].committed_seqs, vec![(HOUR, 3)]);
        // Another node's reader sees the same files, but none of its own
        // sequence numbers committed.
        let other = ObjectFileStore::new(store, "n2");
        let catalog = other.load_catalog().await.unwrap();
        assert_eq!(catalog[0].files.len(), 1);
        assert!(catalog[0].committed_seqs.is_empty());
    }

    /// The order a stored file declares in its Parquet metadata.
    async fn declared(store: &Arc<dyn ObjectStore>, path: &str) -> Option<Vec<SortingColumn>> {
        stored(store, path)
            .await
            .metadata()
            .row_group(0)
            .sorting_columns()
            .cloned()
    }

    /// A file written before the table's current sort order is merged with
    /// every row kept, but the output does not claim an order it lacks.
    #[tokio::test]
    async fn an_input_of_an_earlier_sort_order_leaves_the_output_unordered() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let files = ObjectFileStore::new(Arc::clone(&store), "n1");
        let tenant = TenantId::parse("t").unwrap();
        let current = files
            .write_file(&tenant, Table::LOGS, HOUR, 1, batch(1, 500))
            .await
            .unwrap();
        let order = declared(&store, &current.path).await.unwrap();
        assert_eq!(order.len(), 3, "{order:?}");

        // The same table's rows in another order, as an older version wrote.
        let older = batch(2, 300);
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, older.schema(), None).unwrap();
        w.write(&older).unwrap();
        w.close().unwrap();
        let path = current.path.replace(".parquet", "-older.parquet");
        let size = bytes.len() as u64;
        store
            .put(&Path::from(path.as_str()), Bytes::from(bytes).into())
            .await
            .unwrap();
        let (min_ts, max_ts) = tf_application::batches::time_range(&older);
        let legacy = FileMeta {
            path,
            size,
            rows: 300,
            hour_start: HOUR,
            max_seq: 2,
            min_ts,
            max_ts,
            node: Some("n1".into()),
            services: None,
        };

        let both = [current.clone(), legacy];
        let out = files
            .merge_files(&tenant, Table::LOGS, HOUR, &both, u64::MAX)
            .await
            .unwrap();
        assert_eq!(out.iter().map(|f| f.rows).sum::<u64>(), 800);
        let mut want = rows(&store, &both[0].path).await;
        want.extend(rows(&store, &both[1].path).await);
        want.sort();
        let mut got = rows(&store, &out[0].path).await;
        got.sort();
        assert_eq!(got, want);
        assert_eq!(declared(&store, &out[0].path).await, None);

        // Inputs that all declare it: so does the output.
        let again = files
            .merge_files(
                &tenant,
                Table::LOGS,
                HOUR,
                std::slice::from_ref(&current),
                u64::MAX,
            )
            .await
            .unwrap();
        assert_eq!(declared(&store, &again[0].path).await, Some(order));
    }
}
