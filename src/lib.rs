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
//! | data in (`src/data/`) | [`idx`] (files, validation, mmap) → [`dataset`] (the four files, checksums) → [`batch`] (seeded samplers); [`samples`] (your own data: IDX of any type and shape, `.npy`, any class count); `error.rs` ([`DataError`], what all of them report); `aligned.rs` ([`AlignedF32`](dataset::AlignedF32)), `fetch` (feature `fetch`) |
//! | compute (`src/compute/`) | [`kernels`] (reference, gemm, fused, parallel; SIMD dispatch for AVX-512F, AVX2+FMA, SSE2, NEON and scalar in `kernels/simd/`) → [`model`] (with `predict.rs`: [`Model::predict`](model::Model::predict), one sample's answer) → [`train`] (the SGD loop) |
//! | to the optimum (`src/solve/`) | [`solve`] (the L2-regularised objective, preconditioned full-batch L-BFGS) |
//! | results out (`src/output/`) | [`checkpoint`] |
//! | beside them | `file_error.rs` ([`FileError`]), `names.rs` (one spelling per named choice), `mnist.rs` (MNIST's shape), `temporaries.rs` (atomic writes and their sweep), `fuzz_entry.rs` (the fuzz targets' entry points) |
//!
//! The command line (`train`, `predict`, `serve`, `fetch`), picture preparation, the novelty
//! score and the plots live in the workspace's other crate, `mnist-logreg-cli` (`cli/`): a
//! library user builds none of that. With `default-features = false` this crate pulls 36
//! others. Feature `clap` derives clap's `ValueEnum` for the named choices (the binaries use
//! it); feature `fetch` adds the download of MNIST (an HTTPS client).
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
//! Your own files (features and labels as IDX of any element type and shape, or NumPy `.npy`;
//! any class count) open with [`samples::open_train_test`], and
//! [`samples::Samples::train_data`] feeds them to the same loop, read in place where the
//! type allows (u8, little-endian `f32` `.npy`).
//!
//! Any in-memory arrays train the same way ([`train::TrainData`] borrows pixels and labels),
//! and a single kernel step runs on your own buffers through [`kernels::Batch::new`], which
//! checks every row index and label: see the crate's `examples/`.

#![warn(missing_docs)]

mod compute;
mod data;
mod output;

pub use compute::{kernels, model, train};
pub use data::error::DataError;
#[cfg(feature = "fetch")]
pub use data::fetch;
pub use data::{batch, dataset, idx, samples};
pub use output::checkpoint;

mod file_error;
mod mnist;
mod names;
mod temporaries;
pub use file_error::FileError;
pub use mnist::{MNIST_CLASSES, MNIST_FEATURES};
pub use names::UnknownName;

#[doc(hidden)]
pub mod fuzz_entry;
pub mod solve;
