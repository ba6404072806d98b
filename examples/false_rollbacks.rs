//! False-rollback rate under continuous monitoring, and detection power and delay.
//!
//! Every rollout is judged after each 30 s interval for 60 intervals at α = 0.02.
//! Error counts: the default (estimated-dispersion) sequential test against the previous,
//! binomial-only one ([`ErrorRateTestConfig::binomial`]) over the scenarios of issue 14:
//! binomial errors; a wobble shared by both arms; each arm drawing its own rate per
//! interval from Beta(mean 0.5 %, concentration 100 / 500 / 5,000); 2 to 10,000 req/s;
//! diurnal traffic (×0.2 to ×3); the canary share stepping 10 → 25 → 50 → 75 %; bursts; a
//! stable-only spike. Latency: the scale-invariant mSPRT and the horizon test (60 looks
//! known in advance, variance from the first 20) against repeated Mann-Whitney, and the
//! Neyman-Pearson bound no level-α test can exceed (`scripts/latency_power_bound.py` computes
//! it analytically and by simulation).
//!
//! Every rate is printed as `k/N = x% [95 % Wilson interval]`; the median delay counts
//! undetected rollouts as "after 60".
//!
//! Run: `cargo run --release --example false_rollbacks` (about a minute on 2 cores;
//! `ROLLOUTS=500` for a quicker, rougher run; `SEED=N` adds `N` to every seed, for the same
//! run on other rollouts: the README's A/A figures were confirmed with `SEED=1000000000`).

#[path = "../tests/judge_common/sim.rs"]
mod sim;

use rand::rngs::Xoshiro256PlusPlus;
use sim::{Noise, Scenario, INTERVALS};
use slogate::analysis::judge::{
    mann_whitney_u, normal_quantile, normal_sf, Alternative, ErrorBatch, ErrorRateSequentialTest,
    ErrorRateTestConfig, HorizonSequentialTest, HorizonTestConfig, Method, MsprtConfig,
    NormalMixtureSequentialTest, TauScale,
};

const ALPHA: f64 = 0.02;
const LATENCY_MS: f64 = 100.0;
const LATENCY_SD_MS: f64 = 10.0;

fn rollouts() -> u64 {
    env_u64("ROLLOUTS").unwrap_or(2000)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Added to every seed (`SEED=…`): the same run on other random rollouts.
fn seed_offset() -> u64 {
    env_u64("SEED").unwrap_or(0)
}

/// First interval (1-based) at which the new and the old test rejected.
fn error_rollout(rng: &mut Xoshiro256PlusPlus, sc: &Scenario) -> (Option<usize>, Option<usize>) {
    let mut new = ErrorRateSequentialTest::new(ErrorRateTestConfig {
        alpha: ALPHA,
        ..ErrorRateTestConfig::default()
    })
    .expect("valid config");
    let mut old =
        ErrorRateSequentialTest::new(ErrorRateTestConfig::binomial(ALPHA)).expect("valid config");
    for t in 0..INTERVALS {
        let c = sim::interval(rng, sc, t);
        let batch = ErrorBatch::from_requests(
            c.canary_errors,
            c.canary_requests,
            c.stable_errors,
            c.stable_requests,
        )
        .expect("consistent counts");
        new.update(batch).expect("valid batch");
        old.update(batch).expect("valid batch");
    }
    let first = |t: &ErrorRateSequentialTest| t.result().first_reject_look.map(|l| l as usize);
    (first(&new), first(&old))
}

fn rate(k: usize, n: usize) -> String {
    let (lo, hi) = sim::wilson(k, n);
    format!(
        "{k:>4}/{n} = {:>5.2}% [{lo:>5.2}, {hi:>5.2}]",
        100.0 * k as f64 / n as f64
    )
}

/// Median first rejection over all rollouts (undetected count as "after 60").
fn median(firsts: &[Option<usize>]) -> String {
    let mut d: Vec<usize> = firsts.iter().map(|f| f.unwrap_or(usize::MAX)).collect();
    d.sort_unstable();
    match d[(d.len() - 1) / 2] {
        usize::MAX => "> 60".to_string(),
        m => m.to_string(),
    }
}

fn run(sc: &Scenario, seed: u64, n: u64) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
    (0..n)
        .map(|run| error_rollout(&mut sim::rng(seed_offset() + seed + run), sc))
        .unzip()
}

/// First rejections of the mSPRT, repeated Mann-Whitney and the horizon test (60 looks,
/// variance from the first 20).
type LatencyFirsts = (Option<usize>, Option<usize>, Option<usize>);

fn latency_rollout(rng: &mut Xoshiro256PlusPlus, shift_ms: f64, tau: f64) -> LatencyFirsts {
    let mut test = NormalMixtureSequentialTest::new(MsprtConfig {
        alpha: ALPHA,
        tau: TauScale::RelativeToSigma(tau),
        ..MsprtConfig::default()
    })
    .expect("valid config");
    let mut horizon = HorizonSequentialTest::new(HorizonTestConfig {
        alpha: ALPHA,
        horizon: INTERVALS as u64,
        ..HorizonTestConfig::default()
    })
    .expect("valid config");
    let mut canary = Vec::with_capacity(INTERVALS);
    let mut stable = Vec::with_capacity(INTERVALS);
    let mut mw = None;
    for t in 0..INTERVALS {
        let c = sim::normal(rng, LATENCY_MS + shift_ms, LATENCY_SD_MS);
        let s = sim::normal(rng, LATENCY_MS, LATENCY_SD_MS);
        test.update_pair(c, s).expect("finite");
        horizon.update_pair(c, s).expect("finite");
        canary.push(c);
        stable.push(s);
        if mw.is_none() {
            let p = mann_whitney_u(&canary, &stable, Alternative::Greater, Method::Auto)
                .expect("valid samples")
                .p_value;
            if p < ALPHA {
                mw = Some(t + 1);
            }
        }
    }
    let first =
        |r: slogate::analysis::judge::SequentialResult| r.first_reject_look.map(|l| l as usize);
    (first(test.result()), mw, first(horizon.result()))
}

fn main() {
    let n = rollouts();
    let big = n as usize;
    println!(
        "{n} rollouts x {INTERVALS} looks of 30 s, alpha = {ALPHA}; stable error rate 0.5 %; canary at 10 % unless stepping"
    );
    println!();
    println!("A/A false rollbacks (canary identical to stable), error counts:");
    println!(
        "  {:<44} {:<34} {:<34}",
        "scenario", "default (estimated dispersion)", "previous (binomial)"
    );
    let base = Scenario::base();
    let mut scenarios: Vec<(String, Scenario)> = Vec::new();
    for rps in [2.0, 100.0, 1000.0, 10_000.0] {
        scenarios.push((format!("binomial, {rps} req/s"), Scenario { rps, ..base }));
    }
    scenarios.push((
        "shared Beta(conc 100), 1000 req/s".to_string(),
        Scenario {
            rps: 1000.0,
            noise: Noise::Shared(100.0),
            ..base
        },
    ));
    for k in [100.0, 500.0, 5000.0] {
        for rps in [2.0, 100.0, 1000.0, 10_000.0] {
            scenarios.push((
                format!("per-arm Beta(conc {k}), {rps} req/s"),
                Scenario {
                    rps,
                    noise: Noise::Independent(k),
                    ..base
                },
            ));
        }
    }
    scenarios.push((
        "per-arm conc 500, 1000 req/s, diurnal x0.2..x3".to_string(),
        Scenario {
            rps: 1000.0,
            noise: Noise::Independent(500.0),
            diurnal: true,
            ..base
        },
    ));
    scenarios.push((
        "per-arm conc 500, 1000 req/s, share 10..75%".to_string(),
        Scenario {
            rps: 1000.0,
            noise: Noise::Independent(500.0),
            stepping: true,
            ..base
        },
    ));
    scenarios.push((
        "per-arm conc 500, 100 req/s, diurnal + steps".to_string(),
        Scenario {
            noise: Noise::Independent(500.0),
            stepping: true,
            diurnal: true,
            ..base
        },
    ));
    scenarios.push((
        "binomial, 2 req/s, share 10..75%".to_string(),
        Scenario {
            rps: 2.0,
            stepping: true,
            ..base
        },
    ));
    scenarios.push((
        "bursts x20 (3%/interval/arm), 1000 req/s".to_string(),
        Scenario {
            rps: 1000.0,
            noise: Noise::Bursts,
            ..base
        },
    ));
    scenarios.push((
        "stable-only spikes x10 (5%), 1000 req/s".to_string(),
        Scenario {
            rps: 1000.0,
            noise: Noise::StableSpikes,
            ..base
        },
    ));
    let mut worst = (0usize, String::new());
    for (i, (name, sc)) in scenarios.iter().enumerate() {
        let (new, old) = run(sc, 1_000_000 * (i as u64 + 1), n);
        let k_new = new.iter().filter(|f| f.is_some()).count();
        let k_old = old.iter().filter(|f| f.is_some()).count();
        if k_new > worst.0 {
            worst = (k_new, name.clone());
        }
        println!(
            "  {name:<44} {:<34} {:<34}",
            rate(k_new, big),
            rate(k_old, big)
        );
    }
    println!("  worst for the default test: {}", worst.1);

    println!();
    println!("Power, error counts, 100 req/s, canary at 10 %:");
    for (name, sc) in [
        ("2x, binomial", Scenario { ratio: 2.0, ..base }),
        ("1.5x, binomial", Scenario { ratio: 1.5, ..base }),
        (
            "2x, per-arm Beta(conc 500)",
            Scenario {
                ratio: 2.0,
                noise: Noise::Independent(500.0),
                ..base
            },
        ),
        (
            "2x, binomial, share 10..75%",
            Scenario {
                ratio: 2.0,
                stepping: true,
                ..base
            },
        ),
    ] {
        let (new, old) = run(&sc, 90_000_000, n);
        let k_new = new.iter().filter(|f| f.is_some()).count();
        let k_old = old.iter().filter(|f| f.is_some()).count();
        println!(
            "  {name:<30} default {} median delay {:>4} | previous {} median delay {:>4}",
            rate(k_new, big),
            median(&new),
            rate(k_old, big),
            median(&old)
        );
    }

    println!();
    println!(
        "Latency: per-interval p99 N({LATENCY_MS}, {LATENCY_SD_MS}^2) ms per arm; +5 ms = 0.35 sd of the difference"
    );
    let bound = normal_sf(
        normal_quantile(1.0 - ALPHA)
            - 5.0 / (2f64.sqrt() * LATENCY_SD_MS) * (INTERVALS as f64).sqrt(),
    );
    println!(
        "  most powerful level-{ALPHA} test at exactly 60 intervals (Neyman-Pearson, known variance): {:.1}%",
        100.0 * bound
    );
    for tau in [0.5, 0.35, 0.25] {
        let seed = seed_offset();
        let h0: Vec<_> = (0..n)
            .map(|run| latency_rollout(&mut sim::rng(seed + 100_000 + run), 0.0, tau))
            .collect();
        let h1: Vec<_> = (0..n)
            .map(|run| latency_rollout(&mut sim::rng(seed + 300_000 + run), 5.0, tau))
            .collect();
        let count = |v: &[LatencyFirsts], which: usize| {
            v.iter()
                .filter(|(s, m, h)| [s, m, h][which].is_some())
                .count()
        };
        let delays = |v: &[LatencyFirsts]| median(&v.iter().map(|f| f.2).collect::<Vec<_>>());
        println!(
            "  mSPRT tau = {tau} sd: false rollbacks {}  +5 ms detected {}",
            rate(count(&h0, 0), big),
            rate(count(&h1, 0), big)
        );
        if tau == 0.5 {
            println!(
                "  repeated Mann-Whitney: false rollbacks {}  +5 ms detected {}",
                rate(count(&h0, 1), big),
                rate(count(&h1, 1), big)
            );
            println!(
                "  horizon test (60 looks, variance from 20): false rollbacks {}  +5 ms detected {} median delay {}",
                rate(count(&h0, 2), big),
                rate(count(&h1, 2), big),
                delays(&h1)
            );
        }
    }
}
