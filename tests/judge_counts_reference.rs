//! The sequential error-count test on fixed inputs against values computed independently
//! by `scripts/judge_counts_reference.py` (numpy; see `tests/fixtures/judge-counts/`).

use slogate::analysis::judge::{ErrorBatch, ErrorRateSequentialTest, ErrorRateTestConfig};

#[derive(serde::Deserialize)]
struct Doc {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    dispersion: String,
    alpha: f64,
    batches: Vec<[u64; 4]>,
    expected: Vec<Expected>,
}

#[derive(serde::Deserialize)]
struct Expected {
    log_e_value: f64,
    p_value: f64,
    dispersion: f64,
    first_reject: Option<u64>,
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

#[test]
fn matches_the_independent_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/judge-counts/sequences.json"
    );
    let doc: Doc = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture JSON");
    assert_eq!(doc.cases.len(), 8);
    let mut rejecting = 0;
    for case in &doc.cases {
        let config = match case.dispersion.as_str() {
            "estimated" => ErrorRateTestConfig {
                alpha: case.alpha,
                ..ErrorRateTestConfig::default()
            },
            "binomial" => ErrorRateTestConfig::binomial(case.alpha),
            other => panic!("{}: unknown dispersion {other}", case.name),
        };
        let mut test = ErrorRateSequentialTest::new(config).expect("valid config");
        assert_eq!(case.batches.len(), case.expected.len());
        for (i, ([ce, cr, se, sr], want)) in case.batches.iter().zip(&case.expected).enumerate() {
            let r = test
                .update(ErrorBatch::from_requests(*ce, *cr, *se, *sr).expect("consistent"))
                .expect("valid batch");
            let at = format!("{} look {}", case.name, i + 1);
            assert!(
                close(r.log_e_value, want.log_e_value),
                "{at}: log e-value {} vs reference {}",
                r.log_e_value,
                want.log_e_value
            );
            assert!(
                close(r.p_value, want.p_value),
                "{at}: p {} vs {}",
                r.p_value,
                want.p_value
            );
            assert!(
                close(test.dispersion(), want.dispersion),
                "{at}: dispersion {} vs {}",
                test.dispersion(),
                want.dispersion
            );
            assert_eq!(r.first_reject_look, want.first_reject, "{at}");
        }
        rejecting += usize::from(case.expected.last().and_then(|e| e.first_reject).is_some());
    }
    // the fixture exercises both outcomes
    assert!(rejecting >= 2 && rejecting < doc.cases.len());
}
