//! The Mann-Whitney U test with the semantics of `scipy.stats.mannwhitneyu`
//! (scipy 1.17): `use_continuity=True`, `method="auto"` by default.

use super::exact::u_counts;
use super::normal::normal_sf;
use super::ranks::rank_summary;
use super::{ensure_sample, JudgeError};
use serde::{Deserialize, Serialize};

/// Alternative hypothesis, named as in scipy, for the first sample (canary)
/// relative to the second (baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    /// The distributions differ (either direction).
    TwoSided,
    /// The first sample is stochastically smaller.
    Less,
    /// The first sample is stochastically greater.
    Greater,
}

/// How the p-value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// scipy's rule: exact when `min(n1, n2) <= 8` and there are no ties,
    /// asymptotic otherwise. (The exact distribution is used as long as
    /// `C(n1 + n2, min)` fits in 127 bits, i.e. up to about 2·10⁵ values in
    /// the larger sample when the smaller has 8; beyond that `Auto` falls back
    /// to the normal approximation.)
    Auto,
    /// Exact null distribution of U (no tie correction, as in scipy).
    Exact,
    /// Normal approximation with tie and continuity correction.
    Asymptotic,
}

/// Result of [`mann_whitney_u`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UTest {
    /// U1, the U statistic of the first sample (scipy's `statistic`):
    /// rank sum of the first sample minus `n1 (n1 + 1) / 2`.
    pub u: f64,
    /// The p-value for the requested alternative.
    pub p_value: f64,
    /// The method actually used (`Exact` or `Asymptotic`, never `Auto`).
    pub method: Method,
    /// Whether the pooled sample has ties.
    pub has_ties: bool,
    /// Size of the first sample.
    pub n1: usize,
    /// Size of the second sample.
    pub n2: usize,
}

/// Two-sample Mann-Whitney U test of `x` (canary) against `y` (baseline).
///
/// Matches `scipy.stats.mannwhitneyu(x, y, alternative=…, method=…)`: the
/// statistic is U1 of `x`; the asymptotic p-value uses the tie-corrected
/// variance and subtracts ½ from `U − n1·n2/2` (scipy always evaluates the
/// survival function of the larger-side statistic); the exact p-value sums
/// the exact null distribution. Both samples must be non-empty and finite.
pub fn mann_whitney_u(
    x: &[f64],
    y: &[f64],
    alternative: Alternative,
    method: Method,
) -> Result<UTest, JudgeError> {
    ensure_sample("x", x)?;
    ensure_sample("y", y)?;
    let n1 = x.len();
    let n2 = y.len();
    let ranks = rank_summary(x, y);
    let n1f = n1 as f64;
    let n2f = n2 as f64;
    let u1 = ranks.rank_sum_first - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };

    let resolved = match method {
        Method::Auto if n1.min(n2) <= 8 && !ranks.has_ties => {
            if super::exact::arrangements(n1, n2).is_some() {
                Method::Exact
            } else {
                Method::Asymptotic
            }
        }
        Method::Auto => Method::Asymptotic,
        other => other,
    };

    let sf = match resolved {
        Method::Exact => exact_sf(u, n1, n2)?,
        _ => {
            let n = n1f + n2f;
            let s = (n1f * n2f / 12.0 * ((n + 1.0) - ranks.tie_term / (n * (n - 1.0)))).sqrt();
            let numerator = u - n1f * n2f / 2.0 - 0.5;
            // s == 0 only when every value is tied; then numerator = -1/2 and
            // z = -inf, giving sf = 1 as in scipy.
            let z = numerator / s;
            normal_sf(z)
        }
    };
    let p_value = (factor * sf).clamp(0.0, 1.0);
    Ok(UTest {
        u: u1,
        p_value,
        method: resolved,
        has_ties: ranks.has_ties,
        n1,
        n2,
    })
}

/// P(U ≥ u) under the null, exactly. `u` is truncated to an integer as scipy
/// does (it is an integer whenever there are no ties).
fn exact_sf(u: f64, n1: usize, n2: usize) -> Result<f64, JudgeError> {
    let nm = n1 * n2;
    let k = u.trunc().clamp(0.0, nm as f64) as usize;
    let kc = nm - k;
    if k >= kc {
        // P(U >= k) = P(U <= nm - k) by symmetry
        let c = u_counts(n1, n2, kc)?;
        let cum: i128 = c.counts[..=kc].iter().sum();
        Ok(cum as f64 / c.total as f64)
    } else {
        // P(U >= k) = 1 - P(U <= k - 1), k - 1 < nm / 2
        if k == 0 {
            return Ok(1.0);
        }
        let c = u_counts(n1, n2, k - 1)?;
        let cum: i128 = c.counts[..k].iter().sum();
        Ok((c.total - cum) as f64 / c.total as f64)
    }
}

/// Smallest `q` with `P(U ≤ q) ≥ level` under the exact null distribution
/// (R's `qwilcox`), searched up to `n1·n2/2`. The probability is the exact
/// count ratio rounded to a double.
pub(crate) fn exact_lower_quantile(n1: usize, n2: usize, level: f64) -> Result<usize, JudgeError> {
    let half = n1 * n2 / 2;
    let c = u_counts(n1, n2, half)?;
    let total = c.total as f64;
    let mut cum: i128 = 0;
    for (q, count) in c.counts.iter().enumerate() {
        cum += count;
        if cum as f64 / total >= level {
            return Ok(q);
        }
    }
    Ok(half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_small_two_sided() {
        // scipy.stats.mannwhitneyu([1,2,3],[4,5,6,7]) -> U1 = 0, p = 2/35
        let r = mann_whitney_u(
            &[1.0, 2.0, 3.0],
            &[4.0, 5.0, 6.0, 7.0],
            Alternative::TwoSided,
            Method::Auto,
        )
        .expect("valid");
        assert_eq!(r.u, 0.0);
        assert_eq!(r.method, Method::Exact);
        assert!((r.p_value - 2.0 / 35.0).abs() < 1e-15);
    }

    #[test]
    fn all_tied_gives_one() {
        let r = mann_whitney_u(&[2.0; 4], &[2.0; 3], Alternative::TwoSided, Method::Auto)
            .expect("valid");
        assert_eq!(r.method, Method::Asymptotic);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.u, 6.0);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(mann_whitney_u(&[], &[1.0], Alternative::Less, Method::Auto).is_err());
        assert!(mann_whitney_u(&[f64::NAN], &[1.0], Alternative::Less, Method::Auto).is_err());
    }
}
