//! MIA-efficacy, the membership-inference metric unlearning papers report (docs/study.md §7.10):
//! the percentage of the forget set that an attacker fitted on shadow data calls a non-member.
//!
//! Feature per image: the softmax probability of its true label ("confidence"). A shadow set of
//! members (retained training images, label 1) and non-members (held-out images, label 0) fits a
//! classifier on that one feature; applied to the forget class's training images, the share it
//! predicts non-member, × 100, is the efficacy (higher = more forgotten; the retrained model's
//! value is the target).
//!
//! The papers fit scikit-learn's `SVC(C=3, gamma="auto", kernel="rbf")`. On one feature an RBF
//! SVM's decision regions are, in practice, a single cut; here the classifier is that cut made
//! exact: the [`ThresholdRule`] with the highest shadow accuracy (see [`ThresholdRule::fit`] for
//! the candidates and the tie rule).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::logits::log_softmax;
use super::{Logits, MetricsError};

/// The softmax probability of each row's true label.
///
/// # Errors
/// `labels` not one per row, or a label outside the classes.
pub fn true_label_confidence(logits: Logits<'_>, labels: &[u32]) -> Result<Vec<f64>, MetricsError> {
    if logits.rows() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            what: "logit rows and labels",
            left: logits.rows(),
            right: labels.len(),
        });
    }
    logits
        .iter_rows()
        .zip(labels)
        .map(|(row, &label)| {
            let ls = log_softmax(row);
            ls.get(label as usize)
                .map(|lp| lp.exp())
                .ok_or(MetricsError::ClassOutOfRange {
                    class: label,
                    classes: row.len(),
                })
        })
        .collect()
}

/// Which side of the threshold the attacker calls a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberSide {
    /// Member iff `x > threshold` (members more confident, the usual case).
    Above,
    /// Member iff `x <= threshold`.
    AtOrBelow,
}

/// A one-feature membership classifier: a threshold and the side that means "member".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdRule {
    pub threshold: f64,
    pub members: MemberSide,
    /// Shadow samples it classifies correctly.
    pub correct: usize,
    /// Shadow samples in all.
    pub total: usize,
}

impl ThresholdRule {
    /// Whether the rule calls `x` a member.
    pub fn is_member(&self, x: f64) -> bool {
        match self.members {
            MemberSide::Above => x > self.threshold,
            MemberSide::AtOrBelow => x <= self.threshold,
        }
    }

    /// Shadow accuracy in `[0, 1]`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total as f64
    }

    /// The rule that classifies most shadow samples correctly.
    ///
    /// Candidate thresholds: one below every value, the midpoint between each pair of adjacent
    /// distinct values, and the largest value; each with both sides. Ties in the count of
    /// correct samples go to `Above` over `AtOrBelow`, then to the smaller threshold, so the fit
    /// depends only on the values.
    ///
    /// # Errors
    /// Either set empty, or a NaN.
    pub fn fit(members: &[f64], non_members: &[f64]) -> Result<Self, MetricsError> {
        if members.is_empty() {
            return Err(MetricsError::Empty {
                what: "shadow members",
            });
        }
        if non_members.is_empty() {
            return Err(MetricsError::Empty {
                what: "shadow non-members",
            });
        }
        if members.iter().chain(non_members).any(|x| x.is_nan()) {
            return Err(MetricsError::NotANumber {
                what: "shadow confidences",
            });
        }
        let mut scored: Vec<(f64, bool)> = members
            .iter()
            .map(|&x| (x, true))
            .chain(non_members.iter().map(|&x| (x, false)))
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = scored.len();
        let (n_members, n_non) = (members.len(), non_members.len());
        // Start with the threshold below every value: every sample is above it.
        let (mut members_above, mut non_above) = (n_members, n_non);
        let correct_above = |m: usize, n: usize| m + (n_non - n);
        let lowest = scored[0].0;
        let below_all = lowest - lowest.abs().max(1.0);
        // A placeholder every candidate beats or ties (and `Above` wins ties).
        let mut best = ThresholdRule {
            threshold: below_all,
            members: MemberSide::AtOrBelow,
            correct: 0,
            total,
        };
        let mut consider = |threshold: f64, m: usize, n: usize| {
            let above = correct_above(m, n);
            // `AtOrBelow` at the same threshold is the exact complement.
            for (correct, side) in [
                (above, MemberSide::Above),
                (total - above, MemberSide::AtOrBelow),
            ] {
                let better = correct > best.correct
                    || (correct == best.correct
                        && side == MemberSide::Above
                        && best.members == MemberSide::AtOrBelow);
                if better {
                    best = ThresholdRule {
                        threshold,
                        members: side,
                        correct,
                        total,
                    };
                }
            }
        };
        consider(below_all, members_above, non_above);
        let mut i = 0;
        while i < total {
            // Move the whole group of equal values below the threshold.
            let value = scored[i].0;
            while i < total && scored[i].0 == value {
                if scored[i].1 {
                    members_above -= 1;
                } else {
                    non_above -= 1;
                }
                i += 1;
            }
            let threshold = match scored.get(i) {
                Some(&(next, _)) => midpoint(value, next),
                None => value,
            };
            consider(threshold, members_above, non_above);
        }
        Ok(best)
    }
}

/// A threshold strictly between `a < b` that keeps `a` at or below it, `b` above it.
fn midpoint(a: f64, b: f64) -> f64 {
    let mid = a + (b - a) / 2.0;
    // Adjacent floats: the midpoint may round onto `b`; `a` itself separates them as well.
    if mid < b { mid } else { a }
}

/// Fits [`ThresholdRule`] on the shadow set and returns the percentage of `targets` it calls a
/// non-member: MIA-efficacy when `targets` are the forget set's confidences.
///
/// # Errors
/// As [`ThresholdRule::fit`]; `targets` empty or with a NaN.
pub fn mia_efficacy(
    shadow_members: &[f64],
    shadow_non_members: &[f64],
    targets: &[f64],
) -> Result<f64, MetricsError> {
    if targets.is_empty() {
        return Err(MetricsError::Empty {
            what: "forget-set confidences",
        });
    }
    if targets.iter().any(|x| x.is_nan()) {
        return Err(MetricsError::NotANumber {
            what: "forget-set confidences",
        });
    }
    let rule = ThresholdRule::fit(shadow_members, shadow_non_members)?;
    let non = targets.iter().filter(|&&x| !rule.is_member(x)).count();
    Ok(100.0 * non as f64 / targets.len() as f64)
}

/// `amount` distinct indices of `0..length` drawn by a ChaCha8 generator seeded with `seed`, in
/// increasing order; every index when `amount >= length`. The shadow members are this subset of
/// the retained training images, as many as there are shadow non-members.
pub fn shadow_subset(length: usize, amount: usize, seed: u64) -> Vec<usize> {
    if amount >= length {
        return (0..length).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked = rand::seq::index::sample(&mut rng, length, amount).into_vec();
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_the_true_labels_softmax_probability() {
        // Row 0: logits (0, ln 3) -> softmax (1/4, 3/4); row 1: equal logits -> 1/2 each.
        let data = [0.0, 3f32.ln(), 2.0, 2.0];
        let l = Logits::new(&data, 2).unwrap();
        let c = true_label_confidence(l, &[1, 0]).unwrap();
        assert!((c[0] - 0.75).abs() < 1e-7, "{c:?}");
        assert!((c[1] - 0.5).abs() < 1e-12, "{c:?}");
        assert_eq!(
            true_label_confidence(l, &[2, 0]),
            Err(MetricsError::ClassOutOfRange {
                class: 2,
                classes: 2
            })
        );
        assert!(matches!(
            true_label_confidence(l, &[0]),
            Err(MetricsError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn separable_shadow_set_cuts_in_the_middle_of_the_gap() {
        let rule = ThresholdRule::fit(&[0.9, 0.8, 0.95], &[0.1, 0.3, 0.2]).unwrap();
        assert_eq!(rule.members, MemberSide::Above);
        assert!((rule.threshold - 0.55).abs() < 1e-12, "{rule:?}");
        assert_eq!((rule.correct, rule.total), (6, 6));
        // Forget images at 0.5 and 0.2 are called non-members, 0.6 a member: 2 of 3.
        let e = mia_efficacy(&[0.9, 0.8, 0.95], &[0.1, 0.3, 0.2], &[0.5, 0.6, 0.2]).unwrap();
        assert!((e - 200.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn overlapping_shadow_set_takes_the_best_cut_by_hand() {
        // Sorted: 0.1n 0.2m 0.3n 0.4m 0.5m 0.6n 0.7m. Correct counts of `x > t` by hand
        // (members above + non-members at or below): t<0.1: 4; 0.15: 5; 0.25: 4; 0.35: 5;
        // 0.45: 4; 0.55: 3; 0.65: 4; 0.7: 3. Best is 5 at 0.15 and 0.35: the smaller wins.
        let m = [0.2, 0.4, 0.5, 0.7];
        let n = [0.1, 0.3, 0.6];
        let rule = ThresholdRule::fit(&m, &n).unwrap();
        assert_eq!(rule.members, MemberSide::Above);
        assert!((rule.threshold - 0.15).abs() < 1e-12, "{rule:?}");
        assert_eq!(rule.correct, 5);
        // Targets: 0.05 and 0.15 at or below the cut, 0.3 and 0.9 above: 50 %.
        let e = mia_efficacy(&m, &n, &[0.05, 0.15, 0.3, 0.9]).unwrap();
        assert_eq!(e, 50.0);
    }

    #[test]
    fn members_below_flip_the_side() {
        // Members less confident than non-members (an over-unlearned model's retain set could
        // look like that): the rule is `x <= t`.
        let rule = ThresholdRule::fit(&[0.1, 0.2], &[0.7, 0.8, 0.9]).unwrap();
        assert_eq!(rule.members, MemberSide::AtOrBelow);
        assert!((rule.threshold - 0.45).abs() < 1e-12, "{rule:?}");
        assert_eq!(rule.correct, 5);
        assert!(rule.is_member(0.44) && !rule.is_member(0.46));
        assert_eq!(
            mia_efficacy(&[0.1, 0.2], &[0.7, 0.8, 0.9], &[0.0, 1.0]).unwrap(),
            50.0
        );
    }

    #[test]
    fn ties_and_constant_features_are_deterministic() {
        // One value everywhere: no cut separates anything. Correct counts: `x > below-all`
        // gives 3 (the members), `x <= value` gives 3 too; `Above` wins the tie, so every target
        // is a member and the efficacy is 0.
        let rule = ThresholdRule::fit(&[1.0, 1.0, 1.0], &[1.0, 1.0]).unwrap();
        assert_eq!(rule.members, MemberSide::Above);
        assert_eq!(rule.correct, 3);
        assert!(rule.threshold < 1.0);
        assert_eq!(
            mia_efficacy(&[1.0; 3], &[1.0; 2], &[1.0, 0.5]).unwrap(),
            0.0
        );
        // More non-members than members at one value: calling everything a non-member is best,
        // i.e. `x > 1.0` (nothing above).
        let rule = ThresholdRule::fit(&[1.0], &[1.0, 1.0]).unwrap();
        assert_eq!(
            (rule.members, rule.threshold, rule.correct),
            (MemberSide::Above, 1.0, 2)
        );
    }

    #[test]
    fn adjacent_floats_still_separate() {
        let a = 0.5f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let rule = ThresholdRule::fit(&[b], &[a]).unwrap();
        assert_eq!(rule.correct, 2);
        assert!(rule.is_member(b) && !rule.is_member(a));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            ThresholdRule::fit(&[], &[0.1]),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            ThresholdRule::fit(&[0.1], &[]),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            ThresholdRule::fit(&[f64::NAN], &[0.1]),
            Err(MetricsError::NotANumber { .. })
        ));
        assert!(matches!(
            mia_efficacy(&[0.9], &[0.1], &[]),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            mia_efficacy(&[0.9], &[0.1], &[f64::NAN]),
            Err(MetricsError::NotANumber { .. })
        ));
    }

    #[test]
    fn shadow_subset_is_seeded_sorted_and_distinct() {
        let a = shadow_subset(100, 10, 42);
        assert_eq!(a, shadow_subset(100, 10, 42));
        assert_ne!(a, shadow_subset(100, 10, 43));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| i < 100));
        assert_eq!(shadow_subset(5, 9, 42), vec![0, 1, 2, 3, 4]);
    }
}
