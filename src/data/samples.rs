//! Your own data: a features file and a labels file of any shape and class count, in IDX
//! (every element type, any number of dimensions, raw or `.gz`) or NumPy `.npy` (versions
//! 1–3), told apart by their first bytes, not their names.
//!
//! | file | accepted |
//! | --- | --- |
//! | features, IDX | `[n, …]` (2 or more dimensions, each item flattened row-major) of u8 (0x08), i8 (0x09), i16 (0x0B), i32 (0x0C), f32 (0x0D), f64 (0x0E) |
//! | features, `.npy` | `[n, …]` (2 or more dimensions, C order) of `uint8`, `float32` or `float64`, either byte order |
//! | labels, IDX | 1-D of u8, i8, i16 or i32 |
//! | labels, `.npy` | 1-D of any integer type |
//!
//! u8 features are pixels, read as `p / 255` by the kernels (the tutorial's scale); every other
//! type is converted to `f32` and used as given. What is read in place and what is copied:
//! - u8 features (IDX or `.npy`) and little-endian `float32` `.npy` are memory-mapped and read
//!   in place (`LoadOptions::mmap`, the default): a 1 GB `float32` matrix costs its 1 GB of
//!   page cache and nothing more;
//! - every other type is converted into an aligned `f32` buffer once at load. IDX is
//!   big-endian by definition, so an IDX `f32` file is always converted (its size again in
//!   memory); write a `.npy` for large float data;
//! - a `.gz` file is decompressed once (at most `LoadOptions::max_bytes`) into the cache of
//!   [`crate::idx`] (`.mnist-logreg-cache` beside it, or under the temp directory when that
//!   is read-only) and read from there like a raw file;
//! - labels are converted to `u32` (4 bytes a sample).
//!
//! Every check names the file, and the row, column or label where it applies: the counts of
//! the two files, labels that are negative or not below the class count, NaN or infinite
//! features, a file shorter or longer than its header says, dtypes that cannot be features or
//! labels (object, string, bool, …), 1-D features, Fortran order, an empty file, and train and
//! test sets with different feature counts ([`open_train_test`]).
//!
//! The mapping policy of [`crate::idx`] holds here too: a mapped file that another process
//! truncates raises SIGBUS; use `mmap: false` for files that may change during a run.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::compute::kernels::Pixels;
use crate::compute::train::TrainData;
use crate::data::aligned::AlignedF32;
use crate::data::error::DataError;
use crate::data::idx::{GZIP_MAGIC, LoadOptions, bad_length};
use crate::data::npy::{self, NpyHeader};
use crate::file_error::FileError;

/// The largest class count: labels travel through the kernels as `f32` lanes, exact up to
/// 2^24.
pub const MAX_CLASSES: usize = 1 << 24;

/// How a file was written: which format its first bytes say (its [`FeatureFile::dtype`]
/// names the type in that format's spelling: `u8`, `f32` for IDX, `|u1`, `<f4` for `.npy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// IDX (`00 00 type ndim`, big-endian dimensions and elements).
    Idx,
    /// NumPy `.npy` (`\x93NUMPY`).
    Npy,
}

/// The bytes of a file: mapped, or in memory.
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// Where the feature values are.
enum Values {
    /// u8 pixels at `offset` of `bytes`, read in place.
    U8 { bytes: Bytes, offset: usize },
    /// Little-endian `f32` at `offset` of `bytes`, 4-byte aligned there (checked at load).
    F32InPlace { bytes: Bytes, offset: usize },
    /// Converted to `f32` at load.
    F32(AlignedF32),
}

/// A validated features file: `len()` samples of `features()` values.
pub struct FeatureFile {
    path: PathBuf,
    format: Format,
    dtype: String,
    shape: Vec<usize>,
    features: usize,
    values: Values,
}

impl std::fmt::Debug for FeatureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("in_place", &self.is_in_place())
            .finish()
    }
}

/// Bytes as space-separated hex pairs, for messages about magic bytes.
fn hex(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(8)];
    shown
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message of an element type `dtype` that a file cannot hold as `role`.
fn bad_dtype(dtype: &str, role: &str, expected: &str) -> String {
    format!("element type {dtype} cannot be {role}: expected {expected}")
}

/// The message of a shape with the wrong number of dimensions for `role`.
fn bad_rank(shape: &[usize], role: &str, expected: &str) -> String {
    format!(
        "shape {shape:?} has {} dimension(s): {role} need {expected}",
        shape.len()
    )
}

/// Read or map `path`; a gzip file is inflated into the cache first (at most `opts.max_bytes`).
fn load_bytes(path: &Path, opts: &LoadOptions) -> Result<Bytes, DataError> {
    let mut file = File::open(path).map_err(FileError::on(path, "cannot open"))?;
    let len = file
        .metadata()
        .map_err(FileError::on(path, "cannot stat"))?
        .len();
    if len == 0 {
        return Err(DataError::format(path, "the file is empty"));
    }
    let mut magic = [0u8; 2];
    let gz = len >= 2 && {
        file.read_exact(&mut magic)
            .map_err(FileError::on(path, "cannot read"))?;
        magic == GZIP_MAGIC
    };
    // A gzip file is inflated once into the cache (the `--data` path's, beside the file) and
    // read from there like a raw file: a run on the same `.gz` skips the inflate (MNIST's
    // four files: 0.07–0.08 s for `train --solver lbfgs --max-iter 1`, the run that fills the
    // cache 0.22–0.29 s, the build before that inflated into memory 0.17–0.19 s; docs/cli.md).
    let entry;
    let (path, file) = if gz {
        entry = crate::data::idx::inflate_cached(path, opts)?;
        let file = File::open(&entry).map_err(FileError::on(&entry, "cannot open"))?;
        (entry.as_path(), file)
    } else {
        (path, file)
    };
    if opts.mmap {
        // SAFETY: a read-only mapping, every access bounded by the mapping's own length
        // (checked against the header after mapping), of a cache entry this crate wrote,
        // renamed into place and never modifies, or of a file the user named: there a
        // concurrent truncation by another process would raise SIGBUS and a concurrent write
        // would change bytes behind the slices we hand out; the module docs state the
        // policy, and `mmap: false` reads the file instead.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }
            .map_err(FileError::on(path, "cannot memory-map"))?;
        Ok(Bytes::Mapped(map))
    } else {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(FileError::on(path, "cannot read"))?;
        Ok(Bytes::Owned(bytes))
    }
}

/// The element types of IDX: (type byte, name, size in bytes).
const IDX_TYPES: [(u8, &str, usize); 6] = [
    (0x08, "u8", 1),
    (0x09, "i8", 1),
    (0x0B, "i16", 2),
    (0x0C, "i32", 4),
    (0x0D, "f32", 4),
    (0x0E, "f64", 8),
];

/// An element type understood by the converters: a scalar kind, its size and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    U(usize),
    I(usize),
    F(usize),
}

/// A parsed header of either format: the element type, shape, data offset, byte order.
struct Header {
    format: Format,
    elem: Option<Elem>,
    /// `descr` or the IDX type name, for messages.
    dtype: String,
    little: bool,
    shape: Vec<usize>,
    offset: usize,
    fortran: bool,
}

/// The header of an `.npy` file (`bytes` start with its magic).
fn npy_header(bytes: &[u8]) -> Result<Header, String> {
    let NpyHeader {
        dtype,
        fortran_order,
        shape,
        data_offset,
    } = npy::parse(bytes)?;
    let elem = match (dtype.kind, dtype.size) {
        ('u', 1 | 2 | 4 | 8) => Some(Elem::U(dtype.size)),
        ('i', 1 | 2 | 4 | 8) => Some(Elem::I(dtype.size)),
        ('f', 4 | 8) => Some(Elem::F(dtype.size)),
        _ => None,
    };
    Ok(Header {
        format: Format::Npy,
        elem,
        little: dtype.is_little(),
        dtype: dtype.descr,
        shape,
        offset: data_offset,
        fortran: fortran_order,
    })
}

/// The header of an IDX file (`bytes` start with two zero bytes); an unknown element type is
/// `elem: None`.
fn idx_header(bytes: &[u8]) -> Result<Header, String> {
    let (ty, ndim) = (bytes[2], bytes[3] as usize);
    let offset = 4 + 4 * ndim;
    let Some(dims) = bytes.get(4..offset) else {
        return Err(format!(
            "{} bytes is too short for an IDX header of {offset} bytes",
            bytes.len()
        ));
    };
    let shape = dims
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let known = IDX_TYPES.iter().find(|t| t.0 == ty);
    let elem = known.map(|&(t, _, size)| match t {
        0x08 => Elem::U(1),
        0x0D | 0x0E => Elem::F(size),
        _ => Elem::I(size),
    });
    Ok(Header {
        format: Format::Idx,
        elem,
        dtype: known.map_or_else(|| format!("0x{ty:02x}"), |t| t.1.to_string()),
        little: false,
        shape,
        offset,
        fortran: false,
    })
}

/// The file's length `found` must be what the header claims, and the claim within `limit`.
fn check_length(path: &Path, header: &Header, found: u64, limit: u64) -> Result<(), DataError> {
    // The body's length, checked before any element is read.
    let size = match header.elem {
        Some(Elem::U(s) | Elem::I(s) | Elem::F(s)) => s,
        None => 0,
    };
    let claimed = header
        .shape
        .iter()
        .try_fold(size as u64, |n, &d| n.checked_mul(d as u64))
        .and_then(|n| n.checked_add(header.offset as u64));
    match claimed {
        Some(c) if c <= limit && usize::try_from(c).is_ok() => {
            if header.elem.is_some() && found != c {
                return Err(DataError::format(path, bad_length(found, c)));
            }
        }
        _ => {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                claimed: claimed.unwrap_or(u64::MAX),
                limit,
            });
        }
    }
    Ok(())
}

fn parse_any(path: &Path, bytes: &[u8], limit: u64) -> Result<Header, DataError> {
    let bad = |reason: String| DataError::format(path, reason);
    let header = if bytes.starts_with(npy::MAGIC) {
        npy_header(bytes).map_err(bad)?
    } else if bytes.len() >= 4 && bytes[0] == 0 && bytes[1] == 0 {
        idx_header(bytes).map_err(bad)?
    } else {
        return Err(bad(format!(
            "not an IDX or .npy file (first bytes {})",
            hex(bytes)
        )));
    };
    if header.elem.is_none() && header.format == Format::Idx {
        return Err(bad(format!(
            "IDX element type {} is not one of 0x08 (u8), 0x09 (i8), 0x0B (i16), 0x0C (i32), 0x0D (f32), 0x0E (f64)",
            header.dtype
        )));
    }
    if header.fortran {
        return Err(bad(
            "the array is in Fortran order; save it in C order (numpy.ascontiguousarray) and try again".into(),
        ));
    }
    check_length(path, &header, bytes.len() as u64, limit)?;
    Ok(header)
}

/// Element `i` of the body as `f64` (the body's length was checked against the shape).
fn element(body: &[u8], elem: Elem, little: bool, i: usize) -> f64 {
    macro_rules! read {
        ($t:ty, $n:expr) => {{
            let b: [u8; $n] = body[i * $n..(i + 1) * $n].try_into().unwrap_or([0; $n]);
            (if little {
                <$t>::from_le_bytes(b)
            } else {
                <$t>::from_be_bytes(b)
            }) as f64
        }};
    }
    match elem {
        Elem::U(1) => body[i] as f64,
        Elem::U(2) => read!(u16, 2),
        Elem::U(4) => read!(u32, 4),
        Elem::U(_) => read!(u64, 8),
        Elem::I(1) => body[i] as i8 as f64,
        Elem::I(2) => read!(i16, 2),
        Elem::I(4) => read!(i32, 4),
        Elem::I(_) => read!(i64, 8),
        Elem::F(4) => read!(f32, 4),
        Elem::F(_) => read!(f64, 8),
    }
}

impl FeatureFile {
    /// Open a features file (IDX or `.npy`, raw or `.gz`; the format is read from its first
    /// bytes).
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Self, DataError> {
        Self::from_loaded(path, load_bytes(path, opts)?, opts.max_bytes)
    }

    /// Validate a features file already in memory (tests and fuzzers).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, DataError> {
        Self::from_loaded(path, Bytes::Owned(bytes), LoadOptions::default().max_bytes)
    }

    fn from_loaded(path: &Path, bytes: Bytes, limit: u64) -> Result<Self, DataError> {
        let h = parse_any(path, &bytes, limit)?;
        let bad_dtype = || {
            DataError::format(
                path,
                bad_dtype(
                    &h.dtype,
                    "features",
                    "uint8, float32 or float64 (.npy); u8, i8, i16, i32, f32 or f64 (IDX)",
                ),
            )
        };
        let elem = h.elem.ok_or_else(bad_dtype)?;
        if h.format == Format::Npy && matches!(elem, Elem::I(_) | Elem::U(2 | 4 | 8)) {
            return Err(bad_dtype());
        }
        if h.shape.len() < 2 {
            return Err(DataError::format(
                path,
                bad_rank(&h.shape, "features", "2 or more ([samples, features…])"),
            ));
        }
        let features = h.shape[1..].iter().product::<usize>();
        if features == 0 {
            return Err(DataError::format(
                path,
                format!("shape {:?} leaves no features per sample", h.shape),
            ));
        }
        let n = h.shape[0];
        let count = n * features;
        let offset = h.offset;
        let values = match elem {
            Elem::U(1) => Values::U8 { bytes, offset },
            // In place: little-endian data on a little-endian host, 4-byte aligned in the
            // mapping (a `.npy` body starts at a multiple of 16 or 64; a damaged header may
            // not, and is then copied).
            Elem::F(4)
                if h.little
                    && cfg!(target_endian = "little")
                    && bytemuck::try_cast_slice::<u8, f32>(&bytes[offset..]).is_ok() =>
            {
                Values::F32InPlace { bytes, offset }
            }
            _ => {
                let body = &bytes[offset..];
                let mut out = AlignedF32::zeros(count);
                for (i, o) in out.iter_mut().enumerate() {
                    let v = element(body, elem, h.little, i);
                    *o = v as f32;
                    if !o.is_finite() {
                        return Err(non_finite(path, i, features, v));
                    }
                }
                Values::F32(out)
            }
        };
        let file = FeatureFile {
            path: path.to_path_buf(),
            format: h.format,
            dtype: h.dtype,
            shape: h.shape,
            features,
            values,
        };
        if let (Values::F32InPlace { .. }, Pixels::F32(x)) = (&file.values, file.pixels())
            && let Some(i) = x.iter().position(|v| !v.is_finite())
        {
            return Err(non_finite(path, i, features, x[i] as f64));
        }
        Ok(file)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The element type as the file names it (`<f4`, `|u1`, `f32`, `u8`, …).
    pub fn dtype(&self) -> &str {
        &self.dtype
    }

    /// The shape as the file gives it (`[samples, …]`).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// True when the file holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per sample (the product of the dimensions after the first).
    pub fn features(&self) -> usize {
        self.features
    }

    /// True for u8 features, which the kernels read as `p / 255`; false for features
    /// converted to or stored as `f32`, used as given.
    pub fn is_u8(&self) -> bool {
        matches!(self.values, Values::U8 { .. })
    }

    /// True when the values are read in place from the file's bytes (mapped or read), without
    /// a conversion.
    pub fn is_in_place(&self) -> bool {
        !matches!(self.values, Values::F32(_))
    }

    /// All values, sample-major, as the kernels read them.
    pub fn pixels(&self) -> Pixels<'_> {
        let n = self.len() * self.features;
        match &self.values {
            Values::U8 { bytes, offset } => Pixels::U8(&bytes[*offset..*offset + n]),
            // Alignment and length were checked when the file was opened (`try_cast_slice`,
            // and the body's length against the shape), and the bytes have not moved since.
            Values::F32InPlace { bytes, offset } => {
                Pixels::F32(&bytemuck::cast_slice(&bytes[*offset..])[..n])
            }
            Values::F32(v) => Pixels::F32(v),
        }
    }
}

/// The error for value `i` (flattened) of a file of `features` values per sample.
fn non_finite(path: &Path, i: usize, features: usize, value: f64) -> DataError {
    DataError::NonFinite {
        path: path.to_path_buf(),
        row: i / features,
        column: i % features,
        value,
    }
}

/// A validated labels file: one class index per sample.
#[derive(Clone, Debug)]
pub struct LabelFile {
    path: PathBuf,
    labels: Vec<u32>,
}

impl LabelFile {
    /// Open a labels file (IDX or `.npy`, raw or `.gz`).
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Self, DataError> {
        Self::from_loaded(path, &load_bytes(path, opts)?, opts.max_bytes)
    }

    /// Validate a labels file already in memory (tests and fuzzers).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, DataError> {
        Self::from_loaded(path, bytes, LoadOptions::default().max_bytes)
    }

    fn from_loaded(path: &Path, bytes: &[u8], limit: u64) -> Result<Self, DataError> {
        let h = parse_any(path, bytes, limit)?;
        let elem = match (h.format, h.elem) {
            (Format::Npy, Some(e @ (Elem::U(_) | Elem::I(_)))) => e,
            (Format::Idx, Some(e @ (Elem::U(1) | Elem::I(_)))) => e,
            _ => {
                return Err(DataError::format(
                    path,
                    bad_dtype(
                        &h.dtype,
                        "labels",
                        "an integer type (.npy); u8, i8, i16 or i32 (IDX)",
                    ),
                ));
            }
        };
        if h.shape.len() != 1 {
            return Err(DataError::format(path, bad_rank(&h.shape, "labels", "1")));
        }
        let body = &bytes[h.offset..];
        let mut labels = Vec::with_capacity(h.shape[0]);
        for index in 0..h.shape[0] {
            // Integers of up to 8 bytes: read exactly, not through f64.
            let size = match elem {
                Elem::U(s) | Elem::I(s) | Elem::F(s) => s,
            };
            let raw = &body[index * size..(index + 1) * size];
            let mut b = [0u8; 8];
            if h.little {
                b[..size].copy_from_slice(raw);
            } else {
                for (d, s) in b[..size].iter_mut().zip(raw.iter().rev()) {
                    *d = *s;
                }
            }
            let unsigned = u64::from_le_bytes(b);
            let value: i128 = match elem {
                Elem::I(s) => {
                    // Sign-extend from `s` bytes.
                    let shift = 64 - 8 * s as u32;
                    (((unsigned << shift) as i64) >> shift) as i128
                }
                _ => unsigned as i128,
            };
            if value < 0 {
                return Err(DataError::NegativeLabel {
                    path: path.to_path_buf(),
                    index,
                    label: value as i64,
                });
            }
            if value >= MAX_CLASSES as i128 {
                return Err(DataError::BadLabel {
                    path: path.to_path_buf(),
                    index,
                    label: value as u64,
                    classes: MAX_CLASSES,
                });
            }
            labels.push(value as u32);
        }
        Ok(Self {
            path: path.to_path_buf(),
            labels,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// One past the largest label (0 when there are none).
    pub fn label_end(&self) -> usize {
        self.labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// Check every label is below `classes`.
    pub fn check_classes(&self, classes: usize) -> Result<(), DataError> {
        match self.labels.iter().position(|&l| l as usize >= classes) {
            Some(index) => Err(DataError::BadLabel {
                path: self.path.clone(),
                index,
                label: self.labels[index] as u64,
                classes,
            }),
            None => Ok(()),
        }
    }
}

/// A features file and its labels, checked against each other.
#[derive(Debug)]
pub struct Samples {
    /// The features.
    pub features: FeatureFile,
    /// The labels.
    pub labels: LabelFile,
}

impl Samples {
    /// Open and pair `features` and `labels`: the counts must agree.
    pub fn open(features: &Path, labels: &Path, opts: &LoadOptions) -> Result<Self, DataError> {
        Self::pair(
            FeatureFile::open(features, opts)?,
            LabelFile::open(labels, opts)?,
        )
    }

    /// Pair two files already opened: the counts must agree.
    pub fn pair(features: FeatureFile, labels: LabelFile) -> Result<Self, DataError> {
        if features.len() != labels.len() {
            return Err(DataError::CountMismatch {
                features: features.path().to_path_buf(),
                n_features: features.len(),
                what: "samples",
                labels: labels.path().to_path_buf(),
                n_labels: labels.len(),
            });
        }
        Ok(Self { features, labels })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples as the training loop and `train::evaluate` read them, in place.
    pub fn train_data(&self) -> TrainData<'_> {
        TrainData {
            pixels: self.features.pixels(),
            labels: self.labels.labels(),
            features: self.features.features(),
        }
    }
}

/// A training and a test set of the same feature count, and their class count.
#[derive(Debug)]
pub struct TrainTest {
    /// The training set.
    pub train: Samples,
    /// The test set.
    pub test: Samples,
    /// The class count: given, or one past the largest label of either set.
    pub classes: usize,
}

impl TrainTest {
    /// Classes no training sample has (the model can only learn to never predict them).
    pub fn classes_without_training_samples(&self) -> Vec<usize> {
        let mut seen = vec![false; self.classes];
        for &l in self.train.labels.labels() {
            seen[l as usize] = true;
        }
        (0..self.classes).filter(|&c| !seen[c]).collect()
    }
}

/// Open a training set and a test set: `[train features, train labels, test features, test
/// labels]`. The class count is `classes`, or when `None` one past the largest label of either
/// set; every label must be below it, it must be at least 2, and both sets must have the same
/// feature count and u8-ness is free to differ (each is read as its type says).
pub fn open_train_test(
    paths: [&Path; 4],
    classes: Option<usize>,
    opts: &LoadOptions,
) -> Result<TrainTest, DataError> {
    // The test files on a second thread: MNIST's four gzip files took 104 ms one after the
    // other, 98 ms so (medians of 9 interleaved `train` runs, Zen 4, 2026-12-07). The train
    // set's error comes first, as when they were read in a row.
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| Samples::open(paths[2], paths[3], opts));
        let train = Samples::open(paths[0], paths[1], opts);
        let test = test.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (train, test)
    });
    let (train, test) = (train?, test?);
    if train.is_empty() {
        return Err(DataError::NoSamples {
            path: paths[0].to_path_buf(),
        });
    }
    if train.features.features() != test.features.features() {
        return Err(DataError::FeatureMismatch {
            train: paths[0].to_path_buf(),
            train_features: train.features.features(),
            test: paths[2].to_path_buf(),
            test_features: test.features.features(),
        });
    }
    let classes = classes.unwrap_or_else(|| train.labels.label_end().max(test.labels.label_end()));
    if !(2..=MAX_CLASSES).contains(&classes) {
        return Err(DataError::BadClassCount { classes });
    }
    train.labels.check_classes(classes)?;
    test.labels.check_classes(classes)?;
    Ok(TrainTest {
        train,
        test,
        classes,
    })
}
