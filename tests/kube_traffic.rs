//! The Kubernetes traffic routers against a scripted API server: the exact GET and PATCH
//! requests (method, path and query, content-type, JSON body) for Istio VirtualServices in
//! subset and host mode and for Gateway API HTTPRoutes, conflicts, manual changes, read-back
//! mismatches and shape errors.

#[path = "kube_common/mod.rs"]
mod common;

use std::time::Duration;

use common::{conflict, finish, not_found, serve, status, Exchange, JSON_PATCH};
use serde_json::{json, Value};
use slogate::adapters::kube::KubeTrafficRouter;
use slogate::model::traffic::{
    BackendRef, HeaderMatch, IstioDestinations, Routing, TrafficTarget, Weights,
};
use slogate::ports::traffic::{TrafficError, TrafficRouter};

const VS: &str = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout";
const VS_PATCH: &str =
    "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout?&fieldManager=slogate";
const HR: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout";
const HR_PATCH: &str =
    "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout?&fieldManager=slogate";
// kube's URL builder starts the query with `?&` (form_urlencoded appending to a target that
// already ends in `?`); the apiserver ignores the empty pair. Pinned so a change shows up.
const VS_TARGET: &str = "VirtualService shop/checkout route `primary`";

fn subset_target() -> TrafficTarget {
    TrafficTarget::VirtualService {
        namespace: "shop".into(),
        name: "checkout".into(),
        route: "primary".into(),
        destinations: IstioDestinations::Subset {
            host: "checkout.shop.svc.cluster.local".into(),
            stable_subset: "stable".into(),
            canary_subset: "canary".into(),
        },
    }
}

/// A VirtualService whose `primary` route is `spec.http[2]`, after two other routes, with
/// the stable destination first. `canary` None omits the canary's weight.
fn subset_vs(rv: &str, stable: u32, canary: Option<u32>) -> Value {
    let mut canary_dest =
        json!({"destination": {"host": "checkout.shop.svc.cluster.local", "subset": "canary"}});
    if let Some(c) = canary {
        canary_dest["weight"] = json!(c);
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": rv,
                     "annotations": {"team": "payments"}},
        "spec": {
            "hosts": ["checkout.shop.svc.cluster.local"],
            "gateways": ["mesh"],
            "http": [
                {"name": "health", "match": [{"uri": {"exact": "/healthz"}}],
                 "route": [{"destination": {"host": "checkout.shop.svc.cluster.local", "subset": "stable"}}]},
                {"name": "mirror-test", "match": [{"headers": {"x-canary": {"exact": "1"}}}],
                 "route": [{"destination": {"host": "checkout.shop.svc.cluster.local", "subset": "canary"}}]},
                {"name": "primary", "retries": {"attempts": 3},
                 "route": [
                    {"destination": {"host": "checkout.shop.svc.cluster.local", "subset": "stable"}, "weight": stable},
                    canary_dest,
                 ]},
            ],
        },
    })
}

fn weight_ops(rv: &str, stable: u32, canary: u32) -> Value {
    json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/http/2/route/0/weight", "value": stable},
        {"op": "replace", "path": "/spec/http/2/route/1/weight", "value": canary},
    ])
}

fn fast(r: KubeTrafficRouter) -> KubeTrafficRouter {
    r.with_retries(3, Duration::ZERO)
        .with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn virtual_service_subset_mode_patches_only_the_two_weights_and_reads_back() {
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("4711", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("4711", 75, 25))
            .respond(200, subset_vs("4712", 75, Some(25))),
        Exchange::get(VS).respond(200, subset_vs("4712", 75, Some(25))),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    assert_eq!(router.target(), VS_TARGET);
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    let seen = finish(verifier).await;
    assert_eq!(
        result,
        Ok(Weights {
            stable: 75,
            canary: 25
        })
    );
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn virtual_service_weights_is_one_get() {
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("1", 90, Some(10)))
    ]);
    let router = KubeTrafficRouter::new(client, &subset_target());
    let result = router.weights().await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Ok(Weights {
            stable: 90,
            canary: 10
        })
    );
}

#[tokio::test]
async fn virtual_service_missing_canary_weight_is_added() {
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("7", 100, None)),
        Exchange::patch(
            VS_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "replace", "path": "/spec/http/2/route/0/weight", "value": 90},
                {"op": "add", "path": "/spec/http/2/route/1/weight", "value": 10},
            ]),
        )
        .respond(200, subset_vs("8", 90, Some(10))),
        Exchange::get(VS).respond(200, subset_vs("8", 90, Some(10))),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    // Unset reads as 0: the route is at 100/0, which is what slogate expects before step 1.
    let result = router
        .set_weights(Some(Weights::canary(0)), Weights::canary(10))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(result, Ok(Weights::canary(10)));
}

fn host_target() -> TrafficTarget {
    TrafficTarget::VirtualService {
        namespace: "shop".into(),
        name: "checkout".into(),
        route: "primary".into(),
        destinations: IstioDestinations::Host {
            stable_host: "checkout-stable".into(),
            canary_host: "checkout-canary".into(),
        },
    }
}

fn host_vs(rv: &str, stable: u32, canary: u32) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": rv},
        "spec": {
            "hosts": ["checkout"],
            "http": [{"name": "primary", "route": [
                {"destination": {"host": "checkout-canary", "port": {"number": 8080}}, "weight": canary},
                {"destination": {"host": "checkout-stable", "port": {"number": 8080}}, "weight": stable},
            ]}],
        },
    })
}

#[tokio::test]
async fn virtual_service_host_mode() {
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, host_vs("30", 50, 50)),
        Exchange::patch(
            VS_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "30"},
                {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0},
                {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100},
            ]),
        )
        .respond(200, host_vs("31", 0, 100)),
        Exchange::get(VS).respond(200, host_vs("31", 0, 100)),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &host_target()));
    let result = router
        .set_weights(Some(Weights::canary(50)), Weights::canary(100))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Ok(Weights {
            stable: 0,
            canary: 100
        })
    );
}

fn http_route_target() -> TrafficTarget {
    TrafficTarget::HttpRoute {
        namespace: "shop".into(),
        name: "checkout".into(),
        stable: BackendRef {
            name: "checkout-stable".into(),
            port: Some(8080),
        },
        canary: BackendRef {
            name: "checkout-canary".into(),
            port: Some(8080),
        },
    }
}

fn http_route(rv: &str, stable: u32, canary: u32) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": rv},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                 "backendRefs": [{"name": "assets", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/checkout"}}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-route", "value": "checkout"}]}}],
                 "backendRefs": [
                    {"group": "", "kind": "Service", "name": "checkout-stable", "port": 8080, "weight": stable},
                    {"name": "checkout-canary", "port": 8080, "weight": canary},
                 ]},
            ],
        },
    })
}

#[tokio::test]
async fn http_route_patches_the_rule_with_both_backends() {
    let (client, verifier) = serve(vec![
        Exchange::get(HR).respond(200, http_route("900", 90, 10)),
        Exchange::patch(
            HR_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "900"},
                {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 50},
                {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 50},
            ]),
        )
        .respond(200, http_route("901", 50, 50)),
        Exchange::get(HR).respond(200, http_route("901", 50, 50)),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &http_route_target()));
    assert_eq!(router.target(), "HTTPRoute shop/checkout");
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(50))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(result, Ok(Weights::canary(50)));
}

#[tokio::test]
async fn a_resource_version_conflict_is_retried_on_a_fresh_read() {
    // Between the read and the patch someone changed an annotation (not the weights): the
    // patch conflicts, the router re-reads and patches against the new resourceVersion.
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("10", 75, 25)).respond(
            409,
            conflict("virtualservices.networking.istio.io", "checkout"),
        ),
        Exchange::get(VS).respond(200, subset_vs("11", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("11", 75, 25))
            .respond(200, subset_vs("12", 75, Some(25))),
        Exchange::get(VS).respond(200, subset_vs("12", 75, Some(25))),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(result, Ok(Weights::canary(25)));
}

#[tokio::test]
async fn a_weight_changed_before_the_retry_is_a_manual_change_not_a_retry() {
    // First write (nothing set yet): the weights first read are the baseline, and a conflict
    // caused by someone moving them is reported instead of overwritten.
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 100, Some(0))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("10", 90, 10)).respond(
            409,
            conflict("virtualservices.networking.istio.io", "checkout"),
        ),
        Exchange::get(VS).respond(200, subset_vs("11", 60, Some(40))),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router.set_weights(None, Weights::canary(10)).await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::ManualChange {
            target: VS_TARGET.into(),
            expected: Weights::canary(0).into(),
            found: Weights::canary(40).into(),
        })
    );
}

#[tokio::test]
async fn a_weight_changed_by_hand_is_reported_and_nothing_is_patched() {
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 50, Some(50)))
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    // The verifier fails on any request after the GET.
    let seen = finish(verifier).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        result,
        Err(TrafficError::ManualChange {
            target: VS_TARGET.into(),
            expected: Weights::canary(10).into(),
            found: Weights::canary(50).into(),
        })
    );
}

#[tokio::test]
async fn a_read_back_mismatch_is_an_error() {
    // A mutating webhook (or a controller) rewrote the weights on admission.
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("10", 75, 25))
            .respond(200, subset_vs("11", 80, Some(20))),
        Exchange::get(VS).respond(200, subset_vs("11", 80, Some(20))),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::ReadBack {
            target: VS_TARGET.into(),
            wrote: Weights::canary(25).into(),
            read: Weights::canary(20).into(),
        })
    );
}

#[tokio::test]
async fn a_missing_route_is_a_shape_error_naming_it() {
    let mut vs = subset_vs("10", 90, Some(10));
    vs["spec"]["http"][2]["name"] = json!("main");
    let (client, verifier) = serve(vec![Exchange::get(VS).respond(200, vs)]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::Shape {
            target: VS_TARGET.into(),
            message: "no spec.http[] route named `primary` (named routes: [\"health\", \
                      \"mirror-test\", \"main\"])"
                .into(),
        })
    );
}

#[tokio::test]
async fn a_missing_destination_is_a_shape_error_naming_it() {
    let (client, verifier) = serve(vec![Exchange::get(HR).respond(200, http_route("1", 90, 10))]);
    let target = TrafficTarget::HttpRoute {
        namespace: "shop".into(),
        name: "checkout".into(),
        stable: BackendRef {
            name: "checkout-stable".into(),
            port: Some(8080),
        },
        canary: BackendRef {
            name: "checkout-preview".into(),
            port: None,
        },
    };
    let router = fast(KubeTrafficRouter::new(client, &target));
    let result = router.weights().await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::Shape {
            target: "HTTPRoute shop/checkout".into(),
            message: "no spec.rules[] entry has backendRefs {name: checkout-stable, port: 8080} \
                      and {name: checkout-preview}"
                .into(),
        })
    );
}

#[tokio::test]
async fn a_missing_object_is_not_found() {
    let (client, verifier) = serve(vec![Exchange::get(VS).respond(
        404,
        not_found("virtualservices.networking.istio.io", "checkout"),
    )]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router.set_weights(None, Weights::canary(10)).await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::NotFound {
            target: VS_TARGET.into()
        })
    );
}

#[tokio::test]
async fn conflicts_are_bounded() {
    let c = || conflict("virtualservices.networking.istio.io", "checkout");
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("10", 75, 25)).respond(409, c()),
        Exchange::get(VS).respond(200, subset_vs("11", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("11", 75, 25)).respond(409, c()),
    ]);
    let router = KubeTrafficRouter::new(client, &subset_target()).with_retries(2, Duration::ZERO);
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::Conflict {
            target: VS_TARGET.into(),
            attempts: 2
        })
    );
}

#[tokio::test]
async fn an_invalid_patch_is_reported_not_retried() {
    // 422 is what the apiserver answers for schema/webhook rejections (and failed `test`
    // ops, which the router does not send): never a reason to retry.
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 90, Some(10))),
        Exchange::patch(VS_PATCH, JSON_PATCH, weight_ops("10", 75, 25)).respond(
            422,
            status(
                422,
                "Invalid",
                "admission webhook \"validation.istio.io\" denied the request",
            ),
        ),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router
        .set_weights(Some(Weights::canary(10)), Weights::canary(25))
        .await;
    drop(router);
    finish(verifier).await;
    // The call's error is the source; the message shows it after the operation.
    let e = result.unwrap_err();
    assert!(std::error::Error::source(&e).is_some(), "{e:?}");
    assert_eq!(
        e,
        TrafficError::Api {
            target: VS_TARGET.into(),
            what: "patch",
            source: "HTTP 422 Invalid: admission webhook \"validation.istio.io\" denied the \
                     request"
                .into(),
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{VS_TARGET}: patch: HTTP 422 Invalid: admission webhook \"validation.istio.io\" \
             denied the request"
        )
    );
}

#[tokio::test]
async fn weights_already_in_place_are_not_patched_again() {
    // A restart between the patch and recording it: the route already holds the target.
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("10", 75, Some(25)))
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router.set_weights(None, Weights::canary(25)).await;
    drop(router);
    finish(verifier).await;
    assert_eq!(result, Ok(Weights::canary(25)));
}

#[tokio::test]
async fn a_hung_api_server_times_out() {
    // The script never answers: the request is taken but no response is sent.
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let client = kube::Client::new(service, "default");
    let holder = tokio::spawn(async move {
        let pending = handle.next_request().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(pending);
    });
    let router =
        KubeTrafficRouter::new(client, &subset_target()).with_timeout(Duration::from_millis(100));
    let result = router.weights().await;
    let e = result.unwrap_err();
    assert!(std::error::Error::source(&e).is_some(), "{e:?}");
    assert_eq!(
        e,
        TrafficError::Api {
            target: VS_TARGET.into(),
            what: "get",
            source: "timed out after 100ms".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        format!("{VS_TARGET}: get: timed out after 100ms")
    );
    holder.abort();
}

// ---- header steps: slogate's header route, added and removed ------------------------------

fn header(pairs: Value) -> HeaderMatch {
    serde_json::from_value(json!({ "headers": pairs })).unwrap()
}

fn routing(canary: u32, h: Option<HeaderMatch>) -> Routing {
    Routing {
        weights: Weights::canary(canary),
        header_match: h,
    }
}

/// The header route slogate writes for `primary` of [`subset_vs`] with `x-canary: "true"`.
fn istio_header_route() -> Value {
    json!({"name": "primary-slogate-canary", "retries": {"attempts": 3},
           "match": [{"headers": {"x-canary": {"exact": "true"}}}],
           "route": [{"destination": {"host": "checkout.shop.svc.cluster.local", "subset": "canary"}, "weight": 100}]})
}

/// `vs` with `route` inserted at `spec.http[2]`, ahead of `primary`.
fn with_route(mut vs: Value, at: &str, index: usize, route: Value) -> Value {
    vs.pointer_mut(at)
        .and_then(Value::as_array_mut)
        .unwrap()
        .insert(index, route);
    vs
}

#[tokio::test]
async fn virtual_service_header_step_adds_a_route_ahead_of_the_named_one() {
    let after = with_route(
        subset_vs("21", 100, Some(0)),
        "/spec/http",
        2,
        istio_header_route(),
    );
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("20", 100, Some(0))),
        // The weights are already 100/0: only the route is added, at the named route's index.
        Exchange::patch(
            VS_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "20"},
                {"op": "add", "path": "/spec/http/2", "value": istio_header_route()},
            ]),
        )
        .respond(200, after.clone()),
        Exchange::get(VS).respond(200, after.clone()),
        // Read as the route's routing: 100/0 plus the header route.
        Exchange::get(VS).respond(200, after),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let want = routing(0, Some(header(json!({"x-canary": "true"}))));
    let result = router.set_routing(Some(&routing(0, None)), &want).await;
    let read = router.routing().await;
    drop(router);
    finish(verifier).await;
    assert_eq!(result, Ok(want.clone()));
    assert_eq!(read, Ok(want));
}

#[tokio::test]
async fn virtual_service_next_weighted_step_removes_the_header_route_in_the_same_patch() {
    let before = with_route(
        subset_vs("30", 100, Some(0)),
        "/spec/http",
        2,
        istio_header_route(),
    );
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, before),
        // Weight ops first (their indexes are the ones read: primary is http[3]), then the
        // header route's removal.
        Exchange::patch(
            VS_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "30"},
                {"op": "replace", "path": "/spec/http/3/route/0/weight", "value": 90},
                {"op": "replace", "path": "/spec/http/3/route/1/weight", "value": 10},
                {"op": "remove", "path": "/spec/http/2"},
            ]),
        )
        .respond(200, subset_vs("31", 90, Some(10))),
        Exchange::get(VS).respond(200, subset_vs("31", 90, Some(10))),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let result = router
        .set_routing(
            Some(&routing(0, Some(header(json!({"x-canary": "true"}))))),
            &routing(10, None),
        )
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(result, Ok(routing(10, None)));
}

#[tokio::test]
async fn a_header_route_removed_by_hand_is_a_manual_change_and_nothing_is_patched() {
    let (client, verifier) = serve(vec![
        Exchange::get(VS).respond(200, subset_vs("40", 100, Some(0)))
    ]);
    let router = fast(KubeTrafficRouter::new(client, &subset_target()));
    let expected = routing(0, Some(header(json!({"x-canary": "true"}))));
    let result = router
        .set_routing(Some(&expected), &routing(10, None))
        .await;
    drop(router);
    finish(verifier).await;
    assert_eq!(
        result,
        Err(TrafficError::ManualChange {
            target: VS_TARGET.into(),
            expected,
            found: routing(0, None),
        })
    );
}

/// The header rule slogate writes for the `/checkout` rule of [`http_route`]: its matches
/// with the headers added (a prefix as an anchored regex), its filters, the canary alone.
fn gateway_header_rule() -> Value {
    json!({"matches": [{"path": {"type": "PathPrefix", "value": "/checkout"},
                        "headers": [{"type": "Exact", "name": "x-canary", "value": "true"},
                                    {"type": "RegularExpression", "name": "x-user", "value": "^beta\\-.*"}]}],
           "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-route", "value": "checkout"}]}}],
           "backendRefs": [{"name": "checkout-canary", "port": 8080}]})
}

#[tokio::test]
async fn http_route_header_step_adds_a_rule_with_header_matches_and_removes_it() {
    let h = header(json!({"x-canary": "true", "x-user": {"prefix": "beta-"}}));
    let with_rule = |rv: &str, stable, canary| {
        with_route(
            http_route(rv, stable, canary),
            "/spec/rules",
            1,
            gateway_header_rule(),
        )
    };
    let (client, verifier) = serve(vec![
        // Start of the header step: 100/0 plus the header rule.
        Exchange::get(HR).respond(200, http_route("50", 90, 10)),
        Exchange::patch(
            HR_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "50"},
                {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 100},
                {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 0},
                {"op": "add", "path": "/spec/rules/1", "value": gateway_header_rule()},
            ]),
        )
        .respond(200, with_rule("51", 100, 0)),
        Exchange::get(HR).respond(200, with_rule("51", 100, 0)),
        // Abort (an unconditional write): the header rule goes, weights stay 100/0.
        Exchange::get(HR).respond(200, with_rule("52", 100, 0)),
        Exchange::patch(
            HR_PATCH,
            JSON_PATCH,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "52"},
                {"op": "remove", "path": "/spec/rules/1"},
            ]),
        )
        .respond(200, http_route("53", 100, 0)),
        Exchange::get(HR).respond(200, http_route("53", 100, 0)),
    ]);
    let router = fast(KubeTrafficRouter::new(client, &http_route_target()));
    let added = router
        .set_routing(Some(&routing(10, None)), &routing(0, Some(h.clone())))
        .await;
    let removed = router.set_routing(None, &routing(0, None)).await;
    drop(router);
    finish(verifier).await;
    assert_eq!(added, Ok(routing(0, Some(h))));
    assert_eq!(removed, Ok(routing(0, None)));
}
