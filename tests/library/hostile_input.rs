//! Hostile bytes: every parser returns an error or a valid result, never panics. Arbitrary
//! bytes, valid files with flipped / truncated / extended bytes, and a replay of the fuzz
//! seed corpora and minimized fuzz corpora (`fuzz/seeds`, `fuzz/corpus-min`; an input that
//! ever crashed a target belongs in `corpus-min`) through the same entry points the cargo-fuzz
//! targets use. The binaries' parsers (pictures, class names) have the same tests in
//! `cli/tests/cli/hostile_input.rs`.

use crate::common;

use std::path::Path;

use common::*;
use mnist_logreg::fuzz_entry;
use proptest::prelude::*;

type Entry = fn(&[u8]) -> bool;

const ENTRIES: [(&str, Entry); 6] = [
    ("idx_images", fuzz_entry::idx_images),
    ("idx_labels", fuzz_entry::idx_labels),
    ("gzip_idx", fuzz_entry::gzip_idx),
    ("dataset_dir", fuzz_entry::dataset_dir),
    ("checkpoint", fuzz_entry::checkpoint),
    ("npy", fuzz_entry::npy),
];

/// A valid input for each entry (so mutations start from something that parses).
fn valid(target: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::read(files.last().unwrap()).unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { keep: usize },
    Extend { bytes: Vec<u8> },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Mutation::Extend { bytes }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn apply(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = data.len().max(1);
        match m {
            Mutation::Flip { at, mask } => {
                if !data.is_empty() {
                    data[at % n] ^= mask;
                }
            }
            Mutation::Truncate { keep } => data.truncate(keep % n),
            Mutation::Extend { bytes } => data.extend_from_slice(bytes),
            Mutation::Overwrite { at, bytes } => {
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = data.get_mut((at + i) % n) {
                        *slot = *b;
                    }
                }
            }
        }
    }
    data
}

proptest! {
    // 256 cases, or proptest's own PROPTEST_CASES (CI lowers it under qemu and ASan).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").map_or(256, |n| n.parse().expect("PROPTEST_CASES")),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for (_, entry) in ENTRIES {
            entry(&data);
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(
        target in 0usize..ENTRIES.len(),
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (name, entry) = ENTRIES[target];
        entry(&apply(valid(name), &muts));
    }
}

#[test]
fn seeds_are_valid_inputs() {
    // The seed corpora must parse, or the mutation test above starts from garbage.
    for (name, entry) in ENTRIES {
        assert!(entry(&valid(name)), "{name}: seed does not parse");
    }
}

#[test]
fn replay_fuzz_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["seeds", "corpus-min"] {
        for (name, entry) in ENTRIES {
            let path = root.join(dir).join(name);
            let files = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (every target has a corpus)", path.display()));
            for file in files {
                entry(&std::fs::read(file.unwrap().path()).unwrap());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= ENTRIES.len(),
        "no corpus found under {}",
        root.display()
    );
}

#[test]
fn gzip_bomb_is_refused_from_its_header() {
    // A few hundred bytes of gzip claiming 10 million images: refused before inflating.
    let mut raw = vec![0, 0, 8, 3];
    for d in [10_000_000u32, 28, 28] {
        raw.extend_from_slice(&d.to_be_bytes());
    }
    raw.extend(std::iter::repeat_n(0u8, 1 << 20));
    let mut data = vec![0u8]; // images
    data.extend(gzip(&raw));
    assert!(!fuzz_entry::gzip_idx(&data));
}

#[test]
fn no_mmap_copy_survives_the_file_changing() {
    // With --no-mmap the bytes are in memory: truncating the file afterwards cannot SIGBUS.
    use mnist_logreg::idx::{IdxFile, IdxKind, LoadOptions};
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "l-labels-idx1-ubyte", &labels_idx(&[4, 5, 6]));
    let opts = LoadOptions {
        mmap: false,
        ..Default::default()
    };
    let f = IdxFile::open(&p, IdxKind::Labels, &opts).unwrap();
    std::fs::write(&p, b"").unwrap();
    assert_eq!(f.body(), &[4, 5, 6]);
    // And a file truncated before opening is refused with a length error, not mapped.
    let e = IdxFile::open(&p, IdxKind::Labels, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("too short"), "{e}");
}
