//! `train`: reproduce the TensorFlow low-level MNIST tutorial (softmax regression + SGD).
//! Thin: parses flags, calls the library, prints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mnist_logreg::batch::Shuffle;
use mnist_logreg::checkpoint;
use mnist_logreg::classes::ClassNames;
use mnist_logreg::dataset::{self, ChecksumPolicy, Dataset, Verification};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{Input, Isa, KernelKind, Pixels, SimdChoice};
use mnist_logreg::metrics::{MetricsEvent, MetricsLog, Summary};
use mnist_logreg::model::Model;
use mnist_logreg::plot::{self, GridItem};
use mnist_logreg::render::image_to_text;
use mnist_logreg::train::{self, Report, TrainConfig, TrainData};

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
/// --show test images with their predictions, and a timing line. On a terminal a progress bar
/// runs on stderr; it stays away when stdout or stderr is redirected, and with --quiet.
///
/// Any directory with the four IDX files of MNIST's shape trains (Fashion-MNIST, KMNIST, …);
/// data that is not MNIST loads with a note that it was not verified. A `class-names.txt` in
/// the data directory (one name per line) names the classes in the output and the plots.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Directory holding train-images, train-labels, t10k-images, t10k-labels (raw IDX or .gz;
    /// `-` or `.` before idx3-ubyte/idx1-ubyte). Default: data/mnist of this checkout.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Number of SGD steps [default: 1000].
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<usize>,
    /// Train for N passes over the training set instead of --steps
    /// (steps = ceil(N · train samples / batch size)).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
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
    /// Instruction set of the fused and parallel kernels: the widest this CPU has (auto), or a
    /// narrower one to compare (asking for one the CPU lacks is an error).
    #[arg(long, value_enum, default_value = "auto", env = "MNIST_LOGREG_SIMD")]
    simd: SimdChoice,
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
    /// Print only the test accuracy (no step lines, images, timing or progress bar); warnings
    /// and errors still go to stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Append one JSON object per display step (step, epoch, loss, accuracy, clipped_rows,
    /// images_per_sec) and a final summary to this JSON-lines file (created or truncated).
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Write SVG pictures of the run into this directory (created if missing): curves.svg
    /// (loss and batch accuracy), confusion.svg (test set), test-grid.svg (the first --grid
    /// test images with predicted and true labels), weights.svg (each class's weights).
    #[arg(long, value_name = "DIR")]
    plot_dir: Option<PathBuf>,
    /// Number of test images in test-grid.svg.
    #[arg(long, default_value_t = 100, value_name = "N")]
    grid: usize,
    /// Class names, one per line, for the output and plots (default: class-names.txt in the
    /// data directory if present, else the class numbers).
    #[arg(long, value_name = "FILE")]
    class_names: Option<PathBuf>,
}

/// Training images from which `train` copies the data into huge pages: ~4000 steps of 256.
const RESIDENT_MIN_IMAGES: usize = 1_000_000;

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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let kind = kind_of(args.kernel);
    let isa = Isa::select(args.simd)?;
    let opts = LoadOptions {
        mmap: !args.no_mmap,
        cache_dir: args.cache_dir.clone(),
        ..LoadOptions::default()
    };
    let policy = match args.checksum {
        ChecksumArg::Auto => ChecksumPolicy::Auto,
        ChecksumArg::Require => ChecksumPolicy::Require,
        ChecksumArg::Skip => ChecksumPolicy::Skip,
    };
    // Open the outputs first: a typo in a path should fail before minutes of training.
    let mut metrics = match &args.metrics {
        Some(path) => Some(MetricsLog::create(path)?),
        None => None,
    };
    if let Some(dir) = &args.plot_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create the plot directory: {e}", dir.display()))?;
    }

    let t_load = Instant::now();
    let data_dir = args.data.clone().unwrap_or_else(dataset::default_dir);
    let data = Dataset::open(&data_dir, &opts, policy)?;
    let verified = data.verification == Verification::Mnist;
    if !verified {
        eprintln!(
            "note: {} is not verified against the MNIST checksums",
            data.dir.display()
        );
    }
    let classes = mnist_logreg::MNIST_CLASSES;
    let names = ClassNames::resolve(args.class_names.as_deref(), &data.dir, classes)?;
    let batch_size = args.batch_size as usize;
    let steps = match (args.steps, args.epochs) {
        (Some(steps), _) => steps,
        (None, Some(epochs)) => {
            train::steps_for_epochs(epochs as usize, data.train.len(), batch_size)
        }
        (None, None) => TrainConfig::default().steps,
    };
    // Long runs train from huge-page copies of both splits (see `dataset::Resident`): rows are
    // read at random, and in the 4 KB pages of the mapped files most of them miss the TLB.
    // The copy costs 10–30 ms (at times 70) and saves ~5 ms per 1000 steps of batch 256, so
    // short runs, the tutorial's included, read the mapped files (measured whole `train`:
    // 74.9 ms mapped against 79.6 ms copied).
    let long_run = steps.saturating_mul(batch_size) >= RESIDENT_MIN_IMAGES;
    let (train_u8, test_u8, train_f32, test_f32);
    let (train_px, test_px) = match kind.input() {
        Input::U8 if long_run => {
            train_u8 = data.train.resident_u8()?;
            test_u8 = data.test.resident_u8()?;
            (Pixels::U8(&train_u8), Pixels::U8(&test_u8))
        }
        Input::U8 => (
            Pixels::U8(data.train.pixels()),
            Pixels::U8(data.test.pixels()),
        ),
        Input::F32 => {
            train_f32 = data.train.resident_f32()?;
            test_f32 = data.test.to_f32();
            (Pixels::F32(&train_f32), Pixels::F32(&test_f32))
        }
    };
    let load = t_load.elapsed();

    let cfg = TrainConfig {
        steps,
        batch_size,
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

    let kernel = kind.build_on(isa, args.threads);
    let threads = kernel.threads();
    let features = data.train.features();
    let model = match &args.load {
        None => Model::tutorial_init(features, classes),
        Some(path) => {
            let (model, _) = checkpoint::load(path)?;
            if (model.features, model.classes) != (features, classes) {
                return Err(format!(
                    "{}: the model has {} features and {} classes, the data needs {features} and {classes}",
                    path.display(),
                    model.features,
                    model.classes,
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

    let bar = progress_bar(&args, cfg.steps);
    let mut reports: Vec<Report> = Vec::new();
    let mut metrics_error = None;
    let outcome = train::train_observed(
        &cfg,
        kernel.as_ref(),
        train_data,
        model,
        |r| {
            if !args.quiet {
                bar.suspend(|| {
                    println!(
                        "step: {}, loss: {:.6}, accuracy: {:.6}",
                        r.step, r.loss, r.accuracy
                    )
                });
            }
            if let Some(log) = metrics.as_mut().filter(|_| metrics_error.is_none()) {
                let event = MetricsEvent::report(r, cfg.batch_size, data.train.len());
                metrics_error = log.write(&event).err();
            }
            reports.push(*r);
        },
        |step| bar.set_position(step as u64),
    );
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(log) = metrics.as_mut() {
                // Best effort: the training error is what gets reported.
                let _ = log.write(&MetricsEvent::Error {
                    message: &e.to_string(),
                });
            }
            return Err(e.into());
        }
    };
    if let Some(e) = metrics_error {
        return Err(format!("writing the metrics file: {e}").into());
    }
    if outcome.clipped_rows > 0 && !args.quiet {
        // stderr, so stdout keeps exactly the tutorial's lines.
        let per_report: Vec<String> = reports.iter().map(|r| r.clipped_rows.to_string()).collect();
        eprintln!(
            "clipped rows (p_true < 1e-9, no gradient) per {} steps: {}",
            cfg.display_step,
            per_report.join(" ")
        );
    }

    let t_eval = Instant::now();
    let (test_stats, predictions) =
        train::evaluate(kernel.as_ref(), &outcome.model, test_px, data.test.labels())?;
    let eval = t_eval.elapsed();
    let test_acc = test_stats.correct as f64 / data.test.len().max(1) as f64;
    println!("Test Accuracy: {test_acc:.6}");

    if !args.quiet {
        for (i, &predicted) in predictions.iter().enumerate().take(args.show) {
            println!();
            print!("{}", image_to_text(data.test.image(i), 28, 28));
            println!("Model prediction: {}", names.label(predicted as usize));
        }
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
            ("data", data.dir.display().to_string()),
            ("test_accuracy", format!("{test_acc:.6}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        checkpoint::save(path, &outcome.model, metadata)?;
        eprintln!("saved the model to {}", path.display());
    }

    if let Some(dir) = &args.plot_dir {
        write_plots(
            dir,
            &reports,
            &data,
            &predictions,
            &outcome.model,
            &names,
            args.grid,
        )?;
        eprintln!("wrote the plots to {}", dir.display());
    }

    let stalled = train::never_predicted(&predictions, outcome.model.classes);
    if !stalled.is_empty() {
        eprintln!(
            "warning: class(es) {} are never predicted on the test set: training stalled \
             ({} rows had p_true < 1e-9 and passed no gradient). This is the tutorial's known \
             failure mode with W initialised to ones; try another --seed.",
            stalled
                .iter()
                .map(|&c| names.label(c))
                .collect::<Vec<_>>()
                .join(", "),
            outcome.clipped_rows
        );
    }
    let train_secs = outcome.elapsed.as_secs_f64().max(1e-12);
    let images = (cfg.steps * cfg.batch_size) as f64;
    if let Some(log) = metrics.as_mut() {
        let summary = Summary {
            steps: cfg.steps,
            epochs: images / data.train.len() as f64,
            batch_size: cfg.batch_size,
            learning_rate: cfg.learning_rate,
            seed: cfg.seed,
            kernel: kind.to_string(),
            simd: kernel.simd(),
            threads,
            train_seconds: outcome.elapsed.as_secs_f64(),
            images_per_sec: images / train_secs,
            clipped_rows: outcome.clipped_rows,
            test_accuracy: test_acc,
            test_loss: test_stats.loss as f64 / data.test.len().max(1) as f64,
            never_predicted: stalled,
            verified,
        };
        log.write(&MetricsEvent::Summary(&summary))
            .map_err(|e| format!("writing the metrics file: {e}"))?;
    }
    if !args.quiet {
        println!(
            "timing: load {:.1} ms, train {:.1} ms ({} steps, {:.0} images/s), eval {:.2} ms; kernel {}, simd {}, threads {}",
            load.as_secs_f64() * 1e3,
            outcome.elapsed.as_secs_f64() * 1e3,
            cfg.steps,
            images / train_secs,
            eval.as_secs_f64() * 1e3,
            kind,
            kernel.simd(),
            threads
        );
    }
    Ok(())
}

/// A progress bar on stderr when both stdout and stderr are terminals and not --quiet;
/// otherwise a hidden one (every call on it is then a no-op).
fn progress_bar(args: &Args, steps: usize) -> ProgressBar {
    let interactive = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    if args.quiet || !interactive {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} steps  {elapsed_precise} (eta {eta})",
    )
    .expect("static template")
    .progress_chars("=> ");
    ProgressBar::new(steps as u64).with_style(style)
}

/// curves.svg, confusion.svg, test-grid.svg and weights.svg in `dir`.
fn write_plots(
    dir: &Path,
    reports: &[Report],
    data: &Dataset,
    predictions: &[u8],
    model: &Model,
    names: &ClassNames,
    grid: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    if reports.is_empty() {
        eprintln!("note: no display step was reached, so there is no curves.svg");
    } else {
        plot::curves(&dir.join("curves.svg"), reports)?;
    }
    let counts = train::confusion(predictions, data.test.labels(), model.classes);
    plot::confusion_matrix(&dir.join("confusion.svg"), &counts, names)?;
    let items: Vec<GridItem> = (0..data.test.len().min(grid))
        .map(|i| GridItem {
            pixels: data.test.image(i),
            predicted: predictions[i],
            truth: data.test.labels()[i],
        })
        .collect();
    plot::digit_grid(&dir.join("test-grid.svg"), &items, 28, names)?;
    plot::weight_maps(&dir.join("weights.svg"), model, (28, 28), names)?;
    Ok(())
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
