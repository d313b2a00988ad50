//! A trained model judged: its test evaluation, the verdict on the run, the metrics summary.

use std::time::{Duration, Instant};

use crate::classes::ClassNames;
use crate::metrics::Summary;
use mnist_logreg::kernels::{Isa, Kernel, Stats};
use mnist_logreg::model::Model;
use mnist_logreg::train::{self, TrainOutcome};

use super::{DataSource, LoadedData, RunError, RunSpec};

/// A model evaluated on the test split.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Loss, correct and clipped counts.
    pub stats: Stats,
    /// The predicted class of every test sample.
    pub predictions: Vec<u32>,
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
    let (stats, predictions) =
        train::evaluate(kernel, model, data.test_pixels(), data.test_labels())?;
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
#[non_exhaustive]
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

/// The learning rate that ended every stall measured, on MNIST and Fashion-MNIST alike.
///
/// Measured 2026-12-06 on a 2-core AMD EPYC (avx512), `parallel_u8`, the dev profile's build
/// (opt-level 2; each run 0.3–0.8 s of wall time, data loading included), 1000 steps of 256:
///
/// | data, seed | `train --seed S` | `--clip-gradient through` | `--learning-rate 0.001` |
/// | --- | --- | --- | --- |
/// | MNIST (`data/mnist`), 3 | 0.8341 stalled (8) | 0.8990 | 0.9184 |
/// | MNIST, 5 | 0.8396 stalled (8) | 0.9136 | 0.9182 |
/// | MNIST, 8 | 0.8297 stalled (8) | 0.9156 | 0.9184 |
/// | Fashion-MNIST (Debian's `dataset-fashion-mnist`), 0 | 0.7659 stalled (2) | 0.7995 | 0.8104 |
/// | Fashion-MNIST, 1 | 0.7098 stalled (2, 6) | 0.7348 | 0.8211 |
/// | Fashion-MNIST, 2 | 0.6271 stalled (0, 9) | 0.7930 | 0.8218 |
/// | Fashion-MNIST, 3 | 0.7640 stalled (4) | 0.8072 | 0.8179 |
/// | Fashion-MNIST, 4 | 0.7508 stalled (0) | 0.8019 | 0.8328 |
///
/// (`train --data /usr/share/datasets/fashion-mnist --seed S [--clip-gradient through |
/// --learning-rate 0.001] --quiet`.) The rate 0.001 is the best of the three on every run,
/// with or without `--clip-gradient through` (the same to ±0.0005). `--clip-gradient through`
/// ended these stalls too, but it lost to the stalled default on a Fashion-MNIST run reported
/// in issue 30 (0.7624 against 0.7757), and another `--seed` only trades one chaotic run for
/// another: neither is suggested.
const STALL_FREE_RATE: f32 = 0.001;

/// What to try after a stall at `learning_rate`: only what was measured to help
/// ([`STALL_FREE_RATE`]).
fn stall_advice(learning_rate: f32) -> String {
    // The tutorial's rate, on a loss summed over the batch.
    let tutorial = train::TrainConfig::default().learning_rate;
    let rate = if learning_rate >= 1e4 {
        format!("{learning_rate:e}")
    } else {
        learning_rate.to_string()
    };
    if learning_rate > tutorial {
        format!(
            "The learning rate {rate} is above the tutorial's {tutorial}, on a loss summed \
             over the batch, so its steps overshoot: try --learning-rate {STALL_FREE_RATE}."
        )
    } else if learning_rate > STALL_FREE_RATE {
        format!(
            "This is the tutorial's known failure mode with W initialised to ones; try \
             --learning-rate {STALL_FREE_RATE} (measured on MNIST and Fashion-MNIST: every \
             stalled run trained past the stall and scored higher, e.g. 0.8341 → 0.9184)."
        )
    } else {
        format!(
            "The rate {rate} is already at or below {STALL_FREE_RATE}, the rate measured to end \
             the tutorial's stalls: check the data (are the labels right?)."
        )
    }
}

/// Classes that never appear in `predictions` (a stalled class, see `docs/cli.md`, "Seeds,
/// stalls, and a recipe that never stalls").
fn never_predicted(predictions: &[u32], classes: usize) -> Vec<usize> {
    let mut seen = vec![false; classes];
    for &p in predictions {
        if let Some(s) = seen.get_mut(p as usize) {
            *s = true;
        }
    }
    (0..classes).filter(|&c| !seen[c]).collect()
}

/// Judge a run that took `steps` steps (`from_checkpoint`: it started from a loaded model).
pub fn verdict(
    steps: usize,
    from_checkpoint: bool,
    clipped_rows: usize,
    predictions: &[u32],
    classes: usize,
) -> Verdict {
    let never_predicted = never_predicted(predictions, classes);
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

    /// The line to print on stderr, if any; `names` labels the classes, `learning_rate` is
    /// the run's (a stall at a rate above the tutorial's is blamed on the rate).
    pub fn message(&self, names: &ClassNames, learning_rate: f32) -> Option<String> {
        // "class 8 is", "classes 3, 8 are".
        let list = |cs: &[usize]| {
            let labels = cs
                .iter()
                .map(|&c| names.label(c))
                .collect::<Vec<_>>()
                .join(", ");
            match cs.len() {
                1 => format!("class {labels} is"),
                _ => format!("classes {labels} are"),
            }
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
                "note: after only {steps} step{}, {} not predicted yet; the tutorial trains \
                 1000 steps",
                if *steps == 1 { "" } else { "s" },
                list(never_predicted)
            )),
            Verdict::Stalled {
                never_predicted,
                clipped_rows,
            } => Some(format!(
                "warning: {} never predicted on the test set: training stalled \
                 ({clipped_rows} rows had p_true < 1e-9 and passed no gradient). {}",
                list(never_predicted),
                stall_advice(learning_rate)
            )),
            Verdict::Collapsed { never_predicted } => Some(format!(
                "warning: {} never predicted on the test set",
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
        epochs: images / data.train_len().max(1) as f64,
        batch_size: spec.train.batch_size,
        learning_rate: spec.train.learning_rate,
        seed: spec.train.seed,
        kernel: spec.kernel.to_string(),
        clip_gradient: spec.clip.name().to_string(),
        simd: kernel.simd(),
        threads: kernel.threads(),
        train_seconds: secs,
        images_per_sec: outcome.images_per_sec(spec.train.batch_size),
        clipped_rows: outcome.clipped_rows(),
        test_accuracy: eval.accuracy,
        test_loss: eval.mean_loss,
        never_predicted: verdict.never_predicted().to_vec(),
        verified: data.verified(),
    }
}

/// What [`train_tutorial`] returns: the data it opened, the trained run, its evaluation.
#[derive(Debug)]
#[non_exhaustive]
pub struct TutorialRun {
    /// The dataset (with its class names), as opened for the run.
    pub data: LoadedData,
    /// The trained model and how the run went.
    pub outcome: TrainOutcome,
    /// The model on the test split.
    pub eval: Evaluation,
}

/// The tutorial's run ([`RunSpec::default`]) on `source`, on instruction set `isa` with one
/// thread per core, evaluated on the test split: what `serve` does when given no model.
pub fn train_tutorial(source: &DataSource, isa: Isa) -> Result<TutorialRun, RunError> {
    let spec = RunSpec::default();
    let data = LoadedData::open(source, spec.kernel.input(), false)?;
    let kernel = spec.build_kernel(isa, 0);
    let model = super::initial_model(None, data.features(), data.classes())?;
    let outcome = train::train(
        &spec.train,
        kernel.as_ref(),
        data.train_data(),
        model,
        |_| {},
    )?;
    let eval = evaluate_test(kernel.as_ref(), &outcome.model, &data)?;
    Ok(TutorialRun {
        data,
        outcome,
        eval,
    })
}
