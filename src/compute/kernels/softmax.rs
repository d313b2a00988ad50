//! The per-row epilogue every kernel shares: stable softmax of the logits, clipped
//! cross-entropy, argmax, and the logit gradient `p − onehot(y)` (zero when `p_y` was clipped).
//!
//! Probabilities below [`P_FLUSH`] are set to zero. Without that, the huge logits of the
//! summed loss make many `p` (and so gradient entries, and their products with pixels)
//! subnormal, and every arithmetic instruction touching a subnormal takes a microcode assist
//! of ~100 cycles: one epoch at batch 8192 ran 18× slower in a prototype. A `p` that small
//! changes no loss (the clip floor is 1e-9), no argmax, and moves a gradient entry by less
//! than 1e-30 — far below f32 rounding of any nonzero entry. TensorFlow's CPU kernels flush
//! subnormals too (FTZ/DAZ); 1e-30 rather than 1.2e-38 keeps `p · x` with `x ≥ 1/255`
//! normal as well.

/// The clip floor of the tutorial: `clip_by_value(p, 1e-9, 1)`.
pub const CLIP_MIN: f32 = 1e-9;

/// Probabilities below this are flushed to zero (see the module docs).
pub const P_FLUSH: f32 = 1e-30;

/// What the clip does to the gradient of a row whose true-class probability is below
/// the clip floor `1e-9`. The loss is clipped the same way in both modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ClipGradient {
    /// The tutorial's rule: the clip's derivative is 0 below the floor, so such a row passes
    /// no gradient at all. A row the model is confidently wrong about then never corrects it,
    /// which is how the tutorial's run can stall with a class never predicted.
    #[default]
    Zero,
    /// Every row passes `p − onehot(y)`, the gradient of the unclipped cross-entropy.
    Through,
}

crate::names::named!(ClipGradient, "gradient rule", [Zero => "zero", Through => "through"]);

/// What one row contributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowOutcome {
    /// `−log(clip(p_y, 1e-9, 1))`.
    pub loss: f32,
    /// The predicted class: argmax of `p`, first index on ties.
    pub predicted: usize,
    /// `p_y < 1e-9`: the clip passes no gradient for this row.
    pub clipped: bool,
}

/// Index of the largest value, first index on ties (NaN never wins).
#[inline]
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Overwrite `logits` with `p = softmax(logits)` computed stably (row max subtracted).
#[inline]
pub fn softmax_in_place(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        // Flushed here already (p ≤ e, as the sum is ≥ 1), so no subnormal reaches the
        // multiply below; adding < 1e-30 to a sum ≥ 1 never changed it anyway.
        let e = (*l - max).exp();
        *l = if e < P_FLUSH { 0.0 } else { e };
        sum += *l;
    }
    let inv = 1.0 / sum;
    for l in logits.iter_mut() {
        let p = *l * inv;
        *l = if p < P_FLUSH { 0.0 } else { p };
    }
}

/// Loss, prediction and clip flag of a row whose probabilities are `p`.
#[inline]
pub fn outcome(p: &[f32], label: usize) -> RowOutcome {
    let py = p[label];
    RowOutcome {
        loss: -py.clamp(CLIP_MIN, 1.0).ln(),
        predicted: argmax(p),
        clipped: py < CLIP_MIN,
    }
}

/// Forward epilogue: turn `logits` into probabilities in place and report the row.
#[inline]
pub fn forward_row(logits: &mut [f32], label: usize) -> RowOutcome {
    softmax_in_place(logits);
    outcome(logits, label)
}

/// Forward + backward epilogue: turn `logits` into the gradient of the row loss with respect
/// to the logits, `p − onehot(label)`, or all zeros when `p_label` was clipped and `clip` is
/// [`ClipGradient::Zero`].
#[inline]
pub fn grad_row(logits: &mut [f32], label: usize, clip: ClipGradient) -> RowOutcome {
    let out = forward_row(logits, label);
    if out.clipped && clip == ClipGradient::Zero {
        logits.fill(0.0);
    } else {
        logits[label] -= 1.0;
    }
    out
}

/// The same epilogue for `LANES` rows at once, one vector per class (lane `i` = row `i`), as
/// the fused kernels compute it. Semantics as above: stable softmax with [`P_FLUSH`], clipped
/// loss, first-index argmax of `p`, gradient `p − onehot(y)` zeroed for clipped rows.
pub(crate) mod lanes {
    use super::{CLIP_MIN, ClipGradient, P_FLUSH};
    use crate::compute::kernels::simd::Simd;

    /// `exp(x)` for `x ≤ 0`, values below [`P_FLUSH`] flushed to zero. Cephes' `expf`
    /// (range reduction by `ln 2` in two parts, degree-6 polynomial): within 2 ulp of the
    /// correctly rounded result on the unflushed range.
    #[inline(always)]
    pub(crate) fn exp_flushed<S: Simd>(s: S, x: S::V) -> S::V {
        // Below ln(1e-30) ≈ −69.1 everything is flushed anyway; clamping at −80 keeps every
        // intermediate normal (2⁻¹¹⁵ at worst). Near −88 the scaling by 2ⁿ would make a
        // subnormal, and an instruction that produces one takes a ~100-cycle microcode assist
        // even when the lane is discarded afterwards (measured: an evaluation of the test set
        // after training 2.7–17 ms instead of ~1.5).
        let x = s.max(x, s.splat(-80.0));
        let n = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
        // x − n·ln2, with ln2 = 0.693359375 − 2.12194440e-4 (the first part exact in n·C1).
        let r = s.mul_add(n, s.splat(-0.693_359_4), x);
        let r = s.mul_add(n, s.splat(2.121_944_4e-4), r);
        let mut y = s.splat(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5, // Cephes' 5.0000001201e-1 rounds to 0.5 in f32
        ] {
            y = s.mul_add(y, r, s.splat(c));
        }
        let y = s.mul_add(y, s.mul(r, r), s.add(r, s.splat(1.0)));
        let e = s.mul_pow2(y, n);
        s.select(s.lt(e, s.splat(P_FLUSH)), s.zero(), e)
    }

    /// What a group of rows contributes.
    pub(crate) struct GroupOutcome<S: Simd> {
        /// Sum of the row losses of the valid rows, in row order.
        pub loss: f32,
        /// Valid rows whose argmax is the label.
        pub correct: usize,
        /// Valid rows whose `p_y` was clipped.
        pub clipped: usize,
        /// Predicted class of each row (as `f32`).
        pub predicted: S::V,
        /// Each row's largest logit.
        pub max: S::V,
        /// Each row's `Σ exp(logit − max)` (terms below [`P_FLUSH`] flushed): its exact
        /// cross-entropy is `ln(sum) + max − logit_y`.
        pub sum: S::V,
    }

    /// Overwrite `l` (one vector of logits per class) with `p`, or with the gradient
    /// `p − onehot(y)` when `grad` is given (zero for clipped rows under
    /// [`ClipGradient::Zero`]); `labels` holds each row's label as `f32`, and only the rows
    /// whose bit is set in `valid` count (the others get a zero gradient). Without `loss`,
    /// [`GroupOutcome::loss`] is 0 and its logarithms are not taken (the solver's pass sums
    /// its own exact cross-entropy from `max` and `sum`).
    #[inline(always)]
    pub(crate) fn epilogue<S: Simd>(
        s: S,
        l: &mut [S::V],
        labels: S::V,
        valid: u32,
        want_loss: bool,
        grad: Option<ClipGradient>,
    ) -> GroupOutcome<S> {
        let mut max = l[0];
        for &v in &l[1..] {
            max = s.max(max, v);
        }
        let mut sum = s.zero();
        for v in l.iter_mut() {
            *v = exp_flushed(s, s.sub(*v, max));
            sum = s.add(sum, *v);
        }
        let inv = s.div(s.splat(1.0), sum);
        let (mut py, mut best, mut predicted) = (s.zero(), s.zero(), s.zero());
        for (c, v) in l.iter_mut().enumerate() {
            let p = s.mul(*v, inv);
            let p = s.select(s.lt(p, s.splat(P_FLUSH)), s.zero(), p);
            *v = p;
            py = s.select(s.eq(labels, s.splat(c as f32)), p, py);
            if c == 0 {
                best = p;
            } else {
                let wins = s.lt(best, p);
                best = s.select(wins, p, best);
                predicted = s.select(wins, s.splat(c as f32), predicted);
            }
        }
        let clipped_mask = s.lt(py, s.splat(CLIP_MIN));
        let clipped = s.mask_bits(clipped_mask) & valid;
        let correct = s.mask_bits(s.eq(predicted, labels)) & valid;
        let mut loss = 0.0;
        if want_loss {
            let mut pys = [0.0f32; 16];
            // SAFETY: `pys` holds 16 ≥ LANES values.
            unsafe { s.store(pys.as_mut_ptr(), py) };
            for (i, &p) in pys.iter().enumerate().take(S::LANES) {
                if valid >> i & 1 == 1 {
                    loss += -p.clamp(CLIP_MIN, 1.0).ln();
                }
            }
        }
        if let Some(clip) = grad {
            let dropped = if clip == ClipGradient::Zero {
                clipped
            } else {
                0
            };
            let lane = |i: usize| valid >> i & 1 == 1 && dropped >> i & 1 == 0;
            let mut keep = [0.0f32; 16];
            for (i, k) in keep.iter_mut().enumerate().take(S::LANES) {
                *k = if lane(i) { 1.0 } else { 0.0 };
            }
            // SAFETY: `keep` holds 16 ≥ LANES values.
            let keep = s.lt(s.zero(), unsafe { s.load(keep.as_ptr()) });
            for (c, v) in l.iter_mut().enumerate() {
                let one_hot = s.select(s.eq(labels, s.splat(c as f32)), s.splat(1.0), s.zero());
                *v = s.select(keep, s.sub(*v, one_hot), s.zero());
            }
        }
        GroupOutcome {
            loss,
            correct: correct.count_ones() as usize,
            clipped: clipped.count_ones() as usize,
            predicted,
            max,
            sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lanes::{epilogue, exp_flushed};
    use super::*;
    use crate::compute::kernels::simd::Simd;
    use crate::compute::kernels::simd::tests::{PathCheck, lanes_of, on_every_path, vector};

    #[test]
    fn vector_exp_is_within_3_ulp_of_f64_and_flushes_like_the_scalar_one() {
        struct T;
        impl PathCheck for T {
            fn check<S: Simd>(s: S) {
                let mut worst = 0.0f64;
                for k in 0..20_000 {
                    let x0 = -100.0 + k as f32 * 0.005;
                    let xs: Vec<f32> = (0..S::LANES).map(|i| x0 + i as f32 * 1e-4).collect();
                    let got = lanes_of(s, exp_flushed(s, vector(s, &xs)));
                    for (&x, &e) in xs.iter().zip(&got) {
                        let want = (x as f64).exp();
                        if want < P_FLUSH as f64 * 0.999 {
                            assert_eq!(e, 0.0, "exp({x}) must flush");
                        } else if want > P_FLUSH as f64 * 1.001 {
                            let ulps = (e as f64 - want).abs() / (want * f32::EPSILON as f64);
                            worst = worst.max(ulps);
                        }
                    }
                }
                assert!(worst <= 3.0, "{} lanes: {worst} ulp", S::LANES);
            }
        }
        on_every_path::<T>();
    }

    #[test]
    fn vector_epilogue_matches_the_scalar_one() {
        struct T;
        impl PathCheck for T {
            fn check<S: Simd>(s: S) {
                let l = S::LANES;
                let k = 4;
                // Row i: logits spread by i, the label i % k, the last row clipped.
                let logit = |i: usize, c: usize| -> f32 {
                    if i == l - 1 {
                        [0.0, -40.0, 3.0, 1.0][c]
                    } else {
                        ((i * 7 + c * 3) % 11) as f32 * 0.7 - 2.0
                    }
                };
                let label = |i: usize| if i == l - 1 { 1 } else { i % k };
                let v: Vec<S::V> = (0..k)
                    .map(|c| vector(s, &(0..l).map(|i| logit(i, c)).collect::<Vec<_>>()))
                    .collect();
                let labels = vector(s, &(0..l).map(|i| label(i) as f32).collect::<Vec<_>>());
                let valid = (1u32 << l) - 1;
                for clip in [ClipGradient::Zero, ClipGradient::Through] {
                    // Without the loss: no loss, everything else the same.
                    let mut quiet = v.clone();
                    let q = epilogue(s, &mut quiet, labels, valid, false, Some(clip));
                    let mut v = v.clone();
                    let o = epilogue(s, &mut v, labels, valid, true, Some(clip));
                    assert_eq!(q.loss, 0.0);
                    assert_eq!((q.correct, q.clipped), (o.correct, o.clipped));
                    for (a, b) in quiet.iter().zip(&v) {
                        assert_eq!(lanes_of(s, *a), lanes_of(s, *b));
                    }
                    let (mut loss, mut correct, mut clipped) = (0.0f32, 0, 0);
                    let predicted = lanes_of(s, o.predicted);
                    let g: Vec<Vec<f32>> = v.iter().map(|&x| lanes_of(s, x)).collect();
                    for i in 0..l {
                        let mut row: Vec<f32> = (0..k).map(|c| logit(i, c)).collect();
                        let r = grad_row(&mut row, label(i), clip);
                        loss += r.loss;
                        correct += (r.predicted == label(i)) as usize;
                        clipped += r.clipped as usize;
                        assert_eq!(predicted[i] as usize, r.predicted, "row {i}");
                        for c in 0..k {
                            assert!(
                                (g[c][i] - row[c]).abs() <= 4.0 * f32::EPSILON,
                                "row {i}, class {c}, {clip:?}"
                            );
                        }
                    }
                    let last = (0..k).map(|c| g[c][l - 1].abs()).sum::<f32>();
                    assert_eq!(last > 0.5, clip == ClipGradient::Through, "{clip:?}");
                    assert!((o.loss - loss).abs() <= 1e-5 * loss.abs().max(1.0));
                    assert_eq!((o.correct, o.clipped), (correct, clipped));
                    assert_eq!(clipped, 1, "the last row is clipped");
                }
            }
        }
        on_every_path::<T>();
    }
}
