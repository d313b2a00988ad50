//! The real MNIST files shipped in `data/mnist/` load, verify and convert as SPEC.md says.

mod common;

use mnist_logreg::dataset::{
    ChecksumPolicy, Dataset, MNIST_FIRST_TEST_LABELS, MNIST_FIRST_TRAIN_LABELS, Verification,
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
        assert_eq!(d.verification, Verification::Mnist);
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
    assert_eq!(d.verification, Verification::Mnist);
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
