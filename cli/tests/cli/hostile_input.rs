//! Hostile bytes for the binaries' parsers: the picture decoder (`predict`, `serve`) and the
//! class-names file. Arbitrary bytes, mutated valid inputs and a replay of the `image_file`
//! and `class_names` fuzz corpora (`fuzz/seeds`, `fuzz/corpus-min`) through the entry points
//! the cargo-fuzz targets use. The library's parsers have theirs in the library's
//! `tests/library/hostile_input.rs`.

use std::path::PathBuf;

use mnist_logreg_cli::fuzz_entry;
use proptest::prelude::*;

type Entry = fn(&[u8]) -> bool;

/// The targets of this crate's entry points, by their corpus directory's name.
const ENTRIES: [(&str, Entry); 2] = [
    ("image_file", fuzz_entry::image_file),
    ("class_names", fuzz_entry::class_names),
];

/// The corpus of `target` under `fuzz/{dir}`.
fn corpus(dir: &str, target: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir)
        .join(target);
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
fn seeds_are_valid_inputs_and_corpora_replay() {
    for (target, entry) in ENTRIES {
        let seeds = corpus("seeds", target);
        assert!(!seeds.is_empty(), "{target}: no seeds");
        for seed in &seeds {
            assert!(entry(seed), "{target}: a seed does not parse");
        }
        for input in corpus("corpus-min", target) {
            entry(&input);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for (_, entry) in ENTRIES {
            entry(&data);
        }
    }

    #[test]
    fn mutated_valid_inputs_never_panic(
        target in 0usize..ENTRIES.len(),
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        keep in any::<prop::sample::Index>(),
    ) {
        let (name, entry) = ENTRIES[target];
        let seeds = corpus("seeds", name);
        let mut data = which.get(&seeds).clone();
        for (at, mask) in flips {
            let i = at.index(data.len());
            data[i] ^= mask;
        }
        data.truncate(keep.index(data.len() + 1));
        entry(&data);
    }
}
