//! Which file of a directory holds an IDX stem: raw or `.gz`, `-` or `.` before the suffix;
//! a miss names what was tried, and a folder-per-file layout is named as such.

use std::path::{Path, PathBuf};

use crate::data::error::DataError;

/// The accepted file names for `stem` (e.g. `train-images`) and `suffix` (e.g. `idx3-ubyte`),
/// in order of preference: raw with `-`, raw with `.`, then the `.gz` of each.
pub(crate) fn candidate_names(stem: &str, suffix: &str) -> [String; 4] {
    [
        format!("{stem}-{suffix}"),
        format!("{stem}.{suffix}"),
        format!("{stem}-{suffix}.gz"),
        format!("{stem}.{suffix}.gz"),
    ]
}

/// Find the file for `stem`/`suffix` in `dir` (raw with `-`, raw with `.`, then the `.gz` of each, in that order).
// Public for the integration tests only (hidden, like its re-export in `idx`).
#[doc(hidden)]
pub fn locate(dir: &Path, stem: &str, suffix: &str) -> Result<PathBuf, DataError> {
    let problem = if !dir.exists() {
        Some("does not exist")
    } else if !dir.is_dir() {
        Some("is not a directory")
    } else {
        None
    };
    let missing = |reason: String| DataError::Missing {
        dir: dir.to_path_buf(),
        reason,
    };
    if let Some(problem) = problem {
        return Err(missing(format!("the data directory {problem}")));
    }
    let names = candidate_names(stem, suffix);
    if let Some(found) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
        return Ok(found);
    }
    // `train-images-idx3-ubyte/train-images-idx3-ubyte`: name the layout, not just the miss.
    for folder in names.iter().map(|n| dir.join(n)).filter(|p| p.is_dir()) {
        if let Some(inner) = names.iter().map(|n| folder.join(n)).find(|p| p.is_file()) {
            return Err(missing(format!(
                "no {stem} file, but {} is a folder holding {}; some downloads unpack each file into a folder of its own name: move the files up into {}",
                folder.display(),
                inner.display(),
                dir.display()
            )));
        }
    }
    Err(missing(format!(
        "no {stem} file found (looked for {})",
        names.join(", ")
    )))
}
