//! A [`StateStore`] that keeps every document in a ConfigMap of one namespace (slogate's
//! own), so that every replica reads and writes the same state: an operator command POSTed
//! to a follower is seen by the leader, and a new leader after a failover finds the guard's
//! freeze, known-good and breach records where the previous leader left them.
//!
//! # Objects
//!
//! One ConfigMap per key, in [`ConfigMapStore::namespace`]:
//!
//! ```yaml
//! apiVersion: v1
//! kind: ConfigMap
//! metadata:
//!   name: slogate-state-<first 20 hex digits of sha256(key)>
//!   labels: {app.kubernetes.io/managed-by: slogate, slogate.dev/state: "true"}
//!   annotations: {slogate.dev/key: <key>}
//! data:
//!   value: <the document, compact JSON>
//! ```
//!
//! The name is derived from the key ([`configmap_name`]) because keys (`guard/checkout`,
//! `rollout-commands/shop/checkout`) are not valid object names. The key itself is in the
//! `slogate.dev/key` annotation: a read checks it, so a hash collision or a foreign object
//! under that name is reported as corrupt state, never taken for the document.
//!
//! # Versions
//!
//! The port's version is the ConfigMap's `metadata.resourceVersion`, read as a decimal
//! integer (as [`super::rollout_status`] does). Versions are only compared for equality and
//! handed back as the next `expected`; they do not start at 1 or grow by 1.
//!
//! # Writes
//!
//! - `expected: None` ("must not exist"): `POST` (create). 409 AlreadyExists is a lost
//!   compare-and-swap: [`StateError::Conflict`] with `found` read back.
//! - `expected: Some(v)`: `PUT` (replace) of the whole object carrying
//!   `metadata.resourceVersion: "v"`; the API server answers 409 Conflict when the stored
//!   object has another resourceVersion, which becomes [`StateError::Conflict`] with `found`
//!   read back. A missing object (404) is a conflict with `found: None`, as in the file and
//!   memory stores.
//!
//! # Deleting
//!
//! `delete(key, v)` is a `DELETE` with the precondition `resourceVersion: "v"`: 409 (the
//! ConfigMap changed since it was read) is [`StateError::Conflict`] and the ConfigMap is
//! kept; 404 is a conflict with `found: None`. Only the state sweep deletes
//! (`crate::runtime::state_gc`).
//!
//! # Listing
//!
//! `list(prefix)` lists the ConfigMaps of the namespace with the label selector
//! [`LABEL_SELECTOR`] (in pages of [`LIST_PAGE`]) and keeps the keys of their annotation
//! that start with `prefix`, sorted.
//!
//! # The decision log
//!
//! Shared by the replicas, and kept in each pod too:
//!
//! - `append_decision` appends to the inner store (the file store on `state.dir`: this pod's
//!   complete history, durable before anything else), then to the shared ring of ConfigMap
//!   documents `decisions/00` … `decisions/15`
//!   ([`crate::adapters::state::decision_ring`]: the most recent 1,600 decisions at least,
//!   appended with compare-and-swap). A failed shared append is logged with the record's
//!   id and does not fail the decision: it is in the pod's log.
//! - `decisions` merges the ring (every replica's recent decisions) with this pod's own
//!   log, by record id, oldest first. When the ring cannot be read, it answers from the
//!   pod's log and logs a warning.
//!
//! Every API call runs under `tokio::time::timeout` ([`DEFAULT_CALL_TIMEOUT`] unless set
//! with [`ConfigMapStore::with_timeout`]). Errors name the key and the ConfigMap.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use ::kube::Client;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use super::{call, error_chain, CallError, DEFAULT_CALL_TIMEOUT, FIELD_MANAGER};
use crate::adapters::state::SharedDecisionLog;
use crate::ports::state::{
    validate_key, DecisionQuery, DecisionRecord, StateError, StateStore, Versioned,
};
use crate::ports::BoxError;

/// Prefix of the ConfigMaps' names.
pub const NAME_PREFIX: &str = "slogate-state-";
/// The annotation holding the key.
pub const KEY_ANNOTATION: &str = "slogate.dev/key";
/// The label marking a ConfigMap as a state document.
pub const STATE_LABEL: &str = "slogate.dev/state";
/// The standard label naming who manages the ConfigMap.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The selector `list` uses.
pub const LABEL_SELECTOR: &str = "app.kubernetes.io/managed-by=slogate,slogate.dev/state=true";
/// The member of `data` holding the document.
pub const VALUE_FIELD: &str = "value";
/// ConfigMaps per list request.
pub const LIST_PAGE: u32 = 500;

/// Hex digits of the key's SHA-256 in the name (80 bits; the annotation catches the rest).
const HASH_DIGITS: usize = 20;

/// The ConfigMap name of `key`: `slogate-state-` and the first 20 hex digits of its SHA-256.
pub fn configmap_name(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut name = String::with_capacity(NAME_PREFIX.len() + HASH_DIGITS);
    name.push_str(NAME_PREFIX);
    for b in digest.as_ref().iter().take(HASH_DIGITS / 2) {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// Why a state ConfigMap could not be read or written. Converted into
/// [`StateError::Api`] (kept as its source); conflicts are [`StateError::Conflict`] and
/// undecodable documents [`StateError::Undecodable`] (a foreign one [`StateError::Corrupt`]).
///
/// `Api` and `List` keep the failed call's error as the source and show it, with its
/// causes, in their message too (the state store's errors are printed with `{e}`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigMapStoreError {
    #[error("{op} ConfigMap {configmap} (state `{key}`): {}", error_chain(.source.as_ref()))]
    Api {
        op: &'static str,
        key: String,
        configmap: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "ConfigMap {configmap} (state `{key}`): metadata.resourceVersion is {found:?}; \
         expected a decimal number (it is the state version)"
    )]
    ResourceVersion {
        key: String,
        configmap: String,
        found: Option<String>,
    },
    #[error(
        "list ConfigMaps in {namespace} with labels {LABEL_SELECTOR}: {}",
        error_chain(.source.as_ref())
    )]
    List {
        namespace: String,
        #[source]
        source: BoxError,
    },
}

impl From<ConfigMapStoreError> for StateError {
    fn from(e: ConfigMapStoreError) -> Self {
        StateError::Api {
            source: Box::new(e),
        }
    }
}

/// Every document in a ConfigMap of `namespace`, the decision log in `inner`.
pub struct ConfigMapStore {
    client: Client,
    namespace: String,
    inner: Arc<dyn StateStore>,
    timeout: Duration,
    log: SharedDecisionLog,
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A key and its ConfigMap, for error messages.
struct Doc<'a> {
    key: &'a str,
    name: String,
    /// `<namespace>/<name>`.
    label: String,
}

/// What a read of a ConfigMap found.
struct Read {
    version: u64,
    value: Value,
}

impl ConfigMapStore {
    /// Documents in ConfigMaps of `namespace` through `client`, the decision log in `inner`.
    /// Each API call is bounded by [`DEFAULT_CALL_TIMEOUT`].
    pub fn new(client: Client, namespace: impl Into<String>, inner: Arc<dyn StateStore>) -> Self {
        ConfigMapStore {
            client,
            namespace: namespace.into(),
            inner,
            timeout: DEFAULT_CALL_TIMEOUT,
            log: SharedDecisionLog::new(),
        }
    }

    /// Bound each API call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The namespace of the ConfigMaps.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The store of this pod's own decision log.
    pub fn inner(&self) -> &Arc<dyn StateStore> {
        &self.inner
    }

    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn doc<'a>(&self, key: &'a str) -> Doc<'a> {
        let name = configmap_name(key);
        Doc {
            key,
            label: format!("{}/{name}", self.namespace),
            name,
        }
    }

    fn api_error(op: &'static str, d: &Doc<'_>, e: CallError) -> ConfigMapStoreError {
        ConfigMapStoreError::Api {
            op,
            key: d.key.to_string(),
            configmap: d.label.clone(),
            source: Box::new(e),
        }
    }

    fn corrupt(d: &Doc<'_>, message: impl std::fmt::Display) -> StateError {
        StateError::Corrupt {
            key: d.key.to_string(),
            message: format!("ConfigMap {}: {message}", d.label),
        }
    }

    fn version_of(d: &Doc<'_>, cm: &ConfigMap) -> Result<u64, ConfigMapStoreError> {
        let rv = cm.metadata.resource_version.as_deref();
        rv.and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| ConfigMapStoreError::ResourceVersion {
                key: d.key.to_string(),
                configmap: d.label.clone(),
                found: rv.map(str::to_string),
            })
    }

    /// The document in `cm`, checked to be `d`'s.
    fn decode(d: &Doc<'_>, cm: &ConfigMap) -> Result<Read, StateError> {
        let holds = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(KEY_ANNOTATION));
        if holds.map(String::as_str) != Some(d.key) {
            return Err(Self::corrupt(
                d,
                format!(
                    "annotation {KEY_ANNOTATION} is {holds:?}, not this key (a foreign object \
                     or a hash collision); it is not read or written"
                ),
            ));
        }
        let text = cm
            .data
            .as_ref()
            .and_then(|m| m.get(VALUE_FIELD))
            .ok_or_else(|| Self::corrupt(d, format!("no data.{VALUE_FIELD}")))?;
        let value = serde_json::from_str(text).map_err(|e| StateError::Undecodable {
            key: d.key.to_string(),
            at: Some(format!(
                "ConfigMap {}: data.{VALUE_FIELD} is not JSON",
                d.label
            )),
            source: Box::new(e),
        })?;
        Ok(Read {
            version: Self::version_of(d, cm)?,
            value,
        })
    }

    /// The document and its version; `None` when the ConfigMap does not exist.
    async fn read(&self, d: &Doc<'_>) -> Result<Option<Read>, StateError> {
        match call(self.timeout, self.api().get(&d.name)).await {
            Ok(cm) => Self::decode(d, &cm).map(Some),
            Err(CallError::NotFound) => Ok(None),
            Err(e) => Err(Self::api_error("get", d, e).into()),
        }
    }

    /// The version stored now, for a conflict's `found` (`None` when absent or unreadable).
    async fn found_after_conflict(&self, d: &Doc<'_>) -> Option<u64> {
        match call(self.timeout, self.api().get(&d.name)).await {
            Ok(cm) => Self::version_of(d, &cm).ok(),
            Err(CallError::NotFound) => None,
            Err(e) => {
                tracing::debug!(configmap = %d.label, "reading the ConfigMap after a conflict: {}", super::error_chain(&e));
                None
            }
        }
    }

    /// The ConfigMap holding `value` under `key`, at `version` when given.
    pub fn object(key: &str, value: &Value, version: Option<u64>) -> ConfigMap {
        let labels = BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), "slogate".to_string()),
            (STATE_LABEL.to_string(), "true".to_string()),
        ]);
        let annotations = BTreeMap::from([(KEY_ANNOTATION.to_string(), key.to_string())]);
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(configmap_name(key)),
                labels: Some(labels),
                annotations: Some(annotations),
                resource_version: version.map(|v| v.to_string()),
                ..ObjectMeta::default()
            },
            // `Value`'s Display is its compact JSON and cannot fail.
            data: Some(BTreeMap::from([(
                VALUE_FIELD.to_string(),
                value.to_string(),
            )])),
            ..ConfigMap::default()
        }
    }

    async fn write(
        &self,
        key: &str,
        value: Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        let d = self.doc(key);
        let obj = Self::object(key, &value, expected);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        let api = self.api();
        let (op, result) = match expected {
            None => (
                "create",
                call(self.timeout, api.create(&params, &obj)).await,
            ),
            Some(_) => (
                "replace",
                call(self.timeout, api.replace(&d.name, &params, &obj)).await,
            ),
        };
        let conflict = |found: Option<u64>| StateError::Conflict {
            key: key.to_string(),
            expected,
            found,
        };
        match result {
            Ok(cm) => Ok(Self::version_of(&d, &cm)?),
            Err(CallError::Conflict(message)) => {
                tracing::debug!(configmap = %d.label, %message, "state write lost its compare-and-swap");
                Err(conflict(self.found_after_conflict(&d).await))
            }
            // Replaced, but gone since it was read: the document is gone.
            Err(CallError::NotFound) if expected.is_some() => Err(conflict(None)),
            Err(e) => Err(Self::api_error(op, &d, e).into()),
        }
    }

    /// `DELETE` with a resourceVersion precondition: the API server refuses (409) when the
    /// ConfigMap changed since `expected` was read.
    async fn remove(&self, key: &str, expected: u64) -> Result<(), StateError> {
        let d = self.doc(key);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(expected.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let conflict = |found: Option<u64>| StateError::Conflict {
            key: key.to_string(),
            expected: Some(expected),
            found,
        };
        match call(self.timeout, self.api().delete(&d.name, &params)).await {
            Ok(_) => Ok(()),
            Err(CallError::Conflict(message)) => {
                tracing::debug!(configmap = %d.label, %message, "state delete lost its compare-and-swap");
                Err(conflict(self.found_after_conflict(&d).await))
            }
            Err(CallError::NotFound) => Err(conflict(None)),
            Err(e) => Err(Self::api_error("delete", &d, e).into()),
        }
    }

    /// The keys of every state ConfigMap of the namespace, one list page at a time.
    async fn keys(&self) -> Result<Vec<String>, StateError> {
        let api = self.api();
        let mut keys = Vec::new();
        let mut continue_token: Option<String> = None;
        loop {
            let lp = ListParams {
                label_selector: Some(LABEL_SELECTOR.to_string()),
                limit: Some(LIST_PAGE),
                continue_token: continue_token.take(),
                ..ListParams::default()
            };
            let page =
                call(self.timeout, api.list(&lp))
                    .await
                    .map_err(|e| ConfigMapStoreError::List {
                        namespace: self.namespace.clone(),
                        source: Box::new(e),
                    })?;
            for cm in &page.items {
                let key = cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(KEY_ANNOTATION));
                // Only objects this store would read back under their key.
                match key {
                    Some(k) if cm.metadata.name.as_deref() == Some(&configmap_name(k)) => {
                        keys.push(k.clone())
                    }
                    _ => tracing::debug!(
                        configmap = ?cm.metadata.name,
                        "a ConfigMap with the state labels but no matching {KEY_ANNOTATION} annotation is ignored"
                    ),
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => continue_token = Some(c),
                None => break,
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl StateStore for ConfigMapStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        validate_key(key)?;
        Ok(self.read(&self.doc(key)).await?.map(|r| Versioned {
            version: r.version,
            value: r.value,
        }))
    }

    async fn put(&self, key: &str, value: Value, expected: Option<u64>) -> Result<u64, StateError> {
        validate_key(key)?;
        self.write(key, value, expected).await
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        validate_key(key)?;
        self.remove(key, expected).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys: Vec<String> = self
            .keys()
            .await?
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// This pod's log first, then the shared ring: see the module docs.
    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError> {
        self.inner.append_decision(record).await?;
        if let Err(e) = self.log.append(self, record).await {
            tracing::warn!(
                id = %record.id,
                "decision recorded in this pod's log only, not in the shared log: {e}"
            );
        }
        Ok(())
    }

    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        let mine = self.inner.decisions(query).await?;
        match SharedDecisionLog::read(self, query, mine.clone()).await {
            Ok(all) => Ok(all),
            Err(e) => {
                tracing::warn!(
                    "the shared decision log cannot be read, answering with this pod's only: {e}"
                );
                Ok(mine)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_valid_stable_and_distinct() {
        let a = configmap_name("guard/checkout");
        assert_eq!(a, configmap_name("guard/checkout"));
        assert_ne!(a, configmap_name("guard/checkouts"));
        assert!(a.starts_with(NAME_PREFIX) && a.len() == NAME_PREFIX.len() + HASH_DIGITS);
        // A DNS-1123 subdomain (what ConfigMap names must be).
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        // The first 10 bytes of the key's SHA-256, fixed forever: existing state is found by
        // its name after an upgrade.
        assert_eq!(
            configmap_name(""),
            "slogate-state-e3b0c44298fc1c149afb",
            "sha256 of the empty string"
        );
    }

    #[test]
    fn the_object_carries_key_labels_value_and_version() {
        let cm = ConfigMapStore::object("guard/checkout", &json!({"a": [1, 2]}), Some(42));
        let v = serde_json::to_value(&cm).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {
                    "name": configmap_name("guard/checkout"),
                    "labels": {"app.kubernetes.io/managed-by": "slogate", "slogate.dev/state": "true"},
                    "annotations": {"slogate.dev/key": "guard/checkout"},
                    "resourceVersion": "42",
                },
                "data": {"value": "{\"a\":[1,2]}"},
            })
        );
        assert_eq!(
            LABEL_SELECTOR,
            format!("{MANAGED_BY_LABEL}=slogate,{STATE_LABEL}=true")
        );
    }
}
