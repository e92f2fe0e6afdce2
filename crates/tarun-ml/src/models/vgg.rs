//! VGG-11 with batch norm (docs/study.md §2.2).
//!
//! Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
//! (ICLR 2015), configuration "A", as torchvision's `vgg11_bn` builds it, with only the last
//! classifier layer replaced (so it keeps PyTorch's default init). Not adapted to 32x32: the five
//! pools leave a 1x1 map that `AdaptiveAvgPool2d((7, 7))` replicates into 7x7, so the first linear
//! layer stays 25,088 wide and the task-vector tensor shapes match upstream.

use candle_core::{D, Result, Tensor};

use super::ModelError;
use super::layers::{
    BatchNorm2d, Conv2d, ConvSpec, Ctx, Linear, WeightInit, conv_bn, dropout, max_pool2x2, param,
};
use super::scale;
use super::store::Builder;
use crate::kernels::Activation;

/// Configuration "A": channel counts, with `None` for a 2x2 max-pool.
const CFG_A: [Option<usize>; 13] = [
    Some(64),
    None,
    Some(128),
    None,
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    None,
];

/// Side of the adaptive average pool's output.
const POOL: usize = 7;
const DROPOUT: f64 = 0.5;

enum Feature {
    ConvBnRelu(Conv2d, BatchNorm2d),
    MaxPool,
}

/// torchvision's `VGG` with `make_layers(cfg["A"], batch_norm=True)`.
pub(crate) struct Vgg11Bn {
    features: Vec<Feature>,
    fc0: Linear,
    fc3: Linear,
    fc6: Linear,
}

impl Vgg11Bn {
    pub fn new(
        b: &mut Builder,
        width: f64,
        num_classes: usize,
    ) -> std::result::Result<Self, ModelError> {
        let mut features = Vec::with_capacity(CFG_A.len());
        let (mut idx, mut c_in) = (0, 3);
        for entry in CFG_A {
            match entry {
                Some(c) => {
                    let c_out = scale(c, width);
                    let spec = ConvSpec {
                        c_in,
                        c_out,
                        kernel: 3,
                        stride: 1,
                        padding: 1,
                        groups: 1,
                        bias: true,
                        init: WeightInit::Torchvision,
                    };
                    let conv = Conv2d::new(b, &format!("features.{idx}"), &spec)?;
                    let bn = BatchNorm2d::new(b, &format!("features.{}", idx + 1), c_out)?;
                    features.push(Feature::ConvBnRelu(conv, bn));
                    // conv, bn and relu each take an index in the Sequential.
                    idx += 3;
                    c_in = c_out;
                }
                None => {
                    features.push(Feature::MaxPool);
                    idx += 1;
                }
            }
        }
        let hidden = scale(4096, width);
        let tv = WeightInit::Torchvision;
        let fc0 = Linear::new(b, "classifier.0", c_in * POOL * POOL, hidden, tv)?;
        let fc3 = Linear::new(b, "classifier.3", hidden, hidden, tv)?;
        let fc6 = Linear::new(
            b,
            "classifier.6",
            hidden,
            num_classes,
            WeightInit::PytorchDefault,
        )?;
        Ok(Self {
            features,
            fc0,
            fc3,
            fc6,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let mut y = x.clone();
        for f in &self.features {
            y = match f {
                Feature::ConvBnRelu(conv, bn) => conv_bn(conv, bn, &y, ctx, Activation::Relu)?,
                Feature::MaxPool => match ctx.tape {
                    Some(tape) => crate::kernels::max_pool2x2(&y, tape)?,
                    None => max_pool2x2(&y)?,
                },
            };
        }
        let y = ctx.body_output(&y)?;
        let y = dropout(&self.first_linear(&y, ctx)?.relu()?, DROPOUT, ctx)?;
        let y = dropout(&self.fc3.forward(&y)?.relu()?, DROPOUT, ctx)?;
        self.fc6.forward(&y)
    }

    /// Adaptive 7x7 average pool, flatten and `classifier.0`.
    ///
    /// When the map is 1x1 (every 32x32 input), the pool only replicates each channel 49 times, so
    /// `W · replicate(x)` equals `(W summed over its 49 replicated columns) · x`. Summing the
    /// weight reads it once instead of a [B, 25088] x [25088, 4096] product, and the gradient with
    /// respect to the full 25,088-wide weight is unchanged (the sum's backward broadcasts it).
    /// On a tape (training on tarun's kernels) the fold is recorded there
    /// ([`crate::kernels::fold_columns`]), which builds its weight gradient in one buffer.
    fn first_linear(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if h == 1 && w == 1 {
            let out = self.fc0.weight.dim(0)?;
            let weight = param(&self.fc0.weight);
            let folded = match ctx.tape {
                Some(tape) => {
                    tape.output(&crate::kernels::fold_columns(&weight, POOL * POOL, tape)?)?
                }
                #[cfg(feature = "cuda")]
                None if weight.device().is_cuda() && super::layers::NO_GRAD.get() => {
                    crate::kernels::cuda_fold_columns(&weight, POOL * POOL, false)?
                }
                None => weight.reshape((out, c, POOL * POOL))?.sum(D::Minus1)?,
            };
            let x = x.reshape((b, c))?;
            return x
                .matmul(&folded.t()?)?
                .broadcast_add(&param(&self.fc0.bias));
        }
        let pooled = adaptive_avg_pool(x, POOL)?.reshape((b, c * POOL * POOL))?;
        self.fc0.forward(&pooled)
    }
}

/// `AdaptiveAvgPool2d((out, out))`: cell i averages rows floor(i*H/out) .. ceil((i+1)*H/out).
fn adaptive_avg_pool(x: &Tensor, out: usize) -> Result<Tensor> {
    let pool_axis = |x: &Tensor, axis: usize| -> Result<Tensor> {
        let n = x.dim(axis)?;
        let cells = (0..out)
            .map(|i| {
                let (start, end) = (i * n / out, ((i + 1) * n).div_ceil(out));
                x.narrow(axis, start, end - start)?.mean_keepdim(axis)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&cells, axis)
    };
    pool_axis(&pool_axis(x, 2)?, 3)
}
