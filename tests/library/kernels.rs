//! Every kernel against the f64 reference, with explicit error bounds; gradients of the
//! reference against finite differences; thread-count independence of `parallel`.
//!
//! ## Error bounds
//! Worst-case (deterministic) bounds, so a failure is always a real defect. With `ε = 2⁻²⁴`
//! (f32 unit roundoff) and, for row r, `S_r = max_c (|b_c| + Σ_j |W_cj·x_rj|)` (the logit
//! scale the reference reports):
//! - a logit computed in f32 errs by at most `δ_r = ε·(d + 8)·S_r`: any summation order of d
//!   terms errs by at most `(d−1)·ε·Σ|terms|`; the 8 covers the bias add and the u8 path's
//!   1-ulp input rounding;
//! - softmax moves `p_c` by at most `2δ_r·p_c` for such logit errors, so each gradient entry
//!   `G_rc` errs by `e_r = 2δ_r + 8ε` (the 8ε covers exp, the division and the subtraction);
//! - `dW_cj = Σ_r G_rc·x_rj` then errs by `Σ_r |x_rj|·e_r + γ·Σ_r |G_rc·x_rj|` with
//!   `γ = ε·(n + 8)` for the n-term accumulation; `db_c` likewise with `x = 1`;
//! - the loss errs by `Σ_r 2δ_r + γ·Σ_r loss_r`.
//!
//! Rows whose true-class probability is within the error of the clip threshold, or whose top
//! two logits are within the error of each other, are the only places where f32 and f64 may
//! legitimately disagree discretely: cases with a borderline clip are discarded, near-ties are
//! allowed to change the correct count by at most their number. NaN fails every comparison.

use mnist_logreg::kernels::reference::{
    ReferenceF64, forward_backward_f64, forward_backward_f64_params,
};
use mnist_logreg::kernels::{Batch, ClipGradient, Isa, KernelKind};
use mnist_logreg::model::{Grads, Model};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EPS: f64 = f32::EPSILON as f64 / 2.0;

/// A random problem: `samples` u8 images of `d` pixels, labels, a model of `k` classes with
/// weights of magnitude `scale`, and `n` row indices drawn with replacement.
struct Problem {
    d: usize,
    k: usize,
    pixels_u8: Vec<u8>,
    pixels_f32: Vec<f32>,
    labels: Vec<u32>,
    rows: Vec<usize>,
    model: Model,
}

fn problem(seed: u64, n: usize, d: usize, k: usize, scale: f32) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let samples = n.min(50) + 1;
    let pixels_u8: Vec<u8> = (0..samples * d).map(|_| rng.random()).collect();
    let pixels_f32 = pixels_u8.iter().map(|&p| p as f32 / 255.0).collect();
    let labels = (0..samples)
        .map(|_| rng.random_range(0..k) as u32)
        .collect();
    let rows = (0..n).map(|_| rng.random_range(0..samples)).collect();
    let mut model = Model::tutorial_init(d, k);
    for w in model.w_mut().iter_mut() {
        *w = rng.random_range(-1.0..1.0) * scale;
    }
    for b in model.b_mut() {
        *b = rng.random_range(-1.0..1.0) * scale;
    }
    Problem {
        d,
        k,
        pixels_u8,
        pixels_f32,
        labels,
        rows,
        model,
    }
}

impl Problem {
    fn batch(&self, kind: KernelKind) -> Batch<'_> {
        let px = kind.input().pick(&self.pixels_f32, &self.pixels_u8);
        Batch::new(px, self.d, &self.labels, &self.rows, self.k).unwrap()
    }

    fn x(&self, r: usize, j: usize) -> f64 {
        self.pixels_f32[self.rows[r] * self.d + j] as f64
    }
}

/// Every (kernel, instruction set) pair this CPU runs: the SIMD kernels on every supported
/// path, the others once.
fn variants() -> Vec<(KernelKind, Isa)> {
    let mut out = Vec::new();
    for kind in KernelKind::ALL {
        if kind.uses_simd() {
            out.extend(Isa::supported().into_iter().map(|isa| (kind, isa)));
        } else {
            out.push((kind, Isa::best()));
        }
    }
    out
}

/// The paths a CI machine expects these tests to run on, named in `MNIST_LOGREG_EXPECT_SIMD`
/// (comma-separated; `.ci/run` derives it from the CPU flags in `/proc/cpuinfo`, independently
/// of the crate's own detection). Every one must be among the paths [`variants`] tests, or
/// the run would silently have skipped a path the machine has (matrixmultiply's
/// `ensure_target_features_tested`).
#[test]
fn every_expected_simd_path_is_under_test() {
    let tested: Vec<&str> = variants()
        .iter()
        .filter(|(k, _)| *k == KernelKind::ParallelU8)
        .map(|(_, isa)| isa.name())
        .collect();
    // Shown with `cargo test -- --nocapture` (CI greps it), and in the failure message below.
    println!("SIMD paths under test on this CPU: {}", tested.join(", "));
    match std::env::var("MNIST_LOGREG_EXPECT_SIMD") {
        Ok(expected) => {
            for path in expected.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                assert!(
                    tested.contains(&path),
                    "the CPU has {path} (MNIST_LOGREG_EXPECT_SIMD={expected}) but the kernel tests ran on {tested:?}"
                );
            }
        }
        Err(_) => println!("MNIST_LOGREG_EXPECT_SIMD is not set: no expected paths to check"),
    }
    assert!(tested.contains(&"scalar"), "{tested:?}");
}

/// Compare one kernel's output with the f64 reference under the bounds of the module docs.
/// `Err` describes the first violation; `Ok(false)` means the case is borderline (skip).
fn check(
    p: &Problem,
    r: &ReferenceF64,
    (kind, isa): (KernelKind, Isa),
    clip: ClipGradient,
) -> Result<bool, String> {
    let (n, d, k) = (p.rows.len(), p.d, p.k);
    let delta: Vec<f64> = r
        .logit_scale
        .iter()
        .map(|s| EPS * (d as f64 + 8.0) * s)
        .collect();
    let clip_ln = (1e-9f32 as f64).ln();
    if (0..n).any(|i| (r.log_py[i] - clip_ln).abs() <= 2.0 * delta[i] + 1e-6) {
        return Ok(false);
    }
    let e_row: Vec<f64> = delta.iter().map(|dl| 2.0 * dl + 8.0 * EPS).collect();
    let gamma = EPS * (n as f64 + 8.0);

    let kernel = kind.build_with(isa, 2, clip);
    let batch = p.batch(kind);
    let mut grads = Grads::zeros_like(&p.model);
    let s = kernel.forward_backward(&p.model, &batch, &mut grads);
    let mut preds = vec![0u32; n];
    let f = kernel.forward(&p.model, &batch, Some(&mut preds));

    let name = format!("{kind} on {} ({clip:?})", isa.name());
    let loss_tol = delta.iter().map(|dl| 2.0 * dl).sum::<f64>() + gamma * r.loss.abs() + 1e-6;
    for (what, loss) in [("forward_backward", s.loss), ("forward", f.loss)] {
        let err = (loss as f64 - r.loss).abs();
        if !within(err, loss_tol) {
            return Err(format!(
                "{name} {what} loss {loss} vs {} (err {err:e} > {loss_tol:e})",
                r.loss
            ));
        }
    }
    if s.clipped != r.clipped || f.clipped != r.clipped {
        return Err(format!(
            "{name} clipped {}/{} vs {}",
            s.clipped, f.clipped, r.clipped
        ));
    }
    let ties = (0..n)
        .filter(|&i| r.top_gap[i] <= 2.0 * delta[i] + 1e-6)
        .count();
    for c in [s.correct, f.correct] {
        if c.abs_diff(r.correct) > ties {
            return Err(format!(
                "{name} correct {c} vs {} ({ties} near-ties)",
                r.correct
            ));
        }
    }
    let correct_from_preds = (0..n)
        .filter(|&i| preds[i] as usize == batch.label(i))
        .count();
    if correct_from_preds != f.correct {
        return Err(format!(
            "{name} predictions disagree with its correct count"
        ));
    }
    for c in 0..k {
        for j in 0..d {
            let (mut bound, mut mag) = (0.0, 0.0);
            for (i, e) in e_row.iter().enumerate() {
                let x = p.x(i, j);
                bound += x * e;
                mag += (r.g[i * k + c] * x).abs();
            }
            let bound = bound + gamma * mag + 1e-30;
            let (got, want) = (grads.dw()[c * d + j] as f64, r.dw[c * d + j]);
            if !within((got - want).abs(), bound) {
                return Err(format!(
                    "{name} dW[{c}][{j}] = {got} vs {want} (bound {bound:e})"
                ));
            }
        }
        let bound = e_row.iter().sum::<f64>()
            + gamma * (0..n).map(|i| r.g[i * k + c].abs()).sum::<f64>()
            + 1e-30;
        let (got, want) = (grads.db()[c] as f64, r.db[c]);
        if !within((got - want).abs(), bound) {
            return Err(format!(
                "{name} db[{c}] = {got} vs {want} (bound {bound:e})"
            ));
        }
    }
    Ok(true)
}

/// `err ≤ bound`, false for NaN.
fn within(err: f64, bound: f64) -> bool {
    err <= bound
}

fn scale_strategy() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), 0.001f32..0.1, 0.1f32..3.0, 3.0f32..30.0]
}

proptest! {
    // 256 cases, or proptest's own PROPTEST_CASES (CI lowers it under qemu and ASan).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").map_or(256, |n| n.parse().expect("PROPTEST_CASES")),
        ..ProptestConfig::default()
    })]

    /// All kernels agree with the f64 reference on random shapes: batch sizes 1..600, feature
    /// counts 1..1000 (mostly not multiples of the SIMD width), classes 2..16, weights from
    /// zero up to magnitudes giving logits of ±1e4, with clipped rows appearing at the large
    /// magnitudes.
    #[test]
    fn kernels_match_f64_reference(
        seed in any::<u64>(),
        n in prop_oneof![Just(1usize), 1usize..80, 80usize..600],
        d in prop_oneof![Just(1usize), 1usize..40, 40usize..1000],
        k in 2usize..=16,
        scale in scale_strategy(),
        clip in prop_oneof![Just(ClipGradient::Zero), Just(ClipGradient::Through)],
    ) {
        let p = problem(seed, n, d, k, scale);
        let r = forward_backward_f64(&p.model, &p.batch(KernelKind::Reference), clip);
        for v in variants() {
            match check(&p, &r, v, clip) {
                Ok(true) => {}
                Ok(false) => return Err(TestCaseError::reject("borderline clip")),
                Err(e) => return Err(TestCaseError::fail(e)),
            }
        }
    }
}

/// Any (d, K), explicitly: class counts on both sides of the class tiles (5 and 10), of the
/// 16-vector logit buffer on the stack, and past 256 (labels and predictions above u8), past
/// one span of classes of the forward (65 × 257 runs in 5 spans, 300 × 40 in 4), with
/// feature counts that are not a multiple of any vector width; every kernel on every path
/// against the f64 reference, and the predictions of every forward against the reference's.
#[test]
fn kernels_match_f64_reference_at_other_shapes() {
    let shapes = [
        (1, 2),
        (17, 2),
        (33, 3),
        (7, 7),
        (101, 13),
        (47, 16),
        (23, 17),
        (65, 257),
        (300, 40),
    ];
    for (i, &(d, k)) in shapes.iter().enumerate() {
        for (n, scale) in [(37, 0.05f32), (100, 0.5)] {
            let mut p = problem(100 + i as u64, n, d, k, scale);
            // Labels up to the last class, so the highest labels are exercised.
            let last = p.labels.len() - 1;
            p.labels[last] = k as u32 - 1;
            p.rows[0] = last;
            let clip = ClipGradient::Zero;
            let r = forward_backward_f64(&p.model, &p.batch(KernelKind::Reference), clip);
            let mut want = vec![0u32; n];
            let reference = KernelKind::Reference.build(1);
            reference.forward(&p.model, &p.batch(KernelKind::Reference), Some(&mut want));
            assert!(want.iter().all(|&c| (c as usize) < k));
            for v in variants() {
                match check(&p, &r, v, clip) {
                    Ok(_) => {}
                    Err(e) => panic!("d={d} K={k} n={n}: {e}"),
                }
                let kernel = v.0.build_on(v.1, 2);
                let mut got = vec![u32::MAX; n];
                kernel.forward(&p.model, &p.batch(v.0), Some(&mut got));
                let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                // f32 near-ties may flip a prediction; never more than a few rows.
                assert!(
                    differ * 20 <= n && got.iter().all(|&c| (c as usize) < k),
                    "d={d} K={k} {v:?}: {differ} predictions differ from the reference"
                );
            }
        }
    }
}

#[test]
fn mnist_shape_with_huge_logits_and_clipped_rows() {
    // 784 features, 10 classes, weights ±30 → logits around ±1e4: most rows clipped.
    let p = problem(11, 256, 784, 10, 30.0);
    for clip in [ClipGradient::Zero, ClipGradient::Through] {
        let r = forward_backward_f64(&p.model, &p.batch(KernelKind::Reference), clip);
        assert!(
            r.clipped > 50,
            "the case must exercise clipping ({} clipped)",
            r.clipped
        );
        assert!(r.clipped < 256);
        for v in variants() {
            assert!(
                check(&p, &r, v, clip).unwrap(),
                "{v:?}: borderline case, pick another seed"
            );
        }
    }
}

#[test]
fn clipped_row_gradient_follows_the_clip_rule() {
    // One feature, two classes; W pushes class 1 far above class 0, label 0 → p_0 ≈ e^-100.
    let mut model = Model::tutorial_init(1, 2);
    model.w_mut().copy_from_slice(&[0.0, 100.0]);
    let (px, labels, rows) = ([1.0f32], [0u32], [0usize]);
    for (kind, isa) in variants() {
        let u8px = [255u8];
        let pixels = kind.input().pick(&px, &u8px);
        let batch = Batch::new(pixels, 1, &labels, &rows, 2).unwrap();
        // Zero: no gradient. Through: p − onehot = [0 − 1, 1 − 0], times x = 1.
        for (clip, want) in [
            (ClipGradient::Zero, [0.0, 0.0]),
            (ClipGradient::Through, [-1.0, 1.0]),
        ] {
            let mut g = Grads::zeros_like(&model);
            g.dw_mut().fill(7.0);
            let s = kind
                .build_with(isa, 1, clip)
                .forward_backward(&model, &batch, &mut g);
            assert_eq!(s.clipped, 1, "{kind} {clip:?}");
            assert_eq!(s.loss, -(1e-9f32.ln()), "{kind} {clip:?}");
            assert_eq!((g.dw(), g.db()), (&want[..], &want[..]), "{kind} {clip:?}");
        }
    }
}

#[test]
fn reference_gradient_matches_finite_differences() {
    // f64 central differences of the f64 loss, at moderate weights (no clipping).
    let p = problem(5, 40, 30, 4, 0.5);
    let batch = p.batch(KernelKind::Reference);
    let w: Vec<f64> = p.model.w().iter().map(|&v| v as f64).collect();
    let b: Vec<f64> = p.model.b().iter().map(|&v| v as f64).collect();
    let r = forward_backward_f64_params(&w, &b, &batch, ClipGradient::Zero);
    assert_eq!(r.clipped, 0);
    let h = 1e-6;
    let loss =
        |w: &[f64], b: &[f64]| forward_backward_f64_params(w, b, &batch, ClipGradient::Zero).loss;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..40 {
        let i = rng.random_range(0..w.len());
        let (mut wp, mut wm) = (w.clone(), w.clone());
        wp[i] += h;
        wm[i] -= h;
        let fd = (loss(&wp, &b) - loss(&wm, &b)) / (2.0 * h);
        assert!(
            (fd - r.dw[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "dW[{i}]: fd {fd} vs {}",
            r.dw[i]
        );
    }
    for c in 0..b.len() {
        let (mut bp, mut bm) = (b.clone(), b.clone());
        bp[c] += h;
        bm[c] -= h;
        let fd = (loss(&w, &bp) - loss(&w, &bm)) / (2.0 * h);
        assert!(
            (fd - r.db[c]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "db[{c}]: fd {fd} vs {}",
            r.db[c]
        );
    }
    // And the f32 reference kernel follows the f64 one.
    assert!(
        check(
            &p,
            &r,
            (KernelKind::Reference, Isa::best()),
            ClipGradient::Zero
        )
        .unwrap()
    );
}

#[test]
fn parallel_is_bit_identical_for_any_thread_count() {
    // 1000 rows: not a multiple of the chunk size; u8 and f32 inputs.
    let p = problem(9, 1000, 784, 10, 0.05);
    for (kind, isa) in variants()
        .into_iter()
        .filter(|(k, _)| matches!(k, KernelKind::Parallel | KernelKind::ParallelU8))
    {
        let batch = p.batch(kind);
        let run = |threads| {
            let kernel = kind.build_on(isa, threads);
            let mut g = Grads::zeros_like(&p.model);
            let s = kernel.forward_backward(&p.model, &batch, &mut g);
            let mut preds = vec![0u32; 1000];
            let f = kernel.forward(&p.model, &batch, Some(&mut preds));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (
                s.loss.to_bits(),
                s.correct,
                s.clipped,
                f.loss.to_bits(),
                preds,
                bits(g.dw()),
                bits(g.db()),
            )
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert!(
                run(threads) == one,
                "{kind} on {isa}: {threads} threads differ from 1"
            );
        }
    }
}

#[test]
fn empty_batch_gives_zero_gradients() {
    let p = problem(1, 0, 20, 3, 1.0);
    for (kind, isa) in variants() {
        let mut g = Grads::zeros_like(&p.model);
        g.dw_mut().fill(1.0);
        g.db_mut().fill(1.0);
        let s = kind
            .build_on(isa, 1)
            .forward_backward(&p.model, &p.batch(kind), &mut g);
        assert_eq!((s.loss, s.correct, s.clipped), (0.0, 0, 0), "{kind}");
        assert!(g.dw().iter().chain(g.db()).all(|&v| v == 0.0), "{kind}");
    }
}
