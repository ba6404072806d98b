//! `deploy/crds/rollouts.slogate.dev.yaml` must be exactly what `slogate crd` prints today
//! (drift test), and the CRD must describe what the loader accepts.
//!
//! `SLOGATE_BLESS=1 cargo test --test rollout_crd` rewrites the file instead of comparing.

use std::path::Path;
use std::process::Command;

fn crd_output() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slogate"))
        .arg("crd")
        .env_remove("SLOGATE_LOG")
        .output()
        .expect("run slogate crd");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn deploy_crd_matches_slogate_crd() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crds/rollouts.slogate.dev.yaml");
    let want = crd_output();
    if std::env::var("SLOGATE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or(have.lines().count().min(want.lines().count()) + 1);
        panic!(
            "{} is out of date (first difference at line {line}); run `SLOGATE_BLESS=1 cargo test --test rollout_crd`",
            path.display()
        );
    }
}

#[test]
fn crd_is_a_structural_v1_crd_with_status_and_defaults() {
    let crd: slogate::model::yaml::Value =
        slogate::model::yaml::from_str(&crd_output()).expect("YAML");
    assert_eq!(crd["apiVersion"].as_str(), Some("apiextensions.k8s.io/v1"));
    assert_eq!(crd["kind"].as_str(), Some("CustomResourceDefinition"));
    assert_eq!(crd["spec"]["group"].as_str(), Some("slogate.dev"));
    assert_eq!(crd["spec"]["scope"].as_str(), Some("Namespaced"));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"].as_str(), Some("v1alpha1"));
    assert!(version["subresources"]["status"].is_mapping());
    let schema = &version["schema"]["openAPIV3Schema"];
    let spec = &schema["properties"]["spec"]["properties"];
    let steps: Vec<u64> = spec["steps"]["default"]
        .as_sequence()
        .expect("steps default")
        .iter()
        .filter_map(slogate::model::yaml::Value::as_u64)
        .collect();
    assert_eq!(steps, [10, 25, 50, 75, 100]);
    assert_eq!(spec["interval"]["default"].as_str(), Some("30s"));
    assert_eq!(spec["failureLimit"]["default"].as_u64(), Some(2));
    assert_eq!(spec["progressDeadline"]["default"].as_str(), Some("10m"));
    let text = slogate::model::yaml::to_string(schema).expect("YAML");
    for forbidden in [
        "$ref",
        "$schema",
        "additionalProperties",
        "anyOf",
        "allOf",
        "title:",
        "uint32",
    ] {
        assert!(!text.contains(forbidden), "{forbidden} in the schema");
    }
    let phases: Vec<&str> = schema["properties"]["status"]["properties"]["phase"]["enum"]
        .as_sequence()
        .expect("phase enum")
        .iter()
        .filter_map(slogate::model::yaml::Value::as_str)
        .collect();
    assert_eq!(
        phases,
        [
            "Pending",
            "Progressing",
            "WaitingForApproval",
            "Paused",
            "Promoting",
            "Succeeded",
            "Aborting",
            "Failed"
        ]
    );
}
