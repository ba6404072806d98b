//! Conformance with `scipy.stats.mannwhitneyu` and with numpy's median of
//! pairwise differences, on the fixture written by
//! `scripts/scipy_reference.py` (`tests/fixtures/scipy/mannwhitneyu.json`).
//!
//! Tolerance for p-values: absolute 1e-9 always, and in addition relative
//! 1e-9 when scipy's p-value is below 1e-6 (so tiny p-values must agree in
//! their leading nine digits, not merely be "close to 0"). The U statistic
//! must be equal exactly (it is a multiple of ½). The Hodges-Lehmann
//! estimate and interval bounds must agree to 1e-12 (absolute, and relative
//! for values above 1 in magnitude); the rank `k` exactly.

use serde_json::Value;
use slogate::analysis::judge::{hodges_lehmann, mann_whitney_u, Alternative, CiMethod, Method};

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scipy/mannwhitneyu.json"
    ))
    .expect("fixture present");
    serde_json::from_str(&text).expect("valid JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn p_close(got: f64, want: f64) -> bool {
    let abs_ok = (got - want).abs() <= 1e-9;
    let rel_ok = want >= 1e-6 || (got / want - 1.0).abs() <= 1e-9;
    abs_ok && rel_ok
}

fn close12(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-12 * want.abs().max(1.0)
}

#[test]
fn p_values_and_statistics_match_scipy() {
    let doc = fixture();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 25, "fixture has {} cases", cases.len());
    let mut checked = 0;
    let mut tiny = 0;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let x = floats(&case["x"]);
        let y = floats(&case["y"]);
        let method = case["method"].as_str().expect("method");
        for (key, alternative) in [
            ("two-sided", Alternative::TwoSided),
            ("less", Alternative::Less),
            ("greater", Alternative::Greater),
        ] {
            let want_u = case[key]["statistic"].as_f64().expect("statistic");
            let want_p = case[key]["pvalue"].as_f64().expect("pvalue");
            let r = mann_whitney_u(&x, &y, alternative, Method::Auto).expect("valid input");
            assert_eq!(r.u, want_u, "{name} {key}: U");
            let want_method = if method == "exact" {
                Method::Exact
            } else {
                Method::Asymptotic
            };
            assert_eq!(r.method, want_method, "{name}: method chosen by auto");
            assert!(
                p_close(r.p_value, want_p),
                "{name} {key}: p = {:e}, scipy {:e} (diff {:e})",
                r.p_value,
                want_p,
                r.p_value - want_p
            );
            if want_p < 1e-6 {
                tiny += 1;
            }
            checked += 1;
        }
    }
    assert_eq!(checked, cases.len() * 3);
    assert!(tiny >= 3, "fixture should exercise tiny p-values");
}

#[test]
fn hodges_lehmann_matches_numpy_reference() {
    let doc = fixture();
    for case in doc["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let x = floats(&case["x"]);
        let y = floats(&case["y"]);
        let hl_ref = &case["hl"];
        let confidence = hl_ref["confidence"].as_f64().expect("confidence");
        let hl = hodges_lehmann(&x, &y, confidence, Method::Auto).expect("valid input");
        let want_est = hl_ref["estimate"].as_f64().expect("estimate");
        let want_lo = hl_ref["ci_low"].as_f64().expect("ci_low");
        let want_hi = hl_ref["ci_high"].as_f64().expect("ci_high");
        let want_k = hl_ref["k"].as_u64().expect("k");
        assert!(
            close12(hl.estimate, want_est),
            "{name}: estimate {} vs {}",
            hl.estimate,
            want_est
        );
        assert_eq!(hl.k, want_k, "{name}: k");
        assert!(
            close12(hl.ci_low, want_lo),
            "{name}: ci_low {} vs {}",
            hl.ci_low,
            want_lo
        );
        assert!(
            close12(hl.ci_high, want_hi),
            "{name}: ci_high {} vs {}",
            hl.ci_high,
            want_hi
        );
        let want_ci_method = if case["method"] == "exact" {
            CiMethod::Exact
        } else {
            CiMethod::Normal
        };
        assert_eq!(hl.ci_method, want_ci_method, "{name}");
    }
}
