//! Any bytes as an IDX labels file: an error or a valid file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg::fuzz_entry::idx_labels(data);
});
