//! Hostile bytes for the binaries' picture decoder (`predict`, `serve`): arbitrary bytes,
//! mutated valid pictures and a replay of the `image_file` fuzz corpora (`fuzz/seeds`,
//! `fuzz/corpus-min`) through the entry point the cargo-fuzz target uses. The library's
//! parsers have theirs in the library's `tests/library/hostile_input.rs`.

use std::path::PathBuf;

use mnist_logreg_cli::fuzz_entry;
use proptest::prelude::*;

/// The corpora of the `image_file` target under `fuzz/{dir}`.
fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir)
        .join("image_file");
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (every target has a corpus)", path.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Proptest cases: 256, or proptest's own `PROPTEST_CASES` (CI lowers it under emulation).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").map_or(256, |n| n.parse().expect("PROPTEST_CASES"))
}

#[test]
fn seeds_are_valid_pictures_and_corpora_replay() {
    let seeds = corpus("seeds");
    assert!(!seeds.is_empty());
    for seed in &seeds {
        assert!(fuzz_entry::image_file(seed), "a seed does not decode");
    }
    for input in corpus("corpus-min") {
        fuzz_entry::image_file(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz_entry::image_file(&data);
    }

    #[test]
    fn mutated_pictures_never_panic(
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        keep in any::<prop::sample::Index>(),
    ) {
        let seeds = corpus("seeds");
        let mut data = which.get(&seeds).clone();
        for (at, mask) in flips {
            let i = at.index(data.len());
            data[i] ^= mask;
        }
        data.truncate(keep.index(data.len() + 1));
        fuzz_entry::image_file(&data);
    }
}
