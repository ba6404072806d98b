//! `decide` calls per second for a realistic Rollout: five steps, three metrics (two built-in
//! thresholds and a comparative one), the sequential error-count test with a history of 40
//! intervals (it is replayed from the status at every call), and an analysis observation
//! that passes, so that every call takes a step, records it and issues a weight change.
//!
//! Run: `cargo run --release --example decide_speed`

use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use slogate::model::traffic::Weights;
use slogate::rollout::checks::{
    check_threshold, AnalysisWindow, ErrorCountSample, IntervalObservation,
};
use slogate::rollout::status::CountBatch;
use slogate::rollout::{decide, Observations, Phase, RolloutStatus};

/// Each measurement runs for about this long (at least 100 calls).
const BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// Calls `f` until `BUDGET` has passed; returns (calls, elapsed).
fn measure(mut f: impl FnMut()) -> (u32, std::time::Duration) {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 100 || start.elapsed() < BUDGET {
        for _ in 0..100 {
            f();
        }
        calls += 100;
    }
    (calls, start.elapsed())
}

fn main() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/rollouts/checkout.yaml"
    ))
    .expect("read examples/rollouts/checkout.yaml");
    let rollout = slogate::rollout::load::from_yaml_str(&text).expect("the example is valid");
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let status = RolloutStatus {
        phase: Phase::Progressing {
            step: 1,
            since: t0,
            deadline: t0 + chrono::Duration::minutes(10),
        },
        reason: "bench".into(),
        attempt: 1,
        canary_version: Some("v2".into()),
        stable_version: Some("v1".into()),
        weights: Some(Weights::canary(25)),
        count_batches: (0..40)
            .map(|i| CountBatch {
                canary_errors: i % 3,
                stable_errors: 5 + i % 4,
                canary_share: 0.25,
                requests: 2000,
            })
            .collect(),
        ..RolloutStatus::default()
    };
    let end = t0 + chrono::Duration::seconds(30);
    let window = AnalysisWindow { start: t0, end };
    let obs = Observations {
        canary_version: Some("v2".into()),
        stable_version: Some("v1".into()),
        weights: Some(Weights::canary(25)),
        analysis: Some(IntervalObservation {
            window,
            checks: vec![
                check_threshold("request-success-rate", Some(0.99), None, &[0.998]),
                check_threshold("request-duration", None, Some(500.0), &[212.0]),
                check_threshold("p95-latency-vs-stable", None, None, &[1.0]),
            ],
            canary_requests: Some(2400.0),
            error_counts: Some(ErrorCountSample {
                canary_errors: 2.0,
                canary_requests: 2400.0,
                stable_errors: 9.0,
                stable_requests: 7200.0,
            }),
        }),
        ..Observations::default()
    };
    // Warm up and check the scenario does what it claims.
    let d = decide(&rollout, &status, &obs, end);
    assert_eq!(d.next.phase.step(), Some(2), "{}", d.next.reason);

    let (calls, elapsed) = measure(|| {
        black_box(decide(
            black_box(&rollout),
            black_box(&status),
            black_box(&obs),
            end,
        ));
    });
    println!(
        "decide, a step with analysis (40-interval sequential test replay): {:.0} calls/s ({:.1} µs/call, {calls} calls)",
        f64::from(calls) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(calls)
    );

    // The common idle call: nothing due, nothing to do.
    let idle_obs = Observations {
        analysis: None,
        ..obs.clone()
    };
    let (calls, elapsed) = measure(|| {
        black_box(decide(
            black_box(&rollout),
            black_box(&status),
            black_box(&idle_obs),
            t0,
        ));
    });
    println!(
        "decide, idle (nothing due): {:.0} calls/s ({:.2} µs/call, {calls} calls)",
        f64::from(calls) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(calls)
    );
}
