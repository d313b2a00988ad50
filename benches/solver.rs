//! The full-batch solver on MNIST (λ = 1/60000, scikit-learn's `C = 1`): iterations, passes
//! over the data and time until the objective is within 1e-3, 1e-4 and 1e-5 (relative) of
//! the f64 optimum stored in `tests/data/optima.txt` (made by
//! `scripts/reference_optimum.py`), plain, in the second moment's coordinates and in the
//! curvature's after them (the default); then the default settings'
//! gap, time and test accuracy. Prints a table with the CPU and the SIMD path.
//!
//! Run with `cargo bench --bench solver` (`MNIST_LOGREG_SIMD` picks the SIMD path,
//! `SOLVER_BENCH_THREADS` the threads, 0 = one per core; `SOLVER_BENCH_RUNS` repeats each
//! configuration and reports the median time; `SOLVER_BENCH_ALPHA` and
//! `SOLVER_BENCH_SAMPLE` change the preconditioner's `alpha` and `sample_rows`,
//! `SOLVER_BENCH_AFTER` and `SOLVER_BENCH_CURVATURE_ROWS` its `after` and `curvature_rows`,
//! `SOLVER_BENCH_MEMORY` the L-BFGS pairs, `SOLVER_BENCH_F32=1` gives the solver the pixels as
//! `f32` `x/255`, as the Python estimator has them;
//! `SOLVER_BENCH_ONLY=gaps|defaults|pass` runs one part).

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{Isa, KernelKind, Pixels};
use mnist_logreg::solve::{self, Precondition, Problem, SolverConfig};
use mnist_logreg::train::{TrainData, evaluate};

const GAPS: [f64; 3] = [1e-3, 1e-4, 1e-5];

fn optimum(name: &str) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/optima.txt");
    let text = std::fs::read_to_string(&path).expect("read tests/data/optima.txt");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no optimum named {name}"))
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// CPU time of the whole process so far (every thread): a measure that a busy machine
/// inflates far less than wall time.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets too, in the debug profile: the solves
        // to 1e-5 would take minutes there, and they measure nothing.
        println!("solver: run with `cargo bench --bench solver`");
        return;
    }
    let isa = Isa::from_env().unwrap_or_else(|e| panic!("{e}"));
    let threads: usize = std::env::var("SOLVER_BENCH_THREADS")
        .ok()
        .map_or(0, |s| s.parse().expect("SOLVER_BENCH_THREADS"));
    let runs: usize = std::env::var("SOLVER_BENCH_RUNS")
        .ok()
        .map_or(1, |s| s.parse().expect("SOLVER_BENCH_RUNS"));
    let env = |name: &str| std::env::var(name).ok();
    let mut precondition = Precondition::default();
    if let Precondition::Curvature {
        alpha,
        sample_rows,
        after,
        curvature_rows,
    } = &mut precondition
    {
        let set = |name: &str, v: &mut usize| {
            if let Some(x) = env(name) {
                *v = x.parse().expect(name);
            }
        };
        if let Some(a) = env("SOLVER_BENCH_ALPHA") {
            *alpha = a.parse().expect("SOLVER_BENCH_ALPHA");
        }
        set("SOLVER_BENCH_SAMPLE", sample_rows);
        set("SOLVER_BENCH_AFTER", after);
        set("SOLVER_BENCH_CURVATURE_ROWS", curvature_rows);
    }
    // The same first coordinates, never changed.
    let Precondition::Curvature {
        alpha, sample_rows, ..
    } = precondition
    else {
        unreachable!("the default is Curvature")
    };
    let second_moment = Precondition::SecondMoment { alpha, sample_rows };
    let only = env("SOLVER_BENCH_ONLY");
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let data = Dataset::open(&dir, &LoadOptions::default(), ChecksumPolicy::Skip)
        .expect("load data/mnist");
    let train = &data.train;
    // SOLVER_BENCH_F32: the pixels as `f32` `x/255` (what the Python estimator is given).
    let scaled: Vec<f32> = match env("SOLVER_BENCH_F32") {
        Some(_) => train
            .pixels()
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect(),
        None => Vec::new(),
    };
    let problem = if scaled.is_empty() {
        Problem::u8(train.pixels(), train.features(), train.labels(), 10).unwrap()
    } else {
        Problem::new(Pixels::F32(&scaled), train.features(), train.labels(), 10).unwrap()
    };
    let best = optimum("mnist");
    let memory = env("SOLVER_BENCH_MEMORY").map_or(SolverConfig::default().memory, |m| {
        m.parse().expect("SOLVER_BENCH_MEMORY")
    });
    let base = SolverConfig {
        isa,
        threads,
        precondition,
        memory,
        ..SolverConfig::default()
    };
    println!(
        "CPU: {}; SIMD path: {isa}; threads: {}; runs per row: {runs} (median time)",
        cpu(),
        if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        }
    );
    println!(
        "reference optimum (f64, scipy): {best:.12}; preconditioner: {precondition:?}; memory {memory}"
    );
    if part("pass") {
        let mut objective = solve::Objective::new(problem, 1.0 / 60000.0, isa, threads).unwrap();
        let theta = vec![0.0; problem.dim()];
        let mut grad = vec![0.0; problem.dim()];
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = std::time::Instant::now();
            std::hint::black_box(objective.eval(&theta, &mut grad));
            times.push(t.elapsed());
        }
        println!(
            "one evaluation (a fused pass over 60000 rows, gradient reduced): median of 21 {:.2?}",
            median(times)
        );
        let (to_u, to_x) = solve::time_maps(&problem, &base, 101).unwrap();
        println!(
            "the preconditioner's maps per iteration (785 × 10, median of 101): R⁻ᵀ·g {to_u:.2?}, R⁻¹·d {to_x:.2?}"
        );
    }
    println!();
    println!("| coordinates | gap ≤ | iterations | passes | time |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, precondition) in [
        ("plain", Precondition::None),
        ("second moment", second_moment),
        ("curvature after 2nd moment", precondition),
    ] {
        if !part("gaps")
            || (name == "plain" && env("SOLVER_BENCH_PLAIN").is_none() && only.is_some())
        {
            continue;
        }
        let cfg = SolverConfig {
            tol: 0.0,
            max_iter: 1000,
            precondition,
            ..base
        };
        let mut hits: Vec<Vec<(usize, usize, Duration)>> = vec![Vec::new(); GAPS.len()];
        for _ in 0..runs {
            let mut next = 0;
            let mut seen = vec![None; GAPS.len()];
            solve::solve(&problem, &cfg, None, |it| {
                while next < GAPS.len() && (it.objective - best) / best <= GAPS[next] {
                    seen[next] = Some((it.iteration, it.evaluations, it.elapsed));
                    next += 1;
                }
                if next == GAPS.len() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
            for (h, s) in hits.iter_mut().zip(seen) {
                h.extend(s);
            }
        }
        for (gap, h) in GAPS.iter().zip(hits) {
            if h.len() < runs {
                println!("| {name} | {gap:.0e} | not reached in 1000 | | |");
            } else {
                let (it, ev, _) = h[0];
                let t = median(h.iter().map(|x| x.2).collect());
                println!("| {name} | {gap:.0e} | {it} | {ev} | {t:.2?} |");
            }
        }
    }
    if !part("defaults") {
        return;
    }
    println!();
    println!(
        "| settings | iterations | passes | gap | time (wall) | CPU (all threads) | set-up | test accuracy | stop |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, tol) in [
        ("tol 1e-5", 1e-5),
        ("default (tol 5e-6)", SolverConfig::default().tol),
        ("tol 1e-7", 1e-7),
    ] {
        let cfg = SolverConfig { tol, ..base };
        let (mut times, mut cpus) = (Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..runs {
            let c = cpu_time();
            let s = solve::solve(&problem, &cfg, None, |_| ControlFlow::Continue(())).unwrap();
            cpus.push(cpu_time() - c);
            times.push(s.elapsed);
            last = Some(s);
        }
        let s = last.unwrap();
        let kernel = KernelKind::ParallelU8.build_on(isa, threads);
        let test = TrainData::u8(&data.test);
        let (stats, _) = evaluate(kernel.as_ref(), &s.model, test.pixels, test.labels).unwrap();
        println!(
            "| {name} | {} | {} | {:.2e} | {:.2?} | {:.2?} | {:.2?} | {:.4} | {:?} |",
            s.iterations,
            s.evaluations,
            (s.objective - best) / best,
            median(times),
            median(cpus),
            s.setup,
            stats.accuracy(),
            s.stop
        );
    }
}
