//! Launches of `kernels.cu`'s functions for the custom ops' `cuda_fwd` (on storages) and for the
//! backward passes that run off Candle's graph (on tensors).

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape, Storage, Tensor};
use cudarc::driver::{CudaSlice, CudaView, PushKernelArg};

use super::{elementwise, func, per_channel, storage, view, wrap_err};
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

/// `(B, C, H*W)` of an NCHW layout as the kernels' `int`s.
fn dims(l: &Layout, op: &str) -> Result<(i32, i32, i32)> {
    let (b, c, hw) = bc_hw(l, op)?;
    Ok((int(b, op)?, int(c, op)?, int(hw, op)?))
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
    // SAFETY: the kernel writes both rows.
    let mut out = unsafe { dev.alloc::<f32>(2 * c as usize) }?;
    if c > 0 {
        let f = func(dev, "tarun_bn_stats")?;
        let mut launch = f.builder();
        launch.arg(&x).arg(&mut out).arg(&b).arg(&c).arg(&hw);
        // SAFETY: the argument list matches the kernel's signature; `out` has 2C elements.
        unsafe { launch.launch(per_channel(c as usize)) }.map_err(wrap_err)?;
    }
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
        let (eps, act, n64) = (eps as f32, act_code(act), n as i64);
        let f = func(dev, "tarun_bn_apply")?;
        let mut launch = f.builder();
        launch.arg(&x).arg(&mut y).arg(&params).arg(&stats);
        launch.arg(&eps).arg(&act).arg(&c).arg(&hw).arg(&n64);
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
    let sums = on_tensors(&[x, &grad, y, &stats], (2, c), OP, |dev, v| {
        // SAFETY: the kernel writes both rows.
        let mut out = unsafe { dev.alloc::<f32>(2 * c) }?;
        if c > 0 {
            let f = func(dev, "tarun_bn_grad_sums")?;
            let mut launch = f.builder();
            launch
                .arg(&v[0])
                .arg(&v[1])
                .arg(&v[2])
                .arg(&v[3])
                .arg(&mut out);
            launch.arg(&eps).arg(&act).arg(&bi).arg(&ci).arg(&hwi);
            // SAFETY: the argument list matches the kernel's signature.
            unsafe { launch.launch(per_channel(c)) }.map_err(wrap_err)?;
        }
        Ok(out)
    })?;
    let dx = if needs.first().copied().unwrap_or(false) {
        let inputs = [x, &grad, y, &params, &stats, &sums];
        Some(on_tensors(&inputs, x.shape().clone(), OP, |dev, v| {
            let n = v[0].len();
            // SAFETY: the kernel writes every element.
            let mut dx = unsafe { dev.alloc::<f32>(n) }?;
            if n > 0 {
                let (bs, n64, count) = (i32::from(batch_stats), n as i64, (b * h * w) as f32);
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
                launch.arg(&n64).arg(&count);
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
        let n64 = n as i64;
        let f = func(dev, kernel)?;
        let mut launch = f.builder();
        launch.arg(&a).arg(&b).arg(&mut out).arg(&n64);
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
        let n64 = n as i64;
        let f = func(dev, "tarun_bias_add")?;
        let mut launch = f.builder();
        launch
            .arg(&x)
            .arg(&bias)
            .arg(&mut y)
            .arg(&c)
            .arg(&hw)
            .arg(&n64);
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
    // SAFETY: the kernel writes every element.
    let mut out = unsafe { dev.alloc::<f32>(c as usize) }?;
    if c > 0 {
        let f = func(dev, "tarun_channel_sums")?;
        let mut launch = f.builder();
        launch.arg(&g).arg(&mut out).arg(&b).arg(&c).arg(&hw);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { launch.launch(per_channel(c as usize)) }.map_err(wrap_err)?;
    }
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
            let n64 = n as i64;
            let f = func(dev, "tarun_max_pool2x2")?;
            let mut launch = f.builder();
            launch.arg(&v[0]).arg(&mut y).arg(&hi).arg(&wi).arg(&n64);
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
            let n64 = n as i64;
            let f = func(dev, "tarun_max_pool2x2_grad")?;
            let mut launch = f.builder();
            launch.arg(&v[0]).arg(&v[1]).arg(&v[2]).arg(&mut dx);
            launch.arg(&hi).arg(&wi).arg(&n64);
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
            let n64 = n as i64;
            let f = func(dev, kernel)?;
            let mut launch = f.builder();
            launch.arg(&v[0]).arg(&mut y).arg(&gi).arg(&n64);
            // SAFETY: the argument list matches the kernel's signature.
            unsafe { launch.launch(elementwise(n)) }.map_err(wrap_err)?;
        }
        Ok(y)
    })
}
