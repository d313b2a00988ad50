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

#![warn(missing_docs)]

pub mod aligned;
pub mod batch;
pub mod checkpoint;
pub mod dataset;
pub mod fuzz_entry;
pub mod idx;
pub mod kernels;
pub mod model;
pub mod render;
pub mod train;

/// Number of input features of an MNIST image (28 × 28 pixels).
pub const MNIST_FEATURES: usize = 784;
/// Number of classes of MNIST (digits 0..9).
pub const MNIST_CLASSES: usize = 10;
