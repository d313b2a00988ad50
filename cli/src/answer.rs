//! An answer with its doubts: the one place where a model's prediction for a 28×28 input meets
//! the novelty score and the hand-made rules. `predict`, `serve` (and what comes after them)
//! ask a [`Judge`] and print or send its [`Answer`].

use mnist_logreg::classes::ClassNames;
use mnist_logreg::model::Model;
use serde::Serialize;

use crate::novelty::{self, Novelty};
use crate::preprocess::{SIDE, Unlike};

/// A model reading 28×28 pictures, with what an honest answer needs: its novelty score (when
/// it was saved with one) and its class names.
pub struct Judge {
    model: Model,
    novelty: Option<Novelty>,
    names: ClassNames,
}

/// One answer of a [`Judge`].
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Answer {
    /// The predicted class (argmax of the probabilities, first index on ties).
    pub class: usize,
    /// Its name.
    pub label: String,
    /// `softmax(x·W + b)` per class.
    pub probabilities: Vec<f32>,
    /// The 28×28 input the model saw, row-major (for picture files: after preparation).
    pub prepared: Vec<u8>,
    /// Why the answer deserves doubt (see [`novelty::doubts`]); empty when it does not.
    pub warnings: Vec<String>,
}

impl Judge {
    /// A judge answering with `model` (784 features) through [`Model::predict`], doubting
    /// what `novelty` finds unlike the training digits (without one, the hand-made rules of
    /// [`crate::preprocess`] decide).
    ///
    /// # Panics
    /// When the model does not read 28×28 pictures or `names` does not name its classes.
    pub fn new(model: Model, novelty: Option<Novelty>, names: ClassNames) -> Self {
        assert_eq!(
            model.features(),
            SIDE * SIDE,
            "a judge reads 28×28 pictures"
        );
        assert_eq!(names.len(), model.classes(), "one name per class");
        Self {
            model,
            novelty,
            names,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The novelty score, when the model was saved with one.
    pub fn novelty(&self) -> Option<&Novelty> {
        self.novelty.as_ref()
    }

    /// The class names.
    pub fn names(&self) -> &ClassNames {
        &self.names
    }

    /// The answer for 784 prepared pixels (MNIST polarity), with the doubts of the novelty
    /// score and of `rules` (what preparing the input noted; for raw pixels
    /// [`crate::preprocess::unlike_mnist`] of them).
    ///
    /// # Panics
    /// When `pixels` is not 784 values.
    pub fn answer(&self, pixels: &[u8], rules: &[Unlike]) -> Answer {
        let p = self
            .model
            .predict(pixels)
            .expect("a judge is asked about 784 pixels");
        let warnings = novelty::doubts(self.novelty.as_ref(), pixels, rules)
            .expect("a judge is asked about 784 pixels");
        Answer {
            class: p.class,
            label: self.names.label(p.class),
            probabilities: p.probabilities,
            prepared: pixels.to_vec(),
            warnings,
        }
    }
}
