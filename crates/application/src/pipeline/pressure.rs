//! `IngestPressure`: whether ingest is struggling right now — within the
//! last second it refused a write as overloaded, or its buffers held more
//! than half their memory budget. Background work (compaction merges) slows
//! down while it is, so that it does not take the CPU ingest is short of.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one sign of pressure counts.
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct IngestPressure {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last sign, plus one (0: none yet).
    last: AtomicU64,
}

impl Default for IngestPressure {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestPressure {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A sign of pressure, now.
    pub fn mark(&self) {
        self.last.store(self.now_ms() + 1, Ordering::Relaxed);
    }

    /// Whether there was a sign within the last second.
    pub fn is_high(&self) -> bool {
        match self.last.load(Ordering::Relaxed) {
            0 => false,
            last => self.now_ms().saturating_sub(last - 1) < WINDOW.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_counts_for_a_second() {
        let p = IngestPressure::new();
        assert!(!p.is_high());
        p.mark();
        assert!(p.is_high());
        // A sign from longer ago than the window no longer counts.
        p.last.store(1, Ordering::Relaxed);
        let later = IngestPressure {
            epoch: Instant::now() - Duration::from_millis(1500),
            last: AtomicU64::new(1),
        };
        assert!(!later.is_high());
    }
}
