//! Hostile values through the public API: every one gets an error or a panic with a message,
//! never undefined behaviour (the kernels read through raw pointers only after `Batch::new`
//! and the shape asserts have checked what they rely on).

use std::panic::{AssertUnwindSafe, catch_unwind};

use mnist_logreg::kernels::{Batch, BatchError, Isa, KernelKind, Pixels};
use mnist_logreg::model::{Grads, Model};
use mnist_logreg::train::{self, TrainConfig, TrainData, TrainError};

const D: usize = 20;
const K: usize = 3;

fn pixels(n: usize) -> Vec<u8> {
    (0..n * D).map(|i| (i * 13 % 256) as u8).collect()
}

/// Every kernel variant on every SIMD path of this CPU.
fn kernels() -> Vec<(KernelKind, Isa)> {
    KernelKind::ALL
        .into_iter()
        .flat_map(|k| Isa::supported().into_iter().map(move |isa| (k, isa)))
        .collect()
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("should have panicked");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn batch_new_refuses_bad_rows_labels_and_shapes() {
    let px = pixels(10);
    let labels: Vec<u8> = (0..10).map(|i| i % K as u8).collect();
    let p = Pixels::U8(&px);
    assert_eq!(
        Batch::new(p, D, &labels, &[3, 10], K).unwrap_err(),
        BatchError::Row {
            row: 10,
            samples: 10
        }
    );
    assert!(matches!(
        Batch::new(p, D, &labels, &[usize::MAX], K),
        Err(BatchError::Row { .. })
    ));
    assert!(matches!(
        Batch::new(p, D + 1, &labels, &[0], K),
        Err(BatchError::Shape { .. })
    ));
    assert!(matches!(
        Batch::new(p, 0, &labels, &[0], K),
        Err(BatchError::Shape { .. })
    ));
    assert!(matches!(
        Batch::new(p, D, &labels[..9], &[0], K),
        Err(BatchError::Shape { .. })
    ));
    assert_eq!(
        Batch::new(p, D, &labels, &[0, 2], 2).unwrap_err(),
        BatchError::Label {
            row: 2,
            label: 2,
            classes: 2
        }
    );
    let msg = Batch::new(p, D, &labels, &[10], K).unwrap_err().to_string();
    assert!(
        msg.contains("row index 10 is out of range for 10 samples"),
        "{msg}"
    );
}

#[test]
fn kernels_panic_with_a_message_on_a_model_that_does_not_fit() {
    let px = pixels(8);
    let labels = [0u8, 1, 2, 0, 1, 2, 0, 1];
    let rows: Vec<usize> = (0..8).collect();
    let batch = Batch::new(Pixels::U8(&px), D, &labels, &rows, K).unwrap();
    for (kind, isa) in kernels() {
        let kernel = kind.build_on(isa, 2);
        let wide = Model::tutorial_init(D + 5, K);
        let mut g = Grads::zeros_like(&wide);
        let msg = panic_message(|| {
            kernel.forward_backward(&wide, &batch, &mut g);
        });
        assert!(
            msg.contains("batch has 20 features, model expects 25"),
            "{kind}: {msg}"
        );
        // Public fields let a caller break the model's own shape: still a message.
        let mut broken = Model::tutorial_init(D, K);
        broken.b.pop();
        let msg = panic_message(|| {
            kernel.forward(&broken, &batch, None);
        });
        assert!(msg.contains("model buffers do not hold"), "{kind}: {msg}");
    }
}

#[test]
fn prefetch_hints_past_the_end_change_nothing() {
    let n = 300;
    let px = pixels(n);
    let labels: Vec<u8> = (0..n).map(|i| (i % K) as u8).collect();
    let rows: Vec<usize> = (0..n).rev().collect();
    let wild = vec![usize::MAX / 3; n];
    let model = {
        let mut m = Model::tutorial_init(D, K);
        for (i, w) in m.w.iter_mut().enumerate() {
            *w = (i % 7) as f32 * 0.01;
        }
        m
    };
    for (kind, isa) in kernels() {
        let kernel = kind.build_on(isa, 2);
        let plain = Batch::new(Pixels::U8(&px), D, &labels, &rows, K).unwrap();
        let hinted = plain.with_next(&wild);
        let (mut a, mut b) = (Grads::zeros_like(&model), Grads::zeros_like(&model));
        let sa = kernel.forward_backward(&model, &plain, &mut a);
        let sb = kernel.forward_backward(&model, &hinted, &mut b);
        assert_eq!(sa, sb, "{kind} on {isa}");
        assert!(
            a.dw.iter()
                .zip(b.dw.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }
}

#[test]
fn training_and_evaluation_refuse_data_that_does_not_fit() {
    let px = pixels(10);
    let labels: Vec<u8> = (0..10).map(|i| (i % 5) as u8).collect();
    let kernel = KernelKind::FusedU8.build(1);
    let data = TrainData {
        pixels: Pixels::U8(&px),
        labels: &labels,
        features: D,
    };
    let train_err = |cfg: &TrainConfig, data: TrainData, model: Model| {
        train::train(cfg, kernel.as_ref(), data, model, |_| {}).unwrap_err()
    };
    let tutorial = TrainConfig::default();
    // Labels up to 4 for a 3-class model.
    let err = train_err(&tutorial, data, Model::tutorial_init(D, K));
    assert!(
        matches!(err, TrainError::Batch(BatchError::Label { .. })),
        "{err}"
    );
    // Features that do not divide the pixels.
    let odd = TrainData {
        features: D - 1,
        ..data
    };
    let err = train_err(&tutorial, odd, Model::tutorial_init(D - 1, 5));
    assert!(
        matches!(err, TrainError::Batch(BatchError::Shape { .. })),
        "{err}"
    );
    // An empty training set, a zero batch size.
    let empty = TrainData {
        pixels: Pixels::U8(&[]),
        labels: &[],
        features: D,
    };
    let err = train_err(&tutorial, empty, Model::tutorial_init(D, 5));
    assert!(
        err.to_string().contains("the training set is empty"),
        "{err}"
    );
    let cfg = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    let err = train_err(&cfg, data, Model::tutorial_init(D, 5));
    assert!(
        err.to_string().contains("--batch-size must be at least 1"),
        "{err}"
    );
    // Evaluation checks labels against the model too.
    let err = train::evaluate(
        kernel.as_ref(),
        &Model::tutorial_init(D, K),
        data.pixels,
        &labels,
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::Batch(BatchError::Label { .. })),
        "{err}"
    );
}

#[test]
fn an_empty_batch_is_valid_and_gives_zero_gradients() {
    let px = pixels(4);
    let labels = [0u8, 1, 2, 0];
    let batch = Batch::new(Pixels::U8(&px), D, &labels, &[], K).unwrap();
    let model = Model::tutorial_init(D, K);
    for (kind, isa) in kernels() {
        let mut g = Grads::zeros_like(&model);
        g.dw.fill(3.0);
        let s = kind
            .build_on(isa, 2)
            .forward_backward(&model, &batch, &mut g);
        assert_eq!((s.loss, s.correct, s.clipped), (0.0, 0, 0), "{kind}");
        assert!(
            g.dw.iter().chain(&g.db).all(|&v| v == 0.0),
            "{kind} on {isa}"
        );
    }
}
