//! Convolutions on the GPU through cuDNN, the library PyTorch itself uses: the forward pass and
//! both gradients of dense, strided, 1x1 and grouped (depthwise) convolutions, as PyTorch's
//! `aten/src/ATen/native/cudnn/` calls them with its defaults (`benchmark = False`):
//!
//! * descriptors for NCHW f32 tensors, cross-correlation, the group count on the convolution;
//! * the math type `CUDNN_DEFAULT_MATH` (TF32 tensor cores allowed where the GPU has them), or
//!   `CUDNN_FMA_MATH` for exact f32 ([`Precision::Fp32`]), as PyTorch's `allow_tf32` does;
//! * the algorithm from cuDNN's heuristics (`cudnnGet...Algorithm_v7`, the first that succeeds),
//!   chosen once per shape, pass and precision and cached;
//! * workspace from one buffer per thread and device that grows to the largest need and is
//!   reused (a job runs on one thread, so the buffer is the job's).
//!
//! cuDNN handles are neither `Send` nor `Sync`: they, the descriptors and the algorithm cache
//! live in a thread-local map keyed by device.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::DeviceId;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape};
use cudarc::cudnn::safe::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, FilterDescriptor,
    TensorDescriptor,
};
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, CudaView};

use super::{storage, view, wrap_err};
use crate::kernels::Precision;

/// One convolution's shapes: input `[b, c, h, w]`, kernel `[co, c / groups, k, k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConvShape {
    pub b: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvShape {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    pub fn out_len(&self) -> usize {
        let (ho, wo) = self.out_hw();
        self.b * self.co * ho * wo
    }

    pub fn kernel_len(&self) -> usize {
        self.co * (self.c / self.groups) * self.k * self.k
    }
}

/// A shape's descriptors and, per pass, the algorithm chosen for it with its workspace size.
struct Plan {
    x: TensorDescriptor<f32>,
    w: FilterDescriptor<f32>,
    y: TensorDescriptor<f32>,
    conv: ConvDescriptor<f32>,
    fwd: Option<(sys::cudnnConvolutionFwdAlgo_t, usize)>,
    data: Option<(sys::cudnnConvolutionBwdDataAlgo_t, usize)>,
    filter: Option<(sys::cudnnConvolutionBwdFilterAlgo_t, usize)>,
}

/// What one thread keeps for one device.
struct PerDevice {
    cudnn: Arc<Cudnn>,
    plans: HashMap<(ConvShape, Precision), Plan>,
    workspace: Option<CudaSlice<u8>>,
}

thread_local! {
    static STATE: RefCell<HashMap<DeviceId, PerDevice>> = RefCell::new(HashMap::new());
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("cuDNN: {v} exceeds i32")))
}

impl Plan {
    fn new(cudnn: &Arc<Cudnn>, s: &ConvShape, precision: Precision) -> Result<Self> {
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let (ho, wo) = s.out_hw();
        let x = cudnn
            .create_4d_tensor::<f32>(nchw, [int(s.b)?, int(s.c)?, int(s.h)?, int(s.w)?])
            .map_err(wrap_err)?;
        let y = cudnn
            .create_4d_tensor::<f32>(nchw, [int(s.b)?, int(s.co)?, int(ho)?, int(wo)?])
            .map_err(wrap_err)?;
        let w = cudnn
            .create_4d_filter::<f32>(
                nchw,
                [int(s.co)?, int(s.c / s.groups)?, int(s.k)?, int(s.k)?],
            )
            .map_err(wrap_err)?;
        let (pad, stride) = (int(s.pad)?, int(s.stride)?);
        let mut conv = cudnn
            .create_conv2d::<f32>(
                [pad, pad],
                [stride, stride],
                [1, 1],
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .map_err(wrap_err)?;
        let math = match precision {
            Precision::Tf32 => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            Precision::Fp32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
        };
        conv.set_math_type(math).map_err(wrap_err)?;
        if s.groups > 1 {
            conv.set_group_count(int(s.groups)?).map_err(wrap_err)?;
        }
        Ok(Self {
            x,
            w,
            y,
            conv,
            fwd: None,
            data: None,
            filter: None,
        })
    }
}

/// Runs `f` with this thread's cuDNN state for `dev`, the plan for `shape` and a workspace
/// buffer of at least `need(plan)` bytes.
fn with_plan<R>(
    dev: &CudaDevice,
    shape: &ConvShape,
    need: impl FnOnce(&mut Plan) -> Result<usize>,
    f: impl FnOnce(&Plan, Option<&mut CudaSlice<u8>>) -> Result<R>,
) -> Result<R> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let per = match state.entry(dev.id()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(PerDevice {
                cudnn: Cudnn::new(dev.cuda_stream()).map_err(wrap_err)?,
                plans: HashMap::new(),
                workspace: None,
            }),
        };
        let precision = Precision::current();
        let plan = match per.plans.entry((*shape, precision)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Plan::new(&per.cudnn, shape, precision)?)
            }
        };
        let bytes = need(plan)?;
        if bytes > 0 && per.workspace.as_ref().is_none_or(|w| w.len() < bytes) {
            // Dropped first: the old buffer goes back to the stream's pool before the new one
            // is taken (both stream-ordered).
            per.workspace = None;
            // SAFETY: workspace is scratch that cuDNN writes before it reads.
            per.workspace = Some(unsafe { dev.alloc::<u8>(bytes) }?);
        }
        let workspace = if bytes > 0 {
            per.workspace.as_mut()
        } else {
            None
        };
        f(plan, workspace)
    })
}

/// `y = conv(x, w)`.
pub(crate) fn forward(
    dev: &CudaDevice,
    s: &ConvShape,
    x: &CudaView<f32>,
    w: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    // SAFETY: cuDNN writes every output element (beta = 0).
    let mut y = unsafe { dev.alloc::<f32>(s.out_len()) }?;
    with_plan(
        dev,
        s,
        |p| {
            if p.fwd.is_none() {
                let op = ConvForward {
                    conv: &p.conv,
                    x: &p.x,
                    w: &p.w,
                    y: &p.y,
                };
                let algo = op.pick_algorithm().map_err(wrap_err)?;
                p.fwd = Some((algo, op.get_workspace_size(algo).map_err(wrap_err)?));
            }
            Ok(p.fwd.map_or(0, |a| a.1))
        },
        |p, ws| {
            let op = ConvForward {
                conv: &p.conv,
                x: &p.x,
                w: &p.w,
                y: &p.y,
            };
            let algo = p.fwd.map(|a| a.0).expect("chosen above");
            // SAFETY: the descriptors were built from `s`, which the callers checked against
            // the tensors' lengths.
            unsafe { op.launch(algo, ws, (1.0, 0.0), x, w, &mut y) }.map_err(wrap_err)
        },
    )?;
    Ok(y)
}

/// `dx` from `dy` and `w`.
pub(crate) fn input_grad(
    dev: &CudaDevice,
    s: &ConvShape,
    dy: &CudaView<f32>,
    w: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    // SAFETY: cuDNN writes every element of dx (beta = 0).
    let mut dx = unsafe { dev.alloc::<f32>(s.b * s.c * s.h * s.w) }?;
    with_plan(
        dev,
        s,
        |p| {
            if p.data.is_none() {
                let op = ConvBackwardData {
                    conv: &p.conv,
                    dx: &p.x,
                    w: &p.w,
                    dy: &p.y,
                };
                let algo = op.pick_algorithm().map_err(wrap_err)?;
                p.data = Some((algo, op.get_workspace_size(algo).map_err(wrap_err)?));
            }
            Ok(p.data.map_or(0, |a| a.1))
        },
        |p, ws| {
            let op = ConvBackwardData {
                conv: &p.conv,
                dx: &p.x,
                w: &p.w,
                dy: &p.y,
            };
            let algo = p.data.map(|a| a.0).expect("chosen above");
            // SAFETY: as in `forward`.
            unsafe { op.launch(algo, ws, (1.0, 0.0), &mut dx, w, dy) }.map_err(wrap_err)
        },
    )?;
    Ok(dx)
}

/// `dw` from `x` and `dy`.
pub(crate) fn kernel_grad(
    dev: &CudaDevice,
    s: &ConvShape,
    x: &CudaView<f32>,
    dy: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    // SAFETY: cuDNN writes every element of dw (beta = 0).
    let mut dw = unsafe { dev.alloc::<f32>(s.kernel_len()) }?;
    with_plan(
        dev,
        s,
        |p| {
            if p.filter.is_none() {
                let op = ConvBackwardFilter {
                    conv: &p.conv,
                    x: &p.x,
                    dw: &p.w,
                    dy: &p.y,
                };
                let algo = op.pick_algorithm().map_err(wrap_err)?;
                p.filter = Some((algo, op.get_workspace_size(algo).map_err(wrap_err)?));
            }
            Ok(p.filter.map_or(0, |a| a.1))
        },
        |p, ws| {
            let op = ConvBackwardFilter {
                conv: &p.conv,
                x: &p.x,
                dw: &p.w,
                dy: &p.y,
            };
            let algo = p.filter.map(|a| a.0).expect("chosen above");
            // SAFETY: as in `forward`.
            unsafe { op.launch(algo, ws, (1.0, 0.0), x, &mut dw, dy) }.map_err(wrap_err)
        },
    )?;
    Ok(dw)
}

/// Which of a convolution's three passes to run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pass {
    /// `y` from (x, w).
    Forward,
    /// `dx` from (dy, w).
    InputGrad,
    /// `dw` from (x, dy).
    KernelGrad,
}

/// One pass of the convolution `s` on the storages of its two inputs (see [`Pass`]), for a
/// custom op's `cuda_fwd`.
pub(crate) fn run(
    pass: Pass,
    s: &ConvShape,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
    op: &str,
) -> Result<(CudaStorage, Shape)> {
    let dev = s1.device();
    let (a, b) = (view(s1, l1, op)?, view(s2, l2, op)?);
    let (ho, wo) = s.out_hw();
    let (x_len, y_len, w_len) = (s.b * s.c * s.h * s.w, s.out_len(), s.kernel_len());
    let expected = match pass {
        Pass::Forward => (x_len, w_len),
        Pass::InputGrad => (y_len, w_len),
        Pass::KernelGrad => (x_len, y_len),
    };
    if (a.len(), b.len()) != expected {
        candle_core::bail!(
            "{op}: inputs of {} and {} elements, expected {expected:?} for {s:?}",
            a.len(),
            b.len()
        );
    }
    let (out, shape) = match pass {
        Pass::Forward => (forward(dev, s, &a, &b)?, Shape::from((s.b, s.co, ho, wo))),
        Pass::InputGrad => (
            input_grad(dev, s, &a, &b)?,
            Shape::from((s.b, s.c, s.h, s.w)),
        ),
        Pass::KernelGrad => (
            kernel_grad(dev, s, &a, &b)?,
            Shape::from((s.co, s.c / s.groups, s.k, s.k)),
        ),
    };
    Ok((storage(dev, out), shape))
}
