//! The linear model `softmax(x·W + b)`, its gradient buffers, and the SGD update; one
//! sample's answer is [`Model::predict`] (a [`Prediction`], or a [`PredictError`]).
//!
//! `W` is stored **class-major** (`classes × features`, i.e. the transpose of the tutorial's
//! `784 × 10` matrix): each logit is then one contiguous dot product, and the gradient `dW` is
//! accumulated the same way, which is what the SIMD kernels want.
//!
//! ## The shape contract lives in the types
//! The kernels read `W`, `b`, `dW` and `db` through raw pointers, so their lengths are part of
//! what makes a call sound. [`Model`] and [`Grads`] keep their buffers private: a `Model` is
//! built only by constructors that check `w.len() == features · classes` and
//! `b.len() == classes`, a `Grads` only by [`Grads::zeros_like`], and the accessors hand out
//! slices (whose length a caller cannot change). Every kernel then compares the shapes of the
//! model, the batch and the gradient buffer in one place (`kernels::check_backward`) before
//! any raw access.

pub use crate::compute::predict::{PredictError, Prediction};
use crate::data::aligned::AlignedF32;

/// A model whose buffers do not match its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// `features` or `classes` is zero.
    #[error("a model needs at least one feature and one class (got {features} × {classes})")]
    Empty {
        /// Features asked for.
        features: usize,
        /// Classes asked for.
        classes: usize,
    },
    /// `w` does not hold `features · classes` weights.
    #[error("{got} weights do not make a {features} × {classes} model (need {})", features * classes)]
    Weights {
        /// Features of the model.
        features: usize,
        /// Classes of the model.
        classes: usize,
        /// Weights given.
        got: usize,
    },
    /// `b` does not hold `classes` biases.
    #[error("{got} biases for {classes} classes")]
    Bias {
        /// Classes of the model.
        classes: usize,
        /// Biases given.
        got: usize,
    },
}

/// Weights and bias of the model.
///
/// ```
/// use mnist_logreg::model::{Model, ModelError};
///
/// let m = Model::new(2, 3, vec![0.5; 6], vec![0.0; 3])?;
/// assert_eq!((m.features(), m.classes(), m.class_weights(2)), (2, 3, &[0.5, 0.5][..]));
/// assert!(matches!(Model::new(2, 3, vec![0.5; 5], vec![0.0; 3]), Err(ModelError::Weights { .. })));
/// # Ok::<(), ModelError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Model {
    features: usize,
    classes: usize,
    /// Class-major: `w[c · features + j]` is the tutorial's `W[j][c]`.
    w: AlignedF32,
    b: Vec<f32>,
}

impl Model {
    /// A model from its weights (class-major, `w[c · features + j]` is the tutorial's
    /// `W[j][c]`) and biases, checked against the shape.
    pub fn new(
        features: usize,
        classes: usize,
        w: Vec<f32>,
        b: Vec<f32>,
    ) -> Result<Self, ModelError> {
        let mut m = Self::zeros(features, classes)?;
        if w.len() != m.w.len() {
            return Err(ModelError::Weights {
                features,
                classes,
                got: w.len(),
            });
        }
        if b.len() != classes {
            return Err(ModelError::Bias {
                classes,
                got: b.len(),
            });
        }
        m.w.copy_from_slice(&w);
        m.b = b;
        Ok(m)
    }

    /// A model of zeros.
    pub fn zeros(features: usize, classes: usize) -> Result<Self, ModelError> {
        let n = features
            .checked_mul(classes)
            .filter(|_| features > 0 && classes > 0);
        let Some(n) = n else {
            return Err(ModelError::Empty { features, classes });
        };
        Ok(Self {
            features,
            classes,
            w: AlignedF32::zeros(n),
            b: vec![0.0; classes],
        })
    }

    /// The tutorial's initialisation: `W` all ones, `b` all zeros.
    ///
    /// # Panics
    /// When `features` or `classes` is zero.
    pub fn tutorial_init(features: usize, classes: usize) -> Self {
        let mut m = Self::zeros(features, classes).unwrap_or_else(|e| panic!("{e}"));
        m.w.fill(1.0);
        m
    }

    /// Input features (784 for MNIST).
    pub fn features(&self) -> usize {
        self.features
    }

    /// Output classes (10 for MNIST).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The weights, class-major (`features · classes` values).
    pub fn w(&self) -> &[f32] {
        &self.w
    }

    /// The weights, class-major, to change in place (the length is fixed).
    pub fn w_mut(&mut self) -> &mut [f32] {
        &mut self.w
    }

    /// The biases (`classes` values).
    pub fn b(&self) -> &[f32] {
        &self.b
    }

    /// The biases, to change in place (the length is fixed).
    pub fn b_mut(&mut self) -> &mut [f32] {
        &mut self.b
    }

    /// The weights of class `c` (length `features`).
    ///
    /// # Panics
    /// When `c >= classes`.
    pub fn class_weights(&self, c: usize) -> &[f32] {
        &self.w[c * self.features..(c + 1) * self.features]
    }

    /// Plain SGD: `W −= lr·dW`, `b −= lr·db`.
    ///
    /// # Panics
    /// When `grads` is not shaped for this model.
    pub fn sgd_step(&mut self, grads: &Grads, learning_rate: f32) {
        self.sgd_step_checked(grads, learning_rate);
    }

    /// [`Model::sgd_step`], and in the same pass over `dW` whether every gradient entry was
    /// finite (the training loop's check, without a pass of its own). The update is applied
    /// either way.
    ///
    /// # Panics
    /// When `grads` is not shaped for this model.
    pub(crate) fn sgd_step_checked(&mut self, grads: &Grads, learning_rate: f32) -> bool {
        assert!(
            grads.fits(self),
            "gradients of a {} × {} model applied to a {} × {} model",
            grads.features,
            grads.classes,
            self.features,
            self.classes
        );
        // `g·0` is 0 for finite `g` and NaN otherwise, summed in 16 independent lanes (one
        // vector, which the compiler keeps in a register beside the update).
        const LANES: usize = 16;
        let mut poison = [0.0f32; LANES];
        let mut w = self.w.chunks_exact_mut(LANES);
        let mut g = grads.dw.chunks_exact(LANES);
        for (w, g) in (&mut w).zip(&mut g) {
            for ((w, g), p) in w.iter_mut().zip(g).zip(&mut poison) {
                *w -= learning_rate * g;
                *p += g * 0.0;
            }
        }
        let tails = w.into_remainder().iter_mut().zip(g.remainder());
        let bias = self.b.iter_mut().zip(&grads.db);
        for (w, g) in tails.chain(bias) {
            *w -= learning_rate * g;
            poison[0] += g * 0.0;
        }
        poison.iter().all(|p| p.is_finite())
    }

    /// The first weight or bias that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<f32> {
        first_non_finite(&self.w).or_else(|| first_non_finite(&self.b))
    }
}

/// Gradient of the batch loss with respect to `W` (class-major, like [`Model::w`]) and `b`.
///
/// Built only by [`Grads::zeros_like`], so its buffers always hold `features · classes` and
/// `classes` values; the kernels check that the shape is the model's.
#[derive(Clone, Debug)]
pub struct Grads {
    features: usize,
    classes: usize,
    dw: AlignedF32,
    db: Vec<f32>,
}

impl Grads {
    /// Zero gradients shaped for `model`.
    pub fn zeros_like(model: &Model) -> Self {
        Self {
            features: model.features,
            classes: model.classes,
            dw: AlignedF32::zeros(model.w.len()),
            db: vec![0.0; model.classes],
        }
    }

    /// True when these gradients are shaped for `model`.
    pub fn fits(&self, model: &Model) -> bool {
        (self.features, self.classes) == (model.features, model.classes)
    }

    /// Features of the model they are shaped for.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Classes of the model they are shaped for.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `dW`, class-major.
    pub fn dw(&self) -> &[f32] {
        &self.dw
    }

    /// `dW`, to change in place (the length is fixed).
    pub fn dw_mut(&mut self) -> &mut [f32] {
        &mut self.dw
    }

    /// `db`.
    pub fn db(&self) -> &[f32] {
        &self.db
    }

    /// `db`, to change in place (the length is fixed).
    pub fn db_mut(&mut self) -> &mut [f32] {
        &mut self.db
    }

    /// Both buffers at once, to change in place: `(dW, db)`.
    pub(crate) fn parts_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (&mut self.dw, &mut self.db)
    }

    /// Trade the `dW` buffer with `other`, which must hold as many values (a kernel that
    /// computed `dW` elsewhere hands it over without a copy).
    ///
    /// # Panics
    /// When the lengths differ.
    pub(crate) fn swap_dw(&mut self, other: &mut AlignedF32) {
        assert_eq!(other.len(), self.dw.len(), "dW buffers of different shapes");
        std::mem::swap(&mut self.dw, other);
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
pub(crate) fn first_non_finite(values: &[f32]) -> Option<f32> {
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
    fn the_checked_sgd_step_updates_and_sees_every_poisoned_entry() {
        // 3 × 7 = 21 weights: one 16-lane chunk and a tail of 5, then 3 biases.
        let model = Model::new(7, 3, (0..21).map(|i| i as f32).collect(), vec![1.0; 3]).unwrap();
        let mut grads = Grads::zeros_like(&model);
        for (i, g) in grads.dw_mut().iter_mut().enumerate() {
            *g = 0.5 * i as f32 - 3.0;
        }
        grads.db_mut().copy_from_slice(&[0.25, -1.0, 2.0]);
        let (mut plain, mut checked) = (model.clone(), model.clone());
        plain.sgd_step(&grads, 0.1);
        assert!(checked.sgd_step_checked(&grads, 0.1));
        assert_eq!(plain.w(), checked.w());
        assert_eq!(plain.b(), checked.b());
        for w in plain.w().iter().zip(model.w()).zip(grads.dw()) {
            let ((&after, &before), &g) = w;
            assert_eq!(after, before - 0.1 * g);
        }
        for (at, bad) in [(3, f32::NAN), (17, f32::INFINITY), (20, f32::NEG_INFINITY)] {
            let mut poisoned = grads.clone();
            poisoned.dw_mut()[at] = bad;
            assert!(
                !model.clone().sgd_step_checked(&poisoned, 0.1),
                "dW[{at}] = {bad}"
            );
        }
        let mut poisoned = grads.clone();
        poisoned.db_mut()[2] = f32::NAN;
        assert!(!model.clone().sgd_step_checked(&poisoned, 0.1), "db");
    }

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
