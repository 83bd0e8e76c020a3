//! Forwarding: the write-ahead log as the durable queue of a sidecar.
//!
//! Each configured upstream has a [`Forwarder`], a durable subscriber of the
//! log (`crate::records`). The log writer offers it every durable record
//! ([`Forwarder::offer`], O(1) under a short lock, so a slow upstream
//! never slows ingest); the forwarder keeps a ledger of the
//! undelivered records — sequence number, bytes, items, arrival — and, for
//! as many as fit its memory budget, what to send: the request as received
//! when the record kept it (`WalRecord::otlp`), else its rows. Records
//! beyond the budget are read back from the log (as rows) when their turn
//! comes. Its `run` encodes each batch's requests off the async runtime
//! and sends them in batches, in log order, and moves its durable cursor past a batch
//! only after the upstream acknowledged all of it; the log keeps every
//! record until each forwarder delivered it (and, when persisting, until it
//! is flushed).
//!
//! Exactly once between TelemetryFlow nodes: a batch's range of sequence
//! numbers is saved in the cursor (`in_flight`) before it is sent, and every
//! request carries it with this node's id as its key. After a crash the
//! same range is sent first, cut the same way, so an upstream that keeps a
//! high-water mark per stream (`pipeline::SourceMarks`) stores each
//! record once. Other upstreams get plain OTLP, at least once.
//!
//! Retries: exponential backoff with jitter, or the upstream's own delay,
//! forever while the queue has room. Permanent refusals and partial success
//! are counted and logged, and the batch is done. A full queue either
//! refuses new writes (`backpressure`, through the durable subscriber's
//! `refusal`) or gives up its oldest records (`drop_oldest`, counted and
//! logged).

mod sender;
#[cfg(test)]
mod tests;

pub use sender::{Answer, Attempt, RetryPolicy, encode_off_runtime, send_until_answered};

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use parking_lot::Mutex;

use crate::batches::held_bytes;
use crate::ports::{
    DeliveryStore, Encoded, ExportBatch, Exporter, ForwardCursor, TableBatch, WalRecord,
};
use crate::records::{DurableLog, DurableSubscriber};
use tf_domain::telemetry::Signal;
use tf_domain::{NodeId, OnFull, SourceBatch, TenantId, WorkspaceId};

/// One upstream's settings.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Names the cursor and the metrics.
    pub name: String,
    pub signals: Vec<Signal>,
    /// Bytes of undelivered records at which `on_full` applies.
    pub max_queue_bytes: u64,
    pub on_full: OnFull,
    /// A batch is sent once it holds this many bytes of rows …
    pub batch_bytes: usize,
    /// … or its oldest record has waited this long.
    pub batch_age: Duration,
    /// Rows kept in memory for sending; the rest is read back from the log.
    pub memory_bytes: usize,
    /// First retry delay; doubles up to `retry_max`, with jitter.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl ForwarderConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            signals: vec![Signal::Traces, Signal::Metrics, Signal::Logs],
            max_queue_bytes: 1 << 30,
            on_full: OnFull::Backpressure,
            batch_bytes: 4 << 20,
            batch_age: Duration::from_millis(200),
            memory_bytes: 64 << 20,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Counters of one forwarder, for `/metrics`.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Items acknowledged by the upstream, per signal ([`Signal::ALL`] order).
    pub sent: [AtomicU64; 3],
    /// Items the upstream refused for good (permanent errors, partial success).
    pub failed: [AtomicU64; 3],
    /// Items given up by `drop_oldest`.
    pub dropped: [AtomicU64; 3],
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Sum and count of upstream round trips (answered ones).
    pub latency_nanos: AtomicU64,
    pub latency_count: AtomicU64,
    /// Writes refused because this forwarder's queue was full.
    pub refused_writes: AtomicU64,
    /// Records read back from the log (not held in memory).
    pub read_back: AtomicU64,
}

/// One undelivered record.
#[derive(Debug)]
struct Entry {
    seq: u64,
    /// What the record holds in the log.
    bytes: u64,
    /// Items of this forwarder's signals (0: nothing to send).
    items: u64,
    signal: Option<Signal>,
    at: Instant,
    /// The rows to send, unless left in the log.
    held: Option<Held>,
}

#[derive(Debug, Clone)]
struct Held {
    tenant: TenantId,
    /// The rows to send, or none when the request as received is kept.
    batches: Vec<TableBatch>,
    otlp: Option<Kept>,
    bytes: usize,
}

/// A record's request as received, sent instead of its rows.
#[derive(Debug, Clone)]
struct Kept {
    request: bytes::Bytes,
    workspace: WorkspaceId,
    signal: Signal,
    items: u64,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Everything up to here is delivered or given up.
    delivered: u64,
    /// The batch being sent.
    in_flight: Option<(u64, u64)>,
    queue_bytes: u64,
    memory_bytes: usize,
}

/// Forwards this node's log to one upstream.
pub struct Forwarder {
    config: ForwarderConfig,
    node: NodeId,
    exporter: Arc<dyn Exporter>,
    /// Where the cursor is saved.
    store: Arc<dyn DeliveryStore>,
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    stats: ForwardStats,
    /// The cursor as loaded (its `in_flight` batch is sent first).
    restart: Mutex<Option<(u64, u64)>>,
    drop_logged: Mutex<Option<Instant>>,
}

/// Why [`Forwarder::run`] returned.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("saving the cursor of forwarder {name}: {source}")]
    Cursor {
        name: String,
        #[source]
        source: crate::ports::StoreError,
    },
    #[error("reading the write-ahead log for forwarder {name}: {source}")]
    Wal {
        name: String,
        #[source]
        source: crate::ports::WalError,
    },
}

pub type Result<T, E = ForwardError> = std::result::Result<T, E>;

/// One record ready to send.
struct Ready {
    tenant: TenantId,
    batches: Vec<TableBatch>,
    otlp: Option<Kept>,
}

enum Sent {
    Done,
    /// `drop_oldest` gave the batch up while it was being retried.
    GivenUp,
    Stopped,
}

impl Forwarder {
    /// A forwarder resuming at `cursor` (records up to `cursor.delivered`
    /// are not offered again), sending through `exporter` and saving its
    /// cursor in `store`.
    pub fn new(
        config: ForwarderConfig,
        node: NodeId,
        cursor: ForwardCursor,
        exporter: Arc<dyn Exporter>,
        store: Arc<dyn DeliveryStore>,
    ) -> Self {
        Self {
            config,
            node,
            exporter,
            store,
            queue: Mutex::new(Queue {
                delivered: cursor.delivered,
                ..Queue::default()
            }),
            wake: tokio::sync::Notify::new(),
            stats: ForwardStats::default(),
            restart: Mutex::new(cursor.in_flight),
            drop_logged: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &ForwarderConfig {
        &self.config
    }

    pub fn stats(&self) -> &ForwardStats {
        &self.stats
    }

    /// Every record up to this one is delivered (or given up).
    pub fn delivered(&self) -> u64 {
        self.queue.lock().delivered
    }

    /// Bytes of undelivered records, and the age of the oldest.
    pub fn backlog(&self) -> (u64, Duration) {
        let q = self.queue.lock();
        let age = q.entries.front().map_or(Duration::ZERO, |e| e.at.elapsed());
        (q.queue_bytes, age)
    }

    /// Undelivered records.
    pub fn queued_records(&self) -> usize {
        self.queue.lock().entries.len()
    }

    /// A durable record of the log (on the log's writer thread, or replay):
    /// its rows, and the request as received if it has it (sent as is).
    fn offer_rows(
        &self,
        seq: u64,
        tenant: &TenantId,
        batches: &[TableBatch],
        otlp: Option<&bytes::Bytes>,
    ) {
        let mut bytes = 0u64;
        let mut relevant = Vec::new();
        let mut signal = None;
        let mut items = 0u64;
        let mut relevant_bytes = 0usize;
        for b in batches {
            let held = held_bytes(&b.batch);
            bytes += held as u64;
            if let Some(s) = b.table.signal().filter(|s| self.config.signals.contains(s)) {
                signal = Some(s);
                items += b.batch.num_rows() as u64;
                relevant_bytes += held;
                relevant.push(b.clone());
            }
        }
        let mut q = self.queue.lock();
        if seq <= q.delivered || q.entries.back().is_some_and(|e| e.seq >= seq) {
            return;
        }
        // A request holds one signal: all of it is relevant, or none. One
        // kept as received is held instead of the rows (a fraction of
        // their size).
        let kept = match (otlp, signal) {
            (Some(request), Some(signal)) if items > 0 && relevant.len() == batches.len() => {
                Some(Kept {
                    request: request.clone(),
                    workspace: workspace_of(&relevant),
                    signal,
                    items,
                })
            }
            _ => None,
        };
        let (relevant, relevant_bytes) = match &kept {
            Some(k) => (Vec::new(), k.request.len()),
            None => (relevant, relevant_bytes),
        };
        let keep = items > 0 && q.memory_bytes + relevant_bytes <= self.config.memory_bytes;
        if keep {
            q.memory_bytes += relevant_bytes;
        }
        q.queue_bytes += bytes;
        q.entries.push_back(Entry {
            seq,
            bytes,
            items,
            signal,
            at: Instant::now(),
            held: keep.then(|| Held {
                tenant: tenant.clone(),
                batches: relevant,
                otlp: kept,
                bytes: relevant_bytes,
            }),
        });
        if self.config.on_full == OnFull::DropOldest && q.queue_bytes > self.config.max_queue_bytes
        {
            self.drop_oldest(&mut q);
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Gives up the oldest records until the queue is under its limit; a
    /// batch being sent goes whole.
    fn drop_oldest(&self, q: &mut Queue) {
        let mut dropped = [0u64; 3];
        let mut through = 0;
        while q.queue_bytes > self.config.max_queue_bytes && q.entries.len() > 1 {
            let in_flight_end = q.in_flight.map_or(0, |(_, last)| last);
            let Some(e) = q.entries.pop_front() else {
                break;
            };
            Self::forget(q, &e);
            if let Some(s) = e.signal {
                dropped[s.index()] += e.items;
            }
            through = e.seq;
            if e.seq <= in_flight_end {
                // The rest of the batch goes with it.
                while q.entries.front().is_some_and(|f| f.seq <= in_flight_end) {
                    if let Some(f) = q.entries.pop_front() {
                        Self::forget(q, &f);
                        if let Some(s) = f.signal {
                            dropped[s.index()] += f.items;
                        }
                        through = f.seq;
                    }
                }
            }
        }
        if through > 0 {
            q.delivered = q.delivered.max(through);
            let total: u64 = dropped.iter().sum();
            for (i, n) in dropped.iter().enumerate() {
                self.stats.dropped[i].fetch_add(*n, Ordering::Relaxed);
            }
            // Once a second at most: this runs on the log's writer thread.
            let now = Instant::now();
            let mut last = self.drop_logged.lock();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                return;
            }
            *last = Some(now);
            tracing::warn!(
                forwarder = %self.config.name,
                items = total,
                through_seq = through,
                max_queue_bytes = self.config.max_queue_bytes,
                "forward queue full: dropped the oldest undelivered items (on_full = drop_oldest; all drops are counted in telemetryflow_forward_dropped_items_total)"
            );
        }
    }

    fn forget(q: &mut Queue, e: &Entry) {
        q.queue_bytes = q.queue_bytes.saturating_sub(e.bytes);
        if let Some(h) = &e.held {
            q.memory_bytes = q.memory_bytes.saturating_sub(h.bytes);
        }
    }

    /// Sends until `stop` turns true; undelivered records stay in the log.
    async fn deliver(
        &self,
        log: &DurableLog,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        let mut saved = self.delivered();
        loop {
            // Stopped, or the server that could stop it is gone.
            if *stop.borrow() || stop.has_changed().is_err() {
                return Ok(());
            }
            // Records with nothing for this forwarder are delivered as such.
            let skipped = self.skip_irrelevant();
            if skipped {
                log.advanced();
            }
            let Some((first, last, missing)) = self.next_batch() else {
                // Batches delivered, or records dropped (or skipped), and
                // nothing due: the cursor is saved alone.
                let delivered = self.delivered();
                if delivered > saved {
                    self.save(delivered, None, &mut stop).await?;
                    saved = delivered;
                    log.advanced();
                }
                // Until the front record is due, new records arrive, or stop.
                let wait = self
                    .due_in()
                    .unwrap_or(self.config.batch_age)
                    .max(Duration::from_millis(1));
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let ready = match self.collect(log, first, last, missing).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(forwarder = %self.config.name, error = %e, "reading undelivered records back failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            let delivered = self.delivered();
            self.save(delivered, Some((first, last)), &mut stop).await?;
            if delivered > saved {
                saved = delivered;
                log.advanced();
            }
            let key = SourceBatch::new(self.node.clone(), first, last)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .map_err(|e| ForwardError::Wal {
                    name: self.config.name.clone(),
                    source: crate::ports::WalError::Io(Arc::new(e)),
                })?;
            let requests = requests(ready, &key);
            let Some(encoded) = encode_off_runtime(Arc::clone(&self.exporter), requests).await
            else {
                return Ok(());
            };
            let mut outcome = Sent::Done;
            for (request, encoded) in encoded {
                let sent = match encoded {
                    Ok(encoded) => self.send(&request, &encoded, last, &mut stop).await,
                    Err(refused) => self.answered(&request, Some(refused)),
                };
                match sent {
                    Sent::Done => {}
                    other => {
                        outcome = other;
                        break;
                    }
                }
            }
            match outcome {
                Sent::Stopped => return Ok(()),
                Sent::Done | Sent::GivenUp => {}
            }
            // The cursor is saved with the next batch's range (one write
            // per batch), or alone once nothing is due; after a crash in
            // between, this batch is the one in flight and is resent under
            // its key.
            self.complete(last);
            *self.restart.lock() = None;
        }
    }

    /// Saves the cursor, retrying a failing store every second (the log
    /// keeps everything meanwhile) until it works or `stop`.
    async fn save(
        &self,
        delivered: u64,
        in_flight: Option<(u64, u64)>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        let cursor = ForwardCursor {
            delivered,
            in_flight,
        };
        loop {
            match self.store.save_cursor(&self.config.name, cursor).await {
                Ok(()) => return Ok(()),
                Err(source) => {
                    tracing::error!(forwarder = %self.config.name, error = %source, "saving the forward cursor failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {
                            return Err(ForwardError::Cursor {
                                name: self.config.name.clone(),
                                source,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Moves the cursor over leading records that hold nothing to send.
    fn skip_irrelevant(&self) -> bool {
        let mut q = self.queue.lock();
        let mut moved = false;
        while q.entries.front().is_some_and(|e| e.items == 0) {
            if let Some(e) = q.entries.pop_front() {
                Self::forget(&mut q, &e);
                q.delivered = q.delivered.max(e.seq);
                moved = true;
            }
        }
        moved
    }

    /// The next batch when it is due: its range, and the sequence numbers
    /// whose rows must be read from the log.
    fn next_batch(&self) -> Option<(u64, u64, Vec<u64>)> {
        let mut q = self.queue.lock();
        let front = q.entries.front()?;
        let restart = {
            let mut r = self.restart.lock();
            // A range wholly delivered or given up meanwhile is no batch.
            if r.is_some_and(|(_, end)| end < front.seq) {
                *r = None;
            }
            *r
        };
        let mut bytes = 0usize;
        let mut last = front.seq;
        let mut missing = Vec::new();
        let mut full = false;
        for e in &q.entries {
            match restart {
                // After a restart the first batch is the one that was in
                // flight, cut the same way.
                Some((_, end)) if e.seq > end => {
                    full = true;
                    break;
                }
                Some(_) => {}
                None if bytes >= self.config.batch_bytes => {
                    full = true;
                    break;
                }
                None => {}
            }
            bytes += e.held.as_ref().map_or(e.bytes as usize, |h| h.bytes);
            last = e.seq;
            if e.items > 0 && e.held.is_none() {
                missing.push(e.seq);
            }
        }
        let due = full
            || restart.is_some()
            || bytes >= self.config.batch_bytes
            || front.at.elapsed() >= self.config.batch_age;
        if !due {
            return None;
        }
        let first = front.seq;
        // From now on `drop_oldest` gives this batch up whole or not at all.
        q.in_flight = Some((first, last));
        Some((first, last, missing))
    }

    /// How long until the front record's batch is due by age (zero when
    /// the queue is empty: nothing to wait for but a wake-up).
    fn due_in(&self) -> Option<Duration> {
        let q = self.queue.lock();
        let front = q.entries.front()?;
        Some(self.config.batch_age.saturating_sub(front.at.elapsed()))
    }

    /// The rows of the records `first..=last`, from memory or the log.
    async fn collect(
        &self,
        log: &DurableLog,
        first: u64,
        last: u64,
        missing: Vec<u64>,
    ) -> Result<Vec<Ready>> {
        let mut from_log = std::collections::HashMap::new();
        if let (Some(&lo), Some(&hi)) = (missing.first(), missing.last()) {
            let records = log.read(lo, hi).await.map_err(|source| ForwardError::Wal {
                name: self.config.name.clone(),
                source,
            })?;
            self.stats
                .read_back
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            for WalRecord {
                seq,
                tenant,
                batches,
                ..
            } in records
            {
                let batches = batches
                    .into_iter()
                    .filter(|b| {
                        b.table
                            .signal()
                            .is_some_and(|s| self.config.signals.contains(&s))
                    })
                    .collect();
                from_log.insert(
                    seq,
                    Ready {
                        tenant,
                        batches,
                        otlp: None,
                    },
                );
            }
        }
        let q = self.queue.lock();
        let mut out = Vec::new();
        for e in q.entries.iter().take_while(|e| e.seq <= last) {
            if e.seq < first || e.items == 0 {
                continue;
            }
            match &e.held {
                Some(h) => out.push(Ready {
                    tenant: h.tenant.clone(),
                    batches: h.batches.clone(),
                    otlp: h.otlp.clone(),
                }),
                None => match from_log.remove(&e.seq) {
                    Some(r) => out.push(r),
                    None => tracing::error!(
                        forwarder = %self.config.name,
                        seq = e.seq,
                        "an undelivered record is no longer in the write-ahead log; skipping it"
                    ),
                },
            }
        }
        Ok(out)
    }

    /// Sends one request until the upstream answers for good.
    async fn send(
        &self,
        request: &ExportBatch,
        encoded: &Encoded,
        last: u64,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Sent {
        if *stop.borrow() {
            return Sent::Stopped;
        }
        let policy = RetryPolicy {
            initial: self.config.retry_initial,
            max: self.config.retry_max,
        };
        let observe = |a: Attempt<'_>| {
            match a {
                // `drop_oldest` gave the batch up (before the first attempt,
                // or while a retry waited).
                Attempt::Starting if self.queue.lock().delivered >= last => {
                    return ControlFlow::Break(());
                }
                Attempt::Starting => return ControlFlow::Continue(()),
                Attempt::Answered(took) => self.observe_latency(took),
                Attempt::Retrying {
                    attempt,
                    delay,
                    reason,
                } => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if attempt == 1 || attempt.is_power_of_two() {
                        tracing::warn!(
                            forwarder = %self.config.name,
                            upstream = self.exporter.endpoint(),
                            attempt,
                            ?delay,
                            %reason,
                            "upstream unavailable; the batch stays queued and is retried"
                        );
                    }
                }
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            ControlFlow::Continue(())
        };
        let answer = tokio::select! {
            a = send_until_answered(self.exporter.as_ref(), request, encoded, policy, observe) => a,
            _ = stop.changed() => return Sent::Stopped,
        };
        self.answered(request, answer)
    }

    /// Counts and logs the upstream's answer to `request`.
    fn answered(&self, request: &ExportBatch, answer: Option<Answer>) -> Sent {
        let signal = request.signal.index();
        match answer {
            None => Sent::GivenUp,
            Some(Answer::Acked(ack)) => {
                let rejected = ack.rejected.min(request.items);
                self.stats.sent[signal].fetch_add(request.items - rejected, Ordering::Relaxed);
                if rejected > 0 {
                    self.stats.failed[signal].fetch_add(rejected, Ordering::Relaxed);
                    tracing::warn!(
                        forwarder = %self.config.name,
                        upstream = self.exporter.endpoint(),
                        tenant = %request.tenant,
                        rejected,
                        reason = %ack.message,
                        "the upstream rejected part of a batch (partial success)"
                    );
                }
                Sent::Done
            }
            Some(Answer::Refused(reason)) => {
                self.stats.failed[signal].fetch_add(request.items, Ordering::Relaxed);
                tracing::warn!(
                    forwarder = %self.config.name,
                    upstream = self.exporter.endpoint(),
                    tenant = %request.tenant,
                    items = request.items,
                    %reason,
                    "a batch was refused for good (by the upstream, or its rows could not be encoded: see the reason); it is not retried"
                );
                Sent::Done
            }
        }
    }

    fn observe_latency(&self, took: Duration) {
        self.stats
            .latency_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.stats.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The batch through `last` is delivered: forget it.
    fn complete(&self, last: u64) -> u64 {
        let mut q = self.queue.lock();
        while q.entries.front().is_some_and(|e| e.seq <= last) {
            if let Some(e) = q.entries.pop_front() {
                Self::forget(&mut q, &e);
            }
        }
        q.delivered = q.delivered.max(last);
        q.in_flight = None;
        q.delivered
    }
}

#[async_trait::async_trait]
impl DurableSubscriber for Forwarder {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// The delivered cursor: everything up to it was acknowledged by the
    /// upstream (or given up, counted).
    fn position(&self) -> u64 {
        self.delivered()
    }

    fn offer(&self, record: &WalRecord) {
        self.offer_rows(
            record.seq,
            &record.tenant,
            &record.batches,
            record.otlp.as_ref(),
        );
    }

    /// Why a new write must be refused now (`backpressure` and a full
    /// queue), if it must.
    fn refusal(&self) -> Option<String> {
        if self.config.on_full != OnFull::Backpressure {
            return None;
        }
        let bytes = self.queue.lock().queue_bytes;
        (bytes >= self.config.max_queue_bytes).then(|| {
            self.stats.refused_writes.fetch_add(1, Ordering::Relaxed);
            format!(
                "forwarder {:?} has {bytes} bytes undelivered (max_queue_bytes {}): its upstream is not keeping up",
                self.config.name, self.config.max_queue_bytes
            )
        })
    }

    fn pending(&self) -> usize {
        self.queued_records()
    }

    /// The log must number new records from at least this: every number
    /// the cursor has seen (delivered or in flight) is taken.
    fn next_seq_floor(&self) -> u64 {
        let restart = self.restart.lock().map_or(0, |(_, last)| last);
        self.delivered().max(restart) + 1
    }

    async fn run(self: Arc<Self>, log: DurableLog, stop: tokio::sync::watch::Receiver<bool>) {
        if let Err(e) = self.deliver(&log, stop).await {
            tracing::error!(forwarder = %self.config.name, error = %e, "forwarder stopped; undelivered data stays in the write-ahead log");
        }
    }
}

/// The workspace of a record's rows (one request, one workspace).
fn workspace_of(batches: &[TableBatch]) -> WorkspaceId {
    batches
        .iter()
        .find_map(|b| {
            let col = b.batch.column_by_name("workspace_id")?;
            let s = col.as_any().downcast_ref::<StringArray>()?;
            (!s.is_empty() && s.is_valid(0)).then(|| s.value(0).to_owned())
        })
        .and_then(|w| WorkspaceId::parse(&w).ok())
        .unwrap_or_else(WorkspaceId::default_id)
}

/// One request per (tenant, workspace, signal), in order of first
/// appearance, each keyed with the whole batch's range. A record that kept
/// its request as received joins as that request, not as its rows.
fn requests(ready: Vec<Ready>, key: &SourceBatch) -> Vec<ExportBatch> {
    let mut out: Vec<ExportBatch> = Vec::new();
    let mut request_of = |tenant: &TenantId, workspace: &WorkspaceId, signal: Signal| {
        let at = out
            .iter()
            .position(|e| &e.tenant == tenant && &e.workspace == workspace && e.signal == signal);
        match at {
            Some(i) => i,
            None => {
                out.push(ExportBatch {
                    tenant: tenant.clone(),
                    workspace: workspace.clone(),
                    signal,
                    batches: Vec::new(),
                    encoded: Vec::new(),
                    items: 0,
                    key: Some(key.clone()),
                });
                out.len() - 1
            }
        }
    };
    enum Part {
        Rows(TableBatch),
        Request(Kept),
    }
    let mut parts: Vec<(usize, Part)> = Vec::new();
    for r in ready {
        if let Some(k) = r.otlp {
            parts.push((
                request_of(&r.tenant, &k.workspace, k.signal),
                Part::Request(k),
            ));
            continue;
        }
        let workspace = workspace_of(&r.batches);
        for b in r.batches {
            if let Some(signal) = b.table.signal() {
                parts.push((request_of(&r.tenant, &workspace, signal), Part::Rows(b)));
            }
        }
    }
    for (i, part) in parts {
        let req = &mut out[i];
        match part {
            Part::Rows(b) => {
                req.items += b.batch.num_rows() as u64;
                req.batches.push(b);
            }
            Part::Request(k) => {
                req.items += k.items;
                req.encoded.push(k.request);
            }
        }
    }
    out
}
