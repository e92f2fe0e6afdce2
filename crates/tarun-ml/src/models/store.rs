//! Parameter and buffer storage shared by the three networks.
//!
//! Every tensor of a network lives here once, under its torchvision state-dict key, in the order
//! torchvision's `state_dict()` lists them. Layers keep clones of the [`Var`]s' tensors (which share
//! storage), so an optimizer's or a loader's `Var::set` is seen by the forward pass without any
//! re-wiring.
//!
//! Initial values come either from a seeded initializer ([`Source::Init`]) or from a state dict
//! ([`Source::Tensors`]). Each tensor draws from its own ChaCha8 stream, selected by a hash of its
//! key, so a tensor's initial value depends only on (seed, key) and not on construction order.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::ModelError;

/// Whether a state-dict entry is learnable or a batch-norm buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A learnable parameter: trained by the optimizer and part of a task vector.
    Param,
    /// A buffer (`running_mean`, `running_var`, `num_batches_tracked`): saved, never trained.
    Buffer,
}

/// How a tensor is initialised; the distributions follow torchvision (docs/study.md §2).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init {
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: N(0, 2/fan_out).
    KaimingNormalFanOut,
    /// PyTorch's default Conv/Linear init (`kaiming_uniform_(a=sqrt(5))`) and default bias init,
    /// which both reduce to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    DefaultUniform { fan_in: usize },
    /// N(0, std^2).
    Normal { std: f64 },
    /// Every element equal to the value.
    Const(f64),
}

/// Where the values of a network under construction come from.
pub(crate) enum Source<'a> {
    /// Fresh weights from the seeded initializer.
    Init { seed: u64 },
    /// Values copied from a state dict (keys as torchvision names them).
    Tensors(&'a BTreeMap<String, Tensor>),
}

/// One state-dict entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub var: Var,
}

/// Collects entries while a network is built.
pub(crate) struct Builder<'a> {
    source: Source<'a>,
    device: Device,
    entries: Vec<Entry>,
}

impl<'a> Builder<'a> {
    pub fn new(source: Source<'a>, device: &Device) -> Self {
        Self {
            source,
            device: device.clone(),
            entries: Vec::new(),
        }
    }

    /// Registers a learnable f32 tensor and returns the tensor the layer computes with.
    pub fn param(
        &mut self,
        name: String,
        shape: &[usize],
        init: Init,
    ) -> Result<Tensor, ModelError> {
        self.add(name, shape, DType::F32, init, EntryKind::Param)
    }

    /// Registers a buffer tensor and returns its variable (buffers are updated in place).
    pub fn buffer(
        &mut self,
        name: String,
        shape: &[usize],
        dtype: DType,
        init: Init,
    ) -> Result<Var, ModelError> {
        self.add(name.clone(), shape, dtype, init, EntryKind::Buffer)?;
        Ok(self.entries.last().expect("just pushed").var.clone())
    }

    fn add(
        &mut self,
        name: String,
        shape: &[usize],
        dtype: DType,
        init: Init,
        kind: EntryKind,
    ) -> Result<Tensor, ModelError> {
        let tensor = match &self.source {
            Source::Init { seed } => init_tensor(*seed, &name, shape, dtype, init, &self.device)?,
            Source::Tensors(map) => take_tensor(map, &name, shape, dtype, &self.device)?,
        };
        // Detached so a caller's Var is copied, never shared.
        let var = Var::from_tensor(&tensor.detach())?;
        let out = var.as_tensor().clone();
        self.entries.push(Entry { name, kind, var });
        Ok(out)
    }

    /// Finishes construction; with a state-dict source, keys the network does not have are an error.
    pub fn finish(self) -> Result<Vec<Entry>, ModelError> {
        if let Source::Tensors(map) = &self.source {
            let known: BTreeSet<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
            let unexpected: Vec<String> = map
                .keys()
                .filter(|k| !known.contains(k.as_str()))
                .cloned()
                .collect();
            if !unexpected.is_empty() {
                return Err(ModelError::UnexpectedKeys(unexpected));
            }
        }
        Ok(self.entries)
    }
}

/// Looks a key up in a state dict, checks its shape and converts it to the expected dtype/device.
pub(crate) fn take_tensor(
    map: &BTreeMap<String, Tensor>,
    name: &str,
    shape: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor, ModelError> {
    let t = map
        .get(name)
        .ok_or_else(|| ModelError::MissingKey(name.to_string()))?;
    if t.dims() != shape {
        return Err(ModelError::ShapeMismatch {
            key: name.to_string(),
            expected: shape.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    Ok(t.to_dtype(dtype)?.to_device(device)?)
}

/// Draws one tensor's initial value from its own (seed, key) stream.
fn init_tensor(
    seed: u64,
    name: &str,
    shape: &[usize],
    dtype: DType,
    init: Init,
    device: &Device,
) -> Result<Tensor, ModelError> {
    let n: usize = shape.iter().product();
    let t = match init {
        Init::Const(v) => Tensor::full(v, shape, device)?.to_dtype(dtype)?,
        Init::KaimingNormalFanOut => {
            // torch's fan_out for an [out, in, kh, kw] weight is out * kh * kw.
            let receptive: usize = shape[2..].iter().product();
            let std = (2.0 / (shape[0] * receptive) as f64).sqrt();
            normal(seed, name, n, std, shape, device)?
        }
        Init::Normal { std } => normal(seed, name, n, std, shape, device)?,
        Init::DefaultUniform { fan_in } => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let mut rng = stream(seed, name);
            let data: Vec<f32> = (0..n)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect();
            Tensor::from_vec(data, shape, device)?
        }
    };
    Ok(t)
}

fn normal(
    seed: u64,
    name: &str,
    n: usize,
    std: f64,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor, ModelError> {
    let mut rng = stream(seed, name);
    let data: Vec<f32> = (0..n)
        .map(|_| {
            let z: f64 = rng.sample(StandardNormal);
            (z * std) as f32
        })
        .collect();
    Ok(Tensor::from_vec(data, shape, device)?)
}

/// The RNG stream of one tensor: the seed picks the key, the tensor name picks the stream.
fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a64(name.as_bytes()));
    rng
}

/// FNV-1a: a fixed, platform-independent hash (std's hasher is randomly keyed per process).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
