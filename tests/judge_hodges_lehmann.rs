//! Hodges-Lehmann estimate and interval: selection against brute force,
//! unit invariance, and a large-sample smoke test.

#[path = "judge_common/mod.rs"]
mod common;

use common::sim;
use slogate::analysis::judge::{hodges_lehmann, kth_pairwise_difference, CiMethod, Method};

fn brute_sorted_differences(x: &[f64], y: &[f64]) -> Vec<f64> {
    let mut d: Vec<f64> = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| a - b))
        .collect();
    d.sort_unstable_by(f64::total_cmp);
    d
}

#[test]
fn selection_equals_sorting_all_differences() {
    let mut rng = sim::rng(3);
    let x: Vec<f64> = (0..300).map(|_| sim::normal(&mut rng, 5.0, 2.0)).collect();
    // heavy ties in y
    let y: Vec<f64> = (0..211)
        .map(|_| (sim::normal(&mut rng, 4.0, 2.0) * 2.0).round() / 2.0)
        .collect();
    let d = brute_sorted_differences(&x, &y);
    for k in [
        1,
        2,
        17,
        1000,
        d.len() as u64 / 2,
        d.len() as u64 / 2 + 1,
        d.len() as u64 - 1,
        d.len() as u64,
    ] {
        assert_eq!(
            kth_pairwise_difference(&x, &y, k).expect("valid k"),
            d[(k - 1) as usize],
            "k = {k}"
        );
    }
    let hl = hodges_lehmann(&x, &y, 0.95, Method::Auto).expect("valid");
    let n = d.len();
    assert_eq!(hl.estimate, (d[n / 2 - 1] + d[n / 2]) / 2.0);
    assert_eq!(hl.ci_low, d[hl.k as usize - 1]);
    assert_eq!(hl.ci_high, d[n - hl.k as usize]);
    assert_eq!(hl.ci_method, CiMethod::Normal);
    assert!(hl.ci_low < hl.estimate && hl.estimate < hl.ci_high);
}

#[test]
fn scaling_inputs_scales_outputs() {
    let mut rng = sim::rng(11);
    for (n, m, method) in [
        (7, 5, Method::Auto),
        (40, 60, Method::Auto),
        (400, 300, Method::Asymptotic),
    ] {
        let x: Vec<f64> = (0..n).map(|_| sim::normal(&mut rng, 0.25, 0.1)).collect();
        let y: Vec<f64> = (0..m).map(|_| sim::normal(&mut rng, 0.2, 0.1)).collect();
        let x_ms: Vec<f64> = x.iter().map(|v| v * 1000.0).collect();
        let y_ms: Vec<f64> = y.iter().map(|v| v * 1000.0).collect();
        for confidence in [0.9, 0.95, 0.98] {
            let s = hodges_lehmann(&x, &y, confidence, method).expect("valid");
            let ms = hodges_lehmann(&x_ms, &y_ms, confidence, method).expect("valid");
            assert_eq!(s.k, ms.k);
            for (a, b, what) in [
                (s.estimate, ms.estimate, "estimate"),
                (s.ci_low, ms.ci_low, "ci_low"),
                (s.ci_high, ms.ci_high, "ci_high"),
            ] {
                let rel = (b - 1000.0 * a).abs() / (1000.0 * a).abs();
                assert!(
                    rel <= 1e-9,
                    "{n}x{m} {confidence} {what}: {b} vs 1000 x {a} (rel {rel:e})"
                );
            }
        }
    }
}

#[test]
fn shift_is_recovered_on_large_samples() {
    // 2 x 10,000 values, 10^8 differences, never materialised
    let mut rng = sim::rng(5);
    let y: Vec<f64> = (0..10_000)
        .map(|_| sim::normal(&mut rng, 100.0, 10.0))
        .collect();
    let x: Vec<f64> = (0..10_000)
        .map(|_| sim::normal(&mut rng, 103.0, 10.0))
        .collect();
    let hl = hodges_lehmann(&x, &y, 0.95, Method::Auto).expect("valid");
    assert!((hl.estimate - 3.0).abs() < 0.5, "estimate {}", hl.estimate);
    assert!(hl.ci_low < 3.0 && 3.0 < hl.ci_high);
    // the interval has the normal-theory width 2·1.96·sqrt(2·100/10^4)·sqrt(π/3) ≈ 0.57
    let width = hl.ci_high - hl.ci_low;
    assert!((0.45..0.70).contains(&width), "width {width}");
    // the bounds are order statistics: exactly k - 1 differences lie below ci_low
    // (checked through the selection of the neighbouring rank)
    let below = kth_pairwise_difference(&x, &y, hl.k - 1).expect("valid");
    assert!(below <= hl.ci_low);
}
