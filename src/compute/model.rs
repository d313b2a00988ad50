//! The linear model `softmax(x·W + b)`, its gradient buffers, and the SGD update.
//!
//! `W` is stored **class-major** (`classes × features`, i.e. the transpose of the tutorial's
//! `784 × 10` matrix): each logit is then one contiguous dot product, and the gradient `dW` is
//! accumulated the same way, which is what the SIMD kernels want.

use crate::aligned::AlignedF32;

/// Weights and bias of the model.
#[derive(Clone, Debug)]
pub struct Model {
    /// Input features (784 for MNIST).
    pub features: usize,
    /// Output classes (10 for MNIST).
    pub classes: usize,
    /// Weights, class-major: `w[c · features + j]` is the tutorial's `W[j][c]`.
    pub w: AlignedF32,
    /// Bias, one per class.
    pub b: Vec<f32>,
}

impl Model {
    /// The tutorial's initialisation: `W` all ones, `b` all zeros.
    pub fn tutorial_init(features: usize, classes: usize) -> Self {
        let mut w = AlignedF32::zeros(features * classes);
        w.fill(1.0);
        Self {
            features,
            classes,
            w,
            b: vec![0.0; classes],
        }
    }

    /// The weights of class `c` (length `features`).
    pub fn class_weights(&self, c: usize) -> &[f32] {
        &self.w[c * self.features..(c + 1) * self.features]
    }

    /// Plain SGD: `W −= lr·dW`, `b −= lr·db`.
    pub fn sgd_step(&mut self, grads: &Grads, learning_rate: f32) {
        for (w, g) in self.w.iter_mut().zip(grads.dw.iter()) {
            *w -= learning_rate * g;
        }
        for (b, g) in self.b.iter_mut().zip(&grads.db) {
            *b -= learning_rate * g;
        }
    }

    /// The first weight or bias that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<f32> {
        first_non_finite(&self.w).or_else(|| first_non_finite(&self.b))
    }
}

/// Gradient of the batch loss with respect to `W` (class-major, like [`Model::w`]) and `b`.
#[derive(Clone, Debug)]
pub struct Grads {
    /// `dW`, class-major.
    pub dw: AlignedF32,
    /// `db`.
    pub db: Vec<f32>,
}

impl Grads {
    /// Zero gradients shaped for `model`.
    pub fn zeros_like(model: &Model) -> Self {
        Self {
            dw: AlignedF32::zeros(model.w.len()),
            db: vec![0.0; model.classes],
        }
    }

    /// Set every entry to zero.
    pub fn clear(&mut self) {
        self.dw.fill(0.0);
        self.db.fill(0.0);
    }

    /// The first entry of `db`, then `dW`, that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<f32> {
        first_non_finite(&self.db).or_else(|| first_non_finite(&self.dw))
    }
}

/// The first NaN or infinite value of `values`, if any. The common all-finite case is one
/// branch-free pass (`v·0` is 0 for finite `v` and NaN otherwise, summed in 8 independent
/// lanes, which the compiler vectorises); only a poisoned slice pays for the search.
pub fn first_non_finite(values: &[f32]) -> Option<f32> {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * 0.0;
        }
    }
    let poisoned = lanes.iter().chain(tail).any(|v| !v.is_finite());
    if poisoned {
        values.iter().copied().find(|v| !v.is_finite())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_finite_value() {
        let mut v = vec![1.0f32; 37];
        assert_eq!(first_non_finite(&v), None);
        v[20] = f32::INFINITY;
        v[30] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(f32::INFINITY));
        v[20] = 2.0;
        assert!(first_non_finite(&v).unwrap().is_nan());
        v[30] = 0.0;
        v[36] = f32::NEG_INFINITY; // in the tail
        assert_eq!(first_non_finite(&v), Some(f32::NEG_INFINITY));
        // Huge finite values do not overflow the check: v·0 stays 0.
        assert_eq!(first_non_finite(&[f32::MAX; 16]), None);
        assert_eq!(first_non_finite(&[]), None);
    }
}
