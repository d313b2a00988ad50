//! Checkpoints: the model as a safetensors file.
//!
//! Tensors: `W`, f32, shape `[features, classes]` (the tutorial's orientation, so
//! `x @ W + b` in numpy gives the logits) and `b`, f32, shape `[classes]`; optionally the five
//! `novelty.*` tensors of a [`Novelty`] score (about 100 KB), which `train --save` writes for
//! 28×28 models. The training configuration goes in the string metadata. Writing goes to a temporary file in the target
//! directory, which is fsynced and then renamed over the target: a crash leaves either the old
//! file or the new one, never a torn one. Reading validates everything — tensor names, dtypes,
//! shapes, agreement between `W` and `b`, finite values — and rejects the file otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::FileError;
use crate::compute::model::Model;
use crate::novelty::{self, Novelty, NoveltyError};

/// Largest checkpoint the reader accepts (a 784×10 model is 31 KB; this allows models with
/// millions of parameters but refuses to read arbitrary large files into memory).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

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
    /// The tensor names are not `W` and `b`, with or without all the `novelty.*` ones.
    #[error(
        "{path}: expected the tensors W and b (and all or none of the novelty.* ones), found [{found}]"
    )]
    Names {
        /// The file.
        path: PathBuf,
        /// The names found, comma separated.
        found: String,
    },
    /// A tensor that is not f32.
    #[error("{path}: tensor {name} has dtype {found}, expected F32")]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: &'static str,
        /// Its dtype.
        found: String,
    },
    /// A tensor of the wrong shape.
    #[error("{path}: tensor {name} has shape {found:?}, expected {expected}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: &'static str,
        /// The shape found.
        found: Vec<usize>,
        /// The shape expected, in words.
        expected: String,
    },
    /// NaN or infinite values.
    #[error("{path}: tensor {name} holds a non-finite value at index {index}")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: &'static str,
        /// Flat index of the first bad value.
        index: usize,
    },
    /// Novelty tensors that cannot be a fitted score.
    #[error("{path}: {source}")]
    Novelty {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: NoveltyError,
    },
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
    save_with_novelty(path, model, None, metadata)
}

/// [`save`], with the novelty score `novelty` beside the model when given.
pub fn save_with_novelty(
    path: &Path,
    model: &Model,
    novelty: Option<&Novelty>,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
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
    let extra: Vec<(&str, Vec<usize>, Vec<u8>)> = novelty
        .map(|n| {
            n.tensors()
                .into_iter()
                .map(|(name, shape, v)| (name, shape, le(v)))
                .collect()
        })
        .unwrap_or_default();
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
            TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(fmt_err)?,
        ));
    }
    let bytes = safetensors::serialize(tensors, Some(metadata)).map_err(fmt_err)?;

    let io = |action| FileError::on(path, action);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // What a save killed before its rename left here (see `crate::temporaries`).
    crate::temporaries::remove_stale(dir, TEMP_PREFIX);
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // Like any other output: 0666 less the umask (a temporary file defaults to 0600).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(io("cannot create a temporary file beside the checkpoint"))?;
    // Held until the rename: a concurrent save's sweep leaves the file alone.
    tmp.as_file()
        .lock()
        .map_err(io("cannot lock the temporary file beside the checkpoint"))?;
    tmp.write_all(&bytes).map_err(io("cannot write"))?;
    tmp.as_file().sync_all().map_err(io("cannot sync"))?;
    tmp.persist(path)
        .map_err(|e| io("cannot rename into place")(e.error))?;
    // Make the rename itself durable where the platform allows syncing a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read and validate the checkpoint at `path` (a novelty score in it is checked and dropped;
/// [`load_with_novelty`] keeps it).
pub fn load(path: &Path) -> Result<(Model, HashMap<String, String>), CheckpointError> {
    let (model, _, metadata) = load_with_novelty(path)?;
    Ok((model, metadata))
}

/// A checkpoint's model, its novelty score if it has one, and its metadata.
pub type Loaded = (Model, Option<Novelty>, HashMap<String, String>);

/// Read and validate the checkpoint at `path`, with its novelty score if it has one.
pub fn load_with_novelty(path: &Path) -> Result<Loaded, CheckpointError> {
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
    from_bytes_with_novelty(path, &bytes)
}

/// Validate checkpoint bytes (`path` is only used in messages).
pub fn from_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(Model, HashMap<String, String>), CheckpointError> {
    let (model, _, metadata) = from_bytes_with_novelty(path, bytes)?;
    Ok((model, metadata))
}

/// Validate checkpoint bytes, with the novelty score if there is one (`path` is only used in
/// messages).
pub fn from_bytes_with_novelty(path: &Path, bytes: &[u8]) -> Result<Loaded, CheckpointError> {
    let p = || path.to_path_buf();
    let fmt_err = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: p(),
        reason: e.to_string(),
    };
    let st = SafeTensors::deserialize(bytes).map_err(fmt_err)?;
    let mut names = st.names();
    names.sort_unstable();
    let mut with_novelty: Vec<&str> = ["W", "b"].into_iter().chain(novelty::TENSORS).collect();
    with_novelty.sort_unstable();
    let has_novelty = names == with_novelty;
    if names != ["W", "b"] && !has_novelty {
        return Err(CheckpointError::Names {
            path: p(),
            found: names.join(", "),
        });
    }
    let tensor = |name: &'static str| -> Result<TensorView<'_>, CheckpointError> {
        let t = st.tensor(name).map_err(fmt_err)?;
        if t.dtype() != Dtype::F32 {
            return Err(CheckpointError::DType {
                path: p(),
                name,
                found: format!("{:?}", t.dtype()),
            });
        }
        Ok(t)
    };
    let (w, b) = (tensor("W")?, tensor("b")?);
    let k = match b.shape() {
        [k] if *k >= 1 => *k,
        found => {
            return Err(CheckpointError::Shape {
                path: p(),
                name: "b",
                found: found.to_vec(),
                expected: "[classes] with classes ≥ 1".into(),
            });
        }
    };
    let d = match w.shape() {
        [d, kk] if *kk == k && *d >= 1 => *d,
        found => {
            return Err(CheckpointError::Shape {
                path: p(),
                name: "W",
                found: found.to_vec(),
                expected: format!("[features, {k}] (classes from b), features ≥ 1"),
            });
        }
    };
    let floats = |t: &TensorView, name: &'static str| -> Result<Vec<f32>, CheckpointError> {
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        match v.iter().position(|x| !x.is_finite()) {
            Some(index) => Err(CheckpointError::NonFinite {
                path: p(),
                name,
                index,
            }),
            None => Ok(v),
        }
    };
    let (w, b) = (floats(&w, "W")?, floats(&b, "b")?);
    let mut model = Model::tutorial_init(d, k);
    for c in 0..k {
        for j in 0..d {
            model.w_mut()[c * d + j] = w[j * k + c];
        }
    }
    model.b_mut().copy_from_slice(&b);
    let novelty = if has_novelty {
        let get = |name: &'static str| {
            let t = st.tensor(name).ok().filter(|t| t.dtype() == Dtype::F32)?;
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            Some((t.shape().to_vec(), v.collect()))
        };
        let n = Novelty::from_tensors(get)
            .map_err(|source| CheckpointError::Novelty { path: p(), source })?;
        Some(n)
    } else {
        None
    };
    let metadata = SafeTensors::read_metadata(bytes)
        .map(|(_, m)| m.metadata().clone().unwrap_or_default())
        .map_err(fmt_err)?;
    Ok((model, novelty, metadata))
}
