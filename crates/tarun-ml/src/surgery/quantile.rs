//! Exact order statistics and quantiles of `|x|`, the threshold of the surgeon's mask
//! (docs/study.md §4.3).
//!
//! The mask needs the ρ-quantile of `|τ|` per tensor, and VGG-11-BN's first classifier weight has
//! 102.8M entries. A comparison-based selection (`select_nth_unstable`) would need a 400 MB copy
//! of `|τ|` and several data-dependent passes on one core; instead we select on the IEEE-754 bit
//! patterns. For non-negative floats the bit pattern, read as an integer, is monotone in the
//! value, so the order statistics of `|x|` can be found by a most-significant-digit radix select:
//! one parallel streaming pass histograms the high 16 of the 31 magnitude bits, which names the bin
//! holding rank k (and the bin holding rank k + 1); a second pass histograms the low 15 bits inside
//! that bin, which pins the exact value, and takes the minimum of the next bin when rank k + 1 lies
//! there. Two reads of the data, no copy, exact results, and ties need no special care because the
//! final bin *is* the value.
//!
//! Ordering is the total order of `|x|` on bit patterns: NaNs sort above `+inf`, `-0.0 == 0.0`.

use rayon::prelude::*;

/// Clears the sign bit: the bit pattern of `|x|`, monotone in `|x|`.
const ABS_MASK: u32 = 0x7fff_ffff;

/// The second pass resolves the low `LOW_BITS` bits; the first the remaining high 16.
const LOW_BITS: u32 = 15;
const HIGH_BINS: usize = 1 << (31 - LOW_BITS);
const LOW_BINS: usize = 1 << LOW_BITS;

/// Elements per parallel task. Large enough to amortise the per-task histogram, small enough that
/// a 100M-element tensor splits into many tasks.
const CHUNK: usize = 1 << 18;

/// The magnitude key of `x`: `|x|`'s bit pattern, ordered like `|x|`.
#[inline]
pub(crate) fn magnitude_key(x: f32) -> u32 {
    x.to_bits() & ABS_MASK
}

/// Returns the k-th smallest (0-based) `|x|` of `values`.
///
/// # Panics
/// If `k >= values.len()`.
pub fn abs_order_statistic(values: &[f32], k: usize) -> f32 {
    f32::from_bits(select_pair(values, None, k).0)
}

/// The `q`-quantile of `|values|` with linear interpolation, as `torch.quantile` and numpy's
/// default `method="linear"` define it: position `q·(n−1)` in the ascending order, interpolated
/// between the order statistics at its floor and ceiling.
///
/// The position and the interpolation are computed in `f64` and the result rounded to `f32`
/// (torch computes them in the input dtype; the difference is below one ulp of the threshold).
///
/// # Panics
/// If `values` is empty or `q` is outside `[0, 1]` (callers validate ρ first).
pub fn abs_quantile(values: &[f32], q: f64) -> f32 {
    abs_quantile_with(values, None, q)
}

/// [`abs_quantile`] reusing a precomputed [`high_histogram`] of `values` (pass 1), so that many
/// quantile levels of one tensor cost one pass each.
pub(crate) fn abs_quantile_with(values: &[f32], high: Option<&[u32]>, q: f64) -> f32 {
    assert!(!values.is_empty(), "quantile of an empty slice");
    assert!(
        (0.0..=1.0).contains(&q),
        "quantile level {q} outside [0, 1]"
    );
    let last = values.len() - 1;
    let position = q * last as f64;
    // `position <= last` because `q <= 1`; the `min` guards against rounding only.
    let below = (position.floor() as usize).min(last);
    let weight = position - below as f64;
    let (lo, hi) = select_pair(values, high, below);
    lerp(f32::from_bits(lo), f32::from_bits(hi), weight)
}

/// torch's `lerp`: exact at both ends, symmetric rounding in between.
fn lerp(lo: f32, hi: f32, weight: f64) -> f32 {
    if weight == 0.0 || lo == hi {
        return lo;
    }
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let value = if weight < 0.5 {
        lo + weight * (hi - lo)
    } else {
        hi - (hi - lo) * (1.0 - weight)
    };
    value as f32
}

/// Magnitude keys of the order statistics at ranks `k` and `k + 1` (the latter clamped to the
/// last rank).
fn select_pair(values: &[f32], high: Option<&[u32]>, k: usize) -> (u32, u32) {
    let n = values.len();
    assert!(k < n, "rank {k} out of range for {n} values");
    // Per-bin counts are `u32`; no tensor of these models comes near 4G entries.
    assert!(
        u32::try_from(n).is_ok(),
        "{n} values exceed the u32 histogram counts"
    );
    let computed;
    let high = match high {
        Some(high) => high,
        None => {
            computed = high_histogram(values);
            &computed
        }
    };
    let (bin_lo, below_lo) = locate(high, k);
    let (bin_hi, below_hi) = locate(high, (k + 1).min(n - 1));
    let pass = low_pass(values, bin_lo as u32, bin_hi as u32);
    let lo = key_of(bin_lo, locate(&pass.low, k - below_lo).0);
    let hi = if bin_hi == bin_lo {
        key_of(bin_lo, locate(&pass.low, (k + 1).min(n - 1) - below_hi).0)
    } else {
        // Rank k + 1 is the first entry of the next non-empty bin: its minimum.
        pass.next_min
    };
    (lo, hi)
}

fn key_of(high_bin: usize, low_bin: usize) -> u32 {
    ((high_bin as u32) << LOW_BITS) | low_bin as u32
}

/// Runs `count` over `values` (in parallel for large inputs) and merges the per-task results.
fn accumulate<A: Send>(
    values: &[f32],
    identity: impl Fn() -> A + Sync + Send,
    count: impl Fn(A, &[f32]) -> A + Sync + Send,
    merge: impl Fn(A, A) -> A + Sync + Send,
) -> A {
    if values.len() <= CHUNK {
        return count(identity(), values);
    }
    values
        .par_chunks(CHUNK)
        .fold(&identity, &count)
        .reduce(&identity, merge)
}

pub(crate) fn add_counts(mut a: Vec<u32>, b: Vec<u32>) -> Vec<u32> {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    a
}

/// Pass 1: counts per value of the high 16 magnitude bits.
pub(crate) fn high_histogram(values: &[f32]) -> Vec<u32> {
    let count = |mut hist: Vec<u32>, chunk: &[f32]| {
        count_high(&mut hist, chunk);
        hist
    };
    accumulate(values, empty_high_histogram, count, add_counts)
}

/// A zeroed pass-1 histogram.
pub(crate) fn empty_high_histogram() -> Vec<u32> {
    vec![0; HIGH_BINS]
}

/// Adds `chunk` to a pass-1 histogram (exposed so producers of a tensor can histogram it while
/// writing it).
pub(crate) fn count_high(hist: &mut [u32], chunk: &[f32]) {
    for &x in chunk {
        hist[(magnitude_key(x) >> LOW_BITS) as usize] += 1;
    }
}

/// Result of pass 2.
struct LowPass {
    /// Counts per value of the low bits, among entries in high bin `bin_lo`.
    low: Vec<u32>,
    /// Smallest key in high bin `bin_hi` when it differs from `bin_lo` (else `u32::MAX`).
    next_min: u32,
}

/// Pass 2: resolves the low bits inside `bin_lo` and the minimum of `bin_hi`.
fn low_pass(values: &[f32], bin_lo: u32, bin_hi: u32) -> LowPass {
    let count = |mut acc: LowPass, chunk: &[f32]| {
        for &x in chunk {
            let key = magnitude_key(x);
            let high = key >> LOW_BITS;
            if high == bin_lo {
                acc.low[(key as usize) & (LOW_BINS - 1)] += 1;
            } else if high == bin_hi {
                acc.next_min = acc.next_min.min(key);
            }
        }
        acc
    };
    let identity = || LowPass {
        low: vec![0; LOW_BINS],
        next_min: u32::MAX,
    };
    let merge = |a: LowPass, b: LowPass| LowPass {
        low: add_counts(a.low, b.low),
        next_min: a.next_min.min(b.next_min),
    };
    accumulate(values, identity, count, merge)
}

/// Finds the bin holding rank `rank`: returns the bin and the number of entries in lower bins.
fn locate(histogram: &[u32], rank: usize) -> (usize, usize) {
    let mut below = 0;
    for (bin, &count) in histogram.iter().enumerate() {
        let count = count as usize;
        if rank < below + count {
            return (bin, below);
        }
        below += count;
    }
    unreachable!("rank {rank} beyond the histogram total {below}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_abs(values: &[f32]) -> Vec<f32> {
        let mut v: Vec<f32> = values.iter().map(|x| x.abs()).collect();
        v.sort_by(f32::total_cmp);
        v
    }

    #[test]
    fn order_statistics_match_a_full_sort() {
        // A deterministic pseudo-random walk with repeated values, signs and zeros.
        let values: Vec<f32> = (0..5000u32)
            .map(|i| {
                let h = i.wrapping_mul(2_654_435_761) >> 7;
                ((h % 997) as f32 - 498.0) * 0.013
            })
            .collect();
        let sorted = sorted_abs(&values);
        for k in [0, 1, 2, 17, 2499, 2500, 4998, 4999] {
            assert_eq!(abs_order_statistic(&values, k), sorted[k], "rank {k}");
        }
    }

    #[test]
    fn pairs_resolve_ties_and_bin_boundaries() {
        let values = [3.0, -1.0, 1.0, 1.0, 2.0];
        let key = |x: f32| x.to_bits();
        assert_eq!(select_pair(&values, None, 0), (key(1.0), key(1.0)));
        assert_eq!(select_pair(&values, None, 2), (key(1.0), key(2.0)));
        assert_eq!(select_pair(&values, None, 4), (key(3.0), key(3.0)));
        // Neighbouring floats that share the high 16 bits, and ones that do not.
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        let c = f32::from_bits(a.to_bits() + (1 << LOW_BITS));
        assert_eq!(select_pair(&[c, b, a], None, 0), (key(a), key(b)));
        assert_eq!(select_pair(&[c, b, a], None, 1), (key(b), key(c)));
    }

    #[test]
    fn parallel_path_agrees_with_a_full_sort() {
        let n = 3 * CHUNK + 123;
        let values: Vec<f32> = (0..n as u64)
            .map(|i| {
                let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                (h as f32 / 16_777_216.0 - 0.5) * 1e-3
            })
            .collect();
        let sorted = sorted_abs(&values);
        for k in [0, n / 3, n / 2, n - 2, n - 1] {
            assert_eq!(abs_order_statistic(&values, k), sorted[k], "rank {k}");
        }
        let q = 0.99;
        let pos = q * (n - 1) as f64;
        let (lo, hi) = (sorted[pos.floor() as usize], sorted[pos.ceil() as usize]);
        let expected = f64::from(lo) + (pos - pos.floor()) * f64::from(hi - lo);
        // The result is the f64 interpolation rounded to f32: within half an f32 ulp.
        let got = f64::from(abs_quantile(&values, q));
        assert!((got - expected).abs() <= expected * f64::from(f32::EPSILON) / 2.0);
    }
}
