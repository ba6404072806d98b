//! Two `slogate run` processes as the two replicas of `deploy/`: leader election on a Lease
//! and every state document in ConfigMaps (`state.backend: kube`), against a REAL Kubernetes
//! API server (etcd + kube-apiserver from `./scripts/install-tools`, tests/common/apiserver.rs)
//! with `deploy/` applied. Each replica authenticates as the `slogate` ServiceAccount with a
//! token of its own from the TokenRequest API, so `deploy/rbac.yaml` alone authorises it, and
//! the API server's own 409s arbitrate the Lease and the ConfigMaps.
//!
//! - exactly one replica leads (`slogate_leader`, and the Lease's holder read back from the
//!   API server);
//! - an approval POSTed to the follower is read from the leader, with its decision record
//!   (the shared ConfigMap document and the shared decision log);
//! - an Alertmanager alert delivered to the follower is handed over: the follower logs that
//!   it handed it over, the leader that it took it;
//! - SIGTERM on the leader: it exits 0 and releases the Lease, and the follower takes over;
//!   the new leader then acts on alerts itself instead of handing them over;
//! - every request either replica made (the audit log records all of the ServiceAccount's
//!   requests in `slogate`, reads too) is one `API_CALLS` grants, and the real RBAC refused
//!   none: no 403 in the audit log, no "forbidden" in either replica's log.
//!
//! A test binary of its own so that it gets its own API server. It FAILS when the tools are
//! missing, unless `SLOGATE_E2E=0`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use common::apiserver::{self, ApiServer};
use common::fake_api::slogate_run;
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
// The API server

fn repo_path(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The API server with `deploy/` applied (this binary's only test: no other uses it).
fn cluster() -> Option<&'static ApiServer> {
    let api = apiserver::shared()?;
    api.kubectl_ok(&["apply", "-k", &repo_path("deploy").display().to_string()]);
    Some(api)
}

/// The Lease's holder, if any, read from the API server.
fn holder(api: &ApiServer) -> Option<String> {
    let (code, lease) = api.request(
        reqwest::Method::GET,
        &format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/slogate"),
        "",
        None,
    );
    if code == 404 {
        return None;
    }
    assert_eq!(code, 200, "GET the Lease: {lease}");
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// The HTTP method of an audited Kubernetes verb (what `API_CALLS` is keyed on, with the
/// request URI telling a watch from a list and a get).
fn method_of(verb: &str) -> &'static str {
    match verb {
        "get" | "list" | "watch" => "GET",
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        other => panic!("unexpected audited verb {other}"),
    }
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
    let Some(api) = cluster() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    // One token per replica, as each pod of the Deployment has its own.
    api.service_account_kubeconfig(NS, "slogate", &p("a.kubeconfig"));
    api.service_account_kubeconfig(NS, "slogate", &p("b.kubeconfig"));
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
    let mut a = Replica::start("a", dir.path(), &p("a.kubeconfig"));
    a.wait("leadership", |r| r.leader() == Some(1.0));
    assert_eq!(holder(api).as_deref(), Some("slogate-a"));
    // B follows.
    let mut b = Replica::start("b", dir.path(), &p("b.kubeconfig"));
    b.wait("its metrics", |r| r.leader() == Some(0.0));
    assert_eq!(a.leader(), Some(1.0), "one leader");
    assert_eq!(holder(api).as_deref(), Some("slogate-a"));

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
    assert_eq!(holder(api).as_deref(), Some("slogate-b"));

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

    // Every request was one the shipped RBAC grants, and the real RBAC refused none.
    let requests = api.audit(|e| {
        e["user"]["username"] == "system:serviceaccount:slogate:slogate"
            && e["objectRef"]["namespace"] == NS
    });
    let calls: Vec<(String, String, u64)> = requests
        .iter()
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or("").to_string(),
                e["requestURI"].as_str().unwrap_or("").to_string(),
                e["responseStatus"]["code"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        calls
            .iter()
            .any(|(v, u, _)| v == "update" && u.contains("/leases/")),
        "the Lease was renewed with PUT: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(v, u, _)| v == "get" && u.contains("/configmaps/")),
        "reads are audited too, so the check below covers them: {calls:?}"
    );
    for (verb, uri, code) in &calls {
        assert_ne!(*code, 403, "RBAC refused {verb} {uri}");
        assert!(
            slogate::adapters::kube::covers(method_of(verb), uri),
            "{verb} {uri} is not in API_CALLS"
        );
    }
    for r in [&a, &b] {
        assert!(
            !r.log().to_lowercase().contains("forbidden"),
            "{} was refused something:\n{}",
            r.name,
            r.log()
        );
    }
}
