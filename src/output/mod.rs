//! Results out: checkpoints and the metrics file.

pub mod checkpoint;
pub mod metrics;
