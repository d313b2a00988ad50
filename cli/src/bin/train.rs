//! `train`: reproduce the TensorFlow low-level MNIST tutorial (softmax regression + SGD).
//! Flags and printing over the library's run pipeline (`mnist_logreg_cli::run`), plus what
//! only a whole run has: the resume-override merge, when to fit the novelty score, and the
//! thread that writes periodic checkpoints.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mnist_logreg::batch::ShuffleKind;

use mnist_logreg::dataset::ChecksumPolicy;
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{ClipGradient, Input, Kernel, KernelKind, Sharing, SimdChoice};
use mnist_logreg::model::Model;
use mnist_logreg::train::{self, Observer, Progress, Report, TrainConfig, TrainOutcome};
use mnist_logreg_cli::metrics::{MetricsEvent, MetricsLog};
use mnist_logreg_cli::novelty::Novelty;
use mnist_logreg_cli::plot;
use mnist_logreg_cli::preprocess::SIDE;
use mnist_logreg_cli::render::image_to_text;
use mnist_logreg_cli::run::{self, DataSource, LoadedData, RunSpec};
use mnist_logreg_cli::solver::{self, Given, SolverFlags};

/// Train softmax regression on MNIST-format IDX data with SGD, as the TensorFlow low-level
/// tutorial does: W = ones(784×10), b = zeros(10), batch 256, learning rate 0.01, 1000 steps.
///
/// Prints `step: N, loss: L, accuracy: A` every --display-step steps (loss of the batch summed
/// over its rows, re-evaluated after the step's update), then the test accuracy, the first
/// --show test images with their predictions, and a timing line. On a terminal a progress bar
/// runs on stderr; it stays away when stdout or stderr is redirected, and with --quiet.
///
/// Ctrl-C (or SIGTERM) stops at the end of the current step: the model is saved when --save
/// was given, the metrics file gets an `interrupted` event, and `train --resume FILE` continues
/// the run exactly where it stopped. A second Ctrl-C exits at once.
///
/// Any directory with the four IDX files of MNIST's shape trains (Fashion-MNIST, KMNIST, …);
/// data that is not MNIST loads with a note that it was not verified. A `class-names.txt` in
/// the data directory (one name per line) names the classes in the output and the plots.
///
/// `--solver lbfgs` instead solves to the optimum of the L2-regularised cross-entropy
/// (scikit-learn's `LogisticRegression()` by default): it prints `iteration: N, objective: F,
/// |grad|max: G, step: S, time: T` every --display-step iterations, the test accuracy, and on
/// stderr `converged after N iterations (…)` or a warning that it did not converge (exit 0
/// either way, the model saved with --save). Ctrl-C saves the current iterate; --resume goes on
/// from it with a fresh L-BFGS memory.
#[derive(Clone, Debug, Parser)]
// The usage line clap prints after an error would list only the flags involved, as if they
// were the whole command.
#[command(version, about, long_about, override_usage = "train [OPTIONS]")]
struct Args {
    /// Directory holding train-images, train-labels, t10k-images, t10k-labels (raw IDX or .gz;
    /// `-` or `.` before idx3-ubyte/idx1-ubyte). Default: data/mnist of this checkout.
    #[arg(long, conflicts_with = "train_images")]
    data: Option<PathBuf>,
    /// Your own training features instead of --data: IDX of any element type and shape
    /// (`[n, …]`, each item flattened) or NumPy .npy (uint8, float32, float64), raw or .gz,
    /// told apart by content. u8 values are read as pixels (÷ 255), floats as given.
    /// Needs --train-labels, --test-images and --test-labels.
    #[arg(long, value_name = "FILE", requires_all = ["train_labels", "test_images", "test_labels"])]
    train_images: Option<PathBuf>,
    /// Labels of --train-images: 1-D IDX (u8, i16, i32) or .npy of any integer type.
    #[arg(long, value_name = "FILE", requires = "train_images")]
    train_labels: Option<PathBuf>,
    /// Test features for --train-images (the same feature count).
    #[arg(long, value_name = "FILE", requires = "train_images")]
    test_images: Option<PathBuf>,
    /// Labels of --test-images.
    #[arg(long, value_name = "FILE", requires = "train_images")]
    test_labels: Option<PathBuf>,
    /// Number of classes of --train-images data (2 or more) [default: largest label + 1 over
    /// train and test].
    #[arg(long, value_name = "N", requires = "train_images")]
    classes: Option<usize>,
    /// Number of SGD steps [default: 1000]; with --resume, the step to continue up to
    /// [default: the interrupted run's].
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<usize>,
    /// Train for N passes over the training set instead of --steps
    /// (steps = ceil(N · train samples / batch size)).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    epochs: Option<usize>,
    /// Images per batch (at least 1).
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    batch_size: usize,
    /// SGD learning rate (a number above 0).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    learning_rate: f32,
    /// Report every N steps (at least 1); with --solver lbfgs every N iterations (default 10).
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    display_step: usize,
    /// Seed of the batch sampler (ChaCha8): the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How training batches are drawn.
    #[arg(long, value_enum, default_value = "buffer")]
    shuffle: ShuffleKind,
    /// Size of the streaming shuffle buffer (--shuffle buffer; at least 1) [default: 5000].
    #[arg(long, value_parser = at_least_one)]
    shuffle_buffer: Option<usize>,
    /// What a row whose true-class probability fell below the clip floor (1e-9) passes as
    /// gradient: `zero` is the tutorial (and can stall a class for good), `through` passes
    /// p − onehot like an unclipped cross-entropy. See the seed table in docs/cli.md.
    #[arg(long, value_enum, default_value = "zero")]
    clip_gradient: ClipGradient,
    /// Show the first N test images with the model's prediction.
    #[arg(long, default_value_t = 5)]
    show: usize,
    /// Compute kernel (all give the same results within f32 rounding) [default: parallel_u8;
    /// with --resume, the interrupted run's].
    #[arg(long, value_enum)]
    kernel: Option<KernelKind>,
    /// Threads for the parallel kernels (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Instruction set of the fused and parallel kernels: the widest this CPU has (auto), or a
    /// narrower one to compare (asking for one the CPU lacks is an error). Without the flag,
    /// the environment variable MNIST_LOGREG_SIMD decides (unset or empty: auto).
    #[arg(long, value_enum)]
    simd: Option<SimdChoice>,
    /// Read files into memory instead of memory-mapping them.
    #[arg(long)]
    no_mmap: bool,
    /// When to verify the SHA-256 of the decompressed files.
    #[arg(long, value_enum, default_value = "auto")]
    checksum: ChecksumPolicy,
    /// Directory for decompressed copies of .gz files (default: beside the data, or the
    /// system temp directory when the data directory is read-only).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Start from this checkpoint (safetensors, as written by --save) instead of W = ones,
    /// b = zeros, with this run's flags; with `--steps 0` it is only evaluated.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    load: Option<PathBuf>,
    /// Continue the run saved in FILE (by --save, after it finished or was interrupted) with
    /// its recorded configuration and sampler position: the result is bit-identical to a run
    /// that never stopped (with the same kernel and SIMD path).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["epochs", "batch_size", "learning_rate", "display_step", "seed",
            "shuffle", "shuffle_buffer", "clip_gradient", "allow_non_finite"]
    )]
    resume: Option<PathBuf>,
    /// Write the trained model to this safetensors file (tensors `W` of shape 784 × 10 and `b`
    /// of 10, f32; the run's configuration and progress in its metadata, so --resume can
    /// continue it). Written atomically; also written when the run is interrupted.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// With --save, also write the checkpoint every N steps while training, so a killed run
    /// (kill -9, out of memory, a reboot) loses at most N steps: `train --resume FILE`
    /// continues it bit-identically.
    #[arg(long, value_name = "N", requires = "save", value_parser = at_least_one)]
    save_every: Option<usize>,
    /// With --save, also write the checkpoint after every S seconds of training (0: never).
    /// Each write takes a few milliseconds.
    #[arg(long, value_name = "S", default_value_t = 60.0, requires = "save", value_parser = seconds)]
    save_every_secs: f64,
    /// Keep training when the loss, gradients or weights become NaN/Inf (default: stop with
    /// an error naming the step).
    #[arg(long)]
    allow_non_finite: bool,
    /// Print only the test accuracy (no step lines, images, timing or progress bar); warnings
    /// and errors still go to stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Write one JSON object per display step (step, epoch, loss, accuracy, clipped_rows,
    /// images_per_sec), an `interrupted` event if the run is stopped, and a final summary to
    /// this JSON-lines file (created or truncated). `-` writes them to stdout, and the
    /// human-readable lines then go to stderr. With --solver lbfgs: an `iteration` object for
    /// every iteration (objective, grad_max, step, evaluations, seconds) and a final `solution`.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Write SVG pictures of the run into this directory (created if missing): curves.svg
    /// (loss and batch accuracy; with --solver lbfgs the objective and largest gradient entry
    /// per iteration), confusion.svg (test set), test-grid.svg (the first --grid
    /// test images with predicted and true labels), weights.svg (each class's weights).
    #[arg(long, value_name = "DIR")]
    plot_dir: Option<PathBuf>,
    /// Number of test images in test-grid.svg (0: no grid; at most 1000, a picture of about 13 MB).
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = grid_size)]
    grid: usize,
    /// Class names, one per line, for the output and plots (default: class-names.txt in the
    /// data directory if present, else the class numbers).
    #[arg(long, value_name = "FILE")]
    class_names: Option<PathBuf>,
    #[command(flatten)]
    solver: SolverFlags,
}

/// Classes up to which confusion.svg is drawn for data that are not MNIST-shaped pictures.
const MAX_CONFUSION_CLASSES: usize = 100;

/// The streaming shuffle buffer's size without --shuffle-buffer.
const DEFAULT_SHUFFLE_BUFFER: usize = 5000;

/// Warnings for flags this run ignores or that work against it (the run goes on).
fn flag_warnings(args: &Args, spec: &RunSpec, train_len: usize) -> Vec<String> {
    let mut out = Vec::new();
    let parallel = matches!(spec.kernel, KernelKind::Parallel | KernelKind::ParallelU8);
    if args.threads != 0 && !parallel {
        out.push(format!(
            "warning: --threads {} is ignored: --kernel {} runs on one thread (parallel and \
             parallel_u8 use it)",
            args.threads, spec.kernel
        ));
    }
    if let (Some(size), false) = (args.shuffle_buffer, args.shuffle == ShuffleKind::Buffer) {
        out.push(format!(
            "warning: --shuffle-buffer {size} is ignored: it sizes --shuffle buffer, and this \
             run shuffles by {}",
            args.shuffle
        ));
    }
    let batch = spec.train.batch_size;
    if batch > train_len {
        out.push(format!(
            "warning: --batch-size {batch} is above the {train_len} training images: every \
             batch holds some images more than once"
        ));
    }
    out
}

/// Parse --grid: 0 to [`MAX_GRID`] images.
fn grid_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_GRID => Ok(n),
        _ => Err(format!(
            "`{s}` is not a number of images from 0 to {MAX_GRID}"
        )),
    }
}

/// The largest --grid.
const MAX_GRID: usize = 1000;

/// Parse a count that must be at least 1, saying so.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{s}` is not a whole number (it must be at least 1)"
        )),
    }
}

/// Parse a duration in seconds: finite and not negative.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds (0 or more)")),
    }
}

type BoxError = Box<dyn std::error::Error>;

/// How the run ended, for the exit status.
enum Ended {
    Finished,
    Interrupted(run::StopSignal),
}

/// Steps that make `epochs` passes over `samples` training samples in batches of `batch_size`
/// (the last batch of the run may cross into a further epoch).
fn steps_for_epochs(epochs: usize, samples: usize, batch_size: usize) -> usize {
    (epochs * samples).div_ceil(batch_size.max(1))
}

/// The spec of this run and where it starts: from the flags, or from the --resume checkpoint.
/// With --epochs the step count depends on the training set's size, `train_len`.
fn spec_and_start(
    args: &Args,
    train_len: usize,
) -> Result<(RunSpec, Option<(Model, Progress)>), BoxError> {
    if let Some(path) = &args.resume {
        let (model, mut spec, progress) = run::load_resume(path)?;
        if let Some(steps) = args.steps {
            spec.train.steps = steps;
        }
        if spec.train.steps <= progress.step {
            // Training zero steps and exiting 0 would look like success.
            let (file, at) = (path.display(), progress.step);
            return Err(match args.steps {
                Some(steps) => format!(
                    "nothing to resume: {file} is at step {at} and --steps {steps} is not past it; \
                     give --steps above {at} to train further"
                ),
                None => format!(
                    "nothing to resume: the run in {file} finished its {at} steps; give --steps \
                     above {at} to train further"
                ),
            }
            .into());
        }
        if let Some(kernel) = args.kernel {
            spec.kernel = kernel;
        }
        return Ok((spec, Some((model, progress))));
    }
    let steps = match (args.steps, args.epochs) {
        (Some(steps), _) => steps,
        (None, Some(epochs)) => steps_for_epochs(epochs, train_len, args.batch_size),
        (None, None) => TrainConfig::default().steps,
    };
    let spec = RunSpec {
        train: TrainConfig {
            steps,
            batch_size: args.batch_size,
            learning_rate: args.learning_rate,
            display_step: args.display_step,
            seed: args.seed,
            shuffle: args
                .shuffle
                .with_buffer(args.shuffle_buffer.unwrap_or(DEFAULT_SHUFFLE_BUFFER)),
            allow_non_finite: args.allow_non_finite,
        },
        kernel: args.kernel.unwrap_or(KernelKind::ParallelU8),
        clip: args.clip_gradient,
    };
    Ok((spec, None))
}

/// What a run works with once the flags are checked and the data is loaded.
struct Setup {
    spec: RunSpec,
    data: LoadedData,
    kernel: Box<dyn Kernel>,
    model: Model,
    from: Progress,
    /// The novelty score saved with the model: fitted at the first save, for 28×28 data.
    novelty: std::cell::OnceCell<Option<Novelty>>,
}

impl Setup {
    /// The novelty score of this data set (fitted on the first call; `None` for data that is
    /// not 28×28 pictures or has no test split to calibrate on).
    fn novelty(&self) -> Option<&Novelty> {
        self.novelty
            .get_or_init(|| {
                let dataset = self.data.dataset()?;
                let (train, test) = (&dataset.train, &dataset.test);
                if train.features() != mnist_logreg::MNIST_FEATURES || test.is_empty() {
                    return None;
                }
                let started = std::time::Instant::now();
                let novelty = Novelty::fit(train.pixels(), test.pixels()).ok()?;
                eprintln!(
                    "fitted the novelty score in {:.2} s: it flags {:.2}% of the test images",
                    started.elapsed().as_secs_f64(),
                    100.0 * novelty.flagged_share()
                );
                Some(novelty)
            })
            .as_ref()
    }
}

/// Every output path checked before any work (a typo in a path fails before minutes of
/// training), and the thread-count warning.
fn check_outputs(args: &Args) -> Result<(), BoxError> {
    for path in [&args.save, &args.metrics].into_iter().flatten() {
        if path != Path::new("-") {
            run::check_output_file(path)?;
        }
    }
    if let Some(dir) = &args.plot_dir {
        run::check_output_dir(dir)?;
    }
    if let Some(w) = run::threads_warning(args.threads) {
        eprintln!("{w}");
    }
    Ok(())
}

/// Where the data comes from: `--data`'s directory or the four named files.
fn data_source(args: &Args) -> DataSource {
    let files = match (
        &args.train_images,
        &args.train_labels,
        &args.test_images,
        &args.test_labels,
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d].map(Clone::clone)),
        _ => None,
    };
    DataSource {
        dir: args.data.clone().unwrap_or_else(run::default_data_dir),
        files,
        classes: args.classes,
        load: LoadOptions {
            mmap: !args.no_mmap,
            cache_dir: args.cache_dir.clone(),
            ..LoadOptions::default()
        },
        checksum: args.checksum,
        class_names: args.class_names.clone(),
    }
}

/// What `train` says once about data that is not an MNIST directory: its shape, whether the
/// values are scaled, classes without a training sample, and what is skipped for it.
fn describe_own_data(data: &LoadedData) {
    let (n, d, k) = (data.train_len(), data.features(), data.classes());
    let values = if data.is_u8() {
        "u8 values, scaled by 1/255"
    } else {
        "float values, used as given"
    };
    eprintln!("data: {n} training samples of {d} features ({values}), {k} classes");
    let empty = data.classes_without_training_samples();
    if !empty.is_empty() {
        let shown: Vec<String> = empty.iter().take(10).map(|c| c.to_string()).collect();
        eprintln!(
            "warning: {} of the {k} classes have no training sample (the model cannot learn them): {}{}",
            empty.len(),
            shown.join(", "),
            if empty.len() > 10 { ", …" } else { "" }
        );
    }
    let pictures = if data.is_pictures() {
        ""
    } else {
        ", and these are not 28×28 u8 pictures: no test pictures (--show) either"
    };
    eprintln!(
        "note: the novelty score and the picture plots (test-grid.svg, weights.svg) are made for --data directories of 28×28 pictures: skipped{pictures}"
    );
}

/// Check the outputs, load the data, and build the spec, the start model and the kernel.
fn setup(args: &Args) -> Result<Setup, BoxError> {
    let isa = run::select_isa(args.simd)?;
    check_outputs(args)?;
    let source = data_source(args);
    // --epochs needs the training set's size, known after loading; the choice of pixel
    // buffers (speed only) takes MNIST's 60 000 for it.
    let (spec, start) = spec_and_start(args, 60_000)?;
    let resident = run::wants_resident(spec.train.steps, spec.train.batch_size);
    let data = LoadedData::open(&source, spec.kernel.input(), resident)?;
    let mut spec = match args.epochs {
        Some(_) => spec_and_start(args, data.train_len())?.0,
        None => spec,
    };
    for warning in flag_warnings(args, &spec, data.train_len()) {
        eprintln!("{warning}");
    }
    if data.dataset().is_some() && !data.verified() {
        let dir = data.dir().display();
        eprintln!("note: {dir} is not verified against the MNIST checksums");
    }
    if data.dataset().is_none() {
        describe_own_data(&data);
    }
    // Float features are read by the f32 kernels: the u8 variants become their f32 twins.
    if data.input() == Input::F32 && spec.kernel.input() == Input::U8 {
        let was = spec.kernel;
        spec.kernel = match was {
            KernelKind::FusedU8 => KernelKind::Fused,
            _ => KernelKind::Parallel,
        };
        if args.kernel.is_some() {
            eprintln!(
                "note: --kernel {was} reads u8 pixels; these features are floats: using {}",
                spec.kernel
            );
        }
    }
    let (features, classes) = (data.features(), data.classes());
    let (model, from) = match (start, &args.resume) {
        (Some((model, progress)), Some(path)) => {
            run::check_shape(&model, path, features, classes)?;
            (model, progress)
        }
        _ => (
            run::initial_model(args.load.as_deref(), features, classes)?,
            Progress::default(),
        ),
    };
    let kernel = spec.build_kernel(isa, args.threads);
    Ok(Setup {
        spec,
        data,
        kernel,
        model,
        from,
        novelty: std::cell::OnceCell::new(),
    })
}

fn run(args: Args, given: &Given) -> Result<Ended, BoxError> {
    let (load, resume) = (args.load.as_deref(), args.resume.as_deref());
    if let Some(plan) = solver::choose(&args.solver, given, load, resume, args.display_step)? {
        return run_lbfgs(&args, &plan);
    }
    let s = setup(&args)?;
    if let Some(signal) = run::stop_requested() {
        return interrupted_while_loading(&args, &s, signal);
    }
    // The human-readable lines go to stderr when the metrics take stdout.
    let mut out: Box<dyn Write> = if args.metrics.as_deref() == Some(Path::new("-")) {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut metrics = args
        .metrics
        .as_deref()
        .map(MetricsLog::create)
        .transpose()?;
    let bar = progress_bar(&args, s.spec.train.steps, s.from.step);
    // Fitted now rather than at the first save, which may be a periodic one.
    let saving = Saving {
        args: &args,
        spec: &s.spec,
        data_dir: s.data.dir(),
        novelty: args.save.as_ref().and_then(|_| s.novelty()),
        names: &s.data.names,
    };
    let (result, reports, metrics_error) = std::thread::scope(|scope| {
        let periodic = args
            .save
            .as_deref()
            .map(|path| Periodic::start(scope, &args, &saving, path));
        let mut printer = Printer {
            out: &mut out,
            bar: &bar,
            quiet: args.quiet,
            metrics: metrics.as_mut(),
            metrics_error: None,
            reports: Vec::new(),
            batch_size: s.spec.train.batch_size,
            train_samples: s.data.train_len(),
            periodic,
        };
        let result = train::resume(
            &s.spec.train,
            s.kernel.as_ref(),
            s.data.train_data(),
            s.model.clone(),
            s.from,
            &mut printer,
        );
        // Dropping the printer closes the writer's channel; the scope waits for its last
        // write, so the final save below comes after it.
        (result, printer.reports, printer.metrics_error)
    });
    bar.finish_and_clear();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(log) = metrics.as_mut() {
                // Best effort: the training error is what gets reported.
                let _ = log.write(&MetricsEvent::Error {
                    message: &run::cli_message(&e),
                });
            }
            return Err(e.into());
        }
    };
    if let Some(e) = metrics_error {
        return Err(format!("writing the metrics file: {e}").into());
    }
    match run::stop_requested().filter(|_| outcome.progress.step < s.spec.train.steps) {
        Some(signal) => stop(&args, &s, &outcome, metrics.as_mut(), signal),
        None => finish(&args, &s, &outcome, &reports, &mut out, metrics.as_mut()),
    }
}

/// `--solver lbfgs`: the usual set-up (the start model loaded from the --load or --resume
/// file), then the solver module's run.
fn run_lbfgs(args: &Args, plan: &solver::Lbfgs) -> Result<Ended, BoxError> {
    let start = plan.start_file().map(Path::to_path_buf);
    let s = setup(&Args {
        load: start.clone(),
        resume: None,
        steps: None,
        epochs: None,
        kernel: None,
        batch_size: TrainConfig::default().batch_size,
        shuffle_buffer: None,
        ..args.clone()
    })?;
    if let Some(signal) = run::stop_requested() {
        return interrupted_while_loading(args, &s, signal);
    }
    // Fitted before the solve, as for SGD, so an interrupt saves at once.
    let novelty = args.save.as_ref().and_then(|_| s.novelty());
    let cx = solver::Context {
        data: &s.data,
        eval_kernel: s.kernel.as_ref(),
        start: start.is_some().then_some(&s.model),
        isa: run::select_isa(args.simd)?,
        threads: args.threads,
        quiet: args.quiet,
        save: args.save.as_deref(),
        metrics: args.metrics.as_deref(),
        plot_dir: args.plot_dir.as_deref(),
        grid: args.grid,
        novelty: &|| novelty,
        show_images: &|out, predictions| print_test_images(out, &s.data, predictions, args.show),
    };
    Ok(match solver::run(plan, &cx)? {
        solver::Ended::Finished => Ended::Finished,
        solver::Ended::Interrupted(signal) => Ended::Interrupted(signal),
    })
}

/// Stopped while loading: nothing was trained, so there is nothing to save; the metrics say so.
fn interrupted_while_loading(
    args: &Args,
    s: &Setup,
    signal: run::StopSignal,
) -> Result<Ended, BoxError> {
    eprintln!("interrupted while loading");
    if let Some(path) = &args.metrics {
        MetricsLog::create(path)?.write(&MetricsEvent::Interrupted {
            step: s.from.step,
            signal: signal.name,
        })?;
    }
    Ok(Ended::Interrupted(signal))
}

/// What a checkpoint of this run holds besides the model and its progress.
struct Saving<'a> {
    args: &'a Args,
    spec: &'a RunSpec,
    data_dir: &'a Path,
    novelty: Option<&'a Novelty>,
    names: &'a mnist_logreg_cli::classes::ClassNames,
}

impl Saving<'_> {
    /// Write the checkpoint of this run at `progress` to `path`, with the test accuracy once
    /// evaluated.
    fn save(
        &self,
        model: &Model,
        progress: Progress,
        path: &Path,
        accuracy: Option<f64>,
    ) -> Result<(), BoxError> {
        let args = self.args;
        let started_from = args.load.as_deref().or(args.resume.as_deref());
        let meta = self
            .spec
            .checkpoint_metadata(progress, self.data_dir, started_from, accuracy);
        let meta = run::with_class_names(meta, self.names);
        Ok(mnist_logreg_cli::novelty::save_with_novelty(
            path,
            model,
            self.novelty,
            meta,
        )?)
    }
}

/// The checkpoint of this run at `outcome`.
fn save(
    args: &Args,
    s: &Setup,
    outcome: &TrainOutcome,
    path: &Path,
    accuracy: Option<f64>,
) -> Result<(), BoxError> {
    let saving = Saving {
        args,
        spec: &s.spec,
        data_dir: s.data.dir(),
        novelty: s.novelty(),
        names: &s.data.names,
    };
    saving.save(&outcome.model, outcome.progress, path, accuracy)
}

/// An interrupted run: say so, record it, save the model, evaluate nothing.
fn stop(
    args: &Args,
    s: &Setup,
    outcome: &TrainOutcome,
    metrics: Option<&mut MetricsLog>,
    signal: run::StopSignal,
) -> Result<Ended, BoxError> {
    let step = outcome.progress.step;
    eprintln!("interrupted at step {step}");
    if let Some(log) = metrics {
        log.write(&MetricsEvent::Interrupted {
            step,
            signal: signal.name,
        })?;
    }
    if let Some(path) = &args.save {
        save(args, s, outcome, path, None)?;
        let path = path.display();
        eprintln!("saved the model at step {step} to {path}; continue with: train --resume {path}");
    }
    Ok(Ended::Interrupted(signal))
}

/// A finished run: the test accuracy and images, the outputs, the verdict, the timing.
fn finish(
    args: &Args,
    s: &Setup,
    outcome: &TrainOutcome,
    reports: &[Report],
    out: &mut dyn Write,
    metrics: Option<&mut MetricsLog>,
) -> Result<Ended, BoxError> {
    let (spec, data) = (&s.spec, &s.data);
    if outcome.clipped_rows() > 0 && !args.quiet {
        print_clipped(spec, outcome, reports);
    }
    // The training steps' calls, before the evaluation adds its own.
    let sharing = s.kernel.sharing();
    let eval = run::evaluate_test(s.kernel.as_ref(), &outcome.model, data)?;
    writeln!(out, "Test Accuracy: {:.6}", eval.accuracy)?;
    if !args.quiet {
        print_test_images(out, data, &eval.predictions, args.show)?;
    }
    if let Some(path) = &args.save {
        save(args, s, outcome, path, Some(eval.accuracy))?;
        eprintln!("saved the model to {}", path.display());
    }
    if let Some(dir) = &args.plot_dir {
        if reports.is_empty() {
            eprintln!("note: no display step was reached, so there is no curves.svg");
        }
        let (model, names) = (&outcome.model, &data.names);
        match data.dataset() {
            Some(dataset) if data.is_pictures() => plot::run_pictures(
                dir,
                reports,
                &dataset.test,
                &eval.predictions,
                model,
                names,
                args.grid,
            )?,
            _ => {
                // Not 28×28 pictures: the curves and (up to 100 classes) the confusion matrix.
                if !reports.is_empty() {
                    plot::curves(&dir.join("curves.svg"), reports)?;
                }
                let classes = model.classes();
                if classes <= MAX_CONFUSION_CLASSES {
                    let counts = plot::confusion(&eval.predictions, data.test_labels(), classes);
                    plot::confusion_matrix(&dir.join("confusion.svg"), &counts, names)?;
                } else {
                    eprintln!(
                        "note: {classes} classes: confusion.svg is drawn for at most {MAX_CONFUSION_CLASSES}"
                    );
                }
            }
        }
        eprintln!("wrote the plots to {}", dir.display());
    }
    let from_checkpoint = args.load.is_some() || args.resume.is_some();
    let classes = outcome.model.classes();
    let verdict = run::verdict(
        outcome.progress.step,
        from_checkpoint,
        outcome.clipped_rows(),
        &eval.predictions,
        classes,
    );
    if let Some(message) = verdict.message(&data.names, spec.train.learning_rate) {
        eprintln!("{message}");
    }
    if let Some(log) = metrics {
        let summary = run::summary(spec, s.kernel.as_ref(), outcome, &eval, &verdict, data);
        log.write(&MetricsEvent::Summary(&summary))
            .map_err(|e| format!("writing the metrics file: {e}"))?;
    }
    if !args.quiet {
        print_timing(out, s, outcome, &eval, sharing)?;
    }
    Ok(Ended::Finished)
}

/// The rows whose gradient was clipped, per display interval (on stderr, so stdout keeps
/// exactly the tutorial's lines).
fn print_clipped(spec: &RunSpec, outcome: &TrainOutcome, reports: &[Report]) {
    let per_report: Vec<String> = reports.iter().map(|r| r.clipped_rows.to_string()).collect();
    let passed = match spec.clip {
        ClipGradient::Zero => "no",
        ClipGradient::Through => "full",
    };
    let every = spec.train.display_step;
    if per_report.is_empty() {
        // No display step was reached: the total is all there is to say.
        eprintln!(
            "clipped rows (p_true < 1e-9, {passed} gradient): {} over {} step(s)",
            outcome.clipped_rows(),
            outcome.steps_run()
        );
    } else {
        eprintln!(
            "clipped rows (p_true < 1e-9, {passed} gradient) per {every} steps: {}",
            per_report.join(" ")
        );
    }
}

/// The first `show` test images as text, each with the model's prediction (the tutorial's).
fn print_test_images(
    out: &mut dyn Write,
    data: &run::LoadedData,
    predictions: &[u32],
    show: usize,
) -> std::io::Result<()> {
    if !data.is_pictures() {
        return Ok(());
    }
    for (i, &predicted) in predictions.iter().enumerate().take(show) {
        let Some(image) = data.test_image(i) else {
            break;
        };
        let picture = image_to_text(image, SIDE, SIDE);
        write!(out, "\n{picture}")?;
        let label = data.names.label(predicted as usize);
        writeln!(out, "Model prediction: {label}")?;
    }
    Ok(())
}

/// The last line: load, train and evaluation times, and what computed them (with several
/// threads: how many kernel calls ran shared and how many on one thread, `share.rs`'s choice).
fn print_timing(
    out: &mut dyn Write,
    s: &Setup,
    outcome: &TrainOutcome,
    eval: &run::Evaluation,
    sharing: Sharing,
) -> std::io::Result<()> {
    let shared = if s.kernel.threads() > 1 {
        format!(
            " (calls shared {}, alone {})",
            sharing.shared, sharing.alone
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "timing: load {:.1} ms, train {:.1} ms ({} steps, {:.0} images/s), eval {:.2} ms; kernel {}, simd {}, threads {}{shared}",
        s.data.load_time.as_secs_f64() * 1e3,
        outcome.elapsed.as_secs_f64() * 1e3,
        outcome.steps_run(),
        outcome.images_per_sec(s.spec.train.batch_size),
        eval.elapsed.as_secs_f64() * 1e3,
        s.spec.kernel,
        s.kernel.simd(),
        s.kernel.threads()
    )
}

/// The observer of the step loop: step lines, the progress bar, metrics, and the stop check.
struct Printer<'a> {
    out: &'a mut dyn Write,
    bar: &'a ProgressBar,
    quiet: bool,
    metrics: Option<&'a mut MetricsLog>,
    metrics_error: Option<std::io::Error>,
    reports: Vec<Report>,
    batch_size: usize,
    train_samples: usize,
    periodic: Option<Periodic>,
}

/// When to hand the model to the periodic checkpoint's writer (--save-every,
/// --save-every-secs).
struct Periodic {
    /// Every this many steps.
    every_steps: Option<usize>,
    /// When this much time has passed since the last one (or the start).
    every: Option<Duration>,
    last: Instant,
    /// The writer thread's queue (one slot: when a write is still waiting, this one is
    /// skipped and the next one due goes).
    writer: std::sync::mpsc::SyncSender<(Model, Progress)>,
}

impl Periodic {
    /// Periodic checkpoints to `path`, written by a thread of `scope`: the loop only hands it a
    /// copy of the model, and its fsync waits there. A failed write warns once; training goes on.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        args: &Args,
        saving: &'scope Saving<'scope>,
        path: &'scope Path,
    ) -> Periodic {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Model, Progress)>(1);
        scope.spawn(move || {
            let mut failed = false;
            for (model, progress) in rx {
                if let (Err(e), false) = (saving.save(&model, progress, path, None), failed) {
                    eprintln!(
                        "warning: the periodic checkpoint at step {} failed: {}; training goes on",
                        progress.step,
                        run::cli_message(e.as_ref())
                    );
                    failed = true;
                }
            }
        });
        Periodic {
            every_steps: args.save_every,
            every: (args.save_every_secs > 0.0)
                .then(|| Duration::from_secs_f64(args.save_every_secs)),
            last: Instant::now(),
            writer: tx,
        }
    }

    fn on_step(&mut self, model: &Model, progress: &Progress) {
        let by_steps = self
            .every_steps
            .is_some_and(|n| progress.step.is_multiple_of(n));
        let by_time = self.every.is_some_and(|d| self.last.elapsed() >= d);
        if by_steps || by_time {
            // A full queue skips this one; a closed one cannot happen while the loop runs.
            let _ = self.writer.try_send((model.clone(), *progress));
            self.last = Instant::now();
        }
    }
}

impl Observer for &mut Printer<'_> {
    fn on_report(&mut self, r: &Report) {
        if !self.quiet {
            let out = &mut self.out;
            self.bar
                .suspend(|| {
                    writeln!(
                        out,
                        "step: {}, loss: {:.6}, accuracy: {:.6}",
                        r.step, r.loss, r.accuracy
                    )
                })
                .expect("stdout is open (a closed pipe ends the process)");
        }
        if let Some(log) = self
            .metrics
            .as_mut()
            .filter(|_| self.metrics_error.is_none())
        {
            let event = MetricsEvent::report(r, self.batch_size, self.train_samples);
            self.metrics_error = log.write(&event).err();
        }
        self.reports.push(*r);
    }

    fn on_step(&mut self, model: &Model, progress: &Progress) {
        if let Some(periodic) = self.periodic.as_mut() {
            periodic.on_step(model, progress);
        }
    }

    fn after_step(&mut self, step: usize) -> ControlFlow<()> {
        self.bar.set_position(step as u64);
        if run::stop_requested().is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// A progress bar on stderr when both stdout and stderr are terminals and not --quiet;
/// otherwise a hidden one (every call on it is then a no-op).
fn progress_bar(args: &Args, steps: usize, done: usize) -> ProgressBar {
    let interactive = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    if args.quiet || !interactive {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} steps  {elapsed_precise} (eta {eta})",
    )
    .expect("static template")
    .progress_chars("=> ");
    let bar = ProgressBar::new(steps as u64).with_style(style);
    bar.set_position(done as u64);
    bar
}

fn main() -> ExitCode {
    run::end_quietly_on_closed_stdout();
    if let Err(e) = run::install_stop_handlers() {
        eprintln!("warning: cannot catch Ctrl-C ({e}); an interrupt will lose the run");
    }
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let args =
        <Args as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(args, &Given::from_matches(&matches)) {
        Ok(Ended::Finished) => ExitCode::SUCCESS,
        Ok(Ended::Interrupted(signal)) => ExitCode::from(signal.exit_status),
        Err(e) => {
            eprintln!("error: {}", run::cli_message(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
