//! Hostile values through the public API: every one gets an error or a panic with a message,
//! never undefined behaviour (the kernels read through raw pointers only after `Batch::new`,
//! the private buffers of `Model`/`Grads` and the kernels' shape checks have settled what
//! they rely on). Every case runs on every kernel × SIMD path of this CPU; CI runs this file
//! once more under AddressSanitizer.

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
    let labels: Vec<u32> = (0..10).map(|i| i % K as u32).collect();
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
fn kernels_panic_with_a_message_on_arguments_that_do_not_fit() {
    let px = pixels(8);
    let labels = [0u32, 1, 2, 0, 1, 2, 0, 1];
    let rows: Vec<usize> = (0..8).collect();
    let batch = Batch::new(Pixels::U8(&px), D, &labels, &rows, K).unwrap();
    // Validated for 20 classes: labels up to 2 are fine for that, not for a 2-class model.
    let loose = Batch::new(Pixels::U8(&px), D, &labels, &rows, 20).unwrap();
    let model = Model::tutorial_init(D, K);
    for (kind, isa) in kernels() {
        let kernel = kind.build_on(isa, 2);
        let expect = |msg: String, want: &str| {
            assert!(
                msg.contains(want),
                "{kind} on {isa}: {msg:?} lacks {want:?}"
            )
        };
        let wide = Model::tutorial_init(D + 5, K);
        let mut g = Grads::zeros_like(&wide);
        expect(
            panic_message(|| {
                kernel.forward_backward(&wide, &batch, &mut g);
            }),
            "batch has 20 features, model expects 25",
        );
        expect(
            panic_message(|| {
                kernel.forward(&wide, &batch, None);
            }),
            "batch has 20 features, model expects 25",
        );
        let two = Model::tutorial_init(D, 2);
        let mut g2 = Grads::zeros_like(&two);
        expect(
            panic_message(|| {
                kernel.forward_backward(&two, &loose, &mut g2);
            }),
            "batch has label 2, model has 2 classes",
        );
        expect(
            panic_message(|| {
                kernel.forward(&two, &loose, None);
            }),
            "batch has label 2, model has 2 classes",
        );
        // Gradients of a smaller model (the buffers are too short for this one) and of a
        // larger one.
        for other in [
            Model::tutorial_init(D, 2),
            Model::tutorial_init(D, 7),
            Model::tutorial_init(D - 1, K),
        ] {
            let mut g = Grads::zeros_like(&other);
            expect(
                panic_message(|| {
                    kernel.forward_backward(&model, &batch, &mut g);
                }),
                &format!(
                    "gradients shaped for a {} × {} model, the model is {D} × {K}",
                    other.features(),
                    other.classes()
                ),
            );
        }
        let mut short = [0u32; 7];
        expect(
            panic_message(|| {
                kernel.forward(&model, &batch, Some(&mut short));
            }),
            "predictions buffer holds 7 slots for a batch of 8 rows",
        );
        // What does fit still runs, with predictions to spare.
        let mut spare = [9u32; 9];
        kernel.forward(&model, &batch, Some(&mut spare));
        assert_eq!(spare[8], 9, "{kind}: a slot past the batch was written");
    }
}

#[test]
fn a_model_is_built_only_with_buffers_of_its_shape() {
    use mnist_logreg::model::ModelError;
    assert!(matches!(
        Model::new(D, K, vec![0.0; D * K - 1], vec![0.0; K]),
        Err(ModelError::Weights { got, .. }) if got == D * K - 1
    ));
    assert!(matches!(
        Model::new(D, K, vec![0.0; D * K], vec![0.0; K + 1]),
        Err(ModelError::Bias { got: 4, classes: 3 })
    ));
    assert!(matches!(Model::zeros(0, K), Err(ModelError::Empty { .. })));
    assert!(matches!(
        Model::zeros(usize::MAX, 2),
        Err(ModelError::Empty { .. })
    ));
    let m = Model::new(D, K, vec![0.5; D * K], vec![1.0; K]).unwrap();
    assert_eq!((m.w().len(), m.b().len()), (D * K, K));
    let g = Grads::zeros_like(&m);
    assert_eq!((g.dw().len(), g.db().len()), (D * K, K));
    assert!(g.fits(&m) && !g.fits(&Model::tutorial_init(D, K + 1)));
    let msg = panic_message(|| Model::tutorial_init(D, K + 1).sgd_step(&g, 0.1));
    assert!(
        msg.contains("gradients of a 20 × 3 model applied to a 20 × 4 model"),
        "{msg}"
    );
}

#[test]
fn one_sample_prediction_agrees_with_the_kernels() {
    let n = 40;
    let px = pixels(n);
    let labels: Vec<u32> = (0..n).map(|i| (i % K) as u32).collect();
    let mut model = Model::tutorial_init(D, K);
    for (i, w) in model.w_mut().iter_mut().enumerate() {
        *w = ((i * 7) % 11) as f32 * 0.01 - 0.05;
    }
    let (stats, predictions) = train::evaluate(
        KernelKind::Reference.build(1).as_ref(),
        &model,
        Pixels::U8(&px),
        &labels,
    )
    .unwrap();
    let mut correct = 0;
    for (i, sample) in px.chunks_exact(D).enumerate() {
        let p = model.predict(sample).unwrap();
        assert_eq!(p.class, predictions[i] as usize, "sample {i}");
        assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        correct += (p.class == labels[i] as usize) as usize;
    }
    assert_eq!(correct, stats.correct);
    assert_eq!(stats.accuracy(), correct as f64 / n as f64);
    let err = model.predict(&px[..D - 1]).unwrap_err();
    assert_eq!(err.to_string(), "19 pixels given, the model reads 20");
}

#[test]
fn prefetch_hints_past_the_end_change_nothing() {
    let n = 300;
    let px = pixels(n);
    let labels: Vec<u32> = (0..n).map(|i| (i % K) as u32).collect();
    let rows: Vec<usize> = (0..n).rev().collect();
    let wild = vec![usize::MAX / 3; n];
    let model = {
        let mut m = Model::tutorial_init(D, K);
        for (i, w) in m.w_mut().iter_mut().enumerate() {
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
            a.dw()
                .iter()
                .zip(b.dw().iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }
}

#[test]
fn training_and_evaluation_refuse_data_that_does_not_fit() {
    let px = pixels(10);
    let labels: Vec<u32> = (0..10).map(|i| (i % 5) as u32).collect();
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
        err.to_string().contains("the training set has no samples"),
        "{err}"
    );
    let cfg = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    let err = train_err(&cfg, data, Model::tutorial_init(D, 5));
    assert!(
        err.to_string().contains("batch_size must be at least 1"),
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
    let labels = [0u32, 1, 2, 0];
    let batch = Batch::new(Pixels::U8(&px), D, &labels, &[], K).unwrap();
    let model = Model::tutorial_init(D, K);
    for (kind, isa) in kernels() {
        let mut g = Grads::zeros_like(&model);
        g.dw_mut().fill(3.0);
        let s = kind
            .build_on(isa, 2)
            .forward_backward(&model, &batch, &mut g);
        assert_eq!((s.loss, s.correct, s.clipped), (0.0, 0, 0), "{kind}");
        assert!(
            g.dw().iter().chain(g.db()).all(|&v| v == 0.0),
            "{kind} on {isa}"
        );
    }
}
