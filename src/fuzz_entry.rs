//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test suite (corpus replay
//! and byte-mutation property tests): each feeds arbitrary bytes to one parser, which must
//! return an error or a result that satisfies its invariants — never panic, hang or allocate
//! beyond the header limits. An invariant violation panics: that is a bug to report.

use std::path::Path;

use crate::data::dataset::{ChecksumPolicy, Dataset};
use crate::data::idx::{IdxFile, IdxKind, LoadOptions, decompress_idx};
use crate::output::checkpoint;

/// The size limit the fuzz entries give to headers (16 MiB): enough for the small files a
/// fuzzer builds, small enough that a lying header cannot exhaust memory.
pub const FUZZ_MAX_BYTES: u64 = 1 << 24;

/// Check the invariants of a file that parsed.
fn check_idx(file: &IdxFile) {
    let h = file.header();
    assert_eq!(file.body().len(), h.count * h.item_len());
    assert_eq!(file.raw_bytes().len() as u64, h.file_len());
}

/// Bytes as a 28×28 IDX images file. Returns whether they parsed.
pub fn idx_images(data: &[u8]) -> bool {
    IdxFile::from_bytes(Path::new("fuzz"), data.to_vec(), IdxKind::MNIST_IMAGES)
        .map(|f| check_idx(&f))
        .is_ok()
}

/// Bytes as an IDX labels file. Returns whether they parsed.
pub fn idx_labels(data: &[u8]) -> bool {
    IdxFile::from_bytes(Path::new("fuzz"), data.to_vec(), IdxKind::Labels)
        .map(|f| check_idx(&f))
        .is_ok()
}

/// First byte: bit 0 chooses labels (1) or images (0); the rest is a gzip stream.
/// Returns whether it decompressed to a valid file.
pub fn gzip_idx(data: &[u8]) -> bool {
    let Some((&flags, gz)) = data.split_first() else {
        return false;
    };
    let kind = if flags & 1 == 1 {
        IdxKind::Labels
    } else {
        IdxKind::MNIST_IMAGES
    };
    let mut out = Vec::new();
    match decompress_idx(Path::new("fuzz.gz"), gz, kind, FUZZ_MAX_BYTES, &mut out) {
        Ok(n) => {
            assert_eq!(n, out.len() as u64);
            assert!(IdxFile::from_bytes(Path::new("fuzz"), out, kind).is_ok());
            true
        }
        Err(_) => false,
    }
}

/// A dataset directory from bytes: byte 0 says which of the four files are `.gz` (bits 0–3)
/// and whether their names use `.` (bit 4); three little-endian u16 lengths follow, then the
/// four files' bytes back to back (the last takes the rest). Returns whether it loaded.
pub fn dataset_dir(data: &[u8]) -> bool {
    if data.len() < 7 {
        return false;
    }
    let flags = data[0];
    let len = |i: usize| u16::from_le_bytes([data[1 + 2 * i], data[2 + 2 * i]]) as usize;
    let mut rest = &data[7..];
    let mut parts = Vec::new();
    for i in 0..3 {
        let n = len(i).min(rest.len());
        parts.push(&rest[..n]);
        rest = &rest[n..];
    }
    parts.push(rest);
    let Ok(dir) = ScratchDir::new() else {
        return false;
    };
    let sep = if flags & 16 != 0 { "." } else { "-" };
    let names = ["train-images", "train-labels", "t10k-images", "t10k-labels"];
    let suffixes = ["idx3-ubyte", "idx1-ubyte", "idx3-ubyte", "idx1-ubyte"];
    for (i, bytes) in parts.iter().enumerate() {
        let gz = if flags & (1 << i) != 0 { ".gz" } else { "" };
        let name = format!("{}{sep}{}{gz}", names[i], suffixes[i]);
        if std::fs::write(dir.path().join(name), bytes).is_err() {
            return false;
        }
    }
    let opts = LoadOptions {
        cache_dir: Some(dir.path().join("cache")),
        max_bytes: FUZZ_MAX_BYTES,
        ..LoadOptions::default()
    };
    match Dataset::open(dir.path(), &opts, ChecksumPolicy::Auto) {
        Ok(d) => {
            for split in [&d.train, &d.test] {
                check_idx(&split.images);
                check_idx(&split.labels);
                assert_eq!(split.images.count(), split.labels.count());
                assert!(
                    split
                        .labels()
                        .iter()
                        .all(|&l| (l as usize) < crate::mnist::MNIST_CLASSES)
                );
            }
            true
        }
        Err(_) => false,
    }
}

/// Bytes as a features file and as a labels file (`.npy` or IDX of any element type and
/// shape, sniffed from the first bytes). Returns whether either parsed.
pub fn npy(data: &[u8]) -> bool {
    use crate::compute::kernels::Pixels;
    use crate::data::samples::{FeatureFile, LabelFile};
    let path = Path::new("fuzz.npy");
    let features = match FeatureFile::from_bytes(path, data.to_vec()) {
        Ok(f) => {
            let n = f.len() * f.features();
            assert_eq!(f.pixels().len(), n);
            assert!(f.shape().len() >= 2 && f.features() > 0);
            if let Pixels::F32(x) = f.pixels() {
                assert!(x.iter().all(|v| v.is_finite()));
            }
            true
        }
        Err(_) => false,
    };
    let labels = match LabelFile::from_bytes(path, data) {
        Ok(l) => {
            assert!(l.label_end() <= crate::data::samples::MAX_CLASSES);
            true
        }
        Err(_) => false,
    };
    features || labels
}

/// Bytes as a safetensors checkpoint. Returns whether they loaded.
pub fn checkpoint(data: &[u8]) -> bool {
    match checkpoint::from_bytes(Path::new("fuzz.safetensors"), data) {
        Ok((model, _)) => {
            assert_eq!(model.w().len(), model.features() * model.classes());
            assert_eq!(model.b().len(), model.classes());
            assert!(model.first_non_finite().is_none());
            true
        }
        Err(_) => false,
    }
}

/// A fresh directory under the system temp directory, removed with its contents when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("mnist-logreg-fuzz-{}-{n}", std::process::id());
            let path = std::env::temp_dir().join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
