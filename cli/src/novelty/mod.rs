//! Whether an input looks like the digits a model was trained on: a calibrated novelty score.
//!
//! A softmax model answers for anything, and its probabilities say nothing about whether the
//! input is a digit at all: a filled disc gets `8` with p = 0.81. Hand-made rules (how much
//! ink, marks side by side) each catch one failure and miss its neighbours, so the score
//! measures the input against the training data instead, in two parts:
//!
//! - **shape**: the squared distance of the input's canonical picture (binarised, blurred by a
//!   pixel: see `features`) from the digits' principal subspace: the mean canonical picture
//!   plus the top [`RANK`] directions of their covariance. A frame, text or a scribble is far
//!   from every combination of digit-like shapes;
//! - **strokes**: the Mahalanobis distance of five descriptors of the ink (its brightness,
//!   amount, solidity, separate marks and thickness) from the digits' mean, counting only the
//!   suspect direction of the one-sided ones. Noise, photos and filled shapes are far.
//!
//! Each part is divided by its own value at the `1 − FLAG_SHARE` quantile of the **test**
//! split, the score is the larger of the two, and the threshold is that score's `1 −
//! FLAG_SHARE` quantile on the test split again: by construction [`FLAG_SHARE`] (0.5%) of the
//! test digits are flagged, and [`Novelty::flagged_share`] records the share measured. The
//! fit uses at most 10 000 training images, evenly spaced: the top 32 directions of a
//! 784-dimensional covariance are estimated well from that many, and its covariance takes
//! 0.2 s instead of 1.1 s for all 60 000 (measured on the 2-core AMD EPYC).
//!
//! Measured on 2026-12-02 with MNIST (fit on `train`, calibrated on `t10k`): 0.50% of the
//! test digits and 0.24% of the training digits are flagged; flagged are 60 of 60 framed
//! digits (frames 2, 6 and 12 pixels wide), 4 of 6 filled shapes (discs and squares; two
//! thick bars pass as bold ones), 10 of 10 lines of text, 10 of 10 noise images and 10 of 10
//! photo-like images; none of 200 test digits binarised at 128 and none of 200 drawn dark on
//! light at four times the size. A cut-off digit looks like a digit once cropped, so that
//! is judged on the input by [`crate::preprocess`], which still sees the edges.

mod features;
mod fit;
mod stored;

pub use fit::{MAX_FIT_IMAGES, RANK};
pub use stored::{
    LoadError, Loaded, from_bytes_with_novelty, load_with_novelty, save_with_novelty,
};

use features::{DESCRIPTORS, PIXELS, TAILS, Tail};

use rayon::prelude::*;

use crate::preprocess::Unlike;

/// An input's shape part and strokes part, unscaled, and the strokes' worst descriptor.
type Parts = (f64, f64, usize);

/// The share of the test split's digits the threshold flags.
pub const FLAG_SHARE: f64 = 0.005;

/// What the score needs at prediction time, fitted by [`Novelty::fit`] and stored with the
/// model by [`save_with_novelty`].
#[derive(Clone, Debug, PartialEq)]
pub struct Novelty {
    /// Mean canonical picture, [`PIXELS`] values.
    pixel_mean: Vec<f32>,
    /// The principal directions, [`RANK`] rows of [`PIXELS`] (orthonormal).
    basis: Vec<f32>,
    /// Mean of the descriptors.
    descriptor_mean: [f32; DESCRIPTORS],
    /// Inverse covariance of the descriptors, row-major.
    precision: [f32; DESCRIPTORS * DESCRIPTORS],
    /// `[shape scale, strokes scale, threshold, flagged share]`.
    scales: [f32; 4],
}

/// The novelty score of one input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// The score over the threshold: above 1, the input is unlike the training digits.
    pub ratio: f32,
    /// The shape part over its scale.
    pub shape: f32,
    /// The strokes part over its scale.
    pub strokes: f32,
    /// The descriptor that contributes most to the strokes part (an index into the
    /// descriptors; see [`Score::reason`]).
    worst: usize,
}

impl Score {
    /// Whether the input is unlike the training digits (the score is above the threshold).
    pub fn is_novel(&self) -> bool {
        self.ratio > 1.0
    }

    /// Why the input is unlike the training digits, for a person.
    pub fn reason(&self) -> String {
        let part = if self.shape >= self.strokes {
            "its shape is far from every combination of training digits".to_string()
        } else {
            format!(
                "its {} is unlike any training digit's",
                features::NAMES[self.worst]
            )
        };
        format!(
            "unlike the training digits: novelty score {:.1}× the threshold ({part})",
            self.ratio
        )
    }
}

/// Faults of fitting or using a novelty score.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NoveltyError {
    /// The images are not 28×28.
    #[error("the novelty score reads 28×28 images: got {len} values, not a multiple of 784")]
    NotPictures {
        /// The number of values given.
        len: usize,
    },
    /// A split without images.
    #[error("the novelty score needs at least one {split} image")]
    Empty {
        /// `"training"` or `"test"`.
        split: &'static str,
    },
    /// Stored values that cannot be a fitted score.
    #[error("the novelty tensors are invalid: {0}")]
    Invalid(String),
}

/// Check that `images` holds whole 28×28 images, at least one.
fn pictures(images: &[u8], split: &'static str) -> Result<(), NoveltyError> {
    if !images.len().is_multiple_of(PIXELS) {
        return Err(NoveltyError::NotPictures { len: images.len() });
    }
    if images.is_empty() {
        return Err(NoveltyError::Empty { split });
    }
    Ok(())
}

/// A scale that can divide: positive and finite.
fn positive(v: f64) -> f32 {
    (v as f32).max(f32::MIN_POSITIVE)
}

impl Novelty {
    /// Fit the score on `train` (28×28 images, `count × 784` pixels, MNIST polarity) and
    /// calibrate it on `test` so that [`FLAG_SHARE`] of those are flagged.
    ///
    /// ```
    /// use mnist_logreg_cli::novelty::Novelty;
    ///
    /// // Two kinds of "digit": vertical and horizontal bars, three pixels thick.
    /// let bar = |vertical: bool, at: usize| -> Vec<u8> {
    ///     (0..784)
    ///         .map(|i| {
    ///             let (r, c) = (i / 28, i % 28);
    ///             let (along, across) = if vertical { (r, c) } else { (c, r) };
    ///             if (4..24).contains(&along) && (at..at + 3).contains(&across) { 255 } else { 0 }
    ///         })
    ///         .collect()
    /// };
    /// let images: Vec<u8> = (0..200).flat_map(|i| bar(i % 2 == 0, 8 + i % 10)).collect();
    /// let novelty = Novelty::fit(&images, &images)?;
    /// assert!(!novelty.score(&bar(true, 12))?.is_novel());
    /// let disc: Vec<u8> = (0..784)
    ///     .map(|i: usize| if (i / 28).abs_diff(14).pow(2) + (i % 28).abs_diff(14).pow(2) < 64 { 255 } else { 0 })
    ///     .collect();
    /// assert!(novelty.score(&disc)?.is_novel());
    /// # Ok::<(), mnist_logreg_cli::novelty::NoveltyError>(())
    /// ```
    pub fn fit(train: &[u8], test: &[u8]) -> Result<Self, NoveltyError> {
        pictures(train, "training")?;
        pictures(test, "test")?;
        let (mean, cov) = fit::covariance(train);
        let (vectors, _) = fit::top_eigenvectors(&cov, RANK, 0x6e6f76656c7479);
        let mut basis = vec![0f32; RANK * PIXELS];
        for (k, row) in basis
            .chunks_exact_mut(PIXELS)
            .enumerate()
            .take(vectors.ncols())
        {
            row.iter_mut()
                .zip(vectors.column(k).iter())
                .for_each(|(b, &v)| *b = v as f32);
        }
        let (descriptor_mean, precision) = fit::descriptor_model(&fit::fit_sample(train));
        let mut novelty = Novelty {
            pixel_mean: mean.iter().map(|&m| m as f32).collect(),
            basis,
            descriptor_mean: descriptor_mean.map(|m| m as f32),
            precision: std::array::from_fn(|i| {
                precision[(i / DESCRIPTORS, i % DESCRIPTORS)] as f32
            }),
            scales: [1.0; 4],
        };
        novelty.calibrate(test);
        Ok(novelty)
    }

    /// Set the scales and the threshold from `test` (whole 28×28 images).
    fn calibrate(&mut self, test: &[u8]) {
        let q = 1.0 - FLAG_SHARE;
        let parts: Vec<Parts> = test
            .par_chunks_exact(PIXELS)
            .map(|x| self.parts(x))
            .collect();
        let mut shape: Vec<f64> = parts.iter().map(|p| p.0).collect();
        let mut strokes: Vec<f64> = parts.iter().map(|p| p.1).collect();
        let (shape_scale, strokes_scale) = (
            positive(fit::quantile(&mut shape, q)),
            positive(fit::quantile(&mut strokes, q)),
        );
        self.scales = [shape_scale, strokes_scale, 1.0, 0.0];
        let mut combined: Vec<f64> = parts
            .iter()
            .map(|&p| f64::from(self.scored(p).ratio))
            .collect();
        self.scales[2] = positive(fit::quantile(&mut combined, q));
        // Counted through `scored` with the final threshold: the share `score` will give.
        let flagged = parts.iter().filter(|&&p| self.scored(p).is_novel()).count();
        self.scales[3] = flagged as f32 / parts.len() as f32;
    }

    /// The shape part, the strokes part (both unscaled) and the strokes' worst descriptor.
    fn parts(&self, pixels: &[u8]) -> Parts {
        let mut canonical = [0f32; PIXELS];
        features::canonical(pixels, &mut canonical);
        let centred: Vec<f64> = canonical
            .iter()
            .zip(&self.pixel_mean)
            .map(|(&c, &m)| f64::from(c - m))
            .collect();
        let total: f64 = centred.iter().map(|v| v * v).sum();
        let captured: f64 = self
            .basis
            .chunks_exact(PIXELS)
            .map(|row| {
                let c: f64 = row
                    .iter()
                    .zip(&centred)
                    .map(|(&b, v)| f64::from(b) * v)
                    .sum();
                c * c
            })
            .sum();
        let shape = (total - captured).max(0.0);

        let d = features::descriptors(pixels);
        let dev: [f64; DESCRIPTORS] = std::array::from_fn(|j| {
            let x = d[j] - f64::from(self.descriptor_mean[j]);
            match TAILS[j] {
                Tail::Low => x.min(0.0),
                Tail::High => x.max(0.0),
                Tail::Both => x,
            }
        });
        let p = |i: usize, j: usize| f64::from(self.precision[i * DESCRIPTORS + j]);
        let strokes: f64 = (0..DESCRIPTORS)
            .flat_map(|i| (0..DESCRIPTORS).map(move |j| (i, j)))
            .map(|(i, j)| dev[i] * p(i, j) * dev[j])
            .sum::<f64>()
            .max(0.0);
        let worst = (0..DESCRIPTORS)
            .max_by(|&a, &b| (dev[a] * dev[a] * p(a, a)).total_cmp(&(dev[b] * dev[b] * p(b, b))))
            .unwrap_or(0);
        (shape, strokes, worst)
    }

    /// The score of one prepared input: 784 pixels, MNIST polarity (0 = background).
    pub fn score(&self, pixels: &[u8]) -> Result<Score, NoveltyError> {
        if pixels.len() != PIXELS {
            return Err(NoveltyError::NotPictures { len: pixels.len() });
        }
        Ok(self.scored(self.parts(pixels)))
    }

    /// The score of an input's unscaled parts.
    fn scored(&self, (shape, strokes, worst): Parts) -> Score {
        let shape = (shape / f64::from(self.scales[0])) as f32;
        let strokes = (strokes / f64::from(self.scales[1])) as f32;
        Score {
            ratio: shape.max(strokes) / self.scales[2],
            shape,
            strokes,
            worst,
        }
    }

    /// The share of the calibration (test) digits whose score is above the threshold.
    pub fn flagged_share(&self) -> f32 {
        self.scales[3]
    }

    /// The tensors stored in a checkpoint: name, shape, values.
    pub(crate) fn tensors(&self) -> [(&'static str, Vec<usize>, &[f32]); 5] {
        [
            (TENSORS[0], vec![PIXELS], &self.pixel_mean),
            (TENSORS[1], vec![RANK, PIXELS], &self.basis),
            (TENSORS[2], vec![DESCRIPTORS], &self.descriptor_mean),
            (TENSORS[3], vec![DESCRIPTORS, DESCRIPTORS], &self.precision),
            (TENSORS[4], vec![4], &self.scales),
        ]
    }

    /// The score from the tensors [`Novelty::tensors`] wrote, each checked for its shape and
    /// finite values (and the scales for being positive).
    pub(crate) fn from_tensors(
        mut get: impl FnMut(&'static str) -> Option<(Vec<usize>, Vec<f32>)>,
    ) -> Result<Self, NoveltyError> {
        let mut take = |name: &'static str, shape: &[usize]| -> Result<Vec<f32>, NoveltyError> {
            let (found, values) =
                get(name).ok_or_else(|| NoveltyError::Invalid(format!("{name} is missing")))?;
            if found != shape {
                return Err(NoveltyError::Invalid(format!(
                    "{name} has shape {found:?}, expected {shape:?}"
                )));
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(NoveltyError::Invalid(format!(
                    "{name} holds a non-finite value at index {i}"
                )));
            }
            Ok(values)
        };
        let pixel_mean = take(TENSORS[0], &[PIXELS])?;
        let basis = take(TENSORS[1], &[RANK, PIXELS])?;
        let descriptor_mean = take(TENSORS[2], &[DESCRIPTORS])?;
        let precision = take(TENSORS[3], &[DESCRIPTORS, DESCRIPTORS])?;
        let scales = take(TENSORS[4], &[4])?;
        if scales[..3].iter().any(|&s| s <= 0.0) {
            return Err(NoveltyError::Invalid(format!(
                "{}: the scales and the threshold must be positive, found {scales:?}",
                TENSORS[4]
            )));
        }
        Ok(Novelty {
            pixel_mean,
            basis,
            descriptor_mean: descriptor_mean.try_into().expect("shape checked"),
            precision: precision.try_into().expect("shape checked"),
            scales: scales.try_into().expect("shape checked"),
        })
    }
}

/// The names of the novelty tensors in a checkpoint, in the order of [`Novelty::tensors`].
pub(crate) const TENSORS: [&str; 5] = [
    "novelty.pixel_mean",
    "novelty.pixel_basis",
    "novelty.descriptor_mean",
    "novelty.descriptor_precision",
    "novelty.scales",
];

/// Why the answer for a prepared input deserves doubt, one sentence each (empty: no doubt).
///
/// `rules` are what [`crate::preprocess`] noted (for raw pixels: [`unlike_mnist`] of them).
/// With a novelty score, the score decides and the rules about the 28×28 picture explain it;
/// without one (a model saved before the score existed), those rules decide, as they used to.
/// The rules about the input's edges and size ([`Unlike::seen_in_input`]) always count: the
/// 28×28 picture cannot show them.
///
/// [`unlike_mnist`]: crate::preprocess::unlike_mnist
pub fn doubts(
    novelty: Option<&Novelty>,
    pixels: &[u8],
    rules: &[Unlike],
) -> Result<Vec<String>, NoveltyError> {
    let (input, picture): (Vec<&Unlike>, Vec<&Unlike>) =
        rules.iter().partition(|u| u.seen_in_input());
    let mut out = Vec::new();
    match novelty {
        Some(n) => {
            let score = n.score(pixels)?;
            if score.is_novel() {
                out.push(score.reason());
                out.extend(picture.iter().map(|u| u.to_string()));
            }
        }
        None => out.extend(picture.iter().map(|u| u.to_string())),
    }
    out.extend(input.iter().map(|u| u.to_string()));
    Ok(out)
}
