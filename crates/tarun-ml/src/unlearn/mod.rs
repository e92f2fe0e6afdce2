//! The unlearning baselines that papers since 2023 compare against (docs/study.md §5.1), each
//! starting from a trained network:
//!
//! * [`Method::FineTune`]: cross-entropy on the retained data only.
//! * [`Method::L1Sparse`]: the same plus a linearly decaying l1 penalty on the weights ([`l1`]).
//! * [`Method::Scrub`]: a student, initialised from the network, moves away from the frozen
//!   original on the forget data (max-steps, first epochs only) and towards it on the retained
//!   data (min-steps), by the temperature-scaled KL of [`scrub`].
//! * [`Method::SalUn`]: random labels for the forget images and true ones for the retained
//!   images, one shuffled stream, updating only the weights of [`salun`]'s saliency mask.
//!
//! The optimizers, schedules, hooks, summaries and errors are [`crate::train`]'s. On the CPU a
//! fixed configuration, initial weights and batch sequence give bit-identical weights.

mod l1;
mod salun;
mod scrub;

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::{Mode, Network};
use crate::train::{
    EpochStats, Optimization, Optimizer, RandomLabelRule, Result, StepAt, StepInfo, TrainError,
    TrainHooks, TrainSummary, correct, random_labels, update,
};
pub use l1::{add_l1_gradient, l1_gamma, l1_norm};
pub use salun::{SaliencyMask, top_k_mask};
pub use scrub::distill_kl;

/// An unlearning method and its own hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Method {
    /// Cross-entropy on the retained data.
    FineTune,
    /// Cross-entropy on the retained data plus `gamma_e * ||theta||_1`, `gamma_e` from
    /// [`l1_gamma`].
    L1Sparse {
        /// The penalty weight of the first epoch.
        gamma: f64,
    },
    /// SCRUB: per epoch, max-steps over the forget data while `epoch < max_epochs`, then
    /// min-steps over the retained data.
    Scrub {
        /// Distillation temperature.
        temperature: f64,
        /// Weight of the KL term in min-steps.
        alpha: f64,
        /// Weight of the cross-entropy term in min-steps.
        gamma: f64,
        /// Epochs (from the first) that run max-steps.
        max_epochs: u64,
    },
    /// SalUn with random labels: the fraction `sparsity` of weights with the least salient
    /// forget gradient is frozen.
    SalUn {
        /// Fraction of weights left out of the update, in [0, 1].
        sparsity: f64,
    },
}

impl Method {
    /// The manifest's name of the method.
    pub fn name(&self) -> &'static str {
        match self {
            Method::FineTune => "fine-tune",
            Method::L1Sparse { .. } => "l1-sparse",
            Method::Scrub { .. } => "scrub",
            Method::SalUn { .. } => "salun",
        }
    }
}

/// Everything that defines one unlearning run apart from the data and the initial weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnlearnConfig {
    /// The method.
    pub method: Method,
    /// The optimiser, learning rate, epochs (what one epoch walks depends on the method) and
    /// schedule, as training has them.
    #[serde(flatten)]
    pub optim: Optimization,
    /// The classes whose images are forgotten (SalUn relabels the images of these classes).
    pub forget_classes: Vec<u32>,
    /// Seeds dropout masks and random labels.
    pub seed: u64,
}

/// A batch-source error.
pub type BatchError = Box<dyn std::error::Error + Send + Sync>;
/// One pass of `(images [B,3,H,W] f32, labels [B] u32)` batches.
pub type Batches<'a> =
    Box<dyn Iterator<Item = std::result::Result<(Tensor, Tensor), BatchError>> + 'a>;

/// The data an unlearning run reads; each call starts a fresh pass for that 0-based epoch.
pub trait UnlearnData {
    /// The forget set (SCRUB's max-steps, SalUn's saliency).
    fn forget(&mut self, epoch: u64) -> Batches<'_>;
    /// The retained set (fine-tuning, l1-sparse, SCRUB's min-steps).
    fn retain(&mut self, epoch: u64) -> Batches<'_>;
    /// Forget and retained images shuffled together (SalUn's training stream).
    fn mixed(&mut self, epoch: u64) -> Batches<'_>;
}

/// The stream of the random-label RNG, as in [`crate::train::fit`].
const LABEL_STREAM: u64 = 1;

/// Unlearns in place: runs `cfg.method` on `net` and returns the per-epoch statistics (losses are
/// each step's objective, negative for SCRUB's max-steps; accuracy is against true labels).
///
/// # Errors
/// An invalid configuration, a failing batch source, a non-finite loss or batch-norm statistic
/// (the weights are those of the last good step), or cancellation through `hooks`.
pub fn unlearn(
    net: &mut Network,
    cfg: &UnlearnConfig,
    data: &mut dyn UnlearnData,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainSummary> {
    validate(net, cfg)?;
    let start = Instant::now();
    let vars = net.trainable_vars();
    let teacher = match cfg.method {
        Method::Scrub { .. } => Some(net.deep_clone()?),
        _ => None,
    };
    let mask = match cfg.method {
        Method::SalUn { sparsity } => Some(saliency(net, &vars, data.forget(0), sparsity)?),
        _ => None,
    };
    let mut opt = cfg.optim.optimizer(vars.clone())?;
    net.reseed_dropout(cfg.seed);
    let mut label_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    label_rng.set_stream(LABEL_STREAM);
    let mut run = Run {
        net,
        cfg,
        vars,
        opt: &mut opt,
        label_rng,
        hooks,
        teacher,
        mask,
        steps: 0,
    };
    let mut summary = TrainSummary {
        epochs: Vec::new(),
        steps: 0,
        images: 0,
        seconds: 0.0,
    };
    for epoch in 0..cfg.optim.epochs {
        if run.spent() {
            break;
        }
        let lr = cfg.optim.lr_at(epoch);
        let mut tally = Tally::default();
        match cfg.method {
            Method::FineTune => run.pass(data.retain(epoch), Phase::Ce, epoch, lr, &mut tally)?,
            Method::L1Sparse { gamma } => {
                let g = l1_gamma(gamma, epoch, cfg.optim.epochs);
                run.pass(data.retain(epoch), Phase::L1(g), epoch, lr, &mut tally)?
            }
            Method::Scrub {
                temperature,
                alpha,
                gamma,
                max_epochs,
            } => {
                if epoch < max_epochs {
                    let max = Phase::ScrubMax { temperature };
                    run.pass(data.forget(epoch), max, epoch, lr, &mut tally)?;
                }
                let min = Phase::ScrubMin {
                    temperature,
                    alpha,
                    gamma,
                };
                run.pass(data.retain(epoch), min, epoch, lr, &mut tally)?
            }
            Method::SalUn { .. } => {
                run.pass(data.mixed(epoch), Phase::SalUn, epoch, lr, &mut tally)?
            }
        }
        summary.images += tally.images;
        if tally.steps > 0 {
            let stats = tally.stats(epoch, lr);
            run.hooks.on_epoch(&stats);
            summary.epochs.push(stats);
        }
    }
    summary.steps = run.steps;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn validate(net: &Network, cfg: &UnlearnConfig) -> Result<()> {
    let bad = |m: String| Err(TrainError::InvalidConfig(m));
    cfg.optim.validate()?;
    match cfg.method {
        Method::L1Sparse { gamma } if !(gamma.is_finite() && gamma >= 0.0) => {
            bad(format!("l1 weight {gamma}"))
        }
        Method::Scrub { temperature, .. } if !(temperature.is_finite() && temperature > 0.0) => {
            bad(format!("SCRUB temperature {temperature}"))
        }
        Method::Scrub { alpha, gamma, .. } if !(alpha.is_finite() && gamma.is_finite()) => {
            bad(format!("SCRUB weights alpha {alpha}, gamma {gamma}"))
        }
        Method::SalUn { sparsity } if !(0.0..=1.0).contains(&sparsity) => {
            bad(format!("SalUn sparsity {sparsity} is not in [0, 1]"))
        }
        Method::SalUn { .. } if net.num_classes() < 2 => {
            bad("random labels need at least two classes".into())
        }
        Method::SalUn { .. } if cfg.forget_classes.is_empty() => {
            bad("SalUn needs the forget classes".into())
        }
        _ => Ok(()),
    }
}

/// SalUn's mask from the gradient of the mean cross-entropy summed over the forget batches, the
/// network in evaluation mode (as the method's authors compute it).
fn saliency(
    net: &Network,
    vars: &[Var],
    forget: Batches<'_>,
    sparsity: f64,
) -> Result<SaliencyMask> {
    let mut sums: Vec<Option<Tensor>> = vec![None; vars.len()];
    for item in forget {
        let (x, y) = item.map_err(TrainError::Data)?;
        if y.dim(0)? == 0 {
            continue;
        }
        let taped = net.forward_taped(&x, Mode::EVAL)?;
        let loss = candle_nn::loss::cross_entropy(&taped.logits, &y)?;
        let grads = taped.backward(&loss)?;
        for (sum, var) in sums.iter_mut().zip(vars) {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = g.detach();
                *sum = Some(match sum.take() {
                    Some(s) => (s + g)?,
                    None => g,
                });
            }
        }
    }
    let grads = sums
        .into_iter()
        .zip(vars)
        .map(|(s, v)| s.map_or_else(|| v.as_tensor().zeros_like(), Ok))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(SaliencyMask::from_gradients(vars, &grads, sparsity)?)
}

/// What a step's loss and gradient are.
#[derive(Clone, Copy)]
enum Phase {
    Ce,
    L1(f64),
    ScrubMax {
        temperature: f64,
    },
    ScrubMin {
        temperature: f64,
        alpha: f64,
        gamma: f64,
    },
    SalUn,
}

#[derive(Default)]
struct Tally {
    steps: u64,
    images: u64,
    loss_sum: f64,
    correct: u64,
}

impl Tally {
    fn stats(&self, epoch: u64, lr: f64) -> EpochStats {
        let n = self.images.max(1) as f64;
        EpochStats {
            epoch,
            lr,
            mean_loss: self.loss_sum / n,
            train_accuracy: self.correct as f64 / n,
            steps: self.steps,
            images: self.images,
        }
    }
}

/// The state of one [`unlearn`] call.
struct Run<'a> {
    net: &'a Network,
    cfg: &'a UnlearnConfig,
    vars: Vec<Var>,
    opt: &'a mut Optimizer,
    label_rng: ChaCha8Rng,
    hooks: &'a mut dyn TrainHooks,
    teacher: Option<Network>,
    mask: Option<SaliencyMask>,
    steps: u64,
}

impl Run<'_> {
    /// Whether the step cap is reached.
    fn spent(&self) -> bool {
        self.cfg.optim.spent(self.steps)
    }

    fn pass(
        &mut self,
        batches: Batches<'_>,
        phase: Phase,
        epoch: u64,
        lr: f64,
        tally: &mut Tally,
    ) -> Result<()> {
        for item in batches {
            if self.spent() {
                break;
            }
            if self.hooks.should_stop() {
                return Err(TrainError::Cancelled {
                    epoch,
                    steps: self.steps,
                });
            }
            let (x, y) = item.map_err(TrainError::Data)?;
            let batch_size = y.dim(0)?;
            if batch_size == 0 {
                continue;
            }
            let (loss, hits) = self.step(&x, &y, phase, lr, epoch, self.steps + 1)?;
            self.steps += 1;
            tally.steps += 1;
            tally.images += batch_size as u64;
            tally.loss_sum += f64::from(loss) * batch_size as f64;
            tally.correct += hits;
            self.hooks.on_step(&StepInfo {
                epoch,
                step: self.steps,
                loss,
                lr,
                batch_size,
            });
        }
        Ok(())
    }

    /// Forward, loss, backward, the method's gradient change, finiteness check, update.
    fn step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        phase: Phase,
        lr: f64,
        epoch: u64,
        step: u64,
    ) -> Result<(f32, u64)> {
        let taped = self.net.forward_taped(x, Mode::TRAIN)?;
        let logits = &taped.logits;
        let ce = |labels: &Tensor| candle_nn::loss::cross_entropy(logits, labels);
        let teacher = |x: &Tensor| -> Result<Tensor> {
            let t = self.teacher.as_ref().expect("SCRUB keeps its teacher");
            Ok(t.forward_inference(x)?)
        };
        // `shown` is what the hooks report; it differs from the differentiated `loss` only by
        // l1-sparse's penalty, whose gradient is added in closed form.
        let (loss, mut shown) = match phase {
            Phase::Ce => (ce(y)?, None),
            Phase::L1(gamma) => {
                let penalty = match l1_norm(&self.vars)? {
                    Some(n) if gamma != 0.0 => Some((n * gamma)?),
                    _ => None,
                };
                (ce(y)?, penalty)
            }
            Phase::ScrubMax { temperature } => {
                (distill_kl(logits, &teacher(x)?, temperature)?.neg()?, None)
            }
            Phase::ScrubMin {
                temperature,
                alpha,
                gamma,
            } => {
                let kl = distill_kl(logits, &teacher(x)?, temperature)?;
                (((ce(y)? * gamma)? + (kl * alpha)?)?, None)
            }
            Phase::SalUn => {
                let labels = y.to_vec1::<u32>()?;
                let k = self.net.num_classes() as u32;
                let drawn =
                    random_labels(&labels, k, RandomLabelRule::AnyClass, &mut self.label_rng);
                let mixed: Vec<u32> = labels
                    .iter()
                    .zip(drawn)
                    .map(|(&t, r)| {
                        if self.cfg.forget_classes.contains(&t) {
                            r
                        } else {
                            t
                        }
                    })
                    .collect();
                (ce(&Tensor::from_vec(mixed, y.dims(), y.device())?)?, None)
            }
        };
        let mut grads: GradStore = taped.backward(&loss)?;
        match phase {
            Phase::L1(gamma) => add_l1_gradient(&self.vars, &mut grads, gamma)?,
            Phase::SalUn => {
                if let Some(mask) = &self.mask {
                    mask.apply(&mut grads)?;
                }
            }
            _ => {}
        }
        let hits = correct(&logits.detach(), y)?;
        let total = match shown.take() {
            Some(p) => (loss.to_dtype(DType::F32)? + p.to_dtype(DType::F32)?)?,
            None => loss.to_dtype(DType::F32)?,
        };
        update(
            self.net,
            self.opt,
            &grads,
            &total,
            hits,
            StepAt { lr, epoch, step },
        )
    }
}
