//! Anytime-valid sequential tests: monotone p-values, power against a clear
//! regression, and the false-rollback rate under continuous peeking.

#[path = "judge_common/mod.rs"]
mod common;

use common::sim;
use slogate::analysis::judge::{
    Alternative, ErrorBatch, ErrorRateSequentialTest, ErrorRateTestConfig, HorizonSequentialTest,
    HorizonTestConfig, MsprtConfig, NormalMixtureSequentialTest, RiskPrior, TauScale,
};

const ALPHA: f64 = 0.02;
const RUNS: usize = 500;
const LOOKS: usize = 60;
/// Requests per 30 s interval, split between canary and stable.
const REQUESTS: u64 = 2000;
const ERROR_RATE: f64 = 0.01;

fn count_batch(rng: &mut rand::rngs::Xoshiro256PlusPlus, t: usize, canary_rate: f64) -> ErrorBatch {
    let s = sim::canary_share(t);
    let canary_requests = (REQUESTS as f64 * s).round() as u64;
    let stable_requests = REQUESTS - canary_requests;
    let a = sim::binomial(rng, canary_requests, canary_rate);
    let b = sim::binomial(rng, stable_requests, ERROR_RATE);
    ErrorBatch::from_requests(a, canary_requests, b, stable_requests).expect("consistent")
}

fn count_test() -> ErrorRateSequentialTest {
    ErrorRateSequentialTest::new(ErrorRateTestConfig {
        alpha: ALPHA,
        ..ErrorRateTestConfig::default()
    })
    .expect("valid config")
}

fn msprt() -> NormalMixtureSequentialTest {
    NormalMixtureSequentialTest::new(MsprtConfig {
        alpha: ALPHA,
        ..MsprtConfig::default()
    })
    .expect("valid config")
}

#[test]
fn p_values_never_increase() {
    let mut rng = sim::rng(1);
    // counts: a mix of null and bad intervals so the statistic goes up and down
    let mut test = count_test();
    let mut previous = 1.0;
    let mut moved = false;
    for t in 0..LOOKS {
        let rate = if (10..20).contains(&t) { 0.02 } else { 0.005 };
        let r = test.update(count_batch(&mut rng, t, rate)).expect("valid");
        assert!(
            r.p_value <= previous,
            "look {t}: {} > {previous}",
            r.p_value
        );
        assert!(r.p_value <= (-r.log_e_value).exp() + 1e-300);
        moved |= r.p_value < previous;
        previous = r.p_value;
    }
    assert!(moved, "the p-value should have moved");
    // continuous
    let mut test = msprt();
    let mut previous = 1.0;
    let mut log_e_went_down = false;
    let mut last_log_e = 0.0;
    for t in 0..LOOKS {
        let shift = if (15..25).contains(&t) { 8.0 } else { -3.0 };
        let r = test
            .update_pair(
                sim::normal(&mut rng, 100.0 + shift, 10.0),
                sim::normal(&mut rng, 100.0, 10.0),
            )
            .expect("finite");
        assert!(r.p_value <= previous, "look {t}");
        log_e_went_down |= r.log_e_value < last_log_e;
        last_log_e = r.log_e_value;
        previous = r.p_value;
    }
    assert!(
        log_e_went_down,
        "Λ itself is not monotone; only the p-value is"
    );
    assert!(previous < 1.0);
}

#[test]
fn doubled_error_rate_is_detected() {
    let mut detected = 0;
    let mut delays = Vec::new();
    for run in 0..100 {
        let mut rng = sim::rng(10_000 + run);
        let mut test = count_test();
        for t in 0..LOOKS {
            let r = test
                .update(count_batch(&mut rng, t, 2.0 * ERROR_RATE))
                .expect("valid");
            if r.reject {
                detected += 1;
                delays.push(t + 1);
                break;
            }
        }
    }
    delays.sort_unstable();
    // a 2x error rate must be caught in (nearly) every rollout, early
    assert!(detected >= 98, "detected {detected}/100");
    let median = delays[delays.len() / 2];
    assert!(median <= 20, "median delay {median} intervals");
}

#[test]
fn latency_regression_is_detected() {
    let mut detected = 0;
    for run in 0..100 {
        let mut rng = sim::rng(20_000 + run);
        let mut test = msprt();
        for _ in 0..LOOKS {
            // canary p99 is 10 ms (one noise sd) slower
            let r = test
                .update_pair(
                    sim::normal(&mut rng, 110.0, 10.0),
                    sim::normal(&mut rng, 100.0, 10.0),
                )
                .expect("finite");
            if r.reject {
                detected += 1;
                break;
            }
        }
    }
    assert!(detected >= 95, "detected {detected}/100");
}

#[test]
fn false_rollback_rate_with_peeking_is_at_most_alpha() {
    // counts: canary and stable share one error rate, 60 looks per rollout
    let mut count_rollbacks = 0;
    for run in 0..RUNS as u64 {
        let mut rng = sim::rng(run);
        let mut test = count_test();
        for t in 0..LOOKS {
            if test
                .update(count_batch(&mut rng, t, ERROR_RATE))
                .expect("valid")
                .reject
            {
                count_rollbacks += 1;
                break;
            }
        }
    }
    // continuous: identical latency distributions
    let mut latency_rollbacks = 0;
    for run in 0..RUNS as u64 {
        let mut rng = sim::rng(1_000_000 + run);
        let mut test = msprt();
        for _ in 0..LOOKS {
            let r = test
                .update_pair(
                    sim::normal(&mut rng, 100.0, 10.0),
                    sim::normal(&mut rng, 100.0, 10.0),
                )
                .expect("finite");
            if r.reject {
                latency_rollbacks += 1;
                break;
            }
        }
    }
    let limit = (ALPHA * RUNS as f64) as usize; // 10 of 500
    assert!(
        count_rollbacks <= limit,
        "count test: {count_rollbacks}/{RUNS} false rollbacks"
    );
    assert!(
        latency_rollbacks <= limit,
        "mSPRT: {latency_rollbacks}/{RUNS} false rollbacks"
    );
}

fn horizon_test() -> HorizonSequentialTest {
    HorizonSequentialTest::new(HorizonTestConfig {
        alpha: ALPHA,
        horizon: LOOKS as u64,
        ..HorizonTestConfig::default()
    })
    .expect("valid config")
}

/// Whether the horizon test and the mSPRT reject one seeded 60-look rollout whose canary p99
/// is `shift_ms` slower (per-interval p99 N(100, 10²) ms per version).
fn latency_rollout(seed: u64, shift_ms: f64) -> (bool, bool) {
    let mut rng = sim::rng(seed);
    let (mut horizon, mut mixture) = (horizon_test(), msprt());
    let (mut h, mut m) = (false, false);
    for _ in 0..LOOKS {
        let c = sim::normal(&mut rng, 100.0 + shift_ms, 10.0);
        let s = sim::normal(&mut rng, 100.0, 10.0);
        h |= horizon.update_pair(c, s).expect("finite").reject;
        m |= mixture.update_pair(c, s).expect("finite").reject;
    }
    (h, m)
}

#[test]
fn horizon_test_keeps_alpha_and_finds_small_shifts_the_msprt_misses() {
    // identical versions: at most α of the rollouts (exact bound; simulated ≈ 1.7 %)
    let false_rollbacks = (0..RUNS as u64)
        .filter(|&run| latency_rollout(3_000_000 + run, 0.0).0)
        .count();
    let limit = (ALPHA * RUNS as f64) as usize; // 10 of 500
    assert!(
        false_rollbacks <= limit,
        "horizon test: {false_rollbacks}/{RUNS} false rollbacks"
    );
    // +5 ms = 0.35 sd of the difference: ≈ 63 % against the mSPRT's ≈ 43 % (README, "Latency")
    let runs = 300;
    let (mut horizon, mut mixture) = (0, 0);
    for run in 0..runs {
        let (h, m) = latency_rollout(4_000_000 + run, 5.0);
        horizon += usize::from(h);
        mixture += usize::from(m);
    }
    assert!(horizon >= 160, "horizon test detected {horizon}/{runs}");
    assert!(
        horizon >= mixture + 25,
        "horizon test {horizon}/{runs} vs mSPRT {mixture}/{runs}"
    );
}

#[test]
fn two_sided_and_less_alternatives() {
    let mut rng = sim::rng(7);
    for (alternative, shift, should_reject) in [
        (Alternative::Less, -12.0, true),
        (Alternative::Less, 12.0, false),
        (Alternative::TwoSided, -12.0, true),
        (Alternative::TwoSided, 12.0, true),
    ] {
        let mut test = NormalMixtureSequentialTest::new(MsprtConfig {
            alternative,
            tau: TauScale::RelativeToSigma(1.0),
            ..MsprtConfig::default()
        })
        .expect("valid");
        let mut rejected = false;
        for _ in 0..LOOKS {
            rejected |= test
                .update_pair(
                    sim::normal(&mut rng, 100.0 + shift, 10.0),
                    sim::normal(&mut rng, 100.0, 10.0),
                )
                .expect("finite")
                .reject;
        }
        assert_eq!(rejected, should_reject, "{alternative:?} shift {shift}");
    }
}

#[test]
fn discrete_prior_matches_the_closed_form_beta_binomial_mixture() {
    // With every batch at the reference share, Λ is the Beta-binomial Bayes
    // factor of the (truncated) Beta prior; the 400-atom prior approximates it.
    let config = ErrorRateTestConfig {
        prior: RiskPrior::Beta {
            a: 2.0,
            b: 3.0,
            reference_share: 0.25,
            min_relative_risk: 1.0,
        },
        ..ErrorRateTestConfig::binomial(ALPHA)
    };
    let mut test = ErrorRateSequentialTest::new(config).expect("valid");
    let (mut total_a, mut total_b) = (0, 0);
    for (a, b) in [(3, 5), (0, 9), (4, 4), (6, 7), (2, 11)] {
        total_a += a;
        total_b += b;
        let r = test
            .update(ErrorBatch {
                canary_errors: a,
                stable_errors: b,
                canary_share: 0.25,
                requests: 0,
            })
            .expect("valid");
        let closed = ErrorRateSequentialTest::closed_form_log_e_value(&config, total_a, total_b)
            .expect("Beta prior");
        assert!(
            (r.log_e_value - closed).abs() < 1e-3,
            "after {total_a}/{total_b}: {} vs closed form {closed}",
            r.log_e_value
        );
    }
    // and the data above is strong evidence of a worse canary (15 of 51
    // errors at a 25 % share is not much; check the sign of the evidence only)
    assert!(
        ErrorRateSequentialTest::closed_form_log_e_value(&config, 40, 20).expect("Beta prior")
            > 10.0
    );
}

#[test]
fn changing_traffic_share_keeps_the_ratio_interpretation() {
    // The same relative risk observed at different shares accumulates
    // evidence; equal per-request rates at any share give none on average.
    let mut test = count_test();
    // canary rate 3x stable at 10 % then 50 % share, expected counts
    let r1 = test
        .update(ErrorBatch::from_requests(6, 200, 18, 1800).expect("ok"))
        .expect("valid");
    let r2 = test
        .update(ErrorBatch::from_requests(30, 1000, 10, 1000).expect("ok"))
        .expect("valid");
    assert!(r2.log_e_value > r1.log_e_value && r1.log_e_value > 0.0);
    // one interval adds at most e^1.5, so two cannot reach 1/α = 50; four do
    assert!(!r2.reject);
    let mut r = r2;
    for _ in 0..2 {
        test.update(ErrorBatch::from_requests(6, 200, 18, 1800).expect("ok"))
            .expect("valid");
        r = test
            .update(ErrorBatch::from_requests(30, 1000, 10, 1000).expect("ok"))
            .expect("valid");
    }
    assert!(r.reject, "{r:?}");
    assert!(
        r.first_reject_look.is_some_and(|l| (3..=6).contains(&l)),
        "{r:?}"
    );
    // equal rates at the exact expected counts: the evidence is negative
    let mut test = count_test();
    let r = test
        .update(ErrorBatch::from_requests(2, 200, 18, 1800).expect("ok"))
        .expect("valid");
    assert!(r.log_e_value < 0.0);
    assert_eq!(r.p_value, 1.0);
}

/// False rollbacks of 200 seeded A/A rollouts (60 looks, α = 0.02) whose canary and stable
/// each draw their own error rate per interval from Beta(mean 0.5 %, concentration 500), at
/// 100 req/s with the canary at 10 % — the noise of real traffic in issue 14.
fn overdispersed_false_rollbacks(config: ErrorRateTestConfig) -> usize {
    let sc = sim::Scenario {
        noise: sim::Noise::Independent(500.0),
        ..sim::Scenario::base()
    };
    (0..200u64)
        .filter(|&run| {
            let mut rng = sim::rng(5_000_000 + run);
            let mut test = ErrorRateSequentialTest::new(config).expect("valid config");
            (0..sim::INTERVALS).any(|t| {
                let c = sim::interval(&mut rng, &sc, t);
                let batch = ErrorBatch::from_requests(
                    c.canary_errors,
                    c.canary_requests,
                    c.stable_errors,
                    c.stable_requests,
                )
                .expect("consistent");
                test.update(batch).expect("valid").reject
            })
        })
        .count()
}

#[test]
fn overdispersed_aa_rollouts_keep_alpha_where_the_binomial_test_does_not() {
    // 8 of 200 is twice α; a valid test expects about 4 at most (the default test's
    // simulated rate here is below 1 %, so 8 or more has probability below 0.1 %).
    const BOUND: usize = 8;
    let default = overdispersed_false_rollbacks(ErrorRateTestConfig {
        alpha: ALPHA,
        ..ErrorRateTestConfig::default()
    });
    assert!(
        default < BOUND,
        "default test: {default}/200 false rollbacks"
    );
    // The previous test (binomial errors) on the same rollouts exceeds the bound (issue 14
    // measured 9.98 % of rollbacks under this noise): this test fails with it.
    let binomial = overdispersed_false_rollbacks(ErrorRateTestConfig::binomial(ALPHA));
    assert!(
        binomial >= BOUND,
        "the binomial test should exceed the bound here: {binomial}/200"
    );
}
