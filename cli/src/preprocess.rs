//! Turning a user's picture into an MNIST-like 28×28 input.
//!
//! MNIST digits are white ink on black, fitted into a 20×20 box (aspect ratio kept, anti-aliased)
//! and placed in a 28×28 frame so that their centre of mass is at the centre. [`to_mnist`]
//! applies the same recipe to any grayscale image:
//!
//! 1. **Polarity**: with [`Invert::Auto`], an image whose border is mostly bright (a dark digit
//!    on paper) is inverted, so ink becomes bright.
//! 2. **Background**: the median of the border pixels is subtracted (paper photographed in grey
//!    light becomes black), and the result is stretched so the brightest ink is 255.
//! 3. **Crop**: the bounding box of the pixels at least a quarter as bright as the brightest.
//! 4. **Scale**: the box is resampled by area averaging so its longer side is 20 pixels.
//! 5. **Centre**: pasted into 28×28 with its centre of mass at (14, 14), moved back inside the
//!    frame if it would overhang.
//!
//! [`load_gray`] decodes PNG, JPEG and PGM/PPM/PBM (by content, not by file name) into 8-bit
//! grayscale, turned upright by its EXIF orientation (phones store pictures sideways and say
//! so); transparent pixels become paper: white behind dark ink, black behind light ink.
//!
//! The conversion also notes, by hand-made rules, how an input is unlike MNIST's digits
//! ([`Unlike`]). Whether an answer deserves doubt is decided by the calibrated
//! [`crate::novelty`] score where the model has one; the rules then explain it. Three rules
//! look at what the 28×28 result no longer shows — the input's edges and size: a cut-off
//! digit, an uneven background, a tiny image blown up ([`Unlike::seen_in_input`]) — and
//! those always warn.

use std::path::{Path, PathBuf};

/// Side of an MNIST image.
pub const SIDE: usize = 28;
/// Side of the box MNIST fits each digit into.
pub const BOX: usize = 20;

/// Whether to invert the image so the ink is bright.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Invert {
    /// Invert when the border is mostly bright (mean above mid-grey).
    #[default]
    Auto,
    /// Always invert (dark ink on light paper).
    Always,
    /// Never invert (the image is already bright ink on dark).
    Never,
}

mnist_logreg::named!(Invert, "inversion rule", [Auto => "auto", Always => "always", Never => "never"]);

/// A grayscale image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gray {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height` intensities, 0 = black.
    pub pixels: Vec<u8>,
}

/// An image converted to MNIST's format, with what the conversion did.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// 28×28 pixels, white ink on black.
    pub pixels: Vec<u8>,
    /// Whether the input was inverted.
    pub inverted: bool,
    /// How the input differs from MNIST's digits (empty for a digit-like input).
    pub unlike: Vec<Unlike>,
}

/// A way an input is unlike an MNIST digit. The thresholds were set on MNIST's 10 000 test
/// images, of which none shows the first, third or fourth and one shows the second.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Unlike {
    /// More of the 28×28 frame is ink (≥ 64) than in any MNIST digit (at most 36%), or the ink
    /// fills its box like a solid shape or noise (MNIST at most 88% of the box).
    MuchInk {
        /// Fraction of the frame that is ink.
        frame: f32,
        /// Fraction of the ink's bounding box that is ink (≥ 32).
        fill: f32,
    },
    /// Separate marks, each with a quarter of the ink or more, with empty columns between them:
    /// several digits side by side?
    SideBySide {
        /// How many such marks.
        marks: usize,
    },
    /// The ink's box is only this many pixels across (MNIST's are 20): blown up, it has lost
    /// the detail a digit needs.
    Tiny {
        /// The longer side of the ink's box in the input, in pixels.
        side: usize,
    },
    /// The border of the input is not one level: a frame, a shadow, or a digit cut off?
    UnevenBackground,
    /// The ink reaches two edges of the input, or covers 5 pixels or more of one: part of the
    /// digit may be missing (1% of MNIST's digits touch one edge of their frame, with at most
    /// 4 pixels).
    CutOff {
        /// The edges the ink touches, among "top", "bottom", "left" and "right".
        edges: Vec<&'static str>,
    },
}

impl Unlike {
    /// Whether this is seen on the input before conversion (its edges, its size), which the
    /// 28×28 result — and so the novelty score — no longer shows.
    pub fn seen_in_input(&self) -> bool {
        matches!(
            self,
            Unlike::Tiny { .. } | Unlike::UnevenBackground | Unlike::CutOff { .. }
        )
    }
}

impl std::fmt::Display for Unlike {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlike::MuchInk { frame, fill } => write!(
                f,
                "much more ink than a digit ({:.0}% of the frame, {:.0}% of its box; MNIST's digits cover at most 36% and 88%)",
                frame * 100.0,
                fill * 100.0
            ),
            Unlike::SideBySide { marks } => {
                write!(f, "{marks} separate marks side by side (several digits?)")
            }
            Unlike::Tiny { side } => write!(
                f,
                "the ink is only {side} pixel(s) across, blown up to 20 (MNIST digits are drawn at 20)"
            ),
            Unlike::UnevenBackground => {
                write!(
                    f,
                    "the background is uneven (a frame, a shadow, or a cut-off digit?)"
                )
            }
            Unlike::CutOff { edges } => write!(
                f,
                "the ink reaches the {} edge{} of the picture (is part of the digit cut off?)",
                edges.join(" and "),
                if edges.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Faults of image loading and preprocessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// The file could not be read or decoded.
    #[error("{path}: cannot read the image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },
    /// Larger than [`MAX_PIXELS`].
    #[error("{path}: {width}×{height} is over the limit of {MAX_PIXELS} pixels")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Nothing stands out from the background.
    #[error(
        "the image is blank: no pixel stands out from the background (transparent pixels count as background)"
    )]
    Blank,
}

/// Largest image accepted (64 megapixels): bigger inputs are refused before decoding.
pub const MAX_PIXELS: u64 = 64 << 20;

/// Largest image file read (compressed bytes).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Decode an image file (PNG, JPEG, PGM/PPM/PBM, by content) into 8-bit grayscale.
pub fn load_gray(path: &Path) -> Result<Gray, PreprocessError> {
    let decode_err = |reason: String| PreprocessError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| decode_err(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(decode_err(format!(
            "{len} bytes is over the limit of {MAX_FILE_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| decode_err(e.to_string()))?;
    decode_gray(&bytes, MAX_PIXELS).map_err(|e| match e {
        DecodeError::Image(reason) => decode_err(reason),
        DecodeError::TooLarge { width, height } => PreprocessError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        },
    })
}

/// Why [`decode_gray`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decoder's message.
    Image(String),
    /// More pixels than allowed (checked from the header, before decoding).
    TooLarge {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// Decode image bytes (PNG, JPEG, PGM/PPM/PBM, recognised by content) into 8-bit grayscale,
/// upright by its EXIF orientation. Transparent pixels are composited onto paper: white when
/// the opaque pixels are dark on average (dark ink), black when they are light (light ink on
/// a transparent background would otherwise vanish into white). Images over `max_pixels` are
/// refused from their header, before decoding.
pub fn decode_gray(bytes: &[u8], max_pixels: u64) -> Result<Gray, DecodeError> {
    let err = |e: image::ImageError| DecodeError::Image(e.to_string());
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| DecodeError::Image(e.to_string()))
    };
    if bytes.is_empty() {
        return Err(DecodeError::Image("the file is empty".into()));
    }
    if reader()?.format().is_none() {
        return Err(DecodeError::Image(
            "not an image (PNG, JPEG or PGM/PPM/PBM expected)".into(),
        ));
    }
    let (width, height) = reader()?.into_dimensions().map_err(err)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(DecodeError::TooLarge { width, height });
    }
    let mut decoder = reader()?.into_decoder().map_err(err)?;
    let orientation = image::ImageDecoder::orientation(&mut decoder).map_err(err)?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(err)?;
    img.apply_orientation(orientation);
    let la = img.to_luma_alpha8();
    // The paper behind transparent pixels: opposite to the ink, judged from the opaque ones.
    let (mut ink_sum, mut ink_n) = (0u64, 0u64);
    for p in la.pixels().filter(|p| p.0[1] >= 128) {
        ink_sum += u64::from(p.0[0]);
        ink_n += 1;
    }
    let has_alpha = la.pixels().any(|p| p.0[1] < 255);
    let paper: u32 = if has_alpha && ink_n > 0 && ink_sum > 128 * ink_n {
        0
    } else {
        255
    };
    let pixels = la
        .pixels()
        .map(|p| {
            let [l, a] = p.0;
            // Composite onto the paper: l·a + paper·(1 − a).
            ((u32::from(l) * u32::from(a) + paper * (255 - u32::from(a)) + 127) / 255) as u8
        })
        .collect();
    Ok(Gray {
        width: la.width() as usize,
        height: la.height() as usize,
        pixels,
    })
}

/// The pixels of the outermost ring of the image.
fn border(img: &Gray) -> Vec<u8> {
    let (w, h) = (img.width, img.height);
    let mut out = Vec::with_capacity(2 * (w + h));
    for r in 0..h {
        for c in 0..w {
            if r == 0 || c == 0 || r + 1 == h || c + 1 == w {
                out.push(img.pixels[r * w + c]);
            }
        }
    }
    out
}

/// Convert a grayscale image to MNIST's 28×28 white-on-black format (see the module docs).
pub fn to_mnist(img: &Gray, invert: Invert) -> Result<Prepared, PreprocessError> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 {
        return Err(PreprocessError::Blank);
    }
    let mut ring = border(img);
    let mean = ring.iter().map(|&p| p as f64).sum::<f64>() / ring.len() as f64;
    let inverted = match invert {
        Invert::Auto => mean > 127.5,
        Invert::Always => true,
        Invert::Never => false,
    };
    let ink = |p: u8| if inverted { 255 - p } else { p };
    ring.iter_mut().for_each(|p| *p = ink(*p));
    ring.sort_unstable();
    let background = ring[ring.len() / 2];
    let mut x: Vec<f32> = img
        .pixels
        .iter()
        .map(|&p| ink(p).saturating_sub(background) as f32)
        .collect();
    let max = x.iter().copied().fold(0.0, f32::max);
    if max == 0.0 {
        return Err(PreprocessError::Blank);
    }
    x.iter_mut().for_each(|v| *v *= 255.0 / max);

    let threshold = 255.0 / 4.0;
    let (r0, r1, c0, c1) = ink_box(&x, w, h, threshold);
    let (bw, bh) = (c1 - c0, r1 - r0);
    let (edges, cut_off) = edges_with_ink(&x, w, h, threshold);
    // The border, as ink above the background: one level on a clean input.
    let uneven = ring[ring.len() * 9 / 10].saturating_sub(ring[ring.len() / 10]) >= 64;
    let crop: Vec<f32> = (r0..r1)
        .flat_map(|r| x[r * w + c0..r * w + c1].iter().copied())
        .collect();

    // Longer side to BOX pixels, at least one pixel on the shorter side.
    let scale = BOX as f64 / bw.max(bh) as f64;
    let nw = ((bw as f64 * scale).round() as usize).clamp(1, BOX);
    let nh = ((bh as f64 * scale).round() as usize).clamp(1, BOX);
    let small = resize_area(&crop, bw, bh, nw, nh);

    let pixels = centred(&small, nw, nh);
    let mut unlike = unlike_mnist(&pixels);
    if bw.max(bh) < TINY_SIDE {
        unlike.push(Unlike::Tiny { side: bw.max(bh) });
    }
    if uneven {
        unlike.push(Unlike::UnevenBackground);
    }
    if cut_off {
        unlike.push(Unlike::CutOff { edges });
    }
    Ok(Prepared {
        pixels,
        inverted,
        unlike,
    })
}

/// The bounding box `(r0, r1, c0, c1)` (end-exclusive) of the values of `x` (`w × h`) at or
/// above `threshold`; empty (`r0 > r1`) when there are none.
fn ink_box(x: &[f32], w: usize, h: usize, threshold: f32) -> (usize, usize, usize, usize) {
    let (mut r0, mut r1, mut c0, mut c1) = (h, 0, w, 0);
    for r in 0..h {
        for c in 0..w {
            if x[r * w + c] >= threshold {
                (r0, r1, c0, c1) = (r0.min(r), r1.max(r + 1), c0.min(c), c1.max(c + 1));
            }
        }
    }
    (r0, r1, c0, c1)
}

/// The edges of `x` (`w × h`) that ink (values at or above `threshold`) touches, and whether
/// the digit looks cut off: ink on two edges, or [`CUT_EDGE_PIXELS`] pixels of one.
fn edges_with_ink(x: &[f32], w: usize, h: usize, threshold: f32) -> (Vec<&'static str>, bool) {
    let on_edge =
        |pixels: &mut dyn Iterator<Item = usize>| pixels.filter(|&i| x[i] >= threshold).count();
    let counts = [
        (on_edge(&mut (0..w)), "top"),
        (on_edge(&mut ((h - 1) * w..h * w)), "bottom"),
        (on_edge(&mut (0..h).map(|r| r * w)), "left"),
        (on_edge(&mut (0..h).map(|r| r * w + w - 1)), "right"),
    ];
    let edges: Vec<&'static str> = counts
        .iter()
        .filter_map(|&(n, name)| (n > 0).then_some(name))
        .collect();
    let cut_off = edges.len() >= 2 || counts.iter().any(|&(n, _)| n >= CUT_EDGE_PIXELS);
    (edges, cut_off)
}

/// `small` (`nw × nh`, at most [`BOX`] a side) placed in a 28×28 frame with its centre of mass
/// (pixel centres at i + 0.5) at the frame's centre, as MNIST's digits are.
fn centred(small: &[f32], nw: usize, nh: usize) -> Vec<u8> {
    let (mut mass, mut mr, mut mc) = (0.0f64, 0.0f64, 0.0f64);
    for r in 0..nh {
        for c in 0..nw {
            let v = small[r * nw + c] as f64;
            mass += v;
            mr += v * (r as f64 + 0.5);
            mc += v * (c as f64 + 0.5);
        }
    }
    let centre = SIDE as f64 / 2.0;
    let place = |com: f64, len: usize| -> usize {
        ((centre - com).round().max(0.0) as usize).min(SIDE - len)
    };
    let (top, left) = (place(mr / mass, nh), place(mc / mass, nw));
    let mut pixels = vec![0u8; SIDE * SIDE];
    for r in 0..nh {
        for c in 0..nw {
            let v = small[r * nw + c].round().clamp(0.0, 255.0);
            pixels[(top + r) * SIDE + left + c] = v as u8;
        }
    }
    pixels
}

/// Refuse 784 pixels in which nothing stands out: all of one level (blank, or saturated),
/// the same rule [`to_mnist`] applies to a picture.
pub fn check_pixels(pixels: &[u8]) -> Result<(), PreprocessError> {
    match pixels.split_first() {
        Some((first, rest)) if rest.iter().any(|p| p != first) => Ok(()),
        _ => Err(PreprocessError::Blank),
    }
}

/// Ink on this many pixels of one edge of the input, or on two edges, is a cut-off digit:
/// 1% of MNIST's test digits touch one edge of their 28×28 frame, with at most 4 pixels, and
/// none touches two.
const CUT_EDGE_PIXELS: usize = 5;

/// An ink box shorter than this (in input pixels) is "tiny": scaled up more than twice.
const TINY_SIDE: usize = 10;

/// The ways a prepared 28×28 input is unlike MNIST judged from its pixels alone: the amount of
/// ink ([`Unlike::MuchInk`]) and separate marks side by side ([`Unlike::SideBySide`]).
pub fn unlike_mnist(pixels: &[u8]) -> Vec<Unlike> {
    assert_eq!(pixels.len(), SIDE * SIDE, "a 28×28 input");
    let mut out = Vec::new();
    let frame = pixels.iter().filter(|&&p| p >= 64).count() as f32 / pixels.len() as f32;
    let (mut r0, mut r1, mut c0, mut c1) = (SIDE, 0, SIDE, 0);
    for (i, &p) in pixels.iter().enumerate() {
        if p >= 64 {
            let (r, c) = (i / SIDE, i % SIDE);
            (r0, r1, c0, c1) = (r0.min(r), r1.max(r + 1), c0.min(c), c1.max(c + 1));
        }
    }
    let fill = if r1 > r0 + 7 && c1 > c0 + 7 {
        let inked = (r0..r1)
            .flat_map(|r| (c0..c1).map(move |c| (r, c)))
            .filter(|&(r, c)| pixels[r * SIDE + c] >= 32)
            .count();
        inked as f32 / ((r1 - r0) * (c1 - c0)) as f32
    } else {
        0.0
    };
    if frame > 0.45 || fill > 0.92 {
        out.push(Unlike::MuchInk { frame, fill });
    }
    let marks = marks_side_by_side(pixels);
    if marks >= 2 {
        out.push(Unlike::SideBySide { marks });
    }
    out
}

/// Connected marks (8-neighbour, ink ≥ 64) holding at least a quarter of the ink each, counted
/// along a left-to-right chain where each starts at least two empty columns after the previous
/// one ends; 1 when there is no such gap.
fn marks_side_by_side(pixels: &[u8]) -> usize {
    let mut label = vec![usize::MAX; pixels.len()];
    let mut marks: Vec<(u64, usize, usize)> = Vec::new(); // (mass, first column, last column)
    let mut stack = Vec::new();
    for start in 0..pixels.len() {
        if pixels[start] < 64 || label[start] != usize::MAX {
            continue;
        }
        let id = marks.len();
        let mut mark = (0u64, SIDE, 0usize);
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (r, c) = (i / SIDE, i % SIDE);
            mark = (mark.0 + u64::from(pixels[i]), mark.1.min(c), mark.2.max(c));
            for nr in r.saturating_sub(1)..=(r + 1).min(SIDE - 1) {
                for nc in c.saturating_sub(1)..=(c + 1).min(SIDE - 1) {
                    let j = nr * SIDE + nc;
                    if pixels[j] >= 64 && label[j] == usize::MAX {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        marks.push(mark);
    }
    let total: u64 = marks.iter().map(|m| m.0).sum();
    let mut big: Vec<_> = marks.into_iter().filter(|m| 4 * m.0 >= total).collect();
    big.sort_by_key(|m| m.1);
    1 + big.windows(2).filter(|w| w[1].1 > w[0].2 + 2).count()
}

/// For each destination cell of a 1-D resampling from `src` to `dst` cells, the source cells
/// it overlaps and the overlap lengths (in source units; they sum to `src / dst`).
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    let step = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let (lo, hi) = (d as f64 * step, (d + 1) as f64 * step);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(src);
            (first..last)
                .filter_map(|s| {
                    let overlap = (hi.min(s as f64 + 1.0) - lo.max(s as f64)).max(0.0);
                    (overlap > 0.0).then_some((s, overlap))
                })
                .collect()
        })
        .collect()
}

/// Resample a `w × h` image to `nw × nh` by area averaging: each destination pixel is the mean
/// of the source area it covers (exact box filter; up- or down-scaling).
pub fn resize_area(src: &[f32], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
    assert_eq!(src.len(), w * h, "source is not {w}×{h}");
    let (wx, wy) = (area_weights(w, nw), area_weights(h, nh));
    let (sx, sy) = (w as f64 / nw as f64, h as f64 / nh as f64);
    // Horizontal pass: h × nw.
    let mut tmp = vec![0.0f64; h * nw];
    for r in 0..h {
        for (c, weights) in wx.iter().enumerate() {
            tmp[r * nw + c] = weights
                .iter()
                .map(|&(s, a)| a * src[r * w + s] as f64)
                .sum::<f64>()
                / sx;
        }
    }
    // Vertical pass: nh × nw.
    let mut out = vec![0.0f32; nh * nw];
    for (r, weights) in wy.iter().enumerate() {
        for c in 0..nw {
            out[r * nw + c] = (weights
                .iter()
                .map(|&(s, a)| a * tmp[s * nw + c])
                .sum::<f64>()
                / sy) as f32;
        }
    }
    out
}
