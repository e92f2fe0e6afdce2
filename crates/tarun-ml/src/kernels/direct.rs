//! A direct convolution on AVX-512, without an im2col matrix: the 3x3 convolutions of
//! ResNet-18 and VGG-11-BN on 16-128 channels ("same" at stride 1, and stride 2), forward and
//! both gradients.
//!
//! im2col + GEMM copies each input element nine times into the column matrix, and gemm then
//! packs that matrix once more; on ResNet-18 width 0.25 (16-32 channels, 32x32 and 16x16 maps)
//! the copies were a fifth of an inference pass and the GEMM ran at 120-150 GFLOP/s.
//!
//! * **Forward:** each kernel tap `(dy, dx)` is a shift of the whole flattened plane by
//!   `dy W + dx` (as in `conv::im2col_same`), so a vector of 16 consecutive outputs reads 16
//!   consecutive inputs, with a lane mask for those that fall off a row or off the plane: a
//!   masked load straight from the NCHW input. A tile is [`NV`] such vectors (several images'
//!   on small maps) times [`CB`] output channels, 24 accumulators in registers over the whole
//!   `C k k` reduction, stored once. At stride 2 the input is first split into its four phases
//!   (even and odd rows and columns), where each tap is again a shift ([`split_phases`]).
//! * **Input gradient** (stride 1): the same kernel on `dY` with the kernel turned.
//! * **Kernel gradient:** the input channels in the vector lanes over a padded channels-last
//!   copy of each image ([`kernel_grad`]).

use rayon::prelude::*;

use super::conv::{Epilogue, Geom};
use super::{par_filled, threads};

/// Output channels per tile: one broadcast weight each.
const CB: usize = 8;
/// Vectors of 16 outputs per tile.
const NV: usize = 3;
/// Lanes per vector.
const L: usize = 16;

/// Whether the direct kernel runs `g` here: a convolution of a kernel of 3x3 to 7x7 at stride 1
/// with "same" padding or at stride 2 with an output of half the input (rounded up), on a CPU
/// with AVX-512, with at least one image per thread (the tiles split over images) and output
/// maps of at least 16 positions (a 2x2 map filled a quarter of each vector: 50 against
/// im2col's 120 GFLOP/s). 1x1 convolutions are one GEMM without im2col and stay there (the
/// direct kernel measured 5-45 % slower on MobileNetV2's and ResNet-18's).
pub(super) fn applies(g: &Geom) -> bool {
    let (hp, wp) = phase_dims(g);
    let shape = (3..=7).contains(&g.k)
        && g.pad < g.k
        && (g.stride == 1 || g.stride == 2)
        && (g.ho, g.wo) == (hp, wp)
        && g.b >= threads()
        && g.ho * g.wo >= L
        && g.c.min(g.co) <= 128;
    shape && enabled()
}

/// The size of the input's phases at the convolution's stride `s`: phase `(ry, rx)` holds the
/// input's rows `s i + ry` and columns `s j + rx`, and a tap `(ki, kj)` reads one phase shifted
/// (see [`Plan::new`]). At stride 1 the one phase is the input.
fn phase_dims(g: &Geom) -> (usize, usize) {
    (g.h.div_ceil(g.stride), g.w.div_ceil(g.stride))
}

/// [`available`], unless `TARUN_NO_DIRECT` is set (for measuring this kernel against im2col +
/// GEMM in the same build); read once.
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| available() && std::env::var_os("TARUN_NO_DIRECT").is_none())
}

/// Whether this CPU has AVX-512, which the kernel is written in.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Where a group's tiles read and write, relative to the group's first image: for tile `i`,
/// slot `v` and tap `t`, the input offset `x_off[(i * taps + t) * NV + v]` and its lane mask;
/// the output offset (channel 0) and store mask of slot `v` in `out[i * NV + v]`. Unused
/// slots of the last tile have empty masks. The input is the group's phases (at stride 1, its
/// images): `[image][phase][channel][Hp x Wp]`.
struct Plan {
    taps: usize,
    x_off: Vec<isize>,
    x_mask: Vec<u16>,
    out: Vec<(usize, u16)>,
}

impl Plan {
    fn new(g: &Geom, gn: usize) -> Self {
        let (hp, wp) = phase_dims(g);
        let (hw, taps, s) = (g.ho * g.wo, g.k * g.k, g.stride as isize);
        let image = g.stride * g.stride * g.c * hp * wp;
        let slots: Vec<(usize, usize)> = (0..gn)
            .flat_map(|i| (0..hw).step_by(L).map(move |p| (i, p)))
            .collect();
        let tiles = slots.len().div_ceil(NV);
        let mut plan = Plan {
            taps,
            x_off: vec![0; tiles * taps * NV],
            x_mask: vec![0; tiles * taps * NV],
            out: vec![(0, 0); tiles * NV],
        };
        // Tap `(ki, kj)` reads input row `s oh + ki - pad = s (oh + dy) + ry`: phase row
        // `oh + dy` of phase `(ry, rx)`.
        let split = |a: usize| {
            let a = a as isize - g.pad as isize;
            (a.div_euclid(s), a.rem_euclid(s) as usize)
        };
        for (slot, &(i, p)) in slots.iter().enumerate() {
            let (tile, v) = (slot / NV, slot % NV);
            let lanes = (hw - p).min(L);
            plan.out[slot] = (i * g.co * hw + p, ((1u32 << lanes) - 1) as u16);
            for t in 0..taps {
                let ((dy, ry), (dx, rx)) = (split(t / g.k), split(t % g.k));
                let phase = (ry * g.stride + rx) * g.c * hp * wp;
                let mut mask = 0u16;
                for l in 0..lanes {
                    let (oh, ow) = (((p + l) / wp) as isize, ((p + l) % wp) as isize);
                    let (ih, iw) = (oh + dy, ow + dx);
                    if (0..hp as isize).contains(&ih) && (0..wp as isize).contains(&iw) {
                        mask |= 1 << l;
                    }
                }
                let at = (tile * taps + t) * NV + v;
                plan.x_off[at] = (i * image + phase + p) as isize + dy * wp as isize + dx;
                plan.x_mask[at] = mask;
            }
        }
        plan
    }

    /// [`Plan::new`], kept for the next call with the same shapes: building it took 2 % of a
    /// ResNet-18 width 0.25 batch 32 inference pass, every pass asking for the same few.
    fn cached(g: &Geom, gn: usize) -> std::sync::Arc<Plan> {
        type Key = (usize, usize, usize, usize, usize, usize, usize, usize);
        static PLANS: std::sync::Mutex<Vec<(Key, std::sync::Arc<Plan>)>> =
            std::sync::Mutex::new(Vec::new());
        let key = (g.c, g.co, g.h, g.w, g.k, g.stride, g.pad, gn);
        let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, plan)) = plans.iter().find(|(k, _)| *k == key) {
            return plan.clone();
        }
        let plan = std::sync::Arc::new(Plan::new(g, gn));
        if plans.len() >= 64 {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        plan
    }

    fn tiles(&self) -> usize {
        self.out.len() / NV
    }
}

/// The kernel `Co x C x k x k` in blocks of [`CB`] output channels, `[block][tap][c][j]`, the
/// last block padded with zeros.
fn pack_weights(w: &[f32], g: &Geom) -> Vec<f32> {
    let (taps, blocks) = (g.k * g.k, g.co.div_ceil(CB));
    let mut packed = vec![0f32; blocks * taps * g.c * CB];
    // Block by block on all threads (the last stage's kernels are 147K weights, packed for
    // every call), each written in order.
    packed
        .par_chunks_mut(taps * g.c * CB)
        .enumerate()
        .for_each(|(blk, block)| {
            for o in blk * CB..(blk * CB + CB).min(g.co) {
                let j = o - blk * CB;
                for t in 0..taps {
                    let dst = &mut block[t * g.c * CB..(t + 1) * g.c * CB];
                    for (c, v) in dst.iter_mut().skip(j).step_by(CB).enumerate() {
                        *v = w[(o * g.c + c) * taps + t];
                    }
                }
            }
        });
    packed
}

/// The forward convolution of `x` (`B x C x H x W`) by `w` (`Co x C x k x k`), followed by `epi`
/// if given. Only where [`applies`] holds.
pub(super) fn forward(x: &[f32], w: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    let hw = g.ho * g.wo;
    let total = g.b * g.co * hw;
    if total == 0 {
        return Vec::new();
    }
    let gn = group(hw, g.b);
    let full = Plan::cached(g, gn);
    let rest = (!g.b.is_multiple_of(gn)).then(|| Plan::cached(g, g.b % gn));
    let packed = pack_weights(w, g);
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
            run_group(xg, &packed, g, plan, out);
        } else {
            super::with_scratch(count * image, 0, |phases, _| {
                split_phases(xg, g, phases);
                run_group(phases, &packed, g, plan, out);
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
    let back = Geom::new(&[g.b, g.co, g.h, g.w], &[g.c, g.co, g.k, g.k], 1, g.pad).ok()?;
    if !(g.stride == 1 && applies(g) && applies(&back)) {
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
    Some(forward(dy, &turned, &back, None))
}

/// dL/dW of the convolution `g`, where the direct forward runs it:
/// `dW[o][c][t] = sum_(n, p) dY[n][o][p] X[n][c][s p + t]`, with the input channels in the
/// vector lanes. Each image's input is first laid out `H' x W' x C'` (padded rows and columns,
/// channels rounded up to 16, zeros around), so that every tap of every output position reads
/// whole vectors of channels; a block of output channels, taps and channel vectors keeps its
/// 24 sums in registers over all of an image's positions, one broadcast of `dY` per output
/// channel and position. im2col + GEMM wrote the input out nine times (`col`) and had gemm
/// pack it again.
pub(super) fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Option<Vec<f32>> {
    let (cv, taps) = (g.c.div_ceil(L), g.k * g.k);
    let cp = cv * L;
    // The 3-channel stem would fill 3 of 16 lanes (1.6x slower than im2col + GEMM).
    if !applies(g) || 2 * g.c <= cp {
        return None;
    }
    let padded = (g.h + 2 * g.pad) * (g.w + 2 * g.pad) * cp;
    let hw = g.ho * g.wo;
    let total = super::sum_over_groups((g.b, 1), taps * g.co * cp, |acc, n0, count, _| {
        for n in n0..n0 + count {
            super::with_scratch(padded + L, 0, |xt, _| {
                // Rows of whole cache lines: loads split across two lines cost twice.
                let start = xt.as_ptr().align_offset(64).min(L);
                let xt = &mut xt[start..start + padded];
                channels_last_padded(&x[n * g.chw()..(n + 1) * g.chw()], g, cp, xt);
                let dyn_ = &dy[n * g.co * hw..(n + 1) * g.co * hw];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `applies` checked AVX-512; every load is inside `xt` (the padded
                // layout covers every tap of every output position) or `dy` (channel indices
                // clamped to the last), every sum lands inside `acc`.
                unsafe {
                    if cv.is_multiple_of(4) {
                        grad_image::<6, 1, 4>(xt, dyn_, g, cp, acc);
                    } else if cv.is_multiple_of(2) {
                        grad_image::<4, 3, 2>(xt, dyn_, g, cp, acc);
                    } else {
                        grad_image::<8, 3, 1>(xt, dyn_, g, cp, acc);
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

/// One image `C x H x W` into `xt`, `(H + 2 pad) x (W + 2 pad) x cp`, zeros around and in the
/// channels past `C`. Whole 16 x 16 blocks (16 channels by 16 columns of a row) are transposed
/// in registers: element by element, the copy took half as long as the gradient itself.
fn channels_last_padded(x: &[f32], g: &Geom, cp: usize, xt: &mut [f32]) {
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
    let blocked = g.c.is_multiple_of(L) && g.w.is_multiple_of(L);
    for ih in 0..g.h {
        let dst = &mut xt[(ih + g.pad) * row_len + g.pad * cp..][..g.w * cp];
        #[cfg(target_arch = "x86_64")]
        if blocked {
            for c0 in (0..g.c).step_by(L) {
                for w0 in (0..g.w).step_by(L) {
                    let src = &x[(c0 * g.h + ih) * g.w + w0..];
                    // SAFETY: `applies` checked AVX-512; the 16 rows read are `src[c * H W..]
                    // [..16]` for `c < 16`, inside the image as `c0 + 16 <= C` and `w0 + 16 <=
                    // W`, and the 16 written are `dst[(w0 + j) * cp + c0..][..16]`.
                    unsafe { transpose16(src, g.h * g.w, &mut dst[w0 * cp + c0..], cp) };
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

/// `dst[j * ld_dst + i] = src[i * ld_src + j]` for `i, j < 16`: the 16 x 16 transpose of
/// unpacks and 128-bit lane shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(src: &[f32], ld_src: usize, dst: &mut [f32], ld_dst: usize) {
    use std::arch::x86_64::*;
    assert!(src.len() > 15 * ld_src + 15 && dst.len() > 15 * ld_dst + 15);
    // SAFETY: the assertion bounds every row read and written.
    let mut r: [__m512; 16] =
        std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.as_ptr().add(i * ld_src)) });
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let pd = |a: __m512, b: __m512, hi: bool| {
        let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
        _mm512_castpd_ps(if hi {
            _mm512_unpackhi_pd(a, b)
        } else {
            _mm512_unpacklo_pd(a, b)
        })
    };
    for q in 0..4 {
        let (a, b) = (t[4 * q], t[4 * q + 2]);
        let (c, d) = (t[4 * q + 1], t[4 * q + 3]);
        r[4 * q] = pd(a, b, false);
        r[4 * q + 1] = pd(a, b, true);
        r[4 * q + 2] = pd(c, d, false);
        r[4 * q + 3] = pd(c, d, true);
    }
    for h in 0..2 {
        for i in 0..4 {
            let (a, b) = (r[8 * h + i], r[8 * h + 4 + i]);
            t[8 * h + i] = _mm512_shuffle_f32x4::<0x88>(a, b);
            t[8 * h + 4 + i] = _mm512_shuffle_f32x4::<0xdd>(a, b);
        }
    }
    for i in 0..8 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
        r[8 + i] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[8 + i]);
    }
    for (j, v) in r.iter().enumerate() {
        // SAFETY: see the assertion.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr().add(j * ld_dst), *v) };
    }
}

/// One image's kernel gradient into `acc` (`[t][o][cp]`), in blocks of `OB` output channels,
/// `TB` taps and `CVB` vectors of input channels (`OB TB CVB = 24` sums). Output channels and
/// taps past the last are clamped to it and their sums dropped; `cp / 16` is a multiple of
/// `CVB`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn grad_image<const OB: usize, const TB: usize, const CVB: usize>(
    xt: &[f32],
    dy: &[f32],
    g: &Geom,
    cp: usize,
    acc: &mut [f32],
) {
    use std::arch::x86_64::*;
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
            for c0 in (0..cp / L).step_by(CVB) {
                let mut sum = [[[_mm512_setzero_ps(); CVB]; TB]; OB];
                for oh in 0..g.ho {
                    let row = s * oh * wpad * cp + c0 * L;
                    for ow in 0..g.wo {
                        let at = row + s * ow * cp;
                        // SAFETY: see `kernel_grad`.
                        let xv: [[__m512; CVB]; TB] = std::array::from_fn(|i| {
                            std::array::from_fn(|v| unsafe {
                                _mm512_loadu_ps(xp.add(at + toff[i] + v * L))
                            })
                        });
                        let p = oh * g.wo + ow;
                        for j in 0..OB {
                            // SAFETY: see `kernel_grad`.
                            let d = _mm512_set1_ps(unsafe { *yp.add(ys[j] + p) });
                            for i in 0..TB {
                                for v in 0..CVB {
                                    sum[j][i][v] = _mm512_fmadd_ps(d, xv[i][v], sum[j][i][v]);
                                }
                            }
                        }
                    }
                }
                for (j, per_tap) in sum.iter().enumerate().take(g.co - o0) {
                    for (i, vecs) in per_tap.iter().enumerate().take(taps - t0) {
                        for (v, &add) in vecs.iter().enumerate() {
                            let at = ((t0 + i) * g.co + o0 + j) * cp + (c0 + v) * L;
                            let dst = &mut acc[at..at + L];
                            // SAFETY: `dst` holds 16 floats.
                            unsafe {
                                let cur = _mm512_loadu_ps(dst.as_ptr());
                                _mm512_storeu_ps(dst.as_mut_ptr(), _mm512_add_ps(cur, add));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Images per group: the number, up to `2 NV`, whose groups the threads finish soonest, counted
/// in tiles per thread (the groups spread evenly, the last tile of a group maybe part empty);
/// the fewest of equals. An 8x8 map is four vectors: one image a group leaves two of six
/// slots empty, three fill four tiles; at batch 32 on two threads, three 32x32 images a group
/// made 11 groups, six for one thread and five for the other, where two made 16.
fn group(hw: usize, b: usize) -> usize {
    let vectors = hw.div_ceil(L);
    let cost = |gn: usize| b.div_ceil(gn).div_ceil(threads()) * (gn * vectors).div_ceil(NV);
    (1..=(2 * NV).min(b).max(1))
        .min_by_key(|&gn| (cost(gn), gn))
        .unwrap_or(1)
}

/// Every tile of one group of images, block of output channels by block.
fn run_group(x: &[f32], packed: &[f32], g: &Geom, plan: &Plan, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
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
                // SAFETY: `applies` checked AVX-512; every unmasked lane of a load is inside
                // `x` (the plan's masks keep each tap inside its image's plane) and every
                // unmasked lane of a store inside `out` (image `i`, channel `blk*CB + j < Co`).
                unsafe {
                    tile_avx512(
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
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, packed, g, plan, out);
        unreachable!("the direct convolution runs only on x86-64 with AVX-512");
    }
}

/// One tile: [`CB`] output channels by [`NV`] vectors of 16 outputs, summed over the `C` input
/// channels (stride `x_cs` in `x`, `hw` in `out`) and the taps, tap by tap so that each slot's offset and mask
/// stay in registers over the channel loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    x: &[f32],
    w: &[f32],
    (c, x_cs, hw): (usize, usize, usize),
    (offs, masks): (&[isize], &[u16]),
    (dst, out_base, channels): (&[(usize, u16)], usize, usize),
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps = offs.len() / NV;
    debug_assert_eq!(w.len(), taps * c * CB);
    let mut acc = [[_mm512_setzero_ps(); NV]; CB];
    let xp = x.as_ptr();
    for t in 0..taps {
        let off: [isize; NV] = std::array::from_fn(|v| offs[t * NV + v]);
        let mask: [u16; NV] = std::array::from_fn(|v| masks[t * NV + v]);
        let wt = &w[t * c * CB..(t + 1) * c * CB];
        for (ci, wc) in wt.chunks_exact(CB).enumerate() {
            let base = xp.wrapping_add(ci * x_cs);
            // SAFETY: see `run_group`: unmasked lanes are in bounds, masked ones not accessed.
            let xv: [__m512; NV] = std::array::from_fn(|v| unsafe {
                _mm512_maskz_loadu_ps(mask[v], base.wrapping_offset(off[v]))
            });
            for j in 0..CB {
                let wj = _mm512_set1_ps(wc[j]);
                for v in 0..NV {
                    acc[j][v] = _mm512_fmadd_ps(wj, xv[v], acc[j][v]);
                }
            }
        }
    }
    let op = out.as_mut_ptr();
    for (j, row) in acc.iter().enumerate().take(channels) {
        for (v, &(o, m)) in dst.iter().enumerate() {
            // SAFETY: see `run_group`.
            unsafe { _mm512_mask_storeu_ps(op.add(out_base + j * hw + o), m, row[v]) };
        }
    }
}
