//! The second-moment preconditioner and the curvature's: coordinates `u = R·θ` for each class's column
//! `θ_c = [W_c; b_c]`, with `RᵀR = M` and
//!
//! ```text
//! M = α · E_s[[x 1]ᵀ[x 1]] + ridge · diag(1, …, 1, 0)
//! ```
//!
//! (`E_s` the sample-weighted mean over a strided sample of rows, `ridge` = λ, floored at
//! `1e-9` of the mean diagonal so that a feature that is zero in every sampled row still has a
//! positive pivot). `M/λ` approximates the objective's Hessian in each class's block when the
//! softmax's curvature `p(1 − p)` is about `α`; L-BFGS in `u` then starts with a good model of
//! the curvature. The objective and its optimum do not change, only the path to it.
//!
//! ## The curvature's coordinates
//! The objective's Hessian in class `c`'s block is `E_s[p_c(1 − p_c)·[x 1]ᵀ[x 1]] + λ·D`: once
//! the model predicts most rows with certainty, their `p(1 − p)` is near 0 and the uncertain
//! rows, a different part of the data, set the curvature. [`SecondMoment::of_curvature`]
//! builds `M = α·E_s[c·[x 1]ᵀ[x 1]]/E_s[c] + ridge·D` with each row's `c = 1 − Σ_k p_k²` (the
//! trace of `diag(p) − ppᵀ`, written by the solver's pass on request), from `m` rows drawn in
//! proportion to `s·c` by systematic sampling (deterministic, so the solver stays
//! bit-identical for any thread count). [`super::solve`] changes to it after 20 iterations and
//! restarts the L-BFGS pairs. Measured on MNIST (`SOLVER_BENCH_ONLY=gaps cargo bench --bench
//! solver`, 2-core AMD EPYC Zen 4, 2026-12-07; iterations / passes):
//!
//! | coordinates | to a gap of 1e-4 | to 1e-5 |
//! | --- | --- | --- |
//! | second moment, α = 0.001 | 72 / 73 | 103 / 104 |
//! | then curvature after 20 iterations, m = 8192 | **59 / 64** | **77 / 82** |
//!
//! The choices, each against the others in the same way (passes to 1e-5): the change after
//! 10, 15, 20, 25, 30 iterations 85, 85, 82, 87, 86; m = 4096, 8192, 16384: 84, 82, 85; the
//! scale `α/E[c]` (the same `α` as the second moment, the curvature only shaping it) 82,
//! against a fixed scale of `E[c·xxᵀ]` times 1, 0.1, 0.03, 0.01: 124, 94, 88, 84; a second
//! change 20 iterations later 95; the pairs carried into the new coordinates (`s' = R'R⁻¹s`,
//! `y' = R'⁻ᵀRᵀy`) instead of restarted 82. An f64 experiment with scipy's L-BFGS-B first
//! (MNIST, 1e-5: 104 iterations in the second moment's coordinates, 86 after the change with
//! 8192 drawn rows, 83 with all 60 000 rows weighted, 127 with 2048 evenly spaced rows
//! weighted) chose the drawn sample. The change costs one pass that records `c` (13 ms), the
//! `m`-row Gram matrix (41–46 ms for 8192 rows), a second Cholesky factorisation (16 ms then,
//! blocked since: see [`cholesky_upper`]) and `Rᵀ` (4 ms): about 6 passes, against 22 saved.
//!
//! ## Cost
//! Set-up: the upper triangle of `AᵀA` for the sample `A` (two `matrixmultiply::sgemm`
//! blocks on the objective's threads, `1.5·m·(d+1)²` flops), a blocked Cholesky factorisation
//! (`(d+1)³/3` flops) and `Rᵀ`. Per iteration: one `R⁻ᵀ·g` and one `R⁻¹·d` for the `K`
//! classes (`2·K·(d+1)²` flops), dot products over rows of `Rᵀ` or `R`, each row read once
//! for up to 5 classes, the groups of classes on the objective's threads (the helper is idle
//! between the passes).
//!
//! `R` is factored in `f64` and stored rounded to `f32`: the rounded `R̃` is the exact factor
//! of `R̃ᵀR̃`, a preconditioner as good as `M` (it differs by ~1e-7 relative), and both maps
//! use that same `R̃` in `f64` arithmetic, so they stay each other's inverse transpose and the
//! coordinates stay exact; the rows the maps read are half the bytes.
//!
//! Measured on MNIST (2048 sample rows, 785 × 10; 2-core AMD EPYC Zen 4, 2026-12-07): the
//! set-up 33–38 ms, was 50–65 ms with one `sgemm` of the whole product (29 ms of it) and a
//! column-walk transpose (4 ms). The maps (`SOLVER_BENCH_ONLY=pass cargo bench --bench
//! solver`, medians of 101 calls on a warm `R`; and summed over a default solve, 82 calls
//! each, where the pass before them has pushed `R` out of the caches):
//!
//! | maps | `R⁻ᵀ·g`, `R⁻¹·d` warm | both, in a solve |
//! | --- | --- | --- |
//! | `f64` `R`, one dot product per class (16 accumulators, SSE2 code) | 300, 336 µs | – |
//! | `f32` `R`, the same loops | 300, 307 µs | 80–90 ms |
//! | `f32` `R`, 5 classes per row read, AVX2 + FMA | 121, 122 µs | 52–56 ms |
//! | the same, the rows 2 steps ahead prefetched (the code) | 121–138 µs | 34–40 ms |
//!
//! Each class sums its products in one fixed order whatever the classes beside it in its
//! tile, so the maps give the same bits for any thread count (a test); the forms (AVX2 + FMA,
//! portable with or without FMA) differ in their last bits, as the kernels' paths do.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lbfgs::Coordinates;
use super::{Problem, SolveError};
use crate::compute::kernels::fused::prefetch::prefetch_l1;
use crate::compute::kernels::share::{Team, lock};
use crate::compute::kernels::{Isa, SimdChoice};

/// The factor `R` (upper triangular, row-major, `n × n` with `n = features + 1`; `f32`, see
/// the module docs) and the class count `K` of the vectors it maps (class-major: `K` blocks
/// of `n` values).
pub(crate) struct SecondMoment {
    n: usize,
    classes: usize,
    r: Vec<f32>,
    /// `Rᵀ` (lower triangular, row-major): the rows `R⁻ᵀ·g`'s dot products read.
    rt: Vec<f32>,
    /// The objective's threads: the maps run on them, a group of classes each.
    team: Arc<Team>,
    /// How the maps' dot products run (chosen from the objective's instruction set).
    dots: Dots,
}

/// Row `i`'s sample weight in `problem` (1 without weights).
fn sample_weight(problem: &Problem, i: usize) -> f64 {
    problem.weights.map_or(1.0, |w| f64::from(w[i]))
}

/// Classes whose dot products share one read of a row of `R` (10 accumulators of 4 lanes
/// and 2 row vectors: 12 of the 16 AVX2 registers; MNIST's 10 classes are 2 tiles on one
/// thread, 1 on each of two).
const CLASS_TILE: usize = 5;

/// How the maps' dot products run: AVX2 + FMA intrinsics (x86-64 paths `avx2` and `avx512`),
/// or portable code with fused multiply-adds (aarch64, where they are baseline) or without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dots {
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    Portable {
        fma: bool,
    },
}

impl Dots {
    /// The form `isa` runs: AVX2 + FMA on the `avx2` and `avx512` paths, once the CPU is
    /// seen to have both (asked here, not inferred from the path: the `Avx2Fma` form's
    /// safety rests on this check alone).
    fn of(isa: Isa) -> Self {
        match isa.choice() {
            #[cfg(target_arch = "x86_64")]
            SimdChoice::Avx2 | SimdChoice::Avx512
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") =>
            {
                Dots::Avx2Fma
            }
            SimdChoice::Neon => Dots::Portable { fma: true },
            _ => Dots::Portable { fma: false },
        }
    }

    /// `Σ_j row[j]·ys[c][j]` for each of the `C` classes (every `ys[c]` as long as `row`).
    /// Every form sums a class's products in the same order: element `j` into accumulator
    /// lane `j mod 8`, lanes summed as `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))`, then the
    /// products past the last multiple of 8 in order; so a class's result does not depend on
    /// the classes beside it in its tile (nor on the thread count), only on the form.
    #[inline]
    fn dots<const C: usize>(self, row: &[f32], ys: [&[f64]; C]) -> [f64; C] {
        assert!(
            ys.iter().all(|y| y.len() == row.len()),
            "one value per entry of the row"
        );
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Dots::Avx2Fma` is only made by `Dots::of` after the CPU was seen to
            // have AVX2 and FMA; every `ys[c]` is as long as `row` (asserted above).
            Dots::Avx2Fma => unsafe { dots_avx2_fma(row, ys) },
            Dots::Portable { fma: true } => dots_portable::<C, true>(row, ys),
            Dots::Portable { fma: false } => dots_portable::<C, false>(row, ys),
        }
    }
}

/// `a·b + c`, fused when `FMA` (a slow library call where the CPU lacks the instruction).
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The lanes of an 8-lane accumulator summed in [`Dots::dots`]'s order.
#[inline(always)]
fn lane_sum(l: [f64; 8]) -> f64 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// [`Dots::dots`] in portable code.
fn dots_portable<const C: usize, const FMA: bool>(row: &[f32], ys: [&[f64]; C]) -> [f64; C] {
    let whole = row.len() - row.len() % 8;
    let mut acc = [[0.0f64; 8]; C];
    for (j, r) in row[..whole].chunks_exact(8).enumerate() {
        for (a, y) in acc.iter_mut().zip(&ys) {
            for (i, (a, &r)) in a.iter_mut().zip(r).enumerate() {
                *a = madd::<FMA>(f64::from(r), y[8 * j + i], *a);
            }
        }
    }
    std::array::from_fn(|c| {
        let tail = (whole..row.len()).fold(0.0, |s, j| madd::<FMA>(f64::from(row[j]), ys[c][j], s));
        lane_sum(acc[c]) + tail
    })
}

/// [`Dots::dots`] with AVX2 + FMA: per 8 entries of the row, two conversions to `f64` and
/// two fused multiply-adds per class (two 4-lane accumulators each, lanes 0–3 and 4–7).
///
/// # Safety
/// The CPU must have AVX2 and FMA; every `ys[c]` must be at least as long as `row`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2_fma<const C: usize>(row: &[f32], ys: [&[f64]; C]) -> [f64; C] {
    use std::arch::x86_64::*;
    let whole = row.len() - row.len() % 8;
    let mut lo = [_mm256_setzero_pd(); C];
    let mut hi = [_mm256_setzero_pd(); C];
    let mut j = 0;
    while j < whole {
        // SAFETY: `j + 8 <= whole <= row.len() <= ys[c].len()`: every load is in bounds.
        unsafe {
            let r = row.as_ptr().add(j);
            let (r0, r1) = (
                _mm256_cvtps_pd(_mm_loadu_ps(r)),
                _mm256_cvtps_pd(_mm_loadu_ps(r.add(4))),
            );
            for c in 0..C {
                let y = ys[c].as_ptr().add(j);
                lo[c] = _mm256_fmadd_pd(r0, _mm256_loadu_pd(y), lo[c]);
                hi[c] = _mm256_fmadd_pd(r1, _mm256_loadu_pd(y.add(4)), hi[c]);
            }
        }
        j += 8;
    }
    std::array::from_fn(|c| {
        let mut l = [0.0f64; 8];
        // SAFETY: `l` holds 8 values: two stores of 4.
        unsafe {
            _mm256_storeu_pd(l.as_mut_ptr(), lo[c]);
            _mm256_storeu_pd(l.as_mut_ptr().add(4), hi[c]);
        }
        let tail = (whole..row.len()).fold(0.0, |s, j| f64::from(row[j]).mul_add(ys[c][j], s));
        lane_sum(l) + tail
    })
}

/// Rows ahead of the substitution whose cache lines are asked for.
const AHEAD: usize = 2;

/// `sums[..C] = values`.
fn put<const C: usize>(sums: &mut [f64], values: [f64; C]) {
    sums[..C].copy_from_slice(&values);
}

/// A triangular solve for a group of classes: `R⁻¹·rhs_c` by back substitution (`back`, `tri`
/// = `R`: `x_i = (rhs_i − R[i, i+1..]·x[i+1..]) / R_ii`) or `R⁻ᵀ·rhs_c` by forward
/// substitution (`tri` = `Rᵀ`: `y_j = (rhs_j − Rᵀ[j, ..j]·y[..j]) / R_jj`); each row of `tri`
/// is read once for [`CLASS_TILE`] classes at a time. `out` holds the solutions of the group
/// `classes`, class-major; `rhs` every class's right-hand side.
fn substitute(
    dots: Dots,
    (n, tri): (usize, &[f32]),
    rhs: &[f64],
    out: &mut [f64],
    classes: Range<usize>,
    back: bool,
) {
    let k = classes.len();
    assert!(tri.len() == n * n && out.len() == k * n && rhs.len() >= classes.end * n);
    // Step `step`'s index, and its row of `tri` up to and from the diagonal: the diagonal
    // first (`R`) or last (`Rᵀ`).
    let index = |step: usize| if back { n - 1 - step } else { step };
    let segment = |i: usize| {
        if back {
            &tri[i * n + i..(i + 1) * n]
        } else {
            &tri[i * n..i * n + i + 1]
        }
    };
    for step in 0..n {
        let (i, seg) = (index(step), segment(index(step)));
        let (diag, row, solved) = if back {
            (seg[0], &seg[1..], i + 1..n)
        } else {
            (seg[i], &seg[..i], 0..i)
        };
        let diag = f64::from(diag);
        if step + AHEAD < n {
            prefetch_l1(segment(index(step + AHEAD)));
        }
        for c0 in (0..k).step_by(CLASS_TILE) {
            let part = |c: usize| &out[(c0 + c) * n..(c0 + c + 1) * n][solved.clone()];
            let mut sums = [0.0; CLASS_TILE];
            match (k - c0).min(CLASS_TILE) {
                5 => put(&mut sums, dots.dots::<5>(row, std::array::from_fn(part))),
                4 => put(&mut sums, dots.dots::<4>(row, std::array::from_fn(part))),
                3 => put(&mut sums, dots.dots::<3>(row, std::array::from_fn(part))),
                2 => put(&mut sums, dots.dots::<2>(row, std::array::from_fn(part))),
                _ => put(&mut sums, dots.dots::<1>(row, [part(0)])),
            }
            for (c, sum) in sums.iter().enumerate().take(k - c0) {
                out[(c0 + c) * n + i] = (rhs[(classes.start + c0 + c) * n + i] - sum) / diag;
            }
        }
    }
}

impl SecondMoment {
    /// The preconditioner of `alpha`, `ridge` from at most `sample_rows` rows (evenly
    /// strided) of `problem`'s pixels (u8 read as `p/255`), each weighted by its sample
    /// weight; its maps run on `team`.
    pub(crate) fn new(
        team: Arc<Team>,
        isa: Isa,
        problem: &Problem,
        (alpha, ridge): (f64, f64),
        sample_rows: usize,
    ) -> Result<Self, SolveError> {
        let rows = problem.rows();
        let m = rows.min(sample_rows.max(1));
        let sample: Vec<(usize, f64)> = (0..m)
            .map(|t| t * rows / m)
            .map(|i| (i, sample_weight(problem, i)))
            .collect();
        Self::of_sample(team, isa, problem, &sample, alpha, ridge)
    }

    /// The preconditioner of the softmax's curvature at the current point: `M =
    /// α·E_s[c·[x 1]ᵀ[x 1]]/E_s[c] + ridge · diag(1, …, 1, 0)` with `c` each row's
    /// `curvature` (`1 − Σ p²`): the second moment with each row weighted by its share of the
    /// curvature, at the same scale `α`. Estimated from `sample_rows` rows drawn with
    /// probability `∝ s·c` (systematic sampling over the rows in order: deterministic).
    /// `None` when no row has any curvature (every prediction certain).
    pub(crate) fn of_curvature(
        team: Arc<Team>,
        isa: Isa,
        problem: &Problem,
        curvature: &[f32],
        (alpha, ridge): (f64, f64),
        sample_rows: usize,
    ) -> Option<Result<Self, SolveError>> {
        let weight = |i: usize| sample_weight(problem, i) * f64::from(curvature[i]);
        let total: f64 = (0..curvature.len()).map(weight).sum();
        if !(total > 0.0 && total.is_finite()) {
            return None;
        }
        let m = sample_rows.max(1);
        let spacing = total / m as f64;
        let mut sample = Vec::with_capacity(m);
        let (mut row, mut below) = (0, 0.0);
        for t in 0..m {
            let point = (t as f64 + 0.5) * spacing;
            // The row whose share of `total` holds `point`.
            while row + 1 < curvature.len() && below + weight(row) <= point {
                below += weight(row);
                row += 1;
            }
            // A row drawn again (its `s·c` above the spacing) weighs more, once in the Gram.
            match sample.last_mut() {
                Some((last, count)) if *last == row => *count += 1.0,
                _ => sample.push((row, 1.0)),
            }
        }
        Some(Self::of_sample(team, isa, problem, &sample, alpha, ridge))
    }

    /// `M = alpha · Σ wᵢ·[xᵢ 1]ᵀ[xᵢ 1] / Σ wᵢ + ridge · diag(1, …, 1, 0)` over the `(row, w)`
    /// of `sample`, factored.
    fn of_sample(
        team: Arc<Team>,
        isa: Isa,
        problem: &Problem,
        sample: &[(usize, f64)],
        alpha: f64,
        ridge: f64,
    ) -> Result<Self, SolveError> {
        let (pixels, features) = (problem.pixels, problem.features);
        let (m, n) = (sample.len(), features + 1);
        // Each row scaled by √(w_i / Σw) so that AᵀA is the weighted mean.
        let total: f64 = sample.iter().map(|&(_, w)| w).sum();
        let mut a = vec![0.0f32; m * n];
        for (row, &(i, w)) in a.chunks_exact_mut(n).zip(sample) {
            pixels.row_to_f32(i, &mut row[..features]);
            row[features] = 1.0;
            let scale = if total > 0.0 {
                (w / total).sqrt() as f32
            } else {
                0.0
            };
            row.iter_mut().for_each(|v| *v *= scale);
        }
        let gram = upper_gram(&team, &a, m, n);
        let mut r: Vec<f64> = gram.iter().map(|&g| alpha * f64::from(g)).collect();
        let mean_diag = (0..n).map(|i| r[i * n + i]).sum::<f64>() / n as f64;
        let ridge = ridge.max(1e-9 * mean_diag).max(f64::MIN_POSITIVE);
        for i in 0..features {
            r[i * n + i] += ridge;
        }
        cholesky_upper(&team, &mut r, n)?;
        let r: Vec<f32> = r.iter().map(|&v| v as f32).collect();
        let rt = transposed(&r, n);
        Ok(Self {
            n,
            classes: problem.classes,
            r,
            rt,
            team,
            dots: Dots::of(isa),
        })
    }

    /// `R⁻¹·input` (`back`) or `R⁻ᵀ·input` for each group of classes, one group per thread.
    fn per_class_group(&self, input: &[f64], out: &mut [f64], back: bool) {
        let (n, k) = (self.n, self.classes);
        assert_eq!(
            input.len(),
            n * k,
            "one value per class and feature (+ bias)"
        );
        let per = k.div_ceil(self.team.threads().min(k));
        let parts: Vec<Mutex<&mut [f64]>> = out.chunks_mut(per * n).map(Mutex::new).collect();
        let tri = if back { &self.r } else { &self.rt };
        self.team.run_shared(parts.len(), &|t| {
            let classes = t * per..((t + 1) * per).min(k);
            let out = &mut lock(&parts[t]);
            substitute(self.dots, (n, tri), input, out, classes, back);
        });
    }

    /// The median time of `calls` calls of each map on a vector of ones: (`R⁻ᵀ·g`, `R⁻¹·d`).
    pub(crate) fn time_maps(&self, calls: usize) -> (Duration, Duration) {
        let g = vec![1.0; self.n * self.classes];
        let mut out = vec![0.0; g.len()];
        let mut time = |map: &dyn Fn(&mut [f64])| {
            let mut times: Vec<Duration> = (0..calls.max(1))
                .map(|_| {
                    let t = Instant::now();
                    map(&mut out);
                    t.elapsed()
                })
                .collect();
            times.sort();
            times[times.len() / 2]
        };
        let to_u = time(&|out| self.gradient_to_u(&g, out));
        let to_x = time(&|out| self.direction_to_x(&g, out));
        (to_u, to_x)
    }
}

/// The transpose of the `n × n` row-major `r`, in 32 × 32 tiles (a column walk of 785 rows
/// would miss the cache at every step).
fn transposed(r: &[f32], n: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut t = vec![0.0; n * n];
    for i0 in (0..n).step_by(TILE) {
        for j0 in (0..n).step_by(TILE) {
            for i in i0..n.min(i0 + TILE) {
                for j in j0..n.min(j0 + TILE) {
                    t[j * n + i] = r[i * n + j];
                }
            }
        }
    }
    t
}

/// Run `block(first, rows, out)` on `team` for the two row blocks of the upper triangle of
/// rows and columns `offset..n` of an `n`-column row-major matrix whose rows `offset..n` are
/// `tail`: the first `h ≈ 0.382·m` of the `m = n − offset` rows over all `m` columns, the last
/// `m − h` over their `(m − h)²` square, which cost the same (`h·m = (m − h)²`) and together
/// three quarters of the square. `first` is the block's first row (absolute), `out` its `rows`
/// whole rows. The split does not depend on the thread count, so neither does any result.
fn upper_halves<T: Send>(
    team: &Team,
    tail: &mut [T],
    (n, offset): (usize, usize),
    block: &(dyn Fn(usize, usize, &mut [T]) + Sync),
) {
    let m = n - offset;
    assert_eq!(tail.len(), m * n, "the rows offset..n");
    let h = (((3.0 - 5f64.sqrt()) / 2.0 * m as f64) as usize).clamp(1.min(m), m);
    let (top, bottom) = tail.split_at_mut(h * n);
    let blocks = [
        (offset, h, Mutex::new(top)),
        (offset + h, m - h, Mutex::new(bottom)),
    ];
    team.run_shared(2, &|t| {
        let (first, rows, out) = &blocks[t];
        block(*first, *rows, &mut lock(out));
    });
}

/// The upper triangle of `AᵀA` (`n × n`, row-major; entries below it are left zero or hold
/// parts of the product) for `a` = A, `m × n` row-major: two `sgemm` calls on `team`
/// ([`upper_halves`]).
fn upper_gram(team: &Team, a: &[f32], m: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * n, "A holds m × n values");
    let mut gram = vec![0.0f32; n * n];
    upper_halves(team, &mut gram, (n, 0), &|first, rows, out| {
        // SAFETY: `a` holds `m × n` values: Aᵀ's rows `first..first + rows` are read at
        // `l·n + first + i` (`i < rows <= n − first`, `l < m`), A's columns `first..n` at
        // `l·n + first + j` (`j < n − first`): all below `m·n`. `out` holds `rows` whole rows
        // (`rows·n` values) and is written at `i·n + first + j`: below `rows·n`.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                m,
                n - first,
                1.0,
                a.as_ptr().add(first),
                1,
                n as isize,
                a.as_ptr().add(first),
                n as isize,
                1,
                0.0,
                out.as_mut_ptr().add(first),
                n as isize,
                1,
            );
        }
    });
    gram
}

/// Rows of `R` per panel of [`cholesky_upper`].
const PANEL: usize = 48;

/// In place: the upper triangle of the symmetric `a` (`n × n`, row-major) becomes `R` with
/// `RᵀR = a` (the strict lower triangle is zeroed); [`SolveError::Precondition`] when `a` is
/// not positive definite.
///
/// Blocked, right-looking: each panel of [`PANEL`] rows is factored by rank-1 updates within
/// the panel, then the trailing rows take the panel's whole update at once, `A₂₂ −= R₁₂ᵀ·R₁₂`
/// ([`trailing_update`]: two `dgemm` blocks on `team`). On MNIST's 785 × 785 (2-core AMD
/// EPYC Zen 4, 2026-12-07) a factorisation took 16 ms as rank-1 updates of the whole
/// trailing matrix (streamed from L3 once per row); blocked, the default solve's set-up (two
/// factorisations among the rest) fell from 108–118 ms to 92–95 ms (`SOLVER_BENCH_ONLY=
/// defaults cargo bench --bench solver`, three alternations).
fn cholesky_upper(team: &Team, a: &mut [f64], n: usize) -> Result<(), SolveError> {
    assert_eq!(a.len(), n * n, "a holds n × n values");
    for k0 in (0..n).step_by(PANEL) {
        let k1 = (k0 + PANEL).min(n);
        for k in k0..k1 {
            let (head, tail) = a.split_at_mut((k + 1) * n);
            let row_k = &mut head[k * n..];
            let pivot = row_k[k];
            if pivot.is_nan() || pivot <= 0.0 || !pivot.is_finite() {
                return Err(SolveError::Precondition {
                    index: k,
                    value: pivot,
                });
            }
            let root = pivot.sqrt();
            row_k[..k].fill(0.0);
            row_k[k..].iter_mut().for_each(|v| *v /= root);
            // The panel's later rows: a[i][i..] −= r[k][i] · r[k][i..].
            for (off, row_i) in tail.chunks_exact_mut(n).take(k1 - k - 1).enumerate() {
                let i = k + 1 + off;
                let f = row_k[i];
                if f != 0.0 {
                    for (x, r) in row_i[i..].iter_mut().zip(&row_k[i..]) {
                        *x -= f * r;
                    }
                }
            }
        }
        trailing_update(team, a, n, k0..k1);
    }
    Ok(())
}

/// `a[i][j] −= Σ_{p ∈ panel} r[p][i]·r[p][j]` for the rows `i ≥ panel.end` and (at least)
/// their upper triangle `j ≥ i` (entries left of it may change too: [`cholesky_upper`] zeroes
/// them): two `dgemm` calls on `team` ([`upper_halves`]).
fn trailing_update(team: &Team, a: &mut [f64], n: usize, panel: Range<usize>) {
    let (k0, k1) = (panel.start, panel.end);
    assert!(k0 < k1 && k1 <= n && a.len() == n * n);
    if k1 == n {
        return;
    }
    let (head, tail) = a.split_at_mut(k1 * n);
    let panel_rows: &[f64] = head;
    upper_halves(team, tail, (n, k1), &|first, rows, out| {
        // SAFETY: `panel_rows` holds rows `0..k1` (`k1·n` values): Aᵀ = the panel's entries
        // `r[k0 + p][first + i]` at `(k0 + p)·n + first + i` (`p < k1 − k0`, `i < rows`,
        // `first + rows <= n`) and B = `r[k0 + p][first + j]` (`j < n − first`), all below
        // `k1·n`. `out` holds `rows` whole rows (`rows·n` values) and is written at
        // `i·n + first + j`: below `rows·n`.
        unsafe {
            matrixmultiply::dgemm(
                rows,
                k1 - k0,
                n - first,
                -1.0,
                panel_rows.as_ptr().add(k0 * n + first),
                1,
                n as isize,
                panel_rows.as_ptr().add(k0 * n + first),
                n as isize,
                1,
                1.0,
                out.as_mut_ptr().add(first),
                n as isize,
                1,
            );
        }
    });
}

impl Coordinates for SecondMoment {
    /// `out_c = R⁻ᵀ·g_c` for every class.
    fn gradient_to_u(&self, g: &[f64], out: &mut [f64]) {
        self.per_class_group(g, out, false);
    }

    /// `out_c = R⁻¹·d_c` for every class.
    fn direction_to_x(&self, d: &[f64], out: &mut [f64]) {
        self.per_class_group(d, out, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maps_invert_r_and_its_transpose() {
        // 7 rows of 3 features, 2 classes.
        let px: Vec<u8> = (0..21).map(|i| (i * 37 % 251) as u8).collect();
        let labels = [0; 7];
        let problem = Problem::u8(&px, 3, &labels, 2).unwrap();
        let team = Arc::new(Team::new(1).unwrap());
        let p = SecondMoment::new(team, Isa::best(), &problem, (0.5, 0.1), 100).unwrap();
        let n = 4;
        let r = |i: usize, j: usize| f64::from(p.r[i * n + j]);
        let x: Vec<f64> = (0..8).map(|i| i as f64 * 0.3 - 1.0).collect();
        // R·x per class, then R⁻¹ must give x back; Rᵀ·x, then R⁻ᵀ.
        let mut rx = vec![0.0; 8];
        let mut rtx = vec![0.0; 8];
        for c in 0..2 {
            for i in 0..n {
                rx[c * n + i] = (i..n).map(|j| r(i, j) * x[c * n + j]).sum();
                rtx[c * n + i] = (0..=i).map(|j| r(j, i) * x[c * n + j]).sum();
            }
        }
        let mut back = vec![0.0; 8];
        p.direction_to_x(&rx, &mut back);
        assert!(back.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-12));
        p.gradient_to_u(&rtx, &mut back);
        assert!(back.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-12));
        // RᵀR is M: its bias pivot (mean of 1·1 = 1, times α) has no ridge.
        let m33: f64 = (0..n).map(|j| r(j, 3) * r(j, 3)).sum();
        assert!((m33 - 0.5).abs() < 1e-6, "{m33}");
    }

    #[test]
    fn blocked_cholesky_factors_across_panels_for_any_team_and_refuses_an_indefinite_matrix() {
        // n = 130: two whole panels of 48 and a part one, each with a trailing update.
        let n = 130;
        let mut next = stream(11);
        let b: Vec<f64> = (0..n * n)
            .map(|_| (next() % 2001) as f64 / 1000.0 - 1.0)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                // BᵀB + I: symmetric positive definite; the upper triangle only.
                a[i * n + j] = (0..n).map(|t| b[t * n + i] * b[t * n + j]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let factor = |helpers, a: &[f64]| {
            let team = Team::new(helpers).unwrap();
            let mut r = a.to_vec();
            cholesky_upper(&team, &mut r, n).map(|()| r)
        };
        let r = factor(0, &a).unwrap();
        assert_eq!(r, factor(1, &a).unwrap(), "R does not depend on the team");
        let mut worst = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                if j < i {
                    assert_eq!(r[i * n + j], 0.0, "the strict lower triangle is zero");
                } else {
                    let rtr: f64 = (0..=i).map(|t| r[t * n + i] * r[t * n + j]).sum();
                    worst = worst.max((rtr - a[i * n + j]).abs() / a[i * n + i]);
                }
            }
        }
        assert!(worst < 1e-12, "RᵀR differs from A by {worst}");
        // A matrix whose 100th pivot is negative (in the third panel): refused there.
        let mut bad = a.clone();
        bad[100 * n + 100] = -1e6;
        match factor(1, &bad) {
            Err(SolveError::Precondition { index, value }) => {
                assert_eq!(index, 100);
                assert!(value < 0.0);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A small xorshift stream, for test data.
    fn stream(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    #[test]
    fn r_factors_the_weighted_second_moment_and_the_maps_invert_it_for_any_team() {
        // 300 rows of 40 features (the Gram's two blocks: rows 0..15 and the 26 × 26 square),
        // weighted, a sample of 100; 5 classes (groups of 3 and 2 on two threads).
        let (rows, d, k, sample) = (300, 40, 5, 100);
        let mut next = stream(7);
        let px: Vec<u8> = (0..rows * d).map(|_| (next() % 256) as u8).collect();
        let w: Vec<f32> = (0..rows).map(|_| (next() % 1000) as f32 / 250.0).collect();
        let (alpha, ridge) = (0.3, 0.05);
        let labels = vec![0; rows];
        let problem = Problem::u8(&px, d, &labels, k)
            .unwrap()
            .with_weights(&w)
            .unwrap();
        let make = |helpers, isa| {
            let team = Arc::new(Team::new(helpers).unwrap());
            SecondMoment::new(team, isa, &problem, (alpha, ridge), sample).unwrap()
        };
        let (one, two) = (make(0, Isa::best()), make(1, Isa::best()));
        assert_eq!(one.r, two.r, "R does not depend on the team");
        let n = d + 1;
        // M in f64 from its definition.
        let picked: Vec<usize> = (0..sample).map(|t| t * rows / sample).collect();
        let total: f64 = picked.iter().map(|&i| f64::from(w[i])).sum();
        let x = |i: usize, j: usize| {
            if j < d {
                f64::from(px[i * d + j]) / 255.0
            } else {
                1.0
            }
        };
        let mut worst = 0.0f64;
        for a in 0..n {
            for b in 0..n {
                let mean: f64 = picked
                    .iter()
                    .map(|&i| f64::from(w[i]) / total * x(i, a) * x(i, b))
                    .sum();
                let m = alpha * mean + if a == b && a < d { ridge } else { 0.0 };
                let rtr: f64 = (0..n)
                    .map(|t| f64::from(one.r[t * n + a]) * f64::from(one.r[t * n + b]))
                    .sum();
                worst = worst.max((rtr - m).abs());
            }
        }
        assert!(worst < 1e-6, "RᵀR differs from M by {worst}");
        let v: Vec<f64> = (0..n * k)
            .map(|_| (next() % 2001) as f64 / 1000.0 - 1.0)
            .collect();
        // Every path's maps invert R and Rᵀ, with the same bits on one thread (one tile of
        // 5 classes) and on two (tiles of 3 and 2).
        for isa in Isa::supported() {
            let (one, two) = (make(0, isa), make(1, isa));
            let map = |p: &SecondMoment, back: bool| {
                let mut u = vec![0.0; n * k];
                if back {
                    p.direction_to_x(&v, &mut u);
                } else {
                    p.gradient_to_u(&v, &mut u);
                }
                u
            };
            for back in [true, false] {
                let u = map(&one, back);
                assert_eq!(
                    u,
                    map(&two, back),
                    "{isa}: the same bits on 1 and 2 threads"
                );
                let r = |i: usize, j: usize| f64::from(one.r[i * n + j]);
                for c in 0..k {
                    for i in 0..n {
                        // R·u (or Rᵀ·u) gives v back.
                        let again: f64 = if back {
                            (i..n).map(|j| r(i, j) * u[c * n + j]).sum()
                        } else {
                            (0..=i).map(|j| r(j, i) * u[c * n + j]).sum()
                        };
                        let want = v[c * n + i];
                        assert!((again - want).abs() < 1e-9, "{isa}: {again} against {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_curvature_sample_draws_rows_in_proportion_to_weight_times_curvature() {
        // 10 rows of 3 features; only rows 3 (curvature 1, weight 1) and 7 (curvature 1.5,
        // weight 2) have any: 8 draws give 2 of row 3 and 6 of row 7.
        let (rows, d) = (10, 3);
        let px: Vec<u8> = (0..rows * d).map(|i| (i * 53 % 251) as u8).collect();
        let mut curvature = vec![0.0f32; rows];
        let mut w = vec![1.0f32; rows];
        (curvature[3], curvature[7], w[7]) = (1.0, 1.5, 2.0);
        let team = Arc::new(Team::new(0).unwrap());
        let (alpha, ridge) = (0.25, 0.01);
        let labels = [0; 10];
        let problem = Problem::u8(&px, d, &labels, 2)
            .unwrap()
            .with_weights(&w)
            .unwrap();
        let of = |c: &[f32]| {
            SecondMoment::of_curvature(
                Arc::clone(&team),
                Isa::best(),
                &problem,
                c,
                (alpha, ridge),
                8,
            )
        };
        let p = of(&curvature).unwrap().unwrap();
        let n = d + 1;
        let x = |i: usize, j: usize| {
            if j < d {
                f64::from(px[i * d + j]) / 255.0
            } else {
                1.0
            }
        };
        for a in 0..n {
            for b in 0..n {
                let mean = (2.0 * x(3, a) * x(3, b) + 6.0 * x(7, a) * x(7, b)) / 8.0;
                let m = alpha * mean + if a == b && a < d { ridge } else { 0.0 };
                let rtr: f64 = (0..n)
                    .map(|t| f64::from(p.r[t * n + a]) * f64::from(p.r[t * n + b]))
                    .sum();
                assert!((rtr - m).abs() < 1e-6, "M[{a}][{b}]: {rtr} against {m}");
            }
        }
        assert!(of(&[0.0; 10]).is_none(), "no curvature, no coordinates");
    }
}
