//! One kernel step on your own buffers: a batch of rows of a pixel array, forward + backward,
//! checked against the scalar reference. `Batch::new` validates every row index and label, so
//! a bad index is an error here, never a read out of bounds.
//! `cargo run --release --example own_buffers`

use mnist_logreg::kernels::{Batch, KernelKind, Pixels};
use mnist_logreg::model::{Grads, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (features, classes, samples) = (784, 10, 1000);
    let pixels: Vec<u8> = (0..features * samples)
        .map(|i| (i * 31 % 256) as u8)
        .collect();
    let labels: Vec<u32> = (0..samples).map(|i| (i % classes) as u32).collect();
    let rows: Vec<usize> = (0..256).map(|i| i * 3).collect();
    let batch = Batch::new(Pixels::U8(&pixels), features, &labels, &rows, classes)?;

    let model = Model::tutorial_init(features, classes);
    let (mut fast, mut slow) = (Grads::zeros_like(&model), Grads::zeros_like(&model));
    let stats = KernelKind::ParallelU8
        .build(0)
        .forward_backward(&model, &batch, &mut fast);
    let reference = KernelKind::Reference
        .build(1)
        .forward_backward(&model, &batch, &mut slow);
    let max_diff = fast
        .dw()
        .iter()
        .zip(slow.dw().iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!(
        "loss {} (reference {}), correct {}, max |ΔdW| {max_diff:.2e}",
        stats.loss, reference.loss, stats.correct
    );

    // A row index past the end is refused with a message.
    let bad = [samples];
    let err = Batch::new(Pixels::U8(&pixels), features, &labels, &bad, classes).unwrap_err();
    println!("row {samples}: {err}");
    Ok(())
}
