//! The second-moment preconditioner: coordinates `u = R·θ` for each class's column
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
//! Cost: `XᵀX` of the sample with `matrixmultiply::sgemm` (`2·m·(d+1)²` flops, about 5 ms
//! for 2048 MNIST rows), a Cholesky factorisation (`(d+1)³/3` flops), then per iteration one
//! `R⁻ᵀ·g` and one `R⁻¹·d` for the `K` classes (`2·K·(d+1)²` flops).

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::SolveError;
use super::lbfgs::Coordinates;
use crate::compute::kernels::Pixels;
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
    /// strided) of `pixels` (`features` per row, u8 read as `p/255`), each weighted by
    /// `weights` (all 1 when `None`); its maps run on `team`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        team: Arc<Team>,
        pixels: Pixels,
        features: usize,
        weights: Option<&[f32]>,
        classes: usize,
        alpha: f64,
        ridge: f64,
        sample_rows: usize,
    ) -> Result<Self, SolveError> {
        let rows = pixels.len() / features;
        let m = rows.min(sample_rows.max(1));
        let n = features + 1;
        // The sample, each row scaled by √(s_i / Σs) so that AᵀA is the weighted mean.
        let picked: Vec<usize> = (0..m).map(|t| t * rows / m).collect();
        let weight = |i: usize| weights.map_or(1.0, |w| f64::from(w[i]));
        let total: f64 = picked.iter().map(|&i| weight(i)).sum();
        let mut a = vec![0.0f32; m * n];
        for (row, &i) in a.chunks_exact_mut(n).zip(&picked) {
            pixels.row_to_f32(i, &mut row[..features]);
            row[features] = 1.0;
            let scale = if total > 0.0 {
                (weight(i) / total).sqrt() as f32
            } else {
                0.0
            };
            row.iter_mut().for_each(|v| *v *= scale);
        }
        let mut gram = vec![0.0f32; n * n];
        // SAFETY: `a` holds `m × n` values, read as Aᵀ (`n × m`, row stride 1, column
        // stride n) and as A (`m × n`, row stride n); `gram` holds `n × n` values written
        // with row stride n: every index the kernel touches is in bounds.
        unsafe {
            matrixmultiply::sgemm(
                n,
                m,
                n,
                1.0,
                a.as_ptr(),
                1,
                n as isize,
                a.as_ptr(),
                n as isize,
                1,
                0.0,
                gram.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        let mut r: Vec<f64> = gram.iter().map(|&g| alpha * f64::from(g)).collect();
        let mean_diag = (0..n).map(|i| r[i * n + i]).sum::<f64>() / n as f64;
        let ridge = ridge.max(1e-9 * mean_diag).max(f64::MIN_POSITIVE);
        for i in 0..features {
            r[i * n + i] += ridge;
        }
        cholesky_upper(&mut r, n)?;
        let rt = (0..n * n).map(|t| r[t % n * n + t / n]).collect();
        Ok(Self {
            n,
            classes,
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
        let team = Arc::new(Team::new(1).unwrap());
        let p = SecondMoment::new(team, Pixels::U8(&px), 3, None, 2, 0.5, 0.1, 100).unwrap();
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
}
