//! Canary analysis: pure statistics over plain numbers, no I/O.
//!
//! - `judge`: Mann-Whitney U (scipy-exact p-values), Hodges-Lehmann estimates and intervals,
//!   Kayenta-compatible classification and scoring, and anytime-valid sequential tests that
//!   stay valid when a rollout is judged at every interval.
//!
//! The checks of a Rollout's analysis interval, which use the judge, are in
//! `crate::rollout::checks`.

pub mod judge;
