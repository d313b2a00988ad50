//! The tutorial through the library: 1000 SGD steps of 256 on MNIST, then the test accuracy.
//! `cargo run --release --example tutorial [DATA_DIR]` (default: data/mnist of this checkout).

use mnist_logreg::dataset::{self, ChecksumPolicy, Dataset};
use mnist_logreg::kernels::{KernelKind, Pixels};
use mnist_logreg::model::Model;
use mnist_logreg::train::{self, TrainConfig, TrainData};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(dataset::default_dir, Into::into);
    let data = Dataset::open(&dir, &Default::default(), ChecksumPolicy::Auto)?;
    let kernel = KernelKind::ParallelU8.build(0);
    let (d, train_px) = (data.train.features(), Pixels::U8(data.train.pixels()));
    let train_data = TrainData {
        pixels: train_px,
        labels: data.train.labels(),
        features: d,
    };
    let model = Model::tutorial_init(d, mnist_logreg::MNIST_CLASSES);
    let outcome = train::train(
        &TrainConfig::default(),
        kernel.as_ref(),
        train_data,
        model,
        |r| {
            println!(
                "step: {}, loss: {:.6}, accuracy: {:.6}",
                r.step, r.loss, r.accuracy
            )
        },
    )?;
    let test_px = Pixels::U8(data.test.pixels());
    let (stats, _) = train::evaluate(kernel.as_ref(), &outcome.model, test_px, data.test.labels())?;
    println!(
        "Test Accuracy: {:.6}",
        stats.correct as f64 / data.test.len() as f64
    );
    Ok(())
}
