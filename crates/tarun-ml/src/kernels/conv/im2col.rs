//! Dense 2-D convolution by batched im2col + GEMM, written straight into NCHW: the general
//! algorithm, for every stride, padding and kernel size (and the reference the others are tested
//! against).
//!
//! The batch is cut into groups of images. Per group, one thread unfolds the images into a
//! column matrix `col` of `C*k*k` rows and `G*Ho*Wo` columns and multiplies `W (Co x C*k*k)` by
//! it. Only maps smaller than 8x8 are grouped, so that each product has at least 64 columns
//! (see [`Geom::group`]). The gradients reuse the same pieces:
//!
//! * `dx`: `dcol = W^T dY`, folded back into the image (col2im, accumulating overlaps);
//! * `dW^T = sum over groups of col dY^T`, one accumulator per thread, summed at the end.
//!
//! A stride-1, unpadded 1x1 convolution skips the unfolding: the image is its own column matrix;
//! on maps under 64 positions it runs one strided product per position instead
//! ([`pointwise_by_position`]).
//! `col` is recomputed in backward rather than stored, so a convolution keeps only its input.

use multiversion::multiversion;

use super::{Epilogue, Geom};
use crate::kernels::{
    View, matmul, matmul_strided, par_filled, sum_over_groups, threads, with_scratch,
};

/// How this algorithm groups images.
impl Geom {
    /// A pointwise convolution on a map of fewer than 64 positions, which
    /// [`pointwise_by_position`] runs.
    fn by_position(&self) -> bool {
        self.pointwise() && self.out_hw() < 64
    }

    /// Images per group: at least 64 columns (the height of gemm's full AVX-512 microkernel,
    /// four registers of 16; with fewer, small maps run on its slow one-register edge kernel),
    /// few enough that the batch still splits over all threads and that `col` stays within about
    /// 16 MB. Every map of 8x8 or more is then one image per product: grouping more columns costs
    /// a copy of the input into `col` (even for 1x1 convolutions) and of the product out to NCHW,
    /// and was not faster (docs/performance.md, third and fourth rounds).
    fn group(&self) -> usize {
        let per_thread = self.b.div_ceil(threads()).max(1);
        let wide = 64usize.div_ceil(self.out_hw().max(1));
        let memory = (4 << 20) / (self.ckk() * self.out_hw()).max(1);
        wide.min(per_thread).min(memory.max(1)).max(1)
    }
}

/// Unfolds one image into columns `[off, off + Ho*Wo)` of `col` (row stride `ld`).
fn im2col(x: &[f32], g: &Geom, col: &mut [f32], ld: usize, off: usize) {
    let (k, s, p) = (g.k, g.stride, g.pad);
    if same_padded(g) {
        return im2col_same(x, g, col, ld, off);
    }
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..k {
            for kj in 0..k {
                let row = (c * k + ki) * k + kj;
                let dst = &mut col[row * ld + off..row * ld + off + g.out_hw()];
                let (lo, hi) = g.valid_cols(kj);
                for oh in 0..g.ho {
                    let d = &mut dst[oh * g.wo..(oh + 1) * g.wo];
                    let ih = (oh * s + ki).wrapping_sub(p);
                    if ih >= g.h {
                        d.fill(0.0);
                        continue;
                    }
                    d[..lo].fill(0.0);
                    d[hi..].fill(0.0);
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    if s == 1 {
                        let start = lo + kj - p;
                        d[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                    } else {
                        for (ow, v) in d[lo..hi].iter_mut().enumerate() {
                            *v = src[(lo + ow) * s + kj - p];
                        }
                    }
                }
            }
        }
    }
}

/// Stride 1 with "same" padding (`Ho = H`, `Wo = W`) and the padding inside the map: each
/// kernel tap is then a shift of the whole plane (see [`im2col_same`]).
fn same_padded(g: &Geom) -> bool {
    g.stride == 1 && g.ho == g.h && g.wo == g.w && g.pad < g.h && g.pad < g.w
}

/// For one kernel tap of a [`same_padded`] convolution: the output rows whose source row is
/// inside the plane, `[oh_lo, oh_hi)`; the column offset `dx`; the shift from an output index to
/// its source index; and the index range `[lo, hi)` whose sources stay inside the plane. Inside
/// that range only the columns listed by [`edge_cols`] read across a row edge.
fn tap(g: &Geom, ki: usize, kj: usize) -> (isize, isize, isize, isize, isize, isize) {
    let (h, w) = (g.h as isize, g.w as isize);
    let (dy, dx) = (ki as isize - g.pad as isize, kj as isize - g.pad as isize);
    // Never empty, as |dy| <= pad < H.
    let (oh_lo, oh_hi) = ((-dy).max(0), (h - dy).min(h));
    let (lo, hi) = (oh_lo * w + (-dx).max(0), oh_hi * w - dx.max(0));
    (oh_lo, oh_hi, dx, dy * w + dx, lo, hi)
}

/// Zeroes every entry of a tap's row (`dst`, one image's `H*W` block) whose source column
/// `ow + dx` is outside the row, in the output rows `[oh_lo, oh_hi)`.
fn edge_cols(dst: &mut [f32], w: usize, (oh_lo, oh_hi, dx): (isize, isize, isize)) {
    let cols = if dx < 0 {
        0..-dx
    } else {
        w as isize - dx..w as isize
    };
    for ow in cols {
        let first = (oh_lo * w as isize + ow) as usize;
        dst[first..]
            .iter_mut()
            .step_by(w)
            .take((oh_hi - oh_lo) as usize)
            .for_each(|v| *v = 0.0);
    }
}

/// [`col2im`] for [`same_padded`] convolutions, the mirror of [`im2col_same`]: the entries of
/// `col` that read across a row edge are zeroed (`col` is scratch), then each tap is one long
/// add of its row into the shifted plane. Each input element receives its contributions in the
/// same order as the row-by-row loop, so the result is the same to the bit.
#[inline(always)]
fn col2im_same(col: &mut [f32], ld: usize, off: usize, g: &Geom, dx_img: &mut [f32]) {
    let (k, hw) = (g.k, g.h * g.w);
    for c in 0..g.c {
        let plane = &mut dx_img[c * hw..(c + 1) * hw];
        for ki in 0..k {
            for kj in 0..k {
                let row = (c * k + ki) * k + kj;
                let src = &mut col[row * ld + off..row * ld + off + hw];
                let (oh_lo, oh_hi, dx, shift, lo, hi) = tap(g, ki, kj);
                edge_cols(src, g.w, (oh_lo, oh_hi, dx));
                let dst = &mut plane[(lo + shift) as usize..(hi + shift) as usize];
                for (a, b) in dst.iter_mut().zip(&src[lo as usize..hi as usize]) {
                    *a += b;
                }
            }
        }
    }
}

/// [`im2col`] for stride 1 with "same" padding (`Ho = H`, `Wo = W`, `pad < H, W`), the 3x3
/// convolutions that make up most of ResNet-18 and VGG: each kernel tap's row is the input plane
/// shifted by `(ki - pad) * W + (kj - pad)`, so it is one long copy, then the rows above or below
/// the plane and the entries that wrapped across a row edge are zeroed. Copying row by row
/// instead cost a `memcpy` call per output row, which dominated on the 4x4 and 8x8 maps.
fn im2col_same(x: &[f32], g: &Geom, col: &mut [f32], ld: usize, off: usize) {
    let (k, hw) = (g.k, g.h * g.w);
    for c in 0..g.c {
        let plane = &x[c * hw..(c + 1) * hw];
        for ki in 0..k {
            for kj in 0..k {
                let row = (c * k + ki) * k + kj;
                let dst = &mut col[row * ld + off..row * ld + off + hw];
                let (oh_lo, oh_hi, dx, shift, lo, hi) = tap(g, ki, kj);
                // Rows above and below the plane.
                dst[..oh_lo as usize * g.w].fill(0.0);
                dst[oh_hi as usize * g.w..].fill(0.0);
                // dst[i] = plane[i + shift] over [lo, hi); the entries just outside it are
                // edge columns, zeroed with the rest of them.
                dst[lo as usize..hi as usize]
                    .copy_from_slice(&plane[(lo + shift) as usize..(hi + shift) as usize]);
                edge_cols(dst, g.w, (oh_lo, oh_hi, dx));
            }
        }
    }
}

/// Folds columns `[off, off + Ho*Wo)` of `col` back into one image's gradient, adding overlaps.
/// Compiled for AVX2+FMA and SSE4.2 as well as the baseline: its adds are the vector loops here.
#[multiversion(targets = "simd")]
fn col2im(col: &mut [f32], ld: usize, off: usize, g: &Geom, dx: &mut [f32]) {
    let (k, s, p) = (g.k, g.stride, g.pad);
    if same_padded(g) {
        return col2im_same(col, ld, off, g, dx);
    }
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..k {
            for kj in 0..k {
                let row = (c * k + ki) * k + kj;
                let src = &col[row * ld + off..row * ld + off + g.out_hw()];
                let (lo, hi) = g.valid_cols(kj);
                for oh in 0..g.ho {
                    let ih = (oh * s + ki).wrapping_sub(p);
                    if ih >= g.h {
                        continue;
                    }
                    let d = &mut plane[ih * g.w..(ih + 1) * g.w];
                    let srow = &src[oh * g.wo..(oh + 1) * g.wo];
                    if s == 1 {
                        let start = lo + kj - p;
                        for (a, b) in d[start..start + hi - lo].iter_mut().zip(&srow[lo..hi]) {
                            *a += b;
                        }
                    } else {
                        for ow in lo..hi {
                            d[ow * s + kj - p] += srow[ow];
                        }
                    }
                }
            }
        }
    }
}

/// Unfolds images `[n0, n0 + gn)` into `col` (`C*k*k` x `gn*Ho*Wo`).
/// `col` must hold exactly `C*k*k * gn*Ho*Wo` elements; every one is written.
fn unfold_group(x: &[f32], g: &Geom, n0: usize, gn: usize, col: &mut [f32]) {
    let ld = gn * g.out_hw();
    debug_assert_eq!(col.len(), g.ckk() * ld);
    for i in 0..gn {
        let img = &x[(n0 + i) * g.chw()..(n0 + i + 1) * g.chw()];
        im2col(img, g, col, ld, i * g.out_hw());
    }
}

/// `dy` of images `[n0, n0 + gn)` as one `Co x gn*Ho*Wo` matrix: a slice of `dy` for one
/// image, else copied into `buf`, which must then hold exactly `Co * gn*Ho*Wo` elements.
fn dy_rows<'a>(dy: &'a [f32], g: &Geom, n0: usize, gn: usize, buf: &'a mut [f32]) -> &'a [f32] {
    let (hw, ld) = (g.out_hw(), gn * g.out_hw());
    if gn == 1 {
        return &dy[n0 * g.co * hw..(n0 + 1) * g.co * hw];
    }
    debug_assert_eq!(buf.len(), g.co * ld);
    for i in 0..gn {
        let img = &dy[(n0 + i) * g.co * hw..(n0 + i + 1) * g.co * hw];
        for o in 0..g.co {
            buf[o * ld + i * hw..o * ld + (i + 1) * hw].copy_from_slice(&img[o * hw..(o + 1) * hw]);
        }
    }
    buf
}

/// The scratch sizes of the two gradients for a group of `gn` images: the gathered `dy` (none
/// for one image) and the column matrix (none for one image of a pointwise convolution).
fn grad_scratch(g: &Geom, gn: usize) -> (usize, usize) {
    let n = gn * g.out_hw();
    let dyg = if gn == 1 { 0 } else { g.co * n };
    let col = if gn == 1 && g.pointwise() {
        0
    } else {
        g.ckk() * n
    };
    (dyg, col)
}

/// The forward convolution, followed by `epi` if given (or one product per map position,
/// [`pointwise_by_position`]).
pub(in crate::kernels) fn forward(
    x: &[f32],
    w: &[f32],
    g: &Geom,
    epi: Option<&Epilogue>,
) -> Vec<f32> {
    if g.by_position() {
        return pointwise_by_position(x, View::transposed(w, g.c), g, g.co, epi);
    }
    let (hw, ckk) = (g.out_hw(), g.ckk());
    let total = g.b * g.co * hw;
    if total == 0 {
        return Vec::new();
    }
    let gs = g.group();
    let inner = if g.b < threads() { threads() } else { 1 };
    par_filled(total, gs * g.co * hw, |gi, out| {
        let (n0, gn) = (gi * gs, out.len() / (g.co * hw));
        let wv = View::rows(w, ckk);
        if gn == 1 && g.pointwise() {
            let img = &x[n0 * g.chw()..(n0 + 1) * g.chw()];
            matmul(out, wv, View::rows(img, hw), (g.co, hw, ckk), false, inner);
            if let Some(e) = epi {
                e.apply(out, n0, g.co, hw);
            }
            return;
        }
        let tmp_len = if gn == 1 { 0 } else { g.co * gn * hw };
        with_scratch(ckk * gn * hw, tmp_len, |col, tmp| {
            unfold_group(x, g, n0, gn, col);
            let cv = View::rows(col, gn * hw);
            if gn == 1 {
                matmul(out, wv, cv, (g.co, hw, ckk), false, inner);
                return;
            }
            matmul(tmp, wv, cv, (g.co, gn * hw, ckk), false, inner);
            for i in 0..gn {
                for o in 0..g.co {
                    let src = &tmp[o * gn * hw + i * hw..o * gn * hw + (i + 1) * hw];
                    out[(i * g.co + o) * hw..(i * g.co + o + 1) * hw].copy_from_slice(src);
                }
            }
        });
        if let Some(e) = epi {
            e.apply(out, n0, g.co, hw);
        }
    })
}

/// A pointwise convolution on maps of fewer than 64 positions (MobileNetV2's 4x4, 2x2 and 1x1
/// maps), one product per map position: for position `p`, the `p`-th entries of a group's
/// images form a `gn x C` matrix inside NCHW (row stride `C*H*W`, column stride `H*W`), and
/// `Y[:, :, p] = X[:, :, p] W^T`, read and written in place by gemm's strided operands. An
/// image per product had only `H*W` columns (gemm's one-register edge kernel); grouping images
/// copied them into a column matrix and back out. `src` has `c_in` channels and `wt` is the
/// `c_in x c_out` kernel operand (`W^T` forward, `W` for the input gradient).
fn pointwise_by_position(
    src: &[f32],
    wt: View,
    g: &Geom,
    c_out: usize,
    epi: Option<&Epilogue>,
) -> Vec<f32> {
    let hw = g.out_hw();
    let c_in = src.len() / (g.b * hw).max(1);
    let total = g.b * c_out * hw;
    if total == 0 {
        return Vec::new();
    }
    let gs = g.b.div_ceil(threads()).max(1);
    let inner = if g.b < threads() { threads() } else { 1 };
    par_filled(total, gs * c_out * hw, |gi, out| {
        let (n0, gn) = (gi * gs, out.len() / (c_out * hw));
        for p in 0..hw {
            let a = View {
                data: &src[n0 * c_in * hw + p..],
                rs: c_in * hw,
                cs: hw,
            };
            let dst = &mut out[p..];
            matmul_strided(
                dst,
                (c_out * hw, hw),
                a,
                wt,
                (gn, c_out, c_in),
                false,
                inner,
            );
        }
        if let Some(e) = epi {
            e.apply(out, n0, c_out, hw);
        }
    })
}

/// dL/dx from dL/dy, as `W^T dY` and col2im (or one product per map position).
pub(in crate::kernels) fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Vec<f32> {
    if g.by_position() {
        return pointwise_by_position(dy, View::rows(w, g.c), g, g.c, None);
    }
    let (hw, ckk) = (g.out_hw(), g.ckk());
    let total = g.b * g.chw();
    if total == 0 {
        return Vec::new();
    }
    let gs = g.group();
    let inner = if g.b < threads() { threads() } else { 1 };
    let wt = View::transposed(w, ckk);
    par_filled(total, gs * g.chw(), |gi, out| {
        let (n0, gn) = (gi * gs, out.len() / g.chw());
        let (dyg_len, dcol_len) = grad_scratch(g, gn);
        with_scratch(dyg_len, dcol_len, |dyg, dcol| {
            let dv = View::rows(dy_rows(dy, g, n0, gn, dyg), gn * hw);
            if gn == 1 && g.pointwise() {
                matmul(out, wt, dv, (ckk, hw, g.co), false, inner);
                return;
            }
            matmul(dcol, wt, dv, (ckk, gn * hw, g.co), false, inner);
            for i in 0..gn {
                col2im(
                    &mut *dcol,
                    gn * hw,
                    i * hw,
                    g,
                    &mut out[i * g.chw()..(i + 1) * g.chw()],
                );
            }
        })
    })
}

/// dL/dW from the input and dL/dy.
///
/// Each group adds `col dY^T` to an accumulator held transposed (`C*k*k x Co`). gemm computes
/// a row-major product as its column-major transpose, so this makes `dY` (`Co` rows) the operand
/// it packs across the long `gn*Ho*Wo` dimension; accumulating `dW = dY col^T` row-major instead
/// made it pack `col`, `k*k` times larger, with a strided gather that took a quarter of ResNet-18
/// width 0.25's training step. The sum is transposed into `Co x C*k*k` once at the end.
pub(in crate::kernels) fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (hw, ckk) = (g.out_hw(), g.ckk());
    let total = sum_over_groups((g.b, g.group()), ckk * g.co, |acc, n0, gn, inner| {
        let (dyg_len, col_len) = grad_scratch(g, gn);
        with_scratch(dyg_len, col_len, |dyg, col| {
            let rows = dy_rows(dy, g, n0, gn, dyg);
            let cols: &[f32] = if gn == 1 && g.pointwise() {
                &x[n0 * g.chw()..(n0 + 1) * g.chw()]
            } else {
                unfold_group(x, g, n0, gn, col);
                col
            };
            let (cv, dt) = (View::rows(cols, gn * hw), View::transposed(rows, gn * hw));
            matmul(acc, cv, dt, (ckk, g.co, gn * hw), true, inner);
        })
    });
    // `total` is `C*k*k x Co`; the kernel is `Co x C*k*k`.
    let mut dw = vec![0f32; g.co * ckk];
    for (r, row) in total.chunks_exact(g.co).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            dw[o * ckk + r] = v;
        }
    }
    dw
}
