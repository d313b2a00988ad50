//! Real signals sent to the `train` binary: a stopped run saves its model and metrics, and
//! `--resume` continues it to the same bits and the same printed lines as a run that never
//! stopped. Also: a closed stdout ends `train` quietly.
#![cfg(unix)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{interrupted, run_ok, train_cmd};
use mnist_logreg::checkpoint;

/// `W` and `b` of a checkpoint, as bits.
fn weight_bits(path: &Path) -> Vec<u32> {
    let (m, _) = checkpoint::load(path).unwrap();
    m.w().iter().chain(m.b()).map(|v| v.to_bits()).collect()
}

fn step_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("step: ")).collect()
}

/// Start `train args…`, wait for its `wait_for`-th step line, send `signal`, and return
/// (exit code, stdout, stderr).
fn interrupt(args: &[&str], wait_for: usize, signal: i32) -> (Option<i32>, String, String) {
    interrupt_when(args, wait_for, || true, signal)
}

/// [`interrupt`], but after the `wait_for`-th step line also wait (polling, at most 60 s)
/// until `ready()` holds before sending `signal`.
fn interrupt_when(
    args: &[&str],
    wait_for: usize,
    ready: impl Fn() -> bool,
    signal: i32,
) -> (Option<i32>, String, String) {
    interrupted(train_cmd().args(args), wait_for, ready, signal)
}

/// Resume the run saved in `part` up to step `end` (saving it back into `part`), and run
/// the same `--shuffle` to `end` without a stop into `dir/whole.safetensors`: (the resumed
/// run's stdout, the whole run's stdout, the whole run's checkpoint).
fn resume_and_run_whole(
    dir: &Path,
    part: &Path,
    end: usize,
    shuffle: &str,
) -> (String, String, std::path::PathBuf) {
    let (end, part) = (end.to_string(), part.to_str().unwrap());
    let (resumed, _) =
        run_ok(train_cmd().args(["--resume", part, "--steps", &end, "--save", part]));
    let whole = dir.join("whole.safetensors");
    let (full, _) = run_ok(train_cmd().args([
        "--steps",
        &end,
        "--display-step",
        "10",
        "--shuffle",
        shuffle,
        "--save",
        whole.to_str().unwrap(),
    ]));
    (resumed, full, whole)
}

#[test]
fn an_interrupt_while_loading_says_so_and_records_it() {
    // A fresh cache directory: the run has to decompress the training images (47 MB), which
    // takes far longer than noticing that it started. The first file in the directory means
    // loading has begun (and the stop handlers, installed first thing, are in place).
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let metrics = dir.path().join("m.jsonl");
    let child = train_cmd()
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--metrics")
        .arg(&metrics)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&cache).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            started.elapsed().as_secs() < 60,
            "the run never started loading"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: `kill` only sends a signal to the child we started (and have not waited on).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted while loading"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("step: "));
    let events = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        events.trim(),
        r#"{"event":"interrupted","step":0,"signal":"SIGINT"}"#
    );
}

#[test]
fn an_interrupted_run_resumes_to_the_same_bits_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    for shuffle in ["buffer", "epoch", "sequential"] {
        let part = dir.path().join(format!("{shuffle}.safetensors"));
        let metrics = dir.path().join(format!("{shuffle}.jsonl"));
        let (code, first, stderr) = interrupt(
            &[
                "--steps",
                "1000000",
                "--display-step",
                "10",
                "--shuffle",
                shuffle,
                "--save",
                part.to_str().unwrap(),
                "--metrics",
                metrics.to_str().unwrap(),
            ],
            3,
            libc::SIGINT,
        );
        assert_eq!(code, Some(130), "{stderr}");
        let step: usize = stderr
            .lines()
            .find_map(|l| l.strip_prefix("interrupted at step "))
            .unwrap_or_else(|| panic!("no interrupt line in {stderr}"))
            .parse()
            .unwrap();
        assert!(step >= 30, "{step}");
        assert!(
            !first.contains("Test Accuracy"),
            "nothing evaluated after the stop"
        );
        let last = std::fs::read_to_string(&metrics).unwrap();
        let last: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "interrupted");
        assert_eq!(last["step"], step);

        // Continue to step + 45 and compare with a run of step + 45 that never stopped.
        let (second, full, whole) = resume_and_run_whole(dir.path(), &part, step + 45, shuffle);
        assert!(
            weight_bits(&part) == weight_bits(&whole),
            "{shuffle}: resumed weights differ"
        );
        let mut resumed = step_lines(&first);
        resumed.extend(step_lines(&second));
        assert_eq!(resumed, step_lines(&full), "{shuffle}");
        let accuracy = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("Test Accuracy"))
                .map(str::to_owned)
        };
        assert_eq!(accuracy(&second), accuracy(&full));
    }
}

#[test]
fn sigterm_stops_with_143_and_keeps_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let (code, _, stderr) = interrupt(
        &[
            "--steps",
            "1000000",
            "--display-step",
            "10",
            "--save",
            model.to_str().unwrap(),
        ],
        1,
        libc::SIGTERM,
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("interrupted at step"), "{stderr}");
    let (_, meta) = checkpoint::load(&model).unwrap();
    assert!(meta["step"].parse::<usize>().unwrap() >= 10);
}

#[test]
fn a_closed_stdout_ends_train_quietly() {
    // `train | head -1`: the reader goes away after one line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(common::repo_dir())
        .args(["--steps", "100000", "--display-step", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The pipe's read end is dropped here.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(line.starts_with("step: 1,"), "{line}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}

#[test]
fn a_killed_run_keeps_its_periodic_checkpoint_and_resumes_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part.safetensors");
    // kill -9 once step 350 was printed and the writer thread has renamed a checkpoint of
    // step 300 or later into place (it writes behind the training loop, and under load it
    // can lag by hundreds of steps): nothing runs at exit, only the periodic checkpoints
    // (every 100 steps) are there. The kill may land in the middle of a later write.
    let written = |min: usize| {
        checkpoint::load(&part).is_ok_and(|(_, meta)| meta["step"].parse::<usize>().unwrap() >= min)
    };
    let (code, _, stderr) = interrupt_when(
        &[
            "--steps",
            "1000000",
            "--display-step",
            "10",
            "--save-every",
            "100",
            "--save",
            part.to_str().unwrap(),
        ],
        35,
        || written(300),
        libc::SIGKILL,
    );
    assert_eq!(code, None, "killed: {stderr}");
    let (_, meta) = checkpoint::load(&part).unwrap();
    let step: usize = meta["step"].parse().unwrap();
    // A write cut short by the kill leaves the last complete checkpoint, never a torn or
    // older one.
    assert!(
        step.is_multiple_of(100) && step >= 300,
        "checkpoint at step {step}"
    );

    let (_, _, whole) = resume_and_run_whole(dir.path(), &part, step + 45, "buffer");
    assert!(
        weight_bits(&part) == weight_bits(&whole),
        "resumed weights differ"
    );
}
