//! The register tiles of the fused kernel, each a short function over raw row pointers:
//! the forward's R-row × C-class dot products ([`dot_rxc`]), the backward's C-class × 2-vector
//! `dW` accumulation ([`accumulate_cx2`]), and the forward tile that converts u8 rows to
//! `f32` on the way ([`dot_rxc_u8`]). Shapes: `d` features per row, `C` classes per tile,
//! `BLOCK_ROWS` rows per block; `W`, `dW` and `G` class-major.

use super::BLOCK_ROWS;
use super::prefetch::LinePrefetch;
use crate::compute::kernels::simd::Simd;

/// Classes per narrow register tile (10 = two tiles for MNIST).
pub(crate) const CLASS_TILE: usize = 5;
/// Classes per wide tile (instruction sets with 32 vector registers).
pub(crate) const WIDE_TILE: usize = 10;

/// Classes padded up to a whole number of narrow tiles.
pub(crate) fn padded_classes(classes: usize) -> usize {
    classes.div_ceil(CLASS_TILE) * CLASS_TILE
}

/// How `kp` padded classes are tiled on `S`: `(wide, narrow)` tiles. The `wide` tiles of
/// [`WIDE_TILE`] classes come first (only where `S` has the registers for them), then the
/// `narrow` ones of `CLASS_TILE`. The forward, the backward and the prefetch budget all
/// follow this one tiling.
pub(crate) fn class_tiles<S: Simd>(kp: usize) -> (usize, usize) {
    let wide = if S::WIDE_TILE { kp / WIDE_TILE } else { 0 };
    (wide, (kp - wide * WIDE_TILE) / CLASS_TILE)
}

/// Rows per forward tile on `S`: 4 rows × 5 classes (20 accumulators, 9 loads per 20 FMAs)
/// where `S` has 32 registers, else 2 × 5. Measured on a 2-core AMD EPYC (AVX-512,
/// 2026-12-02) with the dot-product loop alone over 256 rows in L2: 4 × 5 ran at 108
/// GFLOP/s against 99–103 for 2 × 10 and 91–95 for 2 × 5 (the FMA peak was ~110). Each
/// accumulator sums the same products in the same order whatever the tile, so the tile
/// changes no result.
pub(crate) const fn forward_rows<S: Simd>() -> usize {
    if S::WIDE_TILE { 4 } else { 2 }
}

/// The raw accumulators of `R` rows against a tile of `C` class weight rows: vector
/// `acc[r][c]` holds lane-wise partial sums of `x_r · w_c` (summed across lanes later, by
/// [`Simd::transpose_sum`]); `tail[r][c]` the scalar sum over the features past the last
/// whole vector.
///
/// # Safety
/// Every pointer must be readable for `d` values.
#[inline(always)]
#[allow(clippy::type_complexity)]
pub(crate) unsafe fn dot_rxc<S: Simd, const R: usize, const C: usize>(
    s: S,
    x: [*const f32; R],
    w: [*const f32; C],
    d: usize,
) -> ([[S::V; C]; R], [[f32; C]; R]) {
    // SAFETY: `dot_rows` reads row `r` at `j .. j + LANES <= d` and at `jj < d`, inside every
    // row (the caller's contract).
    unsafe { dot_rows(s, |r, j| s.load(x[r].add(j)), |r, jj| *x[r].add(jj), w, d) }
}

/// [`dot_rxc`] for u8 rows that converts them on the way: each row's `f32` values are also
/// written to its slot in `dst` (for the block's other class tiles and its backward). The
/// conversion runs between the FMAs instead of in a loop of its own before them.
///
/// # Safety
/// Every `src` row must be readable and every `dst` row writable for `d` values; a `dst` row
/// may repeat (the same row converted twice writes the same values).
#[inline(always)]
#[allow(clippy::type_complexity)]
pub(crate) unsafe fn dot_rxc_u8<S: Simd, const R: usize, const C: usize>(
    s: S,
    src: [*const u8; R],
    dst: [*mut f32; R],
    w: [*const f32; C],
    d: usize,
) -> ([[S::V; C]; R], [[f32; C]; R]) {
    // SAFETY: `dot_rows` reads and writes row `r` at `j .. j + LANES <= d` and at `jj < d`,
    // inside every row (the caller's contract).
    unsafe {
        dot_rows(
            s,
            |r, j| {
                let v = s.load_u8(src[r].add(j));
                s.store(dst[r].add(j), v);
                v
            },
            |r, jj| {
                let v = f32::from(*src[r].add(jj));
                *dst[r].add(jj) = v;
                v
            },
            w,
            d,
        )
    }
}

/// The body of [`dot_rxc`] and [`dot_rxc_u8`]: `vector(r, j)` gives row `r`'s values
/// `j .. j + LANES` (`j + LANES <= d`), `value(r, jj)` its value `jj` (`vec_end <= jj < d`),
/// each asked once.
///
/// # Safety
/// The weight rows must be readable for `d` values.
#[inline(always)]
#[allow(clippy::type_complexity)]
unsafe fn dot_rows<S: Simd, const R: usize, const C: usize>(
    s: S,
    vector: impl Fn(usize, usize) -> S::V,
    value: impl Fn(usize, usize) -> f32,
    w: [*const f32; C],
    d: usize,
) -> ([[S::V; C]; R], [[f32; C]; R]) {
    let mut acc = [[s.zero(); C]; R];
    let vec_end = d - d % S::LANES;
    let mut j = 0;
    while j < vec_end {
        let xs: [S::V; R] = std::array::from_fn(|r| vector(r, j));
        for c in 0..C {
            // SAFETY: `j + LANES <= vec_end <= d`, inside every weight row.
            let wc = unsafe { s.load(w[c].add(j)) };
            for r in 0..R {
                acc[r][c] = s.mul_add(xs[r], wc, acc[r][c]);
            }
        }
        j += S::LANES;
    }
    let mut tail = [[0.0; C]; R];
    for (r, tail) in tail.iter_mut().enumerate() {
        for jj in vec_end..d {
            let x = value(r, jj);
            for (c, t) in tail.iter_mut().enumerate() {
                // SAFETY: `jj < d`, inside every weight row.
                *t += x * unsafe { *w[c].add(jj) };
            }
        }
    }
    (acc, tail)
}

/// `dw[c][j] (+)= Σ_r g[c·BLOCK_ROWS + r] · x_r[j]` for a tile of `C` classes, every `j`; the
/// tile's rows of `dW` are overwritten instead of added to when `overwrite`. After each pair
/// of feature vectors it issues the next of `ahead`'s prefetches.
///
/// # Safety
/// Every `dw` row must be writable and every `xs` row readable for `d` values, the `dw` rows
/// distinct; `g` must be readable at `c·BLOCK_ROWS + r` for every `c < C`, `r < xs.len()`.
#[inline(always)]
pub(crate) unsafe fn accumulate_cx2<S: Simd, const C: usize>(
    s: S,
    dw: [*mut f32; C],
    xs: &[*const f32],
    g: *const f32,
    d: usize,
    overwrite: bool,
    ahead: &mut LinePrefetch,
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
            ahead.next();
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
