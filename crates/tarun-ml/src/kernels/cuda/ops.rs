//! Launches of `kernels.cu`'s functions for the custom ops' `cuda_fwd` (on storages) and for the
//! backward passes that run off Candle's graph (on tensors).

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape, Storage, Tensor};
use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};

use super::{REDUCE_THREADS, elementwise, func, storage, view, wrap_err};
use crate::kernels::Activation;
use crate::kernels::batchnorm::bc_hw;

fn act_code(act: Activation) -> i32 {
    match act {
        Activation::None => 0,
        Activation::Relu => 1,
        Activation::Relu6 => 2,
    }
}

fn int(v: usize, op: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{op}: {v} exceeds i32")))
}

/// `(B, C, H*W)` of an NCHW layout as the kernels' `int`s (which index elements in 32 bits).
fn dims(l: &Layout, op: &str) -> Result<(i32, i32, i32)> {
    let (b, c, hw) = bc_hw(l, op)?;
    int(b * c * hw, op)?;
    Ok((int(b, op)?, int(c, op)?, int(hw, op)?))
}

/// What `tarun_channel_partials` sums per channel (`SUMS_*` in kernels.cu).
#[derive(Clone, Copy)]
enum Sums {
    /// `[mean; biased variance]` of x.
    Stats = 0,
    /// Batch norm's `[dgamma; dbeta]` from x, dy, y and the batch statistics.
    BnGrad = 1,
    /// `[sum]` of x.
    Plain = 2,
}

/// Blocks per channel of a reduction over `per_channel` elements in each of `channels`: about
/// 512 blocks in all (a few per multiprocessor of a large GPU), each of at least 4,096
/// elements. A function of the shape alone, so that the order of the sums is too.
fn segments(channels: usize, per_channel: usize) -> usize {
    const BLOCKS: usize = 512;
    const MIN_SEGMENT: usize = 4096;
    BLOCKS
        .div_ceil(channels.max(1))
        .min(per_channel.div_ceil(MIN_SEGMENT))
        .max(1)
}

/// Batch norm's gradient inputs beside x: `(dy, y, stats, eps, activation)`.
type BnGradInputs<'a> = (
    &'a CudaView<'a, f32>,
    &'a CudaView<'a, f32>,
    &'a CudaView<'a, f32>,
    f32,
    i32,
);

/// A per-channel reduction of the NCHW data `x` (`(B, C, HW)`): `rows` x C results.
fn channel_reduce(
    dev: &CudaDevice,
    kind: Sums,
    x: &CudaView<f32>,
    grad: Option<BnGradInputs>,
    (b, c, hw): (i32, i32, i32),
    rows: usize,
) -> Result<CudaSlice<f32>> {
    let (channels, per_channel) = (c as usize, b as usize * hw as usize);
    // SAFETY: the kernels write every row of every channel.
    let mut out = unsafe { dev.alloc::<f32>(rows * channels) }?;
    if channels == 0 {
        return Ok(out);
    }
    let s = segments(channels, per_channel);
    let seg = int(per_channel.div_ceil(s).max(1), "channel sums")?;
    // SAFETY: written by every block before the finishing kernel reads it (with one segment,
    // never read).
    let mut part = unsafe { dev.alloc::<f64>(2 * channels * s) }?;
    let (dy, y, stats, eps, act) = grad.unwrap_or((x, x, x, 0.0, 0));
    let kind = kind as i32;
    let partials = func(dev, "tarun_channel_partials")?;
    let mut launch = partials.builder();
    launch
        .arg(&kind)
        .arg(x)
        .arg(dy)
        .arg(y)
        .arg(stats)
        .arg(&eps)
        .arg(&act);
    launch
        .arg(&b)
        .arg(&c)
        .arg(&hw)
        .arg(&seg)
        .arg(&mut part)
        .arg(&mut out);
    let cfg = LaunchConfig {
        grid_dim: (c as u32, s as u32, 1),
        block_dim: (REDUCE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the argument list matches the kernel's signature; `part` has 2 C S elements,
    // `out` rows x C, and dy, y (x's length) and stats ([2, C]) are read only for BnGrad.
    unsafe { launch.launch(cfg) }.map_err(wrap_err)?;
    if s > 1 {
        let (si, count) = (s as i32, per_channel as f64);
        let finish = func(dev, "tarun_channel_finish")?;
        let mut launch = finish.builder();
        launch
            .arg(&kind)
            .arg(&part)
            .arg(&si)
            .arg(stats)
            .arg(&eps)
            .arg(&c);
        launch.arg(&count).arg(&mut out);
        let cfg = LaunchConfig {
            grid_dim: (channels.div_ceil(256) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: as above; one thread per channel.
        unsafe { launch.launch(cfg) }.map_err(wrap_err)?;
    }
    Ok(out)
}

/// Runs `f` on the data of `inputs` (contiguous f32 CUDA tensors) and returns its output as a
/// tensor of `shape`, off Candle's graph (for backward passes that take more inputs than a
/// custom op has).
pub(crate) fn on_tensors(
    inputs: &[&Tensor],
    shape: impl Into<Shape>,
    op: &str,
    f: impl FnOnce(&CudaDevice, &[CudaView<f32>]) -> Result<CudaSlice<f32>>,
) -> Result<Tensor> {
    let guards: Vec<_> = inputs.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(inputs.len());
    let mut device = None;
    for (storage, layout) in &guards {
        let Storage::Cuda(s) = &**storage else {
            candle_core::bail!("{op}: expects CUDA tensors");
        };
        device.get_or_insert_with(|| s.device().clone());
        views.push(view(s, layout, op)?);
    }
    let Some(dev) = device else {
        candle_core::bail!("{op}: no inputs");
    };
    let out = f(&dev, &views)?;
    drop(views);
    drop(guards);
    let out = Storage::Cuda(storage(&dev, out));
    Ok(Tensor::from_storage(out, shape, BackpropOp::none(), false))
}

/// Per-channel mean and biased variance, `[2, C]`.
pub(crate) fn bn_stats(s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "tarun-batch-norm-stats";
    let dev = s.device();
    let x = view(s, l, OP)?;
    let (b, c, hw) = dims(l, OP)?;
    let out = channel_reduce(dev, Sums::Stats, &x, None, (b, c, hw), 2)?;
    Ok((storage(dev, out), Shape::from((2, c as usize))))
}

/// `act(x * scale + shift)` with the scale and shift from `params` (`[gamma; beta]`) and
/// `stats` (`[mean; var]`).
pub(crate) fn bn_apply(
    (xs, xl): (&CudaStorage, &Layout),
    (ps, pl): (&CudaStorage, &Layout),
    (ss, sl): (&CudaStorage, &Layout),
    eps: f64,
    act: Activation,
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "tarun-batch-norm";
    let dev = xs.device();
    let (x, params, stats) = (view(xs, xl, OP)?, view(ps, pl, OP)?, view(ss, sl, OP)?);
    let (_, c, hw) = dims(xl, OP)?;
    let n = x.len();
    // SAFETY: the kernel writes every element.
    let mut y = unsafe { dev.alloc::<f32>(n) }?;
    if n > 0 {
        let (eps, act, n32) = (eps as f32, act_code(act), int(n, OP)?);
        let f = func(dev, "tarun_bn_apply")?;
        let mut launch = f.builder();
        launch.arg(&x).arg(&mut y).arg(&params).arg(&stats);
        launch.arg(&eps).arg(&act).arg(&c).arg(&hw).arg(&n32);
        // SAFETY: as in `bn_stats`; params and stats are `[2, C]` (checked by the op).
        unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
    }
    Ok((storage(dev, y), xl.shape().clone()))
}

/// Batch norm's backward on (x, params, stats, y) and the output's gradient: `[dx, d params,
/// None]`, each only where `needs` asks (see `batchnorm.rs` for the formulas).
#[allow(
    clippy::too_many_arguments,
    reason = "the op's inputs and its three options"
)]
pub(crate) fn bn_backward(
    [x, params, stats, y, grad]: [&Tensor; 5],
    eps: f64,
    act: Activation,
    batch_stats: bool,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    const OP: &str = "tarun-batch-norm-grad";
    let (b, c, h, w) = x.dims4()?;
    let (bi, ci, hwi) = (int(b, OP)?, int(c, OP)?, int(h * w, OP)?);
    let (eps, act) = (eps as f32, act_code(act));
    let (grad, params, stats) = (
        grad.contiguous()?,
        params.contiguous()?,
        stats.contiguous()?,
    );
    int(x.elem_count(), OP)?;
    let sums = on_tensors(&[x, &grad, y, &stats], (2, c), OP, |dev, v| {
        let inputs = (&v[1], &v[2], &v[3], eps, act);
        channel_reduce(dev, Sums::BnGrad, &v[0], Some(inputs), (bi, ci, hwi), 2)
    })?;
    let dx = if needs.first().copied().unwrap_or(false) {
        let inputs = [x, &grad, y, &params, &stats, &sums];
        Some(on_tensors(&inputs, x.shape().clone(), OP, |dev, v| {
            let n = v[0].len();
            // SAFETY: the kernel writes every element.
            let mut dx = unsafe { dev.alloc::<f32>(n) }?;
            if n > 0 {
                let (bs, n32, count) = (i32::from(batch_stats), int(n, OP)?, (b * h * w) as f32);
                let f = func(dev, "tarun_bn_input_grad")?;
                let mut launch = f.builder();
                launch
                    .arg(&v[0])
                    .arg(&v[1])
                    .arg(&v[2])
                    .arg(&v[3])
                    .arg(&v[4])
                    .arg(&v[5]);
                launch
                    .arg(&mut dx)
                    .arg(&eps)
                    .arg(&act)
                    .arg(&bs)
                    .arg(&ci)
                    .arg(&hwi);
                launch.arg(&n32).arg(&count);
                // SAFETY: the argument list matches the kernel's signature.
                unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
            }
            Ok(dx)
        })?)
    } else {
        None
    };
    let dparams = needs.get(1).copied().unwrap_or(false).then_some(sums);
    Ok(vec![dx, dparams, None])
}

/// A kernel over two equally long inputs and one output of the first input's shape.
fn binary(
    kernel: &str,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
    op: &str,
) -> Result<(CudaStorage, Shape)> {
    let dev = s1.device();
    let (a, b) = (view(s1, l1, op)?, view(s2, l2, op)?);
    if a.len() != b.len() {
        candle_core::bail!("{op}: {} and {} elements", a.len(), b.len());
    }
    let n = a.len();
    // SAFETY: the kernel writes every element.
    let mut out = unsafe { dev.alloc::<f32>(n) }?;
    if n > 0 {
        let n32 = int(n, op)?;
        let f = func(dev, kernel)?;
        let mut launch = f.builder();
        launch.arg(&a).arg(&b).arg(&mut out).arg(&n32);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
    }
    Ok((storage(dev, out), l1.shape().clone()))
}

/// `max(a + b, 0)`.
pub(crate) fn add_relu(
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    binary("tarun_add_relu", a, b, "tarun-add-relu")
}

/// `g` where `y > 0`, else 0.
pub(crate) fn relu_mask(
    y: (&CudaStorage, &Layout),
    g: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    binary("tarun_relu_mask", y, g, "tarun-add-relu-grad")
}

/// `x + bias[channel]`.
pub(crate) fn bias_add(
    (xs, xl): (&CudaStorage, &Layout),
    (bs, bl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "tarun-bias";
    let dev = xs.device();
    let (x, bias) = (view(xs, xl, OP)?, view(bs, bl, OP)?);
    let (_, c, hw) = dims(xl, OP)?;
    let n = x.len();
    // SAFETY: the kernel writes every element.
    let mut y = unsafe { dev.alloc::<f32>(n) }?;
    if n > 0 {
        let n32 = int(n, OP)?;
        let f = func(dev, "tarun_bias_add")?;
        let mut launch = f.builder();
        launch
            .arg(&x)
            .arg(&bias)
            .arg(&mut y)
            .arg(&c)
            .arg(&hw)
            .arg(&n32);
        // SAFETY: the argument list matches the kernel's signature; `bias` has C elements.
        unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
    }
    Ok((storage(dev, y), xl.shape().clone()))
}

/// Per-channel sums over (N, H, W), `[C]`.
pub(crate) fn channel_sums(s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "tarun-bias-grad";
    let dev = s.device();
    let g = view(s, l, OP)?;
    let (b, c, hw) = dims(l, OP)?;
    let out = channel_reduce(dev, Sums::Plain, &g, None, (b, c, hw), 1)?;
    Ok((storage(dev, out), Shape::from(c as usize)))
}

/// AdamW's f32 constants, as the CPU's fused update rounds them.
pub(crate) struct AdamConstants {
    /// `1 - lr * wd`, or `None` without weight decay.
    pub decay: Option<f32>,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub inv_sqrt_bc2: f32,
    pub eps: f32,
    pub step_size: f32,
}

/// One AdamW step of `theta` in place, with its moments `m` and `v` (f32 tensors of its
/// length on the same device) updated in place too.
pub(crate) fn adamw(
    (ts, tl): (&mut CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    m: &Tensor,
    v: &Tensor,
    k: &AdamConstants,
) -> Result<()> {
    const OP: &str = "tarun-adamw";
    let dev = ts.device().clone();
    let grad = view(gs, gl, OP)?;
    let (m_guard, m_layout) = m.storage_and_layout();
    let (v_guard, v_layout) = v.storage_and_layout();
    let (Storage::Cuda(ms), Storage::Cuda(vs)) = (&*m_guard, &*v_guard) else {
        candle_core::bail!("{OP}: the moments are not on the GPU");
    };
    let (mv, vv) = (view(ms, m_layout, OP)?, view(vs, v_layout, OP)?);
    let Some((t0, t1)) = tl.contiguous_offsets() else {
        candle_core::bail!("{OP}: expects a contiguous parameter");
    };
    let theta = ts.as_cuda_slice_mut::<f32>()?;
    let mut theta = theta.slice_mut(t0..t1);
    let n = theta.len();
    if grad.len() != n || mv.len() != n || vv.len() != n {
        candle_core::bail!(
            "{OP}: {n} parameters, {} gradients, moments of {} and {}",
            grad.len(),
            mv.len(),
            vv.len()
        );
    }
    if n == 0 {
        return Ok(());
    }
    let n64 = n as i64;
    let decay = k.decay.unwrap_or(-1.0);
    let f = func(&dev, "tarun_adamw")?;
    let mut launch = f.builder();
    // The moments are written through views of shared borrows: the kernel owns them for the
    // launch, and nothing else reads them (they are this optimizer's alone).
    launch
        .arg(&mut theta)
        .arg(&grad)
        .arg(&mv)
        .arg(&vv)
        .arg(&n64)
        .arg(&decay);
    launch
        .arg(&k.one_minus_beta1)
        .arg(&k.beta2)
        .arg(&k.one_minus_beta2);
    launch.arg(&k.inv_sqrt_bc2).arg(&k.eps).arg(&k.step_size);
    // SAFETY: the argument list matches the kernel's signature; all four have `n` elements.
    unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
    Ok(())
}

/// 2x2 max-pool with stride 2 of an NCHW tensor with even H and W.
pub(crate) fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "tarun-max-pool";
    let (b, c, h, w) = x.dims4()?;
    let (hi, wi) = (int(h, OP)?, int(w, OP)?);
    let x = x.contiguous()?;
    on_tensors(&[&x], (b, c, h / 2, w / 2), OP, |dev, v| {
        let n = b * c * (h / 2) * (w / 2);
        // SAFETY: the kernel writes every element.
        let mut y = unsafe { dev.alloc::<f32>(n) }?;
        if n > 0 {
            let n32 = int(n, OP)?;
            let f = func(dev, "tarun_max_pool2x2")?;
            let mut launch = f.builder();
            launch.arg(&v[0]).arg(&mut y).arg(&hi).arg(&wi).arg(&n32);
            // SAFETY: the argument list matches the kernel's signature.
            unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
        }
        Ok(y)
    })
}

/// [`max_pool2x2`]'s input gradient from its input, output and output gradient.
pub(crate) fn max_pool2x2_grad(x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "tarun-max-pool-grad";
    let (_, _, h, w) = x.dims4()?;
    let (hi, wi) = (int(h, OP)?, int(w, OP)?);
    let (x, y, g) = (x.contiguous()?, y.contiguous()?, g.contiguous()?);
    on_tensors(&[&x, &y, &g], x.shape().clone(), OP, |dev, v| {
        let n = v[0].len();
        // SAFETY: the kernel writes every element.
        let mut dx = unsafe { dev.alloc::<f32>(n) }?;
        if n > 0 {
            let n32 = int(n, OP)?;
            let f = func(dev, "tarun_max_pool2x2_grad")?;
            let mut launch = f.builder();
            launch.arg(&v[0]).arg(&v[1]).arg(&v[2]).arg(&mut dx);
            launch.arg(&hi).arg(&wi).arg(&n32);
            // SAFETY: the argument list matches the kernel's signature.
            unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
        }
        Ok(dx)
    })
}

/// Batch norm's running statistics updated in place from a batch's `stats` (`[mean; var]`):
/// `running_mean` is the op's destination; `running_var` and the `batches` counter (i64
/// scalar) are written through views of their storages, as AdamW writes its moments.
pub(crate) fn bn_running(
    (ms, ml): (&mut CudaStorage, &Layout),
    (ss, sl): (&CudaStorage, &Layout),
    running_var: &Tensor,
    batches: &Tensor,
    (momentum, unbias): (f64, f64),
) -> Result<()> {
    const OP: &str = "tarun-batch-norm-running";
    let dev = ms.device().clone();
    let stats = view(ss, sl, OP)?;
    let (vg, vl) = running_var.storage_and_layout();
    let (bg, bl) = batches.storage_and_layout();
    let (Storage::Cuda(vs), Storage::Cuda(bs)) = (&*vg, &*bg) else {
        candle_core::bail!("{OP}: the running statistics are not on the GPU");
    };
    let var = view(vs, vl, OP)?;
    let Some((b0, b1)) = bl.contiguous_offsets() else {
        candle_core::bail!("{OP}: expects a contiguous counter");
    };
    let count = bs.as_cuda_slice::<i64>()?.slice(b0..b1);
    let Some((m0, m1)) = ml.contiguous_offsets() else {
        candle_core::bail!("{OP}: expects contiguous running statistics");
    };
    let mut mean = ms.as_cuda_slice_mut::<f32>()?.slice_mut(m0..m1);
    let c = mean.len();
    if var.len() != c || stats.len() != 2 * c || count.len() != 1 {
        candle_core::bail!(
            "{OP}: {c} channels, {} variances, {} statistics, a counter of {}",
            var.len(),
            stats.len(),
            count.len()
        );
    }
    let (keep, momentum, unbias, ci) = (
        (1.0 - momentum) as f32,
        momentum as f32,
        unbias as f32,
        int(c, OP)?,
    );
    let f = func(&dev, "tarun_bn_running")?;
    let mut launch = f.builder();
    launch.arg(&mut mean).arg(&var).arg(&count).arg(&stats);
    launch.arg(&keep).arg(&momentum).arg(&unbias).arg(&ci);
    let cfg = cudarc::driver::LaunchConfig {
        grid_dim: (c.div_ceil(256).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the argument list matches the kernel's signature; the lengths are checked above.
    unsafe { launch.launch(cfg) }.map_err(wrap_err)?;
    Ok(())
}

/// `w` (`rows x (cols * group)`) summed over each run of `group` columns (`fold`) or, given
/// `rows x cols`, each element repeated over a run of `group` (`spread`, the fold's gradient).
pub(crate) fn fold_columns(w: &Tensor, group: usize, spread: bool) -> Result<Tensor> {
    const OP: &str = "tarun-fold-columns";
    let (rows, cols) = w.dims2()?;
    let (out_cols, kernel) = if spread {
        (cols * group, "tarun_spread_columns")
    } else {
        (cols / group, "tarun_fold_columns")
    };
    let gi = int(group, OP)?;
    let w = w.contiguous()?;
    on_tensors(&[&w], (rows, out_cols), OP, |dev, v| {
        let n = rows * out_cols;
        // SAFETY: the kernel writes every element.
        let mut y = unsafe { dev.alloc::<f32>(n) }?;
        if n > 0 {
            let n32 = int(n, OP)?;
            let f = func(dev, kernel)?;
            let mut launch = f.builder();
            launch.arg(&v[0]).arg(&mut y).arg(&gi).arg(&n32);
            // SAFETY: the argument list matches the kernel's signature.
            unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
        }
        Ok(y)
    })
}

/// An inverted-dropout mask of `shape` drawn on the GPU (see `kernels/dropout.rs`).
pub(crate) fn dropout_mask(
    dev: &CudaDevice,
    shape: Shape,
    seed: u64,
    limit: u32,
    keep: f32,
) -> Result<Tensor> {
    const OP: &str = "tarun-dropout";
    let n = shape.elem_count();
    let n32 = int(n, OP)?;
    // SAFETY: the kernel writes every element.
    let mut mask = unsafe { dev.alloc::<f32>(n) }?;
    if n > 0 {
        let f = func(dev, "tarun_dropout_mask")?;
        let mut launch = f.builder();
        launch
            .arg(&mut mask)
            .arg(&seed)
            .arg(&limit)
            .arg(&keep)
            .arg(&n32);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
    }
    let out = Storage::Cuda(storage(dev, mask));
    Ok(Tensor::from_storage(out, shape, BackpropOp::none(), false))
}
