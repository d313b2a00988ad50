//! `mnist_logreg._core`: the crate's training loop, full-batch solver, kernels, checkpoints
//! and IDX loader for the Python package. The estimators (`mnist_logreg.SoftmaxRegression`,
//! `mnist_logreg.LogisticRegression`) validate their input in Python and hand this module
//! C-contiguous `uint8` or `float32` arrays; everything here still checks shapes, since a
//! wrong size must be an exception, never a crash.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;

use mnist_logreg::batch::ShuffleKind;
use mnist_logreg::checkpoint;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::kernels::{ClipGradient, Input, Isa, KernelKind, Pixels, SimdChoice};
use mnist_logreg::model::Model;
use mnist_logreg::solve::{self as solver, Objective, Problem, SolveError, SolverConfig, Stop};
use mnist_logreg::train::{self, Observer, Progress, Report, TrainConfig, TrainData};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

/// Samples × features, as the kernels read them.
#[derive(FromPyObject)]
enum Features<'py> {
    U8(PyReadonlyArray2<'py, u8>),
    F32(PyReadonlyArray2<'py, f32>),
}

/// A private copy of `X`, which the kernels read with the GIL released: while it is
/// released, another Python thread may write to the caller's array, so the kernels must not
/// read that memory. (The copy of MNIST's 47 MB of training pixels takes a few milliseconds;
/// it stays uint8 — no float copy.)
enum Owned {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

impl Owned {
    fn pixels(&self) -> Pixels<'_> {
        match self {
            Owned::U8(v) => Pixels::U8(v),
            Owned::F32(v) => Pixels::F32(v),
        }
    }
}

impl Features<'_> {
    /// (samples, features, a copy of the values in row-major order).
    fn copy(&self) -> PyResult<(usize, usize, Owned)> {
        let contiguous = || PyValueError::new_err("X must be C-contiguous");
        Ok(match self {
            Features::U8(a) => {
                let [n, d] = a.shape().try_into().expect("2-D");
                (
                    n,
                    d,
                    Owned::U8(a.as_slice().map_err(|_| contiguous())?.to_vec()),
                )
            }
            Features::F32(a) => {
                let [n, d] = a.shape().try_into().expect("2-D");
                (
                    n,
                    d,
                    Owned::F32(a.as_slice().map_err(|_| contiguous())?.to_vec()),
                )
            }
        })
    }
}

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The model `coef` (classes × features, row-major) and `intercept` (classes) describe.
fn model_of(coef: &PyReadonlyArray2<f32>, intercept: &PyReadonlyArray1<f32>) -> PyResult<Model> {
    let [k, d]: [usize; 2] = coef.shape().try_into().expect("2-D");
    let b = intercept.as_slice().map_err(value_error)?;
    if b.len() != k || k == 0 || d == 0 {
        return Err(PyValueError::new_err(format!(
            "coef has shape ({k}, {d}) and intercept {} values: expected (classes, features) and classes, both at least 1",
            b.len()
        )));
    }
    let mut model = Model::tutorial_init(d, k);
    model
        .w_mut()
        .copy_from_slice(coef.as_slice().map_err(value_error)?);
    model.b_mut().copy_from_slice(b);
    Ok(model)
}

/// The kernel for `x`: `name` ("auto": the parallel kernel for its dtype) on `simd`.
fn kernel_for(
    name: &str,
    simd: &str,
    threads: usize,
    clip: ClipGradient,
    x: &Pixels,
) -> PyResult<Box<dyn mnist_logreg::kernels::Kernel>> {
    let input = match x {
        Pixels::U8(_) => Input::U8,
        Pixels::F32(_) => Input::F32,
    };
    let kind = match name {
        "auto" => match input {
            Input::U8 => KernelKind::ParallelU8,
            Input::F32 => KernelKind::Parallel,
        },
        other => other.parse::<KernelKind>().map_err(value_error)?,
    };
    if kind.input() != input {
        let dtype = if input == Input::U8 { "uint8" } else { "float" };
        return Err(PyValueError::new_err(format!(
            "kernel {kind:?} does not read {dtype} X: use kernel=\"auto\", or one for that dtype (the *_u8 kernels read uint8)"
        )));
    }
    let isa = Isa::select(simd.parse::<SimdChoice>().map_err(value_error)?).map_err(value_error)?;
    Ok(kind.build_with(isa, threads, clip))
}

/// The observer of a fit: the progress callback, and Python's signals after every step.
struct Watch {
    callback: Option<Py<PyAny>>,
    /// What stopped the run (KeyboardInterrupt, or the callback's exception).
    error: Option<PyErr>,
}

impl Observer for &mut Watch {
    fn on_report(&mut self, r: &Report) {
        if let (Some(callback), None) = (&self.callback, &self.error) {
            let result =
                Python::attach(|py| callback.call1(py, (r.step, r.loss, r.accuracy)).map(drop));
            self.error = result.err();
        }
    }

    fn after_step(&mut self, _step: usize) -> ControlFlow<()> {
        if self.error.is_none() {
            self.error = Python::attach(|py| py.check_signals()).err();
        }
        match self.error {
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        }
    }
}

/// What `fit` returns: coef, intercept, the step reached, and what stopped it early.
type Fitted<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f32>>,
    usize,
    Option<PyErr>,
);

/// What `load` returns: coef, intercept, metadata.
type Checkpoint<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f32>>,
    HashMap<String, String>,
);

/// Train `coef`/`intercept` on `x`, `y` (class indices) from step `start_step` up to `steps`,
/// with the GIL released. Returns the new coef and intercept, the step reached, and the
/// exception that stopped it early (KeyboardInterrupt, or the callback's), or None.
#[pyfunction]
#[pyo3(signature = (x, y, coef, intercept, *, steps, start_step, batch_size, learning_rate, seed,
    shuffle, shuffle_buffer, clip_gradient, kernel, simd, threads, callback, callback_every))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    x: Features<'py>,
    y: PyReadonlyArray1<'py, u32>,
    coef: PyReadonlyArray2<'py, f32>,
    intercept: PyReadonlyArray1<'py, f32>,
    steps: usize,
    start_step: usize,
    batch_size: usize,
    learning_rate: f32,
    seed: u64,
    shuffle: &str,
    shuffle_buffer: usize,
    clip_gradient: &str,
    kernel: &str,
    simd: &str,
    threads: usize,
    callback: Option<Py<PyAny>>,
    callback_every: usize,
) -> PyResult<Fitted<'py>> {
    let (n, d, owned) = x.copy()?;
    let pixels = owned.pixels();
    let labels = y.as_slice().map_err(value_error)?.to_vec();
    if labels.len() != n {
        return Err(PyValueError::new_err(format!(
            "X has {n} samples and y {}",
            labels.len()
        )));
    }
    let model = model_of(&coef, &intercept)?;
    let clip = clip_gradient.parse::<ClipGradient>().map_err(value_error)?;
    let kernel = kernel_for(kernel, simd, threads, clip, &pixels)?;
    let cfg = TrainConfig {
        steps,
        batch_size,
        learning_rate,
        display_step: callback_every.max(1),
        seed,
        shuffle: shuffle
            .parse::<ShuffleKind>()
            .map_err(value_error)?
            .with_buffer(shuffle_buffer),
        allow_non_finite: false,
    };
    let data = TrainData {
        pixels,
        labels: &labels,
        features: d,
    };
    let from = Progress {
        step: start_step,
        ..Progress::default()
    };
    let mut watch = Watch {
        callback,
        error: None,
    };
    let outcome = py
        .detach(|| train::resume(&cfg, kernel.as_ref(), data, model, from, &mut watch))
        .map_err(value_error)?;
    let (k, d) = (outcome.model.classes(), outcome.model.features());
    let coef = PyArray1::from_slice(py, outcome.model.w()).reshape([k, d])?;
    let intercept = PyArray1::from_slice(py, outcome.model.b());
    Ok((coef, intercept, outcome.progress.step, watch.error))
}

/// The class index the model gives each row of `x` (first index on ties), computed by the
/// same kernel `fit` uses, with the GIL released.
#[pyfunction]
#[pyo3(signature = (x, coef, intercept, *, kernel, simd, threads))]
fn predict<'py>(
    py: Python<'py>,
    x: Features<'py>,
    coef: PyReadonlyArray2<'py, f32>,
    intercept: PyReadonlyArray1<'py, f32>,
    kernel: &str,
    simd: &str,
    threads: usize,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let (n, d, owned) = x.copy()?;
    let pixels = owned.pixels();
    let model = model_of(&coef, &intercept)?;
    if model.features() != d {
        return Err(PyValueError::new_err(format!(
            "X has {d} features, the model reads {}",
            model.features()
        )));
    }
    let kernel = kernel_for(kernel, simd, threads, ClipGradient::Zero, &pixels)?;
    let labels = vec![0u32; n];
    let predictions = py
        .detach(|| train::evaluate(kernel.as_ref(), &model, pixels, &labels))
        .map_err(value_error)?
        .1;
    Ok(PyArray1::from_vec(py, predictions))
}

/// Write `coef`/`intercept` as the crate's safetensors checkpoint, with `metadata`.
#[pyfunction]
fn save(
    path: PathBuf,
    coef: PyReadonlyArray2<f32>,
    intercept: PyReadonlyArray1<f32>,
    metadata: HashMap<String, String>,
) -> PyResult<()> {
    let model = model_of(&coef, &intercept)?;
    checkpoint::save(&path, &model, metadata).map_err(|e| PyOSError::new_err(e.to_string()))
}

/// Read a checkpoint written by `train --save` or `save`: (coef, intercept, metadata).
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Checkpoint<'_>> {
    let (model, metadata) =
        checkpoint::load(&path).map_err(|e| PyOSError::new_err(e.to_string()))?;
    let (k, d) = (model.classes(), model.features());
    let coef = PyArray1::from_slice(py, model.w()).reshape([k, d])?;
    Ok((coef, PyArray1::from_slice(py, model.b()), metadata))
}

/// The four IDX files of `dir`, checked as `train` checks them (shapes, labels, checksums when
/// they claim to be MNIST), `.gz` ones decompressed into the cache: for each of train images,
/// train labels, test images, test labels, the raw file holding its bytes, the header length,
/// the item count and the bytes per item. Python maps them read-only with `numpy.memmap`.
#[pyfunction]
fn mnist_files(dir: PathBuf) -> PyResult<Vec<(PathBuf, usize, usize, usize)>> {
    let data = Dataset::open(&dir, &Default::default(), ChecksumPolicy::Auto)
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let entry = |f: &mnist_logreg::idx::IdxFile| {
        (
            f.bytes_path().to_path_buf(),
            f.kind().header_len(),
            f.count(),
            f.kind().item_len(),
        )
    };
    Ok(vec![
        entry(&data.train.images),
        entry(&data.train.labels),
        entry(&data.test.images),
        entry(&data.test.labels),
    ])
}

/// The SIMD path `simd` ("auto": the widest) resolves to on this CPU.
#[pyfunction]
fn simd_path(simd: &str) -> PyResult<String> {
    let isa = Isa::select(simd.parse::<SimdChoice>().map_err(value_error)?).map_err(value_error)?;
    Ok(isa.to_string())
}

/// The label type of the solver's problems: class indices, below the kernels' class limit
/// (`samples::MAX_CLASSES`). Python reads its dtype and the class limit from
/// `_core.LABEL_DTYPE` and `_core.MAX_CLASSES`.
type Label = u32;
/// numpy's name of [`Label`].
const LABEL_DTYPE: &str = "uint32";

/// What `solve` returns: coef, intercept, iterations, passes, objective, largest gradient
/// entry, why it stopped, and the exception that stopped it early.
type Solved<'py> = (
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
    usize,
    usize,
    f64,
    f64,
    &'static str,
    Option<PyErr>,
);

/// `x` as a row-major slice with its shape, read in place (no copy).
fn rows_of<'a>(x: &'a PyReadonlyArray2<'_, f32>) -> PyResult<(usize, usize, &'a [f32])> {
    let [n, d]: [usize; 2] = x.shape().try_into().expect("2-D");
    let values = x
        .as_slice()
        .map_err(|_| PyValueError::new_err("X must be C-contiguous"))?;
    Ok((n, d, values))
}

/// The problem of `x` (read in place), `y` and `weights`.
fn problem_of<'a>(
    x: &'a [f32],
    n: usize,
    d: usize,
    y: &'a [Label],
    weights: Option<&'a [f32]>,
    classes: usize,
) -> PyResult<Problem<'a>> {
    if y.len() != n {
        return Err(PyValueError::new_err(format!(
            "X has {n} samples and y {}",
            y.len()
        )));
    }
    let problem = Problem::new(Pixels::F32(x), d, y, classes).map_err(value_error)?;
    match weights {
        Some(w) => problem.with_weights(w).map_err(value_error),
        None => Ok(problem),
    }
}

/// A model of `classes × features` from f64 `coef` (row-major) and `intercept`.
fn model_of_f64(coef: &[f64], intercept: &[f64], d: usize, k: usize) -> PyResult<Model> {
    if coef.len() != k * d || intercept.len() != k {
        return Err(PyValueError::new_err(format!(
            "coef has {} values and intercept {}: expected ({k}, {d}) and {k}",
            coef.len(),
            intercept.len()
        )));
    }
    let mut model = Model::zeros(d, k).map_err(value_error)?;
    for (w, &c) in model.w_mut().iter_mut().zip(coef) {
        *w = c as f32;
    }
    for (b, &c) in model.b_mut().iter_mut().zip(intercept) {
        *b = c as f32;
    }
    Ok(model)
}

/// Minimise `(1/Σsᵢ)·Σ sᵢ·CE + (l2/2)·‖W‖²` over `W`, `b` with the crate's preconditioned
/// L-BFGS (`mnist_logreg::solve`), X (float32, C-contiguous) read in place with the GIL
/// released, from `coef`/`intercept` (f64, zeros when None). `callback(iteration, objective,
/// largest gradient entry)` is called after every iteration; an exception it raises, or
/// Ctrl-C, stops the run at the last accepted point and is returned.
#[pyfunction]
#[pyo3(signature = (x, y, weights, coef, intercept, *, classes, l2, tol, max_iter, threads, callback))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray1<'py, Label>,
    weights: Option<PyReadonlyArray1<'py, f32>>,
    coef: Option<PyReadonlyArray2<'py, f64>>,
    intercept: Option<PyReadonlyArray1<'py, f64>>,
    classes: usize,
    l2: f64,
    tol: f64,
    max_iter: usize,
    threads: usize,
    callback: Option<Py<PyAny>>,
) -> PyResult<Solved<'py>> {
    let (n, d, values) = rows_of(&x)?;
    let labels = y.as_slice().map_err(value_error)?;
    let w = match &weights {
        Some(w) => Some(w.as_slice().map_err(value_error)?),
        None => None,
    };
    let problem = problem_of(values, n, d, labels, w, classes)?;
    let start = match (&coef, &intercept) {
        (Some(c), Some(b)) => Some(model_of_f64(
            c.as_slice().map_err(value_error)?,
            b.as_slice().map_err(value_error)?,
            d,
            classes,
        )?),
        _ => None,
    };
    let cfg = SolverConfig {
        l2: Some(l2),
        tol,
        max_iter,
        threads,
        ..SolverConfig::default()
    };
    let mut error: Option<PyErr> = None;
    let solution = py
        .detach(|| {
            solver::solve(&problem, &cfg, start.as_ref(), |it| {
                error = Python::attach(|py| {
                    if let Some(cb) = &callback {
                        cb.call1(py, (it.iteration, it.objective, it.grad_max))?;
                    }
                    py.check_signals()
                })
                .err();
                if error.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        })
        .map_err(value_error)?;
    let m = &solution.model;
    let coef: Vec<f64> = m.w().iter().map(|&v| f64::from(v)).collect();
    let intercept: Vec<f64> = m.b().iter().map(|&v| f64::from(v)).collect();
    let stop = match solution.stop {
        Stop::Converged => "converged",
        Stop::MaxIter => "max_iter",
        Stop::LineSearch => "line_search",
        Stop::Interrupted => "interrupted",
    };
    Ok((
        PyArray1::from_vec(py, coef).reshape([classes, d])?,
        PyArray1::from_vec(py, intercept),
        solution.iterations,
        solution.evaluations,
        solution.objective,
        solution.grad_max,
        stop,
        error,
    ))
}

/// What `loss_grad` returns: the weighted loss sum, its gradient in coef and in intercept.
type LossGrad<'py> = (f64, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>);

/// `Σ sᵢ·CE(xᵢ, yᵢ)` and its gradient (sums, not means: chunks add) at `coef`/`intercept`
/// (rounded to f32, as the kernel reads them), X read in place with the GIL released.
#[pyfunction]
#[pyo3(signature = (x, y, weights, coef, intercept, *, threads))]
fn loss_grad<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray1<'py, Label>,
    weights: Option<PyReadonlyArray1<'py, f32>>,
    coef: PyReadonlyArray2<'py, f64>,
    intercept: PyReadonlyArray1<'py, f64>,
    threads: usize,
) -> PyResult<LossGrad<'py>> {
    let (n, d, values) = rows_of(&x)?;
    let [k, dc]: [usize; 2] = coef.shape().try_into().expect("2-D");
    if dc != d {
        return Err(PyValueError::new_err(format!(
            "X has {d} features and coef {dc}"
        )));
    }
    let labels = y.as_slice().map_err(value_error)?;
    let w = match &weights {
        Some(w) => Some(w.as_slice().map_err(value_error)?),
        None => None,
    };
    let problem = problem_of(values, n, d, labels, w, k)?;
    let coef = coef.as_slice().map_err(value_error)?;
    let intercept = intercept.as_slice().map_err(value_error)?;
    if intercept.len() != k {
        return Err(PyValueError::new_err(format!(
            "coef has {k} rows and intercept {} values",
            intercept.len()
        )));
    }
    let mut theta = vec![0.0; (d + 1) * k];
    for (c, t) in theta.chunks_exact_mut(d + 1).enumerate() {
        t[..d].copy_from_slice(&coef[c * d..(c + 1) * d]);
        t[d] = intercept[c];
    }
    let (loss, grad) = py
        .detach(|| -> Result<(f64, Vec<f64>), SolveError> {
            let mut objective = Objective::new(problem, 0.0, Isa::best(), threads)?;
            let mut grad = vec![0.0; theta.len()];
            let mean = objective.eval(&theta, &mut grad);
            // eval divides by Σsᵢ; the chunk's share is the sum.
            let sum = problem.weight_sum();
            grad.iter_mut().for_each(|g| *g *= sum);
            Ok((mean * sum, grad))
        })
        .map_err(value_error)?;
    let mut gw = Vec::with_capacity(k * d);
    let mut gb = Vec::with_capacity(k);
    for g in grad.chunks_exact(d + 1) {
        gw.extend_from_slice(&g[..d]);
        gb.push(g[d]);
    }
    Ok((
        loss,
        PyArray1::from_vec(py, gw).reshape([k, d])?,
        PyArray1::from_vec(py, gb),
    ))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(loss_grad, m)?)?;
    m.add("LABEL_DTYPE", LABEL_DTYPE)?;
    m.add("MAX_CLASSES", mnist_logreg::samples::MAX_CLASSES)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(save, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(mnist_files, m)?)?;
    m.add_function(wrap_pyfunction!(simd_path, m)?)?;
    Ok(())
}
