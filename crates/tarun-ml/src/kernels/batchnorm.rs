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
use super::{channel_planes, f32_data, lane_sum, zeroed};

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
    let InputGrad {
        scale: s,
        istd,
        mean,
        dgamma_n,
        dbeta_n,
        ..
    } = *k;
    by_activation!(act, |_apply, passes| {
        if k.batch_stats {
            for (((o, &xv), &gv), &yv) in it {
                let g = gate(passes(yv), gv);
                *o = s * (g - dbeta_n - (xv - mean) * istd * dgamma_n);
            }
        } else {
            for (((o, _), &gv), &yv) in it {
                *o = s * gate(passes(yv), gv);
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
        let mut y = zeroed(x.len());
        if hw > 0 {
            y.par_chunks_mut(hw)
                .zip(x.par_chunks(hw))
                .enumerate()
                .for_each(|(i, (out, inp))| {
                    plane_affine(out, inp, (a.scale[i % c], a.shift[i % c]), self.act)
                });
        }
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
        let mut dx = zeroed(x.len());
        if hw > 0 {
            dx.par_chunks_mut(hw).enumerate().for_each(|(i, out)| {
                let ch = i % c;
                let r = i * hw..(i + 1) * hw;
                let planes = [&x[r.clone()], &dy[r.clone()], &y[r]];
                let k = InputGrad {
                    scale: a.scale[ch],
                    istd: a.istd[ch],
                    mean: a.mean[ch],
                    dgamma_n: sums[ch] / n,
                    dbeta_n: sums[c + ch] / n,
                    batch_stats: self.batch_stats,
                };
                plane_input_grad(out, planes, &k, act)
            });
        }
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}
