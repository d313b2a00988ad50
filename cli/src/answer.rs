//! An answer with its doubts: the one place where a model's prediction for a 28×28 input meets
//! the novelty score and the hand-made rules. `predict`, `serve` (and what comes after them)
//! ask a [`Judge`] and print or send its [`Answer`].

use crate::classes::ClassNames;
use mnist_logreg::kernels::{Batch, Isa, Kernel, KernelKind};
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
    /// The kernel that answers, when not the scalar reference of [`Model::predict`].
    kernel: Option<(KernelKind, Box<dyn Kernel>)>,
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
            kernel: None,
        }
    }

    /// This judge answering through the kernel `kind` on instruction set `isa` (one thread)
    /// instead of the scalar reference: the class is the kernel's argmax, and the probability
    /// of class `c` is `exp(−loss)` of the kernel's forward pass with label `c` (the kernels
    /// clip the loss at `p = 1e-9`, so a smaller probability reads 0). They agree with
    /// [`Model::predict`] to 1e-4 (a test over the 10 000 MNIST test digits; measured 4.7e-5
    /// on avx512).
    pub fn with_kernel(mut self, kind: KernelKind, isa: Isa) -> Self {
        self.kernel = Some((kind, kind.build_on(isa, 1)));
        self
    }

    /// The kernel variant that answers (`reference` for [`Model::predict`]).
    pub fn kernel_name(&self) -> String {
        self.kernel
            .as_ref()
            .map_or("reference".to_string(), |(kind, _)| kind.to_string())
    }

    /// The instruction set it answers on (`avx512 (16 lanes)`, `scalar`, …).
    pub fn simd(&self) -> String {
        self.kernel
            .as_ref()
            .map_or("scalar".to_string(), |(_, kernel)| kernel.simd())
    }

    /// The class and the probabilities of 784 pixels, from the kernel or the reference.
    fn predict(&self, pixels: &[u8]) -> (usize, Vec<f32>) {
        let Some((kind, kernel)) = &self.kernel else {
            let p = self
                .model
                .predict(pixels)
                .expect("a judge is asked about 784 pixels");
            return (p.class, p.probabilities);
        };
        let mut f32s = Vec::new();
        if kind.input() == mnist_logreg::kernels::Input::F32 {
            f32s.resize(pixels.len(), 0.0);
            mnist_logreg::dataset::pixels_to_f32(pixels, &mut f32s);
        }
        let input = kind.input().pick(&f32s, pixels);
        let classes = self.model.classes();
        let rows = [0usize];
        let mut class = 0;
        let probabilities = (0..classes)
            .map(|c| {
                let labels = [c as u32];
                let batch = Batch::new(input, pixels.len(), &labels, &rows, classes)
                    .expect("one row of 784 pixels and a label below the class count");
                let mut predicted = [0u32];
                let stats = kernel.forward(&self.model, &batch, Some(&mut predicted));
                class = predicted[0] as usize;
                if stats.clipped > 0 {
                    0.0
                } else {
                    (-stats.loss).exp()
                }
            })
            .collect();
        (class, probabilities)
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

    /// The answer for 784 prepared pixels (MNIST polarity), from the kernel of
    /// [`Judge::with_kernel`] or else [`Model::predict`], with the doubts of the novelty
    /// score and of `rules` (what preparing the input noted; for raw pixels
    /// [`crate::preprocess::unlike_mnist`] of them).
    ///
    /// # Panics
    /// When `pixels` is not 784 values.
    pub fn answer(&self, pixels: &[u8], rules: &[Unlike]) -> Answer {
        assert_eq!(
            pixels.len(),
            SIDE * SIDE,
            "a judge is asked about 784 pixels"
        );
        let (class, probabilities) = self.predict(pixels);
        let warnings = novelty::doubts(self.novelty.as_ref(), pixels, rules)
            .expect("a judge is asked about 784 pixels");
        Answer {
            class,
            label: self.names.label(class),
            probabilities,
            prepared: pixels.to_vec(),
            warnings,
        }
    }
}
