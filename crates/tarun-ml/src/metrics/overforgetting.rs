//! Over-forgetting of a "neighbour" class (docs/study.md §7.5) and its corrected, base-relative
//! variant (docs/study.md §10.1 item 5).
//!
//! **Seed.** For the unlearned model, from integer counts: `Acc_neighbour` over the neighbour
//! class's samples, `Acc_others` over the samples of every class other than the neighbour and the
//! forget class, and `Gap = Acc_others − Acc_neighbour` in percentage points. The neighbour is
//! hard-coded to airplane (class 0).
//!
//! **Corrected.** The seed ignores that the base model already has a gap (−0.74, −2.675 and
//! −6.225 pp) and picks the neighbour by hand. [`over_forgetting_relative`] reports the *change*
//! from the base model, and [`confusion_neighbour`] picks the neighbour from the base model's
//! confusion matrix: the class most often confused with the forget class in either direction
//! (`cm[f][j] + cm[j][f]`), which is airplane for ship in all three of the seed's base models.

use serde::{Deserialize, Serialize};

use super::accuracy::check_class;
use super::{ConfusionMatrix, MetricsError, Tally};

/// The seed's hard-coded neighbour: airplane.
pub const SEED_NEIGHBOUR: u32 = 0;

/// Over-forgetting of one model (docs/study.md §7.5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverForgetting {
    /// The neighbour class.
    pub neighbour: u32,
    /// Accuracy on the neighbour class.
    pub neighbour_acc: Tally,
    /// Accuracy on every class other than the neighbour and the forget class.
    pub others_acc: Tally,
    /// `Acc_others − Acc_neighbour`, in percentage points.
    pub gap_pp: f64,
}

/// Over-forgetting of `neighbour` for a model whose test-set confusion matrix is `cm`.
///
/// # Errors
/// Out-of-range or equal classes, or an empty subset.
pub fn over_forgetting(
    cm: &ConfusionMatrix,
    forget: u32,
    neighbour: u32,
) -> Result<OverForgetting, MetricsError> {
    let f = check_class(forget, cm.classes())?;
    let n = check_class(neighbour, cm.classes())?;
    if f == n {
        return Err(MetricsError::InvalidParameter(format!(
            "the neighbour class {neighbour} is the forget class"
        )));
    }
    let neighbour_acc = cm.class_tally(n);
    let others_acc = cm.tally_where(|c| c != f && c != n);
    let gap_pp = others_acc.require_percent("other classes")?
        - neighbour_acc.require_percent("neighbour class")?;
    Ok(OverForgetting {
        neighbour,
        neighbour_acc,
        others_acc,
        gap_pp,
    })
}

/// The class most confused with `forget` by the base model: the largest `cm[f][j] + cm[j][f]`
/// over `j ≠ f`, ties going to the lower class index.
///
/// # Errors
/// An out-of-range forget class or a matrix with fewer than two classes.
pub fn confusion_neighbour(base: &ConfusionMatrix, forget: u32) -> Result<u32, MetricsError> {
    let f = check_class(forget, base.classes())?;
    (0..base.classes())
        .filter(|&j| j != f)
        .map(|j| (base.count(f, j) + base.count(j, f), j))
        // `max_by_key` keeps the last maximum; reversing the order keeps the lowest index.
        .rev()
        .max_by_key(|&(confusions, _)| confusions)
        .map(|(_, j)| j as u32)
        .ok_or_else(|| MetricsError::InvalidParameter("need at least two classes".into()))
}

/// Over-forgetting relative to the base model (corrected protocol).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelativeOverForgetting {
    /// The base model's over-forgetting for the same neighbour.
    pub base: OverForgetting,
    /// The unlearned model's over-forgetting.
    pub unlearned: OverForgetting,
    /// `gap_unlearned − gap_base`: the part of the gap the surgery created, in points.
    pub gap_change_pp: f64,
    /// `Acc_neighbour(base) − Acc_neighbour(unlearned)`, in points.
    pub neighbour_drop_pp: f64,
    /// `Acc_others(base) − Acc_others(unlearned)`, in points.
    pub others_drop_pp: f64,
}

/// Over-forgetting of the unlearned model measured against the base model, for an explicit
/// neighbour or (with `None`) the [`confusion_neighbour`] of the base model.
///
/// # Errors
/// Matrices of different sizes, invalid classes, or empty subsets.
pub fn over_forgetting_relative(
    base: &ConfusionMatrix,
    unlearned: &ConfusionMatrix,
    forget: u32,
    neighbour: Option<u32>,
) -> Result<RelativeOverForgetting, MetricsError> {
    if base.classes() != unlearned.classes() {
        return Err(MetricsError::LengthMismatch {
            what: "base and unlearned confusion matrices",
            left: base.classes(),
            right: unlearned.classes(),
        });
    }
    let neighbour = match neighbour {
        Some(n) => n,
        None => confusion_neighbour(base, forget)?,
    };
    let b = over_forgetting(base, forget, neighbour)?;
    let u = over_forgetting(unlearned, forget, neighbour)?;
    let drop = |before: Tally, after: Tally| -> Result<f64, MetricsError> {
        Ok(before.require_percent("base subset")? - after.require_percent("unlearned subset")?)
    };
    Ok(RelativeOverForgetting {
        gap_change_pp: u.gap_pp - b.gap_pp,
        neighbour_drop_pp: drop(b.neighbour_acc, u.neighbour_acc)?,
        others_drop_pp: drop(b.others_acc, u.others_acc)?,
        base: b,
        unlearned: u,
    })
}
