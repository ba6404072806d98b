//! A promotion approval as stored in the state store: written by `promote`/`approve` and
//! the daemon's API, read by `promote` and swept by the daemon when it expires; the change
//! it approves and the image reference that change moves to. Their checks and the approval
//! key live in `crate::promote::approval` and `crate::promote::image`.

use std::fmt;

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

/// What an image is moved to: a tag (`newTag`) or a digest (`digest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ImageRef {
    Tag(String),
    Digest(String),
}

impl ImageRef {
    /// The tag or the digest.
    pub fn value(&self) -> &str {
        match self {
            ImageRef::Tag(t) | ImageRef::Digest(t) => t,
        }
    }

    /// The Kustomize field that holds it.
    pub fn field(&self) -> &'static str {
        match self {
            ImageRef::Tag(_) => "newTag",
            ImageRef::Digest(_) => "digest",
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.value())
    }
}

/// One exact change to a target overlay (built and checked by `Change::new` in
/// `crate::promote::approval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub repo: String,
    pub target: String,
    pub image: String,
    pub to: ImageRef,
}

/// The body of `POST /api/v1/approvals`, and what `slogate approve` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The GitOps repository URL, as given to `promote --repo`.
    pub repo: String,
    /// The target overlay directory, as given to `promote --target`.
    pub target: String,
    /// `NAME=TAG` or `NAME@DIGEST`.
    pub image: String,
    /// Who approves.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}
