//! Turning a user's picture into an MNIST-like 28×28 input.
//!
//! MNIST digits are white ink on black, fitted into a 20×20 box (aspect ratio kept, anti-aliased)
//! and placed in a 28×28 frame so that their centre of mass is at the centre. [`to_mnist`]
//! applies the same recipe to any grayscale image:
//!
//! 1. **Working size and grain**: a picture over 512 pixels a side is shrunk to 512 by area
//!    averaging; one at least 112 pixels on its shorter side is smoothed by a 3×3 median (the
//!    grain of paper goes, pen strokes stay).
//! 2. **Polarity**: the histogram is split in two levels where it splits best (Otsu). The
//!    paper is the level the border mostly has — unless that level covers less than 40% of
//!    the picture, when it is a frame (or the table around a sheet) and the other level is the
//!    paper. With [`Invert::Auto`] a picture on bright paper is inverted, so ink becomes bright.
//! 3. **Background**: the paper's level and its gradient are estimated on a coarse grid (the
//!    median of the paper's pixels near their most common level in each cell, interpolated
//!    between cells) and subtracted.
//! 4. **Ink**: pixels standing out from the paper by the histogram's own split of what is left
//!    (Otsu again, and at least 4× the paper's grain) are ink; connected marks of them (down
//!    to 3× the grain) are kept, except a mark covering most of the picture's border (a frame)
//!    and marks under 2% of the largest (grain, dust). The ink is stretched so its strongest
//!    pixel is 255.
//! 5. **Crop**: the bounding box of the ink at least a quarter as bright as the brightest.
//! 6. **Scale**: the box is resampled by area averaging so its longer side is 20 pixels.
//! 7. **Centre**: pasted into 28×28 with its centre of mass at (14, 14), moved back inside the
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
    /// Invert when the paper is bright: the brighter of the picture's two levels (Otsu) is
    /// the paper when the border mostly has it and it covers 40% of the picture or more, or
    /// when it covers over 60% (a dark frame around bright paper).
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
    /// What the conversion saw on the way, at working size.
    pub stages: Stages,
}

/// The stages of preparing one picture, at working size (the input, shrunk so its longer side
/// is at most 512 pixels), for `predict --save-prepared` to show.
#[derive(Clone, Debug, PartialEq)]
pub struct Stages {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The paper's level as estimated at each pixel (the background model), in the input's
    /// polarity.
    pub background: Vec<u8>,
    /// The ink found: its strength above the paper, stretched so the strongest is 255, 0
    /// where there is none (frames, grain and specks removed); white on black.
    pub ink: Vec<u8>,
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
    /// The paper's estimated level varies by 96 levels or more across the input: a strong
    /// shadow or uneven light. The conversion subtracts it, but the ink found may include some.
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
                "the ink is only {side} pixel{} across, blown up to 20 (MNIST digits are drawn at 20)",
                if *side == 1 { "" } else { "s" }
            ),
            Unlike::UnevenBackground => {
                write!(
                    f,
                    "the background is very uneven (a shadow?): part of it may have been taken \
                     for ink"
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
        "the image is blank: nothing stands out from the background (transparent pixels, grain and a frame around the picture count as background)"
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

/// Longest side of the picture the ink is looked for on: a larger input is first shrunk to it
/// by area averaging (a 4000×3000 photo to 512×384), which also averages fine grain away.
const WORK_SIDE: usize = 512;

/// A picture at least this many pixels on its shorter side (at working size) is smoothed by a
/// 3×3 median before its ink is looked for: the grain of paper goes, strokes drawn at that size
/// stay.
const MEDIAN_MIN_SIDE: usize = 112;

/// A connected mark of ink covering this share of the picture's outermost ring or more is a
/// frame (or the table around a photographed sheet): background, not part of the digit.
const FRAME_RING_SHARE: f64 = 0.6;

/// The level the border mostly has is the paper unless it covers less than this share of the
/// picture: then it is a frame around it, and the other level is the paper.
const PAPER_MIN_SHARE: f64 = 0.4;

/// Marks smaller than this share of the largest one are grain or dust, not part of the digit.
const SPECK_SHARE: f64 = 0.02;

/// A background model spanning this many levels or more is an uneven background (a shadow, a
/// frame only partly there): the conversion corrects it, and says so.
const UNEVEN_LEVELS: f32 = 96.0;

/// The working picture: `img` shrunk so its longer side is at most [`WORK_SIDE`], then
/// median-filtered when large enough to have grain. Returns its width, height, values and how
/// many input pixels one working pixel spans.
fn working_picture(img: &Gray) -> (usize, usize, Vec<f32>, f64) {
    let (w0, h0) = (img.width, img.height);
    let longer = w0.max(h0);
    let raw: Vec<f32> = img.pixels.iter().map(|&p| f32::from(p)).collect();
    let (w, h, work) = if longer > WORK_SIDE {
        let s = WORK_SIDE as f64 / longer as f64;
        let nw = ((w0 as f64 * s).round() as usize).max(1);
        let nh = ((h0 as f64 * s).round() as usize).max(1);
        (nw, nh, resize_area(&raw, w0, h0, nw, nh))
    } else {
        (w0, h0, raw)
    };
    // Input pixels per working pixel.
    let factor = longer as f64 / w.max(h) as f64;
    let work = if w.min(h) >= MEDIAN_MIN_SIDE {
        median3(&work, w, h)
    } else {
        work
    };
    (w, h, work, factor)
}

/// Whether to invert `work` so the ink is bright, and which pixels are paper: of Otsu's two
/// levels, the paper is the one most of the border (`ring`) has, unless it covers under
/// [`PAPER_MIN_SHARE`] of the picture (then it is a frame, and the other level is the paper).
fn polarity(work: &[f32], ring: &[usize], invert: Invert) -> (bool, Vec<bool>) {
    let split = otsu(work);
    let bright: Vec<bool> = work.iter().map(|&v| v > split).collect();
    let bright_share = bright.iter().filter(|&&b| b).count() as f64 / bright.len() as f64;
    let ring_bright = ring.iter().filter(|&&i| bright[i]).count() as f64 / ring.len() as f64;
    let inverted = match invert {
        Invert::Auto if ring_bright >= 0.5 => bright_share >= PAPER_MIN_SHARE,
        Invert::Auto => bright_share > 1.0 - PAPER_MIN_SHARE,
        Invert::Always => true,
        Invert::Never => false,
    };
    let is_paper = bright.iter().map(|&b| b == inverted).collect();
    (inverted, is_paper)
}

/// The ink of the marks kept: connected pixels of `strength` (`w × h`) above `low`, holding a
/// pixel above `high`, less frames (covering [`FRAME_RING_SHARE`] of the `ring_len` border
/// pixels) and specks (under [`SPECK_SHARE`] of the largest mark). Zero elsewhere.
fn kept_marks(
    strength: &[f32],
    w: usize,
    h: usize,
    (low, high): (f32, f32),
    ring_len: usize,
) -> Vec<f32> {
    let marks = components(strength, w, h, low);
    let ring_len = ring_len as f64;
    let candidates: Vec<&Mark> = marks
        .iter()
        .filter(|m| m.peak > high && (m.ring as f64) < FRAME_RING_SHARE * ring_len)
        .collect();
    let largest = candidates.iter().map(|m| m.pixels.len()).max().unwrap_or(0);
    let mut kept = vec![0.0f32; w * h];
    for m in candidates
        .iter()
        .filter(|m| m.pixels.len() as f64 >= SPECK_SHARE * largest as f64)
    {
        for &i in &m.pixels {
            kept[i] = strength[i];
        }
    }
    kept
}

impl Stages {
    /// The stages of a `w × h` working picture: its `background` model (in the input's
    /// polarity) and the `kept` ink.
    fn new(w: usize, h: usize, background: &[f32], kept: &[f32], inverted: bool) -> Self {
        let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        Stages {
            width: w,
            height: h,
            background: background
                .iter()
                .map(|&b| to_u8(if inverted { 255.0 - b } else { b }))
                .collect(),
            ink: kept.iter().map(|&v| to_u8(v)).collect(),
        }
    }
}

/// What the conversion notes about a prepared input: the 28×28 rules of [`unlike_mnist`],
/// then a digit `side` input pixels tall that is tiny, an uneven background, and the edges a
/// cut-off digit touches.
fn notes(
    pixels: &[u8],
    side: usize,
    uneven: bool,
    cut_off: Option<Vec<&'static str>>,
) -> Vec<Unlike> {
    let mut unlike = unlike_mnist(pixels);
    if side < TINY_SIDE {
        unlike.push(Unlike::Tiny { side });
    }
    if uneven {
        unlike.push(Unlike::UnevenBackground);
    }
    if let Some(edges) = cut_off {
        unlike.push(Unlike::CutOff { edges });
    }
    unlike
}

/// Convert a grayscale image to MNIST's 28×28 white-on-black format (see the module docs).
pub fn to_mnist(img: &Gray, invert: Invert) -> Result<Prepared, PreprocessError> {
    let (w0, h0) = (img.width, img.height);
    if w0 == 0 || h0 == 0 || img.pixels.len() != w0 * h0 {
        return Err(PreprocessError::Blank);
    }
    let (w, h, work, factor) = working_picture(img);
    let (lo, hi) = work
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    if hi - lo < 0.5 {
        return Err(PreprocessError::Blank);
    }

    // Two levels, split where the histogram is best split (Otsu): which is the paper?
    let ring = ring_indices(w, h);
    let (inverted, is_paper) = polarity(&work, &ring, invert);
    // Ink is bright from here on.
    let ink: Vec<f32> = if inverted {
        work.iter().map(|&v| 255.0 - v).collect()
    } else {
        work
    };

    // The paper's level and its gradient: medians of the paper's pixels on a coarse grid.
    let background = background_model(&ink, &is_paper, w, h);
    let strength: Vec<f32> = ink
        .iter()
        .zip(&background)
        .map(|(&v, &b)| (v - b).max(0.0))
        .collect();
    let grain = grain_sigma(&ink, &background, &is_paper);
    // Ink stands out from the paper by the histogram's own split, and well above the grain.
    let high = otsu(&strength).max(4.0 * grain);
    let low = (3.0 * grain).min(high / 2.0);

    // Marks: connected pixels above `low`, holding a pixel above `high`; frames and specks go.
    let mut kept = kept_marks(&strength, w, h, (low, high), ring.len());
    let max = kept.iter().copied().fold(0.0, f32::max);
    if max <= 0.0 {
        return Err(PreprocessError::Blank);
    }
    kept.iter_mut().for_each(|v| *v *= 255.0 / max);

    let threshold = 255.0 / 4.0;
    let (r0, r1, c0, c1) = ink_box(&kept, w, h, threshold);
    let (bw, bh) = (c1 - c0, r1 - r0);
    let (edges, cut_off) = edges_with_ink(&kept, w, h, threshold, factor);
    let (bg_lo, bg_hi) = background
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let uneven = bg_hi - bg_lo >= UNEVEN_LEVELS;
    let crop: Vec<f32> = (r0..r1)
        .flat_map(|r| kept[r * w + c0..r * w + c1].iter().copied())
        .collect();

    // Longer side to BOX pixels, at least one pixel on the shorter side.
    let scale = BOX as f64 / bw.max(bh) as f64;
    let nw = ((bw as f64 * scale).round() as usize).clamp(1, BOX);
    let nh = ((bh as f64 * scale).round() as usize).clamp(1, BOX);
    let small = resize_area(&crop, bw, bh, nw, nh);

    let pixels = centred(&small, nw, nh);
    let side = (bw.max(bh) as f64 * factor).round() as usize;
    let unlike = notes(&pixels, side, uneven, cut_off.then_some(edges));
    let stages = Stages::new(w, h, &background, &kept, inverted);
    Ok(Prepared {
        pixels,
        inverted,
        unlike,
        stages,
    })
}

/// The indices of the outermost ring of a `w × h` picture, each once.
fn ring_indices(w: usize, h: usize) -> Vec<usize> {
    (0..h)
        .flat_map(|r| (0..w).map(move |c| (r, c)))
        .filter(|&(r, c)| r == 0 || c == 0 || r + 1 == h || c + 1 == w)
        .map(|(r, c)| r * w + c)
        .collect()
}

/// Each pixel replaced by the median of its 3×3 neighbourhood (clamped at the edges).
fn median3(x: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0.0; w * h];
    let mut window = [0.0f32; 9];
    for r in 0..h {
        for c in 0..w {
            let mut k = 0;
            for dr in [-1isize, 0, 1] {
                for dc in [-1isize, 0, 1] {
                    let rr = (r as isize + dr).clamp(0, h as isize - 1) as usize;
                    let cc = (c as isize + dc).clamp(0, w as isize - 1) as usize;
                    window[k] = x[rr * w + cc];
                    k += 1;
                }
            }
            window.sort_unstable_by(f32::total_cmp);
            out[r * w + c] = window[4];
        }
    }
    out
}

/// Otsu's threshold of values in 0–255: the level that best splits their histogram into two
/// classes (largest between-class variance); values above it are the brighter class.
fn otsu(x: &[f32]) -> f32 {
    let mut hist = [0f64; 256];
    for &v in x {
        hist[v.round().clamp(0.0, 255.0) as usize] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let sum: f64 = hist.iter().enumerate().map(|(i, &n)| i as f64 * n).sum();
    let (mut below, mut below_sum, mut best, mut at) = (0.0, 0.0, -1.0, 0usize);
    for (t, &n) in hist.iter().enumerate().take(255) {
        below += n;
        below_sum += t as f64 * n;
        let above = total - below;
        if below == 0.0 || above == 0.0 {
            continue;
        }
        let (m0, m1) = (below_sum / below, (sum - below_sum) / above);
        let between = below * above * (m0 - m1) * (m0 - m1);
        if between > best {
            (best, at) = (between, t);
        }
    }
    at as f32 + 0.5
}

/// The paper's level at every pixel: the level of the paper's pixels in each cell of a coarse
/// grid ([`paper_level`]; cells of an eighth of the longer side, at least 8 pixels), cells
/// under half paper or darker than their neighbours filled from them, interpolated bilinearly
/// between the cells' centres.
fn background_model(ink: &[f32], is_paper: &[bool], w: usize, h: usize) -> Vec<f32> {
    let cell = (w.max(h) / 8).max(8);
    let (gw, gh) = (w.div_ceil(cell), h.div_ceil(cell));
    let mut grid: Vec<Option<f32>> = vec![None; gw * gh];
    for gy in 0..gh {
        for gx in 0..gw {
            let mut values: Vec<f32> = Vec::new();
            let mut n = 0usize;
            for r in gy * cell..((gy + 1) * cell).min(h) {
                for c in gx * cell..((gx + 1) * cell).min(w) {
                    n += 1;
                    if is_paper[r * w + c] {
                        values.push(ink[r * w + c]);
                    }
                }
            }
            if !values.is_empty() && values.len() * 2 >= n {
                grid[gy * gw + gx] = Some(paper_level(&mut values));
            }
        }
    }
    drop_dark_cells(&mut grid, gw, gh);
    if grid.iter().all(Option::is_none) {
        let mut all: Vec<f32> = ink
            .iter()
            .zip(is_paper)
            .filter_map(|(&v, &p)| p.then_some(v))
            .collect();
        all.sort_unstable_by(f32::total_cmp);
        let level = all.get(all.len() / 2).copied().unwrap_or(0.0);
        grid.iter_mut().for_each(|g| *g = Some(level));
    }
    fill_missing_cells(&mut grid, gw, gh);
    let grid: Vec<f32> = grid.into_iter().map(|g| g.unwrap_or(0.0)).collect();
    interpolate(&grid, (gw, gh), cell, w, h)
}

/// Forget the cells of the `gw × gh` grid that are darker (more ink-like) than their
/// neighbours' median by more than the paper peak's width: they saw mostly the faint edges of a
/// stroke, and their neighbours fill them.
fn drop_dark_cells(grid: &mut [Option<f32>], gw: usize, gh: usize) {
    let measured = grid.to_vec();
    for gy in 0..gh {
        for gx in 0..gw {
            let Some(level) = measured[gy * gw + gx] else {
                continue;
            };
            let mut near: Vec<f32> = (gy.saturating_sub(1)..(gy + 2).min(gh))
                .flat_map(|y| (gx.saturating_sub(1)..(gx + 2).min(gw)).map(move |x| (y, x)))
                .filter(|&(y, x)| (y, x) != (gy, gx))
                .filter_map(|(y, x)| measured[y * gw + x])
                .collect();
            if near.len() >= 3 {
                near.sort_unstable_by(f32::total_cmp);
                if level > near[near.len() / 2] + PAPER_PEAK_LEVELS {
                    grid[gy * gw + gx] = None;
                }
            }
        }
    }
}

/// Give each unknown cell of the `gw × gh` grid the mean of its known neighbours, ring by ring
/// (at least one cell is known).
fn fill_missing_cells(grid: &mut [Option<f32>], gw: usize, gh: usize) {
    while grid.iter().any(Option::is_none) {
        let before = grid.to_vec();
        for gy in 0..gh {
            for gx in 0..gw {
                if before[gy * gw + gx].is_some() {
                    continue;
                }
                let near: Vec<f32> = [(0, 1), (2, 1), (1, 0), (1, 2)]
                    .iter()
                    .filter_map(|&(dy, dx)| {
                        let (y, x) = ((gy + dy).checked_sub(1)?, (gx + dx).checked_sub(1)?);
                        (y < gh && x < gw).then(|| before[y * gw + x]).flatten()
                    })
                    .collect();
                if !near.is_empty() {
                    grid[gy * gw + gx] = Some(near.iter().sum::<f32>() / near.len() as f32);
                }
            }
        }
    }
}

/// The `w × h` background from the `gw × gh` grid of `cell`-pixel cells, bilinearly
/// interpolated between the cells' centres.
fn interpolate(
    grid: &[f32],
    (gw, gh): (usize, usize),
    cell: usize,
    w: usize,
    h: usize,
) -> Vec<f32> {
    let axis = |p: usize, cells: usize| {
        let f = ((p as f32 + 0.5) / cell as f32 - 0.5).clamp(0.0, (cells - 1) as f32);
        let i = f.floor() as usize;
        (i, (i + 1).min(cells - 1), f - i as f32)
    };
    let mut out = vec![0.0; w * h];
    for r in 0..h {
        let (y0, y1, fy) = axis(r, gh);
        for c in 0..w {
            let (x0, x1, fx) = axis(c, gw);
            let top = grid[y0 * gw + x0] * (1.0 - fx) + grid[y0 * gw + x1] * fx;
            let bottom = grid[y1 * gw + x0] * (1.0 - fx) + grid[y1 * gw + x1] * fx;
            out[r * w + c] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// The level of a cell's paper pixels: the median of those near their most common level (the
/// histogram's peak, in bins of 4), so the faint edges of strokes, which fall on the paper's
/// side of the split, do not pull it towards the ink.
fn paper_level(values: &mut [f32]) -> f32 {
    let mut bins = [0usize; 64];
    for &v in values.iter() {
        bins[(v.clamp(0.0, 255.0) as usize) / 4] += 1;
    }
    let peak = (0..64).fold(0, |best, b| if bins[b] > bins[best] { b } else { best });
    let centre = peak as f32 * 4.0 + 1.5;
    values.sort_unstable_by(f32::total_cmp);
    let near: Vec<f32> = values
        .iter()
        .copied()
        .filter(|v| (v - centre).abs() <= PAPER_PEAK_LEVELS)
        .collect();
    near.get(near.len() / 2).copied().unwrap_or(centre)
}

/// How far from the histogram's peak a cell's pixels count as its paper.
const PAPER_PEAK_LEVELS: f32 = 12.0;

/// The grain of the paper: the spread of its pixels around the background model (median
/// absolute deviation, scaled to a normal distribution's σ), 0 for clean paper.
fn grain_sigma(ink: &[f32], background: &[f32], is_paper: &[bool]) -> f32 {
    let step = (ink.len() / 50_000).max(1);
    let mut dev: Vec<f32> = (0..ink.len())
        .step_by(step)
        .filter(|&i| is_paper[i])
        .map(|i| (ink[i] - background[i]).abs())
        .collect();
    if dev.is_empty() {
        return 0.0;
    }
    dev.sort_unstable_by(f32::total_cmp);
    1.4826 * dev[dev.len() / 2]
}

/// A connected mark (8-neighbour) of pixels above the low threshold.
struct Mark {
    /// Its pixels' indices.
    pixels: Vec<usize>,
    /// Its strongest pixel.
    peak: f32,
    /// How many of its pixels lie on the picture's outermost ring.
    ring: usize,
}

/// The connected marks of the pixels of `x` (`w × h`) above `low`.
fn components(x: &[f32], w: usize, h: usize, low: f32) -> Vec<Mark> {
    let mut seen = vec![false; w * h];
    let mut marks = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if seen[start] || x[start] <= low {
            continue;
        }
        let mut mark = Mark {
            pixels: Vec::new(),
            peak: 0.0,
            ring: 0,
        };
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (r, c) = (i / w, i % w);
            mark.pixels.push(i);
            mark.peak = mark.peak.max(x[i]);
            if r == 0 || c == 0 || r + 1 == h || c + 1 == w {
                mark.ring += 1;
            }
            for nr in r.saturating_sub(1)..=(r + 1).min(h - 1) {
                for nc in c.saturating_sub(1)..=(c + 1).min(w - 1) {
                    let j = nr * w + nc;
                    if !seen[j] && x[j] > low {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        marks.push(mark);
    }
    marks
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
/// the digit looks cut off: ink on two edges, or [`CUT_EDGE_PIXELS`] input pixels of one
/// (`factor` input pixels per pixel of `x`).
fn edges_with_ink(
    x: &[f32],
    w: usize,
    h: usize,
    threshold: f32,
    factor: f64,
) -> (Vec<&'static str>, bool) {
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
    let cut_off = edges.len() >= 2
        || counts
            .iter()
            .any(|&(n, _)| n as f64 * factor >= CUT_EDGE_PIXELS as f64);
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
