//! The instruction sets the fused kernels run on, chosen at run time.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the [`Simd`] trait, [`WithSimd`], [`Isa`] (a runnable path), [`SimdChoice`], dispatch |
//! | `scalar.rs` | the 1-lane token: every CPU |
//! | `x86.rs` | SSE2, AVX2 + FMA, AVX-512F tokens and their `#[target_feature]` wrappers |
//! | `aarch64.rs` | the NEON token and its wrapper |
//!
//! Adding an instruction set touches this module only: a token file with its `Simd` impl and
//! its `vectorize` wrapper, a `Token` variant, a [`SimdChoice`] name, and the three matches of
//! [`Isa`] (`supported`, `run`, `choice`). No kernel changes.
//!
//! ## Why run-time dispatch
//! A crate is compiled for the baseline of its target (SSE2 on x86-64) unless the *final* build
//! passes `-C target-cpu=…`; a crate that depends on us, or `cargo install`, never does. So the
//! kernel bodies are written once, generic over [`Simd`], as [`WithSimd::with_simd`], and
//! [`Isa::run`] calls them through the token's thin `#[target_feature(enable = …)]` wrapper
//! (written once per instruction set, in its token's file): inside it the `#[inline(always)]`
//! body and the intrinsics of its [`Simd`] type are inlined and compiled for that instruction
//! set, whatever the crate's own target. The CPU is asked once ([`Isa::best`]); the kernel keeps
//! the answer.
//!
//! ## Why tokens
//! Executing an AVX-512 instruction on a CPU without it is undefined behaviour, so the right to
//! call an instance must be proven, not assumed. Each instruction set has a zero-sized token
//! type with a private field and one constructor, `detect`, that asks the CPU for every feature
//! its impl uses. Every [`Simd`] method takes the token by value: holding one is the proof
//! that its intrinsics may run. [`Isa`] wraps a token, so an `Isa` value is always runnable on
//! this machine, and safe code cannot build one any other way; the trait is sealed, so no
//! other type can claim the proof.
//!
//! ## What is vectorised
//! Everything in the fused kernels' inner loops: the dot products and the `dW` accumulation
//! (unit-stride loads of `f32`, fused multiply-adds), the u8 → `f32` conversion of the rows
//! ([`Simd::load_u8`]), the transposing reduction of the forward's accumulators
//! ([`Simd::transpose_sum`]), and the epilogue: softmax with a polynomial `exp`, loss, argmax
//! and the clip masks, `LANES` rows at a time (`softmax::lanes`). Where a feature count is not
//! a multiple of the width the kernels finish with scalar tails, so no load ever reads past a
//! row. SSE2 has no FMA: its `mul_add` is a multiply then an add (one more rounding, inside
//! the tests' error bounds). NEON (aarch64) has FMA and 32 registers. The scalar instance
//! (1 lane) is the fallback for other architectures and the `--simd scalar` path.
//!
//! ## Why our own trait, not `wide`, `pulp` or `std::simd`
//! - `wide` picks its vector types with `cfg(target_feature)` at compile time: a crate built
//!   for the x86-64 baseline gets SSE2 code, and there is no run-time dispatch to reach
//!   AVX2 or AVX-512 (the reason it was dropped from this crate).
//! - `std::simd` is unstable (nightly only, `portable_simd`); this crate builds on stable.
//! - `pulp` has the design we follow (a sealed `Simd`, one generic `WithSimd::with_simd`,
//!   the wrapper written once per token) and would give NEON for free. We did not take it
//!   because its AVX-512 level sits behind a non-default cargo feature (`x86-v4`), and the
//!   kernels need operations with exact semantics that a generic library spells differently
//!   or not at all: [`Simd::transpose_sum`] (the forward's reduction), [`Simd::mul_pow2`]
//!   with its `n = −127` → 0 rule (the polynomial `exp` relies on it to flush, see
//!   `softmax.rs`), and the u8 widening load. The cost we own: ~450 lines of intrinsics per
//!   architecture, and NEON written by hand (`aarch64.rs`). No speed comparison was measured.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
use aarch64::Neon;
use scalar::Scalar;
#[cfg(target_arch = "x86_64")]
use x86::{Avx2, Avx512, Sse2};

pub(crate) mod sealed {
    /// Only the tokens of this module implement [`super::Simd`].
    #[doc(hidden)]
    pub trait Sealed {}
}

/// A SIMD instruction set: its vector type and the few operations the kernels use.
///
/// Implemented by zero-sized tokens that can only be obtained after a CPU check, so that the
/// methods' `unsafe` intrinsics are sound for any caller holding `self`. Sealed: only this
/// module's tokens implement it (an outside impl could claim features the CPU lacks). Code
/// generic over it gets a token from [`Isa::run`].
pub trait Simd: sealed::Sealed + Copy + Send + Sync + 'static {
    /// A vector of [`Self::LANES`] `f32`s.
    type V: Copy;
    /// A lane mask, as comparisons produce it.
    type M: Copy;
    /// `f32` lanes per vector.
    const LANES: usize;
    /// 32 vector registers: enough for a 4-row × 5-class forward tile and a 10-class ×
    /// 2-vector backward tile (20 accumulators each); otherwise the kernels use 2 × 5 and
    /// 5 × 2 tiles.
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

/// A computation generic over the instruction set: what [`Isa::run`] runs, compiled for the
/// path it holds (pulp's `WithSimd`). Implementations mark `with_simd` `#[inline(always)]`,
/// so that the body is compiled inside the path's `#[target_feature]` wrapper.
pub trait WithSimd {
    /// What the computation returns.
    type Output;
    /// Run on instruction set `S`; holding `simd` proves the CPU has it.
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output;
}

/// A request for an instruction set, as `train --simd` and `MNIST_LOGREG_SIMD` spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
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
    /// NEON on aarch64 (4 lanes, FMA, 32 registers).
    Neon,
    /// Plain scalar code.
    Scalar,
}

crate::names::named!(SimdChoice, "SIMD path", [
    Auto => "auto",
    Avx512 => "avx512",
    Avx2 => "avx2",
    Sse2 => "sse2",
    Neon => "neon",
    Scalar => "scalar",
]);

/// The environment variable that forces a path in tests, benches and binaries
/// (`auto`, `avx512`, `avx2`, `sse2`, `neon`, `scalar`).
pub(crate) const SIMD_ENV: &str = "MNIST_LOGREG_SIMD";

/// An instruction set that was asked for but cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    #[error("{SIMD_ENV}={0:?} is not one of {names}", names = choice_names())]
    BadEnv(String),
}

/// Every [`SimdChoice`] name, comma-separated.
fn choice_names() -> String {
    let names: Vec<&str> = SimdChoice::NAMED.iter().map(|c| c.name()).collect();
    names.join(", ")
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
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
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
        #[cfg(target_arch = "aarch64")]
        out.extend(Neon::detect().map(|t| Isa(Token::Neon(t))));
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
        if choice == SimdChoice::Auto {
            return Ok(all[0]);
        }
        all.iter()
            .copied()
            .find(|isa| isa.choice() == choice)
            .ok_or_else(|| SimdError::Unsupported {
                wanted: choice.name(),
                supported: all.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
            })
    }

    /// The path named by `MNIST_LOGREG_SIMD`, or the widest when it is unset or empty.
    pub fn from_env() -> Result<Isa, SimdError> {
        match std::env::var(SIMD_ENV) {
            Err(_) => Ok(Isa::best()),
            Ok(v) if v.trim().is_empty() => Ok(Isa::best()),
            Ok(v) => {
                let choice: SimdChoice = v.parse().map_err(|_| SimdError::BadEnv(v.clone()))?;
                Isa::select(choice)
            }
        }
    }

    /// The [`SimdChoice`] that selects this path.
    pub fn choice(self) -> SimdChoice {
        match self.0 {
            Token::Scalar(_) => SimdChoice::Scalar,
            #[cfg(target_arch = "x86_64")]
            Token::Sse2(_) => SimdChoice::Sse2,
            #[cfg(target_arch = "x86_64")]
            Token::Avx2(_) => SimdChoice::Avx2,
            #[cfg(target_arch = "x86_64")]
            Token::Avx512(_) => SimdChoice::Avx512,
            #[cfg(target_arch = "aarch64")]
            Token::Neon(_) => SimdChoice::Neon,
        }
    }

    /// The path's name, as `--simd` spells it.
    pub fn name(self) -> &'static str {
        self.choice().name()
    }

    /// `f32` lanes per vector.
    pub fn lanes(self) -> usize {
        struct Lanes;
        impl WithSimd for Lanes {
            type Output = usize;
            #[inline(always)]
            fn with_simd<S: Simd>(self, _: S) -> usize {
                S::LANES
            }
        }
        self.run(Lanes)
    }

    /// Run `op` on this path: compiled for its instruction set, with its token.
    ///
    /// ```
    /// use mnist_logreg::kernels::{Isa, Simd, WithSimd};
    ///
    /// /// Σ x·y, one vector at a time (then the scalar tail).
    /// struct Dot<'a>(&'a [f32], &'a [f32]);
    /// impl WithSimd for Dot<'_> {
    ///     type Output = f32;
    ///     #[inline(always)]
    ///     fn with_simd<S: Simd>(self, s: S) -> f32 {
    ///         let (x, y) = (self.0, &self.1[..self.0.len()]);
    ///         let mut acc = s.zero();
    ///         let mut chunks = x.chunks_exact(S::LANES).zip(y.chunks_exact(S::LANES));
    ///         for (a, b) in &mut chunks {
    ///             // SAFETY: both chunks hold LANES values.
    ///             acc = unsafe { s.mul_add(s.load(a.as_ptr()), s.load(b.as_ptr()), acc) };
    ///         }
    ///         let tail = x.len() - x.len() % S::LANES;
    ///         s.reduce_add(acc) + x[tail..].iter().zip(&y[tail..]).map(|(a, b)| a * b).sum::<f32>()
    ///     }
    /// }
    /// let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
    /// for isa in Isa::supported() {
    ///     assert_eq!(isa.run(Dot(&x, &x)), (0..37).map(|i| (i * i) as f32).sum::<f32>());
    /// }
    /// ```
    #[inline]
    pub fn run<O: WithSimd>(self, op: O) -> O::Output {
        match self.0 {
            Token::Scalar(t) => op.with_simd(t),
            #[cfg(target_arch = "x86_64")]
            Token::Sse2(t) => t.vectorize(op),
            #[cfg(target_arch = "x86_64")]
            Token::Avx2(t) => t.vectorize(op),
            #[cfg(target_arch = "x86_64")]
            Token::Avx512(t) => t.vectorize(op),
            #[cfg(target_arch = "aarch64")]
            Token::Neon(t) => t.vectorize(op),
        }
    }
}

impl PartialEq for Isa {
    fn eq(&self, other: &Self) -> bool {
        self.choice() == other.choice()
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
        impl<T: PathCheck> WithSimd for Run<T> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, s: S) {
                T::check(s)
            }
        }
        Isa::supported()
            .into_iter()
            .map(|isa| {
                isa.run(Run::<T>(std::marker::PhantomData));
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
        assert_eq!(Isa::select(SimdChoice::Scalar).unwrap().name(), "scalar");
        let lanes: Vec<usize> = all.iter().map(|i| i.lanes()).collect();
        assert!(
            lanes.windows(2).all(|w| w[0] > w[1]),
            "widest first: {lanes:?}"
        );
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
            (SimdChoice::Neon, "neon"),
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
            let choice: SimdChoice = isa.name().parse().unwrap();
            assert_eq!(Isa::select(choice).unwrap(), isa);
        }
    }
}
