//! Any bytes as an image file for `predict` (decode + 28×28 conversion).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg_cli::fuzz_entry::image_file(data);
});
