//! Read-side quantile rules for the distributions beside explicit-bucket
//! histograms: OTLP exponential histograms (bucket bounds, downscaling, the
//! increase between cumulative points, the quantile of merged buckets) and
//! summaries (a quantile from the quantiles a point sent). Pure functions;
//! nothing here panics, whatever the input.

use super::series::{CumulativePoint, merge};

/// Two sent quantiles closer than this are the same quantile.
const SAME_QUANTILE: f64 = 1e-9;

/// `base^exponent` at exponential histogram scale `scale`, where
/// `base = 2^(2^-scale)`; computed as `2^(exponent · 2^-scale)`, so a power
/// beyond the `f64` range is `+∞` (or `0` below it) rather than an error.
/// `base^0` is 1 at every scale.
fn base_pow(scale: i32, exponent: f64) -> f64 {
    if exponent == 0.0 {
        // 0 · ∞ would be NaN at a scale of -1024 or below.
        return 1.0;
    }
    (exponent * (-f64::from(scale)).exp2()).exp2()
}

/// The bucket boundary `base^index` at exponential histogram scale `scale`
/// (`base = 2^(2^-scale)`): the lower bound of the positive bucket `index`
/// and the upper bound of the positive bucket `index - 1`; negated, the same
/// for negative buckets. Computed as `2^(index · 2^-scale)`: exact at scales
/// ≤ 0, within a few ulps above; `+∞` when the boundary is beyond the `f64`
/// range, `0` when it is below the smallest subnormal.
pub fn exp_boundary(scale: i32, index: i64) -> f64 {
    base_pow(scale, index as f64)
}

/// How many index bits a downscale from `from` to `to` drops; 0 when `to` is
/// not lower. Capped at 63, where every index is already 0 or -1.
fn shift(from: i32, to: i32) -> u32 {
    (i64::from(from) - i64::from(to)).clamp(0, 63) as u32
}

/// The buckets of one OTLP exponential histogram point
/// (`ExponentialHistogramDataPoint`), or of the increase between two points.
///
/// At scale `s` the base is `2^(2^-s)`. The positive bucket of index `i`
/// holds the values in `(base^i, base^(i+1)]`; the negative bucket of index
/// `i` the values in `[-base^(i+1), -base^i)`; the zero bucket the values in
/// `[-zero_threshold, zero_threshold]`. `positive[k]` counts the positive
/// bucket of index `positive_offset + k`, `negative[k]` the negative bucket
/// of index `negative_offset + k`; indices are computed in 64 bits, so no
/// offset and length overflow them.
///
/// Stored points have a scale in -10..=20 (see
/// [`check_exponential_histogram`](super::check_exponential_histogram)); the
/// functions here accept any scale and index without panicking, a bound
/// beyond the `f64` range being `±∞` (see [`exp_boundary`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExpBuckets {
    pub scale: i32,
    pub zero_count: u64,
    pub zero_threshold: f64,
    pub positive_offset: i32,
    pub positive: Vec<u64>,
    pub negative_offset: i32,
    pub negative: Vec<u64>,
}

impl ExpBuckets {
    /// Every observation: the zero count plus all positive and negative
    /// bucket counts (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.positive
            .iter()
            .chain(&self.negative)
            .fold(self.zero_count, |acc, &c| acc.saturating_add(c))
    }

    /// Re-expresses the buckets at the lower scale `to_scale`, as the data
    /// model does when merging histograms: the bucket of index `i` at scale
    /// `s` becomes part of the bucket `i >> (s - to_scale)` (an arithmetic
    /// shift, so negative indices round towards −∞), whose range contains
    /// it; counts of buckets that meet are added (saturating). The offsets
    /// become the shifted first indices and the vectors never grow. The zero
    /// bucket is unchanged. A `to_scale` not below the current scale changes
    /// nothing: finer buckets cannot be recovered.
    pub fn downscale(&mut self, to_scale: i32) {
        if to_scale >= self.scale {
            return;
        }
        let by = shift(self.scale, to_scale);
        downscale_dense(&mut self.positive_offset, &mut self.positive, by);
        downscale_dense(&mut self.negative_offset, &mut self.negative, by);
        self.scale = to_scale;
    }
}

/// [`ExpBuckets::downscale`] of one side, in place: the count at position
/// `p` moves to position `((offset + p) >> by) - (offset >> by)`, which is
/// never after `p`, so a forward pass reads each original count before
/// anything is written over it.
fn downscale_dense(offset: &mut i32, counts: &mut Vec<u64>, by: u32) {
    let first = i64::from(*offset);
    let new_first = first >> by;
    let mut len = 0;
    for p in 0..counts.len() {
        let slot = (((first + p as i64) >> by) - new_first) as usize;
        let c = std::mem::take(&mut counts[p]);
        counts[slot] = counts[slot].saturating_add(c);
        len = slot + 1;
    }
    counts.truncate(len);
    // An arithmetic shift moves an i32 towards zero or -1: it still fits.
    *offset = new_first as i32;
}

/// Subtracts `before` from `now`, both at the same scale, per absolute
/// bucket index; `None` when some count of `before` is above the count
/// `now` has at that index (a bucket outside `now`'s range counts 0).
fn subtract(now: &mut ExpBuckets, before: &ExpBuckets) -> Option<()> {
    now.zero_count = now.zero_count.checked_sub(before.zero_count)?;
    subtract_side(
        now.positive_offset,
        &mut now.positive,
        before.positive_offset,
        &before.positive,
    )?;
    subtract_side(
        now.negative_offset,
        &mut now.negative,
        before.negative_offset,
        &before.negative,
    )
}

fn subtract_side(
    now_offset: i32,
    now: &mut [u64],
    before_offset: i32,
    before: &[u64],
) -> Option<()> {
    for (k, &b) in before.iter().enumerate() {
        if b == 0 {
            continue;
        }
        let index = i64::from(before_offset) + k as i64;
        let pos = usize::try_from(index - i64::from(now_offset)).ok()?;
        let slot = now.get_mut(pos)?;
        *slot = slot.checked_sub(b)?;
    }
    Some(())
}

/// What a cumulative exponential histogram point adds over the previous
/// point of its series: [`cumulative_increase`](super::series::cumulative_increase)
/// per bucket.
///
/// * same start time: both points are brought to the lower of their two
///   scales ([`ExpBuckets::downscale`]) and the previous counts subtracted
///   per absolute bucket index, the zero bucket too; the increase has that
///   lower scale, the current point's bucket ranges and zero threshold. A
///   change of scale or zero threshold is not by itself a reset.
/// * a new start time, or any count below the previous one at the same index
///   (after downscaling, an index the current point does not cover counting
///   0): a reset, and the whole current point (at its own scale) is the
///   increase;
/// * no previous point in the queried window: the whole current point if
///   the series started inside the window (`start_ns > 0` and
///   `start_ns >= window_start_ns`), otherwise there is no baseline (`None`).
pub fn cumulative_exp_increase(
    prev: Option<(CumulativePoint, &ExpBuckets)>,
    cur: CumulativePoint,
    buckets: &ExpBuckets,
    window_start_ns: i64,
) -> Option<ExpBuckets> {
    match prev {
        Some((p, before)) if p.start_ns == cur.start_ns => {
            let scale = before.scale.min(buckets.scale);
            let mut now = buckets.clone();
            now.downscale(scale);
            let diff = if before.scale > scale {
                let mut before = before.clone();
                before.downscale(scale);
                subtract(&mut now, &before)
            } else {
                subtract(&mut now, before)
            };
            Some(match diff {
                Some(()) => now,
                None => buckets.clone(),
            })
        }
        Some(_) => Some(buckets.clone()),
        None if cur.start_ns > 0 && cur.start_ns >= window_start_ns => Some(buckets.clone()),
        None => None,
    }
}

/// Exponential histogram buckets merged across points and series (one time
/// bucket of a query), at the lowest scale among the points added, plus the
/// observed min and max if known.
#[derive(Debug, Clone, Default)]
pub struct MergedExpHistogram {
    /// The scale of every bucket held; `None` until a point with
    /// observations is added.
    scale: Option<i32>,
    zero_count: u64,
    zero_threshold: f64,
    /// (index, count), sorted by index; indices unique, counts above 0.
    positive: Vec<(i64, u64)>,
    /// As `positive`, for the negative buckets.
    negative: Vec<(i64, u64)>,
    min: Option<f64>,
    max: Option<f64>,
}

/// A bucket in value order, as [`MergedExpHistogram::quantile`] walks them.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Negative(i64),
    Zero,
    Positive(i64),
}

impl MergedExpHistogram {
    /// Adds one point's buckets with its observed `min` and `max` (if sent).
    ///
    /// The merge keeps the lowest scale: whichever of the held buckets and
    /// the point has the higher scale is downscaled
    /// ([`ExpBuckets::downscale`]) before counts are added per bucket index
    /// (saturating). Zero counts add up and the zero threshold is the largest
    /// seen; buckets inside a larger threshold are not moved into the zero
    /// bucket. A point without observations changes nothing: neither the
    /// scale, nor the zero threshold, nor min and max (an empty point's min
    /// and max mean nothing).
    pub fn add(&mut self, b: &ExpBuckets, min: Option<f64>, max: Option<f64>) {
        if b.count() == 0 {
            return;
        }
        let scale = self.scale.map_or(b.scale, |held| held.min(b.scale));
        if let Some(held) = self.scale {
            let by = shift(held, scale);
            if by > 0 {
                downscale_sparse(&mut self.positive, by);
                downscale_sparse(&mut self.negative, by);
            }
        }
        self.scale = Some(scale);
        let by = shift(b.scale, scale);
        merge_side(&mut self.positive, b.positive_offset, &b.positive, by);
        merge_side(&mut self.negative, b.negative_offset, &b.negative, by);
        self.zero_count = self.zero_count.saturating_add(b.zero_count);
        self.zero_threshold = self.zero_threshold.max(b.zero_threshold);
        self.min = merge(self.min, min, f64::min);
        self.max = merge(self.max, max, f64::max);
    }

    /// Every observation merged: the zero count plus all bucket counts
    /// (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.positive
            .iter()
            .chain(&self.negative)
            .fold(self.zero_count, |acc, &(_, c)| acc.saturating_add(c))
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) of the merged observations.
    ///
    /// The rank is `q · count`. Buckets are walked in value order: the
    /// negative buckets from the most negative (highest index) up, then the
    /// zero bucket, then the positive buckets by ascending index. The rank
    /// falls in the first non-empty bucket whose cumulative count reaches
    /// it, `frac = (rank − count below the bucket) / bucket count` of the
    /// way through it, and the estimate is interpolated there:
    ///
    /// * positive bucket `(l, u]`: exponentially, `l · (u/l)^frac`, i.e.
    ///   `base^(index + frac)` (linear on a log scale, as Prometheus does for
    ///   native histograms);
    /// * negative bucket `[−u, −l)`: mirrored, `−u · (l/u)^frac`, i.e.
    ///   `−base^(index + 1 − frac)`;
    /// * zero bucket: linearly across `[−zero_threshold, zero_threshold]`,
    ///   or exactly 0 when the threshold is 0 (or NaN, or negative).
    ///
    /// The estimate is then kept within the holding bucket's bounds and
    /// finally clamped to the observed [min, max] when known (so min and max,
    /// which are exact observations, win over bucket bounds they contradict).
    /// No finite observation lies beyond ±`f64::MAX`, so a bucket bound
    /// beyond the `f64` range (an extreme index or scale) is taken as
    /// ±`f64::MAX`: an estimate there is at most `f64::MAX` in magnitude,
    /// and with a known max (or min) it is that max (min).
    ///
    /// `None` without observations, or when `q` is NaN or outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let scale = self.scale?;
        let rank = q * total as f64;
        let slots = self
            .negative
            .iter()
            .rev()
            .map(|&(i, c)| (Slot::Negative(i), c))
            .chain(std::iter::once((Slot::Zero, self.zero_count)))
            .chain(self.positive.iter().map(|&(i, c)| (Slot::Positive(i), c)));
        let mut below = 0u64;
        let mut holding = None;
        for (slot, c) in slots {
            if c == 0 {
                continue;
            }
            holding = Some((slot, below, c));
            let through = below.saturating_add(c);
            if through as f64 >= rank {
                break;
            }
            below = through;
        }
        // Only a saturated count can miss the rank: the last non-empty
        // bucket then holds it, at its top.
        let (slot, below, c) = holding?;
        let frac = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
        let mut v = self.estimate(scale, slot, frac);
        if let Some(m) = self.min {
            v = v.max(m);
        }
        if let Some(m) = self.max {
            v = v.min(m);
        }
        Some(v)
    }

    /// The estimate `frac` of the way through `slot`, within its bounds
    /// (those beyond the `f64` range taken as ±`f64::MAX`).
    fn estimate(&self, scale: i32, slot: Slot, frac: f64) -> f64 {
        match slot {
            Slot::Positive(i) => {
                let i = i as f64;
                let (l, u) = (base_pow(scale, i), base_pow(scale, i + 1.0));
                base_pow(scale, i + frac).max(l).min(u).min(f64::MAX)
            }
            Slot::Negative(i) => {
                let i = i as f64;
                let (l, u) = (base_pow(scale, i), base_pow(scale, i + 1.0));
                (-base_pow(scale, i + 1.0 - frac))
                    .max(-u)
                    .min(-l)
                    .max(-f64::MAX)
            }
            Slot::Zero => {
                // `> 0` is false for NaN.
                if self.zero_threshold > 0.0 {
                    let t = self.zero_threshold.min(f64::MAX);
                    t * (2.0 * frac - 1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Downscales sorted sparse buckets in place by `by` index bits: indices
/// shift arithmetically (the order is kept) and buckets that meet add up.
fn downscale_sparse(buckets: &mut Vec<(i64, u64)>, by: u32) {
    let mut len = 0usize;
    for r in 0..buckets.len() {
        let (i, c) = buckets[r];
        let i = i >> by;
        match len.checked_sub(1).map(|w| &mut buckets[w]) {
            Some(last) if last.0 == i => last.1 = last.1.saturating_add(c),
            _ => {
                buckets[len] = (i, c);
                len += 1;
            }
        }
    }
    buckets.truncate(len);
}

/// Adds one point's side (`counts[k]` at index `offset + k`, downscaled by
/// `by` bits) into sorted sparse buckets: one merge of two ascending runs.
fn merge_side(held: &mut Vec<(i64, u64)>, offset: i32, counts: &[u64], by: u32) {
    let mut incoming = counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(k, &c)| ((i64::from(offset) + k as i64) >> by, c))
        .peekable();
    if incoming.peek().is_none() {
        return;
    }
    let old = std::mem::take(held);
    let mut out: Vec<(i64, u64)> = Vec::with_capacity(old.len() + counts.len());
    let mut old = old.into_iter().peekable();
    loop {
        let next = match (old.peek(), incoming.peek()) {
            (Some(a), Some(b)) if a.0 <= b.0 => old.next(),
            (_, Some(_)) => incoming.next(),
            (Some(_), None) => old.next(),
            (None, None) => break,
        };
        let Some((i, c)) = next else { break };
        match out.last_mut() {
            Some((last, n)) if *last == i => *n = n.saturating_add(c),
            _ => out.push((i, c)),
        }
    }
    *held = out;
}

/// The `q`-quantile (0 ≤ q ≤ 1) of an OTLP summary point from the
/// `(quantile, value)` pairs it sent, in any order:
///
/// * a sent quantile within 1e-9 of `q` (the nearest one): its value, exactly;
/// * between two sent quantiles: linear interpolation between the values of
///   the nearest one below and the nearest one above;
/// * below the lowest or above the highest sent quantile: the value of that
///   nearest sent quantile (a summary says nothing beyond its quantiles).
///
/// Pairs with a NaN quantile are ignored; values are used as sent (a NaN
/// value gives NaN). `None` when no pair is usable, or when `q` is NaN or
/// outside [0, 1].
pub fn summary_quantile(sent: &[(f64, f64)], q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut exact: Option<(f64, f64)> = None;
    let mut below: Option<(f64, f64)> = None;
    let mut above: Option<(f64, f64)> = None;
    for &(sq, v) in sent {
        if sq.is_nan() {
            continue;
        }
        let distance = (sq - q).abs();
        if distance <= SAME_QUANTILE {
            if exact.is_none_or(|(d, _)| distance < d) {
                exact = Some((distance, v));
            }
        } else if sq < q {
            if below.is_none_or(|(b, _)| sq > b) {
                below = Some((sq, v));
            }
        } else if above.is_none_or(|(a, _)| sq < a) {
            above = Some((sq, v));
        }
    }
    match (exact, below, above) {
        (Some((_, v)), _, _) => Some(v),
        (None, Some((qb, vb)), Some((qa, va))) => {
            // qa - qb > 2e-9, or infinite (then the fraction is 0).
            let frac = (q - qb) / (qa - qb);
            Some(vb + (va - vb) * frac)
        }
        (None, Some((_, v)), None) | (None, None, Some((_, v))) => Some(v),
        (None, None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn p(start: i64, ts: i64) -> CumulativePoint {
        CumulativePoint {
            start_ns: start,
            ts_ns: ts,
        }
    }

    fn positive(scale: i32, offset: i32, counts: &[u64]) -> ExpBuckets {
        ExpBuckets {
            scale,
            positive_offset: offset,
            positive: counts.to_vec(),
            ..ExpBuckets::default()
        }
    }

    fn merged(points: &[&ExpBuckets]) -> MergedExpHistogram {
        let mut h = MergedExpHistogram::default();
        for b in points {
            h.add(b, None, None);
        }
        h
    }

    #[track_caller]
    fn close(got: Option<f64>, want: f64) {
        let got = got.expect("a quantile");
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn boundaries_are_powers_of_the_base() {
        assert_eq!(exp_boundary(0, 3), 8.0);
        assert_eq!(exp_boundary(0, -2), 0.25);
        assert_eq!(exp_boundary(-1, 1), 4.0);
        close(Some(exp_boundary(1, 1)), std::f64::consts::SQRT_2);
        assert_eq!(exp_boundary(0, 1024), f64::INFINITY);
        assert_eq!(exp_boundary(0, -1100), 0.0);
        assert_eq!(exp_boundary(-10, 1), f64::INFINITY);
        // Scales outside the data model: degenerate, never NaN.
        assert_eq!(exp_boundary(i32::MIN, 0), 1.0);
        assert_eq!(exp_boundary(i32::MIN, 1), f64::INFINITY);
        assert_eq!(exp_boundary(i32::MIN, -1), 0.0);
        assert_eq!(exp_boundary(i32::MAX, i64::MAX), 1.0);
    }

    #[test]
    fn positive_buckets_at_scale_zero_interpolate_exponentially() {
        // Base 2: 2 in (1,2], 4 in (2,4], 2 in (4,8].
        let b = positive(0, 0, &[2, 4, 2]);
        assert_eq!(b.count(), 8);
        let h = merged(&[&b]);
        assert_eq!(h.count(), 8);
        close(h.quantile(0.0), 1.0);
        close(h.quantile(0.125), std::f64::consts::SQRT_2);
        close(h.quantile(0.25), 2.0);
        // Rank 4: half-way through (2,4] on a log scale, 2·√2.
        close(h.quantile(0.5), 2.0 * std::f64::consts::SQRT_2);
        close(h.quantile(0.75), 4.0);
        close(h.quantile(0.875), 4.0 * std::f64::consts::SQRT_2);
        close(h.quantile(1.0), 8.0);
        // Observed min and max clamp the ends.
        let mut h = MergedExpHistogram::default();
        h.add(&b, Some(1.5), Some(6.0));
        close(h.quantile(0.0), 1.5);
        close(h.quantile(0.5), 2.0 * std::f64::consts::SQRT_2);
        close(h.quantile(1.0), 6.0);
        for q in [-0.1, 1.1, f64::NAN] {
            assert_eq!(h.quantile(q), None, "{q}");
        }
        assert_eq!(MergedExpHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn mixed_scales_merge_at_the_lowest() {
        // Scale 1: one each in (1,√2], (√2,2], (2,2√2], (2√2,4]; at scale 0
        // that is 2 in (1,2] and 2 in (2,4].
        let fine = positive(1, 0, &[1, 1, 1, 1]);
        // Scale 0: 4 in (2,4].
        let coarse = positive(0, 1, &[4]);
        for h in [merged(&[&fine, &coarse]), merged(&[&coarse, &fine])] {
            assert_eq!(h.count(), 8);
            assert_eq!(h.scale, Some(0));
            assert_eq!(h.positive, [(0, 2), (1, 6)]);
            close(h.quantile(0.25), 2.0);
            // Rank 5: 3 of the 6 in (2,4].
            close(h.quantile(0.625), 2.0 * std::f64::consts::SQRT_2);
            close(h.quantile(1.0), 4.0);
        }
        // A point without observations neither lowers the scale nor
        // brings its min and max.
        let mut h = merged(&[&fine]);
        h.add(&positive(-5, 0, &[0, 0]), Some(-100.0), Some(100.0));
        assert_eq!(h.scale, Some(1));
        close(h.quantile(1.0), 4.0);
        close(h.quantile(0.5), 2.0);
    }

    #[test]
    fn negative_buckets_are_walked_from_the_most_negative() {
        // Scale 0: 1 in [-2,-1), 2 in [-4,-2).
        let b = ExpBuckets {
            scale: 0,
            negative_offset: 0,
            negative: vec![1, 2],
            ..ExpBuckets::default()
        };
        let h = merged(&[&b]);
        close(h.quantile(0.0), -4.0);
        // Rank 1: half-way through [-4,-2) on a log scale.
        close(h.quantile(1.0 / 3.0), -2.0 * std::f64::consts::SQRT_2);
        close(h.quantile(2.0 / 3.0), -2.0);
        close(h.quantile(5.0 / 6.0), -std::f64::consts::SQRT_2);
        close(h.quantile(1.0), -1.0);
    }

    #[test]
    fn the_zero_bucket_sits_between_negatives_and_positives() {
        // 1 in [-2,-1), 2 in [-0.5,0.5], 1 in (1,2].
        let b = ExpBuckets {
            scale: 0,
            zero_count: 2,
            zero_threshold: 0.5,
            positive_offset: 0,
            positive: vec![1],
            negative_offset: 0,
            negative: vec![1],
        };
        let h = merged(&[&b]);
        assert_eq!(h.count(), 4);
        close(h.quantile(0.25), -1.0);
        // Linear across the zero bucket: ranks 1..3 map to -0.5..0.5.
        close(h.quantile(0.375), -0.25);
        close(h.quantile(0.5), 0.0);
        close(h.quantile(0.75), 0.5);
        close(h.quantile(0.875), std::f64::consts::SQRT_2);
        // A zero threshold of 0: the zero bucket is exactly 0.
        let b = ExpBuckets {
            zero_threshold: 0.0,
            ..b
        };
        let h = merged(&[&b]);
        assert_eq!(h.quantile(0.375), Some(0.0));
        assert_eq!(h.quantile(0.5), Some(0.0));
        // Merging keeps the largest threshold and adds zero counts.
        let mut h = merged(&[&b]);
        h.add(
            &ExpBuckets {
                scale: 0,
                zero_count: 2,
                zero_threshold: 1.0,
                ..ExpBuckets::default()
            },
            None,
            None,
        );
        assert_eq!(h.count(), 6);
        close(h.quantile(0.5), 0.0);
        close(h.quantile(1.0 / 6.0), -1.0);
        close(h.quantile(2.0 / 6.0), -0.5);
    }

    #[test]
    fn downscaling_shifts_indices_and_adds_counts() {
        // Scale 2, indices -3..=1 -> scale 0 (shift 2): -1,-1,-1,0,0.
        let mut b = ExpBuckets {
            scale: 2,
            zero_count: 7,
            zero_threshold: 0.1,
            positive_offset: -3,
            positive: vec![1, 2, 3, 4, 5],
            negative_offset: 5,
            negative: vec![1, 1, 1, 1],
        };
        b.downscale(0);
        assert_eq!(
            b,
            ExpBuckets {
                scale: 0,
                zero_count: 7,
                zero_threshold: 0.1,
                positive_offset: -1,
                positive: vec![6, 9],
                negative_offset: 1,
                negative: vec![3, 1],
            }
        );
        // Never up.
        let before = b.clone();
        b.downscale(3);
        assert_eq!(b, before);
        // One more step: -1 and 0 at scale 0 are -1 and 0 at scale -1.
        b.downscale(-1);
        assert_eq!(
            (b.positive_offset, b.positive.as_slice()),
            (-1, &[6, 9][..])
        );
        assert_eq!((b.negative_offset, b.negative.as_slice()), (0, &[3, 1][..]));
        // The widest shift, at the edges of i32 and u64.
        let mut b = ExpBuckets {
            scale: 20,
            positive_offset: i32::MAX - 1,
            positive: vec![u64::MAX, 1, 2],
            negative_offset: i32::MIN,
            negative: vec![1, 2],
            ..ExpBuckets::default()
        };
        b.downscale(-10);
        assert_eq!(
            (b.positive_offset, b.positive.as_slice()),
            (1, &[u64::MAX, 2][..])
        );
        assert_eq!((b.negative_offset, b.negative.as_slice()), (-2, &[3][..]));
        let mut b = positive(i32::MAX, -5, &[1, 1, 1, 1, 1, 1]);
        b.downscale(i32::MIN);
        assert_eq!(
            (b.positive_offset, b.positive.as_slice()),
            (-1, &[5, 1][..])
        );
    }

    #[test]
    fn exp_increase_subtracts_per_index_with_resets() {
        let prev = ExpBuckets {
            zero_count: 1,
            ..positive(0, 0, &[1, 2, 3])
        };
        let cur = ExpBuckets {
            zero_count: 3,
            ..positive(0, -1, &[4, 2, 2, 5])
        };
        let inc = cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &cur, 0).unwrap();
        assert_eq!(
            inc,
            ExpBuckets {
                zero_count: 2,
                ..positive(0, -1, &[4, 1, 0, 2])
            }
        );
        // A count fell: a reset, the whole current point.
        let fell = ExpBuckets {
            zero_count: 1,
            ..positive(0, 0, &[1, 1, 5])
        };
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &fell, 0),
            Some(fell.clone())
        );
        // A populated bucket left the current range: also a reset.
        let moved = ExpBuckets {
            zero_count: 1,
            ..positive(0, 1, &[9, 9])
        };
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &moved, 0),
            Some(moved.clone())
        );
        // The zero bucket fell.
        let zero_fell = positive(0, 0, &[1, 2, 3]);
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &zero_fell, 0),
            Some(zero_fell.clone())
        );
        // A new start time.
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(5, 6), &cur, 0),
            Some(cur.clone())
        );
        // No previous point.
        assert_eq!(
            cumulative_exp_increase(None, p(60, 100), &cur, 50),
            Some(cur.clone())
        );
        assert_eq!(cumulative_exp_increase(None, p(1, 100), &cur, 50), None);
        assert_eq!(cumulative_exp_increase(None, p(0, 100), &cur, 0), None);
    }

    #[test]
    fn exp_increase_across_a_scale_change_uses_the_lower_scale() {
        // Previous at scale 1: at scale 0, 2 in (1,2] and 2 in (2,4].
        let prev = ExpBuckets {
            zero_count: 1,
            ..positive(1, 0, &[1, 1, 1, 1])
        };
        let cur = ExpBuckets {
            zero_count: 2,
            ..positive(0, 0, &[3, 5, 1])
        };
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &cur, 0),
            Some(ExpBuckets {
                zero_count: 1,
                ..positive(0, 0, &[1, 3, 1])
            })
        );
        // The current point at the finer scale is downscaled instead.
        let prev = positive(0, 0, &[2]);
        let cur = positive(1, 0, &[2, 1, 0]);
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &cur, 0),
            Some(positive(0, 0, &[1, 0]))
        );
        // Downscaled, a count fell: the whole current point, at its scale.
        let cur = positive(1, 0, &[1, 0, 4]);
        assert_eq!(
            cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &cur, 0),
            Some(cur.clone())
        );
    }

    #[test]
    fn summary_quantiles_are_exact_interpolated_or_nearest() {
        let sent = [(0.9, 20.0), (0.5, 10.0), (f64::NAN, 99.0), (0.99, 50.0)];
        assert_eq!(summary_quantile(&sent, 0.5), Some(10.0));
        assert_eq!(summary_quantile(&sent, 0.5 + 1e-12), Some(10.0));
        assert_eq!(summary_quantile(&sent, 0.99), Some(50.0));
        close(summary_quantile(&sent, 0.7), 15.0);
        close(summary_quantile(&sent, 0.95), 20.0 + 30.0 * (0.05 / 0.09));
        // Outside the sent quantiles: the nearest one's value.
        assert_eq!(summary_quantile(&sent, 0.1), Some(10.0));
        assert_eq!(summary_quantile(&sent, 0.0), Some(10.0));
        assert_eq!(summary_quantile(&sent, 1.0), Some(50.0));
        for q in [-0.1, 1.5, f64::NAN] {
            assert_eq!(summary_quantile(&sent, q), None, "{q}");
        }
        assert_eq!(summary_quantile(&[], 0.5), None);
        assert_eq!(summary_quantile(&[(f64::NAN, 1.0)], 0.5), None);
        // Min and max as quantiles 0 and 1.
        assert_eq!(summary_quantile(&[(1.0, 7.0), (0.0, 1.0)], 0.5), Some(4.0));
    }

    #[test]
    fn extreme_indices_and_counts_do_not_panic() {
        // (2^1024, ∞) at scale 0 holds no finite value: the estimate is
        // f64::MAX, or the observed max.
        let far = positive(0, 2000, &[1]);
        assert_eq!(merged(&[&far]).quantile(0.5), Some(f64::MAX));
        let mut h = MergedExpHistogram::default();
        h.add(&far, Some(1e300), Some(1e300));
        assert_eq!(h.quantile(0.5), Some(1e300));
        // Scale -10, index 0 is (1, 2^1024]: the upper bound is ∞.
        let wide = positive(-10, 0, &[1]);
        close(merged(&[&wide]).quantile(0.5), 2f64.powi(512));
        assert_eq!(merged(&[&wide]).quantile(1.0), Some(f64::MAX));
        // The mirrored negative bucket.
        let neg = ExpBuckets {
            scale: -10,
            negative: vec![1],
            ..ExpBuckets::default()
        };
        assert_eq!(merged(&[&neg]).quantile(0.0), Some(-f64::MAX));
        // Tiny buckets underflow towards 0.
        let tiny = positive(0, -2000, &[1]);
        assert_eq!(merged(&[&tiny]).quantile(0.5), Some(0.0));
        // Offsets at the edges of i32, counts saturating.
        let edge = ExpBuckets {
            scale: 20,
            zero_count: u64::MAX,
            zero_threshold: f64::INFINITY,
            positive_offset: i32::MAX,
            positive: vec![u64::MAX; 3],
            negative_offset: i32::MIN,
            negative: vec![u64::MAX; 3],
        };
        assert_eq!(edge.count(), u64::MAX);
        let mut h = merged(&[&edge, &positive(-10, i32::MIN, &[1])]);
        h.add(&positive(i32::MIN, i32::MAX, &[1]), None, None);
        assert_eq!(h.count(), u64::MAX);
        for q in [0.0, 0.3, 0.5, 0.9, 1.0] {
            let v = h.quantile(q).unwrap();
            assert!(!v.is_nan(), "{q}: {v}");
        }
        // NaN thresholds and extremes from a point are harmless.
        let mut h = MergedExpHistogram::default();
        h.add(
            &ExpBuckets {
                zero_count: 1,
                zero_threshold: f64::NAN,
                ..ExpBuckets::default()
            },
            Some(f64::NAN),
            None,
        );
        assert_eq!(h.quantile(0.5), Some(0.0));
        assert!(cumulative_exp_increase(Some((p(1, 1), &edge)), p(1, 2), &far, 0).is_some());
        assert!(cumulative_exp_increase(Some((p(1, 1), &far)), p(1, 2), &edge, 0).is_some());
    }

    /// The bounds of a bucket in value order, computed as the definition
    /// says with `powf` (independently of `exp_boundary`), ±∞ as ±f64::MAX.
    fn value_bounds(scale: i32, slot: Slot, zero_threshold: f64) -> (f64, f64) {
        let pow = |i: i64| 2f64.powf(i as f64 * 2f64.powi(-scale)).min(f64::MAX);
        match slot {
            Slot::Positive(i) => (pow(i), pow(i + 1)),
            Slot::Negative(i) => (-pow(i + 1), -pow(i)),
            Slot::Zero => (-zero_threshold, zero_threshold),
        }
    }

    /// Every non-empty bucket of the `points` with observations, brought to
    /// their lowest scale, in value order, as (lower bound, upper bound,
    /// count).
    fn layout(points: &[&ExpBuckets]) -> Vec<(f64, f64, u64)> {
        let points: Vec<_> = points.iter().filter(|b| b.count() > 0).collect();
        let Some(scale) = points.iter().map(|b| b.scale).min() else {
            return Vec::new();
        };
        let mut pos = BTreeMap::<i64, u64>::new();
        let mut neg = BTreeMap::<i64, u64>::new();
        let mut zero = 0;
        let mut zt = 0f64;
        for b in points {
            let mut b = (**b).clone();
            b.downscale(scale);
            for (k, &c) in b.positive.iter().enumerate() {
                *pos.entry(i64::from(b.positive_offset) + k as i64)
                    .or_default() += c;
            }
            for (k, &c) in b.negative.iter().enumerate() {
                *neg.entry(i64::from(b.negative_offset) + k as i64)
                    .or_default() += c;
            }
            zero += b.zero_count;
            zt = zt.max(b.zero_threshold);
        }
        let bucket = |slot, c| {
            let (l, u) = value_bounds(scale, slot, zt);
            (l, u, c)
        };
        neg.iter()
            .rev()
            .map(|(&i, &c)| bucket(Slot::Negative(i), c))
            .chain([bucket(Slot::Zero, zero)])
            .chain(pos.iter().map(|(&i, &c)| bucket(Slot::Positive(i), c)))
            .filter(|&(_, _, c)| c > 0)
            .collect()
    }

    /// The bucket holding rank `q · count`: the first whose cumulative
    /// count reaches it.
    fn holding(layout: &[(f64, f64, u64)], q: f64) -> (f64, f64) {
        let total: u64 = layout.iter().map(|b| b.2).sum();
        let rank = q * total as f64;
        let mut cum = 0;
        for &(l, u, c) in layout {
            cum += c;
            if cum as f64 >= rank {
                return (l, u);
            }
        }
        unreachable!("the last bucket reaches every rank")
    }

    /// Min and max consistent with `layout`: min at most every populated
    /// bucket's upper bound, max at least every lower bound, min ≤ max;
    /// `a` and `b` place them.
    fn extremes(layout: &[(f64, f64, u64)], a: f64, b: f64) -> (f64, f64) {
        let lowest = layout.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
        let min_upper = layout.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        let highest = layout.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
        let max_lower = layout.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max);
        let between = |x: f64, y: f64, t: f64| (x * (1.0 - t) + y * t).clamp(x.min(y), x.max(y));
        let min = between(lowest, min_upper, a);
        let max = between(max_lower, highest, b).max(min);
        (min, max)
    }

    #[track_caller]
    fn assert_within(v: f64, (l, u): (f64, f64), what: &str) {
        let slack = |x: f64| 1e-9 * x.abs();
        assert!(
            v >= l - slack(l) && v <= u + slack(u),
            "{what}: {v} outside [{l}, {u}]"
        );
    }

    fn counts() -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(prop_oneof![Just(0u64), 0u64..=1000], 0..=20)
    }

    /// Random exponential buckets: scale -10..=20, offsets small enough at
    /// scales ≤ 5 (-50..50) and proportionally larger above, so bounds are
    /// mostly finite (at scale -10 they are not: those are ±f64::MAX).
    fn exp_buckets() -> impl Strategy<Value = ExpBuckets> {
        (-10i32..=20)
            .prop_flat_map(|scale| {
                let r = 50i32 << (scale - 5).max(0);
                (
                    Just(scale),
                    prop_oneof![Just(0u64), 0u64..=1000],
                    prop_oneof![Just(0.0), 0.0f64..2.0],
                    -r..r,
                    counts(),
                    -r..r,
                    counts(),
                )
            })
            .prop_map(
                |(scale, zero_count, zero_threshold, po, p, no, n)| ExpBuckets {
                    scale,
                    zero_count,
                    zero_threshold,
                    positive_offset: po,
                    positive: p,
                    negative_offset: no,
                    negative: n,
                },
            )
    }

    proptest! {
        #[test]
        fn a_quantile_lies_in_its_bucket_and_within_min_max(
            b in exp_buckets(),
            q in 0.0f64..=1.0,
            extremes_at in proptest::option::of((0.0f64..=1.0, 0.0f64..=1.0)),
        ) {
            let layout = layout(&[&b]);
            let mut h = MergedExpHistogram::default();
            let (min, max) = match extremes_at {
                Some((x, y)) if !layout.is_empty() => {
                    let (min, max) = extremes(&layout, x, y);
                    (Some(min), Some(max))
                }
                _ => (None, None),
            };
            h.add(&b, min, max);
            prop_assert_eq!(h.count(), b.count());
            let Some(v) = h.quantile(q) else {
                prop_assert!(layout.is_empty());
                return Ok(());
            };
            assert_within(v, holding(&layout, q), "bucket");
            if let (Some(min), Some(max)) = (min, max) {
                prop_assert!(min <= v && v <= max, "{} outside [{}, {}]", v, min, max);
            }
        }

        #[test]
        fn merging_adds_counts_across_scales(
            a in exp_buckets(),
            b in exp_buckets(),
            q in 0.0f64..=1.0,
        ) {
            let h = merged(&[&a, &b]);
            prop_assert_eq!(h.count(), a.count() + b.count());
            prop_assert_eq!(h.count(), merged(&[&b, &a]).count());
            let layout = layout(&[&a, &b]);
            match h.quantile(q) {
                Some(v) => assert_within(v, holding(&layout, q), "bucket"),
                None => prop_assert!(layout.is_empty()),
            }
        }

        #[test]
        fn an_increase_added_to_the_previous_point_gives_the_current(
            prev in exp_buckets(),
            grow in counts(),
            scale_drop in 0i32..3,
        ) {
            // The current point: the previous one grown, perhaps downscaled.
            let mut cur = prev.clone();
            for (c, g) in cur.positive.iter_mut().zip(&grow) {
                *c += g;
            }
            cur.downscale(cur.scale - scale_drop);
            let inc = cumulative_exp_increase(Some((p(1, 1), &prev)), p(1, 2), &cur, 0).unwrap();
            prop_assert_eq!(inc.scale, cur.scale);
            prop_assert_eq!(inc.count() + prev.count(), cur.count());
        }
    }
}
