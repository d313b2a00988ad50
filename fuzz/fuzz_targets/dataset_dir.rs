//! A whole dataset directory assembled from fuzzer bytes (four files, raw or .gz).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg::fuzz_entry::dataset_dir(data);
});
