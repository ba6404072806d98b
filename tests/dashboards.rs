//! The Grafana dashboards in `dashboards/`.
//!
//! - Structure: every file parses; uids and titles are unique; each dashboard has a Prometheus
//!   `datasource` variable that every panel, target, query variable and annotation uses (no
//!   hard-coded data source); panel ids are unique and panels do not overlap; every template
//!   variable an expression uses is defined.
//! - PromQL: every expression (panel targets, annotations, the selectors of `label_values`
//!   variables), with the template variables replaced by concrete values, is accepted by a real
//!   Prometheus (`/api/v1/format_query`).
//! - Data: every expression returns data (at least one finite value) from a real Prometheus
//!   holding history for it, and every variable query offers the value the test picks.
//!
//! The history is built here. All raw series are SYNTHETIC, backfilled with
//! `promtool tsdb create-blocks-from openmetrics`:
//! - `istio_requests_total` and `istio_request_duration_milliseconds` for the checkout
//!   workload's versions (stable v1, canary v2 promoted, canary v3 aborted) and for search;
//! - slogate's own `slogate_*` series of two replicas (leadership moves from one to the
//!   other), including the rollout, analysis, webhook, guard and decision series, the
//!   failures by kind of guard runs and rollout reconciles, the HTTP listener's connections
//!   and the coalesced and dropped alert triggers;
//! - `ALERTS` for the checkout SLO's burn-rate alerts (Prometheus writes `ALERTS` only while it
//!   evaluates alert rules live, which a backfill cannot do).
//!
//! The Sloth-named series (`slo:*`, `sloth_slo_info`) are NOT synthetic: they are slogate's own
//! generated recording rules from `rules/`, evaluated over the synthetic Istio history by
//! `promtool tsdb create-blocks-from rules`, one dependency layer at a time.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const FILES: [&str; 3] = [
    "slo-error-budget.json",
    "canary-rollout.json",
    "slogate.json",
];

/// The variables each dashboard must template by, besides `datasource`.
fn required_variables(file: &str) -> &'static [&'static str] {
    match file {
        "slo-error-budget.json" => &["service", "slo"],
        "canary-rollout.json" => &["namespace", "rollout"],
        "slogate.json" => &["instance"],
        other => panic!("unexpected dashboard {other}"),
    }
}

/// The value the test gives each template variable. They name series in the synthetic
/// history below.
fn test_value(var: &str) -> Option<&'static str> {
    Some(match var {
        "service" => "checkout",
        "slo" => "requests-availability",
        "namespace" => "shop",
        "rollout" => "checkout",
        "workload" => "checkout",
        "instance" => "slogate-b:8080",
        _ => return None,
    })
}

fn load() -> Vec<(String, Value)> {
    let dir = root().join("dashboards");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    found.sort();
    let mut want: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "dashboards/ holds exactly these dashboards");
    FILES
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).expect("read dashboard");
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: not JSON: {e}"));
            (f.to_string(), v)
        })
        .collect()
}

fn arr(v: &Value) -> &Vec<Value> {
    static EMPTY: Vec<Value> = Vec::new();
    v.as_array().unwrap_or(&EMPTY)
}

/// Every panel, with the panels nested in collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in arr(&d["panels"]) {
        out.push(p);
        out.extend(arr(&p["panels"]));
    }
    out
}

fn is_datasource_variable(v: &Value) -> bool {
    v["type"] == "datasource" && v["query"] == "prometheus"
}

fn uses_the_variable(ds: &Value) -> bool {
    ds["type"] == "prometheus" && (ds["uid"] == "${datasource}" || ds["uid"] == "$datasource")
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Instant,
    Range,
    /// A `label_values(selector, label)` variable query.
    Variable {
        name: String,
        label: String,
    },
    Annotation,
}

#[derive(Debug, Clone)]
struct Query {
    file: String,
    place: String,
    expr: String,
    kind: Kind,
}

/// Split `label_values(SELECTOR, LABEL)`.
fn label_values(q: &str) -> (String, String) {
    let inner = q
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query {q}: expected label_values(selector, label)"));
    let (sel, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("variable query {q}: expected a selector and a label"));
    (sel.trim().to_string(), label.trim().to_string())
}

fn queries(file: &str, d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in arr(&p["targets"]) {
            let instant = t["instant"] == true || t["format"] == "table";
            out.push(Query {
                file: file.into(),
                place: format!(
                    "panel {} \"{}\" target {}",
                    p["id"],
                    p["title"].as_str().unwrap_or_default(),
                    t["refId"].as_str().unwrap_or_default()
                ),
                expr: t["expr"].as_str().unwrap_or_default().to_string(),
                kind: if instant { Kind::Instant } else { Kind::Range },
            });
        }
    }
    for v in arr(&d["templating"]["list"]) {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or_default();
        let (sel, label) = label_values(q);
        out.push(Query {
            file: file.into(),
            place: format!("variable {}", v["name"].as_str().unwrap_or_default()),
            expr: sel,
            kind: Kind::Variable {
                name: v["name"].as_str().unwrap_or_default().to_string(),
                label,
            },
        });
    }
    for a in arr(&d["annotations"]["list"]) {
        if a["builtIn"] == 1 {
            continue;
        }
        out.push(Query {
            file: file.into(),
            place: format!("annotation \"{}\"", a["name"].as_str().unwrap_or_default()),
            expr: a["expr"].as_str().unwrap_or_default().to_string(),
            kind: Kind::Annotation,
        });
    }
    out
}

/// The references to template variables in an expression: `$name`, `${name}` and
/// `${name:format}`, as `(name, format)`.
fn variable_refs(expr: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'{') {
            let end = expr[i..].find('}').map(|e| i + e).expect("unclosed ${");
            let inner = &expr[i + 2..end];
            let (n, f) = match inner.split_once(':') {
                Some((n, f)) => (n.to_string(), Some(f.to_string())),
                None => (inner.to_string(), None),
            };
            out.push((n, f));
            i = end + 1;
        } else {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            assert!(end > start, "a lone $ in {expr}");
            out.push((expr[start..end].to_string(), None));
            i = end;
        }
    }
    out
}

/// Grafana's built-in variables the dashboards may use.
const BUILT_INS: [&str; 6] = [
    "__range",
    "__range_s",
    "__rate_interval",
    "__interval",
    "__from",
    "__to",
];

/// The time window the queries are evaluated over: `[from, to]` in unix seconds.
#[derive(Clone, Copy)]
struct Window {
    from: i64,
    to: i64,
}

/// The expression with every variable replaced by a concrete value, as Grafana would.
fn substitute(expr: &str, w: Window) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        let (name, fmt, len) = if after.starts_with("${") {
            let end = after.find('}').ok_or("unclosed ${")?;
            let inner = &after[2..end];
            let (n, f) = match inner.split_once(':') {
                Some((n, f)) => (n, Some(f)),
                None => (inner, None),
            };
            (n.to_string(), f.map(str::to_string), end + 1)
        } else {
            let n: String = after[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let len = 1 + n.len();
            (n, None, len)
        };
        let value = match (name.as_str(), fmt.as_deref()) {
            ("__range", None) => format!("{}s", w.to - w.from),
            ("__range_s", None) => format!("{}", w.to - w.from),
            // Grafana: max(4 × scrape interval, step + scrape interval); the synthetic series
            // are sampled every minute.
            ("__rate_interval", None) => "4m".into(),
            ("__interval", None) => "1m".into(),
            ("__from", Some("date:seconds")) => w.from.to_string(),
            ("__to", Some("date:seconds")) => w.to.to_string(),
            ("__from", None) => (w.from * 1000).to_string(),
            ("__to", None) => (w.to * 1000).to_string(),
            (n, None) => test_value(n)
                .ok_or_else(|| format!("no test value for ${n}"))?
                .to_string(),
            (n, Some(f)) => return Err(format!("unsupported format ${{{n}:{f}}}")),
        };
        out.push_str(&value);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Structure

#[test]
fn dashboards_are_importable_and_templated() {
    let all = load();
    let mut uids = HashSet::new();
    let mut titles = HashSet::new();
    let readme = std::fs::read_to_string(root().join("dashboards/README.md")).expect("README");
    for (file, d) in &all {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: uid {uid:?} (1-40 chars)"
        );
        assert!(uids.insert(uid.to_string()), "{file}: duplicate uid {uid}");
        let title = d["title"].as_str().unwrap_or_default();
        assert!(
            !title.is_empty() && titles.insert(title.to_string()),
            "{file}: title"
        );
        assert!(d["id"].is_null(), "{file}: no instance-specific id");
        assert!(
            d["schemaVersion"].as_i64().unwrap_or(0) >= 39,
            "{file}: schemaVersion"
        );
        assert!(
            readme.contains(file) && readme.contains(uid),
            "README covers {file}"
        );

        // Templating: a Prometheus data source variable, the required query variables, all
        // querying through the data source variable.
        let vars = arr(&d["templating"]["list"]);
        let ds_vars: Vec<&Value> = vars.iter().filter(|v| is_datasource_variable(v)).collect();
        assert_eq!(ds_vars.len(), 1, "{file}: one datasource variable");
        assert_eq!(ds_vars[0]["name"], "datasource", "{file}");
        let names: BTreeSet<String> = vars
            .iter()
            .map(|v| v["name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names.len(), vars.len(), "{file}: variable names unique");
        for r in required_variables(file) {
            assert!(names.contains(*r), "{file}: templated by {r}");
        }
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert!(
                uses_the_variable(&v["datasource"]),
                "{file}: variable {} uses the datasource variable",
                v["name"]
            );
        }

        // Panels: unique ids, on the 24-column grid without overlaps, each querying through
        // the data source variable.
        let ps = panels(d);
        let mut ids = HashSet::new();
        let mut boxes: Vec<(i64, i64, i64, i64, String)> = Vec::new();
        for p in &ps {
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{file}: panel id"));
            assert!(ids.insert(id), "{file}: duplicate panel id {id}");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_i64().unwrap(),
                g["y"].as_i64().unwrap(),
                g["w"].as_i64().unwrap(),
                g["h"].as_i64().unwrap(),
            );
            assert!(
                x >= 0 && w > 0 && x + w <= 24 && h > 0,
                "{file}: panel {id} grid"
            );
            let here = format!("panel {id} \"{}\"", p["title"].as_str().unwrap_or_default());
            for (bx, by, bw, bh, other) in &boxes {
                let overlap = x < bx + bw && *bx < x + w && y < by + bh && *by < y + h;
                assert!(!overlap, "{file}: {here} overlaps {other}");
            }
            boxes.push((x, y, w, h, here.clone()));
            if p["type"] == "row" || p["type"] == "text" {
                continue;
            }
            assert!(
                !p["title"].as_str().unwrap_or_default().is_empty(),
                "{here}"
            );
            assert!(
                uses_the_variable(&p["datasource"]),
                "{file}: {here} uses the datasource variable"
            );
            let targets = arr(&p["targets"]);
            assert!(!targets.is_empty(), "{file}: {here} has queries");
            let mut refs = HashSet::new();
            for t in targets {
                assert!(refs.insert(t["refId"].to_string()), "{file}: {here} refIds");
                assert!(
                    uses_the_variable(&t["datasource"]),
                    "{file}: {here} target {} uses the datasource variable",
                    t["refId"]
                );
                assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()));
            }
        }
        for a in arr(&d["annotations"]["list"]) {
            if a["builtIn"] == 1 {
                continue;
            }
            assert!(uses_the_variable(&a["datasource"]), "{file}: annotation");
        }

        // Every variable an expression uses is defined (or one of Grafana's).
        for q in queries(file, d) {
            for (n, _) in variable_refs(&q.expr) {
                assert!(
                    names.contains(&n) || BUILT_INS.contains(&n.as_str()),
                    "{file}: {}: ${n} is not defined",
                    q.place
                );
            }
        }
        // No data source is named by uid anywhere: only the variable.
        let text = d.to_string();
        assert!(
            !text.contains("DS_PROMETHEUS"),
            "{file}: no import-time inputs"
        );
    }
    assert_eq!(uids.len(), FILES.len());
}

/// The contents the issue asks for, found by the series each dashboard must query.
#[test]
fn dashboards_show_what_they_promise() {
    let all = load();
    let exprs = |file: &str| -> String {
        let (_, d) = all.iter().find(|(f, _)| f == file).expect("dashboard");
        queries(file, d)
            .iter()
            .map(|q| q.expr.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let slo = exprs("slo-error-budget.json");
    for s in [
        "slo:period_error_budget_remaining:ratio",
        "slo:sli_error:ratio_rate",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "sloth_slo_info",
        "ALERTS{",
        "sort_desc",
    ] {
        assert!(slo.contains(s), "SLO dashboard queries {s}");
    }
    assert!(
        !slo.contains("slogate_"),
        "the SLO dashboard works for Sloth users"
    );
    let canary = exprs("canary-rollout.json");
    for s in [
        "slogate_rollout_weight",
        "slogate_rollout_phase",
        "slogate_rollout_step",
        "slogate_rollout_step_remaining_seconds",
        "slogate_analysis_result_total",
        "slogate_analysis_p_value",
        "slogate_decisions_total",
        "istio_requests_total",
        "istio_request_duration_milliseconds_bucket",
        "histogram_quantile(0.99",
    ] {
        assert!(canary.contains(s), "canary dashboard queries {s}");
    }
    let daemon = exprs("slogate.json");
    for s in [
        "slogate_evaluation_duration_seconds_bucket",
        "slogate_evaluations_total",
        "slogate_prometheus_queries_total",
        "slogate_prometheus_query_errors_total",
        "slogate_webhook_requests_total",
        "slogate_webhook_alerts_total",
        "slogate_leader",
        "slogate_guard_rollbacks_total",
        "slogate_guard_frozen",
        "slogate_decisions_total",
        "slogate_rollouts{",
        "slogate_rollout_source_errors_total",
        "slogate_guard_failures_total",
        "slogate_rollout_reconcile_failures_total",
        "slogate_http_connections{",
        "slogate_http_connections_accepted_total",
        "slogate_http_connections_evicted_total",
        "slogate_http_connections_refused_total",
        "slogate_http_header_timeouts_total",
        "slogate_alert_triggers_coalesced_total",
        "slogate_webhook_triggers_dropped_total",
    ] {
        assert!(daemon.contains(s), "slogate dashboard queries {s}");
    }
    // Decisions are annotations on the canary dashboard.
    let (_, canary_d) = all
        .iter()
        .find(|(f, _)| f == "canary-rollout.json")
        .unwrap();
    assert!(arr(&canary_d["annotations"]["list"])
        .iter()
        .any(|a| a["expr"]
            .as_str()
            .is_some_and(|e| e.contains("slogate_decisions_total"))));
}

// ---------------------------------------------------------------------------------------
// PromQL validity

fn all_queries() -> Vec<Query> {
    load().iter().flat_map(|(f, d)| queries(f, d)).collect()
}

#[test]
fn every_query_is_valid_promql() {
    let Some(prometheus) = require_bin("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let prom = Prometheus::start(&prometheus, dir.path(), &data, &prom_config(&[]));
    let now = chrono::Utc::now().timestamp();
    let w = Window {
        from: now - 6 * 3600,
        to: now,
    };
    let qs = all_queries();
    assert!(qs.len() >= 60, "{} queries", qs.len());
    let mut bad = Vec::new();
    for q in &qs {
        let expr = match substitute(&q.expr, w) {
            Ok(e) => e,
            Err(e) => {
                bad.push(format!("{} {}: {e}", q.file, q.place));
                continue;
            }
        };
        if let Err(e) = prom.format_query(&expr) {
            bad.push(format!("{} {}: {e}\n  {expr}", q.file, q.place));
        }
    }
    assert!(bad.is_empty(), "invalid PromQL:\n{}", bad.join("\n"));
    // The check has teeth: a broken expression is refused.
    assert!(prom.format_query("sum by (le (rate(x[5m]))").is_err());
}

#[test]
fn substitution_covers_grafana_variables() {
    let w = Window {
        from: 1_700_000_000,
        to: 1_700_021_600,
    };
    assert_eq!(
        substitute(
            "x{a=\"$service\",b=~\"${slo}\"}[$__rate_interval] @ ${__from:date:seconds} [$__range:5m]",
            w
        )
        .unwrap(),
        "x{a=\"checkout\",b=~\"requests-availability\"}[4m] @ 1700000000 [21600s:5m]"
    );
    assert!(substitute("$nope", w).is_err());
    assert!(substitute("${service:csv}", w).is_err());
    assert_eq!(
        variable_refs("a $b ${c} ${__from:date:seconds}"),
        [
            ("b".to_string(), None),
            ("c".to_string(), None),
            ("__from".to_string(), Some("date:seconds".to_string()))
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Synthetic history

const MIN: i64 = 60;
const HOUR: i64 = 3600;

/// OpenMetrics text, series by series, families grouped (as the format requires).
#[derive(Default)]
struct OpenMetrics {
    /// family → (type, series key → sample lines)
    families: BTreeMap<String, (String, BTreeMap<String, Vec<String>>)>,
}

impl OpenMetrics {
    /// One sample of `sample_name` (e.g. `x_total` of counter family `x`) with labels.
    fn add(
        &mut self,
        family: &str,
        typ: &str,
        sample: &str,
        labels: &[(&str, &str)],
        v: f64,
        t: i64,
    ) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let series = format!("{sample}{{{}}}", labels.join(","));
        let fam = self
            .families
            .entry(family.to_string())
            .or_insert_with(|| (typ.to_string(), BTreeMap::new()));
        assert_eq!(fam.0, typ, "{family}: one type");
        fam.1
            .entry(series.clone())
            .or_default()
            .push(format!("{series} {v} {t}\n"));
    }
    fn gauge(&mut self, name: &str, labels: &[(&str, &str)], v: f64, t: i64) {
        self.add(name, "gauge", name, labels, v, t);
    }
    fn counter(&mut self, family: &str, labels: &[(&str, &str)], v: f64, t: i64) {
        self.add(family, "counter", &format!("{family}_total"), labels, v, t);
    }
    fn render(&self) -> String {
        let mut out = String::new();
        for (name, (typ, series)) in &self.families {
            out.push_str(&format!("# TYPE {name} {typ}\n"));
            for lines in series.values() {
                for l in lines {
                    out.push_str(l);
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// A running total per series.
#[derive(Default)]
struct Totals(BTreeMap<String, f64>);

impl Totals {
    fn add(&mut self, key: &str, v: f64) -> f64 {
        let t = self.0.entry(key.to_string()).or_default();
        *t += v;
        *t
    }
}

/// The rollout timeline of `shop/checkout`, relative to the end of the history: v2 goes
/// 10→25→50→75→100 and is promoted; v3 (8% errors) starts at 10% and is aborted; the guard
/// then reverts and freezes checkout.
struct Timeline {
    end: i64,
}

const PHASES: [&str; 6] = [
    "Pending",
    "Progressing",
    "Promoting",
    "Succeeded",
    "Aborting",
    "Failed",
];

impl Timeline {
    fn rel(&self, t: i64) -> i64 {
        t - self.end
    }
    /// (phase, canary weight %, step index, canary version)
    fn rollout(&self, t: i64) -> (&'static str, f64, f64, Option<&'static str>) {
        let r = self.rel(t);
        if r < -5 * HOUR {
            ("Pending", 0.0, 0.0, None)
        } else if r < -3 * HOUR {
            let step = ((r + 5 * HOUR) / (30 * MIN)).min(4);
            let w = [10.0, 25.0, 50.0, 75.0, 100.0][step as usize];
            ("Progressing", w, step as f64, Some("v2"))
        } else if r < -150 * MIN {
            ("Promoting", 100.0, 4.0, Some("v2"))
        } else if r < -90 * MIN {
            ("Succeeded", 0.0, 4.0, None)
        } else if r < -60 * MIN {
            ("Progressing", 10.0, 0.0, Some("v3"))
        } else if r < -55 * MIN {
            ("Aborting", 0.0, 0.0, None)
        } else {
            ("Failed", 0.0, 0.0, None)
        }
    }
    fn stable(&self, t: i64) -> &'static str {
        if self.rel(t) < -150 * MIN {
            "v1"
        } else {
            "v2"
        }
    }
    /// The replica holding the Lease.
    fn leader(&self, t: i64) -> &'static str {
        if self.rel(t) < -2 * HOUR {
            "slogate-a:8080"
        } else {
            "slogate-b:8080"
        }
    }
    /// Decisions (kind, action) taken in the minute ending at `t`.
    fn decisions(&self, t: i64) -> Vec<(&'static str, &'static str)> {
        let r = self.rel(t);
        let mut out = Vec::new();
        let at = |x: i64| r == x;
        if at(-5 * HOUR) || at(-90 * MIN) {
            out.push(("rollout", "start"));
        }
        for s in 1..=4 {
            if at(-5 * HOUR + s * 30 * MIN) {
                out.push(("rollout", "step"));
            }
        }
        if at(-150 * MIN) {
            out.push(("rollout", "promote"));
        }
        if at(-60 * MIN) {
            out.push(("rollout", "abort"));
        }
        if at(-55 * MIN) {
            out.push(("guard", "rollback"));
            out.push(("guard", "freeze"));
        }
        out
    }
}

const LE_MS: [&str; 10] = [
    "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "+Inf",
];

/// (error ratio, cumulative latency distribution over LE_MS) of a version.
fn version_profile(version: &str) -> (f64, [f64; 10]) {
    match version {
        "v3" => (0.08, [0.02, 0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99, 1.0, 1.0]),
        "v2" => (
            0.002,
            [0.05, 0.2, 0.5, 0.76, 0.91, 0.975, 0.993, 0.998, 1.0, 1.0],
        ),
        _ => (
            0.001,
            [0.05, 0.2, 0.5, 0.75, 0.9, 0.97, 0.992, 0.998, 1.0, 1.0],
        ),
    }
}

/// SYNTHETIC Istio series, one sample a minute over `[start, end]`.
fn istio_history(om: &mut OpenMetrics, tl: &Timeline, start: i64, end: i64) {
    let mut totals = Totals::default();
    let mut t = start;
    while t <= end {
        let (_, weight, _, canary) = tl.rollout(t);
        let stable = tl.stable(t);
        let mut shares = vec![("checkout", stable, 1.0 - weight / 100.0)];
        if let Some(c) = canary {
            if c == stable {
                shares[0].2 = 1.0;
            } else {
                shares.push(("checkout", c, weight / 100.0));
            }
        }
        shares.push(("search", "v1", 1.0));
        for (workload, version, share) in shares {
            let rpm = if workload == "checkout" { 600.0 } else { 300.0 };
            let n = rpm * share;
            let (err, cdf) = version_profile(version);
            let err = if workload == "search" { 0.003 } else { err };
            let base = [
                ("reporter", "destination"),
                ("destination_workload_namespace", "shop"),
                ("destination_workload", workload),
                ("destination_service_name", workload),
                ("destination_version", version),
            ];
            for (code, frac) in [("200", 1.0 - err), ("503", err)] {
                let key = format!("{workload}{version}{code}");
                let v = totals.add(&key, n * frac);
                let mut l = base.to_vec();
                l.push(("response_code", code));
                om.counter("istio_requests", &l, v, t);
            }
            let fam = "istio_request_duration_milliseconds";
            for (i, le) in LE_MS.iter().enumerate() {
                let v = totals.add(&format!("{workload}{version}le{le}"), n * cdf[i]);
                let mut l = base.to_vec();
                l.push(("le", le));
                om.add(fam, "histogram", &format!("{fam}_bucket"), &l, v, t);
            }
            let c = totals.add(&format!("{workload}{version}count"), n);
            om.add(fam, "histogram", &format!("{fam}_count"), &base, c, t);
            let s = totals.add(&format!("{workload}{version}sum"), n * 40.0);
            om.add(fam, "histogram", &format!("{fam}_sum"), &base, s, t);
        }
        t += MIN;
    }
}

/// The SLOs of rules/ (sloth_id, service, slo).
const SLOS: [(&str, &str, &str); 3] = [
    (
        "checkout-requests-availability",
        "checkout",
        "requests-availability",
    ),
    ("checkout-requests-latency", "checkout", "requests-latency"),
    (
        "search-requests-availability",
        "search",
        "requests-availability",
    ),
];

/// SYNTHETIC series of two slogate replicas, one sample a minute over `[start, end]`.
fn slogate_history(om: &mut OpenMetrics, tl: &Timeline, start: i64, end: i64) {
    const BUCKETS: [&str; 13] = [
        "0.01", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "60.0", "120.0",
        "+Inf",
    ];
    let mut totals = Totals::default();
    let instances = ["slogate-a:8080", "slogate-b:8080"];
    let mut t = start;
    while t <= end {
        let leader = tl.leader(t);
        for (n, inst) in instances.iter().enumerate() {
            let il = [("instance", *inst), ("job", "slogate")];
            let lab = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
                let mut l = il.to_vec();
                l.extend_from_slice(extra);
                l
            };
            let is_leader = leader == *inst;
            om.gauge("slogate_leader", &il, f64::from(u8::from(is_leader)), t);
            om.gauge("slogate_slos_loaded", &il, 3.0, t);
            om.gauge("slogate_spec_files_with_errors", &il, 0.0, t);

            // An evaluation every 5 minutes, offset per replica; a failed query every 30.
            let offset = 60 * n as i64;
            let evaluates = (t - offset).rem_euclid(5 * MIN) == 0;
            let fails = (t - offset).rem_euclid(30 * MIN) == 0;
            let last_eval = t - (t - offset).rem_euclid(5 * MIN);
            om.gauge(
                "slogate_last_evaluation_timestamp_seconds",
                &il,
                last_eval as f64,
                t,
            );
            let ev = totals.add(&format!("{inst}ev"), f64::from(u8::from(evaluates)));
            om.counter("slogate_evaluations", &il, ev, t);
            let q = totals.add(&format!("{inst}q"), if evaluates { 17.0 } else { 0.0 });
            om.counter("slogate_prometheus_queries", &il, q, t);
            let failed = f64::from(u8::from(evaluates && fails));
            let qe = totals.add(&format!("{inst}qe"), failed);
            om.counter("slogate_prometheus_query_errors", &il, qe, t);
            let ee = totals.add(&format!("{inst}ee"), failed);
            om.counter("slogate_evaluation_errors", &il, ee, t);
            for (id, svc, slo) in SLOS {
                let l = lab(&[("sloth_id", id), ("sloth_service", svc), ("sloth_slo", slo)]);
                let hit = failed * f64::from(u8::from(id.starts_with("search")));
                let se = totals.add(&format!("{inst}{id}se"), hit);
                om.counter("slogate_slo_evaluation_errors", &l, se, t);
                // Budget consumed: checkout availability climbs past 0.8 after v3.
                let r = tl.rel(t);
                let consumed = match id {
                    "checkout-requests-availability" if r >= -60 * MIN => 0.86,
                    "checkout-requests-availability" => 0.31,
                    "checkout-requests-latency" => 0.12,
                    _ => 0.2,
                };
                om.gauge("slogate_slo_budget_consumed_ratio", &l, consumed, t);
                om.gauge("slogate_slo_budget_remaining_ratio", &l, 1.0 - consumed, t);
                om.gauge("slogate_slo_error_ratio", &l, consumed * 0.001, t);
                om.gauge("slogate_slo_no_data", &l, 0.0, t);
                for window in ["5m", "1h", "6h"] {
                    let mut wl = l.clone();
                    wl.push(("window", window));
                    om.gauge("slogate_slo_burn_rate", &wl, consumed * 1.5, t);
                }
            }
            let dur = 0.2 + 0.05 * n as f64;
            for b in BUCKETS {
                let le: f64 = if b == "+Inf" {
                    f64::INFINITY
                } else {
                    b.parse().unwrap()
                };
                let hit = f64::from(u8::from(evaluates && dur <= le));
                let v = totals.add(&format!("{inst}b{b}"), hit);
                om.add(
                    "slogate_evaluation_duration_seconds",
                    "histogram",
                    "slogate_evaluation_duration_seconds_bucket",
                    &lab(&[("le", b)]),
                    v,
                    t,
                );
            }
            let c = totals.add(&format!("{inst}dc"), f64::from(u8::from(evaluates)));
            om.add(
                "slogate_evaluation_duration_seconds",
                "histogram",
                "slogate_evaluation_duration_seconds_count",
                &il,
                c,
                t,
            );
            let s = totals.add(&format!("{inst}ds"), if evaluates { dur } else { 0.0 });
            om.add(
                "slogate_evaluation_duration_seconds",
                "histogram",
                "slogate_evaluation_duration_seconds_sum",
                &il,
                s,
                t,
            );

            // Alertmanager posts every 10 minutes to either replica; a wrong token once an
            // hour; every other alert a duplicate, one in six unknown.
            let post = (t / MIN + n as i64 * 5).rem_euclid(10) == 0;
            let minute = t / MIN;
            for (code, hit) in [("200", post), ("401", minute.rem_euclid(60) == 7 && n == 0)] {
                let v = totals.add(&format!("{inst}w{code}"), f64::from(u8::from(hit)));
                om.counter("slogate_webhook_requests", &lab(&[("code", code)]), v, t);
            }
            for (result, hit) in [
                ("matched", post),
                ("duplicate", post && minute.rem_euclid(20) < 10),
                ("unknown", post && minute.rem_euclid(60) < 10),
            ] {
                let v = totals.add(&format!("{inst}a{result}"), f64::from(u8::from(hit)));
                om.counter("slogate_webhook_alerts", &lab(&[("result", result)]), v, t);
            }

            // The rollout source: checkout and search run on both replicas; a third Rollout is
            // rejected for an hour; the API answers one reading in 60 with an error.
            let rejected = (-150 * MIN..-90 * MIN).contains(&tl.rel(t));
            om.gauge("slogate_rollouts", &lab(&[("state", "running")]), 2.0, t);
            let rj = f64::from(u8::from(rejected));
            om.gauge("slogate_rollouts", &lab(&[("state", "rejected")]), rj, t);
            let source_failed = (t / MIN + n as i64 * 7).rem_euclid(60) == 0;
            let sf = totals.add(&format!("{inst}rs"), f64::from(u8::from(source_failed)));
            om.counter("slogate_rollout_source_errors", &il, sf, t);

            // The guard's series: checkout is rolled back once and frozen after.
            let frozen = tl.rel(t) >= -55 * MIN;
            for app in ["checkout", "search"] {
                let f = f64::from(u8::from(frozen && app == "checkout"));
                om.gauge("slogate_guard_frozen", &lab(&[("app", app)]), f, t);
            }

            // The HTTP listener: Prometheus, the probes and Alertmanager hold a few connections
            // and open a few a minute; now and then a slow client times out on its request
            // head, a burst evicts an idle connection, and once a busy moment refuses one.
            let open = 2.0 + (minute + n as i64).rem_euclid(4) as f64;
            om.gauge("slogate_http_connections", &il, open, t);
            let accepted = 3.0 + f64::from(u8::from(post));
            let ac = totals.add(&format!("{inst}ha"), accepted);
            om.counter("slogate_http_connections_accepted", &il, ac, t);
            for (family, hit) in [
                (
                    "slogate_http_connections_evicted",
                    minute.rem_euclid(45) == 13 && n == 0,
                ),
                (
                    "slogate_http_connections_refused",
                    minute.rem_euclid(120) == 31 && n == 1,
                ),
                (
                    "slogate_http_header_timeouts",
                    (minute + 7 * n as i64).rem_euclid(20) == 3,
                ),
            ] {
                let v = totals.add(&format!("{inst}{family}"), f64::from(u8::from(hit)));
                om.counter(family, &il, v, t);
            }
            // Alert intake: a repeated alert while an evaluation of its SLO waits is folded
            // into it; once in three hours the queue is full and a trigger is dropped.
            let coalesced = post && minute.rem_euclid(30) < 10;
            let co = totals.add(&format!("{inst}co"), f64::from(u8::from(coalesced)));
            om.counter("slogate_alert_triggers_coalesced", &il, co, t);
            let dropped = minute.rem_euclid(180) == 17 && n == 0;
            let dr = totals.add(&format!("{inst}dr"), f64::from(u8::from(dropped)));
            om.counter("slogate_webhook_triggers_dropped", &il, dr, t);

            if !is_leader {
                continue;
            }
            // Only the leader runs the guard and the rollouts: a guard run fails reading the
            // state once, on the rejected push before the rollback and on a contended state
            // document after it; reconciles fail on a state read, a status conflict and the
            // v3 analysis template.
            let r = tl.rel(t);
            for (kind, at) in [
                ("state", -200 * MIN),
                ("git", -58 * MIN),
                ("contended", -30 * MIN),
            ] {
                let v = totals.add(&format!("{inst}gf{kind}"), f64::from(u8::from(r == at)));
                om.counter("slogate_guard_failures", &lab(&[("kind", kind)]), v, t);
            }
            for (kind, at) in [
                ("state", -140 * MIN),
                ("conflict", -100 * MIN),
                ("template", -75 * MIN),
            ] {
                let v = totals.add(&format!("{inst}rf{kind}"), f64::from(u8::from(r == at)));
                om.counter(
                    "slogate_rollout_reconcile_failures",
                    &lab(&[("kind", kind)]),
                    v,
                    t,
                );
            }
            // Only the leader decides, drives the rollout and records the analysis.
            let decisions = tl.decisions(t);
            for (kind, action) in [
                ("rollout", "start"),
                ("rollout", "step"),
                ("rollout", "promote"),
                ("rollout", "abort"),
                ("guard", "rollback"),
                ("guard", "freeze"),
            ] {
                let hit = decisions.contains(&(kind, action));
                let v = totals.add(&format!("{inst}d{kind}{action}"), f64::from(u8::from(hit)));
                om.counter(
                    "slogate_decisions",
                    &lab(&[("kind", kind), ("action", action)]),
                    v,
                    t,
                );
            }
            let rb = totals.add(
                &format!("{inst}rb"),
                f64::from(u8::from(tl.rel(t) == -55 * MIN)),
            );
            om.counter(
                "slogate_guard_rollbacks",
                &lab(&[
                    ("app", "checkout"),
                    ("slo", "checkout-requests-availability"),
                ]),
                rb,
                t,
            );

            let ro = [("namespace", "shop"), ("rollout", "checkout")];
            let (phase, weight, step, canary) = tl.rollout(t);
            om.gauge("slogate_rollout_weight", &lab(&ro), weight, t);
            om.gauge("slogate_rollout_step", &lab(&ro), step, t);
            // Each step holds 30 minutes; 0 outside Progressing.
            let left = if phase == "Progressing" {
                30 * MIN - (tl.rel(t) + 5 * HOUR).rem_euclid(30 * MIN)
            } else {
                0
            };
            om.gauge(
                "slogate_rollout_step_remaining_seconds",
                &lab(&ro),
                left as f64,
                t,
            );
            for p in PHASES {
                let mut l = lab(&ro);
                l.push(("phase", p));
                om.gauge(
                    "slogate_rollout_phase",
                    &l,
                    f64::from(u8::from(p == phase)),
                    t,
                );
            }
            // Two checks a minute per metric while progressing; the first minute of each step
            // has too little traffic (inconclusive); v3 fails success rate and the judge.
            let progressing = phase == "Progressing";
            let fresh = (tl.rel(t) + 5 * HOUR).rem_euclid(30 * MIN) < MIN;
            for metric in ["request-success-rate", "request-duration", "judge"] {
                let bad = canary == Some("v3") && metric != "request-duration";
                for result in ["pass", "fail", "inconclusive"] {
                    let hit = progressing
                        && match result {
                            "inconclusive" => fresh,
                            "fail" => !fresh && bad,
                            _ => !fresh && !bad,
                        };
                    let mut l = lab(&ro);
                    l.push(("metric", metric));
                    l.push(("result", result));
                    let v = totals.add(
                        &format!("{inst}r{metric}{result}"),
                        if hit { 2.0 } else { 0.0 },
                    );
                    om.counter("slogate_analysis_result", &l, v, t);
                }
                if progressing {
                    let since = (tl.rel(t) + 5 * HOUR).rem_euclid(30 * MIN) as f64 / 60.0;
                    let p = if bad {
                        (0.5 * (-0.3 * since).exp()).max(1e-4)
                    } else {
                        0.4 + 0.01 * since
                    };
                    let mut l = lab(&ro);
                    l.push(("metric", metric));
                    om.gauge("slogate_analysis_p_value", &l, p, t);
                }
            }
        }
        t += MIN;
    }
}

/// SYNTHETIC `ALERTS` of the checkout availability SLO (the labels of its alert rules in
/// rules/checkout.yml): the page alert during the v3 incident, the ticket alert since then.
fn alerts_history(om: &mut OpenMetrics, tl: &Timeline, end: i64) {
    let base = [
        ("alertname", "CheckoutHighErrorRate"),
        ("alertstate", "firing"),
        ("category", "availability"),
        ("sloth_id", "checkout-requests-availability"),
        ("sloth_service", "checkout"),
        ("sloth_slo", "requests-availability"),
    ];
    for (sev, sloth_sev, from, to) in [
        ("critical", "page", -80 * MIN, -55 * MIN),
        ("warning", "ticket", -70 * MIN, 0),
    ] {
        let mut l = base.to_vec();
        l.push(("severity", sev));
        l.push(("sloth_severity", sloth_sev));
        let mut t = tl.end + from;
        while t <= (tl.end + to).min(end) {
            om.gauge("ALERTS", &l, 1.0, t);
            t += MIN;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recording rules, backfilled layer by layer

/// The recording rules of rules/*.yml, in dependency layers: layer 0 reads raw series only,
/// layer n reads rules of layers < n. promtool evaluates a backfill against what Prometheus
/// already holds, so each layer needs the previous ones loaded.
fn rule_layers() -> Vec<Vec<slogate::model::yaml::Value>> {
    let mut rules = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("rules"))
        .expect("rules/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    for f in files {
        let doc: slogate::model::yaml::Value =
            slogate::model::yaml::from_str(&std::fs::read_to_string(&f).expect("read rules"))
                .expect("yaml");
        for g in doc["groups"].as_sequence().expect("groups") {
            for r in g["rules"].as_sequence().expect("rules") {
                if r["record"].is_string() {
                    rules.push(r.clone());
                }
            }
        }
    }
    let names: BTreeSet<String> = rules
        .iter()
        .map(|r| r["record"].as_str().unwrap().to_string())
        .collect();
    let reads = |expr: &str, name: &str| -> bool {
        expr.match_indices(name).any(|(i, _)| {
            let next = expr[i + name.len()..].chars().next();
            let prev = expr[..i].chars().next_back();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        })
    };
    let deps_of: Vec<(String, Vec<String>)> = rules
        .iter()
        .map(|r| {
            let record = r["record"].as_str().unwrap().to_string();
            let expr = r["expr"].as_str().unwrap();
            let deps = names
                .iter()
                .filter(|n| **n != record && reads(expr, n))
                .cloned()
                .collect();
            (record, deps)
        })
        .collect();
    let mut layer_of: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let mut changed = false;
        for name in &names {
            if layer_of.contains_key(name) {
                continue;
            }
            let mut layer = Some(0);
            for (_, deps) in deps_of.iter().filter(|(r, _)| r == name) {
                for d in deps {
                    layer = match (layer, layer_of.get(d)) {
                        (Some(l), Some(x)) => Some(l.max(x + 1)),
                        _ => None,
                    };
                }
            }
            if let Some(l) = layer {
                layer_of.insert(name.clone(), l);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    assert_eq!(layer_of.len(), names.len(), "cyclic rules? {layer_of:?}");
    let depth = layer_of.values().copied().max().unwrap_or(0);
    let mut layers = vec![Vec::new(); depth + 1];
    for r in rules {
        layers[layer_of[r["record"].as_str().unwrap()]].push(r);
    }
    layers
}

/// Prometheus holding the whole history, and the window the dashboards are evaluated over.
fn prometheus_with_history(
    prometheus: &Path,
    promtool: &Path,
    work: &Path,
) -> (Prometheus, Window) {
    let now = chrono::Utc::now().timestamp();
    let end = now - now % MIN;
    let start = end - 12 * HOUR;
    let tl = Timeline { end };
    let data = work.join("data");

    let mut om = OpenMetrics::default();
    istio_history(&mut om, &tl, start, end);
    slogate_history(&mut om, &tl, start, end);
    alerts_history(&mut om, &tl, end);
    backfill_openmetrics(promtool, work, &data, &om.render());

    let mut prom = Prometheus::start(prometheus, work, &data, &prom_config(&[]));
    let layers = rule_layers();
    assert!(
        layers.len() >= 3,
        "rules/ has dependent rules: {}",
        layers.len()
    );
    for (i, layer) in layers.iter().enumerate() {
        let file = work.join(format!("layer{i}.yml"));
        let doc =
            serde_json::json!({"groups": [{"name": format!("backfill-{i}"), "rules": layer}]});
        std::fs::write(&file, slogate::model::yaml::to_string(&doc).expect("yaml"))
            .expect("write rules");
        backfill_rules(
            promtool,
            work,
            &prom.url,
            &file,
            (start + 10 * MIN, end),
            "1m",
            &data,
        );
        prom.stop();
        prom = Prometheus::start(prometheus, work, &data, &prom_config(&[]));
    }
    let w = Window {
        from: end - 6 * HOUR,
        to: end,
    };
    (prom, w)
}

fn api(prom: &Prometheus, path: &str, form: &[(&str, String)]) -> serde_json::Value {
    let v: serde_json::Value = http()
        .post(format!("{}{path}", prom.url))
        .form(form)
        .send()
        .expect("query prometheus")
        .json()
        .expect("prometheus answers JSON");
    assert_eq!(v["status"], "success", "{path} {form:?}: {v}");
    v["data"].clone()
}

fn finite(s: &serde_json::Value) -> bool {
    s.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .is_some_and(f64::is_finite)
}

/// What a query returned, or why it counts as no data.
fn run(prom: &Prometheus, q: &Query, expr: &str, w: Window) -> Result<usize, String> {
    match &q.kind {
        Kind::Instant => {
            let d = api(
                prom,
                "/api/v1/query",
                &[("query", expr.into()), ("time", w.to.to_string())],
            );
            let n = arr(&d["result"])
                .iter()
                .filter(|s| finite(&s["value"][1]))
                .count();
            if n == 0 {
                return Err(format!("no finite value at the end of the range: {d}"));
            }
            Ok(n)
        }
        Kind::Range | Kind::Annotation => {
            let d = api(
                prom,
                "/api/v1/query_range",
                &[
                    ("query", expr.into()),
                    ("start", w.from.to_string()),
                    ("end", w.to.to_string()),
                    ("step", "60".into()),
                ],
            );
            let n = arr(&d["result"])
                .iter()
                .filter(|s| arr(&s["values"]).iter().any(|v| finite(&v[1])))
                .count();
            if n == 0 {
                return Err("no finite value over the range".into());
            }
            Ok(n)
        }
        Kind::Variable { name, label } => {
            let d = api(
                prom,
                "/api/v1/query",
                &[
                    ("query", format!("group by ({label}) ({expr})")),
                    ("time", w.to.to_string()),
                ],
            );
            let values: BTreeSet<String> = arr(&d["result"])
                .iter()
                .filter_map(|s| s["metric"][label.as_str()].as_str())
                .map(str::to_string)
                .collect();
            if let Some(want) = test_value(name) {
                if !values.contains(want) {
                    return Err(format!("offers {values:?}, not {want}"));
                }
            } else if values.is_empty() {
                return Err("offers no value".into());
            }
            Ok(values.len())
        }
    }
}

#[test]
fn every_query_returns_data_from_a_real_prometheus() {
    let (Some(prometheus), Some(promtool)) = (require_bin("prometheus"), require_bin("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (prom, w) = prometheus_with_history(&prometheus, &promtool, dir.path());

    // The recording rules really were evaluated over the history.
    let info = prom.query_at("sloth_slo_info", w.to as f64);
    assert_eq!(info.len(), SLOS.len(), "{info:?}");
    let remaining = prom.query_at("slo:period_error_budget_remaining:ratio", w.to as f64);
    assert_eq!(remaining.len(), SLOS.len(), "{remaining:?}");

    let qs = all_queries();
    let mut empty = Vec::new();
    for q in &qs {
        let expr = substitute(&q.expr, w).unwrap_or_else(|e| panic!("{}: {e}", q.place));
        if let Err(why) = run(&prom, q, &expr, w) {
            empty.push(format!("{} {}: {why}\n  {expr}", q.file, q.place));
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} queries return no data:\n{}",
        empty.len(),
        qs.len(),
        empty.join("\n")
    );
}
