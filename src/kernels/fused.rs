//! Fused SIMD kernel: for each block of rows, logits (register-blocked dot products) + bias +
//! softmax + loss + `G = p − onehot` (clip-masked) + `dW += Gᵀ·X`, `db += ΣG`, while the
//! block's rows are still in the core's caches (L1/L2).
//!
//! ## Layout
//! `W` and `dW` are class-major (`classes × features`): a logit is a contiguous dot product
//! and a row of `dW` is a contiguous axpy target, so both passes stream unit-stride vectors.
//! Classes are processed in tiles of 10 (where the instruction set has 32 registers) or
//! [`CLASS_TILE`] = 5; a class count that is not a multiple of 5 is padded inside the kernel
//! with a zero weight row whose logits are ignored and whose gradient is zero.
//!
//! ## Register blocking
//! Forward: 2 rows × C classes = 2C vector accumulators; per feature vector 2 loads of `x` and
//! C loads of `W` feed 2C FMAs. Backward: C classes × 2 feature vectors = 2C accumulators held
//! across all rows of the block; per row 2 loads of `x` and C broadcasts of `G` feed 2C FMAs,
//! and `dW` is loaded and stored once per block (only stored for a call's first block, which
//! starts from zero: no memset). C = 10 on AVX-512 (20 of 32 registers), 5 elsewhere (10 of
//! AVX2's 16).
//!
//! ## u8 pixels
//! A u8 block is converted once to `f32` *without* the 1/255 (exact integers 0..=255) into a
//! per-thread buffer, read by both passes; the scale is applied once per logit
//! (`logit = (Σ x·w)·(1/255) + b`) and once per gradient entry (`dW += (G/255)ᵀ·X`).
//! Converting inside the FMA loops would cost the FMAs a port per vector, twice per step.
//!
//! ## Prefetch
//! Rows sit at random places in a buffer far larger than L2. While block `i` computes, the
//! kernel asks for the rows of block `i + 1` (into L1) and, when the batch carries the hint
//! ([`Batch::with_next`]), for the next *step's* rows of block `i` (into L2): the sampler
//! knows them a step ahead, so a training step finds its rows cached instead of waiting on
//! memory. Two rows per row pair, spread over the forward so the miss buffers never flood.
//!
//! ## Instruction sets
//! The body is written once, generic over [`Simd`], and instantiated under
//! `#[target_feature]` wrappers in [`Pass`]'s [`WithIsa`] impl (see `simd.rs` for why).

use std::cell::RefCell;

use super::simd::{Isa, Scalar, Simd, WithIsa};
use super::softmax::{forward_row, grad_row};
use super::{Batch, Kernel, Pixels, Stats, assert_shapes};
use crate::aligned::AlignedF32;
use crate::model::{Grads, Model};

/// Classes per narrow register tile (10 = two tiles for MNIST).
pub(crate) const CLASS_TILE: usize = 5;
/// Classes per wide tile (instruction sets with 32 vector registers).
const WIDE_TILE: usize = 10;
/// Rows per block: the block's rows (12.5 KB as u8, 50 KB as `f32`) are read by the forward
/// and again by the backward, from L1/L2.
pub(crate) const BLOCK_ROWS: usize = 16;
/// The 1/255 of the tutorial's normalisation, applied to sums of raw u8 pixels.
const U8_SCALE: f32 = 1.0 / 255.0;

/// The single-threaded fused kernel (reads `f32` or u8 pixels).
#[derive(Clone, Copy, Debug)]
pub struct Fused {
    isa: Isa,
}

impl Fused {
    /// The fused kernel on instruction set `isa`.
    pub fn new(isa: Isa) -> Self {
        Self { isa }
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
    /// Logits, then gradients, of the current block: `BLOCK_ROWS × kp`.
    g: Vec<f32>,
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

/// Ask the CPU to start loading `rows` of `pixels` (a row is `d` values) into L1 (`l1`) or L2.
/// Only a hint: the addresses are computed with wrapping arithmetic and never dereferenced,
/// so any row index is harmless.
#[inline(always)]
fn prefetch_rows(pixels: Pixels, rows: &[usize], d: usize, l1: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        let (base, bytes) = match pixels {
            Pixels::F32(x) => (x.as_ptr().cast::<i8>(), 4 * d),
            Pixels::U8(x) => (x.as_ptr().cast::<i8>(), d),
        };
        for &r in rows {
            let row = base.wrapping_add(r.wrapping_mul(bytes));
            for line in (0..bytes).step_by(64) {
                let p = row.wrapping_add(line);
                // SAFETY: a prefetch is a hint that never faults and has no visible effect,
                // whatever the address; `p` is not dereferenced.
                unsafe {
                    if l1 {
                        _mm_prefetch::<_MM_HINT_T0>(p)
                    } else {
                        _mm_prefetch::<_MM_HINT_T1>(p)
                    }
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (pixels, rows, d, l1);
}

/// Logits without bias or scale of two rows against a tile of `C` class weight rows.
///
/// # Safety
/// Every pointer must be readable for `d` values.
#[inline(always)]
unsafe fn dot_2xc<S: Simd, const C: usize>(
    s: S,
    x: [*const f32; 2],
    w: [*const f32; C],
    d: usize,
) -> [[f32; C]; 2] {
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
    let mut out = [[0.0; C]; 2];
    for (r, out) in out.iter_mut().enumerate() {
        for c in 0..C {
            let mut sum = s.reduce_add(acc[r][c]);
            for jj in vec_end..d {
                // SAFETY: `jj < d`.
                sum += unsafe { *x[r].add(jj) * *w[c].add(jj) };
            }
            out[c] = sum;
        }
    }
    out
}

/// `dw[c][j] (+)= Σ_r g[r·kp + c] · x_r[j]` for a tile of `C` classes, every `j`; the tile's
/// rows of `dW` are overwritten instead of added to when `overwrite`.
///
/// # Safety
/// Every `dw` row must be writable and every `xs` row readable for `d` values, the `dw` rows
/// distinct; `g` must be readable at `r·kp + c` for every row `r < xs.len()` and `c < C`.
#[inline(always)]
unsafe fn accumulate_cx2<S: Simd, const C: usize>(
    s: S,
    dw: [*mut f32; C],
    xs: &[*const f32],
    (g, kp): (*const f32, usize),
    d: usize,
    overwrite: bool,
) {
    let two = 2 * S::LANES;
    let pair_end = d - d % two;
    let mut j = 0;
    // SAFETY (whole body): every offset below is `< d` for rows of `d` values and
    // `r·kp + c` with `r < xs.len()`, `c < C` for `g` (the caller's contract).
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
                let gr = g.add(r * kp);
                for (c, a) in acc.iter_mut().enumerate() {
                    let gc = s.splat(*gr.add(c));
                    a[0] = s.mul_add(gc, x0, a[0]);
                    a[1] = s.mul_add(gc, x1, a[1]);
                }
            }
            for (c, a) in acc.iter().enumerate() {
                s.store(dw[c].add(j), a[0]);
                s.store(dw[c].add(j + S::LANES), a[1]);
            }
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
                    *a = s.mul_add(s.splat(*g.add(r * kp + c)), x0, *a);
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
                    sum += *g.add(r * kp + c) * *x.add(jj);
                }
                *row.add(jj) = sum;
            }
        }
    }
}

/// The `f32` rows of one block, as pointers to `d` readable values each: rows of the `f32`
/// buffer, or u8 rows converted (unscaled) into `xbuf`. Every row is bounds-checked here,
/// once per block, so nothing downstream trusts a row index.
#[inline(always)]
fn block_rows<S: Simd>(
    s: S,
    pixels: Pixels,
    rows: &[usize],
    d: usize,
    xbuf: &mut AlignedF32,
) -> [*const f32; BLOCK_ROWS] {
    let mut out = [std::ptr::null(); BLOCK_ROWS];
    match pixels {
        Pixels::F32(x) => {
            for (o, &r) in out.iter_mut().zip(rows) {
                *o = x[r * d..(r + 1) * d].as_ptr();
            }
        }
        Pixels::U8(px) => {
            if xbuf.len() != BLOCK_ROWS * d {
                *xbuf = AlignedF32::zeros(BLOCK_ROWS * d);
            }
            let vec_end = d - d % S::LANES;
            for ((o, dst), &r) in out.iter_mut().zip(xbuf.chunks_exact_mut(d)).zip(rows) {
                let src = &px[r * d..(r + 1) * d];
                let mut j = 0;
                while j < vec_end {
                    // SAFETY: `j + LANES <= d`, and `src` and `dst` both hold `d` values.
                    unsafe {
                        s.store(dst.as_mut_ptr().add(j), s.load_u8(src.as_ptr().add(j)));
                    }
                    j += S::LANES;
                }
                for jj in vec_end..d {
                    dst[jj] = f32::from(src[jj]);
                }
                *o = dst.as_ptr();
            }
        }
    }
    out
}

/// What one pass over a batch writes besides its [`Stats`].
enum Out<'o> {
    /// Forward only, with optional predictions (one per row).
    Forward(Option<&'o mut [u8]>),
    /// Forward + backward: `dw` (`padded_classes × features`) and `db` are overwritten.
    Backward { dw: &'o mut [f32], db: &'o mut [f32] },
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
        let (d, k) = (model.features, model.classes);
        let kp = padded_classes(k);
        let pixels = batch.pixels();
        let scale = match pixels {
            Pixels::F32(_) => 1.0,
            Pixels::U8(_) => U8_SCALE,
        };
        s.zero.resize(d, 0.0);
        s.g.resize(BLOCK_ROWS * kp, 0.0);
        let w_rows: Vec<*const f32> = (0..kp)
            .map(|c| {
                if c < k {
                    model.class_weights(c).as_ptr()
                } else {
                    s.zero.as_ptr()
                }
            })
            .collect();
        let dw_rows: Vec<*mut f32> = match &mut out {
            Out::Backward { dw, db } => {
                assert_eq!(dw.len(), kp * d, "dW buffer must be padded_classes × features");
                db.fill(0.0);
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
        // The first block has nobody before it to prefetch it.
        prefetch_rows(pixels, &rows[..rows.len().min(BLOCK_ROWS)], d, true);
        for (bi, block) in rows.chunks(BLOCK_ROWS).enumerate() {
            let n = block.len();
            let range = bi * BLOCK_ROWS..(bi * BLOCK_ROWS + n);
            let next_block = rows.get(range.end..).unwrap_or(&[]);
            let next_block = &next_block[..next_block.len().min(BLOCK_ROWS)];
            let next_step = next_step.get(range.clone()).unwrap_or(&[]);
            let xs = block_rows(simd, pixels, block, d, &mut s.x);
            let xs = &xs[..n];

            // Logits (scaled, with bias) into g, prefetching as we go.
            for r0 in (0..n).step_by(2) {
                let r1 = (r0 + 1).min(n - 1);
                let last_pair = r0 + 2 >= n;
                let upto = |v: &[usize]| if last_pair { v.len() } else { r0 + 2 };
                prefetch_rows(pixels, next_block.get(r0..upto(next_block)).unwrap_or(&[]), d, true);
                prefetch_rows(pixels, next_step.get(r0..upto(next_step)).unwrap_or(&[]), d, false);
                let mut c0 = 0;
                let put = |c0: usize, l: &[f32], r: usize, g: &mut [f32]| {
                    for (c, &v) in l.iter().enumerate() {
                        g[r * kp + c0 + c] = v * scale + model.b.get(c0 + c).copied().unwrap_or(0.0);
                    }
                };
                if S::WIDE_TILE {
                    while c0 + WIDE_TILE <= kp {
                        let w: [*const f32; WIDE_TILE] = std::array::from_fn(|c| w_rows[c0 + c]);
                        // SAFETY: the `xs` rows hold `d` values (`block_rows`), the weight rows
                        // are the model's class rows (checked by `class_weights`) or `s.zero`
                        // (`d` zeros).
                        let l = unsafe { dot_2xc(simd, [xs[r0], xs[r1]], w, d) };
                        put(c0, &l[0], r0, &mut s.g);
                        put(c0, &l[1], r1, &mut s.g);
                        c0 += WIDE_TILE;
                    }
                }
                while c0 < kp {
                    let w: [*const f32; CLASS_TILE] = std::array::from_fn(|c| w_rows[c0 + c]);
                    // SAFETY: as above.
                    let l = unsafe { dot_2xc(simd, [xs[r0], xs[r1]], w, d) };
                    put(c0, &l[0], r0, &mut s.g);
                    put(c0, &l[1], r1, &mut s.g);
                    c0 += CLASS_TILE;
                }
            }

            // Epilogue per row, then the backward for the block.
            match &mut out {
                Out::Forward(predictions) => {
                    for (i, &row) in block.iter().enumerate() {
                        let label = labels[row] as usize;
                        let o = forward_row(&mut s.g[i * kp..i * kp + k], label);
                        stats.add_row(&o, label);
                        if let Some(p) = predictions.as_deref_mut() {
                            p[range.start + i] = o.predicted as u8;
                        }
                    }
                }
                Out::Backward { db, .. } => {
                    for (i, &row) in block.iter().enumerate() {
                        let label = labels[row] as usize;
                        let gi = &mut s.g[i * kp..(i + 1) * kp];
                        let o = grad_row(&mut gi[..k], label);
                        gi[k..].fill(0.0);
                        stats.add_row(&o, label);
                        for (db, g) in db.iter_mut().zip(&mut gi[..k]) {
                            *db += *g;
                            *g *= scale;
                        }
                    }
                    let g = (s.g.as_ptr(), kp);
                    let mut c0 = 0;
                    let overwrite = bi == 0;
                    if S::WIDE_TILE {
                        while c0 + WIDE_TILE <= kp {
                            let dw: [*mut f32; WIDE_TILE] = std::array::from_fn(|c| dw_rows[c0 + c]);
                            // SAFETY: `dw_rows` are the distinct `d`-value rows of `dw`
                            // (length checked above), the `xs` rows hold `d` values, and `g`
                            // holds `n × kp` gradients with `c0 + C <= kp`.
                            unsafe {
                                accumulate_cx2(simd, dw, xs, (g.0.add(c0), kp), d, overwrite)
                            };
                            c0 += WIDE_TILE;
                        }
                    }
                    while c0 < kp {
                        let dw: [*mut f32; CLASS_TILE] = std::array::from_fn(|c| dw_rows[c0 + c]);
                        // SAFETY: as above.
                        unsafe { accumulate_cx2(simd, dw, xs, (g.0.add(c0), kp), d, overwrite) };
                        c0 += CLASS_TILE;
                    }
                }
            }
        }
        stats
    }
}

impl WithIsa for Pass<'_, '_> {
    type Output = Stats;

    fn scalar(self, s: Scalar) -> Stats {
        self.run(s)
    }

    #[cfg(target_arch = "x86_64")]
    fn sse2(self, s: super::simd::Sse2) -> Stats {
        #[target_feature(enable = "sse2")]
        fn instance(p: Pass, s: super::simd::Sse2) -> Stats {
            p.run(s)
        }
        // SAFETY: the token `s` exists only on a CPU with SSE2.
        unsafe { instance(self, s) }
    }

    #[cfg(target_arch = "x86_64")]
    fn avx2(self, s: super::simd::Avx2) -> Stats {
        #[target_feature(enable = "avx2,fma")]
        fn instance(p: Pass, s: super::simd::Avx2) -> Stats {
            p.run(s)
        }
        // SAFETY: the token `s` exists only on a CPU with AVX2 and FMA.
        unsafe { instance(self, s) }
    }

    #[cfg(target_arch = "x86_64")]
    fn avx512(self, s: super::simd::Avx512) -> Stats {
        #[target_feature(enable = "avx512f")]
        fn instance(p: Pass, s: super::simd::Avx512) -> Stats {
            p.run(s)
        }
        // SAFETY: the token `s` exists only on a CPU with AVX-512F.
        unsafe { instance(self, s) }
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
    isa.dispatch(Pass {
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
    model: &Model,
    batch: &Batch,
    dw: &mut [f32],
    db: &mut [f32],
    s: &mut Scratch,
) -> Stats {
    isa.dispatch(Pass {
        model,
        batch,
        out: Out::Backward { dw, db },
        s,
    })
}

impl Kernel for Fused {
    fn simd(&self) -> String {
        self.isa.to_string()
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u8]>) -> Stats {
        assert_shapes(model, batch);
        with_scratch(|s| forward_rows(self.isa, model, batch, predictions, s))
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        assert_shapes(model, batch);
        let (d, k) = (model.features, model.classes);
        let isa = self.isa;
        if padded_classes(k) == k {
            return with_scratch(|s| {
                forward_backward_rows(isa, model, batch, &mut grads.dw, &mut grads.db, s)
            });
        }
        with_scratch(|s| {
            let mut pad = std::mem::take(&mut s.dw_pad);
            pad.resize(padded_classes(k) * d, 0.0);
            let stats = forward_backward_rows(isa, model, batch, &mut pad, &mut grads.db, s);
            grads.dw.copy_from_slice(&pad[..k * d]);
            s.dw_pad = pad;
            stats
        })
    }
}
