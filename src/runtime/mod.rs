//! The daemon runtime and the services it shares with the CLI: evaluation of SLOs through
//! the ports, configuration, the SLO evaluation loop ([`slo_loop`]), alert intake
//! ([`alerts`]), the state sweep ([`state_gc`]), the guard and rollout runtimes, the HTTP
//! server, self-metrics and the debug builds' failpoints ([`failpoint`]). The composition root that wires them is `crate::daemon`.

pub mod alerts;
pub mod coalesce;
pub mod config;
pub mod effects;
pub mod evaluator;
pub mod failpoint;
pub mod guard;
pub mod logsafe;
pub mod metrics;
pub mod outbox;
pub mod rollout;
pub mod serve;
pub mod server;
pub mod slo_loop;
pub mod slo_store;
pub mod state_gc;
pub mod webhook;
