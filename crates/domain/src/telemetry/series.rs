//! Read-side rules over metric series: how a counter's increase is derived
//! from its points (resets, delta temporality), how time buckets align, and
//! how a quantile is estimated from histogram buckets. Pure functions.

/// The start of the bucket of width `interval_ns` holding `ts_ns`; buckets
/// start at multiples of the interval since the Unix epoch.
pub fn bucket_start(ts_ns: i64, interval_ns: i64) -> i64 {
    ts_ns - ts_ns.rem_euclid(interval_ns)
}

/// One point of a cumulative series, in time order within its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CumulativePoint {
    pub start_ns: i64,
    pub ts_ns: i64,
}

/// What a cumulative point adds over the previous point of its series.
///
/// * same start time and not decreasing: the difference;
/// * a new start time, or a value below the previous one: a reset, and the
///   counter counted from zero again, so the whole value is new;
/// * no previous point in the queried window: the increase is known only if
///   the series started inside the window (`start_ns >= window_start_ns`),
///   then it is the whole value; otherwise there is no baseline (`None`).
pub fn cumulative_increase(
    prev: Option<(CumulativePoint, f64)>,
    cur: CumulativePoint,
    value: f64,
    window_start_ns: i64,
) -> Option<f64> {
    match prev {
        Some((p, pv)) if p.start_ns == cur.start_ns && value >= pv => Some(value - pv),
        Some(_) => Some(value),
        None if cur.start_ns > 0 && cur.start_ns >= window_start_ns => Some(value),
        None => None,
    }
}

/// Element-wise [`cumulative_increase`] of histogram bucket counts: a reset
/// when the start time changes, the bucket layout changes, or any count falls.
pub fn cumulative_bucket_increase(
    prev: Option<(CumulativePoint, &[u64])>,
    cur: CumulativePoint,
    counts: &[u64],
    window_start_ns: i64,
    out: &mut Vec<u64>,
) -> bool {
    out.clear();
    match prev {
        Some((p, pc))
            if p.start_ns == cur.start_ns
                && pc.len() == counts.len()
                && pc.iter().zip(counts).all(|(a, b)| b >= a) =>
        {
            out.extend(pc.iter().zip(counts).map(|(a, b)| b - a));
            true
        }
        Some(_) => {
            out.extend_from_slice(counts);
            true
        }
        None if cur.start_ns > 0 && cur.start_ns >= window_start_ns => {
            out.extend_from_slice(counts);
            true
        }
        None => false,
    }
}

/// Histogram buckets merged across points and series: count per upper bound
/// (`+∞` for the overflow bucket), plus the observed min and max if known.
#[derive(Debug, Clone, Default)]
pub struct MergedHistogram {
    /// (upper bound, count), sorted by bound; bounds are unique.
    buckets: Vec<(f64, u64)>,
    min: Option<f64>,
    max: Option<f64>,
}

impl MergedHistogram {
    /// Adds one point's buckets: `counts[i]` observations in
    /// `(bounds[i-1], bounds[i]]`, the last one above every bound.
    pub fn add(&mut self, bounds: &[f64], counts: &[u64], min: Option<f64>, max: Option<f64>) {
        // Empty buckets are kept too: their bounds are the lower bounds of
        // the buckets above them.
        for (i, &c) in counts.iter().enumerate() {
            let upper = bounds.get(i).copied().unwrap_or(f64::INFINITY);
            match self.buckets.binary_search_by(|(b, _)| b.total_cmp(&upper)) {
                Ok(pos) => self.buckets[pos].1 += c,
                Err(pos) => self.buckets.insert(pos, (upper, c)),
            }
        }
        if counts.iter().any(|&c| c > 0) {
            self.min = merge(self.min, min, f64::min);
            self.max = merge(self.max, max, f64::max);
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, c)| c).sum()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), interpolated linearly within its bucket
    /// as Prometheus' `histogram_quantile` does. The first bucket starts at 0
    /// (or at the observed min); the overflow bucket ends at the observed max,
    /// else the estimate is its lower bound. Clamped to [min, max] when known.
    /// `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total as f64;
        let mut seen = 0u64;
        let mut lower = match self.min {
            Some(m) => m,
            None => self.buckets[0].0.min(0.0),
        };
        let mut estimate = None;
        for &(upper, c) in &self.buckets {
            if (seen + c) as f64 >= rank && c > 0 {
                let upper = if upper.is_infinite() {
                    self.max.unwrap_or(lower)
                } else {
                    upper
                };
                let lower = lower.min(upper);
                let within = (rank - seen as f64) / c as f64;
                estimate = Some(lower + (upper - lower) * within);
                break;
            }
            seen += c;
            if upper.is_finite() {
                lower = self.min.map_or(upper, |m| upper.max(m));
            }
        }
        let mut v = estimate?;
        if let Some(m) = self.min {
            v = v.max(m);
        }
        if let Some(m) = self.max {
            v = v.min(m);
        }
        Some(v)
    }
}

/// Combines two optional extremes with `f`; a missing one leaves the other.
pub(super) fn merge(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn p(start: i64, ts: i64) -> CumulativePoint {
        CumulativePoint {
            start_ns: start,
            ts_ns: ts,
        }
    }

    #[test]
    fn buckets_align_to_the_epoch() {
        assert_eq!(bucket_start(0, 60 * S), 0);
        assert_eq!(bucket_start(61 * S, 60 * S), 60 * S);
        assert_eq!(bucket_start(119 * S + 999, 60 * S), 60 * S);
        assert_eq!(bucket_start(-1, 60 * S), -60 * S);
    }

    #[test]
    fn counter_increase_handles_resets_and_missing_baselines() {
        // Started before the window: first point has no baseline.
        assert_eq!(cumulative_increase(None, p(1, 100), 10.0, 50), None);
        // Started inside the window: counted from zero.
        assert_eq!(cumulative_increase(None, p(60, 100), 10.0, 50), Some(10.0));
        // Normal growth.
        assert_eq!(
            cumulative_increase(Some((p(1, 100), 10.0)), p(1, 110), 15.0, 50),
            Some(5.0)
        );
        // Drop without a new start time: a reset.
        assert_eq!(
            cumulative_increase(Some((p(1, 100), 10.0)), p(1, 110), 3.0, 50),
            Some(3.0)
        );
        // New start time: a reset even if the value grew.
        assert_eq!(
            cumulative_increase(Some((p(1, 100), 10.0)), p(105, 110), 12.0, 50),
            Some(12.0)
        );
    }

    #[test]
    fn bucket_increase_is_elementwise_with_resets() {
        let mut out = Vec::new();
        assert!(cumulative_bucket_increase(
            Some((p(1, 1), &[1, 2, 3])),
            p(1, 2),
            &[2, 2, 5],
            0,
            &mut out
        ));
        assert_eq!(out, [1, 0, 2]);
        assert!(cumulative_bucket_increase(
            Some((p(1, 1), &[1, 2, 3])),
            p(1, 2),
            &[0, 2, 5],
            0,
            &mut out
        ));
        assert_eq!(out, [0, 2, 5]);
        assert!(!cumulative_bucket_increase(
            None,
            p(1, 2),
            &[0, 2, 5],
            5,
            &mut out
        ));
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut h = MergedHistogram::default();
        // 10 in (0,10], 10 in (10,20], 0 in (20,+inf)
        h.add(&[10.0, 20.0], &[10, 10, 0], None, None);
        assert_eq!(h.quantile(0.5), Some(10.0));
        assert_eq!(h.quantile(0.25), Some(5.0));
        assert_eq!(h.quantile(0.75), Some(15.0));
        assert_eq!(h.quantile(1.0), Some(20.0));
        // Overflow bucket ends at the observed max.
        let mut h = MergedHistogram::default();
        h.add(&[10.0], &[0, 4], Some(12.0), Some(30.0));
        assert_eq!(h.quantile(0.5), Some(21.0));
        // Merging different layouts keeps counts per bound.
        let mut h = MergedHistogram::default();
        h.add(&[10.0], &[5, 0], None, None);
        h.add(&[10.0, 20.0], &[5, 10, 0], None, None);
        assert_eq!(h.count(), 20);
        assert_eq!(h.quantile(0.5), Some(10.0));
        assert_eq!(MergedHistogram::default().quantile(0.5), None);
        // An empty first bucket still bounds the second from below.
        let mut h = MergedHistogram::default();
        h.add(&[10.0, 20.0], &[0, 10, 0], None, None);
        assert_eq!(h.quantile(0.5), Some(15.0));
    }
}
