//! Helpers shared by the integration tests of both crates (the cli's include this file): tiny
//! IDX files built in memory, MNIST's directory, temporary files.
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

/// The repository's root: this crate's directory (the library), or its parent (the `cli/`
/// member, whose tests include this file).
pub fn repo_dir() -> &'static Path {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("data/mnist").is_dir() {
        here
    } else {
        here.parent().expect("cli/ is a member of the repository")
    }
}

/// The repository's copy of MNIST.
pub fn mnist_dir() -> PathBuf {
    repo_dir().join("data/mnist")
}

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

/// safetensors bytes holding the given (name, dtype, shape, values as bytes) tensors.
pub fn file(tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dt, s, b)| {
            let view = safetensors::tensor::TensorView::new(*dt, s.clone(), b).unwrap();
            (*n, view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// The little-endian bytes of `n` f32 values `v`.
pub fn f32s(n: usize, v: f32) -> Vec<u8> {
    (0..n).flat_map(|_| v.to_le_bytes()).collect()
}
