//! ResNet's block exit, `relu(a + b)`, as one op: one pass forward, and one masked copy of the
//! gradient (shared by both inputs) backward, instead of Candle's add, ReLU and the four
//! element-wise ops of their backward passes.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use multiversion::multiversion;

use super::batchnorm::Activation;
use super::tape::{Backward, Tape, apply2, candle_bwd2};
use super::{f32_data, par_filled};

/// Elements per parallel task: large enough to amortise scheduling.
const CHUNK: usize = 1 << 14;

/// `(a + b).relu()` for two contiguous f32 tensors of one shape, with PyTorch's gradient (none
/// where the output is 0).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    add_relu_on(a, b, None)
}

/// [`add_relu`], recorded on `tape` when given instead of on Candle's graph.
pub fn add_relu_on(a: &Tensor, b: &Tensor, tape: Option<&Tape>) -> Result<Tensor> {
    if a.dims() != b.dims() {
        candle_core::bail!("tarun-add-relu: shapes {:?} and {:?}", a.dims(), b.dims());
    }
    apply2(a, b, AddRelu::Forward, tape)
}

enum AddRelu {
    Forward,
    /// On (y, dL/dy): dL/dy where y > 0, else 0.
    Mask,
}

/// One chunk of either direction, one loop per variant (a `match` per element would keep it
/// from vectorising), compiled for AVX2+FMA and SSE4.2 as well as the baseline.
#[multiversion(targets = "simd")]
fn chunk(op: &AddRelu, out: &mut [f32], a: &[f32], b: &[f32]) {
    let it = out.iter_mut().zip(a).zip(b);
    match op {
        AddRelu::Forward => it.for_each(|((o, &a), &b)| *o = (a + b).max(0.0)),
        AddRelu::Mask => it.for_each(|((o, &a), &b)| *o = if a > 0.0 { b } else { 0.0 }),
    }
}

/// `out = act(out + r)` in place: a residual added in a convolution's epilogue
/// ([`super::conv2d_affine_residual`]).
#[multiversion(targets = "simd")]
pub(super) fn add_act_in_place(out: &mut [f32], r: &[f32], act: Activation) {
    match act {
        Activation::None => out.iter_mut().zip(r).for_each(|(o, &r)| *o += r),
        Activation::Relu => out
            .iter_mut()
            .zip(r)
            .for_each(|(o, &r)| *o = (*o + r).max(0.0)),
        Activation::Relu6 => {
            let f = |v: f32| Activation::Relu6.apply(v);
            out.iter_mut().zip(r).for_each(|(o, &r)| *o = f(*o + r))
        }
    }
}

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        match self {
            AddRelu::Forward => "tarun-add-relu",
            AddRelu::Mask => "tarun-add-relu-grad",
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
        if a.len() != b.len() {
            candle_core::bail!("{}: {} and {} elements", self.name(), a.len(), b.len());
        }
        let out = par_filled(a.len(), CHUNK, |i, o| {
            let at = i * CHUNK..i * CHUNK + o.len();
            chunk(self, o, &a[at.clone()], &b[at])
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        match self {
            AddRelu::Forward => super::cuda::add_relu((s1, l1), (s2, l2)),
            AddRelu::Mask => super::cuda::relu_mask((s1, l1), (s2, l2)),
        }
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        candle_bwd2(self, a, b, y, grad)
    }
}

impl Backward for AddRelu {
    fn backward(
        &self,
        _inputs: &[Tensor],
        y: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let g = y.apply_op2_no_bwd(&grad.contiguous()?, &AddRelu::Mask)?;
        Ok(needs.iter().map(|&n| n.then(|| g.clone())).collect())
    }
}
