//! # mnist-logreg
//!
//! Multinomial logistic regression (softmax regression) on MNIST-format data, trained with SGD,
//! reproducing the TensorFlow "MNIST handwritten digits, low-level" tutorial (see `SPEC.md`
//! semantics in the README) with fast SIMD and multithreaded kernels.
//!
//! The data path, left to right:
//!
//! `idx` (files, validation, mmap) → `dataset` (the four MNIST files, checksums, u8 → f32) →
//! `batch` (seeded samplers, gather) → `kernels` (reference | gemm | fused | parallel | fused_u8)
//! → `model` / `train` (`checkpoint` saves and loads models) → `bin/train.rs`.
//!
//! Around it, for people: `preprocess` (any picture → a 28×28 MNIST-like input, for
//! `bin/predict.rs`), `plot` (SVG curves, confusion matrix, digit grid, weight maps),
//! `metrics` (JSON lines), `classes` (class names), `render` (images as terminal text) and,
//! with the `fetch` feature, `fetch` (download MNIST from the public mirrors, `bin/fetch.rs`).

#![warn(missing_docs)]

pub mod aligned;
pub mod batch;
pub mod checkpoint;
pub mod classes;
pub mod dataset;
pub mod fuzz_entry;
pub mod idx;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod preprocess;
pub mod render;
pub mod run;
pub mod train;

#[cfg(feature = "fetch")]
pub mod fetch;

/// Number of input features of an MNIST image (28 × 28 pixels).
pub const MNIST_FEATURES: usize = 784;
/// Number of classes of MNIST (digits 0..9).
pub const MNIST_CLASSES: usize = 10;
