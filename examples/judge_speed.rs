//! Time to judge two samples of 10,000 values each (10⁸ pairwise
//! differences): Mann-Whitney U, Hodges-Lehmann estimate and interval by
//! selection, and the full classification in both interval modes.
//!
//! Run: `cargo run --release --example judge_speed`

#[path = "../tests/judge_common/sim.rs"]
mod sim;

use slogate::analysis::judge::{
    hodges_lehmann, judge_metric, mann_whitney_u, Alternative, ClassifierConfig, IntervalMode,
    Method,
};
use std::time::{Duration, Instant};

const N: usize = 10_000;
const REPEATS: usize = 15;

fn time<T>(mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(REPEATS);
    let mut last = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let out = f();
        times.push(start.elapsed());
        last = Some(out);
    }
    times.sort_unstable();
    // REPEATS > 0, so there is a last result
    let out = last.expect("REPEATS > 0");
    (times[0], times[REPEATS / 2], out)
}

fn main() {
    let mut rng = sim::rng(42);
    // log-normal latencies in ms, the canary 3 % slower
    let baseline: Vec<f64> = (0..N)
        .map(|_| (4.6 + 0.3 * sim::standard_normal(&mut rng)).exp())
        .collect();
    let canary: Vec<f64> = (0..N)
        .map(|_| 1.03 * (4.6 + 0.3 * sim::standard_normal(&mut rng)).exp())
        .collect();
    println!(
        "2 x {N} samples ({} pairwise differences), {REPEATS} runs each, min / median:",
        N * N
    );

    let (min, med, u) = time(|| {
        mann_whitney_u(&canary, &baseline, Alternative::TwoSided, Method::Auto).expect("valid")
    });
    println!(
        "  Mann-Whitney U ({:?}):              {min:>10.3?} / {med:>10.3?}   U = {}, p = {:.3e}",
        u.method, u.u, u.p_value
    );

    let (min, med, hl) =
        time(|| hodges_lehmann(&canary, &baseline, 0.98, Method::Auto).expect("valid"));
    println!(
        "  Hodges-Lehmann + 98% CI (selection):  {min:>10.3?} / {med:>10.3?}   estimate {:.4} ms, CI [{:.4}, {:.4}]",
        hl.estimate, hl.ci_low, hl.ci_high
    );

    let exact = ClassifierConfig {
        mode: IntervalMode::Exact,
        ..ClassifierConfig::default()
    };
    let (min, med, r) = time(|| judge_metric(&canary, &baseline, &exact).expect("valid"));
    println!(
        "  judge_metric, exact HL mode:          {min:>10.3?} / {med:>10.3?}   {:?}, CI [{:.4}, {:.4}]",
        r.classification,
        r.ci_low.unwrap_or(f64::NAN),
        r.ci_high.unwrap_or(f64::NAN)
    );

    let compat = ClassifierConfig::default();
    let (min, med, r) = time(|| judge_metric(&canary, &baseline, &compat).expect("valid"));
    println!(
        "  judge_metric, Kayenta-compat mode:    {min:>10.3?} / {med:>10.3?}   {:?}, CI [{:.4}, {:.4}], estimate {:.4}",
        r.classification,
        r.ci_low.unwrap_or(f64::NAN),
        r.ci_high.unwrap_or(f64::NAN),
        r.estimate.unwrap_or(f64::NAN)
    );
}
