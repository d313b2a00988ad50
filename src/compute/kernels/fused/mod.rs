//! Fused SIMD kernel: for each block of rows, logits (register-blocked dot products) + bias +
//! softmax + loss + `G = p − onehot` (clip-masked) + `dW += Gᵀ·X`, `db += ΣG`, while the
//! block's rows are still in the core's caches.
//!
//! ## Layout
//! `W` and `dW` are class-major (`classes × features`): a logit is a contiguous dot product
//! and a row of `dW` is a contiguous axpy target, so both passes stream unit-stride vectors.
//! The forward takes classes in tiles of `CLASS_TILE` = 5, the backward in tiles of 10
//! (where the instruction set has 32 registers) or 5; a class count that is not a multiple of 5 is padded inside the kernel
//! with a zero weight row whose logits are ignored and whose gradient is zero.
//!
//! ## Forward: register blocking, then a transposing reduction
//! R rows × 5 classes = 5R vector accumulators; per feature vector R loads of `x` and 5 loads
//! of `W` feed 5R FMAs (R = 4 where there are 32 registers: 20 accumulators, 9 loads per 20
//! FMAs; R = 2 on AVX2's 16). The 4 × 5 tile replaced a 2 × 10 one (12 loads per 20 FMAs)
//! on 2026-12-02: on a 2-core AMD EPYC (AVX-512, 1 thread, 9 runs, medians) the in-cache
//! forward of 256 rows went from 69.5 to 62.0 µs (u8) and 67.0 to 54.1 µs (`f32`), with
//! bit-identical results. A 5-class × 4-vector backward tile (in place of 10 × 2) measured
//! no faster (98.0 against 98.1 µs per step) and was not kept.
//! The accumulators are not summed one by one (8 shuffles and adds each, on the FMA ports):
//! they are stored, and once per group of `LANES` rows [`Simd::transpose_sum`](super::simd::Simd::transpose_sum) turns the
//! `LANES` accumulators of a class into one vector holding the logit of each row — about 3
//! instructions per accumulator.
//!
//! ## Epilogue: vectorised over rows
//! With a class's logits for `LANES` rows in one vector, softmax, loss, argmax and `G` run
//! `LANES` rows at a time (`softmax::lanes`, the same semantics as the scalar epilogue,
//! with a polynomial `exp` instead of 10 calls to `expf` per row). `G` is stored class-major
//! for the backward's broadcasts.
//!
//! ## Backward
//! C classes × 2 feature vectors = 2C accumulators held across all rows of the block; per row
//! 2 loads of `x` and C broadcasts of `G` feed 2C FMAs, and `dW` is loaded and stored once per
//! block (only stored for a call's first block, which starts from zero: no memset). Blocks
//! are 32 rows: the probe loops of this step ran the backward at 153 GFLOP/s with 16 rows per
//! `dW` pass and 168 with 32 (one AVX-512 core, data in L1).
//!
//! ## u8 pixels
//! A u8 row is converted to `f32` *without* the 1/255 (exact integers 0..=255) by the
//! forward's first class tile of its row tile (`tiles::dot_rxc_u8`): each converted vector
//! feeds that tile's FMAs and is stored to a per-thread buffer, from which the other class
//! tiles and the backward read it (from L1 / L2). The scale is applied once per logit
//! (`logit = (Σ x·w)·(1/255) + b`) and once per gradient entry (`dW += (G/255)ᵀ·X`).
//!
//! The conversion used to be a loop of its own just before each row tile's forward. Inside
//! the first tile's FMA loop its loads, widenings and stores run beside the FMAs instead of
//! before them. Measured 2026-12-07 on a 2-core AMD EPYC Zen 4 (noisy VM; one thread, the
//! steadiest figures), `cargo bench --bench roofline -- --quick --kernels fused_u8`, four
//! interleaved rounds, old → new: avx512 1000-step loop 101–122 → 95–100 ms, epoch at batch
//! 256 25–31 → 23–25 ms; avx2 loop 108–144 → 103–139 ms, epoch 25–40 → 25–26 ms. The
//! solver's full-batch pass (`SOLVER_BENCH_ONLY=pass cargo bench --bench solver`, 2 threads,
//! four alternations): 12.7–14.8 → 12.3–13.9 ms. With no conversion at all (a timing hack
//! that leaves the rows unconverted) that pass took 10.6–10.8 ms: what the conversion and
//! the first touch of the u8 rows still cost.
//!
//! ## Prefetch
//! Rows sit at random places in a buffer far larger than L2. While a block computes, the
//! kernel asks for the rows `LOOKAHEAD_ROWS` (256) further in the stream "this batch, then
//! the next one" ([`Batch::with_next`]), into L2, a few cache lines at a time spread over the
//! forward's row pairs and the backward's feature pairs (issued all at once they fill the
//! line-fill buffers and the prefetch instructions stall the FMAs). At the tutorial's batch of
//! 256 that is the next step's rows, which the sampler knows a step ahead; in a longer batch
//! (8192, an evaluation of the test set, the solver's chunks of 1024 rows) it stays
//! `STREAM_AHEAD_ROWS` (64) rows ahead inside the batch, within L2. Where
//! nothing lies ahead (the last rows of a batch without a hint) the next block of the batch
//! is fetched into L1 instead.
//!
//! Measured on a 2-core AVX-512 Xeon (2026-11-26, 7 interleaved runs, medians): with the
//! L2 look-ahead the 1000-step loop took 64.1 ms against 67.5 without (`fused_u8`: 90.8
//! against 95.9), the test evaluation 1.28 against 1.42 ms; batch 8192 about equal.
//!
//! ## Instruction sets
//! The body is written once, generic over [`Simd`](super::simd::Simd), as the
//! [`WithSimd`](super::simd::WithSimd) impl of `Pass`, and [`Isa::run`] compiles it inside
//! each instruction set's `#[target_feature]` wrapper (see [`super::simd`] for why).
//!
//! ## Files
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Fused`], its [`Kernel`] impl, the entry points `parallel` shares |
//! | `pass.rs` | one pass over a batch: `forward_block`, `epilogue_group`, `backward_block` |
//! | `tiles.rs` | the register tiles: `dot_rxc`, `dot_rxc_u8`, `accumulate_cx2` |
//! | `prefetch.rs` | L1 / L2 prefetch of the rows ahead, `rows_ahead` (shared with `parallel`) |

mod pass;
pub(crate) mod prefetch;
mod tiles;

pub(crate) use pass::{Scratch, with_scratch};
pub(crate) use tiles::padded_classes;

use super::simd::Isa;
use super::softmax::ClipGradient;
use super::{Batch, Kernel, Stats, check_backward, check_forward};
use crate::compute::model::{Grads, Model};
use pass::{Out, Pass};

/// Rows per block: the block's rows (12.5 KB as u8, 50 KB as `f32`) are read by the forward
/// and again by the backward, from L1/L2.
pub(crate) const BLOCK_ROWS: usize = 32;
/// The 1/255 of the tutorial's normalisation (`data/pixels.rs`), applied to sums of raw u8
/// pixels rather than to each pixel.
const U8_SCALE: f32 = 1.0 / 255.0;

/// The single-threaded fused kernel (reads `f32` or u8 pixels).
#[derive(Clone, Copy, Debug)]
pub struct Fused {
    isa: Isa,
    clip: ClipGradient,
}

impl Fused {
    /// The fused kernel on instruction set `isa`.
    pub fn new(isa: Isa) -> Self {
        Self::with_clip(isa, ClipGradient::Zero)
    }

    /// The fused kernel on `isa`, with the gradient rule `clip` for clipped rows.
    pub fn with_clip(isa: Isa, clip: ClipGradient) -> Self {
        Self { isa, clip }
    }
}

impl Default for Fused {
    fn default() -> Self {
        Self::new(Isa::best())
    }
}

/// Forward over `batch` on `isa`, writing predictions when asked. Works for any class count.
pub(crate) fn forward_rows(
    isa: Isa,
    model: &Model,
    batch: &Batch,
    predictions: Option<&mut [u32]>,
    s: &mut Scratch,
) -> Stats {
    isa.run(Pass {
        model,
        batch,
        out: Out::Forward(predictions),
        s,
    })
}

/// Forward + backward over `batch` on `isa`, **overwriting** `dw` (`padded_classes ×
/// features`, class-major) and `db` (`classes`).
pub(crate) fn forward_backward_rows(
    isa: Isa,
    clip: ClipGradient,
    model: &Model,
    batch: &Batch,
    dw: &mut [f32],
    db: &mut [f32],
    s: &mut Scratch,
) -> Stats {
    isa.run(Pass {
        model,
        batch,
        out: Out::Backward {
            dw,
            db,
            clip,
            objective: None,
        },
        s,
    })
}

/// The full-batch solver's pass (`crate::solve`): forward + backward over `batch` on `isa`
/// with the gradient of the exact cross-entropy (no clip), each row's gradient times its
/// sample weight (`weights`, indexed like the split's labels; all 1 when `None`),
/// **overwriting** `dw` (`padded_classes × features`) and `db` (`classes`) with the weighted
/// sums, and returning the weighted sum of the rows' exact cross-entropies in `f64`. With
/// `curvature`, also each row's softmax curvature `1 − Σ_c p_c²` (unweighted), at its position
/// in the batch.
///
/// # Panics
/// When `weights` is shorter than the split, `curvature` shorter than the batch, or the
/// buffers are not shaped for the model.
#[allow(clippy::too_many_arguments)]
pub(crate) fn objective_rows(
    isa: Isa,
    model: &Model,
    batch: &Batch,
    weights: Option<&[f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    curvature: Option<&mut [f32]>,
    s: &mut Scratch,
) -> (Stats, f64) {
    if let Some(w) = weights {
        assert!(w.len() >= batch.labels().len(), "one weight per sample");
    }
    if let Some(c) = curvature.as_deref() {
        assert!(c.len() >= batch.len(), "one curvature per row of the batch");
    }
    let mut loss = 0.0;
    let stats = isa.run(Pass {
        model,
        batch,
        out: Out::Backward {
            dw,
            db,
            clip: ClipGradient::Through,
            objective: Some(pass::ObjectiveOut {
                weights,
                loss: &mut loss,
                curvature,
            }),
        },
        s,
    });
    (stats, loss)
}

impl Kernel for Fused {
    fn simd(&self) -> String {
        self.isa.to_string()
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u32]>) -> Stats {
        check_forward(model, batch, predictions.as_deref());
        with_scratch(|s| forward_rows(self.isa, model, batch, predictions, s))
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        check_backward(model, batch, grads);
        let (d, k) = (model.features(), model.classes());
        let (isa, clip) = (self.isa, self.clip);
        if padded_classes(k) == k {
            return with_scratch(|s| {
                let (dw, db) = grads.parts_mut();
                forward_backward_rows(isa, clip, model, batch, dw, db, s)
            });
        }
        with_scratch(|s| {
            let mut pad = std::mem::take(&mut s.dw_pad);
            pad.resize(padded_classes(k) * d, 0.0);
            let stats = forward_backward_rows(isa, clip, model, batch, &mut pad, grads.db_mut(), s);
            grads.dw_mut().copy_from_slice(&pad[..k * d]);
            s.dw_pad = pad;
            stats
        })
    }
}
