//! Post-deploy verification through `slogate run --once`, against a real Prometheus with 30
//! days of backfilled history (a 30-day 99.9% SLO at 50 req/s and 0.05% errors) and a real
//! git remote:
//! - a deploy 20 minutes ago (committed then) after which 2% of requests fail is reverted,
//!   exactly that commit, with the numbers in the trailers and the decision log;
//! - a deploy that changes nothing is not reverted;
//! - a page-level burn without a deploy in its window only notifies.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::git::{kustomization, GitRemote};
use common::*;
use slogate::model::trailers::{parse_trailers, trailer_values};

const PROD: &str = "apps/checkout/overlays/prod/kustomization.yaml";
const RPS: f64 = 50.0;
const BASE: f64 = 0.0005;

const SLO: &str = r#"version: prometheus/v1
service: checkout
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
    alerting:
      name: CheckoutAvailability
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
"#;

/// Counters of `http_requests_total{job="checkout",code}` from `end − 30d` to `end`: every
/// 5 minutes up to three hours before `end`, every 15 seconds after, with `ratio(t)` of the
/// requests up to `t` failing.
fn history(end: i64, ratio: impl Fn(i64) -> f64) -> String {
    let start = end - 30 * 86_400;
    let fine_from = end - 3 * 3600;
    let (mut ok, mut err) = (String::new(), String::new());
    let (mut total_ok, mut total_err) = (0.0f64, 0.0f64);
    let mut t = start;
    let mut prev = start;
    while t <= end {
        // Exact per-second accumulation at the ratio of each second in (prev, t].
        let mut s = prev + 1;
        while s <= t {
            let r = ratio(s);
            total_ok += RPS * (1.0 - r);
            total_err += RPS * r;
            s += 1;
        }
        ok.push_str(&format!(
            "http_requests_total{{job=\"checkout\",code=\"200\"}} {total_ok} {t}\n"
        ));
        err.push_str(&format!(
            "http_requests_total{{job=\"checkout\",code=\"500\"}} {total_err} {t}\n"
        ));
        prev = t;
        t += if t < fine_from { 300 } else { 15 };
    }
    format!("# HELP http_requests Requests.\n# TYPE http_requests counter\n{ok}{err}# EOF\n")
}

/// A local receiver of slogate's generic webhook notifications.
fn notification_sink() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let addr = fake_api::serve_on_thread(app);
    (format!("http://{addr}/hook"), got)
}

struct Setup {
    _dir: tempfile::TempDir,
    work: std::path::PathBuf,
    remote: GitRemote,
    prom: Prometheus,
    notified: Arc<Mutex<Vec<serde_json::Value>>>,
    hook: String,
}

/// Prometheus with the history, a remote whose app path got `v1` a day ago.
fn setup(end: i64, ratio: impl Fn(i64) -> f64) -> Option<Setup> {
    let prometheus = require_bin("prometheus")?;
    let promtool = require_bin("promtool")?;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_path_buf();
    let data = work.join("prom-data");
    backfill_openmetrics(&promtool, &work, &data, &history(end, ratio));
    let prom = Prometheus::start(&prometheus, &work, &data, &prom_config(&[]));
    let remote = GitRemote::new();
    commit_at(
        &remote,
        &kustomization("checkout", "v1"),
        "checkout v1",
        end - 86_400,
    );
    let (hook, notified) = notification_sink();
    Some(Setup {
        _dir: dir,
        work,
        remote,
        prom,
        notified,
        hook,
    })
}

/// Commit the prod overlay with author and committer dates at `when` (unix seconds).
fn commit_at(remote: &GitRemote, content: &str, msg: &str, when: i64) -> String {
    remote.commit_at(&[(PROD, content)], msg, when)
}

fn config(s: &Setup) -> std::path::PathBuf {
    config_with(s, "")
}

/// The configuration, with `extra_gitops` appended to the `gitops` section.
fn config_with(s: &Setup, extra_gitops: &str) -> std::path::PathBuf {
    let slos = s.work.join("slos");
    std::fs::create_dir_all(&slos).unwrap();
    std::fs::write(slos.join("checkout.yml"), SLO).unwrap();
    let text = format!(
        r#"prometheus:
  url: {prom}
  timeout: 30s
slos:
  paths: [{slos}]
state:
  dir: {state}
gitops:
  url: {remote}
  workdir: {workdir}
{extra_gitops}guard:
  apps:
    - name: checkout
      path: apps/checkout/overlays/prod
      slos: [checkout-availability]
      on_deploy_regression: revert
notifications:
  - type: webhook
    name: sink
    url: {hook}
"#,
        prom = s.prom.url,
        slos = slos.display(),
        state = s.work.join("state").display(),
        remote = s.remote.url(),
        workdir = s.work.join("slogate-repo").display(),
        hook = s.hook,
    );
    let path = s.work.join("slogate.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_once(cfg: &Path) -> serde_json::Value {
    let out = slogate()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .env("SLOGATE_LOG", "info,slogate=debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run --once failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn decisions(state_dir: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(
        slogate()
            .args(["decisions", "-o", "json", "--state-dir"])
            .arg(state_dir),
    );
    let json = out.trim_start();
    let end = json.rfind(']').map(|i| i + 1).unwrap_or(json.len());
    serde_json::from_str::<Vec<serde_json::Value>>(&json[..end])
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn reverts(remote: &GitRemote) -> Vec<(String, Vec<slogate::model::trailers::Trailer>)> {
    remote
        .log()
        .into_iter()
        .map(|(sha, msg)| (sha, parse_trailers(&msg)))
        .filter(|(_, t)| !trailer_values(t, "Slogate-Breach").is_empty())
        .collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn num(trailers: &[slogate::model::trailers::Trailer], key: &str) -> f64 {
    trailer_values(trailers, key)
        .first()
        .unwrap_or_else(|| panic!("no {key} in {trailers:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// 30 days at 0.05% errors, then a deploy 20 minutes ago (committed then) after which 2% of
/// requests fail; the deploy's sha.
fn bad_deploy_twenty_minutes_ago() -> Option<(Setup, String)> {
    let end = now();
    let deploy = end - 20 * 60;
    let s = setup(end, |t| if t > deploy { 0.02 } else { BASE })?;
    let bad = commit_at(
        &s.remote,
        &kustomization("checkout", "v2"),
        "checkout v2: smaller DB pool",
        deploy,
    );
    Some((s, bad))
}

#[test]
fn a_bad_deploy_twenty_minutes_ago_is_reverted_by_one_run_once() {
    let Some((s, bad)) = bad_deploy_twenty_minutes_ago() else {
        return;
    };
    let cfg = config(&s);
    let summary = run_once(&cfg);
    assert!(summary["guard_errors"].is_null(), "{summary}");

    let all = reverts(&s.remote);
    assert_eq!(all.len(), 1, "exactly one revert: {all:?}");
    let (_, t) = &all[0];
    assert_eq!(trailer_values(t, "Slogate-Reverts"), vec![bad.as_str()]);
    assert_eq!(
        trailer_values(t, "Slogate-Reason"),
        vec!["post-deploy-verification"]
    );
    assert_eq!(trailer_values(t, "Slogate-Deploy"), vec![bad.as_str()]);
    assert_eq!(
        trailer_values(t, "Slogate-SLO"),
        vec!["checkout-availability"]
    );
    let before = num(t, "Slogate-Error-Ratio-Before");
    let after = num(t, "Slogate-Error-Ratio-After");
    assert!((before - BASE).abs() < BASE * 0.2, "before {before}");
    assert!((after - 0.02).abs() < 0.002, "after {after}");
    let burn = num(t, "Slogate-Burn-Rate");
    assert!((14.4..25.0).contains(&burn), "burn {burn}");
    assert!(num(t, "Slogate-P-Value") <= 0.02);
    assert!(num(t, "Slogate-Requests-After") > 0.9 * RPS * 1200.0 - 1.0);
    // The revert went back to v1.
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v1"));

    // The decision log shows the numbers, and the notification went out with them.
    let log = decisions(&s.work.join("state"));
    let d = log
        .iter()
        .find(|d| d["action"] == "deploy-revert")
        .unwrap_or_else(|| panic!("{log:#?}"));
    let v = &d["observed"]["verdicts"][0];
    assert!(v["p_value"].as_f64().unwrap() <= 0.02, "{d}");
    assert!(v["burn_rate_after"].as_f64().unwrap() >= 14.4, "{d}");
    assert!(v["error_ratio_before"].is_number() && v["requests_after"].is_number());
    assert_eq!(d["observed"]["deploy"], bad.as_str());
    let sent = s.notified.lock().unwrap().clone();
    let n = sent
        .iter()
        .find(|n| n["fields"]["reason"] == "post-deploy-verification")
        .unwrap_or_else(|| panic!("{sent:#?}"));
    assert_eq!(n["fields"]["deploy"], bad.as_str());
    assert!(n["fields"]["p_value"].is_string() && n["fields"]["burn_rate"].is_string());

    // A second run reverts nothing more.
    run_once(&cfg);
    assert_eq!(reverts(&s.remote).len(), 1);
}

#[test]
fn a_healthy_deploy_is_not_reverted() {
    let end = now();
    let deploy = end - 20 * 60;
    let Some(s) = setup(end, |_| BASE) else {
        return;
    };
    commit_at(
        &s.remote,
        &kustomization("checkout", "v2"),
        "checkout v2",
        deploy,
    );
    let cfg = config(&s);
    run_once(&cfg);
    assert!(reverts(&s.remote).is_empty(), "{:?}", reverts(&s.remote));
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v2"));
    let log = decisions(&s.work.join("state"));
    assert!(
        !log.iter()
            .any(|d| d["action"] == "deploy-revert" || d["action"] == "deploy-regression"),
        "{log:#?}"
    );
}

#[test]
fn a_burn_without_a_deploy_in_its_window_only_notifies() {
    let end = now();
    let burn_from = end - 70 * 60;
    let Some(s) = setup(end, |t| if t > burn_from { 0.02 } else { BASE }) else {
        return;
    };
    // The last deploy is three hours old: outside the page's 1h window.
    commit_at(
        &s.remote,
        &kustomization("checkout", "v2"),
        "checkout v2",
        end - 3 * 3600,
    );
    let cfg = config(&s);
    run_once(&cfg);
    assert!(reverts(&s.remote).is_empty(), "{:?}", reverts(&s.remote));
    let log = decisions(&s.work.join("state"));
    let d = log
        .iter()
        .find(|d| d["action"] == "page-notify")
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert!(
        d["observed"]["page"]["burn_long"].as_f64().unwrap() >= 14.4,
        "{d}"
    );
    let sent = s.notified.lock().unwrap().clone();
    assert!(
        sent.iter()
            .any(|n| n["title"].as_str().unwrap_or("").contains("page level")),
        "{sent:#?}"
    );
    // Notified once per episode.
    run_once(&cfg);
    let log = decisions(&s.work.join("state"));
    assert_eq!(
        log.iter().filter(|d| d["action"] == "page-notify").count(),
        1,
        "{log:#?}"
    );
}

/// The same bad deploy with `gitops.mode: pull-request` on a (fake) GitHub: verification
/// opens exactly one pull request, from a branch named after the deploy's revert key, whose
/// head reverts the deploy; a second run (the deploy still on the branch, the pull request
/// not merged yet) opens no other one.
#[test]
fn a_bad_deploy_in_pull_request_mode_opens_one_pull_request() {
    use common::forge::{FakeForge, Kind};
    let Some((s, bad)) = bad_deploy_twenty_minutes_ago() else {
        return;
    };
    let token = s.work.join("forge-token");
    std::fs::write(&token, "forge-token-for-the-verify-test").unwrap();
    let forge = FakeForge::start(
        Kind::Github,
        s.remote.remote.clone(),
        "forge-token-for-the-verify-test",
    );
    let cfg = config_with(
        &s,
        &format!("  mode: pull-request\n{}", forge.config(&token)),
    );
    let summary = run_once(&cfg);
    assert!(summary["guard_errors"].is_null(), "{summary}");

    // Nothing reverted on the branch itself: the revert waits in one pull request.
    assert!(reverts(&s.remote).is_empty(), "{:?}", reverts(&s.remote));
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v2"));
    let prs = forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(prs[0].state, "open");
    assert!(
        prs[0].head.starts_with("slogate/revert-"),
        "{}",
        prs[0].head
    );
    assert!(prs[0].body.contains(&bad), "{}", prs[0].body);
    // The decision log: the verification's decision, then the revert's outcome.
    let log = decisions(&s.work.join("state"));
    assert!(
        log.iter().any(|d| d["action"] == "deploy-revert"),
        "{log:#?}"
    );
    let opened: Vec<&serde_json::Value> = log
        .iter()
        .filter(|d| {
            d["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("pull_request_opened"))
        })
        .collect();
    assert_eq!(opened.len(), 1, "{log:#?}");

    run_once(&cfg);
    assert_eq!(forge.prs().len(), 1, "{:?}", forge.prs());
    assert_eq!(forge.open_requests(), 1);
}
