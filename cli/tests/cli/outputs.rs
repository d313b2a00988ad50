//! What users see: the metrics file, --epochs, --quiet, the plots, class names, and `predict`.

use crate::common;

use std::path::Path;

use common::{predict_cmd, run_err, run_ok, train_cmd};
use mnist_logreg::checkpoint;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::idx::LoadOptions;
use serde_json::Value;

fn test_accuracy(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Test Accuracy: "))
        .expect("a Test Accuracy line")
        .parse()
        .unwrap()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Run `train` with `args` and `--metrics` into a temporary file: (stdout, stderr, events).
fn train_with_metrics(args: &[&str]) -> (String, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("run.jsonl");
    let (stdout, stderr) = run_ok(train_cmd().args(args).arg("--metrics").arg(&metrics));
    (stdout, stderr, read_jsonl(&metrics))
}

#[test]
fn metrics_file_has_one_object_per_display_step_and_a_summary() {
    let (stdout, stderr, events) =
        train_with_metrics(&["--steps", "100", "--display-step", "25", "--show", "0"]);
    assert_eq!(events.len(), 5, "{events:?}");
    let step_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("step: ")).collect();
    for (i, (event, line)) in events[..4].iter().zip(&step_lines).enumerate() {
        let step = 25 * (i as u64 + 1);
        assert_eq!(event["event"], "report");
        assert_eq!(event["step"], step);
        let epoch = event["epoch"].as_f64().unwrap();
        assert!((epoch - step as f64 * 256.0 / 60_000.0).abs() < 1e-12);
        // The same loss and accuracy as the tutorial line on stdout.
        let loss = event["loss"].as_f64().unwrap() as f32;
        let acc = event["accuracy"].as_f64().unwrap() as f32;
        assert_eq!(
            *line,
            format!("step: {step}, loss: {loss:.6}, accuracy: {acc:.6}")
        );
        assert!(event["clipped_rows"].as_u64().is_some());
        assert!(event["images_per_sec"].as_f64().unwrap() > 0.0);
    }
    let summary = &events[4];
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["steps"], 100);
    assert_eq!(summary["batch_size"], 256);
    assert_eq!(summary["kernel"], "parallel_u8");
    assert_eq!(summary["verified"], true);
    assert!((summary["test_accuracy"].as_f64().unwrap() - test_accuracy(&stdout)).abs() < 1e-6);
    let loss = summary["test_loss"].as_f64().unwrap();
    assert!(loss > 0.0 && loss < 2.0, "mean test cross-entropy {loss}");
    assert!(summary["never_predicted"].is_array());
    // stdout and stderr are pipes here: no progress bar, no terminal control characters.
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
}

#[test]
fn epochs_set_the_number_of_steps() {
    let (stdout, _, mut events) = train_with_metrics(&[
        "--epochs",
        "1",
        "--batch-size",
        "6000",
        "--display-step",
        "5",
        "--show",
        "0",
    ]);
    let summary = events.pop().unwrap();
    assert_eq!(summary["steps"], 10);
    assert_eq!(summary["epochs"].as_f64(), Some(1.0));
    assert!(stdout.contains("step: 10, loss: "), "{stdout}");
    // A partial last batch still completes the epoch: 60000 / 7000 → 9 steps.
    let (stdout, _) = run_ok(train_cmd().args([
        "--epochs",
        "1",
        "--batch-size",
        "7000",
        "--display-step",
        "1",
        "--show",
        "0",
    ]));
    assert!(
        stdout.contains("step: 9, ") && !stdout.contains("step: 10, "),
        "{stdout}"
    );
    let err = run_err(train_cmd().args(["--epochs", "1", "--steps", "5"]));
    assert!(err.contains("cannot be used with"), "{err}");
    let err = run_err(train_cmd().args(["--epochs", "0"]));
    assert!(err.contains("--epochs"), "{err}");
}

#[test]
fn metrics_to_stdout_move_the_human_lines_to_stderr() {
    let (stdout, stderr) =
        run_ok(train_cmd().args(["--steps", "100", "--show", "0", "--metrics", "-"]));
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(events.len(), 3, "two reports and a summary: {stdout}");
    assert_eq!(events[2]["event"], "summary");
    assert!(stderr.contains("step: 100, loss: "), "{stderr}");
    assert!(stderr.contains("Test Accuracy: "), "{stderr}");
}

#[test]
fn untrained_and_short_runs_are_not_called_stalled() {
    let (_, stderr) = run_ok(train_cmd().args(["--steps", "0", "--show", "0"]));
    assert!(stderr.contains("note: the model is untrained"), "{stderr}");
    assert!(!stderr.contains("stalled"), "{stderr}");
    let (_, stderr) = run_ok(train_cmd().args(["--steps", "1", "--show", "0"]));
    assert!(!stderr.contains("stalled"), "{stderr}");
    assert!(stderr.contains("note: after only 1 step,"), "{stderr}");
}

#[test]
fn quiet_prints_only_the_test_accuracy() {
    let (stdout, stderr) = run_ok(train_cmd().args(["--steps", "100", "--quiet"]));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("Test Accuracy: 0."));
    assert!(!stderr.contains("clipped rows"), "{stderr}");
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn plots_are_written_and_agree_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let model_path = dir.path().join("m.safetensors");
    let (stdout, stderr) = run_ok(
        train_cmd()
            .args([
                "--steps",
                "150",
                "--show",
                "0",
                "--grid",
                "30",
                "--plot-dir",
            ])
            .arg(&plots)
            .arg("--save")
            .arg(&model_path),
    );
    assert!(stderr.contains("wrote the plots to"), "{stderr}");
    let svg = |name: &str| {
        let text = std::fs::read_to_string(plots.join(name)).unwrap();
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{name}"
        );
        text
    };
    // Curves: the loss (blue) and accuracy (red) series, one point per report (3 reports).
    let curves = svg("curves.svg");
    assert!(curves.contains("training loss") && curves.contains("batch accuracy"));
    for colour in ["#0000FF", "#C81E28"] {
        let series: Vec<&str> = curves
            .split("<polyline")
            .filter(|p| p.contains(&format!("stroke=\"{colour}\" stroke-width=\"2\"")))
            .collect();
        assert_eq!(series.len(), 1, "one {colour} series");
        let points = series[0]
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split_whitespace().count(), 3, "{points}");
    }
    // Confusion matrix: the headline count is the test accuracy.
    let correct = (test_accuracy(&stdout) * 10_000.0).round() as usize;
    let confusion = svg("confusion.svg");
    assert!(
        confusion.contains(&format!("confusion matrix: {correct} of 10000 correct")),
        "expected {correct} correct"
    );
    // Grid: the mistakes announced and framed are the model's mistakes on those 30 images.
    let data = Dataset::open(
        &common::mnist_dir(),
        &LoadOptions::default(),
        ChecksumPolicy::Skip,
    )
    .unwrap();
    let (model, _) = checkpoint::load(&model_path).unwrap();
    let mistakes = (0..30)
        .filter(|&i| {
            model.predict(data.test.image(i)).unwrap().class != data.test.labels()[i] as usize
        })
        .count();
    let grid = svg("test-grid.svg");
    assert!(
        grid.contains(&format!(
            "first 30 test images: predicted label below, {mistakes} mistakes"
        )),
        "{mistakes}"
    );
    assert_eq!(count(&grid, "true: "), mistakes);
    // Weights: ten 28×28 maps, one rectangle per weight.
    let weights = svg("weights.svg");
    assert!(count(&weights, "<rect") >= 10 * 784);

    // Evaluating only: no curves, the rest is written.
    let again = dir.path().join("again");
    let (_, stderr) = run_ok(
        train_cmd()
            .args(["--steps", "0", "--show", "0", "--load"])
            .arg(&model_path)
            .arg("--plot-dir")
            .arg(&again),
    );
    assert!(stderr.contains("no curves.svg"), "{stderr}");
    assert!(!again.join("curves.svg").exists());
    assert!(again.join("confusion.svg").exists() && again.join("weights.svg").exists());
}

const FASHION: &str =
    "T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n";

#[test]
fn other_datasets_train_unverified_with_their_class_names() {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_dataset(dir.path(), 200, 20, true);
    std::fs::write(dir.path().join("class-names.txt"), FASHION).unwrap();
    let plots = dir.path().join("plots");
    let (stdout, stderr) = run_ok(
        train_cmd()
            .arg("--data")
            .arg(dir.path())
            .args([
                "--steps",
                "20",
                "--batch-size",
                "32",
                "--display-step",
                "10",
                "--show",
                "1",
                "--plot-dir",
            ])
            .arg(&plots),
    );
    assert!(
        stderr.contains("is not verified against the MNIST checksums"),
        "{stderr}"
    );
    let prediction = stdout
        .lines()
        .find(|l| l.starts_with("Model prediction: "))
        .unwrap();
    let names: Vec<&str> = FASHION.lines().collect();
    assert!(
        (0..10).any(|c| prediction == format!("Model prediction: {c} ({})", names[c])),
        "{prediction}"
    );
    let confusion = std::fs::read_to_string(plots.join("confusion.svg")).unwrap();
    assert!(confusion.contains("Ankle boot") && confusion.contains("T-shirt/top"));

    // A names file that does not name ten classes is refused.
    let bad = dir.path().join("three.txt");
    std::fs::write(&bad, "a\nb\nc\n").unwrap();
    let err = run_err(
        train_cmd()
            .arg("--data")
            .arg(dir.path())
            .arg("--class-names")
            .arg(&bad),
    );
    assert!(err.contains("three.txt: expected 10 class names"), "{err}");
}

/// A model trained briefly on MNIST, saved in `dir`.
fn trained_model(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("model.safetensors");
    run_ok(
        train_cmd()
            .args(["--steps", "300", "--show", "0", "--quiet", "--save"])
            .arg(&path),
    );
    path
}

/// The probabilities printed for one input: ten `label  p  bar` lines after `prediction:`.
fn printed_probabilities(block: &str) -> Vec<f64> {
    block
        .lines()
        .skip_while(|l| !l.starts_with("prediction: "))
        .skip(1)
        .take(10)
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn predict_classifies_the_first_test_images() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let (stdout, _) = run_ok(
        predict_cmd()
            .arg("--model")
            .arg(&model)
            .args(["--first", "3"]),
    );
    let blocks: Vec<&str> = stdout.split("== ").skip(1).collect();
    assert_eq!(blocks.len(), 3, "{stdout}");
    assert!(blocks[0].starts_with("test image 0"));
    assert!(blocks[0].contains('█'), "the digit is drawn");
    assert!(
        blocks[0].contains("prediction: 7 with p = "),
        "{}",
        blocks[0]
    );
    for block in blocks {
        let p = printed_probabilities(block);
        assert_eq!(p.len(), 10);
        let sum: f64 = p.iter().sum();
        assert!((sum - 1.0).abs() < 6e-4, "probabilities sum to {sum}");
    }
}

#[test]
fn predict_first_needs_only_the_test_files_and_counts_correct_answers() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let only_test = dir.path().join("test-only");
    std::fs::create_dir(&only_test).unwrap();
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(common::mnist_dir().join(name), only_test.join(name)).unwrap();
    }
    let (stdout, _) = run_ok(
        predict_cmd()
            .arg("--model")
            .arg(&model)
            .arg("--data")
            .arg(&only_test)
            .args(["--first", "4", "--no-render"]),
    );
    let correct = stdout.matches(" (correct)").count();
    let doubted = stdout.matches("warning: doubt this answer").count();
    let tail: Vec<&str> = stdout.trim_end().lines().rev().take(2).collect();
    assert_eq!(tail[1], format!("{correct} of 4 correct"), "{stdout}");
    assert!(
        tail[0].starts_with(&format!("{doubted} of 4 doubted (")),
        "{stdout}"
    );
}

#[test]
fn predict_warns_beside_the_answer_when_an_input_is_unlike_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    // Noise, 300×200, from a fixed LCG.
    let mut state = 7u32;
    let noise = image::GrayImage::from_fn(300, 200, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Luma([(state >> 24) as u8])
    });
    let noise_path = dir.path().join("noise.png");
    noise.save(&noise_path).unwrap();
    // A test digit as a clean picture: no warning.
    let digit_path = dir.path().join("digit.png");
    let test = mnist_logreg::dataset::Dataset::open_test(&common::mnist_dir(), &Default::default())
        .unwrap();
    image::GrayImage::from_raw(28, 28, test.image(0).to_vec())
        .unwrap()
        .save(&digit_path)
        .unwrap();
    let (stdout, _) = run_ok(
        predict_cmd()
            .arg("--model")
            .arg(&model)
            .args(["--no-render", "--invert", "never"])
            .arg(&noise_path)
            .arg(&digit_path),
    );
    let blocks: Vec<&str> = stdout.split("== ").skip(1).collect();
    assert!(
        blocks[0].contains("warning: doubt this answer: unlike the training digits: novelty score"),
        "{}",
        blocks[0]
    );
    assert!(!blocks[1].contains("warning"), "{}", blocks[1]);
}

#[test]
fn predict_on_image_files_agrees_with_the_raw_test_images() {
    // The first 20 test digits drawn as dark ink on light paper, scaled 3× with margins, as
    // PNG: after preprocessing the model must mostly see the same digits.
    let dir = tempfile::tempdir().unwrap();
    let model_path = trained_model(dir.path());
    let (model, _) = checkpoint::load(&model_path).unwrap();
    let data = Dataset::open(
        &common::mnist_dir(),
        &LoadOptions::default(),
        ChecksumPolicy::Skip,
    )
    .unwrap();
    let mut files = Vec::new();
    let mut raw_predictions = Vec::new();
    for i in 0..20 {
        let img = data.test.image(i);
        raw_predictions.push(model.predict(img).unwrap().class);
        let page = image::GrayImage::from_fn(28 * 3 + 40, 28 * 3 + 20, |x, y| {
            let (c, r) = ((x as i64 - 20) / 3, (y as i64 - 10) / 3);
            let ink = if x >= 20 && y >= 10 && c < 28 && r < 28 {
                img[(r * 28 + c) as usize]
            } else {
                0
            };
            image::Luma([240 - (ink as u32 * 220 / 255) as u8])
        });
        let path = dir.path().join(format!("digit{i}.png"));
        page.save(&path).unwrap();
        files.push(path);
    }
    let (stdout, _) = run_ok(
        predict_cmd()
            .arg("--model")
            .arg(&model_path)
            .arg("--no-render")
            .args(&files),
    );
    let predicted: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("prediction: "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(predicted.len(), 20, "{stdout}");
    assert_eq!(count(&stdout, ", inverted)"), 20);
    let agree = predicted
        .iter()
        .zip(&raw_predictions)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        agree >= 18,
        "only {agree} of 20 agree: {predicted:?} vs {raw_predictions:?}"
    );
}

#[test]
fn predict_reports_bad_inputs_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"not a jpeg").unwrap();
    let blank = dir.path().join("blank.pgm");
    std::fs::write(&blank, [b"P5 4 4 255\n".as_slice(), &[255u8; 16]].concat()).unwrap();
    let good = dir.path().join("good.pgm");
    let mut px = vec![0u8; 100];
    (20..80).for_each(|i| px[i] = 255);
    std::fs::write(&good, [b"P5 10 10 255\n".as_slice(), &px].concat()).unwrap();
    let out = predict_cmd()
        .arg("--model")
        .arg(&model)
        .args([&junk, &blank, &good, &dir.path().join("missing.png")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("junk.jpg: cannot read the image"),
        "{stderr}"
    );
    assert!(stderr.contains("blank.pgm: the image is blank"), "{stderr}");
    assert!(
        stderr.contains("missing.png: cannot read the image"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        count(&stdout, "prediction: "),
        1,
        "the good image is still classified"
    );
    let err = run_err(predict_cmd().args(["--model", "/nonexistent/model.safetensors"]));
    assert!(err.contains("/nonexistent/model.safetensors"), "{err}");
}

#[test]
fn a_stalled_run_is_reported_in_stderr_and_metrics() {
    // Seed 3 is one of the tutorial's stalling seeds (docs/cli.md: class 8 is never predicted);
    // the scalar reference kernel makes this independent of the SIMD width.
    let (_, stderr, mut events) =
        train_with_metrics(&["--seed", "3", "--kernel", "reference", "--quiet"]);
    assert!(
        stderr.contains("warning: class 8 is never predicted on the test set"),
        "{stderr}"
    );
    let summary = events.pop().unwrap();
    assert_eq!(summary["never_predicted"], serde_json::json!([8]));
}

#[test]
fn a_diverging_run_ends_its_metrics_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("m.jsonl");
    let err = run_err(
        train_cmd()
            .args([
                "--learning-rate",
                "1e38",
                "--display-step",
                "1",
                "--metrics",
            ])
            .arg(&metrics),
    );
    let events = read_jsonl(&metrics);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error");
    let message = last["message"].as_str().unwrap();
    assert!(
        message.contains("not finite") && err.contains(message),
        "{message} / {err}"
    );
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["event"] == "report")
    );
}

#[test]
fn a_resume_with_nothing_to_do_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    run_ok(
        train_cmd()
            .args(["--steps", "20", "--quiet", "--save"])
            .arg(&model),
    );
    let before = std::fs::read(&model).unwrap();
    // A finished run, and --steps at or below the step reached.
    let err = run_err(train_cmd().arg("--resume").arg(&model));
    assert!(
        err.contains("finished its 20 steps") && err.contains("--steps above 20"),
        "{err}"
    );
    for steps in ["20", "5"] {
        let err = run_err(train_cmd().args(["--steps", steps, "--resume"]).arg(&model));
        assert!(
            err.contains(&format!("is at step 20 and --steps {steps}")),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the checkpoint changed"
    );
    // One step further trains.
    run_ok(
        train_cmd()
            .args(["--steps", "21", "--quiet", "--resume"])
            .arg(&model),
    );
}

#[test]
fn a_resumed_run_counts_images_per_second_over_the_steps_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let metrics = dir.path().join("m.jsonl");
    run_ok(
        train_cmd()
            .args(["--steps", "100", "--quiet", "--save"])
            .arg(&model),
    );
    run_ok(
        train_cmd()
            .args(["--steps", "400", "--quiet", "--resume"])
            .arg(&model)
            .arg("--metrics")
            .arg(&metrics),
    );
    let events = read_jsonl(&metrics);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["steps"], 400);
    // 300 steps of 256 ran in `train_seconds`: the rate is theirs, not 400 steps' worth.
    let images =
        summary["images_per_sec"].as_f64().unwrap() * summary["train_seconds"].as_f64().unwrap();
    assert!(
        (images / (300.0 * 256.0) - 1.0).abs() < 1e-6,
        "images_per_sec × train_seconds = {images}, expected 300 × 256"
    );
}
