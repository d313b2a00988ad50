//! The cli crate's integration tests: one test crate (one build, one link) with a module per
//! subject, so `common` (and the library's helpers it includes) is compiled once. A test's name
//! is its module path: `cargo test --test cli serve::` runs the `serve` tests. The tests start
//! the binaries as child processes and set their environment per command; nothing here
//! changes process-wide state, so the modules run side by side in one process.

mod common;

mod fetch;
mod honest;
mod hostile_input;
mod interrupt;
mod names;
mod novelty;
mod outputs;
mod own_data;
mod photos;
mod preprocess;
mod serve;
mod serve_browser;
mod solver;
mod train;
