//! The run pipeline the binaries share, as plain functions a test can call: open the data and
//! pick the pixel buffers a kernel reads, check output paths before any work, start from a
//! model (fresh, loaded or resumed), evaluate, judge the result (trained, untrained, too short,
//! stalled), and write what a run records (checkpoint metadata, the metrics summary).
//!
//! `bin/train.rs` is these calls plus flags and printing; `bin/predict.rs` uses the model and
//! output checks.
//!
//! ```no_run
//! use mnist_logreg::kernels::KernelKind;
//! use mnist_logreg::run::{self, DataSource, RunSpec};
//! use mnist_logreg::train;
//!
//! let spec = RunSpec::default(); // the tutorial: 1000 steps of 256, rate 0.01, parallel_u8
//! let data = run::LoadedData::open(&DataSource::new("data/mnist"), spec.kernel.input(), false)?;
//! let kernel = spec.build_kernel(mnist_logreg::kernels::Isa::best(), 0);
//! let model = run::initial_model(None, data.features(), data.classes())?;
//! let outcome = train::train(&spec.train, kernel.as_ref(), data.train_data(), model, |_| {})?;
//! let eval = run::evaluate_test(kernel.as_ref(), &outcome.model, &data)?;
//! println!("test accuracy {:.4}", eval.accuracy);
//! # Ok::<(), run::RunError>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::batch::ShuffleKind;
use crate::checkpoint::{self, CheckpointError};
use crate::classes::{ClassNames, ClassNamesError};
use crate::dataset::{ChecksumPolicy, Dataset, DatasetError, Resident, Verification};
use crate::idx::LoadOptions;
use crate::kernels::{ClipGradient, Input, Isa, Kernel, KernelKind, Pixels, SimdError, Stats};
use crate::metrics::Summary;
use crate::model::Model;
use crate::train::{self, Progress, TrainConfig, TrainData, TrainError, TrainOutcome};

/// Faults of a run, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data directory or its files.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A checkpoint that cannot be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A class-names file.
    #[error(transparent)]
    ClassNames(#[from] ClassNamesError),
    /// Training stopped on an error.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The requested instruction set.
    #[error(transparent)]
    Simd(#[from] SimdError),
    /// A loaded model whose shape does not fit the data.
    #[error(
        "{}: the model has {model_features} features and {model_classes} classes, the data needs {features} and {classes}",
        path.display()
    )]
    ModelShape {
        /// The checkpoint.
        path: PathBuf,
        /// Its feature count.
        model_features: usize,
        /// Its class count.
        model_classes: usize,
        /// The data's feature count.
        features: usize,
        /// The data's class count.
        classes: usize,
    },
    /// A model that does not read 28×28 pictures.
    #[error(
        "{}: the model takes {features} features; pictures are 28×28 = 784",
        path.display()
    )]
    NotPictures {
        /// The checkpoint.
        path: PathBuf,
        /// Its feature count.
        features: usize,
    },
    /// A checkpoint that does not record a run to resume.
    #[error("{}: cannot resume from this checkpoint: {reason}", path.display())]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// An output path that cannot be written.
    #[error("{}: {reason}", path.display())]
    Output {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The huge-page copy of the data could not be made.
    #[error("cannot copy the training data into memory: {0}")]
    Memory(#[source] std::io::Error),
}

/// Where the data comes from and how it is read.
#[derive(Clone, Debug)]
pub struct DataSource {
    /// The directory with the four IDX files.
    pub dir: PathBuf,
    /// Mapping and caching of the files.
    pub load: LoadOptions,
    /// When to verify checksums.
    pub checksum: ChecksumPolicy,
    /// A class-names file (default: `class-names.txt` in `dir` when present).
    pub class_names: Option<PathBuf>,
}

impl DataSource {
    /// `dir` with the default loading options and checksum policy.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            load: LoadOptions::default(),
            checksum: ChecksumPolicy::Auto,
            class_names: None,
        }
    }
}

/// Training images from which a run copies the data into huge pages (about 4000 steps of
/// 256). Rows are read at random, and in the 4 KB pages of the mapped files most of them miss
/// the TLB; the copy costs 10–30 ms (at times 70) and saves ~5 ms per 1000 steps of batch 256,
/// so short runs, the tutorial's included, read the mapped files.
pub const RESIDENT_MIN_IMAGES: usize = 1_000_000;

/// True when a run of `steps` batches of `batch_size` should train from huge-page copies.
pub fn wants_resident(steps: usize, batch_size: usize) -> bool {
    steps.saturating_mul(batch_size) >= RESIDENT_MIN_IMAGES
}

/// The pixel buffers a kernel reads, besides the dataset's mapped u8 files.
enum Store {
    Mapped,
    ResidentU8 {
        train: Resident<u8>,
        test: Resident<u8>,
    },
    F32 {
        train: Resident<f32>,
        test: crate::aligned::AlignedF32,
    },
}

/// An opened dataset with its class names and the pixel buffers of one input format.
pub struct LoadedData {
    /// The four files.
    pub dataset: Dataset,
    /// Names of the classes, for output.
    pub names: ClassNames,
    /// Time taken to open, verify and convert.
    pub load_time: Duration,
    store: Store,
}

impl std::fmt::Debug for LoadedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedData")
            .field("dataset", &self.dataset.dir)
            .field("load_time", &self.load_time)
            .finish_non_exhaustive()
    }
}

impl LoadedData {
    /// Open `source` for kernels reading `input`; `resident` copies u8 pixels into huge pages
    /// (see [`wants_resident`]). The `f32` input is always a converted copy.
    pub fn open(source: &DataSource, input: Input, resident: bool) -> Result<Self, RunError> {
        let start = Instant::now();
        let dataset = Dataset::open(&source.dir, &source.load, source.checksum)?;
        let names = ClassNames::resolve(
            source.class_names.as_deref(),
            &dataset.dir,
            crate::MNIST_CLASSES,
        )?;
        let store = match input {
            Input::U8 if resident => Store::ResidentU8 {
                train: dataset.train.resident_u8().map_err(RunError::Memory)?,
                test: dataset.test.resident_u8().map_err(RunError::Memory)?,
            },
            Input::U8 => Store::Mapped,
            Input::F32 => Store::F32 {
                train: dataset.train.resident_f32().map_err(RunError::Memory)?,
                test: dataset.test.to_f32(),
            },
        };
        Ok(Self {
            dataset,
            names,
            load_time: start.elapsed(),
            store,
        })
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.dataset.train.features()
    }

    /// Classes the labels may take.
    pub fn classes(&self) -> usize {
        crate::MNIST_CLASSES
    }

    /// True when the files matched the MNIST checksums.
    pub fn verified(&self) -> bool {
        self.dataset.verification == Verification::Mnist
    }

    /// The training split as the kernels read it.
    pub fn train_data(&self) -> TrainData<'_> {
        let mapped = TrainData::u8(&self.dataset.train);
        match &self.store {
            Store::Mapped => mapped,
            Store::ResidentU8 { train, .. } => TrainData {
                pixels: Pixels::U8(train),
                ..mapped
            },
            Store::F32 { train, .. } => TrainData {
                pixels: Pixels::F32(train),
                ..mapped
            },
        }
    }

    /// The test pixels in the same format.
    pub fn test_pixels(&self) -> Pixels<'_> {
        match &self.store {
            Store::Mapped => Pixels::U8(self.dataset.test.pixels()),
            Store::ResidentU8 { test, .. } => Pixels::U8(test),
            Store::F32 { test, .. } => Pixels::F32(test),
        }
    }
}

/// Everything that decides a run's result: the training configuration, the kernel and the
/// gradient rule. [`Default`] is the tutorial's run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// Steps, batch, rate, seed, sampler.
    pub train: TrainConfig,
    /// The kernel variant.
    pub kernel: KernelKind,
    /// What clipped rows pass as gradient.
    pub clip: ClipGradient,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            train: TrainConfig::default(),
            kernel: KernelKind::ParallelU8,
            clip: ClipGradient::Zero,
        }
    }
}

impl RunSpec {
    /// The kernel of this spec on `isa` with `threads` (0 = one per core).
    pub fn build_kernel(&self, isa: Isa, threads: usize) -> Box<dyn Kernel> {
        self.kernel.build_with(isa, threads, self.clip)
    }

    /// The checkpoint metadata that records this run at `progress`: enough for
    /// [`RunSpec::from_metadata`] to continue it, plus `extra` (data directory, accuracy, …).
    pub fn metadata(
        &self,
        progress: Progress,
        extra: &[(&str, String)],
    ) -> HashMap<String, String> {
        let t = &self.train;
        let (shuffle_kind, buffer) = match t.shuffle {
            crate::batch::Shuffle::Buffer { size } => (ShuffleKind::Buffer, size),
            other => (other.kind(), 0),
        };
        let mut meta: HashMap<String, String> = [
            ("steps", t.steps.to_string()),
            ("step", progress.step.to_string()),
            ("batch_size", t.batch_size.to_string()),
            ("learning_rate", t.learning_rate.to_string()),
            ("display_step", t.display_step.to_string()),
            ("seed", t.seed.to_string()),
            ("shuffle", format!("{:?}", t.shuffle)),
            ("shuffle_kind", shuffle_kind.name().to_string()),
            ("shuffle_buffer", buffer.to_string()),
            ("allow_non_finite", t.allow_non_finite.to_string()),
            ("kernel", self.kernel.to_string()),
            ("clip_gradient", self.clip.name().to_string()),
            ("clipped_rows", progress.clipped_rows.to_string()),
            (
                "clipped_since_report",
                progress.clipped_since_report.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            meta.insert(k.to_string(), v.clone());
        }
        meta
    }

    /// [`RunSpec::metadata`] as `train --save` writes it: also the data directory, the
    /// checkpoint the run started from (`--load` or `--resume`; empty for none), and the test
    /// accuracy once evaluated.
    pub fn checkpoint_metadata(
        &self,
        progress: Progress,
        data_dir: &Path,
        started_from: Option<&Path>,
        test_accuracy: Option<f64>,
    ) -> HashMap<String, String> {
        let mut extra = vec![
            ("data", data_dir.display().to_string()),
            (
                "resumed_from",
                started_from.map_or(String::new(), |p| p.display().to_string()),
            ),
        ];
        if let Some(acc) = test_accuracy {
            extra.push(("test_accuracy", format!("{acc:.6}")));
        }
        self.metadata(progress, &extra)
    }

    /// The run recorded in checkpoint metadata by [`RunSpec::metadata`], and how far it got.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<(Self, Progress), String> {
        fn get<T: std::str::FromStr>(
            meta: &HashMap<String, String>,
            key: &str,
        ) -> Result<T, String> {
            let v = meta.get(key).ok_or_else(|| {
                format!(
                    "it has no `{key}` entry (it was not written by `train --save` of this version)"
                )
            })?;
            v.parse()
                .map_err(|_| format!("its `{key}` entry `{v}` is not valid"))
        }
        let kind: ShuffleKind = get(meta, "shuffle_kind")?;
        let train = TrainConfig {
            steps: get(meta, "steps")?,
            batch_size: get(meta, "batch_size")?,
            learning_rate: get(meta, "learning_rate")?,
            display_step: get(meta, "display_step")?,
            seed: get(meta, "seed")?,
            shuffle: kind.with_buffer(get(meta, "shuffle_buffer")?),
            allow_non_finite: get(meta, "allow_non_finite")?,
        };
        let progress = Progress {
            step: get(meta, "step")?,
            clipped_rows: get(meta, "clipped_rows")?,
            clipped_since_report: get(meta, "clipped_since_report")?,
        };
        let spec = RunSpec {
            train,
            kernel: get(meta, "kernel")?,
            clip: get(meta, "clip_gradient")?,
        };
        Ok((spec, progress))
    }
}

/// The starting model: the tutorial's initialisation, or the checkpoint `load` after checking
/// that its shape fits `features × classes`.
pub fn initial_model(
    load: Option<&Path>,
    features: usize,
    classes: usize,
) -> Result<Model, RunError> {
    match load {
        None => Ok(Model::tutorial_init(features, classes)),
        Some(path) => {
            let (model, _) = checkpoint::load(path)?;
            check_shape(&model, path, features, classes)?;
            Ok(model)
        }
    }
}

/// A loaded model must take `features` inputs and give `classes` outputs.
pub fn check_shape(
    model: &Model,
    path: &Path,
    features: usize,
    classes: usize,
) -> Result<(), RunError> {
    if (model.features(), model.classes()) == (features, classes) {
        return Ok(());
    }
    Err(RunError::ModelShape {
        path: path.to_path_buf(),
        model_features: model.features(),
        model_classes: model.classes(),
        features,
        classes,
    })
}

/// A checkpoint whose model reads 28×28 pictures (`predict`, `serve`), with its metadata.
pub fn load_picture_model(path: &Path) -> Result<(Model, HashMap<String, String>), RunError> {
    let (model, meta) = checkpoint::load(path)?;
    if model.features() != crate::MNIST_FEATURES {
        return Err(RunError::NotPictures {
            path: path.to_path_buf(),
            features: model.features(),
        });
    }
    Ok((model, meta))
}

/// A run to continue: the model, its spec and progress, from a checkpoint written by a run.
pub fn load_resume(path: &Path) -> Result<(Model, RunSpec, Progress), RunError> {
    let (model, meta) = checkpoint::load(path)?;
    let (spec, progress) = RunSpec::from_metadata(&meta).map_err(|reason| RunError::Resume {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok((model, spec, progress))
}

/// Check, before any work, that `path` can be written as a file: its parent directory exists
/// and is writable, and `path` is not a directory. Nothing is left behind.
pub fn check_output_file(path: &Path) -> Result<(), RunError> {
    let fail = |reason: String| {
        Err(RunError::Output {
            path: path.to_path_buf(),
            reason,
        })
    };
    if path.is_dir() {
        return fail("is a directory; give a file name".into());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.exists() {
        return fail(format!("{} does not exist", parent.display()));
    }
    if !parent.is_dir() {
        return fail(format!("{} is not a directory", parent.display()));
    }
    try_write_in(parent).or_else(|e| fail(format!("cannot write in {}: {e}", parent.display())))
}

/// Create and delete a temporary file in `dir`; on failure, the operating system's words
/// (without the temporary file's name that `tempfile` adds to them).
fn try_write_in(dir: &Path) -> Result<(), String> {
    match tempfile::Builder::new()
        .prefix(".write-check-")
        .tempfile_in(dir)
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            Err(text.split(" at path ").next().unwrap_or(&text).to_string())
        }
    }
}

/// Check, before any work, that `dir` is a directory that can be written, creating it (and
/// its parents) when missing.
pub fn check_output_dir(dir: &Path) -> Result<(), RunError> {
    let fail = |reason: String| {
        Err(RunError::Output {
            path: dir.to_path_buf(),
            reason,
        })
    };
    if dir.exists() && !dir.is_dir() {
        return fail("is not a directory".into());
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(format!("cannot create the directory: {e}"));
    }
    try_write_in(dir).or_else(|e| fail(format!("cannot write in the directory: {e}")))
}

/// A warning when `threads` asks for more threads than the machine has cores: the extra
/// threads share cores, and every step waits for the slowest.
pub fn threads_warning(threads: usize) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (threads > cores).then(|| {
        format!(
            "warning: --threads {threads} is more than the {cores} core(s) of this machine; \
             the extra threads share cores and slow each step down (0 = one per core)"
        )
    })
}

/// A model evaluated on the test split.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Loss, correct and clipped counts.
    pub stats: Stats,
    /// The predicted class of every test sample.
    pub predictions: Vec<u8>,
    /// `correct / samples`.
    pub accuracy: f64,
    /// Mean loss per sample.
    pub mean_loss: f64,
    /// Time taken.
    pub elapsed: Duration,
}

/// Evaluate `model` on the test split of `data` with `kernel`.
pub fn evaluate_test(
    kernel: &dyn Kernel,
    model: &Model,
    data: &LoadedData,
) -> Result<Evaluation, RunError> {
    let start = Instant::now();
    let (stats, predictions) = train::evaluate(
        kernel,
        model,
        data.test_pixels(),
        data.dataset.test.labels(),
    )?;
    let n = predictions.len().max(1) as f64;
    Ok(Evaluation {
        accuracy: stats.correct as f64 / n,
        mean_loss: stats.loss as f64 / n,
        stats,
        predictions,
        elapsed: start.elapsed(),
    })
}

/// Runs shorter than this many steps are "short": a class not predicted yet is no stall.
pub const SHORT_RUN_STEPS: usize = 100;

/// What the test predictions say about a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every class is predicted for some test image.
    Trained,
    /// No step was taken from the tutorial's initialisation (`W = 1`, `b = 0`): all logits
    /// are equal and every image gets class 0.
    Untrained,
    /// Fewer than [`SHORT_RUN_STEPS`] steps, and some classes are not predicted yet.
    Short {
        /// Steps taken.
        steps: usize,
        /// Classes never predicted.
        never_predicted: Vec<usize>,
    },
    /// Classes are never predicted after a full run in which rows were clipped: the
    /// tutorial's stall (clipped rows pass no gradient, so a collapsed class never recovers).
    Stalled {
        /// Classes never predicted.
        never_predicted: Vec<usize>,
        /// Clipped rows over the run.
        clipped_rows: usize,
    },
    /// Classes are never predicted, without clipping: the model cannot tell them apart.
    Collapsed {
        /// Classes never predicted.
        never_predicted: Vec<usize>,
    },
}

/// Judge a run that took `steps` steps (`from_checkpoint`: it started from a loaded model).
pub fn verdict(
    steps: usize,
    from_checkpoint: bool,
    clipped_rows: usize,
    predictions: &[u8],
    classes: usize,
) -> Verdict {
    let never_predicted = train::never_predicted(predictions, classes);
    if steps == 0 && !from_checkpoint {
        Verdict::Untrained
    } else if never_predicted.is_empty() {
        Verdict::Trained
    } else if steps < SHORT_RUN_STEPS && !from_checkpoint {
        Verdict::Short {
            steps,
            never_predicted,
        }
    } else if clipped_rows > 0 {
        Verdict::Stalled {
            never_predicted,
            clipped_rows,
        }
    } else {
        Verdict::Collapsed { never_predicted }
    }
}

impl Verdict {
    /// Classes never predicted (empty for a trained or untrained model).
    pub fn never_predicted(&self) -> &[usize] {
        match self {
            Verdict::Short {
                never_predicted, ..
            }
            | Verdict::Stalled {
                never_predicted, ..
            }
            | Verdict::Collapsed { never_predicted } => never_predicted,
            Verdict::Trained | Verdict::Untrained => &[],
        }
    }

    /// The line to print on stderr, if any; `names` labels the classes.
    pub fn message(&self, names: &ClassNames) -> Option<String> {
        let list = |cs: &[usize]| {
            cs.iter()
                .map(|&c| names.label(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Verdict::Trained => None,
            Verdict::Untrained => Some(
                "note: the model is untrained (--steps 0 without --load): W = 1 and b = 0 give \
                 every class the same logit, so every image is predicted as the first class"
                    .to_string(),
            ),
            Verdict::Short {
                steps,
                never_predicted,
            } => Some(format!(
                "note: after only {steps} step(s), class(es) {} are not predicted yet; the \
                 tutorial trains 1000 steps",
                list(never_predicted)
            )),
            Verdict::Stalled {
                never_predicted,
                clipped_rows,
            } => Some(format!(
                "warning: class(es) {} are never predicted on the test set: training stalled \
                 ({clipped_rows} rows had p_true < 1e-9 and passed no gradient). This is the \
                 tutorial's known failure mode with W initialised to ones; try another --seed \
                 or --clip-gradient through.",
                list(never_predicted)
            )),
            Verdict::Collapsed { never_predicted } => Some(format!(
                "warning: class(es) {} are never predicted on the test set",
                list(never_predicted)
            )),
        }
    }
}

/// The metrics summary of a finished (or interrupted) run.
pub fn summary(
    spec: &RunSpec,
    kernel: &dyn Kernel,
    outcome: &TrainOutcome,
    eval: &Evaluation,
    verdict: &Verdict,
    data: &LoadedData,
) -> Summary {
    let steps = outcome.progress.step;
    let images = (steps * spec.train.batch_size) as f64;
    let secs = outcome.elapsed.as_secs_f64();
    Summary {
        steps,
        epochs: images / data.dataset.train.len().max(1) as f64,
        batch_size: spec.train.batch_size,
        learning_rate: spec.train.learning_rate,
        seed: spec.train.seed,
        kernel: spec.kernel.to_string(),
        clip_gradient: spec.clip.name().to_string(),
        simd: kernel.simd(),
        threads: kernel.threads(),
        train_seconds: secs,
        images_per_sec: images / secs.max(1e-12),
        clipped_rows: outcome.clipped_rows(),
        test_accuracy: eval.accuracy,
        test_loss: eval.mean_loss,
        never_predicted: verdict.never_predicted().to_vec(),
        verified: data.verified(),
    }
}

/// Let a closed stdout (`train | head`) end the process quietly with SIGPIPE, as any Unix
/// filter does, instead of Rust's default (the write fails, and `println!` panics). For
/// binaries: call it first in `main`.
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: `signal(SIGPIPE, SIG_DFL)` installs no handler code and touches no memory of
    // ours; it only restores the kernel's default disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Ctrl-C and `kill`: the first SIGINT or SIGTERM asks the run to stop at the end of the
/// current step (see [`stop_requested`]); a second one ends the process at once with the
/// signal's conventional status (130 for SIGINT, 143 for SIGTERM).
#[cfg(unix)]
pub fn install_stop_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    for (signal, status) in [(SIGINT, 130), (SIGTERM, 143)] {
        // Registration order is execution order: exit if a signal came before, then mark.
        flag::register_conditional_shutdown(signal, status, &SIGNALLED)?;
        flag::register(signal, &SIGNALLED)?;
        flag::register_usize(signal, &STOP_SIGNAL, signal as usize)?;
    }
    Ok(())
}

/// Without signals there is nothing to install.
#[cfg(not(unix))]
pub fn install_stop_handlers() -> std::io::Result<()> {
    Ok(())
}

static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STOP_SIGNAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A stop signal that has arrived, if any: its name and the exit status it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopSignal {
    /// `SIGINT` or `SIGTERM`.
    pub name: &'static str,
    /// 128 + the signal number.
    pub exit_status: u8,
}

/// The stop signal received since [`install_stop_handlers`], if any.
pub fn stop_requested() -> Option<StopSignal> {
    match STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        15 => Some(StopSignal {
            name: "SIGTERM",
            exit_status: 143,
        }),
        _ => Some(StopSignal {
            name: "SIGINT",
            exit_status: 130,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_the_spec_and_progress() {
        for shuffle in [
            crate::batch::Shuffle::Buffer { size: 77 },
            crate::batch::Shuffle::Epoch,
            crate::batch::Shuffle::Sequential,
        ] {
            let spec = RunSpec {
                train: TrainConfig {
                    steps: 1234,
                    batch_size: 100,
                    learning_rate: 0.0375,
                    display_step: 7,
                    seed: 99,
                    shuffle,
                    allow_non_finite: true,
                },
                kernel: KernelKind::FusedU8,
                clip: ClipGradient::Through,
            };
            let progress = Progress {
                step: 321,
                clipped_rows: 12,
                clipped_since_report: 3,
            };
            let meta = spec.metadata(progress, &[("data", "x".into())]);
            assert_eq!(meta["data"], "x");
            assert_eq!(RunSpec::from_metadata(&meta), Ok((spec, progress)));
        }
    }

    #[test]
    fn metadata_without_a_run_is_refused_with_the_missing_key() {
        let meta = HashMap::from([("steps".to_string(), "10".to_string())]);
        let err = RunSpec::from_metadata(&meta).unwrap_err();
        assert!(err.contains("shuffle_kind"), "{err}");
        let mut meta = RunSpec::default().metadata(Progress::default(), &[]);
        meta.insert("kernel".into(), "warp".into());
        let err = RunSpec::from_metadata(&meta).unwrap_err();
        assert!(err.contains("`kernel` entry `warp`"), "{err}");
    }

    #[test]
    fn verdicts() {
        let all: Vec<u8> = (0..10).collect();
        let no_nine: Vec<u8> = (0..9).collect();
        assert_eq!(verdict(0, false, 0, &[0; 10], 10), Verdict::Untrained);
        assert_eq!(verdict(1000, false, 5, &all, 10), Verdict::Trained);
        assert_eq!(
            verdict(10, false, 5, &no_nine, 10),
            Verdict::Short {
                steps: 10,
                never_predicted: vec![9]
            }
        );
        assert_eq!(
            verdict(1000, false, 5, &no_nine, 10),
            Verdict::Stalled {
                never_predicted: vec![9],
                clipped_rows: 5
            }
        );
        assert_eq!(
            verdict(1000, false, 0, &no_nine, 10),
            Verdict::Collapsed {
                never_predicted: vec![9]
            }
        );
        // A loaded model evaluated with --steps 0 is judged on its predictions.
        assert!(matches!(
            verdict(0, true, 0, &no_nine, 10),
            Verdict::Collapsed { .. }
        ));
    }

    #[test]
    fn picture_models_must_take_784_features() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.safetensors");
        checkpoint::save(&path, &Model::tutorial_init(5, 3), HashMap::new()).unwrap();
        let msg = load_picture_model(&path).unwrap_err().to_string();
        assert!(
            msg.contains("the model takes 5 features; pictures are 28×28 = 784"),
            "{msg}"
        );
        let path = dir.path().join("mnist.safetensors");
        checkpoint::save(&path, &Model::tutorial_init(784, 10), HashMap::new()).unwrap();
        assert_eq!(load_picture_model(&path).unwrap().0.classes(), 10);
    }

    #[test]
    fn output_checks_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let msg = |r: Result<(), RunError>| r.unwrap_err().to_string();
        assert!(msg(check_output_file(dir.path())).contains("is a directory"));
        let missing = dir.path().join("nope/model.safetensors");
        assert!(msg(check_output_file(&missing)).contains("does not exist"));
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(msg(check_output_file(&file.join("x"))).contains("is not a directory"));
        assert!(msg(check_output_dir(&file)).contains("is not a directory"));
        check_output_file(&dir.path().join("ok.safetensors")).unwrap();
        check_output_dir(&dir.path().join("plots/a")).unwrap();
        // Nothing but the created directories is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2);
    }
}
