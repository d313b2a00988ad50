//! Pictures made in the tests: photographed digits on grey paper with grain and uneven light.
#![allow(dead_code)]

use mnist_logreg_cli::preprocess::Gray;

/// xorshift64: the tests' fixed pseudo-random numbers.
pub fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A normal deviate (Box–Muller) from the generator.
pub fn normal(state: &mut u64) -> f64 {
    let u = |s: &mut u64| ((next(s) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(state), u(state));
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

/// The 28×28 `digit` sampled bilinearly at (y, x) in its own pixels (0 outside).
pub fn sample(digit: &[u8], y: f64, x: f64) -> f64 {
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
pub fn photo(
    digit: &[u8],
    w: usize,
    h: usize,
    size: f64,
    light: f64,
    grain: f64,
    seed: u64,
) -> Gray {
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

/// A 28×28 digit (`image`, MNIST polarity) drawn dark on white at 4× with a 20-pixel margin,
/// inside a black frame `frame` pixels wide (0: no frame).
pub fn framed(image: &[u8], frame: usize) -> Gray {
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
                255 - image[(y / scale) * 28 + x / scale]
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

/// A `side`² picture of paper at level `paper` with ink at level `ink_level` where
/// `ink(row, column)`.
pub fn drawn(side: usize, (paper, ink_level): (u8, u8), ink: impl Fn(f64, f64) -> bool) -> Gray {
    let pixels = (0..side * side)
        .map(|k| {
            if ink((k / side) as f64, (k % side) as f64) {
                ink_level
            } else {
                paper
            }
        })
        .collect();
    Gray {
        width: side,
        height: side,
        pixels,
    }
}
