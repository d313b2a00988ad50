//! The decompression cache: a `.gz` IDX file is inflated once into a cache directory (keyed
//! by the source's path, size and modification time), through a locked temporary file that is
//! synced and renamed into place, so a mapped cache entry is never modified; temporaries of
//! killed runs are swept.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::data::error::DataError;
use crate::file_error::FileError;

use super::{DTYPE_U8, GZIP_MAGIC, IdxKind, LoadOptions, check_len, hex, parse_header};

/// Read at most `buf.len()` bytes, stopping early only at end of stream.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decompress a gzip stream holding an IDX file into `out`, validating the header before the
/// body is inflated and the exact length after: never writes more than the header claims (+1
/// byte to detect trailing data). Returns the number of bytes written.
// Public for the tests and benches only (hidden, like its re-export in `idx`).
#[doc(hidden)]
pub fn decompress_idx(
    path: &Path,
    compressed: impl Read,
    kind: IdxKind,
    max_bytes: u64,
    out: &mut (impl Write + ?Sized),
) -> Result<u64, DataError> {
    let gz_err = |source| DataError::Gzip {
        path: path.to_path_buf(),
        source,
    };
    let mut dec = super::gunzip(compressed);
    let mut head = vec![0u8; kind.header_len()];
    let n = read_up_to(&mut dec, &mut head).map_err(gz_err)?;
    let header = parse_header(path, &head[..n], kind, max_bytes)?;
    let expected = header.file_len();
    const WRITE: &str = "cannot write the decompressed data";
    out.write_all(&head).map_err(FileError::on(path, WRITE))?;
    let body_limit = expected - head.len() as u64 + 1;
    let mut body = dec.take(body_limit);
    let mut written = head.len() as u64;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = read_up_to(&mut body, &mut chunk).map_err(gz_err)?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > expected {
            break;
        }
        out.write_all(&chunk[..n])
            .map_err(FileError::on(path, WRITE))?;
    }
    check_len(path, &header, written)?;
    Ok(written)
}

/// The directory where decompressed copies of files in `data_dir` are cached.
// Public for the tests only (hidden, like its re-export in `idx`).
#[doc(hidden)]
pub fn cache_dir_for(data_dir: &Path, opts: &LoadOptions) -> PathBuf {
    if let Some(dir) = &opts.cache_dir {
        return dir.clone();
    }
    let beside = data_dir.join(".mnist-logreg-cache");
    if std::fs::create_dir_all(&beside).is_ok() && is_writable_dir(&beside) {
        return beside;
    }
    // Read-only data directory: a per-directory folder under the system temp directory.
    let canonical = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let key = fnv1a(canonical.to_string_lossy().as_bytes());
    std::env::temp_dir().join(format!("mnist-logreg-cache-{key:016x}"))
}

fn is_writable_dir(dir: &Path) -> bool {
    crate::temporaries::TempFile::new_in(dir, ".probe-").is_ok()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Name prefix of the cache's temporary files.
pub(crate) const PARTIAL_PREFIX: &str = ".partial-";

/// Decompress `gz`, an IDX file of `kind`, into the cache (once) and return the path of the
/// raw cached copy (see [`cached`]); its header is checked before the body is inflated.
pub(crate) fn decompress_cached(
    gz: &Path,
    kind: IdxKind,
    opts: &LoadOptions,
) -> Result<PathBuf, DataError> {
    let mut file = File::open(gz).map_err(FileError::on(gz, "cannot open"))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(FileError::on(gz, "cannot read"))?;
    if !magic[..n].starts_with(&GZIP_MAGIC) || n < 2 {
        let looks_raw = n >= 3 && magic[..3] == [0, 0, DTYPE_U8];
        let hint = if looks_raw {
            ": it looks like raw IDX data, remove the .gz suffix"
        } else {
            ""
        };
        return Err(DataError::format(
            gz,
            format!(
                "named .gz but is not gzip data (first bytes {}){hint}",
                hex(&magic[..n])
            ),
        ));
    }
    cached(gz, opts, |file, out| {
        decompress_idx(gz, io::BufReader::new(file), kind, opts.max_bytes, out).map(|_| ())
    })
}

/// Inflate the gzip file `gz` (any content, every member, at most `opts.max_bytes`) into the
/// cache (once) and return the path of the cached copy (see [`cached`]).
pub(crate) fn inflate_cached(gz: &Path, opts: &LoadOptions) -> Result<PathBuf, DataError> {
    cached(gz, opts, |file, out| {
        let gz_err = |source| DataError::Gzip {
            path: gz.to_path_buf(),
            source,
        };
        let mut body =
            super::gunzip(io::BufReader::new(file)).take(opts.max_bytes.saturating_add(1));
        let written = io::copy(&mut body, out).map_err(gz_err)?;
        if written > opts.max_bytes {
            return Err(DataError::TooLarge {
                path: gz.to_path_buf(),
                claimed: written,
                limit: opts.max_bytes,
            });
        }
        if written == 0 {
            return Err(DataError::format(gz, "the file is empty"));
        }
        Ok(())
    })
}

/// The cache entry of `gz`, written by `inflate(the .gz file, the entry's writer)` when it is
/// missing.
///
/// The cache entry's name carries the `.gz`'s length and modification time, so a changed `.gz`
/// gets a fresh entry; entries are written to a temporary file, synced, then renamed, so a
/// crash never leaves a half-written entry under the final name (nor does an `inflate`
/// error: the temporary file is removed). The temporary file is locked (`flock`) while it is
/// written; one left behind by a killed run is removed by the next run that reads this
/// cache, whether it finds its entry or not (see `crate::temporaries`).
fn cached(
    gz: &Path,
    opts: &LoadOptions,
    inflate: impl FnOnce(File, &mut dyn Write) -> Result<(), DataError>,
) -> Result<PathBuf, DataError> {
    let file = File::open(gz).map_err(FileError::on(gz, "cannot open"))?;
    let meta = file.metadata().map_err(FileError::on(gz, "cannot stat"))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let data_dir = gz.parent().unwrap_or(Path::new("."));
    let dir = cache_dir_for(data_dir, opts);
    let raw_name = gz.file_stem().unwrap_or_default().to_string_lossy();
    let cached = dir.join(format!("{raw_name}.{}-{mtime}", meta.len()));
    // Before the look-up: a run that finds its entry sweeps what a killed one left as well.
    crate::temporaries::remove_stale(&dir, PARTIAL_PREFIX);
    if cached.is_file() {
        return Ok(cached);
    }
    std::fs::create_dir_all(&dir)
        .map_err(FileError::on(&dir, "cannot create the cache directory"))?;
    let mut tmp = crate::temporaries::TempFile::new_in(&dir, PARTIAL_PREFIX).map_err(
        FileError::on(&dir, "cannot create a file in the cache directory"),
    )?;
    // Held until the entry is renamed into place (or the file is deleted on an error): a
    // concurrent run's sweep sees the lock and leaves the file alone.
    tmp.file().lock().map_err(FileError::on(
        &dir,
        "cannot lock a file in the cache directory",
    ))?;
    {
        let mut out = io::BufWriter::new(tmp.file_mut());
        inflate(file, &mut out)?;
        out.flush()
            .map_err(FileError::on(&cached, "cannot write"))?;
    }
    tmp.file()
        .sync_all()
        .map_err(FileError::on(&cached, "cannot sync"))?;
    tmp.persist(&cached)
        .map_err(FileError::on(&cached, "cannot rename into place"))?;
    // Older entries for the same file are stale now.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let prefix = format!("{raw_name}.");
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && entry.path() != cached {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(cached)
}
