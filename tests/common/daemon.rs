//! `slogate run` as a process next to a real Prometheus whose backfilled history burns (or,
//! with a low error ratio, spares) the error budget of one SLO (`checkout-availability`, 99.9%): the guard of an app on that SLO
//! rolls back at its first evaluation. Used by the pull-request-mode and mode-matrix tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{backfill_openmetrics, free_port, http, prom_config, request_history, slogate};
use super::{require_bin, Prometheus};

pub const SLO_ID: &str = "checkout-availability";
pub const APP_PATH: &str = "apps/checkout/overlays/prod";
pub const PROD: &str = "apps/checkout/overlays/prod/kustomization.yaml";
pub const WEBHOOK_TOKEN: &str = "webhook-token-for-the-test";

const SLO: &str = r#"version: "prometheus/v1"
service: "checkout"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      page_alert: {disable: true}
      ticket_alert: {disable: true}
"#;

/// A real Prometheus with two days of 5% errors (50× the budget's burn rate) ending now,
/// and the SLO spec directory.
pub struct Burning {
    pub dir: tempfile::TempDir,
    pub prom: Prometheus,
    pub slos: PathBuf,
}

impl Burning {
    /// `None` only when e2e tests are explicitly off (`SLOGATE_E2E=0`).
    pub fn start() -> Option<Burning> {
        Self::with_error_ratio(0.05)
    }

    /// The same with another error ratio: 0.0005 (half the budget's rate) is healthy.
    pub fn with_error_ratio(ratio: f64) -> Option<Burning> {
        let prometheus = require_bin("prometheus")?;
        let promtool = require_bin("promtool")?;
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let data = work.join("prom-data");
        let now = chrono::Utc::now().timestamp();
        backfill_openmetrics(
            &promtool,
            work,
            &data,
            &request_history(now - 2 * 24 * 3600, now, |_| ratio),
        );
        let prom = Prometheus::start(&prometheus, work, &data, &prom_config(&[]));
        let slos = work.join("slos");
        std::fs::create_dir_all(&slos).unwrap();
        std::fs::write(slos.join("checkout.yml"), SLO).unwrap();
        Some(Burning { dir, prom, slos })
    }

    pub fn work(&self) -> &Path {
        self.dir.path()
    }

    /// A daemon config: the guarded app `checkout`, the webhook, an hourly schedule (so
    /// after the evaluation at start only alerts make it run), `extra` appended as is
    /// (`gitops:`, `notifications:`…).
    pub fn config(&self, port: u16, state: &Path, extra: &str) -> String {
        let webhook_token = self.work().join("webhook-token");
        std::fs::write(&webhook_token, WEBHOOK_TOKEN).unwrap();
        format!(
            "cluster: off\nprometheus:\n  url: {prom}\n  timeout: 10s\nslos:\n  paths: [{slos}]\nevaluation:\n  interval: 1h\n  jitter: 0\nserver:\n  listen: 127.0.0.1:{port}\nstate:\n  dir: {state}\nguard:\n  apps:\n    - name: checkout\n      path: {APP_PATH}\n      slos: [{SLO_ID}]\nwebhook:\n  enabled: true\n  auth:\n    bearer:\n      token_file: {token}\n{extra}",
            prom = self.prom.url,
            slos = self.slos.display(),
            state = state.display(),
            token = webhook_token.display(),
        )
    }
}

impl Burning {
    /// A daemon config that runs one Rollout (`rollout`, a YAML document for `ns/checkout`,
    /// written to `<dir>/rollouts/`) from a file, with the file store, the versions file
    /// `ns/checkout: {stable: v1, canary: v2}`, `router` and `gitops` (a `gitops:` section)
    /// as given, and no guard.
    pub fn rollout_config(
        &self,
        dir: &Path,
        ns: &str,
        rollout: &str,
        router: &str,
        gitops: &str,
    ) -> String {
        std::fs::create_dir_all(dir.join("rollouts")).unwrap();
        std::fs::write(dir.join("rollouts/checkout.yaml"), rollout).unwrap();
        std::fs::write(
            dir.join("versions.yaml"),
            format!("{ns}/checkout: {{stable: v1, canary: v2}}\n"),
        )
        .unwrap();
        format!(
            "cluster: off\nprometheus:\n  url: {prom}\nslos:\n  paths: [{slos}]\nserver:\n  listen: 127.0.0.1:{port}\nstate:\n  dir: {state}\nrollouts:\n  paths: [{rollouts}]\n  router: {router}\n  weights_dir: {weights}\n  versions_file: {versions}\n  resync_interval: 1s\n{gitops}",
            prom = self.prom.url,
            slos = self.slos.display(),
            port = free_port(),
            state = dir.join("state").display(),
            rollouts = dir.join("rollouts").display(),
            weights = dir.join("weights").display(),
            versions = dir.join("versions.yaml").display(),
        )
    }
}

/// A bare remote whose newest commit on the app path (`v2`, returned) is the bad deploy
/// after a good `v1`.
pub fn remote_with_bad_deploy() -> (super::git::GitRemote, String) {
    use super::git::kustomization;
    let remote = super::git::GitRemote::new();
    remote.commit(&[(PROD, &kustomization("checkout", "v1"))], "checkout v1");
    let bad = remote.commit(
        &[(PROD, &kustomization("checkout", "v2"))],
        "checkout v2: new payment client",
    );
    (remote, bad)
}

/// A `slogate run` process, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Daemon {
    /// Start `slogate run` with `config` written to `<dir>/<name>.yaml`, logging to
    /// `<dir>/<name>.log`, and wait until it serves `/healthz`.
    pub fn start(dir: &Path, name: &str, config: &str, env: &[(&str, &str)]) -> Daemon {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, config).unwrap();
        let port = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("listen: 127.0.0.1:"))
            .expect("listen in config")
            .trim()
            .to_string();
        let log = dir.join(format!("{name}.log"));
        let mut cmd = slogate();
        cmd.args(["run", "--config"])
            .arg(&path)
            .env("SLOGATE_LOG", "info,slogate::runtime::slo_loop=debug")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn slogate run");
        let mut d = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        d.wait("healthz", |d| {
            http()
                .get(format!("{}/healthz", d.base))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        });
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `f` until it gives a value (a liveness bound of 120 s, not a timing assertion).
    pub fn wait<T>(&mut self, what: &str, mut f: impl FnMut(&Daemon) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("slogate exited early ({status}):\n{}", self.log());
            }
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.base))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// SLO evaluations so far (`slogate_evaluations_total`).
    pub fn evaluations(&self) -> f64 {
        super::metric(&self.metrics(), "slogate_evaluations_total").unwrap_or(0.0)
    }

    /// Wait until more than `n` SLO evaluations were made.
    pub fn wait_evaluations_above(&mut self, n: f64) {
        self.wait(&format!("more than {n} evaluations"), |d| {
            (d.evaluations() > n).then_some(())
        });
    }

    /// Guard runs finished so far with this trigger (`schedule`, `alert`), from the log.
    pub fn guard_runs(&self, trigger: &str) -> usize {
        strip_ansi(&self.log())
            .lines()
            .filter(|l| l.contains("guard run finished"))
            .filter(|l| {
                l.contains(&format!("trigger=\"{trigger}\""))
                    || l.contains(&format!("trigger={trigger}"))
            })
            .count()
    }

    /// POST a firing page for the SLO to the webhook; `starts_at` makes each one a new
    /// alert event (the receiver drops repeats of the same one).
    pub fn alert(&self, starts_at: &str) {
        let payload = include_str!("../fixtures/alertmanager/firing-sloth-id.json")
            .replace("2026-11-23T08:37:55Z", starts_at);
        let r = http()
            .post(format!("{}/webhook/alertmanager", self.base))
            .bearer_auth(WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }

    /// The decision log through the API.
    pub fn decisions(&self) -> serde_json::Value {
        http()
            .get(format!("{}/api/v1/decisions?limit=1000", self.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// SIGTERM, and wait for the exit: an evaluation cycle in progress (its guard run
    /// included) finishes first.
    pub fn terminate(mut self) -> ExitStatus {
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
                panic!("slogate did not exit after SIGTERM:\n{}", self.log());
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

/// A free loopback port (re-exported for the tests using this module).
pub fn port() -> u16 {
    free_port()
}

/// The text without ANSI colour sequences (`ESC [ … m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
