//! One sample's answer: its class and the probabilities of every class, computed by the scalar
//! reference (the kernels answer whole batches). Here rather than in `model.rs`, so the model
//! stays a leaf that the kernels build on, not a caller of them.

use crate::compute::model::Model;

impl Model {
    /// The class and the probabilities of one sample of u8 pixels (read as `p / 255`, as the
    /// kernels read them), computed by the scalar reference.
    ///
    /// ```
    /// use mnist_logreg::model::Model;
    ///
    /// let mut m = Model::zeros(2, 2)?;
    /// m.w_mut().copy_from_slice(&[1.0, 0.0, 0.0, 1.0]); // class c looks at pixel c
    /// let p = m.predict(&[0, 255])?;
    /// assert_eq!(p.class, 1);
    /// assert!((p.probabilities[1] - 0.7311).abs() < 1e-4);
    /// assert!(m.predict(&[0, 0, 0]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn predict(&self, pixels: &[u8]) -> Result<Prediction, PredictError> {
        if pixels.len() != self.features() {
            return Err(PredictError {
                got: pixels.len(),
                features: self.features(),
            });
        }
        let probabilities = crate::compute::kernels::reference::probabilities(self, pixels);
        Ok(Prediction::of(probabilities))
    }

    /// The class and the probabilities of one sample of `f32` features, used as given (the
    /// features of a float `.npy` or IDX file), computed by the scalar reference.
    ///
    /// ```
    /// use mnist_logreg::model::Model;
    ///
    /// let mut m = Model::zeros(2, 3)?;
    /// m.w_mut().copy_from_slice(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    /// assert_eq!(m.predict_f32(&[0.0, 2.0])?.class, 1);
    /// assert!(m.predict_f32(&[0.0]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn predict_f32(&self, x: &[f32]) -> Result<Prediction, PredictError> {
        if x.len() != self.features() {
            return Err(PredictError {
                got: x.len(),
                features: self.features(),
            });
        }
        Ok(Prediction::of(
            crate::compute::kernels::reference::probabilities_f32(self, x),
        ))
    }
}

impl Prediction {
    /// The most probable class of `probabilities` (first index on ties, as the kernels'
    /// argmax) with them.
    fn of(probabilities: Vec<f32>) -> Self {
        let class = (1..probabilities.len()).fold(0, |best, c| {
            if probabilities[c] > probabilities[best] {
                c
            } else {
                best
            }
        });
        Prediction {
            class,
            probabilities,
        }
    }
}

/// What [`Model::predict`] answers for one sample.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Prediction {
    /// The most probable class (the first on ties).
    pub class: usize,
    /// `softmax(x·W + b)`, one per class.
    pub probabilities: Vec<f32>,
}

/// A sample whose pixel count is not the model's feature count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got} pixels given, the model reads {features}")]
pub struct PredictError {
    /// Pixels given.
    pub got: usize,
    /// Features of the model.
    pub features: usize,
}
