//! t-SNE of model outputs (docs/study.md §7.8): a deterministic, exact-gradient port of
//! scikit-learn's `TSNE` with the seed's settings.
//!
//! The seed embeds the 10-dimensional logits of the first 1,500 test images (cast to `float64`)
//! with `TSNE(n_components=2, perplexity=30, init="pca", random_state=42)` and the defaults of
//! that era: early exaggeration 12, learning rate `"auto"` (`max(N / 12 / 4, 50)`, i.e. 50 for
//! N = 1,500), 1,000 iterations, Barnes–Hut with angle 0.5. What we reproduce:
//! * P: perplexity-calibrated Gaussian affinities (binary search on β per point, as
//!   scikit-learn's `_binary_search_perplexity`), over the `⌊3·perplexity + 1⌋` nearest
//!   neighbours like the Barnes–Hut path ([`Affinities::NearestNeighbours`], default) or over all
//!   pairs ([`Affinities::Exact`]); symmetrised and normalised.
//! * Initialisation: PCA, first coordinate scaled to standard deviation 1e-4.
//! * Optimiser: scikit-learn's `_gradient_descent`: 250 iterations with P × 12 and momentum 0.5,
//!   then momentum 0.8 up to 1,000; per-parameter gains (+0.2 / ×0.8, floor 0.01); progress
//!   checked every 50 iterations (stop after 300 without improvement, or gradient norm ≤ 1e-7).
//!
//! Differences: the gradient is exact (no Barnes–Hut approximation of the repulsion), and the
//! coordinates are therefore not bit-comparable with the seed's plots; only the structure is.
//! Cost is O(N²) per iteration, parallel over points.

mod affinity;
mod pca;
mod trustworthiness;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use affinity::{
    Affinities, JointProbabilities, conditional_probabilities, joint_probabilities,
};
pub use trustworthiness::trustworthiness;

use super::{Logits, MetricsError};

/// Iterations of the early-exaggeration stage (scikit-learn `_EXPLORATION_MAX_ITER`).
const EXPLORATION_ITER: usize = 250;
/// Progress is checked every this many iterations (`_N_ITER_CHECK`).
const CHECK_EVERY: usize = 50;
/// Smallest per-parameter gain.
const MIN_GAIN: f64 = 0.01;

/// The step size of gradient descent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearningRate {
    /// `max(N / early_exaggeration / 4, 50)` (scikit-learn's `"auto"`).
    Auto,
    /// A fixed rate.
    Fixed(f64),
}

/// t-SNE settings; the default is the seed's (docs/study.md §7.8).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TsneConfig {
    /// Target perplexity of each point's conditional distribution.
    pub perplexity: f64,
    /// Factor on P during the first 250 iterations.
    pub early_exaggeration: f64,
    /// Gradient-descent step size.
    pub learning_rate: LearningRate,
    /// Total iterations, both stages included.
    pub max_iter: usize,
    /// Stop after this many iterations without improvement of the KL divergence (second stage).
    pub n_iter_without_progress: usize,
    /// Stop when the gradient norm falls to this value.
    pub min_grad_norm: f64,
    /// Which pairs carry input affinity.
    pub affinities: Affinities,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            early_exaggeration: 12.0,
            learning_rate: LearningRate::Auto,
            max_iter: 1000,
            n_iter_without_progress: 300,
            min_grad_norm: 1e-7,
            affinities: Affinities::NearestNeighbours,
        }
    }
}

/// A 2-D t-SNE embedding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// One `[x, y]` per input point, in input order.
    pub coords: Vec<[f64; 2]>,
    /// KL(P ‖ Q) at the last iteration.
    pub kl_divergence: f64,
    /// Iterations run (fewer than `max_iter` when a stopping rule fired).
    pub iterations: usize,
}

/// Embeds the rows of `logits` in 2-D (logits are widened to `f64` like the seed's cast).
///
/// # Errors
/// As [`tsne`].
pub fn tsne_logits(logits: Logits<'_>, config: &TsneConfig) -> Result<Embedding, MetricsError> {
    let points: Vec<f64> = logits
        .iter_rows()
        .flatten()
        .map(|&x| f64::from(x))
        .collect();
    tsne(&points, logits.classes(), config)
}

/// Embeds `points` (row-major, `dim` columns) in 2-D.
///
/// # Errors
/// Fewer points than the perplexity (scikit-learn's requirement), a ragged input, or an invalid
/// setting.
pub fn tsne(points: &[f64], dim: usize, config: &TsneConfig) -> Result<Embedding, MetricsError> {
    let n = validate(points, dim, config)?;
    let p = joint_probabilities(points, dim, config.perplexity, config.affinities);
    let mut y = pca::pca_init(points, dim);
    let learning_rate = match config.learning_rate {
        LearningRate::Auto => (n as f64 / config.early_exaggeration / 4.0).max(50.0),
        LearningRate::Fixed(rate) => rate,
    };
    let exploration = Stage {
        exaggeration: config.early_exaggeration,
        momentum: 0.5,
        first: 0,
        end: EXPLORATION_ITER.min(config.max_iter),
        patience: EXPLORATION_ITER,
    };
    let (mut last, mut kl) = descend(&p, &mut y, &exploration, learning_rate, config);
    if config.max_iter > EXPLORATION_ITER {
        let convergence = Stage {
            exaggeration: 1.0,
            momentum: 0.8,
            first: last + 1,
            end: config.max_iter,
            patience: config.n_iter_without_progress,
        };
        (last, kl) = descend(&p, &mut y, &convergence, learning_rate, config);
    }
    Ok(Embedding {
        coords: y.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
        kl_divergence: kl,
        iterations: last + 1,
    })
}

fn validate(points: &[f64], dim: usize, config: &TsneConfig) -> Result<usize, MetricsError> {
    if dim == 0 || !points.len().is_multiple_of(dim) {
        return Err(MetricsError::RaggedLogits {
            len: points.len(),
            classes: dim,
        });
    }
    let n = points.len() / dim;
    let invalid = |why: String| Err(MetricsError::InvalidParameter(why));
    // Written so that NaN settings fail the checks too.
    let in_range = config.perplexity > 0.0 && config.perplexity < n as f64;
    if !in_range {
        return invalid(format!(
            "perplexity {} must be in (0, n = {n})",
            config.perplexity
        ));
    }
    if config.early_exaggeration.is_nan() || config.early_exaggeration < 1.0 {
        return invalid(format!(
            "early exaggeration {} < 1",
            config.early_exaggeration
        ));
    }
    if let LearningRate::Fixed(rate) = config.learning_rate
        && (rate.is_nan() || rate <= 0.0)
    {
        return invalid(format!("learning rate {rate} must be positive"));
    }
    if points.iter().any(|x| !x.is_finite()) {
        return Err(MetricsError::NotANumber {
            what: "t-SNE input",
        });
    }
    Ok(n)
}

/// One call of scikit-learn's `_gradient_descent`.
struct Stage {
    exaggeration: f64,
    momentum: f64,
    first: usize,
    end: usize,
    patience: usize,
}

/// Runs iterations `first..end`; returns the last iteration index and its KL divergence.
fn descend(
    p: &JointProbabilities,
    y: &mut [f64],
    stage: &Stage,
    learning_rate: f64,
    config: &TsneConfig,
) -> (usize, f64) {
    let mut update = vec![0.0; y.len()];
    let mut gains = vec![1.0; y.len()];
    let (mut best_error, mut best_iter) = (f64::MAX, stage.first);
    let (mut last, mut error) = (stage.first, f64::NAN);
    for i in stage.first..stage.end {
        last = i;
        let check = (i + 1) % CHECK_EVERY == 0;
        let (mut grad, kl) = gradient(p, y, stage.exaggeration, check || i + 1 == stage.end);
        error = kl.unwrap_or(f64::NAN);
        for ((g, u), gain) in grad.iter_mut().zip(&mut update).zip(&mut gains) {
            // `u·g < 0`: the descent direction still agrees with the last step, so grow the gain;
            // otherwise the step overshot and the gain shrinks.
            let grown: f64 = if *u * *g < 0.0 {
                *gain + 0.2
            } else {
                *gain * 0.8
            };
            *gain = grown.max(MIN_GAIN);
            *g *= *gain;
            *u = stage.momentum * *u - learning_rate * *g;
        }
        y.iter_mut().zip(&update).for_each(|(y, u)| *y += u);
        if check {
            if error < best_error {
                (best_error, best_iter) = (error, i);
            } else if i - best_iter > stage.patience {
                break;
            }
            if grad.iter().map(|g| g * g).sum::<f64>().sqrt() <= config.min_grad_norm {
                break;
            }
        }
    }
    (last, error)
}

/// The exact gradient of KL(P ‖ Q) with P scaled by `exaggeration`, and optionally the KL.
///
/// With `w_ij = 1 / (1 + ‖y_i − y_j‖²)` and `Z = Σ_{i≠j} w_ij`:
/// `∂KL/∂y_i = 4 Σ_j (p_ij − w_ij / Z) w_ij (y_i − y_j)`, split into an attraction over P's
/// entries and a repulsion `Σ_j w_ij² (y_i − y_j)` over all points, scaled by `1/Z` once `Z`
/// is known, so one pass over the pairs suffices.
fn gradient(
    p: &JointProbabilities,
    y: &[f64],
    exaggeration: f64,
    with_error: bool,
) -> (Vec<f64>, Option<f64>) {
    let xs: Vec<f64> = y.iter().step_by(2).copied().collect();
    let ys: Vec<f64> = y.iter().skip(1).step_by(2).copied().collect();
    let rows: Vec<Row> = (0..xs.len())
        .into_par_iter()
        .map(|i| row_terms(p, &xs, &ys, i, exaggeration, with_error))
        .collect();
    let z: f64 = rows.iter().map(|r| r.z).sum();
    let grad = rows
        .iter()
        .flat_map(|r| {
            [
                4.0 * (r.attract[0] - r.repel[0] / z),
                4.0 * (r.attract[1] - r.repel[1] / z),
            ]
        })
        .collect();
    // KL = Σ p' ln(p' / (w / Z)) = Σ p' ln(p' / w) + ln Z · Σ p' over P's entries (p' = ex·p).
    let error = with_error.then(|| {
        let (plogpw, psum) = rows
            .iter()
            .fold((0.0, 0.0), |(a, b), r| (a + r.p_log_p_over_w, b + r.p_sum));
        plogpw + z.ln() * psum
    });
    (grad, error)
}

/// Per-point sums of one gradient pass.
struct Row {
    attract: [f64; 2],
    repel: [f64; 2],
    z: f64,
    p_log_p_over_w: f64,
    p_sum: f64,
}

fn row_terms(
    p: &JointProbabilities,
    xs: &[f64],
    ys: &[f64],
    i: usize,
    exaggeration: f64,
    with_error: bool,
) -> Row {
    let (xi, yi) = (xs[i], ys[i]);
    let (z, repel) = repulsion(xi, yi, xs, ys);
    let (mut attract, mut p_log_p_over_w, mut p_sum) = ([0.0; 2], 0.0, 0.0);
    for (j, pij) in p.row(i) {
        let (dx, dy) = (xi - xs[j], yi - ys[j]);
        let w = 1.0 / (1.0 + dx * dx + dy * dy);
        let pij = exaggeration * pij;
        attract[0] += pij * w * dx;
        attract[1] += pij * w * dy;
        if with_error && pij > 0.0 {
            p_log_p_over_w += pij * (pij / w).ln();
            p_sum += pij;
        }
    }
    // The loop in `repulsion` includes j = i, which adds w_ii = 1 to Z and nothing to the force.
    Row {
        attract,
        repel,
        z: z - 1.0,
        p_log_p_over_w,
        p_sum,
    }
}

/// `(Σ_j w_ij, Σ_j w_ij² (y_i − y_j))` over all points, in four independent lanes so the
/// compiler can vectorise the loop (floating-point sums are not reassociated otherwise).
fn repulsion(xi: f64, yi: f64, xs: &[f64], ys: &[f64]) -> (f64, [f64; 2]) {
    const LANES: usize = 4;
    let (mut z, mut rx, mut ry) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let mut pair = |lane: usize, xj: f64, yj: f64| {
        let (dx, dy) = (xi - xj, yi - yj);
        let w = 1.0 / (1.0 + dx * dx + dy * dy);
        z[lane] += w;
        rx[lane] += w * w * dx;
        ry[lane] += w * w * dy;
    };
    let (x_chunks, y_chunks) = (xs.chunks_exact(LANES), ys.chunks_exact(LANES));
    let (x_tail, y_tail) = (x_chunks.remainder(), y_chunks.remainder());
    for (cx, cy) in x_chunks.zip(y_chunks) {
        for lane in 0..LANES {
            pair(lane, cx[lane], cy[lane]);
        }
    }
    for (lane, (&xj, &yj)) in x_tail.iter().zip(y_tail).enumerate() {
        pair(lane, xj, yj);
    }
    let sum = |a: [f64; LANES]| a.iter().sum::<f64>();
    (sum(z), [sum(rx), sum(ry)])
}
