//! `fetch`: download the four MNIST files for machines without a copy (feature `fetch`).
// The flags' doc comments are `--help` text read in a terminal, where a URL is plain text.
#![allow(rustdoc::bare_urls)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mnist_logreg::fetch::{self, FetchOptions, FileOutcome};

/// Download MNIST's four .gz files into --dir from the public mirrors (tried in order), verify
/// the SHA-256 of their decompressed bytes, and only then give them their final names.
///
/// Downloads go to `<name>.partial` first; an interrupted download is resumed on the next run
/// (HTTP Range) or restarted when the server does not support that. Files already present and
/// valid are not downloaded again.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Directory to write the files into (created if missing).
    #[arg(long, default_value = "data/mnist")]
    dir: PathBuf,
    /// Base URL of a mirror (ending in /); repeat to try several in order. Replaces the
    /// built-in list: https://ossci-datasets.s3.amazonaws.com/mnist/,
    /// https://storage.googleapis.com/cvdf-datasets/mnist/, http://yann.lecun.com/exdb/mnist/.
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// Seconds to wait for a connection, and for each read.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut opts = FetchOptions {
        connect_timeout: std::time::Duration::from_secs(args.timeout),
        read_timeout: std::time::Duration::from_secs(args.timeout),
        ..FetchOptions::default()
    };
    if !args.mirrors.is_empty() {
        opts.mirrors = args
            .mirrors
            .iter()
            .map(|m| {
                if m.ends_with('/') {
                    m.clone()
                } else {
                    format!("{m}/")
                }
            })
            .collect();
    }
    let files = fetch::mnist_files();
    match fetch::fetch_all(&args.dir, &files, &opts, |line| eprintln!("{line}")) {
        Ok(outcomes) => {
            for (spec, outcome) in files.iter().zip(outcomes) {
                match outcome {
                    FileOutcome::Present => println!("{}: present, verified", spec.name),
                    FileOutcome::Downloaded { url, resumed } => println!(
                        "{}: {} from {url}, verified",
                        spec.name,
                        if resumed { "resumed" } else { "downloaded" }
                    ),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
