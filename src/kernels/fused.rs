//! Fused SIMD kernel: for each block of rows, logits (register-blocked dot products) + bias +
//! softmax + loss + `G = p − onehot` (clip-masked) + `dW += Gᵀ·X`, `db += ΣG`, while the
//! block's rows are still in L1.
//!
//! ## Layout
//! `W` and `dW` are class-major (`classes × features`): a logit is a contiguous dot product
//! and a row of `dW` is a contiguous axpy target, so both passes stream unit-stride vectors.
//! Classes are processed in tiles of [`CLASS_TILE`] (5, so MNIST's 10 classes are two full
//! tiles); a class count that is not a multiple of 5 is padded inside the kernel with a zero
//! weight row whose logits are ignored and whose gradient goes to a scratch row.
//!
//! ## Register blocking
//! Forward: 2 rows × 5 classes = 10 vector accumulators; per feature vector 2 loads of `x`
//! and 5 of `W` feed 10 FMAs. Backward: 5 classes × 2 feature vectors = 10 accumulators held
//! across all rows of the block; per row 2 loads of `x` and 5 broadcasts of `G` feed 10 FMAs,
//! and `dW` is loaded and stored once per block. Both fit the 16 registers of AVX2.
//!
//! ## SIMD width
//! `wide` selects instructions at compile time. The crate's `.cargo/config.toml` builds with
//! `-C target-cpu=native`, so this file compiles to the widest vectors the build machine has
//! ([`SIMD_PATH`] says which); a baseline x86-64 build (`RUSTFLAGS="-C target-cpu=x86-64"`)
//! runs the same code on SSE2. Feature counts that are not a multiple of the vector width are
//! finished with a scalar tail.

use std::cell::RefCell;

use super::softmax::{forward_row, grad_row};
use super::{Batch, Kernel, Pixels, Stats, assert_shapes};
use crate::model::{Grads, Model};

#[cfg(target_feature = "avx512f")]
type V = wide::f32x16;
#[cfg(not(target_feature = "avx512f"))]
type V = wide::f32x8;

/// `f32` lanes per vector in this build.
pub const LANES: usize = size_of::<V>() / size_of::<f32>();

/// The instruction set this build's SIMD code runs on.
pub const SIMD_PATH: &str = if cfg!(target_feature = "avx512f") {
    "avx512f (16 lanes)"
} else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
    "avx2+fma (8 lanes)"
} else if cfg!(target_feature = "avx") {
    "avx (8 lanes, no fma)"
} else if cfg!(target_feature = "sse2") {
    "sse2 (2×4 lanes, no fma)"
} else {
    "portable"
};

/// Classes per register tile.
pub const CLASS_TILE: usize = 5;
/// Rows per block: the rows of a block stay in L1 between the forward and backward passes
/// (16 rows × 784 × 4 B = 50 KB, L1 + L2 on Zen 3).
pub const BLOCK_ROWS: usize = 16;

/// The single-threaded fused kernel (reads `f32` or u8 pixels).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fused;

#[inline(always)]
fn load(s: &[f32], i: usize) -> V {
    let a: [f32; LANES] = s[i..i + LANES].try_into().unwrap();
    V::from(a)
}

#[inline(always)]
fn store(s: &mut [f32], i: usize, v: V) {
    s[i..i + LANES].copy_from_slice(&v.to_array());
}

/// Unchecked load of `LANES` values at `p + i`.
///
/// # Safety
/// `p` must point into a slice with at least `i + LANES` elements.
#[inline(always)]
unsafe fn load_at(p: *const f32, i: usize) -> V {
    // SAFETY: the caller guarantees `p + i .. p + i + LANES` is in bounds; unaligned read.
    V::from(unsafe { p.add(i).cast::<[f32; LANES]>().read_unaligned() })
}

/// Unchecked store of `LANES` values at `p + i`.
///
/// # Safety
/// `p` must point into a mutable slice with at least `i + LANES` elements.
#[inline(always)]
unsafe fn store_at(p: *mut f32, i: usize, v: V) {
    // SAFETY: the caller guarantees `p + i .. p + i + LANES` is in bounds; unaligned write.
    unsafe {
        p.add(i)
            .cast::<[f32; LANES]>()
            .write_unaligned(v.to_array())
    }
}

/// Logits without bias of two rows against a tile of five class weight rows.
#[inline(always)]
fn dot_2x5(x: [&[f32]; 2], w: [&[f32]; CLASS_TILE], d: usize) -> [[f32; CLASS_TILE]; 2] {
    // Slicing to `d` checks every row holds `d` values, once, outside the loop.
    let (x0, x1) = (&x[0][..d], &x[1][..d]);
    let w = w.map(|w| &w[..d]);
    let wp = w.map(<[f32]>::as_ptr);
    let mut acc = [[V::ZERO; CLASS_TILE]; 2];
    let vec_end = d - d % LANES;
    let mut i = 0;
    while i < vec_end {
        // SAFETY: `i + LANES <= vec_end <= d` and every slice has length `d` (sliced above);
        // unchecked loads remove 7 bounds checks per 10 FMAs (callgrind: see module docs).
        unsafe {
            let (a, b) = (load_at(x0.as_ptr(), i), load_at(x1.as_ptr(), i));
            for c in 0..CLASS_TILE {
                let wc = load_at(wp[c], i);
                acc[0][c] = a.mul_add(wc, acc[0][c]);
                acc[1][c] = b.mul_add(wc, acc[1][c]);
            }
        }
        i += LANES;
    }
    let mut out = [[0.0; CLASS_TILE]; 2];
    for c in 0..CLASS_TILE {
        let (mut s0, mut s1) = (acc[0][c].reduce_add(), acc[1][c].reduce_add());
        for j in vec_end..d {
            s0 = x0[j].mul_add(w[c][j], s0);
            s1 = x1[j].mul_add(w[c][j], s1);
        }
        out[0][c] = s0;
        out[1][c] = s1;
    }
    out
}

/// `dw[c][j] += Σ_r g[r][c0 + c] · x_r[j]` for the five classes of tile `c0`, every `j`.
#[inline(always)]
fn accumulate_5(
    dw: [&mut [f32]; CLASS_TILE],
    xs: &[&[f32]],
    g: &[f32],
    kp: usize,
    c0: usize,
    d: usize,
) {
    let mut dw = dw.map(|r| &mut r[..d]);
    // This tile's gradients, packed per row, and the row pointers: both checked once here.
    let n = xs.len();
    let mut gt = [[0.0f32; CLASS_TILE]; BLOCK_ROWS];
    let mut xp = [std::ptr::null::<f32>(); BLOCK_ROWS];
    for (r, x) in xs.iter().enumerate() {
        gt[r].copy_from_slice(&g[r * kp + c0..r * kp + c0 + CLASS_TILE]);
        xp[r] = x[..d].as_ptr();
    }
    let (gt, xp) = (&gt[..n], &xp[..n]);
    let two = 2 * LANES;
    let pair_end = d - d % two;
    let mut j = 0;
    while j < pair_end {
        let dp = dw.each_mut().map(|r| r.as_mut_ptr());
        // SAFETY: `j + 2·LANES <= pair_end <= d`; every `dw` row and every row behind `xp`
        // has length `d` (sliced above), and the rows of `dw` are distinct slices.
        unsafe {
            let mut acc = [[V::ZERO; 2]; CLASS_TILE];
            for (c, a) in acc.iter_mut().enumerate() {
                *a = [load_at(dp[c], j), load_at(dp[c], j + LANES)];
            }
            for (&x, gr) in xp.iter().zip(gt) {
                let (x0, x1) = (load_at(x, j), load_at(x, j + LANES));
                for (a, &gc) in acc.iter_mut().zip(gr) {
                    let gc = V::splat(gc);
                    a[0] = gc.mul_add(x0, a[0]);
                    a[1] = gc.mul_add(x1, a[1]);
                }
            }
            for (c, a) in acc.iter().enumerate() {
                store_at(dp[c], j, a[0]);
                store_at(dp[c], j + LANES, a[1]);
            }
        }
        j += two;
    }
    // Tail: one vector if it fits, then scalars.
    if d - j >= LANES {
        let mut acc: [V; CLASS_TILE] = std::array::from_fn(|c| load(dw[c], j));
        for (x, gr) in xs.iter().zip(gt) {
            let x0 = load(x, j);
            for (a, &gc) in acc.iter_mut().zip(gr) {
                *a = V::splat(gc).mul_add(x0, *a);
            }
        }
        for (c, a) in acc.iter().enumerate() {
            store(dw[c], j, *a);
        }
        j += LANES;
    }
    for jj in j..d {
        for (c, row) in dw.iter_mut().enumerate() {
            let mut s = row[jj];
            for (x, gr) in xs.iter().zip(gt) {
                s = gr[c].mul_add(x[jj], s);
            }
            row[jj] = s;
        }
    }
}

/// Per-thread buffers of the fused kernel, reused across calls.
#[derive(Default)]
pub struct Scratch {
    /// u8 rows of the current block converted to `f32`.
    x: Vec<f32>,
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
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with_borrow_mut(f)
}

/// Classes padded up to a whole number of tiles.
pub fn padded_classes(classes: usize) -> usize {
    classes.div_ceil(CLASS_TILE) * CLASS_TILE
}

/// The `f32` rows of one block: slices of the `f32` buffer, or u8 rows converted into
/// `xbuf` (×1/255 in registers: within 1 ulp of the `p / 255` of the `f32` path).
fn block_rows<'a>(
    pixels: Pixels<'a>,
    rows: &[usize],
    d: usize,
    xbuf: &'a mut Vec<f32>,
) -> [&'a [f32]; BLOCK_ROWS] {
    let mut out: [&[f32]; BLOCK_ROWS] = [&[]; BLOCK_ROWS];
    match pixels {
        Pixels::F32(x) => {
            for (o, &r) in out.iter_mut().zip(rows) {
                *o = &x[r * d..(r + 1) * d];
            }
        }
        Pixels::U8(px) => {
            xbuf.resize(BLOCK_ROWS * d, 0.0);
            for (dst, &r) in xbuf.chunks_exact_mut(d).zip(rows) {
                u8_row_to_f32(&px[r * d..(r + 1) * d], dst);
            }
            for (o, dst) in out.iter_mut().zip(xbuf.chunks_exact(d)).take(rows.len()) {
                *o = dst;
            }
        }
    }
    out
}

/// Ask the CPU to start loading the rows of the next block: they sit at random places in a
/// buffer far larger than the caches, and the hardware prefetcher only learns a stream after
/// a few misses, too late for a 3 KB row.
#[inline]
fn prefetch_rows(pixels: Pixels, rows: &[usize], d: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let (base, bytes) = match pixels {
            Pixels::F32(x) => (x.as_ptr().cast::<i8>(), 4 * d),
            Pixels::U8(x) => (x.as_ptr().cast::<i8>(), d),
        };
        for &r in rows {
            for line in (0..bytes).step_by(64) {
                // SAFETY: `r` is a validated row index, so `r·bytes + line` is inside the
                // pixel buffer; a prefetch never faults and has no visible effect anyway.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(r * bytes + line)) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (pixels, rows, d);
}

/// `dst[j] = src[j] · (1/255)`, vectorised.
#[inline]
fn u8_row_to_f32(src: &[u8], dst: &mut [f32]) {
    const SCALE: f32 = 1.0 / 255.0;
    let (s, s_tail) = src.as_chunks::<LANES>();
    let (o, o_tail) = dst.as_chunks_mut::<LANES>();
    for (s, o) in s.iter().zip(o) {
        *o = (V::from(s.map(f32::from)) * V::splat(SCALE)).to_array();
    }
    for (s, o) in s_tail.iter().zip(o_tail) {
        *o = *s as f32 * SCALE;
    }
}

/// Logits (with bias) of the block's rows into `g` (`rows × kp`). While at it, prefetch the
/// rows `next` of the following block, two per row pair: spread out this way the prefetches
/// never flood the miss buffers.
fn block_logits(
    model: &Model,
    xs: &[&[f32]],
    g: &mut [f32],
    kp: usize,
    zero: &[f32],
    (pixels, next): (Pixels, &[usize]),
) {
    let d = model.features;
    let w_row = |c: usize| {
        if c < model.classes {
            model.class_weights(c)
        } else {
            zero
        }
    };
    for r0 in (0..xs.len()).step_by(2) {
        let r1 = (r0 + 1).min(xs.len() - 1);
        let last_pair = r0 + 2 >= xs.len();
        let to_prefetch = if last_pair {
            r0..next.len()
        } else {
            r0..r0 + 2
        };
        prefetch_rows(pixels, next.get(to_prefetch).unwrap_or(&[]), d);
        for c0 in (0..kp).step_by(CLASS_TILE) {
            let w: [&[f32]; CLASS_TILE] = std::array::from_fn(|c| w_row(c0 + c));
            let l = dot_2x5([xs[r0], xs[r1]], w, d);
            for (r, lr) in [(r0, l[0]), (r1, l[1])] {
                for c in 0..CLASS_TILE {
                    let b = model.b.get(c0 + c).copied().unwrap_or(0.0);
                    g[r * kp + c0 + c] = lr[c] + b;
                }
            }
        }
    }
}

/// Walk `batch` in blocks of [`BLOCK_ROWS`] rows: get this block's
/// `f32` rows, compute their logits (with bias) into `s.g` (`rows × kp`), then call
/// `f(block index, row indices, rows, logits)`.
#[inline(always)]
fn for_each_block(
    model: &Model,
    batch: &Batch,
    s: &mut Scratch,
    mut f: impl FnMut(usize, &[usize], &[&[f32]], &mut [f32]),
) {
    let d = model.features;
    let kp = padded_classes(model.classes);
    s.zero.resize(d, 0.0);
    s.g.resize(BLOCK_ROWS * kp, 0.0);
    let mut blocks = batch.rows.chunks(BLOCK_ROWS).enumerate().peekable();
    // The first block has nobody before it to prefetch it.
    prefetch_rows(
        batch.pixels,
        batch.rows.get(..BLOCK_ROWS).unwrap_or(batch.rows),
        d,
    );
    while let Some((bi, rows)) = blocks.next() {
        let next = blocks.peek().map_or(&[][..], |(_, next)| *next);
        let xs = block_rows(batch.pixels, rows, d, &mut s.x);
        let xs = &xs[..rows.len()];
        block_logits(model, xs, &mut s.g, kp, &s.zero, (batch.pixels, next));
        f(bi, rows, xs, &mut s.g);
    }
}

/// Forward over `batch`, writing predictions when asked. Works for any class count.
pub fn forward_rows(
    model: &Model,
    batch: &Batch,
    mut predictions: Option<&mut [u8]>,
    s: &mut Scratch,
) -> Stats {
    let k = model.classes;
    let kp = padded_classes(k);
    let mut stats = Stats::default();
    for_each_block(model, batch, s, |bi, rows, _, g| {
        for (i, &row) in rows.iter().enumerate() {
            let label = batch.labels[row] as usize;
            let out = forward_row(&mut g[i * kp..i * kp + k], label);
            stats.add_row(&out, label);
            if let Some(p) = predictions.as_deref_mut() {
                p[bi * BLOCK_ROWS + i] = out.predicted as u8;
            }
        }
    });
    stats
}

/// Forward + backward over `batch`, **adding** into `dw` (`padded_classes × features`,
/// class-major) and `db` (`classes`).
pub fn forward_backward_rows(
    model: &Model,
    batch: &Batch,
    dw: &mut [f32],
    db: &mut [f32],
    s: &mut Scratch,
) -> Stats {
    let (d, k) = (model.features, model.classes);
    let kp = padded_classes(k);
    assert_eq!(
        dw.len(),
        kp * d,
        "dW buffer must be padded_classes × features"
    );
    let mut stats = Stats::default();
    for_each_block(model, batch, s, |_, rows, xs, g| {
        for (i, &row) in rows.iter().enumerate() {
            let label = batch.labels[row] as usize;
            let gi = &mut g[i * kp..(i + 1) * kp];
            let out = grad_row(&mut gi[..k], label);
            gi[k..].fill(0.0);
            stats.add_row(&out, label);
            for (db, g) in db.iter_mut().zip(&gi[..k]) {
                *db += g;
            }
        }
        for (c0, tile) in (0..kp)
            .step_by(CLASS_TILE)
            .zip(dw.chunks_exact_mut(CLASS_TILE * d))
        {
            let mut it = tile.chunks_exact_mut(d);
            let rows_of_tile: [&mut [f32]; CLASS_TILE] =
                std::array::from_fn(|_| it.next().unwrap());
            accumulate_5(rows_of_tile, xs, g, kp, c0, d);
        }
    });
    stats
}

impl Kernel for Fused {
    fn name(&self) -> &'static str {
        "fused"
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u8]>) -> Stats {
        assert_shapes(model, batch);
        with_scratch(|s| forward_rows(model, batch, predictions, s))
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        assert_shapes(model, batch);
        grads.clear();
        let (d, k) = (model.features, model.classes);
        if padded_classes(k) == k {
            return with_scratch(|s| {
                forward_backward_rows(model, batch, &mut grads.dw, &mut grads.db, s)
            });
        }
        with_scratch(|s| {
            let mut pad = std::mem::take(&mut s.dw_pad);
            pad.clear();
            pad.resize(padded_classes(k) * d, 0.0);
            let stats = forward_backward_rows(model, batch, &mut pad, &mut grads.db, s);
            grads.dw.copy_from_slice(&pad[..k * d]);
            s.dw_pad = pad;
            stats
        })
    }
}
