//! Commits as the guard sees them, and what it asks the GitOps port to revert.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::trailers::{is_slogate_revert, override_reason, Trailer};

/// A full hexadecimal commit id.
pub type Sha = String;

/// A commit as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: Sha,
    pub subject: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// Committer time.
    pub time: DateTime<Utc>,
    pub trailers: Vec<Trailer>,
}

impl CommitInfo {
    /// True when this commit is itself a slogate revert (it must never be reverted).
    pub fn is_slogate_revert(&self) -> bool {
        is_slogate_revert(&self.trailers)
    }

    /// The `Slogate-Override` reason, if a human put one on this commit.
    pub fn override_reason(&self) -> Option<String> {
        override_reason(&self.trailers)
    }
}

/// What to revert and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevertRequest {
    /// Path of the app in the GitOps repo, relative to its root (`apps/checkout/overlays/prod`).
    /// Only changes under this path are reverted.
    pub app_path: String,
    /// Last commit known to be good. `Some`: revert every commit touching `app_path` after it.
    /// `None`: revert only the most recent commit touching `app_path`.
    pub known_good: Option<Sha>,
    /// Human-readable reason, one line (newlines are folded into spaces).
    pub reason: String,
    pub slo_id: Option<String>,
    /// Budget consumed as a ratio (0.963 = 96.3%).
    pub budget_consumed: Option<f64>,
    /// Idempotency key: one breach gives at most one revert commit.
    pub breach_id: String,
    /// Extra trailers appended after slogate's own.
    #[serde(default)]
    pub extra_trailers: Vec<Trailer>,
    /// A stable reason code for the `Slogate-Reason` trailer (e.g.
    /// `post-deploy-verification`); `None`: the trailer carries `reason`.
    #[serde(default)]
    pub reason_code: Option<String>,
}
