//! The novelty score on real MNIST: fitted on the training split, calibrated on the test
//! split, it must flag what is not a digit (filled shapes, text, noise, photos) and
//! trust what is (test digits redrawn in other ways), with the shares measured when it was
//! built as the bounds.

use crate::common;

use std::path::Path;

use common::pictures::{drawn, framed};
use common::{f32s, file};
use mnist_logreg::dataset::Split;
use mnist_logreg_cli::novelty::{self, FLAG_SHARE, Novelty};
use mnist_logreg_cli::preprocess::{Gray, Invert, PreprocessError, Unlike, to_mnist};
use safetensors::Dtype;

/// The score fitted on the committed MNIST, and its test split.
fn fitted() -> (Novelty, Split, Split) {
    let (data, novelty) = common::mnist_with_novelty();
    (novelty, data.train, data.test)
}

fn prepared(img: &Gray) -> Vec<u8> {
    to_mnist(img, Invert::Auto).unwrap().pixels
}

/// White paper, black ink.
const WHITE: (u8, u8) = (255, 0);

/// xorshift64: the tests' fixed pseudo-random bytes.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// How many of `inputs` (prepared 28×28) the score flags.
fn flagged(novelty: &Novelty, inputs: &[Vec<u8>]) -> usize {
    inputs
        .iter()
        .filter(|x| novelty.score(x).unwrap().is_novel())
        .count()
}

#[test]
fn the_score_flags_what_is_not_a_digit_and_trusts_what_is() {
    let (novelty, train, test) = fitted();
    let share = |split: &Split, step: usize| {
        let images: Vec<Vec<u8>> = (0..split.len())
            .step_by(step)
            .map(|i| split.image(i).to_vec())
            .collect();
        flagged(&novelty, &images) as f64 / images.len() as f64
    };
    // Calibrated on the test split: its share is the stated one, up to ties.
    let test_share = share(&test, 1);
    assert!(
        (test_share - FLAG_SHARE).abs() <= 2e-4,
        "test share {test_share}"
    );
    assert_eq!(novelty.flagged_share(), test_share as f32);
    // Not fitted to flag training digits either (measured 0.23%).
    let train_share = share(&train, 6);
    assert!(train_share < 0.01, "training share {train_share}");

    // A frame around the picture is background: the digit inside is prepared like the same
    // digit without it (photos.rs reads them), and a frame alone is blank.
    for frame in [2, 6, 12] {
        for i in 0..5 {
            let (with, without) = (
                prepared(&framed(test.image(i), frame)),
                prepared(&framed(test.image(i), 0)),
            );
            // The same up to the grid and the grain filter's rounding.
            let worst = with
                .iter()
                .zip(&without)
                .map(|(&a, &b)| a.abs_diff(b))
                .max();
            assert!(
                worst <= Some(16),
                "test digit {i} in a frame {frame} px wide: pixels differ by {worst:?}"
            );
        }
        let alone = drawn(150, WHITE, |y, x| {
            y.min(x) < frame as f64 || y.max(x) >= (150 - frame) as f64
        });
        assert!(
            matches!(to_mnist(&alone, Invert::Auto), Err(PreprocessError::Blank)),
            "a frame {frame} px wide alone"
        );
    }

    // Not digits.
    let filled: Vec<Vec<u8>> = [20.0, 40.0, 60.0]
        .into_iter()
        .map(|r: f64| {
            prepared(&drawn(150, WHITE, |y, x| {
                (y - 75.0).powi(2) + (x - 75.0).powi(2) < r * r
            }))
        })
        .chain([prepared(&drawn(150, WHITE, |y, x| {
            (20.0..80.0).contains(&y) && (20.0..80.0).contains(&x)
        }))])
        .collect();
    assert_eq!(flagged(&novelty, &filled), 4, "three discs and a square");
    let text: Vec<Vec<u8>> = (0..10)
        .map(|line| {
            // Six test digits side by side, light on dark: a line of text.
            let (w, h): (usize, usize) = (6 * 28 + 20, 48);
            let pixels = (0..w * h)
                .map(|k| {
                    let (r, c) = (k / w, k % w);
                    let (y, x) = (r.wrapping_sub(10), c.wrapping_sub(10));
                    if y < 28 && x < 6 * 28 {
                        test.image(6 * line + x / 28)[y * 28 + x % 28]
                    } else {
                        0
                    }
                })
                .collect();
            prepared(&Gray {
                width: w,
                height: h,
                pixels,
            })
        })
        .collect();
    assert_eq!(flagged(&novelty, &text), 10, "lines of text");
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<Vec<u8>> = (0..10)
        .map(|_| {
            let pixels = (0..100 * 100).map(|_| next(&mut state) as u8).collect();
            prepared(&Gray {
                width: 100,
                height: 100,
                pixels,
            })
        })
        .collect();
    assert_eq!(flagged(&novelty, &noise), 10, "noise");
    let photos: Vec<Result<_, _>> = (0..10)
        .map(|k| {
            // Smooth light and shade with grain: a photo of no digit.
            let side = 120;
            let pixels = (0..side * side)
                .map(|i| {
                    let (y, x) = ((i / side) as f64, (i % side) as f64);
                    let light = 128.0
                        + 60.0 * (x / (15.0 + k as f64)).sin() * (y / 23.0).cos()
                        + 30.0 * ((x + y) / 40.0).sin();
                    (light + (next(&mut state) % 40) as f64 - 20.0).clamp(0.0, 255.0) as u8
                })
                .collect();
            to_mnist(
                &Gray {
                    width: side,
                    height: side,
                    pixels,
                },
                Invert::Auto,
            )
        })
        .collect();
    // Refused as blank (the light is background), doubted by the score or by what the
    // conversion saw (an uneven background, ink cut off at the edges).
    let trusted: Vec<usize> = photos
        .iter()
        .enumerate()
        .filter(|(_, p)| match p {
            Err(_) => false,
            Ok(p) => novelty::doubts(Some(&novelty), &p.pixels, &p.unlike)
                .unwrap()
                .is_empty(),
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(trusted, Vec::<usize>::new(), "photos of no digit trusted");

    // Digits drawn otherwise: binarised (no anti-aliasing), large and dark on light.
    let binarised: Vec<Vec<u8>> = (100..300)
        .map(|i| {
            let pixels = test
                .image(i)
                .iter()
                .map(|&p| if p >= 128 { 255 } else { 0 })
                .collect();
            prepared(&Gray {
                width: 28,
                height: 28,
                pixels,
            })
        })
        .collect();
    assert!(
        flagged(&novelty, &binarised) <= 2,
        "binarised test digits (measured 0 of 200)"
    );
    let large: Vec<Vec<u8>> = (100..300)
        .map(|i| prepared(&framed(test.image(i), 0)))
        .collect();
    assert!(
        flagged(&novelty, &large) <= 2,
        "large dark-on-light test digits (measured 0 of 200)"
    );
}

#[test]
fn a_cut_off_digit_is_doubted_from_its_edges_and_a_clean_one_is_not() {
    let (novelty, _, test) = fitted();
    // Test digit 0 (a 7) moved up and left by 9 pixels: cut at the top and the left.
    let cut: Vec<u8> = (0..784)
        .map(|k| {
            let (r, c) = (k / 28 + 9, k % 28 + 9);
            if r < 28 && c < 28 {
                test.image(0)[r * 28 + c]
            } else {
                0
            }
        })
        .collect();
    let out = to_mnist(
        &Gray {
            width: 28,
            height: 28,
            pixels: cut,
        },
        Invert::Never,
    )
    .unwrap();
    assert!(
        out.unlike.contains(&Unlike::CutOff {
            edges: vec!["top", "left"]
        }),
        "{:?}",
        out.unlike
    );
    let doubts = novelty::doubts(Some(&novelty), &out.pixels, &out.unlike).unwrap();
    assert!(
        doubts
            .iter()
            .any(|d| d.contains("reaches the top and left edges")),
        "{doubts:?}"
    );
    let clean = to_mnist(
        &Gray {
            width: 28,
            height: 28,
            pixels: test.image(0).to_vec(),
        },
        Invert::Never,
    )
    .unwrap();
    assert_eq!(
        novelty::doubts(Some(&novelty), &clean.pixels, &clean.unlike).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn the_score_survives_a_checkpoint_and_an_old_checkpoint_has_none() {
    let (novelty, _, test) = fitted();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = mnist_logreg::model::Model::tutorial_init(784, 10);
    mnist_logreg_cli::novelty::save_with_novelty(&path, &model, Some(&novelty), Default::default())
        .unwrap();
    let (_, back, _) = mnist_logreg_cli::novelty::load_with_novelty(&path).unwrap();
    let back = back.expect("saved with a score");
    assert_eq!(back, novelty);
    assert_eq!(
        back.score(test.image(3)).unwrap(),
        novelty.score(test.image(3)).unwrap()
    );
    // Saved without: loads, with no score.
    mnist_logreg::checkpoint::save(&path, &model, Default::default()).unwrap();
    assert!(
        mnist_logreg_cli::novelty::load_with_novelty(&path)
            .unwrap()
            .1
            .is_none()
    );
}

#[test]
fn wrong_sizes_are_errors_not_panics() {
    let (novelty, _, _) = fitted();
    assert!(novelty.score(&[0; 783]).is_err());
    assert!(Novelty::fit(&[0; 785], &[0; 784]).is_err());
    assert!(Novelty::fit(&[], &[0; 784]).is_err());
    assert!(Novelty::fit(&[0; 784], &[]).is_err());
}

/// W and b of a 784 × 10 model and the five novelty tensors, with `scales` as given.
fn with_novelty(scales: [f32; 4], basis_rows: usize) -> Vec<u8> {
    let scales: Vec<u8> = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
    file(&[
        ("W", Dtype::F32, vec![784, 10], f32s(7840, 0.0)),
        ("b", Dtype::F32, vec![10], f32s(10, 0.0)),
        ("novelty.pixel_mean", Dtype::F32, vec![784], f32s(784, 0.0)),
        (
            "novelty.pixel_basis",
            Dtype::F32,
            vec![basis_rows, 784],
            f32s(basis_rows * 784, 0.0),
        ),
        ("novelty.descriptor_mean", Dtype::F32, vec![5], f32s(5, 0.0)),
        (
            "novelty.descriptor_precision",
            Dtype::F32,
            vec![5, 5],
            f32s(25, 1.0),
        ),
        ("novelty.scales", Dtype::F32, vec![4], scales),
    ])
}

#[test]
fn novelty_tensors_are_all_there_and_valid_or_the_file_is_refused() {
    let good = with_novelty([1.0, 1.0, 1.0, 0.005], 32);
    let (_, novelty, _) = novelty::from_bytes_with_novelty(Path::new("m"), &good).unwrap();
    assert!(novelty.is_some());
    let e =
        novelty::from_bytes_with_novelty(Path::new("m"), &with_novelty([1.0, 0.0, 1.0, 0.0], 32))
            .unwrap_err();
    assert!(e.to_string().contains("must be positive"), "{e}");
    let e = novelty::from_bytes_with_novelty(
        Path::new("m"),
        &with_novelty([1.0, f32::NAN, 1.0, 0.0], 32),
    )
    .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let e =
        novelty::from_bytes_with_novelty(Path::new("m"), &with_novelty([1.0; 4], 31)).unwrap_err();
    assert!(
        e.to_string()
            .contains("novelty.pixel_basis has shape [31, 784], expected [32, 784]"),
        "{e}"
    );
    // Some of the five: not a checkpoint of ours.
    let partial = file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
        ("novelty.scales", Dtype::F32, vec![4], f32s(4, 1.0)),
    ]);
    let e = novelty::from_bytes_with_novelty(Path::new("m"), &partial).unwrap_err();
    assert!(matches!(e, novelty::LoadError::Novelty { .. }), "{e}");
    assert!(e.to_string().contains("expected all or none of"), "{e}");
}
