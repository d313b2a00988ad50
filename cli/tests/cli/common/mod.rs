//! Helpers of the cli's integration tests: the library's (`tests/library/common.rs`, included) and
//! the binaries as commands.
#![allow(dead_code)]

#[path = "../../../../tests/library/common.rs"]
mod library;
pub use library::*;

/// The committed MNIST, and the novelty score fitted on its training split (calibrated on
/// its test split).
pub fn mnist_with_novelty() -> (
    mnist_logreg::dataset::Dataset,
    mnist_logreg_cli::novelty::Novelty,
) {
    let data =
        mnist_logreg::dataset::Dataset::open(&mnist_dir(), &Default::default(), Default::default())
            .unwrap();
    let novelty =
        mnist_logreg_cli::novelty::Novelty::fit(data.train.pixels(), data.test.pixels()).unwrap();
    (data, novelty)
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
/// Start `cmd`, wait for its first `lines` lines of stdout and then (polling, at most 60 s)
/// until `ready()` holds, send it `signal`, and return (exit code, stdout, stderr).
#[cfg(unix)]
pub fn interrupted(
    cmd: &mut std::process::Command,
    lines: usize,
    ready: impl Fn() -> bool,
    signal: i32,
) -> (Option<i32>, String, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for _ in 0..lines {
        stdout.read_line(&mut seen).unwrap();
    }
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed().as_secs() < 60, "never ready: {seen}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: `kill` only sends a signal to the child we started (and have not waited on).
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    stdout.read_to_string(&mut seen).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), seen, stderr)
}

pub mod http;
pub mod pictures;
