//! `train --solver lbfgs`: the optimum, the converged line and the warning, the metrics rows,
//! the checkpoint metadata, refused values, the "does nothing" warnings, and Ctrl-C + --resume.
//! Two MNIST solves run to a tolerance (the optimum at 1e-5, a resume to 1e-3); the rest stop
//! after a few iterations or before loading any data.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use common::{mnist_dir, repo_dir, run_err, run_ok, tiny_dataset, train_cmd};
use mnist_logreg::checkpoint;

/// The MNIST optimum stored in tests/data/optima.txt (objective, λ).
fn mnist_optimum() -> (f64, f64) {
    let text = std::fs::read_to_string(repo_dir().join("tests/data/optima.txt")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("mnist "))
        .expect("optima.txt has an mnist line");
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    (fields[0], fields[2])
}

/// The JSON lines of a metrics file.
fn metrics_rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events<'a>(rows: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    rows.iter().filter(|r| r["event"] == event).collect()
}

fn metadata(path: &Path) -> HashMap<String, String> {
    checkpoint::load(path).unwrap().1
}

fn iteration_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("iteration: "))
        .collect()
}

#[test]
fn lbfgs_on_mnist_lands_on_the_stored_optimum_and_says_it_converged() {
    let dir = tempfile::tempdir().unwrap();
    let (metrics, model, plots) = (
        dir.path().join("m.jsonl"),
        dir.path().join("m.safetensors"),
        dir.path().join("plots"),
    );
    let (stdout, stderr) = run_ok(train_cmd().args([
        "--solver",
        "lbfgs",
        "--show",
        "0",
        "--grid",
        "0",
        "--metrics",
        metrics.to_str().unwrap(),
        "--save",
        model.to_str().unwrap(),
        "--plot-dir",
        plots.to_str().unwrap(),
    ]));
    let (optimum, lambda) = mnist_optimum();
    let rows = metrics_rows(&metrics);
    let solution = events(&rows, "solution");
    assert_eq!(solution.len(), 1, "{rows:?}");
    let solution = solution[0];
    let objective = solution["objective"].as_f64().unwrap();
    assert!(
        ((objective - optimum) / optimum).abs() < 1e-4,
        "objective {objective}, optimum {optimum}"
    );
    assert_eq!(solution["l2"].as_f64().unwrap(), lambda);
    assert_eq!(solution["converged"], true);
    assert!(solution["gap_estimate"].as_f64().unwrap() <= 5e-6);
    let n = solution["iterations"].as_u64().unwrap() as usize;
    assert!(
        stderr.contains(&format!("converged after {n} iterations (")),
        "{stderr}"
    );
    // One metrics row per iteration, in order; a printed line every 10.
    let its: Vec<u64> = events(&rows, "iteration")
        .iter()
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(its, (1..=n as u64).collect::<Vec<_>>());
    let lines = iteration_lines(&stdout);
    assert_eq!(lines.len(), n / 10, "{stdout}");
    assert!(
        lines[0].starts_with("iteration: 10, objective: 0."),
        "{stdout}"
    );
    assert!(lines[0].contains(", gap: "), "{stdout}");
    assert!(lines[0].contains(", |grad|max: "), "{stdout}");
    assert!(stdout.contains("Test Accuracy: 0.9"), "{stdout}");
    let meta = metadata(&model);
    assert_eq!(meta["solver"], "lbfgs");
    assert_eq!(meta["stop"], "converged");
    assert_eq!(meta["iterations"], n.to_string());
    assert_eq!(meta["tol"].parse::<f64>().unwrap(), 5e-6);
    assert_eq!(meta["max_iter"], "1000");
    assert_eq!(meta["l2"].parse::<f64>().unwrap(), lambda);
    // The same f64, written twice; serde_json's default parser (no `float_roundtrip`) may
    // read the metrics file's copy 1 ULP off (0.23211805861211346 for …343 here).
    let saved = meta["objective"].parse::<f64>().unwrap();
    assert!(
        (saved - objective).abs() <= 4.0 * f64::EPSILON * objective,
        "{saved} vs {objective}"
    );
    let svg = std::fs::read_to_string(plots.join("curves.svg")).unwrap();
    assert!(svg.contains("objective"), "curves.svg draws the objective");
}

#[test]
fn a_run_stopped_by_max_iter_warns_exits_0_and_saves() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let (stdout, stderr) = run_ok(train_cmd().args([
        "--solver",
        "lbfgs",
        "--max-iter",
        "3",
        "--display-step",
        "1",
        "--show",
        "0",
        "--save",
        model.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("warning: did not converge in 3 iterations: estimated relative gap "),
        "{stderr}"
    );
    assert!(stderr.contains("> tol 5.0e-6"), "{stderr}");
    assert_eq!(iteration_lines(&stdout).len(), 3, "{stdout}");
    assert!(stdout.contains("Test Accuracy: "), "{stdout}");
    let meta = metadata(&model);
    assert_eq!(
        (meta["iterations"].as_str(), meta["stop"].as_str()),
        ("3", "max_iter")
    );
    // Going on from it past its own budget is a clear refusal.
    let err = run_err(train_cmd().args(["--resume", model.to_str().unwrap()]));
    assert!(
        err.contains("nothing to resume") && err.contains("--max-iter above 3"),
        "{err}"
    );
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    for (args, want) in [
        (&["--l2", "-1"][..], "--l2 -1"),
        (&["--tol", "0"][..], "--tol 0"),
        (&["--tol", "NaN"][..], "--tol NaN"),
        (&["--tol", "-1e-5"][..], "--tol -0.00001"),
        (&["--max-iter", "0"][..], "--max-iter 0"),
    ] {
        let out = train_cmd()
            .args(["--solver", "lbfgs"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {want}")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn flags_of_the_other_solver_do_nothing_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path(), 40, 10, false);
    let data = dir.path().to_str().unwrap();
    let (_, stderr) = run_ok(train_cmd().args([
        "--data",
        data,
        "--solver",
        "lbfgs",
        "--max-iter",
        "2",
        "--batch-size",
        "512",
        "--learning-rate",
        "0.5",
        "--shuffle",
        "epoch",
        "--steps",
        "10",
        "--clip-gradient",
        "through",
        "--quiet",
    ]));
    for flag in [
        "--batch-size 512",
        "--learning-rate 0.5",
        "--shuffle epoch",
        "--steps 10",
        "--clip-gradient through",
    ] {
        assert!(
            stderr.contains(&format!("warning: {flag} does nothing with --solver lbfgs")),
            "{flag}: {stderr}"
        );
    }
    let (_, stderr) = run_ok(train_cmd().args([
        "--data", data, "--steps", "2", "--tol", "1e-3", "--l2", "0", "--quiet",
    ]));
    for flag in ["--tol 1e-3", "--l2 0"] {
        assert!(
            stderr.contains(&format!("warning: {flag} does nothing with --solver sgd")),
            "{flag}: {stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_the_iterate_and_resume_goes_on_from_it() {
    use common::interrupted;

    let dir = tempfile::tempdir().unwrap();
    let (part, metrics) = (
        dir.path().join("part.safetensors"),
        dir.path().join("m.jsonl"),
    );
    let (code, seen, stderr) = interrupted(
        train_cmd().args([
            "--solver",
            "lbfgs",
            "--display-step",
            "1",
            "--show",
            "0",
            "--save",
            part.to_str().unwrap(),
        ]),
        2,
        || true,
        libc::SIGINT,
    );
    assert_eq!(code, Some(130), "{stderr}");
    let last = iteration_lines(&seen).len();
    assert!(last >= 2, "{seen}");
    assert!(
        stderr.contains(&format!("interrupted at iteration {last}")),
        "{stderr}"
    );
    assert!(!seen.contains("Test Accuracy"), "{seen}");
    let meta = metadata(&part);
    assert_eq!(
        (meta["iterations"].clone(), meta["stop"].as_str()),
        (last.to_string(), "interrupted")
    );
    let stopped_at: f64 = meta["objective"].parse().unwrap();

    // --resume: the same objective, the count going on, here to a looser tol to stay short.
    let (stdout, stderr) = run_ok(train_cmd().args([
        "--resume",
        part.to_str().unwrap(),
        "--tol",
        "1e-3",
        "--show",
        "0",
        "--save",
        part.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
    ]));
    assert!(stderr.contains("the L-BFGS memory restarts"), "{stderr}");
    let rows = metrics_rows(&metrics);
    let its = events(&rows, "iteration");
    assert_eq!(its[0]["iteration"].as_u64().unwrap() as usize, last + 1);
    assert!(its[0]["objective"].as_f64().unwrap() < stopped_at);
    let solution = events(&rows, "solution")[0];
    assert_eq!(solution["converged"], true, "{stderr}");
    let n = solution["iterations"].as_u64().unwrap() as usize;
    assert!(
        stderr.contains(&format!("converged after {n} iterations")),
        "{stderr}"
    );
    assert!(stdout.contains("Test Accuracy"), "{stdout}");
    let meta = metadata(&part);
    assert_eq!(meta["iterations"], n.to_string());
    assert_eq!(meta["stop"], "converged");
    let (_, lambda) = mnist_optimum();
    assert_eq!(meta["l2"].parse::<f64>().unwrap(), lambda);
    let _ = mnist_dir();
}
