//! Depthwise 2-D convolution (`groups == channels`, one k x k filter per channel), as direct
//! loops over each (image, channel) plane.
//!
//! Candle runs a grouped convolution as one convolution per group, and an im2col of a single
//! channel is all overhead: a depthwise layer does 9 multiply-adds per output. Here each plane is
//! one task: rows are accumulated tap by tap over the valid column range (no bounds checks in the
//! inner loop, which the compiler vectorises for stride 1). The input gradient scatters the same
//! taps back; the kernel gradient is one dot product per tap and channel, summed over the batch.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32_data;

/// Depthwise `x.conv2d(w, padding, stride, 1, channels)` for contiguous f32 NCHW tensors on the
/// CPU, with a backward pass. `w` is `[C, 1, k, k]`.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let geom = Geom::new(x.dims(), w.dims(), stride, padding)?;
    x.contiguous()?
        .apply_op2(&w.contiguous()?, DwOp::Forward(geom))
}

#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geom {
    fn new(x: &[usize], w: &[usize], stride: usize, pad: usize) -> Result<Self> {
        let (&[b, c, h, wd], &[co, one, kh, kw]) = (x, w) else {
            candle_core::bail!("tarun-depthwise: expected 4-d input and kernel, got {x:?}, {w:?}");
        };
        if co != c || one != 1 || kh != kw || kh == 0 || stride == 0 {
            candle_core::bail!(
                "tarun-depthwise: kernel {w:?} is not a square [C, 1, k, k] filter bank for {x:?}"
            );
        }
        if h + 2 * pad < kh || wd + 2 * pad < kw {
            candle_core::bail!("tarun-depthwise: kernel {kh}x{kw} larger than padded {x:?}");
        }
        Ok(Self {
            b,
            c,
            h,
            w: wd,
            k: kh,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo: (wd + 2 * pad - kw) / stride + 1,
        })
    }

    fn in_plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.ho * self.wo
    }

    /// Output columns whose tap `kj` reads inside the row: `[lo, hi)`.
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        super::valid_cols(self.w, self.wo, self.stride, self.pad, kj)
    }

    /// Calls `f(oh, ih, kj, lo, hi)` for every output row, tap and valid column range.
    fn for_taps(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        for oh in 0..self.ho {
            for ki in 0..self.k {
                let ih = (oh * self.stride + ki).wrapping_sub(self.pad);
                if ih >= self.h {
                    continue;
                }
                for kj in 0..self.k {
                    let (lo, hi) = self.valid_cols(kj);
                    f(oh, ih, ki, kj, lo, hi);
                }
            }
        }
    }
}

/// One plane's forward: `y[oh, ow] = sum_taps w[ki, kj] x[oh*s + ki - p, ow*s + kj - p]`.
fn plane_forward(x: &[f32], w: &[f32], g: &Geom, y: &mut [f32]) {
    y.fill(0.0);
    let (s, p, k) = (g.stride, g.pad, g.k);
    g.for_taps(|oh, ih, ki, kj, lo, hi| {
        let wv = w[ki * k + kj];
        let src = &x[ih * g.w..(ih + 1) * g.w];
        let dst = &mut y[oh * g.wo + lo..oh * g.wo + hi];
        if s == 1 {
            let start = lo + kj - p;
            for (d, v) in dst.iter_mut().zip(&src[start..start + (hi - lo)]) {
                *d += wv * v;
            }
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d += wv * src[(lo + i) * s + kj - p];
            }
        }
    });
}

/// One plane's input gradient: the forward's taps, scattered back.
fn plane_input_grad(dy: &[f32], w: &[f32], g: &Geom, dx: &mut [f32]) {
    dx.fill(0.0);
    let (s, p, k) = (g.stride, g.pad, g.k);
    g.for_taps(|oh, ih, ki, kj, lo, hi| {
        let wv = w[ki * k + kj];
        let src = &dy[oh * g.wo + lo..oh * g.wo + hi];
        let dst = &mut dx[ih * g.w..(ih + 1) * g.w];
        if s == 1 {
            let start = lo + kj - p;
            for (d, v) in dst[start..start + (hi - lo)].iter_mut().zip(src) {
                *d += wv * v;
            }
        } else {
            for (i, v) in src.iter().enumerate() {
                dst[(lo + i) * s + kj - p] += wv * v;
            }
        }
    });
}

/// One plane's contribution to its channel's kernel gradient, added to `dw` (k*k taps).
fn plane_kernel_grad(x: &[f32], dy: &[f32], g: &Geom, dw: &mut [f64]) {
    let (s, p, k) = (g.stride, g.pad, g.k);
    g.for_taps(|oh, ih, ki, kj, lo, hi| {
        let src = &x[ih * g.w..(ih + 1) * g.w];
        let d = &dy[oh * g.wo + lo..oh * g.wo + hi];
        let mut acc = 0f32;
        if s == 1 {
            let start = lo + kj - p;
            for (a, b) in d.iter().zip(&src[start..start + (hi - lo)]) {
                acc += a * b;
            }
        } else {
            for (i, a) in d.iter().enumerate() {
                acc += a * src[(lo + i) * s + kj - p];
            }
        }
        dw[ki * k + kj] += acc as f64;
    });
}

fn forward(x: &[f32], w: &[f32], g: &Geom) -> Vec<f32> {
    let (ip, op, kk) = (g.in_plane(), g.out_plane(), g.k * g.k);
    let mut y = vec![0f32; g.b * g.c * op];
    if op > 0 {
        y.par_chunks_mut(op).enumerate().for_each(|(i, out)| {
            let c = i % g.c;
            plane_forward(&x[i * ip..(i + 1) * ip], &w[c * kk..(c + 1) * kk], g, out);
        });
    }
    y
}

fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Vec<f32> {
    let (ip, op, kk) = (g.in_plane(), g.out_plane(), g.k * g.k);
    let mut dx = vec![0f32; g.b * g.c * ip];
    if ip > 0 {
        dx.par_chunks_mut(ip).enumerate().for_each(|(i, out)| {
            let c = i % g.c;
            plane_input_grad(&dy[i * op..(i + 1) * op], &w[c * kk..(c + 1) * kk], g, out);
        });
    }
    dx
}

fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (ip, op, kk) = (g.in_plane(), g.out_plane(), g.k * g.k);
    let mut dw = vec![0f32; g.c * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, out)| {
        let mut acc = vec![0f64; kk];
        for n in 0..g.b {
            let i = n * g.c + c;
            plane_kernel_grad(
                &x[i * ip..(i + 1) * ip],
                &dy[i * op..(i + 1) * op],
                g,
                &mut acc,
            );
        }
        out.iter_mut().zip(&acc).for_each(|(o, a)| *o = *a as f32);
    });
    dw
}

/// The forward op on (x, w) and its two gradient ops: `InputGrad` on (dy, w), `KernelGrad` on
/// (x, dy).
enum DwOp {
    Forward(Geom),
    InputGrad(Geom),
    KernelGrad(Geom),
}

impl CustomOp2 for DwOp {
    fn name(&self) -> &'static str {
        match self {
            DwOp::Forward(_) => "tarun-depthwise",
            DwOp::InputGrad(_) => "tarun-depthwise-input-grad",
            DwOp::KernelGrad(_) => "tarun-depthwise-kernel-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (
            f32_data(s1, l1, self.name())?,
            f32_data(s2, l2, self.name())?,
        );
        Ok(match self {
            DwOp::Forward(g) => (
                CpuStorage::F32(forward(a, b, g)),
                Shape::from((g.b, g.c, g.ho, g.wo)),
            ),
            DwOp::InputGrad(g) => (
                CpuStorage::F32(input_grad(a, b, g)),
                Shape::from((g.b, g.c, g.h, g.w)),
            ),
            DwOp::KernelGrad(g) => (
                CpuStorage::F32(kernel_grad(a, b, g)),
                Shape::from((g.c, 1, g.k, g.k)),
            ),
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let DwOp::Forward(g) = self else {
            candle_core::bail!("{}: no second derivative", self.name());
        };
        let grad = grad.contiguous()?;
        let dx = grad.apply_op2_no_bwd(w, &DwOp::InputGrad(*g))?;
        let dw = x.apply_op2_no_bwd(&grad, &DwOp::KernelGrad(*g))?;
        Ok((Some(dx), Some(dw)))
    }
}
