//! Fused SIMD kernel: for each block of rows, logits (register-blocked dot products) + bias +
//! softmax + loss + `G = p − onehot` (clip-masked) + `dW += Gᵀ·X`, `db += ΣG`, while the
//! block's rows are still in the core's caches.
//!
//! ## Layout
//! `W` and `dW` are class-major (`classes × features`): a logit is a contiguous dot product
//! and a row of `dW` is a contiguous axpy target, so both passes stream unit-stride vectors.
//! Classes are processed in tiles of 10 (where the instruction set has 32 registers) or
//! `CLASS_TILE` = 5; a class count that is not a multiple of 5 is padded inside the kernel
//! with a zero weight row whose logits are ignored and whose gradient is zero.
//!
//! ## Forward: register blocking, then a transposing reduction
//! 2 rows × C classes = 2C vector accumulators; per feature vector 2 loads of `x` and C loads
//! of `W` feed 2C FMAs (C = 10 on AVX-512: 20 of 32 registers; 5 elsewhere: 10 of AVX2's 16).
//! The accumulators are not summed one by one (8 shuffles and adds each, on the FMA ports):
//! they are stored, and once per group of `LANES` rows [`Simd::transpose_sum`] turns the
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
//! A u8 row is converted to `f32` *without* the 1/255 (exact integers 0..=255) into a
//! per-thread buffer just before its row pair's forward (so the forward reads it from L1),
//! and the backward reads it again from there; the scale is applied once per logit
//! (`logit = (Σ x·w)·(1/255) + b`) and once per gradient entry (`dW += (G/255)ᵀ·X`).
//! Converting inside the FMA loops would cost the FMAs a port per vector, twice per step.
//!
//! ## Prefetch
//! Rows sit at random places in a buffer far larger than L2. While a block computes, the
//! kernel asks for the rows `LOOKAHEAD_ROWS` (256) further in the stream "this batch, then
//! the next one" ([`Batch::with_next`]), into L2, a few cache lines at a time spread over the
//! forward's row pairs and the backward's feature pairs (issued all at once they fill the
//! line-fill buffers and the prefetch instructions stall the FMAs). At the tutorial's batch of
//! 256 that is the next step's rows, which the sampler knows a step ahead; at 8192 it stays
//! 256 rows ahead inside the batch, within L2 (an evaluation of the test set too). Where
//! nothing lies ahead (the last rows of a batch without a hint) the next block of the batch
//! is fetched into L1 instead.
//!
//! Measured on a 2-core AVX-512 Xeon (2026-11-26, 7 interleaved runs, medians): with the
//! L2 look-ahead the 1000-step loop took 64.1 ms against 67.5 without (`fused_u8`: 90.8
//! against 95.9), the test evaluation 1.28 against 1.42 ms; batch 8192 about equal.
//!
//! ## Instruction sets
//! The body is written once, generic over [`Simd`], and instantiated under
//! `#[target_feature]` wrappers in `Pass`'s `WithIsa` impl (see [`super::simd`] for why).

use std::cell::RefCell;

use super::simd::{Isa, Simd, WithSimd};
use super::softmax::{ClipGradient, lanes};
use super::{Batch, Kernel, Pixels, Stats, check_backward, check_forward};
use crate::aligned::AlignedF32;
use crate::model::{Grads, Model};

/// Classes per narrow register tile (10 = two tiles for MNIST).
pub(crate) const CLASS_TILE: usize = 5;
/// Classes per wide tile (instruction sets with 32 vector registers).
const WIDE_TILE: usize = 10;
/// Rows per block: the block's rows (12.5 KB as u8, 50 KB as `f32`) are read by the forward
/// and again by the backward, from L1/L2.
pub(crate) const BLOCK_ROWS: usize = 32;
/// How far ahead of the block being computed its rows are prefetched into L2: one batch of the
/// tutorial (so at batch 256 a step fetches the next step's rows), and at most 200 KB of u8
/// or 800 KB of `f32` rows in flight, well inside L2 whatever the batch size.
const LOOKAHEAD_ROWS: usize = 256;
/// The 1/255 of the tutorial's normalisation, applied to sums of raw u8 pixels.
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
    dw_pad: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Run `f` with this thread's scratch buffers.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with_borrow_mut(f)
}

/// Classes padded up to a whole number of narrow tiles.
pub(crate) fn padded_classes(classes: usize) -> usize {
    classes.div_ceil(CLASS_TILE) * CLASS_TILE
}

/// How `kp` padded classes are tiled on `S`: `(wide, narrow)` tiles. The `wide` tiles of
/// [`WIDE_TILE`] classes come first (only where `S` has the registers for them), then the
/// `narrow` ones of `CLASS_TILE`. The forward, the backward and the prefetch budget all
/// follow this one tiling.
fn class_tiles<S: Simd>(kp: usize) -> (usize, usize) {
    let wide = if S::WIDE_TILE { kp / WIDE_TILE } else { 0 };
    (wide, (kp - wide * WIDE_TILE) / CLASS_TILE)
}

/// The first byte of the pixel buffer and the bytes of one row.
fn row_bytes(pixels: Pixels, d: usize) -> (*const i8, usize) {
    match pixels {
        Pixels::F32(x) => (x.as_ptr().cast::<i8>(), 4 * d),
        Pixels::U8(x) => (x.as_ptr().cast::<i8>(), d),
    }
}

/// Ask the CPU to start loading `rows` of `pixels` (a row is `d` values) into L1. Only a
/// hint: the addresses are computed with wrapping arithmetic and never dereferenced, so any
/// row index is harmless.
#[inline(always)]
fn prefetch_rows_l1(pixels: Pixels, rows: &[usize], d: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let (base, bytes) = row_bytes(pixels, d);
        for &r in rows {
            let row = base.wrapping_add(r.wrapping_mul(bytes));
            for line in (0..bytes).step_by(64) {
                // SAFETY: a prefetch is a hint that never faults and has no visible effect,
                // whatever the address; the address is not dereferenced.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(line)) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (pixels, rows, d);
}

/// Prefetches of a list of rows into L2, a few cache lines at a time, so that they can be
/// spread evenly over a block's work: each call of [`LinePrefetch::next`] issues the next
/// `count` lines. Issued all at once, a block's worth of misses fills the core's line-fill
/// buffers and the prefetch instructions themselves stall the FMAs.
struct LinePrefetch<'a> {
    base: *const i8,
    row_bytes: usize,
    rows: &'a [usize],
    row: usize,
    offset: usize,
}

impl<'a> LinePrefetch<'a> {
    fn new(pixels: Pixels, rows: &'a [usize], d: usize) -> Self {
        let (base, row_bytes) = row_bytes(pixels, d);
        Self {
            base,
            row_bytes,
            rows,
            row: 0,
            offset: 0,
        }
    }

    /// Cache lines still to prefetch.
    fn remaining(&self) -> usize {
        let per_row = self.row_bytes.div_ceil(64);
        (self.rows.len() - self.row) * per_row - self.offset / 64
    }

    #[inline(always)]
    fn next(&mut self, count: usize) {
        #[cfg(target_arch = "x86_64")]
        for _ in 0..count {
            let Some(&r) = self.rows.get(self.row) else {
                return;
            };
            let p = self
                .base
                .wrapping_add(r.wrapping_mul(self.row_bytes))
                .wrapping_add(self.offset);
            // SAFETY: a prefetch is a hint that never faults and has no visible effect,
            // whatever the address; `p` is not dereferenced.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p) };
            self.offset += 64;
            if self.offset >= self.row_bytes {
                self.offset = 0;
                self.row += 1;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = count;
    }
}

/// The raw accumulators of two rows against a tile of `C` class weight rows: vector `acc[r][c]`
/// holds lane-wise partial sums of `x_r · w_c` (summed across lanes later, by
/// [`Simd::transpose_sum`]); `tail[r][c]` the scalar sum over the features past the last
/// whole vector.
///
/// # Safety
/// Every pointer must be readable for `d` values.
#[inline(always)]
#[allow(clippy::type_complexity)]
unsafe fn dot_2xc<S: Simd, const C: usize>(
    s: S,
    x: [*const f32; 2],
    w: [*const f32; C],
    d: usize,
) -> ([[S::V; C]; 2], [[f32; C]; 2]) {
    let mut acc = [[s.zero(); C]; 2];
    let vec_end = d - d % S::LANES;
    let mut j = 0;
    while j < vec_end {
        // SAFETY: `j + LANES <= vec_end <= d`, inside every row (the caller's contract).
        unsafe {
            let (a, b) = (s.load(x[0].add(j)), s.load(x[1].add(j)));
            for c in 0..C {
                let wc = s.load(w[c].add(j));
                acc[0][c] = s.mul_add(a, wc, acc[0][c]);
                acc[1][c] = s.mul_add(b, wc, acc[1][c]);
            }
        }
        j += S::LANES;
    }
    let mut tail = [[0.0; C]; 2];
    for (r, tail) in tail.iter_mut().enumerate() {
        for (c, t) in tail.iter_mut().enumerate() {
            for jj in vec_end..d {
                // SAFETY: `jj < d`.
                *t += unsafe { *x[r].add(jj) * *w[c].add(jj) };
            }
        }
    }
    (acc, tail)
}

/// `dw[c][j] (+)= Σ_r g[c·BLOCK_ROWS + r] · x_r[j]` for a tile of `C` classes, every `j`; the
/// tile's rows of `dW` are overwritten instead of added to when `overwrite`.
///
/// # Safety
/// Every `dw` row must be writable and every `xs` row readable for `d` values, the `dw` rows
/// distinct; `g` must be readable at `c·BLOCK_ROWS + r` for every `c < C`, `r < xs.len()`.
#[inline(always)]
unsafe fn accumulate_cx2<S: Simd, const C: usize>(
    s: S,
    dw: [*mut f32; C],
    xs: &[*const f32],
    g: *const f32,
    d: usize,
    overwrite: bool,
    mut each_pair: impl FnMut(),
) {
    let two = 2 * S::LANES;
    let pair_end = d - d % two;
    let mut j = 0;
    let gat = |c: usize, r: usize| c * BLOCK_ROWS + r;
    // SAFETY (whole body): every offset below is `< d` for rows of `d` values and
    // `c·BLOCK_ROWS + r` with `r < xs.len()`, `c < C` for `g` (the caller's contract).
    unsafe {
        while j < pair_end {
            let mut acc = [[s.zero(); 2]; C];
            if !overwrite {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = [s.load(dw[c].add(j)), s.load(dw[c].add(j + S::LANES))];
                }
            }
            for (r, &x) in xs.iter().enumerate() {
                let (x0, x1) = (s.load(x.add(j)), s.load(x.add(j + S::LANES)));
                for (c, a) in acc.iter_mut().enumerate() {
                    let gc = s.splat(*g.add(gat(c, r)));
                    a[0] = s.mul_add(gc, x0, a[0]);
                    a[1] = s.mul_add(gc, x1, a[1]);
                }
            }
            for (c, a) in acc.iter().enumerate() {
                s.store(dw[c].add(j), a[0]);
                s.store(dw[c].add(j + S::LANES), a[1]);
            }
            each_pair();
            j += two;
        }
        // Tail: one vector if it fits, then scalars.
        if d - j >= S::LANES {
            let mut acc = [s.zero(); C];
            if !overwrite {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = s.load(dw[c].add(j));
                }
            }
            for (r, &x) in xs.iter().enumerate() {
                let x0 = s.load(x.add(j));
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = s.mul_add(s.splat(*g.add(gat(c, r))), x0, *a);
                }
            }
            for (c, a) in acc.iter().enumerate() {
                s.store(dw[c].add(j), *a);
            }
            j += S::LANES;
        }
        for jj in j..d {
            for (c, &row) in dw.iter().enumerate() {
                let mut sum = if overwrite { 0.0 } else { *row.add(jj) };
                for (r, &x) in xs.iter().enumerate() {
                    sum += *g.add(gat(c, r)) * *x.add(jj);
                }
                *row.add(jj) = sum;
            }
        }
    }
}

/// The `f32` rows of one block, as pointers to `d` readable values each: rows of the `f32`
/// buffer, or slots of `xbuf` that [`convert_row`] fills from the u8 rows (also returned).
/// Every row is bounds-checked here, once per block, so nothing downstream trusts a row index.
#[inline(always)]
fn block_rows<'p>(
    pixels: Pixels<'p>,
    rows: &[usize],
    d: usize,
    xbuf: &mut AlignedF32,
) -> ([*const f32; BLOCK_ROWS], [&'p [u8]; BLOCK_ROWS]) {
    let mut out = [std::ptr::null(); BLOCK_ROWS];
    let mut src: [&[u8]; BLOCK_ROWS] = [&[]; BLOCK_ROWS];
    match pixels {
        Pixels::F32(x) => {
            for (o, &r) in out.iter_mut().zip(rows) {
                *o = x[r * d..(r + 1) * d].as_ptr();
            }
        }
        Pixels::U8(px) => {
            resize(xbuf, BLOCK_ROWS * d);
            for (((o, s), dst), &r) in out
                .iter_mut()
                .zip(&mut src)
                .zip(xbuf.chunks_exact(d))
                .zip(rows)
            {
                *s = &px[r * d..(r + 1) * d];
                *o = dst.as_ptr();
            }
        }
    }
    (out, src)
}

/// `dst[j] = src[j]` as `f32` (0.0 ..= 255.0), vectorised.
///
/// # Safety
/// `dst` must be writable for `src.len()` values.
#[inline(always)]
unsafe fn convert_row<S: Simd>(s: S, src: &[u8], dst: *mut f32) {
    let d = src.len();
    let vec_end = d - d % S::LANES;
    let mut j = 0;
    // SAFETY: `j + LANES <= d` for the vector loop and `jj < d` for the tail; `src` holds `d`
    // values and `dst` is writable for `d` (the caller's contract).
    unsafe {
        while j < vec_end {
            s.store(dst.add(j), s.load_u8(src.as_ptr().add(j)));
            j += S::LANES;
        }
        for (jj, &v) in src.iter().enumerate().skip(vec_end) {
            *dst.add(jj) = f32::from(v);
        }
    }
}

/// What one pass over a batch writes besides its [`Stats`].
enum Out<'o> {
    /// Forward only, with optional predictions (one per row).
    Forward(Option<&'o mut [u8]>),
    /// Forward + backward: `dw` (`padded_classes × features`) and `db` are overwritten.
    Backward {
        dw: &'o mut [f32],
        db: &'o mut [f32],
        clip: ClipGradient,
    },
}

/// One pass of the fused kernel over a batch: the generic body and its per-instruction-set
/// instances.
struct Pass<'a, 'o> {
    model: &'a Model,
    batch: &'a Batch<'a>,
    out: Out<'o>,
    s: &'o mut Scratch,
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
        let lanes = S::LANES;
        assert!(BLOCK_ROWS.is_multiple_of(lanes) && lanes <= 16);
        let (d, k) = (model.features(), model.classes());
        let kp = padded_classes(k);
        let pixels = batch.pixels();
        let scale = match pixels {
            Pixels::F32(_) => 1.0,
            Pixels::U8(_) => U8_SCALE,
        };
        s.zero.resize(d, 0.0);
        resize(&mut s.acc, BLOCK_ROWS * kp * lanes);
        resize(&mut s.g, kp * BLOCK_ROWS);
        resize(&mut s.db, kp * lanes);
        s.db.fill(0.0);
        s.tail.resize(kp * BLOCK_ROWS, 0.0);
        let w_rows: Vec<*const f32> = (0..kp)
            .map(|c| {
                if c < k {
                    model.class_weights(c).as_ptr()
                } else {
                    s.zero.as_ptr()
                }
            })
            .collect();
        let grad = match out {
            Out::Backward { clip, .. } => Some(clip),
            Out::Forward(_) => None,
        };
        let dw_rows: Vec<*mut f32> = match &mut out {
            Out::Backward { dw, .. } => {
                assert_eq!(
                    dw.len(),
                    kp * d,
                    "dW buffer must be padded_classes × features"
                );
                if batch.is_empty() {
                    dw.fill(0.0);
                }
                dw.chunks_exact_mut(d).map(<[f32]>::as_mut_ptr).collect()
            }
            Out::Forward(p) => {
                if let Some(p) = p {
                    assert!(p.len() >= batch.len(), "one prediction slot per row");
                }
                Vec::new()
            }
        };
        let (rows, next_step) = (batch.rows(), batch.next_rows());
        let labels = batch.labels();
        let mut stats = Stats::default();
        let mut logits = vec![simd.zero(); k];
        if next_step.is_empty() {
            // The first block has nobody before it to prefetch it.
            prefetch_rows_l1(pixels, &rows[..rows.len().min(BLOCK_ROWS)], d);
        }
        for (bi, block) in rows.chunks(BLOCK_ROWS).enumerate() {
            let n = block.len();
            let range = bi * BLOCK_ROWS..(bi * BLOCK_ROWS + n);
            let next_block = rows.get(range.end..).unwrap_or(&[]);
            let next_block = &next_block[..next_block.len().min(BLOCK_ROWS)];
            // The rows `lookahead` further in the stream "this batch, then the next": at the
            // tutorial's batch, the next step's block at the same place.
            let ahead_rows = {
                let at = range.start + rows.len().min(LOOKAHEAD_ROWS);
                let (list, at) = if at < rows.len() {
                    (rows, at)
                } else {
                    (next_step, at - rows.len())
                };
                let end = (at + BLOCK_ROWS).min(list.len());
                list.get(at..end).unwrap_or(&[])
            };
            let (xs, u8_rows) = block_rows(pixels, block, d, &mut s.x);
            let xs = &xs[..n];

            // Forward: raw accumulators of every (row, class) into s.acc, tails into s.tail.
            let acc_at = |r: usize, c: usize| ((r / lanes * kp + c) * lanes + r % lanes) * lanes;
            // The next step's rows of this block, spread over the forward's row pairs and the
            // backward's feature pairs.
            let mut ahead = LinePrefetch::new(pixels, ahead_rows, d);
            let (wide, narrow) = class_tiles::<S>(kp);
            let calls = n.div_ceil(2)
                + if grad.is_some() {
                    (d / (2 * lanes)) * (wide + narrow)
                } else {
                    0
                };
            let per_call = ahead.remaining().div_ceil(calls.max(1));
            for r0 in (0..n).step_by(2) {
                let r1 = (r0 + 1).min(n - 1);
                if ahead_rows.is_empty() {
                    // Nothing ahead to fetch into L2 (evaluation's last rows, or no hint): fetch
                    // the next block of this batch into L1.
                    let upto = if r0 + 2 >= n {
                        next_block.len()
                    } else {
                        r0 + 2
                    };
                    prefetch_rows_l1(pixels, next_block.get(r0..upto).unwrap_or(&[]), d);
                }
                ahead.next(per_call);
                // u8 rows are converted just before their forward, so it reads them from L1.
                for r in [r0, r1] {
                    if !u8_rows[r].is_empty() && (r == r0 || r1 != r0) {
                        // SAFETY: `xs[r]` is the `d`-value slot of row `r` in `s.x`, which
                        // nothing else borrows during the block.
                        unsafe { convert_row(simd, u8_rows[r], xs[r].cast_mut()) };
                    }
                }
                let mut tile = |c0: usize, accs: &[S::V], tails: &[f32], r: usize| {
                    for (c, (&a, &t)) in accs.iter().zip(tails).enumerate() {
                        // SAFETY: `acc_at(r, c0 + c) + LANES <= BLOCK_ROWS·kp·LANES = s.acc.len()`
                        // for `r < BLOCK_ROWS`, `c0 + c < kp`.
                        unsafe { simd.store(s.acc.as_mut_ptr().add(acc_at(r, c0 + c)), a) };
                        s.tail[(c0 + c) * BLOCK_ROWS + r] = t;
                    }
                };
                for c0 in (0..wide).map(|t| t * WIDE_TILE) {
                    let w: [*const f32; WIDE_TILE] = std::array::from_fn(|c| w_rows[c0 + c]);
                    // SAFETY: the `xs` rows hold `d` values (`block_rows`), the weight rows
                    // are the model's class rows (checked by `class_weights`) or `s.zero`
                    // (`d` zeros).
                    let (a, t) = unsafe { dot_2xc(simd, [xs[r0], xs[r1]], w, d) };
                    tile(c0, &a[0], &t[0], r0);
                    tile(c0, &a[1], &t[1], r0 + 1);
                }
                for c0 in (0..narrow).map(|t| wide * WIDE_TILE + t * CLASS_TILE) {
                    let w: [*const f32; CLASS_TILE] = std::array::from_fn(|c| w_rows[c0 + c]);
                    // SAFETY: as above.
                    let (a, t) = unsafe { dot_2xc(simd, [xs[r0], xs[r1]], w, d) };
                    tile(c0, &a[0], &t[0], r0);
                    tile(c0, &a[1], &t[1], r0 + 1);
                }
            }
            // Rows past the block's end (up to the end of their group) sum to zero.
            let groups = n.div_ceil(lanes);
            for r in n.next_multiple_of(2)..groups * lanes {
                for c in 0..kp {
                    // SAFETY: as in `tile` above.
                    unsafe { simd.store(s.acc.as_mut_ptr().add(acc_at(r, c)), simd.zero()) };
                    s.tail[c * BLOCK_ROWS + r] = 0.0;
                }
            }

            // Epilogue, LANES rows at a time.
            for q in 0..groups {
                let first = q * lanes;
                let valid_rows = (n - first).min(lanes);
                let valid = (1u32 << valid_rows) - 1;
                let mut label_lanes = [0.0f32; 16];
                for (l, &row) in label_lanes
                    .iter_mut()
                    .zip(&block[first..first + valid_rows])
                {
                    *l = f32::from(labels[row]);
                }
                // SAFETY: `label_lanes` holds 16 ≥ LANES values.
                let label_v = unsafe { simd.load(label_lanes.as_ptr()) };
                for (c, l) in logits.iter_mut().enumerate() {
                    let at = acc_at(first, c);
                    let mut vs = [simd.zero(); 16];
                    for (i, v) in vs.iter_mut().enumerate().take(lanes) {
                        // SAFETY: `at + (i + 1)·LANES <= s.acc.len()` (`at` is a group start).
                        *v = unsafe { simd.load(s.acc.as_ptr().add(at + i * lanes)) };
                    }
                    let sums = simd.transpose_sum(&vs[..lanes]);
                    // SAFETY: `s.tail` holds `kp × BLOCK_ROWS` values and `first + LANES <=
                    // BLOCK_ROWS`.
                    let tails = unsafe { simd.load(s.tail.as_ptr().add(c * BLOCK_ROWS + first)) };
                    *l = simd.mul_add(
                        simd.add(sums, tails),
                        simd.splat(scale),
                        simd.splat(model.b()[c]),
                    );
                }
                let o = lanes::epilogue(simd, &mut logits, label_v, valid, grad);
                stats = stats.merge(Stats {
                    loss: o.loss,
                    correct: o.correct,
                    clipped: o.clipped,
                    rows: valid_rows,
                });
                match &mut out {
                    Out::Forward(Some(predictions)) => {
                        let mut pred = [0.0f32; 16];
                        // SAFETY: `pred` holds 16 ≥ LANES values.
                        unsafe { simd.store(pred.as_mut_ptr(), o.predicted) };
                        let dst = &mut predictions[range.start + first..][..valid_rows];
                        for (p, &v) in dst.iter_mut().zip(&pred) {
                            *p = v as u8;
                        }
                    }
                    Out::Forward(None) => {}
                    Out::Backward { .. } => {
                        for (c, &g) in logits.iter().enumerate() {
                            // SAFETY: `s.db` holds `kp × LANES` values, `s.g` `kp ×
                            // BLOCK_ROWS`, and `first + LANES <= BLOCK_ROWS`.
                            unsafe {
                                let db = s.db.as_mut_ptr().add(c * lanes);
                                simd.store(db, simd.add(simd.load(db), g));
                                let gp = s.g.as_mut_ptr().add(c * BLOCK_ROWS + first);
                                simd.store(gp, simd.mul(g, simd.splat(scale)));
                            }
                        }
                        for c in k..kp {
                            s.g[c * BLOCK_ROWS + first..][..lanes].fill(0.0);
                        }
                    }
                }
            }

            // Backward for the block.
            if grad.is_some() {
                let g = s.g.as_ptr();
                let overwrite = bi == 0;
                for c0 in (0..wide).map(|t| t * WIDE_TILE) {
                    let dw: [*mut f32; WIDE_TILE] = std::array::from_fn(|c| dw_rows[c0 + c]);
                    // SAFETY: `dw_rows` are the distinct `d`-value rows of `dw` (length
                    // checked above), the `xs` rows hold `d` values, and `g` holds
                    // `kp × BLOCK_ROWS` gradients with `c0 + C <= kp`, `n <= BLOCK_ROWS`.
                    unsafe {
                        let g = g.add(c0 * BLOCK_ROWS);
                        accumulate_cx2(simd, dw, xs, g, d, overwrite, || ahead.next(per_call))
                    };
                }
                for c0 in (0..narrow).map(|t| wide * WIDE_TILE + t * CLASS_TILE) {
                    let dw: [*mut f32; CLASS_TILE] = std::array::from_fn(|c| dw_rows[c0 + c]);
                    // SAFETY: as above.
                    unsafe {
                        let g = g.add(c0 * BLOCK_ROWS);
                        accumulate_cx2(simd, dw, xs, g, d, overwrite, || ahead.next(per_call))
                    };
                }
            }
        }
        if let Out::Backward { db, .. } = out {
            for (c, db) in db.iter_mut().enumerate() {
                // SAFETY: `s.db` holds `kp × LANES` values and `c < k <= kp`.
                *db = simd.reduce_add(unsafe { simd.load(s.db.as_ptr().add(c * lanes)) });
            }
        }
        stats
    }
}

/// Give `buf` exactly `len` values (zeros when it grows).
fn resize(buf: &mut AlignedF32, len: usize) {
    if buf.len() != len {
        *buf = AlignedF32::zeros(len);
    }
}

impl WithSimd for Pass<'_, '_> {
    type Output = Stats;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Stats {
        self.run(simd)
    }
}

/// Forward over `batch` on `isa`, writing predictions when asked. Works for any class count.
pub(crate) fn forward_rows(
    isa: Isa,
    model: &Model,
    batch: &Batch,
    predictions: Option<&mut [u8]>,
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
    (isa, clip): (Isa, ClipGradient),
    model: &Model,
    batch: &Batch,
    dw: &mut [f32],
    db: &mut [f32],
    s: &mut Scratch,
) -> Stats {
    isa.run(Pass {
        model,
        batch,
        out: Out::Backward { dw, db, clip },
        s,
    })
}

impl Kernel for Fused {
    fn simd(&self) -> String {
        self.isa.to_string()
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u8]>) -> Stats {
        check_forward(model, batch, predictions.as_deref());
        with_scratch(|s| forward_rows(self.isa, model, batch, predictions, s))
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        check_backward(model, batch, grads);
        let (d, k) = (model.features(), model.classes());
        let isa = (self.isa, self.clip);
        if padded_classes(k) == k {
            return with_scratch(|s| {
                let (dw, db) = grads.parts_mut();
                forward_backward_rows(isa, model, batch, dw, db, s)
            });
        }
        with_scratch(|s| {
            let mut pad = std::mem::take(&mut s.dw_pad);
            pad.resize(padded_classes(k) * d, 0.0);
            let stats = forward_backward_rows(isa, model, batch, &mut pad, grads.db_mut(), s);
            grads.dw_mut().copy_from_slice(&pad[..k * d]);
            s.dw_pad = pad;
            stats
        })
    }
}
