//! Image preprocessing on known pixels: polarity, background, crop, scale, centring, decoding.

use mnist_logreg_cli::preprocess::{
    Gray, Invert, PreprocessError, SIDE, Unlike, load_gray, resize_area, to_mnist,
};

/// A `w × h` image of `background` with the rectangle rows `r0..r1`, cols `c0..c1` set to
/// `ink`.
fn rect_image(w: usize, h: usize, background: u8, ink: u8, rect: [usize; 4]) -> Gray {
    let [r0, r1, c0, c1] = rect;
    let pixels = (0..h)
        .flat_map(|r| {
            (0..w).map(move |c| {
                if (r0..r1).contains(&r) && (c0..c1).contains(&c) {
                    ink
                } else {
                    background
                }
            })
        })
        .collect();
    Gray {
        width: w,
        height: h,
        pixels,
    }
}

/// The 28×28 image with the rectangle rows `r0..r1`, cols `c0..c1` at 255, the rest 0.
fn expected(rect: [usize; 4]) -> Vec<u8> {
    rect_image(SIDE, SIDE, 0, 255, rect).pixels
}

#[test]
fn square_is_fitted_to_20_pixels_and_centred() {
    // A 20×20 white square off-centre in a 56×56 black image: cropped, kept at 20×20 and
    // placed at rows/cols 4..24 (centre of mass at 14).
    let img = rect_image(56, 56, 0, 255, [3, 23, 30, 50]);
    let out = to_mnist(&img, Invert::Auto).unwrap();
    assert!(!out.inverted);
    assert_eq!(out.pixels, expected([4, 24, 4, 24]));
}

#[test]
fn dark_ink_on_grey_paper_is_inverted_and_background_removed() {
    // Black 40×40 square on light-grey paper (200) in a 100×80 image: scaled by 1/2 to
    // 20×20, inverted, the paper becomes exactly 0 and the ink 255.
    let img = rect_image(100, 80, 200, 0, [10, 50, 50, 90]);
    let out = to_mnist(&img, Invert::Auto).unwrap();
    assert!(out.inverted);
    assert_eq!(out.pixels, expected([4, 24, 4, 24]));
    // Without inversion nothing is brighter than the paper: a blank image, not a wrong guess.
    assert!(matches!(
        to_mnist(&img, Invert::Never),
        Err(PreprocessError::Blank)
    ));
}

#[test]
fn wide_rectangle_keeps_its_aspect_ratio() {
    // 40 wide × 10 tall → 20 × 5; centre of mass (2.5, 10) → top = round(11.5) = 12,
    // left = 4.
    let img = rect_image(64, 32, 0, 180, [5, 15, 12, 52]);
    let out = to_mnist(&img, Invert::Never).unwrap();
    assert_eq!(out.pixels, expected([12, 17, 4, 24]));
}

#[test]
fn faint_ink_is_stretched_to_full_intensity() {
    let img = rect_image(20, 20, 10, 70, [0, 20, 5, 15]);
    let out = to_mnist(&img, Invert::Never).unwrap();
    assert_eq!(*out.pixels.iter().max().unwrap(), 255);
}

#[test]
fn centre_of_mass_of_an_asymmetric_shape_lands_at_the_centre() {
    // An L: a heavy vertical bar and a thin foot. After placement the centre of mass of the
    // 28×28 result is within half a pixel of (14, 14).
    let mut img = rect_image(50, 50, 0, 255, [5, 45, 10, 20]);
    for r in 40..45 {
        for c in 20..40 {
            img.pixels[r * 50 + c] = 255;
        }
    }
    let out = to_mnist(&img, Invert::Never).unwrap();
    let (mut m, mut mr, mut mc) = (0.0, 0.0, 0.0);
    for (i, &p) in out.pixels.iter().enumerate() {
        let p = p as f64;
        m += p;
        mr += p * ((i / SIDE) as f64 + 0.5);
        mc += p * ((i % SIDE) as f64 + 0.5);
    }
    assert!((mr / m - 14.0).abs() <= 0.5, "row centre {}", mr / m);
    assert!((mc / m - 14.0).abs() <= 0.5, "col centre {}", mc / m);
}

#[test]
fn blank_images_are_refused() {
    for img in [
        rect_image(30, 30, 0, 0, [0, 0, 0, 0]),
        rect_image(30, 30, 255, 255, [0, 0, 0, 0]),
        Gray {
            width: 0,
            height: 0,
            pixels: vec![],
        },
    ] {
        assert!(matches!(
            to_mnist(&img, Invert::Auto),
            Err(PreprocessError::Blank)
        ));
    }
}

#[test]
fn area_resampling_averages_exactly() {
    // 3 → 2 cells: [0, 90, 180] → [(0 + 90/2) / 1.5, (90/2 + 180) / 1.5] = [30, 150].
    let out = resize_area(&[0.0, 90.0, 180.0], 3, 1, 2, 1);
    assert!(
        (out[0] - 30.0).abs() < 1e-4 && (out[1] - 150.0).abs() < 1e-4,
        "{out:?}"
    );
    // 4×4 → 2×2: block means.
    let src: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let out = resize_area(&src, 4, 4, 2, 2);
    let want = [2.5, 4.5, 10.5, 12.5];
    for (o, w) in out.iter().zip(want) {
        assert!((o - w).abs() < 1e-4, "{out:?}");
    }
    // Upscaling 1 → 3 repeats.
    assert_eq!(resize_area(&[7.0], 1, 1, 3, 1), vec![7.0; 3]);
}

fn save(dir: &std::path::Path, name: &str, img: &image::DynamicImage) -> std::path::PathBuf {
    let path = dir.join(name);
    img.save(&path).unwrap();
    path
}

#[test]
fn png_jpeg_and_pgm_decode_to_the_same_digit() {
    let dir = tempfile::tempdir().unwrap();
    let gray = rect_image(60, 60, 230, 20, [10, 50, 20, 40]);
    let luma = image::GrayImage::from_raw(60, 60, gray.pixels.clone()).expect("buffer of 60×60");
    let dynamic = image::DynamicImage::ImageLuma8(luma);
    let want = to_mnist(&gray, Invert::Auto).unwrap();
    for name in ["d.png", "d.pgm", "d.jpg"] {
        let path = save(dir.path(), name, &dynamic);
        let loaded = load_gray(&path).unwrap();
        assert_eq!((loaded.width, loaded.height), (60, 60));
        let got = to_mnist(&loaded, Invert::Auto).unwrap();
        assert!(got.inverted, "{name}");
        // JPEG is lossy: allow small differences there, none for PNG/PGM.
        let tolerance = if name.ends_with("jpg") { 40 } else { 0 };
        let worst = got
            .pixels
            .iter()
            .zip(&want.pixels)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= tolerance, "{name}: max pixel difference {worst}");
    }
    // The format is recognised by content, not by the file name.
    let misnamed = dir.path().join("really-a-pgm.png");
    std::fs::copy(dir.path().join("d.pgm"), &misnamed).unwrap();
    assert_eq!(load_gray(&misnamed).unwrap().pixels.len(), 3600);
}

/// Load a 40×40 PNG of colour `rgb`, opaque where `ink(x, y)`, fully transparent elsewhere.
fn load_transparent_png(rgb: u8, ink: impl Fn(u32, u32) -> bool) -> Gray {
    let dir = tempfile::tempdir().unwrap();
    let rgba = image::RgbaImage::from_fn(40, 40, |x, y| {
        image::Rgba([rgb, rgb, rgb, if ink(x, y) { 255 } else { 0 }])
    });
    let path = save(dir.path(), "t.png", &image::DynamicImage::ImageRgba8(rgba));
    load_gray(&path).unwrap()
}

#[test]
fn transparent_png_is_composited_onto_white() {
    // Black ink on a fully transparent background (as drawing programs export).
    let gray = load_transparent_png(0, |x, y| (10..30).contains(&x) && (5..35).contains(&y));
    assert_eq!(gray.pixels[0], 255, "transparent → white paper");
    assert_eq!(gray.pixels[10 * 40 + 15], 0, "opaque black ink stays black");
    assert!(to_mnist(&gray, Invert::Auto).unwrap().inverted);
}

#[test]
fn unreadable_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"this is not an image").unwrap();
    let e = load_gray(&junk).unwrap_err().to_string();
    assert!(
        e.contains("junk.png: cannot read the image: not an image"),
        "{e}"
    );
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let e = load_gray(&empty).unwrap_err().to_string();
    assert!(
        e.contains("empty.png: cannot read the image: the file is empty"),
        "{e}"
    );
    let e = load_gray(&dir.path().join("missing.png"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.png"), "{e}");
}

/// A `w × h` black image with white rectangles (rows `r0..r1`, cols `c0..c1`) and, optionally,
/// the ring of pixels at distance 2..4 of each rectangle cleared, drawing an outline.
fn drawing(w: usize, h: usize, rects: &[[usize; 4]]) -> Gray {
    let mut pixels = vec![0u8; w * h];
    for &[r0, r1, c0, c1] in rects {
        for r in r0..r1 {
            for c in c0..c1 {
                // Outlines, 3 pixels thick: a digit-like stroke, not a solid block.
                let edge = r < r0 + 3 || r + 3 >= r1 || c < c0 + 3 || c + 3 >= c1;
                if edge {
                    pixels[r * w + c] = 255;
                }
            }
        }
    }
    Gray {
        width: w,
        height: h,
        pixels,
    }
}

#[test]
fn a_digit_like_stroke_gets_no_warning() {
    // An outlined 0 (ring), tall, in a 40×40 image, like a drawn digit.
    let out = to_mnist(&drawing(40, 40, &[[5, 35, 12, 28]]), Invert::Auto).unwrap();
    assert_eq!(out.unlike, []);
}

#[test]
fn two_digits_side_by_side_are_flagged() {
    let out = to_mnist(
        &drawing(90, 40, &[[5, 35, 5, 25], [5, 35, 60, 80]]),
        Invert::Auto,
    )
    .unwrap();
    assert_eq!(out.unlike, [Unlike::SideBySide { marks: 2 }]);
}

#[test]
fn noise_is_not_taken_for_a_digit() {
    // Uniform noise (a fixed LCG), 4000×3000 like a photo of nothing.
    let mut state = 12345u32;
    let pixels = (0..4000 * 3000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let noise = Gray {
        width: 4000,
        height: 3000,
        pixels,
    };
    // Shrunk to 512×384 by area averaging, the noise is a grainy grey: blank, much ink, or
    // ink all over the edges (a warning that always shows).
    match to_mnist(&noise, Invert::Auto) {
        Err(PreprocessError::Blank) => {}
        Ok(out) => assert!(
            out.unlike
                .iter()
                .any(|u| matches!(u, Unlike::MuchInk { .. }) || u.seen_in_input()),
            "{:?}",
            out.unlike
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_tiny_image_blown_up_is_flagged() {
    // A 3×3 image with a 2×2 mark (a digit drawn in 4 pixels, then scaled to 20).
    let tiny = Gray {
        width: 3,
        height: 3,
        pixels: vec![0, 0, 0, 0, 255, 255, 0, 255, 255],
    };
    let out = to_mnist(&tiny, Invert::Never).unwrap();
    assert!(
        out.unlike.contains(&Unlike::Tiny { side: 2 }),
        "{:?}",
        out.unlike
    );
}

#[test]
fn a_frame_or_shadow_on_the_border_is_flagged() {
    // A ring digit on black, with a bright band down the left third of the border (a shadow
    // edge seen the other way round, or a frame).
    let mut img = drawing(60, 60, &[[10, 50, 22, 38]]);
    for r in 0..60 {
        for c in 0..6 {
            img.pixels[r * 60 + c] = 200;
        }
    }
    // Not a frame (it covers a third of the border): ink cut off at three edges.
    let out = to_mnist(&img, Invert::Never).unwrap();
    assert!(
        out.unlike.iter().any(Unlike::seen_in_input),
        "{:?}",
        out.unlike
    );
}

#[test]
fn mnist_test_digits_are_not_flagged_but_for_one_in_a_thousand() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is a member of the repository")
        .join("data/mnist");
    let opts = mnist_logreg::idx::LoadOptions::default();
    let test = mnist_logreg::dataset::Dataset::open_test(&dir, &opts).unwrap();
    let flagged: Vec<(usize, Vec<Unlike>)> = (0..test.len())
        .filter_map(|i| {
            let img = Gray {
                width: SIDE,
                height: SIDE,
                pixels: test.image(i).to_vec(),
            };
            let out = to_mnist(&img, Invert::Never).unwrap();
            (!out.unlike.is_empty()).then_some((i, out.unlike))
        })
        .collect();
    assert!(
        flagged.len() <= 10,
        "{} flagged: {flagged:?}",
        flagged.len()
    );
}

#[test]
fn exif_orientation_is_applied() {
    // A PNG whose pixels are stored sideways with an eXIf chunk saying "rotate 90° clockwise"
    // (orientation 6), as phones write them: the loaded image is upright.
    let (w, h) = (30u32, 20u32);
    let mut stored = image::GrayImage::new(w, h);
    stored.put_pixel(0, 0, image::Luma([255])); // top-left as stored
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(stored)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // TIFF header (big-endian), one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let exif: Vec<u8> = [
        &b"MM\0\x2a\0\0\0\x08"[..],
        &[0, 1],
        &[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0],
        &[0, 0, 0, 0],
    ]
    .concat();
    let mut chunk = (exif.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"eXIf");
    chunk.extend_from_slice(&exif);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk[4..]);
    chunk.extend_from_slice(&crc.sum().to_be_bytes());
    // After the IHDR chunk (8-byte signature + 25-byte IHDR).
    let at = 8 + 25;
    png.splice(at..at, chunk);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sideways.png");
    std::fs::write(&path, &png).unwrap();
    let gray = load_gray(&path).unwrap();
    assert_eq!((gray.width, gray.height), (20, 30), "rotated upright");
    // Rotating 90° clockwise moves the stored top-left pixel to the top-right.
    assert_eq!(gray.pixels[19], 255);
    assert_eq!(gray.pixels.iter().filter(|&&p| p == 255).count(), 1);
}

#[test]
fn light_ink_on_a_transparent_background_is_kept() {
    // White ink on a transparent background: the paper behind it becomes black.
    let gray = load_transparent_png(255, |x, y| {
        (10..30).contains(&x) && (5..35).contains(&y) && !(13..=26).contains(&x)
    });
    assert_eq!(
        gray.pixels[0], 0,
        "transparent → black paper behind light ink"
    );
    let out = to_mnist(&gray, Invert::Auto).unwrap();
    assert!(!out.inverted);
}

#[test]
fn the_blank_message_mentions_transparency_and_no_flag() {
    let msg = PreprocessError::Blank.to_string();
    assert!(msg.contains("transparent") && !msg.contains("--"), "{msg}");
}
