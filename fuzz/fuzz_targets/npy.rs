//! Any bytes as a `.npy` (or IDX) features file and labels file: an error or a valid file,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg::fuzz_entry::npy(data);
});
