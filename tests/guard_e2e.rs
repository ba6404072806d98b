//! End to end with real components: a tiny HTTP app with a high error ratio, a real
//! Prometheus scraping it and evaluating slogate-generated burn-rate alert rules for a
//! 30-day SLO (the default catalog: page at 14.4x over 1h and 5m), a real Alertmanager
//! routing the page to slogate's webhook, and slogate reverting the deploy inside the page's
//! window in a bare git remote, exactly once, while the 30-day budget is far from 80%.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::git::{kustomization, GitRemote};
use common::{free_port, http, require_bin, slogate, Prometheus};
use slogate::model::trailers::{parse_trailers, trailer_values};

const PROD: &str = "apps/checkout/overlays/prod/kustomization.yaml";
const TOKEN: &str = "e2e-webhook-token-0123456789";
const API_TOKEN: &str = "e2e-api-token-9876543210";

/// The app under test: 200 requests per second, `error_permille` of them failing.
struct App {
    ok: Arc<AtomicU64>,
    err: Arc<AtomicU64>,
    error_permille: Arc<AtomicU64>,
    addr: SocketAddr,
}

fn start_app(rt: &tokio::runtime::Runtime) -> App {
    let ok = Arc::new(AtomicU64::new(0));
    let err = Arc::new(AtomicU64::new(0));
    let error_permille = Arc::new(AtomicU64::new(0));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    {
        let (ok, err, pm) = (ok.clone(), err.clone(), error_permille.clone());
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                // 20 requests per tick.
                let e = pm.load(Ordering::Relaxed) * 20 / 1000;
                err.fetch_add(e, Ordering::Relaxed);
                ok.fetch_add(20 - e, Ordering::Relaxed);
            }
        });
    }
    let (o, e) = (ok.clone(), err.clone());
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (o, e) = (o.clone(), e.clone());
            async move {
                format!(
                    "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {}\nhttp_requests_total{{code=\"500\"}} {}\n",
                    o.load(Ordering::Relaxed),
                    e.load(Ordering::Relaxed)
                )
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, router).await });
    App {
        ok,
        err,
        error_permille,
        addr,
    }
}

const SLO: &str = r#"version: prometheus/v1
service: checkout
slos:
  - name: availability
    objective: 99
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: CheckoutAvailability
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
"#;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn reverts(remote: &GitRemote) -> Vec<(String, Vec<slogate::model::trailers::Trailer>)> {
    remote
        .log()
        .into_iter()
        .map(|(sha, msg)| (sha, parse_trailers(&msg)))
        .filter(|(_, t)| !trailer_values(t, "Slogate-Breach").is_empty())
        .collect()
}

#[test]
fn a_page_from_a_real_alertmanager_reverts_the_deploy_in_its_window_once() {
    let (Some(prometheus), Some(promtool), Some(alertmanager)) = (
        require_bin("prometheus"),
        require_bin("promtool"),
        require_bin("prometheus-alertmanager"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = start_app(&rt);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();

    // Specs and slogate's own rules for them (30d period, default windows).
    let slos = work.join("slos");
    std::fs::create_dir_all(&slos).unwrap();
    std::fs::write(slos.join("checkout.yml"), SLO).unwrap();
    let rules = work.join("rules");
    common::run_ok(slogate().args(["rules"]).arg(&slos).arg("-o").arg(&rules));
    let generated = rules.join("checkout.yml");
    assert!(
        generated.exists(),
        "slogate rules wrote {:?}",
        std::fs::read_dir(&rules).unwrap().collect::<Vec<_>>()
    );
    // Prometheus gets the SLI recordings and the alerts, not the meta recordings: the
    // period ratio of those averages the 5m ratio over the data Prometheus has, which here
    // is minutes. Without `sloth_slo_info` slogate evaluates the SLI queries itself, over
    // the 30 days of backfilled history below.
    let mut doc: slogate::model::yaml::Value =
        slogate::model::yaml::from_str(&std::fs::read_to_string(&generated).unwrap()).unwrap();
    doc["groups"]
        .as_sequence_mut()
        .unwrap()
        .retain(|g| !g["name"].as_str().unwrap_or("").contains("-meta-"));
    let rule_file = work.join("prometheus-rules.yml");
    std::fs::write(&rule_file, slogate::model::yaml::to_string(&doc).unwrap()).unwrap();

    // 30 days of history at 200 req/s and 0.05% errors, ending 65 minutes ago (so the page's
    // 1h window sees only the live app): 5% of the 30-day budget of a 99% SLO.
    let now = chrono::Utc::now().timestamp();
    let data = work.join("prom-data");
    let history =
        common::request_history_at(now - 30 * 86_400, now - 65 * 60, 300, 200.0, |_| 0.0005);
    common::backfill_openmetrics(&promtool, work, &data, &history);

    // The GitOps repo: a good deploy two hours ago, then (later) the bad one.
    let remote = GitRemote::new();
    remote.commit_at(
        &[(PROD, &kustomization("checkout", "v1"))],
        "checkout v1",
        now - 2 * 3600,
    );

    // slogate, with the webhook on and a long schedule, so only the alert can act after start.
    let slogate_port = free_port();
    let token_file = work.join("webhook-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let api_token_file = work.join("api-token");
    std::fs::write(&api_token_file, API_TOKEN).unwrap();
    let am_port = free_port();
    let prom_port_placeholder = "PROM";
    let config = format!(
        r#"prometheus:
  url: http://127.0.0.1:{prom_port_placeholder}
  timeout: 10s
slos:
  paths: [{slos}]
evaluation:
  interval: 1h
  jitter: 0
server:
  listen: 127.0.0.1:{slogate_port}
state:
  dir: {state}
gitops:
  url: {remote}
  workdir: {workdir}
guard:
  apps:
    - name: checkout
      path: apps/checkout/overlays/prod
      slos: [checkout-availability]
webhook:
  enabled: true
  auth:
    bearer:
      token_file: {token}
api:
  token: {{file: {api_token}}}
"#,
        slos = slos.display(),
        state = work.join("state").display(),
        remote = remote.url(),
        workdir = work.join("slogate-repo").display(),
        token = token_file.display(),
        api_token = api_token_file.display(),
    );

    // Prometheus: scrape the app every second, evaluate the rules every second, alert.
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: checkout\n    static_configs:\n      - targets: ['{}']\n",
        rule_file.display(),
        app.addr
    );
    let prom = Prometheus::start(&prometheus, work, &data, &prom_cfg);

    // Alertmanager: the page and ticket go to slogate with the bearer token.
    let am_cfg = work.join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: slogate\n  group_by: [sloth_id, sloth_severity]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 3s\nreceivers:\n  - name: slogate\n    webhook_configs:\n      - url: http://127.0.0.1:{slogate_port}/webhook/alertmanager\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials_file: {}\n",
            token_file.display()
        ),
    )
    .unwrap();
    let am_log = std::fs::File::create(work.join("alertmanager.log")).unwrap();
    let _am = Proc(
        Command::new(&alertmanager)
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!("--storage.path={}", work.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(am_log)
            .spawn()
            .expect("spawn alertmanager"),
    );
    wait_for("alertmanager ready", Duration::from_secs(30), || {
        http()
            .get(format!("http://127.0.0.1:{am_port}/-/ready"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });

    let config_path = work.join("slogate.yaml");
    std::fs::write(
        &config_path,
        config.replace(prom_port_placeholder, &prom.port.to_string()),
    )
    .unwrap();
    let slogate_log = std::fs::File::create(work.join("slogate.log")).unwrap();
    let _daemon = Proc(
        slogate()
            .args(["run", "--config"])
            .arg(&config_path)
            .env("SLOGATE_LOG", "info,slogate=debug")
            .stdout(Stdio::null())
            .stderr(slogate_log)
            .spawn()
            .expect("spawn slogate"),
    );
    let base = format!("http://127.0.0.1:{slogate_port}");
    let log = || std::fs::read_to_string(work.join("slogate.log")).unwrap_or_default();
    wait_for("slogate ready", Duration::from_secs(60), || {
        http()
            .get(format!("{base}/readyz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    assert!(
        reverts(&remote).is_empty(),
        "a healthy app must not be reverted"
    );

    // The bad deploy, and the app starts failing half its requests.
    let bad = remote.commit(
        &[(PROD, &kustomization("checkout", "v2"))],
        "checkout v2: new payment client",
    );
    app.error_permille.store(500, Ordering::Relaxed);

    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the revert commit", Duration::from_secs(90), || {
            let r = reverts(&remote);
            (!r.is_empty()).then_some(r)
        })
    }));
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            eprintln!("slogate log:\n{}", log());
            eprintln!(
                "alertmanager log:\n{}",
                std::fs::read_to_string(work.join("alertmanager.log")).unwrap_or_default()
            );
            std::panic::resume_unwind(e);
        }
    };
    let (revert_sha, trailers) = &found[0];
    assert_eq!(
        trailer_values(trailers, "Slogate-Reverts"),
        vec![bad.as_str()]
    );
    assert_eq!(
        trailer_values(trailers, "Slogate-SLO"),
        vec!["checkout-availability"]
    );
    // The page, not the budget: a 30-day budget is nowhere near 80% after a minute.
    assert_eq!(
        trailer_values(trailers, "Slogate-Reason"),
        vec!["burn-rate-page"]
    );
    assert_eq!(
        trailer_values(trailers, "Slogate-Deploy"),
        vec![bad.as_str()]
    );
    let page_burn: f64 = trailer_values(trailers, "Slogate-Page-Burn")[0]
        .parse()
        .unwrap();
    assert!(page_burn >= 14.4, "{page_burn}");
    assert!(trailer_values(trailers, "Slogate-Budget-Consumed").is_empty());
    assert_eq!(remote.show(PROD), kustomization("checkout", "v1"));

    // The 30-day budget is far below the 80% and 95% thresholds: the page acted, not them.
    let slos: serde_json::Value = http()
        .get(format!("{base}/api/v1/slos"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let consumed = slos
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == "checkout-availability"))
        .and_then(|r| r["budget_consumed"].as_f64())
        .unwrap_or_else(|| panic!("{slos}"));
    assert!(consumed < 0.2, "budget consumed {consumed}: {slos}");

    // The decision came from the alert, not the (hourly) schedule.
    let decisions: serde_json::Value = http()
        .get(format!("{base}/api/v1/decisions?kind=guard"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rollback = decisions
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "deploy-revert")
        .unwrap_or_else(|| panic!("{decisions}"));
    assert_eq!(rollback["trigger"], "alert", "{rollback}");
    assert_eq!(
        rollback["observed"]["reason"], "burn-rate-page",
        "{rollback}"
    );
    assert!(
        rollback["observed"]["alert"]["fingerprint"].is_string(),
        "{rollback}"
    );
    assert_eq!(rollback["observed"]["deploy"], bad.as_str(), "{rollback}");
    assert!(
        rollback["observed"]["page"]["burn_long"].as_f64().unwrap() >= 14.4,
        "{rollback}"
    );

    // Further alerts: Alertmanager repeats every 3 s and the ticket fires later; a replayed
    // payload is a duplicate. Still exactly one revert.
    std::thread::sleep(Duration::from_secs(12));
    let payload = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/alertmanager/firing-sloth-id.json"),
    )
    .expect("captured Alertmanager payload");
    for p in [payload.clone(), payload] {
        let r = http()
            .post(format!("{base}/webhook/alertmanager"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(p)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
    let all = reverts(&remote);
    assert_eq!(all.len(), 1, "exactly one revert: {all:?}\n{}", log());
    assert_eq!(&all[0].0, revert_sha);

    // The receiver counted what it got.
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let recorded = metrics
        .lines()
        .find(|l| l.starts_with("slogate_webhook_alerts_total{result=\"recorded\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(recorded >= 1.0, "{metrics}");
    let _ = (
        app.ok.load(Ordering::Relaxed),
        app.err.load(Ordering::Relaxed),
    );
    drop(prom);
}
