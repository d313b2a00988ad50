//! The fused kernel sharded over rayon: the batch is cut into chunks of [`CHUNK_ROWS`] rows
//! (independent of the thread count), each chunk accumulates into its own gradient buffer, and
//! the buffers are summed in chunk order. Every floating-point operation therefore happens in
//! the same order whatever the number of threads: results are bit-identical for 1, 2, … N.

use std::sync::Mutex;

use rayon::prelude::*;

use super::fused::{forward_backward_rows, forward_rows, padded_classes, with_scratch};
use super::{Batch, Kernel, Stats, assert_shapes};
use crate::model::{Grads, Model};

/// Rows per chunk: 4 chunks for the tutorial's batch of 256, so 2 cores share the work
/// evenly; large enough that a chunk's 31 KB gradient buffer costs little to clear and reduce.
pub const CHUNK_ROWS: usize = 64;

/// Elements of `dW` reduced per rayon task.
const REDUCE_SPAN: usize = 2048;

/// One chunk's gradient accumulators.
#[derive(Default)]
struct ChunkGrads {
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// The multithreaded fused kernel.
pub struct Parallel {
    pool: rayon::ThreadPool,
    chunks: Mutex<Vec<ChunkGrads>>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl Parallel {
    /// A kernel running on its own pool of `threads` threads (0 = one per core).
    pub fn new(threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mnist-logreg-{i}"))
            .build()
            .expect("cannot start the rayon thread pool");
        Self {
            pool,
            chunks: Mutex::new(Vec::new()),
        }
    }

    /// Number of threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

/// Sum per-chunk stats in chunk order (deterministic `f32` loss).
fn merge(stats: impl IntoIterator<Item = Stats>) -> Stats {
    stats.into_iter().fold(Stats::default(), Stats::merge)
}

impl Kernel for Parallel {
    fn name(&self) -> &'static str {
        "parallel"
    }

    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u8]>) -> Stats {
        assert_shapes(model, batch);
        let n = batch.len();
        let starts: Vec<usize> = (0..n).step_by(CHUNK_ROWS).collect();
        let stats: Vec<Stats> = self.pool.install(|| match predictions {
            Some(p) => p[..n]
                .par_chunks_mut(CHUNK_ROWS)
                .zip(&starts)
                .map(|(p, &s)| {
                    let part = batch.slice(s..(s + CHUNK_ROWS).min(n));
                    with_scratch(|scr| forward_rows(model, &part, Some(p), scr))
                })
                .collect(),
            None => starts
                .par_iter()
                .map(|&s| {
                    let part = batch.slice(s..(s + CHUNK_ROWS).min(n));
                    with_scratch(|scr| forward_rows(model, &part, None, scr))
                })
                .collect(),
        });
        merge(stats)
    }

    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats {
        assert_shapes(model, batch);
        let (n, d, k) = (batch.len(), model.features, model.classes);
        let kp = padded_classes(k);
        let n_chunks = n.div_ceil(CHUNK_ROWS);
        let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        if chunks.len() < n_chunks {
            chunks.resize_with(n_chunks, ChunkGrads::default);
        }
        let chunks = &mut chunks[..n_chunks];
        // One `install` for both phases: waking the pool costs microseconds, a visible share
        // of a 256-row step.
        let stats: Vec<Stats> = self.pool.install(|| {
            let stats = chunks
                .par_iter_mut()
                .enumerate()
                .map(|(i, cg)| {
                    cg.dw.clear();
                    cg.dw.resize(kp * d, 0.0);
                    cg.db.clear();
                    cg.db.resize(k, 0.0);
                    let part = batch.slice(i * CHUNK_ROWS..((i + 1) * CHUNK_ROWS).min(n));
                    with_scratch(|s| forward_backward_rows(model, &part, &mut cg.dw, &mut cg.db, s))
                })
                .collect();
            // Fixed-order reduction: element j of dW is Σ over chunks 0, 1, … in that order.
            let chunks = &*chunks;
            grads
                .dw
                .par_chunks_mut(REDUCE_SPAN)
                .enumerate()
                .for_each(|(t, out)| {
                    let span = t * REDUCE_SPAN..t * REDUCE_SPAN + out.len();
                    out.fill(0.0);
                    for cg in chunks {
                        for (o, v) in out.iter_mut().zip(&cg.dw[span.clone()]) {
                            *o += v;
                        }
                    }
                });
            stats
        });
        grads.db.fill(0.0);
        for cg in chunks {
            for (o, v) in grads.db.iter_mut().zip(&cg.db) {
                *o += v;
            }
        }
        merge(stats)
    }
}
