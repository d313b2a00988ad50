//! Prefetching the rows a kernel will read next: into L1 just before they are used, and into
//! L2 a block's worth of work ahead, a few cache lines at a time (see the module docs of
//! `fused` for why and what it measured). Every address here is computed with wrapping
//! arithmetic and only ever handed to a prefetch instruction, which never faults: any row
//! index, even a wild hint, is harmless.

use crate::compute::kernels::{Batch, Pixels};

/// How far ahead of the block being computed its rows are prefetched into L2 in a batch of up
/// to this many rows: the next batch's rows at the same position (at the tutorial's batch of
/// 256, the next step's). Longer batches look [`STREAM_AHEAD_ROWS`] ahead ([`lookahead`]).
pub(crate) const LOOKAHEAD_ROWS: usize = 256;

/// How far ahead inside a batch longer than [`LOOKAHEAD_ROWS`] (an evaluation, the solver's
/// chunks of 1024 rows): two blocks. Its rows run in order, so the look-ahead need only
/// cover the memory's latency; 256 rows ahead (800 KB of `f32` rows) were evicted from L2
/// before their turn. Measured 2026-12-07 on a 2-core AMD EPYC Zen 4 (avx512), the solver's
/// pass over MNIST (`SOLVER_BENCH_ONLY=pass cargo bench --bench solver`, medians of 21, three
/// interleaved runs each; u8 pixels, then `f32` `x/255` with `SOLVER_BENCH_F32=1`): 256 rows
/// ahead 12.1 / 14.6 ms, 128 rows 11.7 / 13.8 ms, 64 rows 11.5 / 13.3 ms.
pub(crate) const STREAM_AHEAD_ROWS: usize = 64;

/// The distance in rows of the L2 look-ahead for a batch of `len` rows: the next batch's rows
/// at the same position for a batch of up to [`LOOKAHEAD_ROWS`] (the tutorial's step), else
/// [`STREAM_AHEAD_ROWS`] further in the batch.
pub(crate) fn lookahead(len: usize) -> usize {
    if len > LOOKAHEAD_ROWS {
        STREAM_AHEAD_ROWS
    } else {
        len
    }
}

/// The `len` rows at position `at` of the stream "this batch's rows, then the next batch's"
/// ([`Batch::with_next`]); fewer (or none) where the stream ends. The fused kernel asks it for
/// the rows [`lookahead`] ahead of a block, `parallel` for the chunk a thread will
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

/// True where the CPU has prefetch instructions this module issues (x86-64 `prefetcht0/t1`,
/// aarch64 `prfm`); elsewhere every function here does nothing.
const HAS_PREFETCH: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Ask for the cache line at `p` in L1 (`L2: false`) or L2 (`L2: true`). A hint: it never
/// faults, whatever the address, and `p` is not dereferenced.
#[inline(always)]
fn hint<const L2: bool>(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0/t1` never fault and have no visible effect, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        if L2 {
            _mm_prefetch::<_MM_HINT_T1>(p)
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p)
        }
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` is a hint: it never raises a fault, whatever the address (Arm ARM,
    // "Prefetch memory"), touches no register but its address operand, and no memory.
    unsafe {
        if L2 {
            std::arch::asm!("prfm pldl2keep, [{p}]", p = in(reg) p, options(nostack, preserves_flags, readonly));
        } else {
            std::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, preserves_flags, readonly));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// Ask the CPU to start loading the cache lines of `values` into L1 (a hint: `values` is not
/// read, and nothing changes but timing).
#[inline(always)]
pub(crate) fn prefetch_l1<T>(values: &[T]) {
    if !HAS_PREFETCH {
        return;
    }
    let (start, bytes) = (values.as_ptr().cast::<i8>(), std::mem::size_of_val(values));
    for line in (0..bytes).step_by(64) {
        hint::<false>(start.wrapping_add(line));
    }
}

/// Ask the CPU to start loading `rows` of `pixels` (a row is `d` values) into L1. Only a
/// hint: the addresses are computed with wrapping arithmetic and never dereferenced, so any
/// row index is harmless.
#[inline(always)]
pub(crate) fn prefetch_rows_l1(pixels: Pixels, rows: &[usize], d: usize) {
    if !HAS_PREFETCH {
        return;
    }
    let (base, bytes) = row_bytes(pixels, d);
    for &r in rows {
        let row = base.wrapping_add(r.wrapping_mul(bytes));
        for line in (0..bytes).step_by(64) {
            hint::<false>(row.wrapping_add(line));
        }
    }
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
        if !HAS_PREFETCH {
            return;
        }
        for _ in 0..self.per_call {
            let Some(&r) = self.rows.get(self.row) else {
                return;
            };
            let p = self
                .base
                .wrapping_add(r.wrapping_mul(self.row_bytes))
                .wrapping_add(self.offset);
            hint::<true>(p);
            self.offset += 64;
            if self.offset >= self.row_bytes {
                self.offset = 0;
                self.row += 1;
            }
        }
    }
}
