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
//! `m`-row Gram matrix (41–46 ms for 8192 rows), a second Cholesky factorisation (16 ms) and
//! `Rᵀ` (4 ms): about 6 passes, against 22 saved.
//!
//! ## Cost
//! Set-up: the upper triangle of `AᵀA` for the sample `A` (two `matrixmultiply::sgemm`
//! blocks on the objective's threads, `1.5·m·(d+1)²` flops), a Cholesky factorisation
//! (`(d+1)³/3` flops) and `Rᵀ`. Per iteration: one `R⁻ᵀ·g` and one `R⁻¹·d` for the `K`
//! classes (`2·K·(d+1)²` flops), dot products over rows of `Rᵀ` or `R`, each row read once
//! for a group of classes, the groups on the objective's threads (the helper is idle between
//! the passes).
//!
//! Measured on MNIST (2048 sample rows, 785 × 10; 2-core AMD EPYC Zen 4, 2026-12-07): the
//! set-up 33–38 ms, was 50–65 ms with one `sgemm` of the whole product (29 ms of it) and a
//! column-walk transpose (4 ms); the maps 0.43 + 0.47 ms per iteration on 2 threads
//! (`SOLVER_BENCH_ONLY=pass cargo bench --bench solver`, medians of 101 calls), against
//! 0.9–1.3 and 1.3–1.6 ms for the single-threaded loops before (`R⁻ᵀ·g` as row axpys class by
//! class, dot products with 4 accumulators; same machine, interleaved). Compiled inside the kernels'
//! AVX2/AVX-512 wrappers with fused multiply-adds, the maps were no faster: they are bound by
//! reading the earlier solution values from L2, not by arithmetic.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lbfgs::Coordinates;
use super::{Problem, SolveError};
use crate::compute::kernels::share::{Team, lock};

/// The factor `R` (upper triangular, row-major, `n × n` with `n = features + 1`) and the
/// class count `K` of the vectors it maps (class-major: `K` blocks of `n` values).
pub(crate) struct SecondMoment {
    n: usize,
    classes: usize,
    r: Vec<f64>,
    /// `Rᵀ` (lower triangular, row-major): the rows `R⁻ᵀ·g`'s dot products read.
    rt: Vec<f64>,
    /// The objective's threads: the maps run on them, a group of classes each.
    team: Arc<Team>,
}

/// Row `i`'s sample weight in `problem` (1 without weights).
fn sample_weight(problem: &Problem, i: usize) -> f64 {
    problem.weights.map_or(1.0, |w| f64::from(w[i]))
}

/// `Σ a·b` with 16 accumulators (the compiler makes vectors of them).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const W: usize = 16;
    let mut acc = [0.0f64; W];
    let (ca, cb) = (a.chunks_exact(W), b.chunks_exact(W));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(0.0, |s, (x, y)| x * y + s);
    for (x, y) in ca.zip(cb) {
        for i in 0..W {
            acc[i] += x[i] * y[i];
        }
    }
    let mut width = W;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0] + tail
}

/// `y_c = R⁻ᵀ·g_c` for the classes `c` of `classes` (`out`: their `y`, class-major):
/// forward substitution `y_j = (g_j − Rᵀ[j, ..j]·y) / R_jj`, one row of `Rᵀ` for all of
/// them at a time.
fn to_u(p: &SecondMoment, g: &[f64], out: &mut [f64], classes: Range<usize>) {
    let n = p.n;
    for j in 0..n {
        let row = &p.rt[j * n..j * n + j + 1];
        for (y, c) in out.chunks_exact_mut(n).zip(classes.clone()) {
            y[j] = (g[c * n + j] - dot(&row[..j], &y[..j])) / row[j];
        }
    }
}

/// `x_c = R⁻¹·d_c` for the classes of `classes`: back substitution `x_i = (d_i − R[i,
/// i+1..]·x) / R_ii`, one row of `R` for all of them at a time.
fn to_x(p: &SecondMoment, d: &[f64], out: &mut [f64], classes: Range<usize>) {
    let n = p.n;
    for i in (0..n).rev() {
        let row = &p.r[i * n + i..(i + 1) * n];
        for (x, c) in out.chunks_exact_mut(n).zip(classes.clone()) {
            x[i] = (d[c * n + i] - dot(&row[1..], &x[i + 1..])) / row[0];
        }
    }
}

impl SecondMoment {
    /// The preconditioner of `alpha`, `ridge` from at most `sample_rows` rows (evenly
    /// strided) of `problem`'s pixels (u8 read as `p/255`), each weighted by its sample
    /// weight; its maps run on `team`.
    pub(crate) fn new(
        team: Arc<Team>,
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
        Self::of_sample(team, problem, &sample, alpha, ridge)
    }

    /// The preconditioner of the softmax's curvature at the current point: `M =
    /// α·E_s[c·[x 1]ᵀ[x 1]]/E_s[c] + ridge · diag(1, …, 1, 0)` with `c` each row's
    /// `curvature` (`1 − Σ p²`): the second moment with each row weighted by its share of the
    /// curvature, at the same scale `α`. Estimated from `sample_rows` rows drawn with
    /// probability `∝ s·c` (systematic sampling over the rows in order: deterministic).
    /// `None` when no row has any curvature (every prediction certain).
    pub(crate) fn of_curvature(
        team: Arc<Team>,
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
        Some(Self::of_sample(team, problem, &sample, alpha, ridge))
    }

    /// `M = alpha · Σ wᵢ·[xᵢ 1]ᵀ[xᵢ 1] / Σ wᵢ + ridge · diag(1, …, 1, 0)` over the `(row, w)`
    /// of `sample`, factored.
    fn of_sample(
        team: Arc<Team>,
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
        cholesky_upper(&mut r, n)?;
        let rt = transposed(&r, n);
        Ok(Self {
            n,
            classes: problem.classes,
            r,
            rt,
            team,
        })
    }

    /// `map(self, input, part, classes)` on each group of classes, one group per thread.
    fn per_class_group(
        &self,
        input: &[f64],
        out: &mut [f64],
        map: fn(&Self, &[f64], &mut [f64], Range<usize>),
    ) {
        let (n, k) = (self.n, self.classes);
        assert_eq!(
            input.len(),
            n * k,
            "one value per class and feature (+ bias)"
        );
        let per = k.div_ceil(self.team.threads().min(k));
        let parts: Vec<Mutex<&mut [f64]>> = out.chunks_mut(per * n).map(Mutex::new).collect();
        self.team.run_shared(parts.len(), &|t| {
            let classes = t * per..((t + 1) * per).min(k);
            map(self, input, &mut lock(&parts[t]), classes);
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
fn transposed(r: &[f64], n: usize) -> Vec<f64> {
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

/// The upper triangle of `AᵀA` (`n × n`, row-major; the strict lower triangle of the rows
/// past the first block is left zero) for `a` = A, `m × n` row-major: two `sgemm` calls on
/// `team`, the first `h ≈ 0.382·n` rows in full and the trailing `(n − h)²` square, which
/// cost the same (`h·n = (n − h)²`) and together three quarters of the full product. The
/// split does not depend on the thread count, so neither does the result.
fn upper_gram(team: &Team, a: &[f32], m: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * n, "A holds m × n values");
    let h = ((3.0 - 5f64.sqrt()) / 2.0 * n as f64) as usize;
    let mut gram = vec![0.0f32; n * n];
    let (top, bottom) = gram.split_at_mut(h * n);
    // Block t: rows `first..first + rows` of the product, columns `first..first + cols`,
    // into `out`, which holds the product's rows from `first` on (row stride n).
    let blocks = [
        (0, h, n, Mutex::new(top)),
        (h, n - h, n - h, Mutex::new(bottom)),
    ];
    team.run_shared(2, &|t| {
        let (first, rows, cols, out) = &blocks[t];
        let (first, rows, cols) = (*first, *rows, *cols);
        let mut out = lock(out);
        // SAFETY: `a` holds `m × n` values: Aᵀ's rows `first..first + rows` are read at
        // `l·n + first + i` (`i < rows <= n − first`, `l < m`), A's columns `first..first +
        // cols` at `l·n + first + j` (`j < cols <= n − first`): all below `m·n`. `out` holds
        // `rows × n` values (`h·n` for the top block, `(n − h)·n` for the other) and is
        // written at `first + i·n + j` (`i < rows`, `first + j < n`): at most `rows·n − 1`.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                m,
                cols,
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

/// In place: the upper triangle of the symmetric `a` (`n × n`, row-major) becomes `R` with
/// `RᵀR = a` (the strict lower triangle is zeroed); [`SolveError::Precondition`] when `a` is
/// not positive definite.
fn cholesky_upper(a: &mut [f64], n: usize) -> Result<(), SolveError> {
    for k in 0..n {
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
        // Trailing update of the upper triangle: a[i][i..] −= r[k][i] · r[k][i..].
        for (off, row_i) in tail.chunks_exact_mut(n).enumerate() {
            let i = k + 1 + off;
            let f = row_k[i];
            if f != 0.0 {
                for (x, r) in row_i[i..].iter_mut().zip(&row_k[i..]) {
                    *x -= f * r;
                }
            }
        }
    }
    Ok(())
}

impl Coordinates for SecondMoment {
    /// `out_c = R⁻ᵀ·g_c` for every class.
    fn gradient_to_u(&self, g: &[f64], out: &mut [f64]) {
        self.per_class_group(g, out, to_u);
    }

    /// `out_c = R⁻¹·d_c` for every class.
    fn direction_to_x(&self, d: &[f64], out: &mut [f64]) {
        self.per_class_group(d, out, to_x);
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
        let p = SecondMoment::new(team, &problem, (0.5, 0.1), 100).unwrap();
        let n = 4;
        let r = |i: usize, j: usize| p.r[i * n + j];
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
        let make = |helpers| {
            let team = Arc::new(Team::new(helpers).unwrap());
            SecondMoment::new(team, &problem, (alpha, ridge), sample).unwrap()
        };
        let (one, two) = (make(0), make(1));
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
                let rtr: f64 = (0..n).map(|t| one.r[t * n + a] * one.r[t * n + b]).sum();
                worst = worst.max((rtr - m).abs());
            }
        }
        assert!(worst < 1e-6, "RᵀR differs from M by {worst}");
        let v: Vec<f64> = (0..n * k)
            .map(|_| (next() % 2001) as f64 / 1000.0 - 1.0)
            .collect();
        for p in [&one, &two] {
            let (mut u, mut back) = (vec![0.0; n * k], vec![0.0; n * k]);
            // R⁻¹ then R gives v back; R⁻ᵀ then Rᵀ too.
            p.direction_to_x(&v, &mut u);
            for c in 0..k {
                for i in 0..n {
                    back[c * n + i] = (i..n).map(|j| p.r[i * n + j] * u[c * n + j]).sum();
                }
            }
            assert!(back.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-9));
            p.gradient_to_u(&v, &mut u);
            for c in 0..k {
                for i in 0..n {
                    back[c * n + i] = (0..=i).map(|j| p.r[j * n + i] * u[c * n + j]).sum();
                }
            }
            assert!(back.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-9));
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
            SecondMoment::of_curvature(Arc::clone(&team), &problem, c, (alpha, ridge), 8)
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
                let rtr: f64 = (0..n).map(|t| p.r[t * n + a] * p.r[t * n + b]).sum();
                assert!((rtr - m).abs() < 1e-6, "M[{a}][{b}]: {rtr} against {m}");
            }
        }
        assert!(of(&[0.0; 10]).is_none(), "no curvature, no coordinates");
    }
}
