//! slogate: error-budget aware progressive delivery.
//!
//! Layers, lowest first (ARCHITECTURE.md; the README's Layout table says what each module
//! may import, and `tests/layout.rs` holds the code to it):
//! - `model`: plain data shared by every layer (weights and routes, notifications, commits
//!   and trailers, approvals); it imports nothing else of the crate.
//! - `slo`, `analysis`, `rollout`, `guard`: the pure core. Plain data in, decisions (next
//!   state and effects) out; no I/O, no clock.
//! - `ports`: one trait per I/O port (metrics, traffic, GitOps, sync, notify, state, leader
//!   election, rollout and version sources, the loaded SLO ids, promote's state) with its
//!   error type; the data they speak is imported from `model`, never re-exported.
//! - `adapters`: the implementations of those ports (Prometheus, kube, git and forges,
//!   Argo CD, notifiers, state stores, files, promote's state over the daemon's API) and
//!   the leadership handle.
//! - `runtime`: the loops and services over the ports: configuration, the SLO evaluation
//!   loop, alert intake, the guard and rollout runtimes, the one effect executor (whose
//!   effects need the proof that the next state is stored), the state sweep, the HTTP
//!   server, self-metrics.
//! - `promote`: the promote use case (gates through Prometheus and the state, the
//!   kustomization edit, the commit and the decision record through the effect executor),
//!   approvals, its state on a state store and the daemon's API for them (axum handlers).
//!   Not pure.
//! - `daemon`: the composition root of `slogate run`.
//! - `demo`: the demo scenario; `cli`: the command-line front end (`main.rs` only calls
//!   `cli::main`).

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
