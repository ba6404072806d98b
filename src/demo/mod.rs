//! `slogate demo`: a self-contained scenario with no cluster, no Prometheus and no network.
//! slogate's real decision code, state store and git run against a simulated service.
//!
//! - `promql`: a small evaluator for the queries slogate issues;
//! - `sim`: the simulated service and its `MetricsSource`;
//! - `gitops`: the Kustomize app in a real bare git remote;
//! - `scenario`: the story, driving the real rollout controller, guard and `promote`;
//! - `view`: what the terminal shows.

pub mod gitops;
pub mod promql;
pub mod scenario;
pub mod sim;
pub mod view;
