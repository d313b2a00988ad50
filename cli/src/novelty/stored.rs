//! The novelty score in a checkpoint: its five `novelty.*` tensors are the library's
//! [`Extra`] tensors, stored beside `W` and `b`. A checkpoint holds all five or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mnist_logreg::checkpoint::{self, CheckpointError, Extra};
use mnist_logreg::model::Model;

use super::{Novelty, NoveltyError, TENSORS};

/// A checkpoint's model, its novelty score if it has one, and its metadata.
pub type Loaded = (Model, Option<Novelty>, HashMap<String, String>);

/// What can be wrong with a checkpoint read for its novelty score.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The checkpoint itself.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Some of the `novelty.*` tensors but not all, or tensors that cannot be a fitted score.
    #[error("{path}: {source}")]
    Novelty {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: NoveltyError,
    },
}

/// [`checkpoint::save`], with the novelty score `novelty` beside the model when given.
pub fn save_with_novelty(
    path: &Path,
    model: &Model,
    novelty: Option<&Novelty>,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let extra: Vec<Extra> = novelty
        .map(|n| {
            n.tensors()
                .into_iter()
                .map(|(name, shape, values)| Extra {
                    name: name.to_string(),
                    shape,
                    values: values.to_vec(),
                })
                .collect()
        })
        .unwrap_or_default();
    checkpoint::save_with_extra(path, model, &extra, metadata)
}

/// Read and validate the checkpoint at `path`, with its novelty score if it has one.
pub fn load_with_novelty(path: &Path) -> Result<Loaded, LoadError> {
    novelty_of(path, checkpoint::load_with_extra(path)?)
}

/// Validate checkpoint bytes, with the novelty score if there is one (`path` is only used in
/// messages).
pub fn from_bytes_with_novelty(path: &Path, bytes: &[u8]) -> Result<Loaded, LoadError> {
    novelty_of(path, checkpoint::from_bytes_with_extra(path, bytes)?)
}

/// The score in `loaded`'s extra tensors: all five `novelty.*` ones or none of them.
fn novelty_of(path: &Path, loaded: checkpoint::Loaded) -> Result<Loaded, LoadError> {
    let checkpoint::Loaded {
        model,
        extra,
        metadata,
        ..
    } = loaded;
    let invalid = |source| LoadError::Novelty {
        path: path.to_path_buf(),
        source,
    };
    let ours = |e: &&Extra| e.name.starts_with("novelty.");
    let found: Vec<&str> = extra.iter().filter(ours).map(|e| e.name.as_str()).collect();
    if found.is_empty() {
        return Ok((model, None, metadata));
    }
    if found.len() != TENSORS.len() || !TENSORS.iter().all(|t| found.contains(t)) {
        return Err(invalid(NoveltyError::Invalid(format!(
            "expected all or none of {}, found [{}]",
            TENSORS.join(", "),
            found.join(", ")
        ))));
    }
    let get = |name: &'static str| {
        let e = extra.iter().find(|e| e.name == name)?;
        Some((e.shape.clone(), e.values.clone()))
    };
    let novelty = Novelty::from_tensors(get).map_err(invalid)?;
    Ok((model, Some(novelty), metadata))
}
