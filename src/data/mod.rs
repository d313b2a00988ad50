//! Data in: IDX files, your own features and labels (IDX of any type and shape, `.npy`), the four-file dataset with its checksums, batch samplers, aligned
//! buffers, and (feature `fetch`) the download of MNIST.

pub(crate) mod aligned;
pub mod batch;
pub(crate) mod checksum;
pub mod dataset;
pub(crate) mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod idx;
pub(crate) mod npy;
pub(crate) mod pixels;
pub mod samples;
