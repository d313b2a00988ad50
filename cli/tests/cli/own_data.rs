//! `train --train-images … --classes N` on data of other shapes and class counts, and
//! `predict` on a feature file: what stderr says, the accuracy, the errors.

use crate::common;

use std::path::{Path, PathBuf};

use common::{predict_cmd, run_err, run_ok, train_cmd, write};

/// A `.npy` file of little-endian `descr` values (header padded to 64 bytes).
fn npy(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend((dict.len() as u16).to_le_bytes());
    v.extend(dict.as_bytes());
    v.extend(body);
    v
}

/// `train` with `--train-images`, `--train-labels`, `--test-images`, `--test-labels` set to
/// `files`, in that order.
fn train_on(files: [&PathBuf; 4]) -> std::process::Command {
    let mut cmd = train_cmd();
    for (flag, file) in [
        "--train-images",
        "--train-labels",
        "--test-images",
        "--test-labels",
    ]
    .into_iter()
    .zip(files)
    {
        cmd.arg(flag).arg(file);
    }
    cmd
}

/// `n` samples of `d` float features in `k` classes (class c is bright on features ≡ c mod
/// k), and their labels, as `.npy` files `NAME-x.npy`, `NAME-y.npy`.
fn float_set(dir: &Path, name: &str, n: usize, d: usize, k: usize) -> [PathBuf; 2] {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i * 7) % k;
        for j in 0..d {
            let v = if j % k == c { 1.0f32 } else { 0.0 } + ((i + 3 * j) % 11) as f32 * 0.02;
            x.extend(v.to_le_bytes());
        }
        y.extend((c as i64).to_le_bytes());
    }
    [
        write(dir, &format!("{name}-x.npy"), &npy("<f4", &[n, d], &x)),
        write(dir, &format!("{name}-y.npy"), &npy("<i8", &[n], &y)),
    ]
}

#[test]
fn float_features_with_many_classes_train_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let [tx, ty] = float_set(dir.path(), "train", 3000, 40, 37);
    let [vx, vy] = float_set(dir.path(), "test", 370, 40, 37);
    let model = dir.path().join("m.safetensors");
    let (stdout, stderr) = run_ok(
        train_on([&tx, &ty, &vx, &vy])
            .args([
                "--epochs",
                "5",
                "--learning-rate",
                "0.5",
                "--batch-size",
                "64",
            ])
            .arg("--save")
            .arg(&model),
    );
    assert!(
        stderr.contains(
            "3000 training samples of 40 features (float values, used as given), 37 classes"
        ),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("are made for --data directories").count(),
        1,
        "{stderr}"
    );
    let accuracy: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Test Accuracy: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy > 0.9, "{stdout}");
    // predict: one line per row, row, class, probability.
    let (stdout, _) = run_ok(predict_cmd().arg("--model").arg(&model).arg(&vx));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 370);
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(fields[0], "1");
    assert_eq!(fields[1], "7", "{}", lines[1]);
    assert!(fields[2].parse::<f64>().unwrap() > 0.0);
}

#[test]
fn own_files_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let [tx, ty] = float_set(dir.path(), "train", 50, 8, 3);
    let [vx, vy] = float_set(dir.path(), "test", 10, 5, 3);
    let err = run_err(&mut train_on([&tx, &ty, &vx, &vy]));
    assert!(
        err.contains("train-x.npy has 8 features per sample but")
            && err.contains("test-x.npy has 5"),
        "{err}"
    );
    // A class count below the labels: the first label past it is named.
    let err = run_err(train_on([&tx, &ty, &tx, &ty]).args(["--classes", "2"]));
    assert!(err.contains("train-y.npy: label 2 at index"), "{err}");
    // More classes than labels: a warning, and the run goes on.
    let (_, stderr) =
        run_ok(train_on([&tx, &ty, &tx, &ty]).args(["--classes", "5", "--steps", "10"]));
    assert!(
        stderr.contains("2 of the 5 classes have no training sample"),
        "{stderr}"
    );
}
