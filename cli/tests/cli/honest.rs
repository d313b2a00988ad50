//! What `predict` says about a model is true: its class names come from the model, a model
//! without a novelty score is described as it is, and `--save-prepared` shows each stage of
//! converting a photographed digit, which gets no cut-off note.

#![cfg(unix)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{predict_cmd, run_ok, train_cmd};

/// A data directory with MNIST's four files (linked) and `names` as its class-names.txt.
fn named_data(dir: &Path, names: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(common::mnist_dir()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.join("class-names.txt"), names).unwrap();
    dir.to_path_buf()
}

/// A short run on `data`, saved to `dir/model.safetensors`.
fn trained(dir: &Path, data: &Path) -> PathBuf {
    let model = dir.join("model.safetensors");
    run_ok(
        train_cmd()
            .args(["--steps", "300", "--quiet"])
            .arg("--data")
            .arg(data)
            .arg("--save")
            .arg(&model),
    );
    model
}

const LETTERS: &str = "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n";
const FASHION: &str =
    "T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n";

#[test]
fn class_names_travel_with_the_model_and_win_over_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = named_data(&tmp.path().join("named"), LETTERS);
    let model = trained(tmp.path(), &data);
    // Used with plain MNIST (no names there): the model's names.
    let (out, _) =
        run_ok(
            predict_cmd()
                .arg("--model")
                .arg(&model)
                .args(["--first", "2", "--no-render"]),
        );
    assert!(out.contains("prediction: 7 (seven)"), "{out}");
    // Used with a directory naming the classes otherwise: still the model's, with a warning.
    let other = named_data(&tmp.path().join("fashion"), FASHION);
    let (out, err) = run_ok(
        predict_cmd()
            .arg("--model")
            .arg(&model)
            .arg("--data")
            .arg(&other)
            .args(["--first", "1", "--no-render"]),
    );
    assert!(
        out.contains("7 (seven)") && !out.contains("Sneaker"),
        "{out}"
    );
    assert!(
        err.contains("class-names.txt names the classes 0 (T-shirt/top)")
            && err.contains("the model's names are used"),
        "{err}"
    );
}

#[test]
fn a_model_without_a_novelty_score_gets_a_true_note() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("plain.safetensors");
    // As Python's `save` and the library's checkpoint::save write it: W, b, no score.
    let model = mnist_logreg::model::Model::tutorial_init(784, 10);
    mnist_logreg::checkpoint::save(&path, &model, Default::default()).unwrap();
    let (_, err) =
        run_ok(
            predict_cmd()
                .arg("--model")
                .arg(&path)
                .args(["--first", "1", "--no-render"]),
        );
    assert!(
        err.contains("this model has no novelty score (it was saved without one, e.g. from Python"),
        "{err}"
    );
    assert!(!err.contains("saved before there was one"), "{err}");
}

#[test]
fn a_photographed_digit_shows_its_stages_and_gets_no_cut_off_note() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.safetensors");
    run_ok(train_cmd().args(["--quiet", "--save"]).arg(&model));
    let test = mnist_logreg::dataset::Dataset::open_test(&common::mnist_dir(), &Default::default())
        .unwrap();
    // Test digit 1 (a 2), written with a dark pen on grey paper with grain and uneven light.
    let img = common::pictures::photo(test.image(1), 640, 480, 0.6, 20.0, 11.0, 7);
    let path = tmp.path().join("two.png");
    image::save_buffer(&path, &img.pixels, 640, 480, image::ExtendedColorType::L8).unwrap();
    let out_dir = tmp.path().join("prepared");
    std::fs::create_dir(&out_dir).unwrap();
    let (out, err) = run_ok(
        predict_cmd()
            .arg("--model")
            .arg(&model)
            .arg("--save-prepared")
            .arg(&out_dir)
            .arg("--no-render")
            .arg(&path),
    );
    assert!(out.contains("(640×480, inverted)"), "{out}");
    assert!(out.contains("prediction: 2 with"), "{out}");
    assert!(
        !out.contains("cut off") && !out.contains("warning"),
        "{out}"
    );
    for (name, side) in [
        ("two.png", (28, 28)),
        ("two-1-background.png", (512, 384)),
        ("two-2-ink.png", (512, 384)),
    ] {
        let picture = image::open(out_dir.join(name)).unwrap();
        assert_eq!((picture.width(), picture.height()), side, "{name}");
    }
    assert!(
        err.contains("background and ink stages of 1 picture file"),
        "{err}"
    );
}
