//! Results out: checkpoints.

pub mod checkpoint;
