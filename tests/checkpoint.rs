//! Checkpoints: round trip, atomic replacement, and rejection of every malformed file with a
//! message naming the fault.

use std::collections::HashMap;
use std::path::Path;

mod common;

use common::temporary_file;
use mnist_logreg::checkpoint::{self, CheckpointError};
use mnist_logreg::model::Model;
use safetensors::{Dtype, tensor::TensorView};

fn model(d: usize, k: usize) -> Model {
    let mut m = Model::tutorial_init(d, k);
    for (i, w) in m.w_mut().iter_mut().enumerate() {
        *w = i as f32 * 0.25 - 3.0;
    }
    for (i, b) in m.b_mut().iter_mut().enumerate() {
        *b = -(i as f32);
    }
    m
}

/// safetensors bytes holding the given (name, dtype, shape, f32 values as bytes) tensors.
fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, dt, s, b)| (*n, TensorView::new(*dt, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32s(n: usize, v: f32) -> Vec<u8> {
    (0..n).flat_map(|_| v.to_le_bytes()).collect()
}

fn err(bytes: &[u8]) -> CheckpointError {
    let e = checkpoint::from_bytes(Path::new("m.safetensors"), bytes).unwrap_err();
    println!("{e}");
    e
}

#[test]
fn a_save_removes_what_a_killed_save_left_but_not_a_save_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let temporary = |name: &str, old: bool| temporary_file(dir.path(), name, old);
    drop(temporary(".checkpoint-killed", true));
    let saving = temporary(".checkpoint-saving", true);
    saving.lock().unwrap();
    drop(temporary(".checkpoint-fresh", false));
    drop(temporary("notes.txt", true));
    checkpoint::save(
        &dir.path().join("m.safetensors"),
        &model(3, 2),
        HashMap::new(),
    )
    .unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".checkpoint-fresh",
            ".checkpoint-saving",
            "m.safetensors",
            "notes.txt"
        ]
    );
    drop(saving);
}

#[cfg(unix)]
#[test]
fn a_checkpoint_gets_the_permissions_of_any_other_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(&path, &model(3, 2), HashMap::new()).unwrap();
    // A plain new file: 0666 less this process's umask.
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), mode(&plain));
}

#[test]
fn round_trip_keeps_weights_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let m = model(7, 3);
    let meta = HashMap::from([("steps".to_string(), "1000".to_string())]);
    checkpoint::save(&path, &m, meta.clone()).unwrap();
    let (back, meta_back) = checkpoint::load(&path).unwrap();
    assert_eq!((back.features(), back.classes()), (7, 3));
    assert_eq!(back.w(), m.w());
    assert_eq!(back.b(), m.b());
    assert_eq!(meta_back, meta);
    // W is stored [features, classes]: W[j][c] = class-major w[c][j].
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("W").unwrap();
    assert_eq!(w.shape(), &[7, 3]);
    let at = |j: usize, c: usize| {
        let o = (j * 3 + c) * 4;
        f32::from_le_bytes(w.data()[o..o + 4].try_into().unwrap())
    };
    assert_eq!(at(2, 1), m.w()[7 + 2]);
    // Saving again replaces the file whole; no temporary files are left behind.
    checkpoint::save(&path, &model(7, 3), HashMap::new()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn rejects_garbage_and_truncation() {
    assert!(matches!(
        err(b"not a checkpoint"),
        CheckpointError::Format { .. }
    ));
    let good = file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]);
    checkpoint::from_bytes(Path::new("x"), &good).unwrap();
    let e = err(&good[..good.len() - 3]);
    assert!(
        e.to_string()
            .contains("m.safetensors: not a valid safetensors file")
    );
}

#[test]
fn rejects_wrong_names() {
    let e = err(&file(&[
        ("weight", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(e.to_string().contains(
        "expected the tensors W and b (and all or none of the novelty.* ones), found [b, weight]"
    ));
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
        ("extra", Dtype::F32, vec![1], f32s(1, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Names { .. }));
}

/// W and b of a 784 × 10 model and the five novelty tensors, with `scales` as given.
fn with_novelty(scales: [f32; 4], basis_rows: usize) -> Vec<u8> {
    let scales: Vec<u8> = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
    file(&[
        ("W", Dtype::F32, vec![784, 10], f32s(7840, 0.0)),
        ("b", Dtype::F32, vec![10], f32s(10, 0.0)),
        ("novelty.pixel_mean", Dtype::F32, vec![784], f32s(784, 0.0)),
        (
            "novelty.pixel_basis",
            Dtype::F32,
            vec![basis_rows, 784],
            f32s(basis_rows * 784, 0.0),
        ),
        ("novelty.descriptor_mean", Dtype::F32, vec![5], f32s(5, 0.0)),
        (
            "novelty.descriptor_precision",
            Dtype::F32,
            vec![5, 5],
            f32s(25, 1.0),
        ),
        ("novelty.scales", Dtype::F32, vec![4], scales),
    ])
}

#[test]
fn novelty_tensors_are_all_there_and_valid_or_the_file_is_refused() {
    let good = with_novelty([1.0, 1.0, 1.0, 0.005], 32);
    let (_, novelty, _) = checkpoint::from_bytes_with_novelty(Path::new("m"), &good).unwrap();
    assert!(novelty.is_some());
    let e = checkpoint::from_bytes_with_novelty(
        Path::new("m"),
        &with_novelty([1.0, 0.0, 1.0, 0.0], 32),
    )
    .unwrap_err();
    assert!(e.to_string().contains("must be positive"), "{e}");
    let e = checkpoint::from_bytes_with_novelty(
        Path::new("m"),
        &with_novelty([1.0, f32::NAN, 1.0, 0.0], 32),
    )
    .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let e = checkpoint::from_bytes_with_novelty(Path::new("m"), &with_novelty([1.0; 4], 31))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("novelty.pixel_basis has shape [31, 784], expected [32, 784]"),
        "{e}"
    );
    // Some of the five: not a checkpoint of ours.
    let partial = file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
        ("novelty.scales", Dtype::F32, vec![4], f32s(4, 1.0)),
    ]);
    assert!(matches!(err(&partial), CheckpointError::Names { .. }));
}

#[test]
fn rejects_wrong_dtype() {
    let e = err(&file(&[
        ("W", Dtype::F64, vec![4, 2], vec![0; 64]),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(
        e.to_string()
            .contains("tensor W has dtype F64, expected F32"),
        "{e}"
    );
}

#[test]
fn rejects_wrong_shapes() {
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 3], f32s(12, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(
        e.to_string()
            .contains("tensor W has shape [4, 3], expected [features, 2]"),
        "{e}"
    );
    let e = err(&file(&[
        ("W", Dtype::F32, vec![8], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Shape { name: "W", .. }));
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![1, 2], f32s(2, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Shape { name: "b", .. }));
    let e = err(&file(&[
        ("W", Dtype::F32, vec![0, 2], vec![]),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Shape { name: "W", .. }));
}

#[test]
fn rejects_non_finite_values() {
    let mut w = f32s(8, 1.0);
    w[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], w),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(
        e.to_string()
            .contains("tensor W holds a non-finite value at index 3"),
        "{e}"
    );
}

#[test]
fn missing_file_is_an_io_error() {
    let e = checkpoint::load(Path::new("/nonexistent/m.safetensors")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/m.safetensors: cannot stat"),
        "{e}"
    );
}
