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

/// A file created under a fresh name `prefix…` in a directory, removed when dropped unless
/// [`TempFile::persist`] renamed it over its target.
///
/// Our own rather than the `tempfile` crate's: it is the only thing the library used that crate
/// for, and that crate brought six more into every dependent's build (rustix, its syscall
/// tables, fastrand, getrandom, …). Names come from the process id, a per-process counter and
/// the clock; `create_new` makes a clash an error that is retried, never a shared file. The file
/// gets 0666 less the umask, like any other output.
pub(crate) struct TempFile {
    path: std::path::PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// Create `dir/prefix<unique>` (the directory must exist).
    pub(crate) fn new_in(dir: &Path, prefix: &str) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut attempt = 0;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}{}-{n}-{nanos:08x}", std::process::id());
            let path = dir.join(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        persisted: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The open file, to write to.
    pub(crate) fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// Rename the file over `target` (the caller synced it first where durability matters).
    pub(crate) fn persist(mut self, target: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, target)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Write `bytes` to `target` atomically: a locked temporary file `prefix…` beside it, synced,
/// renamed over it, and the directory synced where the platform allows. A crash leaves the old
/// file or the new one, never a torn one; a temporary file a killed writer left is swept by the
/// next write ([`remove_stale`]).
pub(crate) fn write_atomic(
    target: &Path,
    prefix: &str,
    bytes: &[u8],
) -> Result<(), crate::file_error::FileError> {
    use std::io::Write;
    let io = |action| crate::file_error::FileError::on(target, action);
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    remove_stale(dir, prefix);
    let mut tmp = TempFile::new_in(dir, prefix)
        .map_err(io("cannot create a temporary file in its directory"))?;
    // Held until the rename: a concurrent writer's sweep leaves the file alone.
    tmp.file()
        .lock()
        .map_err(io("cannot lock its temporary file"))?;
    tmp.file_mut()
        .write_all(bytes)
        .map_err(io("cannot write"))?;
    tmp.file().sync_all().map_err(io("cannot sync"))?;
    tmp.persist(target)
        .map_err(io("cannot rename into place"))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
