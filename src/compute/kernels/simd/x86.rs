//! The x86-64 instruction sets: SSE2 (every x86-64 CPU), AVX2 + FMA, AVX-512F.
//!
//! Each token's `detect` asks the CPU for **every** feature its `Simd` impl uses (not only the
//! headline one), and its `vectorize` is the one `#[target_feature]` wrapper of that
//! instruction set: every kernel body (a [`WithSimd`]) is compiled for it there.

use super::{Simd, WithSimd, sealed::Sealed};
use std::arch::x86_64::*;

/// SSE2, 4 lanes, multiply then add: every x86-64 CPU.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sse2(());

impl Sse2 {
    /// Available on every x86-64 CPU (SSE2 is part of the architecture; the impl uses SSE
    /// and SSE2 only).
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("sse") && is_x86_feature_detected!("sse2")).then_some(Sse2(()))
    }

    /// Run `op` compiled for SSE2.
    #[inline]
    pub(crate) fn vectorize<O: WithSimd>(self, op: O) -> O::Output {
        #[target_feature(enable = "sse,sse2")]
        fn imp<O: WithSimd>(op: O, s: Sse2) -> O::Output {
            op.with_simd(s)
        }
        // SAFETY: `self` exists only on a CPU where `detect` saw SSE and SSE2.
        unsafe { imp(op, self) }
    }
}

impl Sealed for Sse2 {}

// SAFETY (for every `unsafe` block in this impl): a `Sse2` value exists only after
// `detect` saw SSE2 on this CPU, so its intrinsics may run; the pointer contracts are the
// trait methods' own and are passed on to the callers.
impl Simd for Sse2 {
    type V = __m128;
    type M = __m128;
    const LANES: usize = 4;
    const WIDE_TILE: bool = false;
    #[inline(always)]
    fn zero(self) -> __m128 {
        unsafe { _mm_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m128 {
        unsafe { _mm_set1_ps(x) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m128, b: __m128, c: __m128) -> __m128 {
        unsafe { _mm_add_ps(_mm_mul_ps(a, b), c) }
    }
    #[inline(always)]
    fn mul(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_mul_ps(a, b) }
    }
    #[inline(always)]
    fn add(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_sub_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_div_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_max_ps(a, b) }
    }
    #[inline(always)]
    fn lt(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_cmplt_ps(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m128, b: __m128) -> __m128 {
        unsafe { _mm_cmpeq_ps(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __m128, t: __m128, f: __m128) -> __m128 {
        unsafe { _mm_or_ps(_mm_and_ps(m, t), _mm_andnot_ps(m, f)) }
    }
    #[inline(always)]
    fn mask_bits(self, m: __m128) -> u32 {
        unsafe { _mm_movemask_ps(m) as u32 }
    }
    #[inline(always)]
    fn round(self, v: __m128) -> __m128 {
        // The default MXCSR rounding is to nearest even.
        unsafe { _mm_cvtepi32_ps(_mm_cvtps_epi32(v)) }
    }
    #[inline(always)]
    fn mul_pow2(self, y: __m128, n: __m128) -> __m128 {
        unsafe {
            let e = _mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127));
            _mm_mul_ps(y, _mm_castsi128_ps(_mm_slli_epi32::<23>(e)))
        }
    }
    #[inline(always)]
    fn transpose_sum(self, vs: &[__m128]) -> __m128 {
        let vs: &[__m128; 4] = vs.try_into().expect("LANES vectors");
        unsafe {
            let pair =
                |a, b| _mm_add_ps(_mm_shuffle_ps::<0x44>(a, b), _mm_shuffle_ps::<0xEE>(a, b));
            let (a, b) = (pair(vs[0], vs[1]), pair(vs[2], vs[3]));
            _mm_add_ps(_mm_shuffle_ps::<0x88>(a, b), _mm_shuffle_ps::<0xDD>(a, b))
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m128) -> f32 {
        unsafe {
            let hi = _mm_movehl_ps(v, v);
            let s = _mm_add_ps(v, hi);
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m128 {
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m128) {
        unsafe { _mm_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> __m128 {
        unsafe {
            let bytes = _mm_cvtsi32_si128(p.cast::<i32>().read_unaligned());
            let zero = _mm_setzero_si128();
            let words = _mm_unpacklo_epi8(bytes, zero);
            _mm_cvtepi32_ps(_mm_unpacklo_epi16(words, zero))
        }
    }
}

/// AVX2 with FMA, 8 lanes: x86-64 CPUs since 2013 (Haswell, Zen).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU has AVX, AVX2 and FMA, and SSE3 (`_mm_movehdup_ps` in
    /// `reduce_add`; every AVX2 CPU has it, but the token proves what the impl uses).
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("sse3")
            && is_x86_feature_detected!("avx")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma"))
        .then_some(Avx2(()))
    }

    /// Run `op` compiled for AVX2 + FMA.
    #[inline]
    pub(crate) fn vectorize<O: WithSimd>(self, op: O) -> O::Output {
        #[target_feature(enable = "sse3,avx,avx2,fma")]
        fn imp<O: WithSimd>(op: O, s: Avx2) -> O::Output {
            op.with_simd(s)
        }
        // SAFETY: `self` exists only on a CPU where `detect` saw SSE3, AVX, AVX2 and FMA.
        unsafe { imp(op, self) }
    }
}

impl Sealed for Avx2 {}

// SAFETY (for every `unsafe` block in this impl): a `Avx2` value exists only after
// `detect` saw SSE3, AVX, AVX2 and FMA on this CPU; pointer contracts as in the trait.
impl Simd for Avx2 {
    type V = __m256;
    type M = __m256;
    const LANES: usize = 8;
    const WIDE_TILE: bool = false;
    #[inline(always)]
    fn zero(self) -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __m256, t: __m256, f: __m256) -> __m256 {
        unsafe { _mm256_blendv_ps(f, t, m) }
    }
    #[inline(always)]
    fn mask_bits(self, m: __m256) -> u32 {
        unsafe { _mm256_movemask_ps(m) as u32 }
    }
    #[inline(always)]
    fn round(self, v: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    fn mul_pow2(self, y: __m256, n: __m256) -> __m256 {
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)))
        }
    }
    #[inline(always)]
    fn transpose_sum(self, vs: &[__m256]) -> __m256 {
        let vs: &[__m256; 8] = vs.try_into().expect("LANES vectors");
        // Inputs taken in the order that leaves lane i holding the sum of vs[i].
        const ORDER: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];
        unsafe {
            let halves = |a, b| {
                _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(a, b),
                    _mm256_permute2f128_ps::<0x31>(a, b),
                )
            };
            let l1: [__m256; 4] =
                std::array::from_fn(|i| halves(vs[ORDER[2 * i]], vs[ORDER[2 * i + 1]]));
            let pairs = |a, b| {
                _mm256_add_ps(
                    _mm256_shuffle_ps::<0x44>(a, b),
                    _mm256_shuffle_ps::<0xEE>(a, b),
                )
            };
            let (a, b) = (pairs(l1[0], l1[1]), pairs(l1[2], l1[3]));
            _mm256_add_ps(
                _mm256_shuffle_ps::<0x88>(a, b),
                _mm256_shuffle_ps::<0xDD>(a, b),
            )
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> __m256 {
        unsafe {
            let bytes = _mm_loadl_epi64(p.cast::<__m128i>());
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes))
        }
    }
}

/// AVX-512F, 16 lanes and 32 registers: Intel Xeon since Skylake-SP, AMD Zen 4 and later.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// `Some` when the CPU has AVX-512F (every intrinsic of the impl is AVX-512F, or SSE2
    /// for the 16-byte load of `load_u8`, which AVX-512F implies).
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx512f").then_some(Avx512(()))
    }

    /// Run `op` compiled for AVX-512F.
    #[inline]
    pub(crate) fn vectorize<O: WithSimd>(self, op: O) -> O::Output {
        #[target_feature(enable = "avx512f")]
        fn imp<O: WithSimd>(op: O, s: Avx512) -> O::Output {
            op.with_simd(s)
        }
        // SAFETY: `self` exists only on a CPU where `detect` saw AVX-512F.
        unsafe { imp(op, self) }
    }
}

impl Sealed for Avx512 {}

// SAFETY (for every `unsafe` block in this impl): a `Avx512` value exists only after
// `detect` saw AVX-512F on this CPU; pointer contracts as in the trait.
impl Simd for Avx512 {
    type V = __m512;
    type M = __mmask16;
    const LANES: usize = 16;
    const WIDE_TILE: bool = true;
    #[inline(always)]
    fn zero(self) -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __mmask16, t: __m512, f: __m512) -> __m512 {
        unsafe { _mm512_mask_blend_ps(m, f, t) }
    }
    #[inline(always)]
    fn mask_bits(self, m: __mmask16) -> u32 {
        u32::from(m)
    }
    #[inline(always)]
    fn round(self, v: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    fn mul_pow2(self, y: __m512, n: __m512) -> __m512 {
        // n = −127 must give 0 like the other paths (scalef would give a subnormal).
        unsafe {
            let r = _mm512_scalef_ps(y, n);
            let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(n, _mm512_set1_ps(-126.5));
            _mm512_mask_blend_ps(tiny, r, _mm512_setzero_ps())
        }
    }
    #[inline(always)]
    fn transpose_sum(self, vs: &[__m512]) -> __m512 {
        let vs: &[__m512; 16] = vs.try_into().expect("LANES vectors");
        // Inputs taken in the order that leaves lane i holding the sum of vs[i] (the tree
        // below transposes 4 × 4 blocks of rows, and this order undoes it).
        const ORDER: [usize; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
        unsafe {
            let halves = |a, b| {
                _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0x44>(a, b),
                    _mm512_shuffle_f32x4::<0xEE>(a, b),
                )
            };
            let l1: [__m512; 8] =
                std::array::from_fn(|i| halves(vs[ORDER[2 * i]], vs[ORDER[2 * i + 1]]));
            let quarters = |a, b| {
                _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0x88>(a, b),
                    _mm512_shuffle_f32x4::<0xDD>(a, b),
                )
            };
            let l2: [__m512; 4] = std::array::from_fn(|i| quarters(l1[2 * i], l1[2 * i + 1]));
            let pairs = |a, b| {
                _mm512_add_ps(
                    _mm512_shuffle_ps::<0x44>(a, b),
                    _mm512_shuffle_ps::<0xEE>(a, b),
                )
            };
            let (a, b) = (pairs(l2[0], l2[1]), pairs(l2[2], l2[3]));
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x88>(a, b),
                _mm512_shuffle_ps::<0xDD>(a, b),
            )
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> __m512 {
        unsafe {
            let bytes = _mm_loadu_si128(p.cast::<__m128i>());
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes))
        }
    }
}
