//! Full-batch training to the optimum: an L2-regularised objective and a preconditioned
//! L-BFGS solver on the fused kernels.
//!
//! ## The objective
//! For samples `xᵢ` (u8 pixels read as `p/255`, or `f32`), labels `yᵢ` and sample weights
//! `sᵢ` (1 by default):
//!
//! ```text
//! f(W, b) = (1/Σsᵢ)·Σᵢ sᵢ·CE(xᵢ, yᵢ) + (λ/2)·‖W‖²
//! CE(x, y) = log Σ_c exp(z_c) − z_y,   z = W·x + b
//! ```
//!
//! the exact log-softmax cross-entropy (no clip, unlike the SGD tutorial's loss), the bias
//! not penalised. scikit-learn's `C` is `λ = 1/(C·Σsᵢ)`; without a λ the
//! solver takes scikit-learn's default `C = 1`, `λ = 1/Σsᵢ` (`1/n` without weights).
//!
//! ## One evaluation = one fused pass
//! [`Objective::eval`] runs the fused forward + backward kernel once over all rows, read in
//! place (u8 pixels converted in registers, no copy of the data, no allocation after the
//! first call), on a team of threads. The rows are cut into chunks of 1024 rows
//! independent of the thread count; each chunk sums its loss in `f64` and its gradient in
//! `f32` (32-row register blocks, 32 blocks), and the chunks are added in chunk order in
//! `f64`. Every result is therefore bit-identical for any number of threads.
//!
//! ## The solver
//! [`solve`] runs L-BFGS (`lbfgs.rs`) with a strong Wolfe line search (`line_search.rs`) in
//! preconditioned coordinates (see `precondition.rs`): `θ_c = [W_c; b_c] = R⁻¹·u_c` with
//! first `RᵀR = α·E[[x 1]ᵀ[x 1]] + λ·diag(1, …, 1, 0)`, the features' second moment, and
//! after 20 iterations `RᵀR = α·E[c·[x 1]ᵀ[x 1]]/E[c] + λ·diag(1, …, 1, 0)`, each row weighted
//! by its softmax curvature `c = 1 − Σ_k p_k²` at that point ([`Precondition::Curvature`]):
//! rows the model already predicts with certainty no longer shape the metric, the uncertain
//! ones do, as in the objective's Hessian. Same objective, same optimum; on MNIST the second
//! moment takes several times fewer passes than plain L-BFGS, and the change to the curvature
//! another fifth fewer (measured in `benches/solver.rs`; see `precondition.rs`).
//! It stops when the quasi-Newton model's estimate of the relative gap `(f − min f)/f` is at
//! most `tol` (see [`SolverConfig::tol`]: not scikit-learn's gradient test, which stops far from
//! the optimum on ill-conditioned data), or after `max_iter` iterations, and reports every iteration to a callback, which
//! may stop it.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
//! use mnist_logreg::solve::{self, Problem, SolverConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = Dataset::open("data/mnist".as_ref(), &Default::default(), ChecksumPolicy::Auto)?;
//! let train = &data.train;
//! let problem = Problem::u8(train.pixels(), train.features(), train.labels(), 10)?;
//! let cfg = SolverConfig::default(); // λ = 1/n, tol 5e-6 (estimated relative gap), preconditioned
//! let solution = solve::solve(&problem, &cfg, None, |it| {
//!     println!(
//!         "iteration {:3}  objective {:.8}  gap {:.1e}  step {:.3}  {:.2?}",
//!         it.iteration, it.objective, it.gap_estimate, it.step, it.elapsed
//!     );
//!     ControlFlow::Continue(())
//! })?;
//! println!("{}", solution.summary());
//! let model = solution.model; // a `Model` like SGD's: predict, evaluate, save
//! # let _ = model;
//! # Ok(())
//! # }
//! ```

mod gap;
mod lbfgs;
mod line_search;
mod precondition;

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use lbfgs::Stop;

use crate::compute::kernels::fused::{objective_rows, padded_classes, with_scratch};
use crate::compute::kernels::share::{Team, lock, threads_or_cores};
use crate::compute::kernels::{Batch, BatchError, Isa, Pixels};
use crate::compute::model::{Model, ModelError};
use crate::data::aligned::AlignedF32;

/// Rows per chunk of an evaluation (a multiple of the kernel's 32-row block). Fixed, so the
/// summation order, and every result, is the same for any thread count.
// Public for tests/solve.rs, which crosses chunk boundaries with it; hidden from the docs.
#[doc(hidden)]
pub const CHUNK_ROWS: usize = 1024;

/// Why a problem or a solve was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum SolveError {
    /// The pixels, labels and class count do not agree.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// No rows.
    #[error("the problem has no rows")]
    Empty,
    /// The weights are not one finite, non-negative value per row with a positive sum.
    #[error("sample weights: {0}")]
    Weights(String),
    /// λ is negative or not finite.
    #[error("the L2 strength must be finite and ≥ 0 (got {0})")]
    L2(f64),
    /// The starting model's shape is not the problem's.
    #[error(
        "the starting model is {got_features} × {got_classes}, the problem {features} × {classes}"
    )]
    Start {
        /// Features of the problem.
        features: usize,
        /// Classes of the problem.
        classes: usize,
        /// Features of the model.
        got_features: usize,
        /// Classes of the model.
        got_classes: usize,
    },
    /// The model could not be made (no features or classes).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The preconditioner's factorisation failed: the second-moment matrix is not positive
    /// definite.
    #[error("the second-moment matrix is not positive definite (pivot {index} is {value:e})")]
    Precondition {
        /// The pivot's index.
        index: usize,
        /// Its value.
        value: f64,
    },
}

/// The training data of an objective: pixels, labels, class count and sample weights,
/// checked once.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    pixels: Pixels<'a>,
    features: usize,
    labels: &'a [u32],
    classes: usize,
    weights: Option<&'a [f32]>,
    weight_sum: f64,
}

impl<'a> Problem<'a> {
    /// A problem over all rows of `pixels` (`features` per row) with `labels` below
    /// `classes`, every sample weight 1.
    pub fn new(
        pixels: Pixels<'a>,
        features: usize,
        labels: &'a [u32],
        classes: usize,
    ) -> Result<Self, SolveError> {
        let rows: Vec<usize> = (0..labels.len()).collect();
        Batch::new(pixels, features, labels, &rows, classes)?;
        if labels.is_empty() {
            return Err(SolveError::Empty);
        }
        if classes == 0 {
            return Err(ModelError::Empty { features, classes }.into());
        }
        Ok(Self {
            pixels,
            features,
            labels,
            classes,
            weights: None,
            weight_sum: labels.len() as f64,
        })
    }

    /// [`Problem::new`] for u8 pixels (read as `p/255`).
    pub fn u8(
        pixels: &'a [u8],
        features: usize,
        labels: &'a [u32],
        classes: usize,
    ) -> Result<Self, SolveError> {
        Self::new(Pixels::U8(pixels), features, labels, classes)
    }

    /// The same problem with sample weights (one per row, finite, ≥ 0, positive sum).
    pub fn with_weights(self, weights: &'a [f32]) -> Result<Self, SolveError> {
        if weights.len() != self.labels.len() {
            return Err(SolveError::Weights(format!(
                "{} weights for {} rows",
                weights.len(),
                self.labels.len()
            )));
        }
        if let Some((i, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(SolveError::Weights(format!("weight {i} is {w}")));
        }
        let weight_sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        if weight_sum.is_nan() || weight_sum <= 0.0 {
            return Err(SolveError::Weights("they sum to 0".into()));
        }
        Ok(Self {
            weights: Some(weights),
            weight_sum,
            ..self
        })
    }

    /// Rows of the problem.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Features per row.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `Σsᵢ` (the row count without weights).
    pub fn weight_sum(&self) -> f64 {
        self.weight_sum
    }

    /// Variables of the objective: `(features + 1) · classes`.
    pub fn dim(&self) -> usize {
        (self.features + 1) * self.classes
    }
}

/// scikit-learn's `C` as the λ of the objective: `1/(C·Σsᵢ)`.
pub(crate) fn l2_from_c(c: f64, weight_sum: f64) -> f64 {
    1.0 / (c * weight_sum)
}

/// One chunk's share of an evaluation.
#[derive(Default)]
struct ChunkOut {
    dw: AlignedF32,
    db: Vec<f32>,
    loss: f64,
    correct: usize,
}

/// The objective on a problem, evaluated by the fused kernel on a team of threads.
///
/// Variables `θ` are class-major: class `c`'s `features` weights, then its bias, at
/// `c·(features + 1)`. Buffers are allocated by the first evaluation and reused.
pub struct Objective<'a> {
    problem: Problem<'a>,
    l2: f64,
    isa: Isa,
    team: Arc<Team>,
    rows: Vec<usize>,
    model: Model,
    chunks: Vec<Mutex<ChunkOut>>,
    evaluations: usize,
    last_correct: usize,
}

impl std::fmt::Debug for Objective<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objective")
            .field("rows", &self.problem.rows())
            .field("l2", &self.l2)
            .field("isa", &self.isa)
            .field("threads", &self.team.threads())
            .finish()
    }
}

impl<'a> Objective<'a> {
    /// The objective of `problem` with L2 strength `l2`, computed on `isa` by `threads`
    /// threads (the caller included; 0 = one per core).
    ///
    /// # Panics
    /// When the operating system refuses to start the helper threads.
    pub fn new(
        problem: Problem<'a>,
        l2: f64,
        isa: Isa,
        threads: usize,
    ) -> Result<Self, SolveError> {
        if !(l2.is_finite() && l2 >= 0.0) {
            return Err(SolveError::L2(l2));
        }
        let team = Team::new(threads_or_cores(threads) - 1)
            .expect("cannot start the solver's helper threads");
        let n_chunks = problem.rows().div_ceil(CHUNK_ROWS);
        Ok(Self {
            problem,
            l2,
            isa,
            team: Arc::new(team),
            rows: (0..problem.rows()).collect(),
            model: Model::zeros(problem.features, problem.classes)?,
            chunks: (0..n_chunks).map(|_| Mutex::default()).collect(),
            evaluations: 0,
            last_correct: 0,
        })
    }

    /// λ.
    pub fn l2(&self) -> f64 {
        self.l2
    }

    /// The instruction set of the kernel.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads of the team, the caller included.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Evaluations so far.
    pub fn evaluations(&self) -> usize {
        self.evaluations
    }

    /// The model (`f32`) of the last evaluation's `θ`: the point the objective was
    /// evaluated at.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Training rows the last evaluation's model predicts right (argmax, unweighted).
    pub fn last_correct(&self) -> usize {
        self.last_correct
    }

    /// `θ` of `model` (class-major, see [`Objective`]).
    pub fn theta_of(&self, model: &Model) -> Vec<f64> {
        let (d, k) = (self.problem.features, self.problem.classes);
        let mut theta = vec![0.0; (d + 1) * k];
        for (c, t) in theta.chunks_exact_mut(d + 1).enumerate() {
            for (t, &w) in t.iter_mut().zip(model.class_weights(c)) {
                *t = f64::from(w);
            }
            t[d] = f64::from(model.b()[c]);
        }
        theta
    }

    /// `f(θ)`, and `∇f(θ)` in `grad` (both at `θ` rounded to the `f32` model the kernel
    /// reads: [`Objective::model`]).
    ///
    /// # Panics
    /// When `theta` or `grad` does not hold [`Problem::dim`] values.
    pub fn eval(&mut self, theta: &[f64], grad: &mut [f64]) -> f64 {
        self.eval_rows(theta, grad, None)
    }

    /// [`Objective::eval`], also writing each row's softmax curvature `1 − Σ_c p_c²` at `θ`
    /// (unweighted) to `curvature`, one value per row.
    fn eval_with_curvature(
        &mut self,
        theta: &[f64],
        grad: &mut [f64],
        curvature: &mut [f32],
    ) -> f64 {
        assert_eq!(
            curvature.len(),
            self.problem.rows(),
            "one curvature per row"
        );
        self.eval_rows(theta, grad, Some(curvature))
    }

    fn eval_rows(&mut self, theta: &[f64], grad: &mut [f64], curvature: Option<&mut [f32]>) -> f64 {
        let p = self.problem;
        let (d, k) = (p.features, p.classes);
        assert_eq!(
            theta.len(),
            p.dim(),
            "θ holds (features + 1)·classes values"
        );
        assert_eq!(
            grad.len(),
            p.dim(),
            "the gradient holds (features + 1)·classes values"
        );
        for (c, t) in theta.chunks_exact(d + 1).enumerate() {
            for (w, &t) in self.model.w_mut()[c * d..(c + 1) * d].iter_mut().zip(t) {
                *w = t as f32;
            }
            self.model.b_mut()[c] = t[d] as f32;
        }
        let kp = padded_classes(k);
        let n = p.rows();
        let batch = Batch::trusted(p.pixels, d, p.labels, &self.rows);
        let (isa, model, chunks) = (self.isa, &self.model, &self.chunks);
        // Each chunk's rows of `curvature`, when asked for.
        let curvature: Vec<Mutex<&mut [f32]>> = curvature
            .map(|c| c.chunks_mut(CHUNK_ROWS).map(Mutex::new).collect())
            .unwrap_or_default();
        self.team.run(chunks.len(), &|i| {
            let mut out = lock(&chunks[i]);
            let out = &mut *out;
            if out.dw.len() != kp * d {
                out.dw = AlignedF32::zeros(kp * d);
            }
            out.db.resize(k, 0.0);
            let part = batch.slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n));
            let mut curvature = curvature.get(i).map(lock);
            let (stats, loss) = with_scratch(|s| {
                let (dw, db, curvature) = (&mut out.dw, &mut out.db, curvature.as_deref_mut());
                objective_rows(
                    isa,
                    model,
                    &part,
                    p.weights,
                    dw,
                    db,
                    curvature.map(|c| &mut **c),
                    s,
                )
            });
            out.loss = loss;
            out.correct = stats.correct;
        });
        // Chunk order, in f64: the same sums for any thread count.
        grad.fill(0.0);
        let (mut loss, mut correct) = (0.0f64, 0);
        for chunk in chunks {
            let out = lock(chunk);
            loss += out.loss;
            correct += out.correct;
            for (c, g) in grad.chunks_exact_mut(d + 1).enumerate() {
                for (g, &v) in g[..d].iter_mut().zip(&out.dw[c * d..(c + 1) * d]) {
                    *g += f64::from(v);
                }
                g[d] += f64::from(out.db[c]);
            }
        }
        let inv = 1.0 / p.weight_sum;
        let mut penalty = 0.0f64;
        for (c, g) in grad.chunks_exact_mut(d + 1).enumerate() {
            for (g, &w) in g[..d].iter_mut().zip(self.model.class_weights(c)) {
                let w = f64::from(w);
                *g = *g * inv + self.l2 * w;
                penalty += w * w;
            }
            g[d] *= inv;
        }
        self.evaluations += 1;
        self.last_correct = correct;
        loss * inv + 0.5 * self.l2 * penalty
    }
}

impl lbfgs::Function for Objective<'_> {
    fn dim(&self) -> usize {
        self.problem.dim()
    }
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        Objective::eval(self, x, grad)
    }
}

/// The change of coordinates the solver runs in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Precondition {
    /// Plain L-BFGS in `W, b`.
    None,
    /// `θ_c = R⁻¹·u_c` with `RᵀR = α·E[[x 1]ᵀ[x 1]] + λ·diag(1, …, 1, 0)`, the mean over
    /// at most `sample_rows` rows spread evenly over the data (see the module docs).
    SecondMoment {
        /// The weight `α` of the second moment (about the softmax's curvature `p(1 − p)`).
        alpha: f64,
        /// Rows the second moment is estimated from.
        sample_rows: usize,
    },
    /// [`Precondition::SecondMoment`] for the first `after` iterations, then the coordinates
    /// of the softmax's curvature at that point: `RᵀR = α·E[c·[x 1]ᵀ[x 1]]/E[c] + λ·diag(1,
    /// …, 1, 0)` with `c = 1 − Σ_k p_k²` each row's curvature (the second moment, each row
    /// weighted by its share of the curvature), estimated from `curvature_rows` rows drawn in
    /// proportion to it (the L-BFGS pairs restart there; see the module docs). The change is
    /// skipped where its Gram matrix and factorisation would cost more than 10 passes over
    /// the data (many features, few rows and classes).
    Curvature {
        /// `α` of both coordinates.
        alpha: f64,
        /// The first coordinates' sample.
        sample_rows: usize,
        /// Iterations before the change.
        after: usize,
        /// Rows the curvature-weighted second moment is estimated from.
        curvature_rows: usize,
    },
}

impl Default for Precondition {
    /// `Curvature { alpha: 0.001, sample_rows: 2048, after: 20, curvature_rows: 8192 }`.
    /// `alpha` measured 2026-12-07 (AMD EPYC Zen 4, `SOLVER_BENCH_ALPHA=…
    /// SOLVER_BENCH_ONLY=gaps cargo bench --bench solver`, and `scripts/own_data_checks.py
    /// --only opt`, second moment alone): iterations of MNIST to a gap of 1e-5 for α = 0.1,
    /// 0.03, 0.01, 0.003, 0.001, 0.0003: 218, 155, 125, 118, 103, 99; default `train --solver
    /// lbfgs` iterations at 0.01 / 0.001 / 0.0003: 512-feature × 100-class set 312 / 109 /
    /// 87, 8×8 digits 128 / 131 / 142, MNIST 14×14 × 20 classes 551 / 550 / 728.
    fn default() -> Self {
        Precondition::Curvature {
            alpha: 0.001,
            sample_rows: 2048,
            after: 20,
            curvature_rows: 8192,
        }
    }
}

/// What a [`Precondition`] asks of [`solve`]: the second moment's coordinates of `alpha` from
/// `sample_rows` rows, then maybe the change to the curvature's.
#[derive(Clone, Copy)]
struct Plan {
    alpha: f64,
    sample_rows: usize,
    /// `(after, curvature_rows)` of [`Precondition::Curvature`].
    change: Option<(usize, usize)>,
}

impl Precondition {
    /// Its [`Plan`]; `None` for plain L-BFGS.
    fn plan(self) -> Option<Plan> {
        match self {
            Precondition::None => None,
            Precondition::SecondMoment { alpha, sample_rows } => Some(Plan {
                alpha,
                sample_rows,
                change: None,
            }),
            Precondition::Curvature {
                alpha,
                sample_rows,
                after,
                curvature_rows,
            } => Some(Plan {
                alpha,
                sample_rows,
                change: Some((after, curvature_rows)),
            }),
        }
    }
}

/// Settings of [`solve`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SolverConfig {
    /// λ; `None` = scikit-learn's default `C = 1`: `1/Σsᵢ`.
    pub l2: Option<f64>,
    /// Stop when the estimated relative gap `(f − min f)/f` is at most this: the larger of the
    /// L-BFGS model's predicted decrease and the decrease still to come at the rate of the
    /// last 20 iterations (so at least 20 iterations run). Measured on four data sets
    /// (`gap.rs`), the true gap at the stop was at most 15× `tol`: the default 5e-6 stopped
    /// 2.5e-6 to 1.8e-5 above the optimum, 1e-9 at the limit of the float32 evaluation.
    /// Not scikit-learn's `tol` (a bound on the largest gradient entry, which stopped 9.6e-3
    /// above the optimum at 1e-5 on a badly conditioned set).
    pub tol: f64,
    /// Iterations at most.
    pub max_iter: usize,
    /// L-BFGS correction pairs.
    pub memory: usize,
    /// The coordinates.
    pub precondition: Precondition,
    /// Threads, the caller included (0 = one per core).
    pub threads: usize,
    /// The kernel's instruction set.
    pub isa: Isa,
}

impl Default for SolverConfig {
    /// λ = 1/Σsᵢ, `tol = 5e-6`, 1000 iterations, 10 pairs, [`Precondition::default`], one
    /// thread per core, the widest SIMD of this CPU.
    fn default() -> Self {
        let lbfgs::Settings {
            tol,
            max_iter,
            memory,
            ..
        } = lbfgs::Settings::default();
        Self {
            l2: None,
            tol,
            max_iter,
            memory,
            precondition: Precondition::default(),
            threads: 0,
            isa: Isa::best(),
        }
    }
}

/// One iteration's report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Iteration {
    /// Iterations done (1 for the first).
    pub iteration: usize,
    /// `f` at the new point.
    pub objective: f64,
    /// The largest entry of `∇f` there, in absolute value.
    pub grad_max: f64,
    /// The accepted line-search step (1 = the quasi-Newton step).
    pub step: f64,
    /// Objective evaluations (passes over the data) so far.
    pub evaluations: usize,
    /// The quasi-Newton model's estimate of the relative gap `(f − min f)/f` here (what
    /// [`SolverConfig::tol`] bounds).
    pub gap_estimate: f64,
    /// Time since [`solve`] started (the preconditioner's set-up included).
    pub elapsed: Duration,
}

/// What [`solve`] returns.
#[derive(Clone, Debug)]
pub struct Solution {
    /// The model at the last accepted point.
    pub model: Model,
    /// `f` there.
    pub objective: f64,
    /// The largest entry of `∇f` there.
    pub grad_max: f64,
    /// The estimated relative gap there (see [`SolverConfig::tol`]).
    pub gap_estimate: f64,
    /// Why the solver stopped.
    pub stop: Stop,
    /// The `tol` it was given.
    pub tol: f64,
    /// λ used.
    pub l2: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Objective evaluations (passes over the data).
    pub evaluations: usize,
    /// Time of the preconditioner's set-up, and of its change to the curvature's coordinates
    /// (zero without one).
    pub setup: Duration,
    /// Total time.
    pub elapsed: Duration,
}

impl Solution {
    /// True when the estimated relative gap reached `tol`.
    pub fn converged(&self) -> bool {
        self.stop == Stop::Converged
    }

    /// One line: `converged after N iterations …` or `not converged after N iterations …`.
    pub fn summary(&self) -> String {
        let why = match self.stop {
            Stop::Converged => "converged".to_string(),
            Stop::MaxIter => "not converged (max_iter reached)".to_string(),
            Stop::LineSearch => "not converged (the line search found no decrease)".to_string(),
            Stop::Interrupted => "not converged (stopped)".to_string(),
        };
        format!(
            "{why} after {} iterations ({} passes, {:.2?}): objective {:.10}, estimated relative gap {:.1e} (tol {:.1e}), largest gradient entry {:.2e}",
            self.iterations,
            self.evaluations,
            self.elapsed,
            self.objective,
            self.gap_estimate,
            self.tol,
            self.grad_max
        )
    }
}

/// A start model must have the problem's `d` features and `k` classes.
fn check_start(start: Option<&Model>, d: usize, k: usize) -> Result<(), SolveError> {
    match start {
        Some(m) if (m.features(), m.classes()) != (d, k) => Err(SolveError::Start {
            features: d,
            classes: k,
            got_features: m.features(),
            got_classes: m.classes(),
        }),
        _ => Ok(()),
    }
}

/// The model of the parameters `theta` (class-major: class c's `d` weights, then its bias),
/// rounded to f32.
fn model_of(theta: &[f64], d: usize, k: usize) -> Result<Model, SolveError> {
    let mut model = Model::zeros(d, k)?;
    for (c, t) in theta.chunks_exact(d + 1).enumerate() {
        for (w, &t) in model.w_mut()[c * d..(c + 1) * d].iter_mut().zip(t) {
            *w = t as f32;
        }
        model.b_mut()[c] = t[d] as f32;
    }
    Ok(model)
}

/// The median time of `calls` calls of the preconditioner's two maps (`R⁻ᵀ·g`, `R⁻¹·d`) as
/// `cfg` sets them up for `problem`; zero without a preconditioner. For
/// `benches/solver.rs`.
#[doc(hidden)]
pub fn time_maps(
    problem: &Problem,
    cfg: &SolverConfig,
    calls: usize,
) -> Result<(Duration, Duration), SolveError> {
    let Some(Plan {
        alpha, sample_rows, ..
    }) = cfg.precondition.plan()
    else {
        return Ok((Duration::ZERO, Duration::ZERO));
    };
    let l2 = cfg
        .l2
        .unwrap_or_else(|| l2_from_c(1.0, problem.weight_sum()));
    let objective = Objective::new(*problem, l2, cfg.isa, cfg.threads)?;
    let coords = second_moment(&objective, alpha, sample_rows)?;
    Ok(coords.time_maps(calls))
}

/// The second-moment coordinates of `objective`'s problem (its λ as the ridge), whose maps
/// run on the objective's threads.
fn second_moment(
    objective: &Objective,
    alpha: f64,
    sample_rows: usize,
) -> Result<precondition::SecondMoment, SolveError> {
    let team = Arc::clone(&objective.team);
    precondition::SecondMoment::new(
        team,
        objective.isa,
        &objective.problem,
        (alpha, objective.l2),
        sample_rows,
    )
}

/// The most passes' worth of work the change to the curvature's coordinates may cost.
const CHANGE_PASSES: f64 = 10.0;

/// Whether [`Precondition::Curvature`]'s change is worth its cost for `rows × features`,
/// `classes` and `curvature_rows`: its Gram matrix and factorisation (`1.5·m·(d+1)² +
/// (d+1)³/3` flops, `m` the sample) at most [`CHANGE_PASSES`] passes (`4·n·(d+1)·K` flops
/// each). By this count the change costs MNIST 4 passes (about 6 measured: `precondition.rs`)
/// and saves 22; where it would cost more than 10 (many features, few rows and classes) the
/// second moment's coordinates stay, as its saving there is not known.
fn change_pays((rows, features, classes): (usize, usize, usize), curvature_rows: usize) -> bool {
    let (n, d1, k) = (rows as f64, (features + 1) as f64, classes as f64);
    let m = (curvature_rows as f64).min(n);
    let change = 1.5 * m * d1 * d1 + d1.powi(3) / 3.0;
    change <= CHANGE_PASSES * 4.0 * n * d1 * k
}

/// `f`, `∇f` at `theta` and the coordinates of the softmax's curvature there
/// ([`Precondition::Curvature`]; `None` when no row has any).
fn curvature_coords(
    objective: &mut Objective,
    theta: &[f64],
    alpha: f64,
    sample_rows: usize,
) -> Result<(f64, Vec<f64>, Option<precondition::SecondMoment>), SolveError> {
    let p = objective.problem;
    let mut grad = vec![0.0; p.dim()];
    let mut curvature = vec![0.0f32; p.rows()];
    let value = objective.eval_with_curvature(theta, &mut grad, &mut curvature);
    let team = Arc::clone(&objective.team);
    let coords = precondition::SecondMoment::of_curvature(
        team,
        objective.isa,
        &p,
        &curvature,
        (alpha, objective.l2),
        sample_rows,
    )
    .transpose()?;
    Ok((value, grad, coords))
}

/// Minimise the objective of `problem` (see the module docs) from `start` (zeros when
/// `None`), reporting each iteration to `on_iteration`, which may stop the run with
/// [`ControlFlow::Break`] (the solution is then the last accepted point).
pub fn solve(
    problem: &Problem,
    cfg: &SolverConfig,
    start: Option<&Model>,
    mut on_iteration: impl FnMut(&Iteration) -> ControlFlow<()>,
) -> Result<Solution, SolveError> {
    let started = Instant::now();
    let (d, k) = (problem.features(), problem.classes());
    check_start(start, d, k)?;
    let l2 = cfg
        .l2
        .unwrap_or_else(|| l2_from_c(1.0, problem.weight_sum()));
    let mut objective = Objective::new(*problem, l2, cfg.isa, cfg.threads)?;
    let mut theta = match start {
        Some(m) => objective.theta_of(m),
        None => vec![0.0; problem.dim()],
    };
    let settings = lbfgs::Settings {
        memory: cfg.memory,
        max_iter: cfg.max_iter,
        tol: cfg.tol,
        ..lbfgs::Settings::default()
    };
    let mut report = |s: &lbfgs::Step| {
        on_iteration(&Iteration {
            iteration: s.iteration,
            objective: s.value,
            grad_max: s.grad_max,
            step: s.step,
            evaluations: s.evaluations,
            gap_estimate: s.gap_estimate,
            elapsed: started.elapsed(),
        })
    };
    let mut progress = lbfgs::Progress::new();
    let (out, setup) = match cfg.precondition.plan() {
        None => (
            lbfgs::minimize(
                &mut objective,
                &lbfgs::Identity,
                &mut theta,
                None,
                &settings,
                &mut progress,
                &mut report,
            ),
            Duration::ZERO,
        ),
        Some(Plan {
            alpha,
            sample_rows,
            change,
        }) => {
            let coords = second_moment(&objective, alpha, sample_rows)?;
            let mut setup = started.elapsed();
            let shape = (problem.rows(), problem.features(), problem.classes());
            let change = change.filter(|&(_, rows)| change_pays(shape, rows));
            let first = lbfgs::Settings {
                max_iter: change.map_or(cfg.max_iter, |(after, _)| after.min(cfg.max_iter)),
                ..settings
            };
            let (o, p) = (&mut objective, &mut progress);
            let out = lbfgs::minimize(o, &coords, &mut theta, None, &first, p, &mut report);
            match change {
                Some((_, curvature_rows))
                    if out.stop == Stop::MaxIter && out.iterations < cfg.max_iter =>
                {
                    let changed = Instant::now();
                    let (value, grad, refreshed) =
                        curvature_coords(o, &theta, alpha, curvature_rows)?;
                    p.evaluations += 1;
                    setup += changed.elapsed();
                    let start = Some((value, &grad[..]));
                    let coords = match &refreshed {
                        Some(c) => {
                            p.forget_pairs();
                            c
                        }
                        None => &coords,
                    };
                    let out =
                        lbfgs::minimize(o, coords, &mut theta, start, &settings, p, &mut report);
                    (out, setup)
                }
                _ => (out, setup),
            }
        }
    };
    Ok(Solution {
        model: model_of(&theta, d, k)?,
        objective: out.value,
        grad_max: out.grad_max,
        gap_estimate: out.gap_estimate,
        stop: out.stop,
        tol: cfg.tol,
        l2,
        iterations: out.iterations,
        evaluations: out.evaluations,
        setup,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_of_coordinates_is_made_where_it_costs_a_few_passes() {
        // MNIST, the latent set, the 14×14 set: a few passes at most.
        assert!(change_pays((60_000, 784, 10), 8192));
        assert!(change_pays((20_000, 512, 100), 8192));
        assert!(change_pays((60_000, 196, 20), 8192));
        // 4096 features of 2000 rows, 2 classes: a thousand passes' worth.
        assert!(!change_pays((2000, 4096, 2), 8192));
    }

    #[test]
    fn the_curvature_of_each_row_is_one_minus_the_sum_of_its_squared_probabilities() {
        // 1100 rows (two chunks) of 20 features, 5 classes, weighted; every SIMD path, one
        // and two threads: the pass's curvature against the f64 softmax of the same f32 model.
        let (rows, d, k) = (1100, 20, 5);
        let mut seed = 11u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let px: Vec<u8> = (0..rows * d).map(|_| (next() % 256) as u8).collect();
        let labels: Vec<u32> = (0..rows).map(|_| (next() % k as u64) as u32).collect();
        let w: Vec<f32> = (0..rows).map(|_| 1.0 + (next() % 3) as f32).collect();
        let theta: Vec<f64> = (0..(d + 1) * k)
            .map(|_| (next() % 2001) as f64 / 4000.0 - 0.25)
            .collect();
        let problem = Problem::u8(&px, d, &labels, k)
            .unwrap()
            .with_weights(&w)
            .unwrap();
        let mut first: Option<Vec<f32>> = None;
        for isa in Isa::supported() {
            for threads in [1, 2] {
                let mut objective = Objective::new(problem, 0.01, isa, threads).unwrap();
                let (mut g1, mut g2) = (vec![0.0; problem.dim()], vec![0.0; problem.dim()]);
                let mut curvature = vec![f32::NAN; rows];
                let f1 = objective.eval_with_curvature(&theta, &mut g1, &mut curvature);
                let f2 = objective.eval(&theta, &mut g2);
                assert_eq!((f1, &g1), (f2, &g2), "{isa} {threads}: the same f and ∇f");
                for (i, &c) in curvature.iter().enumerate() {
                    let z: Vec<f64> = (0..k)
                        .map(|c| {
                            let t = &theta[c * (d + 1)..][..d + 1];
                            let dot: f64 = (0..d)
                                .map(|j| f64::from(t[j] as f32) * f64::from(px[i * d + j]) / 255.0)
                                .sum();
                            dot + f64::from(t[d] as f32)
                        })
                        .collect();
                    let max = z.iter().fold(f64::MIN, |m, &v| m.max(v));
                    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
                    let want = 1.0
                        - z.iter()
                            .map(|v| ((v - max).exp() / sum).powi(2))
                            .sum::<f64>();
                    assert!(
                        (f64::from(c) - want).abs() < 1e-5,
                        "{isa} {threads} row {i}: {c} against {want}"
                    );
                }
                match &first {
                    None => first = Some(curvature),
                    Some(f) if isa == Isa::supported()[0] => assert_eq!(f, &curvature),
                    Some(_) => {}
                }
            }
        }
    }
}
