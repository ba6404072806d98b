//! Bad input: every validation rule gives a diagnostic with the right file, document and
//! field path; duplicates across files; and no input makes the parser panic.

use std::path::{Path, PathBuf};

use slogate::slo::spec::{load_paths, parse_str, Diagnostic, LoadReport, Severity};

const FILE: &str = "specs/bad.yml";

/// A valid Sloth `prometheus/v1` document to break one piece at a time.
const GOOD: &str = r#"version: "prometheus/v1"
service: "myservice"
labels:
  owner: "myteam"
slos:
  - name: "requests-availability"
    objective: 99.9
    description: "Availability."
    labels:
      category: availability
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: MyServiceHighErrorRate
      labels:
        team: myteam
      page_alert:
        labels:
          severity: critical
      ticket_alert:
        labels:
          severity: warning
"#;

fn parse(text: &str) -> LoadReport {
    parse_str(Path::new(FILE), text)
}

fn replace(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} not in the base document");
    GOOD.replacen(from, to, 1)
}

/// Exactly one error, in document 0 of FILE, at `field`, with every `words` in its message.
#[track_caller]
fn assert_one_error(text: &str, field: &str, words: &[&str]) -> Diagnostic {
    let r = parse(text);
    assert_eq!(r.errors.len(), 1, "{text}\n{:#?}", r.errors);
    let e = r.errors[0].clone();
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.file, Path::new(FILE));
    assert_eq!(e.doc_index, Some(0));
    assert_eq!(e.field, field, "{e:#?}");
    for w in words {
        assert!(e.message.contains(w), "{w:?} not in {:?}", e.message);
    }
    assert!(
        r.slos.is_empty(),
        "an SLO with an error must not be returned"
    );
    e
}

#[test]
fn base_document_is_valid() {
    let r = parse(GOOD);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:#?}");
    assert_eq!(r.slos.len(), 1);
}

#[test]
fn names_follow_sloths_rule() {
    assert_one_error(
        &replace(r#"service: "myservice""#, r#"service: "my service""#),
        "service",
        &["\"my service\"", "starts and ends with a letter or digit"],
    );
    assert_one_error(
        &replace(r#"name: "requests-availability""#, r#"name: "requests-""#),
        "slos[0].name",
        &["invalid SLO name", "\"requests-\""],
    );
    assert_one_error(
        &replace(r#"service: "myservice""#, "service: \"\""),
        "service",
        &["empty"],
    );
    assert_one_error(
        &replace("service: \"myservice\"\n", ""),
        "service",
        &["missing"],
    );
}

/// Exactly one warning on `field` containing `words`, and the SLO is loaded.
fn assert_one_warning(text: &str, field: &str, words: &[&str]) {
    let r = parse(text);
    assert!(r.errors.is_empty(), "{text}\n{:#?}", r.errors);
    assert_eq!(r.warnings.len(), 1, "{text}\n{:#?}", r.warnings);
    assert_eq!(r.warnings[0].field, field, "{:#?}", r.warnings[0]);
    for w in words {
        assert!(
            r.warnings[0].message.contains(w),
            "{w:?} not in {:?}",
            r.warnings[0]
        );
    }
    assert_eq!(r.slos.len(), 1);
}

#[test]
fn label_names_and_values() {
    // Sloth v0.16 accepts UTF-8 label names (Prometheus 3); slogate warns for Prometheus 2.
    assert_one_warning(
        &replace("owner: \"myteam\"", "owner-name: \"myteam\""),
        "labels.owner-name",
        &["not a classic Prometheus name", "Prometheus 2"],
    );
    assert_one_warning(
        &replace("severity: critical", "1severity: critical"),
        "slos[0].alerting.page_alert.labels.1severity",
        &["not a classic Prometheus name"],
    );
    assert_one_error(
        &replace("category: availability", "__name__: x"),
        "slos[0].labels.__name__",
        &["invalid Prometheus label name"],
    );
    assert_one_error(
        &replace("category: availability", "category: \"\""),
        "slos[0].labels.category",
        &["empty label value"],
    );
    assert_one_error(
        &replace("category: availability", "category: [a, b]"),
        "slos[0].labels.category",
        &["expected a string value, found a list"],
    );
}

#[test]
fn alert_names_are_required_and_may_be_utf8() {
    // Any non-empty name, as in Sloth v0.16; a warning for Prometheus 2.
    assert_one_warning(
        &replace("name: MyServiceHighErrorRate", "name: Svc-High-Error-Rate"),
        "slos[0].alerting.name",
        &["alert name \"Svc-High-Error-Rate\"", "Prometheus 2"],
    );
    // An enabled alert without a name is an error, as in Sloth (no invented name).
    assert_one_error(
        &replace("name: MyServiceHighErrorRate", "name: \"\""),
        "slos[0].alerting.name",
        &["needs a name", "page_alert and ticket_alert enabled"],
    );
}

#[test]
fn objectives() {
    for (value, words) in [
        ("0", &["objective 0", "(0, 100]"][..]),
        ("100.1", &["objective 100.1"][..]),
        ("-5", &["objective -5"][..]),
        (".nan", &["(0, 100]"][..]),
        (
            "\"99.9\"",
            &["expected a number", "\"99.9\"", "remove the quotes"][..],
        ),
        ("[99.9]", &["expected a number, found a list"][..]),
    ] {
        assert_one_error(
            &replace("objective: 99.9", &format!("objective: {value}")),
            "slos[0].objective",
            words,
        );
    }
    assert_one_error(
        &replace("    objective: 99.9\n", ""),
        "slos[0].objective",
        &["missing", "percentage in (0, 100]"],
    );
    // 100% is allowed (Sloth: lte=100) but leaves no budget.
    let r = parse(&replace("objective: 99.9", "objective: 100"));
    assert!(r.errors.is_empty());
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].message.contains("no error budget"));
}

#[test]
fn sli_queries() {
    assert_one_error(
        &replace(
            "total_query: sum(rate(http_requests_total[{{.window}}]))",
            "total_query: sum(rate(http_requests_total[5m]))",
        ),
        "slos[0].sli.events.total_query",
        &["{{.window}}"],
    );
    assert_one_error(
        &replace(
            "total_query: sum(rate(http_requests_total[{{.window}}]))",
            "total_query: \"  \"",
        ),
        "slos[0].sli.events.total_query",
        &["empty"],
    );
    assert_one_error(
        &replace(
            "total_query: sum(rate(http_requests_total[{{.window}}]))",
            r#"total_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))"#,
        ),
        "slos[0].sli.events.total_query",
        &["same query"],
    );
    assert_one_error(
        &replace(
            "total_query: sum(rate(http_requests_total[{{.window}}]))",
            "total_query: sum(rate(http_requests_total[{{.window}}])",
        ),
        "slos[0].sli.events.total_query",
        &["not a valid PromQL expression", "unclosed"],
    );
    assert_one_error(
        &replace(
            "total_query: sum(rate(http_requests_total[{{.window}}]))",
            "total_query: sum(rate(http_requests_total[{{.window}}])) * {{.factor}}",
        ),
        "slos[0].sli.events.total_query",
        &["unsupported template", "{{.factor}}"],
    );
    assert_one_error(
        &replace(
            "        total_query: sum(rate(http_requests_total[{{.window}}]))\n",
            "",
        ),
        "slos[0].sli.events.total_query",
        &["missing"],
    );
}

#[test]
fn sli_types() {
    let sli_start = GOOD.find("    sli:").unwrap();
    let alerting_start = GOOD.find("    alerting:").unwrap();
    let with_sli = |sli: &str| format!("{}{sli}{}", &GOOD[..sli_start], &GOOD[alerting_start..]);

    assert_one_error(&with_sli(""), "slos[0].sli", &["missing", "events", "raw"]);
    assert_one_error(
        &with_sli("    sli: {}\n"),
        "slos[0].sli",
        &["events", "raw"],
    );
    assert_one_error(
        &with_sli("    sli:\n      raw: {error_ratio_query: \"x[{{.window}}]\"}\n      events: {error_query: \"a[{{.window}}]\", total_query: \"b[{{.window}}]\"}\n"),
        "slos[0].sli",
        &["exactly one SLI type"],
    );
    assert_one_error(
        &with_sli("    sli:\n      raw: {error_ratio_query: \"ratio\"}\n"),
        "slos[0].sli.raw.error_ratio_query",
        &["{{.window}}"],
    );
    assert_one_error(
        &with_sli("    sli: \"sum(x)\"\n"),
        "slos[0].sli",
        &["expected a mapping, found the string"],
    );
}

#[test]
fn wrong_types_and_missing_lists() {
    assert_one_error(
        &replace(
            "page_alert:\n        labels:",
            "page_alert:\n        disable: \"yes\"\n        labels:",
        ),
        "slos[0].alerting.page_alert.disable",
        &["expected true or false"],
    );
    let no_slos = GOOD[..GOOD.find("slos:").unwrap()].to_string();
    assert_one_error(&no_slos, "slos", &["at least one SLO"]);
    assert_one_error(
        &format!("{no_slos}slos: []\n"),
        "slos",
        &["at least one SLO"],
    );
    assert_one_error(
        &format!("{no_slos}slos: {{name: x}}\n"),
        "slos",
        &["expected a list, found a mapping"],
    );
    assert_one_error(
        &format!("{no_slos}slos: [42]\n"),
        "slos[0]",
        &["expected a mapping, found the number 42"],
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = replace("objective: 99.9", "objective: 0")
        .replacen("owner: \"myteam\"", "__name__: x", 1)
        .replacen("name: MyServiceHighErrorRate", "name: \"\"", 1);
    let r = parse(&text);
    let fields: Vec<&str> = r.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "labels.__name__",
            "slos[0].objective",
            "slos[0].alerting.name"
        ],
        "{:#?}",
        r.errors
    );
}

#[test]
fn unknown_fields_are_warnings_with_suggestions() {
    let r = parse(&replace("    description:", "    descripton:"));
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert_eq!(r.slos.len(), 1);
    assert_eq!(r.warnings.len(), 1);
    let w = &r.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.field, "slos[0].descripton");
    assert!(
        w.message.contains("did you mean \"description\""),
        "{}",
        w.message
    );

    let r = parse(&replace("      page_alert:", "      pageAlert:"));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.field == "slos[0].alerting.pageAlert" && w.message.contains("page_alert")));
}

#[test]
fn burn_rate_alerts_that_can_never_fire() {
    // 90%: the page alert's quick pair needs 14.4 × 0.1 = 1.44 > 1.
    let r = parse(&replace("objective: 99.9", "objective: 90"));
    assert!(r.errors.is_empty());
    assert_eq!(r.slos.len(), 1, "warnings do not drop the SLO");
    assert_eq!(r.warnings.len(), 1, "{:#?}", r.warnings);
    let w = &r.warnings[0];
    assert_eq!(w.field, "slos[0].objective");
    assert_eq!(w.doc_index, Some(0));
    for word in ["page", "quick", "5m/1h", "14.4×", "1.44"] {
        assert!(w.message.contains(word), "{word:?} not in {}", w.message);
    }

    // 80%: page quick (2.88) and page slow (6 × 0.2 = 1.2) both impossible.
    let r = parse(&replace("objective: 99.9", "objective: 80"));
    assert_eq!(r.warnings.len(), 2, "{:#?}", r.warnings);
    assert!(r.warnings[1].message.contains("slow"));

    // A disabled alert is not warned about.
    let r = parse(&replace("objective: 99.9", "objective: 90").replacen(
        "page_alert:\n",
        "page_alert:\n        disable: true\n",
        1,
    ));
    assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
}

#[test]
fn document_index_and_unknown_formats() {
    let text = format!("{GOOD}---\n---\napiVersion: example.com/v1\nkind: SLO\n---\nversion: prometheus/v2\n---\n- a list\n");
    let r = parse(&text);
    assert_eq!(r.slos.len(), 1);
    let got: Vec<(Option<usize>, &str)> = r
        .errors
        .iter()
        .map(|e| (e.doc_index, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [(Some(2), "apiVersion"), (Some(3), "version"), (Some(4), "")]
    );
    let expected = "expected version prometheus/v1, apiVersion sloth.slok.dev/v1 kind PrometheusServiceLevel, or apiVersion openslo/v1alpha|openslo/v1 kind SLO|SLI";
    for e in &r.errors {
        assert!(e.message.contains(expected), "{}", e.message);
    }
    assert!(r.errors[0].message.contains("\"example.com/v1\""));
    assert!(r.errors[2].message.contains("found a list"));

    let r = parse("apiVersion: sloth.slok.dev/v1\nkind: ServiceLevel\n");
    assert_eq!(r.errors[0].field, "kind");
    let r = parse("service: x\nslos: []\n");
    assert_eq!(r.errors[0].field, "");
    assert!(r.errors[0].message.contains("missing version/apiVersion"));
}

#[test]
fn invalid_yaml_names_the_document() {
    let text = format!("{GOOD}---\nservice: [unclosed\n");
    let r = parse(&text);
    assert_eq!(r.slos.len(), 1, "the valid first document still loads");
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(r.errors[0].doc_index, Some(1));
    assert!(
        r.errors[0].message.contains("not valid YAML"),
        "{}",
        r.errors[0].message
    );
}

#[test]
fn k8s_crd_paths_and_metadata() {
    let text = r#"apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata:
  namespace: monitoring
spec:
  service: svc
  slos:
    - name: avail
      objective: 99.9
      sli:
        events:
          errorQuery: sum(rate(e[{{.window}}]))
          totalQuery: sum(rate(t[5m]))
      alerting:
        name: A
"#;
    let r = parse(text);
    let fields: Vec<&str> = r.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["metadata.name", "spec.slos[0].sli.events.totalQuery"],
        "{:#?}",
        r.errors
    );
    assert!(r.slos.is_empty());
}

#[test]
fn duplicate_ids_within_a_file() {
    let text = format!("{GOOD}---\n{GOOD}");
    let r = parse(&text);
    assert_eq!(r.slos.len(), 1);
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    let e = &r.errors[0];
    assert_eq!((e.doc_index, e.field.as_str()), (Some(1), "slos[0].name"));
    assert!(e
        .message
        .contains("duplicate SLO id \"myservice-requests-availability\""));
    assert!(
        e.message
            .contains(&format!("{FILE}[doc 0] at slos[0].name")),
        "{}",
        e.message
    );

    // Two SLOs of one document.
    let second = &GOOD[GOOD.find("  - name:").unwrap()..];
    let r = parse(&format!("{GOOD}{second}"));
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].field, "slos[1].name");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn duplicate_ids_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yml", GOOD);
    // The same SLO id from an OpenSLO v1 document: service myservice, name requests-availability.
    let b = write(
        dir.path(),
        "b.yaml",
        r#"apiVersion: openslo/v1
kind: SLO
metadata: {name: requests-availability}
spec:
  service: myservice
  budgetingMethod: Occurrences
  indicator:
    metadata: {name: x}
    spec:
      ratioMetric:
        bad: {metricSource: {type: Prometheus, spec: {query: "e[{{.window}}]"}}}
        total: {metricSource: {type: Prometheus, spec: {query: "t[{{.window}}]"}}}
  objectives: [{target: 0.99}]
"#,
    );
    let r = load_paths(&[a.clone(), b.clone()]);
    assert_eq!(r.slos.len(), 1);
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    let e = &r.errors[0];
    assert_eq!(e.file, b);
    assert_eq!((e.doc_index, e.field.as_str()), (Some(0), "metadata.name"));
    assert!(
        e.message.contains(&a.display().to_string()),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("[doc 0] at slos[0].name"),
        "{}",
        e.message
    );

    // A directory expands to both files (sorted), with the same result.
    let r = load_paths(&[dir.path().to_path_buf()]);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].file, b);
    // Naming the same file twice reads it once.
    let r = load_paths(&[a.clone(), a.clone(), dir.path().to_path_buf()]);
    assert_eq!(r.errors.len(), 1);
}

#[test]
fn unreadable_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let binary = dir.path().join("bin.yml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let r = load_paths(&[missing.clone(), binary.clone()]);
    let got: Vec<(&Path, Option<usize>)> = r
        .errors
        .iter()
        .map(|e| (e.file.as_path(), e.doc_index))
        .collect();
    assert_eq!(got, [(missing.as_path(), None), (binary.as_path(), None)]);
    assert!(r.errors[0].message.contains("cannot read"));
    assert!(r.errors[1].message.contains("not a UTF-8 text file"));

    // A directory without spec files is a warning for the loader (the CLI refuses finding
    // no file at all, tests/cli_validate.rs); an empty file is an error.
    let empty_dir = tempfile::tempdir().unwrap();
    let r = load_paths(&[empty_dir.path().to_path_buf()]);
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(r.warnings[0].message.contains("no .yml or .yaml files"));
    let empty = dir.path().join("empty.yml");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let r = load_paths(std::slice::from_ref(&empty));
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert!(r.errors[0]
        .message
        .contains("expected at least one SLO spec document"));
}

// ---------------------------------------------------------------------------------------
// Never panic.

fn fixtures() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs");
    let mut texts = vec![GOOD.to_string()];
    for sub in ["sloth", "openslo-v1", "bad", "warn"] {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        texts.extend(entries.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    }
    texts
}

/// Parse and check the report is coherent: SLOs only when their document had no error.
fn parse_no_panic(text: &str) {
    let r = parse(text);
    for s in &r.slos {
        assert!(!s.id.is_empty());
        assert!(s.objective_percent > 0.0 && s.objective_percent <= 100.0);
    }
}

#[test]
fn garbage_does_not_panic() {
    let deep_list = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_map = "a:\n".to_string()
        + &(1..300)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect::<String>();
    let cases = [
        "",
        "\n\n",
        "---",
        "...",
        "~",
        "null",
        "42",
        "\"just a string\"",
        "[1, 2, 3]",
        "{",
        "}{",
        ": :",
        "- - - -",
        "\u{0}\u{1}\u{2}",
        "\u{feff}version: prometheus/v1",
        "version: prometheus/v1",
        "version: prometheus/v1\nservice: null\nslos: null\nlabels: null",
        "version: prometheus/v1\nservice: 1\nslos: [null, ~, 1, [], {}, {name: null, objective: null, sli: null, alerting: null}]",
        "version: prometheus/v1\nservice: s1\nslos: [{name: n1, objective: \"99\", sli: {events: {error_query: 1, total_query: true}}, alerting: {name: [], page_alert: 1, ticket_alert: {disable: null, labels: [1]}}}]",
        "version: [prometheus/v1]",
        "version: !!binary aGVsbG8=",
        "apiVersion: !custom openslo/v1\nkind: SLO",
        "apiVersion: openslo/v1\nkind: SLO",
        "apiVersion: openslo/v1\nkind: SLO\nmetadata: 1\nspec: 2",
        "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: n}\nspec: {service: s, budgetingMethod: Occurrences, timeWindow: [null], indicator: {spec: {ratioMetric: {good: 1, total: {metricSource: null}}}}, objectives: [{target: .inf}, {targetPercent: -0.0}, null]}",
        "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: n}\nspec: {service: s, budgetingMethod: Occurrences, timeWindow: [{duration: 99999999999999999999999w}], indicatorRef: [x], objectives: [{target: 1e308}]}",
        "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: [n]}\nspec: {ratioMetric: {raw: {metricSource: {spec: {query: q}}}, rawType: 3}}",
        "apiVersion: openslo/v1alpha\nkind: SLO\nmetadata: {name: n}\nspec: {service: s, timeWindows: [{count: 1e300, unit: Day}, {}], objectives: [{ratioMetrics: {good: {query: 1}, total: []}, target: \"0.9\"}]}",
        "apiVersion: openslo/v1alpha\nkind: SLO\nmetadata: {name: n}\nspec: {service: s, timeWindows: [{count: -1, unit: day}], objectives: []}",
        "apiVersion: sloth.slok.dev/v1\nkind: PrometheusServiceLevel\nmetadata: []\nspec: {slos: [{}]}",
        "a: &a [*a]",
        "a: &x 1\nb: *y",
        "? [complex, key]\n: value",
        "version: prometheus/v1\nservice: s\nslos:\n  - name: n\n    objective: 99\n    sli: {raw: {error_ratio_query: \"{{\"}}\n",
        "version: prometheus/v1\nservice: s\nslos:\n  - name: n\n    objective: 99\n    sli: {raw: {error_ratio_query: \"{{.window}}\\\"\"}}\n",
        "version: prometheus/v1\nservice: é\nslos:\n  - name: \"ñ🙂\"\n    objective: 99\n",
    ];
    for c in cases {
        parse_no_panic(c);
    }
    parse_no_panic(&deep_list);
    parse_no_panic(&deep_map);

    // Pseudo-random bytes, kept when they are valid UTF-8, and random YAML-ish token soup.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tokens = [
        "version:",
        "apiVersion:",
        "kind:",
        "slos:",
        "- ",
        "\n",
        "  ",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "prometheus/v1",
        "openslo/v1",
        "SLO",
        "SLI",
        "null",
        "1",
        "-1.5",
        "\"",
        "'",
        "&a",
        "*a",
        "!!str",
        "---",
        "{{.window}}",
        "#",
        "|",
        ">",
    ];
    for _ in 0..3000 {
        let n = (next() % 60) as usize;
        let soup: String = (0..n)
            .map(|_| tokens[(next() % tokens.len() as u64) as usize])
            .collect();
        parse_no_panic(&soup);
        let bytes: Vec<u8> = (0..n).map(|_| (next() % 128) as u8).collect();
        if let Ok(s) = String::from_utf8(bytes) {
            parse_no_panic(&s);
        }
    }
}

#[test]
fn mutated_fixtures_do_not_panic() {
    let junk = [
        "", "~", "[]", "{}", "1", "-7.5", "\"x\"", "true", "[null]", "{a: b}",
    ];
    for text in fixtures() {
        // Every prefix at line boundaries (truncated files).
        let mut cut = 0;
        for line in text.split_inclusive('\n') {
            cut += line.len();
            parse_no_panic(&text[..cut]);
        }
        // Every `key: value` line with its value replaced by junk of every type.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(colon) = line
                .find(": ")
                .or_else(|| line.strip_suffix(':').map(|s| s.len()))
            else {
                continue;
            };
            for j in junk {
                let mut mutated = lines.clone();
                let new_line = format!("{}: {j}", &line[..colon]);
                mutated[i] = &new_line;
                parse_no_panic(&mutated.join("\n"));
            }
        }
    }
}
