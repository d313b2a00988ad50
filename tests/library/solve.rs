//! The full-batch solver (`mnist_logreg::solve`): its objective against an f64 evaluation,
//! its optimum against scipy's (tests/data/optima.txt, made by
//! scripts/reference_optimum.py) and against argmin's L-BFGS, bit-identical results for any
//! thread count, the callback and the refusals; one MNIST solve.

use crate::common;

use std::ops::ControlFlow;
use std::path::Path;

use argmin::core::{CostFunction, Error, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::kernels::{Isa, KernelKind};
use mnist_logreg::model::Model;
use mnist_logreg::solve::{self, Objective, Precondition, Problem, SolveError, SolverConfig, Stop};
use mnist_logreg::train::{TrainData, evaluate};

/// The optimum named `name` in tests/data/optima.txt.
fn optimum(name: &str) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/optima.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap()
}

fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The small problem of scripts/reference_optimum.py: `n` rows of `d` u8 pixels, `k`
/// classes, labels from a linear rule with every 5th (by hash) replaced; and the weights.
struct Small {
    px: Vec<u8>,
    labels: Vec<u32>,
    weights: Vec<f32>,
    d: usize,
    k: usize,
}

fn small_problem(n: usize, d: usize, k: usize) -> Small {
    let px: Vec<u8> = (0..n)
        .flat_map(|i| (0..d).map(move |j| (splitmix64((i * 1000 + j) as u64) % 256) as u8))
        .collect();
    let t: Vec<i64> = (0..k)
        .flat_map(|c| (0..d).map(move |j| (splitmix64((7919 * c + j) as u64) % 7) as i64 - 3))
        .collect();
    let labels = (0..n)
        .map(|i| {
            if splitmix64(1_000_000 + i as u64).is_multiple_of(5) {
                return (splitmix64(3_000_000 + i as u64) % k as u64) as u32;
            }
            let score = |c: usize| -> i64 {
                (0..d)
                    .map(|j| i64::from(px[i * d + j]) * t[c * d + j])
                    .sum()
            };
            // First index on ties, as numpy's argmax.
            (1..k).fold(0, |b, c| if score(c) > score(b) { c } else { b }) as u32
        })
        .collect();
    let weights = (0..n)
        .map(|i| (1 + splitmix64(2_000_000 + i as u64) % 3) as f32)
        .collect();
    Small {
        px,
        labels,
        weights,
        d,
        k,
    }
}

/// The objective in f64, plain loops: value and gradient at class-major `θ`.
fn objective_f64(s: &Small, weights: Option<&[f32]>, l2: f64, theta: &[f64]) -> (f64, Vec<f64>) {
    let (d, k) = (s.d, s.k);
    let n = s.labels.len();
    let mut grad = vec![0.0; theta.len()];
    let (mut loss, mut total) = (0.0, 0.0);
    for i in 0..n {
        let w = weights.map_or(1.0, |w| f64::from(w[i]));
        let x: Vec<f64> = (0..d).map(|j| f64::from(s.px[i * d + j]) / 255.0).collect();
        let z: Vec<f64> = (0..k)
            .map(|c| {
                let t = &theta[c * (d + 1)..(c + 1) * (d + 1)];
                t[..d].iter().zip(&x).map(|(a, b)| a * b).sum::<f64>() + t[d]
            })
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        let y = s.labels[i] as usize;
        loss += w * (sum.ln() + max - z[y]);
        total += w;
        for c in 0..k {
            let g = w * ((z[c] - max).exp() / sum - f64::from(u8::from(c == y)));
            let gc = &mut grad[c * (d + 1)..(c + 1) * (d + 1)];
            for j in 0..d {
                gc[j] += g * x[j];
            }
            gc[d] += g;
        }
    }
    let mut penalty = 0.0;
    for (c, gc) in grad.chunks_exact_mut(d + 1).enumerate() {
        for j in 0..=d {
            gc[j] /= total;
            if j < d {
                let t = theta[c * (d + 1) + j];
                gc[j] += l2 * t;
                penalty += t * t;
            }
        }
    }
    (loss / total + 0.5 * l2 * penalty, grad)
}

fn tight(precondition: Precondition) -> SolverConfig {
    SolverConfig {
        tol: 1e-7,
        max_iter: 2000,
        precondition,
        ..SolverConfig::default()
    }
}

fn relative_gap(value: f64, best: f64) -> f64 {
    (value - best) / best.abs()
}

#[test]
fn the_objective_and_its_gradient_match_an_f64_evaluation() {
    let s = small_problem(300, 20, 5);
    for weights in [None, Some(&s.weights[..])] {
        let mut problem = Problem::u8(&s.px, s.d, &s.labels, s.k).unwrap();
        if let Some(w) = weights {
            problem = problem.with_weights(w).unwrap();
        }
        let l2 = 0.01;
        let mut objective = Objective::new(problem, l2, Isa::best(), 2).unwrap();
        // A point with sizeable logits (some rows confidently wrong: large exact losses).
        let theta: Vec<f64> = (0..problem.dim())
            .map(|i| (splitmix64(i as u64 + 77) % 2001) as f64 / 200.0 - 5.0)
            .map(|v: f64| f64::from(v as f32))
            .collect();
        let mut grad = vec![0.0; problem.dim()];
        let f = objective.eval(&theta, &mut grad);
        let (want, want_grad) = objective_f64(&s, weights, l2, &theta);
        assert!((f - want).abs() <= 1e-6 * want, "{f} vs {want}");
        let scale = want_grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (g, w) in grad.iter().zip(&want_grad) {
            assert!((g - w).abs() <= 1e-5 * scale, "{g} vs {w}");
        }
        assert_eq!(objective.evaluations(), 1);
    }
}

#[test]
fn reaches_scipys_optimum_of_the_small_problems_plain_and_preconditioned() {
    let s = small_problem(300, 20, 5);
    for (name, weights) in [("small", None), ("small_weighted", Some(&s.weights[..]))] {
        let mut problem = Problem::u8(&s.px, s.d, &s.labels, s.k).unwrap();
        if let Some(w) = weights {
            problem = problem.with_weights(w).unwrap();
        }
        let best = optimum(name);
        for precondition in [Precondition::None, Precondition::default()] {
            let mut reports = 0;
            let sol = solve::solve(&problem, &tight(precondition), None, |it| {
                reports += 1;
                assert_eq!(it.iteration, reports);
                ControlFlow::Continue(())
            })
            .unwrap();
            let gap = relative_gap(sol.objective, best);
            assert!(
                gap.abs() <= 1e-6,
                "{name} {precondition:?}: gap {gap:e}, {}",
                sol.summary()
            );
            assert_eq!(reports, sol.iterations);
            // λ defaults to 1/Σs (scikit-learn's C = 1), as the reference.
            assert_eq!(sol.l2, 1.0 / problem.weight_sum());
        }
    }
}

/// The small problem's objective in f64 for argmin.
struct ForArgmin<'a>(&'a Small, f64);

impl CostFunction for ForArgmin<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, Error> {
        Ok(objective_f64(self.0, None, self.1, p).0)
    }
}

impl Gradient for ForArgmin<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, Error> {
        Ok(objective_f64(self.0, None, self.1, p).1)
    }
}

#[test]
fn agrees_with_argmins_lbfgs() {
    // A smaller problem than scipy's, with a stronger penalty: argmin's L-BFGS on the f64
    // objective and ours on the f32 kernels must find the same minimum.
    let s = small_problem(120, 12, 4);
    let l2 = 0.02;
    let problem = Problem::u8(&s.px, s.d, &s.labels, s.k).unwrap();
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(1e-10)
        .unwrap()
        .with_tolerance_cost(0.0)
        .unwrap();
    let res = Executor::new(ForArgmin(&s, l2), solver)
        .configure(|st| st.param(vec![0.0; problem.dim()]).max_iters(500))
        .run()
        .unwrap();
    let theirs = res.state().get_best_cost();
    let second_moment = Precondition::SecondMoment {
        alpha: 0.001,
        sample_rows: 2048,
    };
    for precondition in [Precondition::None, second_moment, Precondition::default()] {
        // A gap of 1e-9, not `tight`'s 1e-7: at 5e-8 the curvature's coordinates stopped
        // 1.0e-3 from argmin's point in the flattest direction (√(2·gap·f/λ) ≈ 2e-3), here
        // 2e-5 (9e-5 and 1.3e-4 in the other coordinates).
        let cfg = SolverConfig {
            l2: Some(l2),
            tol: 1e-9,
            ..tight(precondition)
        };
        let sol = solve::solve(&problem, &cfg, None, |_| ControlFlow::Continue(())).unwrap();
        let gap = relative_gap(sol.objective, theirs);
        assert!(
            gap.abs() <= 1e-6,
            "{precondition:?}: ours {} argmin {theirs}",
            sol.objective
        );
        // The same point, not only the same value.
        let ours = Objective::new(problem, l2, Isa::best(), 1)
            .unwrap()
            .theta_of(&sol.model);
        let p = res.state().get_best_param().unwrap();
        let worst = ours
            .iter()
            .zip(p)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-3,
            "{precondition:?}: parameters differ by {worst}"
        );
    }
}

#[test]
fn results_are_bit_identical_for_any_thread_count() {
    // More rows than two chunks, so the chunked sums matter.
    let s = small_problem(2 * solve::CHUNK_ROWS + 300, 20, 3);
    let problem = Problem::u8(&s.px, s.d, &s.labels, s.k)
        .unwrap()
        .with_weights(&s.weights)
        .unwrap();
    let run = |threads: usize| {
        let cfg = SolverConfig {
            threads,
            max_iter: 15,
            ..SolverConfig::default()
        };
        let mut trace = Vec::new();
        let sol = solve::solve(&problem, &cfg, None, |it| {
            trace.push((
                it.objective.to_bits(),
                it.grad_max.to_bits(),
                it.step.to_bits(),
            ));
            ControlFlow::Continue(())
        })
        .unwrap();
        let bits: Vec<u32> = sol
            .model
            .w()
            .iter()
            .chain(sol.model.b())
            .map(|v| v.to_bits())
            .collect();
        (trace, bits)
    };
    let one = run(1);
    assert!(!one.0.is_empty());
    for threads in [2, 3] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn the_callback_stops_and_a_start_at_the_optimum_stays_there() {
    let s = small_problem(300, 20, 5);
    let problem = Problem::u8(&s.px, s.d, &s.labels, s.k).unwrap();
    let cfg = SolverConfig::default();
    let stopped = solve::solve(&problem, &cfg, None, |it| {
        if it.iteration == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!((stopped.stop, stopped.iterations), (Stop::Interrupted, 2));
    assert!(stopped.summary().starts_with("not converged"));
    let done = solve::solve(&problem, &cfg, None, |_| ControlFlow::Continue(())).unwrap();
    assert!(done.converged() && done.summary().starts_with("converged after"));
    // Going on from a stopped run: the same optimum.
    let resumed = solve::solve(&problem, &cfg, Some(&stopped.model), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(resumed.converged(), "{}", resumed.summary());
    // Both stop by the gap estimate, not at one point: each within 1e-4 of scipy's optimum
    // (the documented bound is 10× tol = 3e-5), on the stored f64 objective of the problem.
    let best = optimum("small");
    for sol in [&done, &resumed] {
        let gap = relative_gap(sol.objective, best);
        assert!((-1e-6..1e-4).contains(&gap), "{gap:e}: {}", sol.summary());
    }
    let again = solve::solve(&problem, &cfg, Some(&done.model), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    // From the optimum: the gap estimate needs 20 iterations of history, and they find
    // nothing to gain.
    assert!(again.converged(), "{}", again.summary());
    assert!(again.iterations <= 25, "{}", again.summary());
    assert!(relative_gap(again.objective, done.objective) < 1e-7);
}

#[test]
fn refuses_bad_weights_models_and_strengths() {
    let s = small_problem(10, 4, 3);
    let p = Problem::u8(&s.px, s.d, &s.labels, s.k).unwrap();
    assert!(matches!(
        p.with_weights(&s.weights[..9]),
        Err(SolveError::Weights(_))
    ));
    let mut w = s.weights.clone();
    w[3] = -1.0;
    assert!(matches!(p.with_weights(&w), Err(SolveError::Weights(_))));
    assert!(matches!(
        p.with_weights(&[0.0; 10]),
        Err(SolveError::Weights(_))
    ));
    assert!(matches!(
        Problem::u8(&s.px, s.d, &s.labels, 2),
        Err(SolveError::Batch(_))
    ));
    assert!(matches!(
        Problem::u8(&[], 4, &[], 3),
        Err(SolveError::Empty)
    ));
    let cfg = SolverConfig {
        l2: Some(-1.0),
        ..SolverConfig::default()
    };
    let go = |_: &solve::Iteration| ControlFlow::Continue(());
    assert_eq!(
        solve::solve(&p, &cfg, None, go).unwrap_err(),
        SolveError::L2(-1.0)
    );
    let other = Model::zeros(5, 3).unwrap();
    assert!(matches!(
        solve::solve(&p, &SolverConfig::default(), Some(&other), go),
        Err(SolveError::Start { .. })
    ));
}

#[test]
fn mnist_default_settings_are_within_1e_4_of_the_optimum() {
    let data = Dataset::open(
        &common::mnist_dir(),
        &Default::default(),
        ChecksumPolicy::Skip,
    )
    .expect("data/mnist");
    let train = &data.train;
    let problem = Problem::u8(train.pixels(), train.features(), train.labels(), 10).unwrap();
    let sol = solve::solve(&problem, &SolverConfig::default(), None, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let gap = relative_gap(sol.objective, optimum("mnist"));
    assert!(sol.converged(), "{}", sol.summary());
    assert!(
        (-1e-7..=1e-4).contains(&gap),
        "gap {gap:e}: {}",
        sol.summary()
    );
    let kernel = KernelKind::ParallelU8.build(0);
    let test = TrainData::u8(&data.test);
    let (stats, _) = evaluate(kernel.as_ref(), &sol.model, test.pixels, test.labels).unwrap();
    assert!(
        (stats.accuracy() - 0.9256).abs() <= 0.003,
        "{}",
        stats.accuracy()
    );
}
