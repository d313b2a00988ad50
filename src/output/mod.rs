//! Results out: checkpoints, the metrics file, SVG plots, images as terminal text.

pub mod checkpoint;
pub mod metrics;
pub mod plot;
pub mod render;
