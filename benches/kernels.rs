//! Criterion benchmarks: every kernel on a training step (batch 256 and a sweep of batch
//! sizes), forward evaluation of the test set, and the IDX load path.
//!
//! Run with `cargo bench --bench kernels`; `cargo bench --bench kernels -- step_256` for one
//! group. The SIMD kernels run on the widest path of the CPU, or on the one named by
//! `MNIST_LOGREG_SIMD` (`avx512`, `avx2`, `sse2`, `scalar`). `cargo bench --bench roofline`
//! prints the roofline table over every path.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mnist_logreg::batch::{Sampler, Shuffle};
use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::idx::{IdxFile, IdxKind, LoadOptions};
use mnist_logreg::kernels::{Batch, Isa, KernelKind, Pixels};
use mnist_logreg::model::{Grads, Model};
use mnist_logreg::{MNIST_CLASSES, MNIST_FEATURES};

fn data() -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    Dataset::open(&dir, &LoadOptions::default(), ChecksumPolicy::Skip).expect("load data/mnist")
}

/// A model part-way through training (not the all-ones start, whose logits are all equal).
fn trained_model(data: &Dataset, train_f32: &[f32]) -> Model {
    let kernel = KernelKind::Fused.build(1);
    let mut model = Model::tutorial_init(MNIST_FEATURES, MNIST_CLASSES);
    let mut grads = Grads::zeros_like(&model);
    let mut sampler = Sampler::new(Shuffle::Sequential, data.train.len(), 0);
    let mut rows = Vec::new();
    for _ in 0..20 {
        sampler.next_batch(256, &mut rows);
        let b = Batch::new(
            Pixels::F32(train_f32),
            MNIST_FEATURES,
            data.train.labels(),
            &rows,
            MNIST_CLASSES,
        )
        .unwrap();
        kernel.forward_backward(&model, &b, &mut grads);
        model.sgd_step(&grads, 0.01);
    }
    model
}

fn kernels(c: &mut Criterion) {
    let isa = Isa::from_env().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("SIMD path: {isa}");
    let data = data();
    let train_f32 = data.train.to_f32();
    let test_f32 = data.test.to_f32();
    let model = trained_model(&data, &train_f32);
    let pixels =
        |kind: KernelKind, f32s: &'static [f32], u8s: &'static [u8]| kind.input().pick(f32s, u8s);
    // The benches borrow for the whole run.
    let train_f32: &'static [f32] = Box::leak(train_f32.to_vec().into_boxed_slice());
    let test_f32: &'static [f32] = Box::leak(test_f32.to_vec().into_boxed_slice());
    let train_u8: &'static [u8] = Box::leak(data.train.pixels().to_vec().into_boxed_slice());
    let test_u8: &'static [u8] = Box::leak(data.test.pixels().to_vec().into_boxed_slice());
    let labels = data.train.labels();

    // A shuffled batch of 256 (rows spread over the whole training set, as in training).
    let mut sampler = Sampler::new(Shuffle::Buffer { size: 5000 }, data.train.len(), 1);
    let mut rows256 = Vec::new();
    sampler.next_batch(256, &mut rows256);

    let mut g = c.benchmark_group("step_256");
    g.throughput(Throughput::Elements(256));
    for kind in KernelKind::ALL {
        let kernel = kind.build_on(isa, 0);
        let batch = Batch::new(
            pixels(kind, train_f32, train_u8),
            MNIST_FEATURES,
            labels,
            &rows256,
            MNIST_CLASSES,
        )
        .unwrap();
        let mut grads = Grads::zeros_like(&model);
        g.bench_function(kind.name(), |b| {
            b.iter(|| black_box(kernel.forward_backward(&model, &batch, &mut grads)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("step_batch_size");
    for n in [32usize, 256, 2048, 8192] {
        let mut rows = Vec::new();
        sampler.next_batch(n, &mut rows);
        g.throughput(Throughput::Elements(n as u64));
        for (kind, threads) in [
            (KernelKind::Gemm, 1),
            (KernelKind::Fused, 1),
            (KernelKind::FusedU8, 1),
            (KernelKind::Parallel, 1),
            (KernelKind::Parallel, 2),
            (KernelKind::ParallelU8, 2),
        ] {
            let kernel = kind.build_on(isa, threads);
            let batch = Batch::new(
                pixels(kind, train_f32, train_u8),
                MNIST_FEATURES,
                labels,
                &rows,
                MNIST_CLASSES,
            )
            .unwrap();
            let mut grads = Grads::zeros_like(&model);
            let id = BenchmarkId::new(format!("{}_t{threads}", kind.name()), n);
            g.bench_function(id, |b| {
                b.iter(|| black_box(kernel.forward_backward(&model, &batch, &mut grads)))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("eval_test_10000");
    g.throughput(Throughput::Elements(10_000));
    let all: Vec<usize> = (0..data.test.len()).collect();
    let mut predictions = vec![0u32; all.len()];
    for kind in KernelKind::ALL {
        let kernel = kind.build_on(isa, 0);
        let batch = Batch::new(
            pixels(kind, test_f32, test_u8),
            MNIST_FEATURES,
            data.test.labels(),
            &all,
            MNIST_CLASSES,
        )
        .unwrap();
        g.bench_function(kind.name(), |b| {
            b.iter(|| black_box(kernel.forward(&model, &batch, Some(&mut predictions))))
        });
    }
    g.finish();
}

fn load(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let gz = dir.join("train-images-idx3-ubyte.gz");
    let opts = LoadOptions::default();
    let file = IdxFile::open(&gz, IdxKind::MNIST_IMAGES, &opts).unwrap(); // warms the cache
    let bytes = file.raw_bytes().len() as u64;
    let mut g = c.benchmark_group("load_train_images");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("open_cached_mmap", |b| {
        b.iter(|| {
            black_box(
                IdxFile::open(&gz, IdxKind::MNIST_IMAGES, &opts)
                    .unwrap()
                    .count(),
            )
        })
    });
    // Conversion only (into a buffer allocated once); the output goes through black_box so the
    // loop cannot be optimised away.
    let mut out = vec![0f32; file.body().len()];
    g.bench_function("to_f32", |b| {
        b.iter(|| {
            mnist_logreg::dataset::pixels_to_f32(black_box(file.body()), &mut out);
            black_box(&mut out);
        })
    });
    g.bench_function("sha256", |b| {
        b.iter(|| black_box(mnist_logreg::dataset::sha256_hex(file.raw_bytes())))
    });
    g.bench_function("decompress_gz", |b| {
        b.iter(|| {
            let f = std::fs::File::open(&gz).unwrap();
            let mut sink = std::io::sink();
            black_box(
                mnist_logreg::idx::decompress_idx(
                    &gz,
                    std::io::BufReader::new(f),
                    IdxKind::MNIST_IMAGES,
                    opts.max_bytes,
                    &mut sink,
                )
                .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, kernels, load);
criterion_main!(benches);
