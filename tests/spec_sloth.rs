//! Sloth `prometheus/v1` and `sloth.slok.dev/v1 PrometheusServiceLevel` parsing, on Sloth's
//! own examples (tests/fixtures/specs/sloth, copied from slok/sloth).

use std::path::{Path, PathBuf};

use slogate::slo::spec::{load_paths, parse_str, LoadReport};
use slogate::slo::{LabelMap, Sli, SpecKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/specs/sloth")
        .join(name)
}

/// Load one fixture and require it to be clean (no errors, no warnings).
fn load_clean(name: &str) -> LoadReport {
    let r = load_paths(&[fixture(name)]);
    assert!(r.errors.is_empty(), "{name}: {:#?}", r.errors);
    assert!(r.warnings.is_empty(), "{name}: {:#?}", r.warnings);
    r
}

fn map(pairs: &[(&str, &str)]) -> LabelMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn getting_started() {
    let r = load_clean("getting-started.yml");
    assert_eq!(r.slos.len(), 1);
    let s = &r.slos[0];
    assert_eq!(s.id, "myservice-requests-availability");
    assert_eq!(s.service, "myservice");
    assert_eq!(s.name, "requests-availability");
    assert_eq!(
        s.description,
        "Common SLO based on availability for HTTP request responses."
    );
    assert_eq!(s.objective_percent, 99.9);
    assert_eq!(
        s.labels,
        map(&[
            ("owner", "myteam"),
            ("repo", "myorg/myservice"),
            ("tier", "2")
        ])
    );
    assert_eq!(
        s.sli,
        Sli::Events {
            error_query: r#"sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))"#.into(),
            total_query: r#"sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))"#.into(),
        }
    );
    let a = &s.alerting;
    assert_eq!(a.name, "MyServiceHighErrorRate");
    assert_eq!(a.labels, map(&[("category", "availability")]));
    assert_eq!(
        a.annotations,
        map(&[(
            "summary",
            "High error rate on 'myservice' requests responses"
        )])
    );
    assert!(!a.page.disable && !a.ticket.disable);
    assert_eq!(
        a.page.labels,
        map(&[("severity", "pageteam"), ("routing_key", "myteam")])
    );
    assert_eq!(
        a.ticket.labels,
        map(&[("severity", "slack"), ("slack_channel", "#alerts-myteam")])
    );
    assert_eq!(s.kind, SpecKind::SlothPrometheusV1);
    assert_eq!(s.origin.file, fixture("getting-started.yml"));
    assert_eq!(s.origin.doc_index, 0);
    assert_eq!(s.k8s, None);
    assert_eq!(s.period, None);
    assert_eq!(s.guard, None);
}

#[test]
fn slo_labels_merge_over_service_labels() {
    let r = load_clean("kubernetes-apiserver.yml");
    let ids: Vec<&str> = r.slos.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "k8s-apiserver-requests-availability",
            "k8s-apiserver-requests-latency"
        ]
    );
    assert_eq!(
        r.slos[1].labels,
        map(&[
            ("category", "latency"),
            ("cluster", "valhalla"),
            ("component", "kubernetes")
        ])
    );
    assert_eq!(r.slos[1].objective_percent, 99.0);
    // Block scalars are kept as written, newlines included.
    let Sli::Events { error_query, .. } = &r.slos[1].sli else {
        panic!("events SLI expected");
    };
    assert!(error_query.starts_with("(\n  sum(rate(apiserver_request_duration_seconds_count"));
    assert!(error_query.ends_with(")\n"), "{error_query:?}");
    assert_eq!(
        r.slos[0].alerting.annotations.get("runbook").map(String::as_str),
        Some("https://github.com/kubernetes-monitoring/kubernetes-mixin/tree/master/runbook.md#alert-name-kubeapierrorshigh")
    );

    // An SLO label overrides the service label of the same name; numbers become text.
    let text = r#"
version: prometheus/v1
service: svc
labels: {tier: 2, owner: team-a}
slos:
  - name: avail
    objective: 99
    labels: {tier: "1", enabled: true}
    sli: {raw: {error_ratio_query: "x[{{.window}}]"}}
    alerting: {page_alert: {disable: true}, ticket_alert: {disable: true}}
"#;
    let r = parse_str(Path::new("inline.yml"), text);
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert_eq!(
        r.slos[0].labels,
        map(&[("enabled", "true"), ("owner", "team-a"), ("tier", "1")])
    );
}

#[test]
fn raw_sli() {
    let r = load_clean("raw-home-wifi.yml");
    assert_eq!(r.slos.len(), 1);
    let s = &r.slos[0];
    assert_eq!(s.id, "home-wifi-wifi-client-satisfaction");
    assert_eq!(s.objective_percent, 95.0);
    assert_eq!(
        s.sli,
        Sli::Raw {
            error_ratio_query: "1 - (\n  sum(sum_over_time(unifipoller_client_satisfaction_ratio[{{.window}}]))\n  /\n  sum(count_over_time(unifipoller_client_satisfaction_ratio[{{.window}}]))\n)\n".into()
        }
    );
    assert_eq!(s.alerting.page.labels, map(&[("severity", "home")]));
}

#[test]
fn disabled_alerts_need_no_name() {
    let r = load_clean("no-alerts.yml");
    let s = &r.slos[0];
    assert_eq!(s.id, "myapp-http-availability");
    assert!(s.alerting.page.disable && s.alerting.ticket.disable);
    assert_eq!(s.alerting.name, "");
}

#[test]
fn several_documents_per_file() {
    let r = load_clean("multifile.yml");
    let got: Vec<(&str, usize, f64)> = r
        .slos
        .iter()
        .map(|s| (s.id.as_str(), s.origin.doc_index, s.objective_percent))
        .collect();
    assert_eq!(
        got,
        [
            ("myservice-requests-availability", 0, 99.9),
            ("myservice2-requests-availability", 1, 99.99)
        ]
    );
    assert_eq!(r.slos[1].labels.get("tier").map(String::as_str), Some("1"));
}

#[test]
fn k8s_crd() {
    let r = load_clean("k8s-getting-started.yml");
    let s = &r.slos[0];
    assert_eq!(s.id, "myservice-requests-availability");
    assert_eq!(s.kind, SpecKind::SlothK8sV1);
    let k8s = s.k8s.as_ref().expect("k8s metadata");
    assert_eq!(k8s.name, "sloth-slo-my-service");
    assert_eq!(k8s.namespace.as_deref(), Some("monitoring"));
    assert!(k8s.labels.is_empty());
    // Same content as the prometheus/v1 example, camelCase fields included.
    let plain = load_clean("getting-started.yml");
    let p = &plain.slos[0];
    assert_eq!(
        (&s.sli, &s.labels, s.objective_percent),
        (&p.sli, &p.labels, p.objective_percent)
    );
    assert_eq!(s.alerting, p.alerting);

    let r = load_clean("k8s-home-wifi.yml");
    assert_eq!(r.slos.len(), 2);
    let k8s = r.slos[1].k8s.as_ref().expect("k8s metadata");
    assert_eq!(
        k8s.labels,
        map(&[
            ("app", "sloth"),
            ("prometheus", "prometheus"),
            ("role", "alert-rules")
        ])
    );
    assert_eq!(
        r.slos[1].alerting.ticket.labels,
        map(&[("severity", "warning")])
    );

    let r = load_clean("k8s-multifile.yml");
    let names: Vec<&str> = r
        .slos
        .iter()
        .filter_map(|s| s.k8s.as_ref().map(|k| k.name.as_str()))
        .collect();
    assert_eq!(names, ["sloth-slo-my-service", "sloth-slo-my-service2"]);
}

#[test]
fn every_sloth_example_loads_on_its_own() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs/sloth");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let r = load_paths(std::slice::from_ref(&path));
        assert!(r.errors.is_empty(), "{}: {:#?}", path.display(), r.errors);
        assert!(!r.slos.is_empty(), "{}", path.display());
        total += r.slos.len();
    }
    assert_eq!(total, 18);
}

#[test]
fn sloth_plugins_are_rejected_clearly() {
    let text = r#"
version: prometheus/v1
service: svc
slos:
  - name: avail
    objective: 99
    sli:
      plugin:
        id: sloth-common/kubernetes/apiserver/availability
    alerting: {name: A}
"#;
    let r = parse_str(Path::new("p.yml"), text);
    assert!(r.slos.is_empty());
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(r.errors[0].field, "slos[0].sli.plugin");
    assert!(
        r.errors[0]
            .message
            .contains("not supported: slogate has no Go plugin runtime"),
        "{}",
        r.errors[0].message
    );
}

#[test]
fn missing_alert_name_is_an_error_as_in_sloth() {
    let text = r#"
version: prometheus/v1
service: svc
slos:
  - name: avail
    objective: 99.9
    sli: {raw: {error_ratio_query: "x[{{.window}}]"}}
"#;
    let r = parse_str(Path::new("n.yml"), text);
    assert!(r.slos.is_empty());
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(r.errors[0].field, "slos[0].alerting.name");
    assert!(r.errors[0].message.contains("needs a name"));
    // With both alerts disabled no name is needed.
    let disabled = format!(
        "{text}    alerting:\n      page_alert: {{disable: true}}\n      ticket_alert: {{disable: true}}\n"
    );
    let r = parse_str(Path::new("n.yml"), &disabled);
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert_eq!(r.slos.len(), 1);
}
