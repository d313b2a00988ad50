//! IDX files: locating them in a directory (raw or `.gz`, `-` or `.` in the name), decompressing
//! `.gz` once into a cache, memory-mapping the raw bytes, and validating every header field
//! before anything trusts it.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the format: [`IdxKind`], header parsing, [`IdxFile`] (mapped or read) |
//! | `locate.rs` | which file of a directory holds a stem (`locate`) |
//! | `cache.rs` | `.gz` decompressed once into a cache directory, written atomically, swept |
//!
//! IDX is big-endian: two zero bytes, an element-type byte (0x08 = u8), a dimension-count byte,
//! one u32 per dimension, then the elements in row-major order.
//!
//! ## Memory-mapping policy
//! A mapped file that another process truncates while we read it raises SIGBUS, which no
//! Rust code can turn into an error. The policy:
//! 1. the length is validated against the header *before* mapping, and again on the map;
//! 2. `.gz` data (the normal case, and what `data/mnist/` ships) is mapped only from cache
//!    entries this crate wrote itself: written to a temporary file, synced, renamed, and never
//!    modified in place afterwards (a changed `.gz` gets a new entry);
//! 3. raw files the user supplies are mapped as they are: if they may be rewritten while a
//!    run is in progress, use [`LoadOptions::mmap`]` = false` (`--no-mmap`), which reads the
//!    bytes into memory and is immune.

/// A reader of what the gzip stream `compressed` inflates to: every member, as `gzip -d`
/// reads a concatenation. The one decoder of the crate (the cache and the checksums use it).
pub(crate) fn gunzip<R: Read>(compressed: R) -> MultiGzDecoder<R> {
    MultiGzDecoder::new(compressed)
}

mod cache;
mod locate;

pub(crate) use cache::{decompress_cached, inflate_cached};
// Used by the tests and benches; what a user calls is `IdxFile::open` and `Dataset::open`.
#[doc(hidden)]
pub use cache::{cache_dir_for, decompress_idx};
#[doc(hidden)]
pub use locate::locate;

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use memmap2::Mmap;

use crate::data::error::DataError;
use crate::file_error::FileError;

/// The element type byte of u8 data, the only type MNIST uses.
pub(crate) const DTYPE_U8: u8 = 0x08;
/// The two leading bytes of a gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What an IDX file must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// A vector of u8 labels (`idx1`).
    Labels,
    /// A stack of u8 images of the given size (`idx3`).
    Images {
        /// Pixel rows per image.
        rows: u32,
        /// Pixel columns per image.
        cols: u32,
    },
}

impl IdxKind {
    /// MNIST's 28×28 images.
    pub const MNIST_IMAGES: IdxKind = IdxKind::Images { rows: 28, cols: 28 };

    /// Number of dimensions of the file.
    pub fn ndim(self) -> usize {
        match self {
            IdxKind::Labels => 1,
            IdxKind::Images { .. } => 3,
        }
    }

    fn what(self) -> &'static str {
        match self {
            IdxKind::Labels => "labels",
            IdxKind::Images { .. } => "images",
        }
    }

    /// Header length in bytes.
    pub fn header_len(self) -> usize {
        4 + 4 * self.ndim()
    }

    /// Bytes per item (1 for labels, rows·cols for images).
    pub fn item_len(self) -> usize {
        match self {
            IdxKind::Labels => 1,
            IdxKind::Images { rows, cols } => rows as usize * cols as usize,
        }
    }
}

/// A validated IDX header: what the file holds and how many items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdxHeader {
    /// What the file holds.
    pub(crate) kind: IdxKind,
    /// Number of items (images or labels).
    pub(crate) count: usize,
}

impl IdxHeader {
    /// Bytes per item (1 for labels, rows·cols for images).
    pub(crate) fn item_len(&self) -> usize {
        self.kind.item_len()
    }

    /// Total file length the header implies.
    pub(crate) fn file_len(&self) -> u64 {
        self.kind.header_len() as u64 + self.count as u64 * self.item_len() as u64
    }
}

/// How files are loaded.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Memory-map raw files (default) or read them into memory.
    pub mmap: bool,
    /// Where decompressed `.gz` files are cached; `None` = a `.mnist-logreg-cache` directory
    /// beside the data, or under the system temp directory when the data directory is read-only.
    pub cache_dir: Option<PathBuf>,
    /// Largest data size a header may claim, in bytes (guards against allocation bombs).
    pub max_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            mmap: true,
            cache_dir: None,
            max_bytes: 1 << 32,
        }
    }
}

/// Bytes as space-separated hex pairs (`1f 8b 08`), for error messages about magic bytes.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse and validate the header at the start of `bytes` (which may be just the header).
/// Checks the magic, element type, rank, image size and the size limit; not the file length.
pub(crate) fn parse_header(
    path: &Path,
    bytes: &[u8],
    kind: IdxKind,
    max_bytes: u64,
) -> Result<IdxHeader, DataError> {
    let bad = |reason: String| Err(DataError::format(path, reason));
    if bytes.starts_with(&GZIP_MAGIC) {
        return bad(
            "is gzip-compressed data but its name has no .gz suffix (rename it to .gz)".into(),
        );
    }
    let expected = kind.header_len();
    let too_short = || {
        let found = bytes.len();
        format!("{found} bytes is too short for an IDX header of {expected} bytes")
    };
    if bytes.len() < 4 {
        return bad(too_short());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return bad(format!(
            "bad IDX magic: expected 00 00 08 {:02x}, found {}",
            kind.ndim(),
            hex(&bytes[..4])
        ));
    }
    if bytes[2] != DTYPE_U8 {
        return bad(format!(
            "element type 0x{:02x} is not supported: expected 0x08 (u8)",
            bytes[2]
        ));
    }
    if bytes[3] as usize != kind.ndim() {
        return bad(format!(
            "{} dimensions, expected {} ({})",
            bytes[3],
            kind.ndim(),
            kind.what()
        ));
    }
    if bytes.len() < expected {
        return bad(too_short());
    }
    let dim = |i: usize| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap());
    if let IdxKind::Images { rows, cols } = kind {
        let (found_rows, found_cols) = (dim(1), dim(2));
        if (found_rows, found_cols) != (rows, cols) {
            return bad(format!(
                "images are {found_rows}×{found_cols} pixels, expected {rows}×{cols}"
            ));
        }
    }
    let header = IdxHeader {
        kind,
        count: dim(0) as usize,
    };
    let claimed = header.file_len();
    if claimed > max_bytes || usize::try_from(claimed).is_err() {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            claimed,
            limit: max_bytes,
        });
    }
    Ok(header)
}

/// Check that `len` is exactly the length the header implies.
fn check_len(path: &Path, header: &IdxHeader, len: u64) -> Result<(), DataError> {
    let expected = header.file_len();
    if len != expected {
        return Err(DataError::format(path, bad_length(len, expected)));
    }
    Ok(())
}

/// The message of a file of `found` bytes whose header says `expected` (IDX and `.npy` alike).
pub(crate) fn bad_length(found: u64, expected: u64) -> String {
    let fault = if found < expected {
        "truncated"
    } else {
        "trailing bytes"
    };
    format!("{found} bytes, but the header says {expected} bytes ({fault})")
}

/// The bytes of a raw IDX file: mapped or owned.
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// A validated IDX file: header checked, length exact.
pub struct IdxFile {
    path: PathBuf,
    /// The file the bytes come from (the decompressed cache copy for a `.gz`).
    bytes_path: PathBuf,
    header: IdxHeader,
    storage: Storage,
}

impl std::fmt::Debug for IdxFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdxFile")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("mapped", &matches!(self.storage, Storage::Mapped(_)))
            .finish()
    }
}

impl IdxFile {
    /// Validate raw IDX bytes already in memory (used by tests and fuzzers too).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>, kind: IdxKind) -> Result<Self, DataError> {
        let header = parse_header(path, &bytes, kind, LoadOptions::default().max_bytes)?;
        check_len(path, &header, bytes.len() as u64)?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes_path: path.to_path_buf(),
            header,
            storage: Storage::Owned(bytes),
        })
    }

    /// Open `path`: a raw IDX file, or a `.gz` one (decompressed once into the cache).
    pub fn open(path: &Path, kind: IdxKind, opts: &LoadOptions) -> Result<Self, DataError> {
        if path.extension().is_some_and(|e| e == "gz") {
            let raw = decompress_cached(path, kind, opts)?;
            let mut file = Self::open_raw(&raw, kind, opts)?;
            file.path = path.to_path_buf();
            Ok(file)
        } else {
            Self::open_raw(path, kind, opts)
        }
    }

    /// Open a raw (uncompressed) IDX file, mapped or read according to `opts`.
    pub fn open_raw(path: &Path, kind: IdxKind, opts: &LoadOptions) -> Result<Self, DataError> {
        let mut file = File::open(path).map_err(FileError::on(path, "cannot open"))?;
        let len = file
            .metadata()
            .map_err(FileError::on(path, "cannot stat"))?
            .len();
        let mut head = vec![0u8; kind.header_len().min(len as usize)];
        file.read_exact(&mut head)
            .map_err(FileError::on(path, "cannot read"))?;
        let header = parse_header(path, &head, kind, opts.max_bytes)?;
        check_len(path, &header, len)?;
        let storage = if opts.mmap {
            // SAFETY: the mapping is read-only and the length was checked against the header
            // just above. Another process truncating the file while it is mapped would raise
            // SIGBUS, and one writing to it would change bytes behind the `&[u8]` we hand out;
            // see the module docs for the policy (cache files are written once via rename and
            // never modified, and `mmap: false` avoids mapping entirely).
            let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
                .map_err(FileError::on(path, "cannot memory-map"))?;
            check_len(path, &header, map.len() as u64)?;
            Storage::Mapped(map)
        } else {
            let mut bytes = Vec::with_capacity(len as usize);
            file.rewind()
                .and_then(|()| file.read_to_end(&mut bytes))
                .map_err(FileError::on(path, "cannot read"))?;
            check_len(path, &header, bytes.len() as u64)?;
            Storage::Owned(bytes)
        };
        Ok(Self {
            path: path.to_path_buf(),
            bytes_path: path.to_path_buf(),
            header,
            storage,
        })
    }

    /// The file whose bytes [`IdxFile::raw_bytes`] holds: the path given, or for a `.gz` its
    /// decompressed copy in the cache.
    pub fn bytes_path(&self) -> &Path {
        &self.bytes_path
    }

    /// The file this was loaded from (the `.gz` for compressed files).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub(crate) fn header(&self) -> IdxHeader {
        self.header
    }

    /// What the file holds (labels, or images of their size), as its header says.
    pub fn kind(&self) -> IdxKind {
        self.header.kind
    }

    /// Number of items.
    pub fn count(&self) -> usize {
        self.header.count
    }

    /// All bytes of the raw file, header included (what the checksums cover).
    pub fn raw_bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }

    /// The elements after the header: `count · item_len` bytes.
    pub fn body(&self) -> &[u8] {
        &self.raw_bytes()[self.header.kind.header_len()..]
    }

    /// True when the bytes are memory-mapped.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }
}
