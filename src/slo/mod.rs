//! Pure SLO logic: the model, parsing of the supported spec formats, Prometheus durations,
//! alert window catalogs, rule generation and error-budget maths. Nothing here performs I/O
//! except the explicit file-loading helpers in `spec` that read the files they are given.

pub mod budget;
pub mod duration;
pub mod model;
pub mod rules;
pub mod spec;
pub mod suggest;
pub mod windows;

pub use duration::PromDuration;
pub use model::*;
pub use windows::AlertWindows;
