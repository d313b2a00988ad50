//! Which file of a directory holds an IDX stem: raw or `.gz`, `-` or `.` before the suffix;
//! a miss names what was tried, and a folder-per-file layout is named as such.

use std::path::{Path, PathBuf};

use super::IdxError;

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
pub fn locate(dir: &Path, stem: &str, suffix: &str) -> Result<PathBuf, IdxError> {
    let problem = if !dir.exists() {
        Some("does not exist")
    } else if !dir.is_dir() {
        Some("is not a directory")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(IdxError::Directory {
            dir: dir.to_path_buf(),
            problem,
        });
    }
    let names = candidate_names(stem, suffix);
    if let Some(found) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
        return Ok(found);
    }
    // `train-images-idx3-ubyte/train-images-idx3-ubyte`: name the layout, not just the miss.
    for folder in names.iter().map(|n| dir.join(n)).filter(|p| p.is_dir()) {
        if let Some(inner) = names.iter().map(|n| folder.join(n)).find(|p| p.is_file()) {
            return Err(IdxError::Nested {
                dir: dir.to_path_buf(),
                stem: stem.to_string(),
                folder,
                inner,
            });
        }
    }
    Err(IdxError::Missing {
        dir: dir.to_path_buf(),
        stem: stem.to_string(),
        tried: names.join(", "),
    })
}
