//! [`Geom`]: the shapes of one dense convolution (input, kernel, stride, padding and the output
//! size they give), checked once when an op is built and shared by every algorithm and the
//! epilogue, so that none of them has to know about another.

use candle_core::Result;

/// The shapes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub(in crate::kernels) b: usize,
    pub(in crate::kernels) c: usize,
    pub(in crate::kernels) h: usize,
    pub(in crate::kernels) w: usize,
    pub(in crate::kernels) co: usize,
    pub(in crate::kernels) k: usize,
    pub(in crate::kernels) stride: usize,
    pub(in crate::kernels) pad: usize,
    pub(in crate::kernels) ho: usize,
    pub(in crate::kernels) wo: usize,
}

impl Geom {
    pub(in crate::kernels) fn new(
        x: &[usize],
        w: &[usize],
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        let (&[b, c, h, wd], &[co, ci, kh, kw]) = (x, w) else {
            candle_core::bail!("tarun-conv2d: expected 4-d input and kernel, got {x:?} and {w:?}");
        };
        if ci != c || kh != kw || stride == 0 || kh == 0 {
            candle_core::bail!(
                "tarun-conv2d: input {x:?} and kernel {w:?} (stride {stride}) do not fit: \
                 channels must match and the kernel must be square"
            );
        }
        if h + 2 * pad < kh || wd + 2 * pad < kw {
            candle_core::bail!("tarun-conv2d: kernel {kh}x{kw} larger than padded input {x:?}");
        }
        Ok(Self {
            b,
            c,
            h,
            w: wd,
            co,
            k: kh,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo: (wd + 2 * pad - kw) / stride + 1,
        })
    }

    pub(in crate::kernels) fn ckk(&self) -> usize {
        self.c * self.k * self.k
    }
    pub(in crate::kernels) fn chw(&self) -> usize {
        self.c * self.h * self.w
    }
    pub(in crate::kernels) fn out_hw(&self) -> usize {
        self.ho * self.wo
    }
    /// A 1x1 convolution at stride 1 without padding: the image is its own column matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Output columns `ow` whose tap `kj` reads inside the row: `[lo, hi)`.
    pub(super) fn valid_cols(&self, kj: usize) -> (usize, usize) {
        crate::kernels::valid_cols(self.w, self.wo, self.stride, self.pad, kj)
    }
}
