//! Compute: the kernels (one batch in, loss and gradients out), the model, one prediction,
//! the training loop.

pub mod kernels;
pub mod model;
pub(crate) mod predict;
pub mod train;
