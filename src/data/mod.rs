//! Data in: IDX files, the four-file dataset with its checksums, batch samplers, aligned
//! buffers, class names, and (feature `fetch`) the download of MNIST.

pub mod aligned;
pub mod batch;
pub(crate) mod checksum;
pub mod classes;
pub mod dataset;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod idx;
pub(crate) mod pixels;
