//! The run pipeline the binaries share, as plain functions a test can call: open the data and
//! pick the pixel buffers a kernel reads, check output paths before any work, start from a
//! model (fresh, loaded or resumed), evaluate, judge the result (trained, untrained, too short,
//! stalled), and write what a run records (checkpoint metadata, the metrics summary).
//!
//! `bin/train.rs` is these calls plus flags, printing, the resume-override merge and the
//! periodic-checkpoint thread; `bin/predict.rs` uses the model and
//! output checks. It is the binaries' layer, and [`cli_message`] is where library field names become command-line flags.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`RunError`] and its command-line wording |
//! | `data.rs` | [`DataSource`], [`LoadedData`]: the dataset (a directory or own files) and the pixel buffers a kernel reads |
//! | `spec.rs` | [`RunSpec`] ↔ checkpoint metadata; start models (fresh, loaded, resumed) |
//! | `outputs.rs` | output paths checked before any work |
//! | `verdict.rs` | [`Evaluation`], [`Verdict`], the metrics [`summary`] |
//! | `process.rs` | process-wide concerns of a binary: signals, SIGPIPE, thread-count warning |
//!
//! ```no_run
//! use mnist_logreg::kernels::KernelKind;
//! use mnist_logreg_cli::run::{self, DataSource, RunSpec};
//! use mnist_logreg::train;
//!
//! let spec = RunSpec::default(); // the tutorial: 1000 steps of 256, rate 0.01, parallel_u8
//! let data = run::LoadedData::open(&DataSource::new("data/mnist"), spec.kernel.input(), false)?;
//! let kernel = spec.build_kernel(mnist_logreg::kernels::Isa::best(), 0);
//! let model = run::initial_model(None, data.features(), data.classes())?;
//! let outcome = train::train(&spec.train, kernel.as_ref(), data.train_data(), model, |_| {})?;
//! let eval = run::evaluate_test(kernel.as_ref(), &outcome.model, &data)?;
//! println!("test accuracy {:.4}", eval.accuracy);
//! # Ok::<(), run::RunError>(())
//! ```

mod data;
mod outputs;
mod process;
mod spec;
mod verdict;

pub use data::{DataSource, LoadedData, RESIDENT_MIN_IMAGES, default_data_dir, wants_resident};
pub use outputs::{check_output_dir, check_output_file};
pub use process::{
    StopSignal, end_quietly_on_closed_stdout, install_stop_handlers, stop_requested,
    threads_warning,
};
pub use spec::{
    CLASS_NAMES, RunSpec, check_shape, class_names_of, initial_model, load_picture_model,
    load_resume, with_class_names,
};
pub use verdict::{
    Evaluation, SHORT_RUN_STEPS, TutorialRun, Verdict, evaluate_test, summary, train_tutorial,
    verdict,
};

use std::path::PathBuf;

/// What `predict` and `serve` say of a model without a novelty score: one saved without it
/// (from Python's `save`, by a version before the score, or through the library's
/// `checkpoint::save`).
pub const NO_NOVELTY_NOTE: &str = "note: this model has no novelty score (it was saved without \
     one, e.g. from Python or by a version before the score): hand-made rules decide which \
     answers to doubt; `train --save` on 28×28 pictures stores the calibrated score";

use crate::classes::ClassNamesError;
use mnist_logreg::DataError;
use mnist_logreg::checkpoint::CheckpointError;
use mnist_logreg::kernels::{Isa, SimdChoice, SimdError};
use mnist_logreg::train::TrainError;

/// Faults of a run, each naming what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The data: the data directory or its files, or own data files (`--train-images` …).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint that cannot be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint's novelty tensors.
    #[error(transparent)]
    Novelty(#[from] crate::novelty::LoadError),
    /// A class-names file.
    #[error(transparent)]
    ClassNames(#[from] ClassNamesError),
    /// Training stopped on an error.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The requested instruction set.
    #[error(transparent)]
    Simd(#[from] SimdError),
    /// A loaded model whose shape does not fit the data.
    #[error(
        "{}: the model has {model_features} features and {model_classes} classes, the data needs {features} and {classes}",
        path.display()
    )]
    ModelShape {
        /// The checkpoint.
        path: PathBuf,
        /// Its feature count.
        model_features: usize,
        /// Its class count.
        model_classes: usize,
        /// The data's feature count.
        features: usize,
        /// The data's class count.
        classes: usize,
    },
    /// The model file to predict with does not exist.
    #[error(
        "{}: no such model file (`train --save {}` writes one)",
        path.display(),
        path.display()
    )]
    NoModel {
        /// The path given.
        path: PathBuf,
    },
    /// A model that does not read 28×28 pictures.
    #[error(
        "{}: the model takes {features} features; pictures are 28×28 = 784",
        path.display()
    )]
    NotPictures {
        /// The checkpoint.
        path: PathBuf,
        /// Its feature count.
        features: usize,
    },
    /// A checkpoint that does not record a run to resume.
    #[error("{}: cannot resume from this checkpoint: {reason}", path.display())]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// An output path that cannot be written.
    #[error("{}: {reason}", path.display())]
    Output {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The huge-page copy of the data could not be made.
    #[error("cannot copy the training data into memory: {0}")]
    Memory(#[source] std::io::Error),
}

/// An error's message as the binaries print it: the library's field and value names
/// (`batch_size`, `allow_non_finite`, `ChecksumPolicy::Skip`) become the flags that set them
/// (`--batch-size`, `--allow-non-finite`, `--checksum skip`). Errors of other types print as
/// they display.
pub fn cli_message(e: &(dyn std::error::Error + 'static)) -> String {
    let train = |e: &TrainError| match e {
        TrainError::Config {
            field: "data",
            reason,
        } => format!("invalid configuration: the training data {reason}"),
        TrainError::Config { field, reason } => {
            format!(
                "invalid configuration: --{} {reason}",
                field.replace('_', "-")
            )
        }
        e => e
            .to_string()
            .replace("set allow_non_finite", "pass --allow-non-finite"),
    };
    let data = |e: &DataError| {
        e.to_string().replace(
            "ChecksumPolicy::Skip loads it anyway",
            "use --checksum skip to load it anyway",
        )
    };
    if let Some(e) = e.downcast_ref::<RunError>() {
        match e {
            RunError::Train(e) => train(e),
            RunError::Data(e) => data(e),
            e => e.to_string(),
        }
    } else if let Some(e) = e.downcast_ref::<TrainError>() {
        train(e)
    } else if let Some(e) = e.downcast_ref::<DataError>() {
        data(e)
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests;

/// The instruction set a binary runs: the one `--simd` names, or without the flag the one
/// `MNIST_LOGREG_SIMD` names (unset or empty: the widest). The variable's errors name the
/// variable, not a flag the user did not type.
pub fn select_isa(flag: Option<SimdChoice>) -> Result<Isa, SimdError> {
    match flag {
        Some(choice) => Isa::select(choice),
        None => Isa::from_env(),
    }
}
