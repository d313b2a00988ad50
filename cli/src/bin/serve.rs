//! `serve`: a local web page to draw digits and watch the model read them (feature `serve`).
//! Flags and printing over `mnist_logreg_cli::serve` and the run pipeline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mnist_logreg::dataset::Dataset;
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{KernelKind, SimdChoice};
use mnist_logreg_cli::novelty::Novelty;
use mnist_logreg_cli::run::{self, DataSource, RunSpec};
use mnist_logreg_cli::serve::{self, App, ServeOptions};

/// Serve a page where you draw a digit and watch the model read it, with a JSON API.
///
/// GET / is the page (everything embedded, nothing fetched from the internet): a drawing pad
/// for mouse, pen and touch, the probabilities while you draw, the 28×28 image the model sees,
/// and a button that shows a random MNIST test digit. POST /api/predict takes
/// {"pixels": [784 integers 0–255]} or an image body (image/png, image/jpeg,
/// image/x-portable-graymap, prepared like `predict`); GET /api/model describes the model;
/// GET /healthz answers {"status": "ok"}. Ctrl-C or SIGTERM stops the server cleanly.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// The model (safetensors, from `train --save`). Without it, the tutorial's model is
    /// trained at start-up (1000 steps, about a tenth of a second).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Dataset directory: the training data when no --model is given, the test digits and
    /// the test accuracy otherwise. Default: data/mnist of this checkout.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on (127.0.0.1 keeps the page to this machine).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Seconds a client has to send a request's headers, and a request to complete.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Instruction set of the kernel that trains (without --model) and answers (the fused
    /// kernel on u8 pixels; /api/model names both). As for `train`; without the flag,
    /// MNIST_LOGREG_SIMD.
    #[arg(long, value_enum)]
    simd: Option<SimdChoice>,
    /// Class names, one per line (default: the names a --model was trained with; without
    /// them, class-names.txt in the data directory if present).
    #[arg(long, value_name = "FILE")]
    class_names: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error>;

/// The kernel that answers requests: the fused one on u8 pixels, one thread per request, on
/// the instruction set of --simd.
const ANSWERING_KERNEL: KernelKind = KernelKind::FusedU8;

/// The app: the model from --model or trained now, with the test split when there is data.
fn build_app(args: &Args) -> Result<App, BoxError> {
    let isa = run::select_isa(args.simd)?;
    let dir = args.data.clone().unwrap_or_else(run::default_data_dir);
    let Some(path) = &args.model else {
        let source = DataSource {
            class_names: args.class_names.clone(),
            ..DataSource::new(&dir)
        };
        let run::TutorialRun {
            data,
            outcome,
            eval,
            ..
        } = run::train_tutorial(&source, isa)?;
        eprintln!(
            "no --model: trained the tutorial's model ({} steps) in {:.0} ms; test accuracy {:.4}",
            outcome.progress.step,
            outcome.elapsed.as_secs_f64() * 1e3,
            eval.accuracy
        );
        let (dataset, names) = data
            .into_mnist()
            .expect("the tutorial trains on a data directory");
        let novelty = Novelty::fit(dataset.train.pixels(), dataset.test.pixels()).ok();
        return Ok(App::new(
            outcome.model,
            novelty,
            names,
            Some(dataset.test),
            Some(eval.accuracy),
        )
        .with_kernel(ANSWERING_KERNEL, isa));
    };
    let (model, novelty, meta) = run::load_picture_model(path)?;
    if novelty.is_none() {
        eprintln!("{}", run::NO_NOVELTY_NOTE);
    }
    let (names, warnings) =
        run::class_names_of(&meta, model.classes(), args.class_names.as_deref(), &dir)?;
    for warning in warnings {
        eprintln!("{warning}");
    }
    let accuracy = RunSpec::recorded_accuracy(&meta);
    let test = match Dataset::open_test(&dir, &LoadOptions::default()) {
        Ok(test) => Some(test),
        Err(e) => {
            eprintln!("note: no test digits ({e}); the test-digit button is off");
            None
        }
    };
    Ok(App::new(model, novelty, names, test, accuracy).with_kernel(ANSWERING_KERNEL, isa))
}

/// The shutdown signal: SIGINT or SIGTERM. The handlers are registered here, when it is
/// called (not when the future is first polled), so a signal that arrives right after the
/// "listening" line already stops the server cleanly.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut int, mut term) = (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        );
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn run(args: Args) -> Result<(), BoxError> {
    let app = Arc::new(build_app(&args)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        let stop = stop_signal()?;
        let host = if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        println!("listening on http://{host}:{}/", addr.port());
        std::io::stdout().flush()?;
        let options = ServeOptions {
            timeout: Duration::from_secs(args.timeout),
        };
        serve::serve(listener, app, options, stop).await?;
        eprintln!("stopped");
        Ok::<(), BoxError>(())
    })
}

fn main() -> ExitCode {
    run::end_quietly_on_closed_stdout();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", run::cli_message(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
