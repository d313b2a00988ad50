//! The roofline table: this machine's FMA peak and memory bandwidth, measured with small
//! probes, against every kernel × instruction set on the tutorial's step.
//!
//! `cargo bench --bench roofline` prints, per kernel and path:
//! - `step µs`: one `forward_backward` of a batch of 256 whose rows are in cache (the same
//!   batch again and again), median of many calls;
//! - `GFLOP/s` and `% peak` of that step (2·2·256·784·10 flops: the forward and backward
//!   multiply-adds; the softmax is not counted), against the FMA peak of the same path and
//!   thread count;
//! - `loop ms`: 1000 training steps run by `train::train`, the loop `train` runs (shuffle
//!   buffer, next-step prefetch hint, finite checks, SGD update), median of several runs,
//!   with its ratio to the floor (the step's FLOP at the path's peak), and the same loop
//!   reading the memory-mapped file as the default `train` run does;
//! - `epoch ms`: one pass over the 60 000 training images in batches of 256 and of 8192
//!   (whole steps);
//! - `eval ms`: `train::evaluate` of the 10 000 test images, and its ratio to its floor.
//!
//! The training pixels are held as `train` holds them for long runs (huge-page copies,
//! `dataset::Resident`).
//!
//! Then the same loop at other shapes, on synthetic `f32` data (a seeded generator, 20 000
//! samples): d = 512 features with K = 100 classes, and d = 256 with K = 1000 (linear probes
//! on embeddings), for the default kernel on `f32` features (`parallel`, widest path, one
//! thread per core) and `gemm`, each against the floor at the all-threads FMA peak.
//!
//! Options after `--`: `--quick` (fewer repetitions), `--paths avx2,scalar` and
//! `--kernels fused_u8,parallel_u8` (subsets), `--shapes-only` (skip the MNIST table),
//! `--peaks-only` (the FMA peaks alone: the floors of `scripts/busy.sh`).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use mnist_logreg::batch::{Sampler, Shuffle};
use mnist_logreg::dataset::{ChecksumPolicy, Dataset, Resident};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{Batch, Input, Isa, Kernel, KernelKind, Pixels, Simd, WithSimd};
use mnist_logreg::model::{Grads, Model};
use mnist_logreg::train::{self, TrainConfig, TrainData};

const FLOP_PER_ROW: f64 = 2.0 * 2.0 * 784.0 * 10.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Independent accumulators of the probe: enough to cover 2 FMA units × 4 cycles of latency,
/// few enough to stay in registers on every path (24 spilled to the stack: half the peak).
const PROBE_ACC: usize = 10;

/// FMA throughput of one thread on `S`: independent accumulators, so latency never limits.
#[inline(always)]
fn fma_probe<S: Simd>(s: S, iters: usize) -> f32 {
    let mut acc = [s.zero(); PROBE_ACC];
    let (a, b) = (s.splat(0.999_9), s.splat(1e-7));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = s.mul_add(*x, a, b);
        }
    }
    let mut out = 0.0;
    for x in acc {
        out += s.reduce_add(x);
    }
    out
}

/// Flops of one `fma_probe` iteration on a path of `lanes` lanes.
fn probe_flops(lanes: usize) -> f64 {
    PROBE_ACC as f64 * 2.0 * lanes as f64
}

/// [`fma_probe`] for `iters` iterations, on whichever path [`Isa::run`] is given.
struct Probe {
    iters: usize,
}

impl WithSimd for Probe {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f32 {
        fma_probe(s, self.iters)
    }
}

fn probe(isa: Isa, iters: usize) -> f32 {
    isa.run(Probe { iters })
}

/// FMA peak in GFLOP/s of `isa` on `threads` threads (best of 10 runs of ~10–20 ms: the
/// other vCPU is often busy with somebody else's work, and the best run is the machine's).
fn fma_peak(isa: Isa, threads: usize) -> f64 {
    let iters = 2_000_000 / isa.lanes().max(1) * 4;
    let mut best: f64 = 0.0;
    for _ in 0..10 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| black_box(probe(isa, black_box(iters))));
            }
        });
        let secs = start.elapsed().as_secs_f64();
        best = best.max(threads as f64 * iters as f64 * probe_flops(isa.lanes()) / secs / 1e9);
    }
    best
}

/// Read bandwidth in GB/s: `threads` threads summing disjoint halves of a 256 MiB buffer.
fn bandwidth(threads: usize) -> f64 {
    let buf: Vec<u64> = (0..(256usize << 20) / 8).map(|i| i as u64).collect();
    let mut best: f64 = 0.0;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for part in buf.chunks(buf.len().div_ceil(threads)) {
                s.spawn(move || {
                    let mut lanes = [0u64; 8];
                    for c in part.chunks_exact(8) {
                        for (l, v) in lanes.iter_mut().zip(c) {
                            *l = l.wrapping_add(*v);
                        }
                    }
                    black_box(lanes)
                });
            }
        });
        best = best.max((buf.len() * 8) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// The training split as `train` holds it for long runs (huge-page copies,
/// `dataset::Resident`) and as the memory-mapped files (u8 only), and the test split.
struct Data {
    labels: Vec<u32>,
    u8s: Resident<u8>,
    f32s: Resident<f32>,
    dataset: Dataset,
    test_f32: Vec<f32>,
    model: Model,
}

impl Data {
    fn pixels(&self, kind: KernelKind) -> Pixels<'_> {
        kind.input().pick(&self.f32s, &self.u8s)
    }

    /// The pixels as the default `train` run reads them: the mapped u8 file (f32 kernels
    /// read a converted copy either way).
    fn mapped(&self, kind: KernelKind) -> Pixels<'_> {
        kind.input().pick(&self.f32s, self.dataset.train.pixels())
    }

    fn test(&self, kind: KernelKind) -> Pixels<'_> {
        kind.input()
            .pick(&self.test_f32, self.dataset.test.pixels())
    }
}

fn load() -> Data {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let data = Dataset::open(&dir, &LoadOptions::default(), ChecksumPolicy::Skip)
        .expect("load data/mnist");
    let f32s = data
        .train
        .resident_f32()
        .expect("memory for the f32 pixels");
    let labels = data.train.labels().to_vec();
    // A model part-way through training (the all-ones start has all logits equal).
    let kernel = KernelKind::Reference.build(1);
    let mut model = Model::tutorial_init(784, 10);
    let mut grads = Grads::zeros_like(&model);
    let mut sampler = Sampler::new(Shuffle::Sequential, labels.len(), 0);
    let mut rows = Vec::new();
    for _ in 0..20 {
        sampler.next_batch(256, &mut rows);
        let b = Batch::new(Pixels::F32(&f32s), 784, &labels, &rows, 10).unwrap();
        kernel.forward_backward(&model, &b, &mut grads);
        model.sgd_step(&grads, 0.01);
    }
    Data {
        labels,
        u8s: data.train.resident_u8().expect("memory for the u8 pixels"),
        f32s,
        test_f32: data.test.to_f32().to_vec(),
        dataset: data,
        model,
    }
}

/// Median µs of one step on the same (cached) batch of 256.
fn hot_step(kernel: &dyn Kernel, data: &Data, kind: KernelKind, reps: usize) -> f64 {
    let mut sampler = Sampler::new(Shuffle::Buffer { size: 5000 }, data.labels.len(), 1);
    let mut rows = Vec::new();
    sampler.next_batch(256, &mut rows);
    let batch = Batch::new(data.pixels(kind), 784, &data.labels, &rows, 10).unwrap();
    let mut grads = Grads::zeros_like(&data.model);
    for _ in 0..reps / 10 + 1 {
        black_box(kernel.forward_backward(&data.model, &batch, &mut grads));
    }
    let times = (0..reps)
        .map(|_| {
            let t = Instant::now();
            black_box(kernel.forward_backward(&data.model, &batch, &mut grads));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(times)
}

/// Wall time of `steps` training steps, run by the library's own loop (`train::train`, what
/// `train` runs: sampler one batch ahead, prefetch hint, finite checks, SGD), with a learning
/// rate small enough that the model stays where `load` put it.
fn train_loop(
    kernel: &dyn Kernel,
    data: &Data,
    pixels: Pixels,
    shuffle: Shuffle,
    steps: usize,
    batch: usize,
) -> Duration {
    let cfg = TrainConfig {
        steps,
        batch_size: batch,
        learning_rate: 1e-6,
        display_step: steps.max(1),
        seed: 3,
        shuffle,
        allow_non_finite: false,
    };
    let train_data = TrainData {
        pixels,
        labels: &data.labels,
        features: 784,
    };
    train::train(&cfg, kernel, train_data, data.model.clone(), |_| {})
        .expect("the benchmark's training run")
        .elapsed
}

/// The names after `flag` (comma-separated), or every name when the flag is absent.
struct Subset(Option<Vec<String>>);

impl Subset {
    fn from_args(args: &[String], flag: &str) -> Self {
        Subset(
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map(|s| s.split(',').map(str::to_string).collect()),
        )
    }

    fn has(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets too, in the debug profile: nothing to
        // measure there.
        println!("roofline: run with `cargo bench --bench roofline`");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let paths = Subset::from_args(&args, "--paths");
    let kernels = Subset::from_args(&args, "--kernels");
    let (reps, runs) = if quick { (200, 3) } else { (1000, 7) };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Peaks first, once per path and thread count, before anything else warms the machine.
    let peaks: Vec<(Isa, f64, f64)> = Isa::supported()
        .into_iter()
        .map(|isa| (isa, fma_peak(isa, 1), fma_peak(isa, cores)))
        .collect();
    for (isa, one, all) in &peaks {
        println!(
            "FMA peak {}: {one:.0} GFLOP/s (1 thread), {all:.0} ({cores} threads)",
            isa.name()
        );
    }
    if args.iter().any(|a| a == "--peaks-only") {
        return;
    }
    let peak_of = |isa: Isa, threads: usize| {
        let (_, one, all) = peaks.iter().find(|p| p.0 == isa).expect("a supported path");
        if threads == 1 { *one } else { *all }
    };
    println!(
        "CPU: {cpu}, {cores} cores; paths: {}",
        Isa::supported()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bw1 = bandwidth(1);
    let bw = bandwidth(cores);
    println!("memory read bandwidth: {bw1:.1} GB/s (1 thread), {bw:.1} GB/s ({cores} threads)");
    other_shapes(peak_of(Isa::best(), cores), runs);
    if args.iter().any(|a| a == "--shapes-only") {
        return;
    }
    let data = load();
    let images = data.labels.len();

    println!();
    println!(
        "floor = the FLOP of the job (forward + backward multiply-adds, 2·2·784·10 per row; \
         forward only for the evaluation) at the FMA peak of the same path and thread count"
    );
    println!();
    println!(
        "| kernel | path | threads | FMA peak GFLOP/s | step_256 µs | % peak | 1000-step loop ms (÷ floor) | same, mapped u8 ms | epoch b256 ms (÷ floor) | epoch b8192 ms | eval 10k ms (÷ floor) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut rows_out: Vec<(KernelKind, Isa)> = Vec::new();
    for kind in [KernelKind::Reference, KernelKind::Gemm] {
        rows_out.push((kind, Isa::best()));
    }
    for isa in Isa::supported() {
        if !paths.has(isa.name()) {
            continue;
        }
        for kind in [
            KernelKind::Fused,
            KernelKind::FusedU8,
            KernelKind::Parallel,
            KernelKind::ParallelU8,
        ] {
            rows_out.push((kind, isa));
        }
    }
    for (kind, isa) in rows_out {
        if !kernels.has(kind.name()) {
            continue;
        }
        let kernel = kind.build_on(isa, 0);
        let threads = kernel.threads();
        let slow = kind == KernelKind::Reference;
        let peak = peak_of(if kind.uses_simd() { isa } else { Isa::best() }, threads);
        let step = hot_step(kernel.as_ref(), &data, kind, if slow { 20 } else { reps });
        let gflops = 256.0 * FLOP_PER_ROW / step / 1e3;
        let loop_steps = if slow { 50 } else { 1000 };
        let run_loop = |pixels: Pixels| {
            median(
                (0..if slow { 1 } else { runs })
                    .map(|_| {
                        train_loop(
                            kernel.as_ref(),
                            &data,
                            pixels,
                            Shuffle::Buffer { size: 5000 },
                            loop_steps,
                            256,
                        )
                        .as_secs_f64()
                            * 1e3
                            * (1000 / loop_steps) as f64
                    })
                    .collect(),
            )
        };
        let loop_ms = run_loop(data.pixels(kind));
        let mapped_ms = match kind.input() {
            Input::U8 => format!("{:.1}", run_loop(data.mapped(kind))),
            Input::F32 => "-".into(),
        };
        let epoch = |batch: usize| {
            if slow {
                return f64::NAN;
            }
            let steps = images.div_ceil(batch);
            median(
                (0..runs)
                    .map(|_| {
                        train_loop(
                            kernel.as_ref(),
                            &data,
                            data.pixels(kind),
                            Shuffle::Epoch,
                            steps,
                            batch,
                        )
                        .as_secs_f64()
                            * 1e3
                    })
                    .collect(),
            )
        };
        let (e256, e8192) = (epoch(256), epoch(8192));
        let test_labels = data.dataset.test.labels();
        let eval_ms = median(
            (0..if slow { 1 } else { runs * 3 })
                .map(|_| {
                    let t = Instant::now();
                    let out =
                        train::evaluate(kernel.as_ref(), &data.model, data.test(kind), test_labels);
                    black_box(out.expect("the benchmark's evaluation"));
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        );
        // Floors in ms at this path's peak: `rows` rows of forward + backward (or forward only).
        let floor =
            |rows: usize, passes: f64| rows as f64 * FLOP_PER_ROW / 2.0 * passes / peak / 1e6;
        let loop_floor = floor(1000 * 256, 2.0);
        let epoch_floor = floor(images.div_ceil(256) * 256, 2.0);
        let eval_floor = floor(test_labels.len(), 1.0);
        let path = if kind.uses_simd() { isa.name() } else { "-" };
        let (e256, e8192) = if slow {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{e256:.1} ({:.2}×)", e256 / epoch_floor),
                format!("{e8192:.1}"),
            )
        };
        println!(
            "| {kind} | {path} | {threads} | {peak:.0} | {step:.1} | {:.0}% | {loop_ms:.1} ({:.2}×) | {mapped_ms} | {e256} | {e8192} | {eval_ms:.2} ({:.2}×) |",
            100.0 * gflops / peak,
            loop_ms / loop_floor,
            eval_ms / eval_floor,
        );
    }
}

/// The 1000-step loop at shapes other than MNIST's, on synthetic `f32` features: `parallel`
/// (the default kernel for `f32` features) and `gemm`, against the floor at `peak` (the
/// all-threads FMA peak of the widest path).
fn other_shapes(peak: f64, runs: usize) {
    println!();
    println!(
        "other shapes: synthetic f32 features, 20 000 samples, 1000 steps of 256 (tutorial shuffle buffer); floor = 2·2·d·K FLOP per row at {peak:.0} GFLOP/s"
    );
    println!();
    println!("| d | K | kernel | 1000-step loop ms | ÷ floor |");
    println!("| --- | --- | --- | --- | --- |");
    for (d, k) in [(784usize, 10usize), (512, 100), (256, 1000)] {
        let n = 20_000;
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (d * k) as u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as u32
        };
        let labels: Vec<u32> = (0..n).map(|_| next() % k as u32).collect();
        let features: Vec<f32> = (0..n * d)
            .map(|_| (next() % 1000) as f32 / 1000.0)
            .collect();
        let mut model = Model::zeros(d, k).expect("a model");
        for (i, w) in model.w_mut().iter_mut().enumerate() {
            *w = ((i % 17) as f32 - 8.0) * 1e-3;
        }
        let floor_ms = 1000.0 * 256.0 * 4.0 * (d * k) as f64 / peak / 1e6;
        for kind in [KernelKind::Parallel, KernelKind::Gemm] {
            let kernel = kind.build(0);
            let ms = median(
                (0..runs.min(5))
                    .map(|_| {
                        let cfg = TrainConfig {
                            learning_rate: 1e-6,
                            display_step: 1000,
                            seed: 3,
                            ..TrainConfig::default()
                        };
                        let data = TrainData {
                            pixels: Pixels::F32(&features),
                            labels: &labels,
                            features: d,
                        };
                        train::train(&cfg, kernel.as_ref(), data, model.clone(), |_| {})
                            .expect("the benchmark's training run")
                            .elapsed
                            .as_secs_f64()
                            * 1e3
                    })
                    .collect(),
            );
            println!(
                "| {d} | {k} | {kind} ({}) | {ms:.1} | {:.2}× |",
                kernel.simd(),
                ms / floor_ms
            );
        }
    }
}
