//! Progressive delivery: the Rollout resource and its pure state machine.
//!
//! - [`spec`]: the `slogate.dev/v1alpha1 Rollout` types (YAML files, CRD, runtime);
//! - [`status`]: [`RolloutStatus`], what [`decide`] reads and writes;
//! - [`schema`]: the CRD generated from the types (`slogate crd`) and the structural schema
//!   check that `validate` uses;
//! - [`load`]: reading Rollout files with the same diagnostics as SLO files;
//! - [`checks`]: one analysis interval: query templates and built-in Istio queries,
//!   threshold, comparative (judge) and sequential error-count checks, and the interval's
//!   verdict, where no data is inconclusive and never a pass;
//! - [`machine`]: `decide(rollout, status, observations, now) -> Decision`, pure;
//! - [`scope`]: what a Rollout in one namespace may reach (routes, GitOps paths and apps),
//!   checked against the daemon's scoping configuration before it runs.

pub mod checks;
pub mod load;
pub mod machine;
pub mod schema;
pub mod scope;
pub mod spec;
pub mod status;

pub use machine::{
    analysis_window, decide, step_remaining, CommandAction, Decision, Effect, EffectCompletion,
    EffectOutcome, Observations, OperatorCommand, Rejection,
};
pub use spec::Rollout;
pub use status::{Phase, PhaseName, RolloutStatus, Verdict};
