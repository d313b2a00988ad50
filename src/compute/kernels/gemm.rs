//! Unfused baseline: gather the batch into a dense matrix, logits with one
//! `matrixmultiply::sgemm`, the shared softmax epilogue per row, then `dW = Gᵀ·X` with a second
//! sgemm. matrixmultiply's own threading feature is left off.

use std::cell::RefCell;

use super::softmax::{ClipGradient, forward_row, grad_row};
use super::{Batch, Kernel, Stats, check_backward, check_forward};
use crate::compute::model::{Grads, Model};

/// The matrixmultiply baseline kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemm {
    /// The gradient rule for clipped rows.
    pub clip: ClipGradient,
}

thread_local! {
    /// Reused per-thread scratch (gathered rows, logits): a fresh 800 KB allocation per step
    /// would page-fault and make the baseline look slower than it is.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `logits (n×k) = X (n×d) · Wᵀ + b`, with `X` gathered into `x`.
fn logits(model: &Model, batch: &Batch, x: &mut Vec<f32>, logits: &mut Vec<f32>) {
    let (n, d, k) = (batch.len(), model.features(), model.classes());
    x.resize(n * d, 0.0);
    for (i, &row) in batch.rows().iter().enumerate() {
        batch.pixels().row_to_f32(row, &mut x[i * d..(i + 1) * d]);
    }
    logits.resize(n * k, 0.0);
    // SAFETY: the pointers and strides describe `x` (n×d row-major), `model.w()` read as Wᵀ
    // (d×k: row stride 1, column stride d) and `logits` (n×k row-major); all three buffers
    // hold at least the elements the strides reach, and `logits` does not alias the others.
    unsafe {
        matrixmultiply::sgemm(
            n,
            d,
            k,
            1.0,
            x.as_ptr(),
            d as isize,
            1,
            model.w().as_ptr(),
            1,
            d as isize,
            0.0,
            logits.as_mut_ptr(),
            k as isize,
            1,
        );
    }
    for row in logits.chunks_exact_mut(k) {
        for (l, b) in row.iter_mut().zip(model.b()) {
            *l += b;
        }
    }
}

impl Kernel for Gemm {
    fn simd(&self) -> String {
        "matrixmultiply's own dispatch".to_string()
    }

    fn forward(&self, model: &Model, batch: &Batch, mut predictions: Option<&mut [u32]>) -> Stats {
        check_forward(model, batch, predictions.as_deref());
        SCRATCH.with_borrow_mut(|(x, l)| {
            logits(model, batch, x, l);
            let mut stats = Stats::default();
            for (i, row) in l.chunks_exact_mut(model.classes()).enumerate() {
                let out = forward_row(row, batch.label(i));
                stats.add_row(&out, batch.label(i));
                if let Some(p) = predictions.as_deref_mut() {
                    p[i] = out.predicted as u32;
                }
            }
            stats
        })
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        check_backward(model, batch, grads);
        let (n, d, k) = (batch.len(), model.features(), model.classes());
        SCRATCH.with_borrow_mut(|(x, g)| {
            logits(model, batch, x, g);
            let mut stats = Stats::default();
            grads.db_mut().fill(0.0);
            for (i, row) in g.chunks_exact_mut(k).enumerate() {
                let out = grad_row(row, batch.label(i), self.clip);
                stats.add_row(&out, batch.label(i));
                for (db, gc) in grads.db_mut().iter_mut().zip(row.iter()) {
                    *db += gc;
                }
            }
            // SAFETY: `g` is n×k row-major, read as Gᵀ (k×n: row stride 1, column stride k);
            // `x` is n×d row-major; `grads.dw()` is k×d row-major with k·d elements and aliases
            // neither input.
            unsafe {
                matrixmultiply::sgemm(
                    k,
                    n,
                    d,
                    1.0,
                    g.as_ptr(),
                    1,
                    k as isize,
                    x.as_ptr(),
                    d as isize,
                    1,
                    0.0,
                    grads.dw_mut().as_mut_ptr(),
                    d as isize,
                    1,
                );
            }
            stats
        })
    }
}
