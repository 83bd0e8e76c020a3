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
//!
//! Over the budget, admission is fair between tenants: a tenant that was
//! admitted no more than the average of the tenants sending in the last
//! second or two is still let in, up to [`HARD_LIMIT_NUM`]/[`HARD_LIMIT_DEN`]
//! of the budget, so a tenant using a large rate limit to the full is
//! refused before one sending little. Alone, a tenant is at the average and
//! is refused at the budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tf_domain::TenantId;

use super::{IngestPressure, PartitionBuffer};
use crate::ports::WriteError;

/// Tenants below the average may be admitted up to 5/4 of the budget; the
/// write path refuses above it whatever the tenant.
pub const HARD_LIMIT_NUM: usize = 5;
pub const HARD_LIMIT_DEN: usize = 4;

/// The budget and the hard limit above it for `budget`.
pub fn hard_limit(budget: usize) -> usize {
    budget.saturating_add(budget / HARD_LIMIT_DEN * (HARD_LIMIT_NUM - HARD_LIMIT_DEN))
}

/// How long one window of admitted bytes lasts; a tenant's recent share is
/// its current and previous window.
const SHARE_WINDOW: Duration = Duration::from_secs(1);

/// Bytes admitted per tenant recently.
#[derive(Debug)]
struct Shares {
    started: Instant,
    current: HashMap<TenantId, u64>,
    previous: HashMap<TenantId, u64>,
}

impl Shares {
    fn roll(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.started);
        if elapsed < SHARE_WINDOW {
            return;
        }
        self.previous = if elapsed < 2 * SHARE_WINDOW {
            std::mem::take(&mut self.current)
        } else {
            self.current.clear();
            HashMap::new()
        };
        self.started = now;
    }

    fn recent(&self, tenant: &TenantId) -> u64 {
        self.current.get(tenant).copied().unwrap_or(0)
            + self.previous.get(tenant).copied().unwrap_or(0)
    }

    /// True when `tenant` was admitted no more than the average of the
    /// tenants admitted recently (itself counted).
    fn at_most_average(&self, tenant: &TenantId) -> bool {
        let mut total = 0u64;
        let mut n = 0u64;
        for t in self.current.keys().chain(
            self.previous
                .keys()
                .filter(|t| !self.current.contains_key(*t)),
        ) {
            total += self.recent(t);
            n += 1;
        }
        let mine = self.recent(tenant);
        if mine == 0 {
            n += 1;
        }
        mine.saturating_mul(n) <= total
    }
}

/// How many bytes of memory a request holds per byte of its body while it
/// is in flight (measured: two concurrent 60 MB span requests peaked at
/// 4.9 times their bodies).
pub const WORKING_SET_FACTOR: usize = 4;

/// The bytes of request bodies in flight, against the memory budget.
pub struct Admission {
    in_flight: AtomicUsize,
    shares: Mutex<Shares>,
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
            shares: Mutex::new(Shares {
                started: Instant::now(),
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
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
    /// when it declares none) of `tenant`.
    pub fn reserve(
        self: &Arc<Self>,
        tenant: TenantId,
        bytes: usize,
    ) -> Result<Reservation, WriteError> {
        let r = Reservation {
            admission: Arc::clone(self),
            tenant,
            bytes: AtomicUsize::new(0),
        };
        r.grow_to(bytes)?;
        Ok(r)
    }

    fn grow(&self, tenant: &TenantId, held: usize, delta: usize) -> Result<(), WriteError> {
        let budget = self.buffer.config().max_buffered_bytes;
        let before = self.in_flight.fetch_add(delta, Ordering::AcqRel);
        let others = before - held;
        let buffered = self.buffer.buffered_bytes();
        let total = buffered + before + delta;
        let fair = || {
            let mut shares = self.shares.lock();
            shares.roll(Instant::now());
            shares.at_most_average(tenant)
        };
        if others > 0 && total > budget && (total > hard_limit(budget) || !fair()) {
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
        let mut shares = self.shares.lock();
        shares.roll(Instant::now());
        match shares.current.get_mut(tenant) {
            Some(bytes) => *bytes += delta as u64,
            None => {
                shares.current.insert(tenant.clone(), delta as u64);
            }
        }
        Ok(())
    }
}

/// One request's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    admission: Arc<Admission>,
    tenant: TenantId,
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
        self.admission.grow(&self.tenant, held, total - held)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn a_tenant_admitted_more_than_the_average_is_not_within_its_share() {
        let t0 = Instant::now();
        let mut s = Shares {
            started: t0,
            current: HashMap::new(),
            previous: HashMap::new(),
        };
        // Nobody sent yet, or one tenant alone: at the average.
        assert!(s.at_most_average(&tenant("quiet")));
        s.current.insert(tenant("flood"), 3000);
        assert!(s.at_most_average(&tenant("flood")));
        // A newcomer is below it; the larger sender above it.
        assert!(s.at_most_average(&tenant("quiet")));
        s.current.insert(tenant("quiet"), 1000);
        assert!(s.at_most_average(&tenant("quiet")));
        assert!(!s.at_most_average(&tenant("flood")));
        // Equal shares are both at the average.
        s.current.insert(tenant("quiet"), 3000);
        assert!(s.at_most_average(&tenant("quiet")) && s.at_most_average(&tenant("flood")));
        // The previous window still counts; two windows later it is gone.
        s.current.insert(tenant("quiet"), 1000);
        s.roll(t0 + SHARE_WINDOW);
        assert!(!s.at_most_average(&tenant("flood")));
        s.current.insert(tenant("quiet"), 5000);
        assert!(s.at_most_average(&tenant("flood")));
        assert!(!s.at_most_average(&tenant("quiet")));
        s.roll(t0 + 4 * SHARE_WINDOW);
        assert!(s.current.is_empty() && s.previous.is_empty());
    }
}
