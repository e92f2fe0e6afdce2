//! tarun's ops on NVIDIA GPUs (feature `cuda`): the `cuda_fwd` of the same Candle custom ops
//! whose `cpu_fwd` are the CPU kernels, so that the networks, the backward [`super::Tape`] and
//! the optimizer run one code path on either device.
//!
//! * Convolutions (dense, strided, 1x1, depthwise) and both their gradients go to cuDNN
//!   ([`conv`]), as in PyTorch.
//! * Batch norm with its activation (statistics, forward and backward), ResNet's `relu(a + b)`,
//!   a convolution's bias and AdamW are kernels of tarun's own (`kernels.cu`), compiled once per
//!   process by NVRTC for the device at hand.
//!
//! Every op works on contiguous f32 NCHW tensors, as the CPU kernels do, and writes every
//! element of a fresh output (allocated uninitialised from the stream's memory pool).

pub(crate) mod conv;
mod ops;

pub(crate) use ops::*;

use std::sync::OnceLock;

use std::sync::Arc;

use candle_core::{CudaDevice, CudaStorage, Layout, Result};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, CudaView, LaunchArgs, LaunchConfig};

/// A cuDNN, driver or NVRTC error as Candle's.
pub(crate) fn wrap_err(e: impl std::error::Error + Send + Sync + 'static) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// The contiguous f32 data of an op's input.
pub(crate) fn view<'a>(s: &'a CudaStorage, l: &Layout, op: &str) -> Result<CudaView<'a, f32>> {
    let Ok(slice) = s.as_cuda_slice::<f32>() else {
        candle_core::bail!(
            "{op}: tarun's kernels support f32 only, got {:?}",
            candle_core::backend::BackendStorage::dtype(s)
        );
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: expects contiguous inputs");
    };
    Ok(slice.slice(start..end))
}

/// A fresh output as an op's storage.
pub(crate) fn storage(dev: &CudaDevice, data: CudaSlice<f32>) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(data, dev.clone())
}

/// The kernels' source, compiled by NVRTC.
const SOURCE: &str = include_str!("kernels.cu");

/// Its module's name in Candle's per-device module cache.
const MODULE: &str = "tarun-kernels";

/// Threads per block of the reductions; `REDUCE_THREADS` in `kernels.cu`.
const REDUCE_THREADS: u32 = 256;

/// The PTX of [`SOURCE`], compiled on first use (about a second) and shared by every device
/// and job of the process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(format!("compiling tarun's CUDA kernels: {e}")))
}

/// One of `kernels.cu`'s functions with the stream it launches on.
struct Kernel {
    stream: Arc<CudaStream>,
    func: CudaFunction,
}

impl Kernel {
    fn builder(&self) -> LaunchArgs<'_> {
        self.stream.launch_builder(&self.func)
    }
}

/// `kernels.cu`'s function `name`, on `dev`'s stream.
fn func(dev: &CudaDevice, name: &str) -> Result<Kernel> {
    let func = dev
        .get_or_load_custom_func(name, MODULE, ptx()?)?
        .into_cuda_function();
    Ok(Kernel {
        stream: dev.cuda_stream(),
        func,
    })
}

/// A grid-stride launch over `n` elements: 256 threads a block, at most 32 blocks per
/// multiprocessor's worth (4,224 on an H100/H200), each thread looping over the rest.
fn elementwise(n: usize) -> LaunchConfig {
    const THREADS: u32 = 256;
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 4224) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Sets up the device's default memory pool (where every tensor's `cuMemAllocAsync` comes
/// from) for training jobs:
///
/// * it keeps the memory freed into it instead of handing it back to the driver at every
///   synchronisation. With the default threshold of 0, each training step, which waits for the
///   GPU once or twice, released its activations and mapped them afresh in the next step;
///   PyTorch's caching allocator keeps them too.
/// * it never hands one stream memory that another stream freed by making the first wait for
///   the second (`REUSE_ALLOW_INTERNAL_DEPENDENCIES`, on by default). Each job issues its work
///   on its own thread's stream and allocates and frees thousands of tensors a step, so with
///   that reuse concurrent jobs kept waiting for each other: on an H200, 2 and 4 jobs at once
///   trained fewer images per second in total than one (`tarun bench jobs`). Memory a stream
///   freed is still reused by that stream, and by others once the free has completed.
///
/// Idempotent: once per opened device.
pub(crate) fn keep_freed_memory(dev: &CudaDevice) -> Result<()> {
    use cudarc::driver::{result, sys};
    let stream = dev.cuda_stream();
    let ctx = stream.context();
    ctx.bind_to_thread().map_err(wrap_err)?;
    let mut threshold = u64::MAX;
    let mut no: std::ffi::c_int = 0;
    // SAFETY: the device is the context's own; the release threshold attribute takes a u64,
    // the reuse policy an int.
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device()).map_err(wrap_err)?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .map_err(wrap_err)?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES,
            (&mut no as *mut std::ffi::c_int).cast(),
        )
        .map_err(wrap_err)?;
    }
    Ok(())
}
