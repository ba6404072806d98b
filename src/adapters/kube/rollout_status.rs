//! A [`StateStore`] that keeps each rollout's state machine status in the `status`
//! subresource of its `slogate.dev/v1alpha1` Rollout object, so that every replica (and a
//! new leader after a failover) reads the status the previous leader stored. Everything
//! else goes to an inner store (the embedded file store).
//!
//! # Which keys
//!
//! - `rollout/<namespace>/<name>`: the `status` of the Rollout `<name>` in `<namespace>`.
//!   Any other key under `rollout/` is refused (it has no object to live in).
//! - Every other key (`rollout-commands/…`, `guard/…`, …), the decision log, and `list`
//!   go to the inner store. `list("rollout/")` therefore returns what the inner store holds
//!   under that prefix, which is nothing this store wrote: the Rollouts' statuses are not
//!   listed. The rollout controller never lists (it knows its Rollouts from
//!   `rollouts.paths`); `kubectl get rollouts -A` lists them in a cluster.
//!
//! # Versions
//!
//! The port's version is the Rollout's `metadata.resourceVersion`, read as a decimal
//! integer (the etcd revision of the object's last write, which is what every etcd-backed
//! API server hands out; another form is reported as an error rather than guessed at).
//! Versions are only compared for equality and handed back as the next `expected`: they
//! do not start at 1 or grow by 1. They cover the whole object, so a change of the spec or
//! the labels between a read and a write is a conflict too; the controller then starts
//! over from what is stored at its next reconcile, which is safe, only one reconcile late.
//! A Rollout with no status (absent, `null` or `{}`) reads as `None`, as does a Rollout
//! that does not exist.
//!
//! # Writes
//!
//! `put` sends a JSON patch (RFC 6902) to `rollouts/{name}/status`:
//!
//! ```json
//! [{"op": "replace", "path": "/metadata/resourceVersion", "value": "<expected>"},
//!  {"op": "add", "path": "/status", "value": {…the whole document…}}]
//! ```
//!
//! - The `resourceVersion` op is the compare-and-swap: the API server compares the patched
//!   object's resourceVersion with the stored one and answers **409 Conflict** when they
//!   differ (see [`super::traffic`] for why not a `test` op). A 409 becomes
//!   [`StateError::Conflict`], exactly as the file and memory stores report a lost
//!   compare-and-swap; `found` is the version read again after the 409 (`None` when the
//!   status is empty or that read fails too).
//! - `add` on `/status` replaces the whole status, or creates it on a Rollout that has none.
//!   A merge patch would keep the members the new document leaves out (a finished pending
//!   effect, a phase's `deadline`), so it would not store the document that was given.
//! - Only the status subresource is written: the API server ignores anything but `status`
//!   in a status write, and RBAC grants `rollouts/status` `patch` and nothing else.
//! - `expected: None` ("must not exist") first reads the Rollout: a non-empty status is a
//!   conflict; otherwise the patch carries the resourceVersion just read, so a status
//!   written by someone else in between is a 409 too. The Rollout itself must exist: this
//!   store writes its status and never creates it.
//!
//! The document must be a non-empty JSON object. The CRD's status schema is typed (it is
//! generated from [`crate::rollout::RolloutStatus`]), so the API server validates what is
//! stored and prunes members it does not know: the store is for `RolloutStatus` documents,
//! which is all the controller writes under `rollout/`.
//!
//! Every API call runs under `tokio::time::timeout` ([`DEFAULT_CALL_TIMEOUT`] unless set
//! with [`RolloutStatusStore::with_timeout`]). Errors name the Rollout.

use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::Client;
use async_trait::async_trait;
use serde_json::{json, Value};

use super::{call, error_chain, CallError, DEFAULT_CALL_TIMEOUT, FIELD_MANAGER};
use crate::ports::state::{
    validate_key, DecisionQuery, DecisionRecord, StateError, StateStore, Versioned,
};
use crate::ports::BoxError;

/// The key prefix kept in Rollout statuses.
pub const PREFIX: &str = "rollout/";

/// The `ApiResource` of a Rollout (`slogate.dev/v1alpha1`).
pub fn rollout_resource() -> ApiResource {
    use crate::rollout::spec::{GROUP, KIND, VERSION};
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "rollouts")
}

/// Why a Rollout's status could not be read or written. Converted into
/// [`StateError::Api`] (kept as its source); conflicts are [`StateError::Conflict`].
///
/// `Api` and `Patch` keep their cause as the source and show it in their message too (the
/// state store's errors are printed with `{e}`).
#[derive(Debug, thiserror::Error)]
pub enum RolloutStatusError {
    #[error(
        "Rollout {rollout} not found in the cluster: its state is kept in its status \
         (rollouts.state: kube), so the Rollout must be applied to the cluster first"
    )]
    NotFound { rollout: String },
    /// A call to the API server failed (the call's error, with its causes, is the source).
    #[error("{op} Rollout {rollout}: {}", error_chain(.source.as_ref()))]
    Api {
        op: &'static str,
        rollout: String,
        #[source]
        source: BoxError,
    },
    /// The status patch could not be built (unreachable for the ops `status_patch` builds).
    #[error("patch status of Rollout {rollout}: building the JSON patch: {source}")]
    Patch {
        rollout: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "Rollout {rollout}: metadata.resourceVersion is {found:?}; expected a decimal \
         number (it is the state version)"
    )]
    ResourceVersion {
        rollout: String,
        found: Option<String>,
    },
    #[error(
        "Rollout {rollout}: the status to store must be a non-empty JSON object, found {found}"
    )]
    NotAnObject { rollout: String, found: String },
    #[error(
        "state key `{key}`: expected rollout/<namespace>/<name>; the Rollout status store \
         keeps nothing else under rollout/"
    )]
    Key { key: String },
    #[error(
        "state key `{key}`: a Rollout's state is its status and goes with the Rollout; it is \
         not deleted through the state store"
    )]
    Delete { key: String },
}

impl From<RolloutStatusError> for StateError {
    fn from(e: RolloutStatusError) -> Self {
        StateError::Api {
            source: Box::new(e),
        }
    }
}

/// Rollout statuses in the cluster, everything else in `inner`.
pub struct RolloutStatusStore {
    client: Client,
    inner: Arc<dyn StateStore>,
    timeout: Duration,
}

impl std::fmt::Debug for RolloutStatusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutStatusStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The Rollout a `rollout/<ns>/<name>` key names.
struct Target<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl Target<'_> {
    fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What a read of the Rollout found.
struct Read {
    version: u64,
    /// `None` when the status is absent, `null` or `{}`.
    status: Option<Value>,
}

/// `Some` for keys this store keeps (an error for malformed ones), `None` for the inner
/// store's.
fn target(key: &str) -> Option<Result<Target<'_>, RolloutStatusError>> {
    let rest = key.strip_prefix(PREFIX)?;
    let mut parts = rest.split('/');
    Some(match (parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(name), None) if !namespace.is_empty() && !name.is_empty() => {
            Ok(Target { namespace, name })
        }
        _ => Err(RolloutStatusError::Key {
            key: key.to_string(),
        }),
    })
}

fn version_of(obj: &DynamicObject, rollout: &str) -> Result<u64, RolloutStatusError> {
    let rv = obj.metadata.resource_version.as_deref();
    rv.and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| RolloutStatusError::ResourceVersion {
            rollout: rollout.to_string(),
            found: rv.map(str::to_string),
        })
}

fn non_empty_status(obj: &DynamicObject) -> Option<Value> {
    match obj.data.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(v) => Some(v.clone()),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an empty object",
    }
}

impl RolloutStatusStore {
    /// Rollout statuses through `client`, every other key in `inner`. Each API call is
    /// bounded by [`DEFAULT_CALL_TIMEOUT`].
    pub fn new(client: Client, inner: Arc<dyn StateStore>) -> Self {
        RolloutStatusStore {
            client,
            inner,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Bound each API call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store of every key but `rollout/<ns>/<name>`, and of the decision log.
    pub fn inner(&self) -> &Arc<dyn StateStore> {
        &self.inner
    }

    fn api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &rollout_resource())
    }

    fn api_error(op: &'static str, t: &Target<'_>, e: CallError) -> RolloutStatusError {
        match e {
            CallError::NotFound => RolloutStatusError::NotFound { rollout: t.label() },
            e => RolloutStatusError::Api {
                op,
                rollout: t.label(),
                source: Box::new(e),
            },
        }
    }

    /// The Rollout's version and status; `None` when it does not exist.
    async fn read(&self, t: &Target<'_>) -> Result<Option<Read>, RolloutStatusError> {
        let obj = match call(self.timeout, self.api(t.namespace).get(t.name)).await {
            Ok(obj) => obj,
            Err(CallError::NotFound) => return Ok(None),
            Err(e) => return Err(Self::api_error("get", t, e)),
        };
        Ok(Some(Read {
            version: version_of(&obj, &t.label())?,
            status: non_empty_status(&obj),
        }))
    }

    async fn get_status(&self, t: &Target<'_>) -> Result<Option<Versioned>, StateError> {
        Ok(self.read(t).await?.and_then(|r| {
            r.status.map(|value| Versioned {
                version: r.version,
                value,
            })
        }))
    }

    /// The JSON patch that replaces the status if the object is still at `version`.
    pub fn status_patch(version: u64, status: &Value) -> Value {
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": version.to_string()},
            {"op": "add", "path": "/status", "value": status},
        ])
    }

    async fn put_status(
        &self,
        key: &str,
        t: &Target<'_>,
        value: Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        if value.as_object().is_none_or(|m| m.is_empty()) {
            return Err(RolloutStatusError::NotAnObject {
                rollout: t.label(),
                found: kind_of(&value).to_string(),
            }
            .into());
        }
        let conflict = |found: Option<u64>| StateError::Conflict {
            key: key.to_string(),
            expected,
            found,
        };
        let at = match expected {
            Some(v) => v,
            None => match self.read(t).await? {
                None => return Err(RolloutStatusError::NotFound { rollout: t.label() }.into()),
                Some(Read {
                    version,
                    status: Some(_),
                }) => return Err(conflict(Some(version))),
                Some(Read { version, .. }) => version,
            },
        };
        let patch = Patch::Json::<()>(
            serde_json::from_value(Self::status_patch(at, &value)).map_err(|source| {
                // Unreachable for the ops built by `status_patch`; reported, not panicked.
                RolloutStatusError::Patch {
                    rollout: t.label(),
                    source,
                }
            })?,
        );
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let api = self.api(t.namespace);
        match call(self.timeout, api.patch_status(t.name, &params, &patch)).await {
            Ok(obj) => Ok(version_of(&obj, &t.label())?),
            Err(CallError::Conflict(message)) => {
                tracing::debug!(rollout = %t.label(), %message, "status write lost its compare-and-swap");
                let found = match self.read(t).await {
                    Ok(r) => r.and_then(|r| r.status.map(|_| r.version)),
                    Err(e) => {
                        tracing::debug!(rollout = %t.label(), "reading the Rollout after a conflict: {e}");
                        None
                    }
                };
                Err(conflict(found))
            }
            // Deleted since it was read: the document is gone.
            Err(CallError::NotFound) if expected.is_some() => Err(conflict(None)),
            Err(e) => Err(Self::api_error("patch status of", t, e).into()),
        }
    }
}

#[async_trait]
impl StateStore for RolloutStatusStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        validate_key(key)?;
        match target(key) {
            Some(t) => self.get_status(&t?).await,
            None => self.inner.get(key).await,
        }
    }

    async fn put(&self, key: &str, value: Value, expected: Option<u64>) -> Result<u64, StateError> {
        validate_key(key)?;
        match target(key) {
            Some(t) => self.put_status(key, &t?, value, expected).await,
            None => self.inner.put(key, value, expected).await,
        }
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        validate_key(key)?;
        match target(key) {
            Some(_) => Err(RolloutStatusError::Delete { key: key.into() }.into()),
            None => self.inner.delete(key, expected).await,
        }
    }

    /// The inner store's keys (see the module docs: Rollout statuses are not listed).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.inner.list(prefix).await
    }

    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError> {
        self.inner.append_decision(record).await
    }

    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        self.inner.decisions(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_under_rollout_name_one_object() {
        let t = target("rollout/shop/checkout").unwrap().unwrap();
        assert_eq!((t.namespace, t.name), ("shop", "checkout"));
        assert!(target("rollout-commands/shop/checkout").is_none());
        assert!(target("guard/checkout").is_none());
        assert!(target("rollout").is_none());
        for bad in ["rollout/shop", "rollout/shop/checkout/x"] {
            let e = target(bad).unwrap().err().unwrap();
            assert!(
                matches!(&e, RolloutStatusError::Key { key } if key == bad),
                "{e:?}"
            );
        }
    }

    #[test]
    fn the_patch_guards_the_resource_version_and_replaces_the_status() {
        assert_eq!(
            RolloutStatusStore::status_patch(42, &json!({"phase": "Pending"})),
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "42"},
                {"op": "add", "path": "/status", "value": {"phase": "Pending"}},
            ])
        );
    }
}
