//! The JSON shape of a judged metric, as `slogate judge … -o json` will print
//! it.

use serde_json::Value;
use slogate::analysis::judge::{judge_metric, ClassifierConfig, IntervalMode, Label};

#[test]
fn judged_metric_serialises_with_the_cli_fields() {
    let canary = [20.0, 22.0, 21.0, 25.0, 30.0];
    let baseline = [1.0, 2.2, 1.1, 2.5, 3.0];
    let config = ClassifierConfig {
        tolerance: 0.1,
        confidence: 0.95,
        mode: IntervalMode::Exact,
        ..ClassifierConfig::default()
    };
    let r = judge_metric(&canary, &baseline, &config).expect("valid");
    let json: Value = serde_json::to_value(&r).expect("serialisable");
    for key in [
        "u",
        "p_value",
        "ci_low",
        "ci_high",
        "estimate",
        "effect",
        "classification",
    ] {
        assert!(json.get(key).is_some(), "missing `{key}` in {json}");
    }
    assert_eq!(json["classification"], "High");
    assert_eq!(json["u"], 25.0);
    // scipy.stats.mannwhitneyu(canary, baseline): exact, p = 2/252
    let p = json["p_value"].as_f64().expect("number");
    assert!((p - 2.0 / 252.0).abs() < 1e-15);
    // numpy: median of the 25 differences = 20.0, sorted differences [2] and
    // [22] = 17.8 and 27.8 (exact 95% interval, k = 3)
    assert_eq!(json["estimate"], 20.0);
    assert_eq!(json["ci_low"], 17.8);
    assert_eq!(json["ci_high"], 27.8);
    assert_eq!(json["interval_mode"], "exact");
    assert_eq!(r.classification, Label::High);
    // mean ratio 23.6 / 1.96
    let effect = json["effect"].as_f64().expect("number");
    assert!((effect - 23.6 / 1.96).abs() < 1e-12);
}

#[test]
fn missing_data_serialises_nulls() {
    let r = judge_metric(&[], &[1.0], &ClassifierConfig::default()).expect("valid");
    let json: Value = serde_json::to_value(&r).expect("serialisable");
    assert_eq!(json["classification"], "Nodata");
    assert!(json["u"].is_null() && json["p_value"].is_null() && json["estimate"].is_null());
}
