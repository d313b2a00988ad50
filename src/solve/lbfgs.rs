//! Limited-memory BFGS (Nocedal & Wright, *Numerical Optimization*, 2nd ed., algorithm 7.4,
//! the two-loop recursion) with the strong Wolfe line search of [`super::line_search`], in
//! `f64`, optionally in preconditioned coordinates.
//!
//! ## Why our own and not `argmin`
//! `argmin` is a well-kept L-BFGS, but it pulls in about a dozen crates (its math backends,
//! `rand`, `instant`, …) against the library's budget of 40 normal dependencies, and its
//! state owns and clones parameter vectors on each iteration. This one is ~250 lines, works
//! in place on caller buffers (no allocation per iteration), and knows the solver's change
//! of coordinates. `tests/library/solve.rs` checks it against `argmin` (a dev-dependency) on
//! small problems.
//!
//! ## Preconditioned coordinates
//! With a [`Coordinates`] map `x = R⁻¹·u` (`R` invertible), the method runs on
//! `g(u) = f(R⁻¹·u)` while the caller keeps `x`: the gradient in `u` is `R⁻ᵀ·∇f(x)`
//! ([`Coordinates::gradient_to_u`]), and a direction `d_u` moves `x` along `R⁻¹·d_u`
//! ([`Coordinates::direction_to_x`]). Both maps are applied once per iteration; the line
//! search's trial points `x + α·d_x` and slopes `∇f·d_x` need neither.

use std::ops::ControlFlow;

use super::gap::GapEstimate;
use super::line_search::{self, Point, SearchFailure, Wolfe};

/// A smooth function of `dim` variables.
pub trait Function {
    /// Number of variables.
    fn dim(&self) -> usize;
    /// `f(x)`, and its gradient written to `grad` (`dim` values).
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

/// A linear change of coordinates `x = R⁻¹·u` (see the module docs).
pub trait Coordinates {
    /// `out = R⁻ᵀ·g`: a gradient with respect to `x` as a gradient with respect to `u`.
    fn gradient_to_u(&self, g: &[f64], out: &mut [f64]);
    /// `out = R⁻¹·d`: a step in `u` as a step in `x`.
    fn direction_to_x(&self, d: &[f64], out: &mut [f64]);
}

/// The identity: plain L-BFGS.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Coordinates for Identity {
    fn gradient_to_u(&self, g: &[f64], out: &mut [f64]) {
        out.copy_from_slice(g);
    }
    fn direction_to_x(&self, d: &[f64], out: &mut [f64]) {
        out.copy_from_slice(d);
    }
}

/// Settings of [`minimize`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Correction pairs kept (scipy's `maxcor`, 10).
    pub memory: usize,
    /// Iterations at most.
    pub max_iter: usize,
    /// Stop when [`Step::gap_estimate`], the estimate of `(f − min f)/|f|` of `gap.rs`, is at
    /// most this.
    pub tol: f64,
    /// The line search's constants.
    pub wolfe: Wolfe,
}

impl Default for Settings {
    /// 10 pairs, 1000 iterations, `tol = 5e-6`, `c1 = 1e-4`, `c2 = 0.9`.
    fn default() -> Self {
        Self {
            memory: 10,
            max_iter: 1000,
            tol: 5e-6,
            wolfe: Wolfe::default(),
        }
    }
}

/// One iteration's report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Iterations done (1 for the first).
    pub iteration: usize,
    /// `f` at the new point.
    pub value: f64,
    /// The largest gradient entry there, in absolute value (`x` coordinates).
    pub grad_max: f64,
    /// The accepted line-search step `α` (the direction's scale: 1 is the quasi-Newton step).
    pub step: f64,
    /// Function evaluations so far, the first included.
    pub evaluations: usize,
    /// The estimated relative gap `(f(x) − min f)/|f(x)|` (`gap.rs`; infinite for the first
    /// iterations, until the estimate has its history).
    pub gap_estimate: f64,
}

/// Why the solver returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The estimated relative gap reached `tol` (or the gradient is exactly zero).
    Converged,
    /// `max_iter` iterations ran.
    MaxIter,
    /// The line search found no decrease (typically at the precision limit of `f`).
    LineSearch,
    /// The caller's callback asked to stop.
    Interrupted,
}

/// What [`minimize`] ends with (the point itself is left in the caller's `x`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Why it stopped.
    pub stop: Stop,
    /// `f(x)` at the returned point.
    pub value: f64,
    /// Its largest gradient entry.
    pub grad_max: f64,
    /// The last [`Step::gap_estimate`] (infinite before the first iteration ends; 0 when the
    /// gradient is zero).
    pub gap_estimate: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Function evaluations, the first included.
    pub evaluations: usize,
}

/// The largest absolute value.
pub(crate) fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators: vectorisable without reassociation by the compiler.
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// The correction pairs `(s, y)` in `u` coordinates, a ring of `memory` slots.
#[derive(Clone, Debug)]
struct History {
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    rho: Vec<f64>,
    alpha: Vec<f64>,
    /// Pairs stored (≤ memory); the newest is at `(head + len − 1) % memory`.
    len: usize,
    head: usize,
}

impl History {
    fn new(memory: usize, dim: usize) -> Self {
        Self {
            s: vec![vec![0.0; dim]; memory],
            y: vec![vec![0.0; dim]; memory],
            rho: vec![0.0; memory],
            alpha: vec![0.0; memory],
            len: 0,
            head: 0,
        }
    }

    fn slot(&self, i: usize) -> usize {
        (self.head + i) % self.s.len()
    }

    /// The search direction `du` (in `u`) and `dx` (in `x`) from the gradient `g` (`gu` in
    /// `u`), restarted from −g when it is not a descent direction (lost curvature); returns
    /// the slope along it and the first trial step (scaled to length 1 in `u` without
    /// curvature pairs, as scipy's L-BFGS-B; the quasi-Newton step 1 afterwards).
    fn descent<C: Coordinates>(
        &mut self,
        coords: &C,
        g: &[f64],
        gu: &[f64],
        du: &mut [f64],
        dx: &mut [f64],
    ) -> (f64, f64) {
        self.direction(gu, du);
        coords.direction_to_x(du, dx);
        let mut slope = dot(g, dx);
        if slope.is_nan() || slope >= 0.0 {
            self.len = 0;
            du.iter_mut().zip(gu).for_each(|(d, g)| *d = -g);
            coords.direction_to_x(du, dx);
            slope = dot(g, dx);
        }
        let first = if self.len == 0 {
            1.0f64.min(1.0 / dot(du, du).sqrt())
        } else {
            1.0
        };
        (slope, first)
    }

    /// Keep the pair (s, y) in `u` of a step `step` along `du` (s = step·d_u, y = Δg_u, from
    /// the gradients `(new, old)`) when sᵀy > 0 (curvature); `scratch` holds the two vectors
    /// (swapped into the history when kept).
    fn remember(
        &mut self,
        step: f64,
        du: &[f64],
        (gu_new, gu): (&[f64], &[f64]),
        (s_new, y_new): (&mut Vec<f64>, &mut Vec<f64>),
    ) {
        for ((s, y), (d, (gn, go))) in s_new
            .iter_mut()
            .zip(y_new.iter_mut())
            .zip(du.iter().zip(gu_new.iter().zip(gu)))
        {
            *s = step * d;
            *y = gn - go;
        }
        let sy = dot(s_new, y_new);
        if sy > f64::EPSILON * dot(y_new, y_new) {
            let k = self.next_slot();
            std::mem::swap(&mut self.s[k], s_new);
            std::mem::swap(&mut self.y[k], y_new);
            self.rho[k] = 1.0 / sy;
        }
    }

    /// The slot the next pair goes to (the oldest when full).
    fn next_slot(&mut self) -> usize {
        if self.len < self.s.len() {
            self.len += 1;
            self.slot(self.len - 1)
        } else {
            let at = self.head;
            self.head = (self.head + 1) % self.s.len();
            at
        }
    }

    /// `d = −H·g` by the two-loop recursion, `H₀ = γ·I` with `γ = sᵀy / yᵀy` of the newest pair.
    fn direction(&mut self, g: &[f64], d: &mut [f64]) {
        d.copy_from_slice(g);
        for i in (0..self.len).rev() {
            let k = self.slot(i);
            self.alpha[k] = self.rho[k] * dot(&self.s[k], d);
            axpy(-self.alpha[k], &self.y[k], d);
        }
        if self.len > 0 {
            let k = self.slot(self.len - 1);
            let gamma = 1.0 / (self.rho[k] * dot(&self.y[k], &self.y[k]));
            d.iter_mut().for_each(|v| *v *= gamma);
        }
        for i in 0..self.len {
            let k = self.slot(i);
            let beta = self.rho[k] * dot(&self.y[k], d);
            axpy(self.alpha[k] - beta, &self.s[k], d);
        }
        d.iter_mut().for_each(|v| *v = -*v);
    }
}

/// How [`minimize`] ended, where, and at what cost.
fn outcome(
    stop: Stop,
    (value, grad_max, gap_estimate): (f64, f64, f64),
    progress: &Progress,
) -> Outcome {
    Outcome {
        stop,
        value,
        grad_max,
        gap_estimate,
        iterations: progress.iterations,
        evaluations: progress.evaluations,
    }
}

/// One line search from `x0` along `dx` (from `zero`, first trial step `first`), leaving `x`
/// and `g_trial` at the point it accepts: a Wolfe point, or else the best decrease found (then
/// the curvature pairs are dropped). `None` when there was no decrease at all (`x` is then at
/// some trial point: the caller restores it).
fn line_step<F: Function>(
    f: &mut F,
    (x, x0, dx): (&mut [f64], &[f64], &[f64]),
    g_trial: &mut [f64],
    (zero, first): (Point, f64),
    wolfe: &Wolfe,
    evaluations: &mut usize,
    hist: &mut History,
) -> Option<Point> {
    let mut at = |step: f64, x: &mut [f64], g_trial: &mut [f64]| {
        for ((x, x0), d) in x.iter_mut().zip(x0).zip(dx) {
            *x = x0 + step * d;
        }
        let v = f.eval(x, g_trial);
        (v, dot(g_trial, dx))
    };
    let found = line_search::search(zero, first, wolfe, |step| {
        *evaluations += 1;
        at(step, x, g_trial)
    });
    match found {
        Ok(p) => Some(p),
        Err(SearchFailure::Exhausted { best: Some(p) }) => {
            // No Wolfe point, but a decrease: take it (x is at the last trial, so evaluate the
            // best point again) and drop the curvature pairs.
            *evaluations += 1;
            at(p.step, x, g_trial);
            hist.len = 0;
            Some(p)
        }
        Err(_) => None,
    }
}

/// Where a run of [`minimize`] stands: iterations and evaluations so far and the gap
/// estimate's history. A run that goes on after a change of coordinates (the solver's
/// curvature refresh) passes the first run's `Progress` to the second, which continues its
/// counts and its estimate.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Iterations done.
    pub iterations: usize,
    /// Function evaluations, the first included.
    pub evaluations: usize,
    estimate: GapEstimate,
    gap: f64,
    /// The correction pairs at the end of the last run, for the next.
    history: History,
}

impl Progress {
    /// Nothing done yet.
    pub fn new() -> Self {
        Self {
            iterations: 0,
            evaluations: 0,
            estimate: GapEstimate::new(),
            gap: f64::INFINITY,
            history: History::new(0, 0),
        }
    }

    /// Drop the correction pairs kept from the last run (the coordinates changed: the next
    /// run starts from the gradient). Carrying them over (`s' = R'·R⁻¹·s`, `y' =
    /// R'⁻ᵀ·Rᵀ·y`) was tried on MNIST: 82 passes to a gap of 1e-5, as many as without.
    pub fn forget_pairs(&mut self) {
        self.history.len = 0;
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Minimise `f` from `x` (overwritten with the result) in the coordinates `coords`, until
/// `settings.max_iter` iterations in all (counted in `progress`, which a previous run may have
/// started); `start` is `f(x)` and `∇f(x)` when the caller has them (else `f` is evaluated
/// there). `on_step` sees every iteration and may stop the run with [`ControlFlow::Break`].
///
/// Buffers are allocated once, before the first evaluation.
pub fn minimize<F: Function, C: Coordinates>(
    f: &mut F,
    coords: &C,
    x: &mut [f64],
    start: Option<(f64, &[f64])>,
    settings: &Settings,
    progress: &mut Progress,
    mut on_step: impl FnMut(&Step) -> ControlFlow<()>,
) -> Outcome {
    let n = f.dim();
    assert_eq!(x.len(), n, "x must hold dim() values");
    let memory = settings.memory.max(1);
    let kept = &progress.history;
    if !(kept.s.len() == memory && kept.s.first().is_some_and(|v| v.len() == n)) {
        progress.history = History::new(memory, n);
    }
    let (mut s_new, mut y_new) = (vec![0.0; n], vec![0.0; n]);
    let [mut g, mut gu, mut gu_new, mut g_trial] = std::array::from_fn(|_| vec![0.0; n]);
    let [mut du, mut dx, mut x0] = std::array::from_fn(|_| vec![0.0; n]);
    let mut value = match start {
        Some((value, grad)) => {
            g.copy_from_slice(grad);
            value
        }
        None => {
            progress.evaluations += 1;
            f.eval(x, &mut g)
        }
    };
    let mut grad_max = max_abs(&g);
    coords.gradient_to_u(&g, &mut gu);
    if grad_max == 0.0 {
        return outcome(Stop::Converged, (value, 0.0, 0.0), progress);
    }
    let (mut slope, mut first) = progress.history.descent(coords, &g, &gu, &mut du, &mut dx);
    if progress.iterations == 0 {
        progress.gap = progress.estimate.next(value, -0.5 * slope);
    }
    while progress.iterations < settings.max_iter {
        x0.copy_from_slice(x);
        let zero = Point {
            step: 0.0,
            value,
            slope,
        };
        let Some(accepted) = line_step(
            f,
            (x, &x0, &dx),
            &mut g_trial,
            (zero, first),
            &settings.wolfe,
            &mut progress.evaluations,
            &mut progress.history,
        ) else {
            x.copy_from_slice(&x0);
            return outcome(Stop::LineSearch, (value, grad_max, progress.gap), progress);
        };
        progress.iterations += 1;
        value = accepted.value;
        std::mem::swap(&mut g, &mut g_trial);
        grad_max = max_abs(&g);
        coords.gradient_to_u(&g, &mut gu_new);
        progress
            .history
            .remember(accepted.step, &du, (&gu_new, &gu), (&mut s_new, &mut y_new));
        std::mem::swap(&mut gu, &mut gu_new);
        // The next direction now: its slope −gᵀH·g is twice the model's predicted decrease.
        (slope, first) = progress.history.descent(coords, &g, &gu, &mut du, &mut dx);
        progress.gap = progress.estimate.next(value, -0.5 * slope);
        let step = Step {
            iteration: progress.iterations,
            value,
            grad_max,
            step: accepted.step,
            evaluations: progress.evaluations,
            gap_estimate: progress.gap,
        };
        let at = (value, grad_max, progress.gap);
        if progress.gap <= settings.tol || grad_max == 0.0 {
            let _ = on_step(&step);
            return outcome(Stop::Converged, at, progress);
        }
        if on_step(&step).is_break() {
            return outcome(Stop::Interrupted, at, progress);
        }
    }
    outcome(Stop::MaxIter, (value, grad_max, progress.gap), progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The n-dimensional Rosenbrock function plus 1 (its minimum 1, so that a relative gap
    /// means something).
    struct Rosenbrock(usize);

    impl Function for Rosenbrock {
        fn dim(&self) -> usize {
            self.0
        }
        fn eval(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
            g.fill(0.0);
            let mut f = 1.0;
            for i in 0..self.0 - 1 {
                let (a, b) = (x[i + 1] - x[i] * x[i], 1.0 - x[i]);
                f += 100.0 * a * a + b * b;
                g[i] += -400.0 * a * x[i] - 2.0 * b;
                g[i + 1] += 200.0 * a;
            }
            f
        }
    }

    #[test]
    fn minimises_rosenbrock() {
        let mut x = vec![-1.2, 1.0, -1.2, 1.0, -1.2, 1.0];
        let settings = Settings {
            tol: 1e-14,
            ..Settings::default()
        };
        let out = minimize(
            &mut Rosenbrock(6),
            &Identity,
            &mut x,
            None,
            &settings,
            &mut Progress::new(),
            |_| ControlFlow::Continue(()),
        );
        assert_eq!(out.stop, Stop::Converged, "{out:?}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-6), "{x:?}");
        assert!(out.iterations < 100, "{out:?}");
    }

    #[test]
    fn the_callback_stops_the_run() {
        let mut x = vec![-1.2, 1.0];
        let out = minimize(
            &mut Rosenbrock(2),
            &Identity,
            &mut x,
            None,
            &Settings::default(),
            &mut Progress::new(),
            |s| {
                if s.iteration == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!((out.stop, out.iterations), (Stop::Interrupted, 3));
    }
}
