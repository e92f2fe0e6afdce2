//! Dense 2-D convolution: the ops the networks call ([`conv2d`], [`conv2d_on`],
//! [`conv2d_affine`], [`conv2d_affine_residual`]) and their Candle and [`Tape`] glue. The work
//! is split so that no algorithm depends on another:
//!
//! * `geom.rs`: [`Geom`], the shapes of one convolution, checked once when the op is built;
//! * `epilogue.rs`: [`Epilogue`], the scale, shift, residual and activation an inference
//!   convolution applies to its outputs as it writes them;
//! * `choose.rs`: the one place that picks the algorithm for each pass;
//! * `im2col.rs`: batched im2col + GEMM, the general algorithm;
//! * `winograd.rs`: Winograd F(2x2, 3x3) for wide 3x3 "same" layers;
//! * `direct.rs`: a direct kernel without im2col for 3x3 to 7x7 layers of up to 128 channels,
//!   on AVX-512 or AVX2 + FMA.
//!
//! The algorithms use only `geom`, `epilogue` and the helpers of [`crate::kernels`] (threads,
//! scratch, GEMM, `simd`).
//!
//! The GPU shares this interface: the same ops carry a `cuda_fwd` (with the `cuda` feature) that
//! hands [`Geom`] as a cuDNN shape to `kernels/cuda/conv.rs`, so a network calls [`conv2d`]
//! wherever its tensors live and Candle dispatches on their device. The folded epilogue
//! ([`conv2d_affine`], [`conv2d_affine_residual`]) runs on the CPU only.

pub(super) mod choose;
// Off x86-64 the direct convolution never applies, and its kernels are not compiled.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) mod direct;
mod epilogue;
mod geom;
pub(super) mod im2col;
pub(super) mod winograd;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::batchnorm::Activation;
use super::f32_data;
use super::tape::{Backward, Tape, apply2, candle_bwd2};
use choose::{forward, input_grad, kernel_grad};
pub(super) use epilogue::{Epilogue, SMALL_PLANE};
pub(super) use geom::Geom;

/// `x.conv2d(w, padding, stride, 1, 1)` for contiguous f32 NCHW tensors on the CPU, with a
/// backward pass; square kernels only.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    conv2d_on(x, w, stride, padding, None)
}

/// [`conv2d`], recorded on `tape` when given instead of on Candle's graph.
pub fn conv2d_on(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    tape: Option<&Tape>,
) -> Result<Tensor> {
    let geom = Geom::new(x.dims(), w.dims(), stride, padding)?;
    apply2(x, w, ConvOp(geom, None), tape)
}

/// `act(conv2d(x, w) * scale + shift)`, per output channel, for inference: batch norm in
/// evaluation mode (scale `gamma / sqrt(var + eps)`, shift `beta - mean * scale`, plus a bias
/// times scale) folded into the convolution, so that each output is finished as it is written
/// instead of in a second pass over a new activation. No backward.
pub fn conv2d_affine(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    (scale, shift): (&Tensor, &Tensor),
    act: Activation,
) -> Result<Tensor> {
    let geom = Geom::new(x.dims(), w.dims(), stride, padding)?;
    let epi = Epilogue::new("tarun-conv2d-affine", geom.co, (scale, shift), act)?;
    x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &ConvOp(geom, Some(epi)))
}

/// `act(conv2d(x, w) * scale + shift + residual)` for inference: [`conv2d_affine`] with a
/// residual (ResNet's identity path, shaped like the output) added before the activation, in
/// the same pass instead of an [`super::add_relu`] over a new activation. No backward.
pub fn conv2d_affine_residual(
    x: &Tensor,
    w: &Tensor,
    (stride, padding): (usize, usize),
    (scale, shift): (&Tensor, &Tensor),
    residual: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    let geom = Geom::new(x.dims(), w.dims(), stride, padding)?;
    let out = [geom.b, geom.co, geom.ho, geom.wo];
    if residual.dims() != out {
        candle_core::bail!(
            "tarun-conv2d-affine-residual: residual {:?}, output {out:?}",
            residual.dims()
        );
    }
    let epi = Epilogue::new("tarun-conv2d-affine-residual", geom.co, (scale, shift), act)?;
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &residual.contiguous()?,
        &ConvResidual(geom, epi),
    )
}

/// [`conv2d_affine_residual`]'s op on (x, w, residual).
struct ConvResidual(Geom, Epilogue<'static>);

impl CustomOp3 for ConvResidual {
    fn name(&self) -> &'static str {
        "tarun-conv2d-affine-residual"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, r) = (
            f32_data(xs, xl, self.name())?,
            f32_data(ws, wl, self.name())?,
            f32_data(rs, rl, self.name())?,
        );
        let g = &self.0;
        let y = forward(x, w, g, Some(&self.1.with_residual(r)));
        Ok((CpuStorage::F32(y), Shape::from((g.b, g.co, g.ho, g.wo))))
    }
}

#[cfg(feature = "cuda")]
impl Geom {
    /// The same convolution for cuDNN.
    fn cudnn(&self) -> crate::kernels::cuda::conv::ConvShape {
        crate::kernels::cuda::conv::ConvShape {
            b: self.b,
            c: self.c,
            h: self.h,
            w: self.w,
            co: self.co,
            k: self.k,
            stride: self.stride,
            pad: self.pad,
            groups: 1,
        }
    }
}

/// `conv2d(x, w)` with its backward, or with an epilogue `conv2d_affine(x, w)`, inference only.
struct ConvOp(Geom, Option<Epilogue<'static>>);

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        if self.1.is_some() {
            "tarun-conv2d-affine"
        } else {
            "tarun-conv2d"
        }
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (
            f32_data(xs, xl, self.name())?,
            f32_data(ws, wl, self.name())?,
        );
        let g = &self.0;
        let y = forward(x, w, g, self.1.as_ref());
        Ok((CpuStorage::F32(y), Shape::from((g.b, g.co, g.ho, g.wo))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if self.1.is_some() {
            candle_core::bail!("{}: the folded epilogue runs on the CPU only", self.name());
        }
        use crate::kernels::cuda::conv::{Pass, run};
        run(
            Pass::Forward,
            &self.0.cudnn(),
            (xs, xl),
            (ws, wl),
            self.name(),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        candle_bwd2(self, x, w, y, grad)
    }
}

impl Backward for ConvOp {
    fn backward(
        &self,
        inputs: &[Tensor],
        _y: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        if self.1.is_some() {
            candle_core::bail!("{}: inference only, no backward", self.name());
        }
        let [x, w] = inputs else {
            candle_core::bail!("{}: expects two inputs", self.name());
        };
        let grad = grad.contiguous()?;
        // The stem's input is the image batch, which needs no gradient: skip its col2im.
        let dx = needs[0]
            .then(|| grad.apply_op2_no_bwd(w, &ConvGrad::Input(self.0)))
            .transpose()?;
        let dw = needs[1]
            .then(|| x.apply_op2_no_bwd(&grad, &ConvGrad::Kernel(self.0)))
            .transpose()?;
        Ok(vec![dx, dw])
    }
}

/// The two gradients as ops: `Input` takes (dy, w), `Kernel` takes (x, dy).
enum ConvGrad {
    Input(Geom),
    Kernel(Geom),
}

impl CustomOp2 for ConvGrad {
    fn name(&self) -> &'static str {
        match self {
            ConvGrad::Input(_) => "tarun-conv2d-input-grad",
            ConvGrad::Kernel(_) => "tarun-conv2d-kernel-grad",
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
            ConvGrad::Input(g) => (
                CpuStorage::F32(input_grad(a, b, g)),
                Shape::from((g.b, g.c, g.h, g.w)),
            ),
            ConvGrad::Kernel(g) => (
                CpuStorage::F32(kernel_grad(a, b, g)),
                Shape::from((g.co, g.c, g.k, g.k)),
            ),
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::kernels::cuda::conv::{Pass, run};
        let (pass, g) = match self {
            ConvGrad::Input(g) => (Pass::InputGrad, g),
            ConvGrad::Kernel(g) => (Pass::KernelGrad, g),
        };
        run(pass, &g.cudnn(), (s1, l1), (s2, l2), self.name())
    }
}
