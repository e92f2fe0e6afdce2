//! tarun's CPU kernels, as Candle custom ops with their own backward passes.
//!
//! Candle's stock CPU convolution builds its im2col matrix on one thread, multiplies it in the
//! transposed layout and copies the result back to NCHW; its backward runs a direct
//! `conv_transpose2d` loop; grouped convolutions run one convolution per group; and batch norm is
//! a chain of a dozen element-wise ops, each allocating a full activation and each kept alive
//! until backward ends. These kernels replace those hot spots:
//!
//! * [`conv2d`]: dense convolution (any stride and padding, 1x1 and the 3-channel stem) as
//!   batched im2col + GEMM straight into NCHW, with both gradients the same way (issue 8);
//!   Winograd F(2x2, 3x3) for wide 3x3 layers, and on AVX-512 or AVX2 + FMA a direct kernel
//!   without im2col for 3x3 layers of up to 128 channels (`conv/`; the instruction set is
//!   chosen at run time, `simd.rs`).
//! * [`depthwise_conv2d`]: per-channel direct loops, forward and both gradients.
//! * [`batch_norm`]: batch statistics, normalisation, affine and an optional ReLU / ReLU6 in one
//!   pass, with a fused backward; in evaluation mode it uses the running statistics.
//! * [`add_relu`]: ResNet's `relu(a + b)` block exit in one pass each way.
//! * [`add_channel_bias`]: a convolution's bias, with a per-plane sum for its gradient.
//! * [`Tape`]: the backward pass of a network's body over these ops, run without Candle's graph
//!   (the `_on` variants of the functions above record on it).
//!
//! Every kernel runs on the rayon pool (sized to the machine) and works on contiguous `f32`
//! NCHW tensors; the wrappers make inputs contiguous. With the `cuda` feature the same ops run
//! on NVIDIA GPUs through cuDNN and kernels of tarun's own (`cuda/`). On Metal, and with
//! `TARUN_KERNELS=candle`, the networks use Candle's stock ops instead (see `models::Kernels`).
//! The tests compare every kernel with those stock ops and its gradients with finite differences.

mod batchnorm;
mod bias;
mod conv;
#[cfg(feature = "cuda")]
mod cuda;
mod depthwise;
mod dropout;
mod residual;
mod simd;
mod tape;

pub use batchnorm::{Activation, batch_norm, batch_norm_on, batch_norm_stats};
pub use bias::{add_channel_bias, add_channel_bias_on};
pub use conv::{conv2d, conv2d_affine, conv2d_affine_residual, conv2d_on};
pub use depthwise::{depthwise_conv2d, depthwise_conv2d_affine, depthwise_conv2d_on};
pub use dropout::dropout_mask;
pub use residual::{add_relu, add_relu_on};
pub use tape::Tape;
pub(crate) use tape::{add, fold_columns, max_pool2x2};

use candle_core::{CpuStorage, Layout, Result};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
pub(crate) use cuda::{
    AdamConstants, adamw as cuda_adamw, bn_running as cuda_bn_running,
    fold_columns as cuda_fold_columns, keep_freed_memory as cuda_keep_freed_memory,
    max_pool2x2 as cuda_max_pool2x2,
};

/// The arithmetic of convolutions on GPUs. PyTorch's default lets cuDNN use TF32 tensor cores
/// (`torch.backends.cudnn.allow_tf32 = True`: inputs rounded to 10 mantissa bits, sums in f32);
/// `Fp32` asks for exact f32 arithmetic (`CUDNN_FMA_MATH`), slower on GPUs that have TF32. Matrix
/// products stay f32 either way, as in PyTorch. CPU kernels always compute in f32.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// TF32 tensor cores where the GPU has them (PyTorch's default).
    #[default]
    Tf32,
    /// Exact f32.
    Fp32,
}

thread_local! {
    /// The precision [`Precision::with`] set for this thread's job, if any.
    static PRECISION: std::cell::Cell<Option<Precision>> = const { std::cell::Cell::new(None) };
}

impl Precision {
    /// `tf32` or `fp32`.
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "tf32" => Some(Precision::Tf32),
            "fp32" => Some(Precision::Fp32),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Tf32 => "tf32",
            Precision::Fp32 => "fp32",
        }
    }

    /// The precision of this thread's job: the one [`Precision::with`] set, else
    /// `TARUN_GPU_PRECISION` (`tf32` or `fp32`), else TF32.
    pub fn current() -> Precision {
        static FROM_ENV: std::sync::OnceLock<Precision> = std::sync::OnceLock::new();
        PRECISION.get().unwrap_or_else(|| {
            *FROM_ENV.get_or_init(|| {
                let value = std::env::var("TARUN_GPU_PRECISION").ok();
                match value.as_deref() {
                    None | Some("") => Precision::Tf32,
                    Some(v) => Precision::parse(v).unwrap_or_else(|| {
                        eprintln!(
                            "warning: TARUN_GPU_PRECISION=`{v}` is neither `tf32` nor `fp32`; using tf32"
                        );
                        Precision::Tf32
                    }),
                }
            })
        })
    }

    /// Runs `f` with this precision for the GPU work it does on this thread.
    pub fn with<R>(self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Precision>);
        impl Drop for Restore {
            fn drop(&mut self) {
                PRECISION.set(self.0);
            }
        }
        let _restore = Restore(PRECISION.replace(Some(self)));
        f()
    }
}

/// The contiguous `f32` data of a custom op's input.
fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!(
            "{op}: tarun's kernels support f32 only, got {:?}",
            candle_core::backend::BackendStorage::dtype(s)
        );
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: expects contiguous inputs");
    };
    Ok(&v[start..end])
}

thread_local! {
    /// Per-thread work buffers reused from call to call (see [`with_scratch`]).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Frees every thread's `with_scratch` buffers (the current one's and those of the rayon
/// pool it runs in): they keep their largest size, up to about 16 MB each, so a process that
/// moves on to a smaller network (`tarun bench`'s rows) would otherwise carry them along.
pub fn release_scratch() {
    let clear = || {
        SCRATCH.with(|cell| {
            if let Ok(mut bufs) = cell.try_borrow_mut() {
                *bufs = (Vec::new(), Vec::new());
            }
        })
    };
    rayon::broadcast(|_| clear());
    clear();
}

/// Runs `f` with two work buffers of exactly `a` and `b` elements, kept on this thread for the
/// next call: an im2col matrix or a GEMM result allocated and zero-filled on every call cost more
/// than the copying into it (docs/performance.md, second round).
///
/// The buffers hold whatever the last call left: `f` must write every element before reading
/// it. A nested call on the same thread (rayon runs other work while a GEMM waits) gets fresh
/// buffers instead.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (x, y) = &mut *bufs;
            for (buf, len) in [(&mut *x, a), (&mut *y, b)] {
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
            }
            f(&mut x[..a], &mut y[..b])
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

/// Independent `f32` accumulators of [`lane_sum`] and [`dot`]: two AVX2 registers.
const LANES: usize = 16;

/// The sum of `f(a[i], b[i], c[i])` over three equally long slices, accumulated in [`LANES`]
/// independent `f32` lanes and returned as `f64`.
///
/// A single running sum is a chain of dependent additions that the compiler may not reorder
/// (float addition is not associative), so it runs one element per add latency; independent
/// lanes vectorise. The slices are walked in exact chunks (an earlier generic version over
/// arrays of slices did not vectorise), and one sum per call: with two sums in one loop the
/// compiler paired each element's two terms into a vector instead of vectorising across lanes.
/// The lanes are summed in a fixed order: the result depends only on the data. Callers keep the
/// slices short enough (one image plane) for `f32` lanes to stay accurate and add the per-plane
/// results in `f64`.
#[inline(always)]
fn lane_sum([a, b, c]: [&[f32]; 3], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
    assert!(
        a.len() == b.len() && b.len() == c.len(),
        "lane_sum: lengths differ"
    );
    let mut s = [0f32; LANES];
    let (ac, bc, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let rest: f64 = (ac.remainder().iter())
        .zip(bc.remainder())
        .zip(cc.remainder())
        .map(|((&x, &y), &z)| f(x, y, z) as f64)
        .sum();
    for ((x, y), z) in ac.zip(bc).zip(cc) {
        for l in 0..LANES {
            s[l] += f(x[l], y[l], z[l]);
        }
    }
    s.iter().map(|&v| v as f64).sum::<f64>() + rest
}

/// The dot product of two equally long slices in [`LANES`] `f32` lanes, as `f64` (see
/// [`lane_sum`]).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let mut s = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f64 = (ac.remainder().iter())
        .zip(bc.remainder())
        .map(|(&x, &y)| (x * y) as f64)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            s[l] += x[l] * y[l];
        }
    }
    s.iter().map(|&v| v as f64).sum::<f64>() + rest
}

/// The planes (of `plane` elements) of channel `c` for images `[0, jn)` of NCHW data with
/// `channels` channels.
fn channel_planes(
    data: &[f32],
    c: usize,
    channels: usize,
    plane: usize,
    jn: usize,
) -> impl Iterator<Item = &[f32]> + Clone {
    (0..jn).map(move |j| &data[(j * channels + c) * plane..(j * channels + c + 1) * plane])
}

/// A row-major or transposed view of a matrix inside a slice: element (i, j) is at
/// `i * rs + j * cs`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// Row-major with `cols` columns.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Whether element (rows-1, cols-1) is inside the slice.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m x n, row-major with row stride n) (+)= a (m x k) * b (k x n)`, with the `gemm` crate.
///
/// `accumulate` adds to `dst` instead of overwriting it. `threads > 1` lets gemm split the
/// product over the rayon pool; the kernels pass 1 when they already run one product per thread.
fn matmul(
    dst: &mut [f32],
    a: View,
    b: View,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    matmul_strided(dst, (n, 1), a, b, (m, n, k), accumulate, threads);
}

/// [`matmul`] into a `dst` of any row and column strides `(rs, cs)`.
fn matmul_strided(
    dst: &mut [f32],
    (rs, cs): (usize, usize),
    a: View,
    b: View,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    let fits = View { data: dst, rs, cs }.fits(m, n);
    assert!(fits, "matmul: destination too small");
    assert!(
        a.fits(m, k) && b.fits(k, n),
        "matmul: operand out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * rs + j * cs] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm touches inside the three slices; `dst`
    // is exclusively borrowed and cannot alias the shared `a` and `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            cs as isize,
            rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A kernel gradient's sum over a batch of `b` images in groups of `gs`: `add(acc, n0, gn,
/// inner)` adds group `[n0, n0 + gn)` into a `len`-element accumulator, `inner` being the threads
/// its products may use. Contiguous ranges of groups, one per thread, are each summed in order,
/// then the ranges are summed in order: the same float additions whatever the scheduling, so
/// training stays byte-deterministic for a given thread count (a `fold`/`reduce` would group
/// them as work stealing happens to split the range).
fn sum_over_groups(
    (b, gs): (usize, usize),
    len: usize,
    add: impl Fn(&mut [f32], usize, usize, usize) + Sync,
) -> Vec<f32> {
    let groups = b.div_ceil(gs.max(1));
    let inner = if groups < threads() { threads() } else { 1 };
    let ranges = threads().min(groups);
    let partials: Vec<Vec<f32>> = (0..ranges)
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; len];
            for gi in (r * groups / ranges)..((r + 1) * groups / ranges) {
                let n0 = gi * gs;
                add(&mut acc, n0, gs.min(b - n0), inner);
            }
            acc
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut total = partials.next().unwrap_or_else(|| vec![0f32; len]);
    let rest: Vec<Vec<f32>> = partials.collect();
    total
        .par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(k, chunk)| {
            for p in &rest {
                chunk
                    .iter_mut()
                    .zip(&p[k << 14..])
                    .for_each(|(a, b)| *a += b);
            }
        });
    total
}

/// For a row of `w` inputs, `wo` outputs, stride `s` and padding `p`: the output columns
/// `[lo, hi)` whose tap `kj` reads inside the row (`ow * s + kj - p` in `[0, w)`).
fn valid_cols(w: usize, wo: usize, s: usize, p: usize, kj: usize) -> (usize, usize) {
    let lo = if p > kj { (p - kj).div_ceil(s) } else { 0 };
    let hi = if w + p > kj {
        ((w - 1 + p - kj) / s + 1).min(wo)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// The rayon pool's size: how many independent products are worth running at once.
fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `vec![0f32; n]`, zeroed by all threads for large `n`: an op's output buffer. glibc reuses
/// freed memory for it, so `calloc` fills it with zeros on the calling thread while the rest of
/// the pool waits (docs/performance.md, fifth round). Where an op
/// fills its output chunk by chunk on all threads, [`par_filled`] saves this pass.
fn zeroed(n: usize) -> Vec<f32> {
    if n < 1 << 16 || threads() == 1 {
        return vec![0f32; n];
    }
    let mut v = Vec::with_capacity(n);
    (0..n)
        .into_par_iter()
        .map(|_| 0f32)
        .collect_into_vec(&mut v);
    v
}

/// A vector of `n` elements computed in chunks of `chunk` on all threads by `fill(index,
/// chunk)`: an op's output buffer. Each chunk is zeroed by the thread that then fills it, just
/// before, while it is about to be in that thread's cache anyway. glibc reuses freed memory, so
/// `vec![0f32; n]` would fill it with zeros on the calling thread while the rest of the pool
/// waits (`memset`), and even zeroed by all threads ([`zeroed`]) it would be one more pass over
/// the whole buffer.
fn par_filled(n: usize, chunk: usize, fill: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            for x in part.iter_mut() {
                x.write(0.0);
            }
            // SAFETY: every element of `part` was initialised just above, and `MaybeUninit<f32>`
            // has `f32`'s layout.
            let part = unsafe { &mut *(part as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
            fill(i, part);
        });
    // SAFETY: the chunks cover all `n` elements, each initialised above.
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests;
