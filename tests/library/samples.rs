//! Your own data (`samples`): IDX of every element type and shape, `.npy` of versions 1–3
//! written by the test itself, format sniffing, in-place reading, and one clear error per
//! kind of bad input.

use crate::common;

use std::path::{Path, PathBuf};

use common::{gzip, write};
use mnist_logreg::DataError;
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{KernelKind, Pixels};
use mnist_logreg::model::Model;
use mnist_logreg::samples::{FeatureFile, LabelFile, Samples, open_train_test};
use mnist_logreg::train::{self, TrainConfig};

/// An IDX file: type byte, dimensions, big-endian elements already encoded.
fn idx(ty: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(body);
    v
}

/// A `.npy` file as numpy writes it (header padded to a multiple of 64, ending in `\n`).
fn npy(version: u8, descr: &str, shape: &[usize], fortran: bool, body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let pre = if version == 1 { 10 } else { 12 };
    while !(pre + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut v = b"\x93NUMPY".to_vec();
    v.extend([version, 0]);
    if version == 1 {
        v.extend((dict.len() as u16).to_le_bytes());
    } else {
        v.extend((dict.len() as u32).to_le_bytes());
    }
    v.extend(dict.as_bytes());
    v.extend(body);
    v
}

fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn be<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

fn f32s(f: &FeatureFile) -> Vec<f32> {
    match f.pixels() {
        Pixels::F32(x) => x.to_vec(),
        Pixels::U8(_) => panic!("{}: expected f32 features", f.path().display()),
    }
}

fn open_features(dir: &Path, name: &str, bytes: &[u8]) -> Result<FeatureFile, DataError> {
    FeatureFile::open(&write(dir, name, bytes), &LoadOptions::default())
}

fn open_labels(dir: &Path, name: &str, bytes: &[u8]) -> Result<LabelFile, DataError> {
    LabelFile::open(&write(dir, name, bytes), &LoadOptions::default())
}

const VALUES: [f32; 6] = [0.0, 1.5, -2.0, 3.0, 100.0, -7.0];

#[test]
fn idx_features_of_every_element_type_and_rank() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // u8, 4 dimensions: read in place as pixels.
    let f = open_features(
        d,
        "u8",
        &idx(0x08, &[2, 2, 2, 2], &(0..16).collect::<Vec<u8>>()),
    )
    .unwrap();
    // Read as IDX: the type in IDX's spelling (`.npy` would say `|u1`).
    assert_eq!(
        (f.len(), f.features(), f.dtype(), f.is_u8()),
        (2, 8, "u8", true)
    );
    assert!(f.is_in_place());
    match f.pixels() {
        Pixels::U8(p) => assert_eq!(p[9], 9),
        Pixels::F32(_) => panic!("u8 features read as f32"),
    }
    // Every other type: converted to f32, values as given, 2-D and 3-D.
    let ints = [0i32, 1, -2, 3, 100, -7];
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (0x09, ints.iter().map(|&v| v as i8 as u8).collect()),
        (0x0B, be(&ints.map(|v| v as i16), i16::to_be_bytes)),
        (0x0C, be(&ints, i32::to_be_bytes)),
        (0x0D, be(&ints.map(|v| v as f32), f32::to_be_bytes)),
        (0x0E, be(&ints.map(|v| v as f64), f64::to_be_bytes)),
    ];
    for (ty, body) in cases {
        let f = open_features(d, &format!("t{ty}"), &idx(ty, &[2, 3], &body)).unwrap();
        assert_eq!(
            (f.len(), f.features(), f.is_u8(), f.is_in_place()),
            (2, 3, false, false)
        );
        assert_eq!(f32s(&f), ints.map(|v| v as f32), "type 0x{ty:02x}");
        let f = open_features(d, &format!("t3d{ty}"), &idx(ty, &[1, 3, 2], &body)).unwrap();
        assert_eq!((f.len(), f.features()), (1, 6));
    }
    // The same f32 file gzip-compressed, under a name that says nothing.
    let raw = idx(0x0D, &[3, 2], &be(&VALUES, f32::to_be_bytes));
    let f = open_features(d, "features.bin", &gzip(&raw)).unwrap();
    assert_eq!(f32s(&f), VALUES);
}

#[test]
fn a_gz_file_is_inflated_once_into_the_cache_and_read_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    let opts = LoadOptions {
        cache_dir: Some(cache.clone()),
        ..LoadOptions::default()
    };
    let entries = || -> Vec<PathBuf> {
        let mut e: Vec<PathBuf> = std::fs::read_dir(&cache)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        e.sort();
        e
    };
    // u8 pixels from a `.gz`: one cache entry holding the inflated bytes, mapped in place.
    let raw = idx(0x08, &[3, 2], &[1, 2, 3, 4, 5, 6]);
    let gz = write(d, "x.idx.gz", &gzip(&raw));
    let f = FeatureFile::open(&gz, &opts).unwrap();
    assert!(f.is_in_place(), "u8 features mapped from the cache entry");
    let first = entries();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(std::fs::read(&first[0]).unwrap(), raw);
    // A second open reads the same entry (none added) and gets the same values.
    let again = FeatureFile::open(&gz, &opts).unwrap();
    assert_eq!((again.len(), again.features()), (3, 2));
    match again.pixels() {
        Pixels::U8(p) => assert_eq!(p, [1, 2, 3, 4, 5, 6]),
        Pixels::F32(_) => panic!("u8 features read as f32"),
    }
    assert_eq!(entries(), first);
    // Without mapping: read from the entry into memory, the same values.
    let owned = FeatureFile::open(
        &gz,
        &LoadOptions {
            mmap: false,
            ..opts.clone()
        },
    )
    .unwrap();
    match owned.pixels() {
        Pixels::U8(p) => assert_eq!(p, [1, 2, 3, 4, 5, 6]),
        Pixels::F32(_) => panic!("u8 features read as f32"),
    }
    // A changed `.gz` (another length) gets a fresh entry, which replaces the stale one.
    let raw2 = idx(0x08, &[4, 2], &[9; 8]);
    std::fs::write(&gz, gzip(&raw2)).unwrap();
    let f = FeatureFile::open(&gz, &opts).unwrap();
    assert_eq!(f.len(), 4);
    let now = entries();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(std::fs::read(&now[0]).unwrap(), raw2);
    // Inflating past `max_bytes` is refused and leaves no entry behind; labels too.
    let big = write(d, "big.gz", &gzip(&idx(0x08, &[100, 10], &[7; 1000])));
    let small = LoadOptions {
        max_bytes: 500,
        ..opts.clone()
    };
    let err = FeatureFile::open(&big, &small).unwrap_err().to_string();
    assert!(err.contains("big.gz"), "{err}");
    assert_eq!(entries(), now);
    let labels = write(d, "y.gz", &gzip(&idx(0x08, &[3], &[0, 1, 1])));
    assert_eq!(LabelFile::open(&labels, &opts).unwrap().labels(), [0, 1, 1]);
    assert_eq!(entries().len(), 2);
}

#[test]
fn npy_features_of_every_version_mapped_in_place_when_little_endian_f32() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for version in [1, 2, 3] {
        let f = open_features(
            d,
            "x.npy",
            &npy(version, "<f4", &[3, 2], false, &le_f32(&VALUES)),
        )
        .unwrap();
        assert_eq!((f.dtype(), f.len(), f.features()), ("<f4", 3, 2));
        assert!(f.is_in_place(), "little-endian f32 must be read in place");
        assert_eq!(f32s(&f), VALUES);
    }
    // Read without mapping: the same values.
    let p = write(d, "y.npy", &npy(1, "<f4", &[3, 2], false, &le_f32(&VALUES)));
    let opts = LoadOptions {
        mmap: false,
        ..LoadOptions::default()
    };
    assert_eq!(f32s(&FeatureFile::open(&p, &opts).unwrap()), VALUES);
    // Big-endian f32 and f64 of either order: converted.
    let big = be(&VALUES, f32::to_be_bytes);
    let f = open_features(d, "be.npy", &npy(1, ">f4", &[2, 3], false, &big)).unwrap();
    assert!(!f.is_in_place());
    assert_eq!(f32s(&f), VALUES);
    let f64s = VALUES.map(f64::from);
    let f = open_features(
        d,
        "f8.npy",
        &npy(1, "<f8", &[2, 1, 3], false, &be(&f64s, f64::to_le_bytes)),
    )
    .unwrap();
    assert_eq!((f.features(), f32s(&f)), (3, VALUES.to_vec()));
    // uint8: pixels, in place.
    let f = open_features(d, "u1.npy", &npy(1, "|u1", &[2, 2], false, &[0, 255, 3, 4])).unwrap();
    assert!(f.is_u8() && f.is_in_place());
}

#[test]
fn labels_of_every_integer_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let want = [0u32, 7, 300, 65_535];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "i16.idx",
            idx(0x0B, &[4], &be(&[0i16, 7, 300, -1], i16::to_be_bytes)),
        ),
        (
            "i32.idx",
            idx(0x0C, &[4], &be(&[0i32, 7, 300, 65_535], i32::to_be_bytes)),
        ),
        (
            "u2.npy",
            npy(
                1,
                "<u2",
                &[4],
                false,
                &be(&[0u16, 7, 300, 65_535], u16::to_le_bytes),
            ),
        ),
        (
            "i8.npy",
            npy(
                2,
                "<i8",
                &[4],
                false,
                &be(&[0i64, 7, 300, 65_535], i64::to_le_bytes),
            ),
        ),
        (
            "bi4.npy",
            npy(
                3,
                ">i4",
                &[4],
                false,
                &be(&[0i32, 7, 300, 65_535], i32::to_be_bytes),
            ),
        ),
    ];
    for (name, bytes) in cases {
        let got = open_labels(d, name, &bytes);
        if name == "i16.idx" {
            // -1 as i16: negative, named with its index.
            let e = got.unwrap_err().to_string();
            assert!(e.contains("label -1 at index 3 is negative"), "{e}");
        } else {
            assert_eq!(got.unwrap().labels(), want, "{name}");
        }
    }
    let l = open_labels(d, "u8.idx", &idx(0x08, &[3], &[2, 0, 1])).unwrap();
    assert_eq!((l.labels(), l.label_end()), (&[2, 0, 1][..], 3));
}

fn message(r: Result<impl std::fmt::Debug, DataError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn bad_input_gets_one_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = le_f32(&VALUES);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.npy", vec![], "empty.npy: the file is empty"),
        (
            "object.npy",
            npy(1, "|O", &[3, 2], false, &[0; 48]),
            "element type |O cannot be features",
        ),
        (
            "string.npy",
            npy(1, "<U3", &[3, 2], false, &[0; 72]),
            "element type <U3 cannot be features",
        ),
        (
            "flat.npy",
            npy(1, "<f4", &[6], false, &x),
            "has 1 dimension(s): features need 2 or more",
        ),
        (
            "short.npy",
            npy(1, "<f4", &[4, 2], false, &x),
            "but the header says 160 bytes (truncated)",
        ),
        (
            "long.npy",
            npy(1, "<f4", &[2, 2], false, &x),
            "(trailing bytes)",
        ),
        (
            "fortran.npy",
            npy(1, "<f4", &[3, 2], true, &x),
            "Fortran order",
        ),
        (
            "zero.npy",
            npy(1, "<f4", &[3, 0], false, &[]),
            "leaves no features",
        ),
        ("short.idx", idx(0x0D, &[4, 2], &x), "(truncated)"),
        ("text.csv", b"1,2,3\n".to_vec(), "not an IDX or .npy file"),
        (
            "badtype.idx",
            idx(0x07, &[1, 1], &[0]),
            "IDX element type 0x07",
        ),
        (
            "bomb.npy",
            npy(1, "<f4", &[1 << 40, 1 << 20], false, &x),
            "over the limit",
        ),
    ];
    for (name, bytes, want) in cases {
        let e = message(open_features(d, name, &bytes));
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let mut v = VALUES;
        v[3] = value;
        let e = message(open_features(
            d,
            "nan.npy",
            &npy(1, "<f4", &[3, 2], false, &le_f32(&v)),
        ));
        assert!(
            e.contains(&format!("nan.npy: feature 1 of row 1 is {shown}")),
            "{e}"
        );
        let big = npy(
            1,
            ">f8",
            &[3, 2],
            false,
            &be(&v.map(f64::from), f64::to_be_bytes),
        );
        let e = message(open_features(d, "nan8.npy", &big));
        assert!(e.contains("feature 1 of row 1"), "{e}");
    }
    // An f64 beyond f32's range cannot be a feature either.
    let e = message(open_features(
        d,
        "huge.npy",
        &npy(1, "<f8", &[1, 1], false, &1e300f64.to_le_bytes()),
    ));
    assert!(e.contains("feature 0 of row 0 is 1e300"), "{e}");
    // Labels: float or 2-D labels, negative ones.
    let e = message(open_labels(d, "fl.npy", &npy(1, "<f4", &[6], false, &x)));
    assert!(
        e.contains("fl.npy: element type <f4 cannot be labels"),
        "{e}"
    );
    let e = message(open_labels(
        d,
        "l2.npy",
        &npy(1, "|u1", &[2, 2], false, &[0; 4]),
    ));
    assert!(e.contains("labels need 1"), "{e}");
    let neg = npy(1, "<i2", &[3], false, &be(&[1i16, -5, 2], i16::to_le_bytes));
    let e = message(open_labels(d, "neg.npy", &neg));
    assert!(
        e.contains("neg.npy: label -5 at index 1 is negative"),
        "{e}"
    );
}

/// The four files of a small problem in `dir`: `n` training and `m` test samples of `d`
/// features in `k` classes, written as `.npy`; returns their paths.
fn write_problem(dir: &Path, n: usize, m: usize, d: usize, k: usize) -> [PathBuf; 4] {
    let sample = |i: usize| -> (Vec<f32>, i64) {
        let class = i % k;
        let x = (0..d)
            .map(|j| if j % k == class { 1.0 } else { 0.0 } + ((i * 31 + j * 7) % 13) as f32 * 0.01)
            .collect();
        (x, class as i64)
    };
    let mut paths = Vec::new();
    for (name, count, start) in [("train", n, 0), ("test", m, n)] {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in start..start + count {
            let (xi, yi) = sample(i);
            x.extend(xi);
            y.push(yi);
        }
        paths.push(write(
            dir,
            &format!("{name}-x.npy"),
            &npy(1, "<f4", &[count, d], false, &le_f32(&x)),
        ));
        paths.push(write(
            dir,
            &format!("{name}-y.npy"),
            &npy(1, "<i8", &[count], false, &be(&y, i64::to_le_bytes)),
        ));
    }
    paths.try_into().unwrap()
}

#[test]
fn a_train_and_test_pair_trains_at_any_class_count() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c, e] = write_problem(dir.path(), 600, 130, 26, 13);
    let data = open_train_test([&a, &b, &c, &e], None, &LoadOptions::default()).unwrap();
    assert_eq!(
        (data.classes, data.train.len(), data.test.len()),
        (13, 600, 130)
    );
    assert!(data.classes_without_training_samples().is_empty());
    let kernel = KernelKind::Parallel.build(2);
    let cfg = TrainConfig {
        steps: 300,
        batch_size: 64,
        learning_rate: 0.5,
        ..TrainConfig::default()
    };
    let model = Model::zeros(26, data.classes).unwrap();
    let out = train::train(
        &cfg,
        kernel.as_ref(),
        data.train.train_data(),
        model,
        |_| {},
    )
    .unwrap();
    let test = data.test.train_data();
    let (stats, predictions) =
        train::evaluate(kernel.as_ref(), &out.model, test.pixels, test.labels).unwrap();
    assert!(stats.accuracy() > 0.9, "accuracy {}", stats.accuracy());
    assert!(predictions.iter().all(|&p| p < 13));

    // More classes than the labels use: the last ones have no training sample.
    let data = open_train_test([&a, &b, &c, &e], Some(15), &LoadOptions::default()).unwrap();
    assert_eq!(data.classes_without_training_samples(), [13, 14]);
    // Fewer: the first label past the count is named.
    let err = open_train_test([&a, &b, &c, &e], Some(5), &LoadOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("train-y.npy: label 5 at index 5 is out of range: expected 0..5"),
        "{err}"
    );
    assert!(open_train_test([&a, &b, &c, &e], Some(1), &LoadOptions::default()).is_err());
    // Counts that disagree, features that differ between train and test.
    let err = Samples::open(&a, &e, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train-x.npy holds 600 samples but")
            && err.contains("test-y.npy holds 130 labels"),
        "{err}"
    );
    let sub = dir.path().join("other");
    std::fs::create_dir(&sub).unwrap();
    let other = write_problem(&sub, 10, 10, 3, 2);
    let err = open_train_test(
        [&a, &b, &other[2], &other[3]],
        None,
        &LoadOptions::default(),
    );
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains("has 26 features per sample but") && err.contains("has 3"),
        "{err}"
    );
}
