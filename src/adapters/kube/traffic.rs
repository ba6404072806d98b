//! `TrafficRouter` over an Istio `networking.istio.io/v1` VirtualService or a Gateway API
//! `gateway.networking.k8s.io/v1` HTTPRoute, through kube's dynamic API (no generated CRD
//! types: only the few fields read here are assumed, everything else is left as it was).
//!
//! # Which fields
//!
//! - VirtualService: the `spec.http[]` entry whose `name` is the route; in it, the
//!   `route[]` destination `{host, subset: stable}` and `{host, subset: canary}` (subset
//!   mode) or `{host: stableHost}` and `{host: canaryHost}` (host mode). A missing `weight`
//!   reads as 0 (Istio: a destination without weight gets no traffic unless it is alone).
//! - HTTPRoute: the one `spec.rules[]` entry whose `backendRefs` hold both the stable and the
//!   canary Service (by name, by port when the target names one, in the route's namespace).
//!   A missing `weight` reads as 1 (the Gateway API default).
//!
//! Weights are relative in both APIs. They are reported in percent: as they are when the two
//! add up to 100, rounded otherwise. Another destination of the same route or rule with a
//! non-zero weight is a shape error: the two percentages would not describe the split.
//!
//! # Why a JSON patch guarded by resourceVersion
//!
//! A write must change only the two weights and must not land on an object that changed
//! since it was read:
//!
//! - A merge patch would replace the whole `spec.http` (or `spec.rules`) list, since JSON
//!   merge patch has no way to address one list item; a strategic merge patch is not
//!   available for custom resources. A JSON patch (RFC 6902) addresses exactly
//!   `/spec/http/2/route/0/weight`, so nothing else is rewritten. `replace` is used where
//!   the weight exists and `add` where it is omitted (`replace` on a missing member fails).
//! - Those paths use list indexes, which are only right for the version that was read. The
//!   API server applies a JSON patch to the object *as currently stored* and, when etcd moved
//!   on meanwhile, re-applies it to the newer object; unguarded, the index could then point
//!   at another route. So the patch starts with
//!   `{"op": "replace", "path": "/metadata/resourceVersion", "value": <read>}`. The patched
//!   object then carries the resourceVersion that was read, and the registry's update path
//!   compares it with the stored one and answers **409 Conflict** (reason `Conflict`, "the
//!   object has been modified; please apply your changes to the latest version and try
//!   again") when they differ. On 409 the router reads the object again: if the weights
//!   changed, that is a manual change and nothing is written; otherwise it retries, a bounded
//!   number of times ([`TrafficError::Conflict`] after that).
//! - A `test` op on the resourceVersion or on the old weights would be honoured too, but a
//!   failed `test` comes back as **422** with reason `Invalid` and the generic message "the
//!   server rejected our request due to an error in our request" (the apiserver wraps the
//!   json-patch error with `NewGenericServerResponse(422, …)`, which drops its text). That
//!   is indistinguishable from a schema or webhook rejection, which must not be retried. The
//!   resourceVersion already changes with every write, weights included, so `test` ops would
//!   add nothing but that ambiguity; none are sent, and any 422 is reported as an API error.
//!
//! After a successful patch the object is read again and the weights compared with what was
//! written ([`TrafficError::ReadBack`] if a webhook or controller changed them).

use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::Client;
use async_trait::async_trait;
use serde_json::{json, Value};

use super::{call, CallError, DEFAULT_CALL_TIMEOUT, FIELD_MANAGER};
use crate::ports::traffic::{
    BackendRef, IstioDestinations, TrafficError, TrafficRouter, TrafficTarget, Weights,
};

/// Default number of patch attempts on resourceVersion conflicts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default pause before re-reading after a conflict (multiplied by the attempt number).
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(50);

/// How the weights are found in the object.
#[derive(Debug, Clone)]
enum Shape {
    Istio {
        route: String,
        destinations: IstioDestinations,
    },
    HttpRoute {
        namespace: String,
        stable: BackendRef,
        canary: BackendRef,
    },
}

/// A [`TrafficRouter`] for one VirtualService route or one HTTPRoute rule.
pub struct KubeTrafficRouter {
    api: Api<DynamicObject>,
    name: String,
    label: String,
    shape: Shape,
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for KubeTrafficRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTrafficRouter")
            .field("target", &self.label)
            .finish()
    }
}

/// The `ApiResource` of a VirtualService (`networking.istio.io/v1`).
pub fn virtual_service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

/// The `ApiResource` of an HTTPRoute (`gateway.networking.k8s.io/v1`).
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

impl KubeTrafficRouter {
    /// A router for `target`. Calls are bounded by [`DEFAULT_CALL_TIMEOUT`] each and
    /// conflicts retried [`DEFAULT_MAX_ATTEMPTS`] times; see the `with_` methods.
    pub fn new(client: Client, target: &TrafficTarget) -> Self {
        let (api, name, label, shape) = match target {
            TrafficTarget::VirtualService {
                namespace,
                name,
                route,
                destinations,
            } => (
                Api::namespaced_with(client, namespace, &virtual_service_resource()),
                name.clone(),
                format!("VirtualService {namespace}/{name} route `{route}`"),
                Shape::Istio {
                    route: route.clone(),
                    destinations: destinations.clone(),
                },
            ),
            TrafficTarget::HttpRoute {
                namespace,
                name,
                stable,
                canary,
            } => (
                Api::namespaced_with(client, namespace, &http_route_resource()),
                name.clone(),
                format!("HTTPRoute {namespace}/{name}"),
                Shape::HttpRoute {
                    namespace: namespace.clone(),
                    stable: stable.clone(),
                    canary: canary.clone(),
                },
            ),
        };
        KubeTrafficRouter {
            api,
            name,
            label,
            shape,
            timeout: DEFAULT_CALL_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// Bound each API call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Patch at most `max_attempts` times (at least once) on conflicts, pausing
    /// `backoff × attempt` before re-reading.
    pub fn with_retries(mut self, max_attempts: u32, backoff: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// The target as named in errors, e.g. "VirtualService shop/checkout route `primary`".
    pub fn target(&self) -> &str {
        &self.label
    }

    fn api_error(&self, what: &str, e: CallError) -> TrafficError {
        match e {
            CallError::NotFound => TrafficError::NotFound {
                target: self.label.clone(),
            },
            e => TrafficError::Api {
                target: self.label.clone(),
                message: format!("{what}: {e}"),
            },
        }
    }

    fn shape_error(&self, message: String) -> TrafficError {
        TrafficError::Shape {
            target: self.label.clone(),
            message,
        }
    }

    async fn read(&self) -> Result<(DynamicObject, Located), TrafficError> {
        let obj = call(self.timeout, self.api.get(&self.name))
            .await
            .map_err(|e| self.api_error("get", e))?;
        let located = match &self.shape {
            Shape::Istio {
                route,
                destinations,
            } => locate_istio(&obj.data, route, destinations),
            Shape::HttpRoute {
                namespace,
                stable,
                canary,
            } => locate_http_route(&obj.data, namespace, stable, canary),
        }
        .map_err(|m| self.shape_error(m))?;
        Ok((obj, located))
    }
}

#[async_trait]
impl TrafficRouter for KubeTrafficRouter {
    async fn weights(&self) -> Result<Weights, TrafficError> {
        let (_, located) = self.read().await?;
        let w = located.weights();
        if w.stable + w.canary == 0 {
            return Err(self.shape_error(format!(
                "the stable ({}) and canary ({}) weights are both 0 or unset",
                located.stable.pointer, located.canary.pointer
            )));
        }
        Ok(w)
    }

    async fn set_weights(
        &self,
        expected: Option<Weights>,
        weights: Weights,
    ) -> Result<Weights, TrafficError> {
        if weights.stable + weights.canary != 100 {
            return Err(self.shape_error(format!(
                "asked to set {weights:?}: stable + canary must be 100"
            )));
        }
        // What the weights must still be when re-read after a conflict: what slogate last
        // set, or else what the first read found.
        let mut baseline = expected;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (obj, located) = self.read().await?;
            let found = located.weights();
            match baseline {
                Some(b) if b != found => {
                    return Err(TrafficError::ManualChange {
                        target: self.label.clone(),
                        expected: b,
                        found,
                    })
                }
                Some(_) => {}
                None => baseline = Some(found),
            }
            if located.holds(weights) {
                return Ok(found);
            }
            let rv = obj.metadata.resource_version.clone().ok_or_else(|| {
                self.shape_error("the object as read has no metadata.resourceVersion".into())
            })?;
            let patch = weight_patch(&rv, &located, weights);
            let patch = Patch::Json::<()>(serde_json::from_value(patch).map_err(|e| {
                // Unreachable for the ops built by `weight_patch`; reported, not panicked.
                self.shape_error(format!("building the JSON patch: {e}"))
            })?);
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            };
            match call(self.timeout, self.api.patch(&self.name, &params, &patch)).await {
                Ok(_) => break,
                Err(CallError::Conflict(message)) => {
                    tracing::debug!(target = %self.label, attempt, %message, "weight patch conflicted");
                    if attempt >= self.max_attempts {
                        return Err(TrafficError::Conflict {
                            target: self.label.clone(),
                            attempts: attempt,
                        });
                    }
                    tokio::time::sleep(self.backoff * attempt).await;
                }
                Err(e) => return Err(self.api_error("patch", e)),
            }
        }
        let (_, located) = self.read().await?;
        if !located.holds(weights) {
            return Err(TrafficError::ReadBack {
                target: self.label.clone(),
                wrote: weights,
                read: located.weights(),
            });
        }
        tracing::info!(target = %self.label, stable = weights.stable, canary = weights.canary, "weights set");
        Ok(weights)
    }
}

/// One weight in the object: its JSON pointer and value (`None` when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub pointer: String,
    pub weight: Option<u64>,
}

/// The stable and canary weights found in an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub stable: Slot,
    pub canary: Slot,
    /// What an omitted weight means.
    pub default_weight: u64,
}

impl Located {
    fn raw(&self) -> (u64, u64) {
        (
            self.stable.weight.unwrap_or(self.default_weight),
            self.canary.weight.unwrap_or(self.default_weight),
        )
    }

    /// In percent; `{0, 0}` when both are zero.
    pub fn weights(&self) -> Weights {
        let (s, c) = self.raw();
        let total = s.saturating_add(c);
        if total == 0 {
            return Weights {
                stable: 0,
                canary: 0,
            };
        }
        if total == 100 {
            // Both ≤ 100 here.
            return Weights {
                stable: s as u32,
                canary: c as u32,
            };
        }
        let canary = (u128::from(c) * 100 + u128::from(total) / 2) / u128::from(total);
        Weights::canary(canary as u32)
    }

    /// Whether the object holds exactly these weights, explicitly written.
    pub fn holds(&self, w: Weights) -> bool {
        self.stable.weight == Some(u64::from(w.stable))
            && self.canary.weight == Some(u64::from(w.canary))
    }
}

/// The JSON patch that sets the two weights, guarded by `resource_version` (module doc).
pub fn weight_patch(resource_version: &str, located: &Located, w: Weights) -> Value {
    let op = |slot: &Slot| {
        if slot.weight.is_some() {
            "replace"
        } else {
            "add"
        }
    };
    json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": op(&located.stable), "path": located.stable.pointer, "value": w.stable},
        {"op": op(&located.canary), "path": located.canary.pointer, "value": w.canary},
    ])
}

fn weight_of(v: &Value, path: &str) -> Result<Option<u64>, String> {
    match v.get("weight") {
        None | Some(Value::Null) => Ok(None),
        Some(w) => w
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{path}.weight is {w}, expected a non-negative integer")),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Find the weights of `route` in a VirtualService (`data` is the object without metadata).
pub fn locate_istio(
    data: &Value,
    route: &str,
    destinations: &IstioDestinations,
) -> Result<Located, String> {
    let http = data
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no spec.http[] routes; expected one named `{route}`"))?;
    let named: Vec<usize> = (0..http.len())
        .filter(|&i| str_at(&http[i], "name") == Some(route))
        .collect();
    let i = match named.as_slice() {
        [i] => *i,
        [] => {
            let names: Vec<&str> = http.iter().filter_map(|r| str_at(r, "name")).collect();
            return Err(format!(
                "no spec.http[] route named `{route}` (named routes: {names:?})"
            ));
        }
        many => {
            return Err(format!(
                "spec.http{many:?} are all named `{route}`; expected exactly one"
            ))
        }
    };
    let at = format!("spec.http[{i}] (`{route}`)");
    let dests = http[i]
        .get("route")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{at} has no route[] destinations"))?;
    // (host, subset): the subset is only compared in subset mode.
    let (stable_want, canary_want) = match destinations {
        IstioDestinations::Subset {
            host,
            stable_subset,
            canary_subset,
        } => (
            (host.as_str(), Some(stable_subset.as_str())),
            (host.as_str(), Some(canary_subset.as_str())),
        ),
        IstioDestinations::Host {
            stable_host,
            canary_host,
        } => ((stable_host.as_str(), None), (canary_host.as_str(), None)),
    };
    let describe = |(host, subset): (&str, Option<&str>)| match subset {
        Some(subset) => format!("{{host: {host}, subset: {subset}}}"),
        None => format!("{{host: {host}}}"),
    };
    let (is_stable, is_canary) = (
        destination_matcher(stable_want),
        destination_matcher(canary_want),
    );
    let (stable_desc, canary_desc) = (describe(stable_want), describe(canary_want));
    let base = format!("/spec/http/{i}/route");
    let (stable, canary) = pick_two(
        dests,
        &at,
        "route",
        &base,
        (&is_stable, &stable_desc),
        (&is_canary, &canary_desc),
        0,
    )?;
    Ok(Located {
        stable,
        canary,
        default_weight: 0,
    })
}

/// Whether a VirtualService destination is `{host, subset}` (subset compared when given).
fn destination_matcher<'a>(
    (host, subset): (&'a str, Option<&'a str>),
) -> impl Fn(&Value) -> bool + 'a {
    move |d: &Value| {
        let dest = d.get("destination");
        dest.and_then(|x| str_at(x, "host")) == Some(host)
            && subset.is_none_or(|s| dest.and_then(|x| str_at(x, "subset")) == Some(s))
    }
}

/// Find the one rule of an HTTPRoute that holds both backends, and their weights.
pub fn locate_http_route(
    data: &Value,
    namespace: &str,
    stable: &BackendRef,
    canary: &BackendRef,
) -> Result<Located, String> {
    let describe = |b: &BackendRef| match b.port {
        Some(p) => format!("{{name: {}, port: {p}}}", b.name),
        None => format!("{{name: {}}}", b.name),
    };
    let (stable_desc, canary_desc) = (describe(stable), describe(canary));
    let rules = data
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!(
                "no spec.rules[]; expected one with backendRefs {stable_desc} and {canary_desc}"
            )
        })?;
    let matches = |b: &BackendRef| {
        let b = b.clone();
        let namespace = namespace.to_string();
        move |r: &Value| {
            str_at(r, "name") == Some(b.name.as_str())
                && b.port
                    .is_none_or(|p| r.get("port").and_then(Value::as_u64) == Some(u64::from(p)))
                && str_at(r, "group").is_none_or(str::is_empty)
                && str_at(r, "kind").is_none_or(|k| k == "Service")
                && str_at(r, "namespace").is_none_or(|n| n == namespace)
        }
    };
    let (is_stable, is_canary) = (matches(stable), matches(canary));
    let holding: Vec<usize> = (0..rules.len())
        .filter(|&i| {
            let refs = rules[i].get("backendRefs").and_then(Value::as_array);
            refs.is_some_and(|refs| refs.iter().any(&is_stable) && refs.iter().any(&is_canary))
        })
        .collect();
    let i = match holding.as_slice() {
        [i] => *i,
        [] => {
            return Err(format!(
                "no spec.rules[] entry has backendRefs {stable_desc} and {canary_desc}"
            ))
        }
        many => {
            return Err(format!(
                "spec.rules{many:?} all have backendRefs {stable_desc} and {canary_desc}; \
                 expected exactly one"
            ))
        }
    };
    let refs = rules[i]
        .get("backendRefs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (stable, canary) = pick_two(
        refs,
        &format!("spec.rules[{i}]"),
        "backendRefs",
        &format!("/spec/rules/{i}/backendRefs"),
        (&is_stable, &stable_desc),
        (&is_canary, &canary_desc),
        1,
    )?;
    Ok(Located {
        stable,
        canary,
        default_weight: 1,
    })
}

/// Pick the stable and the canary entry of one list; every other entry must carry weight 0.
fn pick_two(
    items: &[Value],
    at: &str,
    list: &str,
    base: &str,
    stable: (&dyn Fn(&Value) -> bool, &str),
    canary: (&dyn Fn(&Value) -> bool, &str),
    default_weight: u64,
) -> Result<(Slot, Slot), String> {
    let find = |(pred, desc): (&dyn Fn(&Value) -> bool, &str)| -> Result<Slot, String> {
        let hits: Vec<usize> = (0..items.len()).filter(|&j| pred(&items[j])).collect();
        match hits.as_slice() {
            [j] => Ok(Slot {
                pointer: format!("{base}/{j}/weight"),
                weight: weight_of(&items[*j], &format!("{at}.{list}[{j}]"))?,
            }),
            [] => Err(format!("{at} has no {list}[] entry {desc}")),
            many => Err(format!(
                "{at}.{list}{many:?} all match {desc}; expected exactly one"
            )),
        }
    };
    let s = find(stable)?;
    let c = find(canary)?;
    if s.pointer == c.pointer {
        return Err(format!(
            "{at}: the stable and canary entries are the same ({})",
            stable.1
        ));
    }
    for (j, item) in items.iter().enumerate() {
        if (stable.0)(item) || (canary.0)(item) {
            continue;
        }
        let w = weight_of(item, &format!("{at}.{list}[{j}]"))?.unwrap_or(default_weight);
        if w != 0 {
            return Err(format!(
                "{at}.{list}[{j}] is neither {} nor {} and has weight {w}; \
                 the other entries must have weight 0",
                stable.1, canary.1
            ));
        }
    }
    Ok((s, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subset() -> IstioDestinations {
        IstioDestinations::Subset {
            host: "checkout".into(),
            stable_subset: "stable".into(),
            canary_subset: "canary".into(),
        }
    }

    fn vs(http: Value) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "spec": {"hosts": ["checkout"], "http": http}})
    }

    #[test]
    fn istio_subset_mode_finds_the_named_route() {
        let data = vs(json!([
            {"name": "mirror", "route": [{"destination": {"host": "other"}}]},
            {"name": "primary", "route": [
                {"destination": {"host": "checkout", "subset": "canary"}, "weight": 10},
                {"destination": {"host": "checkout", "subset": "stable"}, "weight": 90},
            ]},
        ]));
        let l = locate_istio(&data, "primary", &subset()).unwrap();
        assert_eq!(l.stable.pointer, "/spec/http/1/route/1/weight");
        assert_eq!(l.canary.pointer, "/spec/http/1/route/0/weight");
        assert_eq!(
            l.weights(),
            Weights {
                stable: 90,
                canary: 10
            }
        );
        assert!(l.holds(Weights::canary(10)));
    }

    #[test]
    fn istio_missing_weight_is_zero_and_patched_with_add() {
        let data = vs(json!([{"name": "primary", "route": [
            {"destination": {"host": "checkout", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "checkout", "subset": "canary"}},
        ]}]));
        let l = locate_istio(&data, "primary", &subset()).unwrap();
        assert_eq!(
            l.weights(),
            Weights {
                stable: 100,
                canary: 0
            }
        );
        assert_eq!(
            weight_patch("7", &l, Weights::canary(25)),
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 75},
                {"op": "add", "path": "/spec/http/0/route/1/weight", "value": 25},
            ])
        );
    }

    #[test]
    fn istio_shape_errors_name_what_was_expected() {
        let data = vs(json!([{"name": "primary", "route": [
            {"destination": {"host": "checkout", "subset": "stable"}, "weight": 100},
        ]}]));
        let e = locate_istio(&data, "primary", &subset()).unwrap_err();
        assert_eq!(
            e,
            "spec.http[0] (`primary`) has no route[] entry {host: checkout, subset: canary}"
        );
        let e = locate_istio(&data, "main", &subset()).unwrap_err();
        assert_eq!(
            e,
            "no spec.http[] route named `main` (named routes: [\"primary\"])"
        );
        let e = locate_istio(&json!({"spec": {}}), "main", &subset()).unwrap_err();
        assert_eq!(e, "no spec.http[] routes; expected one named `main`");
        let data = vs(json!([{"name": "primary", "route": [
            {"destination": {"host": "checkout", "subset": "stable"}, "weight": 80},
            {"destination": {"host": "checkout", "subset": "canary"}, "weight": 10},
            {"destination": {"host": "legacy"}, "weight": 10},
        ]}]));
        let e = locate_istio(&data, "primary", &subset()).unwrap_err();
        assert!(e.contains("route[2] is neither"), "{e}");
        let data = vs(json!([{"name": "primary", "route": [
            {"destination": {"host": "checkout", "subset": "stable"}, "weight": "90"},
            {"destination": {"host": "checkout", "subset": "canary"}, "weight": 10},
        ]}]));
        let e = locate_istio(&data, "primary", &subset()).unwrap_err();
        assert!(e.contains("expected a non-negative integer"), "{e}");
    }

    #[test]
    fn istio_host_mode_matches_hosts() {
        let data = vs(json!([{"name": "primary", "route": [
            {"destination": {"host": "checkout-stable", "port": {"number": 80}}, "weight": 50},
            {"destination": {"host": "checkout-canary", "port": {"number": 80}}, "weight": 50},
        ]}]));
        let l = locate_istio(
            &data,
            "primary",
            &IstioDestinations::Host {
                stable_host: "checkout-stable".into(),
                canary_host: "checkout-canary".into(),
            },
        )
        .unwrap();
        assert_eq!(l.stable.pointer, "/spec/http/0/route/0/weight");
        assert_eq!(l.weights(), Weights::canary(50));
    }

    fn backend(name: &str, port: Option<u16>) -> BackendRef {
        BackendRef {
            name: name.into(),
            port,
        }
    }

    #[test]
    fn http_route_finds_the_rule_with_both_backends() {
        let data = json!({"spec": {"rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
             "backendRefs": [{"name": "cdn", "port": 80}]},
            {"backendRefs": [
                {"name": "checkout-stable", "port": 8080, "weight": 3},
                {"name": "checkout-canary", "port": 8080},
            ]},
        ]}});
        let l = locate_http_route(
            &data,
            "shop",
            &backend("checkout-stable", Some(8080)),
            &backend("checkout-canary", None),
        )
        .unwrap();
        assert_eq!(l.stable.pointer, "/spec/rules/1/backendRefs/0/weight");
        assert_eq!(l.canary.weight, None);
        // 3 : 1 (default) is 75 / 25.
        assert_eq!(l.weights(), Weights::canary(25));
        // Port given and different: not the same backend.
        let e = locate_http_route(
            &data,
            "shop",
            &backend("checkout-stable", Some(80)),
            &backend("checkout-canary", None),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "no spec.rules[] entry has backendRefs {name: checkout-stable, port: 80} and {name: checkout-canary}"
        );
    }

    #[test]
    fn http_route_other_backends_in_the_rule_need_weight_zero() {
        let data = json!({"spec": {"rules": [{"backendRefs": [
            {"name": "s", "weight": 90}, {"name": "c", "weight": 10}, {"name": "x"},
        ]}]}});
        let e =
            locate_http_route(&data, "ns", &backend("s", None), &backend("c", None)).unwrap_err();
        assert!(e.contains("has weight 1"), "{e}");
        let data = json!({"spec": {"rules": [{"backendRefs": [
            {"name": "s", "weight": 90}, {"name": "c", "weight": 10},
            {"name": "s", "namespace": "elsewhere", "weight": 0},
        ]}]}});
        let l = locate_http_route(&data, "ns", &backend("s", None), &backend("c", None)).unwrap();
        assert_eq!(l.weights(), Weights::canary(10));
    }

    #[test]
    fn weights_round_to_percent() {
        let l = |s, c| Located {
            stable: Slot {
                pointer: "/a".into(),
                weight: s,
            },
            canary: Slot {
                pointer: "/b".into(),
                weight: c,
            },
            default_weight: 0,
        };
        assert_eq!(
            l(Some(2), Some(1)).weights(),
            Weights {
                stable: 67,
                canary: 33
            }
        );
        assert_eq!(
            l(None, None).weights(),
            Weights {
                stable: 0,
                canary: 0
            }
        );
        assert_eq!(l(Some(0), Some(7)).weights(), Weights::canary(100));
        assert!(!l(Some(9), Some(1)).holds(Weights::canary(10)));
    }
}
