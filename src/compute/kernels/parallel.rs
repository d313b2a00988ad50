//! The fused kernel sharded over threads: the batch is cut into chunks of `CHUNK_ROWS` rows
//! (independent of the thread count), each chunk computes its own gradient buffer, and the
//! buffers are summed by a fixed binary tree over the chunk indices: `(c0 + c1) + (c2 + c3)`,
//! and so on. Every floating-point operation therefore happens in the same order whatever
//! the number of threads: results are bit-identical for 1, 2, … N.
//!
//! One step is one job of a `Team` (`share.rs`) (the caller plus helper threads that stay awake between
//! steps). Chunks are claimed dynamically, so a thread that runs slower (on these virtual
//! machines one vCPU is often 1.3–1.5× slower than the other) simply computes fewer of them.
//! A tree node is added by the thread that finishes the second of its two halves, right
//! after that half: it adds into the buffer of the left half, and half of the data it reads
//! is its own, still in its cache. Nobody waits for anybody until the job ends.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

use super::fused::prefetch::rows_ahead;
use super::fused::{forward_backward_rows, forward_rows, padded_classes, with_scratch};
use super::share::{Team, lock, read, threads_or_cores, write};
use super::simd::Isa;
use super::softmax::ClipGradient;
use super::{Batch, Kernel, Stats, check_backward, check_forward};
use crate::compute::model::{Grads, Model};
use crate::data::aligned::AlignedF32;

/// Rows per chunk. Measured on a 2-core AVX-512 Xeon, `parallel_u8`, batch 256, interleaved
/// medians of 7 (hot step µs / 1000-step loop ms): 32 rows 57.9 / 73.0, 64 rows 52.7 / 66.6,
/// 128 rows 48.2 / 60.5. Finer chunks balance two unequal vCPUs better but cost a 31 KB
/// buffer each to sum, half of them written by the other core; at 128 the second thread to
/// finish adds the other's buffer and nobody spins.
pub(crate) const CHUNK_ROWS: usize = 128;

/// One chunk's results.
#[derive(Default)]
struct ChunkOut {
    dw: AlignedF32,
    db: Vec<f32>,
    stats: Stats,
}

/// The multithreaded fused kernel: the caller plus `threads − 1` helper threads.
pub struct Parallel {
    isa: Isa,
    clip: ClipGradient,
    team: Team,
    /// The chunks' buffers and the summation tree's arrival counters, kept between calls
    /// (no allocation per step).
    chunks: Mutex<Chunks>,
}

/// What [`Parallel::forward_backward`] reuses from call to call.
#[derive(Default)]
struct Chunks {
    out: Vec<RwLock<ChunkOut>>,
    arrivals: Vec<AtomicU8>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("isa", &self.isa)
            .field("clip", &self.clip)
            .field("threads", &self.team.threads())
            .finish()
    }
}

impl Parallel {
    /// A kernel on instruction set `isa` running on `threads` threads, the caller included
    /// (0 = one per core), with the gradient rule `clip` for clipped rows. Helpers spin for
    /// about 0.2 ms after every call before they park, and the team runs jobs on the caller
    /// alone while sharing does not pay (see `share.rs`); a library caller that steps now and
    /// then pays that spinning between calls.
    ///
    /// # Panics
    /// When the operating system refuses to start the helper threads.
    pub fn with_clip(isa: Isa, threads: usize, clip: ClipGradient) -> Self {
        let team = Team::new(threads_or_cores(threads) - 1)
            .expect("cannot start the kernel's helper threads");
        Self {
            isa,
            clip,
            team,
            chunks: Mutex::new(Chunks::default()),
        }
    }
}

/// The rows the thread that computes chunk `i` will most likely compute next: chunk
/// `i + threads` of the stream "this batch, then the next one" (the prefetch hint of chunk
/// `i`; at the tutorial's batch of two chunks, the next step's chunk `i`).
fn likely_next<'a>(batch: &Batch<'a>, i: usize, threads: usize) -> &'a [usize] {
    rows_ahead(batch, (i + threads) * CHUNK_ROWS, CHUNK_ROWS)
}

/// `into += from`, element by element.
fn add_into(into: &mut ChunkOut, from: &ChunkOut) {
    for (o, v) in into.dw.iter_mut().zip(from.dw.iter()) {
        *o += v;
    }
    for (o, v) in into.db.iter_mut().zip(&from.db) {
        *o += v;
    }
}

/// After chunk `i` of `n` is done: climb the summation tree and add every node whose other
/// half is already done (`arrivals` counts, per node, the halves that finished). A node
/// `(level, start)` covers chunks `start .. start + 2^level` and is the sum of its left half
/// (kept in `chunks[start]`) and its right half; a node without a right half is its left half.
fn climb(chunks: &[RwLock<ChunkOut>], arrivals: &[AtomicU8], mut i: usize) {
    let n = chunks.len();
    let mut level = 1;
    while (1 << (level - 1)) < n {
        let start = i & !((1 << level) - 1);
        let right = start + (1 << (level - 1));
        if right < n {
            // AcqRel: the second arrival sees every write of the first half's thread.
            let node = &arrivals[(level - 1) * n + start];
            if node.fetch_add(1, Ordering::AcqRel) == 0 {
                return; // the other half is still running; its thread will add this node
            }
            let from = read(&chunks[right]);
            let mut into = write(&chunks[start]);
            add_into(&mut into, &from);
        }
        i = start;
        level += 1;
    }
}

impl Kernel for Parallel {
    fn threads(&self) -> usize {
        self.team.threads()
    }

    fn simd(&self) -> String {
        self.isa.to_string()
    }

    fn sharing(&self) -> super::Sharing {
        self.team.sharing()
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u32]>) -> Stats {
        check_forward(model, batch, predictions.as_deref());
        let n = batch.len();
        let n_chunks = n.div_ceil(CHUNK_ROWS);
        let preds: Vec<Mutex<Option<&mut [u32]>>> = match predictions {
            Some(p) => p[..n]
                .chunks_mut(CHUNK_ROWS)
                .map(|c| Mutex::new(Some(c)))
                .collect(),
            None => (0..n_chunks).map(|_| Mutex::new(None)).collect(),
        };
        let stats: Vec<Mutex<Stats>> = (0..n_chunks).map(|_| Mutex::default()).collect();
        self.team.run(n_chunks, &|i| {
            let part = batch.slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n));
            let mut p = lock(&preds[i]);
            *lock(&stats[i]) =
                with_scratch(|s| forward_rows(self.isa, model, &part, p.as_deref_mut(), s));
        });
        // Chunk order: a deterministic f32 loss.
        stats
            .iter()
            .map(|s| *lock(s))
            .fold(Stats::default(), Stats::merge)
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        check_backward(model, batch, grads);
        let (n, d, k) = (batch.len(), model.features(), model.classes());
        let kp = padded_classes(k);
        let n_chunks = n.div_ceil(CHUNK_ROWS);
        if n_chunks == 0 {
            grads.clear();
            return Stats::default();
        }
        let mut reused = lock(&self.chunks);
        let Chunks { out, arrivals } = &mut *reused;
        if out.len() < n_chunks {
            out.resize_with(n_chunks, RwLock::default);
        }
        let chunks = &out[..n_chunks];
        let levels = usize::BITS as usize - (n_chunks - 1).leading_zeros() as usize;
        let nodes = levels.max(1) * n_chunks;
        if arrivals.len() < nodes {
            arrivals.resize_with(nodes, AtomicU8::default);
        }
        let arrivals = &arrivals[..nodes];
        for a in arrivals {
            a.store(0, Ordering::Relaxed);
        }
        self.team.run(n_chunks, &|i| {
            {
                let mut out = write(&chunks[i]);
                let out = &mut *out;
                // Sized once; the kernel overwrites them (no clearing per step).
                if out.dw.len() != kp * d {
                    out.dw = AlignedF32::zeros(kp * d);
                }
                out.db.resize(k, 0.0);
                let part = batch
                    .slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n))
                    .with_next(likely_next(batch, i, self.team.threads()));
                out.stats = with_scratch(|s| {
                    forward_backward_rows(
                        self.isa,
                        self.clip,
                        model,
                        &part,
                        &mut out.dw,
                        &mut out.db,
                        s,
                    )
                });
            }
            climb(chunks, arrivals, i);
        });
        // The root of the tree is in chunk 0; its buffer is `kp × d` with the padding classes
        // last (class-major), so its first `k × d` values are `dW`. Without padding it simply
        // trades buffers with `grads` (no copy: chunk 0 overwrites the old one next call).
        let mut root = write(&chunks[0]);
        grads.db_mut().copy_from_slice(&root.db);
        if kp == k {
            grads.swap_dw(&mut root.dw);
        } else {
            grads.dw_mut().copy_from_slice(&root.dw[..k * d]);
        }
        drop(root);
        // The stats in chunk order: a deterministic f32 loss.
        chunks
            .iter()
            .map(|c| read(c).stats)
            .fold(Stats::default(), Stats::merge)
    }
}
