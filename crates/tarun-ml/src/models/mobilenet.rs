//! MobileNetV2 (docs/study.md §2.3).
//!
//! Sandler, Howard, Zhu, Zhmoginov & Chen, "MobileNetV2: Inverted Residuals and Linear
//! Bottlenecks" (CVPR 2018), as torchvision's `mobilenet_v2` builds it: ImageNet strides (not
//! adapted to CIFAR), `width_mult` with `_make_divisible(·, 8)` rounding, Dropout(0.2) and a
//! replaced head that keeps PyTorch's default init.

use candle_core::{Result, Tensor};

use super::ModelError;
use super::layers::{
    BatchNorm2d, Conv2d, ConvSpec, Ctx, Linear, WeightInit, conv_bn, dropout, global_avg_pool,
};
use super::store::Builder;
use crate::kernels::Activation;

/// Inverted-residual settings (expansion t, channels c, repeats n, first stride s).
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];
const DROPOUT: f64 = 0.2;

/// torchvision's `_make_divisible(v, 8)`: round to a multiple of 8, never down by more than 10%.
pub(crate) fn make_divisible(v: f64) -> usize {
    const DIVISOR: usize = 8;
    let rounded = ((v + DIVISOR as f64 / 2.0) as usize / DIVISOR * DIVISOR).max(DIVISOR);
    if (rounded as f64) < 0.9 * v {
        rounded + DIVISOR
    } else {
        rounded
    }
}

/// `Conv2dNormActivation`: conv (no bias), BN, optional ReLU6.
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
    relu6: bool,
}

impl ConvBn {
    /// Registers `{p}.0` (conv) and `{p}.1` (BN), torchvision's layout for `Conv2dNormActivation`.
    fn new(
        b: &mut Builder,
        p: &str,
        spec: ConvSpec,
        relu6: bool,
    ) -> std::result::Result<Self, ModelError> {
        let c_out = spec.c_out;
        let conv = Conv2d::new(b, &format!("{p}.0"), &spec)?;
        let bn = BatchNorm2d::new(b, &format!("{p}.1"), c_out)?;
        Ok(Self { conv, bn, relu6 })
    }

    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let act = if self.relu6 {
            Activation::Relu6
        } else {
            Activation::None
        };
        conv_bn(&self.conv, &self.bn, x, ctx, act)
    }
}

fn spec(c_in: usize, c_out: usize, kernel: usize, stride: usize, groups: usize) -> ConvSpec {
    ConvSpec {
        c_in,
        c_out,
        kernel,
        stride,
        padding: (kernel - 1) / 2,
        groups,
        bias: false,
        init: WeightInit::Torchvision,
    }
}

/// torchvision's `InvertedResidual`: optional 1x1 expand, 3x3 depthwise, 1x1 linear projection.
struct InvertedResidual {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    /// The projection is a bare conv plus BN registered as `conv.{k}` and `conv.{k+1}`.
    project: Conv2d,
    project_bn: BatchNorm2d,
    residual: bool,
}

impl InvertedResidual {
    fn new(
        b: &mut Builder,
        p: &str,
        (c_in, c_out, stride, t): (usize, usize, usize, usize),
    ) -> std::result::Result<Self, ModelError> {
        let hidden = (c_in as f64 * t as f64).round() as usize;
        let mut k = 0;
        let expand = if t != 1 {
            k += 1;
            Some(ConvBn::new(
                b,
                &format!("{p}.conv.0"),
                spec(c_in, hidden, 1, 1, 1),
                true,
            )?)
        } else {
            None
        };
        let dw = spec(hidden, hidden, 3, stride, hidden);
        let depthwise = ConvBn::new(b, &format!("{p}.conv.{k}"), dw, true)?;
        let project = Conv2d::new(
            b,
            &format!("{p}.conv.{}", k + 1),
            &spec(hidden, c_out, 1, 1, 1),
        )?;
        let project_bn = BatchNorm2d::new(b, &format!("{p}.conv.{}", k + 2), c_out)?;
        let residual = stride == 1 && c_in == c_out;
        Ok(Self {
            expand,
            depthwise,
            project,
            project_bn,
            residual,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let y = match &self.expand {
            Some(e) => e.forward(x, ctx)?,
            None => x.clone(),
        };
        let y = self.depthwise.forward(&y, ctx)?;
        let y = conv_bn(&self.project, &self.project_bn, &y, ctx, Activation::None)?;
        if self.residual {
            crate::kernels::add(x, &y, ctx.tape)
        } else {
            Ok(y)
        }
    }
}

/// torchvision's `MobileNetV2`.
pub(crate) struct MobileNetV2 {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    last: ConvBn,
    classifier: Linear,
}

impl MobileNetV2 {
    pub fn new(
        b: &mut Builder,
        width: f64,
        num_classes: usize,
    ) -> std::result::Result<Self, ModelError> {
        let mut c_in = make_divisible(32.0 * width);
        let last_channel = make_divisible(1280.0 * width.max(1.0));
        let stem = ConvBn::new(b, "features.0", spec(3, c_in, 3, 2, 1), true)?;
        let mut blocks = Vec::with_capacity(17);
        for (t, c, n, s) in SETTINGS {
            let c_out = make_divisible(c as f64 * width);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let p = format!("features.{}", blocks.len() + 1);
                blocks.push(InvertedResidual::new(b, &p, (c_in, c_out, stride, t))?);
                c_in = c_out;
            }
        }
        let p = format!("features.{}", blocks.len() + 1);
        let last = ConvBn::new(b, &p, spec(c_in, last_channel, 1, 1, 1), true)?;
        let classifier = Linear::new(
            b,
            "classifier.1",
            last_channel,
            num_classes,
            WeightInit::PytorchDefault,
        )?;
        Ok(Self {
            stem,
            blocks,
            last,
            classifier,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let mut y = self.stem.forward(x, ctx)?;
        for block in &self.blocks {
            y = block.forward(&y, ctx)?;
        }
        let y = self.last.forward(&y, ctx)?;
        let y = global_avg_pool(&ctx.body_output(&y)?)?;
        self.classifier.forward(&dropout(&y, DROPOUT, ctx)?)
    }
}
