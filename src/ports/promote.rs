//! The `PromoteState` port: where `promote` and `approve` read freezes and approvals and
//! write approvals and decisions. Implemented on a `StateStore` (`crate::promote::state`,
//! also what the daemon's API handlers call) and over the daemon's HTTP API
//! (`crate::adapters::promote_api`).

use async_trait::async_trait;

use crate::guard::AppGuardState;
use crate::model::approval::{Approval, Change};
use crate::ports::state::{DecisionRecord, StateError};

/// Errors reading or writing promote state. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum PromoteStateError {
    #[error(transparent)]
    Store(#[from] StateError),
    /// A stored document that does not decode.
    #[error("state `{key}` is not a valid {what}: {source}")]
    Decode {
        key: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The request could not be made or got no answer in time.
    #[error("slogate API {url}: {message}")]
    Transport { url: String, message: String },
    /// The API answered with an error status.
    #[error("slogate API {url} answered HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The API token could not be read.
    #[error("slogate API token: {0}")]
    Token(String),
    /// The request itself is invalid (a field, named in the message).
    #[error("{0}")]
    Invalid(String),
}

/// The result of recording an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    pub approval: Approval,
    /// False when an approval for this change already existed (it is kept as it was).
    pub created: bool,
}

/// Freezes, approvals and the decision log, as `promote` needs them.
#[async_trait]
pub trait PromoteState: Send + Sync {
    /// The guard's state of an app; `None` when the guard has none.
    async fn guard(&self, app: &str) -> Result<Option<AppGuardState>, PromoteStateError>;
    /// The approval with this key, if any.
    async fn approval(&self, key: &str) -> Result<Option<Approval>, PromoteStateError>;
    /// Record an approval of `change` by `actor` (idempotent: the first one is kept).
    async fn approve(
        &self,
        change: &Change,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<Approved, PromoteStateError>;
    /// Append a `Promote` decision record.
    async fn record(&self, record: &DecisionRecord) -> Result<(), PromoteStateError>;
    /// The most recent `Promote` decision records of `subject` (at most 100, oldest first).
    async fn promote_records(
        &self,
        subject: &str,
    ) -> Result<Vec<DecisionRecord>, PromoteStateError>;
}
