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
/// to the logits, `p − onehot(label)`, or all zeros when `p_label` was clipped.
#[inline]
pub fn grad_row(logits: &mut [f32], label: usize) -> RowOutcome {
    let out = forward_row(logits, label);
    if out.clipped {
        logits.fill(0.0);
    } else {
        logits[label] -= 1.0;
    }
    out
}
