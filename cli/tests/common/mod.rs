//! Helpers shared by the integration tests: tiny IDX files built in memory.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// IDX bytes of a label file.
pub fn labels_idx(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, 1];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// IDX bytes of an image file of `count` images `rows × cols`, pixel = (i + j) % 256.
pub fn images_idx(count: usize, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, 3];
    for dim in [count as u32, rows, cols] {
        v.extend_from_slice(&dim.to_be_bytes());
    }
    let n = count * rows as usize * cols as usize;
    v.extend((0..n).map(|i| (i * 7 % 256) as u8));
    v
}

/// gzip-compress `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Write `bytes` to `dir/name`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A complete small dataset directory: `n_train`/`n_test` 28×28 images, labels i % 10.
pub fn tiny_dataset(dir: &Path, n_train: usize, n_test: usize, gz: bool) {
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    let files = [
        ("train-images-idx3-ubyte", images_idx(n_train, 28, 28)),
        ("train-labels-idx1-ubyte", labels_idx(&labels(n_train))),
        ("t10k-images-idx3-ubyte", images_idx(n_test, 28, 28)),
        ("t10k-labels-idx1-ubyte", labels_idx(&labels(n_test))),
    ];
    for (name, bytes) in files {
        if gz {
            write(dir, &format!("{name}.gz"), &gzip(&bytes));
        } else {
            write(dir, name, &bytes);
        }
    }
}

/// The repository's root (this crate is its `cli/` member).
pub fn repo_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The repository's copy of MNIST.
pub fn mnist_dir() -> PathBuf {
    repo_dir().join("data/mnist")
}

/// A command running one of the crate's binaries from the repository's root.
pub fn bin(path: &str) -> std::process::Command {
    let mut c = std::process::Command::new(path);
    c.current_dir(repo_dir());
    c
}

/// The `train` binary.
pub fn train_cmd() -> std::process::Command {
    bin(env!("CARGO_BIN_EXE_train"))
}

/// The `predict` binary.
pub fn predict_cmd() -> std::process::Command {
    bin(env!("CARGO_BIN_EXE_predict"))
}

/// Run `cmd`; fail the test with its stderr unless it succeeds. Returns (stdout, stderr).
pub fn run_ok(cmd: &mut std::process::Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Run `cmd`, which must fail; returns its stderr.
pub fn run_err(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
pub mod http;
pub mod pictures;

/// Create the empty file `dir/name`, last written a minute ago when `old` (a temporary file a
/// killed process left behind), now otherwise; the open file is returned (to lock it).
pub fn temporary_file(dir: &Path, name: &str, old: bool) -> std::fs::File {
    let f = std::fs::File::create(dir.join(name)).unwrap();
    if old {
        let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        f.set_modified(minute_ago).unwrap();
    }
    f
}
