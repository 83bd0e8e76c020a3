//! `SourceMarks`: the upstream half of exactly-once delivery between nodes.
//!
//! Per stream (sending node, tenant, workspace, signal) it keeps the highest
//! last sequence number of a forwarded batch that is durable here, and
//! decides with [`tf_domain::delivery::admit`] what a new batch is. A mark
//! is raised only once the batch's record is fsync'd in this node's log
//! (the record carries its origin, so WAL replay raises it again after a
//! crash), and the marks are saved before any record is released from the
//! log: the marks survive the records they describe.
//!
//! A batch of a stream that is being written right now is refused
//! retryably: a resend that overtakes its first attempt cannot store it
//! twice. At most [`MAX_STREAMS`] streams are tracked: a batch of a new
//! stream beyond that is stored without a mark (at least once), with a
//! warning. With keys, only a relay key may send a batch key, and its
//! streams are its principal's: a relay can only ever suppress its own
//! batches.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::ports::{DeliveryStore, SourceStream, StoreError};
use tf_domain::SourceBatch;
use tf_domain::delivery::{Admission, admit};

/// Streams tracked at most.
pub const MAX_STREAMS: usize = 100_000;

#[derive(Debug, Default)]
struct Marks {
    accepted: HashMap<SourceStream, u64>,
    writing: HashMap<SourceStream, u64>,
    dirty: bool,
}

/// What to do with a forwarded batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Write it; report [`SourceMarks::accepted`] or [`SourceMarks::abandoned`].
    Write,
    /// Accepted before: acknowledge without writing.
    Duplicate,
    /// A batch of the stream is being written: retry shortly.
    Busy,
}

pub struct SourceMarks {
    marks: Mutex<Marks>,
    store: Option<Arc<dyn DeliveryStore>>,
    saving: Mutex<()>,
}

impl SourceMarks {
    /// Marks kept in memory only (tests, or nodes that take no forwarded data
    /// durably).
    pub fn in_memory() -> Self {
        Self {
            marks: Mutex::default(),
            store: None,
            saving: Mutex::new(()),
        }
    }

    /// The marks saved in `store`.
    pub fn load(store: Arc<dyn DeliveryStore>) -> Result<Self, StoreError> {
        let accepted = store.load_marks()?.into_iter().collect();
        Ok(Self {
            marks: Mutex::new(Marks {
                accepted,
                ..Marks::default()
            }),
            store: Some(store),
            saving: Mutex::new(()),
        })
    }

    pub fn begin(&self, stream: &SourceStream, batch: &SourceBatch) -> Begin {
        let mut m = self.marks.lock();
        if m.writing.contains_key(stream) {
            return Begin::Busy;
        }
        if m.accepted.len() >= MAX_STREAMS && !m.accepted.contains_key(stream) {
            tracing::warn!(
                batch = %batch,
                streams = MAX_STREAMS,
                "too many forwarding streams tracked; storing the batch without a mark (at least once)"
            );
            return Begin::Write;
        }
        match admit(m.accepted.get(stream).copied(), batch) {
            Admission::Duplicate => return Begin::Duplicate,
            Admission::Overlap => tracing::warn!(
                batch = %batch,
                accepted_through = m.accepted.get(stream).copied().unwrap_or(0),
                "a forwarded batch overlaps one accepted before; storing it (at least once)"
            ),
            Admission::New => {}
        }
        m.writing.insert(stream.clone(), batch.last());
        Begin::Write
    }

    /// The batch's record is durable.
    pub fn accepted(&self, stream: &SourceStream, last: u64) {
        let mut m = self.marks.lock();
        m.writing.remove(stream);
        Self::raise(&mut m, stream, last);
    }

    /// The batch was not written.
    pub fn abandoned(&self, stream: &SourceStream) {
        self.marks.lock().writing.remove(stream);
    }

    /// A record replayed from the log.
    pub fn observe(&self, stream: &SourceStream, last: u64) {
        Self::raise(&mut self.marks.lock(), stream, last);
    }

    fn raise(m: &mut Marks, stream: &SourceStream, last: u64) {
        if m.accepted.len() >= MAX_STREAMS && !m.accepted.contains_key(stream) {
            return;
        }
        let mark = m.accepted.entry(stream.clone()).or_insert(0);
        if last > *mark {
            *mark = last;
            m.dirty = true;
        }
    }

    /// The highest accepted last sequence number of `stream`.
    pub fn accepted_through(&self, stream: &SourceStream) -> Option<u64> {
        self.marks.lock().accepted.get(stream).copied()
    }

    /// Number of streams known.
    pub fn streams(&self) -> usize {
        self.marks.lock().accepted.len()
    }

    /// Saves the marks if they changed since the last save. Call before
    /// releasing log records.
    pub fn persist(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _one_at_a_time = self.saving.lock();
        let snapshot: Vec<(SourceStream, u64)> = {
            let mut m = self.marks.lock();
            if !m.dirty {
                return Ok(());
            }
            m.dirty = false;
            m.accepted.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        store.save_marks(&snapshot).inspect_err(|_| {
            self.marks.lock().dirty = true;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tf_domain::telemetry::Signal;
    use tf_domain::{NodeId, TenantId, WorkspaceId};

    fn stream(signal: Signal) -> SourceStream {
        SourceStream {
            relay: None,
            node: NodeId::parse("edge").unwrap(),
            tenant: TenantId::parse("acme").unwrap(),
            workspace: WorkspaceId::default_id(),
            signal,
        }
    }

    fn batch(first: u64, last: u64) -> SourceBatch {
        SourceBatch::new(NodeId::parse("edge").unwrap(), first, last).unwrap()
    }

    #[test]
    fn a_batch_is_written_once_per_stream() {
        let m = SourceMarks::in_memory();
        let (t, l) = (stream(Signal::Traces), stream(Signal::Logs));
        assert_eq!(m.begin(&t, &batch(1, 4)), Begin::Write);
        // Its resend while the first attempt is being written.
        assert_eq!(m.begin(&t, &batch(1, 4)), Begin::Busy);
        // The same range on another stream is another batch.
        assert_eq!(m.begin(&l, &batch(1, 4)), Begin::Write);
        m.accepted(&t, 4);
        m.abandoned(&l);
        assert_eq!(m.begin(&t, &batch(1, 4)), Begin::Duplicate);
        assert_eq!(m.begin(&l, &batch(1, 4)), Begin::Write);
        assert_eq!(m.begin(&t, &batch(5, 9)), Begin::Write);
        m.abandoned(&t);
        assert_eq!(m.accepted_through(&t), Some(4));
        m.observe(&t, 2);
        assert_eq!(m.accepted_through(&t), Some(4), "marks never go back");
    }
}
