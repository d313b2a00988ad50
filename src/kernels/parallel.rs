//! The fused kernel sharded over threads: the batch is cut into chunks of [`CHUNK_ROWS`] rows
//! (independent of the thread count), each chunk accumulates into its own gradient buffer, and
//! the buffers are summed in chunk order. Every floating-point operation therefore happens in
//! the same order whatever the number of threads: results are bit-identical for 1, 2, … N.
//! The chunks are shared between the calling thread and rayon helper threads by
//! [`super::share::run_shared`], so a helper that is slow to wake never stalls a step.

use std::sync::Mutex;

use super::fused::{forward_backward_rows, forward_rows, padded_classes, with_scratch};
use super::share::run_shared;
use super::{Batch, Kernel, Stats, assert_shapes};
use crate::model::{Grads, Model};

/// Rows per chunk: 8 chunks for the tutorial's batch of 256, so the caller can absorb a
/// helper thread that wakes late; large enough that a chunk's 31 KB gradient buffer costs
/// little to clear and reduce.
pub const CHUNK_ROWS: usize = 32;

/// One chunk's results.
#[derive(Default)]
struct ChunkOut {
    dw: Vec<f32>,
    db: Vec<f32>,
    stats: Stats,
}

/// The multithreaded fused kernel: the caller plus `threads − 1` helper threads.
pub struct Parallel {
    threads: usize,
    helpers: Option<rayon::ThreadPool>,
    chunks: Mutex<Vec<Mutex<ChunkOut>>>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Parallel {
    /// A kernel running on `threads` threads, the caller included (0 = one per core).
    pub fn new(threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let helpers = (threads > 1).then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads - 1)
                .thread_name(|i| format!("mnist-logreg-{i}"))
                .build()
                .expect("cannot start the helper threads")
        });
        Self {
            threads,
            helpers,
            chunks: Mutex::new(Vec::new()),
        }
    }

    /// Number of threads, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// Lock a mutex that no panicking thread can have poisoned in a way that matters here (the
/// data is overwritten before use).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kernel for Parallel {
    fn name(&self) -> &'static str {
        "parallel"
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
        run_shared(self.helpers.as_ref(), n_chunks, &|i| {
            let part = batch.slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n));
            let mut p = lock(&preds[i]);
            *lock(&stats[i]) = with_scratch(|s| forward_rows(model, &part, p.as_deref_mut(), s));
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
        let kp = padded_classes(k);
        let n_chunks = n.div_ceil(CHUNK_ROWS);
        let mut chunks = lock(&self.chunks);
        if chunks.len() < n_chunks {
            chunks.resize_with(n_chunks, Mutex::default);
        }
        let chunks = &chunks[..n_chunks];
        run_shared(self.helpers.as_ref(), n_chunks, &|i| {
            let mut out = lock(&chunks[i]);
            let out = &mut *out;
            out.dw.clear();
            out.dw.resize(kp * d, 0.0);
            out.db.clear();
            out.db.resize(k, 0.0);
            let part = batch.slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n));
            out.stats =
                with_scratch(|s| forward_backward_rows(model, &part, &mut out.dw, &mut out.db, s));
        });
        // Fixed-order reduction: element j of dW is Σ over chunks 0, 1, … in that order.
        grads.dw.fill(0.0);
        grads.db.fill(0.0);
        let mut stats = Stats::default();
        for c in chunks {
            let c = lock(c);
            for (o, v) in grads.dw.iter_mut().zip(&c.dw) {
                *o += v;
            }
            for (o, v) in grads.db.iter_mut().zip(&c.db) {
                *o += v;
            }
            stats = stats.merge(c.stats);
        }
        stats
    }
}
