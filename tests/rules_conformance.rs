//! Sloth conformance of `slogate rules`: for every Sloth example in
//! `tests/fixtures/sloth/examples`, the generated rules must match what Sloth v0.16 generated
//! (`tests/fixtures/sloth/expected`): same documents, `PrometheusRule` metadata, group names,
//! rule and alert names in order, labels and annotations, and equivalent expressions (equal
//! after Prometheus' own `format_query` formatting, float literals normalised and whitespace
//! collapsed). Every generated file must also pass `promtool check rules`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use slogate::model::yaml::Value;
use slogate::slo::rules::{self, OutputFile, RuleOptions};
use slogate::slo::spec;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sloth")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("examples"))
        .expect("read examples dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 11,
        "expected the 11 Sloth examples, found {files:?}"
    );
    files
}

fn sloth_options() -> RuleOptions {
    RuleOptions {
        extra_labels: BTreeMap::from([("cmd".to_string(), "examplesgen.sh".to_string())]),
        version: "dev".into(),
        ..RuleOptions::default()
    }
}

/// Load one example and generate its output file.
fn generate_example(path: &Path) -> OutputFile {
    let report = spec::load_paths(&[path.to_path_buf()]);
    assert!(
        report.errors.is_empty(),
        "{}: loader errors: {:#?}",
        path.display(),
        report.errors
    );
    assert!(
        !report.slos.is_empty(),
        "{}: the loader returned no SLOs (is the spec parser implemented?)",
        path.display()
    );
    let mut files = rules::generate(&report.slos, &sloth_options())
        .unwrap_or_else(|e| panic!("{}: generation failed: {e:?}", path.display()));
    assert_eq!(
        files.len(),
        1,
        "{}: one output file per input file",
        path.display()
    );
    files.remove(0)
}

/// Every non-empty YAML document of a stream.
fn documents(text: &str) -> Vec<Value> {
    slogate::model::yaml::documents(text).expect("valid YAML documents")
}

fn is_prometheus_rule(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("PrometheusRule")
}

fn groups_of(doc: &Value) -> Vec<Value> {
    let groups = if is_prometheus_rule(doc) {
        &doc["spec"]["groups"]
    } else {
        &doc["groups"]
    };
    groups.as_sequence().cloned().unwrap_or_default()
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    if v.is_null() {
        return BTreeMap::new();
    }
    slogate::model::yaml::from_value(v.clone())
        .unwrap_or_else(|e| panic!("not a string map: {v:?}: {e}"))
}

fn rule_name(rule: &Value) -> String {
    match (rule.get("record"), rule.get("alert")) {
        (Some(r), None) => format!("record {}", r.as_str().unwrap_or_default()),
        (None, Some(a)) => format!("alert {}", a.as_str().unwrap_or_default()),
        _ => format!("<invalid rule {rule:?}>"),
    }
}

/// Reformat every float literal outside string literals to 12 significant digits, leaving
/// durations (`5m`), identifiers (`ratio_rate5m`) and strings alone; collapse whitespace.
fn normalise_numbers(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len());
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // Copy a string literal verbatim.
            let quote = c;
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == '\\' && quote != '`' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
                if chars[i - 1] == quote {
                    break;
                }
            }
            continue;
        }
        let starts_number = (c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            && (i == 0 || !ident(chars[i - 1]));
        if !starts_number {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        if i < chars.len()
            && (chars[i] == 'e' || chars[i] == 'E')
            && (chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                || (matches!(chars.get(i + 1), Some('+') | Some('-'))
                    && chars.get(i + 2).is_some_and(|d| d.is_ascii_digit())))
        {
            i += 2;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
        let token: String = chars[start..i].iter().collect();
        let followed_by_ident =
            i < chars.len() && (chars[i].is_ascii_alphabetic() || chars[i] == '_');
        match token.parse::<f64>() {
            Ok(v) if !followed_by_ident => {
                let rounded: f64 = format!("{v:.11e}").parse().expect("reparse rounded float");
                out.push_str(&format!("{rounded}"));
            }
            _ => out.push_str(&token),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn number_normalisation() {
    assert_eq!(
        normalise_numbers("vector(1-0.9990000000000001)"),
        "vector(1-0.999)"
    );
    assert_eq!(
        normalise_numbers("max(slo:sli_error:ratio_rate5m{a=\"0.30000000000000004\"} > (14.4 * 0.0009999999999999432)) without (x)"),
        "max(slo:sli_error:ratio_rate5m{a=\"0.30000000000000004\"} > (14.4 * 0.001)) without (x)"
    );
    assert_eq!(
        normalise_numbers("rate(x[5m])\n  /  1e-05"),
        "rate(x[5m]) / 0.00001"
    );
    assert_eq!(normalise_numbers("x offset 1h30m"), "x offset 1h30m");
}

struct Comparison<'a> {
    prom: &'a common::Prometheus,
    problems: Vec<String>,
}

impl Comparison<'_> {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(what());
        }
    }

    fn canonical_expr(&self, expr: &str) -> Result<String, String> {
        self.prom.format_query(expr).map(|f| normalise_numbers(&f))
    }

    fn compare_file(&mut self, name: &str, generated: &str, expected: &str) {
        let gen_docs = documents(generated);
        let exp_docs = documents(expected);
        self.check(gen_docs.len() == exp_docs.len(), || {
            format!(
                "{name}: {} generated documents, expected {}",
                gen_docs.len(),
                exp_docs.len()
            )
        });
        for (d, (g, e)) in gen_docs.iter().zip(&exp_docs).enumerate() {
            let at = format!("{name}: document {d}");
            self.check(is_prometheus_rule(g) == is_prometheus_rule(e), || {
                format!("{at}: PrometheusRule kind differs")
            });
            if is_prometheus_rule(e) {
                for key in ["apiVersion", "kind", "metadata"] {
                    self.check(g.get(key) == e.get(key), || {
                        format!(
                            "{at}: {key} differs:\n  generated {:?}\n  expected  {:?}",
                            g.get(key),
                            e.get(key)
                        )
                    });
                }
            }
            self.compare_groups(&at, &groups_of(g), &groups_of(e));
        }
    }

    fn compare_groups(&mut self, at: &str, gen: &[Value], exp: &[Value]) {
        let names = |gs: &[Value]| -> Vec<String> {
            gs.iter()
                .map(|g| g["name"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let (gn, en) = (names(gen), names(exp));
        self.check(gn == en, || {
            format!("{at}: group names differ:\n  generated {gn:?}\n  expected  {en:?}")
        });
        for (g, e) in gen.iter().zip(exp) {
            let at = format!("{at}: group {}", e["name"].as_str().unwrap_or_default());
            let gr = g["rules"].as_sequence().cloned().unwrap_or_default();
            let er = e["rules"].as_sequence().cloned().unwrap_or_default();
            let (grn, ern): (Vec<String>, Vec<String>) = (
                gr.iter().map(rule_name).collect(),
                er.iter().map(rule_name).collect(),
            );
            self.check(grn == ern, || {
                format!("{at}: rule names differ:\n  generated {grn:?}\n  expected  {ern:?}")
            });
            for (i, (g, e)) in gr.iter().zip(&er).enumerate() {
                let at = format!("{at}: rule {i} ({})", rule_name(e));
                for key in ["labels", "annotations"] {
                    let (gm, em) = (str_map(&g[key]), str_map(&e[key]));
                    self.check(gm == em, || {
                        format!("{at}: {key} differ:\n  generated {gm:?}\n  expected  {em:?}")
                    });
                }
                let ge = g["expr"].as_str().unwrap_or_default();
                let ee = e["expr"].as_str().unwrap_or_default();
                match (self.canonical_expr(ge), self.canonical_expr(ee)) {
                    (Ok(a), Ok(b)) => self.check(a == b, || {
                        format!("{at}: expressions differ after format_query:\n  generated {a}\n  expected  {b}")
                    }),
                    (Err(err), _) => self.problems.push(format!(
                        "{at}: Prometheus rejects the generated expression: {err}\n  {ge}"
                    )),
                    (_, Err(err)) => self.problems.push(format!(
                        "{at}: Prometheus rejects the expected expression: {err}\n  {ee}"
                    )),
                }
            }
        }
    }
}

#[test]
fn sloth_examples_conform() {
    if let Some(prometheus) = common::require_bin("prometheus") {
        examples_conform_on(&prometheus);
    }
}

/// The same comparison with Prometheus 3 formatting the expressions (Prometheus 3.x's
/// printer differs from 2.x's in places, so both must canonicalise to the same rules).
#[test]
fn sloth_examples_conform_prometheus3() {
    if let Some(prometheus) = common::tools::require_prometheus3("prometheus3") {
        examples_conform_on(&prometheus);
    }
}

fn examples_conform_on(prometheus: &Path) {
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let prom = common::Prometheus::start(prometheus, work.path(), &data, &common::prom_config(&[]));
    let mut cmp = Comparison {
        prom: &prom,
        problems: Vec::new(),
    };
    for path in example_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = std::fs::read_to_string(fixtures().join("expected").join(&name))
            .unwrap_or_else(|e| panic!("expected output for {name}: {e}"));
        let generated = generate_example(&path).render();
        cmp.compare_file(&name, &generated, &expected);
    }
    assert!(
        cmp.problems.is_empty(),
        "{} conformance problems:\n{}",
        cmp.problems.len(),
        cmp.problems.join("\n")
    );
}

/// Write a plain Prometheus rule file for each document (a `PrometheusRule`'s `spec` is
/// already `{groups: …}`), and run `promtool check rules` on them.
fn promtool_check(promtool: &Path, work: &Path, label: &str, rendered: &str) {
    for (i, doc) in documents(rendered).iter().enumerate() {
        let plain = if is_prometheus_rule(doc) {
            doc["spec"].clone()
        } else {
            doc.clone()
        };
        let file = work.join(format!("{label}-{i}.rules.yml"));
        std::fs::write(&file, slogate::model::yaml::to_string(&plain).unwrap()).unwrap();
        let out = Command::new(promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool check rules failed for {label} document {i}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn generated_rules_pass_promtool_check() {
    if let Some(promtool) = common::require_bin("promtool") {
        rules_pass_check_of(&promtool);
    }
}

/// Prometheus 3's promtool: stricter in places (UTF-8 names, `$labels` templating).
#[test]
fn generated_rules_pass_promtool3_check() {
    if let Some(promtool) = common::tools::require_prometheus3("promtool3") {
        rules_pass_check_of(&promtool);
    }
}

fn rules_pass_check_of(promtool: &Path) {
    let work = tempfile::tempdir().expect("temp dir");
    for path in example_files() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        promtool_check(
            promtool,
            work.path(),
            &name,
            &generate_example(&path).render(),
        );
    }
}
