//! `slogate demo`, run as a user runs it (the built binary), checked from the outside:
//! the commits in the kept bare remote (read with plain git), the decision log (read with
//! `slogate decisions`), the weights file, and the JSON outcome. A second run with the same
//! seed must decide the same things. Bad flags exit 2 with a message naming the flag.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::git::git;
use serde_json::Value;

fn slogate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slogate"))
        .args(args)
        .env_remove("SLOGATE_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("slogate runs")
}

fn demo(dir: &Path, seed: &str) -> Value {
    let out = slogate(&[
        "demo",
        "--speed",
        "1000",
        "--seed",
        seed,
        "--keep",
        dir.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "demo failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the demo prints its outcome as JSON")
}

/// (author, subject, trailers) of the remote's commits, newest first, read with plain git.
fn remote_log(remote: &Path) -> Vec<(String, String, String)> {
    git(
        remote,
        &[
            "log",
            "main",
            "--format=%an%x1f%s%x1f%(trailers:only,unfold)%x1e",
        ],
    )
    .split('\x1e')
    .map(|r| r.trim_start_matches('\n'))
    .filter(|r| !r.is_empty())
    .map(|r| {
        let f: Vec<&str> = r.split('\x1f').collect();
        (f[0].to_string(), f[1].to_string(), f[2].to_string())
    })
    .collect()
}

/// The sha of the commit whose subject is exactly `subject`.
fn sha_of(remote: &Path, subject: &str) -> String {
    git(remote, &["log", "main", "--format=%H%x1f%s"])
        .lines()
        .filter_map(|l| l.split_once('\x1f'))
        .find(|(_, s)| *s == subject)
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| panic!("no commit `{subject}`"))
}

fn actions(outcome: &Value) -> Vec<(String, String, String)> {
    outcome["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["subject"].as_str().unwrap().to_string(),
                d["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_demo_promotes_v2_aborts_v3_reverts_the_bad_deploy_early_and_freezes_on_a_slow_burn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run1");
    let outcome = demo(&dir, "7");
    let remote = dir.join("remote.git");

    // The remote's history, from the outside.
    let log = remote_log(&remote);
    let who_what: Vec<(&str, &str)> = log
        .iter()
        .map(|(a, s, _)| (a.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        who_what,
        [
            (
                "slogate",
                "slogate: revert 1 commit touching apps/checkout/overlays/prod"
            ),
            (
                "Dana Developer",
                "checkout: cut the DB pool to 2 connections per pod"
            ),
            ("Dana Developer", "checkout: release v4 to staging"),
            (
                "slogate",
                "slogate: revert 1 commit touching apps/checkout/overlays/prod"
            ),
            ("Dana Developer", "checkout: release v3 to the canary"),
            ("slogate", "slogate: promote shop/checkout to v2"),
            ("Dana Developer", "checkout: release v2 to the canary"),
            ("Platform Team", "checkout: v1 in staging and production"),
        ],
        "{log:#?}"
    );
    let pool = sha_of(
        &remote,
        "checkout: cut the DB pool to 2 connections per pod",
    );
    let v3 = sha_of(&remote, "checkout: release v3 to the canary");
    assert!(
        log[0].2.contains(&format!("Slogate-Reverts: {pool}")),
        "{}",
        log[0].2
    );
    assert!(log[0]
        .2
        .contains("Slogate-SLO: checkout-requests-availability"));
    // Post-deploy verification reverted it, with the numbers it used.
    assert!(
        log[0]
            .2
            .contains("Slogate-Reason: post-deploy-verification")
            && log[0].2.contains(&format!("Slogate-Deploy: {pool}"))
            && log[0].2.contains("Slogate-P-Value: ")
            && log[0].2.contains("Slogate-Burn-Rate: "),
        "{}",
        log[0].2
    );
    assert!(
        log[3].2.contains(&format!("Slogate-Reverts: {v3}")),
        "{}",
        log[3].2
    );
    assert!(log[3].2.contains("Slogate-Canary-Version: v3"));
    assert!(log[5].2.contains("Slogate-Version: v2"));
    // Production ends where it should: v2 stable and canary, the pool restored, and no v4.
    let prod = git(
        &remote,
        &[
            "show",
            "main:apps/checkout/overlays/prod/kustomization.yaml",
        ],
    );
    assert!(
        prod.contains("newTag: v2") && !prod.contains("v3") && !prod.contains("v4"),
        "{prod}"
    );
    assert!(prod.contains("DB_POOL_SIZE=20"), "{prod}");
    assert_eq!(
        outcome["guard"]["breach_commit"].as_str(),
        Some(pool.as_str())
    );
    assert_eq!(outcome["guard"]["reverted"], serde_json::json!([pool]));
    // Reverted within a few simulated minutes, with the budget well below 80%.
    let consumed = outcome["guard"]["budget_consumed_at_revert"]
        .as_f64()
        .unwrap();
    assert!(
        consumed < 0.5,
        "the revert came at {consumed} of the budget"
    );
    let secs = outcome["guard"]["verification_seconds"].as_f64().unwrap();
    assert!(secs <= 180.0, "the revert came {secs}s after the deploy");
    // The slow burn without a deploy froze the app at the 95% threshold.
    assert_eq!(outcome["guard"]["frozen"], true);
    let at_freeze = outcome["guard"]["budget_consumed_at_freeze"]
        .as_f64()
        .unwrap();
    assert!(at_freeze >= 0.95, "frozen at {at_freeze}");
    assert_eq!(outcome["unfrozen"], true);

    // The rollouts.
    let v2 = &outcome["releases"][0];
    assert_eq!(v2["phase"], "Succeeded");
    assert_eq!(
        v2["weights_seen"],
        serde_json::json!([10, 25, 50, 75, 100, 0])
    );
    assert_eq!(
        v2["promotion_commit"].as_str(),
        Some(sha_of(&remote, "slogate: promote shop/checkout to v2").as_str())
    );
    let v3r = &outcome["releases"][1];
    assert_eq!(v3r["phase"], "Failed");
    assert_eq!(v3r["weights_seen"].as_array().unwrap().last().unwrap(), 0);
    // Aborted in the first step by its success rate (8% errors): the sequential
    // error-count test needs at least three intervals, failureLimit 1 aborts after two.
    let reason = v3r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("step 1/5 (10%)")
            && reason.contains("request-success-rate")
            && reason.contains("below the minimum 0.98"),
        "{v3r}"
    );

    // The promotion was refused by the freeze, and nothing was committed for it.
    assert_eq!(outcome["promote"]["promoted"], false);
    assert_eq!(outcome["promote"]["exit_code"], 1);
    assert!(
        outcome["promote"]["reason"]
            .as_str()
            .unwrap()
            .contains("frozen"),
        "{}",
        outcome["promote"]
    );

    // Final weights, from the file the real router wrote.
    let weights: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("weights/shop/checkout.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(weights["stable"], 100);
    assert_eq!(weights["canary"], 0);
    assert_eq!(
        outcome["final_weights"],
        serde_json::json!({"stable": 100, "canary": 0})
    );

    // The decision log, read back through `slogate decisions`.
    let out = slogate(&[
        "decisions",
        "--state-dir",
        dir.join("state").to_str().unwrap(),
        "--limit",
        "1000",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = records.as_array().expect("a JSON array of records");
    let has = |kind: &str, action: &str| {
        records
            .iter()
            .any(|r| r["kind"] == kind && r["action"] == action)
    };
    for (kind, action) in [
        ("rollout", "start"),
        ("rollout", "promoted"),
        ("known_good", "known-good"),
        ("rollout", "abort"),
        ("rollout", "reverted"),
        ("guard", "deploy-revert"),
        ("guard", "page-notify"),
        ("guard", "notify"),
        ("guard", "rollback"),
        ("guard", "unfreeze"),
        ("promote", "refuse"),
    ] {
        assert!(
            has(kind, action),
            "no {kind}/{action} decision in {records:#?}"
        );
    }
    assert_eq!(
        records.len(),
        outcome["decisions"].as_array().unwrap().len()
    );
    let rollback = records
        .iter()
        .find(|r| r["kind"] == "guard" && r["action"] == "rollback")
        .unwrap();
    assert!(
        rollback["reason"]
            .as_str()
            .unwrap()
            .contains("emergency threshold 95.0%"),
        "{rollback}"
    );
    let caught = records
        .iter()
        .find(|r| r["kind"] == "guard" && r["action"] == "deploy-revert")
        .unwrap();
    assert_eq!(caught["observed"]["reason"], "post-deploy-verification");
    assert_eq!(caught["observed"]["deploy"], pool.as_str());
    let v = &caught["observed"]["verdicts"][0];
    assert!(v["p_value"].as_f64().unwrap() <= 0.02, "{caught}");
    assert!(v["regression"].as_bool().unwrap(), "{caught}");

    // Same seed, same story.
    let again = demo(&tmp.path().join("run2"), "7");
    assert_eq!(actions(&again), actions(&outcome));
    assert_eq!(again["releases"], {
        let mut r = outcome["releases"].clone();
        // Commit shas differ between runs (times); the rest must not.
        for (i, rel) in again["releases"].as_array().unwrap().iter().enumerate() {
            r[i]["promotion_commit"] = rel["promotion_commit"].clone();
            r[i]["revert_commit"] = rel["revert_commit"].clone();
            r[i]["reason"] = rel["reason"].clone();
        }
        r
    });
    assert_eq!(
        again["guard"]["budget_consumed_at_revert"],
        outcome["guard"]["budget_consumed_at_revert"]
    );
}

#[test]
fn bad_demo_flags_exit_2_naming_the_flag() {
    let out = slogate(&["demo", "--speed", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed: expected a positive number"));

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "keep me").unwrap();
    let out = slogate(&["demo", "--keep", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--keep") && err.contains("new or empty directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("precious.txt")).unwrap(),
        "keep me"
    );
}
