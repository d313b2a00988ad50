//! Entry points of the binaries' parsers (pictures, class names) for the cargo-fuzz targets
//! (`fuzz/`) and the test suite, like the library's own `mnist_logreg::fuzz_entry`: arbitrary
//! bytes in, an error or a result that satisfies its invariants out — never a panic.

/// Bytes as an image file for `predict`: decoded and converted to 28×28, or refused. Returns
/// whether it decoded.
pub fn image_file(data: &[u8]) -> bool {
    // 1 Mpixel: big enough for any real digit photo's structure, small enough to stay fast.
    match crate::preprocess::decode_gray(data, 1 << 20) {
        Ok(gray) => {
            assert_eq!(gray.pixels.len(), gray.width * gray.height);
            if let Ok(p) = crate::preprocess::to_mnist(&gray, crate::preprocess::Invert::Auto) {
                assert_eq!(p.pixels.len(), 28 * 28);
            }
            true
        }
        Err(_) => false,
    }
}

/// Bytes as a class-names file (10 classes). Returns whether it parsed.
pub fn class_names(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match crate::classes::ClassNames::parse(text, mnist_logreg::MNIST_CLASSES) {
        Ok(names) => {
            assert_eq!(names.len(), mnist_logreg::MNIST_CLASSES);
            (0..names.len()).all(|c| !names.name(c).is_empty())
        }
        Err(_) => false,
    }
}
