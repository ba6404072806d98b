//! The one effect executor. The guard runtime ([`super::guard`]), the rollout controller
//! ([`super::rollout::controller`]) and the promote use case (`crate::promote::usecase`)
//! each turn their decision into [`Effect`]s (data) and hand them to an [`Executor`], which
//! holds the ports (GitOps, traffic, sync, notifiers, decision log) and applies them in the
//! order given.
//!
//! The rule every caller keeps: the next state is stored (compare-and-swap) *before* its
//! effects are applied, and every effect is idempotent on its key, so a crash or a lost
//! leadership between the two repeats an effect at most and never loses one:
//! - `Revert`: on the request's `breach_id` (its `Slogate-Breach` trailer, looked up on the
//!   remote by the git adapter);
//! - `CommitEdit`: on the file's content (the edit is a pure function of it; an edit that
//!   changes nothing commits nothing);
//! - `SetWeights`: on the weights expected on the route (a route already at the target
//!   weights is written again with the same weights);
//! - `RequestSync`, `Notify`, `Record`: repeatable; their failures are logged and never
//!   undo or block what came before.
//!
//! The rule is enforced by the types: every method of the [`Executor`] that touches the
//! outside world takes a [`Stored`], and only the state-store write [`store_state`] (or
//! [`Stored::unchanged`], when the decision's next state is the one read, or
//! [`Stored::no_state`] for a use case with no state document) makes one. Applying an
//! effect before the state is stored does not compile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::commit::RevertRequest;
use crate::model::notify::Notification;
use crate::model::traffic::{Routing, Weights};
use crate::ports::gitops::{CommitOutcome, EditFn, GitOpsError, GitOpsRepo, RevertOutcome};
use crate::ports::notify::{Notifier, NotifyError};
use crate::ports::state::{DecisionRecord, StateError, StateStore};
use crate::ports::sync::SyncTrigger;
use crate::ports::traffic::{TrafficError, TrafficRouter};
use crate::ports::BoxError;
use crate::runtime::failpoint::{self as fp, hit};

/// Proof that a decision's next state is stored: what every [`Executor`] method that
/// applies an effect asks for. It has no public constructor other than [`store_state`],
/// [`Stored::unchanged`] and [`Stored::no_state`], and it is neither `Clone` nor
/// `Default`: a caller lends it (`&Stored`) to each effect of the decision it proves.
///
/// Outside this module a proof cannot be made up:
///
/// ```compile_fail
/// let proof = slogate::runtime::effects::Stored { version: None };
/// ```
#[derive(Debug)]
#[must_use = "a stored state is the proof the effects of its decision ask for"]
pub struct Stored {
    version: Option<u64>,
}

impl Stored {
    /// The state read at `version` is already the decision's next state (`read == next`):
    /// there is nothing to store, and its effects may be applied. `None` when they differ.
    pub fn unchanged<T: PartialEq>(read: &T, next: &T, version: Option<u64>) -> Option<Stored> {
        (read == next).then_some(Stored { version })
    }

    /// A use case that keeps no state document of its own (`promote`: its gates read the
    /// guard's state and the approvals, its one commit is idempotent on the file's content
    /// and its decision record is the trace).
    pub fn no_state() -> Stored {
        Stored { version: None }
    }

    /// The version of the stored state document (`None` for [`Stored::no_state`]).
    pub fn version(&self) -> Option<u64> {
        self.version
    }
}

/// Store a decision's next state (compare-and-swap on `expected`, see
/// [`StateStore::put`]): the proof its effects ask for.
pub async fn store_state(
    store: &dyn StateStore,
    key: &str,
    value: serde_json::Value,
    expected: Option<u64>,
) -> Result<Stored, StateError> {
    let version = store.put(key, value, expected).await?;
    Ok(Stored {
        version: Some(version),
    })
}

/// An effect on the outside world.
pub enum Effect {
    /// Set the route's weights through the `TrafficRouter`; `expected` is what slogate last
    /// set (a different value on the route is a human's change, not overwritten).
    SetWeights {
        expected: Option<Weights>,
        weights: Weights,
    },
    /// Revert through the GitOps port.
    Revert(RevertRequest),
    /// Commit an edit of one file through the GitOps port and push.
    CommitEdit {
        path: String,
        edit: EditFn,
        message: String,
    },
    /// Ask the app's sync trigger (Argo CD, Flux) to sync now, where it has one.
    RequestSync {
        app: String,
        revision: Option<String>,
    },
    /// Notify every notifier: awaited, or on a background task (`background`) so that a
    /// slow notifier never delays the caller.
    Notify {
        notification: Notification,
        background: bool,
    },
    /// Append to the decision log.
    Record(DecisionRecord),
}

/// What applying an effect did.
#[derive(Debug)]
pub enum Outcome {
    WeightsSet(Weights),
    Reverted(RevertOutcome),
    Committed(CommitOutcome),
    /// `RequestSync`, `Notify` and `Record`: done (a failure is logged, never fatal).
    Done,
    Failed(EffectError),
}

/// Why an effect was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Git(#[from] GitOpsError),
    /// The port did not answer within the executor's bound.
    #[error("{what} took longer than {after:?}")]
    Timeout { what: &'static str, after: Duration },
    /// The executor holds no such port (no GitOps repository, no route).
    #[error("no {0} is configured")]
    Missing(&'static str),
}

impl EffectError {
    /// A short, stable name of the kind of failure, for logs and metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            EffectError::Traffic(TrafficError::ManualChange { .. }) => "manual_change",
            EffectError::Traffic(_) => "traffic",
            EffectError::Git(_) => "git",
            EffectError::Timeout { .. } => "timeout",
            EffectError::Missing(_) => "missing_port",
        }
    }
}

/// Where `Record` effects go: the state store's decision log, or (for `promote`) the
/// daemon's API. The error is the log's own, kept whole.
#[async_trait]
pub trait DecisionLog: Send + Sync {
    async fn append(&self, record: &DecisionRecord) -> Result<(), BoxError>;
}

/// The decision log of a state store.
pub struct StoreLog(pub Arc<dyn StateStore>);

#[async_trait]
impl DecisionLog for StoreLog {
    async fn append(&self, record: &DecisionRecord) -> Result<(), BoxError> {
        Ok(self.0.append_decision(record).await?)
    }
}

/// The ports effects are applied through, and their bounds.
#[derive(Clone, Default)]
pub struct Executor {
    repo: Option<Arc<dyn GitOpsRepo>>,
    router: Option<Arc<dyn TrafficRouter>>,
    syncs: HashMap<String, Arc<dyn SyncTrigger>>,
    notifiers: Vec<Arc<dyn Notifier>>,
    log: Option<Arc<dyn DecisionLog>>,
    /// Bound on one revert or commit (the git adapter bounds each git command too).
    git_timeout: Option<Duration>,
    /// Bound on one weights write.
    router_timeout: Option<Duration>,
}

impl Executor {
    /// An executor with no ports: every effect that needs one fails with
    /// [`EffectError::Missing`]; notifications and records go nowhere.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_repo(
        mut self,
        repo: Option<Arc<dyn GitOpsRepo>>,
        timeout: Option<Duration>,
    ) -> Self {
        self.repo = repo;
        self.git_timeout = timeout;
        self
    }

    pub fn with_router(mut self, router: Arc<dyn TrafficRouter>, timeout: Duration) -> Self {
        self.router = Some(router);
        self.router_timeout = Some(timeout);
        self
    }

    pub fn with_syncs(mut self, syncs: HashMap<String, Arc<dyn SyncTrigger>>) -> Self {
        self.syncs = syncs;
        self
    }

    pub fn with_notifiers(mut self, notifiers: Vec<Arc<dyn Notifier>>) -> Self {
        self.notifiers = notifiers;
        self
    }

    pub fn with_log(mut self, log: Arc<dyn DecisionLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// Whether a GitOps repository is configured.
    pub fn has_repo(&self) -> bool {
        self.repo.is_some()
    }

    /// Apply `effects` in order, each after the previous one finished.
    pub async fn apply_all(&self, stored: &Stored, effects: Vec<Effect>) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(effects.len());
        for e in effects {
            out.push(self.apply(stored, e).await);
        }
        out
    }

    /// Apply one effect.
    pub async fn apply(&self, stored: &Stored, effect: Effect) -> Outcome {
        match effect {
            Effect::SetWeights { expected, weights } => self
                .set_weights(stored, expected, weights)
                .await
                .map_or_else(Outcome::Failed, Outcome::WeightsSet),
            Effect::Revert(request) => self
                .revert(stored, &request)
                .await
                .map_or_else(Outcome::Failed, Outcome::Reverted),
            Effect::CommitEdit {
                path,
                edit,
                message,
            } => self
                .commit_edit(stored, &path, edit, &message)
                .await
                .map_or_else(Outcome::Failed, Outcome::Committed),
            Effect::RequestSync { app, revision } => {
                self.request_sync(stored, &app, revision.as_deref()).await;
                Outcome::Done
            }
            Effect::Notify {
                notification,
                background,
            } => {
                self.notify(stored, notification, background).await;
                Outcome::Done
            }
            Effect::Record(record) => {
                self.record(stored, &record).await;
                Outcome::Done
            }
        }
    }

    /// Set the weights and slogate's header route: the routing read back after the write.
    pub async fn set_routing(
        &self,
        _stored: &Stored,
        expected: Option<&Routing>,
        routing: &Routing,
    ) -> Result<Routing, EffectError> {
        let router = self
            .router
            .as_ref()
            .ok_or(EffectError::Missing("traffic router"))?;
        hit(fp::SET_WEIGHTS_BEFORE);
        let write = router.set_routing(expected, routing);
        let read = bounded(self.router_timeout, "setting the weights", write).await??;
        hit(fp::SET_WEIGHTS_AFTER);
        Ok(read)
    }

    /// [`Effect::SetWeights`]: the weights read back after the write.
    pub async fn set_weights(
        &self,
        stored: &Stored,
        expected: Option<Weights>,
        weights: Weights,
    ) -> Result<Weights, EffectError> {
        let expected = expected.map(Routing::weights);
        let read = self
            .set_routing(stored, expected.as_ref(), &Routing::weights(weights))
            .await?;
        Ok(read.weights)
    }

    /// [`Effect::Revert`].
    pub async fn revert(
        &self,
        _stored: &Stored,
        request: &RevertRequest,
    ) -> Result<RevertOutcome, EffectError> {
        let repo = self
            .repo
            .as_ref()
            .ok_or(EffectError::Missing("GitOps repository"))?;
        hit(fp::REVERT_BEFORE);
        let outcome = bounded(self.git_timeout, "the revert", repo.revert(request)).await??;
        hit(fp::REVERT_AFTER);
        Ok(outcome)
    }

    /// [`Effect::CommitEdit`].
    pub async fn commit_edit(
        &self,
        _stored: &Stored,
        path: &str,
        edit: EditFn,
        message: &str,
    ) -> Result<CommitOutcome, EffectError> {
        let repo = self
            .repo
            .as_ref()
            .ok_or(EffectError::Missing("GitOps repository"))?;
        hit(fp::COMMIT_EDIT_BEFORE);
        let commit = repo.commit_edit(path, edit, message);
        let outcome = bounded(self.git_timeout, "the commit", commit).await??;
        hit(fp::COMMIT_EDIT_AFTER);
        Ok(outcome)
    }

    /// [`Effect::RequestSync`]: a failure is logged.
    pub async fn request_sync(&self, _stored: &Stored, app: &str, revision: Option<&str>) {
        if let Some(sync) = self.syncs.get(app) {
            hit(fp::SYNC_BEFORE);
            if let Err(e) = sync.request_sync(revision).await {
                tracing::warn!(app = %app, "sync request failed: {}", crate::ports::error_chain(&e));
            }
            hit(fp::SYNC_AFTER);
        }
    }

    /// [`Effect::Notify`]: failures are logged.
    pub async fn notify(&self, _stored: &Stored, notification: Notification, background: bool) {
        if self.notifiers.is_empty() {
            return;
        }
        let notifiers = self.notifiers.clone();
        let send = async move {
            hit(fp::NOTIFY_BEFORE);
            for e in notify_all(&notifiers, &notification).await {
                tracing::warn!(subject = %notification.subject, "notification failed: {e}");
            }
            hit(fp::NOTIFY_AFTER);
        };
        if background {
            // Notifiers retry with their own bounded back-off; the caller never waits.
            tokio::spawn(send);
        } else {
            send.await;
        }
    }

    /// [`Effect::Record`]: a failure is logged.
    pub async fn record(&self, stored: &Stored, record: &DecisionRecord) {
        if let Err(e) = self.try_record(stored, record).await {
            tracing::error!(subject = %record.subject, action = %record.action, "cannot write the decision log: {e}");
        }
    }

    /// [`Effect::Record`], for a caller that reports a failure itself (`promote` prints it).
    pub async fn try_record(
        &self,
        _stored: &Stored,
        record: &DecisionRecord,
    ) -> Result<(), BoxError> {
        match &self.log {
            Some(log) => {
                hit(fp::RECORD_BEFORE);
                let result = log.append(record).await;
                hit(fp::RECORD_AFTER);
                result
            }
            None => Ok(()),
        }
    }
}

/// `f` under `limit` when there is one.
async fn bounded<T>(
    limit: Option<Duration>,
    what: &'static str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, EffectError> {
    match limit {
        Some(after) => tokio::time::timeout(after, f)
            .await
            .map_err(|_| EffectError::Timeout { what, after }),
        None => Ok(f.await),
    }
}

/// Sends to several notifiers; returns every error (an empty list when all succeeded).
pub async fn notify_all(
    notifiers: &[std::sync::Arc<dyn Notifier>],
    n: &Notification,
) -> Vec<NotifyError> {
    let results = futures::future::join_all(notifiers.iter().map(|x| x.notify(n))).await;
    results.into_iter().filter_map(Result::err).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::MemoryStore;
    use crate::ports::state::{DecisionKind, DecisionQuery};

    struct SlowRouter;

    #[async_trait]
    impl TrafficRouter for SlowRouter {
        async fn routing(&self) -> Result<Routing, TrafficError> {
            Ok(Weights::canary(0).into())
        }
        async fn set_routing(
            &self,
            _expected: Option<&Routing>,
            routing: &Routing,
        ) -> Result<Routing, TrafficError> {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(routing.clone())
        }
    }

    /// The proof comes from the state-store write (with the version written), or from a
    /// decision whose next state is the one read; a failed write gives none.
    #[tokio::test]
    async fn only_a_stored_or_unchanged_state_is_a_proof() {
        let store = MemoryStore::new();
        let first = store_state(&store, "guard/a", serde_json::json!({"n": 1}), None)
            .await
            .unwrap();
        assert_eq!(first.version(), Some(1));
        let conflict = store_state(&store, "guard/a", serde_json::json!({"n": 2}), None).await;
        assert!(
            matches!(conflict, Err(StateError::Conflict { .. })),
            "{conflict:?}"
        );
        let second = store_state(&store, "guard/a", serde_json::json!({"n": 2}), Some(1))
            .await
            .unwrap();
        assert_eq!(second.version(), Some(2));
        assert_eq!(
            Stored::unchanged(&"next", &"next", Some(2)).map(|s| s.version()),
            Some(Some(2))
        );
        assert!(Stored::unchanged(&"read", &"next", Some(2)).is_none());
        assert_eq!(Stored::no_state().version(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn applies_in_order_bounds_writes_and_reports_missing_ports() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let exec = Executor::new()
            .with_router(Arc::new(SlowRouter), Duration::from_secs(1))
            .with_log(Arc::new(StoreLog(store.clone())));
        let rec = |action: &str| {
            DecisionRecord::new(
                chrono::Utc::now(),
                DecisionKind::Rollout,
                "shop/checkout",
                "reconcile",
                action,
                "test",
            )
        };
        let stored = store_state(
            store.as_ref(),
            "rollout/shop/checkout",
            serde_json::json!({}),
            None,
        )
        .await
        .unwrap();
        let out = exec
            .apply_all(
                &stored,
                vec![
                    Effect::Record(rec("first")),
                    Effect::SetWeights {
                        expected: None,
                        weights: Weights::canary(10),
                    },
                    Effect::Revert(RevertRequest {
                        app_path: "apps/x".into(),
                        known_good: None,
                        reason: "r".into(),
                        slo_id: None,
                        budget_consumed: None,
                        breach_id: "b-1".into(),
                        extra_trailers: Vec::new(),
                        reason_code: None,
                    }),
                    Effect::Record(rec("second")),
                ],
            )
            .await;
        assert!(matches!(out[0], Outcome::Done));
        match &out[1] {
            Outcome::Failed(e) => {
                assert_eq!(e.to_string(), "setting the weights took longer than 1s");
                assert_eq!(e.metric_label(), "timeout");
            }
            o => panic!("{o:?}"),
        }
        match &out[2] {
            Outcome::Failed(e) => assert_eq!(e.metric_label(), "missing_port"),
            o => panic!("{o:?}"),
        }
        let actions: Vec<String> = store
            .decisions(&DecisionQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions.len(), 2);
        assert!(actions.contains(&"first".to_string()) && actions.contains(&"second".to_string()));
    }
}
