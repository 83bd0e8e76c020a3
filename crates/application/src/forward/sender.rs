//! Sending one request until the upstream answers for good: the retry
//! policy the forwarders and `telemetryflow replay` share.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ports::{Encoded, ExportBatch, ExportError, Exported, Exporter};

/// The longest an upstream's own `Retry-After` / `RetryInfo` is obeyed.
const MAX_UPSTREAM_DELAY: Duration = Duration::from_secs(300);

/// Exponential backoff with jitter, or the upstream's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's delay; it doubles up to `max`.
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// How long to wait before retry `attempt` (1 for the first): the
    /// upstream's delay (at most five minutes) if it gave one, else
    /// `initial · 2^(attempt-1)`, at most `max`, times a jitter factor in
    /// [0.5, 1.5).
    pub fn delay(&self, attempt: u32, upstream: Option<Duration>) -> Duration {
        if let Some(d) = upstream {
            return d.min(MAX_UPSTREAM_DELAY);
        }
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        base.mul_f64(0.5 + jitter())
    }
}

/// How the upstream answered for good.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Taken, perhaps in part (`Exported::rejected`).
    Acked(Exported),
    /// Refused; retrying would not help.
    Refused(String),
}

/// What the sender reports to its caller as it goes.
#[derive(Debug)]
pub enum Attempt<'a> {
    /// An attempt is about to be sent (the first, or a retry after its
    /// delay); breaking here sends nothing more.
    Starting,
    /// The upstream answered for good after `took`.
    Answered(Duration),
    /// It refused retryably (or could not be reached); retry number
    /// `attempt` follows after `delay` unless the caller breaks.
    Retrying {
        attempt: u32,
        delay: Duration,
        reason: &'a str,
    },
}

/// Sends `request`, encoded as `encoded`, until the upstream answers for
/// good, retrying with `policy`; `observe` hears of every attempt and may
/// stop the retries (`None` then). Cancel-safe: dropping the future
/// abandons the request.
pub async fn send_until_answered(
    exporter: &dyn Exporter,
    request: &ExportBatch,
    encoded: &Encoded,
    policy: RetryPolicy,
    mut observe: impl FnMut(Attempt<'_>) -> ControlFlow<()>,
) -> Option<Answer> {
    let mut attempt = 0u32;
    loop {
        if observe(Attempt::Starting).is_break() {
            return None;
        }
        let started = Instant::now();
        let answer = exporter.send(request, encoded).await;
        let took = started.elapsed();
        match answer {
            Ok(ack) => {
                let _ = observe(Attempt::Answered(took));
                return Some(Answer::Acked(ack));
            }
            Err(ExportError::Permanent { reason }) => {
                let _ = observe(Attempt::Answered(took));
                return Some(Answer::Refused(reason));
            }
            Err(ExportError::Retryable {
                reason,
                retry_after,
            }) => {
                attempt = attempt.saturating_add(1);
                let delay = policy.delay(attempt, retry_after);
                let next = Attempt::Retrying {
                    attempt,
                    delay,
                    reason: &reason,
                };
                if observe(next).is_break() {
                    return None;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Encodes `requests` on a blocking thread, in order; a request that
/// cannot be encoded is refused for good (its `Answer`). `None` when the
/// encoding did not finish (it panicked, or the runtime is shutting down):
/// the rows stay where they are.
pub async fn encode_off_runtime(
    exporter: std::sync::Arc<dyn Exporter>,
    requests: Vec<ExportBatch>,
) -> Option<Vec<(ExportBatch, Result<Encoded, Answer>)>> {
    let encode = move || {
        requests
            .into_iter()
            .map(|r| {
                let e = exporter
                    .encode(&r)
                    .map_err(|e| Answer::Refused(e.to_string()));
                (r, e)
            })
            .collect::<Vec<_>>()
    };
    match tokio::task::spawn_blocking(encode).await {
        Ok(done) => Some(done),
        Err(e) => {
            tracing::error!(error = %e, "encoding requests for an upstream did not finish");
            None
        }
    }
}

/// A number in [0, 1) that differs between calls and processes.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_obeys_the_upstream() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = p.delay(1, None);
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(150));
            let third = p.delay(3, None);
            assert!(third >= Duration::from_millis(200) && third < Duration::from_millis(600));
            let late = p.delay(40, None);
            assert!(late >= Duration::from_millis(500) && late < Duration::from_millis(1500));
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(900))),
            MAX_UPSTREAM_DELAY
        );
    }
}
