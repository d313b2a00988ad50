//! The aarch64 instruction set: NEON (Advanced SIMD), 4 `f32` lanes and 32 vector registers,
//! on every 64-bit ARM CPU (Apple Silicon, AWS Graviton, Ampere, Raspberry Pi 4/5).
//!
//! NEON is part of the aarch64 baseline, but the token still asks the CPU
//! (`is_aarch64_feature_detected!("neon")`), like the x86 ones, and `vectorize` is its one
//! `#[target_feature]` wrapper. With 32 registers the 4-row × 5-class forward tile and the
//! 10-class backward tile (20 accumulators each) fit, as on AVX-512.

use super::{Simd, WithSimd, sealed::Sealed};
use std::arch::aarch64::*;

/// NEON, 4 lanes, fused multiply-add (`vfmaq_f32`), 32 registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    /// `Some` when the CPU has NEON (every intrinsic of the impl is NEON / AArch64 base).
    pub(crate) fn detect() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon(()))
    }

    /// Run `op` compiled for NEON.
    #[inline]
    pub(crate) fn vectorize<O: WithSimd>(self, op: O) -> O::Output {
        #[target_feature(enable = "neon")]
        fn imp<O: WithSimd>(op: O, s: Neon) -> O::Output {
            op.with_simd(s)
        }
        // SAFETY: `self` exists only on a CPU where `detect` saw NEON.
        unsafe { imp(op, self) }
    }
}

impl Sealed for Neon {}

// SAFETY (for every `unsafe` block in this impl): a `Neon` value exists only after `detect`
// saw NEON on this CPU, so its intrinsics may run; the pointer contracts are the trait
// methods' own and are passed on to the callers.
impl Simd for Neon {
    type V = float32x4_t;
    type M = uint32x4_t;
    const LANES: usize = 4;
    const WIDE_TILE: bool = true;
    #[inline(always)]
    fn zero(self) -> float32x4_t {
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // vfmaq_f32(c, a, b) = c + a·b, one rounding.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // `a > b ? a : b`, as the scalar and x86 paths (vmaxq_f32 would turn NaN around).
        unsafe { vbslq_f32(vcgtq_f32(a, b), a, b) }
    }
    #[inline(always)]
    fn lt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vcltq_f32(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vceqq_f32(a, b) }
    }
    #[inline(always)]
    fn select(self, m: uint32x4_t, t: float32x4_t, f: float32x4_t) -> float32x4_t {
        unsafe { vbslq_f32(m, t, f) }
    }
    #[inline(always)]
    fn mask_bits(self, m: uint32x4_t) -> u32 {
        // Lanes are all ones or all zeros: keep bit i of lane i, then add the lanes.
        const BITS: [u32; 4] = [1, 2, 4, 8];
        unsafe { vaddvq_u32(vandq_u32(m, vld1q_u32(BITS.as_ptr()))) }
    }
    #[inline(always)]
    fn round(self, v: float32x4_t) -> float32x4_t {
        // To nearest, ties to even (FRINTN).
        unsafe { vrndnq_f32(v) }
    }
    #[inline(always)]
    fn mul_pow2(self, y: float32x4_t, n: float32x4_t) -> float32x4_t {
        // 2ⁿ built from its exponent bits; n = −127 gives the bits of +0.0, so y·2ⁿ = 0.
        unsafe {
            let e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
            vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32::<23>(e)))
        }
    }
    #[inline(always)]
    fn transpose_sum(self, vs: &[float32x4_t]) -> float32x4_t {
        let vs: &[float32x4_t; 4] = vs.try_into().expect("LANES vectors");
        // vpaddq(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3]: two levels leave Σ vs[i] in lane i.
        unsafe { vpaddq_f32(vpaddq_f32(vs[0], vs[1]), vpaddq_f32(vs[2], vs[3])) }
    }
    #[inline(always)]
    fn reduce_add(self, v: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(v) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> float32x4_t {
        // Exactly 4 bytes read: u8 → u16 (vmovl_u8) → u32 (vmovl_u16) → f32.
        unsafe {
            let bytes = vreinterpret_u8_u32(vdup_n_u32(p.cast::<u32>().read_unaligned()));
            let words = vget_low_u16(vmovl_u8(bytes));
            vcvtq_f32_u32(vmovl_u16(words))
        }
    }
}
