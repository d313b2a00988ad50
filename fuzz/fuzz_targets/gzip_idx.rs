//! Any bytes as a .gz IDX stream (images or labels, chosen by the first byte).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnist_logreg::fuzz_entry::gzip_idx(data);
});
