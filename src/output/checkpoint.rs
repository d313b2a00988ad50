//! Checkpoints: the model as a safetensors file.
//!
//! Tensors: `W`, f32, shape `[features, classes]` (the tutorial's orientation, so
//! `x @ W + b` in numpy gives the logits) and `b`, f32, shape `[classes]`; optionally further
//! f32 tensors named `namespace.name` ([`Extra`]), such as the five `novelty.*` tensors of the
//! binaries' novelty score (about 100 KB), which `train --save` writes for 28×28 models. The
//! training configuration goes in the string metadata. Writing goes to a temporary file in the target
//! directory, which is fsynced and then renamed over the target: a crash leaves either the old
//! file or the new one, never a torn one. Reading validates everything — tensor names, dtypes,
//! shapes, agreement between `W` and `b`, finite values — and rejects the file otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::compute::model::Model;
use crate::file_error::FileError;

/// Largest checkpoint the reader accepts (a 784×10 model is 31 KB; this allows models with
/// millions of parameters but refuses to read arbitrary large files into memory).
pub(crate) const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

/// Everything that can be wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// Not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// Too large to be one of our checkpoints.
    #[error("{path}: {len} bytes is over the checkpoint size limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The tensor names are not `W` and `b`, with or without extra `namespace.name` ones.
    #[error(
        "{path}: expected the tensors W and b (and extra ones named namespace.name), found [{found}]"
    )]
    Names {
        /// The file.
        path: PathBuf,
        /// The names found, comma separated.
        found: String,
    },
    /// A tensor that is not what a checkpoint holds: not f32, of the wrong shape, or with a
    /// NaN or infinite value.
    #[error("{path}: tensor {name} {reason}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong with it, with what was expected and what was found.
        reason: String,
    },
}

/// A named f32 tensor stored beside the model: what a program keeps with it (the binaries'
/// novelty score, for one). Its name is `namespace.name`; the checkpoint checks its dtype and
/// that every value is finite, its owner checks the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Extra {
    /// `namespace.name`, e.g. `novelty.scales`.
    pub name: String,
    /// The tensor's shape; the product of its dimensions is `values.len()`.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

/// Whether `name` can name an [`Extra`]: `namespace.name`, both parts non-empty.
fn extra_name(name: &str) -> bool {
    matches!(name.split_once('.'), Some((a, b)) if !a.is_empty() && !b.is_empty())
}

/// A checkpoint read back: the model, the extra tensors saved with it (sorted by name) and the
/// metadata.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// The extra tensors, sorted by name.
    pub extra: Vec<Extra>,
    /// The string metadata.
    pub metadata: HashMap<String, String>,
}

/// Name prefix of the temporary file a save writes before renaming it over the checkpoint.
const TEMP_PREFIX: &str = ".checkpoint-";

/// Write `model` to `path` (atomically: temporary file, fsync, rename) with `metadata`.
///
/// ```
/// use mnist_logreg::{checkpoint, model::Model};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("model.safetensors");
/// let model = Model::tutorial_init(784, 10);
/// let meta = [("note".to_string(), "untrained".to_string())].into();
/// checkpoint::save(&path, &model, meta)?;
/// let (back, meta) = checkpoint::load(&path)?;
/// assert_eq!((back.features(), back.classes(), back.b()), (784, 10, model.b()));
/// assert_eq!(meta["note"], "untrained");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save(
    path: &Path,
    model: &Model,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    save_with_extra(path, model, &[], metadata)
}

/// [`save`], with the tensors `extra` beside the model (each named `namespace.name`, other
/// than `W` and `b`; a name that is not is refused with [`CheckpointError::Names`]).
pub fn save_with_extra(
    path: &Path,
    model: &Model,
    extra: &[Extra],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    if let Some(bad) = extra.iter().find(|e| !extra_name(&e.name)) {
        return Err(CheckpointError::Names {
            path: path.to_path_buf(),
            found: bad.name.clone(),
        });
    }
    let (d, k) = (model.features(), model.classes());
    // Class-major in memory, [features, classes] in the file.
    let mut w = vec![0f32; d * k];
    for c in 0..k {
        for (j, &v) in model.class_weights(c).iter().enumerate() {
            w[j * k + c] = v;
        }
    }
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (w_bytes, b_bytes) = (le(&w), le(model.b()));
    let fmt_err = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let extra: Vec<(&str, &[usize], Vec<u8>)> = extra
        .iter()
        .map(|e| (e.name.as_str(), e.shape.as_slice(), le(&e.values)))
        .collect();
    let mut tensors = vec![
        (
            "W",
            TensorView::new(Dtype::F32, vec![d, k], &w_bytes).map_err(fmt_err)?,
        ),
        (
            "b",
            TensorView::new(Dtype::F32, vec![k], &b_bytes).map_err(fmt_err)?,
        ),
    ];
    for (name, shape, bytes) in &extra {
        tensors.push((
            name,
            TensorView::new(Dtype::F32, shape.to_vec(), bytes).map_err(fmt_err)?,
        ));
    }
    let bytes =
        safetensors::serialize(tensors, Some(metadata.into_iter().collect())).map_err(fmt_err)?;

    crate::temporaries::write_atomic(path, TEMP_PREFIX, &bytes)?;
    Ok(())
}

/// Read and validate the checkpoint at `path` (extra tensors in it are checked and dropped;
/// [`load_with_extra`] keeps them).
pub fn load(path: &Path) -> Result<(Model, HashMap<String, String>), CheckpointError> {
    let loaded = load_with_extra(path)?;
    Ok((loaded.model, loaded.metadata))
}

/// Read and validate the checkpoint at `path`, with its extra tensors.
pub fn load_with_extra(path: &Path) -> Result<Loaded, CheckpointError> {
    let io = |action| FileError::on(path, action);
    let len = std::fs::metadata(path).map_err(io("cannot stat"))?.len();
    if len > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLarge {
            path: path.to_path_buf(),
            len,
            limit: MAX_CHECKPOINT_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(io("cannot read"))?;
    from_bytes_with_extra(path, &bytes)
}

/// Validate checkpoint bytes (`path` is only used in messages).
pub(crate) fn from_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(Model, HashMap<String, String>), CheckpointError> {
    let loaded = from_bytes_with_extra(path, bytes)?;
    Ok((loaded.model, loaded.metadata))
}

/// Validate checkpoint bytes, with the extra tensors (`path` is only used in messages).
pub fn from_bytes_with_extra(path: &Path, bytes: &[u8]) -> Result<Loaded, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(format_error(path))?;
    let reader = Reader { path, st };
    let mut names = reader.st.names();
    names.sort_unstable();
    let extra_names: Vec<&str> = names
        .iter()
        .copied()
        .filter(|&n| n != "W" && n != "b")
        .collect();
    let has = |n: &str| names.contains(&n);
    if !has("W") || !has("b") || !extra_names.iter().all(|n| extra_name(n)) {
        return Err(CheckpointError::Names {
            path: path.to_path_buf(),
            found: names.join(", "),
        });
    }
    let model = reader.model()?;
    let extra = extra_names
        .iter()
        .map(|&name| {
            let t = reader.tensor(name)?;
            Ok(Extra {
                name: name.to_string(),
                shape: t.shape().to_vec(),
                values: reader.floats(&t, name)?,
            })
        })
        .collect::<Result<Vec<_>, CheckpointError>>()?;
    let metadata = SafeTensors::read_metadata(bytes)
        .map(|(_, m)| {
            // safetensors' own map type (std's or hashbrown's, by its features) into std's.
            let m = m.metadata().clone().unwrap_or_default();
            m.into_iter().collect::<HashMap<_, _>>()
        })
        .map_err(format_error(path))?;
    Ok(Loaded {
        model,
        extra,
        metadata,
    })
}

/// safetensors' complaint about the file at `path`.
fn format_error(path: &Path) -> impl Fn(safetensors::SafeTensorError) -> CheckpointError + '_ {
    move |e| CheckpointError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The parsed file, read tensor by tensor with every check.
struct Reader<'a> {
    path: &'a Path,
    st: SafeTensors<'a>,
}

impl Reader<'_> {
    /// The tensor `name`, which must be f32.
    fn tensor(&self, name: &str) -> Result<TensorView<'_>, CheckpointError> {
        let t = self.st.tensor(name).map_err(format_error(self.path))?;
        if t.dtype() != Dtype::F32 {
            let found = t.dtype();
            return Err(self.tensor_error(name, format!("has dtype {found:?}, expected F32")));
        }
        Ok(t)
    }

    /// The values of `t` (named `name`), which must all be finite.
    fn floats(&self, t: &TensorView, name: &str) -> Result<Vec<f32>, CheckpointError> {
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        match v.iter().position(|x| !x.is_finite()) {
            Some(index) => {
                Err(self.tensor_error(name, format!("holds a non-finite value at index {index}")))
            }
            None => Ok(v),
        }
    }

    /// What is wrong with the tensor `name`.
    fn tensor_error(&self, name: &str, reason: String) -> CheckpointError {
        CheckpointError::Tensor {
            path: self.path.to_path_buf(),
            name: name.to_string(),
            reason,
        }
    }

    /// `name` has shape `found`, not `expected` (in words).
    fn shape_error(&self, name: &str, found: &[usize], expected: String) -> CheckpointError {
        self.tensor_error(name, format!("has shape {found:?}, expected {expected}"))
    }

    /// The model from `W` (`[features, classes]`) and `b` (`[classes]`).
    fn model(&self) -> Result<Model, CheckpointError> {
        let (w, b) = (self.tensor("W")?, self.tensor("b")?);
        let k = match b.shape() {
            [k] if *k >= 1 => *k,
            found => return Err(self.shape_error("b", found, "[classes] with classes ≥ 1".into())),
        };
        let d = match w.shape() {
            [d, kk] if *kk == k && *d >= 1 => *d,
            found => {
                let expected = format!("[features, {k}] (classes from b), features ≥ 1");
                return Err(self.shape_error("W", found, expected));
            }
        };
        let (w, b) = (self.floats(&w, "W")?, self.floats(&b, "b")?);
        let mut model = Model::tutorial_init(d, k);
        for c in 0..k {
            for j in 0..d {
                model.w_mut()[c * d + j] = w[j * k + c];
            }
        }
        model.b_mut().copy_from_slice(&b);
        Ok(model)
    }
}
