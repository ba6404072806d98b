//! Canary analysis: pure statistics over plain numbers, no I/O.
//!
//! - `judge`: Mann-Whitney U (scipy-exact p-values), Hodges-Lehmann estimates and intervals,
//!   Kayenta-compatible classification and scoring, and anytime-valid sequential tests that
//!   stay valid when a rollout is judged at every interval.
//! - `checks`: one Rollout analysis interval: query templates and built-in Istio queries,
//!   threshold, comparative (judge) and sequential error-count checks, and the interval's
//!   verdict, where no data is inconclusive and never a pass.

pub mod checks;
pub mod judge;
