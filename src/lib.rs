//! # mnist-logreg
//!
//! Multinomial logistic regression (softmax regression) on MNIST-format data, trained with SGD,
//! reproducing the TensorFlow "MNIST handwritten digits, low-level" tutorial with fused SIMD and
//! multithreaded kernels. What is computed, number by number (checksums, sampler rules, the clip
//! rule), is written down in `docs/SEMANTICS.md` of the repository.
//!
//! The source tree follows the data path, left to right:
//!
//! | stage | modules |
//! | --- | --- |
//! | data in (`src/data/`) | [`idx`] (files, validation, mmap) → [`dataset`] (the four files, checksums) → [`batch`] (seeded samplers); [`aligned`], [`classes`], `fetch` (feature `fetch`) |
//! | compute (`src/compute/`) | [`kernels`] (reference, gemm, fused, parallel; SIMD dispatch in `kernels::simd`) → [`model`] → [`train`] (the SGD loop) |
//! | to the optimum (`src/solve/`) | [`solve`] (the L2-regularised objective, preconditioned full-batch L-BFGS) |
//! | results out (`src/output/`) | [`checkpoint`], [`metrics`], [`plot`], [`render`] |
//! | around it | `run` (feature `cli`: the pipeline the binaries share), [`preprocess`] (a picture → a 28×28 input), `serve` (feature `serve`) |
//!
//! ## Use it as a library
//!
//! Train the tutorial's model on MNIST and evaluate it (MNIST comes from a directory of the
//! four IDX files, `.gz` or not; the `fetch` feature downloads them):
//!
//! ```no_run
//! use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
//! use mnist_logreg::kernels::KernelKind;
//! use mnist_logreg::model::Model;
//! use mnist_logreg::train::{self, TrainConfig, TrainData};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = Dataset::open("data/mnist".as_ref(), &Default::default(), ChecksumPolicy::Auto)?;
//! let kernel = KernelKind::ParallelU8.build(0); // widest SIMD of this CPU, one thread per core
//! let model = Model::tutorial_init(data.train.features(), mnist_logreg::MNIST_CLASSES);
//! let cfg = TrainConfig::default(); // the tutorial: 1000 steps of 256, rate 0.01
//! let outcome = train::train(&cfg, kernel.as_ref(), TrainData::u8(&data.train), model, |r| {
//!     println!("step: {}, loss: {:.6}, accuracy: {:.6}", r.step, r.loss, r.accuracy)
//! })?;
//! let test = TrainData::u8(&data.test);
//! let (stats, _) = train::evaluate(kernel.as_ref(), &outcome.model, test.pixels, test.labels)?;
//! println!("Test Accuracy: {:.6}", stats.accuracy());
//! // One image: its class and the ten probabilities.
//! let first = &data.test.pixels()[..data.test.features()];
//! let p = outcome.model.predict(first)?;
//! println!("first test image: {} (p = {:.3})", p.class, p.probabilities[p.class]);
//! # Ok(())
//! # }
//! ```
//!
//! Any in-memory arrays train the same way ([`train::TrainData`] borrows pixels and labels),
//! and a single kernel step runs on your own buffers through [`kernels::Batch::new`], which
//! checks every row index and label: see the crate's `examples/`.

#![warn(missing_docs)]

mod compute;
mod data;
mod output;

pub use compute::{kernels, model, train};
#[cfg(feature = "fetch")]
pub use data::fetch;
pub use data::{aligned, batch, classes, dataset, idx};
pub use output::{checkpoint, metrics, plot, render};

mod file_error;
mod names;
mod temporaries;
pub use file_error::FileError;
pub use names::UnknownName;

#[doc(hidden)]
pub mod fuzz_entry;
pub mod novelty;
pub mod preprocess;
#[cfg(feature = "cli")]
pub mod run;
#[cfg(feature = "serve")]
pub mod serve;
pub mod solve;

/// Number of input features of an MNIST image (28 × 28 pixels).
pub const MNIST_FEATURES: usize = 784;
/// Number of classes of MNIST (digits 0..9).
pub const MNIST_CLASSES: usize = 10;
