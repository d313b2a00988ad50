//! Training on arrays that never were IDX files: 2-D points in three clusters, as `f32`
//! features, classified by the same softmax regression and kernels as MNIST.
//! `cargo run --release --example in_memory`

use mnist_logreg::kernels::{KernelKind, Pixels};
use mnist_logreg::model::Model;
use mnist_logreg::train::{self, TrainConfig, TrainData};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 3 classes around (0.2, 0.2), (0.8, 0.2) and (0.5, 0.8), 600 points, a fixed jitter.
    let centres = [(0.2f32, 0.2f32), (0.8, 0.2), (0.5, 0.8)];
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    for i in 0..600u32 {
        let class = (i % 3) as usize;
        let jitter = |k: u32| {
            ((i.wrapping_mul(2654435761).rotate_left(k) % 1000) as f32 / 1000.0 - 0.5) * 0.3
        };
        features.extend([centres[class].0 + jitter(7), centres[class].1 + jitter(19)]);
        labels.push(class as u32);
    }
    let data = TrainData {
        pixels: Pixels::F32(&features),
        labels: &labels,
        features: 2,
    };
    let cfg = TrainConfig {
        steps: 300,
        batch_size: 32,
        learning_rate: 0.1,
        display_step: 100,
        ..TrainConfig::default()
    };
    let kernel = KernelKind::Fused.build(1);
    // Zero weights: `tutorial_init`'s ones would give every class the same logit here too.
    let mut model = Model::tutorial_init(2, 3);
    model.w_mut().fill(0.0);
    let outcome = train::train(&cfg, kernel.as_ref(), data, model, |r| {
        println!(
            "step {}: batch loss {:.4}, batch accuracy {:.3}",
            r.step, r.loss, r.accuracy
        )
    })?;
    let (stats, _) = train::evaluate(kernel.as_ref(), &outcome.model, data.pixels, &labels)?;
    println!("training accuracy: {}/{}", stats.correct, labels.len());
    Ok(())
}
