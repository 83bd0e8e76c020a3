//! The write-ahead log: every accepted batch is appended here and fsync'd
//! before the client is acknowledged.
//!
//! One dedicated writer thread owns the files. Requests arrive over a bounded
//! crossbeam channel; the writer drains whatever is queued, writes it with one
//! `write`, and makes it durable with one `fdatasync` — *group commit*: many
//! concurrent requests share an fsync, so durability costs latency, not
//! throughput. Callbacks then run on the writer thread in sequence order
//! (the pipeline inserts into the buffers there, then acks).
//!
//! Files: `<dir>/<first seq, 20 digits>.wal`, rotated at `segment_bytes`. A
//! segment is deleted once every record in it is in committed Parquet files
//! (`release_before`). Record format: see [`record`].

pub mod record;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::storage::durable::sync_dir;
use record::{RecordError, Tail, decode_payload, encode_payload, read_records, write_record};
use tf_application::TableBatch;
use tf_application::ports::{
    DurableCallback, Origin, WalError, WalRecord, WalStats, WriteAheadLog,
};
use tf_domain::TenantId;

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub fsync: bool,
    /// Refuse appends while the log holds more than this many bytes.
    pub max_bytes: u64,
    pub queue_capacity: usize,
}

enum Msg {
    Append {
        payload: Vec<u8>,
        crc: crc32fast::Hasher,
        done: DurableCallback,
    },
    Release(u64),
    Stop,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    last_seq: Option<u64>,
    bytes: u64,
}

/// Counters of the log, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    bytes_written: AtomicU64,
    records: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    /// fsync latency histogram: ≤ 0.1, 0.5, 1, 2, 5, 10, 25, 50, 100 ms, +Inf.
    fsync_buckets: [AtomicU64; 10],
    bytes_on_disk: AtomicU64,
    queued: AtomicU64,
    segments_deleted: AtomicU64,
}

pub const FSYNC_BUCKETS_MS: [f64; 9] = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0];

impl Counters {
    fn observe_fsync(&self, d: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        let ms = d.as_secs_f64() * 1e3;
        let i = FSYNC_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(FSYNC_BUCKETS_MS.len());
        self.fsync_buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// The write-ahead log.
pub struct Wal {
    dir: PathBuf,
    tx: Sender<Msg>,
    counters: Arc<Counters>,
    max_bytes: u64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("WAL directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record this build cannot read (see `RecordError::Incompatible`):
    /// start the build that wrote it, or one that declares what it holds.
    #[error("WAL record {seq} in {path}: {source}")]
    Incompatible {
        path: PathBuf,
        seq: u64,
        #[source]
        source: record::RecordError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// Reads every valid record of the log in `dir`, in order, without
/// changing anything (for `telemetryflow sql --data-dir`). A missing
/// directory is an empty log.
pub fn read_only_replay(
    dir: &Path,
    on_record: impl FnMut(WalRecord),
) -> Result<ReplayReport, OpenError> {
    if !dir.exists() {
        return Ok(ReplayReport::default());
    }
    replay(dir, on_record).map(|(_, report, _)| report)
}

/// The segments in `dir` with the first sequence number each may hold
/// (from the name), in order.
fn segment_names(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_str()?.to_owned();
            (p.extension()? == "wal").then_some(())?;
            Some((stem.parse().ok()?, p))
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads the records `from..=through` back (see [`WriteAheadLog::read`]).
/// Segments are append-only and deleted whole, so this needs no lock: a
/// record past the last complete one is not read, and a segment deleted
/// meanwhile held only released records. Records before `from` are skipped
/// by their headers, unread: a forwarder reading a batch back costs the
/// batch, not the segment.
fn read_range(
    dir: &Path,
    from: u64,
    through: u64,
    max_bytes: usize,
) -> std::io::Result<Vec<WalRecord>> {
    let names = segment_names(dir)?;
    // The last segment starting at or before `from` holds it.
    let start = names
        .iter()
        .rposition(|(first, _)| *first <= from)
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for (first, path) in &names[start..] {
        if *first > through || bytes > max_bytes {
            break;
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let done = read_segment_range(file, from, through, |seq, payload| {
            bytes += payload.len();
            match decode_payload(seq, payload) {
                Ok(record) => out.push(record),
                Err(e @ RecordError::Incompatible(_)) => return Err(std::io::Error::other(e)),
                // As replay does: the record cannot be used, the rest can.
                Err(e) => {
                    tracing::error!(seq, error = %e, "undecodable WAL record skipped")
                }
            }
            Ok(bytes <= max_bytes)
        })?;
        if done {
            break;
        }
    }
    Ok(out)
}

/// Walks one segment's records from `from` through `through`, handing each
/// complete, intact one to `take` until it answers `false`; stops at a torn
/// or corrupt record (as replay does). Returns whether the range is done.
fn read_segment_range(
    file: File,
    from: u64,
    through: u64,
    mut take: impl FnMut(u64, &[u8]) -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    use record::{HEADER_LEN, Header, MAX_RECORD_LEN};
    use std::io::{BufReader, Read};
    let mut r = BufReader::with_capacity(64 << 10, file);
    let mut head = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let Some(Header { len, crc, seq }) = Header::parse(&head) else {
            return Ok(false);
        };
        if len > MAX_RECORD_LEN {
            return Ok(false);
        }
        if seq > through {
            return Ok(true);
        }
        if seq < from {
            // Past the payload unread; a torn one ends at the next header.
            r.seek_relative(len as i64)?;
            continue;
        }
        payload.resize(len, 0);
        match r.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        if !Header::checks(crc, seq, &payload) {
            return Ok(false);
        }
        if !take(seq, &payload)? {
            return Ok(true);
        }
    }
}

fn replay(
    dir: &Path,
    mut on_record: impl FnMut(WalRecord),
) -> Result<(VecDeque<Segment>, ReplayReport, u64), OpenError> {
    let names = segment_names(dir).map_err(io(dir))?;
    let mut report = ReplayReport::default();
    let mut segments = VecDeque::new();
    let mut on_disk = 0u64;
    for (_, path) in names {
        let data = fs::read(&path).map_err(io(&path))?;
        let (records, tail) = read_records(&data);
        match tail {
            Tail::Clean => {}
            Tail::Torn { offset } => {
                report.torn_tails += 1;
                tracing::warn!(segment = %path.display(), offset, "WAL segment ends in a torn record; ignoring the tail");
            }
            Tail::Corrupt { offset } => {
                report.corrupt += 1;
                tracing::error!(segment = %path.display(), offset, "corrupt WAL record; ignoring the rest of the segment");
            }
        }
        let mut last = None;
        for r in records {
            crate::failpoint::crash_point("during_replay");
            match decode_payload(r.seq, r.payload) {
                Ok(record) => {
                    on_record(record);
                    report.records += 1;
                }
                Err(source @ RecordError::Incompatible(_)) => {
                    return Err(OpenError::Incompatible {
                        path: path.clone(),
                        seq: r.seq,
                        source,
                    });
                }
                Err(e) => {
                    tracing::error!(seq = r.seq, error = %e, "undecodable WAL record skipped")
                }
            }
            last = Some(r.seq);
            report.last_seq = report.last_seq.max(r.seq);
        }
        report.segments += 1;
        on_disk += data.len() as u64;
        segments.push_back(Segment {
            path,
            last_seq: last,
            bytes: data.len() as u64,
        });
    }
    Ok((segments, report, on_disk))
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: u64,
    pub torn_tails: usize,
    pub corrupt: usize,
    pub last_seq: u64,
}

impl Wal {
    /// Opens the log: replays every valid record, in order, through
    /// `on_record`, then starts the writer on a fresh segment.
    ///
    /// New records are numbered from `max(last replayed + 1, min_next_seq,
    /// the newest segment's name)`: sequence numbers never go back, even
    /// when every record was released (pass one more than the highest
    /// sequence number in committed files or delivered by a forwarder).
    pub fn open(
        config: WalConfig,
        min_next_seq: u64,
        on_record: impl FnMut(WalRecord),
    ) -> Result<(Self, ReplayReport), OpenError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let (segments, report, on_disk) = replay(&dir, on_record)?;
        let counters = Arc::new(Counters::default());
        counters.bytes_on_disk.store(on_disk, Ordering::Relaxed);
        // A segment is named after the next sequence number when it was
        // opened: numbering continues above it even when it (or every
        // segment) holds no record, so numbers are never given twice.
        let named = segments
            .iter()
            .filter_map(|s| s.path.file_stem()?.to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let next_seq = (report.last_seq + 1).max(min_next_seq).max(named).max(1);
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let writer = Writer::start(config.clone(), segments, next_seq, Arc::clone(&counters))?;
        let thread = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io(&dir))?;
        Ok((
            Self {
                dir,
                tx,
                counters,
                max_bytes: config.max_bytes,
                thread: Mutex::new(Some(thread)),
            },
            report,
        ))
    }

    /// Stops the writer after everything queued is durable.
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

impl WriteAheadLog for Wal {
    fn append(
        &self,
        tenant: &TenantId,
        batches: &[TableBatch],
        origin: Option<&Origin>,
        done: DurableCallback,
    ) -> Result<(), WalError> {
        let on_disk = self.counters.bytes_on_disk.load(Ordering::Relaxed);
        if on_disk > self.max_bytes {
            return Err(WalError::Full {
                bytes: on_disk,
                max: self.max_bytes,
            });
        }
        let payload =
            encode_payload(tenant, batches, origin).map_err(|e| WalError::Io(Arc::new(e)))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&payload);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Append { payload, crc, done }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                Err(WalError::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                Err(WalError::Closed)
            }
        }
    }

    fn read(&self, from: u64, through: u64, max_bytes: usize) -> Result<Vec<WalRecord>, WalError> {
        read_range(&self.dir, from, through, max_bytes).map_err(|e| WalError::Io(Arc::new(e)))
    }

    fn release_before(&self, watermark: u64) {
        let _ = self.tx.send(Msg::Release(watermark));
    }

    fn stats(&self) -> WalStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WalStats {
            bytes_written: l(&c.bytes_written),
            records: l(&c.records),
            fsyncs: l(&c.fsyncs),
            fsync_seconds_sum: l(&c.fsync_nanos) as f64 / 1e9,
            fsync_buckets: FSYNC_BUCKETS_MS
                .iter()
                .map(|ms| ms / 1e3)
                .zip(c.fsync_buckets.iter().map(l))
                .collect(),
            fsync_bucket_inf: l(&c.fsync_buckets[FSYNC_BUCKETS_MS.len()]),
            bytes_on_disk: l(&c.bytes_on_disk),
            queued: l(&c.queued),
            segments_deleted: l(&c.segments_deleted),
        }
    }
}

struct Writer {
    config: WalConfig,
    segments: VecDeque<Segment>,
    file: File,
    next_seq: u64,
    counters: Arc<Counters>,
    buf: Vec<u8>,
}

impl Writer {
    fn start(
        config: WalConfig,
        mut segments: VecDeque<Segment>,
        next_seq: u64,
        counters: Arc<Counters>,
    ) -> Result<Self, OpenError> {
        let path = segment_path(&config.dir, next_seq);
        // A file of that name can only hold a torn first record (any valid
        // record would have raised `next_seq`): start it afresh.
        if let Some(pos) = segments.iter().position(|s| s.path == path) {
            if let Some(old) = segments.remove(pos) {
                counters
                    .bytes_on_disk
                    .fetch_sub(old.bytes, Ordering::Relaxed);
            }
            fs::remove_file(&path).map_err(io(&path))?;
        }
        let file = open_segment(&path, &config.dir).map_err(io(&path))?;
        segments.push_back(Segment {
            path,
            last_seq: None,
            bytes: 0,
        });
        Ok(Self {
            config,
            segments,
            file,
            next_seq,
            counters,
            buf: Vec::new(),
        })
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let max_group_bytes = 16 << 20;
        while let Ok(first) = rx.recv() {
            let mut appends = Vec::new();
            let mut stop = false;
            let mut release = None;
            let mut bytes = 0usize;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append { payload, crc, done } => {
                        bytes += payload.len();
                        appends.push((payload, crc, done));
                    }
                    Msg::Release(w) => release = Some(release.map_or(w, |r: u64| r.max(w))),
                    Msg::Stop => stop = true,
                }
                if bytes < max_group_bytes && !stop {
                    next = rx.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                self.write_group(appends);
            }
            if let Some(w) = release {
                self.release(w);
            }
            if stop {
                break;
            }
        }
        let _ = self.file.sync_data();
    }

    fn write_group(&mut self, appends: Vec<(Vec<u8>, crc32fast::Hasher, DurableCallback)>) {
        self.buf.clear();
        let first_seq = self.next_seq;
        for (payload, crc, _) in &appends {
            write_record(&mut self.buf, self.next_seq, payload, crc);
            self.next_seq += 1;
        }
        let n = appends.len() as u64;
        self.counters.queued.fetch_sub(n, Ordering::Relaxed);
        let result = self.file.write_all(&self.buf).and_then(|()| {
            crate::failpoint::crash_point("after_wal_write");
            if self.config.fsync {
                let t = Instant::now();
                self.file.sync_data()?;
                self.counters.observe_fsync(t.elapsed());
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                let len = self.buf.len() as u64;
                self.counters
                    .bytes_written
                    .fetch_add(len, Ordering::Relaxed);
                self.counters
                    .bytes_on_disk
                    .fetch_add(len, Ordering::Relaxed);
                self.counters.records.fetch_add(n, Ordering::Relaxed);
                if let Some(seg) = self.segments.back_mut() {
                    seg.bytes += len;
                    seg.last_seq = Some(self.next_seq - 1);
                }
                for (i, (_, _, done)) in appends.into_iter().enumerate() {
                    done(Ok(first_seq + i as u64));
                }
                if self
                    .segments
                    .back()
                    .is_some_and(|s| s.bytes >= self.config.segment_bytes)
                {
                    self.rotate();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL write failed; the requests are refused");
                let cause: Arc<dyn std::error::Error + Send + Sync> = Arc::new(e);
                for (_, _, done) in appends {
                    done(Err(WalError::Io(Arc::clone(&cause))));
                }
                // Whatever part reached the file is garbage: continue in a new segment.
                self.rotate();
            }
        }
    }

    fn rotate(&mut self) {
        let path = segment_path(&self.config.dir, self.next_seq);
        match open_segment(&path, &self.config.dir) {
            Ok(f) => {
                let _ = self.file.sync_data();
                self.file = f;
                self.segments.push_back(Segment {
                    path,
                    last_seq: None,
                    bytes: 0,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "could not rotate the WAL")
            }
        }
    }

    /// Deletes closed segments whose records all have `seq < watermark`.
    fn release(&mut self, watermark: u64) {
        while self.segments.len() > 1 {
            let Some(front) = self.segments.front() else {
                break;
            };
            if front.last_seq.is_some_and(|s| s >= watermark) {
                break;
            }
            let Some(seg) = self.segments.pop_front() else {
                break;
            };
            match fs::remove_file(&seg.path) {
                Ok(()) => {
                    self.counters
                        .bytes_on_disk
                        .fetch_sub(seg.bytes, Ordering::Relaxed);
                    self.counters
                        .segments_deleted
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %seg.path.display(), "could not delete WAL segment");
                    self.segments.push_front(seg);
                    break;
                }
            }
        }
    }
}

fn open_segment(path: &Path, dir: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    sync_dir(dir)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;
    use tf_domain::telemetry::Signal;
    use tf_domain::{NodeId, SourceBatch, WorkspaceId};

    fn rows(n: i64) -> Vec<TableBatch> {
        vec![TableBatch {
            table: record::testing::table(),
            batch: record::testing::rows(n, 50),
        }]
    }

    fn append(wal: &Wal, n: i64, origin: Option<&Origin>) -> u64 {
        let (tx, rx) = std::sync::mpsc::channel();
        let tenant = TenantId::parse("acme").expect("valid id");
        wal.append(
            &tenant,
            &rows(n),
            origin,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .expect("queued");
        rx.recv().expect("callback").expect("durable")
    }

    /// Sequence numbers never go back: not after every record was released
    /// and the log reopened with nothing to replay.
    #[test]
    fn numbering_continues_after_everything_was_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = WalConfig {
            dir: dir.path().to_owned(),
            segment_bytes: 1,
            fsync: false,
            max_bytes: u64::MAX,
            queue_capacity: 16,
        };
        let (wal, _) = Wal::open(config.clone(), 1, |_| {}).expect("opened");
        for n in 1..=3 {
            assert_eq!(append(&wal, n, None), n as u64);
        }
        wal.release_before(u64::MAX);
        wal.close();
        drop(wal);
        let mut replayed = 0;
        let (wal, _) = Wal::open(config, 1, |_| replayed += 1).expect("reopened");
        assert_eq!(replayed, 0, "every record was released");
        assert_eq!(append(&wal, 4, None), 4);
    }

    /// Records read back by range, across segments, with their origin;
    /// released segments are gone from what can be read.
    #[test]
    fn records_are_read_back_by_range_across_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = WalConfig {
            dir: dir.path().to_owned(),
            segment_bytes: 1500,
            fsync: false,
            max_bytes: u64::MAX,
            queue_capacity: 16,
        };
        let (wal, _) = Wal::open(config.clone(), 1, |_| {}).expect("opened");
        let origin = Origin {
            batch: SourceBatch::new(NodeId::parse("edge").expect("id"), 3, 8).expect("range"),
            workspace: WorkspaceId::default_id(),
            signal: Signal::Logs,
        };
        for n in 1..=20 {
            let seq = append(&wal, n, (n == 7).then_some(&origin));
            assert_eq!(seq, n as u64);
        }
        assert!(segment_names(dir.path()).expect("listed").len() > 3);
        let got = wal.read(5, 12, usize::MAX).expect("read");
        assert_eq!(
            got.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (5..=12).collect::<Vec<_>>()
        );
        let value = |r: &WalRecord| {
            r.batches[0]
                .batch
                .column_by_name("a")
                .expect("a")
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ints")
                .value(0)
        };
        assert!(got.iter().all(|r| value(r) == r.seq as i64));
        assert_eq!(got[2].origin.as_ref(), Some(&origin));
        assert!(
            got.iter()
                .filter(|r| r.seq != 7)
                .all(|r| r.origin.is_none())
        );
        // A byte budget stops after the record that crosses it.
        assert_eq!(wal.read(1, 20, 1).expect("read").len(), 1);
        let one = wal.read(1, 1, usize::MAX).expect("read")[0].batches[0]
            .batch
            .get_array_memory_size();
        assert!(wal.read(1, 20, 3 * one).expect("read").len() < 20);
        // Released records are no longer there; the rest still is.
        wal.release_before(10);
        wal.close();
        let after = read_range(dir.path(), 1, 20, usize::MAX).expect("read");
        assert!(after.first().is_some_and(|r| r.seq > 1 && r.seq <= 10));
        assert_eq!(after.last().map(|r| r.seq), Some(20));
    }

    #[test]
    fn reading_back_skips_earlier_records_and_stops_at_a_damaged_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = WalConfig {
            dir: dir.path().to_owned(),
            segment_bytes: u64::MAX,
            fsync: false,
            max_bytes: u64::MAX,
            queue_capacity: 16,
        };
        let (wal, _) = Wal::open(config, 1, |_| {}).expect("opened");
        for n in 1..=10 {
            append(&wal, n, None);
        }
        wal.close();
        let seqs = |from, through| {
            read_range(dir.path(), from, through, usize::MAX)
                .expect("read")
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(4, 6), vec![4, 5, 6]);
        assert_eq!(seqs(10, 99), vec![10]);
        // Damage record 8's payload: 7 is the last one read, even for a
        // range that starts past it.
        let (_, path) = segment_names(dir.path()).expect("listed").remove(0);
        let mut data = std::fs::read(&path).expect("segment");
        let (records, _) = read_records(&data);
        let at = records[7].payload.as_ptr() as usize - data.as_ptr() as usize;
        data[at + 3] ^= 0xff;
        std::fs::write(&path, &data).expect("damaged");
        assert_eq!(seqs(5, 10), vec![5, 6, 7]);
        assert_eq!(seqs(8, 10), Vec::<u64>::new());
        // A torn tail: the record cut short is not read.
        std::fs::write(&path, &data[..at - 20]).expect("torn");
        assert_eq!(seqs(1, 10), (1..=6).collect::<Vec<_>>());
    }
}
