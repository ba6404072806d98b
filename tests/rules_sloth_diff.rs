//! Differential test against the real Sloth v0.16.0 (`tools/bin/sloth`, built by
//! `scripts/install-tools` with the ordinary `go` client).
//!
//! For every spec file under `tests/fixtures` (Sloth's examples and its own validate and
//! integration test data, the real-world specs of `tests/fixtures/sloth/real-world`, and
//! slogate's spec fixtures), and for Sloth's validate test directories as a whole:
//!
//! - `slogate validate` must accept exactly what `sloth validate` accepts;
//! - where both accept, `slogate rules` must write the rules `sloth generate` writes: the
//!   same documents, `PrometheusRule` metadata, group names, rule and alert names in order,
//!   labels, annotations and `for`, and expressions equal once whitespace is collapsed (or,
//!   failing that, equal as parsed by the `promql-parser` crate).
//!
//! Every difference must be listed, with its reason, in
//! `tests/fixtures/sloth/differences.yml`; the test fails on an unlisted difference and on a
//! listed one that no longer happens.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use slogate::model::yaml::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `*.yml`/`*.yaml` spec file of the differential, relative to `tests/fixtures`.
fn spec_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for dir in [
        "sloth/examples",
        "sloth/real-world",
        "sloth/sloth-testdata",
        "specs",
    ] {
        walk(&fixtures().join(dir), &mut files);
    }
    let mut rel: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(fixtures())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    rel.sort();
    rel
}

/// Directories validated as a whole (Sloth's discovery and its cross-file duplicate check).
const DIRS: [&str; 6] = [
    "sloth/sloth-testdata/validate/good",
    "sloth/sloth-testdata/validate/bad",
    "sloth/sloth-testdata/validate_with_duplicates",
    "sloth/sloth-testdata/validate_with_duplicates/k8s",
    "sloth/sloth-testdata/validate_with_duplicates/prom",
    "sloth/sloth-testdata/validate_with_duplicates/openslo",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Documented {
    path: String,
    check: String,
    reason: String,
}

fn documented() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(fixtures().join("sloth/differences.yml")).unwrap();
    let list: Vec<Documented> =
        slogate::model::yaml::from_str(&text).expect("differences.yml parses");
    let mut out = BTreeMap::new();
    for d in list {
        assert!(
            d.check == "validate" || d.check == "rules",
            "differences.yml: {}: check must be validate or rules, found {:?}",
            d.path,
            d.check
        );
        assert!(
            d.reason.trim().len() > 20,
            "differences.yml: {}: a reason is required",
            d.path
        );
        assert!(
            fixtures().join(&d.path).exists(),
            "differences.yml: {} does not exist",
            d.path
        );
        let key = (d.path.clone(), d.check.clone());
        assert!(
            out.insert(key, d.reason).is_none(),
            "differences.yml: {} {} listed twice",
            d.path,
            d.check
        );
    }
    out
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sloth_validate(sloth: &Path, path: &Path) -> Run {
    run(Command::new(sloth)
        .args(["--no-color", "validate", "-i"])
        .arg(path))
}

fn slogate_validate(path: &Path) -> Run {
    let r = run(common::slogate().arg("validate").arg(path));
    // Exit 2 on bad input, never a crash.
    assert!(
        r.ok || r.stderr.contains("error"),
        "slogate validate {}: {}",
        path.display(),
        r.stderr
    );
    r
}

/// The YAML documents of a rule stream.
fn docs(text: &str) -> Vec<Value> {
    slogate::model::yaml::documents(text).expect("generated YAML parses")
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = |v: &Value| match v {
                        Value::String(s) => s.clone(),
                        other => slogate::model::yaml::to_string(other)
                            .unwrap()
                            .trim()
                            .to_string(),
                    };
                    (s(k), s(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => slogate::model::yaml::to_string(other)
            .unwrap()
            .trim()
            .to_string(),
    })
}

/// Whitespace collapsed, and none next to brackets and commas.
fn squash(expr: &str) -> String {
    let collapsed = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for c in collapsed.chars() {
        if c == ' ' && out.ends_with(['(', '[', '{', ',']) {
            continue;
        }
        if matches!(c, ')' | ']' | '}' | ',') && out.ends_with(' ') {
            out.pop();
        }
        out.push(c);
    }
    out
}

fn same_expr(a: &str, b: &str) -> bool {
    if squash(a) == squash(b) {
        return true;
    }
    match (
        promql_parser::parser::parse(a),
        promql_parser::parser::parse(b),
    ) {
        (Ok(x), Ok(y)) => x.to_string() == y.to_string(),
        _ => false,
    }
}

/// The differences between Sloth's output and slogate's, one line each.
fn compare(sloth: &str, slogate: &str) -> Vec<String> {
    let (a, b) = (docs(sloth), docs(slogate));
    let mut diffs = Vec::new();
    if a.len() != b.len() {
        return vec![format!("{} documents vs {}", a.len(), b.len())];
    }
    for (d, (x, y)) in a.iter().zip(&b).enumerate() {
        let k8s = x.get("spec").is_some();
        if k8s {
            for key in ["apiVersion", "kind"] {
                if x.get(key) != y.get(key) {
                    diffs.push(format!(
                        "doc {d}: {key} {:?} vs {:?}",
                        x.get(key),
                        y.get(key)
                    ));
                }
            }
            let (mx, my) = (&x["metadata"], &y["metadata"]);
            for key in ["name", "namespace"] {
                if text(mx.get(key)) != text(my.get(key)) {
                    diffs.push(format!("doc {d}: metadata.{key} differs"));
                }
            }
            for key in ["labels", "annotations"] {
                if string_map(mx.get(key)) != string_map(my.get(key)) {
                    diffs.push(format!(
                        "doc {d}: metadata.{key} {:?} vs {:?}",
                        string_map(mx.get(key)),
                        string_map(my.get(key))
                    ));
                }
            }
        }
        let groups = |v: &Value| -> Vec<Value> {
            let g = if k8s {
                &v["spec"]["groups"]
            } else {
                &v["groups"]
            };
            g.as_sequence().cloned().unwrap_or_default()
        };
        let (gx, gy) = (groups(x), groups(y));
        let names = |g: &[Value]| -> Vec<Option<String>> {
            g.iter().map(|g| text(g.get("name"))).collect()
        };
        if names(&gx) != names(&gy) {
            diffs.push(format!(
                "doc {d}: groups {:?} vs {:?}",
                names(&gx),
                names(&gy)
            ));
            continue;
        }
        for (g1, g2) in gx.iter().zip(&gy) {
            let gname = text(g1.get("name")).unwrap_or_default();
            if text(g1.get("interval")) != text(g2.get("interval")) {
                diffs.push(format!("group {gname}: interval differs"));
            }
            let rules = |g: &Value| g["rules"].as_sequence().cloned().unwrap_or_default();
            let (r1, r2) = (rules(g1), rules(g2));
            let rnames = |r: &[Value]| -> Vec<String> {
                r.iter()
                    .map(|r| {
                        text(r.get("record"))
                            .map(|n| format!("record {n}"))
                            .or_else(|| text(r.get("alert")).map(|n| format!("alert {n}")))
                            .unwrap_or_default()
                    })
                    .collect()
            };
            if rnames(&r1) != rnames(&r2) {
                diffs.push(format!(
                    "group {gname}: rules {:?} vs {:?}",
                    rnames(&r1),
                    rnames(&r2)
                ));
                continue;
            }
            for (i, (a, b)) in r1.iter().zip(&r2).enumerate() {
                let what = format!("group {gname} rule {i} ({})", rnames(&r1)[i]);
                for key in ["labels", "annotations"] {
                    if string_map(a.get(key)) != string_map(b.get(key)) {
                        diffs.push(format!(
                            "{what}: {key} {:?} vs {:?}",
                            string_map(a.get(key)),
                            string_map(b.get(key))
                        ));
                    }
                }
                if text(a.get("for")) != text(b.get("for")) {
                    diffs.push(format!("{what}: for differs"));
                }
                let (e1, e2) = (
                    text(a.get("expr")).unwrap_or_default(),
                    text(b.get("expr")).unwrap_or_default(),
                );
                if !same_expr(&e1, &e2) {
                    diffs.push(format!(
                        "{what}: expr\n  sloth:   {e1:?}\n  slogate: {e2:?}"
                    ));
                }
            }
        }
    }
    diffs
}

/// The `sloth_version` label Sloth writes (its build version), so slogate can be asked for
/// the same value.
fn sloth_version(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("sloth_version: "))
        .map(|v| v.trim_matches('"').to_string())
}

#[test]
fn slogate_matches_sloth_on_every_spec_file() {
    let Some(sloth) = common::tools::require_tool("sloth") else {
        return;
    };
    let documented = documented();
    let files = spec_files();
    assert!(
        files.len() >= 60,
        "expected the spec fixtures, found {files:?}"
    );

    let mut found: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut compared = 0;
    let mut both_refused = 0;
    for rel in files.iter().map(String::as_str).chain(DIRS) {
        let path = fixtures().join(rel);
        let s = sloth_validate(&sloth, &path);
        let g = slogate_validate(&path);
        if s.ok != g.ok {
            found.insert(
                (rel.to_string(), "validate".into()),
                format!(
                    "sloth validate {}, slogate validate {}\n  sloth: {}\n  slogate: {}{}",
                    if s.ok { "accepts" } else { "refuses" },
                    if g.ok { "accepts" } else { "refuses" },
                    s.stderr.trim(),
                    g.stdout.trim(),
                    g.stderr.trim()
                ),
            );
            continue;
        }
        if !s.ok {
            both_refused += 1;
            continue;
        }
        if path.is_dir() {
            continue;
        }
        let sg = run(Command::new(&sloth)
            .args(["--no-color", "generate", "-i"])
            .arg(&path));
        assert!(
            sg.ok,
            "sloth generate {rel} failed after validate passed: {}",
            sg.stderr
        );
        let version = sloth_version(&sg.stdout).unwrap_or_else(|| "dev".into());
        let gg = run(common::slogate()
            .args(["rules", "--sloth-version", &version])
            .arg(&path));
        assert!(
            gg.ok,
            "slogate rules {rel} failed after validate passed: {}",
            gg.stderr
        );
        let diffs = compare(&sg.stdout, &gg.stdout);
        compared += 1;
        if !diffs.is_empty() {
            found.insert((rel.to_string(), "rules".into()), diffs.join("\n"));
        }
    }

    let mut problems = Vec::new();
    for (key, detail) in &found {
        if !documented.contains_key(key) {
            problems.push(format!(
                "UNDOCUMENTED difference ({}) on {}:\n{detail}",
                key.1, key.0
            ));
        }
    }
    let found_keys: BTreeSet<&(String, String)> = found.keys().collect();
    for key in documented.keys() {
        if !found_keys.contains(key) {
            problems.push(format!(
                "documented difference ({}) on {} no longer happens: remove it from differences.yml",
                key.1, key.0
            ));
        }
    }
    eprintln!(
        "{} inputs: rules compared on {compared}, refused by both {both_refused}, documented differences {}",
        files.len() + DIRS.len(),
        found.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(compared >= 40, "only {compared} files had rules to compare");
}
