//! False-rollback rate under continuous monitoring, and detection delay.
//!
//! Simulates rollouts judged after every 30 s interval for 60 intervals
//! (canary share 10 % → 25 % → 50 % → 75 %, 15 intervals each) and compares
//! the anytime-valid sequential judge with the naive alternative of running a
//! fixed-horizon one-sided Mann-Whitney test on all intervals so far at every
//! look (rollback as soon as one look has p < α).
//!
//! Run: `cargo run --release --example false_rollbacks`

#[path = "../tests/judge_common/sim.rs"]
mod sim;

use rand::rngs::Xoshiro256PlusPlus;
use slogate::analysis::judge::{
    mann_whitney_u, Alternative, ErrorBatch, ErrorRateSequentialTest, ErrorRateTestConfig, Method,
    MsprtConfig, NormalMixtureSequentialTest, VarianceMode,
};

const ROLLOUTS: u64 = 2000;
const INTERVALS: usize = 60;
const ALPHA: f64 = 0.02;
const REQUESTS_PER_INTERVAL: u64 = 2000;
const STABLE_ERROR_RATE: f64 = 0.01;
const LATENCY_MS: f64 = 100.0;
const LATENCY_SD_MS: f64 = 10.0;

/// First interval (1-based) at which each judge rolled back, if any.
struct Outcome {
    sequential: Option<usize>,
    repeated_mw: Option<usize>,
}

fn error_rollout(rng: &mut Xoshiro256PlusPlus, canary_rate: f64) -> Outcome {
    let mut test = ErrorRateSequentialTest::new(ErrorRateTestConfig {
        alpha: ALPHA,
        ..ErrorRateTestConfig::default()
    })
    .expect("valid config");
    let mut canary_ratios = Vec::with_capacity(INTERVALS);
    let mut stable_ratios = Vec::with_capacity(INTERVALS);
    let mut out = Outcome {
        sequential: None,
        repeated_mw: None,
    };
    for t in 0..INTERVALS {
        let share = sim::canary_share(t);
        let canary_requests = (REQUESTS_PER_INTERVAL as f64 * share).round() as u64;
        let stable_requests = REQUESTS_PER_INTERVAL - canary_requests;
        let a = sim::binomial(rng, canary_requests, canary_rate);
        let b = sim::binomial(rng, stable_requests, STABLE_ERROR_RATE);
        let batch = ErrorBatch::from_requests(a, canary_requests, b, stable_requests)
            .expect("consistent counts");
        if out.sequential.is_none() && test.update(batch).expect("valid batch").reject {
            out.sequential = Some(t + 1);
        }
        canary_ratios.push(a as f64 / canary_requests as f64);
        stable_ratios.push(b as f64 / stable_requests as f64);
        if out.repeated_mw.is_none() {
            let p = mann_whitney_u(
                &canary_ratios,
                &stable_ratios,
                Alternative::Greater,
                Method::Auto,
            )
            .expect("valid samples")
            .p_value;
            if p < ALPHA {
                out.repeated_mw = Some(t + 1);
            }
        }
    }
    out
}

fn latency_rollout(rng: &mut Xoshiro256PlusPlus, shift_ms: f64, variance: VarianceMode) -> Outcome {
    let mut test = NormalMixtureSequentialTest::new(MsprtConfig {
        alpha: ALPHA,
        variance,
        ..MsprtConfig::default()
    })
    .expect("valid config");
    let mut canary = Vec::with_capacity(INTERVALS);
    let mut stable = Vec::with_capacity(INTERVALS);
    let mut out = Outcome {
        sequential: None,
        repeated_mw: None,
    };
    for t in 0..INTERVALS {
        let c = sim::normal(rng, LATENCY_MS + shift_ms, LATENCY_SD_MS);
        let s = sim::normal(rng, LATENCY_MS, LATENCY_SD_MS);
        if out.sequential.is_none() && test.update_pair(c, s).expect("finite").reject {
            out.sequential = Some(t + 1);
        }
        canary.push(c);
        stable.push(s);
        if out.repeated_mw.is_none() {
            let p = mann_whitney_u(&canary, &stable, Alternative::Greater, Method::Auto)
                .expect("valid samples")
                .p_value;
            if p < ALPHA {
                out.repeated_mw = Some(t + 1);
            }
        }
    }
    out
}

fn summarise(label: &str, outcomes: &[Outcome]) {
    let n = outcomes.len();
    let seq = outcomes.iter().filter(|o| o.sequential.is_some()).count();
    let mw = outcomes.iter().filter(|o| o.repeated_mw.is_some()).count();
    println!(
        "{label:<46} sequential {seq:>4}/{n} = {:>6.2}%   repeated MW {mw:>4}/{n} = {:>6.2}%",
        100.0 * seq as f64 / n as f64,
        100.0 * mw as f64 / n as f64
    );
}

fn delays(
    outcomes: &[Outcome],
    pick: impl Fn(&Outcome) -> Option<usize>,
) -> (usize, Option<usize>) {
    let mut d: Vec<usize> = outcomes.iter().filter_map(pick).collect();
    d.sort_unstable();
    let detected = d.len();
    // median over all rollouts, undetected ones counting as "after 60"
    let median = if 2 * detected > outcomes.len() {
        Some(d[outcomes.len() / 2 - usize::from(outcomes.len().is_multiple_of(2))])
    } else {
        None
    };
    (detected, median)
}

fn main() {
    println!(
        "{ROLLOUTS} rollouts x {INTERVALS} looks, alpha = {ALPHA}, {REQUESTS_PER_INTERVAL} requests/interval, \
         stable error rate {STABLE_ERROR_RATE}, latency N({LATENCY_MS}, {LATENCY_SD_MS}^2) ms per interval"
    );
    println!(
        "canary share 10% -> 25% -> 50% -> 75%, 15 intervals each; repeated MW = one-sided fixed-horizon test at every look"
    );
    println!();
    println!("False rollback rate (canary identical to stable):");
    let h0_errors: Vec<Outcome> = (0..ROLLOUTS)
        .map(|run| error_rollout(&mut sim::rng(run), STABLE_ERROR_RATE))
        .collect();
    summarise("  error counts (beta-binomial mixture)", &h0_errors);
    let h0_latency: Vec<Outcome> = (0..ROLLOUTS)
        .map(|run| {
            latency_rollout(
                &mut sim::rng(100_000 + run),
                0.0,
                VarianceMode::ScaleInvariant,
            )
        })
        .collect();
    summarise("  latency (mSPRT, scale-invariant, default)", &h0_latency);
    let h0_plugin: Vec<Outcome> = (0..ROLLOUTS)
        .map(|run| {
            latency_rollout(
                &mut sim::rng(100_000 + run),
                0.0,
                VarianceMode::BurnInPlugIn,
            )
        })
        .collect();
    summarise("  latency (mSPRT, burn-in plug-in variance)", &h0_plugin);

    println!();
    println!("Detection of a 2x error-rate regression (canary error rate 0.02):");
    let h1_errors: Vec<Outcome> = (0..ROLLOUTS)
        .map(|run| error_rollout(&mut sim::rng(200_000 + run), 2.0 * STABLE_ERROR_RATE))
        .collect();
    for (name, pick) in [
        (
            "sequential count test",
            (|o: &Outcome| o.sequential) as fn(&Outcome) -> Option<usize>,
        ),
        ("repeated MW on error ratios", |o: &Outcome| o.repeated_mw),
    ] {
        let (detected, median) = delays(&h1_errors, pick);
        let median = median.map_or("> 60".to_string(), |m| m.to_string());
        println!(
            "  {name:<30} detected {detected:>4}/{ROLLOUTS}, median detection delay {median} intervals"
        );
    }
    println!();
    println!("Detection of a +5 ms latency regression (0.35 sd of the per-interval difference):");
    let h1_latency: Vec<Outcome> = (0..ROLLOUTS)
        .map(|run| {
            latency_rollout(
                &mut sim::rng(300_000 + run),
                5.0,
                VarianceMode::ScaleInvariant,
            )
        })
        .collect();
    for (name, pick) in [
        (
            "sequential mSPRT",
            (|o: &Outcome| o.sequential) as fn(&Outcome) -> Option<usize>,
        ),
        ("repeated MW on latencies", |o: &Outcome| o.repeated_mw),
    ] {
        let (detected, median) = delays(&h1_latency, pick);
        let median = median.map_or("> 60".to_string(), |m| m.to_string());
        println!(
            "  {name:<30} detected {detected:>4}/{ROLLOUTS}, median detection delay {median} intervals"
        );
    }
}
