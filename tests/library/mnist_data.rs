//! The real MNIST files shipped in `data/mnist/` load, verify and convert as docs/SEMANTICS.md says.

use crate::common;

use mnist_logreg::dataset::{
    ChecksumPolicy, Dataset, MNIST_FIRST_TEST_LABELS, MNIST_FIRST_TRAIN_LABELS,
};
use mnist_logreg::idx::LoadOptions;

#[test]
fn real_mnist_loads_verified() {
    for mmap in [true, false] {
        let opts = LoadOptions {
            mmap,
            ..Default::default()
        };
        let d = Dataset::open(&common::mnist_dir(), &opts, ChecksumPolicy::Require).unwrap();
        assert!(d.verified);
        assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
        assert_eq!(d.train.features(), 784);
        assert_eq!(&d.train.labels()[..10], &MNIST_FIRST_TRAIN_LABELS);
        assert_eq!(&d.test.labels()[..10], &MNIST_FIRST_TEST_LABELS);
        assert!(
            d.train
                .images
                .path()
                .to_string_lossy()
                .ends_with("train-images-idx3-ubyte.gz")
        );
    }
}

#[test]
fn auto_policy_verifies_mnist() {
    let d = Dataset::open(
        &common::mnist_dir(),
        &LoadOptions::default(),
        ChecksumPolicy::Auto,
    )
    .unwrap();
    assert!(d.verified);
}

#[test]
fn f32_conversion_is_x_over_255() {
    let d = Dataset::open(
        &common::mnist_dir(),
        &LoadOptions::default(),
        ChecksumPolicy::Skip,
    )
    .unwrap();
    let x = d.test.to_f32();
    assert_eq!(x.len(), 10_000 * 784);
    assert_eq!(x.as_ptr() as usize % 64, 0);
    for (i, (&p, &v)) in d
        .test
        .pixels()
        .iter()
        .zip(x.iter())
        .enumerate()
        .step_by(997)
    {
        assert_eq!(v, p as f32 / 255.0, "pixel {i}");
    }
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    // The first test image (a 7) has ink.
    assert!(d.test.image(0).contains(&255));
}

#[test]
fn a_verified_checksum_is_recorded_and_a_changed_file_is_hashed_again() {
    // A private copy of the data: the cache and its checksum record live beside it.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::mnist_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gz") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let opts = LoadOptions::default();
    let open = |policy| Dataset::open(dir.path(), &opts, policy);
    let first = open(ChecksumPolicy::Auto).unwrap();
    assert!(first.verified);
    let record = mnist_logreg::idx::cache_dir_for(dir.path(), &opts).join("verified-sha256.txt");
    assert_eq!(std::fs::read_to_string(&record).unwrap().lines().count(), 4);

    // Change one label in the decompressed copy, keeping its size and modification time: the
    // record still matches, so `auto` trusts it, while `require` hashes and finds the change.
    let labels = first.train.labels.bytes_path().to_path_buf();
    drop(first);
    let mtime = std::fs::metadata(&labels).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[1000] = (bytes[1000] + 1) % 10; // past the first labels that mark MNIST
    std::fs::write(&labels, &bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&labels).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert!(open(ChecksumPolicy::Auto).unwrap().verified);
    let err = open(ChecksumPolicy::Require).unwrap_err().to_string();
    assert!(err.contains("train-labels"), "{err}");

    // A new modification time makes `auto` hash again too.
    let file = std::fs::File::options().write(true).open(&labels).unwrap();
    file.set_modified(mtime + std::time::Duration::from_secs(1))
        .unwrap();
    drop(file);
    let err = open(ChecksumPolicy::Auto).unwrap_err().to_string();
    assert!(err.contains("train-labels"), "{err}");
}
