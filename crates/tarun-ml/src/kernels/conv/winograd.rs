//! 3x3 stride-1 "same" convolutions by Winograd's minimal filtering F(2x2, 3x3).
//!
//! Most of ResNet-18's and VGG-11-BN's work is 3x3 convolutions with stride 1 and padding 1.
//! im2col + GEMM spends 9 multiply-adds per output, input and output channel; F(2x2, 3x3)
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes each
//! 2x2 tile of outputs from a 4x4 tile of input with 16, a 2.25-fold cut:
//!
//! * kernel: `U = G w G^T` (4x4 per output and input channel);
//! * input: `V = B^T d B` for every overlapping 4x4 input tile `d` (stride 2, padding as zeros);
//! * 16 GEMMs, one per tile element `xi`: `M[xi] (Co x T) = U[xi] (Co x C) V[xi] (C x T)`,
//!   `T` tiles of a group of images side by side;
//! * output: `Y = A^T M A` (2x2), cut at the map's edge for odd sizes.
//!
//! The backward is the exact gradient of those steps: `dx` is the same algorithm on `dy` with
//! the kernel flipped and its channels swapped (a "same" 3x3 convolution's input gradient), and
//! `dW = G^T (sum over tiles of (A dY A^T) V^T) G`, its GEMMs summed in a fixed order
//! ([`crate::kernels::sum_over_groups`]). The transforms only add, subtract and halve, so
//! results differ from direct convolution by rounding alone (the tests hold them to im2col's and
//! Candle's).
//!
//! Small channel counts keep im2col: with a short `C` the 16 products are too thin for GEMM to
//! pay for the transforms (see `choose.rs`). What it gains is in docs/performance.md (fourth
//! round).

use rayon::prelude::*;

use super::{Epilogue, Geom};
use crate::kernels::{View, matmul, par_filled, sum_over_groups, threads, with_scratch};

/// Tiles per image: `(rows, columns)` of 2x2 output tiles.
fn tiles(g: &Geom) -> (usize, usize) {
    (g.h.div_ceil(2), g.w.div_ceil(2))
}

/// Images per group: the batch split evenly over the threads, and few enough that the
/// transformed input and product (`16 (C + Co) T`) stay within about 16 MB.
fn group(g: &Geom) -> usize {
    let (th, tw) = tiles(g);
    let per_image = 16 * (g.c + g.co) * th * tw;
    let per_thread = g.b.div_ceil(threads()).max(1);
    per_thread.min(((4 << 20) / per_image.max(1)).max(1))
}

/// `U = G w G^T` for every output and input channel, output channel by output channel on all
/// threads: `u[(o * 16 + xi) * C + c]`, so that tile element `xi` is a `Co x C` matrix of row
/// stride `16 C` ([`kernel_view`]). Each output channel's kernel (`C x 9`) is first transposed
/// to nine rows of `C`, so that the transform runs along the input channels.
///
/// With `flipped`, the kernel is taken rotated by 180 degrees with its channels swapped (`w` is
/// `C x Co x 3 x 3`): a "same" convolution's input gradient.
fn transform_kernel(w: &[f32], co: usize, c: usize, flipped: bool) -> Vec<f32> {
    // Written on all threads as it is computed (ResNet-18 width 1's last stage: 16.8 MB a
    // convolution, for every inference pass, which a serial `memset` first zeroed).
    par_filled(16 * co * c, 16 * c, |o, u| {
        let mut taps = vec![0f32; 9 * c];
        for ci in 0..c {
            for t in 0..9 {
                taps[t * c + ci] = if flipped {
                    w[(ci * co + o) * 9 + 8 - t]
                } else {
                    w[(o * c + ci) * 9 + t]
                };
            }
        }
        // G k (4x3), kernel column by kernel column: k0j, (k0j + k1j + k2j)/2,
        // (k0j - k1j + k2j)/2, k2j; then (G k) G^T, the same along each row of G k.
        let mut gk = vec![0f32; 12 * c];
        for j in 0..3 {
            let col = [
                &taps[j * c..][..c],
                &taps[(3 + j) * c..][..c],
                &taps[(6 + j) * c..][..c],
            ];
            let rows: Vec<&mut [f32]> = gk.chunks_exact_mut(c).skip(j).step_by(3).collect();
            spread(col, rows);
        }
        for r in 0..4 {
            let row = [
                &gk[(r * 3) * c..][..c],
                &gk[(r * 3 + 1) * c..][..c],
                &gk[(r * 3 + 2) * c..][..c],
            ];
            spread(
                row,
                u[r * 4 * c..(r + 1) * 4 * c].chunks_exact_mut(c).collect(),
            );
        }
    })
}

/// `G` applied along three vectors `[a, b, d]`: `out = [a, (a + b + d)/2, (a - b + d)/2, d]`.
fn spread([a, b, d]: [&[f32]; 3], out: Vec<&mut [f32]>) {
    let [o0, o1, o2, o3] = <[&mut [f32]; 4]>::try_from(out).expect("four rows");
    o0.copy_from_slice(a);
    o3.copy_from_slice(d);
    for i in 0..a.len() {
        o1[i] = 0.5 * (a[i] + b[i] + d[i]);
        o2[i] = 0.5 * (a[i] - b[i] + d[i]);
    }
}

/// Tile element `xi` of [`transform_kernel`]'s output as a `Co x C` matrix.
fn kernel_view(u: &[f32], xi: usize, c: usize) -> View<'_> {
    View {
        data: &u[xi * c..],
        rs: 16 * c,
        cs: 1,
    }
}

/// `V = B^T d B` for every 4x4 input tile of `imgs` (`n` images, `C x H x W`): 16 row-major
/// `C x T` matrices, `T = n * tiles`, tile `(ty, tx)` of image `i` in column
/// `(i * rows + ty) * cols + tx`.
///
/// Each plane, padding included, is first split by the parity of its padded rows and columns
/// into four `(rows + 1) x (cols + 1)` quarters (`e`/`o`: even/odd rows; then columns). Tile
/// `(ty, tx)` reads padded rows `2ty .. 2ty + 3`, which are even row `ty`, odd row `ty`, even
/// row `ty + 1` and odd row `ty + 1`, and the same for columns: `B^T d` over the rows of all
/// tiles is then eight flat vector operations per plane, and `(B^T d) B` one short contiguous
/// loop per tile row.
fn transform_input(imgs: &[f32], g: &Geom, n: usize, v: &mut [f32]) {
    let (th, tw) = tiles(g);
    let t_all = n * th * tw;
    let (pw, q) = (tw + 1, (th + 1) * (tw + 1));
    let whole = g.w / 2;
    // The quarters [even rows: even, odd columns; odd rows: even, odd columns], whose padding
    // entries are never written and stay zero; then `B^T d`: four rows of tiles per column
    // parity, each `rows x (cols + 1)`.
    let mut quarters = vec![0f32; 4 * q];
    let mut bt = vec![0f32; 8 * th * pw];
    for i in 0..n {
        for c in 0..g.c {
            let plane = &imgs[(i * g.c + c) * g.h * g.w..][..g.h * g.w];
            // Input row ih is padded row ih + 1: odd padded rows hold the even input rows. Input
            // column iw is padded column iw + 1: even padded column 2j holds input column 2j - 1.
            for (ih, src) in plane.chunks_exact(g.w).enumerate() {
                let (r, half) = (ih.div_ceil(2), if ih % 2 == 1 { 0 } else { 2 });
                let (ev, od) = quarters[half * q..(half + 2) * q].split_at_mut(q);
                let (e, o) = (&mut ev[r * pw..(r + 1) * pw], &mut od[r * pw..(r + 1) * pw]);
                let mut pairs = src.chunks_exact(2);
                for ((p, o), e) in pairs.by_ref().zip(&mut o[..whole]).zip(&mut e[1..=whole]) {
                    *o = p[0];
                    *e = p[1];
                }
                if let [last] = pairs.remainder() {
                    o[whole] = *last;
                }
            }
            let len = th * pw;
            for cols in 0..2 {
                let (er, or) = (&quarters[cols * q..][..q], &quarters[(2 + cols) * q..][..q]);
                let (e0, e1, o0, o1) =
                    (&er[..len], &er[pw..pw + len], &or[..len], &or[pw..pw + len]);
                let at = |b: usize| (cols * 4 + b) * len;
                let out = bt.get_disjoint_mut([0, 1, 2, 3].map(|b| at(b)..at(b) + len));
                b_transpose([e0, o0, e1, o1], out.expect("four separate rows"));
            }
            for a in 0..4 {
                let (re, ro) = (
                    &bt[a * len..(a + 1) * len],
                    &bt[(4 + a) * len..(5 + a) * len],
                );
                for ty in 0..th {
                    let base = (i * th + ty) * tw;
                    let (re, ro) = (&re[ty * pw..(ty + 1) * pw], &ro[ty * pw..(ty + 1) * pw]);
                    let (e0, e1, o0, o1) = (&re[..tw], &re[1..], &ro[..tw], &ro[1..]);
                    let at = |b: usize| ((a * 4 + b) * g.c + c) * t_all + base;
                    let out = v.get_disjoint_mut([0, 1, 2, 3].map(|b| at(b)..at(b) + tw));
                    b_transpose([e0, o0, e1, o1], out.expect("four separate rows"));
                }
            }
        }
    }
}

/// `B^T d` along four equal-length vectors `d0..d3` (consecutive rows, or columns, of tiles):
/// `out = [d0 - d2, d1 + d2, d2 - d1, d1 - d3]`, element by element.
fn b_transpose([d0, d1, d2, d3]: [&[f32]; 4], [b0, b1, b2, b3]: [&mut [f32]; 4]) {
    // Every slice cut to one length up front, so the loop runs without bounds checks.
    let n = b0.len();
    let (d0, d1, d2, d3) = (&d0[..n], &d1[..n], &d2[..n], &d3[..n]);
    let (b1, b2, b3) = (&mut b1[..n], &mut b2[..n], &mut b3[..n]);
    for j in 0..n {
        b0[j] = d0[j] - d2[j];
        b1[j] = d1[j] + d2[j];
        b2[j] = d2[j] - d1[j];
        b3[j] = d1[j] - d3[j];
    }
}

/// `Y = A^T M A` for every tile: `m` holds 16 row-major `Co x T` matrices for `n` images;
/// `out` receives the images (`Co x H x W`), every element written. Per output channel the
/// four outputs of all `T` tiles are computed in one pass over the 16 rows (`y`, scratch of
/// `4 T`), then interleaved into the maps.
fn transform_output(m: &[f32], g: &Geom, n: usize, out: &mut [f32]) {
    let (th, tw) = tiles(g);
    let t_all = n * th * tw;
    let hw = g.h * g.w;
    let mut y = vec![0f32; 4 * t_all];
    for o in 0..g.co {
        let e: [&[f32]; 16] = std::array::from_fn(|xi| &m[(xi * g.co + o) * t_all..][..t_all]);
        let (y0, rest) = y.split_at_mut(t_all);
        let (y1, rest) = rest.split_at_mut(t_all);
        let (y2, y3) = rest.split_at_mut(t_all);
        for t in 0..t_all {
            // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3; then the same on columns.
            let r = |b: usize| {
                let (m1, m2) = (e[4 + b][t], e[8 + b][t]);
                (e[b][t] + m1 + m2, m1 - m2 - e[12 + b][t])
            };
            let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
            y0[t] = r0.0 + r1.0 + r2.0;
            y1[t] = r1.0 - r2.0 - r3.0;
            y2[t] = r0.1 + r1.1 + r2.1;
            y3[t] = r1.1 - r2.1 - r3.1;
        }
        for i in 0..n {
            let map = &mut out[(i * g.co + o) * hw..][..hw];
            for ty in 0..th {
                let base = (i * th + ty) * tw;
                for (dy, (left, right)) in [(&*y0, &*y1), (&*y2, &*y3)].into_iter().enumerate() {
                    let oh = 2 * ty + dy;
                    if oh < g.h {
                        let row = &mut map[oh * g.w..(oh + 1) * g.w];
                        interleave(row, &left[base..base + tw], &right[base..base + tw]);
                    }
                }
            }
        }
    }
}

/// `row[2j] = a[j]`, `row[2j + 1] = b[j]`, as far as `row` goes (an odd width drops the last
/// `b`).
fn interleave(row: &mut [f32], a: &[f32], b: &[f32]) {
    let mut pairs = row.chunks_exact_mut(2);
    for ((p, &x), &y) in pairs.by_ref().zip(a).zip(b) {
        p[0] = x;
        p[1] = y;
    }
    if let [last] = pairs.into_remainder() {
        *last = a[a.len() - 1];
    }
}

/// `dM = A dY A^T` for every tile of `n` images of `dy` (`Co x H x W`, zero beyond the map),
/// transposed: 16 row-major `T x Co` matrices (so that the kernel gradient's GEMM reads it
/// along its rows without packing). Per tile row, each output channel's two output rows are
/// split into even and odd columns, transformed as vectors over the tiles into `buf`
/// (`16 x cols x Co`, cache-resident), and `buf` is copied out row by row.
fn transform_output_grad(dy: &[f32], g: &Geom, n: usize, dm: &mut [f32]) {
    let (th, tw) = tiles(g);
    let (t_all, hw, co) = (n * th * tw, g.h * g.w, g.co);
    // The even and odd columns of the top output row, then of the bottom one.
    let mut split = vec![0f32; 4 * tw];
    let mut pair = vec![0f32; 2 * tw];
    let mut buf = vec![0f32; 16 * tw * co];
    for i in 0..n {
        for ty in 0..th {
            for o in 0..co {
                let map = &dy[(i * co + o) * hw..][..hw];
                split.fill(0.0);
                for (r, halves) in split.chunks_exact_mut(2 * tw).enumerate() {
                    let oh = 2 * ty + r;
                    if oh < g.h {
                        let (ev, od) = halves.split_at_mut(tw);
                        let row = &map[oh * g.w..(oh + 1) * g.w];
                        for (j, p) in row.chunks(2).enumerate() {
                            ev[j] = p[0];
                            od[j] = p.get(1).copied().unwrap_or(0.0);
                        }
                    }
                }
                let (d00, rest) = split.split_at(tw);
                let (d01, rest) = rest.split_at(tw);
                let (d10, d11) = rest.split_at(tw);
                // A d: rows d0, d0 + d1, d0 - d1, -d1, each a pair (left x, right y) per
                // tile; then each row becomes x, x + y, x - y, -y.
                let (x, y) = pair.split_at_mut(tw);
                for a in 0..4 {
                    for t in 0..tw {
                        (x[t], y[t]) = match a {
                            0 => (d00[t], d01[t]),
                            1 => (d00[t] + d10[t], d01[t] + d11[t]),
                            2 => (d00[t] - d10[t], d01[t] - d11[t]),
                            _ => (-d10[t], -d11[t]),
                        };
                    }
                    for t in 0..tw {
                        let at = |b: usize| ((a * 4 + b) * tw + t) * co + o;
                        buf[at(0)] = x[t];
                        buf[at(1)] = x[t] + y[t];
                        buf[at(2)] = x[t] - y[t];
                        buf[at(3)] = -y[t];
                    }
                }
            }
            let base = (i * th + ty) * tw;
            for (xi, rows) in buf.chunks_exact(tw * co).enumerate() {
                dm[(xi * t_all + base) * co..][..tw * co].copy_from_slice(rows);
            }
        }
    }
}

/// The forward convolution.
pub(in crate::kernels) fn forward(
    x: &[f32],
    w: &[f32],
    g: &Geom,
    epi: Option<&Epilogue>,
) -> Vec<f32> {
    convolve(x, &transform_kernel(w, g.co, g.c, false), g, epi)
}

/// The forward convolution with the kernel already transformed.
fn convolve(x: &[f32], u: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    let (hw, (th, tw)) = (g.out_hw(), tiles(g));
    let total = g.b * g.co * hw;
    if total == 0 {
        return Vec::new();
    }
    let gs = group(g);
    let inner = if g.b < threads() { threads() } else { 1 };
    par_filled(total, gs * g.co * hw, |gi, out| {
        let (n0, gn) = (gi * gs, out.len() / (g.co * hw));
        let t = gn * th * tw;
        with_scratch(16 * g.c * t, 16 * g.co * t, |v, m| {
            transform_input(&x[n0 * g.chw()..(n0 + gn) * g.chw()], g, gn, v);
            for xi in 0..16 {
                let uv = kernel_view(u, xi, g.c);
                let vv = View::rows(&v[xi * g.c * t..(xi + 1) * g.c * t], t);
                let dst = &mut m[xi * g.co * t..(xi + 1) * g.co * t];
                matmul(dst, uv, vv, (g.co, t, g.c), false, inner);
            }
            transform_output(m, g, gn, out);
        });
        if let Some(e) = epi {
            e.apply(out, n0, g.co, hw);
        }
    })
}

/// dL/dx from dL/dy: the forward on `dy` with the kernel flipped and its channels swapped.
pub(in crate::kernels) fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Vec<f32> {
    let swapped = Geom {
        c: g.co,
        co: g.c,
        ..*g
    };
    convolve(dy, &transform_kernel(w, g.c, g.co, true), &swapped, None)
}

/// dL/dW from the input and dL/dy.
pub(in crate::kernels) fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (c, co) = (g.c, g.co);
    let mut dw = vec![0f32; co * c * 9];
    if g.b == 0 {
        return dw;
    }
    let (th, tw) = tiles(g);
    // 16 `C x Co` sums of `V dM^T` (held transposed, as conv's kernel gradient).
    let du = sum_over_groups((g.b, group(g)), 16 * c * co, |acc, n0, gn, inner| {
        let t = gn * th * tw;
        with_scratch(16 * c * t, 16 * co * t, |v, dm| {
            transform_input(&x[n0 * g.chw()..(n0 + gn) * g.chw()], g, gn, v);
            let dyg = &dy[n0 * co * g.out_hw()..(n0 + gn) * co * g.out_hw()];
            transform_output_grad(dyg, g, gn, dm);
            for xi in 0..16 {
                let vv = View::rows(&v[xi * c * t..(xi + 1) * c * t], t);
                let dt = View::rows(&dm[xi * t * co..(xi + 1) * t * co], co);
                let a = &mut acc[xi * c * co..(xi + 1) * c * co];
                matmul(a, vv, dt, (c, co, t), true, inner);
            }
        })
    });
    // dW = G^T dU G per output and input channel.
    let g_t = |u: [f32; 4]| {
        let (s, d) = (0.5 * (u[1] + u[2]), 0.5 * (u[1] - u[2]));
        [u[0] + s, d, s + u[3]]
    };
    dw.par_chunks_mut(c * 9).enumerate().for_each(|(o, dw)| {
        for (ci, k) in dw.chunks_exact_mut(9).enumerate() {
            let e = |xi: usize| du[(xi * c + ci) * co + o];
            let rows: [[f32; 3]; 4] =
                std::array::from_fn(|a| g_t([e(4 * a), e(4 * a + 1), e(4 * a + 2), e(4 * a + 3)]));
            for j in 0..3 {
                let col = g_t([rows[0][j], rows[1][j], rows[2][j], rows[3][j]]);
                for (i, v) in col.into_iter().enumerate() {
                    k[i * 3 + j] = v;
                }
            }
        }
    });
    dw
}
