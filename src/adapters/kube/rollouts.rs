//! [`RolloutSource`] in a cluster (`rollouts.source: kube`): the `slogate.dev/v1alpha1`
//! Rollout objects, listed in every namespace (`rollouts.namespaces` empty, a cluster-wide
//! `list`) or in each namespace named.
//!
//! Each list is paged (`limit` [`PAGE_SIZE`], following `continue`), and each page is one
//! call under `tokio::time::timeout`. Every object goes through the same validation as a
//! Rollout file ([`crate::rollout::load::parse_object`]): a valid one is returned, an
//! invalid one is reported under its `namespace/name` with every problem, named
//! `Rollout <ns>/<name>: <field>: error: <expected>`, so one team's broken Rollout does not
//! stop anyone else's. The object's `status` (where `rollouts.state: kube` keeps the state
//! machine's state) is not part of the spec and is ignored.
//!
//! A failed call (timeout, 403, 5xx, a continue token that expired) fails the whole
//! reading: a partial list must not look like deleted Rollouts.
//!
//! [`RolloutSource::changed`] watches each scope from the `resourceVersion` of its last
//! successful list (`watch`, [`WATCH_SECONDS`] per call, opened again from the last event
//! seen) and resolves at the first object added, deleted or whose spec changed, so that a
//! `kubectl apply` takes effect at once instead of at the next resync. A change of status or
//! metadata only (slogate's own status writes) keeps the same `metadata.generation` and is
//! not a change. The watch is only a doorbell: what runs is always decided by a fresh list.
//! A watch the API server refuses (no `watch` in RBAC; or a 403 from an API server still
//! filling its RBAC cache after a restart) is logged once and tried again after 30s
//! (doubling to 5 minutes); one it does not answer (a control-plane restart) is tried again
//! after 1s (doubling to 30s). The resync picks changes up meanwhile, and when the version
//! watched from was compacted meanwhile, the 410 Gone that follows makes it list again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use ::kube::Client;
use async_trait::async_trait;
use futures::StreamExt;

use super::rollout_status::rollout_resource;
use super::{call, DEFAULT_CALL_TIMEOUT};
use crate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};

/// Objects asked for per list call.
pub const PAGE_SIZE: u32 = 500;

/// `timeoutSeconds` of one watch call: the API server ends it then and it is opened again.
pub const WATCH_SECONDS: u32 = 290;

/// Pause before a watch that ended, broke or reported an error is opened again or resolves,
/// so that a server ending every watch at once cannot make a busy loop.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// What the last successful list saw of one scope (`None`: all namespaces).
#[derive(Debug, Clone)]
struct Listed {
    namespace: Option<String>,
    /// Where a watch of the scope starts.
    resource_version: String,
    /// `metadata.generation` of each object by uid: a watch event that keeps it is a
    /// status or metadata change, not a spec change.
    generations: HashMap<String, Option<i64>>,
}

impl Listed {
    fn new(namespace: Option<&str>, resource_version: String, objects: &[DynamicObject]) -> Self {
        Listed {
            namespace: namespace.map(str::to_string),
            resource_version,
            generations: objects
                .iter()
                .filter_map(|o| Some((o.metadata.uid.clone()?, o.metadata.generation)))
                .collect(),
        }
    }

    /// Whether `o`, seen modified, has the spec generation the list saw.
    fn same_spec(&self, o: &DynamicObject) -> bool {
        o.metadata.generation.is_some()
            && o.metadata
                .uid
                .as_ref()
                .and_then(|uid| self.generations.get(uid))
                == Some(&o.metadata.generation)
    }
}

/// How one watch call ended.
enum Session {
    /// An object was added, deleted or its spec changed: list again.
    Changed,
    /// The server reported an error (such as 410 Gone, the version is too old): list again,
    /// after a pause.
    Expired,
    /// The server ended the call (its `timeoutSeconds`): open it again.
    Ended,
    /// The connection broke: open it again.
    Broken(::kube::Error),
}

/// Lists the cluster's Rollout objects.
pub struct KubeRollouts {
    client: Client,
    /// Empty: every namespace.
    namespaces: Vec<String>,
    timeout: Duration,
    /// Each scope as last listed successfully; empty before the first list.
    listed: Mutex<Vec<Listed>>,
    /// Whether a watch that could not be opened was logged already.
    watch_warned: AtomicBool,
}

impl std::fmt::Debug for KubeRollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRollouts")
            .field("namespaces", &self.namespaces)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KubeRollouts {
    /// Rollouts in `namespaces`, or in every namespace when it is empty. Each call is
    /// bounded by [`DEFAULT_CALL_TIMEOUT`].
    pub fn new(client: Client, namespaces: Vec<String>) -> Self {
        KubeRollouts {
            client,
            namespaces,
            timeout: DEFAULT_CALL_TIMEOUT,
            listed: Mutex::new(Vec::new()),
            watch_warned: AtomicBool::new(false),
        }
    }

    /// Bound each API call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn error(&self, message: String) -> RolloutSourceError {
        RolloutSourceError {
            source_name: self.describe(),
            message,
        }
    }

    fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = rollout_resource();
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Every object of one scope (`None`: all namespaces), page by page, and the scope as
    /// listed (the `resourceVersion` of its first page, where a watch starts).
    async fn list_scope(
        &self,
        namespace: Option<&str>,
    ) -> Result<(Vec<DynamicObject>, Listed), RolloutSourceError> {
        let api = self.api(namespace);
        let scope = namespace.map_or_else(
            || "in all namespaces".to_string(),
            |ns| format!("in namespace {ns}"),
        );
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut version = None;
        loop {
            let mut lp = ListParams::default().limit(PAGE_SIZE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = call(self.timeout, api.list(&lp)).await.map_err(|e| {
                // Only an answer from the API server can mean RBAC or a missing CRD.
                let hint = if e.answered() {
                    "; slogate's service account needs `list` on rollouts.slogate.dev \
                     (deploy/rbac.yaml), and the CRD must be installed (`slogate crd`)"
                } else {
                    "; check the kubeconfig's (or the in-cluster) server address and CA"
                };
                self.error(format!(
                    "list slogate.dev/v1alpha1 rollouts {scope}: {}{hint}",
                    super::error_chain(&e)
                ))
            })?;
            out.extend(page.items);
            // A paged list is a snapshot at the first page's resourceVersion.
            if version.is_none() {
                version = page.metadata.resource_version;
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                let listed = Listed::new(namespace, version.unwrap_or_default(), &out);
                return Ok((out, listed));
            }
        }
    }
}

impl KubeRollouts {
    /// Log that `listed` cannot be watched (a warning the first time).
    fn cannot_watch(&self, listed: &Listed, error: &str) {
        let scope = listed.namespace.as_deref().unwrap_or("all namespaces");
        if self.watch_warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(scope, error, "cannot watch the Rollouts");
        } else {
            tracing::warn!(
                scope,
                error,
                "cannot watch the Rollouts: changes are picked up every \
                 rollouts.resync_interval; slogate's service account needs `watch` on \
                 rollouts.slogate.dev (deploy/rbac.yaml)"
            );
        }
    }

    /// Resolve when the scope changed since `listed` (or its version expired: list again).
    async fn watch_scope(&self, mut listed: Listed) {
        let api = self.api(listed.namespace.as_deref());
        if listed.resource_version.is_empty() {
            // Nothing to start from (a server that gave no resourceVersion).
            return std::future::pending().await;
        }
        // Backoff for reopening a watch the API server did not answer (connection refused
        // during a control-plane restart, TLS): from WATCH_RETRY, doubling, at most 30s.
        let mut unreachable = WATCH_RETRY;
        // Backoff after a refusal (403): 30s doubling to 5 minutes, so that a service account
        // without `watch` costs one request now and then, and one that gets it back (or an
        // API server past its warm-up) is watched again.
        let mut refused = Duration::from_secs(30);
        loop {
            let params = WatchParams::default().timeout(WATCH_SECONDS);
            let opened =
                tokio::time::timeout(self.timeout, api.watch(&params, &listed.resource_version))
                    .await;
            let stream = match opened {
                Ok(Ok(stream)) => stream,
                // The version is too old to watch from, refused at once rather than as an
                // event: list again.
                Ok(Err(::kube::Error::Api(status))) if status.code == 410 => {
                    tracing::debug!(code = status.code, reason = %status.message, "Rollout watch: list again");
                    tokio::time::sleep(WATCH_RETRY).await;
                    return;
                }
                // Refused by the API server: RBAC without `watch` (said once), or an API
                // server still warming up after a restart (a 403 until its RBAC cache is
                // filled). The resync picks changes up; the watch is tried again.
                Ok(Err(e @ ::kube::Error::Api(_))) => {
                    self.cannot_watch(&listed, &super::error_chain(&e));
                    tokio::time::sleep(refused).await;
                    refused = (refused * 2).min(Duration::from_secs(300));
                    continue;
                }
                // Not answered: try again, from the same version, until the API server is
                // back (a version compacted meanwhile is then refused with 410: list again).
                Ok(Err(e)) => {
                    tracing::debug!(error = %super::error_chain(&e), retry_in = ?unreachable, "Rollout watch: the API server is not reachable");
                    tokio::time::sleep(unreachable).await;
                    unreachable = (unreachable * 2).min(Duration::from_secs(30));
                    continue;
                }
                Err(_) => {
                    tracing::debug!(timeout = ?self.timeout, retry_in = ?unreachable, "Rollout watch: no answer");
                    tokio::time::sleep(unreachable).await;
                    unreachable = (unreachable * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            unreachable = WATCH_RETRY;
            refused = Duration::from_secs(30);
            let mut stream = std::pin::pin!(stream);
            // The server ends the call after WATCH_SECONDS; a connection that went silent
            // without closing is given up a little after that.
            let limit = Duration::from_secs(u64::from(WATCH_SECONDS) + 30);
            let session = tokio::time::timeout(limit, async {
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Bookmark(b)) => {
                            listed.resource_version = b.metadata.resource_version;
                        }
                        Ok(WatchEvent::Modified(o)) if listed.same_spec(&o) => {
                            if let Some(v) = o.metadata.resource_version {
                                listed.resource_version = v;
                            }
                        }
                        Ok(WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_)) => {
                            return Session::Changed;
                        }
                        Ok(WatchEvent::Error(status)) => {
                            tracing::debug!(code = status.code, reason = %status.message, "Rollout watch: list again");
                            return Session::Expired;
                        }
                        Err(e) => return Session::Broken(e),
                    }
                }
                Session::Ended
            })
            .await
            .unwrap_or(Session::Ended);
            match session {
                Session::Changed => return,
                Session::Expired => {
                    tokio::time::sleep(WATCH_RETRY).await;
                    return;
                }
                Session::Ended => {}
                Session::Broken(e) => {
                    tracing::debug!(error = %super::error_chain(&e), "Rollout watch broke: opening it again")
                }
            }
            tokio::time::sleep(WATCH_RETRY).await;
        }
    }
}

#[async_trait]
impl RolloutSource for KubeRollouts {
    fn describe(&self) -> String {
        if self.namespaces.is_empty() {
            "Rollout objects in all namespaces".to_string()
        } else {
            format!(
                "Rollout objects in namespaces {}",
                self.namespaces.join(", ")
            )
        }
    }

    async fn list(&self) -> Result<RolloutSet, RolloutSourceError> {
        let mut objects = Vec::new();
        let mut listed = Vec::new();
        if self.namespaces.is_empty() {
            let (o, l) = self.list_scope(None).await?;
            objects = o;
            listed.push(l);
        } else {
            for ns in &self.namespaces {
                let (o, l) = self.list_scope(Some(ns)).await?;
                objects.extend(o);
                listed.push(l);
            }
        }
        // Only a complete reading moves the watches on.
        *self.listed.lock().unwrap_or_else(PoisonError::into_inner) = listed;
        let mut set = RolloutSet::default();
        for o in objects {
            let key = format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or("default"),
                o.metadata.name.as_deref().unwrap_or("")
            );
            let origin = PathBuf::from(format!("Rollout {key}"));
            let value = crate::model::yaml::to_value(&o).map_err(|e| e.to_string());
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    set.invalid
                        .entry(key)
                        .or_default()
                        .push(format!("{}: cannot read the object: {e}", origin.display()));
                    continue;
                }
            };
            let report = crate::rollout::load::parse_object(&origin, &value);
            set.warnings
                .extend(report.warnings.iter().map(ToString::to_string));
            if report.errors.is_empty() {
                set.rollouts
                    .extend(report.rollouts.into_iter().map(|l| l.rollout));
            } else {
                set.invalid
                    .entry(key)
                    .or_default()
                    .extend(report.errors.iter().map(ToString::to_string));
            }
        }
        Ok(set)
    }

    async fn changed(&self) {
        let listed = self
            .listed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if listed.is_empty() {
            return std::future::pending().await;
        }
        let watches = listed.into_iter().map(|l| Box::pin(self.watch_scope(l)));
        futures::future::select_all(watches).await;
    }
}
