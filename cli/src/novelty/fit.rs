//! Fitting the novelty score: the digits' principal subspace (randomised subspace iteration on
//! the covariance of their canonical pictures), the descriptors' mean and precision, and the
//! scales that calibrate both on the test split.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use super::features::{self, DESCRIPTORS, PIXELS};

/// Directions of the principal subspace kept.
pub const RANK: usize = 32;
/// Extra directions the iteration carries so the last kept ones converge.
const OVERSAMPLE: usize = 16;
/// Subspace iterations (each one multiplies by the covariance and re-orthonormalises).
const ITERATIONS: usize = 8;
/// At most this many training images (evenly spaced) enter the covariance.
pub const MAX_FIT_IMAGES: usize = 10_000;

/// A standard normal deviate by Box–Muller (`rand` alone draws uniform numbers).
fn standard_normal(rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// At most [`MAX_FIT_IMAGES`] of `images` (`count × 784` pixels), evenly spaced: the images
/// the subspace and the descriptors are fitted on.
pub(crate) fn fit_sample(images: &[u8]) -> Vec<&[u8]> {
    let step = (images.len() / PIXELS).div_ceil(MAX_FIT_IMAGES).max(1);
    images.chunks_exact(PIXELS).step_by(step).collect()
}

/// The mean canonical picture and the covariance of the canonical pictures of `images`
/// (`count × 784` pixels), from at most [`MAX_FIT_IMAGES`] of them evenly spaced.
///
/// The covariance is `XᵀX / n` of the centred pictures, one f32 GEMM (sums of up to 10 000
/// products in f32: a relative error near 1e-4, far below what separates the subspace's
/// directions) turned into f64.
pub(crate) fn covariance(images: &[u8]) -> (Vec<f64>, DMatrix<f64>) {
    let chosen = fit_sample(images);
    let n = chosen.len();
    let mut rows = vec![0f32; n * PIXELS];
    for (row, image) in rows.chunks_exact_mut(PIXELS).zip(&chosen) {
        features::canonical(image, row);
    }
    let mut mean = vec![0f64; PIXELS];
    for row in rows.chunks_exact(PIXELS) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    for row in rows.chunks_exact_mut(PIXELS) {
        row.iter_mut().zip(&mean).for_each(|(v, &m)| *v -= m as f32);
    }
    let mut gram = vec![0f32; PIXELS * PIXELS];
    // SAFETY: `rows` holds n × PIXELS f32 (row-major: row stride PIXELS, column stride 1),
    // read as the PIXELS × n matrix Xᵀ (row stride 1, column stride PIXELS) and as X; `gram`
    // holds PIXELS × PIXELS f32 written with row stride PIXELS. Every index the GEMM forms
    // is below those lengths, and the output does not alias the inputs.
    unsafe {
        matrixmultiply::sgemm(
            PIXELS,
            n,
            PIXELS,
            1.0 / n as f32,
            rows.as_ptr(),
            1,
            PIXELS as isize,
            rows.as_ptr(),
            PIXELS as isize,
            1,
            0.0,
            gram.as_mut_ptr(),
            PIXELS as isize,
            1,
        );
    }
    let cov = DMatrix::from_fn(PIXELS, PIXELS, |i, j| {
        // Symmetric by construction; average the two halves' rounding.
        0.5 * f64::from(gram[i * PIXELS + j] + gram[j * PIXELS + i])
    });
    (mean, cov)
}

/// The top `rank` eigenvectors of the symmetric `cov` (columns, by decreasing eigenvalue) and
/// their eigenvalues, by randomised subspace iteration (Halko, Martinsson & Tropp 2011, alg.
/// 4.4) with a Rayleigh–Ritz step: `rank + 16` random directions are multiplied by `cov` and
/// re-orthonormalised 8 times, then the small projected matrix is diagonalised exactly.
///
/// The error of the k-th direction shrinks like `(λ_{rank+17} / λ_k)^17`; on MNIST the kept
/// eigenvalues agree with a full eigendecomposition to 1e-6 relative (see the tests). The
/// full decomposition of the 784 × 784 covariance takes 0.8 s; this takes a few ms.
pub(crate) fn top_eigenvectors(
    cov: &DMatrix<f64>,
    rank: usize,
    seed: u64,
) -> (DMatrix<f64>, Vec<f64>) {
    let d = cov.nrows();
    let width = (rank + OVERSAMPLE).min(d);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut q = DMatrix::from_fn(d, width, |_, _| standard_normal(&mut rng));
    for _ in 0..ITERATIONS {
        q = (cov * &q).qr().q();
    }
    let projected = q.transpose() * cov * &q;
    let eigen = SymmetricEigen::new(0.5 * (&projected + projected.transpose()));
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let rank = rank.min(width);
    let ritz = DMatrix::from_fn(width, rank, |i, j| eigen.eigenvectors[(i, order[j])]);
    let values = order[..rank]
        .iter()
        .map(|&i| eigen.eigenvalues[i])
        .collect();
    (q * ritz, values)
}

/// The descriptors' mean and the inverse of their covariance (through a Cholesky factor; a
/// ridge of 1e-9 × the largest variance keeps a constant descriptor from making it singular).
pub(crate) fn descriptor_model(images: &[&[u8]]) -> ([f64; DESCRIPTORS], DMatrix<f64>) {
    let all: Vec<[f64; DESCRIPTORS]> = images
        .par_iter()
        .map(|image| features::descriptors(image))
        .collect();
    let n = all.len() as f64;
    let mut mean = [0f64; DESCRIPTORS];
    for d in &all {
        mean.iter_mut().zip(d).for_each(|(m, v)| *m += v / n);
    }
    let mut cov = DMatrix::<f64>::zeros(DESCRIPTORS, DESCRIPTORS);
    for d in &all {
        let v = DVector::from_iterator(DESCRIPTORS, d.iter().zip(&mean).map(|(a, m)| a - m));
        cov += &v * v.transpose() / n;
    }
    let ridge = 1e-9 * cov.diagonal().max().max(1e-12);
    cov += DMatrix::identity(DESCRIPTORS, DESCRIPTORS) * ridge;
    let precision = cov
        .cholesky()
        .expect("a covariance plus a positive ridge is positive definite")
        .inverse();
    (mean, precision)
}

/// The value at quantile `q` of `values` (the smallest value with at least a share `q` of
/// them at or below it).
pub(crate) fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    values[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subspace_iteration_finds_the_top_eigenpairs_of_a_known_matrix() {
        // A random orthogonal basis with a decaying spectrum 1, 0.9, 0.81, …
        let d = 120;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let basis = DMatrix::from_fn(d, d, |_, _| standard_normal(&mut rng))
            .qr()
            .q();
        let spectrum: Vec<f64> = (0..d).map(|i| 0.9f64.powi(i as i32)).collect();
        let cov = &basis
            * DMatrix::from_diagonal(&DVector::from_vec(spectrum.clone()))
            * basis.transpose();
        let (vectors, values) = top_eigenvectors(&cov, 10, 1);
        for k in 0..10 {
            assert!(
                (values[k] - spectrum[k]).abs() < 1e-9 * spectrum[k],
                "λ{k} {} vs {}",
                values[k],
                spectrum[k]
            );
            let cos = vectors.column(k).dot(&basis.column(k)).abs();
            assert!(cos > 1.0 - 1e-6, "direction {k}: |cos| = {cos}");
        }
    }

    #[test]
    fn on_mnist_the_kept_eigenvalues_match_a_full_decomposition() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("cli/ is a member of the repository")
            .join("data/mnist");
        // The test split: the same kind of covariance as the training split's, in a sixth of
        // the time.
        let test = mnist_logreg::dataset::Dataset::open_test(&dir, &Default::default()).unwrap();
        let (_, cov) = covariance(test.pixels());
        let (vectors, values) = top_eigenvectors(&cov, RANK, 3);
        let mut full: Vec<f64> = SymmetricEigen::new(cov.clone())
            .eigenvalues
            .iter()
            .copied()
            .collect();
        full.sort_by(|a, b| b.total_cmp(a));
        for k in 0..RANK {
            let err = (values[k] - full[k]).abs() / full[k];
            assert!(
                err < 1e-6,
                "λ{k}: {} vs {} (relative error {err:e})",
                values[k],
                full[k]
            );
        }
        // The directions are orthonormal.
        let gram = vectors.transpose() * &vectors;
        assert!((gram - DMatrix::<f64>::identity(RANK, RANK)).abs().max() < 1e-12);
    }

    #[test]
    fn quantiles_count_from_the_bottom() {
        let mut v: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.995), 199.0);
        assert_eq!(quantile(&mut v, 1.0), 200.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
    }
}
