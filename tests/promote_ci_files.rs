//! The example CI files under `deploy/ci/` (GitHub Actions, Tekton, GitLab CI) parse as YAML,
//! have the shape their runner expects, and call `slogate promote` only with flags the
//! binary accepts (checked against `slogate promote --help`, the real CLI parser).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use regex::Regex;
use slogate::model::yaml::Value;

fn load(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    slogate::model::yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}"))
}

/// The long flags `slogate promote --help` lists.
fn promote_flags() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_slogate"))
        .args(["promote", "--help"])
        .output()
        .expect("run slogate promote --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let re = Regex::new(r"(?m)^\s+(?:-[a-z], )?(--[a-z][a-z0-9-]*)").unwrap();
    re.captures_iter(&help).map(|c| c[1].to_string()).collect()
}

/// The long flags of every `slogate promote` invocation in a shell script.
fn flags_used(script: &str) -> BTreeSet<String> {
    assert!(
        script.contains("slogate promote"),
        "no `slogate promote` in:\n{script}"
    );
    let re = Regex::new(r#"(?:^|[\s("'])(--[a-z][a-z0-9-]*)"#).unwrap();
    re.captures_iter(script).map(|c| c[1].to_string()).collect()
}

fn check_flags(file: &str, script: &str, must_have: &[&str]) {
    let known = promote_flags();
    assert!(
        known.contains("--repo") && known.contains("--min-budget-remaining"),
        "{known:?}"
    );
    let used = flags_used(script);
    let unknown: Vec<&String> = used.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "{file} uses flags `slogate promote` does not accept: {unknown:?}"
    );
    for f in must_have {
        assert!(used.contains(*f), "{file} does not pass {f}");
    }
}

const ESSENTIAL: &[&str] = &[
    "--repo",
    "--source",
    "--target",
    "--image",
    "--slo",
    "--prometheus",
    "--min-budget-remaining",
    "--app",
    "--slogate-url",
    "--require-approval",
    "--output",
];

#[test]
fn github_actions_workflow() {
    let file = "deploy/ci/github-actions-promote.yaml";
    let doc = load(file);
    assert!(doc.get("on").is_some(), "{file}: no `on:`");
    let jobs = doc["jobs"].as_mapping().expect("jobs");
    let mut scripts = Vec::new();
    for (_, job) in jobs {
        assert!(job["runs-on"].is_string(), "{file}: a job without runs-on");
        assert!(
            job["timeout-minutes"].as_u64().is_some(),
            "{file}: set a job timeout"
        );
        for step in job["steps"].as_sequence().expect("steps") {
            if let Some(run) = step["run"].as_str() {
                if run.contains("slogate promote") {
                    assert_eq!(step["shell"], "bash", "{file}: bash gives -o pipefail");
                    scripts.push(run.to_string());
                }
            }
        }
        // Secrets reach the step through the environment, never inline in the command.
        let env = job["env"].as_mapping().expect("job env");
        assert!(env.values().any(|v| v
            .as_str()
            .is_some_and(|s| s.contains("secrets.GITOPS_TOKEN"))));
    }
    assert_eq!(scripts.len(), 1, "{file}: one slogate promote step");
    assert!(
        !scripts[0].contains("secrets."),
        "{file}: no secret inline in the script"
    );
    check_flags(
        file,
        &scripts[0],
        &[
            ESSENTIAL,
            &["--git-token-env", "--slogate-token-env", "--copy-tag"],
        ]
        .concat(),
    );
}

#[test]
fn tekton_task() {
    let file = "deploy/ci/tekton-task-promote.yaml";
    let doc = load(file);
    assert_eq!(doc["apiVersion"], "tekton.dev/v1");
    assert_eq!(doc["kind"], "Task");
    let spec = &doc["spec"];
    let params: BTreeSet<String> = spec["params"]
        .as_sequence()
        .expect("params")
        .iter()
        .map(|p| p["name"].as_str().expect("param name").to_string())
        .collect();
    let workspaces: BTreeSet<String> = spec["workspaces"]
        .as_sequence()
        .expect("workspaces")
        .iter()
        .map(|w| w["name"].as_str().expect("workspace name").to_string())
        .collect();
    let results: BTreeSet<String> = spec["results"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let steps = spec["steps"].as_sequence().expect("steps");
    let script = steps
        .iter()
        .find_map(|s| {
            s["script"]
                .as_str()
                .filter(|t| t.contains("slogate promote"))
        })
        .expect("a step running slogate promote");
    // Every $(params.x), $(workspaces.x.path) and $(results.x.path) is declared.
    let full = slogate::model::yaml::to_string(spec).unwrap();
    for c in Regex::new(r"\$\(params\.([a-z0-9-]+)\)")
        .unwrap()
        .captures_iter(&full)
    {
        assert!(params.contains(&c[1]), "{file}: undeclared param {}", &c[1]);
    }
    for c in Regex::new(r"\$\(workspaces\.([a-z0-9-]+)\.path\)")
        .unwrap()
        .captures_iter(&full)
    {
        assert!(
            workspaces.contains(&c[1]),
            "{file}: undeclared workspace {}",
            &c[1]
        );
    }
    for c in Regex::new(r"\$\(results\.([a-z0-9-]+)\.path\)")
        .unwrap()
        .captures_iter(&full)
    {
        assert!(
            results.contains(&c[1]),
            "{file}: undeclared result {}",
            &c[1]
        );
    }
    // Every declared param is used.
    for p in &params {
        assert!(
            full.contains(&format!("$(params.{p})")),
            "{file}: param {p} is never used"
        );
    }
    check_flags(
        file,
        script,
        &[
            ESSENTIAL,
            &["--git-token-file", "--slogate-token-file", "--copy-tag"],
        ]
        .concat(),
    );
}

#[test]
fn gitlab_ci_job() {
    let file = "deploy/ci/gitlab-ci-promote.yml";
    let doc = load(file);
    let root = doc.as_mapping().expect("a mapping");
    let stages: Vec<&str> = doc["stages"]
        .as_sequence()
        .expect("stages")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Jobs are the top-level mappings with a `script` (the rest are GitLab keywords).
    let jobs: Vec<(&str, &Value)> = root
        .iter()
        .filter(|(_, v)| v.get("script").is_some())
        .map(|(k, v)| (k.as_str().expect("job name"), v))
        .collect();
    assert_eq!(jobs.len(), 1, "{file}: one promote job");
    let (name, job) = jobs[0];
    let stage = job["stage"].as_str().expect("stage");
    assert!(
        stages.contains(&stage),
        "{file}: {name} uses undeclared stage {stage}"
    );
    assert!(job["timeout"].is_string(), "{file}: set a job timeout");
    assert!(
        job["resource_group"].is_string(),
        "{file}: one promotion at a time (resource_group)"
    );
    assert_eq!(job["environment"]["name"], "production");
    assert_eq!(
        job["artifacts"]["when"], "always",
        "{file}: keep the gate report when the gate says no"
    );
    let script: String = job["script"]
        .as_sequence()
        .expect("script")
        .iter()
        .map(|l| l.as_str().expect("script line"))
        .collect::<Vec<_>>()
        .join("\n");
    // The gate's exit code is the job's: 1 (a gate said no) and 2 (bad input) fail it.
    assert!(script.contains("exit \"$rc\""), "{file}: {script}");
    // Secrets come from masked CI/CD variables: never defined in the file, only named.
    let vars = slogate::model::yaml::to_string(&job["variables"]).unwrap();
    for secret in ["GITOPS_TOKEN", "SLOGATE_API_TOKEN"] {
        assert!(
            !vars.contains(secret),
            "{file}: {secret} defined in the file"
        );
        assert!(
            !script.contains(&format!("${secret}")),
            "{file}: {secret} inline"
        );
    }
    check_flags(
        file,
        &script,
        &[
            ESSENTIAL,
            &["--git-token-env", "--slogate-token-env", "--copy-tag"],
        ]
        .concat(),
    );
}
