//! A dataset directory: the four IDX files of MNIST (or any dataset of the same shape), paired,
//! checked against each other and against the known MNIST checksums, and converted to `f32`.
//!
//! Hashing the four files and filling huge-page copies run on scoped threads (one per file, one
//! per core): one-off jobs of milliseconds, where a thread's start is noise. (rayon did this
//! until the library's dependencies were cut; it brought six crates for these two loops.)

use std::path::{Path, PathBuf};

// The buffer type of `aligned.rs`, public here, where `Split::to_f32` returns it.
pub use crate::data::aligned::AlignedF32;
#[doc(hidden)]
pub use crate::data::checksum::sha256_hex;
use crate::data::error::DataError;
use crate::data::idx::{IdxFile, IdxKind, LoadOptions, locate};
#[doc(hidden)]
pub use crate::data::pixels::pixels_to_f32;

/// SHA-256 of the decompressed MNIST files (the table in `docs/SEMANTICS.md`).
pub(crate) const MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// The first ten training labels of MNIST.
#[doc(hidden)]
pub const MNIST_FIRST_TRAIN_LABELS: [u32; 10] = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4];
/// The first ten test labels of MNIST.
#[doc(hidden)]
pub const MNIST_FIRST_TEST_LABELS: [u32; 10] = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9];

/// When to verify checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ChecksumPolicy {
    /// Verify when the data claims to be MNIST (its label files have MNIST's counts and first
    /// labels); other datasets of the same shape load unverified. A successful verification is
    /// recorded in the cache directory (`verified-sha256.txt`, keyed by each file's path, size
    /// and modification time), so later runs skip hashing until a file changes.
    #[default]
    Auto,
    /// Every file must match the MNIST checksum, hashed on every run.
    Require,
    /// Do not hash.
    Skip,
}

crate::names::named!(ChecksumPolicy, "checksum policy", [
    Auto => "auto",
    Require => "require",
    Skip => "skip",
]);

/// Images and labels of one split (train or test).
#[derive(Debug)]
pub struct Split {
    /// The images file (`count × rows × cols` u8 pixels).
    pub images: IdxFile,
    /// The labels file (`count` u8 labels).
    pub labels: IdxFile,
    /// The labels widened to `u32`, as the kernels read them (240 KB for MNIST's 60 000).
    classes: Vec<u32>,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.count()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features (pixels) per sample.
    pub fn features(&self) -> usize {
        self.images.header().item_len()
    }

    /// All pixels, sample-major, as stored in the file.
    pub fn pixels(&self) -> &[u8] {
        self.images.body()
    }

    /// The pixels of sample `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let f = self.features();
        &self.pixels()[i * f..(i + 1) * f]
    }

    /// All labels (the u8 labels of the file, widened to `u32` once at load).
    pub fn labels(&self) -> &[u32] {
        &self.classes
    }

    /// The pixels as `f32` in [0, 1] (`x / 255`, as the tutorial), in one pass into an
    /// aligned buffer of `len × features` values.
    pub fn to_f32(&self) -> AlignedF32 {
        let mut out = AlignedF32::zeros(self.pixels().len());
        pixels_to_f32(self.pixels(), &mut out);
        out
    }

    /// A copy of the pixels for training, in memory backed by huge pages (see
    /// [`Resident`]).
    pub fn resident_u8(&self) -> std::io::Result<Resident<u8>> {
        Resident::from_pixels(self.pixels(), |i, o| o.copy_from_slice(i))
    }

    /// The pixels as `f32` (as [`Split::to_f32`]) in memory backed by huge pages.
    pub fn resident_f32(&self) -> std::io::Result<Resident<f32>> {
        Resident::from_pixels(self.pixels(), pixels_to_f32)
    }
}

/// Bytes in a huge page (x86-64 Linux).
const HUGE_PAGE: usize = 2 << 20;

/// Pixel data in anonymous memory that asks the kernel for 2 MB pages (Linux transparent huge
/// pages with `madvise`; elsewhere, or when refused, ordinary pages).
///
/// Why: training reads 256 rows at random places per step. In the 4 KB pages of the mapped
/// file nearly every row costs a TLB miss, and a software prefetch that misses the TLB is
/// often dropped, so the next step's rows are not in cache when they are needed. Measured on a
/// 2-core AVX-512 Xeon, 1000 training steps: `fused_u8` 114 → 100 ms, `parallel_u8` 77 → 70 ms
/// (medians of 5), for a 47 MB copy at load (a few ms).
pub struct Resident<T> {
    map: memmap2::MmapMut,
    len: usize,
    _values: std::marker::PhantomData<T>,
}

impl<T: bytemuck::Pod> Resident<T> {
    /// `len` values written by `fill`.
    pub fn new(len: usize, fill: impl FnOnce(&mut [T])) -> std::io::Result<Self> {
        let bytes = (len * size_of::<T>()).max(1);
        let mut map = memmap2::MmapMut::map_anon(bytes)?;
        #[cfg(target_os = "linux")]
        {
            // Only advice: without transparent huge pages the copy works the same.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        fill(&mut bytemuck::cast_slice_mut(&mut map[..])[..len]);
        Ok(Self {
            map,
            len,
            _values: std::marker::PhantomData,
        })
    }

    /// One value per pixel, written by `convert` (pixels in, values out) in parallel 2 MB
    /// pieces: the page faults (the kernel zeroing huge pages) cost as much as the copy, and
    /// every core can take some.
    fn from_pixels(pixels: &[u8], convert: impl Fn(&[u8], &mut [T]) + Sync) -> std::io::Result<Self>
    where
        T: Send,
    {
        let piece = HUGE_PAGE / size_of::<T>();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Whole pieces per thread, so no two threads share a huge page.
        let share = pixels.len().div_ceil(piece).div_ceil(threads).max(1) * piece;
        Self::new(pixels.len(), |out| {
            std::thread::scope(|scope| {
                for (o, i) in out.chunks_mut(share).zip(pixels.chunks(share)) {
                    let convert = &convert;
                    scope.spawn(move || {
                        for (o, i) in o.chunks_mut(piece).zip(i.chunks(piece)) {
                            convert(i, o);
                        }
                    });
                }
            });
        })
    }

    /// The values.
    pub fn as_slice(&self) -> &[T] {
        // The mapping is page-aligned, so the cast cannot fail on alignment.
        &bytemuck::cast_slice(&self.map[..])[..self.len]
    }
}

impl<T: bytemuck::Pod> std::ops::Deref for Resident<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> std::fmt::Debug for Resident<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resident").field("len", &self.len).finish()
    }
}

/// A loaded dataset directory.
#[derive(Debug)]
pub struct Dataset {
    /// The directory.
    pub dir: PathBuf,
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
    /// True when all four files match the MNIST checksums; false for data that is not MNIST,
    /// and with [`ChecksumPolicy::Skip`] (loaded without a checksum).
    pub verified: bool,
}

fn open_split(
    dir: &Path,
    prefix: &str,
    kind: IdxKind,
    opts: &LoadOptions,
) -> Result<Split, DataError> {
    let images = IdxFile::open(
        &locate(dir, &format!("{prefix}-images"), "idx3-ubyte")?,
        kind,
        opts,
    )?;
    let labels = IdxFile::open(
        &locate(dir, &format!("{prefix}-labels"), "idx1-ubyte")?,
        IdxKind::Labels,
        opts,
    )?;
    let classes = labels.body().iter().map(|&l| u32::from(l)).collect();
    check_split(Split {
        images,
        labels,
        classes,
    })
}

/// Check that a split's files agree: equal counts, labels below [`MNIST_CLASSES`](crate::mnist::MNIST_CLASSES).
pub(crate) fn check_split(split: Split) -> Result<Split, DataError> {
    if split.images.count() != split.labels.count() {
        return Err(DataError::CountMismatch {
            features: split.images.path().to_path_buf(),
            n_features: split.images.count(),
            what: "images",
            labels: split.labels.path().to_path_buf(),
            n_labels: split.labels.count(),
        });
    }
    if let Some((index, &label)) = split
        .labels()
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= crate::mnist::MNIST_CLASSES)
    {
        return Err(DataError::BadLabel {
            path: split.labels.path().to_path_buf(),
            index,
            label: label.into(),
            classes: crate::mnist::MNIST_CLASSES,
        });
    }
    Ok(split)
}

impl Dataset {
    /// Load only the test split of `dir` (`t10k-images`, `t10k-labels`), checked for shape and
    /// labels but not against the checksums: enough to look at or classify test images.
    pub fn open_test(dir: &Path, opts: &LoadOptions) -> Result<Split, DataError> {
        open_split(dir, "t10k", IdxKind::MNIST_IMAGES, opts)
    }

    /// Load the four files of `dir` with MNIST's 28×28 images.
    ///
    /// ```
    /// use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
    ///
    /// // The copy of MNIST in this repository (a library user points at their own, or gets
    /// // one with the `fetch` feature).
    /// let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    /// let data = Dataset::open(&dir, &Default::default(), ChecksumPolicy::Auto)?;
    /// assert_eq!((data.train.len(), data.test.len(), data.train.features()), (60_000, 10_000, 784));
    /// assert!(data.verified); // MNIST's checksums
    /// assert_eq!(data.test.labels()[0], 7);
    /// # Ok::<(), mnist_logreg::DataError>(())
    /// ```
    pub fn open(dir: &Path, opts: &LoadOptions, policy: ChecksumPolicy) -> Result<Self, DataError> {
        let kind = IdxKind::MNIST_IMAGES;
        let train = open_split(dir, "train", kind, opts)?;
        let test = open_split(dir, "t10k", kind, opts)?;
        if train.is_empty() {
            return Err(DataError::NoSamples {
                path: train.images.path().to_path_buf(),
            });
        }
        let stamps = crate::data::idx::cache_dir_for(dir, opts).join(STAMP_FILE);
        let verified = verify(&train, &test, policy, &stamps)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            train,
            test,
            verified,
        })
    }
}

/// True when the label files have MNIST's counts and first labels.
fn claims_mnist(train: &Split, test: &Split) -> bool {
    train.len() == 60_000
        && test.len() == 10_000
        && train.labels().starts_with(&MNIST_FIRST_TRAIN_LABELS)
        && test.labels().starts_with(&MNIST_FIRST_TEST_LABELS)
}

fn verify(
    train: &Split,
    test: &Split,
    policy: ChecksumPolicy,
    stamps: &Path,
) -> Result<bool, DataError> {
    let must_match = match policy {
        ChecksumPolicy::Skip => return Ok(false),
        ChecksumPolicy::Require => true,
        ChecksumPolicy::Auto => claims_mnist(train, test),
    };
    if !must_match {
        return Ok(false);
    }
    let files = [&train.images, &train.labels, &test.images, &test.labels];
    let keys: Vec<Option<String>> = files.iter().map(|f| stamp_key(f.bytes_path())).collect();
    let recorded = std::fs::read_to_string(stamps).unwrap_or_default();
    let stamp_lines: Vec<Option<String>> = keys
        .iter()
        .zip(MNIST_SHA256)
        .map(|(key, (_, sha))| key.as_ref().map(|k| format!("{k}\t{sha}")))
        .collect();
    let all_recorded = stamp_lines
        .iter()
        .all(|l| l.as_ref().is_some_and(|l| recorded.lines().any(|r| r == l)));
    if policy == ChecksumPolicy::Auto && all_recorded {
        return Ok(true);
    }
    let hashes: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = files
            .iter()
            .map(|f| scope.spawn(|| sha256_hex(f.raw_bytes())))
            .collect();
        running
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for ((file, found), (name, expected)) in files.iter().zip(hashes).zip(MNIST_SHA256) {
        if found != expected {
            return Err(DataError::Checksum {
                path: file.path().to_path_buf(),
                name,
                expected,
                found,
            });
        }
    }
    if let Some(lines) = stamp_lines.into_iter().collect::<Option<Vec<String>>>() {
        // Best effort: a cache that cannot be written only means hashing again next time.
        let _ = write_stamps(stamps, &lines.join("\n"));
    }
    Ok(true)
}

/// The file in the cache directory that records verified checksums.
pub(crate) const STAMP_FILE: &str = "verified-sha256.txt";

/// What identifies a file's content for the checksum record: its canonical path, size and
/// modification time in nanoseconds (a rewritten file gets a new time, so it is hashed again).
fn stamp_key(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let path = path.canonicalize().ok()?;
    Some(format!("{}\t{}\t{mtime}", path.display(), meta.len()))
}

/// Replace the checksum record atomically (a temporary file renamed into place).
fn write_stamps(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    crate::temporaries::write_atomic(path, ".stamps-", format!("{contents}\n").as_bytes())
        .map_err(|e| e.source)
}
