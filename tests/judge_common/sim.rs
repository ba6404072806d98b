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
