//! The one error of reading data. The IDX reader (`idx`), the dataset directory (`dataset`) and
//! your own features and labels (`samples`) fail in the same ways — a file that is missing,
//! unreadable, malformed, too large or corrupt, values that cannot be used, files that disagree
//! — so they report them with one type, and a caller handles one.

use std::io;
use std::path::PathBuf;

use crate::data::samples::MAX_CLASSES;
use crate::file_error::FileError;

/// Everything that can be wrong with data: one IDX file, a features or labels file of your
/// own, a dataset directory, or a set of files that disagree. Every variant names the file or
/// directory, and the message says what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened, read, mapped or written.
    #[error(transparent)]
    Io(#[from] FileError),
    /// No file of the name looked for in the directory, or no such directory.
    #[error("{dir}: {reason}")]
    Missing {
        /// The directory searched.
        dir: PathBuf,
        /// What was looked for and where (the names tried; a folder-per-file layout).
        reason: String,
    },
    /// The bytes are not a file of the kind expected: a header that cannot be read (magic,
    /// `.npy` dict, too short), an element type or shape the file cannot have in its role, a
    /// length other than its header says, gzip data under a raw name or raw data under a `.gz`
    /// one.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with what was expected and what was found.
        reason: String,
    },
    /// More data claimed than `LoadOptions::max_bytes` allows, or than memory can address.
    #[error("{path}: header claims {claimed} bytes of data, over the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes claimed (saturated at `u64::MAX`).
        claimed: u64,
        /// The limit.
        limit: u64,
    },
    /// A gzip stream that does not inflate (bad deflate data, CRC mismatch, truncated stream).
    #[error("{path}: corrupt gzip stream: {source}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        source: io::Error,
    },
    /// A NaN or infinite feature value.
    #[error(
        "{path}: feature {column} of row {row} is {value:e}: features must be finite float32 values"
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The sample (0-based).
        row: usize,
        /// The feature within it (0-based, flattened).
        column: usize,
        /// The value.
        value: f64,
    },
    /// A negative label.
    #[error("{path}: label {label} at index {index} is negative: labels are class indices 0, 1, …")]
    NegativeLabel {
        /// The labels file.
        path: PathBuf,
        /// Index of the first negative label.
        index: usize,
        /// The label.
        label: i64,
    },
    /// A label not below the class count.
    #[error("{path}: label {label} at index {index} is out of range: expected 0..{classes}")]
    BadLabel {
        /// The labels file.
        path: PathBuf,
        /// Index of the first bad label.
        index: usize,
        /// The label.
        label: u64,
        /// The class count.
        classes: usize,
    },
    /// A features (or images) file and its labels disagree on the sample count.
    #[error("{features} holds {n_features} {what} but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The features or images file.
        features: PathBuf,
        /// Its sample count.
        n_features: usize,
        /// What it holds: `images` (a dataset directory's IDX images) or `samples`.
        what: &'static str,
        /// The labels file.
        labels: PathBuf,
        /// Its label count.
        n_labels: usize,
    },
    /// Training and test features of different lengths.
    #[error("{train} has {train_features} features per sample but {test} has {test_features}")]
    FeatureMismatch {
        /// The training features file.
        train: PathBuf,
        /// Its feature count.
        train_features: usize,
        /// The test features file.
        test: PathBuf,
        /// Its feature count.
        test_features: usize,
    },
    /// A class count below 2 or above [`MAX_CLASSES`](crate::samples::MAX_CLASSES).
    #[error("{classes} classes: the class count must be between 2 and {MAX_CLASSES}")]
    BadClassCount {
        /// The class count given or found.
        classes: usize,
    },
    /// A training set without samples.
    #[error("{path}: the training set has no samples")]
    NoSamples {
        /// The training features (or images) file.
        path: PathBuf,
    },
    /// A file that claims to be MNIST has the wrong content.
    #[error(
        "{path}: SHA-256 of the decompressed bytes is {found}, expected {expected} (the MNIST {name} file); the file is corrupt or not MNIST (ChecksumPolicy::Skip loads it anyway)"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Which MNIST file it should be.
        name: &'static str,
        /// The known checksum.
        expected: &'static str,
        /// The checksum computed.
        found: String,
    },
}

impl DataError {
    /// A [`DataError::Format`] of `path`.
    pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
