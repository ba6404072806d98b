//! Deterministic simulation helpers shared by the tests and the examples
//! (seeded `Xoshiro256PlusPlus`, value-stable across platforms).

#![allow(dead_code)]

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A seeded generator.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform in (0, 1).
pub fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            return u;
        }
    }
}

/// Standard normal by Box-Muller.
pub fn standard_normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u1 = uniform(rng);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Normal(mean, sd).
pub fn normal(rng: &mut Xoshiro256PlusPlus, mean: f64, sd: f64) -> f64 {
    mean + sd * standard_normal(rng)
}

/// Binomial(n, p) by inversion (exact; meant for means up to a few
/// hundred), normal approximation beyond.
pub fn binomial(rng: &mut Xoshiro256PlusPlus, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let mean = n as f64 * p;
    if mean > 500.0 {
        let sd = (mean * (1.0 - p)).sqrt();
        return normal(rng, mean, sd).round().clamp(0.0, n as f64) as u64;
    }
    let u = uniform(rng);
    let q = 1.0 - p;
    let ratio = p / q;
    let mut pmf = q.powf(n as f64);
    let mut cdf = pmf;
    let mut k = 0u64;
    while u > cdf && k < n {
        pmf *= ratio * (n - k) as f64 / (k + 1) as f64;
        k += 1;
        cdf += pmf;
        if pmf == 0.0 && cdf < u {
            break;
        }
    }
    k
}

/// The canary traffic share at interval `t` (0-based) of a 60-interval
/// rollout: 10 % → 25 % → 50 % → 75 %, 15 intervals each.
pub fn canary_share(t: usize) -> f64 {
    match t / 15 {
        0 => 0.10,
        1 => 0.25,
        2 => 0.50,
        _ => 0.75,
    }
}

/// Gamma(shape, 1) by Marsaglia & Tsang (2000), with the `U^{1/shape}` boost for
/// `shape < 1`.
pub fn gamma(rng: &mut Xoshiro256PlusPlus, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * uniform(rng).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = uniform(rng);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Beta with the given mean and concentration `a + b`.
pub fn beta_mean_concentration(rng: &mut Xoshiro256PlusPlus, mean: f64, concentration: f64) -> f64 {
    let x = gamma(rng, mean * concentration);
    let y = gamma(rng, (1.0 - mean) * concentration);
    x / (x + y)
}

/// How the per-interval error rates of canary and stable vary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// One fixed rate: errors binomial given the split.
    Binomial,
    /// Both arms draw one rate per interval from Beta(mean, concentration).
    Shared(f64),
    /// Each arm draws its own rate per interval from Beta(mean, concentration).
    Independent(f64),
    /// Each arm independently has a 3 % chance per interval of a ×20 burst.
    Bursts,
    /// Stable alone has a 5 % chance per interval of a ×10 spike (a bad pod).
    StableSpikes,
}

/// A simulated rollout: traffic, split and error process.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Total requests per second (both versions).
    pub rps: f64,
    /// Stable's mean error rate.
    pub error_rate: f64,
    /// Canary rate / stable rate (1: A/A).
    pub ratio: f64,
    pub noise: Noise,
    /// Canary share 10 → 25 → 50 → 75 % (15 intervals each) instead of a fixed 10 %.
    pub stepping: bool,
    /// Traffic swings from ×0.2 to ×3 and back within the rollout.
    pub diurnal: bool,
}

impl Scenario {
    /// Binomial errors at 0.5 %, 100 req/s, canary at 10 %, A/A.
    pub fn base() -> Self {
        Scenario {
            rps: 100.0,
            error_rate: 0.005,
            ratio: 1.0,
            noise: Noise::Binomial,
            stepping: false,
            diurnal: false,
        }
    }
}

/// One 30 s interval's counts.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub canary_errors: u64,
    pub canary_requests: u64,
    pub stable_errors: u64,
    pub stable_requests: u64,
}

/// Intervals per simulated rollout.
pub const INTERVALS: usize = 60;

/// The counts of interval `t` (0-based) of a 60-interval rollout.
pub fn interval(rng: &mut Xoshiro256PlusPlus, sc: &Scenario, t: usize) -> Counts {
    let share = if sc.stepping { canary_share(t) } else { 0.10 };
    let mult = if sc.diurnal {
        let x = 2.0 * std::f64::consts::PI * t as f64 / INTERVALS as f64;
        0.2 + 2.8 * (1.0 - x.cos()) / 2.0
    } else {
        1.0
    };
    let n = (30.0 * sc.rps * mult).round() as u64;
    let nc = binomial(rng, n, share);
    let ns = n - nc;
    let p = sc.error_rate;
    let (rc, rs) = match sc.noise {
        Noise::Binomial => (p, p),
        Noise::Shared(k) => {
            let r = beta_mean_concentration(rng, p, k);
            (r, r)
        }
        Noise::Independent(k) => (
            beta_mean_concentration(rng, p, k),
            beta_mean_concentration(rng, p, k),
        ),
        Noise::Bursts => {
            let burst = |rng: &mut Xoshiro256PlusPlus| {
                if uniform(rng) < 0.03 {
                    20.0 * p
                } else {
                    p
                }
            };
            (burst(rng), burst(rng))
        }
        Noise::StableSpikes => (p, if uniform(rng) < 0.05 { 10.0 * p } else { p }),
    };
    let rc = (rc * sc.ratio).min(1.0);
    Counts {
        canary_errors: binomial(rng, nc, rc),
        canary_requests: nc,
        stable_errors: binomial(rng, ns, rs),
        stable_requests: ns,
    }
}

/// Wilson 95 % interval of `k` successes in `n` trials, in percent.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    let (k, n) = (k as f64, n as f64);
    let z = 1.959_963_984_540_054;
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (
        100.0 * (centre - half).max(0.0),
        100.0 * (centre + half).min(1.0),
    )
}
