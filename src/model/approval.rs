//! A promotion approval as stored in the state store: written by `promote`/`approve` and
//! the daemon's API, read by `promote` and swept by the daemon when it expires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The state-store key prefix of approval documents.
pub const PREFIX: &str = "promote-approval/";

/// A recorded approval: the approval document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub key: String,
    pub repo: String,
    pub target: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub actor: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}
