//! Plain `f32` arithmetic, one lane: every CPU. The fallback on architectures without a SIMD
//! path of their own, the `--simd scalar` path, and the instance the other paths are tested
//! against lane by lane.

use super::{Simd, sealed::Sealed};

/// The scalar token (needs no CPU check, but is built like the others).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar(());

impl Scalar {
    /// Always available.
    pub(crate) fn detect() -> Option<Self> {
        Some(Scalar(()))
    }
}

impl Sealed for Scalar {}

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
