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
//!
//! # Header routes (header steps)
//!
//! A header step sends only the requests that carry given headers to the canary. slogate
//! writes a copy of the weighted entry **just ahead of it** in the same list, in the same
//! guarded JSON patch as the weights (`add` at the weighted entry's index; `replace` when the
//! match changes; `remove` with the next weighted step, on promotion and on abort):
//!
//! - VirtualService: a route named `<route>-slogate-canary` (found again by that name) whose
//!   `match` is the named route's (each entry, or one empty entry) with the step's headers
//!   added as `exact`, `prefix` or `regex`, and whose `route` is the canary destination alone
//!   at weight 100. Other fields (retries, timeout, rewrite…) are copied.
//! - HTTPRoute: a rule whose `matches` are the weighted rule's with the step's headers added
//!   to each (`type: Exact`, or `RegularExpression` for regexes; a **prefix** `p` is written as
//!   the regex `^<p escaped>.*`, which means "starts with p" under both full-match (Envoy)
//!   and search semantics), and whose `backendRefs` hold the canary backend alone. It is found
//!   again as the one rule whose only backendRef is the canary and whose every match has
//!   headers. More header matches make a Gateway API rule take precedence over the weighted
//!   one whatever their order.
//!
//! The header route is part of what is compared for manual changes and read back: a header
//! route removed, added or changed by someone else is a [`TrafficError::ManualChange`].

use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::Client;
use async_trait::async_trait;
use serde_json::{json, Value};

use super::{call, CallError, DEFAULT_CALL_TIMEOUT, FIELD_MANAGER};
use crate::model::traffic::{
    BackendRef, HeaderMatch, HeaderValue, IstioDestinations, Routing, TrafficTarget, Weights,
};
use crate::ports::traffic::{TrafficError, TrafficRouter};

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

    fn api_error(&self, what: &'static str, e: CallError) -> TrafficError {
        match e {
            CallError::NotFound => TrafficError::NotFound {
                target: self.label.clone(),
            },
            e => TrafficError::Api {
                target: self.label.clone(),
                what,
                source: Box::new(e),
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
    async fn routing(&self) -> Result<Routing, TrafficError> {
        let (_, located) = self.read().await?;
        let w = located.weights();
        if w.stable + w.canary == 0 {
            return Err(self.shape_error(format!(
                "the stable ({}) and canary ({}) weights are both 0 or unset",
                located.stable.pointer, located.canary.pointer
            )));
        }
        Ok(located.routing())
    }

    async fn set_routing(
        &self,
        expected: Option<&Routing>,
        routing: &Routing,
    ) -> Result<Routing, TrafficError> {
        let weights = routing.weights;
        if weights.stable + weights.canary != 100 {
            return Err(self.shape_error(format!(
                "asked to set {weights:?}: stable + canary must be 100"
            )));
        }
        // What the routing must still be when re-read after a conflict: what slogate last
        // set, or else what the first read found.
        let mut baseline = expected.cloned();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (obj, located) = self.read().await?;
            let found = located.routing();
            match &baseline {
                Some(b) if !b.same(&found) => {
                    return Err(TrafficError::ManualChange {
                        target: self.label.clone(),
                        expected: b.clone(),
                        found,
                    })
                }
                Some(_) => {}
                None => baseline = Some(found.clone()),
            }
            if located.holds(routing) {
                return Ok(found);
            }
            let rv = obj.metadata.resource_version.clone().ok_or_else(|| {
                self.shape_error("the object as read has no metadata.resourceVersion".into())
            })?;
            let patch = routing_patch(&rv, &located, routing);
            let patch = Patch::Json::<()>(serde_json::from_value(patch).map_err(|source| {
                // Unreachable for the ops built by `routing_patch`; reported, not panicked.
                TrafficError::Encode {
                    target: self.label.clone(),
                    what: "building the JSON patch",
                    source,
                }
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
        if !located.holds(routing) {
            return Err(TrafficError::ReadBack {
                target: self.label.clone(),
                wrote: routing.clone(),
                read: located.routing(),
            });
        }
        tracing::info!(target = %self.label, stable = weights.stable, canary = weights.canary,
            header_route = routing.header_match.is_some(), "routing set");
        Ok(routing.clone())
    }
}

/// One weight in the object: its JSON pointer and value (`None` when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub pointer: String,
    pub weight: Option<u64>,
}

/// The stable and canary weights found in an object, and where slogate's header route is or
/// would go.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub stable: Slot,
    pub canary: Slot,
    /// What an omitted weight means.
    pub default_weight: u64,
    pub header: HeaderSite,
}

/// Which API's header-match syntax a list uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderDialect {
    /// VirtualService `match[].headers: {name: {exact|prefix|regex: value}}`.
    #[default]
    Istio,
    /// HTTPRoute `matches[].headers: [{type: Exact|RegularExpression, name, value}]`.
    GatewayApi,
}

/// The weighted entry of a route list and slogate's header route next to it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderSite {
    pub dialect: HeaderDialect,
    /// JSON pointer of the list: `/spec/http` or `/spec/rules`.
    pub list: String,
    /// Index of the weighted entry in the list.
    pub index: usize,
    /// The weighted entry as read.
    pub entry: Value,
    /// The canary's destination (or backendRef) in it, as read.
    pub canary_item: Value,
    /// Name of slogate's header route (VirtualService only).
    pub name: Option<String>,
    /// slogate's header route, when there is one: its index and the headers it matches.
    pub existing: Option<(usize, HeaderMatch)>,
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
    pub fn holds_weights(&self, w: Weights) -> bool {
        self.stable.weight == Some(u64::from(w.stable))
            && self.canary.weight == Some(u64::from(w.canary))
    }

    /// Whether the object holds these weights, explicitly written, and this header route
    /// (or none).
    pub fn holds(&self, r: &Routing) -> bool {
        self.holds_weights(r.weights)
            && self.header.existing.as_ref().map(|(_, h)| h.canonical())
                == r.header_match.as_ref().map(HeaderMatch::canonical)
    }

    /// The weights in percent and slogate's header route.
    pub fn routing(&self) -> Routing {
        Routing {
            weights: self.weights(),
            header_match: self.header.existing.as_ref().map(|(_, h)| h.clone()),
        }
    }
}

/// The JSON patch that sets the weights and slogate's header route, guarded by
/// `resource_version` (module doc). The weight ops come first: their indexes are those read,
/// before the header route is added or removed.
pub fn routing_patch(resource_version: &str, located: &Located, r: &Routing) -> Value {
    let mut ops = weight_patch(resource_version, located, r.weights);
    let site = &located.header;
    let op = match (&r.header_match, &site.existing) {
        (Some(h), None) => Some(
            json!({"op": "add", "path": format!("{}/{}", site.list, site.index),
            "value": site.build(h)}),
        ),
        (Some(h), Some((j, found))) if found.canonical() != h.canonical() => Some(
            json!({"op": "replace", "path": format!("{}/{j}", site.list), "value": site.build(h)}),
        ),
        (None, Some((j, _))) => Some(json!({"op": "remove", "path": format!("{}/{j}", site.list)})),
        _ => None,
    };
    if let (Some(op), Some(list)) = (op, ops.as_array_mut()) {
        list.push(op);
    }
    ops
}

/// Istio's header value: `{exact: v}`, `{prefix: p}` or `{regex: r}`.
fn istio_header_value(v: &HeaderValue) -> Value {
    match v {
        HeaderValue::Exact(x) => json!({"exact": x}),
        HeaderValue::Prefix { prefix } => json!({"prefix": prefix}),
        HeaderValue::Regex { regex } => json!({"regex": regex}),
    }
}

/// Gateway API's header match: `{type: Exact, name, value}` or `RegularExpression` (prefixes
/// as `^<escaped>.*`).
fn gateway_header(name: &str, v: &HeaderValue) -> Value {
    match v {
        HeaderValue::Exact(x) => json!({"type": "Exact", "name": name, "value": x}),
        other => json!({"type": "RegularExpression", "name": name, "value": other.as_regex()}),
    }
}

impl HeaderSite {
    /// The header route for `h`: the weighted entry with `h` added to each of its matches,
    /// sending everything to the canary alone.
    pub fn build(&self, h: &HeaderMatch) -> Value {
        let mut entry = self.entry.clone();
        let (match_key, target_key) = match self.dialect {
            HeaderDialect::Istio => ("match", "route"),
            HeaderDialect::GatewayApi => ("matches", "backendRefs"),
        };
        let mut matches: Vec<Value> = entry
            .get(match_key)
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
            .cloned()
            .unwrap_or_else(|| vec![json!({})]);
        for m in &mut matches {
            let Some(obj) = m.as_object_mut() else {
                continue;
            };
            match self.dialect {
                HeaderDialect::Istio => {
                    let headers = obj.entry("headers").or_insert_with(|| json!({}));
                    if let Some(map) = headers.as_object_mut() {
                        for (k, v) in &h.headers {
                            map.insert(k.clone(), istio_header_value(v));
                        }
                    }
                }
                HeaderDialect::GatewayApi => {
                    let mut list: Vec<Value> = obj
                        .get("headers")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    list.retain(|x| {
                        str_at(x, "name")
                            .is_none_or(|n| !h.headers.contains_key(&n.to_ascii_lowercase()))
                    });
                    list.extend(h.headers.iter().map(|(k, v)| gateway_header(k, v)));
                    obj.insert("headers".into(), Value::Array(list));
                }
            }
        }
        let mut canary = self.canary_item.clone();
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(match_key.into(), Value::Array(matches));
            match self.dialect {
                HeaderDialect::Istio => {
                    canary["weight"] = json!(100);
                    if let Some(name) = &self.name {
                        obj.insert("name".into(), json!(name));
                    }
                }
                HeaderDialect::GatewayApi => {
                    if let Some(c) = canary.as_object_mut() {
                        c.remove("weight");
                    }
                    obj.remove("name");
                }
            }
            obj.insert(target_key.into(), json!([canary]));
        }
        entry
    }
}

/// slogate's header route: the one entry of `entries` at the indexes `ours` (none: no header
/// route; more: an error from `many`), with the headers it matches.
fn header_entry(
    dialect: HeaderDialect,
    entries: &[Value],
    ours: &[usize],
    weighted: usize,
    at: impl Fn(usize) -> String,
    many: impl FnOnce(&[usize]) -> String,
) -> Result<Option<(usize, HeaderMatch)>, String> {
    match ours {
        [] => Ok(None),
        [j] => {
            let h = decode_headers(dialect, &entries[*j], &entries[weighted], &at(*j))?;
            Ok(Some((*j, h)))
        }
        more => Err(many(more)),
    }
}

/// The headers a header route matches on top of the weighted entry's own (its first match).
fn decode_headers(
    dialect: HeaderDialect,
    header_entry: &Value,
    weighted: &Value,
    at: &str,
) -> Result<HeaderMatch, String> {
    let key = match dialect {
        HeaderDialect::Istio => "match",
        HeaderDialect::GatewayApi => "matches",
    };
    let first = |v: &Value| {
        v.get(key)
            .and_then(|m| m.get(0))
            .and_then(|m| m.get("headers"))
            .cloned()
    };
    let own = first(weighted);
    let found = first(header_entry).ok_or_else(|| format!("{at} has no {key}[0].headers"))?;
    let mut headers = std::collections::BTreeMap::new();
    match dialect {
        HeaderDialect::Istio => {
            let map = found
                .as_object()
                .ok_or_else(|| format!("{at}.{key}[0].headers is not a mapping"))?;
            for (k, v) in map {
                if own.as_ref().and_then(|o| o.get(k)) == Some(v) {
                    continue;
                }
                let value = if let Some(x) = str_at(v, "exact") {
                    HeaderValue::Exact(x.into())
                } else if let Some(x) = str_at(v, "prefix") {
                    HeaderValue::Prefix { prefix: x.into() }
                } else if let Some(x) = str_at(v, "regex") {
                    HeaderValue::Regex { regex: x.into() }
                } else {
                    return Err(format!(
                        "{at}.{key}[0].headers.{k} is {v}; expected exact, prefix or regex"
                    ));
                };
                headers.insert(k.clone(), value);
            }
        }
        HeaderDialect::GatewayApi => {
            let list = found
                .as_array()
                .ok_or_else(|| format!("{at}.{key}[0].headers is not a list"))?;
            let own: Vec<Value> = own.and_then(|o| o.as_array().cloned()).unwrap_or_default();
            for h in list {
                if own.contains(h) {
                    continue;
                }
                let (Some(name), Some(value)) = (str_at(h, "name"), str_at(h, "value")) else {
                    return Err(format!(
                        "{at}.{key}[0].headers has {h}; expected a name and a value"
                    ));
                };
                let value = match str_at(h, "type").unwrap_or("Exact") {
                    "Exact" => HeaderValue::Exact(value.into()),
                    _ => HeaderValue::Regex {
                        regex: value.into(),
                    }
                    .canonical(),
                };
                headers.insert(name.to_ascii_lowercase(), value);
            }
        }
    }
    Ok(HeaderMatch { headers })
}

/// The JSON patch that sets the two weights, guarded by `resource_version` (module doc).
pub fn weight_patch(resource_version: &str, located: &Located, w: Weights) -> Value {
    // Weights already written need no ops (a header route changing alone).
    if located.holds_weights(w) {
        return json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
        ]);
    }
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
    let header_name = format!("{route}-slogate-canary");
    let ours: Vec<usize> = (0..http.len())
        .filter(|&j| str_at(&http[j], "name") == Some(header_name.as_str()))
        .collect();
    let existing = header_entry(
        HeaderDialect::Istio,
        http,
        &ours,
        i,
        |j| format!("spec.http[{j}] (`{header_name}`)"),
        |many| {
            format!(
                "spec.http{many:?} are all named `{header_name}` (slogate's header route); expected at most one"
            )
        },
    )?;
    Ok(Located {
        stable,
        canary,
        default_weight: 0,
        header: HeaderSite {
            dialect: HeaderDialect::Istio,
            list: "/spec/http".into(),
            index: i,
            entry: http[i].clone(),
            canary_item: dests
                .iter()
                .find(|d| is_canary(d))
                .cloned()
                .unwrap_or_default(),
            name: Some(header_name),
            existing,
        },
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
    // slogate's header rule: the canary alone, every match with headers.
    let ours: Vec<usize> = (0..rules.len())
        .filter(|&j| {
            let refs = rules[j].get("backendRefs").and_then(Value::as_array);
            let matches = rules[j].get("matches").and_then(Value::as_array);
            j != i
                && refs.is_some_and(|r| r.len() == 1 && is_canary(&r[0]))
                && matches.is_some_and(|m| {
                    !m.is_empty()
                        && m.iter().all(|x| {
                            x.get("headers")
                                .and_then(Value::as_array)
                                .is_some_and(|h| !h.is_empty())
                        })
                })
        })
        .collect();
    let existing = header_entry(
        HeaderDialect::GatewayApi,
        rules,
        &ours,
        i,
        |j| format!("spec.rules[{j}]"),
        |many| {
            format!(
                "spec.rules{many:?} all send only header-matched requests to {canary_desc}; \
                 expected at most one (slogate's header rule)"
            )
        },
    )?;
    Ok(Located {
        stable,
        canary,
        default_weight: 1,
        header: HeaderSite {
            dialect: HeaderDialect::GatewayApi,
            list: "/spec/rules".into(),
            index: i,
            entry: rules[i].clone(),
            canary_item: refs
                .iter()
                .find(|r| is_canary(r))
                .cloned()
                .unwrap_or_default(),
            name: None,
            existing,
        },
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
        assert!(l.holds_weights(Weights::canary(10)));
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
            header: HeaderSite::default(),
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
        assert!(!l(Some(9), Some(1)).holds_weights(Weights::canary(10)));
    }
}
