//! Post-deploy verification, as pure functions: which commits are deploys, how the SLIs
//! after a deploy are judged against the hour before it, and whether a burn-rate page
//! holds. The guard's [`decide`](super::decide::decide) turns the verdicts into reverts,
//! notifications and known-good marks; the runtime (`runtime::guard`) fetches the counts.
//!
//! # The comparison
//!
//! Time around a deploy at `t_d` is cut into slices of `step` (default 1m), anchored at
//! `t_d`. After-slice `i` (`(t_d + (i−1)·step, t_d + i·step]`) is paired with its mirror
//! before the deploy (`(t_d − i·step, t_d − (i−1)·step]`), so each pair compares adjacent
//! traffic, and every pair is one interval of the judge's anytime-valid error-count test
//! ([`ErrorRateSequentialTest`], dispersion-tempered, tuned for large regressions: [`ErrorRateTestConfig::large_regressions`]): the
//! after-slice plays the canary and the before-slice the stable version. The partition is
//! fixed by the deploy time, so each later evaluation sees the same sequence extended by
//! the new slices: recomputing the test from the start at every evaluation is the same as
//! running it once slice by slice, and the p-value stays anytime-valid across evaluations
//! and restarts.
//!
//! A deploy is a regression when both hold:
//! - the burn rate since the deploy is at least the page factor (14.4 for a 30d SLO), or,
//!   once `ticket_after` (default 30m) has passed, at least the ticket factor (3 for 30d);
//! - the test is significant (p ≤ α).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::analysis::judge::{ErrorBatch, ErrorRateSequentialTest, ErrorRateTestConfig};
use crate::model::commit::CommitInfo;
use crate::slo::budget::BudgetReport;
use crate::slo::windows::AlertWindows;
use crate::slo::PromDuration;

/// What a regressing deploy leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRegression {
    /// Revert the deploy and every later deploy on the app path (one commit), then notify.
    #[default]
    Revert,
    /// Notify only.
    Notify,
    /// No post-deploy verification and no action on burn-rate pages.
    Off,
}

impl OnRegression {
    pub fn as_str(self) -> &'static str {
        match self {
            OnRegression::Revert => "revert",
            OnRegression::Notify => "notify",
            OnRegression::Off => "off",
        }
    }
}

/// An app's post-deploy verification policy.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyPolicy {
    pub on_regression: OnRegression,
    /// How long a deploy is verified; a deploy that passes it is known-good (default 1h).
    /// The hour before the deploy is the baseline.
    pub window: Duration,
    /// Slice length of the comparison (default 1m).
    pub step: Duration,
    /// Burn-rate factor since the deploy that may revert it (`None`: the SLO's page factor,
    /// 14.4 for a 30d period).
    pub page_factor: Option<f64>,
    /// Lower factor that applies once `ticket_after` has passed (`None`: the SLO's ticket
    /// factor, 3 for a 30d period).
    pub ticket_factor: Option<f64>,
    /// When the ticket factor starts to apply (default 30m).
    pub ticket_after: Duration,
    /// Significance level of the test (default 0.02, the judge's).
    pub alpha: f64,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            on_regression: OnRegression::Revert,
            window: Duration::from_secs(3600),
            step: Duration::from_secs(60),
            page_factor: None,
            ticket_factor: None,
            ticket_after: Duration::from_secs(1800),
            alpha: ErrorRateTestConfig::default().alpha,
        }
    }
}

/// Errors and requests of one slice.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub errors: f64,
    pub requests: f64,
}

/// The burn-rate factors that apply to one SLO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factors {
    pub page: f64,
    pub ticket: f64,
}

impl Factors {
    /// The SLO's quick page and ticket factors from its window catalog, unless the policy
    /// sets them.
    pub fn of(policy: &VerifyPolicy, windows: &AlertWindows) -> Self {
        let period = windows.slo_period;
        Factors {
            page: policy
                .page_factor
                .unwrap_or_else(|| windows.page.quick.burn_rate_factor(period)),
            ticket: policy
                .ticket_factor
                .unwrap_or_else(|| windows.ticket.quick.burn_rate_factor(period)),
        }
    }
}

/// The judgement of one deploy on one SLO: the numbers every decision, notification and
/// revert trailer shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub slo: String,
    pub deploy: String,
    pub deploy_time: DateTime<Utc>,
    /// Error ratio over the baseline (up to `window` before the deploy).
    pub error_ratio_before: Option<f64>,
    /// Error ratio since the deploy (complete slices).
    pub error_ratio_after: Option<f64>,
    pub requests_before: f64,
    pub requests_after: f64,
    /// Burn rate since the deploy (error ratio after / error budget).
    pub burn_rate_after: Option<f64>,
    /// The factor the burn rate was held against.
    pub factor: f64,
    /// Anytime-valid p-value of "errors rose after the deploy".
    pub p_value: f64,
    pub alpha: f64,
    /// Seconds since the deploy covered by complete slices.
    pub after_seconds: u64,
    /// Slice pairs the test saw.
    pub looks: u64,
    pub significant: bool,
    /// Significant and at or above the factor.
    pub regression: bool,
}

/// Judge one deploy. `before[0]` is the slice just before the deploy (then further back),
/// `after[0]` the first slice after it. `budget` is the SLO's error budget ratio (0.001).
pub fn judge(
    slo: &str,
    deploy: &CommitInfo,
    budget: f64,
    factors: Factors,
    policy: &VerifyPolicy,
    before: &[Option<Counts>],
    after: &[Option<Counts>],
) -> Verdict {
    // Tuned for large regressions (a revert-worthy deploy is one), as before issue 14's
    // power tuning of the rollout default.
    let config = ErrorRateTestConfig::large_regressions(policy.alpha);
    // The configuration is valid with an alpha that config validation keeps in (0, 1); fall
    // back to the default test rather than panic if it ever is not.
    let mut test = ErrorRateSequentialTest::new(config).unwrap_or_else(|_| {
        ErrorRateSequentialTest::new(ErrorRateTestConfig::default())
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    });
    let round = |x: f64| {
        if x.is_finite() && x > 0.0 {
            x.round() as u64
        } else {
            0
        }
    };
    let mut looks = 0;
    for (i, a) in after.iter().enumerate() {
        let (Some(a), Some(Some(b))) = (a, before.get(i)) else {
            continue;
        };
        let (an, bn) = (round(a.requests), round(b.requests));
        let (ae, be) = (round(a.errors).min(an), round(b.errors).min(bn));
        if let Ok(batch) = ErrorBatch::from_requests(ae, an, be, bn) {
            if test.update(batch).is_ok() {
                looks += 1;
            }
        }
    }
    let sum = |v: &[Option<Counts>]| {
        v.iter().flatten().fold(Counts::default(), |acc, c| Counts {
            errors: acc.errors + c.errors.max(0.0),
            requests: acc.requests + c.requests.max(0.0),
        })
    };
    let (b, a) = (sum(before), sum(after));
    let ratio = |c: Counts| (c.requests > 0.0).then(|| (c.errors / c.requests).min(1.0));
    let error_ratio_after = ratio(a);
    let burn_rate_after = error_ratio_after.map(|r| crate::slo::budget::burn_rate(r, budget));
    let after_seconds = policy.step.as_secs() * after.len() as u64;
    let factor = if after_seconds >= policy.ticket_after.as_secs() {
        factors.page.min(factors.ticket)
    } else {
        factors.page
    };
    let r = test.result();
    let significant = r.reject;
    Verdict {
        slo: slo.to_string(),
        deploy: deploy.sha.clone(),
        deploy_time: deploy.time,
        error_ratio_before: ratio(b),
        error_ratio_after,
        requests_before: b.requests,
        requests_after: a.requests,
        burn_rate_after,
        factor,
        p_value: r.p_value,
        alpha: policy.alpha,
        after_seconds,
        looks,
        significant,
        regression: significant && burn_rate_after.is_some_and(|x| x >= factor),
    }
}

/// True for commits slogate made itself: they carry a `Slogate-*` trailer other than the
/// human `Slogate-Override` (reverts, rollout promotions).
pub fn is_slogate_commit(c: &CommitInfo) -> bool {
    c.trailers.iter().any(|t| {
        let k = t.key.to_ascii_lowercase();
        k.starts_with("slogate-") && k != "slogate-override"
    })
}

/// One deploy to verify: the commit, the commit before it on the app path (the revert
/// goes back to it), and when its after-window ends early because of a later deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployCandidate {
    pub commit: CommitInfo,
    /// The previous commit on the app path, if the history has one.
    pub base: Option<String>,
    /// The next deploy's time: the after-window of this one stops there.
    pub next_deploy: Option<DateTime<Utc>>,
}

/// The deploys on the app path (newest first) whose verification windows are open or
/// whose deploy time is after `since`: not slogate's own commits and not reverted already.
pub fn deploys_since(commits: &[CommitInfo], since: DateTime<Utc>) -> Vec<DeployCandidate> {
    let reverted: Vec<String> = commits
        .iter()
        .filter(|c| c.is_slogate_revert())
        .flat_map(|c| crate::model::trailers::reverted_shas(&c.trailers))
        .filter(|s| s.len() >= 7)
        .collect();
    let mut out: Vec<DeployCandidate> = Vec::new();
    let mut next_deploy: Option<DateTime<Utc>> = None;
    for (i, c) in commits.iter().enumerate() {
        if is_slogate_commit(c) || reverted.iter().any(|s| c.sha.starts_with(s.as_str())) {
            continue;
        }
        if c.time > since {
            out.push(DeployCandidate {
                commit: c.clone(),
                base: commits.get(i + 1).map(|p| p.sha.clone()),
                next_deploy,
            });
        }
        next_deploy = Some(c.time);
        if c.time <= since {
            break;
        }
    }
    out
}

/// The slice grid of a deploy: the range query covers `[start, end]` with `step`; points at
/// `deploy − j·step` (j = 0..before) are before-slices, `deploy + i·step` (i = 1..=after)
/// after-slices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub step: Duration,
    pub before: usize,
    pub after: usize,
}

/// The grid for a deploy at `now`: the baseline is `window` before the deploy; the
/// after-part has the complete slices up to now, the window's end or the next deploy.
pub fn grid(policy: &VerifyPolicy, d: &DeployCandidate, now: DateTime<Utc>) -> Grid {
    let step = policy.step.max(Duration::from_secs(1));
    let secs = step.as_secs().max(1) as i64;
    let t = d.commit.time;
    let window_end = t + chrono::Duration::seconds(policy.window.as_secs() as i64);
    let mut end = now.min(window_end);
    if let Some(n) = d.next_deploy {
        end = end.min(n);
    }
    let after = ((end - t).num_seconds().max(0) / secs) as usize;
    let before = (policy.window.as_secs() as i64 / secs).max(1) as usize;
    Grid {
        start: t - chrono::Duration::seconds(secs * (before as i64 - 1)),
        end: t + chrono::Duration::seconds(secs * after as i64),
        step,
        before,
        after,
    }
}

impl Grid {
    /// Split range-query points `(unix seconds, value)` into before- and after-slices
    /// (values scaled to counts by `scale`).
    pub fn split(
        &self,
        deploy: DateTime<Utc>,
        points: &[(f64, f64)],
        scale: f64,
    ) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        let secs = self.step.as_secs().max(1) as i64;
        let t = deploy.timestamp();
        let mut before = vec![None; self.before];
        let mut after = vec![None; self.after];
        for &(ts, v) in points {
            if !v.is_finite() || v < 0.0 {
                continue;
            }
            let off = ts.round() as i64 - t;
            if off % secs != 0 {
                continue;
            }
            let k = off / secs;
            if k <= 0 {
                if let Some(slot) = before.get_mut((-k) as usize) {
                    *slot = Some(v * scale);
                }
            } else if let Some(slot) = after.get_mut((k - 1) as usize) {
                *slot = Some(v * scale);
            }
        }
        (before, after)
    }
}

/// Pair error and request slices into counts (a slice needs both).
pub fn counts(errors: &[Option<f64>], requests: &[Option<f64>]) -> Vec<Option<Counts>> {
    errors
        .iter()
        .zip(requests)
        .map(|(e, r)| match (e, r) {
            (Some(e), Some(r)) => Some(Counts {
                errors: *e,
                requests: *r,
            }),
            // No error series but requests: a service without errors exposes none.
            (None, Some(r)) => Some(Counts {
                errors: 0.0,
                requests: *r,
            }),
            _ => None,
        })
        .collect()
}

/// How to turn one value of an SLI query over a slice into a count: per-second rates
/// (`rate`, `irate`) are multiplied by the slice length, `increase` is a count already.
pub fn count_scale(query: &str, step: Duration) -> f64 {
    if query.contains("increase(") {
        1.0
    } else {
        step.as_secs_f64()
    }
}

/// The notification field and decision key of a `Slogate-*` trailer:
/// `Slogate-Error-Ratio-After` → `error_ratio_after`.
pub fn field_name(trailer: &str) -> String {
    trailer
        .trim_start_matches("Slogate-")
        .to_ascii_lowercase()
        .replace('-', "_")
}

/// A page-level multiwindow burn of one SLO: both windows of a page pair at or above the
/// pair's factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageBurn {
    pub slo: String,
    /// The pair's long window: a deploy inside it is taken as the cause.
    pub long_window: PromDuration,
    pub short_window: PromDuration,
    pub factor: f64,
    pub burn_long: f64,
    pub burn_short: f64,
}

/// The page condition of Sloth's page alert, evaluated on a budget report: the quick pair
/// first, then the slow one.
pub fn page_burn(report: &BudgetReport, windows: &AlertWindows) -> Option<PageBurn> {
    let burn = |w: PromDuration| report.burn_rates.get(&w.to_string()).copied().flatten();
    [windows.page.quick, windows.page.slow]
        .into_iter()
        .find_map(|p| {
            let f = p.burn_rate_factor(windows.slo_period);
            let (l, s) = (burn(p.long_window)?, burn(p.short_window)?);
            (l >= f && s >= f).then(|| PageBurn {
                slo: report.id.clone(),
                long_window: p.long_window,
                short_window: p.short_window,
                factor: f,
                burn_long: l,
                burn_short: s,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trailers::Trailer;

    fn commit(sha: &str, mins_ago: i64, trailers: Vec<Trailer>) -> CommitInfo {
        CommitInfo {
            sha: sha.repeat(40 / sha.len()),
            subject: format!("deploy {sha}"),
            author: "Dev <dev@example.com>".into(),
            time: now() - chrono::Duration::minutes(mins_ago),
            trailers,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn slices(n: usize, requests: f64, ratio: f64) -> Vec<Option<Counts>> {
        vec![
            Some(Counts {
                errors: requests * ratio,
                requests,
            });
            n
        ]
    }

    fn report(id: &str) -> BudgetReport {
        BudgetReport {
            id: id.into(),
            service: "svc".into(),
            slo: "avail".into(),
            objective: 0.999,
            period: "30d".into(),
            error_ratio: Some(0.0),
            budget_consumed: Some(0.0),
            budget_remaining: Some(1.0),
            burn_rates: Default::default(),
            action: crate::slo::budget::Action::None,
            no_data: false,
            source: crate::slo::budget::Source::Raw,
        }
    }

    fn factors() -> Factors {
        Factors::of(&VerifyPolicy::default(), &AlertWindows::default_30d())
    }

    /// The decision table: (before ratio, after ratio, after minutes) → regression.
    #[test]
    fn decision_table() {
        let p = VerifyPolicy::default();
        let d = commit("a", 20, vec![]);
        // 100 req/s: 6,000 requests per 1m slice; 99.9% SLO (budget 0.001).
        let cases: &[(f64, f64, usize, bool, &str)] = &[
            (
                0.0005,
                0.02,
                20,
                true,
                "2% after 0.05%: 20x burn, significant",
            ),
            (0.0005, 1.0, 5, true, "every request fails"),
            (0.0005, 0.0005, 20, false, "no change"),
            (
                0.0005,
                0.0008,
                60,
                false,
                "a small rise stays under both factors",
            ),
            (
                0.02,
                0.02,
                20,
                false,
                "burning before and after: not the deploy",
            ),
            (
                0.0005,
                0.005,
                20,
                false,
                "5x burn: below the page factor before 30m",
            ),
            (
                0.0005,
                0.005,
                40,
                true,
                "5x burn after 30m: above the ticket factor",
            ),
            (0.0005, 0.02, 1, false, "one slice is never enough evidence"),
            (0.0005, 0.02, 0, false, "nothing after the deploy yet"),
        ];
        for &(before, after, n, want, why) in cases {
            let v = judge(
                "svc-avail",
                &d,
                0.001,
                factors(),
                &p,
                &slices(60, 6000.0, before),
                &slices(n, 6000.0, after),
            );
            assert_eq!(v.regression, want, "{why}: {v:?}");
        }
    }

    #[test]
    fn numbers_are_reported() {
        let p = VerifyPolicy::default();
        let v = judge(
            "svc-avail",
            &commit("a", 20, vec![]),
            0.001,
            factors(),
            &p,
            &slices(60, 3000.0, 0.0005),
            &slices(20, 3000.0, 0.02),
        );
        assert!((v.error_ratio_before.unwrap() - 0.0005).abs() < 1e-12);
        assert!((v.error_ratio_after.unwrap() - 0.02).abs() < 1e-12);
        assert!((v.burn_rate_after.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(v.requests_after, 60_000.0);
        assert_eq!(v.after_seconds, 1200);
        assert!((v.factor - 14.4).abs() < 1e-9);
        assert!(v.p_value <= 0.02 && v.significant);
        assert_eq!(v.looks, 20);
    }

    #[test]
    fn missing_slices_are_skipped_not_counted_as_zero() {
        let p = VerifyPolicy::default();
        let v = judge(
            "s",
            &commit("a", 20, vec![]),
            0.001,
            factors(),
            &p,
            &vec![None; 60],
            &slices(20, 6000.0, 0.02),
        );
        assert_eq!(v.looks, 0);
        assert!(!v.regression);
        assert_eq!(v.error_ratio_before, None);
    }

    #[test]
    fn factors_come_from_the_catalog() {
        let f = factors();
        assert!((f.page - 14.4).abs() < 1e-9);
        assert!((f.ticket - 3.0).abs() < 1e-9);
        let p = VerifyPolicy {
            page_factor: Some(10.0),
            ..VerifyPolicy::default()
        };
        assert_eq!(Factors::of(&p, &AlertWindows::default_30d()).page, 10.0);
    }

    #[test]
    fn deploys_skip_slogate_commits_and_reverted_ones() {
        let c = commit("c", 5, vec![]);
        let revert = commit(
            "r",
            10,
            vec![
                Trailer::new("Slogate-Breach", "x"),
                Trailer::new("Slogate-Reverts", "b".repeat(40)),
            ],
        );
        let b = commit("b", 20, vec![]);
        let promoted = commit("p", 30, vec![Trailer::new("Slogate-Rollout", "ns/x")]);
        let overridden = commit("o", 40, vec![Trailer::new("Slogate-Override", "hotfix")]);
        let old = commit("d", 120, vec![]);
        let list = vec![
            c.clone(),
            revert,
            b,
            promoted,
            overridden.clone(),
            old.clone(),
        ];
        let got = deploys_since(&list, now() - chrono::Duration::hours(1));
        let shas: Vec<&str> = got.iter().map(|d| d.commit.sha.as_str()).collect();
        assert_eq!(shas, vec![c.sha.as_str(), overridden.sha.as_str()]);
        // The previous commit on the path is the revert's base, whatever it is.
        assert_eq!(got[0].base.as_deref(), Some("r".repeat(40).as_str()));
        assert_eq!(got[1].base.as_deref(), Some(old.sha.as_str()));
        // The override's window stops at the next deploy.
        assert_eq!(got[1].next_deploy, Some(c.time));
        assert_eq!(got[0].next_deploy, None);
    }

    #[test]
    fn grid_mirrors_slices_around_the_deploy() {
        let p = VerifyPolicy::default();
        let d = DeployCandidate {
            commit: commit("a", 20, vec![]),
            base: None,
            next_deploy: None,
        };
        let g = grid(&p, &d, now() + chrono::Duration::seconds(30));
        assert_eq!((g.before, g.after), (60, 20));
        let t = d.commit.time.timestamp() as f64;
        let pts = vec![
            (t, 1.0),
            (t - 60.0, 2.0),
            (t + 60.0, 3.0),
            (t + 1200.0, 4.0),
            (t + 90.0, 9.0),
        ];
        let (b, a) = g.split(d.commit.time, &pts, 60.0);
        assert_eq!(b[0], Some(60.0));
        assert_eq!(b[1], Some(120.0));
        assert_eq!(a[0], Some(180.0));
        assert_eq!(a[19], Some(240.0));
        assert_eq!(a[1], None);
    }

    #[test]
    fn page_condition_needs_both_windows() {
        let w = AlertWindows::default_30d();
        let mut r = report("svc-avail");
        r.burn_rates.insert("1h".into(), Some(20.0));
        r.burn_rates.insert("5m".into(), Some(20.0));
        let p = page_burn(&r, &w).expect("page");
        assert_eq!(p.long_window.to_string(), "1h");
        r.burn_rates.insert("5m".into(), Some(2.0));
        assert!(page_burn(&r, &w).is_none());
        r.burn_rates.insert("6h".into(), Some(7.0));
        r.burn_rates.insert("30m".into(), Some(7.0));
        assert_eq!(page_burn(&r, &w).unwrap().long_window.to_string(), "6h");
    }

    #[test]
    fn rates_scale_by_the_slice_and_increase_does_not() {
        let s = Duration::from_secs(60);
        assert_eq!(count_scale("sum(rate(x[{{.window}}]))", s), 60.0);
        assert_eq!(count_scale("sum(increase(x[{{.window}}]))", s), 1.0);
    }
}
