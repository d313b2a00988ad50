//! The fused kernel sharded over threads: the batch is cut into chunks of [`CHUNK_ROWS`] rows
//! (independent of the thread count), each chunk accumulates into its own gradient buffer, and
//! the buffers are summed in chunk order. Every floating-point operation therefore happens in
//! the same order whatever the number of threads: results are bit-identical for 1, 2, … N.
//!
//! One step is one job of a [`Team`] (the caller plus helper threads that stay awake between
//! steps): tasks `0..chunks` compute the chunks, then tasks `chunks..chunks + SLICES` each sum
//! one slice of the features of `dW` over the chunk buffers. Tasks are claimed in index order,
//! so when a thread claims a summing task every chunk has been claimed; it waits (spinning,
//! briefly) until they have all finished. The reduction is thus shared by the threads too,
//! with no second job and no second wake-up.

use std::sync::{Mutex, RwLock};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fused::{forward_backward_rows, forward_rows, padded_classes, with_scratch};
use super::share::Team;
use super::simd::Isa;
use super::{Batch, Kernel, Stats, assert_shapes};
use crate::model::{Grads, Model};

/// Rows per chunk (each chunk has its own 31 KB `dW` buffer, never cleared: the chunk's first
/// block overwrites it). Measured on a 2-core AVX-512 Xeon, batch 256, `parallel_u8`: 32-row
/// chunks (8 buffers) lose a quarter of the step to summing buffers written on the other
/// core; 128-row chunks (2 buffers) ran the 1000-step loop in 71 ms against 78 (64 rows) and
/// 84 (32 rows).
pub(crate) const CHUNK_ROWS: usize = 128;

/// Feature slices of the `dW` reduction (each a task).
const SLICES: usize = 4;

/// One chunk's results.
#[derive(Default)]
struct ChunkOut {
    dw: Vec<f32>,
    db: Vec<f32>,
    stats: Stats,
}

/// The multithreaded fused kernel: the caller plus `threads − 1` helper threads.
pub struct Parallel {
    isa: Isa,
    team: Team,
    chunks: Mutex<Vec<RwLock<ChunkOut>>>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("isa", &self.isa)
            .field("threads", &self.team.threads())
            .finish()
    }
}

impl Parallel {
    /// A kernel on instruction set `isa` running on `threads` threads, the caller included
    /// (0 = one per core).
    ///
    /// # Panics
    /// When the operating system refuses to start the helper threads.
    pub fn new(isa: Isa, threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let team = Team::new(threads - 1).expect("cannot start the kernel's helper threads");
        Self {
            isa,
            team,
            chunks: Mutex::new(Vec::new()),
        }
    }
}

/// Lock a mutex that no panicking thread can have poisoned in a way that matters here (the
/// data is overwritten before use).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts a chunk as computed when dropped, so a chunk that panics still counts and the
/// summing tasks do not wait forever (the panic then reaches the caller).
struct CountOnDrop<'a>(&'a AtomicUsize);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

impl Kernel for Parallel {
    fn threads(&self) -> usize {
        self.team.threads()
    }

    fn simd(&self) -> String {
        self.isa.to_string()
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u8]>) -> Stats {
        assert_shapes(model, batch);
        let n = batch.len();
        let n_chunks = n.div_ceil(CHUNK_ROWS);
        let preds: Vec<Mutex<Option<&mut [u8]>>> = match predictions {
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
        assert_shapes(model, batch);
        let (n, d, k) = (batch.len(), model.features, model.classes);
        assert_eq!(grads.dw.len(), k * d, "dW must be classes × features");
        let kp = padded_classes(k);
        let n_chunks = n.div_ceil(CHUNK_ROWS);
        let mut chunks = lock(&self.chunks);
        if chunks.len() < n_chunks {
            chunks.resize_with(n_chunks, RwLock::default);
        }
        let chunks = &chunks[..n_chunks];
        // The reduction's slices of dW, whole classes' worth of features apart: slice s of
        // every class row.
        let slice_len = d.div_ceil(SLICES);
        let mut dw_slices: Vec<Vec<&mut [f32]>> = (0..SLICES).map(|_| Vec::new()).collect();
        for row in grads.dw.chunks_exact_mut(d) {
            for (s, part) in row.chunks_mut(slice_len).enumerate() {
                dw_slices[s].push(part);
            }
        }
        let dw_slices: Vec<Mutex<Vec<&mut [f32]>>> = dw_slices.into_iter().map(Mutex::new).collect();
        let computed = AtomicUsize::new(0);
        let tasks = if n_chunks == 0 { 0 } else { n_chunks + SLICES };
        self.team.run(tasks, &|i| {
            if i < n_chunks {
                let _computed = CountOnDrop(&computed);
                let mut out = chunks[i].write().unwrap_or_else(|e| e.into_inner());
                let out = &mut *out;
                // Sized once; the kernel overwrites them (no clearing per step).
                out.dw.resize(kp * d, 0.0);
                out.db.resize(k, 0.0);
                let part = batch.slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n));
                out.stats = with_scratch(|s| {
                    forward_backward_rows(self.isa, model, &part, &mut out.dw, &mut out.db, s)
                });
                return;
            }
            // Every chunk task was claimed before this one (claims go in index order) and
            // runs on some thread: wait for them to finish.
            while computed.load(Ordering::Acquire) < n_chunks {
                std::hint::spin_loop();
            }
            let s = i - n_chunks;
            let mut parts = lock(&dw_slices[s]);
            let bufs: Vec<_> = chunks
                .iter()
                .map(|c| c.read().unwrap_or_else(|e| e.into_inner()))
                .collect();
            // Fixed order: element j of dW is Σ over chunks 0, 1, … in that order. Chunk
            // buffers are `kp × d` (classes padded to a tile, padding rows last), so class
            // row c is at `c·d` in both.
            for (c, part) in parts.iter_mut().enumerate() {
                let start = c * d + s * slice_len;
                part.copy_from_slice(&bufs[0].dw[start..start + part.len()]);
                for b in &bufs[1..] {
                    for (o, v) in part.iter_mut().zip(&b.dw[start..]) {
                        *o += v;
                    }
                }
            }
        });
        if n_chunks == 0 {
            grads.dw.fill(0.0);
        }
        grads.db.fill(0.0);
        let mut stats = Stats::default();
        for c in chunks {
            let c = c.read().unwrap_or_else(|e| e.into_inner());
            for (o, v) in grads.db.iter_mut().zip(&c.db) {
                *o += v;
            }
            stats = stats.merge(c.stats);
        }
        stats
    }
}
