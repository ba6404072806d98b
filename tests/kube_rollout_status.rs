//! The Rollout status store (`adapters::kube::RolloutStatusStore`) against a scripted API
//! server: the exact GET and status PATCH requests (method, path and query, content-type,
//! JSON body with the resourceVersion guard), a 409 reported as the compare-and-swap
//! conflict the file and memory stores report, a missing Rollout, delegation of every other
//! key and of the decision log to the inner store, round trips, and the rollout controller
//! storing its state through it.

#[path = "kube_common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use common::{conflict, finish, not_found, serve, status, Exchange, JSON_PATCH};
use serde_json::{json, Value};
use slogate::adapters::kube::{RolloutStatusError, RolloutStatusStore};
use slogate::adapters::state::MemoryStore;
use slogate::adapters::traffic_file::FileRouter;
use slogate::ports::metrics::{MetricsError, MetricsSource, Sample, Series};
use slogate::ports::state::{
    DecisionKind, DecisionQuery, DecisionRecord, StateError, StateStore, Versioned,
};
use slogate::rollout::load::from_yaml_str;
use slogate::rollout::PhaseName;
use slogate::runtime::rollout::{RolloutController, RolloutDeps, StaticVersions};

const RO: &str = "/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts/checkout";
const RO_STATUS: &str =
    "/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts/checkout/status?&fieldManager=slogate";
const KEY: &str = "rollout/shop/checkout";

const ROLLOUT: &str = r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    virtualService: {name: checkout, route: primary, subset: {host: checkout, stable: stable, canary: canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [10, 25, 50, 75, 100]
  interval: 30s
  analysis:
    metrics:
      - {name: request-success-rate, min: 0.99}
  gitops: {app: checkout, path: apps/checkout/overlays/prod}
"#;

/// The Rollout as the API server returns it, at resourceVersion `rv`, with `status` (none
/// when `None`).
fn rollout(rv: &str, status: Option<Value>) -> Value {
    let mut obj = json!({
        "apiVersion": "slogate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": rv,
                     "generation": 3, "uid": "5b0c2d1e-7f7e-4c1e-9d8a-0c1b2a3d4e5f"},
        "spec": {
            "traffic": {"virtualService": {"name": "checkout", "route": "primary",
                "subset": {"host": "checkout", "stable": "stable", "canary": "canary"}}},
            "workloads": {"stable": {"kind": "Deployment", "name": "checkout"},
                          "canary": {"kind": "Deployment", "name": "checkout-canary"},
                          "versionLabel": "version"},
            "analysis": {"metrics": [{"name": "request-success-rate", "min": 0.99}]},
            "gitops": {"app": "checkout", "path": "apps/checkout/overlays/prod"},
        },
    });
    if let Some(s) = status {
        obj["status"] = s;
    }
    obj
}

fn progressing() -> Value {
    json!({
        "phase": "Progressing", "step": 1,
        "since": "2026-03-01T12:00:30Z", "deadline": "2026-03-01T12:10:30Z",
        "reason": "step 1: 25% to the canary", "attempt": 1,
        "canaryVersion": "v2", "stableVersion": "v1",
        "weights": {"stable": 75, "canary": 25},
        "failures": 0, "inconclusive": 0, "passes": 1, "seq": 2,
    })
}

fn status_patch(rv: &str, status: &Value) -> Value {
    json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/status", "value": status},
    ])
}

fn store(client: kube::Client) -> (RolloutStatusStore, Arc<MemoryStore>) {
    let inner = Arc::new(MemoryStore::new());
    (RolloutStatusStore::new(client, inner.clone()), inner)
}

#[tokio::test]
async fn get_reads_the_status_and_its_resource_version() {
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(200, rollout("81234", Some(progressing())))
    ]);
    let (s, _) = store(client);
    let got = s.get(KEY).await;
    drop(s);
    finish(verifier).await;
    assert_eq!(
        got.unwrap(),
        Some(Versioned {
            version: 81234,
            value: progressing(),
        })
    );
}

#[tokio::test]
async fn no_status_or_no_rollout_reads_as_absent() {
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(200, rollout("7", None)),
        Exchange::get(RO).respond(200, rollout("8", Some(json!({})))),
        Exchange::get(RO).respond(200, rollout("9", Some(Value::Null))),
        Exchange::get(RO).respond(404, not_found("rollouts.slogate.dev", "checkout")),
    ]);
    let (s, _) = store(client);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(s.get(KEY).await.unwrap());
    }
    drop(s);
    finish(verifier).await;
    assert_eq!(got, vec![None, None, None, None]);
}

#[tokio::test]
async fn put_patches_the_status_subresource_guarded_by_the_expected_version() {
    let (client, verifier) = serve(vec![Exchange::patch(
        RO_STATUS,
        JSON_PATCH,
        status_patch("81234", &progressing()),
    )
    .respond(200, rollout("81240", Some(progressing())))]);
    let (s, _) = store(client);
    let put = s.put(KEY, progressing(), Some(81234)).await;
    drop(s);
    finish(verifier).await;
    assert_eq!(
        put.unwrap(),
        81240,
        "the new version is the new resourceVersion"
    );
}

#[tokio::test]
async fn put_expecting_absent_writes_a_rollout_without_status_at_the_version_read() {
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(200, rollout("500", None)),
        Exchange::patch(RO_STATUS, JSON_PATCH, status_patch("500", &progressing()))
            .respond(200, rollout("501", Some(progressing()))),
    ]);
    let (s, _) = store(client);
    let put = s.put(KEY, progressing(), None).await;
    drop(s);
    finish(verifier).await;
    assert_eq!(put.unwrap(), 501);
}

#[tokio::test]
async fn put_expecting_absent_on_a_stored_status_is_a_conflict_and_writes_nothing() {
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(200, rollout("500", Some(progressing())))
    ]);
    let (s, _) = store(client);
    let put = s.put(KEY, json!({"phase": "Pending"}), None).await;
    drop(s);
    finish(verifier).await;
    match put.unwrap_err() {
        StateError::Conflict {
            key,
            expected,
            found,
        } => assert_eq!((key.as_str(), expected, found), (KEY, None, Some(500))),
        e => panic!("expected a conflict, got {e}"),
    }
}

#[tokio::test]
async fn a_409_is_the_compare_and_swap_conflict_of_the_other_stores() {
    let (client, verifier) = serve(vec![
        Exchange::patch(RO_STATUS, JSON_PATCH, status_patch("81234", &progressing()))
            .respond(409, conflict("rollouts.slogate.dev", "checkout")),
        // Read again for the conflict's `found`.
        Exchange::get(RO).respond(200, rollout("81250", Some(progressing()))),
    ]);
    let (s, _) = store(client);
    let put = s.put(KEY, progressing(), Some(81234)).await;
    drop(s);
    finish(verifier).await;
    let err = put.unwrap_err();
    match &err {
        StateError::Conflict {
            key,
            expected,
            found,
        } => assert_eq!(
            (key.as_str(), *expected, *found),
            (KEY, Some(81234), Some(81250))
        ),
        e => panic!("expected a conflict, got {e}"),
    }
    // The same variant and message shape as the memory store's lost compare-and-swap.
    let mem = MemoryStore::new();
    mem.put(KEY, json!({"phase": "Pending"}), None)
        .await
        .unwrap();
    let mem_err = mem.put(KEY, json!({}), Some(7)).await.unwrap_err();
    assert_eq!(
        std::mem::discriminant(&err),
        std::mem::discriminant(&mem_err)
    );
    assert_eq!(
        err.to_string(),
        "state `rollout/shop/checkout` was changed concurrently (expected version Some(81234), found Some(81250))"
    );
}

#[tokio::test]
async fn a_missing_rollout_cannot_be_written_and_the_error_names_it() {
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(404, not_found("rollouts.slogate.dev", "checkout")),
        Exchange::patch(RO_STATUS, JSON_PATCH, status_patch("3", &progressing()))
            .respond(404, not_found("rollouts.slogate.dev", "checkout")),
    ]);
    let (s, _) = store(client);
    let absent = s.put(KEY, progressing(), None).await.unwrap_err();
    // Deleted after it was read: the document is gone, a lost compare-and-swap.
    let deleted = s.put(KEY, progressing(), Some(3)).await.unwrap_err();
    drop(s);
    finish(verifier).await;
    match absent {
        StateError::Api { source } => {
            let m = source.to_string();
            assert!(
                m.contains("Rollout shop/checkout not found")
                    && m.contains("applied to the cluster"),
                "{m}"
            );
            assert!(
                matches!(
                    source.downcast_ref::<RolloutStatusError>(),
                    Some(RolloutStatusError::NotFound { .. })
                ),
                "{source:?}"
            );
        }
        e => panic!("expected a backend error, got {e}"),
    }
    assert!(
        matches!(
            deleted,
            StateError::Conflict {
                expected: Some(3),
                found: None,
                ..
            }
        ),
        "{deleted}"
    );
}

#[tokio::test]
async fn api_errors_name_the_rollout() {
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(
            403,
            status(
                403,
                "Forbidden",
                "rollouts.slogate.dev \"checkout\" is forbidden",
            ),
        ),
        Exchange::patch(RO_STATUS, JSON_PATCH, status_patch("4", &progressing())).respond(
            422,
            status(
                422,
                "Invalid",
                "Rollout.slogate.dev \"checkout\" is invalid",
            ),
        ),
        Exchange::get(RO).respond(200, rollout("not-a-number", Some(progressing()))),
    ]);
    let (s, _) = store(client);
    let get_error = s.get(KEY).await.unwrap_err();
    let get = get_error.to_string();
    let put = s
        .put(KEY, progressing(), Some(4))
        .await
        .unwrap_err()
        .to_string();
    let rv = s.get(KEY).await.unwrap_err().to_string();
    drop(s);
    finish(verifier).await;
    // The call's error is kept as the source, and the chain prints it once.
    let source = std::error::Error::source(&get_error).expect("a source");
    let api = source
        .downcast_ref::<RolloutStatusError>()
        .expect("a RolloutStatusError");
    assert!(
        matches!(api, RolloutStatusError::Api { op: "get", rollout, .. } if rollout == "shop/checkout"),
        "{api:?}"
    );
    assert!(
        std::error::Error::source(api).is_some(),
        "the call's error is the source: {api:?}"
    );
    assert_eq!(slogate::ports::error_chain(&get_error), get);
    assert!(
        get.starts_with("state store: get Rollout shop/checkout: HTTP 403 Forbidden"),
        "{get}"
    );
    assert!(
        put.starts_with("state store: patch status of Rollout shop/checkout: HTTP 422 Invalid"),
        "{put}"
    );
    assert!(
        rv.contains("Rollout shop/checkout: metadata.resourceVersion is Some(\"not-a-number\")"),
        "{rv}"
    );
}

#[tokio::test]
async fn calls_are_bounded_by_the_timeout() {
    // A server that never answers.
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let client = kube::Client::new(service, "default");
    let s = RolloutStatusStore::new(client, Arc::new(MemoryStore::new()))
        .with_timeout(Duration::from_millis(50));
    let held = tokio::spawn(async move {
        let mut requests = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            requests.push((req.method().to_string(), req.uri().to_string()));
            // Keep the responder alive without answering until the client gives up.
            std::mem::forget(send);
        }
        requests
    });
    let get = s.get(KEY).await.unwrap_err().to_string();
    let put = s
        .put(KEY, progressing(), Some(1))
        .await
        .unwrap_err()
        .to_string();
    drop(s);
    let requests = held.await.unwrap();
    assert_eq!(
        get,
        "state store: get Rollout shop/checkout: timed out after 50ms"
    );
    assert_eq!(
        put,
        "state store: patch status of Rollout shop/checkout: timed out after 50ms"
    );
    assert_eq!(
        requests,
        vec![
            ("GET".to_string(), RO.to_string()),
            ("PATCH".to_string(), RO_STATUS.to_string()),
        ]
    );
}

#[tokio::test]
async fn other_keys_and_the_decision_log_stay_in_the_inner_store() {
    // No request at all.
    let (client, verifier) = serve(Vec::new());
    let (s, inner) = store(client);
    for key in ["rollout-commands/shop/checkout", "guard/checkout"] {
        assert_eq!(s.put(key, json!({"a": 1}), None).await.unwrap(), 1);
        assert_eq!(s.put(key, json!({"a": 2}), Some(1)).await.unwrap(), 2);
        let lost = s.put(key, json!({"a": 3}), Some(1)).await.unwrap_err();
        assert!(
            matches!(lost, StateError::Conflict { found: Some(2), .. }),
            "{lost}"
        );
        let got = s.get(key).await.unwrap().unwrap();
        assert_eq!(got, inner.get(key).await.unwrap().unwrap());
        assert_eq!((got.version, got.value), (2, json!({"a": 2})));
    }
    assert_eq!(
        s.list("").await.unwrap(),
        vec!["guard/checkout", "rollout-commands/shop/checkout"]
    );
    // Rollout statuses are not listed (the module docs say why).
    assert!(s.list("rollout/").await.unwrap().is_empty());
    common::assert_decision_log_delegates(
        &s,
        inner.as_ref(),
        DecisionKind::Rollout,
        "shop/checkout",
    )
    .await;
    // Keys under rollout/ that name no Rollout, bad keys and documents that are no status
    // are refused before any request.
    let e = s.get("rollout/shop").await.unwrap_err().to_string();
    assert!(e.contains("expected rollout/<namespace>/<name>"), "{e}");
    let e = s
        .put("rollout/a/b/c", json!({"phase": "Pending"}), None)
        .await;
    assert!(e.is_err());
    assert!(matches!(
        s.get("rollout/../x").await.unwrap_err(),
        StateError::InvalidKey(_)
    ));
    for bad in [json!({}), json!("Pending"), json!([1])] {
        let e = s.put(KEY, bad, None).await.unwrap_err().to_string();
        assert!(e.contains("must be a non-empty JSON object"), "{e}");
    }
    drop(s);
    assert!(finish(verifier).await.is_empty());
}

#[tokio::test]
async fn round_trip_put_then_get() {
    let first = json!({"phase": "Pending", "reason": "no canary", "attempt": 0, "seq": 0});
    let (client, verifier) = serve(vec![
        Exchange::get(RO).respond(200, rollout("10", None)),
        Exchange::patch(RO_STATUS, JSON_PATCH, status_patch("10", &first))
            .respond(200, rollout("11", Some(first.clone()))),
        Exchange::get(RO).respond(200, rollout("11", Some(first.clone()))),
        // The whole status is replaced: members the new document lacks are gone.
        Exchange::patch(RO_STATUS, JSON_PATCH, status_patch("11", &progressing()))
            .respond(200, rollout("12", Some(progressing()))),
        Exchange::get(RO).respond(200, rollout("12", Some(progressing()))),
    ]);
    let (s, _) = store(client);
    let v1 = s.put(KEY, first.clone(), None).await.unwrap();
    let got1 = s.get(KEY).await.unwrap();
    let v2 = s.put(KEY, progressing(), Some(v1)).await.unwrap();
    let got2 = s.get(KEY).await.unwrap();
    drop(s);
    finish(verifier).await;
    assert_eq!(
        got1,
        Some(Versioned {
            version: 11,
            value: first
        })
    );
    assert_eq!(v2, 12);
    assert_eq!(
        got2,
        Some(Versioned {
            version: 12,
            value: progressing()
        })
    );
}

// ---- the rollout controller through the store ---------------------------------------------

/// No metrics: the first reconcile of a new canary runs no analysis.
struct NoMetrics;

#[async_trait]
impl MetricsSource for NoMetrics {
    async fn instant(
        &self,
        _query: &str,
        _at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        Ok(Vec::new())
    }

    async fn range(
        &self,
        _query: &str,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
        _step: Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        Ok(Vec::new())
    }
}

/// A memory store that records the status writes (value, expected version).
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    puts: Mutex<Vec<(Value, Option<u64>)>>,
}

#[async_trait]
impl StateStore for Recording {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Value, expected: Option<u64>) -> Result<u64, StateError> {
        if key == KEY {
            self.puts.lock().unwrap().push((value.clone(), expected));
        }
        self.inner.put(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        self.inner.delete(key, expected).await
    }
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

fn controller(store: Arc<dyn StateStore>, weights: &std::path::Path) -> RolloutController {
    let versions = Arc::new(StaticVersions::new());
    versions.set("shop/checkout", "v1", "v2");
    RolloutController::new(
        from_yaml_str(ROLLOUT).unwrap(),
        RolloutDeps::new(
            Arc::new(NoMetrics),
            Arc::new(FileRouter::new(weights)),
            store,
            versions,
        ),
    )
}

#[tokio::test]
async fn the_controller_stores_its_state_in_the_rollout_status_before_its_effects() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The same reconcile over a memory store says which statuses the controller stores.
    let recording = Arc::new(Recording::default());
    let reference = controller(recording.clone(), &dir.path().join("reference.json"))
        .reconcile_once(now)
        .await
        .unwrap();
    let puts = recording.puts.lock().unwrap().clone();
    assert!(puts.len() >= 2, "{puts:#?}");
    assert_eq!(puts[0].1, None, "the first status is created");
    // It names the weights effect as pending: stored before the weights were written.
    assert_eq!(puts[0].0["phase"], "Progressing");
    assert_eq!(puts[0].0["pending"][0]["kind"], "setWeights");
    assert!(puts.last().unwrap().0.get("pending").is_none());

    // Over the API server: each of those statuses is a status PATCH guarded by the
    // resourceVersion the previous write returned.
    let mut script = vec![
        // The reconcile reads the status: the Rollout has none yet.
        Exchange::get(RO).respond(200, rollout("700", None)),
        // The first write expects none: read again, then write at that version.
        Exchange::get(RO).respond(200, rollout("700", None)),
    ];
    let mut rv = 700;
    for (value, _) in &puts {
        script.push(
            Exchange::patch(RO_STATUS, JSON_PATCH, status_patch(&rv.to_string(), value))
                .respond(200, rollout(&(rv + 1).to_string(), Some(value.clone()))),
        );
        rv += 1;
    }
    let last = puts.last().unwrap().0.clone();
    script.push(Exchange::get(RO).respond(200, rollout(&rv.to_string(), Some(last))));
    let (client, verifier) = serve(script);
    let weights = dir.path().join("kube.json");
    let (kube_store, inner) = store(client);
    let c = controller(Arc::new(kube_store), &weights);
    let report = c.reconcile_once(now).await.unwrap();
    let (stored, version) = c.status().await.unwrap();
    drop(c);
    let seen = finish(verifier).await;

    assert_eq!(seen.len(), puts.len() + 3);
    assert_eq!(report.status, reference.status);
    assert_eq!(report.phase(), PhaseName::Progressing);
    assert_eq!(stored, report.status);
    assert_eq!(version, Some(rv));
    // The effect ran after its status was stored: the route holds the first step.
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&weights).unwrap()).unwrap();
    assert_eq!(written, json!({"stable": 90, "canary": 10}));
    // Nothing of the status went to the inner store; the decision log did.
    assert_eq!(inner.get(KEY).await.unwrap(), None);
    assert!(!inner
        .decisions(&DecisionQuery::default())
        .await
        .unwrap()
        .is_empty());
}
