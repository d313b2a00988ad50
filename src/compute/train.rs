//! The training loop of the tutorial: sample a batch, forward + backward, SGD step; every
//! `display_step` steps re-evaluate the same batch after the update and report.
//!
//! A run can stop after any step (an [`Observer`] returns [`ControlFlow::Break`]) and continue
//! later from the [`Progress`] it reached: [`resume`] redraws the sampler's batches up to that
//! step, so the continued run takes exactly the steps the uninterrupted one would have.
//!
//! ```
//! use mnist_logreg::kernels::{KernelKind, Pixels};
//! use mnist_logreg::model::Model;
//! use mnist_logreg::train::{self, TrainConfig, TrainData};
//!
//! // Four 2-pixel samples: class 0 is bright on the left, class 1 on the right.
//! let pixels = [255u8, 0, 0, 255, 200, 10, 10, 200];
//! let labels = [0u32, 1, 0, 1];
//! let data = TrainData { pixels: Pixels::U8(&pixels), labels: &labels, features: 2 };
//! let cfg = TrainConfig { steps: 200, batch_size: 4, learning_rate: 0.5, ..TrainConfig::default() };
//! let kernel = KernelKind::Reference.build(1);
//! let outcome = train::train(&cfg, kernel.as_ref(), data, Model::tutorial_init(2, 2), |_| {})?;
//! let (stats, _) = train::evaluate(kernel.as_ref(), &outcome.model, data.pixels, &labels)?;
//! assert_eq!(stats.correct, 4);
//! # Ok::<(), train::TrainError>(())
//! ```

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::compute::kernels::{Batch, Kernel, Pixels, Stats};
use crate::compute::model::{Grads, Model};
use crate::data::batch::{Sampler, Shuffle};

/// The knobs of a training run. [`Default`] is the tutorial's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Number of SGD steps.
    pub steps: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// SGD learning rate.
    pub learning_rate: f32,
    /// Report every this many steps (after the step's update).
    pub display_step: usize,
    /// Seed of the batch sampler.
    pub seed: u64,
    /// How batches are drawn.
    pub shuffle: Shuffle,
    /// Keep going when the loss, a gradient or a weight stops being finite.
    pub allow_non_finite: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 256,
            learning_rate: 0.01,
            display_step: 50,
            seed: 0,
            shuffle: Shuffle::Buffer { size: 5000 },
            allow_non_finite: false,
        }
    }
}

/// Faults of a training run.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum TrainError {
    /// A configuration value that cannot work: `field` names the [`TrainConfig`] field (or
    /// `data` for the training set).
    #[error("invalid configuration: {field} {reason}")]
    Config {
        /// The field of [`TrainConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data's pixels, labels and feature count do not agree with each other.
    #[error(transparent)]
    Batch(#[from] crate::compute::kernels::BatchError),
    /// The data's feature count is not the model's.
    #[error("the data has {data} features per sample, the model reads {model}")]
    Features {
        /// Features per sample of the data.
        data: usize,
        /// Features of the model.
        model: usize,
    },
    /// The loss, a gradient or the weights stopped being finite.
    #[error(
        "step {step}: the {quantity} {} not finite ({value}); training diverged (lower the learning rate, check the input for NaN, or set allow_non_finite to continue)",
        if *quantity == "weights" { "are" } else { "is" }
    )]
    NonFinite {
        /// The step (1-based) where it first appeared.
        step: usize,
        /// `loss`, `gradient` or `weights`.
        quantity: &'static str,
        /// The offending value.
        value: f32,
    },
}

/// The training set as the kernels read it.
#[derive(Clone, Copy, Debug)]
pub struct TrainData<'a> {
    /// Pixels of all samples.
    pub pixels: Pixels<'a>,
    /// Labels of all samples.
    pub labels: &'a [u32],
    /// Features per sample.
    pub features: usize,
}

impl<'a> TrainData<'a> {
    /// A dataset split as the u8 kernels read it (`fused_u8`, `parallel_u8`): its mapped
    /// pixels and labels, in place.
    pub fn u8(split: &'a crate::data::dataset::Split) -> Self {
        Self {
            pixels: Pixels::U8(split.pixels()),
            labels: split.labels(),
            features: split.features(),
        }
    }
}

/// One progress report, every `display_step` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// The step just taken (1-based).
    pub step: usize,
    /// Loss of that step's batch, re-evaluated after the update.
    pub loss: f32,
    /// Accuracy on that batch after the update.
    pub accuracy: f32,
    /// Rows whose true-class probability was clipped (no gradient) in the training passes
    /// since the previous report.
    pub clipped_rows: usize,
    /// Images processed per second by the training passes since the previous report.
    pub images_per_sec: f64,
}

/// How far a run got: what [`resume`] needs besides the model and the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Steps taken (the last one completed).
    pub step: usize,
    /// Clipped rows over all steps taken.
    pub clipped_rows: usize,
    /// Clipped rows since the last report (carried into the next [`Report`]).
    pub clipped_since_report: usize,
}

/// What a run returns when it ends, finished or stopped.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TrainOutcome {
    /// The model after the last step taken.
    pub model: Model,
    /// Wall time of this call's step loop (reports included).
    pub elapsed: Duration,
    /// Where the run ended; `progress.step < cfg.steps` when an observer stopped it.
    pub progress: Progress,
    /// The step this call started after (0 for [`train`], `from.step` for [`resume`]).
    pub started_after: usize,
}

impl TrainOutcome {
    /// Steps this call ran (a resumed run's earlier parts not included).
    pub fn steps_run(&self) -> usize {
        self.progress.step - self.started_after
    }

    /// Images per second of this call's step loop, at `batch_size` rows per step.
    pub fn images_per_sec(&self, batch_size: usize) -> f64 {
        (self.steps_run() * batch_size) as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    /// Clipped rows over the whole run (every resumed part included).
    pub fn clipped_rows(&self) -> usize {
        self.progress.clipped_rows
    }
}

/// Watches a run. Every method has a default, and any `FnMut(&Report)` closure is an observer
/// that only sees the reports.
pub trait Observer {
    /// Called every `display_step` steps with the report of that step.
    fn on_report(&mut self, _report: &Report) {}

    /// Called after every step (keep it cheap). [`ControlFlow::Break`] ends the run there:
    /// the outcome then holds the model and [`Progress`] of this step.
    fn after_step(&mut self, _step: usize) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Called after every step, before [`Observer::after_step`], with the model and the
    /// progress of that step: what a periodic checkpoint needs (keep it cheap on most steps).
    fn on_step(&mut self, _model: &Model, _progress: &Progress) {}
}

impl<F: FnMut(&Report)> Observer for F {
    fn on_report(&mut self, report: &Report) {
        self(report)
    }
}

/// Check a configuration before running it.
pub(crate) fn validate(cfg: &TrainConfig, samples: usize) -> Result<(), TrainError> {
    let bad = |field, reason| Err(TrainError::Config { field, reason });
    if cfg.batch_size == 0 {
        return bad("batch_size", "must be at least 1");
    }
    if cfg.display_step == 0 {
        return bad("display_step", "must be at least 1");
    }
    if !(cfg.learning_rate.is_finite() && cfg.learning_rate > 0.0) {
        return bad("learning_rate", "must be a finite number above 0");
    }
    if let Shuffle::Buffer { size: 0 } = cfg.shuffle {
        return bad("shuffle_buffer", "must be at least 1");
    }
    if samples == 0 {
        return bad("data", "is empty: the training set has no samples");
    }
    Ok(())
}

/// Run `cfg.steps` SGD steps of `kernel` on `data`, starting from `model`; `on_report` sees a
/// report every `display_step` steps. [`resume`] with [`Progress::default`] is the same run
/// with an [`Observer`] that can also stop it.
pub fn train(
    cfg: &TrainConfig,
    kernel: &dyn Kernel,
    data: TrainData,
    model: Model,
    on_report: impl FnMut(&Report),
) -> Result<TrainOutcome, TrainError> {
    resume(cfg, kernel, data, model, Progress::default(), on_report)
}

/// Continue a run of `cfg` that reached `from` with `model`: the steps after `from.step` up to
/// `cfg.steps`, on the same batches, with the same reports, as if it had never stopped.
pub fn resume(
    cfg: &TrainConfig,
    kernel: &dyn Kernel,
    data: TrainData,
    mut model: Model,
    from: Progress,
    mut observer: impl Observer,
) -> Result<TrainOutcome, TrainError> {
    validate(cfg, data.labels.len())?;
    // Validate every label once: batches drawn later are then valid by construction.
    let all: Vec<usize> = (0..data.labels.len()).collect();
    check_data(&model, data.pixels, data.features, data.labels, &all)?;
    drop(all);

    let mut sampler = sampler_after(cfg, data.labels.len(), from.step);
    let mut grads = Grads::zeros_like(&model);
    // The sampler runs one batch ahead: the kernels prefetch the next step's rows while this
    // step computes. The batches drawn are the same as without the look-ahead.
    let mut rows = Vec::with_capacity(cfg.batch_size);
    let mut next_rows = Vec::with_capacity(cfg.batch_size);
    if cfg.steps > from.step {
        sampler.next_batch(cfg.batch_size, &mut next_rows);
    }
    let mut progress = from;
    let start = Instant::now();
    let mut interval = Interval { start, images: 0 };
    for step in from.step + 1..=cfg.steps {
        std::mem::swap(&mut rows, &mut next_rows);
        next_rows.clear();
        if step < cfg.steps {
            sampler.next_batch(cfg.batch_size, &mut next_rows);
        }
        // Every label was validated above and the sampler yields indices below the sample
        // count, so the batch is valid by construction.
        let batch =
            Batch::trusted(data.pixels, data.features, data.labels, &rows).with_next(&next_rows);
        let stats = kernel.forward_backward(&model, &batch, &mut grads);
        progress.clipped_since_report += stats.clipped;
        progress.clipped_rows += stats.clipped;
        interval.images += rows.len();
        // One pass over `dW`: the update, and whether it was finite (a run that stops on a
        // non-finite value returns no model, so updating first changes nothing it shows).
        let finite = model.sgd_step_checked(&grads, cfg.learning_rate);
        if !cfg.allow_non_finite {
            check_finite(step, &stats, finite, &grads)?;
        }
        if step % cfg.display_step == 0 {
            if let (false, Some(value)) = (cfg.allow_non_finite, model.first_non_finite()) {
                return Err(TrainError::NonFinite {
                    step,
                    quantity: "weights",
                    value,
                });
            }
            observer.on_report(&interval.report(kernel, &model, &batch, step, &mut progress));
        }
        progress.step = step;
        observer.on_step(&model, &progress);
        if observer.after_step(step).is_break() {
            break;
        }
    }
    Ok(TrainOutcome {
        model,
        elapsed: start.elapsed(),
        progress,
        started_after: from.step,
    })
}

/// A sampler of `cfg` over `n` samples that has drawn the batches of the first `steps` steps
/// and dropped them: its state is a function of the seed and the number of draws (256 000
/// draws take about a millisecond), so a resumed run draws the batches it would have drawn.
fn sampler_after(cfg: &TrainConfig, n: usize, steps: usize) -> Sampler {
    let mut sampler = Sampler::new(cfg.shuffle, n, cfg.seed);
    for _ in 0..steps.saturating_mul(cfg.batch_size) {
        sampler.next_index();
    }
    sampler
}

/// The steps between two reports: when they started and how many images they read.
struct Interval {
    start: Instant,
    images: usize,
}

impl Interval {
    /// The report at `step`: the loss and accuracy on the step's `batch` after its update, the
    /// rows clipped and the speed since the last report; starts the next interval.
    fn report(
        &mut self,
        kernel: &dyn Kernel,
        model: &Model,
        batch: &Batch,
        step: usize,
        progress: &mut Progress,
    ) -> Report {
        let secs = self.start.elapsed().as_secs_f64();
        let after: Stats = kernel.forward(model, batch, None);
        let report = Report {
            step,
            loss: after.loss,
            accuracy: after.correct as f32 / batch.rows().len() as f32,
            clipped_rows: progress.clipped_since_report,
            images_per_sec: self.images as f64 / secs.max(1e-12),
        };
        progress.clipped_since_report = 0;
        *self = Interval {
            start: Instant::now(),
            images: 0,
        };
        report
    }
}

/// Stop at the first step whose loss or gradient is not finite. `db` is the column sum of the
/// logit gradient, so a NaN/Inf anywhere in `G` shows there; `dW` is checked as well because
/// an infinite input can poison it alone. `grads_finite` is what the SGD update saw; only a
/// poisoned step searches the gradients for the value to report.
fn check_finite(
    step: usize,
    stats: &Stats,
    grads_finite: bool,
    grads: &Grads,
) -> Result<(), TrainError> {
    if !stats.loss.is_finite() {
        return Err(TrainError::NonFinite {
            step,
            quantity: "loss",
            value: stats.loss,
        });
    }
    if grads_finite {
        return Ok(());
    }
    Err(TrainError::NonFinite {
        step,
        quantity: "gradient",
        value: grads.first_non_finite().unwrap_or(f32::NAN),
    })
}

/// Forward pass over every sample of a split: stats and one prediction per sample.
pub fn evaluate(
    kernel: &dyn Kernel,
    model: &Model,
    pixels: Pixels,
    labels: &[u32],
) -> Result<(Stats, Vec<u32>), TrainError> {
    let rows: Vec<usize> = (0..labels.len()).collect();
    let batch = check_data(model, pixels, model.features(), labels, &rows)?;
    let mut predictions = vec![0u32; rows.len()];
    let stats = kernel.forward(model, &batch, Some(&mut predictions));
    Ok((stats, predictions))
}

/// The batch of `rows` of `pixels`/`labels` (samples of `features` values), checked to fit
/// `model`: the feature count first, then the shape, the row indices and every label.
fn check_data<'a>(
    model: &Model,
    pixels: Pixels<'a>,
    features: usize,
    labels: &'a [u32],
    rows: &'a [usize],
) -> Result<Batch<'a>, TrainError> {
    if features != model.features() {
        return Err(TrainError::Features {
            data: features,
            model: model.features(),
        });
    }
    Ok(Batch::new(pixels, features, labels, rows, model.classes())?)
}
