//! `train --solver lbfgs`: full-batch L-BFGS to the optimum of the L2-regularised
//! cross-entropy ([`mnist_logreg::solve`]), with the command line's reporting around it:
//! iteration lines, `--metrics` rows, `curves.svg`, the checkpoint and its metadata, Ctrl-C.
//!
//! `bin/train.rs` flattens [`SolverFlags`] into its flags, asks [`choose`] which solver runs
//! (checking the values and warning about flags the chosen solver ignores), and for L-BFGS
//! hands the loaded data to [`run()`].
//!
//! `--resume` of an L-BFGS checkpoint starts a new L-BFGS from the saved iterate: the same
//! objective (λ from the checkpoint), the iteration count going on from the saved one, but the
//! correction pairs (the solver's memory of curvature) start empty, so the resumed run does not
//! retrace the iterates of a run that never stopped; it reaches the same optimum.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use mnist_logreg::checkpoint;
use mnist_logreg::kernels::{Isa, Kernel};
use mnist_logreg::model::Model;
use mnist_logreg::solve::{self, Iteration, Problem, SolverConfig, Stop};

use crate::metrics::{MetricsEvent, MetricsLog, SolveSummary};
use crate::novelty::Novelty;
use crate::plot;
use crate::run::{self, LoadedData, StopSignal};

/// `--display-step` of an L-BFGS run without the flag: a line every 10 iterations.
pub const DEFAULT_DISPLAY_ITERATIONS: usize = 10;

/// Which optimiser `train` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Solver {
    /// Minibatch SGD, the TensorFlow tutorial (clipped loss, W = ones, fixed steps).
    #[default]
    Sgd,
    /// Full-batch L-BFGS to the optimum of the L2-regularised cross-entropy, from zeros.
    Lbfgs,
}

impl Solver {
    fn name(self) -> &'static str {
        match self {
            Solver::Sgd => "sgd",
            Solver::Lbfgs => "lbfgs",
        }
    }
}

/// The flags of the solver choice, flattened into `train`'s.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SolverFlags {
    /// `sgd` (the default): the TensorFlow tutorial's minibatch SGD, a fixed number of steps.
    /// `lbfgs`: full-batch L-BFGS from W = 0, b = 0 (or --load / --resume) to the optimum of
    /// mean cross-entropy + (λ/2)·‖W‖², the model scikit-learn's
    /// `LogisticRegression(C=1/(λ·n))` fits; without --l2 it is scikit-learn's default
    /// (C = 1). Measured on MNIST (2-core AMD EPYC Zen 4, avx512, 2026-12-07): converged in 81
    /// iterations, 1.90 s for the whole process, 6.6e-6 (relative) above the f64 optimum;
    /// scikit-learn 1.9.1's LogisticRegression().fit took 12.26 s in the same run and stopped
    /// at its 100-iteration limit 4.1e-2 above it (docs/cli.md). --display-step then counts
    /// iterations; a `--resume` restarts the L-BFGS memory from the saved iterate.
    #[arg(long, value_enum, value_name = "SOLVER")]
    pub solver: Option<Solver>,
    /// L-BFGS: the L2 strength λ ≥ 0 (the bias is not penalised) [default: 1/n, scikit-learn's
    /// C = 1]. scikit-learn's C maps to λ = 1/(C·Σsᵢ), 1/(C·n) for n unweighted images:
    /// C = 1 on MNIST's 60 000 is λ = 1.6667e-5.
    #[arg(long, value_name = "λ", allow_hyphen_values = true)]
    pub l2: Option<f64>,
    /// L-BFGS: stop when the estimated relative gap to the optimum, (f − min f)/f, is at most
    /// this [default: 5e-6]. The estimate: the larger of the quasi-Newton model's decrease and
    /// the decrease still to come at the rate of the last 20 iterations. Measured on four
    /// data sets, the true gap was at most 15× tol at the stop (the default: 2.5e-6 to 1.8e-5);
    /// 1e-9 reaches float32's limit. Not scikit-learn's tol (a bound on the largest gradient
    /// entry, which stops far from the optimum on badly scaled data).
    #[arg(long, value_name = "TOL", allow_hyphen_values = true)]
    pub tol: Option<f64>,
    /// L-BFGS: iterations at most (with --resume, in all: the saved run's count included)
    /// [default: 1000]. Not converged by then is a warning, not an error: the model is saved.
    #[arg(long, value_name = "N")]
    pub max_iter: Option<usize>,
}

/// The flags that were typed on the command line (clap ids, `batch_size`), with their raw
/// values: what the "does nothing" warnings name.
#[derive(Clone, Debug, Default)]
pub struct Given(Vec<(String, Option<String>)>);

impl Given {
    /// The flags of `matches` that came from the command line (not defaults).
    pub fn from_matches(matches: &ArgMatches) -> Self {
        let mut out = Vec::new();
        for id in matches.ids() {
            let id = id.as_str();
            if matches.value_source(id) == Some(ValueSource::CommandLine) {
                let raw = matches
                    .get_raw(id)
                    .and_then(|mut v| v.next())
                    .map(|v| v.to_string_lossy().into_owned());
                out.push((id.to_string(), raw));
            }
        }
        Self(out)
    }

    /// `--flag value` for the flags among `ids` that were given.
    fn typed(&self, ids: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(id, _)| ids.contains(&id.as_str()))
            .map(|(id, v)| {
                let flag = format!("--{}", id.replace('_', "-"));
                match v {
                    Some(v) => format!("{flag} {v}"),
                    None => flag,
                }
            })
            .collect()
    }
}

/// Flags that set SGD only (ids as clap names them).
const SGD_ONLY: &[&str] = &[
    "steps",
    "epochs",
    "batch_size",
    "learning_rate",
    "shuffle",
    "shuffle_buffer",
    "seed",
    "clip_gradient",
    "kernel",
    "save_every",
    "save_every_secs",
    "allow_non_finite",
];

/// Flags that set L-BFGS only.
const LBFGS_ONLY: &[&str] = &["l2", "tol", "max_iter"];

/// Where an L-BFGS run starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// W = 0, b = 0.
    Zeros,
    /// The model of `--load FILE`.
    Load(PathBuf),
    /// The iterate saved in `--resume FILE`.
    Resume(PathBuf),
}

/// An L-BFGS run, its values checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Lbfgs {
    /// λ (`None`: 1/n).
    pub l2: Option<f64>,
    /// The gradient tolerance.
    pub tol: f64,
    /// Iterations at most, the resumed run's included.
    pub max_iter: usize,
    /// Iterations done before this process (a resumed run's).
    pub done: usize,
    /// Print a line every this many iterations.
    pub display_step: usize,
    /// Where it starts.
    pub start: Start,
}

impl Lbfgs {
    /// The checkpoint to start from, if any (the `--load` or `--resume` file).
    pub fn start_file(&self) -> Option<&Path> {
        match &self.start {
            Start::Zeros => None,
            Start::Load(p) | Start::Resume(p) => Some(p),
        }
    }
}

/// Why an L-BFGS run was refused before any work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(String);

fn check_values(flags: &SolverFlags) -> Result<(), FlagError> {
    if let Some(l2) = flags.l2
        && !(l2.is_finite() && l2 >= 0.0)
    {
        return Err(FlagError(format!(
            "--l2 {l2}: the L2 strength λ must be a finite number ≥ 0 (scikit-learn's C is \
             λ = 1/(C·n))"
        )));
    }
    if let Some(tol) = flags.tol
        && !(tol.is_finite() && tol > 0.0)
    {
        return Err(FlagError(format!(
            "--tol {tol}: the tolerance must be a finite number above 0 (the estimated \
             relative gap to the optimum to stop at; default 5e-6)"
        )));
    }
    if flags.max_iter == Some(0) {
        return Err(FlagError(
            "--max-iter 0: L-BFGS needs at least 1 iteration".to_string(),
        ));
    }
    Ok(())
}

/// The metadata key naming the solver of a checkpoint (absent: SGD).
const SOLVER_KEY: &str = "solver";

/// Which solver this run takes: `None` for SGD (the caller's usual path), or the checked L-BFGS
/// run. Checks the values of the L-BFGS flags (exit 1 on a bad one), prints a warning for each
/// flag the chosen solver ignores, and follows a `--resume` checkpoint's solver.
pub fn choose(
    flags: &SolverFlags,
    given: &Given,
    load: Option<&Path>,
    resume: Option<&Path>,
    display_step: usize,
) -> Result<Option<Lbfgs>, Box<dyn std::error::Error>> {
    check_values(flags)?;
    let recorded = match resume {
        Some(path) => {
            let (_, meta) = checkpoint::load(path)?;
            meta.get(SOLVER_KEY).cloned().map(|s| (path, s, meta))
        }
        None => None,
    };
    let solver = which_solver(
        recorded.as_ref().map(|(p, s, _)| (*p, s.as_str())),
        flags,
        resume,
    )?;
    warn_ignored(solver, given);
    if solver == Solver::Sgd {
        return Ok(None);
    }
    let display_step = if given.0.iter().any(|(id, _)| id == "display_step") {
        display_step
    } else {
        DEFAULT_DISPLAY_ITERATIONS
    };
    let Some((path, _, meta)) = recorded else {
        let defaults = SolverConfig::default();
        return Ok(Some(Lbfgs {
            l2: flags.l2,
            tol: flags.tol.unwrap_or(defaults.tol),
            max_iter: flags.max_iter.unwrap_or(defaults.max_iter),
            done: 0,
            display_step,
            start: load.map_or(Start::Zeros, |p| Start::Load(p.to_path_buf())),
        }));
    };
    resumed_plan(path, &meta, flags, display_step)
}

/// The solver of this run: the `--resume` checkpoint's (`recorded`: its path and `solver`
/// entry), else `--solver`, else SGD; a `--solver` that contradicts the checkpoint is refused.
fn which_solver(
    recorded: Option<(&Path, &str)>,
    flags: &SolverFlags,
    resume: Option<&Path>,
) -> Result<Solver, Box<dyn std::error::Error>> {
    Ok(match (recorded, flags.solver) {
        (Some((path, "lbfgs")), Some(Solver::Sgd)) => {
            return Err(FlagError(format!(
                "--solver sgd --resume {}: that checkpoint is an L-BFGS run; to start SGD from \
                 its model use --load {} (SGD flags) instead",
                path.display(),
                path.display()
            ))
            .into());
        }
        (Some(_), _) => Solver::Lbfgs,
        (None, Some(Solver::Lbfgs)) if resume.is_some() => {
            let path = resume.unwrap_or(Path::new("")).display();
            return Err(FlagError(format!(
                "--solver lbfgs --resume {path}: that checkpoint is an SGD run, which --resume \
                 continues with SGD; to start L-BFGS from its model use --solver lbfgs --load \
                 {path}"
            ))
            .into());
        }
        (None, s) => s.unwrap_or_default(),
    })
}

/// A warning for each flag given that `solver` ignores.
fn warn_ignored(solver: Solver, given: &Given) {
    let (ignored, why) = match solver {
        Solver::Sgd => (
            given.typed(LBFGS_ONLY),
            "with --solver sgd (the default): it sets --solver lbfgs",
        ),
        Solver::Lbfgs => (
            given.typed(SGD_ONLY),
            "with --solver lbfgs: it sets SGD, and L-BFGS takes every training image at each \
             iteration (the test evaluation uses parallel_u8)",
        ),
    };
    for flag in ignored {
        eprintln!("warning: {flag} does nothing {why}");
    }
}

/// The L-BFGS run that continues the checkpoint at `path` (its metadata `meta`): its λ (which
/// `--l2` may not change), its iteration count, its tolerance and budget unless given again.
fn resumed_plan(
    path: &Path,
    meta: &HashMap<String, String>,
    flags: &SolverFlags,
    display_step: usize,
) -> Result<Option<Lbfgs>, Box<dyn std::error::Error>> {
    let file = path.display();
    let get = |key: &str| -> Result<String, FlagError> {
        meta.get(key).cloned().ok_or_else(|| {
            FlagError(format!(
                "{file}: cannot resume from this checkpoint: it has no `{key}` entry"
            ))
        })
    };
    let num = |key: &str| -> Result<f64, FlagError> {
        let v = get(key)?;
        v.parse().map_err(|_| {
            FlagError(format!(
                "{file}: cannot resume from this checkpoint: its `{key}` entry `{v}` is not valid"
            ))
        })
    };
    let l2 = num("l2")?;
    if let Some(given) = flags.l2
        && given != l2
    {
        return Err(FlagError(format!(
            "--l2 {given} --resume {file}: that run solves λ = {l2}; --resume cannot change the \
             objective (use --load {file} --l2 {given} to start a new run from its model)"
        ))
        .into());
    }
    let done = num("iterations")? as usize;
    let max_iter = match flags.max_iter {
        Some(m) => m,
        None => num("max_iter")? as usize,
    };
    if max_iter <= done {
        return Err(FlagError(format!(
            "nothing to resume: {file} is at iteration {done} and --max-iter {max_iter} is not \
             past it; give --max-iter above {done} to iterate further"
        ))
        .into());
    }
    Ok(Some(Lbfgs {
        l2: Some(l2),
        tol: flags.tol.map_or_else(|| num("tol"), Ok)?,
        max_iter,
        done,
        display_step: num("display_step").map_or(display_step, |d| (d as usize).max(1)),
        start: Start::Resume(path.to_path_buf()),
    }))
}

/// What an L-BFGS run works with once the data is loaded (from `train`'s set-up).
pub struct Context<'a> {
    /// The data.
    pub data: &'a LoadedData,
    /// The kernel of the test evaluation.
    pub eval_kernel: &'a dyn Kernel,
    /// The starting model (`--load`/`--resume`; `None`: zeros).
    pub start: Option<&'a Model>,
    /// The solver's instruction set.
    pub isa: Isa,
    /// The solver's threads (0: one per core).
    pub threads: usize,
    /// `--quiet`.
    pub quiet: bool,
    /// `--save`.
    pub save: Option<&'a Path>,
    /// `--metrics`.
    pub metrics: Option<&'a Path>,
    /// `--plot-dir`.
    pub plot_dir: Option<&'a Path>,
    /// `--grid`.
    pub grid: usize,
    /// The novelty score saved with the model.
    pub novelty: &'a dyn Fn() -> Option<&'a Novelty>,
    /// Print the first test images with their predictions.
    pub show_images: &'a ShowImages<'a>,
}

/// Prints the first test images with their predictions (`train`'s `--show`).
pub type ShowImages<'a> = dyn Fn(&mut dyn Write, &[u32]) -> std::io::Result<()> + 'a;

/// How an L-BFGS run ended (converged or not, it finished; a signal interrupts it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ended {
    /// It ran to convergence, the iteration budget or a failed line search.
    Finished,
    /// A stop signal came: the iterate is saved.
    Interrupted(StopSignal),
}

/// A step length with about 4 significant digits, `1` for the full quasi-Newton step.
fn short(x: f64) -> String {
    if x == 1.0 {
        return "1".into();
    }
    if !(1e-3..1e4).contains(&x) {
        return format!("{x:.2e}");
    }
    let decimals = (3 - x.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// An estimated gap for people: `1.2e-5`, or `unknown` before the estimate has its 20
/// iterations.
fn gap_text(gap: f64, unknown: &str) -> String {
    if gap.is_finite() {
        format!("{gap:.1e}")
    } else {
        unknown.to_string()
    }
}

/// The line printed every display interval.
pub fn iteration_line(iteration: usize, it: &Iteration) -> String {
    format!(
        "iteration: {iteration}, objective: {:.6}, gap: {}, |grad|max: {:.1e}, step: {}, \
         time: {:.2}s",
        it.objective,
        gap_text(it.gap_estimate, "-"),
        it.grad_max,
        short(it.step),
        it.elapsed.as_secs_f64()
    )
}

fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::Converged => "converged",
        Stop::MaxIter => "max_iter",
        Stop::LineSearch => "line_search",
        Stop::Interrupted => "interrupted",
    }
}

/// The checkpoint metadata of an L-BFGS run.
fn metadata(
    plan: &Lbfgs,
    solution: &solve::Solution,
    iterations: usize,
    data_dir: &Path,
    accuracy: Option<f64>,
) -> HashMap<String, String> {
    let mut meta: HashMap<String, String> = [
        (SOLVER_KEY, Solver::Lbfgs.name().to_string()),
        ("l2", solution.l2.to_string()),
        ("tol", plan.tol.to_string()),
        ("max_iter", plan.max_iter.to_string()),
        ("iterations", iterations.to_string()),
        ("objective", solution.objective.to_string()),
        ("grad_max", solution.grad_max.to_string()),
        ("gap_estimate", solution.gap_estimate.to_string()),
        ("stop", stop_name(solution.stop).to_string()),
        ("display_step", plan.display_step.to_string()),
        ("data", data_dir.display().to_string()),
        (
            "resumed_from",
            plan.start_file()
                .map_or(String::new(), |p| p.display().to_string()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(acc) = accuracy {
        meta.insert("test_accuracy".into(), format!("{acc:.6}"));
    }
    meta
}

/// Run L-BFGS as `plan` says on `cx`'s data: iteration lines, metrics rows, the stop check,
/// then (unless interrupted) the test accuracy, the converged line or warning, the
/// checkpoint, the plots and the timing.
pub fn run(plan: &Lbfgs, cx: &Context) -> Result<Ended, Box<dyn std::error::Error>> {
    let mut out: Box<dyn Write> = if cx.metrics == Some(Path::new("-")) {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut metrics = cx.metrics.map(MetricsLog::create).transpose()?;
    let train = cx.data.train_data();
    let problem = Problem::new(
        train.pixels,
        train.features,
        train.labels,
        cx.data.classes(),
    )?;
    let cfg = config(plan, cx);
    let l2 = plan.l2.unwrap_or(1.0 / problem.weight_sum());
    if !cx.quiet {
        announce(plan, &problem, l2);
    }
    let (solution, history) =
        solve_reporting(plan, cx, &problem, &cfg, &mut out, metrics.as_mut())?;
    let iterations = plan.done + solution.iterations;
    let data_dir = cx.data.dir();
    let save = |accuracy: Option<f64>| -> Result<(), Box<dyn std::error::Error>> {
        if let Some(path) = cx.save {
            let meta = metadata(plan, &solution, iterations, data_dir, accuracy);
            let meta = run::with_class_names(meta, &cx.data.names);
            crate::novelty::save_with_novelty(path, &solution.model, (cx.novelty)(), meta)?;
        }
        Ok(())
    };
    if let (Stop::Interrupted, Some(signal)) = (solution.stop, run::stop_requested()) {
        eprintln!("interrupted at iteration {iterations}");
        if let Some(log) = metrics.as_mut() {
            log.write(&MetricsEvent::Interrupted {
                step: iterations,
                signal: signal.name,
            })?;
        }
        if let Some(path) = cx.save {
            save(None)?;
            let path = path.display();
            eprintln!(
                "saved the model at iteration {iterations} to {path}; continue with: train \
                 --resume {path}"
            );
        }
        return Ok(Ended::Interrupted(signal));
    }
    let eval = run::evaluate_test(cx.eval_kernel, &solution.model, cx.data)?;
    writeln!(out, "Test Accuracy: {:.6}", eval.accuracy)?;
    if !cx.quiet {
        (cx.show_images)(&mut *out, &eval.predictions)?;
    }
    say_converged(&solution, iterations);
    if let Some(path) = cx.save {
        save(Some(eval.accuracy))?;
        eprintln!("saved the model to {}", path.display());
    }
    if let Some(dir) = cx.plot_dir {
        write_plots(dir, cx, &history, &eval.predictions, &solution.model)?;
    }
    let threads = match cx.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if let Some(log) = metrics.as_mut() {
        let summary = summary(plan, cx, &solution, iterations, &eval, threads);
        log.write(&MetricsEvent::Solution(&summary))
            .map_err(|e| format!("writing the metrics file: {e}"))?;
    }
    if !cx.quiet {
        print_timing(&mut *out, cx, &solution, &eval, threads)?;
    }
    Ok(Ended::Finished)
}

/// The solver's settings for `plan` on `cx`'s threads and instruction set (the iterations left
/// of `--max-iter` when resuming).
fn config(plan: &Lbfgs, cx: &Context) -> SolverConfig {
    SolverConfig {
        l2: plan.l2,
        tol: plan.tol,
        max_iter: plan.max_iter - plan.done,
        threads: cx.threads,
        isa: cx.isa,
        ..SolverConfig::default()
    }
}

/// Every iteration's report, numbered across a resume.
type History = Vec<(usize, Iteration)>;

/// `solve::solve` with the iteration lines on `out` every display step, a metrics row per
/// iteration, and a stop on Ctrl-C; returns the solution and every iteration's report.
fn solve_reporting(
    plan: &Lbfgs,
    cx: &Context,
    problem: &Problem,
    cfg: &SolverConfig,
    out: &mut dyn Write,
    mut metrics: Option<&mut MetricsLog>,
) -> Result<(solve::Solution, History), Box<dyn std::error::Error>> {
    let mut history: Vec<(usize, Iteration)> = Vec::new();
    let mut metrics_error: Option<std::io::Error> = None;
    let mut print_error: Option<std::io::Error> = None;
    let solution = solve::solve(problem, cfg, cx.start, |it| {
        let n = plan.done + it.iteration;
        if !cx.quiet && n.is_multiple_of(plan.display_step) && print_error.is_none() {
            print_error = writeln!(out, "{}", iteration_line(n, it)).err();
        }
        if let (Some(log), None) = (metrics.as_deref_mut(), &metrics_error) {
            metrics_error = log
                .write(&MetricsEvent::Iteration {
                    iteration: n,
                    objective: it.objective,
                    grad_max: it.grad_max,
                    step: it.step,
                    gap_estimate: it.gap_estimate,
                    evaluations: it.evaluations,
                    seconds: it.elapsed.as_secs_f64(),
                })
                .err();
        }
        history.push((n, *it));
        if run::stop_requested().is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(e) = print_error {
        return Err(e.into());
    }
    if let Some(e) = metrics_error {
        return Err(format!("writing the metrics file: {e}").into());
    }
    Ok((solution, history))
}

/// The metrics file's last event of a finished run.
fn summary(
    plan: &Lbfgs,
    cx: &Context,
    solution: &solve::Solution,
    iterations: usize,
    eval: &run::Evaluation,
    threads: usize,
) -> SolveSummary {
    SolveSummary {
        solver: Solver::Lbfgs.name(),
        converged: solution.converged(),
        stop: stop_name(solution.stop),
        iterations,
        evaluations: solution.evaluations,
        objective: solution.objective,
        grad_max: solution.grad_max,
        gap_estimate: solution.gap_estimate,
        tol: solution.tol,
        l2: solution.l2,
        max_iter: plan.max_iter,
        setup_seconds: solution.setup.as_secs_f64(),
        solve_seconds: solution.elapsed.as_secs_f64(),
        simd: cx.isa.to_string(),
        threads,
        test_accuracy: eval.accuracy,
        test_loss: eval.mean_loss,
        verified: cx.data.verified(),
    }
}

/// The last line: load, solve and evaluation times, and what computed them.
fn print_timing(
    out: &mut dyn Write,
    cx: &Context,
    solution: &solve::Solution,
    eval: &run::Evaluation,
    threads: usize,
) -> std::io::Result<()> {
    writeln!(
        out,
        "timing: load {:.1} ms, solve {:.1} ms ({} iterations, {} passes, set-up {:.1} ms), \
         eval {:.2} ms; solver lbfgs, simd {}, threads {threads}",
        cx.data.load_time.as_secs_f64() * 1e3,
        solution.elapsed.as_secs_f64() * 1e3,
        solution.iterations,
        solution.evaluations,
        solution.setup.as_secs_f64() * 1e3,
        eval.elapsed.as_secs_f64() * 1e3,
        cx.isa,
    )
}

/// The first line of a run: the problem, λ (and scikit-learn's C), the tolerance, where it
/// starts.
fn announce(plan: &Lbfgs, problem: &Problem, l2: f64) {
    eprintln!(
        "L-BFGS on {} images: λ = {l2:.4e} (scikit-learn's C = {:.4}), tol {:.1e} on the \
         estimated relative gap, at most {} iterations{}",
        problem.rows(),
        1.0 / (l2 * problem.weight_sum()),
        plan.tol,
        plan.max_iter,
        match &plan.start {
            Start::Zeros => String::from(", from W = 0, b = 0"),
            Start::Load(p) => format!(", from {}", p.display()),
            Start::Resume(p) => format!(
                ", resuming {} at iteration {} (the L-BFGS memory restarts)",
                p.display(),
                plan.done
            ),
        }
    );
}

/// The converged line, or the warning that it did not converge (the model is saved either way).
fn say_converged(solution: &solve::Solution, iterations: usize) {
    if solution.converged() {
        eprintln!(
            "converged after {iterations} iterations ({} passes over the data, {:.2?}): \
         objective {:.10}, estimated relative gap {:.1e} ≤ tol {:.1e} (|grad|max {:.2e})",
            solution.evaluations,
            solution.elapsed,
            solution.objective,
            solution.gap_estimate,
            solution.tol,
            solution.grad_max
        );
    } else {
        let why = match solution.stop {
            Stop::LineSearch => {
                " (the line search found no decrease: the objective is at the \
                              precision of its float32 evaluation here)"
            }
            _ => "",
        };
        eprintln!(
            "warning: did not converge in {iterations} iterations: estimated relative gap {} \
         > tol {:.1e}{why}; objective {:.10}. The model is usable; --max-iter above \
         {iterations} (or --resume of the saved model) goes further",
            gap_text(
                solution.gap_estimate,
                "not known yet (the estimate needs 20 iterations)"
            ),
            solution.tol,
            solution.objective
        );
    }
}

/// `--plot-dir`: the objective per iteration, and the pictures (28×28 data) or the confusion
/// matrix (other data, up to 100 classes).
fn write_plots(
    dir: &Path,
    cx: &Context,
    history: &[(usize, Iteration)],
    predictions: &[u32],
    model: &Model,
) -> Result<(), Box<dyn std::error::Error>> {
    if history.is_empty() {
        eprintln!("note: no iteration was run, so there is no curves.svg");
    } else {
        let points: Vec<(usize, f64, f64)> = history
            .iter()
            .map(|(n, it)| (*n, it.objective, it.grad_max))
            .collect();
        plot::objective_curves(&dir.join("curves.svg"), &points)?;
    }
    let names = &cx.data.names;
    match cx.data.dataset() {
        Some(dataset) if cx.data.is_pictures() => {
            plot::run_pictures(dir, &[], &dataset.test, predictions, model, names, cx.grid)?
        }
        // Not 28×28 pictures: the confusion matrix, for up to 100 classes.
        _ if model.classes() <= 100 => {
            let classes = model.classes();
            let counts = plot::confusion(predictions, cx.data.test_labels(), classes);
            plot::confusion_matrix(&dir.join("confusion.svg"), &counts, names)?;
        }
        _ => eprintln!("note: confusion.svg is drawn for at most 100 classes"),
    }
    eprintln!("wrote the plots to {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_print_short() {
        assert_eq!(short(1.0), "1");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(0.123456), "0.1235");
        assert_eq!(short(2.5e-5), "2.50e-5");
    }

    #[test]
    fn the_line_reads_like_the_sgd_lines() {
        let it = Iteration {
            iteration: 10,
            objective: 0.268812,
            grad_max: 3.1e-3,
            step: 1.0,
            evaluations: 11,
            gap_estimate: 1e-3,
            elapsed: Duration::from_millis(410),
        };
        assert_eq!(
            iteration_line(10, &it),
            "iteration: 10, objective: 0.268812, gap: 1.0e-3, |grad|max: 3.1e-3, step: 1, time: 0.41s"
        );
    }

    #[test]
    fn bad_values_name_the_flag() {
        let bad = |f: SolverFlags| check_values(&f).unwrap_err().to_string();
        let l2 = bad(SolverFlags {
            l2: Some(-1.0),
            ..Default::default()
        });
        assert!(l2.starts_with("--l2 -1"), "{l2}");
        let tol = bad(SolverFlags {
            tol: Some(f64::NAN),
            ..Default::default()
        });
        assert!(tol.starts_with("--tol NaN"), "{tol}");
        let it = bad(SolverFlags {
            max_iter: Some(0),
            ..Default::default()
        });
        assert!(it.starts_with("--max-iter 0"), "{it}");
    }
}
