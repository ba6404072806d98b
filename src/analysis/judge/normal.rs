//! Standard normal distribution functions, accurate to a few units in the
//! last place over the whole range (statrs' `erfc` is good to about 1e-10
//! relative, not enough to match scipy's p-values to 1e-9 in the tails).
//!
//! `erfc` uses the everywhere-positive series
//! `erf(x) = 2/√π · e^{−x²} · Σ_n 2ⁿ x^{2n+1} / (1·3·…·(2n+1))` below 2 and
//! the Laplace continued fraction
//! `erfc(x) = e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …))))` (modified
//! Lentz) from 2 on; `e^{−x²}` is evaluated with `x²` split exactly.

use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// `e^{−x²}` without the rounding error of `x·x`: `x = hi + lo` with `hi`
/// holding 26 significant bits, so `hi²` is exact.
fn exp_minus_square(x: f64) -> f64 {
    let hi = f64::from_bits(x.to_bits() & 0xFFFF_FFFF_F800_0000);
    let lo = x - hi;
    (-hi * hi).exp() * (-(2.0 * hi * lo + lo * lo)).exp()
}

/// `−x²` split as `(hi², rest)` for logs.
fn minus_square_parts(x: f64) -> (f64, f64) {
    let hi = f64::from_bits(x.to_bits() & 0xFFFF_FFFF_F800_0000);
    let lo = x - hi;
    (-hi * hi, -(2.0 * hi * lo + lo * lo))
}

/// erf(x) for 0 ≤ x < 2 by the positive series.
fn erf_series(x: f64) -> f64 {
    let two_x2 = 2.0 * x * x;
    let mut term = x;
    let mut sum = x;
    let mut k = 1.0;
    while term > 1e-17 * sum {
        term *= two_x2 / (2.0 * k + 1.0);
        sum += term;
        k += 1.0;
    }
    FRAC_2_SQRT_PI * exp_minus_square(x) * sum
}

/// The continued fraction `x + ½/(x + 1/(x + 3/2/(x + …)))` for x ≥ 2.
fn erfc_continued_fraction(x: f64) -> f64 {
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for i in 1..10_000 {
        let a = i as f64 / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = tiny;
        }
        c = x + a / c;
        if c == 0.0 {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    f
}

/// Complementary error function.
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x < 0.0 {
        2.0 - erfc(-x)
    } else if x < 2.0 {
        1.0 - erf_series(x)
    } else if x > 27.3 {
        0.0
    } else {
        exp_minus_square(x) / (PI.sqrt() * erfc_continued_fraction(x))
    }
}

/// ln erfc(x) for x ≥ 2, without underflow.
fn ln_erfc_large(x: f64) -> f64 {
    let (a, b) = minus_square_parts(x);
    a + b - (PI.sqrt() * erfc_continued_fraction(x)).ln()
}

/// Φ(z), the standard normal CDF (`scipy.special.ndtr`).
pub fn normal_cdf(z: f64) -> f64 {
    if z == f64::INFINITY {
        1.0
    } else if z == f64::NEG_INFINITY {
        0.0
    } else {
        0.5 * erfc(-z * FRAC_1_SQRT_2)
    }
}

/// 1 − Φ(z), computed without cancellation for large `z`.
pub fn normal_sf(z: f64) -> f64 {
    normal_cdf(-z)
}

/// ln Φ(z), accurate far into the lower tail where Φ(z) underflows.
pub(crate) fn log_normal_cdf(z: f64) -> f64 {
    if z.is_nan() {
        f64::NAN
    } else if z == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if z > 0.0 {
        (-normal_cdf(-z)).ln_1p()
    } else {
        let x = -z * FRAC_1_SQRT_2;
        if x < 2.0 {
            normal_cdf(z).ln()
        } else {
            ln_erfc_large(x) - std::f64::consts::LN_2
        }
    }
}

fn normal_pdf(z: f64) -> f64 {
    exp_minus_square(z * FRAC_1_SQRT_2) / (2.0 * PI).sqrt()
}

/// Φ⁻¹(p), the standard normal quantile (`scipy.special.ndtri`). Returns
/// ±∞ at 0 and 1 and NaN outside `[0, 1]`.
///
/// statrs' inverse error function gives the starting point; two Newton steps
/// on the accurate CDF polish it to full precision. `p > ½` is reflected
/// exactly (`1 − p` is exact there).
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p > 0.5 {
        return -normal_quantile(1.0 - p);
    }
    let mut x = -SQRT_2 * statrs::function::erf::erfc_inv(2.0 * p);
    for _ in 0..2 {
        let pdf = normal_pdf(x);
        if pdf <= 0.0 || !pdf.is_finite() {
            break;
        }
        // Newton on Φ(x) = p, in relative form to keep tail precision
        let step = (normal_cdf(x) - p) / pdf;
        if !step.is_finite() {
            break;
        }
        x -= step;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (z, scipy.special.ndtr(z)) from scipy 1.17.1.
    const NDTR: [(f64, f64); 10] = [
        (-0.3, 0.382_088_577_811_047_4),
        (-1.0, 0.158_655_253_931_457_07),
        (-1.959_963_984_540_054, 0.025),
        (-3.0, 0.001_349_898_031_630_093_3),
        (-5.0, 2.866_515_718_791_933e-7),
        (-8.0, 6.220_960_574_271_74e-16),
        (-10.0, 7.619_853_024_160_47e-24),
        (-15.0, 3.670_966_199_312_698_6e-51),
        (-25.0, 3.056_696_706_382_561e-138),
        (-35.0, 1.124_910_706_472_406_1e-268),
    ];

    #[test]
    fn cdf_matches_scipy() {
        for (z, want) in NDTR {
            let got = normal_cdf(z);
            assert!(
                (got / want - 1.0).abs() < 1e-13,
                "z={z}: {got:e} vs {want:e}"
            );
            assert!(
                (log_normal_cdf(z) - want.ln()).abs() < 1e-12,
                "log at z={z}"
            );
        }
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert!((normal_cdf(1.0) - (1.0 - 0.158_655_253_931_457_07)).abs() < 1e-15);
    }

    #[test]
    fn log_cdf_deep_tail() {
        // scipy.special.log_ndtr(-40) = -804.6084420137539
        assert!((log_normal_cdf(-40.0) + 804.608_442_013_753_9).abs() < 1e-9);
        assert!(log_normal_cdf(3.0) < 0.0 && log_normal_cdf(3.0) > -0.002);
    }

    #[test]
    fn quantile_matches_scipy() {
        // scipy.special.ndtri
        for (p, want) in [
            (0.01, -2.326_347_874_040_840_8),
            (0.025, -1.959_963_984_540_054_5),
            (0.975, 1.959_963_984_540_054_5),
            (1e-20, -9.262_340_089_798_409),
        ] {
            let got = normal_quantile(p);
            assert!(
                (got - want).abs() <= 2e-15 * want.abs(),
                "p={p}: {got} vs {want}"
            );
        }
        assert_eq!(normal_quantile(0.5), 0.0);
    }
}
