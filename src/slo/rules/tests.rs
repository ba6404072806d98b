//! Unit tests on hand-built SLOs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::slo::model::{AlertSpec, Alerting, K8sMeta, LabelMap, Origin, Sli, Slo, SpecKind};
use crate::slo::windows::WindowSettings;

fn labels<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sloth's getting-started example, by hand.
fn getting_started() -> Slo {
    Slo {
        id: "myservice-requests-availability".into(),
        service: "myservice".into(),
        name: "requests-availability".into(),
        description: "Common SLO based on availability for HTTP request responses.".into(),
        objective_percent: 99.9,
        labels: labels(&[("owner", "myteam"), ("repo", "myorg/myservice"), ("tier", "2")]),
        sli: Sli::Events {
            error_query: r#"sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))"#.into(),
            total_query: r#"sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))"#.into(),
        },
        alerting: Alerting {
            name: "MyServiceHighErrorRate".into(),
            labels: labels(&[("category", "availability")]),
            annotations: labels(&[("summary", "High error rate on 'myservice' requests responses")]),
            page: AlertSpec {
                disable: false,
                labels: labels(&[("severity", "pageteam"), ("routing_key", "myteam")]),
                annotations: LabelMap::new(),
            },
            ticket: AlertSpec {
                disable: false,
                labels: labels(&[("severity", "slack"), ("slack_channel", "#alerts-myteam")]),
                annotations: LabelMap::new(),
            },
        },
        kind: SpecKind::SlothPrometheusV1,
        origin: Origin {
            file: PathBuf::from("getting-started.yml"),
            doc_index: 0,
        },
        k8s: None,
        period: None,
        guard: None,
    }
}

fn opts() -> RuleOptions {
    RuleOptions {
        extra_labels: labels(&[("cmd", "examplesgen.sh")]),
        version: "dev".into(),
        ..RuleOptions::default()
    }
}

fn gen(slo: &Slo, opts: &RuleOptions) -> SloRules {
    let w = opts.windows.for_slo(slo).unwrap();
    generate_slo(slo, &w, opts)
}

fn names(rules: &[Rule]) -> Vec<&str> {
    rules.iter().map(|r| r.name()).collect()
}

const FILTER: &str = r#"{sloth_id="myservice-requests-availability", sloth_service="myservice", sloth_slo="requests-availability"}"#;

#[test]
fn group_names_follow_sloth() {
    let groups = gen(&getting_started(), &opts()).groups();
    let got: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        got,
        [
            "sloth-slo-sli-recordings-myservice-requests-availability",
            "sloth-slo-meta-recordings-myservice-requests-availability",
            "sloth-slo-alerts-myservice-requests-availability",
        ]
    );
}

#[test]
fn sli_recordings_for_30d() {
    let r = gen(&getting_started(), &opts());
    assert_eq!(
        names(&r.sli_recordings),
        [
            "slo:sli_error:ratio_rate5m",
            "slo:sli_error:ratio_rate30m",
            "slo:sli_error:ratio_rate1h",
            "slo:sli_error:ratio_rate2h",
            "slo:sli_error:ratio_rate6h",
            "slo:sli_error:ratio_rate1d",
            "slo:sli_error:ratio_rate3d",
            "slo:sli_error:ratio_rate30d",
        ]
    );
    let first = &r.sli_recordings[0];
    assert_eq!(
        first.expr,
        "(sum(rate(http_request_duration_seconds_count{job=\"myservice\",code=~\"(5..|429)\"}[5m])))\n/\n(sum(rate(http_request_duration_seconds_count{job=\"myservice\"}[5m])))\n"
    );
    assert_eq!(
        first.labels,
        labels(&[
            ("cmd", "examplesgen.sh"),
            ("owner", "myteam"),
            ("repo", "myorg/myservice"),
            ("sloth_id", "myservice-requests-availability"),
            ("sloth_service", "myservice"),
            ("sloth_slo", "requests-availability"),
            ("sloth_window", "5m"),
            ("tier", "2"),
        ])
    );
    let period = r.sli_recordings.last().unwrap();
    assert_eq!(
        period.expr,
        format!(
            "sum_over_time(slo:sli_error:ratio_rate5m{FILTER}[30d])\n/ ignoring (sloth_window)\ncount_over_time(slo:sli_error:ratio_rate5m{FILTER}[30d])\n"
        )
    );
    assert_eq!(period.labels["sloth_window"], "30d");
    assert!(r.sli_recordings.iter().all(|r| r.annotations.is_empty()));
}

#[test]
fn meta_recordings_follow_sloth() {
    let r = gen(&getting_started(), &opts());
    assert_eq!(
        names(&r.meta_recordings),
        [
            "slo:objective:ratio",
            "slo:error_budget:ratio",
            "slo:time_period:days",
            "slo:current_burn_rate:ratio",
            "slo:period_burn_rate:ratio",
            "slo:period_error_budget_remaining:ratio",
            "sloth_slo_info",
        ]
    );
    let exprs: Vec<&str> = r.meta_recordings.iter().map(|r| r.expr.as_str()).collect();
    assert_eq!(exprs[0], "vector(0.9990000000000001)");
    assert_eq!(exprs[1], "vector(1-0.9990000000000001)");
    assert_eq!(exprs[2], "vector(30)");
    assert_eq!(
        exprs[3],
        format!("slo:sli_error:ratio_rate5m{FILTER}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{FILTER}\n")
    );
    assert_eq!(
        exprs[4],
        format!("slo:sli_error:ratio_rate30d{FILTER}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{FILTER}\n")
    );
    assert_eq!(exprs[5], format!("1 - slo:period_burn_rate:ratio{FILTER}"));
    assert_eq!(exprs[6], "vector(1)");
    // Meta rules carry no sloth_window.
    assert!(r
        .meta_recordings
        .iter()
        .all(|r| !r.labels.contains_key("sloth_window")));
    let info = &r.meta_recordings[6].labels;
    assert_eq!(info["sloth_mode"], "cli-gen-prom");
    assert_eq!(info["sloth_spec"], "prometheus/v1");
    assert_eq!(info["sloth_version"], "dev");
    assert_eq!(info["sloth_objective"], "99.9");
    assert_eq!(info["cmd"], "examplesgen.sh");
}

#[test]
fn alerts_follow_sloth() {
    let r = gen(&getting_started(), &opts());
    assert_eq!(
        names(&r.alerts),
        ["MyServiceHighErrorRate", "MyServiceHighErrorRate"]
    );
    let page = &r.alerts[0];
    assert_eq!(
        page.expr,
        format!(
            "(\n    max(slo:sli_error:ratio_rate5m{FILTER} > (14.4 * 0.0009999999999999432)) without (sloth_window)\n    and\n    max(slo:sli_error:ratio_rate1h{FILTER} > (14.4 * 0.0009999999999999432)) without (sloth_window)\n)\nor\n(\n    max(slo:sli_error:ratio_rate30m{FILTER} > (6 * 0.0009999999999999432)) without (sloth_window)\n    and\n    max(slo:sli_error:ratio_rate6h{FILTER} > (6 * 0.0009999999999999432)) without (sloth_window)\n)\n"
        )
    );
    assert_eq!(
        page.labels,
        labels(&[
            ("category", "availability"),
            ("routing_key", "myteam"),
            ("severity", "pageteam"),
            ("sloth_severity", "page"),
        ])
    );
    assert_eq!(
        page.annotations,
        labels(&[
            ("summary", "High error rate on 'myservice' requests responses"),
            (
                "title",
                "(page) {{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is too fast."
            ),
        ])
    );
    let ticket = &r.alerts[1];
    assert!(
        ticket.expr.contains("ratio_rate2h") && ticket.expr.contains("(3 * 0.0009999999999999432)")
    );
    assert!(
        ticket.expr.contains("ratio_rate3d") && ticket.expr.contains("(1 * 0.0009999999999999432)")
    );
    assert_eq!(ticket.labels["sloth_severity"], "ticket");
    assert_eq!(ticket.labels["slack_channel"], "#alerts-myteam");
    // Extra labels are for recordings only.
    assert!(!ticket.labels.contains_key("cmd"));
}

#[test]
fn default_annotations_when_not_set() {
    let mut slo = getting_started();
    slo.alerting.annotations = LabelMap::new();
    slo.alerting.ticket.annotations = labels(&[("runbook", "https://runbooks/x")]);
    let r = gen(&slo, &opts());
    assert_eq!(
        r.alerts[0].annotations["summary"],
        "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected."
    );
    assert_eq!(
        r.alerts[1].annotations["title"],
        "(ticket) {{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is too fast."
    );
    assert_eq!(r.alerts[1].annotations["runbook"], "https://runbooks/x");
    assert!(!r.alerts[0].annotations.contains_key("runbook"));
}

#[test]
fn factors_for_30d() {
    let w = AlertWindows::default_30d();
    let f: Vec<String> = w
        .pairs()
        .iter()
        .map(|p| gofmt::format_g(sloth_burn_rate_factor(p, w.slo_period)))
        .collect();
    assert_eq!(f, ["14.4", "6", "3", "1"]);
    for p in w.pairs() {
        assert!(
            (sloth_burn_rate_factor(&p, w.slo_period) - p.burn_rate_factor(w.slo_period)).abs()
                < 1e-9
        );
    }
}

#[test]
fn period_28d() {
    let o = RuleOptions {
        windows: WindowSettings {
            default_period: Some(PromDuration::from_days(28)),
            catalog: None,
        },
        ..opts()
    };
    let r = gen(&getting_started(), &o);
    let last = r.sli_recordings.last().unwrap();
    assert_eq!(last.name(), "slo:sli_error:ratio_rate4w");
    assert_eq!(last.labels["sloth_window"], "4w");
    assert!(last.expr.contains("[4w]"));
    assert_eq!(r.meta_recordings[2].expr, "vector(28)");
    assert!(r.meta_recordings[4]
        .expr
        .starts_with("slo:sli_error:ratio_rate4w{"));
    let w = AlertWindows::default_28d();
    let f: Vec<String> = w
        .pairs()
        .iter()
        .map(|p| gofmt::format_g(sloth_burn_rate_factor(p, w.slo_period)))
        .collect();
    assert_eq!(f[0], "13.44");
    assert!(r.alerts[0].expr.contains("(13.44 * 0.0009999999999999432)"));
    // Go prints these factors the same way (same IEEE operations in Sloth).
    assert!(r.alerts[0]
        .expr
        .contains("(5.6000000000000005 * 0.0009999999999999432)"));
    assert!(r.alerts[1]
        .expr
        .contains("(2.8000000000000003 * 0.0009999999999999432)"));
    for (p, want) in w.pairs().iter().zip([13.44, 5.6, 2.8, 0.9333333333333333]) {
        assert!((sloth_burn_rate_factor(p, w.slo_period) - want).abs() < 1e-9);
    }
}

#[test]
fn slo_own_period_wins() {
    let mut slo = getting_started();
    slo.period = Some(PromDuration::from_days(28));
    let r = gen(&slo, &opts());
    assert_eq!(
        r.sli_recordings.last().unwrap().name(),
        "slo:sli_error:ratio_rate4w"
    );
}

#[test]
fn custom_catalog_7d() {
    let text = "apiVersion: sloth.slok.dev/v1\nkind: AlertWindows\nspec:\n  sloPeriod: 7d\n  page:\n    quick: {errorBudgetPercent: 8, shortWindow: 5m, longWindow: 1h}\n    slow: {errorBudgetPercent: 12.5, shortWindow: 30m, longWindow: 6h}\n  ticket:\n    quick: {errorBudgetPercent: 20, shortWindow: 2h, longWindow: 1d}\n    slow: {errorBudgetPercent: 42, shortWindow: 6h, longWindow: 3d}\n";
    let cat = AlertWindows::from_yaml("w.yaml", text).unwrap();
    let o = RuleOptions {
        windows: WindowSettings {
            default_period: None,
            catalog: Some(cat),
        },
        ..opts()
    };
    let r = gen(&getting_started(), &o);
    assert_eq!(
        r.sli_recordings.last().unwrap().name(),
        "slo:sli_error:ratio_rate1w"
    );
    assert_eq!(r.meta_recordings[2].expr, "vector(7)");
    assert!(
        r.alerts[0].expr.contains("(13.44 * 0.0009999999999999432)"),
        "{}",
        r.alerts[0].expr
    );
    assert!(
        r.alerts[0].expr.contains("(3.5 * 0.0009999999999999432)"),
        "{}",
        r.alerts[0].expr
    );
}

#[test]
fn period_equal_to_a_window_is_not_duplicated() {
    let text = "apiVersion: sloth.slok.dev/v1\nkind: AlertWindows\nspec:\n  sloPeriod: 3d\n  page:\n    quick: {errorBudgetPercent: 2, shortWindow: 5m, longWindow: 1h}\n    slow: {errorBudgetPercent: 5, shortWindow: 30m, longWindow: 6h}\n  ticket:\n    quick: {errorBudgetPercent: 10, shortWindow: 2h, longWindow: 1d}\n    slow: {errorBudgetPercent: 10, shortWindow: 6h, longWindow: 3d}\n";
    let o = RuleOptions {
        windows: WindowSettings {
            default_period: None,
            catalog: Some(AlertWindows::from_yaml("w", text).unwrap()),
        },
        ..opts()
    };
    let r = gen(&getting_started(), &o);
    let n = names(&r.sli_recordings);
    assert_eq!(n.len(), 7, "{n:?}");
    assert_eq!(
        n.iter()
            .filter(|n| **n == "slo:sli_error:ratio_rate3d")
            .count(),
        1
    );
}

#[test]
fn disabled_alerts() {
    let mut slo = getting_started();
    slo.alerting.page.disable = true;
    let r = gen(&slo, &opts());
    assert_eq!(r.alerts.len(), 1);
    assert_eq!(r.alerts[0].labels["sloth_severity"], "ticket");

    slo.alerting.ticket.disable = true;
    let groups = gen(&slo, &opts()).groups();
    assert_eq!(groups.len(), 2);
    assert!(groups
        .iter()
        .all(|g| !g.name.starts_with("sloth-slo-alerts-")));

    let o = RuleOptions {
        disable_alerts: true,
        ..opts()
    };
    let groups = gen(&getting_started(), &o).groups();
    assert_eq!(groups.len(), 2);
    assert!(groups.iter().all(|g| g
        .rules
        .iter()
        .all(|r| matches!(r.kind, RuleKind::Record(_)))));

    let o = RuleOptions {
        disable_recordings: true,
        ..opts()
    };
    let groups = gen(&getting_started(), &o).groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].name,
        "sloth-slo-alerts-myservice-requests-availability"
    );
}

#[test]
fn nothing_to_generate_is_an_error() {
    let o = RuleOptions {
        disable_recordings: true,
        disable_alerts: true,
        ..opts()
    };
    let errs = generate(&[getting_started()], &o).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].to_string().contains("getting-started.yml"),
        "{}",
        errs[0]
    );
    assert!(errs[0].message.contains("0 rules generated"));
}

#[test]
fn extra_labels_override_slo_labels_on_recordings_only() {
    let o = RuleOptions {
        extra_labels: labels(&[("tier", "1"), ("env", "prod")]),
        ..opts()
    };
    let r = gen(&getting_started(), &o);
    for rule in r.sli_recordings.iter().chain(&r.meta_recordings) {
        assert_eq!(rule.labels["tier"], "1", "{}", rule.name());
        assert_eq!(rule.labels["env"], "prod", "{}", rule.name());
    }
    for rule in &r.alerts {
        assert!(!rule.labels.contains_key("env"));
    }
}

#[test]
fn raw_sli_and_objective_formatting() {
    let mut slo = getting_started();
    slo.objective_percent = 95.0;
    slo.sli = Sli::Raw {
        error_ratio_query: "1 - avg_over_time(up[{{.window}}])".into(),
    };
    let r = gen(&slo, &opts());
    assert_eq!(r.sli_recordings[1].expr, "(1 - avg_over_time(up[30m]))");
    assert_eq!(r.meta_recordings[0].expr, "vector(0.95)");
    assert_eq!(r.meta_recordings[6].labels["sloth_objective"], "95");
    assert!(r.alerts[0].expr.contains("(14.4 * 0.05)"));

    slo.objective_percent = 99.99;
    let r = gen(&slo, &opts());
    assert_eq!(r.meta_recordings[6].labels["sloth_objective"], "99.99");
}

#[test]
fn info_labels_per_spec_kind() {
    for (kind, mode, spec) in [
        (SpecKind::SlothK8sV1, "cli-gen-k8s", "sloth.slok.dev/v1"),
        (
            SpecKind::OpenSloV1Alpha,
            "cli-gen-openslo",
            "openslo/v1alpha",
        ),
        (SpecKind::OpenSloV1, "cli-gen-openslo", "openslo/v1"),
    ] {
        let mut slo = getting_started();
        slo.kind = kind;
        let r = gen(&slo, &opts());
        let info = &r.meta_recordings[6].labels;
        assert_eq!(
            (info["sloth_mode"].as_str(), info["sloth_spec"].as_str()),
            (mode, spec)
        );
    }
}

#[test]
fn enabled_alert_without_name_is_an_error() {
    let mut slo = getting_started();
    slo.alerting.name.clear();
    let errs = generate(std::slice::from_ref(&slo), &opts()).unwrap_err();
    assert!(errs[0].message.contains("needs a name"), "{errs:?}");
    // Nothing to name when both alerts are disabled (or not generated).
    slo.alerting.page.disable = true;
    slo.alerting.ticket.disable = true;
    assert!(generate(std::slice::from_ref(&slo), &opts()).is_ok());
}

#[test]
fn label_name_validation() {
    // Sloth v0.16 / Prometheus 3: any non-empty UTF-8 name except __name__.
    for ok in ["a", "_a", "cmd", "A_1", "1a", "a-b", "a.b", "é"] {
        assert!(is_valid_label_name(ok), "{ok}");
    }
    for bad in ["", "__name__"] {
        assert!(!is_valid_label_name(bad), "{bad}");
    }
    assert!(is_legacy_label_name("A_1"));
    assert!(!is_legacy_label_name("a-b"));
}

#[test]
fn info_labels_plugin_adds_labels_to_the_info_rule_after_the_defaults() {
    let slo = getting_started();
    let plugin = |priority| PluginUse {
        plugin: SlothPlugin::InfoLabels {
            labels: labels(&[("plug", "in"), ("owner", "plugin-wins")]),
            metric_name: METRIC_INFO.to_string(),
        },
        priority,
    };
    let info = |plugins: Vec<PluginUse>| {
        let o = RuleOptions {
            plugins: HashMap::from([(slo.id.clone(), plugins)]),
            ..opts()
        };
        let files = generate(std::slice::from_ref(&slo), &o).unwrap();
        let rule = files[0].documents[0]
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .find(|r| r.name() == METRIC_INFO)
            .unwrap()
            .clone();
        rule.labels
    };
    let after = info(vec![plugin(0)]);
    assert_eq!(after["plug"], "in");
    assert_eq!(after["owner"], "plugin-wins");
    // Before the default plugins (negative priority) there is no info rule yet: no effect.
    let before = info(vec![plugin(-10)]);
    assert!(!before.contains_key("plug"));
    assert_eq!(before["owner"], "myteam");
}

fn k8s_slo(doc_index: usize, service: &str) -> Slo {
    let mut slo = getting_started();
    slo.kind = SpecKind::SlothK8sV1;
    slo.service = service.into();
    slo.id = format!("{service}-requests-availability");
    slo.origin = Origin {
        file: PathBuf::from("k8s.yml"),
        doc_index,
    };
    slo.k8s = Some(K8sMeta {
        name: format!("sloth-slo-{service}"),
        namespace: Some("monitoring".into()),
        labels: labels(&[("prometheus", "prometheus"), ("app", "sloth")]),
        annotations: LabelMap::new(),
    });
    slo
}

#[test]
fn grouping_by_file_and_document_in_input_order() {
    let mut a = getting_started();
    a.origin.doc_index = 1;
    let mut b = getting_started();
    b.id = "myservice-latency".into();
    b.name = "latency".into();
    b.origin.doc_index = 0;
    let k = k8s_slo(0, "other");
    let files = generate(&[a, k, b], &opts()).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].source, PathBuf::from("getting-started.yml"));
    assert_eq!(files[0].output_name(), "getting-started.yml");
    let docs: Vec<usize> = files[0].documents.iter().map(|d| d.doc_index).collect();
    assert_eq!(docs, [0, 1]);
    assert_eq!(
        files[0].documents[0].groups[0].name,
        "sloth-slo-sli-recordings-myservice-latency"
    );
    assert!(files[1].documents[0].k8s.is_some());
}

#[test]
fn renders_plain_rule_files() {
    let files = generate(&[getting_started()], &opts()).unwrap();
    let text = files[0].render();
    assert!(
        text.starts_with("---\n# Code generated by slogate (dev): "),
        "{text}"
    );
    assert!(text.contains("# DO NOT EDIT.\n\ngroups:\n"), "{text}");
    let doc: crate::model::yaml::Value = crate::model::yaml::from_str(&text).unwrap();
    let rule = &doc["groups"][0]["rules"][0];
    assert_eq!(rule["record"].as_str(), Some("slo:sli_error:ratio_rate5m"));
    assert_eq!(rule["labels"]["tier"].as_str(), Some("2"));
    // Sloth's (rulefmt's) key order: record/alert, expr, labels, annotations.
    let keys: Vec<&str> = rule
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["record", "expr", "labels"]);
    let alert = &doc["groups"][2]["rules"][0];
    let keys: Vec<&str> = alert
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alert", "expr", "labels", "annotations"]);
}

#[test]
fn renders_prometheus_rule_objects() {
    let files = generate(&[k8s_slo(0, "a"), k8s_slo(1, "b")], &opts()).unwrap();
    let text = files[0].render();
    let stream = crate::model::yaml::parse_stream(&text);
    assert_eq!(stream.error, None);
    let docs: Vec<crate::model::yaml::Value> =
        stream.documents.into_iter().map(|d| d.value).collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(text.matches("# Code generated by slogate (dev)").count(), 2);
    let d = &docs[1];
    assert_eq!(d["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(d["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(d["metadata"]["name"].as_str(), Some("sloth-slo-b"));
    assert_eq!(d["metadata"]["namespace"].as_str(), Some("monitoring"));
    let meta_labels: BTreeMap<String, String> =
        crate::model::yaml::from_value(d["metadata"]["labels"].clone()).unwrap();
    assert_eq!(
        LabelMap::from(meta_labels),
        labels(&[
            ("app", "sloth"),
            ("app.kubernetes.io/component", "SLO"),
            ("app.kubernetes.io/managed-by", "sloth"),
            ("prometheus", "prometheus"),
        ])
    );
    assert!(d["metadata"].get("annotations").is_none());
    let groups = d["spec"]["groups"].as_sequence().unwrap();
    assert_eq!(
        groups[0]["name"].as_str(),
        Some("sloth-slo-sli-recordings-b-requests-availability")
    );
    let keys: Vec<&str> = groups[0]["rules"][0]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["expr", "labels", "record"]);
    let keys: Vec<&str> = groups[2]["rules"][0]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alert", "annotations", "expr", "labels"]);
}

#[test]
fn window_errors_name_the_file() {
    let o = RuleOptions {
        windows: WindowSettings {
            default_period: Some(PromDuration::from_days(7)),
            catalog: None,
        },
        ..opts()
    };
    let errs = generate(&[getting_started()], &o).unwrap_err();
    let msg = errs[0].to_string();
    assert!(
        msg.contains("getting-started.yml") && msg.contains("--windows"),
        "{msg}"
    );
}

#[test]
fn scales_linearly() {
    // 10,000 SLOs generate and render quickly (no quadratic grouping).
    let slos = synthetic_slos(10_000);
    let start = std::time::Instant::now();
    let files = generate(&slos, &RuleOptions::default()).unwrap();
    assert_eq!(files.len(), 1000);
    assert_eq!(files.iter().map(|f| f.documents.len()).sum::<usize>(), 2000);
    let groups: usize = files
        .iter()
        .flat_map(|f| &f.documents)
        .map(|d| d.groups.len())
        .sum();
    assert_eq!(groups, 30_000);
    let bytes: usize = files.iter().map(|f| f.render().len()).sum();
    assert!(bytes > 10_000 * 5_000, "{bytes} bytes rendered");
    let elapsed = start.elapsed();
    // Generous bound for unoptimised debug builds on a loaded 2-core machine (about 20s here).
    assert!(
        elapsed.as_secs() < 120,
        "generating and rendering took {elapsed:?}"
    );
}
