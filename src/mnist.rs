//! MNIST's shape: what the tutorial's data and model are, for the code that defaults to it.

/// Number of input features of an MNIST image (28 × 28 pixels).
pub const MNIST_FEATURES: usize = 784;
/// Number of classes of MNIST (digits 0..9).
pub const MNIST_CLASSES: usize = 10;
