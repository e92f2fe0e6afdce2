//! Optimizers with PyTorch's exact update rules.
//!
//! * AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019), on top of
//!   Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015). The update mirrors
//!   `torch.optim.AdamW`'s single-tensor path: decay, `lerp` of the first moment, bias corrections
//!   computed in f64, `denom = sqrt(v) / sqrt(bc2) + eps`, `param -= lr / bc1 * m / denom`.
//! * SGD with momentum and coupled weight decay, as `torch.optim.SGD` (dampening 0, no Nesterov).
//!
//! Candle's own `AdamW` folds the bias corrections differently and its `SGD` has no momentum or
//! weight decay, hence these.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Which optimizer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// AdamW, betas (0.9, 0.999), eps 1e-8 (PyTorch defaults; seed spec section 3).
    AdamW,
    /// SGD with momentum, weight decay added to the gradient.
    Sgd,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// Per-variable optimizer state.
enum Slot {
    Adam { m: Tensor, v: Tensor },
    Momentum { buf: Option<Tensor> },
}

/// An optimizer over a fixed list of variables.
pub struct Optimizer {
    kind: OptimizerKind,
    weight_decay: f64,
    momentum: f64,
    vars: Vec<(Var, Slot)>,
    steps: u64,
}

impl Optimizer {
    /// An optimizer for `vars` with zeroed state.
    pub fn new(
        kind: OptimizerKind,
        vars: Vec<Var>,
        weight_decay: f64,
        momentum: f64,
    ) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|var| {
                let slot = match kind {
                    OptimizerKind::AdamW => Slot::Adam {
                        m: var.zeros_like()?,
                        v: var.zeros_like()?,
                    },
                    OptimizerKind::Sgd => Slot::Momentum { buf: None },
                };
                Ok((var, slot))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kind,
            weight_decay,
            momentum,
            vars,
            steps: 0,
        })
    }

    /// The optimizer's kind.
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Applies one update with learning rate `lr`; variables without a gradient are left alone,
    /// like PyTorch's `p.grad is None`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        // PyTorch keeps one step counter per parameter, but every parameter here gets a gradient
        // on every step, so one shared counter is the same.
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        let (wd, momentum) = (self.weight_decay, self.momentum);
        for (var, slot) in &mut self.vars {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached: the update must not build a backprop graph.
            let (theta, grad) = (var.as_tensor().detach(), grad.detach());
            let next = match slot {
                Slot::Adam { m, v } => adamw(&theta, &grad, m, v, lr, wd, (bc1, bc2))?,
                Slot::Momentum { buf } => sgd(&theta, &grad, buf, lr, wd, momentum)?,
            };
            var.set(&next)?;
        }
        Ok(())
    }
}

/// One AdamW update of one tensor, in PyTorch's operation order.
fn adamw(
    theta: &Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    lr: f64,
    wd: f64,
    (bc1, bc2): (f64, f64),
) -> Result<Tensor> {
    let theta = if wd != 0.0 {
        (theta * (1.0 - lr * wd))?
    } else {
        theta.clone()
    };
    // exp_avg.lerp_(grad, 1 - beta1) is m + (1 - beta1) * (grad - m).
    *m = (&*m + ((grad - &*m)? * (1.0 - BETA1))?)?;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2).
    *v = ((&*v * BETA2)? + (grad.sqr()? * (1.0 - BETA2))?)?;
    let denom = ((v.sqrt()? / bc2.sqrt())? + EPS)?;
    let step_size = lr / bc1;
    theta - (m.div(&denom)? * step_size)?
}

/// One SGD-with-momentum update: g += wd*theta; buf = momentum*buf + g (buf = g at first);
/// theta -= lr*buf.
fn sgd(
    theta: &Tensor,
    grad: &Tensor,
    buf: &mut Option<Tensor>,
    lr: f64,
    wd: f64,
    momentum: f64,
) -> Result<Tensor> {
    let mut g = if wd != 0.0 {
        (grad + (theta * wd)?)?
    } else {
        grad.clone()
    };
    if momentum != 0.0 {
        let b = match buf.take() {
            Some(b) => ((b * momentum)? + &g)?,
            None => g.clone(),
        };
        g = b.clone();
        *buf = Some(b);
    }
    theta - (g * lr)?
}
