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

    /// True when every weight and bias is finite.
    pub fn is_finite(&self) -> bool {
        self.w.iter().chain(&self.b).all(|v| v.is_finite())
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

    /// True when every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.dw.iter().chain(&self.db).all(|v| v.is_finite())
    }
}
