//! Training and batched evaluation of a [`Network`] (docs/study.md §3, §5 and §6).
//!
//! [`fit`] runs mini-batch training in train mode (batch statistics, dropout) with AdamW
//! (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) or SGD with momentum,
//! a constant or per-epoch cosine learning rate (Loshchilov & Hutter, "SGDR", ICLR 2017, without
//! restarts: `lr_e = lr0 (1 + cos(pi e / T)) / 2`), and one of the study's objectives. On the CPU a
//! fixed configuration, initial weights and batch sequence give bit-identical weights.

mod objective;
mod optim;

use std::time::Instant;

use candle_core::{D, DType, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::{Mode, ModelError, Network};
pub use objective::{Objective, RandomLabelRule, random_labels};
pub use optim::{Optimizer, OptimizerKind};

/// Errors from training or evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A Candle operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The network failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The batch source failed.
    #[error("reading a batch failed")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The loss stopped being a finite number; the weights are left as they were before the step.
    #[error("loss became {loss} at epoch {epoch}, step {step}: training diverged")]
    NonFiniteLoss {
        /// 0-based epoch.
        epoch: u64,
        /// 1-based global step that produced the loss.
        step: u64,
        /// The offending value.
        loss: f32,
    },
    /// A batch-norm running statistic became NaN or infinite (non-finite activations that
    /// ReLU hid from the loss).
    #[error(
        "batch-norm statistics became non-finite at epoch {epoch}, step {step}: training diverged or the batch holds NaN/inf"
    )]
    NonFiniteStatistics {
        /// 0-based epoch.
        epoch: u64,
        /// 1-based global step.
        step: u64,
    },
    /// [`TrainHooks::should_stop`] asked to stop.
    #[error("training cancelled at epoch {epoch} after {steps} steps")]
    Cancelled {
        /// 0-based epoch.
        epoch: u64,
        /// Steps completed.
        steps: u64,
    },
    /// The configuration cannot be run.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, TrainError>;

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `CosineAnnealingLR(T_max = epochs, eta_min = 0)` stepped once per epoch.
    Cosine,
}

impl Schedule {
    /// The rate for 0-based `epoch` out of `epochs`.
    pub fn lr(self, lr0: f64, epoch: u64, epochs: u64) -> f64 {
        match self {
            Schedule::Constant => lr0,
            Schedule::Cosine => {
                let t = epochs.max(1) as f64;
                lr0 * (1.0 + (std::f64::consts::PI * epoch as f64 / t).cos()) / 2.0
            }
        }
    }
}

/// The optimiser and its schedule: what a training run and an unlearning run share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimization {
    /// AdamW or SGD.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// Weight decay (decoupled for AdamW, added to the gradient for SGD).
    pub weight_decay: f64,
    /// SGD momentum (ignored by AdamW).
    pub momentum: f64,
    /// Number of passes over the batches.
    pub epochs: u64,
    /// Stop after this many optimizer steps in total, if set.
    pub max_steps: Option<u64>,
    /// Learning-rate schedule.
    pub schedule: Schedule,
}

impl Optimization {
    /// The optimiser over `vars`.
    pub fn optimizer(&self, vars: Vec<Var>) -> Result<Optimizer> {
        Ok(Optimizer::new(
            self.optimizer,
            vars,
            self.weight_decay,
            self.momentum,
        )?)
    }

    /// The learning rate of 0-based `epoch`.
    pub fn lr_at(&self, epoch: u64) -> f64 {
        self.schedule.lr(self.lr, epoch, self.epochs)
    }

    /// Whether `steps` optimizer steps reach the step cap.
    pub fn spent(&self, steps: u64) -> bool {
        self.max_steps.is_some_and(|m| steps >= m)
    }

    /// A learning rate that is a finite non-negative number.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "learning rate {}",
                self.lr
            )));
        }
        Ok(())
    }
}

/// Everything that defines one training run apart from the data and the initial weights.
/// Serialised (into checkpoints' metadata) as one flat object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The optimiser, learning rate, epochs and schedule.
    #[serde(flatten)]
    pub optim: Optimization,
    /// What the loss is computed against.
    pub objective: Objective,
    /// Seeds dropout masks and random labels.
    pub seed: u64,
}

/// Progress of one optimizer step, handed to [`TrainHooks::on_step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// 0-based epoch.
    pub epoch: u64,
    /// 1-based global step.
    pub step: u64,
    /// The objective's loss on this batch (negative for gradient ascent).
    pub loss: f32,
    /// The learning rate used.
    pub lr: f64,
    /// Images in this batch.
    pub batch_size: usize,
}

/// Per-epoch summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 0-based epoch.
    pub epoch: u64,
    /// The learning rate used.
    pub lr: f64,
    /// Sample-weighted mean of the objective's loss.
    pub mean_loss: f64,
    /// Fraction (0..=1) of training images whose train-mode prediction matched the *true* label.
    pub train_accuracy: f64,
    /// Optimizer steps taken in this epoch.
    pub steps: u64,
    /// Images seen in this epoch.
    pub images: u64,
}

/// The outcome of [`fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// One entry per epoch that took at least one step.
    pub epochs: Vec<EpochStats>,
    /// Total optimizer steps.
    pub steps: u64,
    /// Total images seen.
    pub images: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Callbacks from [`fit`]: progress reporting and cooperative cancellation.
pub trait TrainHooks {
    /// Called after every optimizer step.
    fn on_step(&mut self, _info: &StepInfo) {}
    /// Called at the end of every epoch.
    fn on_epoch(&mut self, _stats: &EpochStats) {}
    /// Checked before every batch; `true` aborts with [`TrainError::Cancelled`].
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl TrainHooks for NoHooks {}

/// The stream of the random-label RNG (dropout uses the network's own stream).
const LABEL_STREAM: u64 = 1;

/// Trains `net` in place.
///
/// `batches(epoch)` yields that epoch's `(images [B,3,H,W] f32, labels [B] u32)`; empty batches are
/// skipped. The loss is checked before each update, so a NaN or infinite loss fails with
/// [`TrainError::NonFiniteLoss`] and leaves the weights of the previous step; non-finite
/// batch-norm statistics after a step fail with [`TrainError::NonFiniteStatistics`].
pub fn fit<F, I, E>(
    net: &mut Network,
    cfg: &TrainConfig,
    mut batches: F,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainSummary>
where
    F: FnMut(u64) -> I,
    I: Iterator<Item = std::result::Result<(Tensor, Tensor), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    validate(net, cfg)?;
    let start = Instant::now();
    let mut opt = cfg.optim.optimizer(net.trainable_vars())?;
    net.reseed_dropout(cfg.seed);
    let mut label_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    label_rng.set_stream(LABEL_STREAM);
    let mut summary = TrainSummary {
        epochs: Vec::new(),
        steps: 0,
        images: 0,
        seconds: 0.0,
    };
    let mut run = Run {
        net,
        cfg,
        opt: &mut opt,
        label_rng: &mut label_rng,
        hooks,
    };
    for epoch in 0..cfg.optim.epochs {
        if cfg.optim.spent(summary.steps) {
            break;
        }
        let stats = run.epoch(epoch, &mut batches(epoch), &mut summary.steps)?;
        summary.images += stats.images;
        if stats.steps > 0 {
            run.hooks.on_epoch(&stats);
            summary.epochs.push(stats);
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn validate(net: &Network, cfg: &TrainConfig) -> Result<()> {
    cfg.optim.validate()?;
    if matches!(cfg.objective, Objective::RandomLabels { .. }) && net.num_classes() < 2 {
        return Err(TrainError::InvalidConfig(
            "random labels need at least two classes".into(),
        ));
    }
    Ok(())
}

/// The state of one [`fit`] call.
struct Run<'a> {
    net: &'a Network,
    cfg: &'a TrainConfig,
    opt: &'a mut Optimizer,
    label_rng: &'a mut ChaCha8Rng,
    hooks: &'a mut dyn TrainHooks,
}

impl Run<'_> {
    fn epoch<I, E>(&mut self, epoch: u64, batches: &mut I, steps: &mut u64) -> Result<EpochStats>
    where
        I: Iterator<Item = std::result::Result<(Tensor, Tensor), E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let lr = self.cfg.optim.lr_at(epoch);
        let mut stats = EpochStats {
            epoch,
            lr,
            mean_loss: 0.0,
            train_accuracy: 0.0,
            steps: 0,
            images: 0,
        };
        let (mut loss_sum, mut correct) = (0.0f64, 0u64);
        loop {
            if self.cfg.optim.spent(*steps) {
                break;
            }
            if self.hooks.should_stop() {
                return Err(TrainError::Cancelled {
                    epoch,
                    steps: *steps,
                });
            }
            let Some(item) = batches.next() else { break };
            let (x, y) = item.map_err(|e| TrainError::Data(Box::new(e)))?;
            let batch_size = y.dim(0)?;
            if batch_size == 0 {
                continue;
            }
            let (loss, batch_correct) = self.step(&x, &y, lr, epoch, *steps + 1)?;
            *steps += 1;
            stats.steps += 1;
            stats.images += batch_size as u64;
            loss_sum += f64::from(loss) * batch_size as f64;
            correct += batch_correct;
            let info = StepInfo {
                epoch,
                step: *steps,
                loss,
                lr,
                batch_size,
            };
            self.hooks.on_step(&info);
        }
        if stats.images > 0 {
            stats.mean_loss = loss_sum / stats.images as f64;
            stats.train_accuracy = correct as f64 / stats.images as f64;
        }
        Ok(stats)
    }

    /// Forward, loss, finiteness check, backward and update; returns (loss, correct predictions).
    fn step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        epoch: u64,
        step: u64,
    ) -> Result<(f32, u64)> {
        let taped = self.net.forward_taped(x, Mode::TRAIN)?;
        let logits = &taped.logits;
        let loss = match self.cfg.objective {
            Objective::Ce => candle_nn::loss::cross_entropy(logits, y)?,
            Objective::GradientAscent => candle_nn::loss::cross_entropy(logits, y)?.neg()?,
            Objective::RandomLabels { rule } => {
                let k = self.net.num_classes() as u32;
                let wrong = random_labels(&y.to_vec1::<u32>()?, k, rule, self.label_rng);
                let wrong = Tensor::from_vec(wrong, y.dims(), y.device())?;
                candle_nn::loss::cross_entropy(logits, &wrong)?
            }
        };
        // The backward pass and the count of hits are queued before the loss is read, so that
        // on a GPU the one wait per step covers them all; the weights change only after the
        // check, in the optimizer step.
        let grads = taped.backward(&loss)?;
        let hits = correct(&logits.detach(), y)?;
        let at = StepAt { lr, epoch, step };
        update(
            self.net,
            self.opt,
            &grads,
            &loss.to_dtype(DType::F32)?,
            hits,
            at,
        )
    }
}

/// Where a step is: its learning rate, 0-based epoch and 1-based global step.
#[derive(Clone, Copy)]
pub(crate) struct StepAt {
    pub lr: f64,
    pub epoch: u64,
    pub step: u64,
}

/// The end of every optimizer step, training's and unlearning's: reads the f32 `loss` and the
/// `hits` in one transfer (on a GPU, the one wait per step), refuses a non-finite loss before the
/// weights change, updates them, and refuses non-finite batch-norm statistics after. Returns
/// (loss, correct predictions).
pub(crate) fn update(
    net: &Network,
    opt: &mut Optimizer,
    grads: &candle_core::backprop::GradStore,
    loss: &Tensor,
    hits: Tensor,
    at: StepAt,
) -> Result<(f32, u64)> {
    let StepAt { lr, epoch, step } = at;
    let read = Tensor::stack(&[loss.clone(), hits], 0)?.to_vec1::<f32>()?;
    let (value, correct) = (read[0], read[1] as u64);
    if !value.is_finite() {
        return Err(TrainError::NonFiniteLoss {
            epoch,
            step,
            loss: value,
        });
    }
    opt.step(grads, lr)?;
    if !net.buffers_finite()? {
        return Err(TrainError::NonFiniteStatistics { epoch, step });
    }
    Ok((value, correct))
}

/// How many rows' argmax equals the label, as an f32 scalar on the logits' device (exact up
/// to 2^24 rows).
pub(crate) fn correct(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred
        .eq(&labels.to_dtype(pred.dtype())?)?
        .to_dtype(DType::F32)?
        .sum_all()?)
}

/// Runs `net` in eval mode over `batches` and returns the logits (N x C, row-major) and labels.
pub fn evaluate_logits<I, E>(net: &Network, batches: I) -> Result<(Vec<f32>, Vec<u32>)>
where
    I: IntoIterator<Item = std::result::Result<(Tensor, Tensor), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let (mut logits, mut labels) = (Vec::new(), Vec::new());
    for item in batches {
        let (x, y) = item.map_err(|e| TrainError::Data(Box::new(e)))?;
        if y.dim(0)? == 0 {
            continue;
        }
        let out = net.forward_inference(&x)?;
        logits.extend(out.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        labels.extend(y.to_dtype(DType::U32)?.to_vec1::<u32>()?);
    }
    Ok((logits, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkpoints record the recipe as this JSON: one flat object, in this order.
    #[test]
    fn a_train_config_serialises_flat() {
        let cfg = TrainConfig {
            optim: Optimization {
                optimizer: OptimizerKind::Sgd,
                lr: 0.5,
                weight_decay: 0.25,
                momentum: 0.9,
                epochs: 3,
                max_steps: Some(7),
                schedule: Schedule::Cosine,
            },
            objective: Objective::Ce,
            seed: 11,
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            json,
            r#"{"optimizer":"sgd","lr":0.5,"weight_decay":0.25,"momentum":0.9,"epochs":3,"max_steps":7,"schedule":"cosine","objective":{"kind":"ce"},"seed":11}"#
        );
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
    }
}
