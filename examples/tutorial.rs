//! The tutorial through the library: 1000 SGD steps of 256 on MNIST, then the test accuracy.
//! `cargo run --release --example tutorial [DATA_DIR]` (default: data/mnist of this checkout).

use mnist_logreg::dataset::{ChecksumPolicy, Dataset};
use mnist_logreg::kernels::KernelKind;
use mnist_logreg::model::Model;
use mnist_logreg::train::{self, Report, TrainConfig, TrainData};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist").to_string());
    let data = Dataset::open(dir.as_ref(), &Default::default(), ChecksumPolicy::Auto)?;
    let kernel = KernelKind::ParallelU8.build(0); // widest SIMD path, one thread per core
    let (cfg, model) = (TrainConfig::default(), Model::tutorial_init(784, 10));
    let print = |r: &Report| {
        println!(
            "step: {}, loss: {:.6}, accuracy: {:.6}",
            r.step, r.loss, r.accuracy
        )
    };
    let train_data = TrainData::u8(&data.train);
    let outcome = train::train(&cfg, kernel.as_ref(), train_data, model, print)?;
    let test = TrainData::u8(&data.test);
    let (stats, _) = train::evaluate(kernel.as_ref(), &outcome.model, test.pixels, test.labels)?;
    println!(
        "Test Accuracy: {:.6}",
        stats.correct as f64 / test.labels.len() as f64
    );
    Ok(())
}
