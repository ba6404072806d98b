//! The shared state store (`adapters::kube::ConfigMapStore`) against a scripted API server:
//! the exact GET, POST (create), PUT (replace guarded by the resourceVersion) and list (by
//! label selector, paged) requests, 409 on create and on replace reported as the
//! compare-and-swap conflict the file and memory stores report, a missing object on replace,
//! errors naming the key and the ConfigMap, timeouts, the decision log in the inner store;
//! then two replicas sharing one (in-memory) API server through the rollout command queue.

#[path = "kube_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{conflict, finish, not_found, serve, status, Exchange, JSON};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use slogate::adapters::kube::configmap_store::configmap_name;
use slogate::adapters::kube::{ConfigMapStore, ConfigMapStoreError};
use slogate::adapters::state::MemoryStore;
use slogate::ports::state::{
    DecisionKind, DecisionQuery, DecisionRecord, StateError, StateStore, Versioned,
};
use slogate::rollout::machine::CommandAction;
use slogate::runtime::rollout::commands;

const NS: &str = "slogate";
const KEY: &str = "guard/checkout";
const CMS: &str = "/api/v1/namespaces/slogate/configmaps";

fn name() -> String {
    configmap_name(KEY)
}

fn path() -> String {
    format!("{CMS}/{}", name())
}

fn create_path() -> String {
    format!("{CMS}?&fieldManager=slogate")
}

fn replace_path() -> String {
    format!("{CMS}/{}?&fieldManager=slogate", name())
}

fn list_path(continue_token: Option<&str>) -> String {
    let mut p = format!(
        "{CMS}?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dslogate%2Cslogate.dev%2Fstate%3Dtrue&limit=500"
    );
    if let Some(c) = continue_token {
        p.push_str(&format!("&continue={c}"));
    }
    p
}

fn freeze() -> Value {
    json!({"frozen": true, "breach": {"slo": "checkout-availability", "consumed": 0.97}})
}

/// The ConfigMap slogate writes for `key` (without resourceVersion when `rv` is `None`).
fn body(key: &str, value: &Value, rv: Option<&str>) -> Value {
    let mut obj = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(key),
            "labels": {"app.kubernetes.io/managed-by": "slogate", "slogate.dev/state": "true"},
            "annotations": {"slogate.dev/key": key},
        },
        "data": {"value": value.to_string()},
    });
    if let Some(rv) = rv {
        obj["metadata"]["resourceVersion"] = json!(rv);
    }
    obj
}

/// The ConfigMap as the API server returns it, at `rv`.
fn stored(key: &str, value: &Value, rv: &str) -> Value {
    let mut obj = body(key, value, Some(rv));
    obj["metadata"]["namespace"] = json!(NS);
    obj["metadata"]["uid"] = json!("0f4e1c2a-9d1b-4f7e-8c3a-2b1d0e9f8a7c");
    obj["metadata"]["creationTimestamp"] = json!("2026-03-01T12:00:00Z");
    obj
}

fn store(client: kube::Client) -> (ConfigMapStore, Arc<MemoryStore>) {
    let inner = Arc::new(MemoryStore::new());
    (ConfigMapStore::new(client, NS, inner.clone()), inner)
}

fn already_exists() -> Value {
    status(
        409,
        "AlreadyExists",
        &format!("configmaps \"{}\" already exists", name()),
    )
}

fn expect_conflict(err: &StateError, expected: Option<u64>, found: Option<u64>) {
    match err {
        StateError::Conflict {
            key,
            expected: e,
            found: f,
        } => assert_eq!((key.as_str(), *e, *f), (KEY, expected, found), "{err}"),
        e => panic!("expected a conflict, got {e}"),
    }
}

#[tokio::test]
async fn get_reads_the_document_and_its_resource_version() {
    let (client, verifier) = serve(vec![
        Exchange::get(path()).respond(200, stored(KEY, &freeze(), "81234")),
        Exchange::get(path()).respond(404, not_found("configmaps", &name())),
    ]);
    let (s, _) = store(client);
    let found = s.get(KEY).await;
    let absent = s.get(KEY).await;
    drop(s);
    finish(verifier).await;
    assert_eq!(
        found.unwrap(),
        Some(Versioned {
            version: 81234,
            value: freeze()
        })
    );
    assert_eq!(absent.unwrap(), None);
}

#[tokio::test]
async fn put_expecting_absent_creates_the_configmap() {
    let (client, verifier) = serve(vec![Exchange::post(
        create_path(),
        body(KEY, &freeze(), None),
    )
    .respond(201, stored(KEY, &freeze(), "500"))]);
    let (s, _) = store(client);
    let put = s.put(KEY, freeze(), None).await;
    drop(s);
    finish(verifier).await;
    assert_eq!(put.unwrap(), 500, "the new version is the resourceVersion");
}

#[tokio::test]
async fn put_at_a_version_replaces_the_configmap_guarded_by_its_resource_version() {
    let thawed = json!({"frozen": false});
    let (client, verifier) = serve(vec![Exchange::put(
        replace_path(),
        body(KEY, &thawed, Some("500")),
    )
    .respond(200, stored(KEY, &thawed, "507"))]);
    let (s, _) = store(client);
    let put = s.put(KEY, thawed.clone(), Some(500)).await;
    drop(s);
    finish(verifier).await;
    assert_eq!(put.unwrap(), 507);
}

#[tokio::test]
async fn a_409_on_create_is_the_conflict_of_the_other_stores() {
    let (client, verifier) = serve(vec![
        Exchange::post(create_path(), body(KEY, &freeze(), None)).respond(409, already_exists()),
        // Read again for the conflict's `found`.
        Exchange::get(path()).respond(200, stored(KEY, &json!({"frozen": false}), "612")),
    ]);
    let (s, _) = store(client);
    let err = s.put(KEY, freeze(), None).await.unwrap_err();
    drop(s);
    finish(verifier).await;
    expect_conflict(&err, None, Some(612));
    // The same variant and message as the memory store's lost compare-and-swap.
    let mem = MemoryStore::new();
    mem.put(KEY, json!(1), None).await.unwrap();
    let mem_err = mem.put(KEY, json!(2), None).await.unwrap_err();
    assert_eq!(
        std::mem::discriminant(&err),
        std::mem::discriminant(&mem_err)
    );
    assert_eq!(
        err.to_string(),
        "state `guard/checkout` was changed concurrently (expected version None, found Some(612))"
    );
    assert_eq!(
        mem_err.to_string(),
        "state `guard/checkout` was changed concurrently (expected version None, found Some(1))"
    );
}

#[tokio::test]
async fn a_409_on_replace_is_the_conflict_with_the_version_read_back() {
    let (client, verifier) = serve(vec![
        Exchange::put(replace_path(), body(KEY, &freeze(), Some("500")))
            .respond(409, conflict("configmaps", &name())),
        Exchange::get(path()).respond(200, stored(KEY, &json!({"frozen": false}), "650")),
        // Deleted since it was read: a conflict with nothing found.
        Exchange::put(replace_path(), body(KEY, &freeze(), Some("650")))
            .respond(404, not_found("configmaps", &name())),
        // A 409 whose read-back finds nothing either.
        Exchange::put(replace_path(), body(KEY, &freeze(), Some("651")))
            .respond(409, conflict("configmaps", &name())),
        Exchange::get(path()).respond(404, not_found("configmaps", &name())),
    ]);
    let (s, _) = store(client);
    let lost = s.put(KEY, freeze(), Some(500)).await.unwrap_err();
    let deleted = s.put(KEY, freeze(), Some(650)).await.unwrap_err();
    let gone = s.put(KEY, freeze(), Some(651)).await.unwrap_err();
    drop(s);
    finish(verifier).await;
    expect_conflict(&lost, Some(500), Some(650));
    expect_conflict(&deleted, Some(650), None);
    expect_conflict(&gone, Some(651), None);
    assert_eq!(
        lost.to_string(),
        "state `guard/checkout` was changed concurrently (expected version Some(500), found Some(650))"
    );
}

#[tokio::test]
async fn delete_is_guarded_by_the_resource_version() {
    let precondition = json!({"preconditions": {"resourceVersion": "700"}});
    // kube's delete URL ends in `?` (no query parameters).
    let path = || format!("{}?", path());
    let (client, verifier) = serve(vec![
        Exchange::delete(path(), precondition.clone()).respond(200, status_ok()),
        // Changed since it was read: refused, and the version found is read back.
        Exchange::delete(path(), precondition.clone())
            .respond(409, conflict("configmaps", &name())),
        Exchange::get(self::path()).respond(200, stored(KEY, &freeze(), "731")),
        // Already gone.
        Exchange::delete(path(), precondition.clone())
            .respond(404, not_found("configmaps", &name())),
        // Any other failure names the key and the ConfigMap.
        Exchange::delete(path(), precondition)
            .respond(403, status(403, "Forbidden", "configmaps is forbidden")),
    ]);
    let (s, _) = store(client);
    let deleted = s.delete(KEY, 700).await;
    let changed = s.delete(KEY, 700).await.unwrap_err();
    let gone = s.delete(KEY, 700).await.unwrap_err();
    let forbidden = s.delete(KEY, 700).await.unwrap_err();
    drop(s);
    finish(verifier).await;
    deleted.unwrap();
    expect_conflict(&changed, Some(700), Some(731));
    expect_conflict(&gone, Some(700), None);
    let msg = forbidden.to_string();
    assert!(
        msg.contains("delete ConfigMap slogate/") && msg.contains(KEY) && msg.contains("forbidden"),
        "{msg}"
    );
}

/// What the API server answers to a DELETE that went through.
fn status_ok() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

#[tokio::test]
async fn list_selects_by_label_pages_and_filters_by_prefix() {
    let doc = |key: &str, rv: &str| stored(key, &json!({}), rv);
    // An object with the labels but another key's name (foreign or tampered) is ignored.
    let mut foreign = doc("guard/other", "9");
    foreign["metadata"]["name"] = json!("slogate-state-foreign");
    let (client, verifier) = serve(vec![
        Exchange::get(list_path(None)).respond(
            200,
            json!({
                "apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": "900", "continue": "page-2"},
                "items": [doc("rollout-commands/shop/checkout", "3"), doc("guard/search", "4"), foreign],
            }),
        ),
        Exchange::get(list_path(Some("page-2"))).respond(
            200,
            json!({
                "apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": "900"},
                "items": [doc("guard/checkout", "5"), doc("promote-approval/x", "6")],
            }),
        ),
        Exchange::get(list_path(None)).respond(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {}, "items": []}),
        ),
    ]);
    let (s, _) = store(client);
    let guards = s.list("guard/").await;
    let none = s.list("").await;
    drop(s);
    finish(verifier).await;
    assert_eq!(guards.unwrap(), vec!["guard/checkout", "guard/search"]);
    assert_eq!(none.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn errors_name_the_key_and_the_configmap() {
    let mut foreign = stored("guard/other", &freeze(), "3");
    foreign["metadata"]["name"] = json!(name());
    let mut not_json = stored(KEY, &freeze(), "4");
    not_json["data"]["value"] = json!("{frozen");
    let (client, verifier) = serve(vec![
        Exchange::get(path()).respond(
            403,
            status(403, "Forbidden", "configmaps is forbidden: User cannot get"),
        ),
        Exchange::post(create_path(), body(KEY, &freeze(), None)).respond(
            422,
            status(422, "Invalid", "ConfigMap is invalid: data: Too long"),
        ),
        Exchange::get(path()).respond(200, stored(KEY, &freeze(), "not-a-number")),
        Exchange::get(path()).respond(200, foreign),
        Exchange::get(path()).respond(200, not_json),
        Exchange::get(list_path(None)).respond(
            403,
            status(
                403,
                "Forbidden",
                "configmaps is forbidden: User cannot list",
            ),
        ),
    ]);
    let (s, _) = store(client);
    let get_error = s.get(KEY).await.unwrap_err();
    let get = get_error.to_string();
    let put = s.put(KEY, freeze(), None).await.unwrap_err().to_string();
    let rv = s.get(KEY).await.unwrap_err().to_string();
    let collision = s.get(KEY).await.unwrap_err();
    let corrupt = s.get(KEY).await.unwrap_err();
    let list_error = s.list("guard/").await.unwrap_err();
    let list = list_error.to_string();
    drop(s);
    finish(verifier).await;
    // The call's error is kept as the source, and the chain prints it once.
    for (e, text) in [(&get_error, &get), (&list_error, &list)] {
        let source = std::error::Error::source(e).expect("a source");
        let store_error = source
            .downcast_ref::<ConfigMapStoreError>()
            .expect("a ConfigMapStoreError");
        assert!(
            matches!(
                store_error,
                ConfigMapStoreError::Api { .. } | ConfigMapStoreError::List { .. }
            ),
            "{store_error:?}"
        );
        assert!(
            std::error::Error::source(store_error).is_some(),
            "the call's error is the source: {store_error:?}"
        );
        assert_eq!(&slogate::ports::error_chain(e), text);
    }
    let cm = format!("slogate/{}", name());
    assert!(
        get.starts_with(&format!(
            "state store: get ConfigMap {cm} (state `guard/checkout`): HTTP 403 Forbidden"
        )),
        "{get}"
    );
    assert!(
        put.starts_with(&format!(
            "state store: create ConfigMap {cm} (state `guard/checkout`): HTTP 422 Invalid"
        )),
        "{put}"
    );
    assert!(
        rv.contains(&format!(
            "ConfigMap {cm} (state `guard/checkout`): metadata.resourceVersion is Some(\"not-a-number\")"
        )),
        "{rv}"
    );
    assert!(
        matches!(&collision, StateError::Corrupt { key, message } if key == KEY
            && message.contains(&cm) && message.contains("guard/other")),
        "{collision}"
    );
    assert!(
        matches!(&corrupt, StateError::Undecodable { key, at: Some(at), source } if key == KEY
            && at.contains(&cm) && at.contains("not JSON") && source.is::<serde_json::Error>()),
        "{corrupt}"
    );
    // The message is the one printed before: where, then the decoder's error.
    let decoder = std::error::Error::source(&corrupt).expect("the decoder's error");
    assert_eq!(
        corrupt.to_string(),
        format!("state `{KEY}` is corrupt: ConfigMap {cm}: data.value is not JSON: {decoder}")
    );
    assert!(
        list.starts_with(
            "state store: list ConfigMaps in slogate with labels \
             app.kubernetes.io/managed-by=slogate,slogate.dev/state=true: HTTP 403 Forbidden"
        ),
        "{list}"
    );
}

#[tokio::test]
async fn calls_are_bounded_by_the_timeout() {
    // A server that never answers.
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let s = ConfigMapStore::new(client, NS, Arc::new(MemoryStore::new()))
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
    let create = s.put(KEY, freeze(), None).await.unwrap_err().to_string();
    let replace = s.put(KEY, freeze(), Some(1)).await.unwrap_err().to_string();
    let list = s.list("").await.unwrap_err().to_string();
    drop(s);
    let requests = held.await.unwrap();
    let cm = format!("slogate/{}", name());
    assert_eq!(
        get,
        format!("state store: get ConfigMap {cm} (state `guard/checkout`): timed out after 50ms")
    );
    assert_eq!(
        create,
        format!(
            "state store: create ConfigMap {cm} (state `guard/checkout`): timed out after 50ms"
        )
    );
    assert_eq!(
        replace,
        format!(
            "state store: replace ConfigMap {cm} (state `guard/checkout`): timed out after 50ms"
        )
    );
    assert!(list.ends_with("timed out after 50ms"), "{list}");
    let methods: Vec<(&str, String)> = requests
        .iter()
        .map(|(m, u)| (m.as_str(), u.clone()))
        .collect();
    assert_eq!(
        methods,
        vec![
            ("GET", path()),
            ("POST", create_path()),
            ("PUT", replace_path()),
            ("GET", list_path(None)),
        ]
    );
}

#[tokio::test]
async fn bad_keys_make_no_request() {
    let (client, verifier) = serve(Vec::new());
    let (s, _inner) = store(client);
    for bad in ["", "guard/../x", "guard//x", "guard/a b"] {
        assert!(matches!(
            s.get(bad).await.unwrap_err(),
            StateError::InvalidKey(_)
        ));
        assert!(matches!(
            s.put(bad, json!(1), None).await.unwrap_err(),
            StateError::InvalidKey(_)
        ));
    }
    drop(s);
    assert!(finish(verifier).await.is_empty());
}

// ---- two replicas over one API server ---------------------------------------------------

/// An in-memory API server for ConfigMaps of one namespace: get, create (409 when it exists),
/// replace (404 when missing, 409 on a stale resourceVersion) and list by label, with one
/// resourceVersion counter, as etcd has.
#[derive(Default)]
struct FakeApi {
    objects: BTreeMap<String, Value>,
    rv: u64,
    requests: Vec<String>,
    /// Answer every request with a 500 (etcd down).
    down: bool,
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, JSON)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

impl FakeApi {
    fn handle(&mut self, method: &str, uri: &str, body: Option<Value>) -> Response<Body> {
        assert!(
            slogate::adapters::kube::covers(method, uri),
            "{method} {uri} not in API_CALLS"
        );
        self.requests.push(format!("{method} {uri}"));
        if self.down {
            return respond(
                500,
                &status(500, "InternalError", "etcdserver: request timed out"),
            );
        }
        let path = uri.split('?').next().unwrap();
        let name = path
            .strip_prefix(CMS)
            .and_then(|r| r.strip_prefix('/'))
            .map(str::to_string);
        match (method, name) {
            ("GET", Some(n)) => match self.objects.get(&n) {
                Some(o) => respond(200, o),
                None => respond(404, &not_found("configmaps", &n)),
            },
            ("GET", None) => {
                assert!(uri.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dslogate%2Cslogate.dev%2Fstate%3Dtrue"), "{uri}");
                let items: Vec<&Value> = self.objects.values().collect();
                respond(
                    200,
                    &json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {}, "items": items}),
                )
            }
            ("POST", None) => {
                let mut o = body.unwrap();
                let n = o["metadata"]["name"].as_str().unwrap().to_string();
                if self.objects.contains_key(&n) {
                    return respond(409, &status(409, "AlreadyExists", "exists"));
                }
                self.rv += 1;
                o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.objects.insert(n, o.clone());
                respond(201, &o)
            }
            ("PUT", Some(n)) => {
                let mut o = body.unwrap();
                let Some(cur) = self.objects.get(&n) else {
                    return respond(404, &not_found("configmaps", &n));
                };
                if cur["metadata"]["resourceVersion"] != o["metadata"]["resourceVersion"] {
                    return respond(409, &conflict("configmaps", &n));
                }
                self.rv += 1;
                o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.objects.insert(n, o.clone());
                respond(200, &o)
            }
            (m, n) => panic!("unexpected {m} {n:?}"),
        }
    }
}

/// A client whose requests `api` serves, as long as the client lives.
fn replica(api: Arc<Mutex<FakeApi>>) -> ConfigMapStore {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
            let response = api.lock().unwrap().handle(&method, &uri, body);
            send.send_response(response);
        }
    });
    ConfigMapStore::new(
        kube::Client::new(service, "default"),
        NS,
        Arc::new(MemoryStore::new()),
    )
}

#[tokio::test]
async fn a_command_sent_to_the_follower_is_seen_by_the_leader() {
    let api = Arc::new(Mutex::new(FakeApi::default()));
    let follower = replica(api.clone());
    let leader = replica(api.clone());
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();

    // The HTTP API on the follower queues an abort, then one on the leader a pause.
    let (abort, _) = commands::enqueue(
        &follower,
        "shop",
        "checkout",
        CommandAction::Abort,
        "alice",
        Some("p99 regression".into()),
        "api",
        now,
    )
    .await
    .unwrap();
    let (pause, _) = commands::enqueue(
        &leader,
        "shop",
        "checkout",
        CommandAction::Pause,
        "bob",
        None,
        "api",
        now,
    )
    .await
    .unwrap();
    // The leader's controller reads both, in order.
    let (queue, version) = commands::read_queue(&leader, "shop", "checkout")
        .await
        .unwrap();
    let ids: Vec<&str> = queue
        .pending
        .iter()
        .map(|q| q.command.id.as_str())
        .collect();
    assert_eq!(ids, vec![abort.id.as_str(), pause.id.as_str()]);
    assert_eq!(queue.pending[0].command.actor, "alice");
    assert_eq!(version, Some(2), "created, then replaced once");
    assert_eq!(
        follower.list("rollout-commands/").await.unwrap(),
        vec!["rollout-commands/shop/checkout"]
    );

    // A stale write from the follower loses against the leader's: the queue is never
    // overwritten with an old copy.
    let lost = follower
        .put(
            "rollout-commands/shop/checkout",
            json!({"pending": []}),
            Some(1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            lost,
            StateError::Conflict {
                expected: Some(1),
                found: Some(2),
                ..
            }
        ),
        "{lost}"
    );
    let requests = api.lock().unwrap().requests.clone();
    let key = configmap_name("rollout-commands/shop/checkout");
    assert_eq!(
        requests,
        vec![
            format!("GET {CMS}/{key}"),
            format!("POST {CMS}?&fieldManager=slogate"),
            format!("GET {CMS}/{key}"),
            format!("PUT {CMS}/{key}?&fieldManager=slogate"),
            format!("GET {CMS}/{key}"),
            format!("GET {}", list_path(None)),
            format!("PUT {CMS}/{key}?&fieldManager=slogate"),
            format!("GET {CMS}/{key}"),
        ]
    );
}

fn decision(secs: u32, subject: &str, action: &str) -> DecisionRecord {
    DecisionRecord::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, secs).unwrap(),
        DecisionKind::Rollout,
        subject,
        "schedule",
        action,
        format!("{action} {subject}"),
    )
}

/// The decision log is shared: what the leader decided and what an operator did through the
/// follower are read from either replica, in time order, while each pod's own log keeps
/// only what it wrote. A shared log that cannot be reached does not lose a decision.
#[tokio::test]
async fn both_replicas_read_one_decision_log() {
    let api = Arc::new(Mutex::new(FakeApi::default()));
    let leader = replica(api.clone());
    let follower = replica(api.clone());
    let step = decision(0, "shop/checkout", "step");
    let mut pause = decision(1, "shop/checkout", "pause");
    pause.kind = DecisionKind::Operator;
    pause.actor = Some("alice".into());
    let promote = decision(2, "shop/checkout", "promote");
    leader.append_decision(&step).await.unwrap();
    follower.append_decision(&pause).await.unwrap();
    leader.append_decision(&promote).await.unwrap();

    let everything = vec![step.clone(), pause.clone(), promote.clone()];
    for replica in [&leader, &follower] {
        assert_eq!(
            replica.decisions(&DecisionQuery::default()).await.unwrap(),
            everything
        );
        let operator = DecisionQuery {
            kind: Some(DecisionKind::Operator),
            ..DecisionQuery::default()
        };
        assert_eq!(
            replica.decisions(&operator).await.unwrap(),
            vec![pause.clone()]
        );
        let last = DecisionQuery {
            limit: Some(1),
            ..DecisionQuery::default()
        };
        assert_eq!(
            replica.decisions(&last).await.unwrap(),
            vec![promote.clone()]
        );
    }
    let own = |r: &ConfigMapStore| {
        let inner = r.inner().clone();
        async move { inner.decisions(&DecisionQuery::default()).await.unwrap() }
    };
    assert_eq!(own(&leader).await, vec![step.clone(), promote.clone()]);
    assert_eq!(own(&follower).await, vec![pause.clone()]);
    // One shared ConfigMap holds them, with the ring's key.
    assert_eq!(
        follower.list("decisions/").await.unwrap(),
        vec!["decisions/00"]
    );

    // The API goes down: the decision is still recorded (in the pod's log) and read back.
    api.lock().unwrap().down = true;
    let abort = decision(3, "shop/checkout", "abort");
    leader.append_decision(&abort).await.unwrap();
    assert_eq!(
        leader.decisions(&DecisionQuery::default()).await.unwrap(),
        vec![step.clone(), promote.clone(), abort.clone()]
    );
    // Back up: the shared log has what it had; the leader's own log keeps the abort.
    api.lock().unwrap().down = false;
    assert_eq!(
        follower.decisions(&DecisionQuery::default()).await.unwrap(),
        everything
    );
    assert_eq!(
        leader.decisions(&DecisionQuery::default()).await.unwrap(),
        vec![step, pause, promote, abort]
    );
}

/// An alert received by the follower reaches the leader through one shared ConfigMap, and
/// the leader takes it exactly once.
#[tokio::test]
async fn an_alert_received_by_the_follower_is_handed_to_the_leader() {
    use slogate::runtime::webhook::handoff;
    let api = Arc::new(Mutex::new(FakeApi::default()));
    let (leader, follower) = (replica(api.clone()), replica(api.clone()));
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let window = Duration::from_secs(60);
    let mut cursor = handoff::Cursor::default();
    assert!(cursor
        .take(&handoff::read(&leader).await.unwrap(), now, window)
        .is_empty());
    handoff::push(
        &follower,
        "checkout-availability",
        Some("SlothErrorBudgetBurn".into()),
        "4e1a2b3c4d5e6f70",
        now,
    )
    .await
    .unwrap();
    let took = cursor.take(&handoff::read(&leader).await.unwrap(), now, window);
    assert_eq!(took.len(), 1);
    assert_eq!(took[0].slo_id, "checkout-availability");
    assert_eq!(took[0].fingerprint, "4e1a2b3c4d5e6f70");
    assert!(cursor
        .take(&handoff::read(&leader).await.unwrap(), now, window)
        .is_empty());
    assert_eq!(
        leader.list("webhook/").await.unwrap(),
        vec![handoff::KEY.to_string()]
    );
}
