//! Two `slogate run` processes as the two replicas of `deploy/`: leader election on a Lease
//! and every state document in ConfigMaps (`state.backend: kube`), against one fake API
//! server that keeps objects like the real one (plain HTTP, reached through a kubeconfig):
//! created with POST (409 when they exist), replaced with PUT only at their current
//! `resourceVersion` (409 otherwise), deleted with a `resourceVersion` precondition, listed.
//!
//! - exactly one replica leads (`slogate_leader`, and the Lease's holder);
//! - an approval POSTed to the follower is read from the leader, with its decision record
//!   (the shared ConfigMap document and the shared decision log);
//! - an Alertmanager alert delivered to the follower is handed over: the follower logs that
//!   it handed it over, the leader that it took it;
//! - SIGTERM on the leader: it exits 0 and releases the Lease, and the follower takes over;
//!   the new leader then acts on alerts itself instead of handing them over;
//! - every request either replica made is one `API_CALLS` (and so the shipped RBAC) grants.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, Uri};
use common::fake_api::{serve_on_thread, slogate_run, write_kubeconfig};
use common::{free_port, http, metric};
use serde_json::{json, Value};

const NS: &str = "slogate";
const API_TOKEN: &str = "api-token-for-the-test";
const WEBHOOK_TOKEN: &str = "webhook-token-for-the-test";
/// What the replica acting on an alert logs when no guarded app uses its SLO (none is
/// configured here: acting on it goes no further).
const GUARD_RAN: &str = "alert for an SLO no guarded app uses";
const FIRING: &str = include_str!("fixtures/alertmanager/firing-sloth-id.json");

// ---------------------------------------------------------------------------------------
// The fake API server

/// Objects by collection path (`/api/v1/namespaces/slogate/configmaps`) and name, and every
/// request seen.
#[derive(Default)]
struct Objects {
    collections: BTreeMap<String, BTreeMap<String, Value>>,
    resource_version: u64,
    requests: Vec<(String, String)>,
}

fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, axum::Json<Value>) {
    (
        code,
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": if code.is_success() { "Success" } else { "Failure" },
            "reason": reason, "message": message, "code": code.as_u16()})),
    )
}

/// `(collection, name)` of a request path: the collections are the namespaced ConfigMaps
/// and Leases.
fn split(path: &str) -> Option<(String, Option<String>)> {
    for suffix in ["/configmaps", "/leases"] {
        if path.ends_with(suffix) {
            return Some((path.to_string(), None));
        }
        if let Some(i) = path.find(&format!("{suffix}/")) {
            let (coll, rest) = path.split_at(i + suffix.len());
            return Some((coll.to_string(), Some(rest[1..].to_string())));
        }
    }
    None
}

/// `k=v` pairs of a label selector (equality only, what slogate sends).
fn selector(query: &str) -> Vec<(String, String)> {
    let Some(sel) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
    else {
        return Vec::new();
    };
    let sel = sel
        .replace("%2F", "/")
        .replace("%3D", "=")
        .replace("%2C", ",");
    sel.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn handle(
    objects: &mut Objects,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> (StatusCode, axum::Json<Value>) {
    objects.requests.push((method.to_string(), uri.to_string()));
    let Some((coll, name)) = split(uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{uri}: no such resource"),
        );
    };
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    objects.resource_version += 1;
    let rv = objects.resource_version.to_string();
    let items = objects.collections.entry(coll.clone()).or_default();
    let missing = |n: &str| status(StatusCode::NOT_FOUND, "NotFound", format!("{n} not found"));
    let stale = |n: &str| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on \"{n}\": the object has been modified"),
        )
    };
    match (method.as_str(), name) {
        ("GET", Some(n)) => match items.get(&n) {
            Some(o) => (StatusCode::OK, axum::Json(o.clone())),
            None => missing(&n),
        },
        ("GET", None) => {
            let want = selector(uri.query().unwrap_or(""));
            let listed: Vec<Value> = items
                .values()
                .filter(|o| {
                    want.iter()
                        .all(|(k, v)| o["metadata"]["labels"][k].as_str() == Some(v.as_str()))
                })
                .cloned()
                .collect();
            (
                StatusCode::OK,
                axum::Json(json!({"apiVersion": "v1", "kind": "List",
                    "metadata": {"resourceVersion": rv}, "items": listed})),
            )
        }
        ("POST", None) => {
            let n = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            if items.contains_key(&n) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("\"{n}\" already exists"),
                );
            }
            let mut o = body.clone();
            o["metadata"]["resourceVersion"] = json!(rv);
            o["metadata"]["namespace"] = json!(NS);
            o["metadata"]["uid"] = json!(format!("uid-{rv}"));
            items.insert(n, o.clone());
            (StatusCode::CREATED, axum::Json(o))
        }
        ("PUT", Some(n)) => {
            let Some(old) = items.get(&n) else {
                return missing(&n);
            };
            if body["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                return stale(&n);
            }
            let mut o = body.clone();
            o["metadata"]["resourceVersion"] = json!(rv);
            o["metadata"]["namespace"] = json!(NS);
            o["metadata"]["uid"] = old["metadata"]["uid"].clone();
            items.insert(n, o.clone());
            (StatusCode::OK, axum::Json(o))
        }
        ("DELETE", Some(n)) => {
            let Some(old) = items.get(&n) else {
                return missing(&n);
            };
            let pre = &body["preconditions"]["resourceVersion"];
            if !pre.is_null() && *pre != old["metadata"]["resourceVersion"] {
                return stale(&n);
            }
            items.remove(&n);
            status(StatusCode::OK, "", String::new())
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {uri}"),
        ),
    }
}

/// Serve `objects` on a loopback port.
fn fake_api_server(objects: Arc<Mutex<Objects>>) -> SocketAddr {
    serve_on_thread(axum::Router::new().fallback(
        move |method: Method, uri: Uri, body: axum::body::Bytes| {
            let objects = objects.clone();
            async move { handle(&mut objects.lock().unwrap(), &method, &uri, &body) }
        },
    ))
}

/// The Lease's holder, if any.
fn holder(objects: &Mutex<Objects>) -> Option<String> {
    let o = objects.lock().unwrap();
    o.collections
        .get(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
        ))?
        .get("slogate")?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// The replicas

struct Replica {
    name: &'static str,
    child: Child,
    url: String,
    log: PathBuf,
}

impl Replica {
    fn start(name: &'static str, dir: &Path, kubeconfig: &Path) -> Replica {
        let p = |f: &str| dir.join(format!("{name}-{f}"));
        let port = free_port();
        std::fs::write(
            p("slogate.yaml"),
            format!(
                "prometheus: {{url: 'http://127.0.0.1:9'}}\n\
                 slos: {{paths: ['{slos}']}}\n\
                 server: {{listen: '127.0.0.1:{port}'}}\n\
                 state: {{dir: '{state}', backend: kube}}\n\
                 leader_election: {{enabled: true}}\n\
                 api: {{token: {{file: '{api_token}'}}}}\n\
                 webhook:\n  enabled: true\n  auth: {{bearer: {{token_file: '{webhook_token}'}}}}\n",
                slos = dir.join("slos").display(),
                state = p("state").display(),
                api_token = dir.join("api-token").display(),
                webhook_token = dir.join("webhook-token").display(),
            ),
        )
        .unwrap();
        let log = p("slogate.log");
        let child = slogate_run(&p("slogate.yaml"), kubeconfig, dir, &log)
            .env("POD_NAME", format!("slogate-{name}"))
            .env("POD_NAMESPACE", NS)
            .spawn()
            .expect("spawn slogate run");
        Replica {
            name,
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `slogate_leader` from `/metrics`, once it answers.
    fn leader(&self) -> Option<f64> {
        let body = http()
            .get(format!("{}/metrics", self.url))
            .send()
            .ok()?
            .text()
            .ok()?;
        metric(&body, "slogate_leader")
    }

    /// Poll until `check` holds (a liveness bound, not a timing assertion).
    fn wait(&mut self, what: &str, check: impl Fn(&Replica) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited early: {status}\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {}\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn post(&self, path: &str, token: &str, body: &str) -> (u16, String) {
        let r = http()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = http()
            .get(format!("{}{path}", self.url))
            .bearer_auth(API_TOKEN)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit after SIGTERM\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same firing alert, started at `starts_at` (a new event each time it changes).
fn alert(starts_at: &str) -> String {
    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    v["alerts"][0]["startsAt"] = json!(starts_at);
    v.to_string()
}

#[test]
fn two_replicas_share_state_hand_over_alerts_and_fail_over() {
    let objects = Arc::new(Mutex::new(Objects::default()));
    let addr = fake_api_server(objects.clone());
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    write_kubeconfig(&p("kubeconfig"), addr, NS);
    std::fs::write(p("api-token"), format!("{API_TOKEN}\n")).unwrap();
    std::fs::write(p("webhook-token"), format!("{WEBHOOK_TOKEN}\n")).unwrap();
    std::fs::create_dir_all(p("slos")).unwrap();
    // The SLO the alert fixture names (`sloth_id: checkout-availability`).
    std::fs::write(
        p("slos/checkout.yml"),
        "version: prometheus/v1\nservice: checkout\nslos:\n- name: availability\n  objective: 99.9\n  sli:\n    events:\n      error_query: sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))\n      total_query: sum(rate(http_requests_total[{{.window}}]))\n  alerting:\n    name: CheckoutAvailability\n    page_alert: {disable: true}\n    ticket_alert: {disable: true}\n",
    )
    .unwrap();

    // A starts alone and takes the Lease.
    let mut a = Replica::start("a", dir.path(), &p("kubeconfig"));
    a.wait("leadership", |r| r.leader() == Some(1.0));
    assert_eq!(holder(&objects).as_deref(), Some("slogate-a"));
    // B follows.
    let mut b = Replica::start("b", dir.path(), &p("kubeconfig"));
    b.wait("its metrics", |r| r.leader() == Some(0.0));
    assert_eq!(a.leader(), Some(1.0), "one leader");
    assert_eq!(holder(&objects).as_deref(), Some("slogate-a"));

    // An approval given through the follower is the leader's too, with its decision record.
    let approval = json!({"repo": "https://git.example/shop/deploy.git",
        "target": "overlays/prod", "image": "shop/checkout=v2", "actor": "alice"});
    let (code, body) = b.post("/api/v1/approvals", API_TOKEN, &approval.to_string());
    assert_eq!(code, 201, "{body}");
    let key = serde_json::from_str::<Value>(&body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = a.get(&format!("/api/v1/approvals/{key}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["actor"],
        "alice"
    );
    let (code, body) = a.get("/api/v1/decisions");
    assert_eq!(code, 200, "{body}");
    let decisions: Value = serde_json::from_str(&body).unwrap();
    let records = decisions
        .as_array()
        .or_else(|| decisions["decisions"].as_array())
        .unwrap_or_else(|| panic!("a list of decisions: {body}"));
    assert!(
        records.iter().any(|r| r["action"] == "approve"
            && r["reason"]
                .as_str()
                .is_some_and(|m| m.starts_with("alice approved promoting shop/checkout"))),
        "the leader lists the approval the follower recorded: {body}"
    );

    // An alert delivered to the follower is handed to the leader, which takes it.
    let (code, body) = b.post(
        "/webhook/alertmanager",
        WEBHOOK_TOKEN,
        &alert("2026-11-23T08:37:55Z"),
    );
    assert_eq!(code, 200, "{body}");
    b.wait("the alert to be handed over", |r| {
        r.log().contains("alert handed to the leader")
    });
    a.wait(
        "the leader to take the alert and run the guard for it",
        |r| r.log().contains("alert handed over by a follower") && r.log().contains(GUARD_RAN),
    );
    assert!(
        !a.log().contains("alert handed to the leader"),
        "the leader hands nothing over"
    );
    assert!(
        !b.log().contains(GUARD_RAN),
        "the follower does not run the guard itself"
    );

    // SIGTERM on the leader: a clean exit, the Lease released, and B takes over.
    let status = a.terminate();
    assert!(status.success(), "exit {status}\n{}", a.log());
    b.wait("leadership after the failover", |r| r.leader() == Some(1.0));
    assert_eq!(holder(&objects).as_deref(), Some("slogate-b"));

    // The new leader acts on an alert itself.
    let (code, body) = b.post(
        "/webhook/alertmanager",
        WEBHOOK_TOKEN,
        &alert("2026-11-23T09:12:03Z"),
    );
    assert_eq!(code, 200, "{body}");
    b.wait("the new leader to run the guard for the alert", |r| {
        r.log().contains(GUARD_RAN)
    });
    assert_eq!(
        b.log().matches("alert handed to the leader").count(),
        1,
        "only the alert received as a follower was handed over\n{}",
        b.log()
    );
    let status = b.terminate();
    assert!(status.success(), "exit {status}\n{}", b.log());

    // Every request was one the shipped RBAC grants.
    let requests = objects.lock().unwrap().requests.clone();
    assert!(requests.iter().any(|(m, _)| m == "PUT"), "{requests:?}");
    for (method, uri) in &requests {
        assert!(
            slogate::adapters::kube::covers(method, uri),
            "{method} {uri} is not in API_CALLS"
        );
    }
}
