//! Compute: the kernels (one batch in, loss and gradients out), the model, the training loop.

pub mod kernels;
pub mod model;
pub mod train;
