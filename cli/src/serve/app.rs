//! The domain of the page: a model, its class names and the test digits, answering for
//! 784 pixels or an image file. Nothing here knows HTTP.

use serde_json::{Value, json};

use crate::answer::{Answer, Judge};
use crate::classes::ClassNames;
use crate::novelty::Novelty;
use crate::preprocess::{self, DecodeError, Invert, PreprocessError, SIDE};
use mnist_logreg::dataset::Split;
use mnist_logreg::kernels::{Isa, KernelKind};
use mnist_logreg::model::Model;

/// Everything a request needs: the judge (the model, its novelty score, its names) and the
/// test split for sample digits.
pub struct App {
    judge: Judge,
    pub(super) test: Option<Split>,
    test_accuracy: Option<f64>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("features", &self.judge.model().features())
            .field("classes", &self.judge.model().classes())
            .field("test_accuracy", &self.test_accuracy)
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app serving `model` (784 features) through [`Model::predict`] (see
    /// [`App::with_kernel`] for a SIMD kernel), doubting what
    /// `novelty` finds unlike the training digits (without one, the hand-made rules of
    /// [`preprocess`] decide). `test` (the test split) enables `/api/test-digit`;
    /// `test_accuracy` is reported by `/api/model`.
    ///
    /// # Panics
    /// When the model does not read 28×28 pictures.
    pub fn new(
        model: Model,
        novelty: Option<Novelty>,
        names: ClassNames,
        test: Option<Split>,
        test_accuracy: Option<f64>,
    ) -> Self {
        assert_eq!(model.features(), SIDE * SIDE, "the page draws 28×28 digits");
        Self {
            judge: Judge::new(model, novelty, names),
            test,
            test_accuracy,
        }
    }

    /// This app answering through the kernel `kind` on instruction set `isa` (see
    /// [`Judge::with_kernel`]); `/api/model` names both.
    pub fn with_kernel(mut self, kind: KernelKind, isa: Isa) -> Self {
        self.judge = self.judge.with_kernel(kind, isa);
        self
    }

    /// The model's answer for 784 pixels (MNIST polarity, 0 = background), refused like a
    /// blank picture when they are all of one level.
    pub fn predict_pixels(&self, pixels: &[u8]) -> Result<Answer, ImageError> {
        preprocess::check_pixels(pixels)?;
        Ok(self.answer(pixels, &preprocess::unlike_mnist(pixels)))
    }

    /// The model's answer for a test digit (no refusal: the test split's images are digits).
    pub fn predict_test_digit(&self, pixels: &[u8]) -> Answer {
        self.answer(pixels, &preprocess::unlike_mnist(pixels))
    }

    /// The model's answer for an image file's bytes, prepared like `predict` does.
    pub fn predict_image(&self, bytes: &[u8]) -> Result<Answer, ImageError> {
        let gray = preprocess::decode_gray(bytes, preprocess::MAX_PIXELS)?;
        let prepared = preprocess::to_mnist(&gray, Invert::Auto)?;
        Ok(self.answer(&prepared.pixels, &prepared.unlike))
    }

    /// The answer for 784 prepared pixels, with the doubts of the novelty score and `rules`.
    fn answer(&self, pixels: &[u8], rules: &[preprocess::Unlike]) -> Answer {
        self.judge.answer(pixels, rules)
    }

    /// The class names.
    pub(super) fn names(&self) -> &ClassNames {
        self.judge.names()
    }

    /// What `/api/model` reports.
    pub fn describe(&self) -> Value {
        json!({
            "features": self.judge.model().features(),
            "classes": self.judge.model().classes(),
            "class_names": (0..self.judge.model().classes()).map(|c| self.names().label(c)).collect::<Vec<_>>(),
            "test_accuracy": self.test_accuracy,
            "kernel": self.judge.kernel_name(),
            "simd": self.judge.simd(),
            "test_images": self.test.as_ref().map_or(0, |t| t.len()),
            "novelty_flagged_share": self.judge.novelty().map(|n| n.flagged_share()),
        })
    }
}

/// Why an image file got no answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImageError {
    /// It cannot be decoded, or is too large.
    Decode(DecodeError),
    /// It decodes, but holds nothing to classify (blank, …).
    Prepare(PreprocessError),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Decode(DecodeError::Image(reason)) => {
                write!(f, "the image cannot be decoded: {reason}")
            }
            ImageError::Decode(DecodeError::TooLarge { width, height }) => write!(
                f,
                "the image is {width}×{height}, over the limit of {} pixels",
                preprocess::MAX_PIXELS
            ),
            ImageError::Prepare(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImageError {}

impl From<DecodeError> for ImageError {
    fn from(e: DecodeError) -> Self {
        ImageError::Decode(e)
    }
}

impl From<PreprocessError> for ImageError {
    fn from(e: PreprocessError) -> Self {
        ImageError::Prepare(e)
    }
}
