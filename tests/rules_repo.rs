//! The repository's own generated rules (`rules/`) for the example SLOs (`examples/slos/`):
//! they must be exactly what the generator produces today (drift test), pass
//! `promtool check rules`, and pass the `promtool test rules` unit tests in `rules/tests/`.
//!
//! `SLOGATE_BLESS=1 cargo test --test rules_repo` rewrites `rules/` instead of comparing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use slogate::slo::rules::{self, OutputFile, RuleOptions};
use slogate::slo::spec;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

/// What `slogate rules examples/slos -o rules` writes, with default options.
fn generate_examples() -> Vec<OutputFile> {
    let report = spec::load_paths(&[root().join("examples/slos")]);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "examples/slos must load cleanly: {:#?} {:#?}",
        report.errors,
        report.warnings
    );
    assert!(!report.slos.is_empty(), "examples/slos holds no SLOs");
    rules::generate(&report.slos, &RuleOptions::default()).expect("generate example rules")
}

#[test]
fn rules_dir_matches_the_generator() {
    let rules_dir = root().join("rules");
    let files = generate_examples();
    let bless = std::env::var("SLOGATE_BLESS").is_ok_and(|v| v == "1");
    let mut problems = Vec::new();
    for f in &files {
        let path = rules_dir.join(f.output_name());
        let want = f.render();
        if bless {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(have) => {
                let line = have
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .map(|i| i + 1)
                    .unwrap_or(have.lines().count().min(want.lines().count()) + 1);
                problems.push(format!(
                    "{} is out of date (first difference at line {line})",
                    path.display()
                ));
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    // No stale rule files for removed examples.
    let expected: Vec<_> = files.iter().map(|f| f.output_name()).collect();
    for path in yaml_files(&rules_dir) {
        let name = path.file_name().unwrap().to_os_string();
        if !expected.contains(&name) {
            problems.push(format!(
                "{} has no source in examples/slos (stale generated file)",
                path.display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "rules/ has drifted from the generator:\n{}\nRegenerate with `cargo run -- rules examples/slos -o rules` \
         or `SLOGATE_BLESS=1 cargo test --test rules_repo`.",
        problems.join("\n")
    );
}

#[test]
fn rules_dir_passes_promtool_check() {
    let Some(promtool) = common::require_bin("promtool") else {
        return;
    };
    let files = yaml_files(&root().join("rules"));
    assert!(!files.is_empty(), "rules/ holds no rule files");
    common::run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .args(&files),
    );
}

#[test]
fn rules_dir_unit_tests_pass() {
    let Some(promtool) = common::require_bin("promtool") else {
        return;
    };
    let tests = yaml_files(&root().join("rules/tests"));
    assert!(
        !tests.is_empty(),
        "rules/tests holds no promtool unit tests"
    );
    let out = common::run_ok(
        Command::new(&promtool)
            .current_dir(root().join("rules"))
            .args(["test", "rules"])
            .args(&tests),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}
