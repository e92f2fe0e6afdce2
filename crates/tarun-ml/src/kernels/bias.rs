//! A convolution's bias, `x + b` broadcast over an NCHW tensor's channels, as one op.
//!
//! With Candle's `broadcast_add`, the backward sums `dL/dy` over the batch and both spatial axes
//! through a strided reduction, a slow pass over every activation (and every VGG convolution
//! has a bias; docs/performance.md, third round). Here the forward is one pass, the input's
//! gradient is
//! `dL/dy` itself, and the bias's is one vectorised sum per plane, added per channel in `f64`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use multiversion::multiversion;
use rayon::prelude::*;

use super::batchnorm::{bc_hw, plane_sum};
use super::tape::{Backward, Tape, apply2, candle_bwd2};
use super::{channel_planes, f32_data, zeroed};

/// `x + b.reshape((1, C, 1, 1))` for a contiguous f32 NCHW `x` and a `[C]` bias.
pub fn add_channel_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    add_channel_bias_on(x, b, None)
}

/// [`add_channel_bias`], recorded on `tape` when given instead of on Candle's graph.
pub fn add_channel_bias_on(x: &Tensor, b: &Tensor, tape: Option<&Tape>) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if b.dims() != [c] {
        candle_core::bail!("tarun-bias: {c} channels, bias {:?}", b.dims());
    }
    apply2(x, b, AddBias, tape)
}

/// `out = inp + b[channel]` over one image's planes (of `hw` elements each). Per image, not per
/// plane: VGG's last maps are 2x2 and 1x1, where a call per plane was all overhead.
#[multiversion(targets = "simd")]
fn image_add(out: &mut [f32], inp: &[f32], b: &[f32], hw: usize) {
    for ((o, x), &v) in out.chunks_exact_mut(hw).zip(inp.chunks_exact(hw)).zip(b) {
        for (o, &x) in o.iter_mut().zip(x) {
            *o = x + v;
        }
    }
}

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "tarun-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (
            f32_data(xs, xl, self.name())?,
            f32_data(bs, bl, self.name())?,
        );
        let (_, c, hw) = bc_hw(xl, self.name())?;
        let mut y = zeroed(x.len());
        if hw * c > 0 {
            y.par_chunks_mut(c * hw)
                .zip(x.par_chunks(c * hw))
                .for_each(|(out, inp)| image_add(out, inp, b, hw));
        }
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::bias_add((xs, xl), (bs, bl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        candle_bwd2(self, x, b, y, grad)
    }
}

impl Backward for AddBias {
    fn backward(
        &self,
        _inputs: &[Tensor],
        _y: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let grad = grad.contiguous()?;
        let db = needs[1]
            .then(|| grad.apply_op1_no_bwd(&ChannelSums))
            .transpose()?;
        Ok(vec![needs[0].then_some(grad), db])
    }
}

/// Per-channel sums of an NCHW tensor over (N, H, W): the bias gradient.
struct ChannelSums;

impl CustomOp1 for ChannelSums {
    fn name(&self) -> &'static str {
        "tarun-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_data(s, l, self.name())?;
        let (b, c, hw) = bc_hw(l, self.name())?;
        let sums: Vec<f32> = (0..c)
            .into_par_iter()
            .map(|ch| channel_planes(g, ch, c, hw, b).map(plane_sum).sum::<f64>() as f32)
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from(c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::channel_sums(s, l)
    }
}
