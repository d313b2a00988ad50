//! `train`: reproduce the TensorFlow low-level MNIST tutorial (softmax regression + SGD).
//! Thin: parses flags, calls the library, prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use mnist_logreg::batch::Shuffle;
use mnist_logreg::checkpoint;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset, Verification};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{Input, KernelKind, Pixels, fused};
use mnist_logreg::model::Model;
use mnist_logreg::render::image_to_text;
use mnist_logreg::train::{self, TrainConfig, TrainData};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ShuffleArg {
    /// The tutorial's `repeat().shuffle(N)` streaming buffer (N = --shuffle-buffer).
    Buffer,
    /// A fresh permutation of the training set every epoch.
    Epoch,
    /// File order: batch k holds samples (batch·k + j) mod n.
    Sequential,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ChecksumArg {
    /// Verify SHA-256 when the files claim to be MNIST (MNIST's counts and first labels).
    Auto,
    /// Every file must match the MNIST SHA-256.
    Require,
    /// Do not hash.
    Skip,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[allow(clippy::enum_variant_names)]
enum KernelArg {
    /// Plain scalar loops (the definition of correct).
    Reference,
    /// matrixmultiply sgemm, unfused.
    Gemm,
    /// Fused SIMD, one thread, f32 input.
    Fused,
    /// Fused SIMD, one thread, u8 pixels converted in registers.
    #[value(name = "fused_u8")]
    FusedU8,
    /// Fused SIMD sharded over threads, f32 input.
    Parallel,
    /// Fused SIMD sharded over threads, u8 pixels.
    #[value(name = "parallel_u8")]
    ParallelU8,
}

/// Train softmax regression on MNIST-format IDX data with SGD, as the TensorFlow low-level
/// tutorial does: W = ones(784×10), b = zeros(10), batch 256, learning rate 0.01, 1000 steps.
///
/// Prints `step: N, loss: L, accuracy: A` every --display-step steps (loss of the batch summed
/// over its rows, re-evaluated after the step's update), then the test accuracy, the first
/// --show test images with their predictions, and a timing line.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Directory holding train-images, train-labels, t10k-images, t10k-labels (raw IDX or .gz;
    /// `-` or `.` before idx3-ubyte/idx1-ubyte).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// Number of SGD steps.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    learning_rate: f32,
    /// Report every N steps.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    display_step: u64,
    /// Seed of the batch sampler (ChaCha8): the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How training batches are drawn.
    #[arg(long, value_enum, default_value = "buffer")]
    shuffle: ShuffleArg,
    /// Size of the streaming shuffle buffer (--shuffle buffer).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    shuffle_buffer: u64,
    /// Show the first N test images with the model's prediction.
    #[arg(long, default_value_t = 5)]
    show: usize,
    /// Compute kernel (all give the same results within f32 rounding).
    #[arg(long, value_enum, default_value = "parallel_u8")]
    kernel: KernelArg,
    /// Threads for the parallel kernels (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Read files into memory instead of memory-mapping them.
    #[arg(long)]
    no_mmap: bool,
    /// When to verify the SHA-256 of the decompressed files.
    #[arg(long, value_enum, default_value = "auto")]
    checksum: ChecksumArg,
    /// Directory for decompressed copies of .gz files (default: beside the data, or the
    /// system temp directory when the data directory is read-only).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Start from this checkpoint (safetensors, as written by --save) instead of W = ones,
    /// b = zeros; with `--steps 0` it is only evaluated.
    #[arg(long, value_name = "FILE")]
    load: Option<PathBuf>,
    /// Write the trained model to this safetensors file (tensors W [784, 10] and b [10], f32;
    /// the configuration in its metadata). Written atomically.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Keep training when the loss, gradients or weights become NaN/Inf (default: stop with
    /// an error naming the step).
    #[arg(long)]
    allow_non_finite: bool,
}

fn kind_of(arg: KernelArg) -> KernelKind {
    match arg {
        KernelArg::Reference => KernelKind::Reference,
        KernelArg::Gemm => KernelKind::Gemm,
        KernelArg::Fused => KernelKind::Fused,
        KernelArg::FusedU8 => KernelKind::FusedU8,
        KernelArg::Parallel => KernelKind::Parallel,
        KernelArg::ParallelU8 => KernelKind::ParallelU8,
    }
}

/// The default `data/mnist` relative to the working directory, or else to the crate (so
/// `cargo run` works from any directory of the checkout).
fn resolve_data_dir(dir: PathBuf) -> PathBuf {
    if dir.exists() || dir != Path::new("data/mnist") {
        return dir;
    }
    let beside_crate = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if beside_crate.exists() {
        beside_crate
    } else {
        dir
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let kind = kind_of(args.kernel);
    let cfg = TrainConfig {
        steps: args.steps,
        batch_size: args.batch_size as usize,
        learning_rate: args.learning_rate,
        display_step: args.display_step as usize,
        seed: args.seed,
        shuffle: match args.shuffle {
            ShuffleArg::Buffer => Shuffle::Buffer {
                size: args.shuffle_buffer as usize,
            },
            ShuffleArg::Epoch => Shuffle::Epoch,
            ShuffleArg::Sequential => Shuffle::Sequential,
        },
        allow_non_finite: args.allow_non_finite,
    };
    let opts = LoadOptions {
        mmap: !args.no_mmap,
        cache_dir: args.cache_dir,
        ..LoadOptions::default()
    };
    let policy = match args.checksum {
        ChecksumArg::Auto => ChecksumPolicy::Auto,
        ChecksumArg::Require => ChecksumPolicy::Require,
        ChecksumArg::Skip => ChecksumPolicy::Skip,
    };

    let t_load = Instant::now();
    let data = Dataset::open(&resolve_data_dir(args.data), &opts, policy)?;
    if data.verification == Verification::Unverified {
        eprintln!(
            "note: {} is not verified against the MNIST checksums",
            data.dir.display()
        );
    }
    let (train_f32, test_f32);
    let (train_px, test_px) = match kind.input() {
        Input::U8 => (
            Pixels::U8(data.train.pixels()),
            Pixels::U8(data.test.pixels()),
        ),
        Input::F32 => {
            train_f32 = data.train.to_f32();
            test_f32 = data.test.to_f32();
            (Pixels::F32(&train_f32), Pixels::F32(&test_f32))
        }
    };
    let load = t_load.elapsed();

    let kernel = kind.build(args.threads);
    let features = data.train.features();
    let model = match &args.load {
        None => Model::tutorial_init(features, mnist_logreg::MNIST_CLASSES),
        Some(path) => {
            let (model, _) = checkpoint::load(path)?;
            if (model.features, model.classes) != (features, mnist_logreg::MNIST_CLASSES) {
                return Err(format!(
                    "{}: the model has {} features and {} classes, the data needs {features} and {}",
                    path.display(),
                    model.features,
                    model.classes,
                    mnist_logreg::MNIST_CLASSES
                )
                .into());
            }
            model
        }
    };
    let train_data = TrainData {
        pixels: train_px,
        labels: data.train.labels(),
        features,
    };
    let mut clipped_per_report = Vec::new();
    let outcome = train::train(&cfg, kernel.as_ref(), train_data, model, |r| {
        println!(
            "step: {}, loss: {:.6}, accuracy: {:.6}",
            r.step, r.loss, r.accuracy
        );
        clipped_per_report.push(r.clipped_rows.to_string());
    })?;
    if outcome.clipped_rows > 0 {
        // stderr, so stdout keeps exactly the tutorial's lines.
        eprintln!(
            "clipped rows (p_true < 1e-9, no gradient) per {} steps: {}",
            cfg.display_step,
            clipped_per_report.join(" ")
        );
    }

    let t_eval = Instant::now();
    let (test_stats, predictions) =
        train::evaluate(kernel.as_ref(), &outcome.model, test_px, data.test.labels())?;
    let eval = t_eval.elapsed();
    let test_acc = test_stats.correct as f64 / data.test.len().max(1) as f64;
    println!("Test Accuracy: {test_acc:.6}");

    for (i, predicted) in predictions.iter().enumerate().take(args.show) {
        println!();
        print!("{}", image_to_text(data.test.image(i), 28, 28));
        println!("Model prediction: {predicted}");
    }

    if let Some(path) = &args.save {
        let metadata = [
            ("steps", cfg.steps.to_string()),
            ("batch_size", cfg.batch_size.to_string()),
            ("learning_rate", cfg.learning_rate.to_string()),
            ("seed", cfg.seed.to_string()),
            ("shuffle", format!("{:?}", cfg.shuffle)),
            ("kernel", kind.to_string()),
            (
                "resumed_from",
                args.load
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
            ),
            ("test_accuracy", format!("{test_acc:.6}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        checkpoint::save(path, &outcome.model, metadata)?;
        eprintln!("saved the model to {}", path.display());
    }

    let stalled = train::never_predicted(&predictions, outcome.model.classes);
    if !stalled.is_empty() {
        eprintln!(
            "warning: class(es) {stalled:?} are never predicted on the test set: training stalled \
             ({} rows had p_true < 1e-9 and passed no gradient). This is the tutorial's known \
             failure mode with W initialised to ones; try another --seed.",
            outcome.clipped_rows
        );
    }
    let images = (cfg.steps * cfg.batch_size) as f64;
    println!(
        "timing: load {:.1} ms, train {:.1} ms ({} steps, {:.0} images/s), eval {:.2} ms; kernel {}, simd {}, threads {}",
        load.as_secs_f64() * 1e3,
        outcome.elapsed.as_secs_f64() * 1e3,
        cfg.steps,
        images / outcome.elapsed.as_secs_f64().max(1e-12),
        eval.as_secs_f64() * 1e3,
        kind,
        fused::SIMD_PATH,
        if matches!(kind, KernelKind::Parallel | KernelKind::ParallelU8) {
            rayon_threads(args.threads)
        } else {
            1
        }
    );
    Ok(())
}

fn rayon_threads(requested: usize) -> usize {
    if requested == 0 {
        rayon::current_num_threads()
    } else {
        requested
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
