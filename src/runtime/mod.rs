//! The daemon runtime and the services it shares with the CLI: evaluation of SLOs through
//! the ports, configuration, the scheduler, the HTTP server and self-metrics.

pub mod coalesce;
pub mod config;
pub mod daemon;
pub mod evaluator;
pub mod guard;
pub mod logsafe;
pub mod metrics;
pub mod rollout;
pub mod serve;
pub mod server;
pub mod slo_store;
pub mod state_gc;
pub mod webhook;
