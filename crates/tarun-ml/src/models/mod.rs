//! The study's three networks, written for Candle with torchvision's structure, parameter names,
//! initialisation and batch-norm/dropout semantics (docs/study.md §2).
//!
//! * ResNet-18 with the CIFAR stem: He et al., "Deep Residual Learning for Image Recognition"
//!   (CVPR 2016); see [`resnet`].
//! * VGG-11 with batch norm: Simonyan & Zisserman, "Very Deep Convolutional Networks for
//!   Large-Scale Image Recognition" (ICLR 2015); see [`vgg`].
//! * MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
//!   (CVPR 2018); see [`mobilenet`].
//!
//! A [`Network`] owns every tensor under its torchvision state-dict key (without the seed's
//! `resnet.`/`model.` wrapper prefixes). Learnable parameters are [`Var`]s returned by
//! [`Network::trainable_vars`]; batch-norm buffers are stored and checkpointed alongside but never
//! handed to an optimizer.

mod layers;
pub mod mobilenet;
pub mod resnet;
mod store;
pub mod vgg;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use store::EntryKind;

use crate::kernels::Tape;

/// The logits of [`Network::forward_taped`], with the tape (if any) their backward continues on.
pub struct Taped {
    pub logits: Tensor,
    tape: Option<Tape>,
}

impl Taped {
    /// The gradients of `loss` (computed from [`Taped::logits`]) for every variable, like
    /// `loss.backward()`.
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        let mut grads = loss.backward()?;
        if let Some(tape) = &self.tape {
            tape.backward(&mut grads)?;
        }
        Ok(grads)
    }
}

/// 0: follow `TARUN_KERNELS`; 1: tarun's; 2: Candle's (see [`Kernels::force`]).
static OVERRIDE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Which kernels the networks use on the CPU and on CUDA GPUs: tarun's (the default; cuDNN and
/// tarun's own CUDA kernels on a GPU) or Candle's stock ops, selected with
/// `TARUN_KERNELS=candle` so that speed comparisons stay honest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    Tarun,
    Candle,
}

impl Kernels {
    /// From `TARUN_KERNELS` (`tarun` or `candle`; unset means `tarun`), read once per process.
    pub fn selected() -> Kernels {
        static SELECTED: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        match OVERRIDE.load(std::sync::atomic::Ordering::Relaxed) {
            1 => return Kernels::Tarun,
            2 => return Kernels::Candle,
            _ => {}
        }
        *SELECTED.get_or_init(|| Kernels::parse(std::env::var("TARUN_KERNELS").ok().as_deref()))
    }

    /// Overrides `TARUN_KERNELS` for the whole process (`None` restores it). For tests and
    /// benchmarks that compare both kernel sets in one process; not for concurrent use.
    #[doc(hidden)]
    pub fn force(kernels: Option<Kernels>) {
        let v = match kernels {
            None => 0,
            Some(Kernels::Tarun) => 1,
            Some(Kernels::Candle) => 2,
        };
        OVERRIDE.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    fn parse(value: Option<&str>) -> Kernels {
        match value {
            Some("candle") => Kernels::Candle,
            None | Some("" | "tarun") => Kernels::Tarun,
            Some(other) => {
                eprintln!(
                    "warning: TARUN_KERNELS=`{other}` is neither `tarun` nor `candle`; using tarun's"
                );
                Kernels::Tarun
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernels::Tarun => "tarun",
            Kernels::Candle => "candle",
        }
    }
}
use store::{Builder, Entry, Source};

/// Errors from building, running or loading a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A Candle operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The architecture name is not one of the three.
    #[error("unknown architecture `{0}` (expected resnet18, vgg11_bn or mobilenet_v2)")]
    UnknownArch(String),
    /// The width multiplier is not a positive finite number.
    #[error("invalid width multiplier {0} (must be positive and finite)")]
    InvalidWidth(f64),
    /// The class count is zero.
    #[error("a network needs at least one class")]
    NoClasses,
    /// A state dict lacks a key the network has.
    #[error("state dict is missing `{0}`")]
    MissingKey(String),
    /// A state dict has keys the network does not.
    #[error("state dict has unexpected keys: {}", .0.join(", "))]
    UnexpectedKeys(Vec<String>),
    /// A state-dict tensor has the wrong shape.
    #[error("state-dict entry `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The offending key.
        key: String,
        /// The network's shape.
        expected: Vec<usize>,
        /// The state dict's shape.
        found: Vec<usize>,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, ModelError>;

/// The three architectures of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// ResNet-18 with the CIFAR stem.
    Resnet18,
    /// VGG-11 with batch norm, torchvision layout.
    #[serde(rename = "vgg11_bn")]
    Vgg11Bn,
    /// MobileNetV2, torchvision layout.
    #[serde(rename = "mobilenet_v2")]
    MobilenetV2,
}

impl Arch {
    /// Every architecture, in the study's order.
    pub const ALL: [Arch; 3] = [Arch::Resnet18, Arch::Vgg11Bn, Arch::MobilenetV2];

    /// The name used in manifests and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Vgg11Bn => "vgg11_bn",
            Arch::MobilenetV2 => "mobilenet_v2",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| ModelError::UnknownArch(s.to_string()))
    }
}

/// How a forward pass treats batch norm and dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Normalise with batch statistics and update the running ones (PyTorch's `train()` for BN).
    pub batch_stats: bool,
    /// Apply dropout (PyTorch's `train()` for dropout).
    pub dropout: bool,
}

impl Mode {
    /// `model.train()`.
    pub const TRAIN: Mode = Mode {
        batch_stats: true,
        dropout: true,
    };
    /// `model.eval()`.
    pub const EVAL: Mode = Mode {
        batch_stats: false,
        dropout: false,
    };
}

/// Whether a state-dict key names a batch-norm buffer rather than a learnable parameter (the seed's
/// surgeon excludes exactly these names from task vectors, docs/study.md §4.1).
pub fn is_buffer_key(key: &str) -> bool {
    ["running_mean", "running_var", "num_batches_tracked"]
        .iter()
        .any(|b| key.contains(b))
}

/// Scales a channel count by a width multiplier, rounding to nearest and keeping at least one.
pub(crate) fn scale(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}

enum Body {
    Resnet18(resnet::ResNet18),
    Vgg11Bn(vgg::Vgg11Bn),
    MobilenetV2(mobilenet::MobileNetV2),
}

/// One of the study's networks with its parameters, buffers and dropout RNG.
pub struct Network {
    arch: Arch,
    width: f64,
    num_classes: usize,
    device: Device,
    entries: Vec<Entry>,
    body: Body,
    /// Dropout masks are drawn here; a mutex because `forward_t` takes `&self`.
    dropout_rng: Mutex<ChaCha8Rng>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("arch", &self.arch)
            .field("width", &self.width)
            .field("num_classes", &self.num_classes)
            .field("num_params", &self.num_params())
            .finish()
    }
}

/// The stream of the dropout RNG, distinct from every per-tensor init stream.
const DROPOUT_STREAM: u64 = u64::MAX;

fn dropout_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(DROPOUT_STREAM);
    rng
}

impl Network {
    /// Builds a freshly initialised network (torchvision's init, docs/study.md §2); the same
    /// seed gives the same weights on every run and platform.
    pub fn new(
        arch: Arch,
        width: f64,
        num_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::build(
            arch,
            width,
            num_classes,
            Source::Init { seed },
            seed,
            device,
        )
    }

    /// Builds a network whose tensors are copied from a state dict, which must hold exactly the
    /// network's keys with matching shapes (a strict `load_state_dict`).
    pub fn from_state_dict(
        arch: Arch,
        width: f64,
        num_classes: usize,
        state: &BTreeMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        Self::build(arch, width, num_classes, Source::Tensors(state), 0, device)
    }

    fn build(
        arch: Arch,
        width: f64,
        num_classes: usize,
        source: Source,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if !(width.is_finite() && width > 0.0) {
            return Err(ModelError::InvalidWidth(width));
        }
        if num_classes == 0 {
            return Err(ModelError::NoClasses);
        }
        let mut b = Builder::new(source, device);
        let body = match arch {
            Arch::Resnet18 => Body::Resnet18(resnet::ResNet18::new(&mut b, width, num_classes)?),
            Arch::Vgg11Bn => Body::Vgg11Bn(vgg::Vgg11Bn::new(&mut b, width, num_classes)?),
            Arch::MobilenetV2 => {
                Body::MobilenetV2(mobilenet::MobileNetV2::new(&mut b, width, num_classes)?)
            }
        };
        let entries = b.finish()?;
        let dropout_rng = Mutex::new(dropout_rng(seed));
        Ok(Self {
            arch,
            width,
            num_classes,
            device: device.clone(),
            entries,
            body,
            dropout_rng,
        })
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The width multiplier.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// The number of output classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The device holding the tensors.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits `[B, num_classes]` for images `[B, 3, H, W]`: `train` selects PyTorch's
    /// `model.train()` (batch statistics, running-stat updates, dropout) or `model.eval()`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_mode(x, if train { Mode::TRAIN } else { Mode::EVAL })
    }

    /// Logits in `model.eval()` mode without a backward graph (PyTorch's `torch.no_grad()`):
    /// the result carries no gradient, and each activation is freed as soon as the next layer
    /// has read it instead of living until the logits are dropped.
    pub fn forward_inference(&self, x: &Tensor) -> Result<Tensor> {
        layers::no_grad(|| self.forward_mode(x, Mode::EVAL))
    }

    /// Logits with batch norm and dropout controlled separately.
    pub fn forward_mode(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_with(x, mode, None)
    }

    /// [`Network::forward_mode`] for a training step: with tarun's kernels (CPU or CUDA) the
    /// convolutional body records its ops on a [`Tape`], whose backward runs them without
    /// Candle's graph (see `kernels::Tape`); [`Taped::backward`] then gives the same gradients
    /// as `loss.backward()` would, faster. Elsewhere it is `forward_mode` and `loss.backward()`.
    pub fn forward_taped(&self, x: &Tensor, mode: Mode) -> Result<Taped> {
        let taped = layers::use_kernels(x) && !layers::NO_GRAD.get();
        let tape = taped.then(Tape::new);
        let logits = self.forward_with(x, mode, tape.as_ref())?;
        Ok(Taped { logits, tape })
    }

    fn forward_with(&self, x: &Tensor, mode: Mode, tape: Option<&Tape>) -> Result<Tensor> {
        let mut guard = if mode.dropout {
            // A poisoned lock only means another forward panicked; the RNG state is still valid.
            Some(self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner()))
        } else {
            None
        };
        let mut ctx = layers::Ctx {
            batch_stats: mode.batch_stats,
            dropout_rng: guard.as_deref_mut(),
            tape,
        };
        let y = match &self.body {
            Body::Resnet18(m) => m.forward(x, &mut ctx)?,
            Body::Vgg11Bn(m) => m.forward(x, &mut ctx)?,
            Body::MobilenetV2(m) => m.forward(x, &mut ctx)?,
        };
        Ok(y)
    }

    /// Restarts the dropout RNG from a seed (training does this so a run depends only on its own
    /// seed and the initial weights).
    pub fn reseed_dropout(&self, seed: u64) {
        *self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner()) = dropout_rng(seed);
    }

    /// The learnable parameters, in state-dict order (what an optimizer updates).
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_trainable_vars()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// The learnable parameters with their torchvision keys, in state-dict order.
    pub fn named_trainable_vars(&self) -> Vec<(String, Var)> {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::Param)
            .map(|e| (e.name.clone(), e.var.clone()))
            .collect()
    }

    /// Every key with its shape and kind, in torchvision's state-dict order.
    pub fn keys(&self) -> Vec<(String, Vec<usize>, EntryKind)> {
        self.entries
            .iter()
            .map(|e| (e.name.clone(), e.var.dims().to_vec(), e.kind))
            .collect()
    }

    /// A snapshot of every parameter and buffer under its torchvision key.
    ///
    /// The tensors are copies: later training does not change them.
    pub fn state_dict(&self) -> Result<BTreeMap<String, Tensor>> {
        self.entries
            .iter()
            .map(|e| Ok((e.name.clone(), e.var.as_tensor().copy()?)))
            .collect()
    }

    /// Overwrites every parameter and buffer from a state dict with exactly this network's keys
    /// and shapes (values are converted to the network's dtype and device).
    pub fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        // Validate everything before writing anything, so a failed load leaves the network intact.
        let mut values = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let t = store::take_tensor(state, &e.name, e.var.dims(), e.var.dtype(), &self.device)?;
            values.push(t);
        }
        if state.len() != self.entries.len() {
            let known: std::collections::BTreeSet<&str> =
                self.entries.iter().map(|e| e.name.as_str()).collect();
            let extra = state
                .keys()
                .filter(|k| !known.contains(k.as_str()))
                .cloned()
                .collect();
            return Err(ModelError::UnexpectedKeys(extra));
        }
        for (e, t) in self.entries.iter().zip(values) {
            e.var.set(&t)?;
        }
        Ok(())
    }

    /// A deep copy with its own storage (surgery builds and evaluates many of these).
    pub fn deep_clone(&self) -> Result<Network> {
        let state: BTreeMap<String, Tensor> = self
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.var.as_tensor().detach()))
            .collect();
        // from_state_dict copies each tensor into a fresh Var, so `state` may share storage.
        let net = Self::from_state_dict(
            self.arch,
            self.width,
            self.num_classes,
            &state,
            &self.device,
        )?;
        *net.dropout_rng.lock().unwrap_or_else(|e| e.into_inner()) = self
            .dropout_rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(net)
    }

    /// Whether every batch-norm running mean and variance is finite.
    ///
    /// Candle's ReLU maps NaN to 0 (PyTorch's propagates it), so NaN or infinite activations can
    /// vanish before the loss while still poisoning the running statistics; training checks
    /// them here after every step. One host sync per call.
    pub fn buffers_finite(&self) -> Result<bool> {
        let sums = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Buffer && e.var.dtype() == candle_core::DType::F32)
            .map(|e| e.var.as_tensor().sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if sums.is_empty() {
            return Ok(true);
        }
        let total = Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f32>()?;
        Ok(total.is_finite())
    }

    /// The number of learnable scalars (buffers excluded).
    pub fn num_params(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::Param)
            .map(|e| e.var.elem_count())
            .sum()
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::Kernels;

    #[test]
    fn tarun_kernels_unless_candle_is_asked_for() {
        assert_eq!(Kernels::parse(None), Kernels::Tarun);
        assert_eq!(Kernels::parse(Some("")), Kernels::Tarun);
        assert_eq!(Kernels::parse(Some("tarun")), Kernels::Tarun);
        assert_eq!(Kernels::parse(Some("candle")), Kernels::Candle);
        assert_eq!(Kernels::parse(Some("cuda")), Kernels::Tarun);
    }
}
