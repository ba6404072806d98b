//! `slogate run` end to end: a real Prometheus with backfilled history, the daemon started as
//! a process, its `/metrics` scraped and checked, SLO files changed under it, and SIGTERM.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MINUTE: i64 = 60;
const RATIO: f64 = 0.0005;

/// Two days of 1-minute samples ending now, with a constant 0.05% error ratio, so every
/// window's error ratio is 0.0005 whenever the daemon happens to evaluate.
fn history(t_end: i64) -> String {
    request_history(t_end - 2 * 24 * 3600, t_end, |_| RATIO)
}

fn slo_doc(name: &str, objective: f64, metric: &str) -> String {
    format!(
        r#"version: "prometheus/v1"
service: "checkout"
slos:
  - name: "{name}"
    objective: {objective}
    sli:
      events:
        error_query: sum(rate({metric}{{code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate({metric}[{{{{.window}}}}]))
    alerting:
      page_alert: {{disable: true}}
      ticket_alert: {{disable: true}}
"#
    )
}

struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let text = std::fs::read_to_string(config).expect("config");
        let listen = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("listen: "))
            .expect("listen in config")
            .trim()
            .to_string();
        let child = slogate()
            .args(["run", "--config"])
            .arg(config)
            .env("SLOGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn slogate run");
        Daemon {
            child,
            url: format!("http://{listen}"),
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String, String)> {
        let r = http().get(format!("{}{path}", self.url)).send().ok()?;
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Some((status, ct, r.text().unwrap_or_default()))
    }

    /// Poll until `check` holds on `/metrics` (a liveness bound, not a timing assertion).
    fn wait_metrics(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("slogate exited early: {status}");
            }
            if let Some((200, _, body)) = self.get("/metrics") {
                if check(&body) {
                    return body;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}:\n{body}"
                );
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("slogate did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn labels(id: &str, slo: &str) -> String {
    format!("{{sloth_id=\"{id}\",sloth_service=\"checkout\",sloth_slo=\"{slo}\"}}")
}

fn write_config(path: &Path, prom_url: &str, slos: &Path, port: u16) {
    std::fs::write(
        path,
        format!(
            "prometheus:\n  url: {prom_url}\n  timeout: 10s\nslos:\n  paths: [{}]\n  reload_interval: 200ms\nevaluation:\n  interval: 1h\nserver:\n  listen: 127.0.0.1:{port}\n",
            slos.display()
        ),
    )
    .expect("write config");
}

/// A temp dir with one SLO spec and a daemon config pointing at `prom_url`.
fn one_slo_setup(prom_url: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let slos = dir.path().join("slos");
    std::fs::create_dir_all(&slos).expect("slo dir");
    std::fs::write(
        slos.join("a.yml"),
        slo_doc("availability", 99.9, "http_requests_total"),
    )
    .expect("write slo");
    let config = dir.path().join("slogate.yaml");
    write_config(&config, prom_url, &slos, free_port());
    (dir, config)
}

#[test]
fn daemon_exports_budgets_reloads_specs_and_stops_on_sigterm() {
    let (Some(prometheus), Some(promtool)) = (require_bin("prometheus"), require_bin("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path();
    let data = work.join("data");
    let now = chrono::Utc::now().timestamp();
    backfill_openmetrics(&promtool, work, &data, &history(now - now % MINUTE));
    let prom = Prometheus::start(&prometheus, work, &data, &prom_config(&[]));

    let slos = work.join("slos");
    std::fs::create_dir_all(&slos).expect("slo dir");
    std::fs::write(
        slos.join("a.yml"),
        slo_doc("availability", 99.9, "http_requests_total"),
    )
    .expect("write slo");
    std::fs::write(
        slos.join("ghost.yml"),
        slo_doc("ghost", 99.0, "ghost_total"),
    )
    .expect("write slo");
    let config = work.join("slogate.yaml");
    write_config(&config, &prom.url, &slos, free_port());

    // One cycle without the server: the summary counts 2 raw SLOs × 8 queries + the info query.
    let out = slogate()
        .args(["run", "--once", "--config"])
        .arg(&config)
        .output()
        .expect("run --once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["slos"], 2, "{summary}");
    assert_eq!(summary["queries"], 17, "{summary}");
    assert_eq!(summary["reached_prometheus"], true);

    let mut d = Daemon::start(&config);
    let a = labels("checkout-availability", "availability");
    let ghost = labels("checkout-ghost", "ghost");
    let body = d.wait_metrics("the first evaluation", |b| {
        metric(b, &format!("slogate_slo_budget_consumed_ratio{a}")).is_some()
    });
    let (status, ct, _) = d.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(body.trim_end().ends_with("# EOF"));

    let consumed = metric(&body, &format!("slogate_slo_budget_consumed_ratio{a}")).unwrap();
    assert!((consumed - 0.5).abs() < 0.005, "consumed {consumed}");
    let remaining = metric(&body, &format!("slogate_slo_budget_remaining_ratio{a}")).unwrap();
    assert!((remaining - 0.5).abs() < 0.005, "remaining {remaining}");
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        let series = format!(
            "slogate_slo_burn_rate{{sloth_id=\"checkout-availability\",sloth_service=\"checkout\",sloth_slo=\"availability\",window=\"{w}\"}}"
        );
        let v = metric(&body, &series).unwrap_or_else(|| panic!("no {series}:\n{body}"));
        assert!((v - 0.5).abs() < 0.005, "burn {w}: {v}");
    }
    assert_eq!(metric(&body, &format!("slogate_slo_no_data{a}")), Some(0.0));
    assert_eq!(
        metric(&body, &format!("slogate_slo_no_data{ghost}")),
        Some(1.0)
    );
    assert_eq!(
        metric(&body, &format!("slogate_slo_budget_consumed_ratio{ghost}")),
        None,
        "no data must not export a budget"
    );
    assert!(metric(&body, "slogate_prometheus_queries_total").unwrap_or(0.0) >= 17.0);
    assert_eq!(metric(&body, "slogate_slos_loaded"), Some(2.0));
    assert!(body.contains("slogate_evaluation_duration_seconds_bucket"));
    let (status, _, _) = d.get("/readyz").expect("readyz");
    assert_eq!(status, 200);
    let (status, _, _) = d.get("/healthz").expect("healthz");
    assert_eq!(status, 200);
    let (status, ct, body404) = d.get("/nope").expect("404");
    assert_eq!(status, 404);
    assert!(ct.contains("json") && body404.contains("error"));

    // A broken edit is reported and skipped; the last good version keeps being evaluated.
    std::fs::write(
        slos.join("a.yml"),
        "version: prometheus/v1\nservice: [oops\n",
    )
    .expect("break");
    d.wait_metrics("the broken file to be reported", |b| {
        metric(b, "slogate_spec_files_with_errors") == Some(1.0)
    });
    // The objective changes in a valid edit: the new objective is evaluated at once.
    std::fs::write(
        slos.join("a.yml"),
        slo_doc("availability", 99.95, "http_requests_total"),
    )
    .expect("fix");
    let body = d.wait_metrics("the fixed file to be evaluated", |b| {
        metric(b, &format!("slogate_slo_objective_ratio{a}"))
            .map(|v| (v - 0.9995).abs() < 1e-9)
            .unwrap_or(false)
    });
    assert_eq!(metric(&body, "slogate_spec_files_with_errors"), Some(0.0));
    let consumed = metric(&body, &format!("slogate_slo_budget_consumed_ratio{a}")).unwrap();
    assert!(
        (consumed - 1.0).abs() < 0.01,
        "consumed after edit {consumed}"
    );
    // A removed file's SLO disappears from /metrics.
    std::fs::remove_file(slos.join("ghost.yml")).expect("remove");
    d.wait_metrics("the removed SLO to vanish", |b| {
        !b.contains("sloth_id=\"checkout-ghost\"")
    });

    let status = d.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn run_once_with_no_slos_still_reports_an_unreachable_prometheus() {
    let dir = tempfile::tempdir().expect("temp dir");
    let slos = dir.path().join("slos");
    std::fs::create_dir_all(&slos).expect("slo dir");
    let config = dir.path().join("slogate.yaml");
    let down = format!("http://127.0.0.1:{}", free_port());
    write_config(&config, &down, &slos, free_port());
    let out = slogate()
        .args(["run", "--once", "--config"])
        .arg(&config)
        .output()
        .expect("run --once");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["slos"], 0, "{summary}");
    assert_eq!(summary["reached_prometheus"], false, "{summary}");
    assert!(
        summary["errors"][0]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{summary}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn daemon_is_live_but_not_ready_while_prometheus_is_down() {
    let (_dir, config) = one_slo_setup(&format!("http://127.0.0.1:{}", free_port()));
    let mut d = Daemon::start(&config);
    // Wait until the first (failed) evaluation happened.
    d.wait_metrics("a failed evaluation", |b| {
        metric(b, "slogate_evaluation_errors_total").unwrap_or(0.0) >= 1.0
    });
    let (status, ct, body) = d.get("/readyz").expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(ct.contains("json") && body.contains("not ready"), "{body}");
    let (status, _, _) = d.get("/healthz").expect("healthz");
    assert_eq!(status, 200);
    assert!(d.terminate().success());
}

#[test]
fn run_rejects_a_bad_config_with_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("slogate.yaml");
    std::fs::write(
        &config,
        "prometheus:\n  url: http://x\nevaluation:\n  interval: often\n",
    )
    .expect("write");
    let out = slogate()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("slogate.yaml") && stderr.contains("often"),
        "{stderr}"
    );
}

#[test]
fn sigterm_does_not_wait_for_a_hanging_prometheus_query() {
    // A "Prometheus" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let _ = seen_tx.send(());
            held.push(conn);
        }
    });
    let (_dir, config) = one_slo_setup(&format!("http://127.0.0.1:{port}"));
    // The query timeout (10 minutes) is far beyond the bound below: exiting in time proves the
    // in-flight cycle was abandoned rather than waited for.
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("timeout: 10s", "timeout: 600s");
    std::fs::write(&config, text).expect("config");
    let d = Daemon::start(&config);
    seen_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon queries Prometheus");
    // terminate() allows 60s, well under the 600s query timeout.
    assert!(d.terminate().success());
}
