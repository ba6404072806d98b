//! Average ranks with tie bookkeeping, shared by the U test, the CLES effect
//! size and Kayenta's rank statistic.

/// Summary of the joint ranking of two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RankSummary {
    /// Sum of the (average) ranks of the first sample, ranks starting at 1.
    pub rank_sum_first: f64,
    /// Σ (t³ − t) over groups of tied values (0 without ties).
    pub tie_term: f64,
    /// Whether any two values of the pooled sample are equal.
    pub has_ties: bool,
}

/// Ranks the pooled sample `first ++ second` with average ranks for ties
/// (values compared with `==`, so `-0.0 == 0.0`). Values must not be NaN.
pub(crate) fn rank_summary(first: &[f64], second: &[f64]) -> RankSummary {
    rank_summary_shifted(first, 0.0, second)
}

/// Like [`rank_summary`] but ranks `first[i] - shift` instead of `first[i]`,
/// exactly as Kayenta ranks `x.map(_ - mu) ++ y`.
pub(crate) fn rank_summary_shifted(first: &[f64], shift: f64, second: &[f64]) -> RankSummary {
    let mut pooled: Vec<(f64, bool)> = Vec::with_capacity(first.len() + second.len());
    pooled.extend(first.iter().map(|&v| (v - shift, true)));
    pooled.extend(second.iter().map(|&v| (v, false)));
    pooled.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

    let mut rank_sum_first = 0.0;
    let mut tie_term = 0.0;
    let mut has_ties = false;
    let mut start = 0;
    while start < pooled.len() {
        let value = pooled[start].0;
        let mut end = start + 1;
        // `total_cmp` orders -0.0 before 0.0; `==` joins them into one group.
        while end < pooled.len() && pooled[end].0 == value {
            end += 1;
        }
        let t = (end - start) as f64;
        // ranks start+1 ..= end share their average
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let in_first = pooled[start..end].iter().filter(|p| p.1).count() as f64;
        rank_sum_first += in_first * average_rank;
        if end - start > 1 {
            has_ties = true;
            tie_term += t * t * t - t;
        }
        start = end;
    }
    RankSummary {
        rank_sum_first,
        tie_term,
        has_ties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ranks_with_ties() {
        // pooled: 1 2 2 3 | 2 5 -> sorted 1 2 2 2 3 5, ranks 1 3 3 3 5 6
        let s = rank_summary(&[1.0, 2.0, 2.0, 3.0], &[2.0, 5.0]);
        assert_eq!(s.rank_sum_first, 1.0 + 3.0 + 3.0 + 5.0);
        assert_eq!(s.tie_term, 24.0);
        assert!(s.has_ties);
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let s = rank_summary(&[-0.0], &[0.0]);
        assert_eq!(s.rank_sum_first, 1.5);
        assert!(s.has_ties);
    }
}
