//! Kayenta's confidence interval and estimate for the shift between two
//! samples (`kayenta-mannwhitney`, itself a port of the asymptotic branch of
//! R's `wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE)`).
//!
//! Kayenta defines the standardised, continuity-corrected rank statistic of
//! the shifted sample,
//!
//! ```text
//!   W(d) = (dz − ½·sign(dz)) / σ,   dz = Σ rank(x_i − d) − n(n+1)/2 − n·m/2,
//!   σ² = n·m/12 · (n + m + 1 − Σ(t³ − t) / ((n + m)(n + m − 1)))
//! ```
//!
//! (ranks of the pooled `x − d` and `y`, average ranks for ties, `t` the tie
//! group sizes), and takes
//!
//! * the lower bound as the root of `W(d) = z_{1−α/2}`,
//! * the upper bound as the root of `W(d) = z_{α/2}`,
//! * the estimate as the root of `W(d) = 0` — *not* the median of the pairwise
//!   differences, and *with* the continuity correction (R drops it for the
//!   estimate),
//!
//! each searched on `[min x − max y, max x − min y]` with Brent's method
//! (Brent 1973, the `zeroin` variant used by R and Kayenta) to an absolute
//! tolerance of 1e-4 and at most 1000 iterations; a bound whose function
//! value at an end of the range already has the wrong sign is clamped to that
//! end. `W` is a step function, so the result depends on the iterates, not
//! only on the root: this module follows the same arithmetic so that the
//! results agree with Kayenta's to rounding, not merely to 1e-4.

use super::normal::normal_quantile;
use super::ranks::rank_summary_shifted;
use super::{ensure_confidence, ensure_finite, ensure_sample, JudgeError};
use serde::{Deserialize, Serialize};

/// Absolute tolerance of Kayenta's root finder.
pub const KAYENTA_ROOT_TOLERANCE: f64 = 1e-4;
const MAX_ITERATIONS: usize = 1000;

/// Kayenta's interval and estimate for `experiment − control`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KayentaInterval {
    /// Lower confidence bound.
    pub ci_low: f64,
    /// Upper confidence bound.
    pub ci_high: f64,
    /// Root of `W(d) = 0`.
    pub estimate: f64,
    /// `min(experiment) − max(control)`, the left end of the search range.
    pub mu_min: f64,
    /// `max(experiment) − min(control)`, the right end of the search range.
    pub mu_max: f64,
}

/// Kayenta's `wilcoxonDiff(mu, quantile, x, y)`: `W(mu) − quantile` for the
/// experiment `x` and control `y` (see the module docs).
///
/// Errors with [`JudgeError::AllTied`] when every value of `x − mu` and `y` is
/// the same (σ = 0), as Kayenta does.
pub fn wilcoxon_diff(mu: f64, quantile: f64, x: &[f64], y: &[f64]) -> Result<f64, JudgeError> {
    ensure_sample("x", x)?;
    ensure_sample("y", y)?;
    ensure_finite("mu", &[mu])?;
    wilcoxon_diff_unchecked(mu, quantile, x, y)
}

fn wilcoxon_diff_unchecked(
    mu: f64,
    quantile: f64,
    x: &[f64],
    y: &[f64],
) -> Result<f64, JudgeError> {
    let n = x.len() as f64;
    let m = y.len() as f64;
    let ranks = rank_summary_shifted(x, mu, y);
    let dz = ranks.rank_sum_first - n * (n + 1.0) / 2.0 - n * m / 2.0;
    let correction = if dz > 0.0 {
        0.5
    } else if dz < 0.0 {
        -0.5
    } else {
        0.0
    };
    let sigma =
        ((n * m / 12.0) * ((n + m + 1.0) - ranks.tie_term / ((n + m) * (n + m - 1.0)))).sqrt();
    if sigma == 0.0 {
        return Err(JudgeError::AllTied);
    }
    Ok((dz - correction) / sigma - quantile)
}

/// Kayenta's interval and estimate of `experiment − control` at the given
/// confidence level (Kayenta's `mannWhitneyUTest(x, y, confidenceLevel)`).
pub fn kayenta_interval(
    experiment: &[f64],
    control: &[f64],
    confidence: f64,
) -> Result<KayentaInterval, JudgeError> {
    ensure_sample("experiment", experiment)?;
    ensure_sample("control", control)?;
    ensure_confidence(confidence)?;
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mu_min = min(experiment) - max(control);
    let mu_max = max(experiment) - min(control);
    let f =
        |quantile: f64| move |mu: f64| wilcoxon_diff_unchecked(mu, quantile, experiment, control);
    let find_root = |quantile: f64| -> Result<f64, JudgeError> {
        let f_lower = f(quantile)(mu_min)?;
        let f_upper = f(quantile)(mu_max)?;
        if f_lower <= 0.0 {
            Ok(mu_min)
        } else if f_upper >= 0.0 {
            Ok(mu_max)
        } else {
            brent_root(mu_min, mu_max, f_lower, f_upper, f(quantile))
        }
    };
    let alpha = 1.0 - confidence;
    let z = normal_quantile(alpha / 2.0); // negative
    let ci_low = find_root(-z)?;
    let ci_high = find_root(z)?;
    let f0 = f(0.0);
    let estimate = brent_root(mu_min, mu_max, f0(mu_min)?, f0(mu_max)?, f0)?;
    Ok(KayentaInterval {
        ci_low,
        ci_high,
        estimate,
        mu_min,
        mu_max,
    })
}

/// Brent's root finder as Kayenta runs it: search `[a, b]` with known
/// `fa = f(a)`, `fb = f(b)`, absolute tolerance [`KAYENTA_ROOT_TOLERANCE`],
/// at most 1000 evaluations, returning the best approximation when the
/// iterations run out. Inverse quadratic interpolation where it is safe,
/// secant steps otherwise, bisection as the fallback.
pub fn brent_root<F>(a: f64, b: f64, fa: f64, fb: f64, mut f: F) -> Result<f64, JudgeError>
where
    F: FnMut(f64) -> Result<f64, JudgeError>,
{
    // A value within one ulp of 0 counts as a root (commons-math's
    // `Precision.equals(x, 0)`).
    let is_zero = |v: f64| v == 0.0 || v.abs() == f64::from_bits(1);
    let (mut a, mut b, mut fa, mut fb) = (a, b, fa, fb);
    let (mut c, mut fc) = (a, fa);
    if is_zero(fa) {
        return Ok(a);
    }
    if is_zero(fb) {
        return Ok(b);
    }
    for _ in 0..=MAX_ITERATIONS {
        let previous_step = b - a;
        if fc.abs() < fb.abs() {
            // make b the best approximation so far
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tolerance = 2.0 * f64::EPSILON * b.abs() + KAYENTA_ROOT_TOLERANCE / 2.0;
        let mut step = (c - b) / 2.0;
        if step.abs() <= tolerance || is_zero(fb) {
            return Ok(b);
        }
        if previous_step.abs() >= tolerance && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                // two distinct points: secant step
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                // inverse quadratic interpolation
                let qa = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qa * (qa - t1) - (b - a) * (t1 - 1.0));
                q = (qa - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < 0.75 * cb * q - (tolerance * q).abs() / 2.0
                && p < (previous_step * q / 2.0).abs()
            {
                step = p / q;
            }
        }
        if step.abs() < tolerance {
            step = if step > 0.0 { tolerance } else { -tolerance };
        }
        a = b;
        fa = fb;
        b += step;
        fb = f(b)?;
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brent_finds_a_smooth_root() {
        let r = brent_root(0.0, 2.0, -2.0, 2.0, |x| Ok(x * x - 2.0)).expect("converges");
        assert!((r - std::f64::consts::SQRT_2).abs() < KAYENTA_ROOT_TOLERANCE);
    }

    #[test]
    fn kayenta_small_case() {
        // MannWhitneySuite "Mann-Whitney Confidence Interval & Estimate"
        let r = kayenta_interval(&[10.0, 20.0, 30.0, 40.0], &[1.0, 2.0, 3.0, 4.0], 0.95)
            .expect("valid");
        assert!((r.ci_low - 6.0).abs() < 1e-6);
        assert!((r.ci_high - 39.0).abs() < 1e-6);
        assert!((r.estimate - 22.5).abs() < 1e-6);
    }

    #[test]
    fn all_tied_is_an_error() {
        assert_eq!(
            wilcoxon_diff(0.0, 0.0, &[1.0, 1.0], &[1.0]),
            Err(JudgeError::AllTied)
        );
    }
}
