//! The samplers: the tutorial's streaming shuffle buffer, per-epoch permutations, sequential.

use mnist_logreg::batch::{Sampler, Shuffle};

#[test]
fn shuffle_buffer_semantics() {
    // Output i can only be an element already read into the buffer: input index < size + i
    // (inputs are the repeated data set 0..n, 0..n, …).
    let (n, size) = (1000, 50);
    let mut s = Sampler::new(Shuffle::Buffer { size }, n, 3);
    let out: Vec<usize> = (0..3 * n).map(|_| s.next_index()).collect();
    // Track which element of the endless input stream each output is.
    let mut seen = vec![0usize; n];
    for (i, &x) in out.iter().enumerate() {
        let stream_pos = x + seen[x] * n;
        assert!(
            stream_pos < size + i,
            "output {i} = stream element {stream_pos}"
        );
        seen[x] += 1;
    }
    // First output is drawn from the first `size` elements.
    assert!(out[0] < size);
}

#[test]
fn shuffle_buffer_covers_everything_each_pass() {
    // Over the first n outputs, every index appears except at most `size` still buffered.
    let (n, size) = (60_000, 5000);
    let mut s = Sampler::new(Shuffle::Buffer { size }, n, 0);
    let mut count = vec![0u32; n];
    for _ in 0..n {
        count[s.next_index()] += 1;
    }
    let missing = count.iter().filter(|&&c| c == 0).count();
    assert!(missing <= size, "{missing} never drawn");
    assert!(count.iter().all(|&c| c <= 2));
    // After two passes everything has appeared.
    for _ in 0..n {
        count[s.next_index()] += 1;
    }
    assert!(count.iter().all(|&c| c > 0));
}

#[test]
fn shuffle_buffer_draws_uniformly_from_the_buffer() {
    // With the buffer full of the first `size` items, the first output is uniform over them:
    // a chi-square test over many seeds (9 degrees of freedom, p = 0.001 critical ≈ 27.9).
    let size = 10;
    let trials = 20_000;
    let mut hist = [0f64; 10];
    for seed in 0..trials {
        hist[Sampler::new(Shuffle::Buffer { size }, 100, seed).next_index()] += 1.0;
    }
    let e = trials as f64 / size as f64;
    let chi2: f64 = hist.iter().map(|o| (o - e).powi(2) / e).sum();
    assert!(chi2 < 27.9, "chi² = {chi2}, histogram {hist:?}");
}

#[test]
fn buffer_of_one_is_sequential() {
    let mut a = Sampler::new(Shuffle::Buffer { size: 1 }, 7, 9);
    let mut b = Sampler::new(Shuffle::Sequential, 7, 0);
    for _ in 0..20 {
        assert_eq!(a.next_index(), b.next_index());
    }
}

#[test]
fn epoch_permutations() {
    let n = 1000;
    let mut s = Sampler::new(Shuffle::Epoch, n, 5);
    let mut epochs = Vec::new();
    for _ in 0..3 {
        let mut e: Vec<usize> = (0..n).map(|_| s.next_index()).collect();
        let order = e.clone();
        e.sort_unstable();
        assert_eq!(e, (0..n).collect::<Vec<_>>(), "each epoch is a permutation");
        epochs.push(order);
    }
    assert_ne!(epochs[0], epochs[1]);
    assert_ne!(epochs[0], (0..n).collect::<Vec<_>>());
}

#[test]
fn sequential_batches_match_spec() {
    // batch k holds (256·k + j) mod 60000.
    let mut s = Sampler::new(Shuffle::Sequential, 60_000, 0);
    let mut rows = Vec::new();
    for k in 0..240 {
        s.next_batch(256, &mut rows);
        assert_eq!(rows[0], (256 * k) % 60_000);
        assert_eq!(rows[255], (256 * k + 255) % 60_000);
    }
}
