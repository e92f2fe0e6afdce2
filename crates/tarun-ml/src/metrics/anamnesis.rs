//! The Anamnesis Index, AIN: how fast a model relearns the forgotten class compared with a model
//! that never saw it (docs/study.md §7.6), and the corrected, censoring-aware variant
//! (§10.1 item 4).
//!
//! **Seed.** `target = acc_forget(base) − 5` percentage points (`ALPHA_MARGIN`, unrelated to the
//! surgeon's α). Each model is relearned epoch by epoch (at most 30); the forget accuracy before
//! any training is epoch 0, and the result is the first epoch whose accuracy is `≥ target`, or the
//! cap when it is never reached, indistinguishable from reaching it exactly at the cap.
//! `AIN = epochs_unlearned / epochs_comparison`, with a comparison of 0 epochs counted as 1.
//!
//! **Corrected.** The same loop counts optimizer *steps* (evaluating every `eval_every` steps),
//! records whether the target was reached (`reached`), and can track retain accuracy so that a
//! model that "relearns" by predicting the forget class everywhere is visible. The ratio is then an
//! [`AinEstimate`]: exact when both runs reached the target, a bound when one was censored, and
//! undefined when both were. What the step does (forget-only or forget + retain data, which
//! split) is the caller's closure; this module holds no model code.

use serde::{Deserialize, Serialize};

use super::MetricsError;

/// The seed's margin below the base model's forget accuracy, in percentage points.
pub const SEED_TARGET_MARGIN_PP: f64 = 5.0;

/// The seed's epoch cap (`MAX_EPOCHS`).
pub const SEED_MAX_EPOCHS: u64 = 30;

/// The relearning target: the base model's forget accuracy minus `margin_pp` points.
pub fn relearn_target(base_forget_acc: f64, margin_pp: f64) -> f64 {
    base_forget_acc - margin_pp
}

/// When to stop relearning and how often to measure. Built through [`RelearnConfig::new`], so
/// it is always valid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RelearnConfig {
    target: f64,
    max_steps: u64,
    eval_every: u64,
}

impl RelearnConfig {
    /// Relearn until the forget accuracy (percent) reaches `target`, for at most `max_steps`
    /// steps, measuring after every `eval_every` steps and after the last one.
    ///
    /// # Errors
    /// A NaN target or `eval_every == 0`.
    pub fn new(target: f64, max_steps: u64, eval_every: u64) -> Result<Self, MetricsError> {
        if target.is_nan() || eval_every == 0 {
            return Err(MetricsError::InvalidParameter(format!(
                "relearning needs a numeric target and eval_every > 0 (got {target}, {eval_every})"
            )));
        }
        Ok(Self {
            target,
            max_steps,
            eval_every,
        })
    }

    /// The seed's protocol for a given target: one step per epoch, measured every epoch, at
    /// most 30.
    ///
    /// # Errors
    /// A NaN target.
    pub fn seed(target: f64) -> Result<Self, MetricsError> {
        Self::new(target, SEED_MAX_EPOCHS, 1)
    }

    /// The forget accuracy that counts as relearned.
    pub fn target(&self) -> f64 {
        self.target
    }

    /// The step cap.
    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    /// The measurement interval.
    pub fn eval_every(&self) -> u64 {
        self.eval_every
    }
}

/// One measurement of the relearning curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Steps taken before this measurement (0 = before relearning).
    pub step: u64,
    /// Forget-class accuracy in percent.
    pub forget_acc: f64,
    /// Retain accuracy in percent, when tracked.
    pub retain_acc: Option<f64>,
}

/// The outcome of one relearning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelearnCurve {
    /// Measurements in step order, starting at step 0.
    pub points: Vec<CurvePoint>,
    /// Whether the forget accuracy reached the target.
    pub reached: bool,
    /// The step at which it was reached, or the steps run when it was not (censored).
    pub steps: u64,
}

impl RelearnCurve {
    /// Rebuilds the outcome from a recorded forget-accuracy curve (index = step, 0 = before
    /// relearning), applying the same stopping rule as [`relearn`] with `eval_every = 1`.
    ///
    /// # Errors
    /// An empty curve.
    pub fn from_forget_curve(curve: &[f64], target: f64) -> Result<Self, MetricsError> {
        if curve.is_empty() {
            return Err(MetricsError::Empty {
                what: "relearning curve",
            });
        }
        let hit = curve.iter().position(|&acc| acc >= target);
        let kept = hit.map_or(curve.len(), |i| i + 1);
        let points = curve[..kept]
            .iter()
            .enumerate()
            .map(|(step, &forget_acc)| CurvePoint {
                step: step as u64,
                forget_acc,
                retain_acc: None,
            })
            .collect();
        Ok(Self {
            points,
            reached: hit.is_some(),
            steps: hit.unwrap_or(curve.len() - 1) as u64,
        })
    }

    /// The seed's epoch count: the step reached, or the cap (steps run) when censored.
    pub fn seed_count(&self) -> u64 {
        self.steps
    }
}

/// Runs the relearning loop: measure at step 0, then `step()` up to `max_steps` times, measuring
/// every `eval_every` steps and after the last, and stop as soon as the forget accuracy reaches
/// the target.
///
/// # Errors
/// The first error of a closure, or an invalid config (wrapped by `E`).
pub fn relearn<E>(
    config: &RelearnConfig,
    step: impl FnMut() -> Result<(), E>,
    mut measure_forget: impl FnMut() -> Result<f64, E>,
) -> Result<RelearnCurve, E> {
    run(config, step, &mut || Ok((measure_forget()?, None)))
}

/// [`relearn`] that also records retain accuracy at every measurement (corrected protocol).
///
/// # Errors
/// As [`relearn`].
pub fn relearn_tracking_retain<E>(
    config: &RelearnConfig,
    step: impl FnMut() -> Result<(), E>,
    mut measure_forget: impl FnMut() -> Result<f64, E>,
    mut measure_retain: impl FnMut() -> Result<f64, E>,
) -> Result<RelearnCurve, E> {
    run(config, step, &mut || {
        Ok((measure_forget()?, Some(measure_retain()?)))
    })
}

type Measure<'a, E> = dyn FnMut() -> Result<(f64, Option<f64>), E> + 'a;

fn run<E>(
    config: &RelearnConfig,
    mut step: impl FnMut() -> Result<(), E>,
    measure: &mut Measure<'_, E>,
) -> Result<RelearnCurve, E> {
    let mut points = Vec::new();
    let mut probe = |at: u64, points: &mut Vec<CurvePoint>| -> Result<bool, E> {
        let (forget_acc, retain_acc) = measure()?;
        points.push(CurvePoint {
            step: at,
            forget_acc,
            retain_acc,
        });
        Ok(forget_acc >= config.target)
    };
    if probe(0, &mut points)? {
        return Ok(RelearnCurve {
            points,
            reached: true,
            steps: 0,
        });
    }
    for at in 1..=config.max_steps {
        step()?;
        if (at % config.eval_every == 0 || at == config.max_steps) && probe(at, &mut points)? {
            return Ok(RelearnCurve {
                points,
                reached: true,
                steps: at,
            });
        }
    }
    Ok(RelearnCurve {
        points,
        reached: false,
        steps: config.max_steps,
    })
}

/// The seed's AIN: `unlearned / comparison` epochs, a comparison of 0 counted as 1.
pub fn ain_seed(unlearned_epochs: u64, comparison_epochs: u64) -> f64 {
    unlearned_epochs as f64 / comparison_epochs.max(1) as f64
}

/// The corrected AIN, honest about censored runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum AinEstimate {
    /// Both runs reached the target: `steps_unlearned / steps_comparison`.
    Exact(f64),
    /// Only the comparison reached it: the true ratio is at least this.
    AtLeast(f64),
    /// Only the unlearned model reached it: the true ratio is at most this.
    AtMost(f64),
    /// Neither reached it, or the comparison needed no steps: no ratio can be given.
    Undefined,
}

/// The corrected AIN from two relearning runs with the same config.
pub fn ain_corrected(unlearned: &RelearnCurve, comparison: &RelearnCurve) -> AinEstimate {
    if comparison.steps == 0 {
        return AinEstimate::Undefined;
    }
    let ratio = unlearned.steps as f64 / comparison.steps as f64;
    match (unlearned.reached, comparison.reached) {
        (true, true) => AinEstimate::Exact(ratio),
        // The unlearned model needs more than its `steps`: the ratio is a lower bound.
        (false, true) => AinEstimate::AtLeast(ratio),
        // The comparison needs more than its `steps`: the ratio is an upper bound.
        (true, false) => AinEstimate::AtMost(ratio),
        (false, false) => AinEstimate::Undefined,
    }
}
