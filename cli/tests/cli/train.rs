//! End-to-end training on the real MNIST files, and the `train` binary's behaviour.

use crate::common;

use mnist_logreg::batch::Shuffle;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{KernelKind, Pixels};
use mnist_logreg::model::Model;
use mnist_logreg::train::{self, Observer, Progress, TrainConfig, TrainData, TrainError};
use std::ops::ControlFlow;

fn mnist() -> Dataset {
    Dataset::open(
        &common::mnist_dir(),
        &LoadOptions::default(),
        ChecksumPolicy::Skip,
    )
    .unwrap()
}

/// Train with `kind` and return (reports, test accuracy, never-predicted classes).
fn run(data: &Dataset, cfg: &TrainConfig, kind: KernelKind) -> (Vec<train::Report>, f64, Vec<u32>) {
    let (tr, te) = (data.train.to_f32(), data.test.to_f32());
    let train_px = kind.input().pick(&tr, data.train.pixels());
    let test_px = kind.input().pick(&te, data.test.pixels());
    let kernel = kind.build(0);
    let td = TrainData {
        pixels: train_px,
        labels: data.train.labels(),
        features: 784,
    };
    let mut reports = Vec::new();
    let out = train::train(
        cfg,
        kernel.as_ref(),
        td,
        Model::tutorial_init(784, 10),
        |r| reports.push(*r),
    )
    .unwrap();
    let (stats, preds) =
        train::evaluate(kernel.as_ref(), &out.model, test_px, data.test.labels()).unwrap();
    (
        reports,
        stats.correct as f64 / 10_000.0,
        // The classes no test sample was predicted as.
        (0..10)
            .filter(|&c| !preds.contains(&c))
            .collect::<Vec<u32>>(),
    )
}

#[test]
fn tutorial_configuration_reaches_90_percent() {
    // The seed configuration (shuffle buffer 5000, batch 256, lr 0.01, 1000 steps, default
    // seed) with the scalar reference kernel.
    let data = mnist();
    let cfg = TrainConfig::default();
    let (reports, acc, stalled) = run(&data, &cfg, KernelKind::Reference);
    assert_eq!(reports.len(), 20);
    assert_eq!(reports.last().unwrap().step, 1000);
    assert!(acc >= 0.90, "test accuracy {acc}");
    assert!(stalled.is_empty(), "classes never predicted: {stalled:?}");
}

#[test]
fn parallel_matches_reference_in_sequential_order() {
    let data = mnist();
    let cfg = TrainConfig {
        shuffle: Shuffle::Sequential,
        ..TrainConfig::default()
    };
    let (r_ref, acc_ref, _) = run(&data, &cfg, KernelKind::Reference);
    for kind in [KernelKind::Parallel, KernelKind::ParallelU8] {
        let (r_par, acc_par, _) = run(&data, &cfg, kind);
        assert!(
            (acc_par - acc_ref).abs() <= 0.003,
            "{kind}: {acc_par} vs reference {acc_ref}"
        );
        // The first report is before the chaotic divergence sets in: losses agree closely.
        let (a, b) = (r_ref[0].loss, r_par[0].loss);
        assert!(
            (a - b).abs() <= 0.01 * a.abs(),
            "{kind} step 50 loss {b} vs {a}"
        );
    }
}

#[test]
fn divergence_stops_at_the_first_non_finite_step() {
    let data = mnist();
    let kernel = KernelKind::Fused.build(1);
    let train_err = |pixels: &[f32], cfg: TrainConfig| {
        let td = TrainData {
            pixels: Pixels::F32(pixels),
            labels: data.train.labels(),
            features: 784,
        };
        train::train(
            &cfg,
            kernel.as_ref(),
            td,
            Model::tutorial_init(784, 10),
            |_| {},
        )
        .unwrap_err()
    };
    let tr = data.train.to_f32();
    let huge_lr = TrainConfig {
        learning_rate: 1e38,
        steps: 100,
        ..TrainConfig::default()
    };
    let e = train_err(&tr, huge_lr);
    let TrainError::NonFinite { step, .. } = e else {
        panic!("{e}")
    };
    assert!(step <= 100);
    println!("{e}");
    // NaN in the input is caught at step 1.
    let mut bad = tr.to_vec();
    bad[5] = f32::NAN;
    let sequential = TrainConfig {
        shuffle: Shuffle::Sequential,
        ..TrainConfig::default()
    };
    let e = train_err(&bad, sequential.clone());
    assert!(
        matches!(e, TrainError::NonFinite { step: 1, quantity: "loss", value } if value.is_nan()),
        "{e}"
    );
    // Asked to continue, the run completes and reports the NaN loss it saw.
    let td = TrainData {
        pixels: Pixels::F32(&bad),
        labels: data.train.labels(),
        features: 784,
    };
    let go_on = TrainConfig {
        allow_non_finite: true,
        steps: 50,
        ..sequential
    };
    let mut losses = Vec::new();
    train::train(
        &go_on,
        kernel.as_ref(),
        td,
        Model::tutorial_init(784, 10),
        |r| losses.push(r.loss),
    )
    .unwrap();
    assert!(losses[0].is_nan());
}

/// Stops the run after step `at`.
struct StopAt(usize);

impl Observer for StopAt {
    fn after_step(&mut self, step: usize) -> ControlFlow<()> {
        if step == self.at() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl StopAt {
    fn at(&self) -> usize {
        self.0
    }
}

#[test]
fn a_run_stopped_anywhere_and_resumed_is_bit_identical() {
    let data = mnist();
    let td = TrainData {
        pixels: Pixels::U8(data.train.pixels()),
        labels: data.train.labels(),
        features: 784,
    };
    let kernel = KernelKind::ParallelU8.build(2);
    for shuffle in [
        Shuffle::Buffer { size: 5000 },
        Shuffle::Epoch,
        Shuffle::Sequential,
    ] {
        let cfg = TrainConfig {
            shuffle,
            ..TrainConfig::default()
        };
        let init = || Model::tutorial_init(784, 10);
        let mut full_reports = Vec::new();
        let full = train::train(&cfg, kernel.as_ref(), td, init(), |r: &train::Report| {
            full_reports.push((r.step, r.loss.to_bits(), r.accuracy.to_bits()))
        })
        .unwrap();
        assert_eq!(full.progress.step, 1000);
        // Stopped at 1, 237 and 999 (three times in one run), then resumed to the end.
        let (mut model, mut progress) = (init(), Progress::default());
        let mut reports = Vec::new();
        for stop in [1, 237, 238, 999, 1000] {
            struct Both<'a>(StopAt, &'a mut Vec<(usize, u32, u32)>);
            impl Observer for Both<'_> {
                fn on_report(&mut self, r: &train::Report) {
                    self.1
                        .push((r.step, r.loss.to_bits(), r.accuracy.to_bits()));
                }
                fn after_step(&mut self, step: usize) -> ControlFlow<()> {
                    self.0.after_step(step)
                }
            }
            let out = train::resume(
                &cfg,
                kernel.as_ref(),
                td,
                model,
                progress,
                Both(StopAt(stop), &mut reports),
            )
            .unwrap();
            assert_eq!(out.progress.step, stop, "{shuffle:?}");
            (model, progress) = (out.model, out.progress);
        }
        assert_eq!(reports, full_reports, "{shuffle:?}");
        assert_eq!(progress, full.progress, "{shuffle:?}");
        let bits =
            |m: &Model| -> Vec<u32> { m.w().iter().chain(m.b()).map(|v| v.to_bits()).collect() };
        assert!(
            bits(&model) == bits(&full.model),
            "{shuffle:?}: weights differ"
        );
    }
}

use common::{run_err, run_ok, train_cmd as train_bin};

/// Run `train` with `args` and return its stdout; fails the test with stderr if it fails.
fn train_ok(args: &[&str]) -> String {
    run_ok(train_bin().args(args)).0
}

#[test]
fn cli_prints_the_tutorial_lines() {
    let stdout = train_ok(&["--steps", "100", "--show", "1"]);
    let lines: Vec<&str> = stdout.lines().collect();
    let re_step = |l: &str, n: u32| {
        let rest = l
            .strip_prefix(&format!("step: {n}, loss: "))
            .unwrap_or_else(|| panic!("{l}"));
        let (loss, acc) = rest.split_once(", accuracy: ").unwrap();
        assert_eq!(loss.split_once('.').unwrap().1.len(), 6, "{l}");
        assert_eq!(acc.split_once('.').unwrap().1.len(), 6, "{l}");
        loss.parse::<f32>().unwrap();
        acc.parse::<f32>().unwrap();
    };
    re_step(lines[0], 50);
    re_step(lines[1], 100);
    assert!(lines[2].starts_with("Test Accuracy: 0."), "{}", lines[2]);
    assert!(
        stdout.contains("Model prediction: 7"),
        "the first test image is a 7:\n{stdout}"
    );
    assert!(lines.last().unwrap().starts_with("timing: load "));
    assert!(stdout.contains("kernel parallel_u8, simd "));
}

#[test]
fn cli_rejects_bad_flags_and_data() {
    for (args, expect) in [
        (vec!["--batch-size", "0"], "--batch-size"),
        (vec!["--kernel", "magic"], "magic"),
        (vec!["--learning-rate", "abc"], "--learning-rate"),
        (
            vec!["--data", "/nonexistent"],
            "/nonexistent: the data directory does not exist",
        ),
        (
            vec!["--data", "Cargo.toml"],
            "Cargo.toml: the data directory is not a directory",
        ),
        (
            vec!["--learning-rate", "inf"],
            "learning-rate must be a finite number above 0",
        ),
        (
            vec!["--learning-rate", "0"],
            "learning-rate must be a finite number above 0",
        ),
        (
            vec!["--learning-rate", "-0.5"],
            "learning-rate must be a finite number above 0",
        ),
        (vec!["--display-step", "0"], "must be at least 1"),
        (vec!["--shuffle-buffer", "0"], "must be at least 1"),
        (
            vec!["--save", "/nonexistent-dir/m.safetensors"],
            "/nonexistent-dir does not exist",
        ),
        (vec!["--save", "/tmp"], "is a directory"),
        (vec!["--metrics", "/tmp"], "is a directory"),
        (
            vec!["--resume", "/nonexistent.safetensors"],
            "/nonexistent.safetensors",
        ),
        (vec!["--resume", "x", "--seed", "3"], "cannot be used with"),
    ] {
        let err = run_err(train_bin().args(&args));
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn cli_reports_divergence() {
    let out = train_bin()
        .args(["--learning-rate", "1e38", "--steps", "200"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not finite"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("nan"));
}

#[test]
fn cli_saves_and_loads_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    let stdout = train_ok(&["--steps", "100", "--show", "0", "--save", ckpt]);
    let acc = |stdout: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("Test Accuracy: ").map(str::to_string))
            .unwrap()
    };
    let trained = acc(&stdout);
    // Evaluating the saved model gives the same test accuracy.
    let stdout = train_ok(&["--steps", "0", "--show", "0", "--load", ckpt]);
    assert_eq!(acc(&stdout), trained);
    // A checkpoint of the wrong shape is refused with a clear message.
    let mut small = Model::tutorial_init(5, 10);
    small.b_mut()[0] = 1.0;
    mnist_logreg::checkpoint::save(std::path::Path::new(ckpt), &small, Default::default()).unwrap();
    let err = run_err(train_bin().args(["--steps", "0", "--load", ckpt]));
    assert!(
        err.contains("the model has 5 features and 10 classes, the data needs 784 and 10"),
        "{err}"
    );
}

#[test]
fn simd_path_from_the_flag_or_the_environment_and_clear_errors() {
    use mnist_logreg::kernels::Isa;
    let quick = ["--steps", "20", "--show", "0", "--display-step", "20"];
    let supported = Isa::supported();
    for isa in &supported {
        let (stdout, _) = run_ok(
            train_bin()
                .args(quick)
                .args(["--simd", isa.name()])
                .env_remove("MNIST_LOGREG_SIMD"),
        );
        let timing = stdout.lines().last().unwrap();
        assert!(timing.contains(&format!("simd {isa}, ")), "{timing}");
    }
    let (stdout, _) = run_ok(train_bin().args(quick).env("MNIST_LOGREG_SIMD", "scalar"));
    assert!(stdout.contains("simd scalar (1 lane), "), "{stdout}");
    // The flag wins over the environment.
    let (stdout, _) = run_ok(
        train_bin()
            .args(quick)
            .args(["--simd", "scalar"])
            .env("MNIST_LOGREG_SIMD", "auto"),
    );
    assert!(stdout.contains("simd scalar (1 lane), "), "{stdout}");
    // `auto` is the widest path.
    let (stdout, _) = run_ok(train_bin().args(quick).env_remove("MNIST_LOGREG_SIMD"));
    assert!(
        stdout.contains(&format!("simd {}, ", supported[0])),
        "{stdout}"
    );

    let err = run_err(train_bin().args(["--simd", "avx1024"]));
    assert!(err.contains("avx1024"), "{err}");
    let err = run_err(train_bin().env("MNIST_LOGREG_SIMD", "avx1024"));
    assert!(err.contains("MNIST_LOGREG_SIMD=\"avx1024\""), "{err}");
    assert!(
        !err.contains("--simd"),
        "a flag the user did not type: {err}"
    );
    // Empty is unset: the widest path.
    let (stdout, _) = run_ok(train_bin().args(quick).env("MNIST_LOGREG_SIMD", ""));
    assert!(
        stdout.contains(&format!("simd {}, ", supported[0])),
        "{stdout}"
    );
    for name in ["avx512", "avx2", "sse2"] {
        if !supported.iter().any(|i| i.name() == name) {
            let err = run_err(train_bin().args(["--simd", name]));
            assert!(
                err.contains(&format!("this CPU cannot run the {name} path")),
                "{err}"
            );
        }
    }
}
