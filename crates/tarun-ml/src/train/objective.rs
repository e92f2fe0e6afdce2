//! Training objectives: plain cross-entropy and the two unlearning baselines of the seed study
//! (docs/study.md §5).
//!
//! * Gradient ascent on the forget set: minimise −CE (e.g. Thudi et al., "Unrolling SGD:
//!   Understanding Factors Influencing Machine Unlearning", EuroS&P 2022).
//! * Random labelling: fine-tune on wrong labels (Golatkar, Achille & Soatto, "Eternal Sunshine of
//!   the Spotless Net", CVPR 2020, use it as a baseline). The seed draws uniformly over all classes
//!   and shifts collisions to the next class, so class (y+1) mod K gets twice the mass of the
//!   others; [`RandomLabelRule::Uniform`] is the corrected rule.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How random labels are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomLabelRule {
    /// The seed's rule: draw from 0..K; if it equals the true label use (draw + 1) mod K.
    Seed,
    /// Uniform over the K − 1 wrong classes.
    Uniform,
    /// Uniform over all K classes, the true one included (SalUn's random labels).
    AnyClass,
}

/// What the loss is computed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Objective {
    /// Mean cross-entropy against the true labels.
    Ce,
    /// Negated mean cross-entropy against the true labels (unbounded below).
    GradientAscent,
    /// Mean cross-entropy against freshly drawn wrong labels, one draw per sample per step.
    RandomLabels {
        /// The drawing rule.
        rule: RandomLabelRule,
    },
}

/// Draws a wrong label for each true label under `rule` with `num_classes` classes (≥ 2).
pub fn random_labels(
    labels: &[u32],
    num_classes: u32,
    rule: RandomLabelRule,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    labels
        .iter()
        .map(|&y| match rule {
            RandomLabelRule::Seed => {
                let draw = rng.random_range(0..num_classes);
                if draw == y {
                    (draw + 1) % num_classes
                } else {
                    draw
                }
            }
            RandomLabelRule::Uniform => {
                // Draw from the K-1 other classes by skipping over the true one.
                let draw = rng.random_range(0..num_classes - 1);
                if draw >= y { draw + 1 } else { draw }
            }
            RandomLabelRule::AnyClass => rng.random_range(0..num_classes),
        })
        .collect()
}
