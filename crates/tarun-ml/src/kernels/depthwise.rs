//! Depthwise 2-D convolution (`groups == channels`, one k x k filter per channel), as direct
//! loops over each (image, channel) plane.
//!
//! Candle runs a grouped convolution as one convolution per group, and an im2col of a single
//! channel is all overhead: a depthwise layer does 9 multiply-adds per output. Here the planes of
//! one channel from a block of images are padded and, for stride `s`, split into their `s^2`
//! polyphase sub-planes, stacked (per-thread scratch). The output is computed "wide", with the
//! sub-planes' row stride, so that every kernel tap is one contiguous multiply-add over the
//! whole block, which the compiler vectorises: MobileNetV2's late layers have 4x4 and 8x8 maps,
//! and row-by-row (or even plane-by-plane) loops over them were mostly loop overhead. Strips of
//! outputs stay in registers across all the taps. The input gradient is the same sum turned
//! around, a gather from the wide `dy` into each padded sub-plane; the kernel gradient is one
//! dot product per tap and block, summed over the batch in `f64`. The block loops are compiled for
//! AVX2+FMA and SSE4.2 as well as the baseline and picked at run time (`multiversion`).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use multiversion::multiversion;

use super::batchnorm::Activation;
use super::conv::{Epilogue, SMALL_PLANE};
use super::tape::{Backward, Tape, apply2, candle_bwd2};
use super::{channel_planes, dot, f32_data, par_filled, threads, with_scratch};

/// Depthwise `x.conv2d(w, padding, stride, 1, channels)` for contiguous f32 NCHW tensors on the
/// CPU, with a backward pass. `w` is `[C, 1, k, k]`.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    depthwise_conv2d_on(x, w, stride, padding, None)
}

/// [`depthwise_conv2d`], recorded on `tape` when given instead of on Candle's graph.
pub fn depthwise_conv2d_on(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    tape: Option<&Tape>,
) -> Result<Tensor> {
    let geom = Geom::new(x.dims(), w.dims(), stride, padding)?;
    apply2(x, w, DwOp::Forward(geom), tape)
}

/// `act(depthwise_conv2d(x, w) * scale + shift)` per channel, for inference: batch norm in
/// evaluation mode folded into the convolution, each block's planes finished right after they
/// are computed (see [`super::conv2d_affine`]). No backward.
pub fn depthwise_conv2d_affine(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    affine: (&Tensor, &Tensor),
    act: Activation,
) -> Result<Tensor> {
    let geom = Geom::new(x.dims(), w.dims(), stride, padding)?;
    let epi = Epilogue::new("tarun-depthwise-affine", geom.c, affine, act)?;
    x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &DwOp::ForwardAffine(geom, epi))
}

#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geom {
    /// The same convolution for cuDNN: one group per channel.
    #[cfg(feature = "cuda")]
    fn cudnn(&self) -> super::cuda::conv::ConvShape {
        super::cuda::conv::ConvShape {
            b: self.b,
            c: self.c,
            h: self.h,
            w: self.w,
            co: self.c,
            k: self.k,
            stride: self.stride,
            pad: self.pad,
            groups: self.c,
        }
    }

    fn new(x: &[usize], w: &[usize], stride: usize, pad: usize) -> Result<Self> {
        let (&[b, c, h, wd], &[co, one, kh, kw]) = (x, w) else {
            candle_core::bail!("tarun-depthwise: expected 4-d input and kernel, got {x:?}, {w:?}");
        };
        if co != c || one != 1 || kh != kw || kh == 0 || stride == 0 {
            candle_core::bail!(
                "tarun-depthwise: kernel {w:?} is not a square [C, 1, k, k] filter bank for {x:?}"
            );
        }
        if h + 2 * pad < kh || wd + 2 * pad < kw {
            candle_core::bail!("tarun-depthwise: kernel {kh}x{kw} larger than padded {x:?}");
        }
        if kh * kw > MAX_TAPS {
            candle_core::bail!("tarun-depthwise: kernels up to 7x7 only, got {kh}x{kw}");
        }
        Ok(Self {
            b,
            c,
            h,
            w: wd,
            k: kh,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo: (wd + 2 * pad - kw) / stride + 1,
        })
    }

    fn in_plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.ho * self.wo
    }

    /// Rows and columns of one polyphase sub-plane (see [`split_phases`]).
    fn phase_dims(&self) -> (usize, usize) {
        let s = self.stride;
        (
            (self.h + 2 * self.pad).div_ceil(s),
            (self.w + 2 * self.pad).div_ceil(s),
        )
    }

    /// Elements of one image's `stride^2` sub-planes.
    fn phases_len(&self) -> usize {
        let (hq, wq) = self.phase_dims();
        self.stride * self.stride * hq * wq
    }

    /// Images per block: the blocks' sub-planes fill about 32 KB (small maps stack many images
    /// into one long sweep), at most `cap` images.
    fn block(&self, cap: usize) -> usize {
        (8192 / self.phases_len().max(1)).clamp(1, cap.max(1))
    }

    /// Length of the "wide" output of a block of `jn` images: image `j`'s output row `oh` is
    /// row `j*Hq + oh` of a buffer with row stride `Wq` (the sub-planes' shape), cut after the
    /// last image's last output. Columns `Wo..Wq` and rows `Ho..Hq` of each image are scratch.
    fn sweep(&self, jn: usize) -> usize {
        let (hq, wq) = self.phase_dims();
        ((jn - 1) * hq + self.ho - 1) * wq + self.wo
    }

    /// Zeros in front of the wide `dy` in the input gradient: the largest window offset within
    /// a sub-plane, `(k-1)/s` rows and columns (see [`block_input_grad`]).
    fn lead(&self) -> usize {
        let d = (self.k - 1) / self.stride;
        d * self.phase_dims().1 + d
    }

    /// Length of the gradient's wide `dy` buffer for `jn` images: the lead, then a whole
    /// sub-plane's extent (zeros past the sweep), so that every gather stays inside it.
    fn wide_len(&self, jn: usize) -> usize {
        let (hq, wq) = self.phase_dims();
        self.lead() + jn * hq * wq
    }

    /// Calls `f(tap index, window start)` for every kernel tap, in row-major order, for a block
    /// of `jn` images. Output `(oh, ow)` reads padded input `(oh*s + ki, ow*s + kj)`, element
    /// `(oh + ki/s, ow + kj/s)` of sub-plane `(ki % s, kj % s)`, so over the wide output each tap
    /// reads one contiguous window of the sub-planes' buffer.
    #[inline(always)]
    fn for_taps(&self, jn: usize, mut f: impl FnMut(usize, usize)) {
        let (s, (hq, wq)) = (self.stride, self.phase_dims());
        for ki in 0..self.k {
            for kj in 0..self.k {
                let start = ((ki % s) * s + kj % s) * jn * hq * wq + (ki / s) * wq + kj / s;
                f(ki * self.k + kj, start);
            }
        }
    }
}

/// Copies `rows` rows of `w` elements from `src` (row stride `ss`) into `dst` (row stride
/// `ds`). The narrow rows of MobileNetV2's small maps (1, 2, 4 and 8 elements) are copied with
/// fixed-size moves: a `memcpy` call per row cost more than the copy.
#[inline(always)]
fn copy_rows(src: &[f32], ss: usize, dst: &mut [f32], ds: usize, (rows, w): (usize, usize)) {
    #[inline(always)]
    fn fixed<const W: usize>(src: &[f32], ss: usize, dst: &mut [f32], ds: usize, rows: usize) {
        for r in 0..rows {
            let row: &[f32; W] = src[r * ss..r * ss + W].try_into().expect("W elements");
            dst[r * ds..r * ds + W].copy_from_slice(row);
        }
    }
    match w {
        1 => fixed::<1>(src, ss, dst, ds, rows),
        2 => fixed::<2>(src, ss, dst, ds, rows),
        4 => fixed::<4>(src, ss, dst, ds, rows),
        8 => fixed::<8>(src, ss, dst, ds, rows),
        _ => {
            for r in 0..rows {
                dst[r * ds..r * ds + w].copy_from_slice(&src[r * ss..r * ss + w]);
            }
        }
    }
}

/// For a stride of 2 or more and blocks of `jn` images: for each element of an input plane,
/// its place in the sub-planes' buffer relative to its image's part ([`split_phases`]): in
/// sub-plane `a*s + b`, at `r*Wq + q`. Computing that per element (two divisions each) was most
/// of MobileNetV2's depthwise time; a table per block size leaves a load and an add.
struct Maps {
    jn: usize,
    input: Vec<u32>,
}

impl Maps {
    fn new(g: &Geom, jn: usize) -> Self {
        let (s, (hq, wq)) = (g.stride, g.phase_dims());
        let mut input = Vec::new();
        if s > 1 {
            input.reserve(g.h * g.w);
            for ih in 0..g.h {
                let r = ih + g.pad;
                for iw in 0..g.w {
                    let q = iw + g.pad;
                    let phase = (r % s) * s + q % s;
                    let at = phase * jn * hq * wq + (r / s) * wq + q / s;
                    input.push(u32::try_from(at).expect("sub-planes under 16 GB"));
                }
            }
        }
        Self { jn, input }
    }

    /// The tables for blocks of `jn` images out of `total` (the last block may be shorter).
    fn for_blocks(g: &Geom, jn: usize, total: usize) -> [Self; 2] {
        [Self::new(g, jn), Self::new(g, total % jn)]
    }

    /// The table of the two for a block of `jn` images.
    fn pick(maps: &[Self; 2], jn: usize) -> &Self {
        if maps[0].jn == jn { &maps[0] } else { &maps[1] }
    }
}

/// Pads `jn` input planes by `pad` zeros on every side and splits each into `stride^2` polyphase
/// sub-planes of `Hq x Wq`: sub-plane `(a, b)` of image `j` holds padded element
/// `(r*s + a, q*s + b)` at row `j*Hq + r`, column `q`, of sub-plane buffer `(a, b)` (the images
/// stacked). For stride 1 these are the padded planes. Every element of `ph` is written.
#[inline(always)]
fn split_phases<'a>(
    planes: impl Iterator<Item = &'a [f32]>,
    g: &Geom,
    jn: usize,
    maps: &Maps,
    ph: &mut [f32],
) {
    ph.fill(0.0);
    let (hq, wq) = g.phase_dims();
    for (j, x) in planes.enumerate() {
        if g.stride == 1 {
            let at = (j * hq + g.pad) * wq + g.pad;
            copy_rows(x, g.w, &mut ph[at..], wq, (g.h, g.w));
            continue;
        }
        debug_assert_eq!(maps.jn, jn);
        let img = &mut ph[j * hq * wq..];
        for (v, &at) in x.iter().zip(&maps.input) {
            img[at as usize] = *v;
        }
    }
}

/// The inverse of [`split_phases`] for the gradient, for image `j` of the block: plane element
/// `(ih, iw)` from padded `(ih + pad, iw + pad)`.
#[inline(always)]
fn join_phases(ph: &[f32], g: &Geom, (j, jn): (usize, usize), maps: &Maps, x: &mut [f32]) {
    let (hq, wq) = g.phase_dims();
    if g.stride == 1 {
        let at = (j * hq + g.pad) * wq + g.pad;
        copy_rows(&ph[at..], wq, x, g.w, (g.h, g.w));
        return;
    }
    debug_assert_eq!(maps.jn, jn);
    let img = &ph[j * hq * wq..];
    for (v, &at) in x.iter_mut().zip(&maps.input) {
        *v = img[at as usize];
    }
}

/// The `dy` planes of a block in the wide layout (see [`Geom::sweep`]) after [`Geom::lead`]
/// zeros, scratch rows and columns zeroed so that they add nothing.
#[inline(always)]
fn widen<'a>(dys: impl Iterator<Item = &'a [f32]>, g: &Geom, wide: &mut [f32]) {
    let ((hq, wq), lead) = (g.phase_dims(), g.lead());
    wide.fill(0.0);
    for (j, dy) in dys.enumerate() {
        let at = lead + j * hq * wq;
        copy_rows(dy, g.wo, &mut wide[at..], wq, (g.ho, g.wo));
    }
}

/// Wide outputs per strip: kept in registers (8 AVX2 registers) across all the
/// taps, so each tap costs one load per vector instead of a load, an add and a store.
const STRIP: usize = 64;

/// Taps of at most 7x7 kernels (MobileNetV2 has 3x3).
const MAX_TAPS: usize = 49;

/// `out[i] = sum over taps (weight, start) of weight * src[start + i]`, the taps in order, in
/// register-held strips of [`STRIP`] outputs: the forward's and the input gradient's inner loop.
#[inline(always)]
fn correlate(out: &mut [f32], src: &[f32], taps: &[(f32, usize)]) {
    let n = out.len();
    let full = n / STRIP * STRIP;
    for (o, strip) in out[..full].chunks_exact_mut(STRIP).enumerate() {
        let o = o * STRIP;
        let mut r = [0f32; STRIP];
        for &(wv, at) in taps {
            let win: &[f32; STRIP] = src[at + o..at + o + STRIP].try_into().expect("a strip");
            for (r, v) in r.iter_mut().zip(win) {
                *r += wv * v;
            }
        }
        strip.copy_from_slice(&r);
    }
    let rest = &mut out[full..];
    rest.fill(0.0);
    for &(wv, at) in taps {
        for (r, v) in rest.iter_mut().zip(&src[at + full..at + n]) {
            *r += wv * v;
        }
    }
}

/// The taps as `(weight, window start)` pairs, in row-major order (see [`Geom::for_taps`]).
fn tap_list(g: &Geom, jn: usize, w: &[f32]) -> ([(f32, usize); MAX_TAPS], usize) {
    let mut taps = [(0f32, 0usize); MAX_TAPS];
    let mut count = 0;
    g.for_taps(jn, |t, at| {
        taps[count] = (w[t], at);
        count += 1;
    });
    (taps, count)
}

/// Forward of channel `c` for a block of `jn` images (`x` and `y` hold the block's images):
/// `y[oh, ow] = sum_taps w[ki, kj] x[oh*s + ki - p, ow*s + kj - p]`, the taps in row-major
/// order, over the wide output.
#[multiversion(targets = "simd")]
fn block_forward(
    x: &[f32],
    w: &[f32],
    g: &Geom,
    (c, jn): (usize, usize),
    y: &mut [f32],
    (maps, ph, acc): (&Maps, &mut [f32], &mut [f32]),
) {
    split_phases(channel_planes(x, c, g.c, g.in_plane(), jn), g, jn, maps, ph);
    let (taps, count) = tap_list(g, jn, w);
    correlate(acc, ph, &taps[..count]);
    let (hq, wq) = g.phase_dims();
    for j in 0..jn {
        let out = &mut y[(j * g.c + c) * g.out_plane()..(j * g.c + c + 1) * g.out_plane()];
        copy_rows(&acc[j * hq * wq..], wq, out, g.wo, (g.ho, g.wo));
    }
}

/// Input gradient of channel `c` for a block of `jn` images. Each tap adds `w * dy` into its
/// window of the padded sub-planes; written as a gather instead, element `i` of sub-plane `q`
/// is `sum over q's taps of w * dy_wide[i - offset]`: after [`Geom::lead`] zeros in front of
/// `dy`, a [`correlate`] per sub-plane, with the same additions in the same order as the
/// scatter, and register-held like the forward.
#[multiversion(targets = "simd")]
fn block_input_grad(
    dy: &[f32],
    w: &[f32],
    g: &Geom,
    (c, jn): (usize, usize),
    dx: &mut [f32],
    (maps, ph, wide): (&Maps, &mut [f32], &mut [f32]),
) {
    widen(channel_planes(dy, c, g.c, g.out_plane(), jn), g, wide);
    let ((hq, wq), lead) = (g.phase_dims(), g.lead());
    let sub = jn * hq * wq;
    for (q, dsub) in ph.chunks_exact_mut(sub).enumerate() {
        let mut taps = [(0f32, 0usize); MAX_TAPS];
        let mut count = 0;
        g.for_taps(jn, |t, at| {
            if at / sub == q {
                taps[count] = (w[t], lead - at % sub);
                count += 1;
            }
        });
        correlate(dsub, wide, &taps[..count]);
    }
    for j in 0..jn {
        let out = &mut dx[(j * g.c + c) * g.in_plane()..(j * g.c + c + 1) * g.in_plane()];
        join_phases(ph, g, (j, jn), maps, out);
    }
}

/// Channel `c`'s kernel gradient from a block of `jn` images, added to `dw` (k*k taps): per
/// tap, the dot product of the wide `dy` and the tap's input window.
#[multiversion(targets = "simd")]
fn block_kernel_grad(
    x: &[f32],
    dy: &[f32],
    g: &Geom,
    (c, jn): (usize, usize),
    dw: &mut [f64],
    (maps, ph, wide): (&Maps, &mut [f32], &mut [f32]),
) {
    split_phases(channel_planes(x, c, g.c, g.in_plane(), jn), g, jn, maps, ph);
    widen(channel_planes(dy, c, g.c, g.out_plane(), jn), g, wide);
    let n = g.sweep(jn);
    let wide = &wide[g.lead()..g.lead() + n];
    g.for_taps(jn, |t, at| {
        dw[t] += dot(wide, &ph[at..at + n]);
    });
}

/// `(first image, images)` of each block of `jn` images out of `total`.
fn blocks(jn: usize, total: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total.div_ceil(jn)).map(move |i| (i * jn, jn.min(total - i * jn)))
}

/// A block function: (source planes of the block, channel's taps, geometry, (channel, images),
/// destination planes of the block, (index tables, sub-planes scratch, wide scratch)).
type BlockFn =
    fn(&[f32], &[f32], &Geom, (usize, usize), &mut [f32], (&Maps, &mut [f32], &mut [f32]));

/// The forward and the input gradient: `block` for every channel of every block of images, the
/// blocks in parallel, from planes of `from` elements to planes of `to` elements, with a wide
/// scratch of `wide(images)` elements; `epi`, if given, finishes each channel's planes of the
/// block as soon as they are written.
fn per_block(
    src: &[f32],
    w: &[f32],
    g: &Geom,
    (from, to): (usize, usize),
    wide: impl Fn(usize) -> usize + Sync,
    block: BlockFn,
    epi: Option<&Epilogue>,
) -> Vec<f32> {
    let kk = g.k * g.k;
    let total = g.b * g.c * to;
    if total == 0 {
        return Vec::new();
    }
    let jn = g.block(g.b.div_ceil(threads()));
    let maps = Maps::for_blocks(g, jn, g.b);
    par_filled(total, jn * g.c * to, |i, out| {
        let (n0, jn_here) = (i * jn, out.len() / (g.c * to));
        let src = &src[n0 * g.c * from..(n0 + jn_here) * g.c * from];
        with_scratch(jn_here * g.phases_len(), wide(jn_here), |ph, buf| {
            // Small planes get the epilogue image by image once the block is done.
            let per_plane = epi.filter(|_| to >= SMALL_PLANE);
            for c in 0..g.c {
                let wc = &w[c * kk..(c + 1) * kk];
                let maps = Maps::pick(&maps, jn_here);
                block(src, wc, g, (c, jn_here), out, (maps, &mut *ph, &mut *buf));
                if let Some(e) = per_plane {
                    for j in 0..jn_here {
                        e.apply_plane(&mut out[(j * g.c + c) * to..(j * g.c + c + 1) * to], c);
                    }
                }
            }
            if let (Some(e), None) = (epi, per_plane) {
                e.apply(out, n0, g.c, to);
            }
        });
    })
}

/// Output planes of at most this many positions (MobileNetV2's 2x2 and 1x1 maps at CIFAR's
/// size) take [`tiny_forward`].
const TINY_OUT: usize = 4;

fn forward(x: &[f32], w: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    if g.out_plane() <= TINY_OUT {
        return tiny_forward(x, w, g, epi);
    }
    let planes = (g.in_plane(), g.out_plane());
    per_block(x, w, g, planes, |jn| g.sweep(jn), block_forward, epi)
}

/// The forward on maps of at most [`TINY_OUT`] outputs, from the taps that fall inside the
/// image only. On a padded 1x1 map the wide layout computes 9 outputs of 9 taps for one output
/// of one tap, and on a 2x2 map 8 of 9 for 4 of 4; here each output adds its in-image taps, in
/// the same row-major order and from the same `0.0` as [`correlate`] (the skipped taps add
/// exact zeros), so the results are the wide path's to the bit.
fn tiny_forward(x: &[f32], w: &[f32], g: &Geom, epi: Option<&Epilogue>) -> Vec<f32> {
    let (ip, op, kk) = (g.in_plane(), g.out_plane(), g.k * g.k);
    // (output, tap, input) for every in-image tap, by output, taps in row-major order.
    let mut taps = Vec::with_capacity(op * kk);
    for (oh, ow) in (0..g.ho).flat_map(|oh| (0..g.wo).map(move |ow| (oh, ow))) {
        for (ki, kj) in (0..g.k).flat_map(|ki| (0..g.k).map(move |kj| (ki, kj))) {
            let (ih, iw) = (
                (oh * g.stride + ki).wrapping_sub(g.pad),
                (ow * g.stride + kj).wrapping_sub(g.pad),
            );
            if ih < g.h && iw < g.w {
                taps.push((oh * g.wo + ow, ki * g.k + kj, ih * g.w + iw));
            }
        }
    }
    let image = g.c * op;
    if g.b * image == 0 {
        return Vec::new();
    }
    par_filled(g.b * image, image, |i, out| {
        let xs = &x[i * g.c * ip..(i + 1) * g.c * ip];
        for ((o, xp), wp) in out
            .chunks_exact_mut(op)
            .zip(xs.chunks_exact(ip))
            .zip(w.chunks_exact(kk))
        {
            for &(oi, t, ii) in &taps {
                o[oi] += wp[t] * xp[ii];
            }
        }
        if let Some(e) = epi {
            e.apply(out, i, g.c, op);
        }
    })
}

fn input_grad(dy: &[f32], w: &[f32], g: &Geom) -> Vec<f32> {
    let planes = (g.out_plane(), g.in_plane());
    per_block(
        dy,
        w,
        g,
        planes,
        |jn| g.wide_len(jn),
        block_input_grad,
        None,
    )
}

fn kernel_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (ip, op, kk) = (g.in_plane(), g.out_plane(), g.k * g.k);
    let mut dw = vec![0f32; g.c * kk];
    if g.b == 0 {
        return dw;
    }
    let jn = g.block(g.b);
    let maps = Maps::for_blocks(g, jn, g.b);
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, out)| {
        let mut acc = vec![0f64; kk];
        for (n0, jn_here) in blocks(jn, g.b) {
            let x = &x[n0 * g.c * ip..(n0 + jn_here) * g.c * ip];
            let dy = &dy[n0 * g.c * op..(n0 + jn_here) * g.c * op];
            with_scratch(jn_here * g.phases_len(), g.wide_len(jn_here), |ph, wide| {
                let maps = Maps::pick(&maps, jn_here);
                block_kernel_grad(x, dy, g, (c, jn_here), &mut acc, (maps, ph, wide))
            });
        }
        out.iter_mut().zip(&acc).for_each(|(o, a)| *o = *a as f32);
    });
    dw
}

/// The forward op on (x, w) and its two gradient ops: `InputGrad` on (dy, w), `KernelGrad` on
/// (x, dy); `ForwardAffine` is the forward with an epilogue, without backward.
enum DwOp {
    Forward(Geom),
    ForwardAffine(Geom, Epilogue<'static>),
    InputGrad(Geom),
    KernelGrad(Geom),
}

impl CustomOp2 for DwOp {
    fn name(&self) -> &'static str {
        match self {
            DwOp::Forward(_) => "tarun-depthwise",
            DwOp::ForwardAffine(..) => "tarun-depthwise-affine",
            DwOp::InputGrad(_) => "tarun-depthwise-input-grad",
            DwOp::KernelGrad(_) => "tarun-depthwise-kernel-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (
            f32_data(s1, l1, self.name())?,
            f32_data(s2, l2, self.name())?,
        );
        Ok(match self {
            DwOp::Forward(g) => (
                CpuStorage::F32(forward(a, b, g, None)),
                Shape::from((g.b, g.c, g.ho, g.wo)),
            ),
            DwOp::ForwardAffine(g, e) => (
                CpuStorage::F32(forward(a, b, g, Some(e))),
                Shape::from((g.b, g.c, g.ho, g.wo)),
            ),
            DwOp::InputGrad(g) => (
                CpuStorage::F32(input_grad(a, b, g)),
                Shape::from((g.b, g.c, g.h, g.w)),
            ),
            DwOp::KernelGrad(g) => (
                CpuStorage::F32(kernel_grad(a, b, g)),
                Shape::from((g.c, 1, g.k, g.k)),
            ),
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::conv::{Pass, run};
        let (pass, g) = match self {
            DwOp::Forward(g) => (Pass::Forward, g),
            DwOp::InputGrad(g) => (Pass::InputGrad, g),
            DwOp::KernelGrad(g) => (Pass::KernelGrad, g),
            DwOp::ForwardAffine(..) => {
                candle_core::bail!("{}: the folded epilogue runs on the CPU only", self.name())
            }
        };
        run(pass, &g.cudnn(), (s1, l1), (s2, l2), self.name())
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        candle_bwd2(self, x, w, y, grad)
    }
}

impl Backward for DwOp {
    fn backward(
        &self,
        inputs: &[Tensor],
        _y: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (DwOp::Forward(g), [x, w]) = (self, inputs) else {
            candle_core::bail!("{}: no backward", self.name());
        };
        let grad = grad.contiguous()?;
        let dx = needs[0]
            .then(|| grad.apply_op2_no_bwd(w, &DwOp::InputGrad(*g)))
            .transpose()?;
        let dw = needs[1]
            .then(|| x.apply_op2_no_bwd(&grad, &DwOp::KernelGrad(*g)))
            .transpose()?;
        Ok(vec![dx, dw])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-image taps path gives the wide path's bits, with and without an epilogue.
    #[test]
    fn tiny_forward_is_the_wide_forward_to_the_bit() {
        for (b, c, h, stride) in [
            (3, 5, 4, 2),
            (2, 4, 2, 2),
            (4, 6, 2, 1),
            (5, 3, 1, 1),
            (2, 7, 3, 2),
        ] {
            let g = Geom::new(&[b, c, h, h], &[c, 1, 3, 3], stride, 1).unwrap();
            assert!(g.out_plane() <= TINY_OUT);
            let x: Vec<f32> = (0..b * c * h * h)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..c * 9)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
                .collect();
            let wide = per_block(
                &x,
                &w,
                &g,
                (g.in_plane(), g.out_plane()),
                |jn| g.sweep(jn),
                block_forward,
                None,
            );
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&tiny_forward(&x, &w, &g, None)),
                bits(&wide),
                "{b}x{c}x{h}x{h} /{stride}"
            );
            let scale = Tensor::new(
                (0..c).map(|i| 0.5 + i as f32).collect::<Vec<_>>(),
                &candle_core::Device::Cpu,
            )
            .unwrap();
            let shift = (scale.clone() * -0.25).unwrap();
            let epi = Epilogue::new("test", c, (&scale, &shift), Activation::Relu6).unwrap();
            let wide = per_block(
                &x,
                &w,
                &g,
                (g.in_plane(), g.out_plane()),
                |jn| g.sweep(jn),
                block_forward,
                Some(&epi),
            );
            assert_eq!(
                bits(&tiny_forward(&x, &w, &g, Some(&epi))),
                bits(&wide),
                "{b}x{c}x{h}x{h} /{stride} affine"
            );
        }
    }
}
