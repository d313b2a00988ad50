//! Helpers of the cli's integration tests: the library's (`tests/common/mod.rs`, included) and
//! the binaries as commands.
#![allow(dead_code)]

#[path = "../../../tests/common/mod.rs"]
mod library;
pub use library::*;

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
pub mod http;
pub mod pictures;
