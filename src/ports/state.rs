//! The `StateStore` port: durable state that must survive restarts, and the decision log.
//!
//! Two kinds of data live here:
//! - **documents**: small JSON values under a string key (`rollout/<ns>/<name>`,
//!   `guard/<app>`, `approval/<id>`), written with compare-and-swap on a version number so
//!   that two writers (an alert handler and the scheduler, or the daemon and the CLI) can
//!   never both think they won;
//! - **the decision log**: an append-only list of [`DecisionRecord`]s, what slogate saw,
//!   decided and did, read by `GET /api/v1/decisions` and `slogate decisions`.
//!
//! In a cluster rollout state is kept in the Rollout's status
//! (`crate::adapters::kube::RolloutStatusStore`, `rollouts.state: kube`) and every other
//! document (the guard's records, operators' commands, approvals) in ConfigMaps shared by the
//! replicas (`crate::adapters::kube::ConfigMapStore`, `state.backend: kube`); outside one
//! (local runs, the demo) the file store in `crate::adapters::state` is used. Each replica's
//! complete decision log is the file store's; with ConfigMaps, the recent decisions of every
//! replica are also shared (`crate::adapters::state::decision_ring`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::BoxError;

/// A document with the version it was read at. Callers only compare versions for equality
/// and hand them back as `expected`: the file and memory stores start at 1 and add 1 per
/// write, the Rollout status store (`crate::adapters::kube::rollout_status`) uses the
/// Rollout's `metadata.resourceVersion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned {
    pub version: u64,
    pub value: serde_json::Value,
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Compare-and-swap lost: someone else wrote the key since it was read.
    #[error(
        "state `{key}` was changed concurrently (expected version {expected:?}, found {found:?})"
    )]
    Conflict {
        key: String,
        expected: Option<u64>,
        found: Option<u64>,
    },
    #[error("invalid state key `{0}`: use non-empty segments of [A-Za-z0-9._-] separated by `/`")]
    InvalidKey(String),
    /// A stored document is not what it should be, with no underlying error (the message
    /// says what: a foreign object, a missing field).
    #[error("state `{key}` is corrupt: {message}")]
    Corrupt { key: String, message: String },
    /// A stored document or log line could not be decoded, or a value not encoded: the
    /// decoder's error is the source. `at` says where when the key does not (`<path>`,
    /// `<path> line 3`, `ConfigMap <name>: data.value is not JSON`).
    #[error(
        "state `{key}` is corrupt: {}{source}",
        .at.as_deref().map(|at| format!("{at}: ")).unwrap_or_default()
    )]
    Undecodable {
        key: String,
        at: Option<String>,
        #[source]
        source: BoxError,
    },
    #[error("state store i/o on `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A failure of the store's backend (e.g. the Kubernetes API), kept as the source.
    #[error("state store: {source}")]
    Api {
        #[source]
        source: BoxError,
    },
    /// A blocking task of the store (file I/O off the async threads) panicked or was
    /// cancelled.
    #[error("state store: state task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A failure of the store's own logic (no underlying error): the message says what.
    #[error("state store: {0}")]
    Backend(String),
}

/// Which decisions to read back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionQuery {
    /// Only records whose `subject` equals this.
    pub subject: Option<String>,
    /// Only records of this kind.
    pub kind: Option<DecisionKind>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, the most recent ones (records are returned oldest first).
    pub limit: Option<usize>,
}

/// The part of slogate that made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// The error-budget guard (scheduled evaluation or alert).
    Guard,
    /// A rollout step, abort or promotion.
    Rollout,
    /// `slogate promote`.
    Promote,
    /// An operator's action through the API or the CLI (approve, abort, override…).
    Operator,
    /// A known-good mark.
    KnownGood,
}

/// One entry of the decision log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Unique id (assigned by the writer; `<time>-<random>` is fine).
    pub id: String,
    pub time: DateTime<Utc>,
    pub kind: DecisionKind,
    /// What it is about: an app name, `ns/rollout`, an SLO id.
    pub subject: String,
    /// What started it: `schedule`, `alert`, `api`, `cli`, `restart`…
    pub trigger: String,
    /// The decision in a word: `rollback`, `notify`, `freeze-revert`, `override`, `step`,
    /// `abort`, `promote`, `refuse`, `none`…
    pub action: String,
    /// One human sentence saying why.
    pub reason: String,
    /// The numbers that were seen (budget consumed, burn rates, p-values, weights…).
    #[serde(default)]
    pub observed: serde_json::Value,
    /// Commits involved: reverted, created, promoted.
    #[serde(default)]
    pub commits: Vec<String>,
    /// Who acted, for operator actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What the effect produced (`reverted 1a2b…`, `conflict`, `error: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl DecisionRecord {
    /// A record with a fresh id at `time`; the caller fills the rest.
    pub fn new(
        time: DateTime<Utc>,
        kind: DecisionKind,
        subject: impl Into<String>,
        trigger: impl Into<String>,
        action: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        use rand::RngExt;
        let n: u32 = rand::rng().random_range(0..u32::MAX);
        DecisionRecord {
            id: format!("{}-{n:08x}", time.format("%Y%m%dT%H%M%S%.3fZ")),
            time,
            kind,
            subject: subject.into(),
            trigger: trigger.into(),
            action: action.into(),
            reason: reason.into(),
            observed: serde_json::Value::Null,
            commits: Vec::new(),
            actor: None,
            outcome: None,
        }
    }
}

/// Durable state and the decision log.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Read a document, `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError>;

    /// Write a document if its current version is `expected` (`None`: it must not exist).
    /// Returns the new version. Fails with [`StateError::Conflict`] otherwise.
    async fn put(
        &self,
        key: &str,
        value: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError>;

    /// Delete a document if its current version is `expected`. Fails with
    /// [`StateError::Conflict`] when it has another version, or none (`found: None`): a
    /// writer that changed it since it was read wins, and the document is kept.
    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError>;

    /// Keys under a prefix (`guard/`), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError>;

    /// Append one record to the decision log; it is durable when this returns.
    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError>;

    /// Read decisions, oldest first.
    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError>;
}

/// Check a state key: `/`-separated non-empty segments of `[A-Za-z0-9._-]`, no `..`.
pub fn validate_key(key: &str) -> Result<(), StateError> {
    let ok = !key.is_empty()
        && key.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidKey(key.to_string()))
    }
}

impl DecisionQuery {
    /// True when `r` passes the filters (not the limit).
    pub fn matches(&self, r: &DecisionRecord) -> bool {
        self.subject.as_ref().is_none_or(|s| *s == r.subject)
            && self.kind.is_none_or(|k| k == r.kind)
            && self.since.is_none_or(|t| r.time >= t)
    }
}
