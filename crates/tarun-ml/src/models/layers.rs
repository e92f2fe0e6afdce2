//! The building blocks shared by the three networks: convolution (dense and depthwise), batch norm,
//! linear and dropout, each with PyTorch's semantics.
//!
//! Batch norm follows Ioffe & Szegedy, "Batch Normalization" (2015), as PyTorch implements it:
//! training normalises with the biased batch variance and folds the *unbiased* one into
//! `running_var` with momentum 0.1; evaluation uses the running statistics.

use candle_core::{D, DType, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ModelError;
use super::store::{Builder, Init};
use crate::kernels::{self, Activation};

/// Batch-norm epsilon and momentum, PyTorch's defaults (docs/study.md §2).
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// How a forward pass behaves; see [`super::Mode`] for the public form.
pub(crate) struct Ctx<'a> {
    /// Normalise with batch statistics and update the running ones.
    pub batch_stats: bool,
    /// Drop activations; `None` disables dropout.
    pub dropout_rng: Option<&'a mut ChaCha8Rng>,
    /// Where the body's ops record their backward instead of Candle's graph (training on
    /// tarun's kernels; see [`kernels::Tape`]).
    pub tape: Option<&'a kernels::Tape>,
}

impl Ctx<'_> {
    /// The body's output `y` as the head's input: on a tape, the variable that hands the head's
    /// gradient back to it ([`kernels::Tape::output`]).
    pub fn body_output(&self, y: &Tensor) -> Result<Tensor> {
        match self.tape {
            Some(t) => t.output(y),
            None => Ok(y.clone()),
        }
    }
}

thread_local! {
    /// Set while [`no_grad`] runs: parameters enter the forward pass detached.
    pub(crate) static NO_GRAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every parameter and buffer detached as the layers read it ([`param`]), so that
/// no op records a backward graph. Candle records one whenever an input is a variable, and the
/// graph keeps every intermediate activation alive until the output is dropped: an inference
/// pass then held all of them at once and allocated each afresh. Inside, each activation is
/// freed as soon as the next layer has read it.
pub(crate) fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD.set(self.0);
        }
    }
    let _restore = Restore(NO_GRAD.replace(true));
    f()
}

/// A parameter or buffer as a forward pass uses it: itself, or detached inside [`no_grad`].
pub(crate) fn param(t: &Tensor) -> Tensor {
    if NO_GRAD.get() { t.detach() } else { t.clone() }
}

/// How the initial weights of a conv or linear layer are drawn.
#[derive(Clone, Copy)]
pub(crate) enum WeightInit {
    /// torchvision's explicit init (kaiming-normal fan-out for convs, N(0, 0.01) for linears),
    /// with zero biases.
    Torchvision,
    /// PyTorch's default layer init, kept by the layers the study replaces after construction.
    PytorchDefault,
}

/// A 2-D convolution with square kernel, symmetric padding and optional bias.
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    depthwise: bool,
}

/// Shape and options of a [`Conv2d`].
pub(crate) struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// `groups == c_in == c_out` (depthwise) or 1.
    pub groups: usize,
    pub bias: bool,
    pub init: WeightInit,
}

impl Conv2d {
    pub fn new(
        b: &mut Builder,
        prefix: &str,
        s: &ConvSpec,
    ) -> std::result::Result<Self, ModelError> {
        let shape = [s.c_out, s.c_in / s.groups, s.kernel, s.kernel];
        let fan_in = s.c_in / s.groups * s.kernel * s.kernel;
        let (w_init, b_init) = match s.init {
            WeightInit::Torchvision => (Init::KaimingNormalFanOut, Init::Const(0.0)),
            WeightInit::PytorchDefault => (
                Init::DefaultUniform { fan_in },
                Init::DefaultUniform { fan_in },
            ),
        };
        let weight = b.param(format!("{prefix}.weight"), &shape, w_init)?;
        let bias = if s.bias {
            Some(b.param(format!("{prefix}.bias"), &[s.c_out], b_init)?)
        } else {
            None
        };
        let depthwise = s.groups > 1;
        debug_assert!(!depthwise || (s.groups == s.c_in && s.groups == s.c_out));
        Ok(Self {
            weight,
            bias,
            stride: s.stride,
            padding: s.padding,
            depthwise,
        })
    }

    /// The convolution (and bias), recorded on `tape` when given (tarun's kernels only).
    pub fn forward(&self, x: &Tensor, tape: Option<&kernels::Tape>) -> Result<Tensor> {
        let weight = &param(&self.weight);
        let (stride, padding) = (self.stride, self.padding);
        let y = match (use_kernels(x), self.depthwise) {
            (true, true) => kernels::depthwise_conv2d_on(x, weight, stride, padding, tape)?,
            (true, false) => kernels::conv2d_on(x, weight, stride, padding, tape)?,
            (false, true) => {
                let groups = x.dim(1)?;
                x.conv2d(weight, self.padding, self.stride, 1, groups)?
            }
            (false, false) => x.conv2d(weight, self.padding, self.stride, 1, 1)?,
        };
        match &self.bias {
            Some(bias) if use_kernels(x) => kernels::add_channel_bias_on(&y, &param(bias), tape),
            Some(bias) => y.broadcast_add(&param(bias).reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// `act(bn(conv(x)))`. Inside [`no_grad`] with the running statistics, on tarun's kernels, a
/// convolution's batch norm (and bias) is folded into it ([`kernels::conv2d_affine`],
/// [`kernels::depthwise_conv2d_affine`]):
/// each output is finished as the convolution writes it, instead of in a second pass over a
/// new activation.
pub(crate) fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    x: &Tensor,
    ctx: &Ctx,
    act: Activation,
) -> Result<Tensor> {
    if NO_GRAD.get() && !ctx.batch_stats && use_kernels(x) && x.device().is_cpu() {
        let (scale, shift) = bn.running_affine(conv.bias.as_ref())?;
        let weight = param(&conv.weight);
        let (stride, padding, affine) = (conv.stride, conv.padding, (&scale, &shift));
        return if conv.depthwise {
            kernels::depthwise_conv2d_affine(x, &weight, stride, padding, affine, act)
        } else {
            kernels::conv2d_affine(x, &weight, stride, padding, affine, act)
        };
    }
    bn.forward_act(&conv.forward(x, ctx.tape)?, ctx, act)
}

/// `relu(bn(conv(x)) + identity)`, ResNet's block exit. For inference on tarun's kernels (as in
/// [`conv_bn`]) the identity is added in the convolution's epilogue
/// ([`kernels::conv2d_affine_residual`]) instead of in a pass over a new activation.
pub(crate) fn conv_bn_add_relu(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    x: &Tensor,
    identity: &Tensor,
    ctx: &Ctx,
) -> Result<Tensor> {
    if NO_GRAD.get() && !ctx.batch_stats && use_kernels(x) && x.device().is_cpu() && !conv.depthwise
    {
        let (scale, shift) = bn.running_affine(conv.bias.as_ref())?;
        let geometry = (conv.stride, conv.padding);
        let weight = param(&conv.weight);
        return kernels::conv2d_affine_residual(
            x,
            &weight,
            geometry,
            (&scale, &shift),
            identity,
            Activation::Relu,
        );
    }
    let y = conv_bn(conv, bn, x, ctx, Activation::None)?;
    if use_kernels(x) {
        kernels::add_relu_on(&y, identity, ctx.tape)
    } else {
        (y + identity)?.relu()
    }
}

/// Whether tarun's kernels run this op: on the CPU and on CUDA GPUs (cuDNN and tarun's own GPU
/// kernels), unless `TARUN_KERNELS=candle`. The epilogues folded into a convolution for
/// inference exist on the CPU only; on a GPU the batch norm after it is one more pass.
pub(crate) fn use_kernels(x: &Tensor) -> bool {
    (x.device().is_cpu() || x.device().is_cuda())
        && super::Kernels::selected() == super::Kernels::Tarun
}

/// `nn.BatchNorm2d` with affine parameters and tracked running statistics.
pub(crate) struct BatchNorm2d {
    name: String,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
}

impl BatchNorm2d {
    pub fn new(b: &mut Builder, prefix: &str, c: usize) -> std::result::Result<Self, ModelError> {
        Ok(Self {
            name: prefix.to_string(),
            weight: b.param(format!("{prefix}.weight"), &[c], Init::Const(1.0))?,
            bias: b.param(format!("{prefix}.bias"), &[c], Init::Const(0.0))?,
            running_mean: b.buffer(
                format!("{prefix}.running_mean"),
                &[c],
                DType::F32,
                Init::Const(0.0),
            )?,
            running_var: b.buffer(
                format!("{prefix}.running_var"),
                &[c],
                DType::F32,
                Init::Const(1.0),
            )?,
            num_batches_tracked: b.buffer(
                format!("{prefix}.num_batches_tracked"),
                &[],
                DType::I64,
                Init::Const(0.0),
            )?,
        })
    }

    /// Batch norm followed by `act`, fused into one op by tarun's kernels.
    pub fn forward_act(&self, x: &Tensor, ctx: &Ctx, act: Activation) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let n = b * h * w;
        if ctx.batch_stats && n < 2 {
            candle_core::bail!(
                "batch norm {}: expected more than 1 value per channel when training",
                self.name
            );
        }
        if !use_kernels(x) {
            let y = self.forward_stock(x, ctx)?;
            return match act {
                Activation::None => Ok(y),
                Activation::Relu => y.relu(),
                Activation::Relu6 => relu6(&y),
            };
        }
        let stats = if ctx.batch_stats {
            let stats = kernels::batch_norm_stats(x)?;
            #[cfg(feature = "cuda")]
            if x.device().is_cuda() {
                // One kernel for what is a dozen tiny ops below.
                let op = RunningUpdate {
                    running_var: self.running_var.as_tensor().clone(),
                    batches: self.num_batches_tracked.as_tensor().clone(),
                    momentum: BN_MOMENTUM,
                    unbias: n as f64 / (n - 1) as f64,
                };
                self.running_mean.as_tensor().inplace_op2(&stats, &op)?;
                return self.normalise(x, ctx, act, &stats);
            }
            self.update_running(&stats.get(0)?, &stats.get(1)?, n)?;
            stats
        } else {
            Tensor::stack(
                &[
                    param(self.running_mean.as_tensor()),
                    param(self.running_var.as_tensor()),
                ],
                0,
            )?
        };
        self.normalise(x, ctx, act, &stats)
    }

    /// The fused normalisation with these `[mean; var]` statistics.
    fn normalise(&self, x: &Tensor, ctx: &Ctx, act: Activation, stats: &Tensor) -> Result<Tensor> {
        let (weight, bias) = (param(&self.weight), param(&self.bias));
        let options = (BN_EPS, act, ctx.batch_stats);
        kernels::batch_norm_on(x, (&weight, &bias), stats, options, ctx.tape)
    }

    /// Evaluation mode as one scale and shift per channel, with a preceding bias `b` folded in:
    /// `bn(y + b) = y * scale + shift`, `scale = gamma / sqrt(var + eps)`,
    /// `shift = beta + (b - mean) * scale`.
    fn running_affine(&self, conv_bias: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let var = param(self.running_var.as_tensor());
        let scale = ((var + BN_EPS)?.sqrt()?.recip()? * param(&self.weight))?;
        let mut centre = param(self.running_mean.as_tensor()).neg()?;
        if let Some(b) = conv_bias {
            centre = (centre + param(b))?;
        }
        let shift = ((centre * &scale)? + param(&self.bias))?;
        Ok((scale, shift))
    }

    /// The same with Candle's stock element-wise ops.
    fn forward_stock(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        // [B, C, HW] keeps every reduction on a contiguous last axis, candle's fast path.
        let x3 = x.reshape((b, c, h * w))?;
        let y = if ctx.batch_stats {
            let n = b * h * w;
            let mean = (x3.sum_keepdim(2)?.sum_keepdim(0)? / n as f64)?;
            let centered = x3.broadcast_sub(&mean)?;
            let var = (centered.sqr()?.sum_keepdim(2)?.sum_keepdim(0)? / n as f64)?;
            self.update_running(&mean, &var, n)?;
            let scale = (var + BN_EPS)?
                .sqrt()?
                .recip()?
                .broadcast_mul(&self.weight.reshape((1, c, 1))?)?;
            centered
                .broadcast_mul(&scale)?
                .broadcast_add(&self.bias.reshape((1, c, 1))?)?
        } else {
            // Fold the running statistics into one scale and shift per channel.
            let scale = (param(self.running_var.as_tensor()) + BN_EPS)?
                .sqrt()?
                .recip()?
                .mul(&param(&self.weight))?;
            let shift = (param(&self.bias) - param(self.running_mean.as_tensor()).mul(&scale)?)?;
            x3.broadcast_mul(&scale.reshape((1, c, 1))?)?
                .broadcast_add(&shift.reshape((1, c, 1))?)?
        };
        y.reshape((b, c, h, w))
    }

    /// running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.
    fn update_running(&self, mean: &Tensor, biased_var: &Tensor, n: usize) -> Result<()> {
        let m = BN_MOMENTUM;
        let mean = mean.detach().flatten_all()?;
        let unbiased = (biased_var.detach().flatten_all()? * (n as f64 / (n - 1) as f64))?;
        let rm = ((self.running_mean.as_tensor().detach() * (1.0 - m))? + (mean * m)?)?;
        let rv = ((self.running_var.as_tensor().detach() * (1.0 - m))? + (unbiased * m)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        // Counted on the device: reading it back would wait for the GPU at every layer.
        let count = self.num_batches_tracked.as_tensor().detach();
        self.num_batches_tracked
            .set(&count.add(&count.ones_like()?)?)
    }
}

/// [`BatchNorm2d::update_running`] as one GPU kernel on the running mean (the op's
/// destination), with the running variance and the batch counter updated beside it.
#[cfg(feature = "cuda")]
struct RunningUpdate {
    running_var: Tensor,
    batches: Tensor,
    momentum: f64,
    unbias: f64,
}

#[cfg(feature = "cuda")]
impl candle_core::InplaceOp2 for RunningUpdate {
    fn name(&self) -> &'static str {
        "tarun-batch-norm-running"
    }

    fn cpu_fwd(
        &self,
        _: &mut candle_core::CpuStorage,
        _: &candle_core::Layout,
        _: &candle_core::CpuStorage,
        _: &candle_core::Layout,
    ) -> Result<()> {
        candle_core::bail!("tarun-batch-norm-running: GPU only")
    }

    fn cuda_fwd(
        &self,
        mean: &mut candle_core::CudaStorage,
        ml: &candle_core::Layout,
        stats: &candle_core::CudaStorage,
        sl: &candle_core::Layout,
    ) -> Result<()> {
        let options = (self.momentum, self.unbias);
        kernels::cuda_bn_running(
            (mean, ml),
            (stats, sl),
            &self.running_var,
            &self.batches,
            options,
        )
    }
}

/// `nn.Linear`.
pub(crate) struct Linear {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
}

impl Linear {
    pub fn new(
        b: &mut Builder,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        init: WeightInit,
    ) -> std::result::Result<Self, ModelError> {
        let (w_init, b_init) = match init {
            WeightInit::Torchvision => (Init::Normal { std: 0.01 }, Init::Const(0.0)),
            WeightInit::PytorchDefault => (
                Init::DefaultUniform { fan_in: c_in },
                Init::DefaultUniform { fan_in: c_in },
            ),
        };
        Ok(Self {
            weight: b.param(format!("{prefix}.weight"), &[c_out, c_in], w_init)?,
            bias: b.param(format!("{prefix}.bias"), &[c_out], b_init)?,
        })
    }

    /// `x W^T + b`, computed as `(W x^T)^T` so that the weight's gradient comes out of
    /// backward contiguous in the weight's own `[out, in]` layout. With `x.matmul(W^T)` it came
    /// out transposed, and Candle added it into the gradient store element by element through a
    /// strided view: on VGG-11-BN's 25,088 x 4,096 layer that add cost more than the product.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        param(&self.weight)
            .matmul(&x.t()?)?
            .t()?
            .broadcast_add(&param(&self.bias))
    }
}

/// Inverted dropout: zero each element with probability `p` and scale the survivors by 1/(1-p).
///
/// Each call takes one seed from the network's own seeded RNG (candle's CPU `rand` is not
/// seedable) and draws its mask from that seed with a counter-based generator, on the device
/// (`kernels::dropout_mask`), so a fixed seed reproduces the same masks on every device.
pub(crate) fn dropout(x: &Tensor, p: f64, ctx: &mut Ctx) -> Result<Tensor> {
    let Some(rng) = ctx.dropout_rng.as_deref_mut() else {
        return Ok(x.clone());
    };
    let mask = crate::kernels::dropout_mask(x.shape(), p, rng.random::<u64>(), x.device())?;
    x.mul(&mask)
}

/// Global average pooling: [B, C, H, W] -> [B, C].
pub(crate) fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h * w))?.mean(D::Minus1)
}

/// 2x2 max-pool with stride 2 over even-sized maps, as a reshape and two max-reductions.
///
/// Candle's own `max_pool2d` backward multiplies the gradient by the fraction of maxima in each
/// window (1/4 for a unique maximum) instead of dividing by their count, which shrinks VGG's
/// gradients 4x per pool. A reduction's backward passes the full gradient to the maximum.
pub(crate) fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool2x2 needs even spatial sizes, got {h}x{w}");
    }
    // Without a backward (inference), one kernel on the GPU instead of two strided reductions.
    #[cfg(feature = "cuda")]
    if NO_GRAD.get() && x.device().is_cuda() && use_kernels(x) {
        return crate::kernels::cuda_max_pool2x2(x);
    }
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}

/// ReLU6, `min(max(x, 0), 6)`.
pub(crate) fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu()?.minimum(6f32)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use rand::SeedableRng;

    use super::*;
    use crate::models::store::Source;

    fn bn(c: usize) -> BatchNorm2d {
        let mut b = Builder::new(Source::Init { seed: 0 }, &Device::Cpu);
        BatchNorm2d::new(&mut b, "bn", c).unwrap()
    }

    fn ctx(train: bool) -> Ctx<'static> {
        Ctx {
            batch_stats: train,
            dropout_rng: None,
            tape: None,
        }
    }

    /// x[:, 0] = {1, 2, 3, 6}, x[:, 1] = {0, 0, 4, 4}: mean 3 and 2, biased variance 3.5 and 4,
    /// unbiased 14/3 and 16/3.
    fn bn_input() -> Tensor {
        let v = [1f32, 2., 0., 0., 3., 6., 4., 4.];
        Tensor::from_slice(&v, (2, 2, 1, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn batch_norm_train_normalises_with_biased_variance_and_tracks_unbiased() {
        let layer = bn(2);
        let y = layer
            .forward_act(&bn_input(), &ctx(true), Activation::None)
            .unwrap();
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let (s0, s1) = ((3.5f32 + 1e-5).sqrt(), (4f32 + 1e-5).sqrt());
        let want = [
            -2. / s0,
            -1. / s0,
            -2. / s1,
            -2. / s1,
            0.,
            3. / s0,
            2. / s1,
            2. / s1,
        ];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{y:?}");
        }
        let rm: Vec<f32> = layer.running_mean.as_tensor().to_vec1().unwrap();
        let rv: Vec<f32> = layer.running_var.as_tensor().to_vec1().unwrap();
        assert!(
            (rm[0] - 0.3).abs() < 1e-6 && (rm[1] - 0.2).abs() < 1e-6,
            "{rm:?}"
        );
        let want_rv = [0.9 + 0.1 * 14. / 3., 0.9 + 0.1 * 16. / 3.];
        assert!(
            (rv[0] - want_rv[0]).abs() < 1e-6 && (rv[1] - want_rv[1]).abs() < 1e-6,
            "{rv:?}"
        );
        let n: i64 = layer.num_batches_tracked.as_tensor().to_scalar().unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn batch_norm_eval_uses_running_statistics_and_changes_nothing() {
        let layer = bn(2);
        layer
            .running_mean
            .set(&Tensor::new(&[1f32, -1.], &Device::Cpu).unwrap())
            .unwrap();
        layer
            .running_var
            .set(&Tensor::new(&[4f32, 0.25], &Device::Cpu).unwrap())
            .unwrap();
        let y = layer
            .forward_act(&bn_input(), &ctx(false), Activation::None)
            .unwrap();
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let (s0, s1) = ((4f32 + 1e-5).sqrt(), (0.25f32 + 1e-5).sqrt());
        let want = [
            0. / s0,
            1. / s0,
            1. / s1,
            1. / s1,
            2. / s0,
            5. / s0,
            5. / s1,
            5. / s1,
        ];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{y:?}");
        }
        let n: i64 = layer.num_batches_tracked.as_tensor().to_scalar().unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn batch_norm_train_rejects_one_value_per_channel() {
        let x = Tensor::ones((1, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
        let err = bn(2)
            .forward_act(&x, &ctx(true), Activation::None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1 value per channel"), "{err}");
    }

    fn ramp(shape: (usize, usize, usize, usize), k: f64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v: Vec<f32> = (0..n).map(|i| (0.7 * i as f64 + k).sin() as f32).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn max_pool_gives_the_whole_gradient_to_the_maximum() {
        let x = Var::from_tensor(&ramp((1, 2, 4, 4), 0.3)).unwrap();
        let y = max_pool2x2(&x).unwrap();
        let reference = x.max_pool2d(2).unwrap();
        let diff = (&y - &reference).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(g.iter().filter(|&&v| v == 1.0).count(), 8);
        assert_eq!(g.iter().filter(|&&v| v == 0.0).count(), 24);
    }

    #[test]
    fn dropout_zeroes_and_rescales_only_with_an_rng() {
        let x = Tensor::ones((1000,), DType::F32, &Device::Cpu).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut train = Ctx {
            batch_stats: true,
            dropout_rng: Some(&mut rng),
            tape: None,
        };
        let y: Vec<f32> = dropout(&x, 0.5, &mut train).unwrap().to_vec1().unwrap();
        assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        assert!((400..600).contains(&zeros), "{zeros}");
        let y: Vec<f32> = dropout(&x, 0.5, &mut ctx(false))
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(y.iter().all(|&v| v == 1.0));
    }
}
