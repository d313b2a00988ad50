//! One pass of the fused kernel over a batch, block by block of [`BLOCK_ROWS`] rows:
//!
//! ```text
//! for each block of 32 rows (X_b: 32 × d, read in place or converted from u8):
//!     forward_block    acc[r][c] = X_b[r] · W[c]      (4- or 2-row × 5-class tiles; raw vectors;
//!                                                      many classes: a span of them at a time)
//!     epilogue_group   logits = Σ acc · scale + b      (LANES rows at a time)
//!                      p = softmax(logits), loss, argmax, G = p − onehot (clip-masked)
//!     backward_block   dW[c] (+)= Σ_r G[c][r] · X_b[r]  (C-class × 2-vector tiles)
//! db = Σ over blocks of Σ_r G[c][r]
//! ```
//!
//! Every buffer the tiles write through a raw pointer is sized here, in [`Pass::run`]'s
//! `Frame::new`, before the first block; `dW` and `db` are checked against the model's shape.

use std::cell::RefCell;

use super::prefetch::{LinePrefetch, lookahead, prefetch_rows_l1, rows_ahead};
use super::tiles::{
    CLASS_TILE, WIDE_TILE, accumulate_cx2, class_tiles, dot_rxc, dot_rxc_u8, forward_rows,
    padded_classes,
};
use super::{BLOCK_ROWS, U8_SCALE};
use crate::compute::kernels::simd::{Simd, WithSimd};
use crate::compute::kernels::softmax::{ClipGradient, lanes};
use crate::compute::kernels::{Batch, Pixels, Stats};
use crate::compute::model::Model;
use crate::data::aligned::AlignedF32;

/// Per-thread buffers of the fused kernel, reused across calls.
#[derive(Default)]
pub(crate) struct Scratch {
    /// u8 rows of the current block converted to `f32` (not scaled), 64-byte aligned so the
    /// vector loads of a row never straddle cache lines (when `d` is a multiple of 16).
    x: AlignedF32,
    /// The forward's raw accumulators of the block: for row group `q` (LANES rows), class
    /// `c`, row `i` of the group, the vector at `((q·kp + c)·LANES + i)·LANES`.
    acc: AlignedF32,
    /// Scalar tails of the dot products (features past the last whole vector), class-major:
    /// `kp × BLOCK_ROWS`.
    tail: Vec<f32>,
    /// The block's gradient times the input scale, class-major: `kp × BLOCK_ROWS`.
    g: AlignedF32,
    /// `db` partial sums per class, one vector each: `kp × LANES`.
    db: AlignedF32,
    /// A zero weight row for padded classes.
    zero: Vec<f32>,
    /// Padded `dW` when `classes` is not a multiple of [`CLASS_TILE`].
    pub(super) dw_pad: Vec<f32>,
    /// The buffers of `Frame::w` and `Frame::dw`, kept between calls (cleared before use:
    /// the pointers of an earlier call are never read).
    w_rows: Vec<*const f32>,
    dw_rows: Vec<*mut f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Run `f` with this thread's scratch buffers.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with_borrow_mut(f)
}

/// Give `buf` exactly `len` values (zeros when it grows).
fn resize(buf: &mut AlignedF32, len: usize) {
    if buf.len() != len {
        *buf = AlignedF32::zeros(len);
    }
}

/// What one pass over a batch writes besides its [`Stats`].
pub(super) enum Out<'o> {
    /// Forward only, with optional predictions (one per row).
    Forward(Option<&'o mut [u32]>),
    /// Forward + backward: `dw` (`padded_classes × features`) and `db` (`classes`) are
    /// overwritten. With `objective`, the full-batch solver's pass (`crate::solve`).
    Backward {
        dw: &'o mut [f32],
        db: &'o mut [f32],
        clip: ClipGradient,
        objective: Option<ObjectiveOut<'o>>,
    },
}

/// What the solver's pass adds to a backward pass: each row's gradient `p − onehot(y)` is
/// multiplied by its sample weight (1 without `weights`), and `loss` accumulates in `f64`
/// the weighted exact cross-entropy `s·(ln Σ exp(z − max) + max − z_y)` (no clip).
pub(crate) struct ObjectiveOut<'o> {
    /// One weight per sample of the split (indexed like the labels), or `None` for all 1.
    pub(crate) weights: Option<&'o [f32]>,
    /// Added to: the weighted sum of the rows' exact cross-entropies.
    pub(crate) loss: &'o mut f64,
    /// When asked for: each row's softmax curvature `1 − Σ_c p_c²` (the trace of
    /// `diag(p) − ppᵀ`, unweighted), at its position in the batch.
    pub(crate) curvature: Option<&'o mut [f32]>,
}

/// One pass of the fused kernel over a batch; [`Isa::run`](crate::kernels::Isa::run) runs
/// it compiled for the path's instruction set.
pub(super) struct Pass<'a, 'o> {
    pub(super) model: &'a Model,
    pub(super) batch: &'a Batch<'a>,
    pub(super) out: Out<'o>,
    pub(super) s: &'o mut Scratch,
}

impl WithSimd for Pass<'_, '_> {
    type Output = Stats;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Stats {
        self.run(simd)
    }
}

/// The sizes of a pass and the pointers to the model's weight rows and to the `dW` rows,
/// checked and fixed before the first block.
struct Frame {
    d: usize,
    k: usize,
    kp: usize,
    /// 1 for `f32` pixels, 1/255 for u8 (applied to each logit and each gradient entry).
    scale: f32,
    /// `(wide, narrow)` class tiles on this instruction set.
    tiles: (usize, usize),
    /// The gradient rule of a backward pass; `None` for a forward pass.
    grad: Option<ClipGradient>,
    /// The solver's pass (`Out::Backward` with an objective): its exact cross-entropy, no
    /// clipped loss.
    objective: bool,
    /// `kp` weight rows of `d` values: the model's, then `Scratch::zero` for padding.
    w: Vec<*const f32>,
    /// `kp` distinct `dW` rows of `d` values (empty for a forward pass).
    dw: Vec<*mut f32>,
}

impl Frame {
    /// Size the scratch buffers for `S` and check the output buffers against the model.
    ///
    /// # Panics
    /// When `dw` is not `padded_classes × features`, `db` not `classes`, or `predictions`
    /// shorter than the batch (the kernels' entry points check these first, with messages).
    fn new<S: Simd>(model: &Model, batch: &Batch, out: &mut Out, s: &mut Scratch) -> Self {
        let lanes = S::LANES;
        assert!(BLOCK_ROWS.is_multiple_of(lanes) && lanes <= 16);
        let (d, k) = (model.features(), model.classes());
        let kp = padded_classes(k);
        s.zero.resize(d, 0.0);
        resize(&mut s.acc, BLOCK_ROWS * kp * lanes);
        resize(&mut s.g, kp * BLOCK_ROWS);
        resize(&mut s.db, kp * lanes);
        s.db.fill(0.0);
        s.tail.resize(kp * BLOCK_ROWS, 0.0);
        if let Pixels::U8(_) = batch.pixels() {
            resize(&mut s.x, BLOCK_ROWS * d);
        }
        let zero = s.zero.as_ptr();
        let mut w = std::mem::take(&mut s.w_rows);
        w.clear();
        w.extend((0..kp).map(|c| {
            if c < k {
                model.class_weights(c).as_ptr()
            } else {
                zero
            }
        }));
        let mut dw_rows = std::mem::take(&mut s.dw_rows);
        dw_rows.clear();
        match out {
            Out::Backward { dw, db, .. } => {
                assert_eq!(dw.len(), kp * d, "dW must be padded_classes × features");
                assert_eq!(db.len(), k, "db must hold one value per class");
                if batch.is_empty() {
                    dw.fill(0.0);
                }
                dw_rows.extend(dw.chunks_exact_mut(d).map(<[f32]>::as_mut_ptr));
            }
            Out::Forward(p) => {
                if let Some(p) = p {
                    assert!(p.len() >= batch.len(), "one prediction slot per row");
                }
            }
        }
        let scale = match batch.pixels() {
            Pixels::F32(_) => 1.0,
            Pixels::U8(_) => U8_SCALE,
        };
        let objective = matches!(
            out,
            Out::Backward {
                objective: Some(_),
                ..
            }
        );
        let grad = match out {
            Out::Backward { clip, .. } => Some(*clip),
            Out::Forward(_) => None,
        };
        Frame {
            d,
            k,
            kp,
            scale,
            tiles: class_tiles::<S>(kp),
            grad,
            objective,
            w,
            dw: dw_rows,
        }
    }

    /// Hand the pointer buffers back to the scratch for the next call.
    fn finish(self, s: &mut Scratch) {
        s.w_rows = self.w;
        s.dw_rows = self.dw;
    }

    /// Offset in `Scratch::acc` of the accumulator vector of block row `r`, class `c`.
    #[inline(always)]
    fn acc_at(&self, lanes: usize, r: usize, c: usize) -> usize {
        ((r / lanes * self.kp + c) * lanes + r % lanes) * lanes
    }
}

/// The rows of one block as the tiles read them: `read[r]` points to `d` readable `f32`s
/// (a row of the `f32` buffer, or the `Scratch::x` slot that [`dot_rxc_u8`] fills); for u8
/// pixels `write[r]` is that same slot (writable, derived from `&mut Scratch::x`) and `src[r]`
/// the u8 row it is converted from. Every row index is bounds-checked here, once per block.
struct BlockRows<'p> {
    read: [*const f32; BLOCK_ROWS],
    write: [*mut f32; BLOCK_ROWS],
    src: [&'p [u8]; BLOCK_ROWS],
}

impl<'p> BlockRows<'p> {
    #[inline(always)]
    fn new(pixels: Pixels<'p>, rows: &[usize], d: usize, x: &mut AlignedF32) -> Self {
        let mut out = BlockRows {
            read: [std::ptr::null(); BLOCK_ROWS],
            write: [std::ptr::null_mut(); BLOCK_ROWS],
            src: [&[]; BLOCK_ROWS],
        };
        match pixels {
            Pixels::F32(px) => {
                for (o, &r) in out.read.iter_mut().zip(rows) {
                    *o = px[r * d..(r + 1) * d].as_ptr();
                }
            }
            Pixels::U8(px) => {
                // `x` holds `BLOCK_ROWS × d` values (sized by `Frame::new`).
                for (i, (slot, &r)) in x.chunks_exact_mut(d).zip(rows).enumerate() {
                    out.src[i] = &px[r * d..(r + 1) * d];
                    out.write[i] = slot.as_mut_ptr();
                    out.read[i] = out.write[i].cast_const();
                }
            }
        }
        out
    }
}

impl Pass<'_, '_> {
    /// The kernel body, instantiated once per instruction set.
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Stats {
        let Pass {
            model,
            batch,
            mut out,
            s,
        } = self;
        let f = Frame::new::<S>(model, batch, &mut out, s);
        let (rows, pixels) = (batch.rows(), batch.pixels());
        let mut stats = Stats::default();
        // The logits of one row group, one vector per class: on the stack for up to 16
        // classes (no allocation per call), on the heap beyond.
        let mut on_stack = [simd.zero(); 16];
        let mut on_heap = Vec::new();
        let logits = if f.k <= on_stack.len() {
            &mut on_stack[..f.k]
        } else {
            on_heap.resize(f.k, simd.zero());
            &mut on_heap[..]
        };
        if batch.next_rows().is_empty() {
            // The first block has nobody before it to prefetch it.
            prefetch_rows_l1(pixels, &rows[..rows.len().min(BLOCK_ROWS)], f.d);
        }
        for (bi, block) in rows.chunks(BLOCK_ROWS).enumerate() {
            let start = bi * BLOCK_ROWS;
            let after = &rows[start + block.len()..];
            let next_block = &after[..after.len().min(BLOCK_ROWS)];
            // At the tutorial's batch of 256: the next step's block at the same place.
            let ahead_rows = rows_ahead(batch, start + lookahead(rows.len()), BLOCK_ROWS);
            let mut ahead = LinePrefetch::new(pixels, ahead_rows, f.d);
            // The look-ahead's lines, spread evenly over the forward's row pairs and the
            // backward's feature pairs.
            let (wide, narrow) = f.tiles;
            let backward_calls = match f.grad {
                Some(_) => (f.d / (2 * S::LANES)) * (wide + narrow),
                None => 0,
            };
            ahead.spread_over(block.len().div_ceil(forward_rows::<S>()) + backward_calls);
            let l1_next = if ahead_rows.is_empty() {
                next_block
            } else {
                &[]
            };

            let xs = BlockRows::new(pixels, block, f.d, &mut s.x);
            let l1 = (pixels, l1_next);
            if forward_rows::<S>() == 4 {
                forward_block::<S, 4>(simd, &f, &xs, block.len(), s, &mut ahead, l1);
            } else {
                forward_block::<S, 2>(simd, &f, &xs, block.len(), s, &mut ahead, l1);
            }
            for q in 0..block.len().div_ceil(S::LANES) {
                let group = &block[q * S::LANES..block.len().min((q + 1) * S::LANES)];
                let o =
                    epilogue_group(simd, &f, model, batch, group, q, logits, s, &mut out, start);
                stats = stats.merge(o);
            }
            if f.grad.is_some() {
                backward_block(simd, &f, &xs.read[..block.len()], bi == 0, s, &mut ahead);
            }
        }
        if let Out::Backward { db, .. } = out {
            for (c, db) in db.iter_mut().enumerate() {
                // SAFETY: `db.len() == k` (checked by `Frame::new`), so `c < k <= kp`, and
                // `s.db` holds `kp × LANES` values.
                *db = simd.reduce_add(unsafe { simd.load(s.db.as_ptr().add(c * S::LANES)) });
            }
        }
        f.finish(s);
        stats
    }
}

/// Forward of one block of `n` rows, in tiles of `R` rows × [`CLASS_TILE`] classes (`R` =
/// [`forward_rows`]): the raw accumulators of every (row, class) into `s.acc`, the scalar
/// tails into `s.tail`, zeros for the rows past `n` up to the end of their group of `LANES`.
/// u8 rows are converted by their row tile's first class tile on the first span (the other
/// tiles read them from L1). With nothing ahead to fetch into L2, `l1_next` (the next block of
/// the batch) is fetched into L1 instead, a tile's rows at a time.
#[inline(always)]
fn forward_block<S: Simd, const R: usize>(
    simd: S,
    f: &Frame,
    xs: &BlockRows,
    n: usize,
    s: &mut Scratch,
    ahead: &mut LinePrefetch,
    (pixels, l1_next): (Pixels, &[usize]),
) {
    const { assert!(BLOCK_ROWS.is_multiple_of(R)) };
    let lanes = S::LANES;
    let acc = s.acc.as_mut_ptr();
    let span = class_span(f.kp, f.d);
    for (span_i, span0) in (0..f.kp).step_by(span).enumerate() {
        // The first span's pass over the row tiles also fetches and converts the rows.
        let first = (span_i == 0).then_some((&mut *ahead, pixels, l1_next));
        let classes = span0..f.kp.min(span0 + span);
        forward_span::<S, R>(simd, f, xs, n, (acc, s), classes, first);
    }
    // Rows past the block's end (up to the end of their group) sum to zero.
    for r in n.next_multiple_of(R)..n.div_ceil(lanes) * lanes {
        for c in 0..f.kp {
            // SAFETY: as in `forward_span`.
            unsafe { simd.store(acc.add(f.acc_at(lanes, r, c)), simd.zero()) };
            s.tail[c * BLOCK_ROWS + r] = 0.0;
        }
    }
}

/// Classes per span of the forward: the block's row tiles run over one span of classes at a
/// time, so that the span's weight rows (at most [`SPAN_BYTES`]) stay in L1 for all the
/// block's rows instead of streaming once per row tile. Every class at once when they fit
/// (MNIST: 10 × 784 values; the loop order is then the one before spans existed). A span
/// changes no result: each accumulator sums the same products in the same order.
///
/// Measured 2026-12-07 on a 2-core AMD EPYC Zen 4, avx512, `cargo bench --bench roofline --
/// --bench --shapes-only` (1000 steps of 256, 2 threads), medians of 3 interleaved rounds per
/// span size, ms (÷ the 2-thread FMA floor); without spans, one run before: d = 512, K = 100
/// 414 ms (1.74×), d = 256, K = 1000 2412 ms (2.03×):
///
/// | `SPAN_BYTES` | d = 512, K = 100 | d = 256, K = 1000 |
/// | --- | --- | --- |
/// | 8 KB | 373 (1.61×) | 2310 (1.99×) |
/// | 16 KB | 406 (1.72×) | 2084 (1.73×) |
/// | 32 KB | 374 (1.58×) | 2243 (1.93×) |
///
/// The VM's noise was ±15% run to run (MNIST's shape, which spans do not touch, ran 81–124
/// ms), so only the K = 1000 gain is clear.
fn class_span(kp: usize, d: usize) -> usize {
    if kp * d * 4 <= SPAN_BYTES || kp <= 2 * CLASS_TILE {
        return kp;
    }
    (SPAN_BYTES / (4 * d) / CLASS_TILE * CLASS_TILE).max(CLASS_TILE)
}

/// The weight bytes of one span of classes (L1 is 32–48 KB on the CPUs we measure).
const SPAN_BYTES: usize = 16 * 1024;

/// The forward's row tiles over the classes `span`, accumulators into `acc` (`s.acc`);
/// `first` gives the prefetcher, the pixels and the next block's rows on the block's first
/// span (rows are converted then), `None` on the others.
#[inline(always)]
fn forward_span<S: Simd, const R: usize>(
    simd: S,
    f: &Frame,
    xs: &BlockRows,
    n: usize,
    (acc, s): (*mut f32, &mut Scratch),
    span: std::ops::Range<usize>,
    mut first: Option<(&mut LinePrefetch, Pixels, &[usize])>,
) {
    let lanes = S::LANES;
    for r0 in (0..n).step_by(R) {
        // The tile's rows; past the block's end, the last row again (its sums land in rows
        // that the epilogue masks and the zeroing below does not reach).
        let rows: [usize; R] = std::array::from_fn(|i| (r0 + i).min(n - 1));
        // u8 rows are converted by the span's first class tile, on the block's first span.
        let mut convert = false;
        if let Some((ahead, pixels, l1_next)) = first.as_mut() {
            let upto = if r0 + R >= n { l1_next.len() } else { r0 + R };
            prefetch_rows_l1(*pixels, l1_next.get(r0..upto).unwrap_or(&[]), f.d);
            ahead.next();
            convert = !xs.src[r0].is_empty();
        }
        let x = rows.map(|r| xs.read[r]);
        for c0 in span.clone().step_by(CLASS_TILE) {
            let w: [*const f32; CLASS_TILE] = std::array::from_fn(|c| f.w[c0 + c]);
            // SAFETY: the rows hold `d` values (`BlockRows`: `xs.src[r]` `d` u8 values,
            // `xs.write[r]` the `d`-value slot of row `r` in `s.x`, derived from `&mut s.x`,
            // which nothing else borrows during the block), the weight rows are the model's
            // class rows (`class_weights`) or `s.zero` (`d` zeros).
            let (a, t) = unsafe {
                if convert && c0 == span.start {
                    let src = rows.map(|r| xs.src[r].as_ptr());
                    dot_rxc_u8(simd, src, rows.map(|r| xs.write[r]), w, f.d)
                } else {
                    dot_rxc(simd, x, w, f.d)
                }
            };
            for (i, (a, t)) in a.iter().zip(&t).enumerate() {
                let r = r0 + i;
                for (c, (&a, &t)) in a.iter().zip(t).enumerate() {
                    // SAFETY: `acc_at(r, c0 + c) + LANES <= BLOCK_ROWS·kp·LANES =
                    // s.acc.len()` for `r < BLOCK_ROWS` (`r0 + R <= BLOCK_ROWS`, a multiple
                    // of `R`), `c0 + c < kp`.
                    unsafe { simd.store(acc.add(f.acc_at(lanes, r, c0 + c)), a) };
                    s.tail[(c0 + c) * BLOCK_ROWS + r] = t;
                }
            }
        }
    }
}

/// The logits of the group of rows starting at `first` of the block, one vector per class:
/// the accumulators' lane sums plus the tails', scaled, plus the bias.
#[inline(always)]
fn block_logits<S: Simd>(
    simd: S,
    f: &Frame,
    model: &Model,
    first: usize,
    logits: &mut [S::V],
    s: &Scratch,
) {
    let lanes = S::LANES;
    for (c, l) in logits.iter_mut().enumerate() {
        let at = f.acc_at(lanes, first, c);
        let mut vs = [simd.zero(); 16];
        for (i, v) in vs.iter_mut().enumerate().take(lanes) {
            // SAFETY: `at + (i + 1)·LANES <= s.acc.len()` (`at` is a group start).
            *v = unsafe { simd.load(s.acc.as_ptr().add(at + i * lanes)) };
        }
        let sums = simd.transpose_sum(&vs[..lanes]);
        // SAFETY: `s.tail` holds `kp × BLOCK_ROWS` values and `first + LANES <= BLOCK_ROWS`.
        let tails = unsafe { simd.load(s.tail.as_ptr().add(c * BLOCK_ROWS + first)) };
        let b = simd.splat(model.b()[c]);
        *l = simd.mul_add(simd.add(sums, tails), simd.splat(f.scale), b);
    }
}

/// The solver's objective for the group's rows: adds their weighted exact cross-entropies
/// (log of the sum of exponentials + largest logit − true-class logit, from `values` =
/// [max, sum, true-class logit]) to `obj.loss` in f64, and weighs their logit gradients.
#[inline(always)]
fn weigh_rows<S: Simd>(
    simd: S,
    obj: &mut ObjectiveOut,
    group: &[usize],
    values: [S::V; 3],
    logits: &mut [S::V],
) {
    let (mut w, mut parts) = ([1.0f32; 16], [[0.0f32; 16]; 3]);
    if let Some(weights) = obj.weights {
        for (w, &row) in w.iter_mut().zip(group) {
            *w = weights[row];
        }
    }
    for (part, v) in parts.iter_mut().zip(values) {
        // SAFETY: each part holds 16 ≥ LANES values.
        unsafe { simd.store(part.as_mut_ptr(), v) };
    }
    let [max, sum, zy] = parts;
    for i in 0..group.len() {
        let ce = f64::from(sum[i]).ln() + (f64::from(max[i]) - f64::from(zy[i]));
        *obj.loss += f64::from(w[i]) * ce;
    }
    // SAFETY: `w` holds 16 ≥ LANES values.
    let wv = unsafe { simd.load(w.as_ptr()) };
    for g in logits.iter_mut() {
        *g = simd.mul(*g, wv);
    }
}

/// Each lane's entry of its true class: `per_class[label]` (`label_v` the lanes' labels).
#[inline(always)]
fn at_label<S: Simd>(simd: S, per_class: &[S::V], label_v: S::V) -> S::V {
    per_class
        .iter()
        .enumerate()
        .fold(simd.zero(), |at, (c, &v)| {
            simd.select(simd.eq(label_v, simd.splat(c as f32)), v, at)
        })
}

/// `out[i] = 1 − Σ_c p_c²` for the group's rows from their gradients `g = p − onehot(y)`
/// (`logits`, one vector per class): `Σ_c p_c² = Σ_c g_c² + 2·g_y + 1`.
#[inline(always)]
fn store_curvature<S: Simd>(simd: S, logits: &[S::V], label_v: S::V, out: &mut [f32]) {
    let squares = logits
        .iter()
        .fold(simd.zero(), |acc, &g| simd.mul_add(g, g, acc));
    let gy = at_label(simd, logits, label_v);
    let curvature = simd.sub(simd.zero(), simd.add(squares, simd.add(gy, gy)));
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` holds 16 ≥ LANES values.
    unsafe { simd.store(lanes.as_mut_ptr(), curvature) };
    for (o, &v) in out.iter_mut().zip(&lanes) {
        *o = v.max(0.0);
    }
}

/// Epilogue of row group `q` of a block (`group`: its at most `LANES` row indices): logits
/// (`k` vectors, one per class) from the accumulators, softmax, loss, argmax and `G`, `LANES` rows at a time. Writes the
/// predictions (forward) or `G · scale` into `s.g` and `db`'s partial sums (backward).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn epilogue_group<S: Simd>(
    simd: S,
    f: &Frame,
    model: &Model,
    batch: &Batch,
    group: &[usize],
    q: usize,
    logits: &mut [S::V],
    s: &mut Scratch,
    out: &mut Out,
    block_start: usize,
) -> Stats {
    let lanes = S::LANES;
    let first = q * lanes;
    let mut label_lanes = [0.0f32; 16];
    for (l, &row) in label_lanes.iter_mut().zip(group) {
        *l = batch.labels()[row] as f32;
    }
    // SAFETY: `label_lanes` holds 16 ≥ LANES values.
    let label_v = unsafe { simd.load(label_lanes.as_ptr()) };
    block_logits(simd, f, model, first, logits, s);
    let valid = (1u32 << group.len()) - 1;
    // The true class's logit of each row, for the solver's exact cross-entropy.
    let mut zy = simd.zero();
    if f.objective {
        zy = at_label(simd, logits, label_v);
    }
    let o = lanes::epilogue(simd, logits, label_v, valid, !f.objective, f.grad);
    match out {
        Out::Forward(Some(predictions)) => {
            let mut pred = [0.0f32; 16];
            // SAFETY: `pred` holds 16 ≥ LANES values.
            unsafe { simd.store(pred.as_mut_ptr(), o.predicted) };
            let dst = &mut predictions[block_start + first..][..group.len()];
            for (p, &v) in dst.iter_mut().zip(&pred) {
                *p = v as u32;
            }
        }
        Out::Forward(None) => {}
        Out::Backward { objective, .. } => {
            if let Some(obj) = objective {
                if let Some(curvature) = obj.curvature.as_deref_mut() {
                    let at = block_start + first;
                    store_curvature(simd, logits, label_v, &mut curvature[at..][..group.len()]);
                }
                weigh_rows(simd, obj, group, [o.max, o.sum, zy], logits);
            }
            for (c, &g) in logits.iter().enumerate() {
                // SAFETY: `s.db` holds `kp × LANES` values, `s.g` `kp × BLOCK_ROWS`, `c < k`
                // and `first + LANES <= BLOCK_ROWS`.
                unsafe {
                    let db = s.db.as_mut_ptr().add(c * lanes);
                    simd.store(db, simd.add(simd.load(db), g));
                    let gp = s.g.as_mut_ptr().add(c * BLOCK_ROWS + first);
                    simd.store(gp, simd.mul(g, simd.splat(f.scale)));
                }
            }
            for c in f.k..f.kp {
                s.g[c * BLOCK_ROWS + first..][..lanes].fill(0.0);
            }
        }
    }
    Stats {
        loss: o.loss,
        correct: o.correct,
        clipped: o.clipped,
        rows: group.len(),
    }
}

/// Backward of one block: `dW[c] (+)= Σ_r G[c][r] · X[r]` for every class tile, over the
/// block's rows `xs` (overwriting `dW` for a call's first block), with the look-ahead's
/// prefetches spread over the feature pairs.
#[inline(always)]
fn backward_block<S: Simd>(
    simd: S,
    f: &Frame,
    xs: &[*const f32],
    overwrite: bool,
    s: &Scratch,
    ahead: &mut LinePrefetch,
) {
    let (wide, narrow) = f.tiles;
    let g = s.g.as_ptr();
    for c0 in (0..wide).map(|t| t * WIDE_TILE) {
        let dw: [*mut f32; WIDE_TILE] = std::array::from_fn(|c| f.dw[c0 + c]);
        // SAFETY: `f.dw` are the distinct `d`-value rows of `dW` (length checked by
        // `Frame::new`), the `xs` rows hold `d` values, and `g` holds `kp × BLOCK_ROWS`
        // gradients with `c0 + C <= kp`, `xs.len() <= BLOCK_ROWS`.
        unsafe {
            let g = g.add(c0 * BLOCK_ROWS);
            accumulate_cx2(simd, dw, xs, g, f.d, overwrite, ahead)
        };
    }
    for c0 in (0..narrow).map(|t| wide * WIDE_TILE + t * CLASS_TILE) {
        let dw: [*mut f32; CLASS_TILE] = std::array::from_fn(|c| f.dw[c0 + c]);
        // SAFETY: as above.
        unsafe {
            let g = g.add(c0 * BLOCK_ROWS);
            accumulate_cx2(simd, dw, xs, g, f.d, overwrite, ahead)
        };
    }
}
