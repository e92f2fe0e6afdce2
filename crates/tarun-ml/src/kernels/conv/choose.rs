//! The one place that picks an algorithm for a convolution's pass: Winograd F(2x2, 3x3)
//! ([`super::winograd`]) for wide 3x3 "same" layers, the direct kernel ([`super::direct`]) where
//! the CPU has AVX-512 or AVX2 + FMA and the shape suits it, and im2col + GEMM
//! ([`super::im2col`]) for everything else. Each pass chooses on its own: every algorithm
//! computes the exact gradient of the same convolution, whichever way the others ran.

use super::{Epilogue, Geom, direct, im2col, winograd};

/// The passes of a convolution, which choose between Winograd and im2col separately (each is
/// the exact gradient of the same convolution, whichever way the others ran).
#[derive(Clone, Copy, PartialEq)]
pub(in crate::kernels) enum Pass {
    Forward,
    InputGrad,
    KernelGrad,
}

/// Whether `g`'s pass runs by Winograd: a 3x3 kernel, stride 1, padding 1, and channels enough for
/// the 16 products (inner dimension `C`, against im2col's `9C`) to pay for the transforms:
/// both counts at least 64 on maps of 16x16 and more, at least 256 on smaller maps, where each
/// plane's transform is short and its overhead larger; and at least 256 for the kernel
/// gradient, whose products (`C x Co`, summed over every tile) stayed behind im2col's below
/// that. Measured with `cargo run --release -p tarun-ml --example convbench` (forward, then
/// forward and both gradients, against im2col): 64 channels on 32x32 maps 1.2x and 1.3x,
/// 128 on 16x16 1.2x and 1.0x, 256 on 8x8 1.4x and 1.25x, 512 on 4x4 1.4x and 1.4x; 64 on
/// 8x8 0.8x and 0.65x, 128 on 4x4 1.0x and 1.0x.
pub(in crate::kernels) fn by_winograd(g: &Geom, pass: Pass) -> bool {
    let channels = g.c.min(g.co);
    let wide_enough = match pass {
        Pass::KernelGrad => channels >= 256,
        Pass::Forward | Pass::InputGrad => channels >= 256 || (channels >= 64 && g.h * g.w >= 256),
    };
    g.k == 3 && g.stride == 1 && g.pad == 1 && wide_enough
}

/// Whether the direct kernel runs `g`'s forward pass: a shape it [`fits`](direct::fits), on a
/// CPU with AVX-512 or AVX2 + FMA ([`crate::kernels::simd::level`], which `TARUN_CPU_SIMD`
/// can lower), unless `TARUN_NO_DIRECT` is set ([`direct::enabled`]). Its gradients make the
/// same checks and decline (`None`) the shapes they do not cover.
fn by_direct(g: &Geom) -> bool {
    direct::fits(g) && direct::enabled().is_some()
}

/// The forward convolution, followed by `epi` if given.
pub(super) fn forward(x: &[f32], w: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    if by_winograd(g, Pass::Forward) {
        return winograd::forward(x, w, g, epi);
    }
    if by_direct(g) {
        return direct::forward(x, w, g, epi);
    }
    im2col::forward(x, w, g, epi)
}

/// dL/dx from dL/dy.
pub(super) fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Vec<f32> {
    if by_winograd(g, Pass::InputGrad) {
        return winograd::input_grad(dy, w, g);
    }
    if let Some(dx) = direct::input_grad(dy, w, g) {
        return dx;
    }
    im2col::input_grad(dy, w, g)
}

/// dL/dW from the input and dL/dy.
pub(super) fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    if by_winograd(g, Pass::KernelGrad) {
        return winograd::kernel_grad(x, dy, g);
    }
    if let Some(dw) = direct::kernel_grad(x, dy, g) {
        return dw;
    }
    im2col::kernel_grad(x, dy, g)
}
