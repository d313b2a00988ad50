//! Any bytes as a class-names file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg_cli::fuzz_entry::class_names(data);
});
