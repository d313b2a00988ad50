//! The library's integration tests: one test crate (one build, one link) with a module per
//! subject, so `common` is compiled once and the dependencies are monomorphized once. A test's
//! name is its module path: `cargo test --test library kernels::` runs the kernel tests.
//! Nothing here changes process-wide state (environment, working directory, signal handlers),
//! so the modules run side by side in one process.

mod common;

mod checkpoint;
mod hostile_input;
mod idx;
mod kernels;
mod mnist_data;
mod public_api;
mod sampler;
mod samples;
mod solve;
