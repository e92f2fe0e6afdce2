//! ResNet-18 with the CIFAR stem (docs/study.md §2.1).
//!
//! He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016), as torchvision's
//! `resnet18` builds it, with the two changes the study makes for 32x32 inputs: the stem is a 3x3
//! stride-1 convolution (PyTorch default init, since it replaces a layer after torchvision's init
//! loop ran) and the max-pool is removed. The new `fc` head also keeps PyTorch's default init.

use candle_core::{Result, Tensor};

use super::ModelError;
use super::layers::{
    BatchNorm2d, Conv2d, ConvSpec, Ctx, Linear, WeightInit, conv_bn, conv_bn_add_relu,
    global_avg_pool,
};
use super::scale;
use super::store::Builder;
use crate::kernels::Activation;

/// torchvision's `BasicBlock` (expansion 1).
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

fn conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, init: WeightInit) -> ConvSpec {
    ConvSpec {
        c_in,
        c_out,
        kernel,
        stride,
        padding: kernel / 2,
        groups: 1,
        bias: false,
        init,
    }
}

impl BasicBlock {
    fn new(
        b: &mut Builder,
        p: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
    ) -> std::result::Result<Self, ModelError> {
        let tv = WeightInit::Torchvision;
        // Built in torchvision's registration order, which is the state-dict order.
        let conv1 = Conv2d::new(b, &format!("{p}.conv1"), &conv(c_in, c_out, 3, stride, tv))?;
        let bn1 = BatchNorm2d::new(b, &format!("{p}.bn1"), c_out)?;
        let conv2 = Conv2d::new(b, &format!("{p}.conv2"), &conv(c_out, c_out, 3, 1, tv))?;
        let bn2 = BatchNorm2d::new(b, &format!("{p}.bn2"), c_out)?;
        let downsample = if stride != 1 || c_in != c_out {
            let spec = conv(c_in, c_out, 1, stride, tv);
            let ds_conv = Conv2d::new(b, &format!("{p}.downsample.0"), &spec)?;
            let ds_bn = BatchNorm2d::new(b, &format!("{p}.downsample.1"), c_out)?;
            Some((ds_conv, ds_bn))
        } else {
            None
        };
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let y = conv_bn(&self.conv1, &self.bn1, x, ctx, Activation::Relu)?;
        let identity = match &self.downsample {
            Some((c, bn)) => conv_bn(c, bn, x, ctx, Activation::None)?,
            None => x.clone(),
        };
        conv_bn_add_relu(&self.conv2, &self.bn2, &y, &identity, ctx)
    }
}

/// The CIFAR ResNet-18.
pub(crate) struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet18 {
    pub fn new(
        b: &mut Builder,
        width: f64,
        num_classes: usize,
    ) -> std::result::Result<Self, ModelError> {
        let widths = [64, 128, 256, 512].map(|c| scale(c, width));
        let stem = conv(3, widths[0], 3, 1, WeightInit::PytorchDefault);
        let conv1 = Conv2d::new(b, "conv1", &stem)?;
        let bn1 = BatchNorm2d::new(b, "bn1", widths[0])?;
        let mut blocks = Vec::with_capacity(8);
        let mut c_in = widths[0];
        for (stage, &c_out) in widths.iter().enumerate() {
            let stride = if stage == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(
                b,
                &format!("layer{}.0", stage + 1),
                c_in,
                c_out,
                stride,
            )?);
            blocks.push(BasicBlock::new(
                b,
                &format!("layer{}.1", stage + 1),
                c_out,
                c_out,
                1,
            )?);
            c_in = c_out;
        }
        let fc = Linear::new(b, "fc", c_in, num_classes, WeightInit::PytorchDefault)?;
        Ok(Self {
            conv1,
            bn1,
            blocks,
            fc,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let mut y = conv_bn(&self.conv1, &self.bn1, x, ctx, Activation::Relu)?;
        for block in &self.blocks {
            y = block.forward(&y, ctx)?;
        }
        self.fc.forward(&global_avg_pool(&ctx.body_output(&y)?)?)
    }
}
