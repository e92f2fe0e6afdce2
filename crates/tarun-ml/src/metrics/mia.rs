//! Entropy-based membership inference, scored threshold-free as a ROC AUC (docs/study.md §7.4).
//!
//! Score `s(x) = −H(softmax f(x))` with `H = −Σ_k p_k log(p_k + 1e-8)`; members are labelled 1,
//! non-members 0, and the AUC is scikit-learn's `roc_auc_score`, i.e. the Mann–Whitney statistic
//! `P(s_member > s_nonmember) + ½ P(s_member = s_nonmember)` computed from average ranks.
//!
//! The seed scores its members (forget-class *training* images) with the training augmentation
//! and its non-members (forget-class test images) without, which pushes every AUC below 0.5
//! (docs/study.md §10.1 item 2). The corrected protocol scores members with the test transform and
//! reports the retrained model's AUC as the target. Both are the same function here: the caller
//! decides which logits to pass.

use super::logits::log_softmax;
use super::{Logits, MetricsError};

/// The epsilon the seed adds inside the entropy's log.
pub const ENTROPY_EPSILON: f64 = 1e-8;

/// The seed's membership score per sample: `Σ_k p_k log(p_k + 1e-8)`, the negative entropy.
pub fn negative_entropy_scores(logits: Logits<'_>) -> Vec<f64> {
    logits
        .iter_rows()
        .map(|row| {
            log_softmax(row)
                .iter()
                .map(|lp| {
                    let p = lp.exp();
                    p * (p + ENTROPY_EPSILON).ln()
                })
                .sum()
        })
        .collect()
}

/// ROC AUC of `positives` against `negatives` by the Mann–Whitney U statistic with average ranks
/// for ties: the probability that a random positive scores above a random negative, ties ½.
///
/// # Errors
/// An empty class or a NaN score.
pub fn auc(positives: &[f64], negatives: &[f64]) -> Result<f64, MetricsError> {
    if positives.is_empty() {
        return Err(MetricsError::Empty {
            what: "positive scores",
        });
    }
    if negatives.is_empty() {
        return Err(MetricsError::Empty {
            what: "negative scores",
        });
    }
    if positives.iter().chain(negatives).any(|s| s.is_nan()) {
        return Err(MetricsError::NotANumber { what: "AUC scores" });
    }
    let mut scored: Vec<(f64, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' 1-based ranks, each tie group getting its average rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < scored.len() {
        let end = start
            + scored[start..]
                .iter()
                .take_while(|x| x.0 == scored[start].0)
                .count();
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let group_positives = scored[start..end].iter().filter(|x| x.1).count();
        rank_sum += average_rank * group_positives as f64;
        start = end;
    }
    let (n_pos, n_neg) = (positives.len() as f64, negatives.len() as f64);
    let u = rank_sum - n_pos * (n_pos + 1.0) / 2.0;
    Ok(u / (n_pos * n_neg))
}

/// The entropy MIA AUC: members (label 1) against non-members (label 0) by negative entropy.
///
/// # Errors
/// Either set empty, or NaN scores.
pub fn entropy_mia_auc(members: Logits<'_>, non_members: Logits<'_>) -> Result<f64, MetricsError> {
    auc(
        &negative_entropy_scores(members),
        &negative_entropy_scores(non_members),
    )
}
