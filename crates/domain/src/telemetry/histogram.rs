//! The consistency rules of distributions (OTLP `metrics.proto`): a
//! histogram's buckets add up to its count, its bounds are in order, an
//! exponential histogram's scale is one the data model defines, a summary's
//! quantiles are fractions. Pure functions over the wire fields.

use super::rejection::Rejection;

/// Smallest exponential histogram scale of the data model.
pub const MIN_EXPONENTIAL_SCALE: i32 = -10;
/// Largest exponential histogram scale of the data model.
pub const MAX_EXPONENTIAL_SCALE: i32 = 20;

/// The sum of `counts`, or `None` when it does not fit in a `u64` (which
/// no count can then equal).
fn total(counts: impl IntoIterator<Item = u64>) -> Option<u64> {
    counts
        .into_iter()
        .try_fold(0u64, |acc, c| acc.checked_add(c))
}

/// An explicit-bucket histogram point: `bucket_counts` is empty (then so
/// are `explicit_bounds`: a histogram of count and sum only) or has one
/// more entry than `explicit_bounds`; the bounds are strictly ascending
/// (so none is NaN); the bucket counts add up to `count`.
pub fn check_explicit_histogram(
    count: u64,
    bucket_counts: &[u64],
    explicit_bounds: &[f64],
) -> Result<(), Rejection> {
    let shape_ok = if bucket_counts.is_empty() {
        explicit_bounds.is_empty()
    } else {
        explicit_bounds.len().checked_add(1) == Some(bucket_counts.len())
    };
    if !shape_ok {
        return Err(Rejection::HistogramBucketsMismatch);
    }
    // `<` is false when either side is NaN.
    if !explicit_bounds.windows(2).all(|w| w[0] < w[1])
        || explicit_bounds.iter().any(|b| b.is_nan())
    {
        return Err(Rejection::HistogramBoundsNotAscending);
    }
    if !bucket_counts.is_empty() && total(bucket_counts.iter().copied()) != Some(count) {
        return Err(Rejection::HistogramCountMismatch);
    }
    Ok(())
}

/// An exponential histogram point: its scale is within
/// [`MIN_EXPONENTIAL_SCALE`]`..=`[`MAX_EXPONENTIAL_SCALE`], and
/// `zero_count` plus every positive and negative bucket count add up to
/// `count`.
pub fn check_exponential_histogram(
    count: u64,
    scale: i32,
    zero_count: u64,
    positive: &[u64],
    negative: &[u64],
) -> Result<(), Rejection> {
    if !(MIN_EXPONENTIAL_SCALE..=MAX_EXPONENTIAL_SCALE).contains(&scale) {
        return Err(Rejection::ExponentialScaleOutOfRange);
    }
    let all = std::iter::once(zero_count)
        .chain(positive.iter().copied())
        .chain(negative.iter().copied());
    if total(all) != Some(count) {
        return Err(Rejection::HistogramCountMismatch);
    }
    Ok(())
}

/// A summary point: every quantile is within `[0, 1]` (NaN is not).
pub fn check_summary(quantiles: impl IntoIterator<Item = f64>) -> Result<(), Rejection> {
    if quantiles.into_iter().all(|q| (0.0..=1.0).contains(&q)) {
        Ok(())
    } else {
        Err(Rejection::QuantileOutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_histograms_add_up_and_are_ordered() {
        assert_eq!(check_explicit_histogram(6, &[1, 2, 3], &[1.0, 2.0]), Ok(()));
        // Count and sum only.
        assert_eq!(check_explicit_histogram(9, &[], &[]), Ok(()));
        // One bucket, no bounds: (-inf, +inf).
        assert_eq!(check_explicit_histogram(4, &[4], &[]), Ok(()));
        assert_eq!(
            check_explicit_histogram(5, &[1, 2, 3], &[1.0, 2.0]),
            Err(Rejection::HistogramCountMismatch)
        );
        assert_eq!(
            check_explicit_histogram(6, &[1, 2, 3], &[1.0]),
            Err(Rejection::HistogramBucketsMismatch)
        );
        assert_eq!(
            check_explicit_histogram(6, &[1, 2, 3], &[1.0, 2.0, 3.0]),
            Err(Rejection::HistogramBucketsMismatch)
        );
        assert_eq!(
            check_explicit_histogram(0, &[], &[1.0]),
            Err(Rejection::HistogramBucketsMismatch)
        );
        for bounds in [[2.0, 1.0], [1.0, 1.0], [f64::NAN, 1.0], [1.0, f64::NAN]] {
            assert_eq!(
                check_explicit_histogram(6, &[1, 2, 3], &bounds),
                Err(Rejection::HistogramBoundsNotAscending),
                "{bounds:?}"
            );
        }
        // A lone NaN bound has no neighbour to compare with.
        assert_eq!(
            check_explicit_histogram(2, &[1, 1], &[f64::NAN]),
            Err(Rejection::HistogramBoundsNotAscending)
        );
        // Infinite bounds are ordered like any other.
        assert_eq!(
            check_explicit_histogram(2, &[1, 1, 0], &[f64::NEG_INFINITY, f64::INFINITY]),
            Ok(())
        );
    }

    #[test]
    fn a_count_overflow_is_a_mismatch_not_a_panic() {
        assert_eq!(
            check_explicit_histogram(u64::MAX, &[u64::MAX, 1], &[0.0]),
            Err(Rejection::HistogramCountMismatch)
        );
        assert_eq!(
            check_explicit_histogram(u64::MAX, &[u64::MAX, 0], &[0.0]),
            Ok(())
        );
        assert_eq!(
            check_exponential_histogram(u64::MAX, 0, 1, &[u64::MAX], &[]),
            Err(Rejection::HistogramCountMismatch)
        );
        assert_eq!(
            check_exponential_histogram(0, 0, u64::MAX, &[u64::MAX], &[u64::MAX]),
            Err(Rejection::HistogramCountMismatch)
        );
    }

    #[test]
    fn exponential_histograms_add_up_within_the_scale_range() {
        assert_eq!(
            check_exponential_histogram(18, 3, 1, &[1, 2, 3, 2, 1], &[1, 0, 7]),
            Ok(())
        );
        assert_eq!(check_exponential_histogram(0, 0, 0, &[], &[]), Ok(()));
        assert_eq!(
            check_exponential_histogram(10, 3, 1, &[1, 2, 3, 2, 1], &[1, 0, 7]),
            Err(Rejection::HistogramCountMismatch)
        );
        assert_eq!(check_exponential_histogram(0, -10, 0, &[], &[]), Ok(()));
        assert_eq!(check_exponential_histogram(0, 20, 0, &[], &[]), Ok(()));
        for scale in [-11, 21, i32::MIN, i32::MAX] {
            assert_eq!(
                check_exponential_histogram(0, scale, 0, &[], &[]),
                Err(Rejection::ExponentialScaleOutOfRange),
                "{scale}"
            );
        }
    }

    #[test]
    fn summary_quantiles_are_fractions() {
        assert_eq!(check_summary([0.0, 0.5, 0.99, 1.0]), Ok(()));
        assert_eq!(check_summary([]), Ok(()));
        for q in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(
                check_summary([0.5, q]),
                Err(Rejection::QuantileOutOfRange),
                "{q}"
            );
        }
    }
}
