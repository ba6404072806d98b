//! `slogate run` with `rollouts.source: kube`, as a process, against a fake Kubernetes API
//! server (plain HTTP, reached through a kubeconfig) whose Rollout list the test changes:
//!
//! - the valid Rollout gets a controller (listed by `GET /api/v1/rollouts`), the invalid one
//!   does not, and its problem is logged once with its name, field and what was expected;
//! - a Rollout applied later is picked up at once through the watch (the resync is an hour
//!   here), a deleted one is dropped;
//! - a failing API (here RBAC: a 403) stops nothing, and is counted and logged, and so is the
//!   watch it can no longer open;
//! - every request the daemon made is the paged cluster-wide list or its watch from the
//!   list's version, which `API_CALLS` (and so the shipped RBAC) grants; SIGTERM stops the
//!   daemon with exit 0.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use common::fake_api::{serve_on_thread, slogate_run, write_kubeconfig};
use common::{free_port, http, metric};
use serde_json::{json, Value};

/// What the fake API server answers, and what it was asked.
#[derive(Default)]
struct Api {
    rollouts: Vec<Value>,
    fail: bool,
    /// The list's `resourceVersion`; the test bumps it with every change ([`Api::change`]).
    revision: u64,
    requests: Vec<(String, String)>,
}

impl Api {
    /// Change what the server answers, as a write to the API server does: a new
    /// `resourceVersion`, which ends the open watches with an event.
    fn change(api: &Mutex<Api>, f: impl FnOnce(&mut Api)) {
        let mut a = api.lock().unwrap();
        f(&mut a);
        a.revision += 1;
    }
}

/// The `resourceVersion` a watch request starts from, if it is one.
fn watch_from(uri: &axum::http::Uri) -> Option<u64> {
    let query = uri.query()?;
    if !query.split('&').any(|kv| kv == "watch=true") {
        return None;
    }
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .and_then(|v| v.parse().ok())
}

/// A watch response: headers at once, then one event line when the revision moves past
/// `from`, then the end of the call (as the API server does at `timeoutSeconds`, here
/// sooner). The event names an object the list did not have, which is a change.
fn watch_body(api: Arc<Mutex<Api>>, from: u64) -> axum::body::Body {
    let events = futures::stream::unfold(false, move |sent| {
        let api = api.clone();
        async move {
            if sent {
                return None;
            }
            loop {
                let revision = api.lock().unwrap().revision;
                if revision > from {
                    let event = json!({"type": "ADDED", "object": {
                        "apiVersion": "slogate.dev/v1alpha1", "kind": "Rollout",
                        "metadata": {"name": "changed", "namespace": "test",
                                     "uid": format!("uid-{revision}"),
                                     "resourceVersion": revision.to_string(), "generation": 1}}});
                    let line = format!("{event}\n");
                    return Some((Ok::<_, std::convert::Infallible>(line), true));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    axum::body::Body::from_stream(events)
}

/// Serve the cluster-wide Rollout list, paged once, and its watch from `api` on a loopback
/// port.
fn fake_api_server(api: Arc<Mutex<Api>>) -> SocketAddr {
    serve_on_thread(axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri| {
            let api = api.clone();
            async move {
                let mut a = api.lock().unwrap();
                a.requests.push((method.to_string(), uri.to_string()));
                if a.fail {
                    return (
                        axum::http::StatusCode::FORBIDDEN,
                        axum::Json(json!({"kind": "Status", "apiVersion": "v1",
                            "metadata": {}, "status": "Failure", "code": 403,
                            "reason": "Forbidden",
                            "message": "rollouts.slogate.dev is forbidden: cannot list resource"})),
                    )
                        .into_response();
                }
                if let Some(from) = watch_from(&uri) {
                    drop(a);
                    return watch_body(api.clone(), from).into_response();
                }
                (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({"apiVersion": "slogate.dev/v1alpha1",
                        "kind": "RolloutList",
                        "metadata": {"resourceVersion": a.revision.to_string()},
                        "items": a.rollouts.clone()})),
                )
                    .into_response()
            }
        },
    ))
}

fn rollout(namespace: &str, name: &str, steps: Value) -> Value {
    json!({
        "apiVersion": "slogate.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "5",
                     "uid": format!("uid-{name}")},
        "spec": {
            "traffic": {"httpRoute": {"name": name, "stableBackend": {"name": name},
                                      "canaryBackend": {"name": format!("{name}-canary")}}},
            "workloads": {"stable": {"name": name}, "canary": {"name": format!("{name}-canary")}},
            "steps": steps,
            "analysis": {"metrics": [{"name": "request-success-rate", "min": 0.99}]},
            "gitops": {"app": name, "path": format!("apps/{name}")},
        },
    })
}

struct Daemon {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Daemon {
    fn get(&self, path: &str) -> Option<String> {
        let r = http().get(format!("{}{path}", self.url)).send().ok()?;
        (r.status().as_u16() == 200).then(|| r.text().unwrap_or_default())
    }

    /// The `namespace/name` of every rollout the daemon runs.
    fn rollouts(&self) -> Option<Vec<String>> {
        let body: Value = serde_json::from_str(&self.get("/api/v1/rollouts")?).ok()?;
        Some(
            body.as_array()?
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["namespace"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    )
                })
                .collect(),
        )
    }

    /// Poll until `check` holds (a liveness bound, not a timing assertion).
    fn wait(&mut self, what: &str, check: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("slogate exited early: {status}\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn rollouts_applied_to_the_cluster_start_change_and_stop_their_controllers() {
    let api = Arc::new(Mutex::new(Api {
        rollouts: vec![
            rollout("shop", "checkout", json!([10, 50, 100])),
            rollout("shop", "broken", json!([10, 50])),
        ],
        revision: 100,
        ..Api::default()
    }));
    let addr = fake_api_server(api.clone());
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    write_kubeconfig(&p("kubeconfig"), addr, "slogate");
    write(
        &p("versions.yaml"),
        "shop/checkout: {stable: v1, canary: v1}\nweb/search: {stable: v1, canary: v1}\n",
    );
    std::fs::create_dir_all(p("slos")).unwrap();
    let port = free_port();
    write(
        &p("slogate.yaml"),
        &format!(
            "prometheus: {{url: 'http://127.0.0.1:9'}}\nslos: {{paths: ['{slos}']}}\nserver:\n  listen: 127.0.0.1:{port}\nstate: {{dir: '{state}'}}\nrollouts:\n  source: kube\n  resync_interval: 1h\n  versions_file: '{versions}'\n",
            slos = p("slos").display(),
            state = p("state").display(),
            versions = p("versions.yaml").display(),
        ),
    );
    let log = p("slogate.log");
    let child = slogate_run(&p("slogate.yaml"), &p("kubeconfig"), dir.path(), &log)
        .spawn()
        .expect("spawn slogate run");
    let mut d = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };

    // The valid Rollout runs; the invalid one does not, and says why.
    d.wait("shop/checkout to run", |d| {
        d.rollouts() == Some(vec!["shop/checkout".to_string()])
    });
    d.wait("the rollout gauges", |d| {
        d.get("/metrics").is_some_and(|m| {
            metric(&m, "slogate_rollouts{state=\"running\"}") == Some(1.0)
                && metric(&m, "slogate_rollouts{state=\"rejected\"}") == Some(1.0)
        })
    });

    // Applied later: the watch wakes the daemon, which lists again (the resync, an hour,
    // never comes in this test).
    Api::change(&api, |a| {
        a.rollouts.push(rollout("web", "search", json!([20, 100])))
    });
    d.wait("web/search to run", |d| {
        d.rollouts() == Some(vec!["shop/checkout".to_string(), "web/search".to_string()])
    });

    // Deleted: its controller stops.
    Api::change(&api, |a| {
        a.rollouts.retain(|r| r["metadata"]["name"] != "checkout")
    });
    d.wait("shop/checkout to stop", |d| {
        d.rollouts() == Some(vec!["web/search".to_string()])
    });

    // The API fails (RBAC taken away, then a change): nothing stops, the failure is counted,
    // and the watch it may no longer open is logged.
    Api::change(&api, |a| a.fail = true);
    d.wait("a failed reading to be counted", |d| {
        d.get("/metrics").is_some_and(|m| {
            metric(&m, "slogate_rollout_source_errors_total").is_some_and(|n| n >= 1.0)
        })
    });
    d.wait("the refused watch to be logged", |d| {
        d.log().contains("cannot watch the Rollouts")
    });
    assert_eq!(d.rollouts(), Some(vec!["web/search".to_string()]));
    api.lock().unwrap().fail = false;

    // SIGTERM: a clean exit.
    let _ = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(s)) = d.child.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "slogate did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = d.log();
    assert!(status.success(), "exit {status}\n{log}");

    // The invalid Rollout's problem: named, with its field and what was expected, logged once
    // although every resync saw it.
    let problem = "Rollout shop/broken: spec.steps[1]: error:";
    assert_eq!(log.matches(problem).count(), 1, "{log}");
    assert!(
        log.contains("HTTP 403") && log.contains("cannot list resource"),
        "{log}"
    );

    // Every request: the paged cluster-wide list, or its watch from the version the last
    // list returned; granted by the RBAC registry.
    let requests = api.lock().unwrap().requests.clone();
    let list = "/apis/slogate.dev/v1alpha1/rollouts?&limit=500";
    let watch = "/apis/slogate.dev/v1alpha1/rollouts?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=";
    let lists = requests.iter().filter(|(_, u)| u == list).count();
    let watches: Vec<&str> = requests
        .iter()
        .filter_map(|(_, u)| u.strip_prefix(watch))
        .collect();
    // At start, after the addition, the deletion and the failure; one watch after each
    // successful list, from its version.
    assert_eq!(lists, 4, "{requests:?}");
    assert_eq!(watches, ["100", "101", "102", "102"], "{requests:?}");
    for (method, uri) in &requests {
        assert_eq!(method, "GET", "{requests:?}");
        assert!(
            slogate::adapters::kube::covers(method, uri),
            "{method} {uri}"
        );
    }
}
