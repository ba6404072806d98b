//! `slogate budget` against a real Prometheus (Debian's package) with 32 days of backfilled
//! history, for both sources: the SLI queries evaluated raw, and Sloth recording rules
//! backfilled with `promtool tsdb create-blocks-from rules`. Also: a no-data SLO, a PromQL
//! error, and a Prometheus that is down.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const BASE_ERRORS: f64 = 0.0005;
const INCIDENT_ERRORS: f64 = 0.02;
const INCIDENT: i64 = 2 * HOUR;

/// Error ratio of the synthetic service during the minute ending at `t`.
fn error_ratio_at(t: i64, t_end: i64) -> f64 {
    if t > t_end - INCIDENT {
        INCIDENT_ERRORS
    } else {
        BASE_ERRORS
    }
}

/// The exact error ratio over the `window_secs` ending at `t_end` (traffic is constant, so it
/// is the time-weighted mean of the per-minute ratios).
fn analytic_ratio(window_secs: i64) -> f64 {
    let incident = window_secs.min(INCIDENT) as f64;
    let before = (window_secs - INCIDENT).max(0) as f64;
    (INCIDENT_ERRORS * incident + BASE_ERRORS * before) / window_secs as f64
}

/// Two counters sampled every minute for 32 days up to `t_end`.
fn history(t_end: i64) -> String {
    request_history(t_end - 32 * DAY, t_end, |t| error_ratio_at(t, t_end))
}

fn windows() -> [(&'static str, i64); 7] {
    [
        ("5m", 5 * MINUTE),
        ("30m", 30 * MINUTE),
        ("1h", HOUR),
        ("2h", 2 * HOUR),
        ("6h", 6 * HOUR),
        ("1d", DAY),
        ("3d", 3 * DAY),
    ]
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .expect("valid time")
        .to_rfc3339()
}

fn budget_json(prom_url: &str, t_end: i64, files: &[&Path]) -> serde_json::Value {
    let out = slogate()
        .args([
            "budget",
            "--prometheus",
            prom_url,
            "--at",
            &rfc3339(t_end),
            "-o",
            "json",
        ])
        .args(files)
        .output()
        .expect("run slogate budget");
    assert!(
        out.status.success(),
        "slogate budget failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("budget -o json prints JSON")
}

fn close(got: &serde_json::Value, want: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {got}"));
    let rel = ((g - want) / want).abs();
    assert!(
        rel < 0.01,
        "{what}: got {g}, want {want} (rel. error {rel:.4})"
    );
}

/// Check the reports of the fixture's four SLOs against the analytic values.
fn check_reports(reports: &serde_json::Value, source: &str) {
    let arr = reports.as_array().expect("a JSON array");
    assert_eq!(arr.len(), 4, "{reports:#}");
    let period_ratio = analytic_ratio(30 * DAY);
    let expected = [
        ("checkout-availability", 0.999, "none"),
        ("checkout-availability-tight", 0.99935, "critical"),
        ("checkout-availability-strict", 0.9995, "emergency"),
    ];
    for (id, objective, action) in expected {
        let r = arr
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no report for {id}: {reports:#}"));
        let budget = 1.0 - objective;
        assert_eq!(r["source"], source, "{id}");
        assert_eq!(r["service"], "checkout");
        assert_eq!(r["period"], "30d");
        assert_eq!(r["action"], action, "{id}: {r:#}");
        assert!(r.get("no_data").is_none(), "{id}: {r:#}");
        close(&r["objective"], objective, &format!("{id} objective"));
        close(
            &r["error_ratio"],
            period_ratio,
            &format!("{id} error_ratio"),
        );
        close(
            &r["budget_consumed"],
            period_ratio / budget,
            &format!("{id} budget_consumed"),
        );
        let remaining = r["budget_remaining"].as_f64().expect("remaining");
        let consumed = r["budget_consumed"].as_f64().expect("consumed");
        assert!((remaining - (1.0 - consumed)).abs() < 1e-12);
        for (w, secs) in windows() {
            close(
                &r["burn_rates"][w],
                analytic_ratio(secs) / budget,
                &format!("{id} burn rate {w}"),
            );
        }
    }
    let ghost = arr
        .iter()
        .find(|r| r["id"] == "checkout-ghost")
        .expect("ghost report");
    assert_eq!(ghost["no_data"], true, "{ghost:#}");
    assert_eq!(ghost["action"], "none");
    assert!(ghost["error_ratio"].is_null());
    assert!(ghost["budget_consumed"].is_null());
    assert!(ghost["budget_remaining"].is_null());
    assert_eq!(ghost["burn_rates"].as_object().map(|o| o.len()), Some(7));
    assert!(ghost["burn_rates"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(_, v)| v.is_null()));
}

/// The recording rules of a rule file for which `keep(record)` holds, all in one group (so
/// that promtool's backfill writes one set of blocks rather than one per group).
fn filter_rules(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let doc: slogate::model::yaml::Value =
        slogate::model::yaml::from_str(text).expect("rules YAML");
    let rules: Vec<slogate::model::yaml::Value> = doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter(|r| r["record"].as_str().map(&keep).unwrap_or(false))
        .collect();
    assert!(!rules.is_empty(), "no rules kept");
    let out = serde_json::json!({"groups": [{"name": "backfill", "rules": rules}]});
    slogate::model::yaml::to_string(&out).expect("serialise rules")
}

#[test]
fn budget_from_real_prometheus_raw_and_recording_rules() {
    if let (Some(prometheus), Some(promtool)) = (require_bin("prometheus"), require_bin("promtool"))
    {
        budget_on(&prometheus, &promtool);
    }
}

/// The same budgets from Prometheus 3 (and its promtool's backfill).
#[test]
fn budget_from_real_prometheus3_raw_and_recording_rules() {
    if let (Some(prometheus), Some(promtool)) = (
        common::tools::require_prometheus3("prometheus3"),
        common::tools::require_prometheus3("promtool3"),
    ) {
        budget_on(&prometheus, &promtool);
    }
}

fn budget_on(prometheus: &Path, promtool: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path();
    let data = work.join("data");
    let slos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/budget-slos.yml");
    let now = chrono::Utc::now().timestamp();
    let t_end = now - now % MINUTE;

    backfill_openmetrics(promtool, work, &data, &history(t_end));
    let prom = Prometheus::start(prometheus, work, &data, &prom_config(&[]));

    // Raw source: no recording rules in Prometheus.
    check_reports(&budget_json(&prom.url, t_end, &[&slos]), "raw");

    // A PromQL error exits 2 and names the SLO and the query.
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/budget-bad-query.yml");
    let out = slogate()
        .args(["budget", "--prometheus", &prom.url, "-o", "json"])
        .arg(&bad)
        .output()
        .expect("run slogate budget");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("checkout-broken"), "{stderr}");
    assert!(
        stderr.contains("http_requests_total{code=~\"5..\"}"),
        "{stderr}"
    );

    // Recording rules generated by slogate itself, backfilled with promtool in two passes,
    // because the period rule reads the 5m rule's output and promtool evaluates every rule
    // on the raw data only. Pass 1: the 5m rule over the whole 30-day period. Pass 2, after a
    // restart that loads pass 1's blocks: every other rule, over the last 15 minutes, which is
    // all that an evaluation at `t_end` reads.
    let rules = run_ok(slogate().args(["rules", "--disable-alerts"]).arg(&slos));
    let rules = rules
        .split_once("groups:")
        .map(|(_, rest)| format!("groups:{rest}"))
        .expect("rules output has groups");
    let base = "slo:sli_error:ratio_rate5m";
    let pass1 = work.join("pass1.yml");
    let pass2 = work.join("pass2.yml");
    std::fs::write(&pass1, filter_rules(&rules, |r| r == base)).expect("write pass1");
    std::fs::write(&pass2, filter_rules(&rules, |r| r != base)).expect("write pass2");
    backfill_rules(
        promtool,
        work,
        &prom.url,
        &pass1,
        (t_end - 30 * DAY - HOUR, t_end),
        "5m",
        &data,
    );
    prom.stop();
    let prom = Prometheus::start(prometheus, work, &data, &prom_config(&[]));
    backfill_rules(
        promtool,
        work,
        &prom.url,
        &pass2,
        (t_end - 15 * MINUTE, t_end),
        "1m",
        &data,
    );
    prom.stop();
    let prom = Prometheus::start(prometheus, work, &data, &prom_config(&[]));
    let info = prom.query_at("sloth_slo_info", t_end as f64);
    assert_eq!(info.len(), 4, "backfilled info series: {info:?}");

    check_reports(&budget_json(&prom.url, t_end, &[&slos]), "recording_rules");
}

#[test]
fn budget_with_prometheus_down_exits_2_naming_slo_and_query() {
    let slos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/budget-slos.yml");
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_slogate"))
        .args([
            "budget",
            "--prometheus",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "5s",
        ])
        .arg(&slos)
        .output()
        .expect("run slogate budget");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains("checkout-availability"), "{stderr}");
    assert!(stderr.contains("query: sloth_slo_info"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
}

#[test]
fn budget_rejects_bad_flags_with_exit_2() {
    let slos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/budget-slos.yml");
    for (args, needle) in [
        (vec!["--prometheus", "not a url"], "--prometheus"),
        (
            vec!["--prometheus", "http://127.0.0.1:1", "--at", "yesterday"],
            "RFC 3339",
        ),
        (
            vec!["--prometheus", "http://127.0.0.1:1", "--period", "7d"],
            "built-in periods are 30d and 28d",
        ),
    ] {
        let out = slogate()
            .arg("budget")
            .args(&args)
            .arg(&slos)
            .output()
            .expect("run slogate budget");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
