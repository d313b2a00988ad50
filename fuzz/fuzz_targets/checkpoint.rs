//! Any bytes as a safetensors checkpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg::fuzz_entry::checkpoint(data);
});
