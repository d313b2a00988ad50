//! `--metrics FILE.jsonl`: one JSON object per line, `{"event": "report", …}` at every display
//! step and `{"event": "summary", …}` at the end (or `{"event": "error", "message": …}` when
//! training stops on an error). `train --solver lbfgs` writes `{"event": "iteration", …}` at
//! every iteration (not only the displayed ones) and `{"event": "solution", …}` at the end. Each line is flushed as it is written, so
//! the file can be followed while training runs. Non-finite numbers are written as `null`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use mnist_logreg::train::Report;

/// One line of the metrics file.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MetricsEvent<'a> {
    /// A display step.
    Report {
        /// The step just taken (1-based).
        step: usize,
        /// Epochs of training data seen so far (`step · batch_size / train samples`).
        epoch: f64,
        /// Loss of the step's batch (sum over its rows), after the update.
        loss: f32,
        /// Accuracy on that batch, after the update.
        accuracy: f32,
        /// Rows clipped (no gradient) since the previous report.
        clipped_rows: usize,
        /// Training throughput since the previous report.
        images_per_sec: f64,
    },
    /// The end of the run.
    Summary(&'a Summary),
    /// One L-BFGS iteration (`--solver lbfgs`), every one of them.
    Iteration {
        /// Iterations done (1 for the first; a resumed run goes on from the saved count).
        iteration: usize,
        /// The objective at the new point: mean cross-entropy + (λ/2)·‖W‖².
        objective: f64,
        /// The largest absolute entry of its gradient (what `--tol` bounds).
        grad_max: f64,
        /// The accepted line-search step (1 = the full quasi-Newton step).
        step: f64,
        /// The quasi-Newton model's estimate of the objective's distance to its minimum,
        /// relative to the objective (what `--tol` bounds).
        gap_estimate: f64,
        /// Passes over the training data so far (in this process).
        evaluations: usize,
        /// Seconds since the solver started (in this process).
        seconds: f64,
    },
    /// The end of an L-BFGS run (`--solver lbfgs`), converged or not.
    Solution(&'a SolveSummary),
    /// The run was stopped by a signal after `step`: the last event of an interrupted run (no
    /// summary follows; the checkpoint, when saved, holds the steps taken).
    Interrupted {
        /// The last step completed (with `--solver lbfgs`, the last iteration).
        step: usize,
        /// `SIGINT` or `SIGTERM`.
        signal: &'a str,
    },
    /// The run stopped on an error (e.g. divergence); no summary follows.
    Error {
        /// The error message, as printed on stderr.
        message: &'a str,
    },
}

impl<'a> MetricsEvent<'a> {
    /// The line for `report`, given the batch size and the training-set size.
    pub fn report(r: &Report, batch_size: usize, train_samples: usize) -> Self {
        MetricsEvent::Report {
            step: r.step,
            epoch: (r.step * batch_size) as f64 / train_samples.max(1) as f64,
            loss: r.loss,
            accuracy: r.accuracy,
            clipped_rows: r.clipped_rows,
            images_per_sec: r.images_per_sec,
        }
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// SGD steps taken.
    pub steps: usize,
    /// Epochs of training data seen.
    pub epochs: f64,
    /// Rows per batch.
    pub batch_size: usize,
    /// SGD learning rate.
    pub learning_rate: f32,
    /// Sampler seed.
    pub seed: u64,
    /// Kernel name.
    pub kernel: String,
    /// What clipped rows passed as gradient (`zero` or `through`).
    pub clip_gradient: String,
    /// Instruction set the kernel ran on (`avx512 (16 lanes)`, …).
    pub simd: String,
    /// Threads used by the kernel.
    pub threads: usize,
    /// Wall time of the training loop, seconds.
    pub train_seconds: f64,
    /// Training images per second over the steps this process ran (`train_seconds`; a
    /// resumed run's earlier parts are not counted).
    pub images_per_sec: f64,
    /// Rows clipped over the whole run.
    pub clipped_rows: usize,
    /// Accuracy on the test split.
    pub test_accuracy: f64,
    /// Mean cross-entropy per test sample.
    pub test_loss: f64,
    /// Classes never predicted on the test split (a stalled run when not empty).
    pub never_predicted: Vec<usize>,
    /// Whether the data matched the MNIST checksums.
    pub verified: bool,
}

/// What a finished L-BFGS run reports (`"event": "solution"`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SolveSummary {
    /// `lbfgs`.
    pub solver: &'static str,
    /// Whether the largest gradient entry reached `tol`.
    pub converged: bool,
    /// Why it stopped: `converged`, `max_iter` or `line_search`.
    pub stop: &'static str,
    /// Iterations in all (a resumed run's included).
    pub iterations: usize,
    /// Passes over the training data in this process.
    pub evaluations: usize,
    /// The objective at the returned model.
    pub objective: f64,
    /// The largest absolute gradient entry there.
    pub grad_max: f64,
    /// The estimated relative gap to the optimum there.
    pub gap_estimate: f64,
    /// The tolerance on it.
    pub tol: f64,
    /// λ.
    pub l2: f64,
    /// The iteration budget.
    pub max_iter: usize,
    /// Seconds of the preconditioner's set-up.
    pub setup_seconds: f64,
    /// Seconds of the whole solve (set-up included).
    pub solve_seconds: f64,
    /// Instruction set of the solver's kernel.
    pub simd: String,
    /// Threads of the solver.
    pub threads: usize,
    /// Accuracy on the test split.
    pub test_accuracy: f64,
    /// Mean cross-entropy per test sample.
    pub test_loss: f64,
    /// Whether the data matched the MNIST checksums.
    pub verified: bool,
}

/// An open metrics file (or standard output).
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for MetricsLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLog")
            .field("path", &self.path)
            .finish()
    }
}

impl MetricsLog {
    /// Create (or truncate) `path`; `-` is standard output.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(File::create(path).map_err(|e| with_path(path, e))?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(out),
        })
    }

    /// Append one event as a line, and flush it.
    pub fn write(&mut self, event: &MetricsEvent) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, event).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")?;
        self.out.flush().map_err(|e| with_path(&self.path, e))
    }
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
