//! Checkpoints: round trip, atomic replacement, and rejection of every malformed file with a
//! message naming the fault.

use std::collections::HashMap;
use std::path::Path;

use crate::common;

use common::{f32s, file, temporary_file};
use mnist_logreg::checkpoint::{self, CheckpointError};
use mnist_logreg::model::Model;
use safetensors::Dtype;

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

fn err(bytes: &[u8]) -> CheckpointError {
    let e = checkpoint::from_bytes_with_extra(Path::new("m.safetensors"), bytes).unwrap_err();
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
    checkpoint::from_bytes_with_extra(Path::new("x"), &good).unwrap();
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
        "expected the tensors W and b (and extra ones named namespace.name), found [b, weight]"
    ));
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
        ("extra", Dtype::F32, vec![1], f32s(1, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Names { .. }));
}

#[test]
fn extra_tensors_round_trip_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let extra = vec![
        checkpoint::Extra {
            name: "mine.a".into(),
            shape: vec![2, 3],
            values: (0..6).map(|i| i as f32).collect(),
        },
        checkpoint::Extra {
            name: "mine.b".into(),
            shape: vec![1],
            values: vec![-1.5],
        },
    ];
    checkpoint::save_with_extra(&path, &model(4, 2), &extra, HashMap::new()).unwrap();
    let back = checkpoint::load_with_extra(&path).unwrap();
    assert_eq!(back.extra, extra);
    assert_eq!(
        (back.model.w(), back.model.b()),
        (model(4, 2).w(), model(4, 2).b())
    );
    // A name without a namespace is refused on save, before anything is written.
    let bad = [checkpoint::Extra {
        name: "plain".into(),
        shape: vec![1],
        values: vec![0.0],
    }];
    let e = checkpoint::save_with_extra(&dir.path().join("n"), &model(4, 2), &bad, HashMap::new())
        .unwrap_err();
    assert!(matches!(e, CheckpointError::Names { .. }), "{e}");
    assert!(!dir.path().join("n").exists());
    // Non-finite or non-f32 extra tensors are refused on load, naming the tensor.
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
        ("mine.a", Dtype::F32, vec![2], f32s(2, f32::NAN)),
    ]));
    assert!(
        e.to_string()
            .contains("tensor mine.a holds a non-finite value at index 0"),
        "{e}"
    );
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
        ("mine.a", Dtype::F64, vec![1], vec![0; 8]),
    ]));
    assert!(
        matches!(e, CheckpointError::Tensor { ref name, .. } if name == "mine.a"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("tensor mine.a has dtype F64, expected F32"),
        "{e}"
    );
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
    assert!(matches!(e, CheckpointError::Tensor { ref name, .. } if name == "W"));
    assert!(e.to_string().contains("tensor W has shape [8]"), "{e}");
    let e = err(&file(&[
        ("W", Dtype::F32, vec![4, 2], f32s(8, 1.0)),
        ("b", Dtype::F32, vec![1, 2], f32s(2, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Tensor { ref name, .. } if name == "b"));
    assert!(e.to_string().contains("tensor b has shape [1, 2]"), "{e}");
    let e = err(&file(&[
        ("W", Dtype::F32, vec![0, 2], vec![]),
        ("b", Dtype::F32, vec![2], f32s(2, 0.0)),
    ]));
    assert!(matches!(e, CheckpointError::Tensor { ref name, .. } if name == "W"));
    assert!(e.to_string().contains("tensor W has shape [0, 2]"), "{e}");
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
