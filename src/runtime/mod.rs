//! The daemon runtime.
