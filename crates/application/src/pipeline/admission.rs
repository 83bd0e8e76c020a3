//! Admission of request bodies before they are read: the bytes of every
//! body being read, decompressed, decoded and written count against
//! `buffer.max_buffered_bytes` together with what the partition buffers
//! hold. A receiver reserves a body's declared size before reading it and
//! grows the reservation as bytes arrive; past the budget the request is
//! refused (retryable) before its bytes are held. One request is always
//! admitted when none is in flight, so a body larger than the whole budget
//! (up to `server.max_request_bytes`) is slowed down, never refused forever.
//!
//! A body in flight holds more than its bytes: while it is decoded,
//! converted and logged, the body, its decoded message, its Arrow rows and
//! its WAL record are alive at once. Each byte of a body therefore counts
//! [`WORKING_SET_FACTOR`] times; once the request is answered its rows count
//! as buffered bytes instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{IngestPressure, PartitionBuffer};
use crate::ports::WriteError;

/// How many bytes of memory a request holds per byte of its body while it
/// is in flight (measured: two concurrent 60 MB span requests peaked at
/// 4.9 times their bodies).
pub const WORKING_SET_FACTOR: usize = 4;

/// The bytes of request bodies in flight, against the memory budget.
pub struct Admission {
    in_flight: AtomicUsize,
    buffer: Arc<PartitionBuffer>,
    pressure: Arc<IngestPressure>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Admission {
    pub(super) fn new(buffer: Arc<PartitionBuffer>, pressure: Arc<IngestPressure>) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            buffer,
            pressure,
        }
    }

    /// Bytes reserved for requests in flight now ([`WORKING_SET_FACTOR`]
    /// times their bodies).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` for one request's body (its declared size, or 0
    /// when it declares none).
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, WriteError> {
        let r = Reservation {
            admission: Arc::clone(self),
            bytes: AtomicUsize::new(0),
        };
        r.grow_to(bytes)?;
        Ok(r)
    }

    fn grow(&self, held: usize, delta: usize) -> Result<(), WriteError> {
        let budget = self.buffer.config().max_buffered_bytes;
        let before = self.in_flight.fetch_add(delta, Ordering::AcqRel);
        let others = before - held;
        let buffered = self.buffer.buffered_bytes();
        if others > 0 && buffered + before + delta > budget {
            self.in_flight.fetch_sub(delta, Ordering::AcqRel);
            self.pressure.mark();
            return Err(WriteError::Overloaded {
                reason: format!(
                    "{} bytes of requests in flight and {buffered} buffered, over the memory budget \
                     of {budget} bytes (buffer.max_buffered_bytes)",
                    before + delta
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        Ok(())
    }
}

/// One request's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    admission: Arc<Admission>,
    bytes: AtomicUsize,
}

impl Reservation {
    /// Grows the reservation to a body of `total` bytes (never shrinks it).
    pub fn grow_to(&self, total: usize) -> Result<(), WriteError> {
        let total = total.saturating_mul(WORKING_SET_FACTOR);
        let held = self.bytes.load(Ordering::Acquire);
        if total <= held {
            return Ok(());
        }
        self.admission.grow(held, total - held)?;
        self.bytes.fetch_add(total - held, Ordering::AcqRel);
        Ok(())
    }

    /// Grows the reservation by `more` bytes of body.
    pub fn add(&self, more: usize) -> Result<(), WriteError> {
        self.grow_to(self.body_bytes() + more)
    }

    /// The body bytes reserved for.
    pub fn body_bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire) / WORKING_SET_FACTOR
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let held = *self.bytes.get_mut();
        self.admission.in_flight.fetch_sub(held, Ordering::AcqRel);
    }
}
