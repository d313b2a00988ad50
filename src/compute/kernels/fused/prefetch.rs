//! Prefetching the rows a kernel will read next: into L1 just before they are used, and into
//! L2 a block's worth of work ahead, a few cache lines at a time (see the module docs of
//! `fused` for why and what it measured). Every address here is computed with wrapping
//! arithmetic and only ever handed to a prefetch instruction, which never faults: any row
//! index, even a wild hint, is harmless.

use crate::kernels::{Batch, Pixels};

/// How far ahead of the block being computed its rows are prefetched into L2: one batch of the
/// tutorial (so at batch 256 a step fetches the next step's rows), and at most 200 KB of u8
/// or 800 KB of `f32` rows in flight, well inside L2 whatever the batch size.
pub(crate) const LOOKAHEAD_ROWS: usize = 256;

/// The `len` rows at position `at` of the stream "this batch's rows, then the next batch's"
/// ([`Batch::with_next`]); fewer (or none) where the stream ends. The fused kernel asks it for
/// the rows [`LOOKAHEAD_ROWS`] ahead of a block, `parallel` for the chunk a thread will
/// likely compute next.
pub(crate) fn rows_ahead<'a>(batch: &Batch<'a>, at: usize, len: usize) -> &'a [usize] {
    let (rows, next) = (batch.rows(), batch.next_rows());
    let (list, at) = if at < rows.len() {
        (rows, at)
    } else {
        (next, at - rows.len())
    };
    list.get(at..at.saturating_add(len).min(list.len()))
        .unwrap_or(&[])
}

/// The first byte of the pixel buffer and the bytes of one row.
pub(crate) fn row_bytes(pixels: Pixels, d: usize) -> (*const i8, usize) {
    match pixels {
        Pixels::F32(x) => (x.as_ptr().cast::<i8>(), 4 * d),
        Pixels::U8(x) => (x.as_ptr().cast::<i8>(), d),
    }
}

/// Ask the CPU to start loading `rows` of `pixels` (a row is `d` values) into L1. Only a
/// hint: the addresses are computed with wrapping arithmetic and never dereferenced, so any
/// row index is harmless.
#[inline(always)]
pub(crate) fn prefetch_rows_l1(pixels: Pixels, rows: &[usize], d: usize) {
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
pub(crate) struct LinePrefetch<'a> {
    base: *const i8,
    row_bytes: usize,
    rows: &'a [usize],
    row: usize,
    offset: usize,
    /// Lines each [`LinePrefetch::next`] issues.
    per_call: usize,
}

impl<'a> LinePrefetch<'a> {
    pub(crate) fn new(pixels: Pixels, rows: &'a [usize], d: usize) -> Self {
        let (base, row_bytes) = row_bytes(pixels, d);
        Self {
            base,
            row_bytes,
            rows,
            row: 0,
            offset: 0,
            per_call: 0,
        }
    }

    /// Spread the remaining lines evenly over `calls` calls of [`LinePrefetch::next`].
    pub(crate) fn spread_over(&mut self, calls: usize) {
        self.per_call = self.remaining().div_ceil(calls.max(1));
    }

    /// Cache lines still to prefetch.
    fn remaining(&self) -> usize {
        let per_row = self.row_bytes.div_ceil(64);
        (self.rows.len() - self.row) * per_row - self.offset / 64
    }

    /// Issue the next prefetches (as many as [`LinePrefetch::spread_over`] set).
    #[inline(always)]
    pub(crate) fn next(&mut self) {
        let count = self.per_call;
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
