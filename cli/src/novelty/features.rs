//! What the novelty score measures of a prepared 28×28 input: its canonical picture (for the
//! shape) and five descriptors of its ink (for the strokes).
//!
//! Both ignore how the ink's edges are shaded. MNIST's digits are anti-aliased; a user's
//! drawing, a scan or a binarised digit is not, and a model of raw pixel levels flags those as
//! strange (measured on 2026-12-02: 198 of 200 of MNIST's own test digits, binarised at 128,
//! were flagged by a descriptor that looked at the grey levels). So the picture is binarised at
//! [`INK`] first and then blurred by one pixel, which gives every input the same soft edges.

use crate::preprocess::SIDE;

/// A pixel at or above this level is ink.
pub(crate) const INK: u8 = 128;
/// Pixels at or above this level count as faint ink in [`Descriptors::bright_share`].
const FAINT: u8 = 32;
/// Number of descriptors.
pub(crate) const DESCRIPTORS: usize = 5;
/// Pixels of a prepared input.
pub(crate) const PIXELS: usize = SIDE * SIDE;

/// Which deviations of a descriptor from the digits' mean count: a binarised digit has a
/// larger bright share than MNIST's anti-aliased ones, a thin digit a smaller solidity, and
/// neither is suspect; the other direction is.
#[derive(Clone, Copy)]
pub(crate) enum Tail {
    /// Only values below the mean count.
    Low,
    /// Only values above the mean count.
    High,
    /// Both directions count.
    Both,
}

/// The tail of each descriptor, in the order of [`descriptors`].
pub(crate) const TAILS: [Tail; DESCRIPTORS] =
    [Tail::Low, Tail::Both, Tail::High, Tail::High, Tail::High];

/// What each descriptor measures, for messages, in the order of [`descriptors`].
pub(crate) const NAMES: [&str; DESCRIPTORS] = [
    "ink brightness",
    "amount of ink",
    "solidity",
    "number of separate marks",
    "stroke thickness",
];

/// Whether the pixel at (`r`, `c`) is ink; outside the frame is not.
fn ink_at(ink: &[bool], r: isize, c: isize) -> bool {
    let side = SIDE as isize;
    (0..side).contains(&r) && (0..side).contains(&c) && ink[(r * side + c) as usize]
}

/// Whether every pixel of the 3×3 block around (`r`, `c`) is ink.
fn block_is_ink(ink: &[bool], r: isize, c: isize) -> bool {
    (-1..=1).all(|dr| (-1..=1).all(|dc| ink_at(ink, r + dr, c + dc)))
}

/// The ink mask: which pixels are at least [`INK`].
fn ink_mask(pixels: &[u8]) -> Vec<bool> {
    pixels.iter().map(|&p| p >= INK).collect()
}

/// The input binarised at [`INK`] and blurred with the 3×3 kernel `[1 2 1]ᵀ[1 2 1] / 16`, in
/// [0, 1] (outside the frame is background). `out` holds [`PIXELS`] values.
pub(crate) fn canonical(pixels: &[u8], out: &mut [f32]) {
    debug_assert_eq!((pixels.len(), out.len()), (PIXELS, PIXELS));
    let ink = ink_mask(pixels);
    let weight = [1.0f32, 2.0, 1.0];
    let side = SIDE as isize;
    for r in 0..side {
        for c in 0..side {
            let mut sum = 0.0;
            for dr in -1..=1isize {
                for dc in -1..=1isize {
                    if ink_at(&ink, r + dr, c + dc) {
                        sum += weight[(dr + 1) as usize] * weight[(dc + 1) as usize];
                    }
                }
            }
            out[(r * side + c) as usize] = sum / 16.0;
        }
    }
}

/// Connected marks of ink (8-neighbour) holding at least 5% of the ink pixels each.
fn marks(ink: &[bool]) -> usize {
    let mut seen = vec![false; ink.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..ink.len() {
        if !ink[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut size = 0usize;
        while let Some(i) = stack.pop() {
            size += 1;
            let (r, c) = ((i / SIDE) as isize, (i % SIDE) as isize);
            for dr in -1..=1isize {
                for dc in -1..=1isize {
                    if ink_at(ink, r + dr, c + dc) {
                        let j = ((r + dr) as usize) * SIDE + (c + dc) as usize;
                        if !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
        }
        sizes.push(size);
    }
    let total: usize = sizes.iter().sum();
    sizes.iter().filter(|&&s| 20 * s >= total).count()
}

/// How many 3×3 erosions the ink survives: about half the width of the thickest stroke.
fn depth(mut ink: Vec<bool>) -> usize {
    let side = SIDE as isize;
    let mut depth = 0;
    while ink.iter().any(|&b| b) {
        depth += 1;
        ink = (0..ink.len() as isize)
            .map(|i| block_is_ink(&ink, i / side, i % side))
            .collect();
    }
    depth
}

/// The five descriptors of a prepared input, in the order of [`TAILS`] and [`NAMES`]:
///
/// 0. the bright share: the ink mass in pixels ≥ [`INK`] over the mass in pixels ≥ 32 (low for
///    noise and photos, whose ink is mostly grey);
/// 1. the ink share: √(pixels ≥ [`INK`] / 784);
/// 2. the solidity: √(ink pixels whose 3×3 block is all ink / ink pixels) (high for filled
///    shapes);
/// 3. the marks: separate 8-connected marks with ≥ 5% of the ink each (high for text);
/// 4. the depth: how many 3×3 erosions the ink survives (high for a thick blob).
pub(crate) fn descriptors(pixels: &[u8]) -> [f64; DESCRIPTORS] {
    debug_assert_eq!(pixels.len(), PIXELS);
    let ink = ink_mask(pixels);
    let mass = |from: u8| -> f64 {
        pixels
            .iter()
            .filter(|&&p| p >= from)
            .map(|&p| f64::from(p))
            .sum()
    };
    let faint = mass(FAINT);
    let bright_share = if faint > 0.0 { mass(INK) / faint } else { 0.0 };
    let inked = ink.iter().filter(|&&b| b).count();
    let side = SIDE as isize;
    let interior = (0..PIXELS as isize)
        .filter(|&i| block_is_ink(&ink, i / side, i % side))
        .count();
    [
        bright_share,
        (inked as f64 / PIXELS as f64).sqrt(),
        (interior as f64 / inked.max(1) as f64).sqrt(),
        marks(&ink) as f64,
        depth(ink) as f64,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28×28 input with ink 255 in the rows `r0..r1` and columns `c0..c1`.
    fn block(r0: usize, r1: usize, c0: usize, c1: usize) -> Vec<u8> {
        (0..PIXELS)
            .map(|i| {
                let (r, c) = (i / SIDE, i % SIDE);
                if (r0..r1).contains(&r) && (c0..c1).contains(&c) {
                    255
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn a_bar_three_pixels_wide_has_the_descriptors_counted_by_hand() {
        // 20 rows × 3 columns: 60 ink pixels, the middle column's 18 inner ones are interior.
        let d = descriptors(&block(4, 24, 12, 15));
        assert_eq!(d[0], 1.0);
        assert_eq!(d[1], (60.0f64 / 784.0).sqrt());
        assert_eq!(d[2], (18.0f64 / 60.0).sqrt());
        assert_eq!(d[3], 1.0);
        assert_eq!(d[4], 2.0);
    }

    #[test]
    fn marks_count_only_pieces_with_a_twentieth_of_the_ink() {
        let mut two = block(4, 24, 4, 7);
        for (i, p) in block(4, 24, 20, 23).into_iter().enumerate() {
            two[i] |= p;
        }
        assert_eq!(descriptors(&two)[3], 2.0);
        two[27 * SIDE + 27] = 255; // one pixel of 121: under a twentieth
        assert_eq!(descriptors(&two)[3], 2.0);
    }

    #[test]
    fn grey_ink_has_a_low_bright_share_and_blank_has_none() {
        let mut grey = block(4, 24, 4, 24);
        grey.iter_mut().for_each(|p| *p /= 3); // 85: faint ink, none bright
        assert_eq!(descriptors(&grey)[0], 0.0);
        assert_eq!(descriptors(&vec![0; PIXELS]), [0.0; DESCRIPTORS]);
    }

    #[test]
    fn the_canonical_picture_is_binarised_then_blurred() {
        let mut px = vec![0u8; PIXELS];
        px[14 * SIDE + 14] = 200; // ink
        px[5 * SIDE + 5] = 127; // not ink
        let mut out = vec![0f32; PIXELS];
        canonical(&px, &mut out);
        assert_eq!(out[14 * SIDE + 14], 4.0 / 16.0);
        assert_eq!(out[13 * SIDE + 14], 2.0 / 16.0);
        assert_eq!(out[13 * SIDE + 13], 1.0 / 16.0);
        assert_eq!(out[5 * SIDE + 5], 0.0);
        assert_eq!(out.iter().sum::<f32>(), 1.0);
    }
}
