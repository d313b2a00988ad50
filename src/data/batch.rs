//! Seeded batch samplers: the tutorial's streaming shuffle buffer, a per-epoch permutation, and
//! sequential order, chosen by [`Shuffle`] (`TrainConfig::shuffle`). A sampler yields sample
//! indices; kernels read the rows in place (no copy).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How training batches are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shuffle {
    /// `dataset.repeat().shuffle(size)`: a buffer filled with the first `size` elements of the
    /// endlessly repeated training set; each output is drawn uniformly from the buffer and its
    /// slot refilled with the next input element (epoch boundaries blend).
    Buffer {
        /// Buffer size (the tutorial uses 5000).
        size: usize,
    },
    /// A fresh uniform permutation of the training set for every epoch; batches run across
    /// epoch boundaries so every batch is full.
    Epoch,
    /// Batch k holds samples `(batch·k + j) mod n` in file order.
    Sequential,
}

/// The three ways of drawing batches, without the buffer size (what `--shuffle` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ShuffleKind {
    /// The tutorial's `repeat().shuffle(N)` streaming buffer (N = --shuffle-buffer).
    Buffer,
    /// A fresh permutation of the training set every epoch.
    Epoch,
    /// File order: batch k holds samples (batch·k + j) mod n.
    Sequential,
}

crate::names::named!(ShuffleKind, "sampler", [
    Buffer => "buffer",
    Epoch => "epoch",
    Sequential => "sequential",
]);

impl ShuffleKind {
    /// The sampling rule of this kind; `buffer_size` is used by [`ShuffleKind::Buffer`] only.
    pub fn with_buffer(self, buffer_size: usize) -> Shuffle {
        match self {
            ShuffleKind::Buffer => Shuffle::Buffer { size: buffer_size },
            ShuffleKind::Epoch => Shuffle::Epoch,
            ShuffleKind::Sequential => Shuffle::Sequential,
        }
    }
}

impl Shuffle {
    /// Which of the three rules this is.
    pub fn kind(self) -> ShuffleKind {
        match self {
            Shuffle::Buffer { .. } => ShuffleKind::Buffer,
            Shuffle::Epoch => ShuffleKind::Epoch,
            Shuffle::Sequential => ShuffleKind::Sequential,
        }
    }
}

/// A seeded, reproducible stream of sample indices in `0..n`.
// What `train` draws its batches with; public for the benches and tests/sampler.rs (which
// checks the rules of docs/SEMANTICS.md through it), hidden: a user sets `TrainConfig::shuffle`.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Sampler {
    n: usize,
    rng: ChaCha8Rng,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    Buffer {
        buffer: Vec<usize>,
        next_input: usize,
    },
    Epoch {
        order: Vec<usize>,
        pos: usize,
    },
    Sequential {
        next: usize,
    },
}

impl Sampler {
    /// A sampler over `n > 0` samples. A buffer size of 0 is treated as 1 (no shuffling).
    pub fn new(shuffle: Shuffle, n: usize, seed: u64) -> Self {
        assert!(n > 0, "a sampler needs at least one sample");
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let state = match shuffle {
            Shuffle::Buffer { size } => {
                let size = size.max(1);
                State::Buffer {
                    buffer: (0..size).map(|i| i % n).collect(),
                    next_input: size % n,
                }
            }
            Shuffle::Epoch => State::Epoch {
                order: (0..n).collect(),
                pos: n,
            },
            Shuffle::Sequential => State::Sequential { next: 0 },
        };
        Self { n, rng, state }
    }

    /// The next sample index.
    pub fn next_index(&mut self) -> usize {
        let n = self.n;
        match &mut self.state {
            State::Buffer { buffer, next_input } => {
                let slot = self.rng.random_range(0..buffer.len());
                let out = buffer[slot];
                buffer[slot] = *next_input;
                *next_input = (*next_input + 1) % n;
                out
            }
            State::Epoch { order, pos } => {
                if *pos == n {
                    // Fisher–Yates, from the previous order: seeded and portable.
                    for i in (1..n).rev() {
                        let j = self.rng.random_range(0..=i);
                        order.swap(i, j);
                    }
                    *pos = 0;
                }
                *pos += 1;
                order[*pos - 1]
            }
            State::Sequential { next } => {
                let out = *next;
                *next = (*next + 1) % n;
                out
            }
        }
    }

    /// Fill `out` with the next `batch` indices (cleared first; its allocation is reused).
    pub fn next_batch(&mut self, batch: usize, out: &mut Vec<usize>) {
        out.clear();
        out.extend((0..batch).map(|_| self.next_index()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_wraps_in_file_order() {
        let mut s = Sampler::new(Shuffle::Sequential, 5, 0);
        let mut b = Vec::new();
        s.next_batch(3, &mut b);
        assert_eq!(b, [0, 1, 2]);
        s.next_batch(3, &mut b);
        assert_eq!(b, [3, 4, 0]);
    }

    #[test]
    fn seeded_samplers_are_reproducible_and_seed_dependent() {
        for shuffle in [Shuffle::Buffer { size: 50 }, Shuffle::Epoch] {
            let draw = |seed| {
                let mut s = Sampler::new(shuffle, 1000, seed);
                (0..500).map(|_| s.next_index()).collect::<Vec<_>>()
            };
            assert_eq!(draw(7), draw(7));
            assert_ne!(draw(7), draw(8));
        }
    }
}
