//! The vector instruction sets tarun's hand-written CPU kernels (`conv/direct.rs`) are compiled
//! for, and the choice between them at run time.
//!
//! The kernels are written once, generic over [`Vector`]: a vector of `f32` lanes with the
//! handful of operations they use (loads and stores, masked or not, broadcasts, fused
//! multiply-adds and an in-register transpose). [`Avx512`] has 16 lanes, [`Avx2`] (AVX2 with
//! FMA) 8. Each kernel is instantiated once per set inside a `#[target_feature]` function, into
//! which the `#[inline(always)]` operations below are inlined.
//!
//! [`level`] picks the widest set this CPU has, unless `TARUN_CPU_SIMD` says otherwise
//! (`avx2` runs the AVX2 kernels on an AVX-512 CPU, to measure or test them there; `none`
//! turns the hand-written kernels off, leaving im2col + GEMM). Without either set the direct
//! convolution does not run (the im2col + GEMM path does).

/// An instruction set the direct kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    /// AVX-512F: 16 lanes, 32 registers.
    Avx512,
    /// AVX2 and FMA: 8 lanes, 16 registers.
    Avx2,
}

impl Simd {
    /// Every set, widest first.
    pub(crate) const ALL: [Simd; 2] = [Simd::Avx512, Simd::Avx2];

    /// `TARUN_CPU_SIMD`'s name for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Simd::Avx512 => "avx512",
            Simd::Avx2 => "avx2",
        }
    }

    /// `f32` lanes per vector.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Simd::Avx512 => Avx512::L,
            Simd::Avx2 => Avx2::L,
        }
    }

    /// Whether this CPU has the set.
    pub(crate) fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Simd::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Simd::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// The set the kernels run in: the widest this CPU has, or the one `TARUN_CPU_SIMD` names
/// (`avx512`, `avx2`, or `none` for no hand-written kernels) where the CPU has it; read once.
pub(crate) fn level() -> Option<Simd> {
    static LEVEL: std::sync::OnceLock<Option<Simd>> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let best = Simd::ALL.into_iter().find(|s| s.supported());
        let value = std::env::var("TARUN_CPU_SIMD").ok();
        match value.as_deref() {
            None | Some("") => best,
            Some("none") => None,
            Some(v) => match Simd::ALL.into_iter().find(|s| s.name() == v) {
                Some(s) if s.supported() => Some(s),
                Some(_) => {
                    eprintln!(
                        "warning: TARUN_CPU_SIMD=`{v}`: this CPU lacks it; using {}",
                        best.map_or("none", Simd::name)
                    );
                    best
                }
                None => {
                    eprintln!(
                        "warning: TARUN_CPU_SIMD=`{v}` is none of `avx512`, `avx2`, `none`; using {}",
                        best.map_or("none", Simd::name)
                    );
                    best
                }
            },
        }
    })
}

/// A vector of [`Vector::L`] `f32` lanes. Every operation is `unsafe`: it may only run inside a
/// function compiled for the set (`#[target_feature]`) on a CPU that has it, and the pointer
/// operations have the intrinsics' requirements (unaligned; masked-off lanes not accessed).
pub(crate) trait Vector {
    /// Lanes.
    const L: usize;
    type V: Copy;
    /// A lane mask prepared for [`Vector::load_masked`] and [`Vector::store_masked`].
    type Mask: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Bit `l` of `bits` is lane `l`.
    unsafe fn mask(bits: u16) -> Self::Mask;
    /// Masked-off lanes read zero and are not accessed (they may be out of bounds).
    unsafe fn load_masked(m: Self::Mask, p: *const f32) -> Self::V;
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self::V);
    /// `a * b + c`, rounded once.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `dst[j * ld_dst + i] = src[i * ld_src + j]` for `i, j < L`.
    unsafe fn transpose(src: &[f32], ld_src: usize, dst: &mut [f32], ld_dst: usize);
}

/// AVX-512F.
pub(crate) struct Avx512;
/// AVX2 and FMA.
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Vector for Avx512 {
    const L: usize = 16;
    type V = std::arch::x86_64::__m512;
    type Mask = u16;

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        unsafe { std::arch::x86_64::_mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn mask(bits: u16) -> u16 {
        bits
    }
    #[inline(always)]
    unsafe fn load_masked(m: u16, p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: u16, v: Self::V) {
        unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_add_ps(a, b) }
    }

    /// The 16 x 16 transpose of unpacks and 128-bit lane shuffles.
    #[inline(always)]
    unsafe fn transpose(src: &[f32], ld_src: usize, dst: &mut [f32], ld_dst: usize) {
        use std::arch::x86_64::*;
        assert!(src.len() > 15 * ld_src + 15 && dst.len() > 15 * ld_dst + 15);
        // SAFETY: the assertion bounds every row read and written; the caller runs this
        // under AVX-512F.
        unsafe {
            let mut r: [__m512; 16] =
                std::array::from_fn(|i| _mm512_loadu_ps(src.as_ptr().add(i * ld_src)));
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
                _mm512_storeu_ps(dst.as_mut_ptr().add(j * ld_dst), *v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Vector for Avx2 {
    const L: usize = 8;
    type V = std::arch::x86_64::__m256;
    /// All ones in the lanes to access (`vmaskmovps` reads each lane's sign bit).
    type Mask = std::arch::x86_64::__m256i;

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        unsafe { std::arch::x86_64::_mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn mask(bits: u16) -> Self::Mask {
        use std::arch::x86_64::*;
        unsafe {
            let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let set = _mm256_and_si256(_mm256_set1_epi32(i32::from(bits)), lane);
            _mm256_cmpeq_epi32(set, lane)
        }
    }
    #[inline(always)]
    unsafe fn load_masked(m: Self::Mask, p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self::V) {
        unsafe { std::arch::x86_64::_mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_add_ps(a, b) }
    }

    /// The 8 x 8 transpose of unpacks, shuffles and 128-bit lane permutes.
    #[inline(always)]
    unsafe fn transpose(src: &[f32], ld_src: usize, dst: &mut [f32], ld_dst: usize) {
        use std::arch::x86_64::*;
        assert!(src.len() > 7 * ld_src + 7 && dst.len() > 7 * ld_dst + 7);
        // SAFETY: the assertion bounds every row read and written; the caller runs this
        // under AVX2.
        unsafe {
            let r: [__m256; 8] =
                std::array::from_fn(|i| _mm256_loadu_ps(src.as_ptr().add(i * ld_src)));
            let mut t = [_mm256_setzero_ps(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let mut s = [_mm256_setzero_ps(); 8];
            for h in 0..2 {
                let (a, b, c, d) = (t[4 * h], t[4 * h + 1], t[4 * h + 2], t[4 * h + 3]);
                s[4 * h] = _mm256_shuffle_ps::<0x44>(a, c);
                s[4 * h + 1] = _mm256_shuffle_ps::<0xee>(a, c);
                s[4 * h + 2] = _mm256_shuffle_ps::<0x44>(b, d);
                s[4 * h + 3] = _mm256_shuffle_ps::<0xee>(b, d);
            }
            for i in 0..4 {
                let lo = _mm256_permute2f128_ps::<0x20>(s[i], s[4 + i]);
                let hi = _mm256_permute2f128_ps::<0x31>(s[i], s[4 + i]);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i * ld_dst), lo);
                _mm256_storeu_ps(dst.as_mut_ptr().add((4 + i) * ld_dst), hi);
            }
        }
    }
}
