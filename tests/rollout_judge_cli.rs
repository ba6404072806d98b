//! `slogate judge`, run as the built binary: two samples through the judge (the same numbers
//! as `tests/judge_result_json.rs`, checked against scipy there), the sequential count test,
//! table output, and bad input naming the file and line.

use std::path::Path;
use std::process::{Command, Output};

fn judge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slogate"))
        .arg("judge")
        .args(args)
        .env_remove("SLOGATE_LOG")
        .output()
        .expect("run slogate")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write sample");
    p.to_str().expect("UTF-8 path").to_string()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn samples_are_judged_and_a_regression_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let canary = write(
        dir.path(),
        "canary.txt",
        "20\n22\n21\n# a comment\n\n25\n30\n",
    );
    let baseline = write(dir.path(), "baseline.json", "[1.0, 2.2, 1.1, 2.5, 3.0]");
    let out = judge(&[
        "--canary",
        &canary,
        "--baseline",
        &baseline,
        "--tolerance",
        "0.1",
        "--confidence",
        "0.95",
    ]);
    assert_eq!(out.status.code(), Some(1), "High fails");
    let v = json(&out);
    assert_eq!(v["classification"], "High");
    assert_eq!(v["u"], 25.0);
    // scipy.stats.mannwhitneyu: exact, p = 2/252
    assert!((v["p_value"].as_f64().unwrap() - 2.0 / 252.0).abs() < 1e-15);
    assert_eq!(v["estimate"], 20.0);
    assert_eq!(v["ci_low"], 17.8);
    assert_eq!(v["ci_high"], 27.8);
    assert!((v["effect"].as_f64().unwrap() - 23.6 / 1.96).abs() < 1e-12);

    // Only a decrease fails: the same samples pass.
    let out = judge(&[
        "--canary",
        &canary,
        "--baseline",
        &baseline,
        "--direction",
        "decrease",
        "-o",
        "table",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    let first = table.lines().next().unwrap();
    assert!(
        first.starts_with("classification") && first.ends_with("Pass"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("p_value")), "{table}");
}

#[test]
fn error_counts_use_the_sequential_test() {
    // 6% canary errors against 0.2% on stable, six intervals: rejected. One interval alone
    // is not enough for the default test (it cannot tell a bad version from a bad pod), and
    // the first interval's excess also counts as possible noise until the ratio is known.
    let bad = [
        "--counts",
        "60,1000",
        "--baseline-counts",
        "20,9000",
        "--counts",
        "55,1000",
        "--baseline-counts",
        "17,9000",
        "--counts",
        "58,1000",
        "--baseline-counts",
        "19,9000",
        "--counts",
        "61,1000",
        "--baseline-counts",
        "22,9000",
        "--counts",
        "57,1000",
        "--baseline-counts",
        "18,9000",
        "--counts",
        "62,1000",
        "--baseline-counts",
        "21,9000",
    ];
    let out = judge(&bad[..4]);
    assert_eq!(out.status.code(), Some(0), "one interval never rejects");
    let v = json(&out);
    assert_eq!(v["first_reject_interval"], serde_json::Value::Null);
    let out = judge(&bad);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["classification"], "High");
    assert_eq!(v["reject"], true);
    assert!(v["p_value"].as_f64().unwrap() <= 0.02);
    assert_eq!(v["alpha"], 0.02);
    assert_eq!(v["dispersion_model"], "estimated");
    let first = v["first_reject_interval"]
        .as_u64()
        .expect("rejected at an interval");
    assert!((3..=6).contains(&first), "{v}");
    let dispersion = v["dispersion"].as_f64().expect("dispersion estimate");
    assert!(dispersion >= 1.0 && dispersion.is_finite(), "{v}");
    // The previous, binomial-only test rejects at the first interval.
    let mut binomial = bad.to_vec();
    binomial.extend(["--dispersion", "binomial"]);
    let v = json(&judge(&binomial));
    assert_eq!(v["first_reject_interval"], 1);
    assert_eq!(v["dispersion"], 1.0);
    assert_eq!(v["dispersion_model"], "binomial");
    // Equal rates over two intervals: not rejected.
    let out = judge(&[
        "--counts",
        "2,1000",
        "--baseline-counts",
        "18,9000",
        "--counts",
        "1,1000",
        "--baseline-counts",
        "9,9000",
        "--alpha",
        "0.05",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["classification"], "Pass");
    assert_eq!(v["intervals"], 2);
    assert_eq!(v["alpha"], 0.05);
    assert!((v["canary_error_rate"].as_f64().unwrap() - 0.0015).abs() < 1e-12);
}

#[test]
fn bad_input_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.txt", "1\n2\n3\n");
    let bad = write(dir.path(), "bad.txt", "1\n2\nfast\n");
    let out = judge(&["--canary", &bad, "--baseline", &good]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{bad}:3: expected a number, found \"fast\"")),
        "{err}"
    );
    let missing = dir.path().join("missing.txt");
    let out = judge(&["--canary", missing.to_str().unwrap(), "--baseline", &good]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.txt: cannot read"));
    let out = judge(&["--counts", "5,3", "--baseline-counts", "1,10"]);
    assert_eq!(out.status.code(), Some(2), "more errors than requests");
    let out = judge(&["--counts", "5", "--baseline-counts", "1,10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ERRORS,REQUESTS"));
    let out = judge(&[]);
    assert_eq!(out.status.code(), Some(2));
    // A negative number as its own argument: the message names the flag.
    for (flag, args) in [
        (
            "--counts",
            ["--counts", "-1,100", "--baseline-counts", "1,10"],
        ),
        (
            "--baseline-counts",
            ["--counts", "1,100", "--baseline-counts", "-3,10"],
        ),
    ] {
        let out = judge(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{flag} \"")) && err.contains("expected ERRORS,REQUESTS"),
            "{err}"
        );
    }
}

#[test]
fn overflowing_counts_exit_2() {
    let max = u64::MAX.to_string();
    // 2^64 - 1 canary requests plus 1 baseline request used to wrap to 0 and drop the
    // interval.
    let one = format!("0,{max}");
    let out = judge(&["--counts", &one, "--baseline-counts", "0,1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interval 1") && err.contains("overflow"),
        "{err}"
    );
    // Totals over several intervals overflow too.
    let half = format!("0,{}", u64::MAX / 2 + 1);
    let out = judge(&[
        "--counts",
        &half,
        "--baseline-counts",
        "0,0",
        "--counts",
        &half,
        "--baseline-counts",
        "0,0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interval 2") && err.contains("canary requests overflows"),
        "{err}"
    );
}
