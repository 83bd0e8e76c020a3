//! Durable records and their consumers: the one fan-out of the write-ahead
//! log.
//!
//! Every record the log holds reaches [`Subscribers::apply`] once per
//! process: *live*, on the log's writer thread right after its fsync, in
//! sequence order; or at start-up, *replayed* from the log, in sequence
//! order, before the first live record. Three kinds of consumer subscribe,
//! each with its own contract:
//!
//! - **Synchronous** ([`RecordSubscriber`]: the partition buffers, the
//!   source marks) run inside `apply`, before the request is acknowledged:
//!   O(1) work under short locks, no I/O, never blocking. What they do is
//!   visible as soon as the client has its answer.
//! - **Durable** ([`DurableSubscriber`]: the forwarders) keep a persisted
//!   position — every record through it is done. `apply` only *offers* them
//!   records above it (queue, O(1)); they work in their own task, started
//!   once recovery is over with a [`DurableLog`], and read back from the log
//!   whatever they did not keep in memory. The log releases no record above
//!   the lowest position, so after a crash replay offers each one again
//!   everything it had not finished.
//! - **Lossy** ([`Subscribers::subscribe_live`]: a live tail) get live
//!   records only, through a bounded channel; one that falls behind loses
//!   the oldest and is told how many (`RecvError::Lagged`). They hold no
//!   position and never hold the log back.
//!
//! A new consumer is one type implementing one of these and one line
//! registering it with [`SubscribersBuilder`]; the log and the write path
//! stay as they are.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::ports::{WalError, WalRecord, WriteAheadLog};

/// How a record reached [`Subscribers::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Just made durable; the request that wrote it waits for `apply`.
    Live,
    /// Read back from the log at start-up.
    Replay,
}

/// A consumer that runs on the log's writer thread, in sequence order,
/// before the request is acknowledged. Must be O(1) per record: no I/O, no
/// waiting on anything but short locks.
pub trait RecordSubscriber: Send + Sync {
    fn apply(&self, record: &WalRecord, arrival: Arrival);
}

/// A consumer with a durable position, working in its own task.
#[async_trait]
pub trait DurableSubscriber: Send + Sync {
    /// Names it in logs and metrics.
    fn name(&self) -> &str;

    /// Every record with a sequence number up to this one is done, and that
    /// is persisted: the log keeps the records above it, and replay offers
    /// only those.
    fn position(&self) -> u64;

    /// A durable record above [`Self::position`], live or replayed, on the
    /// log's writer thread: queue it (O(1)) and return.
    fn offer(&self, record: &WalRecord);

    /// Why a new write must be refused now (a full queue that applies
    /// backpressure), if it must. Asked before every write.
    fn refusal(&self) -> Option<String> {
        None
    }

    /// Records offered and not yet done (shutdown waits a little for them).
    fn pending(&self) -> usize {
        0
    }

    /// The log must number new records from at least this: a subscriber
    /// that persisted more than its position (a batch in flight) reserves
    /// those numbers.
    fn next_seq_floor(&self) -> u64 {
        self.position() + 1
    }

    /// Works through what was offered until `stop` turns true (or its sender
    /// is gone). Started once replay is over.
    async fn run(self: Arc<Self>, log: DurableLog, stop: watch::Receiver<bool>);
}

/// What a durable subscriber works with: the log, to read back records it
/// did not keep, and the way to tell the log its position moved.
#[derive(Clone)]
pub struct DurableLog {
    wal: Arc<dyn WriteAheadLog>,
    advanced: Arc<dyn Fn() + Send + Sync>,
}

impl DurableLog {
    /// `advanced` runs after a subscriber's position moved (it lets the log
    /// release what every consumer is done with).
    pub fn new(wal: Arc<dyn WriteAheadLog>, advanced: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self { wal, advanced }
    }

    /// The durable records with `from <= seq <= through`, read on a blocking
    /// thread (see [`WriteAheadLog::read`]).
    pub async fn read(&self, from: u64, through: u64) -> Result<Vec<WalRecord>, WalError> {
        let wal = Arc::clone(&self.wal);
        tokio::task::spawn_blocking(move || wal.read(from, through, usize::MAX))
            .await
            .map_err(|e| WalError::Io(Arc::new(std::io::Error::other(e))))?
    }

    /// The subscriber persisted a higher position.
    pub fn advanced(&self) {
        (self.advanced)();
    }
}

/// Records a lossy subscriber may fall behind by before it loses the oldest.
pub const LIVE_CAPACITY: usize = 1024;

/// Every consumer of durable records; fixed once built, so `apply` takes no
/// lock of its own.
pub struct Subscribers {
    sync: Vec<Arc<dyn RecordSubscriber>>,
    durable: Vec<Arc<dyn DurableSubscriber>>,
    live: broadcast::Sender<Arc<WalRecord>>,
}

/// Registers the consumers before the log is replayed.
#[derive(Default)]
pub struct SubscribersBuilder {
    sync: Vec<Arc<dyn RecordSubscriber>>,
    durable: Vec<Arc<dyn DurableSubscriber>>,
}

impl SubscribersBuilder {
    /// Runs in registration order, before the durable and lossy ones.
    pub fn synchronous(mut self, s: Arc<dyn RecordSubscriber>) -> Self {
        self.sync.push(s);
        self
    }

    pub fn durable(mut self, s: Arc<dyn DurableSubscriber>) -> Self {
        self.durable.push(s);
        self
    }

    /// `other`'s consumers after these.
    pub fn extend(mut self, other: SubscribersBuilder) -> Self {
        self.sync.extend(other.sync);
        self.durable.extend(other.durable);
        self
    }

    pub fn build(self) -> Subscribers {
        Subscribers {
            sync: self.sync,
            durable: self.durable,
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }
}

impl Subscribers {
    pub fn builder() -> SubscribersBuilder {
        SubscribersBuilder::default()
    }

    /// A durable record, to every consumer (see the module's contract).
    pub fn apply(&self, record: &WalRecord, arrival: Arrival) {
        self.fan_out(record, arrival, || Arc::new(record.clone()));
    }

    /// As [`Subscribers::apply`], for a record already shared: live
    /// subscribers get the same allocation.
    pub fn apply_shared(&self, record: &Arc<WalRecord>, arrival: Arrival) {
        self.fan_out(record, arrival, || Arc::clone(record));
    }

    fn fan_out(
        &self,
        record: &WalRecord,
        arrival: Arrival,
        shared: impl FnOnce() -> Arc<WalRecord>,
    ) {
        for s in &self.sync {
            s.apply(record, arrival);
        }
        for d in &self.durable {
            // A shortcut: the subscriber's `offer` decides for itself too.
            if record.seq > d.position() {
                d.offer(record);
            }
        }
        if arrival == Arrival::Live && self.live.receiver_count() > 0 {
            // Nobody listening is not an error; a slow listener lags.
            let _ = self.live.send(shared());
        }
    }

    /// Live records from now on, at most [`LIVE_CAPACITY`] behind.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<WalRecord>> {
        self.live.subscribe()
    }

    pub fn durable(&self) -> &[Arc<dyn DurableSubscriber>] {
        &self.durable
    }

    /// The lowest position of the durable subscribers (`None`: there are
    /// none).
    pub fn durable_floor(&self) -> Option<u64> {
        self.durable.iter().map(|d| d.position()).min()
    }

    /// The first durable subscriber's reason to refuse a write now.
    pub fn refusal(&self) -> Option<String> {
        self.durable.iter().find_map(|d| d.refusal())
    }

    /// Records offered to durable subscribers and not yet done.
    pub fn pending(&self) -> usize {
        self.durable.iter().map(|d| d.pending()).sum()
    }

    /// Where the log must number new records from at least.
    pub fn next_seq_floor(&self) -> u64 {
        self.durable
            .iter()
            .map(|d| d.next_seq_floor())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use parking_lot::Mutex;

    use super::*;
    use tf_domain::TenantId;

    fn record(seq: u64) -> WalRecord {
        WalRecord {
            seq,
            tenant: TenantId::default_id(),
            batches: Vec::new(),
            origin: None,
            otlp: None,
        }
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, Arrival)>>);

    impl RecordSubscriber for Seen {
        fn apply(&self, record: &WalRecord, arrival: Arrival) {
            self.0.lock().push((record.seq, arrival));
        }
    }

    struct At {
        position: AtomicU64,
        offered: Mutex<Vec<u64>>,
    }

    #[async_trait]
    impl DurableSubscriber for At {
        fn name(&self) -> &str {
            "at"
        }
        fn position(&self) -> u64 {
            self.position.load(Ordering::SeqCst)
        }
        fn offer(&self, record: &WalRecord) {
            self.offered.lock().push(record.seq);
        }
        async fn run(self: Arc<Self>, _: DurableLog, _: watch::Receiver<bool>) {}
    }

    #[tokio::test]
    async fn each_kind_gets_what_its_contract_says() {
        let seen = Arc::new(Seen::default());
        let durable = Arc::new(At {
            position: AtomicU64::new(2),
            offered: Mutex::new(Vec::new()),
        });
        let subs = Subscribers::builder()
            .synchronous(Arc::clone(&seen) as _)
            .durable(Arc::clone(&durable) as _)
            .build();
        for seq in 1..=3 {
            subs.apply(&record(seq), Arrival::Replay);
        }
        let mut live = subs.subscribe_live();
        subs.apply(&record(4), Arrival::Live);
        assert_eq!(
            *seen.0.lock(),
            [
                (1, Arrival::Replay),
                (2, Arrival::Replay),
                (3, Arrival::Replay),
                (4, Arrival::Live)
            ]
        );
        assert_eq!(*durable.offered.lock(), [3, 4], "only above its position");
        assert_eq!(live.recv().await.map(|r| r.seq).ok(), Some(4));
        assert_eq!(subs.durable_floor(), Some(2));
        assert_eq!(subs.next_seq_floor(), 3);
    }

    #[tokio::test]
    async fn a_lossy_subscriber_that_falls_behind_is_told_how_far() {
        let subs = Subscribers::builder().build();
        let mut live = subs.subscribe_live();
        for seq in 1..=(LIVE_CAPACITY as u64 + 5) {
            subs.apply(&record(seq), Arrival::Live);
        }
        assert!(matches!(
            live.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
        assert_eq!(live.recv().await.map(|r| r.seq).ok(), Some(6));
        assert_eq!(subs.durable_floor(), None);
    }
}
