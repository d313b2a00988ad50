//! # mnist-logreg-cli
//!
//! The command line of [`mnist_logreg`]: the `train`, `predict`, `serve` (feature `serve`) and
//! `fetch` (feature `fetch`) binaries, and the application layer they share. The library crate
//! holds the kernels, data loading, the model, training and checkpoints; this crate holds what
//! only a program needs: flags, signals, progress, pictures and plots.
//!
//! | module | what |
//! | --- | --- |
//! | [`answer`] | an answer with its doubts: the model, the novelty score and the class names |
//! | [`classes`] | the names of the classes for output people read: numbered, or from `class-names.txt` |
//! | [`run`] | the pipeline the binaries share: data, start model, evaluation, verdict, metadata |
//! | [`preprocess`] | a picture file → a 28×28 MNIST-style input, and the hand-made doubt rules |
//! | [`novelty`] | the calibrated novelty score: fitted on the training split, stored in checkpoints |
//! | [`metrics`] | `--metrics FILE.jsonl`: one JSON object per report, the summary at the end |
//! | [`plot`] | SVG pictures of a run: curves, weights, test grid, confusion matrix |
//! | [`render`] | 28×28 images as terminal text |
//! | [`solver`] | `train --solver lbfgs`: full-batch L-BFGS to the optimum, with its reporting |
//! | `serve` (feature `serve`) | the drawing page and its JSON API |

#![warn(missing_docs)]

pub mod answer;
pub mod classes;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod metrics;
pub mod novelty;
pub mod plot;
pub mod preprocess;
pub mod render;
pub mod run;
#[cfg(feature = "serve")]
pub mod serve;
pub mod solver;
