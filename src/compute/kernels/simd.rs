//! The instruction sets the fused kernels run on, chosen at run time.
//!
//! ## Why run-time dispatch
//! A crate is compiled for the baseline of its target (SSE2 on x86-64) unless the *final* build
//! passes `-C target-cpu=…`; a crate that depends on us, or `cargo install`, never does. So the
//! kernel bodies are written once, generic over [`Simd`], and instantiated under thin
//! `#[target_feature(enable = …)]` wrappers (see `fused.rs`): inside such a wrapper the
//! `#[inline(always)]` body and the intrinsics of its [`Simd`] type are inlined and compiled
//! for that instruction set, whatever the crate's own target. The CPU is asked once
//! ([`Isa::best`]); the kernel keeps the answer.
//!
//! ## Why tokens
//! Executing an AVX-512 instruction on a CPU without it is undefined behaviour, so the right to
//! call an instance must be proven, not assumed. Each instruction set has a zero-sized token
//! type ([`Avx512`], [`Avx2`], [`Sse2`], [`Scalar`]) with a private field and one constructor,
//! `detect`, that asks the CPU. Every [`Simd`] method takes the token by value: holding one is
//! the proof that its intrinsics may run. [`Isa`] wraps a token, so an `Isa` value is always
//! runnable on this machine, and safe code cannot build one any other way.
//!
//! ## What is vectorised
//! Only the dot products and the `dW` accumulation: unit-stride loads of `f32` (or of u8
//! pixels, widened and converted), fused multiply-adds and a horizontal sum. Where a feature
//! count is not a multiple of the width the kernels finish with scalar tails, so no load ever
//! reads past a row. SSE2 has no FMA: its `mul_add` is a multiply then an add (one more
//! rounding, inside the tests' error bounds). The scalar instance (1 lane) is the fallback for
//! other architectures and the `--simd scalar` path.

/// A SIMD instruction set: its vector type and the few operations the kernels use.
///
/// Implemented by zero-sized tokens that can only be obtained after a CPU check, so that the
/// methods' `unsafe` intrinsics are sound for any caller holding `self`.
pub trait Simd: Copy + Send + Sync + 'static {
    /// A vector of [`Self::LANES`] `f32`s.
    type V: Copy;
    /// A lane mask, as comparisons produce it.
    type M: Copy;
    /// `f32` lanes per vector.
    const LANES: usize;
    /// Enough registers for a 2-row × 10-class forward tile (20 accumulators) and a 10-class ×
    /// 2-vector backward tile; otherwise the kernels use 5-class tiles.
    const WIDE_TILE: bool;
    /// All lanes zero.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// `a · b + c` (fused where the instruction set has FMA).
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b` (correctly rounded).
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// The larger of `a` and `b`, lane by lane.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lanes where `a < b`.
    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    /// Lanes where `a == b`.
    fn eq(self, a: Self::V, b: Self::V) -> Self::M;
    /// `m ? t : f`, lane by lane.
    fn select(self, m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// The mask as bits: bit `i` set when lane `i` is.
    fn mask_bits(self, m: Self::M) -> u32;
    /// Round to the nearest integer (values of magnitude below 2³¹).
    fn round(self, v: Self::V) -> Self::V;
    /// `y · 2ⁿ` for integral `n` in −127 ..= 127 (`n = −127` gives 0).
    fn mul_pow2(self, y: Self::V, n: Self::V) -> Self::V;
    /// Sum of the lanes.
    fn reduce_add(self, v: Self::V) -> f32;
    /// `LANES` vectors in, one out: lane `i` of the result is the sum of the lanes of `vs[i]`
    /// (a transposing reduction: ~3 instructions per input instead of ~8 for separate sums).
    ///
    /// # Panics
    /// When `vs.len() != LANES`.
    fn transpose_sum(self, vs: &[Self::V]) -> Self::V;
    /// Load `LANES` values from `p` (no alignment needed).
    ///
    /// # Safety
    /// `p .. p + LANES` must be readable.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// Store `LANES` values at `p` (no alignment needed).
    ///
    /// # Safety
    /// `p .. p + LANES` must be writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// Load `LANES` u8 values from `p` and convert them to `f32` (0.0 ..= 255.0, exact).
    ///
    /// # Safety
    /// `p .. p + LANES` must be readable.
    unsafe fn load_u8(self, p: *const u8) -> Self::V;
}

/// Plain `f32` arithmetic, one lane: every CPU.
#[derive(Clone, Copy, Debug)]
pub struct Scalar(());

impl Scalar {
    /// Always available.
    pub fn detect() -> Option<Self> {
        Some(Scalar(()))
    }
}

impl Simd for Scalar {
    type V = f32;
    type M = bool;
    const LANES: usize = 1;
    const WIDE_TILE: bool = false;
    #[inline(always)]
    fn zero(self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        // Not `f32::mul_add`: without FMA hardware that is a slow library call.
        a * b + c
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b { a } else { b }
    }
    #[inline(always)]
    fn lt(self, a: f32, b: f32) -> bool {
        a < b
    }
    #[inline(always)]
    fn eq(self, a: f32, b: f32) -> bool {
        a == b
    }
    #[inline(always)]
    fn select(self, m: bool, t: f32, f: f32) -> f32 {
        if m { t } else { f }
    }
    #[inline(always)]
    fn mask_bits(self, m: bool) -> u32 {
        m as u32
    }
    #[inline(always)]
    fn round(self, v: f32) -> f32 {
        v.round_ties_even()
    }
    #[inline(always)]
    fn mul_pow2(self, y: f32, n: f32) -> f32 {
        y * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    fn transpose_sum(self, vs: &[f32]) -> f32 {
        vs[0]
    }
    #[inline(always)]
    fn reduce_add(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> f32 {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { p.write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> f32 {
        // SAFETY: the caller guarantees `p` is readable.
        f32::from(unsafe { p.read() })
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512, Sse2};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// SSE2, 4 lanes, multiply then add: every x86-64 CPU.
    #[derive(Clone, Copy, Debug)]
    pub struct Sse2(());

    impl Sse2 {
        /// Available on every x86-64 CPU (SSE2 is part of the architecture).
        pub fn detect() -> Option<Self> {
            is_x86_feature_detected!("sse2").then_some(Sse2(()))
        }
    }

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
    pub struct Avx2(());

    impl Avx2 {
        /// `Some` when the CPU has both AVX2 and FMA.
        pub fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Avx2(()))
        }
    }

    // SAFETY (for every `unsafe` block in this impl): a `Avx2` value exists only after
    // `detect` saw AVX2 and FMA on this CPU; pointer contracts as in the trait.
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
    pub struct Avx512(());

    impl Avx512 {
        /// `Some` when the CPU has AVX-512F.
        pub fn detect() -> Option<Self> {
            is_x86_feature_detected!("avx512f").then_some(Avx512(()))
        }
    }

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
}

/// A request for an instruction set, as `train --simd` and `MNIST_LOGREG_SIMD` spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum SimdChoice {
    /// The widest path this CPU has.
    #[default]
    Auto,
    /// AVX-512F (16 lanes).
    Avx512,
    /// AVX2 + FMA (8 lanes).
    Avx2,
    /// SSE2 (4 lanes, no FMA).
    Sse2,
    /// Plain scalar code.
    Scalar,
}

/// The environment variable that forces a path in tests, benches and binaries
/// (`auto`, `avx512`, `avx2`, `sse2`, `scalar`).
pub const SIMD_ENV: &str = "MNIST_LOGREG_SIMD";

/// An instruction set that was asked for but cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdError {
    /// The CPU lacks the instruction set.
    #[error("this CPU cannot run the {wanted} path (it supports: {supported})")]
    Unsupported {
        /// The path asked for.
        wanted: &'static str,
        /// The paths this CPU runs, widest first.
        supported: String,
    },
    /// `MNIST_LOGREG_SIMD` holds something else than a path name.
    #[error("{SIMD_ENV}={0:?} is not one of auto, avx512, avx2, sse2, scalar")]
    BadEnv(String),
}

/// A runnable instruction set: holding one proves the CPU has it (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Isa(Token);

#[derive(Clone, Copy, Debug)]
enum Token {
    Scalar(Scalar),
    #[cfg(target_arch = "x86_64")]
    Sse2(Sse2),
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
}

/// Calls a generic kernel entry point with the concrete token an [`Isa`] holds.
///
/// Implementations are the `#[target_feature]` instantiations of one kernel body; see
/// `fused.rs`.
pub(crate) trait WithIsa {
    /// What the kernel returns.
    type Output;
    /// Run on the scalar instance.
    fn scalar(self, s: Scalar) -> Self::Output;
    /// Run on the SSE2 instance.
    #[cfg(target_arch = "x86_64")]
    fn sse2(self, s: Sse2) -> Self::Output;
    /// Run on the AVX2 + FMA instance.
    #[cfg(target_arch = "x86_64")]
    fn avx2(self, s: Avx2) -> Self::Output;
    /// Run on the AVX-512F instance.
    #[cfg(target_arch = "x86_64")]
    fn avx512(self, s: Avx512) -> Self::Output;
}

impl Isa {
    /// Every path this CPU runs, widest first (the last is always `scalar`).
    pub fn supported() -> Vec<Isa> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            out.extend(Avx512::detect().map(|t| Isa(Token::Avx512(t))));
            out.extend(Avx2::detect().map(|t| Isa(Token::Avx2(t))));
            out.extend(Sse2::detect().map(|t| Isa(Token::Sse2(t))));
        }
        out.extend(Scalar::detect().map(|t| Isa(Token::Scalar(t))));
        out
    }

    /// The widest path this CPU runs (the CPU is asked once; the answer is cached).
    pub fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::supported()[0])
    }

    /// The path `choice` asks for, or an error naming what this CPU supports.
    pub fn select(choice: SimdChoice) -> Result<Isa, SimdError> {
        Self::select_from(choice, &Isa::supported())
    }

    /// [`Isa::select`] among `all` (widest first).
    fn select_from(choice: SimdChoice, all: &[Isa]) -> Result<Isa, SimdError> {
        let wanted = match choice {
            SimdChoice::Auto => return Ok(all[0]),
            SimdChoice::Avx512 => "avx512",
            SimdChoice::Avx2 => "avx2",
            SimdChoice::Sse2 => "sse2",
            SimdChoice::Scalar => "scalar",
        };
        all.iter()
            .copied()
            .find(|isa| isa.name() == wanted)
            .ok_or_else(|| SimdError::Unsupported {
                wanted,
                supported: all.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
            })
    }

    /// The path named by `MNIST_LOGREG_SIMD`, or the widest when it is unset or empty.
    pub fn from_env() -> Result<Isa, SimdError> {
        match std::env::var(SIMD_ENV) {
            Err(_) => Ok(Isa::best()),
            Ok(v) if v.trim().is_empty() => Ok(Isa::best()),
            Ok(v) => {
                let choice = <SimdChoice as clap::ValueEnum>::from_str(v.trim(), true)
                    .map_err(|_| SimdError::BadEnv(v.clone()))?;
                Isa::select(choice)
            }
        }
    }

    /// The path's name, as `--simd` spells it.
    pub fn name(self) -> &'static str {
        match self.0 {
            Token::Scalar(_) => "scalar",
            #[cfg(target_arch = "x86_64")]
            Token::Sse2(_) => "sse2",
            #[cfg(target_arch = "x86_64")]
            Token::Avx2(_) => "avx2",
            #[cfg(target_arch = "x86_64")]
            Token::Avx512(_) => "avx512",
        }
    }

    /// `f32` lanes per vector.
    pub fn lanes(self) -> usize {
        match self.0 {
            Token::Scalar(_) => Scalar::LANES,
            #[cfg(target_arch = "x86_64")]
            Token::Sse2(_) => Sse2::LANES,
            #[cfg(target_arch = "x86_64")]
            Token::Avx2(_) => Avx2::LANES,
            #[cfg(target_arch = "x86_64")]
            Token::Avx512(_) => Avx512::LANES,
        }
    }

    /// Run `op` on this path's instance.
    #[inline]
    pub(crate) fn dispatch<O: WithIsa>(self, op: O) -> O::Output {
        match self.0 {
            Token::Scalar(t) => op.scalar(t),
            #[cfg(target_arch = "x86_64")]
            Token::Sse2(t) => op.sse2(t),
            #[cfg(target_arch = "x86_64")]
            Token::Avx2(t) => op.avx2(t),
            #[cfg(target_arch = "x86_64")]
            Token::Avx512(t) => op.avx512(t),
        }
    }
}

impl PartialEq for Isa {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Isa {}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lanes() {
            1 => write!(f, "{} (1 lane)", self.name()),
            n => write!(f, "{} ({n} lanes)", self.name()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Calls `T::check` with the token of every path this CPU has; returns the paths run.
    pub(crate) fn on_every_path<T: PathCheck>() -> Vec<&'static str> {
        struct Run<T>(std::marker::PhantomData<T>);
        impl<T: PathCheck> WithIsa for Run<T> {
            type Output = ();
            fn scalar(self, s: Scalar) {
                T::check(s)
            }
            #[cfg(target_arch = "x86_64")]
            fn sse2(self, s: Sse2) {
                T::check(s)
            }
            #[cfg(target_arch = "x86_64")]
            fn avx2(self, s: Avx2) {
                T::check(s)
            }
            #[cfg(target_arch = "x86_64")]
            fn avx512(self, s: Avx512) {
                T::check(s)
            }
        }
        Isa::supported()
            .into_iter()
            .map(|isa| {
                isa.dispatch(Run::<T>(std::marker::PhantomData));
                isa.name()
            })
            .collect()
    }

    /// A test body generic over the instruction set.
    pub(crate) trait PathCheck {
        fn check<S: Simd>(s: S);
    }

    /// The lanes of `v`.
    pub(crate) fn lanes_of<S: Simd>(s: S, v: S::V) -> Vec<f32> {
        let mut out = [0.0f32; 16];
        // SAFETY: `out` holds 16 ≥ LANES values.
        unsafe { s.store(out.as_mut_ptr(), v) };
        out[..S::LANES].to_vec()
    }

    /// A vector of `values` (at least LANES of them).
    pub(crate) fn vector<S: Simd>(s: S, values: &[f32]) -> S::V {
        assert!(values.len() >= S::LANES);
        // SAFETY: `values` holds at least LANES values.
        unsafe { s.load(values.as_ptr()) }
    }

    #[test]
    fn transpose_sum_puts_the_sum_of_input_i_in_lane_i() {
        struct T;
        impl PathCheck for T {
            fn check<S: Simd>(s: S) {
                let l = S::LANES;
                let vs: Vec<S::V> = (0..l)
                    .map(|i| {
                        let v: Vec<f32> = (0..l).map(|j| (i * 100 + j * j) as f32).collect();
                        vector(s, &v)
                    })
                    .collect();
                let got = lanes_of(s, s.transpose_sum(&vs));
                let want: Vec<f32> = (0..l)
                    .map(|i| (0..l).map(|j| (i * 100 + j * j) as f32).sum())
                    .collect();
                assert_eq!(got, want, "{} lanes", l);
                assert_eq!(s.reduce_add(vs[l - 1]), want[l - 1]);
            }
        }
        assert!(on_every_path::<T>().contains(&"scalar"));
    }

    #[test]
    fn masks_select_round_and_powers_of_two() {
        struct T;
        impl PathCheck for T {
            fn check<S: Simd>(s: S) {
                let l = S::LANES;
                let a: Vec<f32> = (0..l).map(|i| i as f32 - 1.5).collect();
                let (va, zero) = (vector(s, &a), s.zero());
                let bits = s.mask_bits(s.lt(va, zero));
                let want: u32 = (0..l).filter(|&i| a[i] < 0.0).map(|i| 1 << i).sum();
                assert_eq!(bits, want);
                let picked = lanes_of(s, s.select(s.lt(va, zero), s.splat(7.0), va));
                for i in 0..l {
                    assert_eq!(picked[i], if a[i] < 0.0 { 7.0 } else { a[i] });
                }
                // Ties to even, like the default rounding mode.
                let r = lanes_of(s, s.round(s.splat(2.5)));
                assert!(r.iter().all(|&v| v == 2.0), "{r:?}");
                let p = lanes_of(s, s.mul_pow2(s.splat(1.5), s.splat(-3.0)));
                assert!(p.iter().all(|&v| v == 0.1875), "{p:?}");
                let z = lanes_of(s, s.mul_pow2(s.splat(1.5), s.splat(-127.0)));
                assert!(z.iter().all(|&v| v == 0.0), "{z:?}");
                let all = s.mask_bits(s.eq(s.splat(1.0), s.splat(1.0)));
                assert_eq!(all, (1u32 << l) - 1);
            }
        }
        on_every_path::<T>();
    }

    #[test]
    fn scalar_is_always_there_and_last() {
        let all = Isa::supported();
        assert_eq!(all.last().unwrap().name(), "scalar");
        assert_eq!(Isa::best(), all[0]);
        assert_eq!(Isa::select(SimdChoice::Scalar).unwrap().name(), "scalar");
    }

    #[test]
    fn an_unsupported_path_is_a_clear_error() {
        // As on a CPU with only the scalar path (every CPU has that one).
        let scalar_only: Vec<Isa> = Isa::supported()
            .into_iter()
            .filter(|i| i.name() == "scalar")
            .collect();
        for (choice, name) in [
            (SimdChoice::Avx512, "avx512"),
            (SimdChoice::Avx2, "avx2"),
            (SimdChoice::Sse2, "sse2"),
        ] {
            let e = Isa::select_from(choice, &scalar_only).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("this CPU cannot run the {name} path (it supports: scalar)")
            );
        }
        assert_eq!(
            Isa::select_from(SimdChoice::Auto, &scalar_only)
                .unwrap()
                .name(),
            "scalar"
        );
        // On this CPU every path it lists is selectable.
        for isa in Isa::supported() {
            let choice = <SimdChoice as clap::ValueEnum>::from_str(isa.name(), false).unwrap();
            assert_eq!(Isa::select(choice).unwrap(), isa);
        }
    }
}
