//! Shared test harness: real Prometheus and promtool from Debian's packages, started on free
//! loopback ports with their own data directories.
//!
//! Tests that need these binaries FAIL when they are missing, unless `SLOGATE_E2E=0` is set
//! explicitly (then they print why and return early). `./scripts/test` installs them.
#![allow(dead_code)]

pub mod apiserver;
pub mod daemon;
pub mod fake_api;
pub mod forge;
pub mod git;
pub mod tools;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether end-to-end tests with real components run. Only an explicit `SLOGATE_E2E=0`
/// turns them off.
pub fn e2e_enabled() -> bool {
    std::env::var("SLOGATE_E2E")
        .map(|v| v != "0")
        .unwrap_or(true)
}

/// Find a binary on PATH. Returns `None` only when e2e tests are explicitly disabled;
/// otherwise a missing binary fails the test.
pub fn require_bin(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if !e2e_enabled() => {
            eprintln!("SKIPPED: {name} not found and SLOGATE_E2E=0");
            None
        }
        None => panic!(
            "{name} not found on PATH. Run ./scripts/test, which installs Debian's prometheus and \
             prometheus-alertmanager, or set SLOGATE_E2E=0 to skip end-to-end tests explicitly"
        ),
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
///
/// Picked at random *below* the kernel's ephemeral range (32768–60999 by default) and
/// checked bindable: a port the kernel handed out (`bind :0`) and released can be given to
/// another process's outgoing connection before the server that was meant to take it binds
/// it (etcd once failed with "address already in use" that way while the suite ran). Ports
/// below the range are never given to outgoing connections, so only another pick here can
/// collide, with a chance of about (ports in use) / 12,000.
pub fn free_port() -> u16 {
    use rand::RngExt;
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port: u16 = rng.random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Run a command to completion, panicking with its output on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout + &stderr
}

/// A running Prometheus server. Killed on drop.
pub struct Prometheus {
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    child: Child,
    log_path: PathBuf,
}

impl Prometheus {
    /// Start Prometheus with a data directory (possibly holding backfilled blocks) and a
    /// configuration file body. Waits until `/-/ready` answers 200.
    pub fn start(bin: &Path, work: &Path, data_dir: &Path, config_yaml: &str) -> Prometheus {
        let cfg = work.join(format!("prometheus-{}.yml", free_port()));
        std::fs::write(&cfg, config_yaml).expect("write prometheus config");
        let port = free_port();
        let log_path = work.join(format!("prometheus-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create prometheus log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg("--storage.tsdb.retention.time=3650d")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_path_buf(),
            child,
            log_path,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = http();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited early ({status}):\n{}", self.log());
            }
            if let Ok(r) = client.get(format!("{}/-/ready", self.url)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stop the server and wait for it to exit (so its data directory can be reused).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        // SIGTERM first so the TSDB closes cleanly; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Prometheus' own formatting of a PromQL expression (`/api/v1/format_query`).
    pub fn format_query(&self, query: &str) -> Result<String, String> {
        let v: serde_json::Value = http()
            .post(format!("{}/api/v1/format_query", self.url))
            .form(&[("query", query)])
            .send()
            .map_err(|e| e.to_string())?
            .json()
            .map_err(|e| e.to_string())?;
        if v["status"] == "success" {
            Ok(v["data"].as_str().unwrap_or_default().to_string())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        }
    }

    /// Instant query at a unix time; returns `(labels, value)` pairs.
    pub fn query_at(&self, query: &str, time: f64) -> Vec<(serde_json::Value, f64)> {
        let v: serde_json::Value = http()
            .post(format!("{}/api/v1/query", self.url))
            .form(&[("query", query), ("time", &time.to_string())])
            .send()
            .expect("query prometheus")
            .json()
            .expect("prometheus answers JSON");
        assert_eq!(v["status"], "success", "query {query} failed: {v}");
        let data = &v["data"];
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let val = s["value"][1].as_str().unwrap_or("NaN");
                    (s["metric"].clone(), val.parse::<f64>().unwrap_or(f64::NAN))
                })
                .collect(),
            Some("scalar") => {
                let val = data["result"][1].as_str().unwrap_or("NaN");
                vec![(serde_json::Value::Null, val.parse().unwrap_or(f64::NAN))]
            }
            other => panic!("unexpected result type {other:?}: {v}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A blocking HTTP client with a timeout, for tests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build HTTP client")
}

/// Write OpenMetrics text and backfill it into `data_dir` with
/// `promtool tsdb create-blocks-from openmetrics`.
pub fn backfill_openmetrics(promtool: &Path, work: &Path, data_dir: &Path, om: &str) {
    let input = work.join("backfill.om");
    let mut f = std::fs::File::create(&input).expect("create openmetrics file");
    f.write_all(om.as_bytes()).expect("write openmetrics file");
    drop(f);
    std::fs::create_dir_all(data_dir).expect("create data dir");
    run_ok(
        Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(data_dir),
    );
}

/// Backfill recording rules with `promtool tsdb create-blocks-from rules`, evaluating them on
/// the running Prometheus `prom`, and move the blocks into `data_dir` (which the caller then
/// serves with a fresh Prometheus). `(start, end)` are unix seconds.
pub fn backfill_rules(
    promtool: &Path,
    work: &Path,
    prom_url: &str,
    rules_file: &Path,
    (start, end): (i64, i64),
    eval_interval: &str,
    data_dir: &Path,
) {
    let out = work.join(format!("rule-blocks-{}", free_port()));
    // promtool exits 0 without writing any block when its range queries fail (seen once in
    // the whole suite, with four Prometheus servers on two cores): it is the test's set-up,
    // not what is tested, so it is run again, up to three times, and its output is shown.
    let mut attempts = Vec::new();
    while !out.exists() && attempts.len() < 3 {
        attempts.push(run_ok(
            Command::new(promtool)
                .args(["tsdb", "create-blocks-from", "rules"])
                .arg(format!("--start={start}"))
                .arg(format!("--end={end}"))
                .arg(format!("--url={prom_url}"))
                .arg(format!("--output-dir={}", out.display()))
                .arg(format!("--eval-interval={eval_interval}"))
                .arg(rules_file),
        ));
        if !out.exists() {
            eprintln!(
                "promtool wrote no rule blocks (attempt {}); its output:\n{}",
                attempts.len(),
                attempts.last().map_or("", String::as_str)
            );
        }
    }
    assert!(
        out.exists(),
        "promtool wrote no rule blocks in {} attempts; its output:\n{}",
        attempts.len(),
        attempts.join("\n---\n")
    );
    for entry in std::fs::read_dir(&out).expect("read rule blocks") {
        let entry = entry.expect("rule block entry");
        let to = data_dir.join(entry.file_name());
        std::fs::rename(entry.path(), to).expect("move rule block into data dir");
    }
}

/// The slogate binary built for this test run.
pub fn slogate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slogate"))
}

/// An empty Prometheus configuration (no scrapes); `rule_files` are loaded when given.
pub fn prom_config(rule_files: &[&Path]) -> String {
    let mut s = String::from("global:\n  evaluation_interval: 1m\n");
    if !rule_files.is_empty() {
        s.push_str("rule_files:\n");
        for f in rule_files {
            s.push_str(&format!("  - {}\n", f.display()));
        }
    }
    s
}

/// OpenMetrics text of `http_requests_total{job="checkout",instance="backfill",code}`
/// sampled every `step` seconds over `[start, end]` at `rps` requests per second, with
/// `error_ratio(t)` of the requests of the step ending at `t` failing.
pub fn request_history_at(
    start: i64,
    end: i64,
    step: i64,
    rps: f64,
    error_ratio: impl Fn(i64) -> f64,
) -> String {
    counters(
        r#"job="checkout",instance="backfill""#,
        (start, end, step),
        rps,
        error_ratio,
    )
}

/// OpenMetrics text of a synthetic service's `http_requests_total{job="checkout",code}`
/// counters, sampled every minute over `[start, end]` (unix seconds) at 600 requests per
/// minute, with `error_ratio(t)` of the requests in the minute ending at `t` failing.
pub fn request_history(start: i64, end: i64, error_ratio: impl Fn(i64) -> f64) -> String {
    counters(r#"job="checkout""#, (start, end, 60), 10.0, error_ratio)
}

fn counters(
    labels: &str,
    (start, end, step): (i64, i64, i64),
    rps: f64,
    error_ratio: impl Fn(i64) -> f64,
) -> String {
    let mut ok = String::new();
    let mut err = String::new();
    let (mut total_ok, mut total_err) = (0.0f64, 0.0f64);
    let mut t = start;
    while t <= end {
        let r = error_ratio(t);
        let n = rps * step as f64;
        total_ok += n * (1.0 - r);
        total_err += n * r;
        ok.push_str(&format!(
            "http_requests_total{{{labels},code=\"200\"}} {total_ok} {t}\n"
        ));
        err.push_str(&format!(
            "http_requests_total{{{labels},code=\"500\"}} {total_err} {t}\n"
        ));
        t += step;
    }
    format!("# HELP http_requests Requests.\n# TYPE http_requests counter\n{ok}{err}# EOF\n")
}

/// A Prometheus stand-in for controller tests: every instant query answers 0.999 (a healthy
/// success rate), every range query nothing.
pub struct Healthy;

#[async_trait::async_trait]
impl slogate::ports::metrics::MetricsSource for Healthy {
    async fn instant(
        &self,
        _: &str,
        _: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<slogate::ports::metrics::Sample>, slogate::ports::metrics::MetricsError> {
        Ok(vec![slogate::ports::metrics::Sample {
            labels: Default::default(),
            value: 0.999,
        }])
    }
    async fn range(
        &self,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: chrono::DateTime<chrono::Utc>,
        _: Duration,
    ) -> Result<Vec<slogate::ports::metrics::Series>, slogate::ports::metrics::MetricsError> {
        Ok(Vec::new())
    }
}

/// The value of the sample whose line is `series` (name and labels, exactly) then a space,
/// in a Prometheus text exposition.
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
