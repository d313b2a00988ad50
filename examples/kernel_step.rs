//! A profiling harness: one kernel's step on pseudo-random u8 "images", repeated, with the µs
//! per step printed (run it under `perf record` or `valgrind --tool=callgrind`). To check a
//! kernel against the reference on your own buffers, see `own_buffers.rs`.
//!
//! `cargo run --release --example kernel_step [KERNEL] [REPEATS]` (default `parallel_u8`,
//! 10 000 repeats; `MNIST_LOGREG_SIMD` and `THREADS` choose the path and thread count);
//! `SPREAD=N`
//! draws the batch's 256 rows from the first N of the 1000 samples (`SPREAD=1`: one row
//! again and again, always in L1), to tell memory stalls from compute; `FORWARD=1` times the
//! forward alone (what an evaluation runs).

use mnist_logreg::kernels::{Batch, KernelKind};
use mnist_logreg::model::{Grads, Model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (samples, d, k) = (1000, 784, 10);
    // Deterministic pseudo-random pixels and labels (a linear congruential generator).
    let mut state = 12345u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let pixels: Vec<u8> = (0..samples * d).map(|_| next() as u8).collect();
    let labels: Vec<u32> = (0..samples).map(|_| next() % k as u32).collect();
    let spread: usize = std::env::var("SPREAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(samples);
    let rows: Vec<usize> = (0..256).map(|i| (i * 37) % spread).collect();
    let mut model = Model::tutorial_init(d, k);
    for (i, w) in model.w_mut().iter_mut().enumerate() {
        *w = ((i % 17) as f32 - 8.0) * 1e-3;
    }

    let name = args.get(1).map_or("parallel_u8", String::as_str);
    {
        let kind: KernelKind = name.parse().expect("a kernel name");
        let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        // MNIST_LOGREG_SIMD picks the path, THREADS the thread count (default: one per core).
        let isa = mnist_logreg::kernels::Isa::from_env().expect("a SIMD path this CPU has");
        let threads = std::env::var("THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let kernel = kind.build_on(isa, threads);
        let f32s: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let px = kind.input().pick(&f32s, &pixels);
        let batch = Batch::new(px, d, &labels, &rows, k).expect("a valid batch");
        let mut grads = Grads::zeros_like(&model);
        let forward_only = std::env::var_os("FORWARD").is_some();
        let start = std::time::Instant::now();
        for _ in 0..repeats {
            if forward_only {
                std::hint::black_box(kernel.forward(&model, &batch, None));
            } else {
                std::hint::black_box(kernel.forward_backward(&model, &batch, &mut grads));
            }
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / repeats as f64;
        let what = if forward_only { "forward" } else { "step" };
        println!("{kind} on {}: {us:.1} µs per {what} of 256", kernel.simd());
    }
}
