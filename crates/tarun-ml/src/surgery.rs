//! Task-arithmetic surgery: task vectors, per-tensor magnitude masks and their application
//! (docs/study.md §4, "the surgeon").
//!
//! The surgeon computes `θ = θ_base + Σ_i α_i · mask(τ_i, ρ_i)` with `τ_i = θ_expert_i − θ_base`.
//! As in the seed (docs/study.md §4.1):
//! * τ covers every *learnable* entry: names containing none of `running_mean`, `running_var`,
//!   `num_batches_tracked` (weights, all biases, BN γ/β and the head). Keys missing from the
//!   expert are skipped.
//! * The mask is per tensor (docs/study.md §4.3): the ρ-quantile of `|τ|` with linear interpolation
//!   is the threshold and entries with `|τ| ≥ threshold` are kept (ties kept). `ρ ≤ 0` means no
//!   mask; tensors with at most one element are never masked.
//! * BN running statistics are copied from the base ([`BufferPolicy::FromBase`]), discarding the
//!   experts' single-class statistics. [`BufferPolicy::FromExpert`] and [`BufferPolicy::Average`]
//!   are offered as alternatives; they are not the seed's behaviour.
//!
//! The quantile is exact by default ([`QuantileMode::Exact`]). The seed computed it on 5,000,000
//! entries drawn with replacement for tensors above that size (VGG's two big classifier weights),
//! which made its VGG surgery stochastic (docs/study.md §10.2 item 10);
//! [`QuantileMode::SeedSample`] emulates that with a seeded generator (torch's global RNG stream
//! cannot be reproduced).
//!
//! Everything here is pure: state dicts in, state dict out. Computation happens on contiguous
//! `f32` CPU slices (borrowed, not copied, when the tensors already are), in parallel across
//! tensors and within large ones; results go back to each base tensor's device and dtype.

mod quantile;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Storage, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub use quantile::{abs_order_statistic, abs_quantile};
use quantile::{abs_quantile_with, magnitude_key};

/// A model's named tensors, with torchvision's state-dict key names.
pub type StateDict = BTreeMap<String, Tensor>;

/// Substrings that mark a state-dict entry as a buffer rather than a learnable parameter
/// (docs/study.md §4.1).
pub const BUFFER_MARKERS: [&str; 3] = ["running_mean", "running_var", "num_batches_tracked"];

/// The seed's sample size for the quantile of large tensors (docs/study.md §4.3):
/// `torch.quantile`'s input limit.
pub const SEED_QUANTILE_CAP: usize = 5_000_000;

/// Elements per parallel task in the element-wise passes.
const CHUNK: usize = 1 << 16;

/// Deltas above this size cache their quantile histogram (256 KiB each): below it a fresh pass
/// costs less than the memory.
const HISTOGRAM_MIN_LEN: usize = 1 << 20;

/// Whether a state-dict entry takes part in task arithmetic (it is not a BN buffer).
pub fn is_learnable(name: &str) -> bool {
    !BUFFER_MARKERS.iter().any(|marker| name.contains(marker))
}

/// Errors of the surgeon.
#[derive(Debug, thiserror::Error)]
pub enum SurgeryError {
    /// A tensor operation (device transfer, dtype conversion) failed.
    #[error("tensor operation failed")]
    Candle(#[from] candle_core::Error),
    /// Base and expert (or base and task vector) disagree on a tensor's shape.
    #[error("shape mismatch for `{name}`: base {base:?}, other {other:?}")]
    ShapeMismatch {
        /// The state-dict key.
        name: String,
        /// The base model's shape.
        base: Vec<usize>,
        /// The expert's or task vector's shape.
        other: Vec<usize>,
    },
    /// A task vector holds a key the base model does not have.
    #[error("task vector entry `{name}` is not in the base state dict")]
    UnknownKey {
        /// The state-dict key.
        name: String,
    },
    /// ρ must be a number no greater than 1 (the quantile level).
    #[error("mask ratio rho = {rho} is not in (-inf, 1]")]
    InvalidRho {
        /// The rejected value.
        rho: f64,
    },
    /// α must be finite.
    #[error("scale alpha = {alpha} is not finite")]
    InvalidAlpha {
        /// The rejected value.
        alpha: f64,
    },
    /// The seed-sampling mode needs a positive sample size.
    #[error("quantile sample cap must be positive")]
    ZeroSampleCap,
    /// [`BufferPolicy::FromExpert`] needs exactly one task vector to say which expert.
    #[error("buffer policy `from-expert` needs exactly one task vector, got {count}")]
    AmbiguousExpertBuffers {
        /// How many task vectors were given.
        count: usize,
    },
}

/// How the mask's quantile is computed (docs/study.md §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum QuantileMode {
    /// The exact quantile over all entries of each tensor.
    #[default]
    Exact,
    /// The seed's behaviour: tensors with more than `cap` entries get their quantile from `cap`
    /// entries drawn uniformly with replacement. Draws are seeded per tensor (from `seed`, the
    /// tensor's name and the task vector's position), so results do not depend on thread timing.
    SeedSample {
        /// Sample size and size limit; the seed used [`SEED_QUANTILE_CAP`].
        cap: usize,
        /// Seed of the sampling generator.
        seed: u64,
    },
}

impl QuantileMode {
    /// The seed's sampling emulation with its 5,000,000-entry cap.
    pub fn seed_sample(seed: u64) -> Self {
        Self::SeedSample {
            cap: SEED_QUANTILE_CAP,
            seed,
        }
    }
}

/// Where the non-learnable entries (BN running statistics, counters) of the result come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BufferPolicy {
    /// Copy them from the base model, as the seed does (docs/study.md §4.1).
    #[default]
    FromBase,
    /// Take them from the (single) expert; entries the expert lacks come from the base.
    FromExpert,
    /// Average the floating-point buffers of the base and every expert; integer counters come
    /// from the base.
    Average,
}

/// τ = θ_expert − θ_base over the learnable entries, plus the expert's buffers (kept only for
/// [`BufferPolicy::FromExpert`] and [`BufferPolicy::Average`]; they are shared, not copied).
///
/// Large deltas also carry the first pass of the quantile selection (a histogram of their
/// magnitudes), computed once and shared by clones, so a grid over ρ pays one pass per level
/// instead of two.
#[derive(Clone, Debug, Default)]
pub struct TaskVector {
    deltas: BTreeMap<String, Tensor>,
    expert_buffers: BTreeMap<String, Tensor>,
    histograms: Arc<BTreeMap<String, OnceLock<Vec<u32>>>>,
}

impl TaskVector {
    /// Builds a task vector from explicit deltas (for tests and for vectors loaded from disk).
    pub fn from_deltas(deltas: BTreeMap<String, Tensor>) -> Self {
        let histograms = large_entries(&deltas)
            .map(|name| (name, OnceLock::new()))
            .collect();
        Self {
            deltas,
            expert_buffers: BTreeMap::new(),
            histograms: Arc::new(histograms),
        }
    }

    /// The per-tensor deltas ([`task_vector`] makes them contiguous `f32` CPU tensors).
    pub fn deltas(&self) -> &BTreeMap<String, Tensor> {
        &self.deltas
    }

    /// The expert's non-learnable entries.
    pub fn expert_buffers(&self) -> &BTreeMap<String, Tensor> {
        &self.expert_buffers
    }

    /// Number of tensors in τ.
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    /// Whether τ has no tensors.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// Total number of entries over all tensors of τ.
    pub fn num_elements(&self) -> usize {
        self.deltas.values().map(Tensor::elem_count).sum()
    }

    fn with_buffers(mut self, expert_buffers: BTreeMap<String, Tensor>) -> Self {
        self.expert_buffers = expert_buffers;
        self
    }

    /// The cached pass-1 histogram of delta `name` (whose data is `values`), computing it on
    /// first use; `None` for small deltas, whose quantile is cheap anyway.
    fn histogram(&self, name: &str, values: &[f32]) -> Option<&[u32]> {
        let cell = self.histograms.get(name)?;
        Some(cell.get_or_init(|| quantile::high_histogram(values)))
    }
}

/// One term `α · mask(τ, ρ)` of a surgery.
#[derive(Clone, Copy, Debug)]
pub struct Term<'a> {
    /// The task vector τ.
    pub vector: &'a TaskVector,
    /// The scale; negative forgets, positive adds (docs/study.md §4.4).
    pub alpha: f64,
    /// The fraction of smallest-magnitude entries dropped per tensor; `ρ ≤ 0` keeps all.
    pub rho: f64,
}

/// Computes τ = expert − base over the learnable entries of `base` (docs/study.md §4.1).
///
/// Buffers and keys the expert lacks are skipped; the expert's buffers are kept aside for the
/// non-default buffer policies.
///
/// # Errors
/// A shape mismatch between base and expert, or a failed tensor conversion.
pub fn task_vector(base: &StateDict, expert: &StateDict) -> Result<TaskVector, SurgeryError> {
    let pairs: Vec<(&String, &Tensor, &Tensor)> = base
        .iter()
        .filter(|(name, _)| is_learnable(name))
        .filter_map(|(name, b)| expert.get(name).map(|e| (name, b, e)))
        .collect();
    let computed = pairs
        .into_par_iter()
        .map(|(name, b, e)| {
            check_shape(name, b, e)?;
            let (delta, histogram) = with_f32(b, |b| with_f32(e, |e| difference(e, b)))??;
            let tensor = Tensor::from_vec(delta, b.dims(), &Device::Cpu)?;
            Ok((name.clone(), (tensor, histogram)))
        })
        .collect::<Result<Vec<_>, SurgeryError>>()?;
    let histograms = computed
        .iter()
        .filter_map(|(name, (_, histogram))| {
            histogram.clone().map(|h| (name.clone(), OnceLock::from(h)))
        })
        .collect();
    let deltas = computed
        .into_iter()
        .map(|(name, (t, _))| (name, t))
        .collect();
    let expert_buffers = expert
        .iter()
        .filter(|(name, _)| !is_learnable(name))
        .map(|(name, t)| (name.clone(), t.clone()))
        .collect();
    Ok(TaskVector {
        deltas,
        expert_buffers,
        histograms: Arc::new(histograms),
    })
}

/// Returns τ with every tensor masked at level `rho` (docs/study.md §4.3): entries with `|τ|` below
/// the per-tensor ρ-quantile of `|τ|` are set to zero.
///
/// [`apply`] fuses this with the update and never materialises the masked vector; this function
/// exists for inspection (sparsity, norms) and for saving masked vectors.
///
/// # Errors
/// An invalid `rho` or sample cap, or a failed tensor conversion.
pub fn mask(tau: &TaskVector, rho: f64, mode: QuantileMode) -> Result<TaskVector, SurgeryError> {
    validate(rho, 0.0, mode)?;
    let deltas = tau
        .deltas
        .par_iter()
        .map(|(name, delta)| {
            let masked = with_f32(delta, |d| {
                let histogram = tau.histogram(name, d);
                let threshold = keep_threshold(d, histogram, rho, mode, stream_id(name, 0));
                zip_map(d, d, |x, _| {
                    if magnitude_key(x) >= threshold {
                        x
                    } else {
                        0.0
                    }
                })
            })?;
            let tensor = Tensor::from_vec(masked, delta.dims(), &Device::Cpu)?;
            Ok((name.clone(), tensor))
        })
        .collect::<Result<BTreeMap<_, _>, SurgeryError>>()?;
    Ok(TaskVector::from_deltas(deltas).with_buffers(tau.expert_buffers.clone()))
}

/// The keep-threshold of one tensor: entries with `|x| ≥` the returned value survive the mask.
///
/// `stream` selects the sampling stream in [`QuantileMode::SeedSample`] (the surgeon derives it
/// from the tensor name and the term's position). Returns 0 (keep everything) when `rho ≤ 0` or
/// the tensor has at most one entry.
pub fn mask_threshold(values: &[f32], rho: f64, mode: QuantileMode, stream: u64) -> f32 {
    f32::from_bits(keep_threshold(values, None, rho, mode, stream))
}

/// Applies `θ = θ_base + Σ_i α_i · mask(τ_i, ρ_i)` (docs/study.md §4.2) and fills the buffers per
/// `policy`.
///
/// Learnable entries of the base that no task vector touches are copied from the base. The result
/// has the base's keys, and each tensor the base tensor's dtype and device.
///
/// # Errors
/// An invalid α or ρ, a task-vector key missing from the base or with a different shape,
/// [`BufferPolicy::FromExpert`] with other than one term, or a failed tensor conversion.
pub fn apply(
    base: &StateDict,
    terms: &[Term<'_>],
    mode: QuantileMode,
    policy: BufferPolicy,
) -> Result<StateDict, SurgeryError> {
    for term in terms {
        validate(term.rho, term.alpha, mode)?;
        if let Some(name) = term.vector.deltas.keys().find(|k| !base.contains_key(*k)) {
            return Err(SurgeryError::UnknownKey { name: name.clone() });
        }
    }
    if policy == BufferPolicy::FromExpert && terms.len() != 1 {
        return Err(SurgeryError::AmbiguousExpertBuffers { count: terms.len() });
    }
    base.par_iter()
        .map(|(name, b)| {
            let value = if is_learnable(name) {
                update_parameter(name, b, terms, mode)?
            } else {
                merge_buffer(name, b, terms, policy)?
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// `b + Σ α·mask(τ)` for one learnable tensor.
fn update_parameter(
    name: &str,
    base: &Tensor,
    terms: &[Term<'_>],
    mode: QuantileMode,
) -> Result<Tensor, SurgeryError> {
    let touching: Vec<(usize, &Term<'_>, &Tensor)> = terms
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.vector.deltas.get(name).map(|d| (i, t, d)))
        .collect();
    if touching.is_empty() {
        return Ok(base.clone());
    }
    let mut out: Option<Vec<f32>> = None;
    for (index, term, delta) in touching {
        check_shape(name, base, delta)?;
        // torch computes `base + alpha * masked`, alpha rounded to the tensor's dtype.
        let alpha = term.alpha as f32;
        with_f32(delta, |d| -> Result<(), SurgeryError> {
            let histogram = term.vector.histogram(name, d);
            let threshold = keep_threshold(d, histogram, term.rho, mode, stream_id(name, index));
            let update = |x: f32| {
                alpha
                    * if magnitude_key(x) >= threshold {
                        x
                    } else {
                        0.0
                    }
            };
            match out.as_mut() {
                // The first term reads the base and writes the result in one pass.
                None => out = Some(with_f32(base, |b| zip_map(b, d, |b, x| b + update(x)))?),
                Some(acc) => acc
                    .par_chunks_mut(CHUNK)
                    .zip(d.par_chunks(CHUNK))
                    .for_each(|(o, d)| o.iter_mut().zip(d).for_each(|(o, &x)| *o += update(x))),
            }
            Ok(())
        })??;
    }
    let out = out.expect("at least one term touches this tensor");
    restore(out, base)
}

/// The result's value for a buffer entry under `policy`.
fn merge_buffer<'a>(
    name: &str,
    base: &Tensor,
    terms: &[Term<'a>],
    policy: BufferPolicy,
) -> Result<Tensor, SurgeryError> {
    let expert = |t: &Term<'a>| t.vector.expert_buffers.get(name);
    match policy {
        BufferPolicy::FromBase => Ok(base.clone()),
        BufferPolicy::FromExpert => Ok(terms
            .first()
            .and_then(expert)
            .map_or_else(|| base.clone(), Clone::clone)),
        BufferPolicy::Average => {
            // Counters (`num_batches_tracked`) are integers: averaging them means nothing.
            if !base.dtype().is_float() {
                return Ok(base.clone());
            }
            let mut sum = base.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            let mut count = 1.0;
            for buffer in terms.iter().filter_map(expert) {
                check_shape(name, base, buffer)?;
                sum = (sum + buffer.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)?;
                count += 1.0;
            }
            Ok((sum / count)?
                .to_dtype(base.dtype())?
                .to_device(base.device())?)
        }
    }
}

/// Rejects a ρ above 1 or NaN, a non-finite α and a zero sample cap.
fn validate(rho: f64, alpha: f64, mode: QuantileMode) -> Result<(), SurgeryError> {
    if rho.is_nan() || rho > 1.0 {
        return Err(SurgeryError::InvalidRho { rho });
    }
    if !alpha.is_finite() {
        return Err(SurgeryError::InvalidAlpha { alpha });
    }
    if let QuantileMode::SeedSample { cap: 0, .. } = mode {
        return Err(SurgeryError::ZeroSampleCap);
    }
    Ok(())
}

/// The magnitude key of the keep-threshold (0 keeps everything). `histogram` is the tensor's
/// cached pass-1 histogram, if any.
fn keep_threshold(
    values: &[f32],
    histogram: Option<&[u32]>,
    rho: f64,
    mode: QuantileMode,
    stream: u64,
) -> u32 {
    if rho <= 0.0 || values.len() <= 1 {
        return 0;
    }
    let threshold = match mode {
        QuantileMode::SeedSample { cap, seed } if values.len() > cap => {
            abs_quantile(&sample_with_replacement(values, cap, seed, stream), rho)
        }
        _ => abs_quantile_with(values, histogram, rho),
    };
    magnitude_key(threshold)
}

/// `count` entries of `values` drawn uniformly with replacement, like the seed's
/// `x[torch.randint(0, n, (count,))]`.
///
/// Indices are drawn in parallel blocks (block `i` uses the keystream of `(seed, stream)` from
/// word `i · 2^40` on, so blocks are disjoint and the result does not depend on the thread
/// count), then sorted: a quantile ignores order, and sorted reads stream through memory instead
/// of paying a cache and TLB miss per draw.
fn sample_with_replacement(values: &[f32], count: usize, seed: u64, stream: u64) -> Vec<f32> {
    const BLOCK: usize = 1 << 16;
    let mut indices = vec![0usize; count];
    indices
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, out)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            rng.set_word_pos((block as u128) << 40);
            out.iter_mut()
                .for_each(|i| *i = rng.random_range(0..values.len()));
        });
    indices.par_sort_unstable();
    indices.par_iter().map(|&i| values[i]).collect()
}

/// A sampling stream per (tensor, term): FNV-1a of the name, mixed with the term's position.
fn stream_id(name: &str, term_index: usize) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, byte| {
        (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash ^ (term_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn check_shape(name: &str, base: &Tensor, other: &Tensor) -> Result<(), SurgeryError> {
    if base.dims() == other.dims() {
        Ok(())
    } else {
        Err(SurgeryError::ShapeMismatch {
            name: name.to_owned(),
            base: base.dims().to_vec(),
            other: other.dims().to_vec(),
        })
    }
}

/// Runs `f` on the tensor's data as a contiguous `f32` slice, borrowing the storage when the
/// tensor already is a contiguous `f32` CPU tensor and converting a copy otherwise.
fn with_f32<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, SurgeryError> {
    let converted;
    let tensor = if tensor.device().is_cpu() && tensor.dtype() == DType::F32 {
        tensor
    } else {
        converted = tensor.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        &converted
    };
    let contiguous;
    let tensor = if tensor.is_contiguous() {
        tensor
    } else {
        contiguous = tensor.contiguous()?;
        &contiguous
    };
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        unreachable!("tensor was moved to the CPU above");
    };
    let (start, end) = layout
        .contiguous_offsets()
        .expect("tensor was made contiguous above");
    Ok(f(&cpu.as_slice::<f32>()?[start..end]))
}

/// `expert − base`, and for large tensors the pass-1 magnitude histogram of the result, computed
/// while the data is in cache.
fn difference(expert: &[f32], base: &[f32]) -> (Vec<f32>, Option<Vec<u32>>) {
    if expert.len() <= HISTOGRAM_MIN_LEN {
        return (zip_map(expert, base, |e, b| e - b), None);
    }
    let mut out = zeroed(expert.len());
    let histogram = out
        .par_chunks_mut(CHUNK)
        .zip(expert.par_chunks(CHUNK).zip(base.par_chunks(CHUNK)))
        .fold(quantile::empty_high_histogram, |mut hist, (o, (e, b))| {
            for ((o, &e), &b) in o.iter_mut().zip(e).zip(b) {
                *o = e - b;
            }
            quantile::count_high(&mut hist, o);
            hist
        })
        .reduce(quantile::empty_high_histogram, quantile::add_counts);
    (out, Some(histogram))
}

/// Names of the deltas large enough to cache a histogram for.
fn large_entries(deltas: &BTreeMap<String, Tensor>) -> impl Iterator<Item = String> + '_ {
    deltas
        .iter()
        .filter(|(_, t)| t.elem_count() > HISTOGRAM_MIN_LEN)
        .map(|(name, _)| name.clone())
}

/// Element-wise `f(a, b)` into a new vector, in parallel for large inputs.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len());
    advise_huge_pages(&mut out);
    // Written in place by rayon: no zero-fill pass before the real one.
    a.par_iter()
        .zip(b)
        .with_min_len(CHUNK)
        .map(|(&a, &b)| f(a, b))
        .collect_into_vec(&mut out);
    out
}

/// A zero-filled output buffer. Large ones are backed by transparent huge pages where the OS
/// allows it and are filled in parallel: first-touch page faults on 4 KiB pages otherwise cost
/// more than the surgery's arithmetic (about 0.1 s per 100M entries).
fn zeroed(len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    advise_huge_pages(&mut out);
    out.par_extend(rayon::iter::repeat_n(0.0f32, len).with_min_len(CHUNK));
    out
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buffer: &mut Vec<f32>) {
    const HUGE_PAGE: usize = 1 << 21;
    let start = buffer.as_mut_ptr() as usize;
    let end = start + buffer.capacity() * size_of::<f32>();
    let (first, last) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if last > first {
        // SAFETY: the range lies inside `buffer`'s allocation, which is not freed or moved while
        // this call runs; `madvise` only changes how the kernel backs the pages, never their
        // contents, and a failure (e.g. THP disabled) just leaves 4 KiB pages.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buffer: &mut Vec<f32>) {}

/// Wraps computed `f32` data as a tensor with the base tensor's shape, dtype and device.
fn restore(data: Vec<f32>, like: &Tensor) -> Result<Tensor, SurgeryError> {
    let tensor = Tensor::from_vec(data, like.dims(), &Device::Cpu)?;
    Ok(tensor.to_dtype(like.dtype())?.to_device(like.device())?)
}
