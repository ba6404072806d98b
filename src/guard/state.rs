//! What the guard remembers about one app, stored as the `guard/<app>` document of the
//! `StateStore`. It survives restarts; every change is a compare-and-swap, so an alert
//! and a scheduled evaluation racing on the same app cannot both act on one breach.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::slo::budget::Action;

/// The state-store key of an app's guard state.
pub fn key(app: &str) -> String {
    format!("guard/{app}")
}

/// The guard's memory of one app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppGuardState {
    /// The last deploy commit known to be good (its rollout succeeded, or its SLOs stayed
    /// under a burn rate of 1 for the soak time).
    #[serde(default)]
    pub known_good: Option<KnownGood>,
    /// A deploy commit waiting to become known-good.
    #[serde(default)]
    pub candidate: Option<Candidate>,
    /// The open breach, while the budget stays past the rollback threshold. Its presence
    /// is the freeze.
    #[serde(default)]
    pub breach: Option<Breach>,
    /// A critical breach that only notifies (no rollback configured), so it is notified
    /// once and not every evaluation.
    #[serde(default)]
    pub notified: Option<Notified>,
    /// Overrides made through the API that are not consumed yet.
    #[serde(default)]
    pub pending_override: Option<Override>,
    /// Post-deploy verifications that reached an outcome (newest last, at most
    /// [`MAX_DEPLOYS`]): each deploy is judged once.
    #[serde(default)]
    pub deploys: Vec<DeployCheck>,
    /// A burn-rate page without a deploy in its window was notified (once per episode).
    #[serde(default)]
    pub paged: Option<DateTime<Utc>>,
}

/// How many deploy verifications the state keeps.
pub const MAX_DEPLOYS: usize = 20;

/// The outcome of one deploy's verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployCheck {
    pub sha: String,
    /// Deploy time (the commit's committer time).
    pub time: DateTime<Utc>,
    /// `reverted` (a revert was asked for), `notified`, `known-good` or `superseded` (a
    /// later deploy cut its window short).
    pub outcome: String,
    /// Why: `post-deploy-verification` or `burn-rate-page`.
    #[serde(default)]
    pub reason: Option<String>,
    pub decided_at: DateTime<Utc>,
    /// The numbers the decision used (verdicts, page burn).
    #[serde(default)]
    pub observed: serde_json::Value,
    /// The revert, with its idempotency key and outcome.
    #[serde(default)]
    pub revert: Option<RevertRecord>,
    /// The revert request, asked for again (same key) until it is done.
    #[serde(default)]
    pub request: Option<crate::model::commit::RevertRequest>,
}

impl AppGuardState {
    /// True while the app is frozen: deploys are reverted and `promote` refuses.
    pub fn frozen(&self) -> bool {
        self.breach.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownGood {
    pub sha: String,
    pub since: DateTime<Utc>,
    /// `rollout` or `soak`.
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub sha: String,
    /// When the guard first saw it as the newest commit on the app path.
    pub seen_at: DateTime<Utc>,
}

/// One breach of the rollback threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Idempotency key: `Slogate-Breach` trailer of the revert commit.
    pub id: String,
    pub slo: String,
    pub level: Action,
    pub budget_consumed: f64,
    pub since: DateTime<Utc>,
    /// Commits after this one on the app path are deploys made during the freeze (the
    /// known-good commit when the breach opened, then the last commit let through by an
    /// override). `None`: every commit the git adapter has not reverted yet.
    #[serde(default)]
    pub base: Option<String>,
    /// Reverts asked for during this breach (the first one, then one per new deploy
    /// while frozen), each with its own idempotency key.
    #[serde(default)]
    pub reverts: Vec<RevertRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevertRecord {
    /// `Slogate-Breach` of this revert commit.
    pub key: String,
    /// The newest commit it covers.
    pub newest: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// Filled in when the revert is done: `reverted`, `already_reverted`,
    /// `nothing_to_revert`, `conflict`, `pull_request_opened`,
    /// `pull_request_open|merged|closed` (one found on the forge), or `error: …`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The revert commit, when one exists.
    #[serde(default)]
    pub sha: Option<String>,
    /// Commits reverted.
    #[serde(default)]
    pub reverted: Vec<String>,
    /// Failed attempts so far (errors are retried at the next run).
    #[serde(default)]
    pub attempts: u32,
}

impl RevertRecord {
    pub fn done(&self) -> bool {
        self.outcome
            .as_deref()
            .is_some_and(|o| !o.starts_with("error"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notified {
    pub slo: String,
    pub level: Action,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}
