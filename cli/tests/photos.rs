//! Pictures as a new user makes them, made here: digits written with a thick dark pen on grey
//! paper with grain and uneven light, photographed at 320×280 to 640×480; digits inside a
//! dark frame around the picture. The tutorial's model must read the photographed digits right
//! without a cut-off note, and never trust a wrong answer for a framed one.

mod common;

use mnist_logreg::dataset::{Dataset, Split};
use mnist_logreg::kernels::Isa;
use mnist_logreg_cli::answer::{Answer, Judge};
use mnist_logreg_cli::novelty::Novelty;
use mnist_logreg_cli::preprocess::{Gray, Invert, Unlike, to_mnist};
use mnist_logreg_cli::run::{self, DataSource};

/// The tutorial's model with its novelty score, and the test split.
fn judge() -> (Judge, Split) {
    let run = run::train_tutorial(&DataSource::new(common::mnist_dir()), Isa::best()).unwrap();
    let data = Dataset::open(
        &common::mnist_dir(),
        &Default::default(),
        Default::default(),
    )
    .unwrap();
    let novelty = Novelty::fit(data.train.pixels(), data.test.pixels()).unwrap();
    let judge = Judge::new(run.outcome.model, Some(novelty), run.data.names);
    (judge, data.test)
}

/// xorshift64: the tests' fixed pseudo-random numbers.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A normal deviate (Box–Muller) from the generator.
fn normal(state: &mut u64) -> f64 {
    let u = |s: &mut u64| ((next(s) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(state), u(state));
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

/// The 28×28 `digit` sampled bilinearly at (y, x) in its own pixels (0 outside).
fn sample(digit: &[u8], y: f64, x: f64) -> f64 {
    let at = |r: isize, c: isize| {
        if (0..28).contains(&r) && (0..28).contains(&c) {
            f64::from(digit[r as usize * 28 + c as usize])
        } else {
            0.0
        }
    };
    let (y, x) = (y - 0.5, x - 0.5);
    let (r, c) = (y.floor(), x.floor());
    let (fy, fx) = (y - r, x - c);
    let (r, c) = (r as isize, c as isize);
    at(r, c) * (1.0 - fy) * (1.0 - fx)
        + at(r, c + 1) * (1.0 - fy) * fx
        + at(r + 1, c) * fy * (1.0 - fx)
        + at(r + 1, c + 1) * fy * fx
}

/// A photo of `digit` written with a dark pen (level 40) on grey paper (level 170), `w × h`:
/// the digit's 28×28 frame scaled to `size` of the shorter side and placed off-centre, light
/// falling off by ±`light` levels across the sheet, grain of σ = `grain` levels.
fn photo(digit: &[u8], w: usize, h: usize, size: f64, light: f64, grain: f64, seed: u64) -> Gray {
    let mut state = seed | 1;
    let side = size * w.min(h) as f64;
    let scale = side / 28.0;
    let (top, left) = (0.45 * (h as f64 - side), 0.55 * (w as f64 - side));
    let pixels = (0..w * h)
        .map(|i| {
            let (r, c) = ((i / w) as f64, (i % w) as f64);
            let paper = 170.0 + light * ((c / w as f64 - 0.5) * 1.2 + (r / h as f64 - 0.5) * 0.8);
            let ink = sample(digit, (r + 0.5 - top) / scale, (c + 0.5 - left) / scale) / 255.0;
            let v = paper * (1.0 - ink) + 40.0 * ink + grain * normal(&mut state);
            v.round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Gray {
        width: w,
        height: h,
        pixels,
    }
}

/// Test digit `i` drawn dark on white at 4× with a 20-pixel margin, inside a black frame
/// `frame` pixels wide.
fn framed(test: &Split, i: usize, frame: usize) -> Gray {
    let (scale, margin) = (4, 20);
    let side = 28 * scale + 2 * (margin + frame);
    let pixels = (0..side * side)
        .map(|k| {
            let (r, c) = (k / side, k % side);
            if r.min(c) < frame || r.max(c) >= side - frame {
                return 0;
            }
            let (y, x) = (
                r.wrapping_sub(frame + margin),
                c.wrapping_sub(frame + margin),
            );
            if y < 28 * scale && x < 28 * scale {
                255 - test.image(i)[(y / scale) * 28 + x / scale]
            } else {
                255
            }
        })
        .collect();
    Gray {
        width: side,
        height: side,
        pixels,
    }
}

/// The judge's answer for a picture, with what preparing it noted.
fn read(judge: &Judge, img: &Gray) -> (Answer, Vec<Unlike>) {
    let prepared = to_mnist(img, Invert::Auto).unwrap();
    (
        judge.answer(&prepared.pixels, &prepared.unlike),
        prepared.unlike,
    )
}

/// Test digits the model reads right as they are (a photo cannot make a wrong one right).
fn read_right(judge: &Judge, test: &Split, n: usize) -> Vec<usize> {
    (0..test.len())
        .filter(|&i| {
            let a = judge.answer(test.image(i), &[]);
            a.class == test.labels()[i] as usize && a.warnings.is_empty()
        })
        .take(n)
        .collect()
}

#[test]
fn photographed_digits_are_read_right_without_a_cut_off_note() {
    let (judge, test) = judge();
    let digits = read_right(&judge, &test, 20);
    let (mut right, mut total, mut doubted) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (k, &i) in digits.iter().enumerate() {
        for (w, h, size) in [
            (320, 280, 0.7),
            (640, 480, 0.6),
            (480, 400, 0.8),
            (320, 280, 0.5),
        ] {
            for (light, grain) in [(20.0, 10.0), (-20.0, 12.0)] {
                let img = photo(test.image(i), w, h, size, light, grain, (k * 31 + w) as u64);
                let (answer, unlike) = read(&judge, &img);
                assert!(
                    !unlike.iter().any(|u| matches!(u, Unlike::CutOff { .. })),
                    "test digit {i} at {w}×{h}: {unlike:?}"
                );
                total += 1;
                doubted += usize::from(!answer.warnings.is_empty());
                if answer.class == test.labels()[i] as usize {
                    right += 1;
                } else {
                    wrong.push((i, w, h, answer.class, answer.warnings.clone()));
                }
            }
        }
    }
    eprintln!("photos: {right} of {total} read right, {doubted} doubted; wrong: {wrong:?}");
    assert!(right * 100 >= total * 95, "{right} of {total}: {wrong:?}");
}

#[test]
fn a_framed_digit_is_read_right_or_doubted_never_trusted_wrong() {
    let (judge, test) = judge();
    let digits = read_right(&judge, &test, 20);
    for frame in [6, 12] {
        let (mut right, mut doubted) = (0, 0);
        for &i in &digits {
            let (answer, _) = read(&judge, &framed(&test, i, frame));
            let ok = answer.class == test.labels()[i] as usize;
            assert!(
                ok || !answer.warnings.is_empty(),
                "frame {frame}: test digit {i} trusted as {}",
                answer.class
            );
            right += usize::from(ok);
            doubted += usize::from(!answer.warnings.is_empty());
        }
        eprintln!(
            "frame {frame} px: {right} of {} right, {doubted} doubted",
            digits.len()
        );
        assert!(
            right >= digits.len() * 9 / 10,
            "frame {frame}: {right} right"
        );
    }
}
