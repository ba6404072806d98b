//! Kayenta's weighted group score, with the cases of Kayenta's
//! `ScorerSuite.scala` (spinnaker/kayenta, Apache-2.0) transcribed, plus
//! metric weights and the pass / marginal thresholds.

use slogate::analysis::judge::{
    score_canary, Label, MetricOutcome, ScoreClassification, ScoreThresholds,
};
use std::collections::BTreeMap;

const THRESHOLDS: ScoreThresholds = ScoreThresholds {
    pass: 95.0,
    marginal: 75.0,
};

fn metric(name: &str, group: &str, label: Label) -> MetricOutcome {
    MetricOutcome::new(name, &[group], label)
}

fn critical(mut m: MetricOutcome) -> MetricOutcome {
    m.critical = true;
    m
}

fn weights(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn score(metrics: &[MetricOutcome], w: &[(&str, f64)]) -> f64 {
    score_canary(metrics, &weights(w), THRESHOLDS)
        .expect("valid")
        .score
}

#[test]
fn kayenta_scorer_suite() {
    use Label::*;
    assert_eq!(score(&[metric("p", "g", Pass)], &[]), 100.0);
    assert_eq!(score(&[metric("h", "g", High)], &[]), 0.0);
    let r = score_canary(&[metric("n", "g", Nodata)], &BTreeMap::new(), THRESHOLDS).expect("valid");
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].score, 0.0);
    assert_eq!(r.score, 0.0);
    let r = score_canary(
        &[
            metric("a", "pass", Pass),
            metric("b", "pass", Pass),
            metric("n", "nodata", Nodata),
        ],
        &BTreeMap::new(),
        THRESHOLDS,
    )
    .expect("valid");
    let mut group_scores: Vec<f64> = r.groups.iter().map(|g| g.score).collect();
    group_scores.sort_by(f64::total_cmp);
    assert_eq!(group_scores, vec![0.0, 100.0]);
    assert_eq!(r.score, 100.0);
    assert_eq!(
        score(&[metric("p", "g", Pass), metric("h", "g", High)], &[]),
        50.0
    );
    assert_eq!(
        score(
            &[
                metric("p", "g", Pass),
                metric("h", "g", High),
                metric("l", "g", Low)
            ],
            &[]
        ),
        33.33
    );
    assert_eq!(
        score(
            &[
                metric("p1", "group-1", Pass),
                metric("p2", "group-1", Pass),
                metric("f", "group-2", High)
            ],
            &[("group-1", 75.0), ("group-2", 25.0)]
        ),
        75.0
    );
    assert_eq!(
        score(
            &[
                metric("p", "group-1", Pass),
                metric("f1", "group-1", High),
                metric("f2", "group-2", High)
            ],
            &[("group-1", 50.0), ("group-2", 50.0)]
        ),
        25.0
    );
    assert_eq!(
        score(
            &[
                metric("p", "group-1", Pass),
                metric("n", "group-1", Nodata),
                metric("f", "group-2", High)
            ],
            &[("group-1", 50.0), ("group-2", 50.0)]
        ),
        50.0
    );
    assert_eq!(
        score(
            &[metric("p", "g", Pass), critical(metric("h", "g", High))],
            &[]
        ),
        0.0
    );
    assert_eq!(
        score(
            &[metric("l", "g", Low), critical(metric("p", "g", Pass))],
            &[]
        ),
        50.0
    );
    assert_eq!(
        score(
            &[metric("p", "g", Pass), critical(metric("n", "g", Nodata))],
            &[]
        ),
        0.0
    );
    assert_eq!(
        score(
            &[
                metric("h", "group1", High),
                metric("l", "group1", Low),
                metric("p", "group1", Pass),
                metric("f", "group2", High),
            ],
            &[("group1", 15.0), ("group2", 85.0)]
        ),
        5.0
    );
}

#[test]
fn thresholds_and_critical_failures() {
    use Label::*;
    let metrics: Vec<MetricOutcome> = (0..20)
        .map(|i| metric(&format!("m{i}"), "g", if i < 17 { Pass } else { High }))
        .collect();
    // 85 % -> Marginal between 75 and 95
    let r = score_canary(&metrics, &BTreeMap::new(), THRESHOLDS).expect("valid");
    assert_eq!(r.score, 85.0);
    assert_eq!(r.classification, ScoreClassification::Marginal);
    let r = score_canary(&metrics[..16], &BTreeMap::new(), THRESHOLDS).expect("valid");
    assert_eq!(r.classification, ScoreClassification::Pass);
    let r = score_canary(&metrics[14..], &BTreeMap::new(), THRESHOLDS).expect("valid");
    assert_eq!(r.classification, ScoreClassification::Fail);
    // a critical failure fails whatever the thresholds
    let mut with_critical = metrics[..16].to_vec();
    with_critical.push(critical(metric("c", "g", Low)));
    let lenient = ScoreThresholds {
        pass: 0.0,
        marginal: 0.0,
    };
    let r = score_canary(&with_critical, &BTreeMap::new(), lenient).expect("valid");
    assert_eq!(
        (r.score, r.classification),
        (0.0, ScoreClassification::Fail)
    );
    assert!(r.reason.expect("reason").contains("`c`"));
    // muted metrics do not count
    let mut muted = metric("m", "g", High);
    muted.muted = true;
    assert_eq!(score(&[metric("p", "g", Pass), muted], &[]), 100.0);
}

#[test]
fn metric_weights() {
    use Label::*;
    let mut heavy = metric("latency", "g", High);
    heavy.weight = 3.0;
    // 100 x 1 / (1 + 3)
    assert_eq!(score(&[metric("errors", "g", Pass), heavy], &[]), 25.0);
    // groups without a configured weight share the rest of 100
    assert_eq!(
        score(
            &[
                metric("a", "w", Pass),
                metric("b", "u1", High),
                metric("c", "u2", Pass)
            ],
            &[("w", 50.0)]
        ),
        75.0
    );
}
