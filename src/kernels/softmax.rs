//! The per-row epilogue every kernel shares: stable softmax of the logits, clipped
//! cross-entropy, argmax, and the logit gradient `p − onehot(y)` (zero when `p_y` was clipped).

/// The clip floor of the tutorial: `clip_by_value(p, 1e-9, 1)`.
pub const CLIP_MIN: f32 = 1e-9;

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
        *l = (*l - max).exp();
        sum += *l;
    }
    let inv = 1.0 / sum;
    for l in logits.iter_mut() {
        *l *= inv;
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
