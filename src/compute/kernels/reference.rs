//! The scalar reference: plain loops, the definition of correct. An `f64` twin
//! ([`forward_backward_f64`]) gives tests a ground truth free of f32 rounding.

use super::softmax::{CLIP_MIN, ClipGradient, forward_row, grad_row, softmax_in_place};
use super::{Batch, Kernel, Stats, check_backward, check_forward};
use crate::compute::model::{Grads, Model};

/// The scalar reference kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference {
    /// The gradient rule for clipped rows.
    pub clip: ClipGradient,
}

/// `logits[c] = Σ_j x[j]·W[c][j] + b[c]`, in file order.
fn logits_row(model: &Model, x: &[f32], logits: &mut [f32]) {
    for (c, l) in logits.iter_mut().enumerate() {
        let w = model.class_weights(c);
        let dot: f32 = x.iter().zip(w).map(|(x, w)| x * w).sum();
        *l = dot + model.b()[c];
    }
}

/// Class probabilities `softmax(x·W + b)` of one sample given as u8 pixels (`x = pixel / 255`,
/// as in training), computed the reference way: the same logits and softmax as
/// [`Reference::forward`].
pub fn probabilities(model: &Model, pixels: &[u8]) -> Vec<f32> {
    assert_eq!(
        pixels.len(),
        model.features(),
        "sample length is not the feature count"
    );
    let mut x = vec![0.0; model.features()];
    crate::data::pixels::pixels_to_f32(pixels, &mut x);
    let mut p = vec![0.0; model.classes()];
    logits_row(model, &x, &mut p);
    softmax_in_place(&mut p);
    p
}

/// Class probabilities `softmax(x·W + b)` of one sample of `f32` features used as given,
/// computed as [`probabilities`] computes them after its division.
pub fn probabilities_f32(model: &Model, x: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        model.features(),
        "sample length is not the feature count"
    );
    let mut p = vec![0.0; model.classes()];
    logits_row(model, x, &mut p);
    softmax_in_place(&mut p);
    p
}

impl Kernel for Reference {
    fn simd(&self) -> String {
        "scalar".to_string()
    }

    fn forward(&self, model: &Model, batch: &Batch, mut predictions: Option<&mut [u32]>) -> Stats {
        check_forward(model, batch, predictions.as_deref());
        let mut x = vec![0.0; model.features()];
        let mut logits = vec![0.0; model.classes()];
        let mut stats = Stats::default();
        for (i, &row) in batch.rows().iter().enumerate() {
            batch.pixels().row_to_f32(row, &mut x);
            logits_row(model, &x, &mut logits);
            let out = forward_row(&mut logits, batch.label(i));
            stats.add_row(&out, batch.label(i));
            if let Some(p) = predictions.as_deref_mut() {
                p[i] = out.predicted as u32;
            }
        }
        stats
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        check_backward(model, batch, grads);
        grads.clear();
        let d = model.features();
        let mut x = vec![0.0; d];
        let mut g = vec![0.0; model.classes()];
        let mut stats = Stats::default();
        for (i, &row) in batch.rows().iter().enumerate() {
            batch.pixels().row_to_f32(row, &mut x);
            logits_row(model, &x, &mut g);
            let out = grad_row(&mut g, batch.label(i), self.clip);
            stats.add_row(&out, batch.label(i));
            for (c, &gc) in g.iter().enumerate() {
                for (dw, &xj) in grads.dw_mut()[c * d..(c + 1) * d].iter_mut().zip(&x) {
                    *dw += gc * xj;
                }
                grads.db_mut()[c] += gc;
            }
        }
        stats
    }
}

/// Everything the f64 reference computes for a batch.
#[derive(Clone, Debug)]
pub struct ReferenceF64 {
    /// Batch loss.
    pub loss: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Rows with `p_y < 1e-9`.
    pub clipped: usize,
    /// `dW`, class-major.
    pub dw: Vec<f64>,
    /// `db`.
    pub db: Vec<f64>,
    /// Per row: `max_c (|b_c| + Σ_j |W_cj·x_j|)`, the magnitude that scales the rounding
    /// error of an f32 logit.
    pub logit_scale: Vec<f64>,
    /// Per row: the true-class log-probability `log p_y`.
    pub log_py: Vec<f64>,
    /// Per row: the gap between the largest and second-largest logit (∞ for one class).
    pub top_gap: Vec<f64>,
    /// The logit gradient `p − onehot(y)` (zero rows where clipped), `rows × classes`.
    pub g: Vec<f64>,
}

/// The reference in `f64`: the same computation with every intermediate in double precision
/// (inputs are the f32 model and batch, widened exactly).
pub fn forward_backward_f64(model: &Model, batch: &Batch, clip: ClipGradient) -> ReferenceF64 {
    check_forward(model, batch, None);
    let w: Vec<f64> = model.w().iter().map(|&v| v as f64).collect();
    let b: Vec<f64> = model.b().iter().map(|&v| v as f64).collect();
    forward_backward_f64_params(&w, &b, batch, clip)
}

/// [`forward_backward_f64`] on `f64` parameters: `w` class-major (`b.len() × features`).
pub fn forward_backward_f64_params(
    w: &[f64],
    b: &[f64],
    batch: &Batch,
    clip: ClipGradient,
) -> ReferenceF64 {
    let (d, k) = (batch.features(), b.len());
    assert_eq!(w.len(), d * k, "W must be classes × features");
    let mut out = ReferenceF64 {
        loss: 0.0,
        correct: 0,
        clipped: 0,
        dw: vec![0.0; d * k],
        db: vec![0.0; k],
        logit_scale: Vec::with_capacity(batch.len()),
        log_py: Vec::with_capacity(batch.len()),
        top_gap: Vec::with_capacity(batch.len()),
        g: vec![0.0; batch.len() * k],
    };
    let mut x32 = vec![0.0f32; d];
    let mut logits = vec![0.0f64; k];
    for (i, &row) in batch.rows().iter().enumerate() {
        batch.pixels().row_to_f32(row, &mut x32);
        let x: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let label = batch.label(i);
        let mut scale = 0.0f64;
        for (c, l) in logits.iter_mut().enumerate() {
            let wc = &w[c * d..(c + 1) * d];
            let dot: f64 = x.iter().zip(wc).map(|(x, w)| x * w).sum();
            let abs: f64 = x.iter().zip(wc).map(|(x, w)| (x * w).abs()).sum();
            *l = dot + b[c];
            scale = scale.max(abs + b[c].abs());
        }
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        let mut sorted = logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        out.top_gap
            .push(sorted.get(1).map_or(f64::INFINITY, |s| sorted[0] - s));
        let log_p: Vec<f64> = logits.iter().map(|l| l - max - log_sum).collect();
        let p: Vec<f64> = log_p.iter().map(|lp| lp.exp()).collect();
        let py = p[label];
        let clipped = py < CLIP_MIN as f64;
        out.loss -= py.clamp(CLIP_MIN as f64, 1.0).ln();
        let predicted = (1..k).fold(0, |best, c| if p[c] > p[best] { c } else { best });
        out.correct += (predicted == label) as usize;
        out.clipped += clipped as usize;
        out.logit_scale.push(scale);
        out.log_py.push(log_p[label]);
        if clipped && clip == ClipGradient::Zero {
            continue;
        }
        for (c, &pc) in p.iter().enumerate() {
            let g = pc - (c == label) as u8 as f64;
            out.g[i * k + c] = g;
            for (dw, xj) in out.dw[c * d..(c + 1) * d].iter_mut().zip(&x) {
                *dw += g * xj;
            }
            out.db[c] += g;
        }
    }
    out
}
