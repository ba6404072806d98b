//! Rollouts at run time: the controller that drives the pure state machine
//! ([`crate::rollout::decide`]) through the ports, and what operators and the daemon need
//! around it.
//!
//! - [`controller`]: [`RolloutController`] — `reconcile_once(now)` (leader only: observe,
//!   decide, store, apply, repeat) and the daemon's `run` loop;
//! - the [`VersionSource`] port (which version each workload runs, defined in
//!   `crate::ports::versions`) and its file and in-memory implementations
//!   (`crate::adapters::versions`; the cluster's is `crate::adapters::kube::KubeVersions`),
//!   re-exported here;
//! - [`analysis`]: one interval's queries through the `MetricsSource` port, judged
//!   (shared with `slogate analyze`);
//! - [`commands`]: operators' commands queued in the state store, and the store keys;
//! - [`promotion`]: the promotion commit's manifest edit;
//! - [`supervisor`]: one controller task per Rollout of the `RolloutSource` port (files or
//!   the cluster's Rollout objects), started, restarted and stopped as they change;
//! - [`api`]: `GET /api/v1/rollouts…` and `POST /api/v1/rollouts/{ns}/{name}/{action}`;
//! - [`weights_file`]: where the file router keeps each rollout's weights.

pub mod analysis;
pub mod api;
pub mod commands;
pub mod controller;
pub mod promotion;
pub mod supervisor;

use std::path::{Path, PathBuf};

pub use crate::adapters::versions::{FileVersions, StaticVersions};
pub use crate::ports::versions::{VersionError, VersionSource, WorkloadVersions};
pub use api::{RolloutRegistry, RolloutView};
pub use commands::{CommandOutcome, CommandResult};
pub use controller::{
    AppliedEffect, ControllerSettings, ReconcileReport, RolloutController, RolloutDeps,
    RolloutError,
};
pub use supervisor::{Admission, ControllerFactory, RolloutSupervisor, SyncReport};

/// The weights file of a rollout under the file router's directory:
/// `<dir>/<namespace>/<name>.json`.
pub fn weights_file(dir: &Path, namespace: &str, name: &str) -> PathBuf {
    dir.join(namespace).join(format!("{name}.json"))
}
