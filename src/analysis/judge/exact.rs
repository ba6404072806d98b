//! Exact null distribution of the Mann-Whitney U statistic (no ties).
//!
//! The number of arrangements of `m` first-sample and `n` second-sample
//! values giving `U = u` is the coefficient of `q^u` in the Gaussian binomial
//! coefficient
//!
//! ```text
//!   [m + n choose m]_q = Π_{i=1..m} (1 − q^(n+i)) / (1 − q^i)
//! ```
//!
//! which is evaluated with exact 128-bit integer arithmetic, one factor at a
//! time (multiply by `1 − q^(n+i)`, then divide by `1 − q^i` as a prefix
//! recurrence), truncated at the largest `u` needed. Every intermediate
//! polynomial is `[n + i choose i]_q` (or that times `1 − q^(n+i)`), whose
//! coefficients are bounded by `C(m + n, m)`, so nothing overflows once the
//! total is known to fit. Cost: `O(min(n1, n2) · u_max)`.

use super::JudgeError;

/// Counts of arrangements for `u = 0..=u_max` and their grand total.
#[derive(Debug, Clone)]
pub(crate) struct UCounts {
    /// `counts[u]` = number of arrangements with `U = u`.
    pub counts: Vec<i128>,
    /// `C(n1 + n2, min(n1, n2))`.
    pub total: i128,
}

/// `C(n + m, m)` in 127 bits, or `None` when it does not fit.
pub(crate) fn arrangements(n1: usize, n2: usize) -> Option<i128> {
    let m = n1.min(n2) as i128;
    let n = n1.max(n2) as i128;
    let mut c: i128 = 1;
    for i in 1..=m {
        // c = C(n + i - 1, i - 1); C(n + i, i) = c * (n + i) / i, exact.
        c = c.checked_mul(n + i)? / i;
    }
    Some(c)
}

/// Exact counts of U for sample sizes `n1`, `n2`, for `u = 0..=u_max`
/// (`u_max` is clamped to `n1 · n2`).
pub(crate) fn u_counts(n1: usize, n2: usize, u_max: usize) -> Result<UCounts, JudgeError> {
    let total = arrangements(n1, n2).ok_or(JudgeError::ExactTooLarge { n1, n2 })?;
    let m = n1.min(n2);
    let n = n1.max(n2);
    let u_max = u_max.min(n1.saturating_mul(n2));
    let mut poly = vec![0i128; u_max + 1];
    poly[0] = 1;
    for i in 1..=m {
        let shift = n + i;
        if shift <= u_max {
            for u in (shift..=u_max).rev() {
                poly[u] -= poly[u - shift];
            }
        }
        for u in i..=u_max {
            poly[u] += poly[u - i];
        }
    }
    Ok(UCounts {
        counts: poly,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_distribution_matches_enumeration() {
        // n1 = 2, n2 = 3: C(5, 2) = 10 arrangements, U in 0..=6 with
        // frequencies 1 1 2 2 2 1 1.
        let c = u_counts(2, 3, 6).expect("fits");
        assert_eq!(c.total, 10);
        assert_eq!(c.counts, vec![1, 1, 2, 2, 2, 1, 1]);
    }

    #[test]
    fn counts_sum_to_total() {
        for (n1, n2) in [(1, 1), (3, 7), (8, 8), (5, 20), (12, 9)] {
            let c = u_counts(n1, n2, n1 * n2).expect("fits");
            assert_eq!(c.counts.iter().sum::<i128>(), c.total, "{n1}x{n2}");
            // symmetric around n1 n2 / 2
            for u in 0..=n1 * n2 {
                assert_eq!(c.counts[u], c.counts[n1 * n2 - u]);
            }
        }
    }

    #[test]
    fn overflow_is_reported() {
        assert!(arrangements(100, 100).is_none());
        assert!(matches!(
            u_counts(100, 100, 10),
            Err(JudgeError::ExactTooLarge { .. })
        ));
        // C(2008, 8) ≈ 6.5e21 fits
        assert!(arrangements(8, 2000).is_some());
    }
}
