//! A direct "same" convolution (stride 1, odd `k`, padding `k / 2`) on AVX-512, without an
//! im2col matrix: the 3x3 convolutions of ResNet-18 and VGG-11-BN on 16-128 channels.
//!
//! im2col + GEMM copies each input element nine times into the column matrix, and gemm then
//! packs that matrix once more; on ResNet-18 width 0.25 (16-32 channels, 32x32 and 16x16 maps)
//! the copies were a fifth of an inference pass and the GEMM ran at 120-150 GFLOP/s. Here each
//! kernel tap `(dy, dx)` is a shift of the whole flattened plane by `dy W + dx` (as in
//! `conv::im2col_same`), so a vector of 16 consecutive outputs reads 16 consecutive inputs,
//! with a lane mask for those that fall off a row or off the plane: a masked load straight from
//! the NCHW input. A tile is [`NV`] such vectors (several images' on small maps) times [`CB`]
//! output channels, 24 accumulators in registers over the whole `C k k` reduction, stored once.

use rayon::prelude::*;

use super::conv::{Epilogue, Geom};
use super::{threads, zeroed};

/// Output channels per tile: one broadcast weight each.
const CB: usize = 8;
/// Vectors of 16 outputs per tile.
const NV: usize = 3;
/// Lanes per vector.
const L: usize = 16;

/// Whether the direct kernel runs `g` here: a "same" convolution of a small odd kernel, on a
/// CPU with AVX-512, with at least one image per thread (the tiles split over images) and maps
/// of at least 16 positions (a 2x2 map filled a quarter of each vector: 50 against im2col's 120
/// GFLOP/s).
pub(super) fn applies(g: &Geom) -> bool {
    let shape = g.k % 2 == 1
        && g.k <= 7
        && g.stride == 1
        && g.pad == g.k / 2
        && g.ho == g.h
        && g.wo == g.w
        && g.b >= threads()
        && g.h * g.w >= L
        && g.c.min(g.co) <= 128;
    shape && enabled()
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
/// slots of the last tile have empty masks.
struct Plan {
    taps: usize,
    x_off: Vec<isize>,
    x_mask: Vec<u16>,
    out: Vec<(usize, u16)>,
}

impl Plan {
    fn new(g: &Geom, gn: usize) -> Self {
        let (hw, taps) = (g.h * g.w, g.k * g.k);
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
        let r = g.pad as isize;
        for (s, &(i, p)) in slots.iter().enumerate() {
            let (tile, v) = (s / NV, s % NV);
            let lanes = (hw - p).min(L);
            plan.out[s] = (i * g.co * hw + p, ((1u32 << lanes) - 1) as u16);
            for t in 0..taps {
                let (dy, dx) = ((t / g.k) as isize - r, (t % g.k) as isize - r);
                let mut mask = 0u16;
                for l in 0..lanes {
                    let (oh, ow) = (((p + l) / g.w) as isize, ((p + l) % g.w) as isize);
                    let (ih, iw) = (oh + dy, ow + dx);
                    if (0..g.h as isize).contains(&ih) && (0..g.w as isize).contains(&iw) {
                        mask |= 1 << l;
                    }
                }
                let at = (tile * taps + t) * NV + v;
                plan.x_off[at] = (i * g.c * hw + p) as isize + dy * g.w as isize + dx;
                plan.x_mask[at] = mask;
            }
        }
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
    for o in 0..g.co {
        let (blk, j) = (o / CB, o % CB);
        for c in 0..g.c {
            for t in 0..taps {
                packed[((blk * taps + t) * g.c + c) * CB + j] = w[(o * g.c + c) * taps + t];
            }
        }
    }
    packed
}

/// The forward convolution of `x` (`B x C x H x W`) by `w` (`Co x C x k x k`), followed by `epi`
/// if given. Only where [`applies`] holds.
pub(super) fn forward(x: &[f32], w: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    let hw = g.h * g.w;
    let mut y = zeroed(g.b * g.co * hw);
    if y.is_empty() {
        return y;
    }
    let gn = group(hw, g.b);
    let full = Plan::new(g, gn);
    let rest = (!g.b.is_multiple_of(gn)).then(|| Plan::new(g, g.b % gn));
    let packed = pack_weights(w, g);
    y.par_chunks_mut(gn * g.co * hw)
        .enumerate()
        .for_each(|(gi, out)| {
            let n0 = gi * gn;
            let plan = match &rest {
                Some(p) if out.len() < gn * g.co * hw => p,
                _ => &full,
            };
            let xg = &x[n0 * g.c * hw..];
            run_group(xg, &packed, g, plan, out);
            if let Some(e) = epi {
                e.apply(out, n0, g.co, hw);
            }
        });
    y
}

/// dL/dx of the forward convolution `g`, where the direct kernel runs it: for a "same"
/// convolution at stride 1, `dX[c][q] = sum_(o, t) dY[o][q - s_t] W[o][c][t]` with `s_t` tap
/// `t`'s shift, which is the same convolution of `dY` with the kernel turned by 180 degrees
/// and its channels swapped (taps `t` and `k k - 1 - t` have opposite shifts).
pub(super) fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Option<Vec<f32>> {
    let back = Geom::new(&[g.b, g.co, g.h, g.w], &[g.c, g.co, g.k, g.k], 1, g.pad).ok()?;
    if !(applies(g) && applies(&back)) {
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

/// Images per group: of `1..=NV`, the fewest that leave the smallest share of the last tile's
/// slots empty (an 8x8 map is four vectors: one image a group left two of six slots empty,
/// three fill four tiles), within one group per thread.
fn group(hw: usize, b: usize) -> usize {
    let vectors = hw.div_ceil(L);
    let waste = |gn: usize| {
        let slots = gn * vectors;
        (slots.div_ceil(NV) * NV - slots) as f64 / slots as f64
    };
    let most = NV.min(b.div_ceil(threads())).max(1);
    (1..=most)
        .min_by(|&a, &b| waste(a).total_cmp(&waste(b)))
        .unwrap_or(1)
}

/// Every tile of one group of images, block of output channels by block.
fn run_group(x: &[f32], packed: &[f32], g: &Geom, plan: &Plan, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let hw = g.h * g.w;
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
                        (g.c, hw),
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
/// channels (stride `hw` in `x`) and the taps, tap by tap so that each slot's offset and mask
/// stay in registers over the channel loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    x: &[f32],
    w: &[f32],
    (c, hw): (usize, usize),
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
            let base = xp.wrapping_add(ci * hw);
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
