//! One kernel step on your own buffers: pseudo-random u8 "images", labels and a model, one
//! forward + backward with the fused kernels, their gradients compared with the reference's.
//!
//! `cargo run --release --example kernel_step [KERNEL] [REPEATS]` also repeats the chosen
//! kernel's step and prints µs per step (for profilers such as `perf record`); `SPREAD=N`
//! draws the batch's 256 rows from the first N of the 1000 samples (`SPREAD=1`: one row
//! again and again, always in L1), to tell memory stalls from compute.

use mnist_logreg::kernels::{Batch, KernelKind, Pixels};
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
    let labels: Vec<u8> = (0..samples).map(|_| (next() % k as u32) as u8).collect();
    let spread: usize = std::env::var("SPREAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(samples);
    let rows: Vec<usize> = (0..256).map(|i| (i * 37) % spread).collect();
    let mut model = Model::tutorial_init(d, k);
    for (i, w) in model.w.iter_mut().enumerate() {
        *w = ((i % 17) as f32 - 8.0) * 1e-3;
    }

    let batch = Batch::new(Pixels::U8(&pixels), d, &labels, &rows, k).expect("a valid batch");
    let mut want = Grads::zeros_like(&model);
    let reference = KernelKind::Reference
        .build(1)
        .forward_backward(&model, &batch, &mut want);
    println!(
        "reference: loss {:.4}, correct {}",
        reference.loss, reference.correct
    );
    for kind in [KernelKind::FusedU8, KernelKind::ParallelU8] {
        let mut got = Grads::zeros_like(&model);
        let stats = kind.build(0).forward_backward(&model, &batch, &mut got);
        let max_diff = got
            .dw
            .iter()
            .zip(want.dw.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        println!(
            "{kind}: loss {:.4}, correct {}, max |ΔdW| {max_diff:.2e}",
            stats.loss, stats.correct
        );
    }

    if let Some(name) = args.get(1) {
        let kind = <KernelKind as clap::ValueEnum>::from_str(name, false).expect("a kernel name");
        let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        let kernel = kind.build(0);
        let f32s: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let px = kind.input().pick(&f32s, &pixels);
        let batch = Batch::new(px, d, &labels, &rows, k).expect("a valid batch");
        let mut grads = Grads::zeros_like(&model);
        let start = std::time::Instant::now();
        for _ in 0..repeats {
            std::hint::black_box(kernel.forward_backward(&model, &batch, &mut grads));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / repeats as f64;
        println!("{kind} on {}: {us:.1} µs per step of 256", kernel.simd());
    }
}
