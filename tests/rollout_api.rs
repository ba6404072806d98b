//! Operators' controls over real HTTP: `POST /api/v1/rollouts/{ns}/{name}/{action}` and the
//! `GET` endpoints, served by the daemon's own router on a free loopback port, with a
//! controller over a file state store and a file router; and `slogate rollout …` against
//! that server and against a state directory.
//!
//! - no or a wrong bearer token: 401 (403 with no token configured), nothing queued;
//! - a command is applied at once, answered with the status, recorded in the decision log
//!   as an `operator` decision with its actor and reason;
//! - a command the state machine refuses: 409 with the reason as JSON, recorded too;
//! - the CLI exits 0 when applied or queued, 1 when refused, 2 on bad input.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::Healthy;
use serde_json::{json, Value};
use slogate::adapters::git::Secret;
use slogate::adapters::state::FileStore;
use slogate::adapters::traffic_file::FileRouter;
use slogate::ports::state::{DecisionKind, DecisionQuery, StateStore};
use slogate::rollout::load::from_yaml_str;
use slogate::rollout::PhaseName;
use slogate::runtime::rollout::{
    self, RolloutController, RolloutDeps, RolloutRegistry, StaticVersions,
};
use slogate::runtime::server::{self, AppState};

const TOKEN: &str = "op-s3cret";

const ROLLOUT: &str = r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    httpRoute: {name: checkout, stableBackend: {name: checkout}, canaryBackend: {name: checkout-canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [50, 100]
  interval: 1s
  progressDeadline: 1m
  approval: {deadline: 1h}
  analysis:
    metrics:
      - {name: request-success-rate, min: 0.99}
  gitops: {app: checkout, path: apps/checkout}
"#;

struct Server {
    base: String,
    dir: tempfile::TempDir,
    store: Arc<FileStore>,
    controller: Arc<RolloutController>,
    client: reqwest::Client,
}

impl Server {
    async fn start(token: Option<&str>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path().join("state")).unwrap());
        let versions = Arc::new(StaticVersions::new());
        versions.set("shop/checkout", "v1", "v2");
        let deps = RolloutDeps::new(
            Arc::new(Healthy),
            Arc::new(FileRouter::new(dir.path().join("weights.json"))),
            store.clone(),
            versions,
        );
        let controller = Arc::new(RolloutController::new(
            from_yaml_str(ROLLOUT).unwrap(),
            deps,
        ));
        let app = Arc::new(AppState {
            api_token: token.map(Secret::new),
            store: Some(store.clone()),
            ..AppState::default()
        });
        let registry = Arc::new(RolloutRegistry::new([controller.clone()]));
        let router = server::router_with(app.clone(), rollout::api::router(app, registry));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            dir,
            store,
            controller,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    async fn post(&self, action: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!(
                "{}/api/v1/rollouts/shop/checkout/{action}",
                self.base
            ))
            .header("x-slogate-actor", "alice");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn operator_records(&self) -> Vec<slogate::ports::state::DecisionRecord> {
        self.store
            .decisions(&DecisionQuery {
                kind: Some(DecisionKind::Operator),
                ..DecisionQuery::default()
            })
            .await
            .unwrap()
    }

    fn token_file(&self) -> PathBuf {
        let f = self.dir.path().join("token");
        std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
        f
    }
}

/// Run the slogate CLI off the async runtime (the server keeps serving).
async fn cli(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = common::slogate().args(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_need_the_token_and_are_recorded_with_their_actor() {
    let s = Server::start(Some(TOKEN)).await;
    let r = s.controller.reconcile_once(Utc::now()).await.unwrap();
    assert_eq!(r.phase(), PhaseName::Progressing);

    // Authentication first: nothing is queued without it.
    let (code, body) = s.post("pause", None, None).await;
    assert_eq!(code, 401, "{body}");
    let (code, _) = s.post("pause", Some("wrong"), None).await;
    assert_eq!(code, 401);
    assert!(s
        .store
        .get("rollout-commands/shop/checkout")
        .await
        .unwrap()
        .is_none());

    // Applied at once, with the status.
    let (code, body) = s
        .post(
            "pause",
            Some(TOKEN),
            Some(json!({"reason": "looking at a dashboard"})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "applied");
    assert_eq!(body["actor"], "alice");
    assert_eq!(body["phase"], "Paused");
    assert_eq!(body["status"]["phase"], "Paused");
    let recs = s.operator_records().await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].action, "pause");
    assert_eq!(recs[0].actor.as_deref(), Some("alice"));
    assert_eq!(recs[0].subject, "shop/checkout");
    assert!(
        recs[0].reason.contains("looking at a dashboard"),
        "{}",
        recs[0].reason
    );

    // Refused by the state machine: 409 with why, recorded as a refusal.
    let (code, body) = s.post("approve", Some(TOKEN), None).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["outcome"], "rejected");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not waiting for approval"),
        "{body}"
    );
    let recs = s.operator_records().await;
    assert_eq!(recs.last().unwrap().action, "refuse");
    assert_eq!(recs.last().unwrap().actor.as_deref(), Some("alice"));

    // Bad input.
    let (code, _) = s.post("delete", Some(TOKEN), None).await;
    assert_eq!(code, 404);
    let (code, body) = s.post("resume", Some(TOKEN), Some(json!({"why": 1}))).await;
    assert_eq!(code, 400, "{body}");
    let resp = s
        .client
        .post(format!("{}/api/v1/rollouts/shop/nope/resume", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // Resume, then wait one interval: the step passes and the rollout waits for approval.
    let (code, body) = s.post("resume", Some(TOKEN), None).await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s.controller.reconcile_once(Utc::now()).await.unwrap();
    assert_eq!(r.phase(), PhaseName::WaitingForApproval, "{:#?}", r.status);
    let (code, body) = s
        .post("approve", Some(TOKEN), Some(json!({"reason": "LGTM"})))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["phase"], "Progressing");
    assert_eq!(body["status"]["step"], 1);

    // GET endpoints (no token needed to read).
    let (code, list) = s.get("/api/v1/rollouts").await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["namespace"], "shop");
    assert_eq!(list[0]["status"]["phase"], "Progressing");
    let (code, one) = s.get("/api/v1/rollouts/shop/checkout").await;
    assert_eq!(code, 200);
    assert_eq!(one["commandResults"].as_array().unwrap().len(), 4, "{one}");
    let (code, _) = s.get("/api/v1/rollouts/shop/nope").await;
    assert_eq!(code, 404);
    // The decision log API shows the operators' actions.
    let (code, log) = s.get("/api/v1/decisions?kind=operator").await;
    assert_eq!(code, 200);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["pause", "refuse", "resume", "approve"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_controls_are_forbidden() {
    let s = Server::start(None).await;
    let (code, body) = s.post("pause", Some(TOKEN), None).await;
    assert_eq!(code, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_the_api_and_a_state_directory() {
    let s = Server::start(Some(TOKEN)).await;
    s.controller.reconcile_once(Utc::now()).await.unwrap();
    let token = s.token_file().display().to_string();
    let base = s.base.clone();
    let args = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // Refused: exit 1 with the reason.
    let (code, _, err) = cli(args(&[
        "rollout",
        "approve",
        "shop/checkout",
        "--url",
        &base,
        "--token-file",
        &token,
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not waiting for approval"), "{err}");
    // Applied: exit 0; the actor is the one given.
    let (code, out, err) = cli(args(&[
        "rollout",
        "pause",
        "shop/checkout",
        "--url",
        &base,
        "--token-file",
        &token,
        "--reason",
        "maintenance",
        "--actor",
        "carol",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied") && out.contains("Paused"), "{out}");
    let recs = s.operator_records().await;
    let last = recs.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_deref()),
        ("pause", Some("carol"))
    );
    // Status through the API.
    let (code, out, _) = cli(args(&[
        "rollout",
        "status",
        "shop/checkout",
        "--url",
        &base,
    ]))
    .await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Paused") && out.contains("50/50 stable/canary"),
        "{out}"
    );
    // Bad input: exit 2.
    let (code, _, err) = cli(args(&["rollout", "pause", "checkout", "--url", &base])).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(args(&["rollout", "pause", "shop/checkout", "--url", &base])).await;
    assert_eq!(code, 2, "--token-file is required: {err}");
    let (code, _, err) = cli(args(&[
        "rollout",
        "pause",
        "shop/nope",
        "--url",
        &base,
        "--token-file",
        &token,
    ]))
    .await;
    assert_eq!(code, 2, "{err}");

    // A state directory: the command is queued, the next reconcile applies it.
    let state = s.dir.path().join("state").display().to_string();
    let (code, out, err) = cli(args(&[
        "rollout",
        "resume",
        "shop/checkout",
        "--state-dir",
        &state,
        "--actor",
        "dave",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued"), "{out}");
    let r = s.controller.reconcile_once(Utc::now()).await.unwrap();
    assert_eq!(r.phase(), PhaseName::Progressing);
    assert_eq!(r.commands.len(), 1);
    assert_eq!(r.commands[0].actor, "dave");
    let (code, out, _) = cli(args(&[
        "rollout",
        "status",
        "shop/checkout",
        "--state-dir",
        &state,
        "-o",
        "json",
    ]))
    .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["phase"], "Progressing");
    assert_eq!(
        v["commandResults"].as_array().unwrap().last().unwrap()["actor"],
        "dave"
    );
    let actions: Vec<String> = s
        .operator_records()
        .await
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(
        actions.contains(&"resume-requested".to_string()),
        "{actions:?}"
    );
    assert_eq!(actions.last().map(String::as_str), Some("resume"));
    let (code, _, err) = cli(args(&[
        "rollout",
        "status",
        "shop/nope",
        "--state-dir",
        &state,
    ]))
    .await;
    assert_eq!(code, 2, "{err}");
}

/// `slogate run` with a `rollouts` section: the daemon builds a controller per Rollout file
/// (file router, versions file), runs it, serves the rollout API, and exports the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_the_rollouts_of_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir_all(p("slos")).unwrap();
    std::fs::create_dir_all(p("rollouts")).unwrap();
    std::fs::write(
        p("rollouts/checkout.yaml"),
        ROLLOUT.replace("interval: 1s", "interval: 30s"),
    )
    .unwrap();
    std::fs::write(
        p("versions.yaml"),
        "shop/checkout: {stable: v1, canary: v2}\n",
    )
    .unwrap();
    std::fs::write(p("token"), format!("{TOKEN}\n")).unwrap();
    let port = common::free_port();
    let config = format!(
        "prometheus: {{url: 'http://127.0.0.1:9'}}\nslos: {{paths: ['{slos}']}}\nserver: {{listen: '127.0.0.1:{port}'}}\nstate: {{dir: '{state}'}}\napi: {{token: {{file: '{token}'}}}}\nrollouts:\n  paths: ['{rollouts}']\n  router: file\n  weights_dir: '{weights}'\n  versions_file: '{versions}'\n",
        slos = p("slos").display(),
        state = p("state").display(),
        token = p("token").display(),
        rollouts = p("rollouts").display(),
        weights = p("weights").display(),
        versions = p("versions.yaml").display(),
    );
    std::fs::write(p("slogate.yaml"), config).unwrap();
    let cfg = slogate::runtime::config::Config::load_with_env(
        &p("slogate.yaml"),
        Some(Default::default()),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(slogate::daemon::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // The controller starts the rollout on its first reconcile. Its status is stored before
    // its weights are written: wait for both.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let list = loop {
        if let Ok(r) = client.get(format!("{base}/api/v1/rollouts")).send().await {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if v[0]["status"]["phase"] == "Progressing" && p("weights/shop/checkout.json").exists()
            {
                break v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(list[0]["status"]["canaryVersion"], "v2");
    let weights: Value =
        serde_json::from_str(&std::fs::read_to_string(p("weights/shop/checkout.json")).unwrap())
            .unwrap();
    assert_eq!(weights, json!({"stable": 50, "canary": 50}));
    let resp = client
        .post(format!("{base}/api/v1/rollouts/shop/checkout/pause"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"slogate_rollout_phase{namespace="shop",rollout="checkout",phase="Paused"} 1"#,
        r#"slogate_rollout_weight{namespace="shop",rollout="checkout"} 50"#,
        r#"slogate_decisions_total{kind="operator",action="pause"} 1"#,
        "slogate_leader 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), daemon)
        .await
        .expect("the daemon stops")
        .unwrap()
        .unwrap();
}

/// `slogate decisions --url` reads a daemon's `GET /api/v1/decisions` through the shared
/// daemon-API client: filters go in the query string, a bad URL is bad input (exit 2), a
/// daemon that does not answer is a runtime failure (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decisions_command_reads_a_daemon() {
    let s = Server::start(Some(TOKEN)).await;
    s.controller.reconcile_once(Utc::now()).await.unwrap();
    let (code, body) = s
        .post("pause", Some(TOKEN), Some(json!({"reason": "audit"})))
        .await;
    assert_eq!(code, 200, "{body}");
    let args = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let (code, out, err) = cli(args(&[
        "decisions",
        "--url",
        &s.base,
        "--kind",
        "operator",
        "--subject",
        "shop/checkout",
        "-o",
        "json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let recs = v.as_array().unwrap();
    assert_eq!(recs.len(), 1, "{out}");
    assert_eq!(recs[0]["action"], "pause");
    assert_eq!(recs[0]["actor"], "alice");

    // The filters reach the daemon: another subject has no decisions.
    let (code, out, err) = cli(args(&[
        "decisions",
        "--url",
        &format!("{}/", s.base),
        "--subject",
        "shop/other",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "no decisions");

    let (code, _, err) = cli(args(&["decisions", "--url", "ftp://x"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--url") && err.contains("http(s)"), "{err}");
    let (code, _, err) = cli(args(&["decisions", "--url", "http://u:pw@127.0.0.1:1"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("pw"), "{err}");

    // Nobody listening: exit 1, naming the URL.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = format!("http://127.0.0.1:{port}");
    let (code, _, err) = cli(args(&["decisions", "--url", &gone])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("GET {gone}/api/v1/decisions")),
        "{err}"
    );
}

/// `slogate rollout status` shows the header route of a header step, then the time left at a
/// step that holds (from `holdUntil` in the stored status), in the table and in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_shows_the_header_route_and_the_time_left_at_a_holding_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path().join("state")).unwrap());
    let versions = Arc::new(StaticVersions::new());
    versions.set("shop/checkout", "v1", "v2");
    let weights = dir.path().join("weights.json");
    std::fs::write(&weights, r#"{"stable": 100, "canary": 0}"#).unwrap();
    let deps = RolloutDeps::new(
        Arc::new(Healthy),
        Arc::new(FileRouter::new(&weights)),
        store.clone(),
        versions,
    );
    let text = ROLLOUT
        .replace(
            "  steps: [50, 100]",
            "  steps: [{match: {headers: {x-canary: \"true\"}}}, {weight: 50, hold: 24h}, 100]",
        )
        .replace("  progressDeadline: 1m", "  progressDeadline: 25h");
    let controller = RolloutController::new(from_yaml_str(&text).unwrap(), deps);
    let state = dir.path().join("state").display().to_string();
    let status = |json: bool| {
        let mut a = vec!["rollout", "status", "shop/checkout", "--state-dir", &state];
        if json {
            a.extend(["-o", "json"]);
        }
        a.iter().map(|x| x.to_string()).collect::<Vec<_>>()
    };

    // The header step (one interval, no hold): the header route, no hold.
    // A minute ago, so that the hold's end is less than 24h from the CLI's clock.
    let start = Utc::now() - chrono::Duration::seconds(60);
    controller.reconcile_once(start).await.unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&weights).unwrap()).unwrap();
    assert_eq!(
        file,
        json!({"stable": 100, "canary": 0, "headerMatch": {"headers": {"x-canary": "true"}}})
    );
    let (code, out, err) = cli(status(false)).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("requests with x-canary: \"true\" go to the canary"),
        "{out}"
    );
    assert!(out.contains("100/0 stable/canary"), "{out}");

    // One interval (1s) later the header step passes: 50% holding 24h, header route gone.
    let at = start + chrono::Duration::seconds(2);
    controller.reconcile_once(at).await.unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&weights).unwrap()).unwrap();
    assert_eq!(file, json!({"stable": 50, "canary": 50}));
    let (code, out, _) = cli(status(true)).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["step"], 1, "{v}");
    let until: chrono::DateTime<Utc> =
        serde_json::from_value(v["status"]["holdUntil"].clone()).expect("holdUntil");
    assert_eq!(until, at + chrono::Duration::hours(24));
    let (code, out, _) = cli(status(false)).await;
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("time left"))
        .unwrap_or_else(|| panic!("no time left in\n{out}"));
    assert!(
        line.contains(&format!(
            "at this step (hold until {})",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{line}"
    );
    // The time left is a duration within the 24h hold (how much of it passed depends on how
    // fast this test runs, so only its range is checked).
    let left: slogate::slo::PromDuration = line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(
        left <= slogate::slo::PromDuration::from_hours(24)
            && left > slogate::slo::PromDuration::from_hours(23),
        "{line}"
    );
    let header_row = out.lines().find(|l| l.starts_with("header route")).unwrap();
    assert_eq!(header_row.split_whitespace().last(), Some("-"), "{out}");
}
