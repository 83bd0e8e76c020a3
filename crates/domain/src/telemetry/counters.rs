//! The counter rules of the seed, for OTLP monotonic sums: a counter is never
//! negative, and a cumulative series never decreases for the same start time.
//! A new start time is a reset and starts the series afresh.

use std::collections::HashMap;

use super::rejection::Rejection;

/// One point of a monotonic sum, as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterObservation {
    /// Identity of the series (tenant, metric, resource, scope and point
    /// attributes), hashed by the caller.
    pub series: u64,
    pub start_unix_nanos: u64,
    pub unix_nanos: u64,
    pub value: f64,
    pub cumulative: bool,
}

/// Checks the stateless part of the rule: finite and not negative.
pub(crate) fn check_counter_value(value: f64) -> Result<(), Rejection> {
    if !value.is_finite() {
        Err(Rejection::NonFiniteCounter)
    } else if value < 0.0 {
        Err(Rejection::NegativeCounter)
    } else {
        Ok(())
    }
}

/// Where the last value of each cumulative series is kept between batches.
/// Implementations may be shared between threads (interior mutability).
pub trait CounterStore: Send + Sync {
    /// Applies the full counter rule to one point, updating the series state
    /// when the point is accepted.
    fn observe(&self, obs: CounterObservation) -> Result<(), Rejection>;
}

#[derive(Debug, Clone, Copy)]
struct SeriesState {
    start: u64,
    last_ts: u64,
    last_value: f64,
}

/// Last values per cumulative series, bounded: when `capacity` series are
/// tracked, the oldest knowledge is dropped (the map is cleared), which can
/// only make the rule more lenient, never reject a valid point.
#[derive(Debug)]
pub struct CounterSeries {
    series: HashMap<u64, SeriesState>,
    capacity: usize,
}

impl CounterSeries {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            series: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Applies the counter rule to one point.
    pub fn observe(&mut self, obs: CounterObservation) -> Result<(), Rejection> {
        check_counter_value(obs.value)?;
        if !obs.cumulative {
            return Ok(());
        }
        let next = SeriesState {
            start: obs.start_unix_nanos,
            last_ts: obs.unix_nanos,
            last_value: obs.value,
        };
        if !self.series.contains_key(&obs.series) && self.series.len() >= self.capacity {
            self.series.clear();
        }
        match self.series.get_mut(&obs.series) {
            None => {
                self.series.insert(obs.series, next);
                Ok(())
            }
            Some(state) => {
                if obs.start_unix_nanos > state.start {
                    // A reset: the series restarted.
                    *state = next;
                    Ok(())
                } else if obs.start_unix_nanos < state.start {
                    // A late point of an earlier incarnation: nothing to compare with.
                    Ok(())
                } else if obs.unix_nanos >= state.last_ts {
                    if obs.value < state.last_value {
                        return Err(Rejection::DecreasingCounter);
                    }
                    *state = next;
                    Ok(())
                } else if obs.value > state.last_value {
                    // Out of order: an earlier point cannot exceed a later one.
                    Err(Rejection::DecreasingCounter)
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(series: u64, start: u64, ts: u64, value: f64) -> CounterObservation {
        CounterObservation {
            series,
            start_unix_nanos: start,
            unix_nanos: ts,
            value,
            cumulative: true,
        }
    }

    #[test]
    fn counters_never_negative_nor_decreasing() {
        let mut c = CounterSeries::with_capacity(100);
        assert_eq!(
            c.observe(obs(1, 10, 20, -1.0)),
            Err(Rejection::NegativeCounter)
        );
        assert_eq!(
            c.observe(obs(1, 10, 20, f64::NAN)),
            Err(Rejection::NonFiniteCounter)
        );
        assert_eq!(c.observe(obs(1, 10, 20, 5.0)), Ok(()));
        assert_eq!(c.observe(obs(1, 10, 30, 7.0)), Ok(()));
        // Same point again (an SDK retry) is fine.
        assert_eq!(c.observe(obs(1, 10, 30, 7.0)), Ok(()));
        assert_eq!(
            c.observe(obs(1, 10, 40, 6.0)),
            Err(Rejection::DecreasingCounter)
        );
        // Another series is independent.
        assert_eq!(c.observe(obs(2, 10, 40, 1.0)), Ok(()));
        // A new start time is a reset.
        assert_eq!(c.observe(obs(1, 35, 40, 1.0)), Ok(()));
        assert_eq!(
            c.observe(obs(1, 35, 50, 0.5)),
            Err(Rejection::DecreasingCounter)
        );
        // Out-of-order point larger than a later one is inconsistent.
        assert_eq!(
            c.observe(obs(1, 35, 38, 3.0)),
            Err(Rejection::DecreasingCounter)
        );
        assert_eq!(c.observe(obs(1, 35, 38, 0.7)), Ok(()));
    }

    #[test]
    fn delta_counters_only_need_non_negative_values() {
        let mut c = CounterSeries::with_capacity(10);
        let mut o = obs(1, 10, 20, 5.0);
        o.cumulative = false;
        assert_eq!(c.observe(o), Ok(()));
        o.value = 1.0;
        o.unix_nanos = 30;
        assert_eq!(c.observe(o), Ok(()));
        o.value = -1.0;
        assert_eq!(c.observe(o), Err(Rejection::NegativeCounter));
        assert!(c.is_empty());
    }

    #[test]
    fn capacity_bounds_memory() {
        let mut c = CounterSeries::with_capacity(2);
        for s in 0..10 {
            c.observe(obs(s, 1, 2, 3.0)).unwrap();
            assert!(c.len() <= 2);
        }
    }
}
