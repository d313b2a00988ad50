//! Temporary files beside their final names, and the sweep that removes those a killed
//! process left behind.
//!
//! Both the decompressed-data cache (`.partial-*`) and checkpoints (`.checkpoint-*`) write
//! to a temporary file in the target's directory, sync it, and rename it over the target, so
//! a crash never leaves a half-written file under the final name. A process killed before the
//! rename (kill -9, an OOM kill, a reboot) leaves the temporary file instead. The writer holds
//! an advisory lock (`flock`) on it from just after creating it; the next run that touches the
//! directory removes every file of that prefix that nobody holds locked and that was last
//! written more than [`STALE_AGE`] ago (the age covers the instant between creating a file and
//! locking it).

use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// Unlocked temporary files older than this belong to a process that was killed.
pub(crate) const STALE_AGE: Duration = Duration::from_secs(10);

/// Remove the temporary files named `prefix…` in `dir` that a killed process left: unlocked
/// and older than [`STALE_AGE`]. Best effort: errors are ignored (a missing directory holds
/// nothing to sweep).
pub(crate) fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AGE);
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if old && file.try_lock().is_ok() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
