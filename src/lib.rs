//! slogate: error-budget aware progressive delivery.
//!
//! Layout (see DESIGN.md):
//! - `slo`, `analysis`, `rollout`: the pure core. Plain data in, decisions out; no I/O.
//! - `ports`: one trait per I/O port (metrics, traffic, GitOps, sync, notify, state).
//! - `adapters`: the implementations of those ports (Prometheus, kube, git, HTTP).
//! - `runtime`: the daemon: configuration, scheduler, HTTP server, self-metrics.
//! - `promote`: the pure parts of `slogate promote` (kustomization edit, gates, approvals)
//!   and its daemon API.
//! - `cli`: the command-line front end; `main.rs` only calls `cli::main`.

pub mod adapters;
pub mod analysis;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod guard;
pub mod model;
pub mod ports;
pub mod promote;
pub mod rollout;
pub mod runtime;
pub mod slo;
