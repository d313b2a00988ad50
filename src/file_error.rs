//! The one I/O error every module reports: which file, what we were doing, the OS error.

use std::io;
use std::path::{Path, PathBuf};

/// An I/O failure on a named file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {action}: {source}")]
pub struct FileError {
    /// The file (or directory).
    pub path: PathBuf,
    /// What we were doing, e.g. `cannot open`.
    pub action: &'static str,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// A `map_err` adapter: `File::open(p).map_err(FileError::on(p, "cannot open"))?`.
    pub fn on(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> FileError {
        let path = path.to_path_buf();
        move |source| FileError {
            path,
            action,
            source,
        }
    }
}
