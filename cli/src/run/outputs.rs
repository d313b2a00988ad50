//! Output paths, checked before any work so that a run never ends unable to save.

use std::path::Path;

use super::RunError;

/// Check, before any work, that `path` can be written as a file: its parent directory exists
/// and is writable, and `path` is not a directory. Nothing is left behind.
pub fn check_output_file(path: &Path) -> Result<(), RunError> {
    let fail = |reason: String| {
        Err(RunError::Output {
            path: path.to_path_buf(),
            reason,
        })
    };
    if path.is_dir() {
        return fail("is a directory; give a file name".into());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.exists() {
        return fail(format!("{} does not exist", parent.display()));
    }
    if !parent.is_dir() {
        return fail(format!("{} is not a directory", parent.display()));
    }
    try_write_in(parent).or_else(|e| fail(format!("cannot write in {}: {e}", parent.display())))
}

/// Create and delete a temporary file in `dir`; on failure, the operating system's words
/// (without the temporary file's name that `tempfile` adds to them).
fn try_write_in(dir: &Path) -> Result<(), String> {
    match tempfile::Builder::new()
        .prefix(".write-check-")
        .tempfile_in(dir)
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            Err(text.split(" at path ").next().unwrap_or(&text).to_string())
        }
    }
}

/// Check, before any work, that `dir` is a directory that can be written, creating it (and
/// its parents) when missing.
pub fn check_output_dir(dir: &Path) -> Result<(), RunError> {
    let fail = |reason: String| {
        Err(RunError::Output {
            path: dir.to_path_buf(),
            reason,
        })
    };
    if dir.exists() && !dir.is_dir() {
        return fail("is not a directory".into());
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(format!("cannot create the directory: {e}"));
    }
    try_write_in(dir).or_else(|e| fail(format!("cannot write in the directory: {e}")))
}
