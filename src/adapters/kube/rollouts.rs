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

use std::path::PathBuf;
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, ListParams};
use ::kube::Client;
use async_trait::async_trait;

use super::rollout_status::rollout_resource;
use super::{call, DEFAULT_CALL_TIMEOUT};
use crate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};

/// Objects asked for per list call.
pub const PAGE_SIZE: u32 = 500;

/// Lists the cluster's Rollout objects.
pub struct KubeRollouts {
    client: Client,
    /// Empty: every namespace.
    namespaces: Vec<String>,
    timeout: Duration,
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

    /// Every object of one scope (`None`: all namespaces), page by page.
    async fn list_scope(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<DynamicObject>, RolloutSourceError> {
        let ar = rollout_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let scope = namespace.map_or_else(
            || "in all namespaces".to_string(),
            |ns| format!("in namespace {ns}"),
        );
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(PAGE_SIZE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = call(self.timeout, api.list(&lp)).await.map_err(|e| {
                self.error(format!(
                    "list slogate.dev/v1alpha1 rollouts {scope}: {e}; slogate's service account \
                     needs `list` on rollouts.slogate.dev (deploy/rbac.yaml), and the CRD must \
                     be installed (`slogate crd`)"
                ))
            })?;
            out.extend(page.items);
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
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
        if self.namespaces.is_empty() {
            objects = self.list_scope(None).await?;
        } else {
            for ns in &self.namespaces {
                objects.extend(self.list_scope(Some(ns)).await?);
            }
        }
        let mut set = RolloutSet::default();
        for o in objects {
            let key = format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or("default"),
                o.metadata.name.as_deref().unwrap_or("")
            );
            let origin = PathBuf::from(format!("Rollout {key}"));
            let value = serde_json::to_value(&o)
                .map_err(|e| e.to_string())
                .and_then(|j| serde_yaml::to_value(j).map_err(|e| e.to_string()));
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
}
