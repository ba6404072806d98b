//! OpenSLO parsing: `openslo/v1alpha` as Sloth reads it (Sloth's examples) and `openslo/v1`
//! SLO + SLI (tests/fixtures/specs/openslo-v1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use slogate::slo::spec::{load_paths, parse_str, LoadReport};
use slogate::slo::{PromDuration, Sli, SpecKind};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/specs")
        .join(path)
}

fn load_clean(paths: &[&str]) -> LoadReport {
    let paths: Vec<PathBuf> = paths.iter().map(|p| fixture(p)).collect();
    let r = load_paths(&paths);
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
    r
}

/// The `slo:sli_error:ratio_rate5m` expression Sloth generated for
/// examples/openslo-getting-started.yml (expected/openslo-getting-started.yml, a `|-` block).
const SLOTH_5M_EXPR: &str = r#"(
  1 - (
    (
      sum(rate(http_request_duration_seconds_count{job="myservice",code!~"(5..|429)"}[5m]))
    )
    /
    (
      sum(rate(http_request_duration_seconds_count{job="myservice"}[5m]))
    )
  )
)"#;

#[test]
fn v1alpha_getting_started_matches_sloth() {
    let r = load_clean(&["sloth/openslo-getting-started.yml"]);
    assert_eq!(r.slos.len(), 1);
    let s = &r.slos[0];
    assert_eq!(s.id, "my-service-sloth-slo-my-service-0");
    assert_eq!(s.service, "my-service");
    assert_eq!(s.name, "sloth-slo-my-service-0");
    assert_eq!(
        s.description,
        "Common SLO based on availability for HTTP request responses."
    );
    assert_eq!(s.objective_percent, 99.9);
    assert_eq!(s.period, Some(PromDuration::from_days(30)));
    assert_eq!(s.kind, SpecKind::OpenSloV1Alpha);
    assert!(s.labels.is_empty());
    assert_eq!(s.sli.error_ratio_query("5m"), SLOTH_5M_EXPR);
    // Sloth generates no alerts for OpenSLO (expected/openslo-*.yml have no alert rules).
    assert!(s.alerting.page.disable && s.alerting.ticket.disable);
    assert_eq!(s.alerting.name, "");
}

#[test]
fn v1alpha_one_slo_per_objective() {
    let r = load_clean(&["sloth/openslo-kubernetes-apiserver.yml"]);
    let got: Vec<(&str, &str, f64, usize)> = r
        .slos
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.name.as_str(),
                s.objective_percent,
                s.origin.doc_index,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "k8s-apiserver-requests-availability-openslo-0",
                "requests-availability-openslo-0",
                99.9,
                0
            ),
            (
                "k8s-apiserver-requests-latency-openslo-0",
                "requests-latency-openslo-0",
                99.0,
                1
            ),
            (
                "k8s-apiserver-requests-latency-openslo-1",
                "requests-latency-openslo-1",
                99.9,
                1
            ),
        ]
    );
    let Sli::Raw { error_ratio_query } = &r.slos[2].sli else {
        panic!("raw SLI expected");
    };
    assert!(error_ratio_query.contains(r#"le="5",verb!="WATCH""#));
}

#[test]
fn v1_inline_good_total_is_sloths_raw_mapping() {
    let r = load_clean(&["openslo-v1/checkout.yml"]);
    let s = &r.slos[0];
    assert_eq!(s.id, "checkout-checkout-availability");
    assert_eq!(s.name, "checkout-availability");
    assert_eq!(s.service, "checkout");
    assert_eq!(s.description, "99.9% of checkout requests succeed.");
    assert_eq!(s.objective_percent, 99.9);
    assert_eq!(s.period, Some(PromDuration::from_days(28)));
    assert_eq!(s.kind, SpecKind::OpenSloV1);
    // Single-valued metadata labels become Prometheus labels.
    assert_eq!(
        s.labels.to_btree_map(),
        BTreeMap::from([
            ("team".to_string(), "payments".to_string()),
            ("tier".to_string(), "1".to_string())
        ])
    );
    assert_eq!(
        s.sli.error_ratio_query("1h"),
        "(\n  1 - (\n    (\n      sum(rate(http_requests_total{service=\"checkout\",code!~\"5..\"}[1h]))\n    )\n    /\n    (\n      sum(rate(http_requests_total{service=\"checkout\"}[1h]))\n    )\n  )\n)"
    );
    assert!(s.alerting.page.disable && s.alerting.ticket.disable);
}

#[test]
fn v1_bad_total_with_several_objectives() {
    let r = load_clean(&["openslo-v1/checkout.yml"]);
    let rest: Vec<(&str, &str, f64)> = r.slos[1..]
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str(), s.objective_percent))
        .collect();
    assert_eq!(
        rest,
        [
            ("checkout-checkout-errors-0", "checkout-errors-0", 99.5),
            ("checkout-checkout-errors-1", "checkout-errors-1", 99.0),
        ]
    );
    for s in &r.slos[1..] {
        assert_eq!(
            s.sli,
            Sli::Events {
                error_query: r#"sum(rate(http_requests_total{service="checkout",code=~"5.."}[{{ .window }}]))"#.into(),
                total_query: r#"sum(rate(http_requests_total{service="checkout"}[{{ .window }}]))"#.into(),
            }
        );
        assert_eq!(s.period, Some(PromDuration::from_days(28)));
        assert_eq!(s.origin.doc_index, 1);
    }
}

#[test]
fn v1_indicator_ref_resolves_across_files() {
    let r = load_clean(&["openslo-v1/search-slo.yml", "openslo-v1/search-sli.yml"]);
    assert_eq!(r.slos.len(), 1);
    let s = &r.slos[0];
    assert_eq!(s.id, "search-search-latency");
    assert_eq!(s.objective_percent, 95.0);
    assert_eq!(s.period, Some(PromDuration::from_days(30)));
    assert_eq!(s.origin.file, fixture("openslo-v1/search-slo.yml"));
    let Sli::Raw { error_ratio_query } = &s.sli else {
        panic!("raw SLI expected, got {:?}", s.sli);
    };
    assert_eq!(
        error_ratio_query,
        "\n  1 - (\n    (\n      sum(rate(search_request_duration_seconds_bucket{le=\"0.3\"}[{{.window}}]))\n    )\n    /\n    (\n      sum(rate(search_request_duration_seconds_count[{{.window}}]))\n    )\n  )\n"
    );

    // A directory load finds it too.
    let r = load_clean(&["openslo-v1"]);
    assert_eq!(r.slos.len(), 4);

    // Alone, the reference dangles: an error naming the ref, and no SLO.
    let r = load_paths(&[fixture("openslo-v1/search-slo.yml")]);
    assert!(r.slos.is_empty());
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(r.errors[0].field, "spec.indicatorRef");
    assert_eq!(r.errors[0].doc_index, Some(0));
    assert!(r.errors[0].message.contains("\"search-fast-requests\""));
}

#[test]
fn v1_indicator_ref_in_the_same_text() {
    let text = r#"
apiVersion: openslo/v1
kind: SLI
metadata: {name: api-errors}
spec:
  ratioMetric:
    bad: {metricSource: {type: prometheus, spec: {query: "sum(rate(errors_total[{{.window}}]))"}}}
    total: {metricSource: {type: Prometheus, spec: {query: "sum(rate(requests_total[{{.window}}]))"}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-availability}
spec:
  service: api
  budgetingMethod: Occurrences
  timeWindow: [{duration: 7d, isRolling: true}]
  indicatorRef: api-errors
  objectives: [{targetPercent: 99.95}]
"#;
    let r = parse_str(Path::new("api.yml"), text);
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
    assert_eq!(r.slos.len(), 1);
    let s = &r.slos[0];
    assert_eq!(s.id, "api-api-availability");
    assert_eq!(s.objective_percent, 99.95);
    assert_eq!(s.period.map(|p| p.to_string()).as_deref(), Some("1w"));
    assert_eq!(s.origin.doc_index, 1);
    assert_eq!(
        s.sli,
        Sli::Events {
            error_query: "sum(rate(errors_total[{{.window}}]))".into(),
            total_query: "sum(rate(requests_total[{{.window}}]))".into(),
        }
    );
}

fn v1_slo(spec_extra: &str, indicator: &str, objectives: &str) -> String {
    format!(
        r#"apiVersion: openslo/v1
kind: SLO
metadata:
  name: web-availability
spec:
  service: web
{spec_extra}
{indicator}
  objectives:
{objectives}
"#
    )
}

const INDICATOR: &str = r#"  indicator:
    metadata: {name: web-good}
    spec:
      ratioMetric:
        good: {metricSource: {type: Prometheus, spec: {query: "sum(rate(ok_total[{{.window}}]))"}}}
        total: {metricSource: {type: Prometheus, spec: {query: "sum(rate(all_total[{{.window}}]))"}}}"#;

const OCCURRENCES: &str = "  budgetingMethod: Occurrences";

fn single_error(text: &str) -> (String, String) {
    let r = parse_str(Path::new("w.yml"), text);
    assert!(r.slos.is_empty(), "{:#?}", r.slos);
    assert_eq!(r.errors.len(), 1, "{text}\n{:#?}", r.errors);
    let e = &r.errors[0];
    assert_eq!(e.file, Path::new("w.yml"));
    assert_eq!(e.doc_index, Some(0));
    (e.field.clone(), e.message.clone())
}

#[test]
fn v1_baseline_is_valid() {
    let text = v1_slo(OCCURRENCES, INDICATOR, "    - target: 0.99");
    let r = parse_str(Path::new("w.yml"), &text);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{:#?}", r);
    assert_eq!(r.slos[0].id, "web-web-availability");
    assert_eq!(r.slos[0].period, None);
}

#[test]
fn v1_unsupported_budgeting_methods() {
    for m in ["Timeslices", "RatioTimeslices"] {
        let text = v1_slo(
            &format!("  budgetingMethod: {m}"),
            INDICATOR,
            "    - target: 0.99",
        );
        let (field, msg) = single_error(&text);
        assert_eq!(field, "spec.budgetingMethod");
        assert_eq!(
            msg,
            format!("budgetingMethod {m} is not supported yet; expected Occurrences")
        );
    }
    let (field, msg) = single_error(&v1_slo("", INDICATOR, "    - target: 0.99"));
    assert_eq!(field, "spec.budgetingMethod");
    assert!(
        msg.contains("expected budgetingMethod: Occurrences"),
        "{msg}"
    );
}

#[test]
fn v1_calendar_windows_are_not_supported_yet() {
    let calendar = format!(
        "{OCCURRENCES}\n  timeWindow:\n    - duration: 1M\n      isRolling: false\n      calendar: {{startTime: \"2024-01-01 00:00:00\", timeZone: UTC}}"
    );
    let (field, msg) = single_error(&v1_slo(&calendar, INDICATOR, "    - target: 0.99"));
    assert_eq!(field, "spec.timeWindow[0].isRolling");
    assert!(
        msg.contains("calendar-aligned time windows are not supported yet"),
        "{msg}"
    );

    let months = format!("{OCCURRENCES}\n  timeWindow:\n    - duration: 1M\n      isRolling: true");
    let (field, msg) = single_error(&v1_slo(&months, INDICATOR, "    - target: 0.99"));
    assert_eq!(field, "spec.timeWindow[0].duration");
    assert!(msg.contains("not supported yet"), "{msg}");
}

#[test]
fn v1_threshold_metrics_and_composites_are_rejected() {
    let threshold = r#"  indicator:
    metadata: {name: web-latency}
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: "histogram_quantile(0.99, x)"}}"#;
    let (field, msg) = single_error(&v1_slo(OCCURRENCES, threshold, "    - target: 0.99"));
    assert_eq!(field, "spec.indicator.spec.thresholdMetric");
    assert!(msg.contains("not supported"), "{msg}");

    let composite = "    - target: 0.99\n      indicatorRef: other";
    let r = parse_str(Path::new("w.yml"), &v1_slo(OCCURRENCES, "", composite));
    assert!(r.slos.is_empty());
    assert!(
        r.errors
            .iter()
            .any(|e| e.field == "spec.objectives[0].indicatorRef"
                && e.message.contains("composite SLOs")),
        "{:#?}",
        r.errors
    );
}

#[test]
fn v1_targets() {
    let (field, msg) = single_error(&v1_slo(OCCURRENCES, INDICATOR, "    - target: 99.9"));
    assert_eq!(field, "spec.objectives[0].target");
    assert!(msg.contains("expected a ratio in (0, 1]"), "{msg}");
    assert!(msg.contains("targetPercent"), "{msg}");

    let (field, _) = single_error(&v1_slo(
        OCCURRENCES,
        INDICATOR,
        "    - target: 0.99\n      targetPercent: 99",
    ));
    assert_eq!(field, "spec.objectives[0].targetPercent");

    let (field, msg) = single_error(&v1_slo(OCCURRENCES, INDICATOR, "    - displayName: x"));
    assert_eq!(field, "spec.objectives[0].target");
    assert!(msg.starts_with("missing"), "{msg}");
}

#[test]
fn v1_bad_metric_sources() {
    let other = INDICATOR.replacen("type: Prometheus", "type: Datadog", 1);
    let (field, msg) = single_error(&v1_slo(OCCURRENCES, &other, "    - target: 0.99"));
    assert_eq!(
        field,
        "spec.indicator.spec.ratioMetric.good.metricSource.type"
    );
    assert!(msg.contains("expected Prometheus"), "{msg}");

    let no_window = INDICATOR.replacen("[{{.window}}]", "[5m]", 1);
    let (field, msg) = single_error(&v1_slo(OCCURRENCES, &no_window, "    - target: 0.99"));
    assert_eq!(
        field,
        "spec.indicator.spec.ratioMetric.good.metricSource.spec.query"
    );
    assert!(msg.contains("{{.window}}"), "{msg}");

    let both = format!(
        "{INDICATOR}\n        bad: {{metricSource: {{type: Prometheus, spec: {{query: \"e[{{{{.window}}}}]\"}}}}}}"
    );
    let (field, msg) = single_error(&v1_slo(OCCURRENCES, &both, "    - target: 0.99"));
    assert_eq!(field, "spec.indicator.spec.ratioMetric");
    assert!(msg.contains("both good and bad"), "{msg}");
}

#[test]
fn v1alpha_rules_sloth_enforces() {
    let base = std::fs::read_to_string(fixture("sloth/openslo-getting-started.yml")).unwrap();
    // Sloth only supports day-based windows.
    let hours = base.replace("unit: Day", "unit: Hour");
    let (field, msg) = single_error(&hours);
    assert_eq!(field, "spec.timeWindows[0].unit");
    assert!(msg.contains("only Day"), "{msg}");
    // PromQL sources only.
    let sql = base.replacen("queryType: promql", "queryType: sql", 1);
    let (field, msg) = single_error(&sql);
    assert_eq!(field, "spec.objectives[0].ratioMetrics.good.queryType");
    assert!(msg.contains("expected promql"), "{msg}");
    // Targets are ratios.
    let pct = base.replace("target: 0.999", "target: 99.9");
    let (field, _) = single_error(&pct);
    assert_eq!(field, "spec.objectives[0].target");
    // Budgeting is by occurrences.
    let ts = base.replace(
        "budgetingMethod: Occurrences",
        "budgetingMethod: Timeslices",
    );
    let (field, msg) = single_error(&ts);
    assert_eq!(field, "spec.budgetingMethod");
    assert!(msg.contains("Timeslices is not supported yet"), "{msg}");
}

#[test]
fn other_openslo_kinds_are_ignored_with_a_warning() {
    let text = "apiVersion: openslo/v1\nkind: DataSource\nmetadata: {name: prom}\nspec: {type: Prometheus}\n";
    let r = parse_str(Path::new("d.yml"), text);
    assert!(r.errors.is_empty() && r.slos.is_empty());
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].field, "kind");
}
