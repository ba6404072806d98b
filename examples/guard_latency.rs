//! Benchmark: decision latency of the error-budget guard, from the Alertmanager webhook
//! request to the revert commit on a local bare git remote, over 100 breaches.
//!
//! `cargo run --release --example guard_latency`
//!
//! The daemon runs in-process with its real webhook, evaluator, guard, file state store
//! and git adapter. Prometheus is replaced by a stub HTTP server answering every SLI query
//! with a fixed error ratio (0 until the breaches start, then 0.5), because the figure of
//! interest is slogate's own path: receive, record, evaluate, decide, revert, push.
//! Each breach is a different app (its own path and SLO), one after the other.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;

/// The `slogate` binary's allocator, so that the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: slogate::Allocator = slogate::Allocator;

const APPS: usize = 100;
const TOKEN: &str = "bench-webhook-token";

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kustomization(tag: &str) -> String {
    format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: example/app\n    newTag: {tag}\n")
}

fn main() {
    // Before the runtime's threads start, as the binary's main does.
    slogate::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // The GitOps repo: every app at v1, then one bad commit touching all of them.
    let remote = root.join("remote.git");
    let dev = root.join("dev");
    git(
        root,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    git(
        root,
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            dev.to_str().unwrap(),
        ],
    );
    git(&dev, &["checkout", "-q", "-b", "main"]);
    for (tag, msg) in [("v1", "all apps v1"), ("v2", "all apps v2")] {
        for i in 0..APPS {
            let p = dev.join(format!("apps/a{i}/overlays/prod"));
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("kustomization.yaml"), kustomization(tag)).unwrap();
        }
        git(&dev, &["add", "-A"]);
        git(&dev, &["commit", "-q", "-m", msg]);
        git(&dev, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    }

    // SLOs, one per app.
    let mut slos = String::new();
    for i in 0..APPS {
        slos.push_str(&format!(
            "version: prometheus/v1\nservice: a{i}\nslos:\n  - name: availability\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(http_requests_total{{app=\"a{i}\",code=~\"5..\"}}[{{{{.window}}}}]))\n        total_query: sum(rate(http_requests_total{{app=\"a{i}\"}}[{{{{.window}}}}]))\n    alerting:\n      page_alert: {{disable: true}}\n      ticket_alert: {{disable: true}}\n---\n"
        ));
    }
    std::fs::write(root.join("slos.yml"), slos).unwrap();

    // The Prometheus stub.
    let burning = Arc::new(AtomicBool::new(false));
    let prom = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prom_addr = prom.local_addr().unwrap();
    {
        let burning = burning.clone();
        let handler = move |body: String| {
            let burning = burning.clone();
            async move {
                let info = body.contains("query=sloth_slo_info");
                let ratio = if burning.load(Ordering::Relaxed) {
                    "0.5"
                } else {
                    "0"
                };
                let now = chrono::Utc::now().timestamp();
                let result = if info {
                    "[]".to_string()
                } else {
                    format!("[{{\"metric\":{{}},\"value\":[{now},\"{ratio}\"]}}]")
                };
                (
                    [("content-type", "application/json")],
                    format!("{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":{result}}}}}"),
                )
            }
        };
        let app = axum::Router::new().route("/api/v1/query", post(handler));
        tokio::spawn(async move { axum::serve(prom, app).await });
    }

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(root.join("token"), TOKEN).unwrap();
    let mut apps = String::new();
    for i in 0..APPS {
        apps.push_str(&format!(
            "    - {{name: a{i}, path: apps/a{i}/overlays/prod, slos: [a{i}-availability]}}\n"
        ));
    }
    let cfg = format!(
        "prometheus:\n  url: http://{prom_addr}\nslos:\n  paths: [{slos}]\nevaluation:\n  interval: 1h\n  jitter: 0\nserver:\n  listen: {listen}\nstate:\n  dir: {state}\ngitops:\n  url: {remote}\n  workdir: {work}\nguard:\n  apps:\n{apps}webhook:\n  enabled: true\n  auth:\n    bearer:\n      token_file: {token}\n",
        slos = root.join("slos.yml").display(),
        state = root.join("state").display(),
        remote = remote.display(),
        work = root.join("work").display(),
        token = root.join("token").display(),
    );
    std::fs::write(root.join("slogate.yaml"), cfg).unwrap();
    let cfg = slogate::runtime::config::Config::load(&root.join("slogate.yaml")).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(slogate::daemon::run(cfg, async move {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::new();
    let base = format!("http://{listen}");
    // Ready after the first (healthy) cycle.
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first cycle also runs the guard for every app (git fetches); let it finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    burning.store(true, Ordering::Relaxed);

    let mut latencies = Vec::with_capacity(APPS);
    for i in 0..APPS {
        let payload = serde_json::json!({
            "version": "4",
            "groupKey": format!("{{}}:{{sloth_id=\"a{i}-availability\"}}"),
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "slogate",
            "groupLabels": {"sloth_id": format!("a{i}-availability")},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "SLOBurn", "sloth_id": format!("a{i}-availability"), "sloth_severity": "page"},
                "annotations": {},
                "startsAt": "2026-11-23T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": format!("{:016x}", i + 1),
            }]
        });
        let want = format!("Slogate-SLO: a{i}-availability");
        let t0 = Instant::now();
        let r = client
            .post(format!("{base}/webhook/alertmanager"))
            .bearer_auth(TOKEN)
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
        loop {
            let msg = git(
                root,
                &[
                    "--git-dir",
                    remote.to_str().unwrap(),
                    "log",
                    "-1",
                    "--format=%B",
                    "main",
                ],
            );
            if msg.contains(&want) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no revert for a{i}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(t0.elapsed());
    }
    let _ = stop_tx.send(());
    let _ = daemon.await;

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    let reverts = git(
        root,
        &[
            "--git-dir",
            remote.to_str().unwrap(),
            "log",
            "--format=%s",
            "main",
        ],
    )
    .lines()
    .filter(|l| l.to_lowercase().contains("revert"))
    .count();
    println!("guard decision latency, webhook request -> revert commit on the bare remote ({APPS} breaches, one app each):");
    println!("  p50 {:>8.1} ms", pct(0.50).as_secs_f64() * 1000.0);
    println!("  p99 {:>8.1} ms", pct(0.99).as_secs_f64() * 1000.0);
    println!(
        "  max {:>8.1} ms",
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0
    );
    println!("  revert commits on the remote: {reverts}");
}
