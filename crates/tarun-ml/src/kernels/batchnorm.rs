//! Batch norm fused with its activation: statistics, normalisation, affine transform and ReLU or
//! ReLU6 in one pass over the activation, and one fused backward.
//!
//! Written as Candle ops, training batch norm plus ReLU is about fifteen element-wise ops, each
//! reading and writing a full activation and each kept alive for backward. Here the forward
//! reads `x` twice (statistics, then output) and writes `y` once; the backward keeps only `x` and
//! `y` (the activation's mask is read off `y`). With `g = dL/dy * act'(y)`, `x^ = (x - mean) *
//! istd` and `N = B*H*W` (Ioffe & Szegedy 2015, section 3):
//!
//! * `dbeta = sum g`, `dgamma = sum g x^`;
//! * training (statistics of this batch): `dx = gamma istd (g - dbeta/N - x^ dgamma/N)`;
//! * evaluation (fixed statistics): `dx = gamma istd g`.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use multiversion::multiversion;

use super::tape::{Backward, Tape, apply3, stack_rows};
use super::{channel_planes, f32_data, lane_sum, par_filled, threads};

/// The activation fused after the normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Relu6,
}

impl Activation {
    pub(super) fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Relu6 => v.clamp(0.0, 6.0),
        }
    }

    /// Whether the gradient passes at output `y` (PyTorch's convention: not at the kinks).
    fn passes(self, y: f32) -> bool {
        match self {
            Activation::None => true,
            Activation::Relu => y > 0.0,
            // `&`, not `&&`: no branch, so the loops over it stay vector code.
            Activation::Relu6 => (y > 0.0) & (y < 6.0),
        }
    }
}

/// `g` where the activation passes, else `+0.0`, as a bit mask rather than a branch: LLVM
/// turned `if passes { g } else { 0.0 }` into per-lane tests and jumps.
#[inline(always)]
fn gate(passes: bool, g: f32) -> f32 {
    f32::from_bits(g.to_bits() & (passes as u32).wrapping_neg())
}

/// Planes of fewer positions than this (MobileNetV2's 2x2 and 1x1 maps at CIFAR's size) are
/// walked image by image over a block of channels instead of with one call per plane: at 1-4
/// elements a plane, the call and its set-up cost more than the arithmetic, and a batch of 128
/// such layers has tens of thousands of planes. Below 8 positions the per-plane sums have no
/// vector lanes ([`f64_lanes`], [`lane_sum`]: every element is in the in-order remainder), so
/// summing each plane in order and each channel's planes image by image, as here, gives the
/// same bits as the per-plane path.
const TINY_PLANE: usize = 8;

/// Plane `k` (image `k / C`, channel `k % C`) of an NCHW tensor with `hw`-element planes.
#[inline(always)]
fn plane(t: &[f32], hw: usize, k: usize) -> &[f32] {
    &t[k * hw..(k + 1) * hw]
}

/// For every channel of NCHW tensors `[x, dL/dy, y]` with planes of `hw < TINY_PLANE` elements,
/// the sum over images, in image order, of `finish(channel, plane sums)`, where a plane's sums
/// add `term(channel, x, dy, y)` over its elements in order from `-0.0` (as `Iterator::sum`
/// does), so the bits are the per-plane path's. The channels are split into blocks, one
/// parallel task each, and each image's block of planes is one contiguous run.
fn channel_sums<const K: usize>(
    srcs: [&[f32]; 3],
    (b, c, hw): (usize, usize, usize),
    term: impl Fn(usize, f32, f32, f32) -> [f64; K] + Sync,
    finish: impl Fn(usize, [f64; K]) -> [f64; K] + Sync,
) -> Vec<[f64; K]> {
    let block = c.div_ceil(4 * threads()).max(1);
    let mut out = vec![[0f64; K]; c];
    out.par_chunks_mut(block).enumerate().for_each(|(k, acc)| {
        let c0 = k * block;
        for i in 0..b {
            let run = (i * c + c0) * hw..(i * c + c0 + acc.len()) * hw;
            let image = srcs.map(|t| &t[run.clone()]);
            // Constant plane sizes for MobileNetV2's 1x1 and 2x2 maps, so the loops unroll.
            match hw {
                1 => image_sums(acc, image, (c0, 1), &term, &finish),
                2 => image_sums(acc, image, (c0, 2), &term, &finish),
                4 => image_sums(acc, image, (c0, 4), &term, &finish),
                hw => image_sums(acc, image, (c0, hw), &term, &finish),
            }
        }
    });
    out
}

/// One image's part of [`channel_sums`]: `acc[j]` for channel `c0 + j`.
#[inline(always)]
fn image_sums<const K: usize>(
    acc: &mut [[f64; K]],
    [x, dy, y]: [&[f32]; 3],
    (c0, hw): (usize, usize),
    term: &impl Fn(usize, f32, f32, f32) -> [f64; K],
    finish: &impl Fn(usize, [f64; K]) -> [f64; K],
) {
    let planes = x
        .chunks_exact(hw)
        .zip(dy.chunks_exact(hw))
        .zip(y.chunks_exact(hw));
    for (j, (a, ((xs, ds), ys))) in acc.iter_mut().zip(planes).enumerate() {
        let mut sums = [-0.0f64; K];
        for e in 0..hw {
            let t = term(c0 + j, xs[e], ds[e], ys[e]);
            for (s, t) in sums.iter_mut().zip(t) {
                *s += t;
            }
        }
        for (a, s) in a.iter_mut().zip(finish(c0 + j, sums)) {
            *a += s;
        }
    }
}

/// Evaluates `$body` with `$apply` and `$passes` bound to the activation's two functions as
/// closures of one fixed variant, so that each inner loop is compiled (and vectorised) for that
/// variant instead of matching on it per element.
macro_rules! by_activation {
    ($act:expr, |$apply:ident, $passes:ident| $body:expr) => {
        match $act {
            Activation::None => {
                let $apply = |v: f32| Activation::None.apply(v);
                let $passes = |y: f32| Activation::None.passes(y);
                $body
            }
            Activation::Relu => {
                let $apply = |v: f32| Activation::Relu.apply(v);
                let $passes = |y: f32| Activation::Relu.passes(y);
                $body
            }
            Activation::Relu6 => {
                let $apply = |v: f32| Activation::Relu6.apply(v);
                let $passes = |y: f32| Activation::Relu6.passes(y);
                $body
            }
        }
    };
}

/// Per-channel mean and biased variance of an NCHW tensor over (N, H, W), as a `[2, C]` tensor
/// (row 0 the means, row 1 the variances). Not differentiable: [`batch_norm`] differentiates
/// through the statistics itself when told they came from its input.
pub fn batch_norm_stats(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Stats)
}

/// `act((x - mean) / sqrt(var + eps) * gamma + beta)` per channel of an NCHW tensor, where
/// `stats` is `[2, C]` (means, variances). `batch_stats` says the statistics were computed from
/// `x` (training), so the backward differentiates through them; otherwise they are constants
/// (evaluation with running statistics).
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: &Tensor,
    eps: f64,
    act: Activation,
    batch_stats: bool,
) -> Result<Tensor> {
    batch_norm_on(x, (gamma, beta), stats, (eps, act, batch_stats), None)
}

/// [`batch_norm`] (with `(eps, act, batch_stats)` as one argument), recorded on `tape` when
/// given instead of on Candle's graph.
pub fn batch_norm_on(
    x: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    stats: &Tensor,
    (eps, act, batch_stats): (f64, Activation, bool),
    tape: Option<&Tape>,
) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if gamma.dims() != [c] || beta.dims() != [c] || stats.dims() != [2, c] {
        candle_core::bail!(
            "tarun-batch-norm: {c} channels, but gamma {:?}, beta {:?}, stats {:?}",
            gamma.dims(),
            beta.dims(),
            stats.dims()
        );
    }
    let params = stack_rows(gamma, beta, tape)?;
    let op = BnOp {
        eps,
        act,
        batch_stats,
    };
    apply3(x, &params, &stats.detach(), op, tape)
}

// The per-plane loops, each compiled for AVX2+FMA and SSE4.2 as well as the baseline.

/// `sum f(v)` over one plane in eight `f64` lanes. The statistics stay in `f64` throughout:
/// rounding them to `f32` lanes moved ResNet-18's stem gradient measurably (`models_kernels`).
#[inline(always)]
fn f64_lanes(p: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let blocks = p.chunks_exact(8);
    let rest: f64 = blocks.remainder().iter().map(|&v| f(v as f64)).sum();
    for b in blocks {
        for (a, &v) in acc.iter_mut().zip(b) {
            *a += f(v as f64);
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// The sum of one plane (also the bias gradient's, `super::bias`).
#[multiversion(targets = "simd")]
pub(super) fn plane_sum(p: &[f32]) -> f64 {
    f64_lanes(p, |v| v)
}

/// The sum of squared deviations from `mean` of one plane.
#[multiversion(targets = "simd")]
fn plane_sq_dev(p: &[f32], mean: f64) -> f64 {
    f64_lanes(p, |v| (v - mean) * (v - mean))
}

/// `out = act(inp * scale + shift)` over one plane.
#[multiversion(targets = "simd")]
fn plane_affine(out: &mut [f32], inp: &[f32], (scale, shift): (f32, f32), act: Activation) {
    by_activation!(act, |apply, _passes| {
        for (o, &v) in out.iter_mut().zip(inp) {
            *o = apply(v * scale + shift);
        }
    })
}

/// [`plane_affine`] over one image of [`TINY_PLANE`]-sized planes, channel by channel.
fn image_affine(out: &mut [f32], inp: &[f32], (scale, shift): (&[f32], &[f32]), act: Activation) {
    let hw = out.len() / scale.len();
    let planes = out.chunks_exact_mut(hw).zip(inp.chunks_exact(hw));
    by_activation!(act, |apply, _passes| {
        for ((o, i), (&a, &b)) in planes.zip(scale.iter().zip(shift)) {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = apply(v * a + b);
            }
        }
    })
}

/// `plane = act(plane * scale + shift)` in place: batch norm's evaluation-mode affine as a
/// convolution's epilogue ([`super::conv::Epilogue`]).
#[multiversion(targets = "simd")]
pub(super) fn plane_affine_in_place(
    plane: &mut [f32],
    (scale, shift): (f32, f32),
    act: Activation,
) {
    by_activation!(act, |apply, _passes| {
        for v in plane.iter_mut() {
            *v = apply(*v * scale + shift);
        }
    })
}

/// `out = act(out * scale + shift)` elementwise with per-element `scale` and `shift` (the
/// per-channel values repeated over each plane): [`plane_affine_in_place`] for images of small
/// planes, where a call per plane of 1-16 elements would be mostly call and tail overhead.
#[multiversion(targets = "simd")]
pub(super) fn image_affine_in_place(
    out: &mut [f32],
    scale: &[f32],
    shift: &[f32],
    act: Activation,
) {
    by_activation!(act, |apply, _passes| {
        for ((v, &a), &b) in out.iter_mut().zip(scale).zip(shift) {
            *v = apply(*v * a + b);
        }
    })
}

/// One plane's `(sum g, sum g (x - mean))` over `[x, dL/dy, y]`, with `g` the gradient through
/// the activation.
#[multiversion(targets = "simd")]
fn plane_grad_sums([xs, gs, ys]: [&[f32]; 3], mean: f32, act: Activation) -> [f64; 2] {
    // Two passes, one sum each (see `lane_sum`); the plane is in L1 for the second.
    by_activation!(act, |_apply, passes| {
        let planes = [xs, gs, ys];
        [
            lane_sum(planes, |_, gv, yv| gate(passes(yv), gv)),
            lane_sum(planes, |xv, gv, yv| gate(passes(yv), gv) * (xv - mean)),
        ]
    })
}

/// One channel's constants for [`plane_input_grad`].
struct InputGrad {
    scale: f32,
    istd: f32,
    mean: f32,
    dgamma_n: f32,
    dbeta_n: f32,
    batch_stats: bool,
}

/// One plane's `dx` from `[x, dL/dy, y]` (see the module notes).
#[multiversion(targets = "simd")]
fn plane_input_grad(out: &mut [f32], [xs, gs, ys]: [&[f32]; 3], k: &InputGrad, act: Activation) {
    let it = out.iter_mut().zip(xs).zip(gs).zip(ys);
    by_activation!(act, |_apply, passes| {
        for (((o, &xv), &gv), &yv) in it {
            *o = k.dx(xv, gate(passes(yv), gv));
        }
    })
}

impl InputGrad {
    /// `dx` at input `x` from `g`, the gradient through the activation.
    #[inline(always)]
    fn dx(&self, x: f32, g: f32) -> f32 {
        if self.batch_stats {
            self.scale * (g - self.dbeta_n - (x - self.mean) * self.istd * self.dgamma_n)
        } else {
            self.scale * g
        }
    }
}

/// [`plane_input_grad`] over one image of [`TINY_PLANE`]-sized planes, `ks` a channel's each.
#[multiversion(targets = "simd")]
fn image_input_grad(out: &mut [f32], [xs, gs, ys]: [&[f32]; 3], ks: &[InputGrad], act: Activation) {
    let hw = out.len() / ks.len();
    let planes = out.chunks_exact_mut(hw).zip(xs.chunks_exact(hw));
    let planes = planes.zip(gs.chunks_exact(hw).zip(ys.chunks_exact(hw)));
    by_activation!(act, |_apply, passes| {
        for (((o, xp), (gp, yp)), k) in planes.zip(ks) {
            for e in 0..hw {
                o[e] = k.dx(xp[e], gate(passes(yp[e]), gp[e]));
            }
        }
    })
}

/// `(B, C, H*W)` of a contiguous NCHW layout.
pub(super) fn bc_hw(l: &Layout, op: &str) -> Result<(usize, usize, usize)> {
    match l.dims() {
        &[b, c, h, w] => Ok((b, c, h * w)),
        d => candle_core::bail!("{op}: expected an NCHW tensor, got {d:?}"),
    }
}

struct Stats;

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "tarun-batch-norm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let (b, c, hw) = bc_hw(l, self.name())?;
        let n = (b * hw).max(1) as f64;
        if hw < TINY_PLANE {
            let same = |_, s| s;
            let sums = channel_sums([x; 3], (b, c, hw), |_, v, _, _| [v as f64], same);
            let means: Vec<f64> = sums.iter().map(|s| s[0] / n).collect();
            let sq_dev =
                |ch: usize, v: f32, _, _| [(v as f64 - means[ch]) * (v as f64 - means[ch])];
            let sq = channel_sums([x; 3], (b, c, hw), sq_dev, same);
            let mut out: Vec<f32> = means.iter().map(|&m| m as f32).collect();
            out.extend(sq.iter().map(|s| (s[0] / n) as f32));
            return Ok((CpuStorage::F32(out), Shape::from((2, c))));
        }
        let per_channel: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = channel_planes(x, ch, c, hw, b);
                let sum: f64 = planes.clone().map(plane_sum).sum();
                let mean = sum / n;
                let sq: f64 = planes.map(|p| plane_sq_dev(p, mean)).sum();
                (mean as f32, (sq / n) as f32)
            })
            .collect();
        let mut out: Vec<f32> = per_channel.iter().map(|m| m.0).collect();
        out.extend(per_channel.iter().map(|m| m.1));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::bn_stats(s, l)
    }
}

/// Per-channel scale `gamma * istd` and shift `beta - mean * scale`, plus `istd` and `mean`.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
    istd: Vec<f32>,
    mean: Vec<f32>,
}

impl Affine {
    fn new(params: &[f32], stats: &[f32], c: usize, eps: f64) -> Self {
        let (gamma, beta) = params.split_at(c);
        let (mean, var) = stats.split_at(c);
        let istd: Vec<f32> = var
            .iter()
            .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
            .collect();
        let scale: Vec<f32> = gamma.iter().zip(&istd).map(|(g, s)| g * s).collect();
        let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
        Self {
            scale,
            shift,
            istd,
            mean: mean.to_vec(),
        }
    }
}

struct BnOp {
    eps: f64,
    act: Activation,
    batch_stats: bool,
}

impl CustomOp3 for BnOp {
    fn name(&self) -> &'static str {
        "tarun-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(xs, xl, self.name())?;
        let (params, stats) = (
            f32_data(ps, pl, self.name())?,
            f32_data(ss, sl, self.name())?,
        );
        let (_, c, hw) = bc_hw(xl, self.name())?;
        let a = Affine::new(params, stats, c, self.eps);
        let act = self.act;
        let y = if hw < TINY_PLANE {
            par_filled(x.len(), c * hw, |i, out| {
                let image = &x[i * c * hw..(i + 1) * c * hw];
                image_affine(out, image, (&a.scale, &a.shift), act)
            })
        } else {
            par_filled(x.len(), hw, |i, out| {
                plane_affine(out, plane(x, hw, i), (a.scale[i % c], a.shift[i % c]), act)
            })
        };
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ps: &candle_core::CudaStorage,
        pl: &Layout,
        ss: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::bn_apply((xs, xl), (ps, pl), (ss, sl), self.eps, self.act)
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        stats: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let inputs = [x.clone(), params.clone(), stats.clone()];
        let needs = [x.track_op(), params.track_op(), false];
        let mut g = self.backward(&inputs, y, grad, &needs)?.into_iter();
        let mut next = || g.next().flatten();
        Ok((next(), next(), next()))
    }
}

impl Backward for BnOp {
    fn backward(
        &self,
        inputs: &[Tensor],
        y: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let [x, params, stats] = inputs else {
            candle_core::bail!("tarun-batch-norm: expects three inputs");
        };
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let tensors = [x, params, stats, y, grad];
            return super::cuda::bn_backward(tensors, self.eps, self.act, self.batch_stats, needs);
        }
        let c = params.dim(1)?;
        let host = |t: &Tensor| -> Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
        let a = Affine::new(&host(params)?, &host(stats)?, c, self.eps);
        let grad = grad.contiguous()?;
        let reduce = BnGrad {
            act: self.act,
            affine: a,
            sums: None,
            batch_stats: self.batch_stats,
        };
        let dparams = x.apply_op3_no_bwd(&grad, y, &reduce)?;
        let dx = if needs[0] {
            let input = BnGrad {
                sums: Some(host(&dparams)?),
                ..reduce
            };
            Some(x.apply_op3_no_bwd(&grad, y, &input)?)
        } else {
            None
        };
        Ok(vec![dx, needs[1].then_some(dparams), None])
    }
}

/// The backward on (x, dL/dy, y). Without `sums` it returns `[2, C]`: `dgamma` and `dbeta`;
/// given them (same layout) it returns `dx`.
struct BnGrad {
    act: Activation,
    affine: Affine,
    sums: Option<Vec<f32>>,
    batch_stats: bool,
}

impl CustomOp3 for BnGrad {
    fn name(&self) -> &'static str {
        "tarun-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(xs, xl, self.name())?;
        let (dy, y) = (
            f32_data(gs, gl, self.name())?,
            f32_data(ys, yl, self.name())?,
        );
        let (b, c, hw) = bc_hw(xl, self.name())?;
        let a = &self.affine;
        let act = self.act;
        let Some(sums) = &self.sums else {
            if hw < TINY_PLANE {
                let per_channel = by_activation!(act, |_apply, passes| {
                    let term = |ch: usize, xv: f32, gv: f32, yv: f32| {
                        let g = gate(passes(yv), gv);
                        [g as f64, (g * (xv - a.mean[ch])) as f64]
                    };
                    let finish = |ch: usize, [sg, sgx]: [f64; 2]| [sg, sgx * a.istd[ch] as f64];
                    channel_sums([x, dy, y], (b, c, hw), term, finish)
                });
                let mut out: Vec<f32> = per_channel.iter().map(|p| p[1] as f32).collect();
                out.extend(per_channel.iter().map(|p| p[0] as f32));
                return Ok((CpuStorage::F32(out), Shape::from((2, c))));
            }
            let per_channel: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let (mut dgamma, mut dbeta) = (0f64, 0f64);
                    let m = a.mean[ch];
                    for i in 0..b {
                        let r = (i * c + ch) * hw..(i * c + ch + 1) * hw;
                        let planes = [&x[r.clone()], &dy[r.clone()], &y[r]];
                        let [sg, sgx] = plane_grad_sums(planes, m, act);
                        dbeta += sg;
                        dgamma += sgx * a.istd[ch] as f64;
                    }
                    (dgamma, dbeta)
                })
                .collect();
            let mut out: Vec<f32> = per_channel.iter().map(|p| p.0 as f32).collect();
            out.extend(per_channel.iter().map(|p| p.1 as f32));
            return Ok((CpuStorage::F32(out), Shape::from((2, c))));
        };
        let n = (b * hw).max(1) as f32;
        let ks: Vec<InputGrad> = (0..c)
            .map(|ch| InputGrad {
                scale: a.scale[ch],
                istd: a.istd[ch],
                mean: a.mean[ch],
                dgamma_n: sums[ch] / n,
                dbeta_n: sums[c + ch] / n,
                batch_stats: self.batch_stats,
            })
            .collect();
        let dx = if hw < TINY_PLANE {
            par_filled(x.len(), c * hw, |i, out| {
                let image = [x, dy, y].map(|t| &t[i * c * hw..(i + 1) * c * hw]);
                image_input_grad(out, image, &ks, act)
            })
        } else {
            par_filled(x.len(), hw, |i, out| {
                let planes = [x, dy, y].map(|t| plane(t, hw, i));
                plane_input_grad(out, planes, &ks[i % c], act)
            })
        };
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}
