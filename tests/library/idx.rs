//! Every fault an IDX file or a dataset directory can have gives a `DataError` whose message
//! names the file and what was expected vs found. Files are tiny and generated here.

use crate::common;

use common::*;
use mnist_logreg::DataError;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::idx::{IdxFile, IdxKind, LoadOptions, decompress_idx, locate};
use std::path::{Path, PathBuf};

const IMG: IdxKind = IdxKind::MNIST_IMAGES;

fn err_of(bytes: Vec<u8>, kind: IdxKind) -> DataError {
    IdxFile::from_bytes(Path::new("f.idx"), bytes, kind).unwrap_err()
}

fn msg(e: &impl std::fmt::Display) -> String {
    let m = e.to_string();
    println!("{m}");
    m
}

#[test]
fn valid_files_parse() {
    let f = IdxFile::from_bytes(Path::new("l"), labels_idx(&[1, 2, 3]), IdxKind::Labels).unwrap();
    assert_eq!((f.count(), f.body()), (3, &[1u8, 2, 3][..]));
    let f = IdxFile::from_bytes(Path::new("i"), images_idx(2, 28, 28), IMG).unwrap();
    assert_eq!((f.count(), f.body().len()), (2, 2 * 784));
}

#[test]
fn bad_magic() {
    let mut b = labels_idx(&[1]);
    b[0] = 7;
    let e = err_of(b, IdxKind::Labels);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("f.idx: bad IDX magic: expected 00 00 08 01, found 07 00 08 01"));
}

#[test]
fn bad_element_type() {
    let mut b = labels_idx(&[1]);
    b[2] = 0x0d; // float
    let e = err_of(b, IdxKind::Labels);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("element type 0x0d is not supported: expected 0x08 (u8)"));
}

#[test]
fn bad_rank() {
    let e = err_of(labels_idx(&[1]), IMG);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("1 dimensions, expected 3 (images)"));
}

#[test]
fn bad_image_size() {
    let e = err_of(images_idx(1, 32, 32), IMG);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("images are 32×32 pixels, expected 28×28"));
}

#[test]
fn truncated_and_trailing() {
    let mut b = images_idx(3, 28, 28);
    b.pop();
    let e = err_of(b, IMG);
    assert!(msg(&e).contains("2367 bytes, but the header says 2368 bytes (truncated)"));
    let mut b = labels_idx(&[1, 2]);
    b.push(0);
    let e = err_of(b, IdxKind::Labels);
    assert!(msg(&e).contains("11 bytes, but the header says 10 bytes (trailing bytes)"));
}

#[test]
fn too_short_for_header() {
    let e = err_of(vec![0, 0, 8, 3, 0, 0], IMG);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("6 bytes is too short for an IDX header of 16 bytes"));
    let e = err_of(vec![], IMG);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("0 bytes is too short for an IDX header of 16 bytes"));
}

#[test]
fn huge_header_is_refused_before_allocating() {
    // 4e9 images of 65536×65536 would be 1.7e19 bytes: refused from the header alone.
    let mut b = vec![0, 0, 8, 3];
    for d in [4_000_000_000u32, 65536, 65536] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let kind = IdxKind::Images {
        rows: 65536,
        cols: 65536,
    };
    let e = err_of(b.clone(), kind);
    assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
    assert!(msg(&e).contains("over the limit"));
    // Same through the gzip path: nothing past the header is inflated.
    let e = decompress_idx(
        Path::new("x.gz"),
        &gzip(&b)[..],
        kind,
        1 << 32,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::TooLarge { .. }));
}

#[test]
fn gzip_where_raw_expected() {
    let e = err_of(gzip(&labels_idx(&[1])), IdxKind::Labels);
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains("is gzip-compressed data but its name has no .gz suffix"));
}

#[test]
fn raw_where_gzip_expected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x-labels-idx1-ubyte.gz", &labels_idx(&[1]));
    let e = IdxFile::open(&p, IdxKind::Labels, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }));
    assert!(msg(&e).contains(
        "named .gz but is not gzip data (first bytes 00 00 08 01): it looks like raw IDX data"
    ));
}

#[test]
fn corrupt_and_truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let mut z = gzip(&images_idx(20, 28, 28));
    let len = z.len();
    z[len - 6] ^= 0xff; // inside the CRC/size trailer
    let p = write(dir.path(), "a-images-idx3-ubyte.gz", &z);
    let e = IdxFile::open(&p, IMG, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert!(msg(&e).contains("corrupt gzip stream"));

    let z = gzip(&images_idx(20, 28, 28));
    let p = write(dir.path(), "b-images-idx3-ubyte.gz", &z[..z.len() / 2]);
    let e = IdxFile::open(&p, IMG, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, DataError::Gzip { .. } | DataError::Format { .. }),
        "{e}"
    );
    // Decompressed data with trailing bytes.
    let mut raw = labels_idx(&[1, 2]);
    raw.extend([9, 9]);
    let p = write(dir.path(), "c-labels-idx1-ubyte.gz", &gzip(&raw));
    let e = IdxFile::open(&p, IdxKind::Labels, &LoadOptions::default()).unwrap_err();
    assert!(msg(&e).contains("(trailing bytes)"), "{e}");
}

#[test]
fn locate_accepts_dash_dot_and_gz_names() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-images.idx3-ubyte",
        "train-images-idx3-ubyte.gz",
        "train-images.idx3-ubyte.gz",
    ] {
        let p = write(dir.path(), name, b"");
        assert_eq!(locate(dir.path(), "train-images", "idx3-ubyte").unwrap(), p);
        std::fs::remove_file(p).unwrap();
    }
    let e = locate(dir.path(), "train-images", "idx3-ubyte").unwrap_err();
    assert!(msg(&e).contains("no train-images file found (looked for train-images-idx3-ubyte, train-images.idx3-ubyte, train-images-idx3-ubyte.gz, train-images.idx3-ubyte.gz)"));
}

/// A gzipped label file (3, 1, 4) in `dir`, and options caching its decompressed copy in
/// `cache`.
fn gz_labels_with_cache(dir: &Path, cache: &Path) -> (PathBuf, LoadOptions) {
    let p = write(
        dir,
        "t-labels-idx1-ubyte.gz",
        &gzip(&labels_idx(&[3, 1, 4])),
    );
    let opts = LoadOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    };
    (p, opts)
}

#[test]
fn gz_is_decompressed_once_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (p, opts) = gz_labels_with_cache(dir.path(), cache.path());
    let f = IdxFile::open(&p, IdxKind::Labels, &opts).unwrap();
    assert!(f.is_mapped());
    assert_eq!(f.body(), &[3, 1, 4]);
    assert_eq!(f.path(), p);
    let entries = || std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(entries(), 1);
    // A second open hits the cache (same single entry); no-mmap reads it into memory.
    let f = IdxFile::open(
        &p,
        IdxKind::Labels,
        &LoadOptions {
            mmap: false,
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(!f.is_mapped());
    assert_eq!(f.body(), &[3, 1, 4]);
    assert_eq!(entries(), 1);
    // Replacing the .gz (other length) makes a fresh entry and removes the stale one.
    write(
        dir.path(),
        "t-labels-idx1-ubyte.gz",
        &gzip(&labels_idx(&[2, 7, 1, 8])),
    );
    let f = IdxFile::open(&p, IdxKind::Labels, &opts).unwrap();
    assert_eq!(f.body(), &[2, 7, 1, 8]);
    assert_eq!(entries(), 1);
}

#[test]
fn dataset_loads_raw_and_gz_unverified() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        tiny_dataset(dir.path(), 30, 10, gz);
        let d = Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Auto).unwrap();
        assert_eq!(
            (d.train.len(), d.test.len(), d.train.features()),
            (30, 10, 784)
        );
        assert!(!d.verified);
        assert_eq!(&d.train.labels()[..3], &[0, 1, 2]);
    }
}

#[test]
fn dataset_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path(), 30, 10, false);
    write(dir.path(), "train-labels-idx1-ubyte", &labels_idx(&[1; 29]));
    let e = Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Auto).unwrap_err();
    assert!(matches!(
        e,
        DataError::CountMismatch {
            n_features: 30,
            what: "images",
            n_labels: 29,
            ..
        }
    ));
    assert!(msg(&e).contains("holds 30 images but"));
}

#[test]
fn dataset_label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path(), 30, 10, false);
    let mut labels = vec![1u8; 10];
    labels[4] = 10;
    write(dir.path(), "t10k-labels-idx1-ubyte", &labels_idx(&labels));
    let e = Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Auto).unwrap_err();
    assert!(matches!(
        e,
        DataError::BadLabel {
            index: 4,
            label: 10,
            ..
        }
    ));
    assert!(
        msg(&e).contains(
            "t10k-labels-idx1-ubyte: label 10 at index 4 is out of range: expected 0..10"
        )
    );
}

#[test]
fn dataset_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path(), 30, 10, false);
    std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
    let e = Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Auto).unwrap_err();
    assert!(msg(&e).contains("no t10k-images file found"));
}

#[test]
fn dataset_in_a_folder_per_file_is_named() {
    // As some downloads unpack: train-images-idx3-ubyte/train-images-idx3-ubyte, and so on.
    let dir = tempfile::tempdir().unwrap();
    let flat = tempfile::tempdir().unwrap();
    tiny_dataset(flat.path(), 30, 10, false);
    for entry in std::fs::read_dir(flat.path()).unwrap() {
        let name = entry.unwrap().file_name();
        std::fs::create_dir(dir.path().join(&name)).unwrap();
        std::fs::copy(flat.path().join(&name), dir.path().join(&name).join(&name)).unwrap();
    }
    let e = Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Auto).unwrap_err();
    let m = msg(&e);
    assert!(m.contains("is a folder holding"), "{m}");
    assert!(m.contains("move the files up into"), "{m}");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let e = Dataset::open(&file, &LoadOptions::default(), ChecksumPolicy::Auto).unwrap_err();
    assert!(
        msg(&e).contains("the data directory is not a directory"),
        "{}",
        msg(&e)
    );
}

#[test]
fn require_checksum_rejects_non_mnist() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path(), 30, 10, false);
    let e =
        Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Require).unwrap_err();
    assert!(matches!(
        e,
        DataError::Checksum {
            name: "train-images",
            ..
        }
    ));
    assert!(msg(&e).contains("expected ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db (the MNIST train-images file)"));
}

#[test]
fn file_claiming_mnist_with_wrong_bytes_fails_checksum() {
    // Real MNIST labels and test files, but train images with one flipped pixel.
    let dir = tempfile::tempdir().unwrap();
    let mnist = Dataset::open(&mnist_dir(), &LoadOptions::default(), ChecksumPolicy::Skip).unwrap();
    let mut images = mnist.train.images.raw_bytes().to_vec();
    images[1000] ^= 1;
    write(dir.path(), "train-images-idx3-ubyte", &images);
    for (name, f) in [
        ("train-labels-idx1-ubyte", &mnist.train.labels),
        ("t10k-images-idx3-ubyte", &mnist.test.images),
        ("t10k-labels-idx1-ubyte", &mnist.test.labels),
    ] {
        write(dir.path(), name, f.raw_bytes());
    }
    let e = Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Auto).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Checksum {
                name: "train-images",
                ..
            }
        ),
        "{e}"
    );
    assert!(msg(&e).contains("train-images-idx3-ubyte: SHA-256 of the decompressed bytes is"));
    // Skipping the check loads it.
    Dataset::open(dir.path(), &LoadOptions::default(), ChecksumPolicy::Skip).unwrap();
}

#[test]
fn partial_files_of_killed_runs_are_removed_but_not_those_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (p, opts) = gz_labels_with_cache(dir.path(), cache.path());
    let partial = |name: &str, old: bool| temporary_file(cache.path(), name, old);
    drop(partial(".partial-killed", true));
    // A run still writing holds the lock (and keeps writing, so its file is fresh anyway).
    let writing = partial(".partial-writing", true);
    writing.lock().unwrap();
    drop(partial(".partial-fresh", false));
    let partials = || {
        let mut left: Vec<String> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".partial-"))
            .collect();
        left.sort();
        left
    };
    IdxFile::open(&p, IdxKind::Labels, &opts).unwrap();
    assert_eq!(partials(), [".partial-fresh", ".partial-writing"]);
    // A run that finds its cached entry sweeps too: a run killed after this one's
    // decompression left its file, and the next run only reads the cache.
    drop(partial(".partial-killed-later", true));
    IdxFile::open(&p, IdxKind::Labels, &opts).unwrap();
    assert_eq!(partials(), [".partial-fresh", ".partial-writing"]);
    drop(writing);
}
