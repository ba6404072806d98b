//! `slogate demo`: a self-contained scenario with no cluster, no Prometheus and no network.
//! slogate's real decision code, state store and git run against a simulated service.
//!
//! - `promql`: a small evaluator for the queries slogate issues;
//! - `sim`: the simulated service and its `MetricsSource`.

pub mod promql;
pub mod sim;
