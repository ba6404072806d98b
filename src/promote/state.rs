//! Where `promote` and `approve` read freezes and approvals and write approvals and
//! decisions: a [`StateStore`] (a `FileStore` directory shared with a local daemon) or
//! the daemon's HTTP API ([`super::client::ApiClient`]). Both implement [`PromoteState`].
//!
//! The `StateStore` implementation is also what the API handlers call, so an approval made
//! through the CLI and one made through the API are the same document and the same
//! decision record.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use super::approval::{Approval, Change};
use crate::guard::{self, AppGuardState};
use crate::ports::state::{DecisionKind, DecisionQuery, DecisionRecord, StateError, StateStore};
use crate::runtime::failpoint::{self as fp, hit};

/// Errors reading or writing promote state. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum PromoteStateError {
    #[error(transparent)]
    Store(#[from] StateError),
    /// A stored document that does not decode.
    #[error("state `{key}` is not a valid {what}: {message}")]
    Decode {
        key: String,
        what: &'static str,
        message: String,
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

/// [`PromoteState`] on a [`StateStore`].
#[derive(Clone)]
pub struct StoreState {
    pub store: Arc<dyn StateStore>,
    /// What started writes: `cli` or `api`.
    pub trigger: &'static str,
}

impl StoreState {
    pub fn new(store: Arc<dyn StateStore>, trigger: &'static str) -> Self {
        StoreState { store, trigger }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    key: &str,
    what: &'static str,
    value: serde_json::Value,
) -> Result<T, PromoteStateError> {
    serde_json::from_value(value).map_err(|e| PromoteStateError::Decode {
        key: key.to_string(),
        what,
        message: e.to_string(),
    })
}

#[async_trait]
impl PromoteState for StoreState {
    async fn guard(&self, app: &str) -> Result<Option<AppGuardState>, PromoteStateError> {
        let key = guard::state::key(app);
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(v) => decode(&key, "guard state", v.value).map(Some),
        }
    }

    async fn approval(&self, key: &str) -> Result<Option<Approval>, PromoteStateError> {
        let key = format!("{}{key}", super::approval::PREFIX);
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(v) => decode(&key, "approval", v.value).map(Some),
        }
    }

    async fn approve(
        &self,
        change: &Change,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<Approved, PromoteStateError> {
        super::approval::check_actor(actor).map_err(PromoteStateError::Invalid)?;
        let key = change.state_key();
        if let Some(existing) = self.approval(&change.key()).await? {
            // An approval stored by a run that stopped before its record was written gets
            // the record now (found by tests/crash_injection.rs).
            let outcome = format!("approval {}", existing.key);
            let recorded = self
                .store
                .decisions(&DecisionQuery {
                    subject: Some(change.target.clone()),
                    kind: Some(DecisionKind::Operator),
                    ..Default::default()
                })
                .await?
                .iter()
                .any(|r| r.action == "approve" && r.outcome.as_deref() == Some(&outcome));
            if !recorded {
                let value = serde_json::to_value(&existing).unwrap_or_default();
                let rec = approve_record(change, &existing, value, self.trigger);
                self.store.append_decision(&rec).await?;
            }
            return Ok(Approved {
                approval: existing,
                created: false,
            });
        }
        let now = Utc::now();
        let approval = Approval::new(change, actor, comment, now);
        let value = serde_json::to_value(&approval).map_err(|e| PromoteStateError::Decode {
            key: key.clone(),
            what: "approval",
            message: e.to_string(),
        })?;
        hit(fp::APPROVAL_STATE_BEFORE);
        match self.store.put(&key, value.clone(), None).await {
            Ok(_) => hit(fp::APPROVAL_STATE_AFTER),
            Err(StateError::Conflict { .. }) => {
                // Someone approved the same change at the same moment: theirs stands.
                if let Some(existing) = self.approval(&change.key()).await? {
                    return Ok(Approved {
                        approval: existing,
                        created: false,
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
        let rec = approve_record(change, &approval, value, self.trigger);
        hit(fp::APPROVAL_RECORD_BEFORE);
        self.store.append_decision(&rec).await?;
        hit(fp::APPROVAL_RECORD_AFTER);
        Ok(Approved {
            approval,
            created: true,
        })
    }

    async fn record(&self, record: &DecisionRecord) -> Result<(), PromoteStateError> {
        Ok(self.store.append_decision(record).await?)
    }

    async fn promote_records(
        &self,
        subject: &str,
    ) -> Result<Vec<DecisionRecord>, PromoteStateError> {
        Ok(self
            .store
            .decisions(&DecisionQuery {
                subject: Some(subject.to_string()),
                kind: Some(DecisionKind::Promote),
                limit: Some(100),
                ..Default::default()
            })
            .await?)
    }
}

/// The `approve` decision record of an approval.
fn approve_record(
    change: &Change,
    approval: &Approval,
    value: serde_json::Value,
    trigger: &'static str,
) -> DecisionRecord {
    let mut rec = DecisionRecord::new(
        approval.at,
        DecisionKind::Operator,
        change.target.clone(),
        trigger,
        "approve",
        format!(
            "{} approved promoting {} to {} in {} of {}",
            approval.actor, change.image, change.to, change.target, change.repo
        ),
    );
    rec.actor = Some(approval.actor.clone());
    rec.observed = value;
    rec.outcome = Some(format!("approval {}", approval.key));
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::MemoryStore;
    use crate::ports::state::DecisionQuery;
    use crate::promote::image::ImageRef;

    #[tokio::test]
    async fn approvals_are_stored_once_and_logged() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let st = StoreState::new(store.clone(), "cli");
        let change = Change::new(
            "/srv/gitops.git",
            "overlays/prod",
            "checkout",
            ImageRef::Tag("v2".into()),
        )
        .unwrap();
        assert_eq!(st.approval(&change.key()).await.unwrap(), None);
        let a = st.approve(&change, "alice", Some("LGTM")).await.unwrap();
        assert!(a.created);
        assert_eq!(a.approval.tag.as_deref(), Some("v2"));
        let again = st.approve(&change, "bob", None).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.approval.actor, "alice", "the first approval stands");
        assert_eq!(
            st.approval(&change.key()).await.unwrap(),
            Some(a.approval.clone())
        );
        let log = store
            .decisions(&DecisionQuery {
                kind: Some(DecisionKind::Operator),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "approve");
        assert_eq!(log[0].actor.as_deref(), Some("alice"));
        assert_eq!(log[0].trigger, "cli");
        assert!(st.approve(&change, "", None).await.is_err());
    }

    #[tokio::test]
    async fn guard_state_is_read_and_checked() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let st = StoreState::new(store.clone(), "cli");
        assert_eq!(st.guard("checkout").await.unwrap(), None);
        store
            .put("guard/checkout", serde_json::json!({"breach": 3}), None)
            .await
            .unwrap();
        let e = st.guard("checkout").await.unwrap_err().to_string();
        assert!(
            e.contains("guard/checkout") && e.contains("guard state"),
            "{e}"
        );
    }
}
