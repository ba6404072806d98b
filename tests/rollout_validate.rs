//! `slogate validate` on Rollout files, run as the built binary: one fixture per kind of
//! error, each line naming the file, the document, the field and what was expected; files
//! mixing SLO and Rollout documents; SLO ids checked against the SLOs given alongside.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(path: &str) -> PathBuf {
    root().join("tests/fixtures/rollouts").join(path)
}

fn validate(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slogate"))
        .arg("validate")
        .args(args)
        .env_remove("SLOGATE_LOG")
        .output()
        .expect("run slogate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One expected line: document index, field path, start of the message.
type Expected = (usize, &'static str, &'static str);

#[test]
fn every_bad_fixture_names_file_document_field_and_expectation() {
    // (fixture, [(doc, field, start of the message)])
    let cases: &[(&str, &[Expected])] = &[
        ("bad/steps.yaml", &[
            (0, "spec.steps[2]", "step 30 after 50: expected strictly increasing canary weights"),
            (0, "spec.steps[3]", "the last step is 90: expected the steps to end at 100"),
        ]),
        ("bad/durations.yaml", &[
            (0, "spec.interval", "invalid duration \"1h1d\": expected a Prometheus duration such as 30s"),
            (0, "spec.approval.deadline", "invalid duration \"soon\""),
        ]),
        ("bad/deadline-shorter-than-interval.yaml", &[
            (0, "spec.progressDeadline", "progressDeadline 30s is shorter than interval 1m"),
        ]),
        ("bad/min-not-below-max.yaml", &[
            (0, "spec.analysis.metrics[0].min", "min 500 is not below max 100: expected min < max"),
        ]),
        ("bad/unknown-builtin.yaml", &[
            (0, "spec.analysis.metrics[0].name", "unknown built-in metric \"request-errors\": expected request-success-rate or request-duration"),
        ]),
        ("bad/unknown-template-variable.yaml", &[
            (0, "spec.analysis.metrics[0].query", "unknown template variable `{{ pod }}`: expected one of {{ namespace }}"),
        ]),
        ("bad/both-traffic-kinds.yaml", &[
            (0, "spec.traffic", "expected exactly one of `virtualService` or `httpRoute`, found `virtualService` and `httpRoute`"),
        ]),
        ("bad/no-traffic-kind.yaml", &[
            (0, "spec.traffic", "expected exactly one of `virtualService` or `httpRoute`, found neither"),
        ]),
        ("bad/duplicate-metric.yaml", &[
            (0, "spec.analysis.metrics[1].name", "duplicate metric name \"request-success-rate\": already used by metrics[0]"),
        ]),
        ("bad/unknown-field.yaml", &[
            (0, "spec.failurLimit", "unknown field `failurLimit` (did you mean `failureLimit`?)"),
        ]),
        ("bad/wrong-types.yaml", &[
            (0, "spec.steps[1]", "expected a number, found the string \"50\"; remove the quotes"),
            (0, "spec.failureLimit", "-1 is out of range: expected a value of at least 0"),
        ]),
        ("bad/compare-and-threshold.yaml", &[
            (0, "spec.analysis.metrics[0]", "`compare` and `min`/`max` cannot be combined"),
            (0, "spec.analysis.metrics[0].compare.confidence", "1: expected a number strictly between 0 and 1"),
        ]),
        ("bad/hold-shorter-than-interval.yaml", &[
            (0, "spec.steps[0].hold", "step 1 holds 10s, shorter than interval 30s: expected a hold of at least one interval"),
        ]),
        ("bad/hold-longer-than-deadline.yaml", &[
            (0, "spec.steps[1].hold", "step 2 holds 1d, longer than progressDeadline 1h: expected progressDeadline at least as long as the longest hold"),
        ]),
        ("bad/step-forms.yaml", &[
            (0, "spec.steps[0].hld", "unknown field `hld` (did you mean `hold`?)"),
            (0, "spec.steps[1].match.headers.x-canary", "expected a string (an exact match) or {prefix: …} or {regex: …}, found the boolean true (quote it to make it a string)"),
            (0, "spec.steps[2].match.headers.x-user", "expected exactly one of `prefix` or `regex`, found `prefix` and `regex`"),
            (0, "spec.steps[3].match.headers", "missing required field"),
            (0, "spec.steps[4]", "expected a canary weight (1 to 100) or a mapping such as {weight: 10, hold: 24h}"),
        ]),
        ("bad/header-steps.yaml", &[
            (0, "spec.steps[0].match.headers.X-Canary", "\"X-Canary\" is not a lowercase HTTP header name"),
            (0, "spec.steps[1].match.headers.x-user.regex", "invalid regex \"beta-(\": unclosed group; expected an RE2 regular expression"),
            (0, "spec.steps[2]", "both `weight` and `match`"),
            (0, "spec.steps[4].match", "a header step after the weighted step steps[3]: expected header steps before every weighted step"),
            (0, "spec.steps[6].match", "a header step after the weighted step steps[5]"),
            (0, "spec.steps[6]", "the last step is a header step: expected the steps to end at weight 100"),
        ]),
        // The SLO document (doc 0) is fine; the Rollout (doc 1) is not.
        ("bad/mixed.yaml", &[
            (1, "spec.steps[1]", "200 is out of range: expected a value from 1 to 100"),
        ]),
    ];
    for (name, want) in cases {
        let file = fixture(name);
        let out = validate(&[&file]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), want.len(), "{name}:\n{stdout}");
        for (line, (doc, field, message)) in lines.iter().zip(want.iter()) {
            let prefix = format!("{}[doc {doc}]: {field}: error: {message}", file.display());
            assert!(
                line.starts_with(&prefix),
                "{name}:\n{line}\nexpected prefix\n{prefix}"
            );
        }
        let n = want.len();
        let summary = format!("{n} error{}", if n == 1 { "" } else { "s" });
        assert!(
            text(&out.stderr).contains(&summary),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn good_rollouts_and_slos_validate_together() {
    let example = root().join("examples/rollouts/checkout.yaml");
    let slos = root().join("examples/slos");
    let policy_24h = root().join("examples/rollouts/checkout-24h.yaml");
    let out = validate(&[&example, &policy_24h, &fixture("good"), &slos]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout, "3 SLOs, 4 Rollouts in 6 files OK\n");
    // Rollouts alone.
    let out = validate(&[&example]);
    assert_eq!(text(&out.stdout), "1 Rollout in 1 file OK\n");
}

#[test]
fn unknown_slo_ids_warn_when_slos_are_given() {
    let file = fixture("warn/unknown-slo.yaml");
    let out = validate(&[&file, &root().join("examples/slos")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with(&format!(
        "{}[doc 0]: spec.slos[1]: warning: unknown SLO id \"checkout-typo\"",
        file.display()
    )));
    assert_eq!(lines[1], "3 SLOs, 1 Rollout in 3 files OK (1 warning)");
    // Without SLO files there is nothing to check the ids against.
    let out = validate(&[&file]);
    assert_eq!(text(&out.stdout), "1 Rollout in 1 file OK\n");
}
