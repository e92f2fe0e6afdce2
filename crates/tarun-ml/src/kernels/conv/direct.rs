//! A direct convolution without an im2col matrix, on AVX-512 or on AVX2 + FMA: the 3x3
//! convolutions of ResNet-18 and VGG-11-BN on 16-128 channels ("same" at stride 1, and
//! stride 2), forward and both gradients.
//!
//! im2col + GEMM copies each input element nine times into the column matrix, and gemm then
//! packs that matrix once more; with few channels (ResNet-18 width 0.25: 16-32 channels, 32x32
//! and 16x16 maps) those copies are a large share of the pass and the GEMMs are too thin to run
//! near the machine's peak (docs/performance.md, fifth and sixth rounds).
//!
//! * **Forward:** each kernel tap `(dy, dx)` is a shift of the whole flattened plane by
//!   `dy W + dx` (as in `im2col::im2col_same`), so a vector of `L` consecutive outputs (16 on
//!   AVX-512, 8 on AVX2) reads `L` consecutive inputs, with a lane mask for those that fall off a
//!   row or off the plane: a masked load straight from the NCHW input. A tile is `NV` such
//!   vectors (several images' on small maps) times `CB` output channels ([`tile_shape`]: 24
//!   accumulators in registers on AVX-512, 8 on AVX2) over the whole `C k k` reduction, stored
//!   once. At stride 2 the input is first split into its four phases (even and odd rows and
//!   columns), where each tap is again a shift ([`split_phases`]).
//! * **Input gradient** (stride 1): the same kernel on `dY` with the kernel turned.
//! * **Kernel gradient:** the input channels in the vector lanes over a padded channels-last
//!   copy of each image ([`kernel_grad`]).
//!
//! The kernels are written once over `simd::Vector` and compiled for each set; [`level`]
//! chooses at run time (`TARUN_CPU_SIMD=avx2` forces AVX2 on an AVX-512 CPU). The `_in`
//! functions take the set, for the tests to run every one the CPU has.

use rayon::prelude::*;

use super::{Epilogue, Geom};
#[cfg(target_arch = "x86_64")]
use crate::kernels::simd::{Avx2, Avx512, Vector};
use crate::kernels::simd::{Simd, level};
use crate::kernels::{par_filled, sum_over_groups, threads, with_scratch};

/// A tile's shape in each instruction set: output channels (one broadcast weight each) by
/// vectors of outputs. AVX-512's 32 registers hold 24 sums, 3 inputs and a weight. AVX2's 16
/// hold 8 sums, an input, its load mask and a weight: 4 x 3 spills a sum to the stack (a
/// store-to-load chain every channel), and 8 x 1 was the fastest of the shapes that fit
/// (docs/performance.md, "CPU: AVX2 direct convolution").
const AVX512_TILE: (usize, usize) = (8, 3);
const AVX2_TILE: (usize, usize) = (8, 1);

/// `(CB, NV)`: output channels and vectors per tile in `simd`.
fn tile_shape(simd: Simd) -> (usize, usize) {
    match simd {
        Simd::Avx512 => AVX512_TILE,
        Simd::Avx2 => AVX2_TILE,
    }
}

/// The fewest output positions a map needs for the direct kernel (a 2x2 map fills a quarter of
/// an AVX-512 vector, and im2col is then faster; docs/performance.md, sixth round).
const MIN_POSITIONS: usize = 16;

/// Whether `g` is a shape the direct kernel is for: a convolution of a kernel of 3x3 to 7x7 at
/// stride 1 with "same" padding or at stride 2 with an output of half the input (rounded up),
/// with at least one image per thread (the tiles split over images), output maps of at least
/// [`MIN_POSITIONS`] and at most 128 channels on one side. 1x1 convolutions are one GEMM
/// without im2col and stay there (the direct kernel is slower on MobileNetV2's and ResNet-18's;
/// docs/performance.md, sixth round).
pub(in crate::kernels) fn fits(g: &Geom) -> bool {
    let (hp, wp) = phase_dims(g);
    (3..=7).contains(&g.k)
        && g.pad < g.k
        && (g.stride == 1 || g.stride == 2)
        && (g.ho, g.wo) == (hp, wp)
        && g.b >= threads()
        && g.ho * g.wo >= MIN_POSITIONS
        && g.c.min(g.co) <= 128
}

/// The size of the input's phases at the convolution's stride `s`: phase `(ry, rx)` holds the
/// input's rows `s i + ry` and columns `s j + rx`, and a tap `(ki, kj)` reads one phase shifted
/// (see [`Plan::new`]). At stride 1 the one phase is the input.
fn phase_dims(g: &Geom) -> (usize, usize) {
    (g.h.div_ceil(g.stride), g.w.div_ceil(g.stride))
}

/// The instruction set the kernel runs in ([`level`]), or none where the CPU has neither or
/// `TARUN_NO_DIRECT` is set (for measuring this kernel against im2col + GEMM in the same
/// build); read once.
pub(super) fn enabled() -> Option<Simd> {
    static ENABLED: std::sync::OnceLock<Option<Simd>> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| level().filter(|_| std::env::var_os("TARUN_NO_DIRECT").is_none()))
}

/// Where a group's tiles read and write, relative to the group's first image, for vectors of
/// `lanes` outputs, `nv` a tile: for tile `i`, slot `v` and tap `t`, the input offset
/// `x_off[(i * taps + t) * nv + v]` and its lane mask; the output offset (channel 0) and store
/// mask of slot `v` in `out[i * nv + v]`. Unused slots of the last tile have empty masks. The
/// input is the group's phases (at stride 1, its images): `[image][phase][channel][Hp x Wp]`.
struct Plan {
    taps: usize,
    nv: usize,
    x_off: Vec<isize>,
    x_mask: Vec<u16>,
    out: Vec<(usize, u16)>,
}

impl Plan {
    fn new(g: &Geom, gn: usize, lanes: usize, nv: usize) -> Self {
        let (hp, wp) = phase_dims(g);
        let (hw, taps, s) = (g.ho * g.wo, g.k * g.k, g.stride as isize);
        let image = g.stride * g.stride * g.c * hp * wp;
        let slots: Vec<(usize, usize)> = (0..gn)
            .flat_map(|i| (0..hw).step_by(lanes).map(move |p| (i, p)))
            .collect();
        let tiles = slots.len().div_ceil(nv);
        let mut plan = Plan {
            taps,
            nv,
            x_off: vec![0; tiles * taps * nv],
            x_mask: vec![0; tiles * taps * nv],
            out: vec![(0, 0); tiles * nv],
        };
        // Tap `(ki, kj)` reads input row `s oh + ki - pad = s (oh + dy) + ry`: phase row
        // `oh + dy` of phase `(ry, rx)`.
        let split = |a: usize| {
            let a = a as isize - g.pad as isize;
            (a.div_euclid(s), a.rem_euclid(s) as usize)
        };
        for (slot, &(i, p)) in slots.iter().enumerate() {
            let (tile, v) = (slot / nv, slot % nv);
            let used = (hw - p).min(lanes);
            plan.out[slot] = (i * g.co * hw + p, ((1u32 << used) - 1) as u16);
            for t in 0..taps {
                let ((dy, ry), (dx, rx)) = (split(t / g.k), split(t % g.k));
                let phase = (ry * g.stride + rx) * g.c * hp * wp;
                let mut mask = 0u16;
                for l in 0..used {
                    let (oh, ow) = (((p + l) / wp) as isize, ((p + l) % wp) as isize);
                    let (ih, iw) = (oh + dy, ow + dx);
                    if (0..hp as isize).contains(&ih) && (0..wp as isize).contains(&iw) {
                        mask |= 1 << l;
                    }
                }
                let at = (tile * taps + t) * nv + v;
                plan.x_off[at] = (i * image + phase + p) as isize + dy * wp as isize + dx;
                plan.x_mask[at] = mask;
            }
        }
        plan
    }

    /// [`Plan::new`], kept for the next call with the same shapes: every pass asks for the same
    /// few, and building them anew each time is a visible share of a small network's pass.
    fn cached(g: &Geom, gn: usize, lanes: usize, nv: usize) -> std::sync::Arc<Plan> {
        type Key = [usize; 10];
        static PLANS: std::sync::Mutex<Vec<(Key, std::sync::Arc<Plan>)>> =
            std::sync::Mutex::new(Vec::new());
        let key = [g.c, g.co, g.h, g.w, g.k, g.stride, g.pad, gn, lanes, nv];
        let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, plan)) = plans.iter().find(|(k, _)| *k == key) {
            return plan.clone();
        }
        let plan = std::sync::Arc::new(Plan::new(g, gn, lanes, nv));
        if plans.len() >= 64 {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        plan
    }

    fn tiles(&self) -> usize {
        self.out.len() / self.nv
    }
}

/// The kernel `Co x C x k x k` in blocks of `cb` output channels, `[block][tap][c][j]`, the
/// last block padded with zeros.
fn pack_weights(w: &[f32], g: &Geom, cb: usize) -> Vec<f32> {
    let (taps, blocks) = (g.k * g.k, g.co.div_ceil(cb));
    let mut packed = vec![0f32; blocks * taps * g.c * cb];
    // Block by block on all threads (the last stage's kernels are 147K weights, packed for
    // every call), each written in order.
    packed
        .par_chunks_mut(taps * g.c * cb)
        .enumerate()
        .for_each(|(blk, block)| {
            for o in blk * cb..(blk * cb + cb).min(g.co) {
                let j = o - blk * cb;
                for t in 0..taps {
                    let dst = &mut block[t * g.c * cb..(t + 1) * g.c * cb];
                    for (c, v) in dst.iter_mut().skip(j).step_by(cb).enumerate() {
                        *v = w[(o * g.c + c) * taps + t];
                    }
                }
            }
        });
    packed
}

/// The forward convolution of `x` (`B x C x H x W`) by `w` (`Co x C x k x k`), followed by `epi`
/// if given. Only where [`enabled`] and [`fits`] hold (see `choose.rs`).
pub(super) fn forward(x: &[f32], w: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    let simd = enabled().expect("the direct convolution runs only where it applies");
    forward_in(simd, x, w, g, epi)
}

/// [`forward`] in the instruction set `simd`, which this CPU must have; `g` must [`fit`](fits).
pub(in crate::kernels) fn forward_in(
    simd: Simd,
    x: &[f32],
    w: &[f32],
    g: &Geom,
    epi: Option<&Epilogue>,
) -> Vec<f32> {
    assert!(simd.supported(), "this CPU lacks {}", simd.name());
    let hw = g.ho * g.wo;
    let total = g.b * g.co * hw;
    if total == 0 {
        return Vec::new();
    }
    let ((cb, nv), lanes) = (tile_shape(simd), simd.lanes());
    let gn = group(hw, g.b, lanes, nv);
    let full = Plan::cached(g, gn, lanes, nv);
    let rest = (!g.b.is_multiple_of(gn)).then(|| Plan::cached(g, g.b % gn, lanes, nv));
    let packed = pack_weights(w, g, cb);
    let (hp, wp) = phase_dims(g);
    let image = g.stride * g.stride * g.c * hp * wp;
    par_filled(total, gn * g.co * hw, |gi, out| {
        let (n0, count) = (gi * gn, out.len() / (g.co * hw));
        let plan = match &rest {
            Some(p) if count < gn => &**p,
            _ => &*full,
        };
        let xg = &x[n0 * g.chw()..(n0 + count) * g.chw()];
        if g.stride == 1 {
            run_group(simd, xg, &packed, g, plan, out);
        } else {
            with_scratch(count * image, 0, |phases, _| {
                split_phases(xg, g, phases);
                run_group(simd, phases, &packed, g, plan, out);
            });
        }
        if let Some(e) = epi {
            e.apply(out, n0, g.co, hw);
        }
    })
}

/// Copies images `x` into their phases at the stride, `[image][phase][channel][Hp x Wp]`, with
/// zeros where a phase runs past the input (odd sizes): one pass over the input where im2col
/// copied it `k k / s^2` times.
fn split_phases(x: &[f32], g: &Geom, phases: &mut [f32]) {
    let (hp, wp) = phase_dims(g);
    let s = g.stride;
    let mut dst = phases.chunks_exact_mut(wp);
    for img in x.chunks_exact(g.chw()) {
        for ry in 0..s {
            for rx in 0..s {
                for plane in img.chunks_exact(g.h * g.w) {
                    for i in 0..hp {
                        let row = dst.next().expect("phases sized to the group");
                        let src = s * i + ry;
                        if src >= g.h {
                            row.fill(0.0);
                            continue;
                        }
                        let src = &plane[src * g.w..(src + 1) * g.w];
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = src.get(s * j + rx).copied().unwrap_or(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// dL/dx of the forward convolution `g`, where the direct kernel runs it: for a "same"
/// convolution at stride 1, `dX[c][q] = sum_(o, t) dY[o][q - s_t] W[o][c][t]` with `s_t` tap
/// `t`'s shift, which is the same convolution of `dY` with the kernel turned by 180 degrees
/// and its channels swapped (taps `t` and `k k - 1 - t` have opposite shifts).
pub(super) fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Option<Vec<f32>> {
    input_grad_in(enabled()?, dy, w, g)
}

/// [`input_grad`] in the instruction set `simd`, which this CPU must have.
pub(in crate::kernels) fn input_grad_in(
    simd: Simd,
    dy: &[f32],
    w: &[f32],
    g: &Geom,
) -> Option<Vec<f32>> {
    let back = Geom::new(&[g.b, g.co, g.h, g.w], &[g.c, g.co, g.k, g.k], 1, g.pad).ok()?;
    if !(g.stride == 1 && fits(g) && fits(&back)) {
        return None;
    }
    let taps = g.k * g.k;
    let mut turned = vec![0f32; w.len()];
    for o in 0..g.co {
        for c in 0..g.c {
            for t in 0..taps {
                turned[(c * g.co + o) * taps + taps - 1 - t] = w[(o * g.c + c) * taps + t];
            }
        }
    }
    Some(forward_in(simd, dy, &turned, &back, None))
}

/// dL/dW of the convolution `g`, where the direct forward runs it:
/// `dW[o][c][t] = sum_(n, p) dY[n][o][p] X[n][c][s p + t]`, with the input channels in the
/// vector lanes. Each image's input is first laid out `H' x W' x C'` (padded rows and columns,
/// channels rounded up to the lanes, zeros around), so that every tap of every output position
/// reads whole vectors of channels; a block of output channels, taps and channel vectors keeps
/// its sums in registers over all of an image's positions, one broadcast of `dY` per output
/// channel and position. im2col + GEMM wrote the input out nine times (`col`) and had gemm
/// pack it again.
pub(super) fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Option<Vec<f32>> {
    kernel_grad_in(enabled()?, x, dy, g)
}

/// [`kernel_grad`] in the instruction set `simd`, which this CPU must have.
pub(in crate::kernels) fn kernel_grad_in(
    simd: Simd,
    x: &[f32],
    dy: &[f32],
    g: &Geom,
) -> Option<Vec<f32>> {
    let lanes = simd.lanes();
    let (cv, taps) = (g.c.div_ceil(lanes), g.k * g.k);
    let cp = cv * lanes;
    // The 3-channel stem would fill 3 of 16 lanes (1.6x slower than im2col + GEMM).
    if !fits(g) || 2 * g.c <= cp {
        return None;
    }
    assert!(simd.supported(), "this CPU lacks {}", simd.name());
    let padded = (g.h + 2 * g.pad) * (g.w + 2 * g.pad) * cp;
    let hw = g.ho * g.wo;
    let total = sum_over_groups((g.b, 1), taps * g.co * cp, |acc, n0, count, _| {
        for n in n0..n0 + count {
            with_scratch(padded + 16, 0, |xt, _| {
                // Rows of whole cache lines: loads split across two lines cost twice.
                let start = xt.as_ptr().align_offset(64).min(16);
                let xt = &mut xt[start..start + padded];
                channels_last_padded(simd, &x[n * g.chw()..(n + 1) * g.chw()], g, cp, xt);
                let dyn_ = &dy[n * g.co * hw..(n + 1) * g.co * hw];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `simd` is supported (asserted above); every load is inside `xt` (the
                // padded layout covers every tap of every output position) or `dy` (channel
                // indices clamped to the last), every sum lands inside `acc`.
                unsafe {
                    match simd {
                        Simd::Avx512 => grad_image_avx512(xt, dyn_, g, cp, acc),
                        Simd::Avx2 => grad_image_avx2(xt, dyn_, g, cp, acc),
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (xt, dyn_, &acc);
            });
        }
    });
    // `total` is `[t][o][c']`; the kernel is `[o][c][t]`.
    let mut dw = vec![0f32; g.co * g.c * taps];
    for (t, plane) in total.chunks_exact(g.co * cp).enumerate() {
        for (o, row) in plane.chunks_exact(cp).enumerate() {
            for (c, &v) in row[..g.c].iter().enumerate() {
                dw[(o * g.c + c) * taps + t] = v;
            }
        }
    }
    Some(dw)
}

/// [`grad_image`] on AVX-512, its blocks of `OB TB CVB = 24` sums by the number of channel
/// vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn grad_image_avx512(xt: &[f32], dy: &[f32], g: &Geom, cp: usize, acc: &mut [f32]) {
    let cv = cp / Avx512::L;
    // SAFETY: see `kernel_grad_in`.
    unsafe {
        if cv.is_multiple_of(4) {
            grad_image::<Avx512, 6, 1, 4>(xt, dy, g, cp, acc);
        } else if cv.is_multiple_of(2) {
            grad_image::<Avx512, 4, 3, 2>(xt, dy, g, cp, acc);
        } else {
            grad_image::<Avx512, 8, 3, 1>(xt, dy, g, cp, acc);
        }
    }
}

/// [`grad_image`] on AVX2 + FMA, its blocks of 8-12 sums (16 registers): 2 x 1 x 4 and
/// 6 x 1 x 2, the fastest of the block shapes tried on ResNet-18 width 0.25's layers
/// (docs/performance.md, "CPU: AVX2 direct convolution").
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_image_avx2(xt: &[f32], dy: &[f32], g: &Geom, cp: usize, acc: &mut [f32]) {
    let cv = cp / Avx2::L;
    // SAFETY: see `kernel_grad_in`.
    unsafe {
        if cv.is_multiple_of(4) {
            grad_image::<Avx2, 2, 1, 4>(xt, dy, g, cp, acc);
        } else if cv.is_multiple_of(2) {
            grad_image::<Avx2, 6, 1, 2>(xt, dy, g, cp, acc);
        } else {
            grad_image::<Avx2, 4, 3, 1>(xt, dy, g, cp, acc);
        }
    }
}

/// One image `C x H x W` into `xt`, `(H + 2 pad) x (W + 2 pad) x cp`, zeros around and in the
/// channels past `C`. Whole blocks of a vector's lanes by as many columns of a row are
/// transposed in registers: element by element, the copy took half as long as the gradient
/// itself.
fn channels_last_padded(simd: Simd, x: &[f32], g: &Geom, cp: usize, xt: &mut [f32]) {
    let wpad = g.w + 2 * g.pad;
    let row_len = wpad * cp;
    if cp != g.c {
        xt.fill(0.0);
    } else {
        // Only the border: `pad` rows above and below, `pad` columns left and right.
        let (top, bottom) = (g.pad * row_len, (g.h + g.pad) * row_len);
        xt[..top].fill(0.0);
        xt[bottom..].fill(0.0);
        for row in xt[top..bottom].chunks_exact_mut(row_len) {
            row[..g.pad * cp].fill(0.0);
            row[(g.pad + g.w) * cp..].fill(0.0);
        }
    }
    let l = simd.lanes();
    let blocked = g.c.is_multiple_of(l) && g.w.is_multiple_of(l);
    for ih in 0..g.h {
        let dst = &mut xt[(ih + g.pad) * row_len + g.pad * cp..][..g.w * cp];
        #[cfg(target_arch = "x86_64")]
        if blocked {
            for c0 in (0..g.c).step_by(l) {
                for w0 in (0..g.w).step_by(l) {
                    let src = &x[(c0 * g.h + ih) * g.w + w0..];
                    let dst = &mut dst[w0 * cp + c0..];
                    // SAFETY: `simd` is supported (see `kernel_grad_in`); the `l` rows read
                    // are `src[c * H W..][..l]` for `c < l`, inside the image as `c0 + l <= C`
                    // and `w0 + l <= W`, and the `l` written are `dst[(w0 + j) * cp + c0..]
                    // [..l]` (the transposes assert it).
                    unsafe {
                        match simd {
                            Simd::Avx512 => transpose_avx512(src, g.h * g.w, dst, cp),
                            Simd::Avx2 => transpose_avx2(src, g.h * g.w, dst, cp),
                        }
                    }
                }
            }
            continue;
        }
        let _ = blocked;
        for c in 0..g.c {
            let src = &x[(c * g.h + ih) * g.w..][..g.w];
            for (iw, &v) in src.iter().enumerate() {
                dst[iw * cp + c] = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_avx512(src: &[f32], ld_src: usize, dst: &mut [f32], ld_dst: usize) {
    // SAFETY: compiled for AVX-512F, which the caller checked; the bounds are asserted inside.
    unsafe { Avx512::transpose(src, ld_src, dst, ld_dst) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_avx2(src: &[f32], ld_src: usize, dst: &mut [f32], ld_dst: usize) {
    // SAFETY: compiled for AVX2, which the caller checked; the bounds are asserted inside.
    unsafe { Avx2::transpose(src, ld_src, dst, ld_dst) }
}

/// One image's kernel gradient into `acc` (`[t][o][cp]`), in blocks of `OB` output channels,
/// `TB` taps and `CVB` vectors of input channels. Output channels and taps past the last are
/// clamped to it and their sums dropped; `cp / S::L` is a multiple of `CVB`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn grad_image<S: Vector, const OB: usize, const TB: usize, const CVB: usize>(
    xt: &[f32],
    dy: &[f32],
    g: &Geom,
    cp: usize,
    acc: &mut [f32],
) {
    let l = S::L;
    let (taps, hw, wpad) = (g.k * g.k, g.ho * g.wo, g.w + 2 * g.pad);
    let s = g.stride;
    debug_assert!(xt.len() >= (g.h + 2 * g.pad) * wpad * cp && dy.len() == g.co * hw);
    let (xp, yp) = (xt.as_ptr(), dy.as_ptr());
    for o0 in (0..g.co).step_by(OB) {
        let ys: [usize; OB] = std::array::from_fn(|j| (o0 + j).min(g.co - 1) * hw);
        for t0 in (0..taps).step_by(TB) {
            let tv: [usize; TB] = std::array::from_fn(|i| (t0 + i).min(taps - 1));
            let toff: [usize; TB] =
                std::array::from_fn(|i| ((tv[i] / g.k) * wpad + tv[i] % g.k) * cp);
            for c0 in (0..cp / l).step_by(CVB) {
                // SAFETY (this function's operations): the caller runs it compiled for `S` on
                // a CPU that has it; for the bounds, see `kernel_grad_in`.
                let mut sum = [[[unsafe { S::zero() }; CVB]; TB]; OB];
                for oh in 0..g.ho {
                    let row = s * oh * wpad * cp + c0 * l;
                    for ow in 0..g.wo {
                        let at = row + s * ow * cp;
                        let xv: [[S::V; CVB]; TB] = std::array::from_fn(|i| {
                            std::array::from_fn(|v| unsafe {
                                S::load(xp.add(at + toff[i] + v * l))
                            })
                        });
                        let p = oh * g.wo + ow;
                        for j in 0..OB {
                            let d = unsafe { S::splat(*yp.add(ys[j] + p)) };
                            for i in 0..TB {
                                for v in 0..CVB {
                                    sum[j][i][v] = unsafe { S::fmadd(d, xv[i][v], sum[j][i][v]) };
                                }
                            }
                        }
                    }
                }
                for (j, per_tap) in sum.iter().enumerate().take(g.co - o0) {
                    for (i, vecs) in per_tap.iter().enumerate().take(taps - t0) {
                        for (v, &add) in vecs.iter().enumerate() {
                            let at = ((t0 + i) * g.co + o0 + j) * cp + (c0 + v) * l;
                            let dst = &mut acc[at..at + l];
                            // SAFETY: `dst` holds one vector.
                            unsafe {
                                let cur = S::load(dst.as_ptr());
                                S::store(dst.as_mut_ptr(), S::add(cur, add));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Images per group: the number, up to `2 nv`, whose groups the threads finish soonest, counted
/// in tiles per thread (the groups spread evenly, the last tile of a group maybe part empty);
/// the fewest of equals. An 8x8 map is four AVX-512 vectors: one image a group leaves two of
/// six slots empty, three fill four tiles; at batch 32 on two threads, three 32x32 images a
/// group made 11 groups, six for one thread and five for the other, where two made 16.
fn group(hw: usize, b: usize, lanes: usize, nv: usize) -> usize {
    let vectors = hw.div_ceil(lanes);
    let cost = |gn: usize| b.div_ceil(gn).div_ceil(threads()) * (gn * vectors).div_ceil(nv);
    (1..=(2 * nv).min(b).max(1))
        .min_by_key(|&gn| (cost(gn), gn))
        .unwrap_or(1)
}

/// Every tile of one group of images, block of output channels by block, in `simd`.
fn run_group(simd: Simd, x: &[f32], packed: &[f32], g: &Geom, plan: &Plan, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `forward_in` asserted that this CPU has `simd`; every unmasked lane of a
        // load is inside `x` (the plan's masks keep each tap inside its image's plane) and
        // every unmasked lane of a store inside `out` (image `i`, channel `blk CB + j < Co`).
        unsafe {
            match simd {
                Simd::Avx512 => run_group_avx512(x, packed, g, plan, out),
                Simd::Avx2 => run_group_avx2(x, packed, g, plan, out),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (simd, x, packed, g, plan, out);
        unreachable!("the direct convolution runs only on x86-64 with AVX-512 or AVX2");
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_group_avx512(x: &[f32], packed: &[f32], g: &Geom, plan: &Plan, out: &mut [f32]) {
    // SAFETY: see `run_group`.
    unsafe { run_tiles::<Avx512, { AVX512_TILE.0 }, { AVX512_TILE.1 }>(x, packed, g, plan, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_group_avx2(x: &[f32], packed: &[f32], g: &Geom, plan: &Plan, out: &mut [f32]) {
    // SAFETY: see `run_group`.
    unsafe { run_tiles::<Avx2, { AVX2_TILE.0 }, { AVX2_TILE.1 }>(x, packed, g, plan, out) }
}

/// [`run_group`]'s loops, for tiles of `CB` output channels by `NV` vectors of `S`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn run_tiles<S: Vector, const CB: usize, const NV: usize>(
    x: &[f32],
    packed: &[f32],
    g: &Geom,
    plan: &Plan,
    out: &mut [f32],
) {
    debug_assert_eq!(plan.nv, NV);
    let (hp, wp) = phase_dims(g);
    let hw = g.ho * g.wo;
    let block = plan.taps * g.c * CB;
    for (blk, wb) in packed.chunks_exact(block).enumerate() {
        let channels = (g.co - blk * CB).min(CB);
        for tile in 0..plan.tiles() {
            let at = tile * plan.taps * NV;
            let offs = &plan.x_off[at..at + plan.taps * NV];
            let masks = &plan.x_mask[at..at + plan.taps * NV];
            let dst = &plan.out[tile * NV..(tile + 1) * NV];
            // SAFETY: see `run_group`.
            unsafe {
                one_tile::<S, CB, NV>(
                    x,
                    wb,
                    (g.c, hp * wp, hw),
                    (offs, masks),
                    (dst, blk * CB * hw, channels),
                    out,
                );
            }
        }
    }
}

/// One tile: `CB` output channels by `NV` vectors of `S::L` outputs, summed over the `C` input
/// channels (stride `x_cs` in `x`, `hw` in `out`) and the taps, tap by tap so that each slot's
/// offset and mask stay in registers over the channel loop.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn one_tile<S: Vector, const CB: usize, const NV: usize>(
    x: &[f32],
    w: &[f32],
    (c, x_cs, hw): (usize, usize, usize),
    (offs, masks): (&[isize], &[u16]),
    (dst, out_base, channels): (&[(usize, u16)], usize, usize),
    out: &mut [f32],
) {
    let taps = offs.len() / NV;
    debug_assert_eq!(w.len(), taps * c * CB);
    // SAFETY (this function's operations): the caller runs it compiled for `S` on a CPU that
    // has it; unmasked lanes are in bounds (see `run_group`), masked ones not accessed.
    let mut acc = [[unsafe { S::zero() }; NV]; CB];
    let xp = x.as_ptr();
    for t in 0..taps {
        let off: [isize; NV] = std::array::from_fn(|v| offs[t * NV + v]);
        let mask: [S::Mask; NV] = std::array::from_fn(|v| unsafe { S::mask(masks[t * NV + v]) });
        let wt = &w[t * c * CB..(t + 1) * c * CB];
        for (ci, wc) in wt.chunks_exact(CB).enumerate() {
            let base = xp.wrapping_add(ci * x_cs);
            let xv: [S::V; NV] = std::array::from_fn(|v| unsafe {
                S::load_masked(mask[v], base.wrapping_offset(off[v]))
            });
            for j in 0..CB {
                let wj = unsafe { S::splat(wc[j]) };
                for v in 0..NV {
                    acc[j][v] = unsafe { S::fmadd(wj, xv[v], acc[j][v]) };
                }
            }
        }
    }
    let op = out.as_mut_ptr();
    for (j, row) in acc.iter().enumerate().take(channels) {
        for (v, &(o, m)) in dst.iter().enumerate() {
            unsafe { S::store_masked(op.add(out_base + j * hw + o), S::mask(m), row[v]) };
        }
    }
}
