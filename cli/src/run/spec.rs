//! What decides a run's result ([`RunSpec`]), as checkpoint metadata and back, and the model
//! a run starts from.

use std::collections::HashMap;
use std::path::Path;

use crate::classes::ClassNames;
use mnist_logreg::batch::ShuffleKind;
use mnist_logreg::checkpoint::{self};
use mnist_logreg::kernels::{ClipGradient, Isa, Kernel, KernelKind};
use mnist_logreg::model::Model;
use mnist_logreg::train::{Progress, TrainConfig};

use super::RunError;
use crate::novelty;

/// The metadata key of the test accuracy.
const TEST_ACCURACY: &str = "test_accuracy";

/// The metadata key of the class names: one per line, in class order.
pub const CLASS_NAMES: &str = "class_names";

/// `meta` with the class names `names` recorded under [`CLASS_NAMES`], so the model carries
/// them wherever it is used ([`class_names_of`] reads them back).
pub fn with_class_names(
    mut meta: HashMap<String, String>,
    names: &ClassNames,
) -> HashMap<String, String> {
    let lines: Vec<&str> = (0..names.len()).map(|c| names.name(c)).collect();
    meta.insert(CLASS_NAMES.to_string(), lines.join("\n"));
    meta
}

/// The class names a model answers with, and the warnings to print: `explicit` (a
/// `--class-names` file) when given; else the names the checkpoint's metadata `meta` records
/// (the model's own, which win over `data_dir`'s `class-names.txt`, with a warning when that
/// file names the classes otherwise); else `data_dir`'s file, else numbers.
pub fn class_names_of(
    meta: &HashMap<String, String>,
    classes: usize,
    explicit: Option<&Path>,
    data_dir: &Path,
) -> Result<(ClassNames, Vec<String>), RunError> {
    let recorded = meta
        .get(CLASS_NAMES)
        .and_then(|text| ClassNames::parse(text, classes).ok());
    let (Some(own), None) = (recorded, explicit) else {
        return Ok((
            ClassNames::resolve(explicit, data_dir, classes)?,
            Vec::new(),
        ));
    };
    let mut warnings = Vec::new();
    let file = data_dir.join(crate::classes::DEFAULT_FILE);
    if file.is_file() {
        match ClassNames::load(&file, classes) {
            Ok(theirs) if theirs != own => warnings.push(format!(
                "warning: {} names the classes {}, the model {}: the model's names are used \
                 (--class-names FILE overrides them)",
                file.display(),
                first_names(&theirs),
                first_names(&own)
            )),
            _ => {}
        }
    }
    Ok((own, warnings))
}

/// The first three names of `names`, for a message: `0 (T-shirt/top), 1 (Trouser), …`.
fn first_names(names: &ClassNames) -> String {
    let shown: Vec<String> = (0..names.len().min(3)).map(|c| names.label(c)).collect();
    let more = if names.len() > 3 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
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
            mnist_logreg::batch::Shuffle::Buffer { size } => (ShuffleKind::Buffer, size),
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
            extra.push((TEST_ACCURACY, format!("{acc:.6}")));
        }
        self.metadata(progress, &extra)
    }

    /// The test accuracy a checkpoint's metadata records ([`RunSpec::checkpoint_metadata`]),
    /// if any.
    pub fn recorded_accuracy(meta: &HashMap<String, String>) -> Option<f64> {
        meta.get(TEST_ACCURACY).and_then(|a| a.parse().ok())
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

/// A checkpoint whose model reads 28×28 pictures (`predict`, `serve`), with its novelty score
/// (if it was saved with one) and its metadata.
pub fn load_picture_model(path: &Path) -> Result<novelty::Loaded, RunError> {
    if !path.exists() {
        return Err(RunError::NoModel {
            path: path.to_path_buf(),
        });
    }
    let (model, novelty, meta) = novelty::load_with_novelty(path)?;
    if model.features() != mnist_logreg::MNIST_FEATURES {
        return Err(RunError::NotPictures {
            path: path.to_path_buf(),
            features: model.features(),
        });
    }
    Ok((model, novelty, meta))
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
