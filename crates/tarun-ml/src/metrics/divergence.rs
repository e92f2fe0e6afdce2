//! Distribution distances between two models' softmax outputs: the KL divergence against the
//! retrained model (docs/study.md §7.2) and ZRF, Zero Retrain Forgetting (§7.3).
//!
//! Softmaxes are at temperature 1 with natural logs, computed in `f64` from `log_softmax` (the
//! seed used `float32`; results agree to about 1e-7).
//!
//! **KL (§7.2).** Per sample `KL(p^R ‖ q^U) = Σ_k p^R_k (log p^R_k − log q^U_k)`, the retrained
//! model's distribution first (PyTorch `kl_div(log q^U, p^R)`), terms with `p^R_k = 0` counting 0;
//! reported as the mean over the forget-class samples and over the retain samples. No temperature
//! and no symmetrisation.
//!
//! **ZRF (§7.3).** With `p` = softmax(unlearned), `q` = softmax(teacher), `m = (p + q)/2`:
//! `JS = ½ Σ p (log p − log(m + 1e-8)) + ½ Σ q (log q − log(m + 1e-8))`, the `1e-8` only inside
//! the log of `m` (the seed's `kl_div(log(m + 1e-8), p)`), and `ZRF = 1 − mean(JS / ln 2)`. Not
//! clamped: when `p ≈ q` the epsilon makes JS very slightly negative, exactly as in the seed.
//! The seed uses one randomly initialised teacher on the forget class's test images; the corrected
//! protocol (§10.1 item 3) averages over several teachers ([`zrf_multi`]) and lets the caller pass
//! the forget *training* images as well: that choice is the caller's, the formula is the same.

use serde::{Deserialize, Serialize};

use super::accuracy::check_class;
use super::logits::{check_paired, log_softmax};
use super::{Logits, MetricsError};

/// The epsilon the seed adds to the mixture inside the log in ZRF.
pub const ZRF_EPSILON: f64 = 1e-8;

/// `Σ_k p_k (log p_k − log r_k)` over log-probabilities, terms with `p_k = 0` counting 0
/// (torch's `kl_div`, which uses `xlogy`).
fn kl_terms(log_p: &[f64], log_r: &[f64]) -> f64 {
    log_p
        .iter()
        .zip(log_r)
        .map(|(&lp, &lr)| {
            let p = lp.exp();
            if p == 0.0 { 0.0 } else { p * (lp - lr) }
        })
        .sum()
}

/// Per-sample `KL(softmax(reference) ‖ softmax(model))` in nats.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] when the two blocks differ in shape.
pub fn kl_per_sample(reference: Logits<'_>, model: Logits<'_>) -> Result<Vec<f64>, MetricsError> {
    check_paired(&reference, &model, "reference and model logits")?;
    Ok(reference
        .iter_rows()
        .zip(model.iter_rows())
        .map(|(r, m)| kl_terms(&log_softmax(r), &log_softmax(m)))
        .collect())
}

/// Mean per-sample `KL(softmax(reference) ‖ softmax(model))` in nats.
///
/// # Errors
/// Mismatched shapes or no samples.
pub fn mean_kl(reference: Logits<'_>, model: Logits<'_>) -> Result<f64, MetricsError> {
    mean(&kl_per_sample(reference, model)?, "KL samples")
}

/// KL against the retrained model, split by true class (docs/study.md §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KlSplit {
    /// Mean KL over the forget class's samples (`KL_Forget`).
    pub forget: f64,
    /// Mean KL over all other samples (`KL_Retain`).
    pub retain: f64,
}

/// `KL_Forget` and `KL_Retain`: mean `KL(retrained ‖ unlearned)` over the samples of class
/// `forget` and over the rest.
///
/// # Errors
/// Mismatched shapes or lengths, an out-of-range label, or an empty subset.
pub fn kl_forget_retain(
    retrained: Logits<'_>,
    unlearned: Logits<'_>,
    labels: &[u32],
    forget: u32,
) -> Result<KlSplit, MetricsError> {
    let per_sample = kl_per_sample(retrained, unlearned)?;
    if labels.len() != per_sample.len() {
        return Err(MetricsError::LengthMismatch {
            what: "logits and labels",
            left: per_sample.len(),
            right: labels.len(),
        });
    }
    check_class(forget, retrained.classes())?;
    let (mut forget_kl, mut retain_kl) = (Vec::new(), Vec::new());
    for (&kl, &label) in per_sample.iter().zip(labels) {
        check_class(label, retrained.classes())?;
        if label == forget {
            &mut forget_kl
        } else {
            &mut retain_kl
        }
        .push(kl);
    }
    Ok(KlSplit {
        forget: mean(&forget_kl, "forget-class samples")?,
        retain: mean(&retain_kl, "retain samples")?,
    })
}

/// Per-sample Jensen–Shannon divergence in bits (`JS / ln 2`), with the seed's `+1e-8` placement.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] when the two blocks differ in shape.
pub fn js_bits_per_sample(
    model: Logits<'_>,
    teacher: Logits<'_>,
) -> Result<Vec<f64>, MetricsError> {
    check_paired(&model, &teacher, "model and teacher logits")?;
    Ok(model
        .iter_rows()
        .zip(teacher.iter_rows())
        .map(|(a, b)| {
            let (log_p, log_q) = (log_softmax(a), log_softmax(b));
            let log_m: Vec<f64> = log_p
                .iter()
                .zip(&log_q)
                .map(|(lp, lq)| ((lp.exp() + lq.exp()) / 2.0 + ZRF_EPSILON).ln())
                .collect();
            let js = 0.5 * kl_terms(&log_p, &log_m) + 0.5 * kl_terms(&log_q, &log_m);
            js / std::f64::consts::LN_2
        })
        .collect())
}

/// ZRF of a model against one incompetent teacher: `1 − mean(JS / ln 2)` (docs/study.md §7.3).
///
/// # Errors
/// Mismatched shapes or no samples.
pub fn zrf(model: Logits<'_>, teacher: Logits<'_>) -> Result<f64, MetricsError> {
    Ok(1.0 - mean(&js_bits_per_sample(model, teacher)?, "ZRF samples")?)
}

/// ZRF against several randomly initialised teachers (the corrected protocol,
/// docs/study.md §10.1 item 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZrfSummary {
    /// ZRF against each teacher, in the order given.
    pub per_teacher: Vec<f64>,
    /// Mean over teachers.
    pub mean: f64,
    /// Sample standard deviation over teachers (0 for a single teacher).
    pub std: f64,
}

/// ZRF of `model` against each of `teachers`, with mean and spread.
///
/// # Errors
/// No teachers, or a teacher whose logits do not pair with the model's.
pub fn zrf_multi(model: Logits<'_>, teachers: &[Logits<'_>]) -> Result<ZrfSummary, MetricsError> {
    let per_teacher = teachers
        .iter()
        .map(|&teacher| zrf(model, teacher))
        .collect::<Result<Vec<_>, _>>()?;
    let mean = mean(&per_teacher, "ZRF teachers")?;
    let n = per_teacher.len() as f64;
    let std = if per_teacher.len() > 1 {
        let ss: f64 = per_teacher.iter().map(|z| (z - mean).powi(2)).sum();
        (ss / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Ok(ZrfSummary {
        per_teacher,
        mean,
        std,
    })
}

pub(crate) fn mean(values: &[f64], what: &'static str) -> Result<f64, MetricsError> {
    if values.is_empty() {
        return Err(MetricsError::Empty { what });
    }
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}
