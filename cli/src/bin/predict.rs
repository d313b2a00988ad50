//! `predict`: classify images with a model saved by `train --save`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mnist_logreg::dataset::Dataset;
use mnist_logreg::idx::LoadOptions;
use mnist_logreg_cli::answer::Judge;
use mnist_logreg_cli::preprocess::{self, Invert, SIDE};
use mnist_logreg_cli::render::image_to_text;
use mnist_logreg_cli::run;

/// Classify images with a model saved by `train --save`: the first N test images of --data, or
/// your own image files (PNG, JPEG, PGM/PPM, any size).
///
/// Each input is shown in the terminal as the model sees it, followed by the probability of
/// every class. An answer for an input unlike the training digits gets a warning: the
/// novelty score `train --save` stores with the model (calibrated to doubt 0.5% of the test
/// digits) and the conversion's notes on the input (cut off at its edges, tiny) decide. Image files are converted like MNIST's digits: the paper's level
/// and its gradient are estimated and subtracted, pictures on bright paper are inverted
/// (--invert), grain, specks and a frame around the picture are removed, and the digit's
/// bounding box is scaled so its longer side is 20 pixels and placed in a 28×28 frame with its
/// centre of mass at the centre.
///
/// Feature files (`.npy`, or IDX of any element type and shape, as `train --train-images`
/// reads them; told apart from pictures by their first bytes) are classified row by row
/// instead: one line `row<TAB>class<TAB>probability` per sample.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// The model (safetensors, as written by `train --save`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Image files to classify; without any, the first --first test images of --data.
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// How many test images to classify when no IMAGE is given.
    #[arg(long, default_value_t = 10, value_name = "N")]
    first: usize,
    /// Dataset directory for the test images (and its class-names.txt). Default: data/mnist
    /// of this checkout.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Whether to invert image files so the ink is bright.
    #[arg(long, value_enum, default_value = "auto")]
    invert: Invert,
    /// Class names, one per line (default: the names the model was trained with; for a model
    /// saved without them, class-names.txt in the data directory if present).
    #[arg(long, value_name = "FILE")]
    class_names: Option<PathBuf>,
    /// Do not draw the inputs in the terminal.
    #[arg(long)]
    no_render: bool,
    /// Also write each converted 28×28 input as a PNG into this directory, named after its
    /// input (`test-00042.png` for test image 42); for a picture file also the stages of its
    /// conversion, NAME-1-background.png (the paper's level) and NAME-2-ink.png (the ink found).
    #[arg(long, value_name = "DIR")]
    save_prepared: Option<PathBuf>,
}

/// One input ready for the model.
struct Sample {
    title: String,
    /// The file name its prepared picture gets under --save-prepared.
    name: String,
    pixels: Vec<u8>,
    truth: Option<u32>,
    /// What the hand-made rules of `preprocess` noted.
    rules: Vec<preprocess::Unlike>,
    /// The stages of preparing a picture file (none for a test image).
    stages: Option<preprocess::Stages>,
}

/// What one answer was.
struct Outcome {
    /// It has a label and the answer is right.
    correct: bool,
    /// It deserves doubt.
    doubted: bool,
}

/// Classify one 28×28 input and print it.
fn report(judge: &Judge, sample: &Sample, render: bool) -> Outcome {
    let answer = judge.answer(&sample.pixels, &sample.rules);
    let names = judge.names();
    let (best, probs, doubts) = (answer.class, answer.probabilities, answer.warnings);
    println!("== {}", sample.title);
    if render {
        print!("{}", image_to_text(&sample.pixels, SIDE, SIDE));
    }
    let truth = match sample.truth {
        Some(t) if t as usize == best => " (correct)".to_string(),
        Some(t) => format!(" (wrong: the label is {})", names.label(t as usize)),
        None => String::new(),
    };
    println!(
        "prediction: {} with p = {:.4}{truth}",
        names.label(best),
        probs[best]
    );
    if let Some((first, rest)) = doubts.split_first() {
        println!("warning: doubt this answer: {first}");
        for why in rest {
            println!("  also: {why}");
        }
    }
    let width = (0..names.len())
        .map(|c| names.label(c).chars().count())
        .max()
        .unwrap_or(1);
    for (c, p) in probs.iter().enumerate() {
        let bar = "█".repeat((p * 40.0).round() as usize);
        let line = format!("  {:>width$}  {p:.4}  {bar}", names.label(c));
        println!("{}", line.trim_end());
    }
    println!();
    Outcome {
        correct: sample.truth == Some(best as u32),
        doubted: !doubts.is_empty(),
    }
}

/// True when `path` starts like a feature file (`.npy`, IDX, or gzip of either) rather than
/// a picture.
fn is_feature_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    read.is_ok()
        && (head.starts_with(b"\x93NUM")
            || head.starts_with(&[0x1f, 0x8b])
            || (head[..2] == [0, 0] && matches!(head[2], 0x08 | 0x09 | 0x0B..=0x0E)))
}

/// Classify every row of feature files: `row<TAB>class<TAB>probability` (a `# FILE` line
/// before each file's rows when there are several).
fn predict_rows(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    use mnist_logreg::kernels::Pixels;
    use std::io::Write;
    let (model, _) = mnist_logreg::checkpoint::load(&args.model)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for path in &args.images {
        let file = mnist_logreg::samples::FeatureFile::open(path, &LoadOptions::default())?;
        if file.features() != model.features() {
            return Err(format!(
                "{}: {} features per sample, the model {} reads {}",
                path.display(),
                file.features(),
                args.model.display(),
                model.features()
            )
            .into());
        }
        if args.images.len() > 1 {
            writeln!(out, "# {}", path.display())?;
        }
        let d = file.features();
        for row in 0..file.len() {
            let p = match file.pixels() {
                Pixels::U8(x) => model.predict(&x[row * d..(row + 1) * d])?,
                Pixels::F32(x) => model.predict_f32(&x[row * d..(row + 1) * d])?,
            };
            writeln!(out, "{row}\t{}\t{:.6}", p.class, p.probabilities[p.class])?;
        }
    }
    out.flush()?;
    Ok(true)
}

fn run(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
    if !args.images.is_empty() && args.images.iter().all(|p| is_feature_file(p)) {
        return predict_rows(&args);
    }
    let (model, novelty, meta) = run::load_picture_model(&args.model)?;
    if novelty.is_none() {
        eprintln!("{}", run::NO_NOVELTY_NOTE);
    }
    let data_dir = args.data.clone().unwrap_or_else(run::default_data_dir);
    let (names, warnings) = run::class_names_of(
        &meta,
        model.classes(),
        args.class_names.as_deref(),
        &data_dir,
    )?;
    for warning in warnings {
        eprintln!("{warning}");
    }
    if let Some(dir) = &args.save_prepared {
        run::check_output_dir(dir)?;
    }
    let invert = args.invert;

    let mut all_ok = true;
    let mut inputs = Vec::new();
    if args.images.is_empty() {
        // Only the test files are needed.
        let test = Dataset::open_test(&data_dir, &LoadOptions::default())?;
        for i in 0..args.first.min(test.len()) {
            let pixels = test.image(i).to_vec();
            inputs.push(Sample {
                title: format!("test image {i}"),
                name: format!("test-{i:05}.png"),
                rules: preprocess::unlike_mnist(&pixels),
                stages: None,
                pixels,
                truth: Some(test.labels()[i]),
            });
        }
    } else {
        for path in &args.images {
            match prepare(path, invert) {
                Ok(input) => inputs.push(input),
                Err(e) => {
                    eprintln!("error: {}", run::cli_message(e.as_ref()));
                    all_ok = false;
                }
            }
        }
    }
    let judge = Judge::new(model, novelty, names);
    let (mut correct, mut doubted) = (0, 0);
    for input in &inputs {
        let answer = report(&judge, input, !args.no_render);
        correct += usize::from(answer.correct);
        doubted += usize::from(answer.doubted);
    }
    if let Some(dir) = &args.save_prepared {
        save_prepared(dir, &inputs)?;
    }
    if args.images.is_empty() {
        println!("{correct} of {} correct", inputs.len());
        let share = |n: usize| 100.0 * n as f64 / inputs.len().max(1) as f64;
        match judge.novelty() {
            Some(n) => println!(
                "{doubted} of {} doubted ({:.2}%; the novelty score was calibrated to doubt {:.2}% of the test split)",
                inputs.len(),
                share(doubted),
                100.0 * n.flagged_share()
            ),
            None => println!(
                "{doubted} of {} doubted ({:.2}%)",
                inputs.len(),
                share(doubted)
            ),
        }
    }
    Ok(all_ok)
}

/// Write each input's prepared 28×28 picture into `dir` under its name (a second input of
/// the same name gets `-2`, `-3`, …), and for a picture file its stages beside it:
/// `NAME-1-background.png` (the paper's level the conversion estimated) and `NAME-2-ink.png`
/// (the ink it found, white on black); say where they went.
fn save_prepared(dir: &Path, inputs: &[Sample]) -> Result<(), Box<dyn std::error::Error>> {
    let mut taken = std::collections::HashSet::new();
    let write = |path: &Path, pixels: &[u8], w: usize, h: usize| {
        image::save_buffer(
            path,
            pixels,
            w as u32,
            h as u32,
            image::ExtendedColorType::L8,
        )
        .map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut stages = 0;
    for input in inputs {
        let stem = input.name.trim_end_matches(".png");
        let stem = (1..)
            .map(|k| match k {
                1 => stem.to_string(),
                _ => format!("{stem}-{k}"),
            })
            .find(|n| taken.insert(n.clone()))
            .expect("an unused name");
        write(&dir.join(format!("{stem}.png")), &input.pixels, SIDE, SIDE)?;
        if let Some(s) = &input.stages {
            let background = dir.join(format!("{stem}-1-background.png"));
            write(&background, &s.background, s.width, s.height)?;
            write(
                &dir.join(format!("{stem}-2-ink.png")),
                &s.ink,
                s.width,
                s.height,
            )?;
            stages += 1;
        }
    }
    let and_stages = if stages > 0 {
        format!(" (and the background and ink stages of {stages} picture file(s))")
    } else {
        String::new()
    };
    eprintln!(
        "wrote {} prepared 28×28 input(s){and_stages} to {}",
        inputs.len(),
        dir.display()
    );
    Ok(())
}

fn prepare(path: &Path, invert: Invert) -> Result<Sample, Box<dyn std::error::Error>> {
    let gray = preprocess::load_gray(path)?;
    let prepared = preprocess::to_mnist(&gray, invert).map_err(|e| match e {
        preprocess::PreprocessError::Blank if invert != Invert::Never => format!(
            "{}: {e}; for light ink on a dark picture, --invert never keeps the polarity",
            path.display()
        ),
        e => format!("{}: {e}", path.display()),
    })?;
    let stem = path
        .file_stem()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    Ok(Sample {
        name: format!("{stem}.png"),
        title: format!(
            "{} ({}×{}{})",
            path.display(),
            gray.width,
            gray.height,
            if prepared.inverted { ", inverted" } else { "" }
        ),
        pixels: prepared.pixels,
        truth: None,
        rules: prepared.unlike,
        stages: Some(prepared.stages),
    })
}

fn main() -> ExitCode {
    run::end_quietly_on_closed_stdout();
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", run::cli_message(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
