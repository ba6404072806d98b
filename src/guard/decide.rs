//! The guard's decision, as a pure function: budget reports, the app's recent commits and
//! its remembered state in; the next state and the effects to apply out.
//!
//! Rules (README "Error-budget guard"):
//! - `budget_consumed ≥ emergency` always rolls back; `≥ critical` rolls back when the
//!   app sets `rollback_on_critical`, and otherwise notifies once per episode.
//! - A rollback opens a *breach*: one revert of the commits since the last known-good
//!   commit, with the breach id as its idempotency key. The breach is the freeze.
//! - While frozen, each new deploy commit on the app path is reverted once (its own key,
//!   derived from the breach id and the commit), unless it carries `Slogate-Override`, is
//!   the known-good commit, or an override was made through the API.
//! - The breach closes when every SLO of the app is measured below the rollback
//!   threshold again. No data never opens, keeps or closes anything: the state stays.
//! - Outside a breach, the newest commit on the app path becomes known-good once every
//!   SLO's shortest-window burn rate has stayed below 1 for the soak time.
//!
//! The caller stores `next` (compare-and-swap) *before* applying the effects, and the
//! revert effect is idempotent on its key, so a crash or a race at any point never
//! reverts a breach twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::state::{
    AppGuardState, Breach, Candidate, DeployCheck, KnownGood, Notified, RevertRecord, MAX_DEPLOYS,
};
use super::verify::{field_name, DeployCandidate, OnRegression, PageBurn, Verdict, VerifyPolicy};
use crate::model::commit::{CommitInfo, RevertRequest};
use crate::model::notify::{Incident, Notification, Severity};
use crate::model::trailers::Trailer;
use crate::slo::budget::{action_for, Action, BudgetReport};
use crate::slo::model::Guard;

/// One guarded app: a GitOps path and the SLOs that judge it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppGuard {
    pub app: String,
    /// Path of the app in the GitOps repo (`apps/checkout/overlays/prod`).
    pub path: String,
    pub slos: Vec<String>,
    pub thresholds: Guard,
    /// How long the burn rate must stay below 1 before the newest deploy is known-good.
    pub soak: Duration,
    /// Post-deploy verification and what a regressing deploy or a burn-rate page leads to.
    pub verify: VerifyPolicy,
}

/// What started this decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    /// An Alertmanager alert for one of the app's SLOs.
    Alert {
        alertname: String,
        fingerprint: String,
    },
    /// An operator through the API or CLI.
    Operator {
        actor: String,
    },
}

impl Trigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Alert { .. } => "alert",
            Trigger::Operator { .. } => "api",
        }
    }
}

/// What the guard sees in one run.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Fresh budget reports of the app's SLOs.
    pub reports: &'a [BudgetReport],
    /// Commits touching the app path, newest first: those after `breach.base` while
    /// frozen, the most recent ones otherwise.
    pub commits: &'a [CommitInfo],
    pub trigger: Trigger,
    /// Deploys under post-deploy verification, newest first, with their verdicts.
    pub deploys: &'a [DeployObservation],
    /// SLOs of the app whose page condition (multiwindow burn) holds now.
    pub pages: &'a [PageBurn],
}

/// One deploy under verification, as the runtime measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployObservation {
    pub deploy: DeployCandidate,
    /// One verdict per SLO of the app that could be judged (events SLIs with data).
    pub verdicts: Vec<Verdict>,
    /// The deploy's window has ended (its length passed, or a later deploy came).
    pub window_over: bool,
}

/// An effect for the runtime to apply after storing the next state.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Revert through the GitOps port, then (when a commit was made) request a sync and
    /// notify. Idempotent on `request.breach_id`.
    Revert {
        request: RevertRequest,
        /// `rollback` (breach opened) or `freeze-revert` (a deploy during the freeze).
        action: &'static str,
    },
    Notify(Notification),
    /// A decision-log entry: action, reason and the numbers seen.
    Record {
        action: &'static str,
        reason: String,
        observed: serde_json::Value,
        commits: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub next: AppGuardState,
    pub effects: Vec<Effect>,
}

/// The worst measured SLO of the app: its report and action.
fn worst<'a>(app: &AppGuard, reports: &'a [BudgetReport]) -> Option<(&'a BudgetReport, Action)> {
    reports
        .iter()
        .filter(|r| r.budget_consumed.is_some())
        .map(|r| (r, action_for(r.budget_consumed, &app.thresholds)))
        .max_by(|a, b| {
            a.1.cmp(&b.1).then(
                a.0.budget_consumed
                    .partial_cmp(&b.0.budget_consumed)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        })
}

fn rolls_back(app: &AppGuard, action: Action) -> bool {
    action == Action::Emergency
        || (action == Action::Critical && app.thresholds.rollback_on_critical)
}

/// The numbers of every report, for the decision log.
fn observed(reports: &[BudgetReport], trigger: &Trigger) -> serde_json::Value {
    let slos: Vec<_> = reports
        .iter()
        .map(|r| {
            json!({
                "slo": r.id,
                "objective": r.objective,
                "budget_consumed": r.budget_consumed,
                "error_ratio": r.error_ratio,
                "burn_rates": r.burn_rates,
                "action": r.action,
                "no_data": r.no_data,
            })
        })
        .collect();
    let mut v = json!({ "slos": slos });
    if let Trigger::Alert {
        alertname,
        fingerprint,
    } = trigger
    {
        v["alert"] = json!({ "alertname": alertname, "fingerprint": fingerprint });
    }
    v
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A breach id: one line, stable, unique per app, SLO and start second.
pub fn breach_id(app: &str, slo: &str, level: Action, at: DateTime<Utc>) -> String {
    format!(
        "{app}/{slo}/{}/{}",
        level.as_str(),
        at.format("%Y%m%dT%H%M%SZ")
    )
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The shortest-window burn rate of a report, when measured.
fn shortest_burn(r: &BudgetReport) -> Option<f64> {
    // Keys are Prometheus durations; pick the smallest by parsed length.
    r.burn_rates
        .iter()
        .filter_map(|(w, v)| Some((w.parse::<crate::slo::PromDuration>().ok()?, (*v)?)))
        .min_by_key(|(w, _)| *w)
        .map(|(_, v)| v)
}

pub fn decide(
    app: &AppGuard,
    state: &AppGuardState,
    obs: &Observation<'_>,
    now: DateTime<Utc>,
) -> Decision {
    let mut next = state.clone();
    let mut effects = Vec::new();
    let seen = observed(obs.reports, &obs.trigger);
    let measured = worst(app, obs.reports);

    match (&state.breach, measured) {
        // No measurement at all: decide nothing, but finish reverts already asked for.
        (_, None) => {}
        (None, Some((r, action))) if rolls_back(app, action) => {
            let consumed = r.budget_consumed.unwrap_or(0.0);
            let id = breach_id(&app.app, &r.id, action, now);
            let known_good = state.known_good.as_ref().map(|k| k.sha.clone());
            let reason = format!(
                "SLO {} consumed {} of its error budget ({} threshold {})",
                r.id,
                pct(consumed),
                action.as_str(),
                pct(if action == Action::Emergency {
                    app.thresholds.emergency
                } else {
                    app.thresholds.critical
                })
            );
            let request = RevertRequest {
                app_path: app.path.clone(),
                known_good: known_good.clone(),
                reason: reason.clone(),
                slo_id: Some(r.id.clone()),
                budget_consumed: Some(consumed),
                breach_id: id.clone(),
                extra_trailers: Vec::new(),
                reason_code: None,
            };
            next.breach = Some(Breach {
                id: id.clone(),
                slo: r.id.clone(),
                level: action,
                budget_consumed: consumed,
                since: now,
                base: known_good.clone(),
                reverts: vec![RevertRecord {
                    key: id.clone(),
                    newest: obs.commits.first().map(|c| c.sha.clone()),
                    requested_at: now,
                    outcome: None,
                    sha: None,
                    reverted: Vec::new(),
                    attempts: 0,
                }],
            });
            next.candidate = None;
            next.notified = None;
            next.pending_override = None;
            effects.push(Effect::Record {
                action: "rollback",
                reason: format!(
                    "{reason}; reverting {} since {}; freezing {}",
                    app.path,
                    known_good
                        .as_deref()
                        .map(short)
                        .unwrap_or("the newest deploy (no known-good commit)"),
                    app.app
                ),
                observed: seen.clone(),
                commits: known_good.into_iter().collect(),
            });
            effects.push(Effect::Revert {
                request,
                action: "rollback",
            });
        }
        (None, Some((r, action))) => {
            // Not rolling back: notify a critical burn once per episode.
            if action == Action::Critical {
                if state.notified.is_none() {
                    let consumed = r.budget_consumed.unwrap_or(0.0);
                    let reason = format!(
                        "SLO {} consumed {} of its error budget (critical threshold {}); rollback_on_critical is off, so slogate only notifies",
                        r.id,
                        pct(consumed),
                        pct(app.thresholds.critical)
                    );
                    next.notified = Some(Notified {
                        slo: r.id.clone(),
                        level: action,
                        since: now,
                    });
                    effects.push(Effect::Record {
                        action: "notify",
                        reason: reason.clone(),
                        observed: seen.clone(),
                        commits: Vec::new(),
                    });
                    effects.push(Effect::Notify(Notification {
                        severity: Severity::Warning,
                        subject: app.app.clone(),
                        title: format!("{}: error budget critical ({})", app.app, pct(consumed)),
                        text: reason,
                        fields: [
                            ("slo".to_string(), r.id.clone()),
                            ("budget_consumed".to_string(), format!("{consumed:.3}")),
                        ]
                        .into(),
                        incident: None,
                    }));
                }
            } else {
                next.notified = None;
            }
            let reverting = verify_deploys(app, &mut next, obs, now, &mut effects);
            if !reverting {
                track_known_good(app, &mut next, obs, now, &mut effects, &seen);
            }
        }
        (Some(breach), Some((r, action))) if rolls_back(app, action) => {
            let mut b = breach.clone();
            b.budget_consumed = r.budget_consumed.unwrap_or(b.budget_consumed);
            freeze(app, state, &mut b, &mut next, obs, now, &mut effects, &seen);
            next.breach = Some(b);
        }
        (Some(breach), Some((r, _))) => {
            // Every measured SLO is below the rollback threshold again: the freeze ends.
            let reason = format!(
                "worst SLO {} is at {} budget consumed, below the rollback threshold; unfreezing {} (breach {})",
                r.id,
                pct(r.budget_consumed.unwrap_or(0.0)),
                app.app,
                breach.id
            );
            next.breach = None;
            next.pending_override = None;
            effects.push(Effect::Record {
                action: "unfreeze",
                reason: reason.clone(),
                observed: seen.clone(),
                commits: Vec::new(),
            });
            effects.push(Effect::Notify(Notification {
                severity: Severity::Info,
                subject: app.app.clone(),
                title: format!("{}: unfrozen", app.app),
                text: reason,
                fields: Default::default(),
                incident: Some(Incident::resolve(&breach.id)),
            }));
        }
    }

    // Reverts asked for earlier that are not done yet are asked for again (same key).
    if let Some(b) = &next.breach {
        for rec in b.reverts.iter().filter(|r| !r.done()) {
            let already_emitted = effects.iter().any(
                |e| matches!(e, Effect::Revert { request, .. } if request.breach_id == rec.key),
            );
            if !already_emitted && rec.key == b.id {
                effects.push(Effect::Revert {
                    request: RevertRequest {
                        app_path: app.path.clone(),
                        known_good: state.known_good.as_ref().map(|k| k.sha.clone()),
                        reason: format!(
                            "SLO {} consumed {} of its error budget ({}), retrying",
                            b.slo,
                            pct(b.budget_consumed),
                            b.level.as_str()
                        ),
                        slo_id: Some(b.slo.clone()),
                        budget_consumed: Some(b.budget_consumed),
                        breach_id: rec.key.clone(),
                        extra_trailers: Vec::new(),
                        reason_code: None,
                    },
                    action: "rollback",
                });
            } else if !already_emitted {
                effects.push(Effect::Revert {
                    request: freeze_request(app, b, rec.key.clone(), b.base.clone()),
                    action: "freeze-revert",
                });
            }
        }
    }
    // Deploy reverts asked for earlier that are not done yet are asked for again (same key).
    for d in &next.deploys {
        let Some(rec) = d.revert.as_ref().filter(|r| !r.done()) else {
            continue;
        };
        let already_emitted = effects
            .iter()
            .any(|e| matches!(e, Effect::Revert { request, .. } if request.breach_id == rec.key));
        if let (false, Some(request)) = (already_emitted, d.request.clone()) {
            effects.push(Effect::Revert {
                request,
                action: "deploy-revert",
            });
        }
    }
    Decision { next, effects }
}

fn freeze_request(app: &AppGuard, b: &Breach, key: String, base: Option<String>) -> RevertRequest {
    RevertRequest {
        app_path: app.path.clone(),
        known_good: base,
        reason: format!(
            "{} is frozen: SLO {} has consumed {} of its error budget (breach {}); deploys are reverted until it recovers or an override is given",
            app.app,
            b.slo,
            pct(b.budget_consumed),
            b.id
        ),
        slo_id: Some(b.slo.clone()),
        budget_consumed: Some(b.budget_consumed),
        breach_id: key,
        extra_trailers: Vec::new(),
        reason_code: None,
    }
}

/// While frozen: let overridden and known-good commits through, revert any other new deploy.
#[allow(clippy::too_many_arguments)]
fn freeze(
    app: &AppGuard,
    state: &AppGuardState,
    b: &mut Breach,
    next: &mut AppGuardState,
    obs: &Observation<'_>,
    now: DateTime<Utc>,
    effects: &mut Vec<Effect>,
    seen: &serde_json::Value,
) {
    // The initial revert must be done before deploys during the freeze can be told apart.
    if !b.reverts.first().is_some_and(RevertRecord::done) {
        return;
    }
    // Commits up to the newest one a revert of this breach was asked for are handled:
    // reverted (on the branch, or in a pull request not merged yet, which leaves them on
    // the branch) or deliberately left alone (without a known-good commit only the newest
    // is reverted). Only newer ones are deploys made during the freeze.
    let handled = obs.commits.iter().position(|c| {
        b.reverts
            .iter()
            .any(|r| r.newest.as_deref() == Some(c.sha.as_str()))
    });
    let commits = &obs.commits[..handled.unwrap_or(obs.commits.len())];
    // Commits the git adapter would revert: not slogate's own, not reverted already.
    let already: Vec<String> = commits
        .iter()
        .filter(|c| c.is_slogate_revert())
        .flat_map(|c| crate::model::trailers::reverted_shas(&c.trailers))
        .collect();
    let deploys: Vec<&CommitInfo> = commits
        .iter()
        .filter(|c| !c.is_slogate_revert())
        .filter(|c| {
            !already
                .iter()
                .any(|s| s.len() >= 7 && c.sha.starts_with(s.as_str()))
        })
        .collect();
    // Oldest to newest: an override (trailer, API, or the known-good commit) lets it and
    // everything before it through.
    let mut let_through: Option<(&CommitInfo, String)> = None;
    if let Some(o) = &state.pending_override {
        if let Some(newest) = deploys.first() {
            let_through = Some((
                newest,
                format!("override by {} through the API: {}", o.actor, o.reason),
            ));
        }
        next.pending_override = None;
    }
    for c in deploys.iter().rev() {
        if let Some(reason) = c.override_reason() {
            let_through = Some((c, format!("commit carries Slogate-Override: {reason}")));
        } else if state.known_good.as_ref().is_some_and(|k| k.sha == c.sha) {
            let_through = Some((c, "commit is known-good".to_string()));
        }
    }
    let mut remaining: Vec<&CommitInfo> = deploys.clone();
    if let Some((c, why)) = let_through {
        let pos = deploys.iter().position(|d| d.sha == c.sha).unwrap_or(0);
        let passed: Vec<String> = deploys[pos..].iter().map(|d| d.sha.clone()).collect();
        remaining = deploys[..pos].to_vec();
        b.base = Some(c.sha.clone());
        effects.push(Effect::Record {
            action: "override",
            reason: format!(
                "{} is frozen (breach {}), but {} was let through: {why}",
                app.app,
                b.id,
                short(&c.sha)
            ),
            observed: seen.clone(),
            commits: passed,
        });
    }
    let Some(newest) = remaining.first() else {
        return;
    };
    let key = format!("{}/{}", b.id, short(&newest.sha));
    if b.reverts.iter().any(|r| r.key == key) {
        return; // asked for already; the retry loop in `decide` handles it
    }
    let shas: Vec<String> = remaining.iter().map(|c| c.sha.clone()).collect();
    b.reverts.push(RevertRecord {
        key: key.clone(),
        newest: Some(newest.sha.clone()),
        requested_at: now,
        outcome: None,
        sha: None,
        reverted: Vec::new(),
        attempts: 0,
    });
    effects.push(Effect::Record {
        action: "freeze-revert",
        reason: format!(
            "{} is frozen (breach {}, SLO {} at {} budget consumed): reverting {} deploy commit(s) made during the freeze",
            app.app,
            b.id,
            b.slo,
            pct(b.budget_consumed),
            shas.len()
        ),
        observed: seen.clone(),
        commits: shas,
    });
    effects.push(Effect::Revert {
        request: freeze_request(app, b, key, b.base.clone()),
        action: "freeze-revert",
    });
}

fn mark_known_good(next: &mut AppGuardState, sha: &str, now: DateTime<Utc>, how: &str) {
    next.known_good = Some(KnownGood {
        sha: sha.to_string(),
        since: now,
        how: how.into(),
    });
    next.candidate = None;
}

/// Outside a breach: the newest deploy becomes known-good after a clean soak.
fn track_known_good(
    app: &AppGuard,
    next: &mut AppGuardState,
    obs: &Observation<'_>,
    now: DateTime<Utc>,
    effects: &mut Vec<Effect>,
    seen: &serde_json::Value,
) {
    let Some(head) = obs.commits.first() else {
        return;
    };
    if next.known_good.as_ref().is_some_and(|k| k.sha == head.sha) {
        next.candidate = None;
        return;
    }
    let burns: Vec<Option<f64>> = app
        .slos
        .iter()
        .map(|id| {
            obs.reports
                .iter()
                .find(|r| &r.id == id)
                .and_then(shortest_burn)
        })
        .collect();
    let hot = burns.iter().any(|b| b.is_some_and(|b| b >= 1.0));
    let all_measured = !burns.is_empty() && burns.iter().all(Option::is_some);
    match &next.candidate {
        Some(c) if c.sha == head.sha && !hot => {
            let soaked = (now - c.seen_at).to_std().unwrap_or_default() >= app.soak;
            if soaked && all_measured {
                mark_known_good(next, &head.sha, now, "soak");
                effects.push(Effect::Record {
                    action: "known-good",
                    reason: format!(
                        "{} is known-good: every SLO of {} stayed under a burn rate of 1 for {}s after it was deployed",
                        short(&head.sha),
                        app.app,
                        app.soak.as_secs()
                    ),
                    observed: seen.clone(),
                    commits: vec![head.sha.clone()],
                });
            }
        }
        // A new head, or a burn of 1 or more: the soak starts (again) now.
        _ => {
            next.candidate = Some(Candidate {
                sha: head.sha.clone(),
                seen_at: now,
            })
        }
    }
}

/// Numbers of a verdict for trailers and notification fields.
fn verdict_fields(v: &Verdict) -> Vec<(String, String)> {
    let f = |x: Option<f64>| x.map_or("none".to_string(), |x| format!("{x:.6}"));
    vec![
        ("Slogate-Deploy".into(), v.deploy.clone()),
        ("Slogate-Deploy-Time".into(), v.deploy_time.to_rfc3339()),
        ("Slogate-Error-Ratio-Before".into(), f(v.error_ratio_before)),
        ("Slogate-Error-Ratio-After".into(), f(v.error_ratio_after)),
        (
            "Slogate-Requests-Before".into(),
            format!("{:.0}", v.requests_before),
        ),
        (
            "Slogate-Requests-After".into(),
            format!("{:.0}", v.requests_after),
        ),
        (
            "Slogate-Burn-Rate".into(),
            v.burn_rate_after
                .map_or("none".to_string(), |x| format!("{x:.2}")),
        ),
        ("Slogate-Burn-Factor".into(), format!("{:.2}", v.factor)),
        ("Slogate-P-Value".into(), format!("{:.3e}", v.p_value)),
    ]
}

fn describe_verdict(v: &Verdict) -> String {
    let pct = |x: Option<f64>| x.map_or("no data".to_string(), |x| format!("{:.3}%", x * 100.0));
    format!(
        "SLO {}: error ratio {} over {:.0} requests before the deploy, {} over {:.0} requests in the {}s since; burn rate {} (factor {:.1}); p = {:.3e} (alpha {})",
        v.slo,
        pct(v.error_ratio_before),
        v.requests_before,
        pct(v.error_ratio_after),
        v.requests_after,
        v.after_seconds,
        v.burn_rate_after.map_or("n/a".to_string(), |b| format!("{b:.1}")),
        v.factor,
        v.p_value,
        v.alpha
    )
}

fn remember(next: &mut AppGuardState, check: DeployCheck) {
    next.deploys.retain(|d| d.sha != check.sha);
    next.deploys.push(check);
    let extra = next.deploys.len().saturating_sub(MAX_DEPLOYS);
    next.deploys.drain(..extra);
}

/// Post-deploy verification and burn-rate pages, outside a breach. Returns true when a
/// revert was asked for (the known-good tracking then waits).
///
/// - The oldest open deploy that regressed (a verdict with a significant rise at or above
///   the factor), or that lies inside the long window of a page that holds now, is acted on
///   per `on_deploy_regression`: one revert of it and every later deploy on the path
///   (idempotent on `<app>/deploy/<sha>`), or a notification.
/// - A page without a deploy in its window notifies once per episode.
/// - A deploy whose window ended without a regression is known-good (or `superseded` when a
///   later deploy cut its window short).
fn verify_deploys(
    app: &AppGuard,
    next: &mut AppGuardState,
    obs: &Observation<'_>,
    now: DateTime<Utc>,
    effects: &mut Vec<Effect>,
) -> bool {
    let policy = &app.verify;
    if policy.on_regression == OnRegression::Off {
        return false;
    }
    let decided = |next: &AppGuardState, sha: &str| next.deploys.iter().any(|d| d.sha == sha);
    // The page whose long window reaches furthest back.
    let page = obs.pages.iter().max_by_key(|p| p.long_window);
    let in_page = |d: &DeployObservation| {
        page.is_some_and(|p| {
            let long = chrono::Duration::milliseconds(p.long_window.as_millis() as i64);
            d.deploy.commit.time >= now - long
        })
    };
    let open: Vec<&DeployObservation> = obs
        .deploys
        .iter()
        .filter(|d| !decided(next, &d.deploy.commit.sha))
        .collect();
    // Oldest first: reverting the oldest culprit reverts the later deploys too.
    let culprit = open
        .iter()
        .rev()
        .find(|d| d.verdicts.iter().any(|v| v.regression) || in_page(d));
    if let Some(d) = culprit {
        let regressed: Vec<&Verdict> = d.verdicts.iter().filter(|v| v.regression).collect();
        let code = if regressed.is_empty() {
            "burn-rate-page"
        } else {
            "post-deploy-verification"
        };
        let c = &d.deploy.commit;
        // The verdict to show: a regressing one, else the hottest.
        let shown = regressed.first().copied().or_else(|| {
            d.verdicts.iter().max_by(|a, b| {
                a.burn_rate_after
                    .unwrap_or(0.0)
                    .partial_cmp(&b.burn_rate_after.unwrap_or(0.0))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        });
        let later: Vec<String> = obs
            .deploys
            .iter()
            .take_while(|x| x.deploy.commit.sha != c.sha)
            .map(|x| x.deploy.commit.sha.clone())
            .collect();
        let mut why = match (shown, page) {
            (Some(v), _) if code == "post-deploy-verification" => format!(
                "deploy {} ({}, {}) raised errors: {}",
                short(&c.sha),
                c.subject,
                c.time.to_rfc3339(),
                describe_verdict(v)
            ),
            (_, Some(p)) => format!(
                "SLO {} burns at page level ({:.1}x over {} and {:.1}x over {}, factor {:.1}) and deploy {} ({}, {}) is inside the {} window",
                p.slo,
                p.burn_long,
                p.long_window,
                p.burn_short,
                p.short_window,
                p.factor,
                short(&c.sha),
                c.subject,
                c.time.to_rfc3339(),
                p.long_window
            ),
            _ => format!("deploy {} regressed", short(&c.sha)),
        };
        if let (Some(v), "burn-rate-page") = (shown, code) {
            why.push_str(&format!("; {}", describe_verdict(v)));
        }
        let mut observed = json!({
            "reason": code,
            "deploy": c.sha,
            "deploy_time": c.time,
            "verdicts": d.verdicts,
            "page": page,
            "later_deploys": later,
            "on_deploy_regression": policy.on_regression.as_str(),
        });
        if let Trigger::Alert {
            alertname,
            fingerprint,
        } = &obs.trigger
        {
            observed["alert"] = json!({ "alertname": alertname, "fingerprint": fingerprint });
        }
        let slo = shown
            .map(|v| v.slo.clone())
            .or_else(|| page.map(|p| p.slo.clone()));
        let mut fields: Vec<(String, String)> = shown.map(verdict_fields).unwrap_or_default();
        if shown.is_none() {
            fields.push(("Slogate-Deploy".into(), c.sha.clone()));
            fields.push(("Slogate-Deploy-Time".into(), c.time.to_rfc3339()));
        }
        if let Some(p) = page {
            fields.push(("Slogate-Page-Burn".into(), format!("{:.2}", p.burn_long)));
        }
        let newest = obs.deploys.first().map(|x| x.deploy.commit.sha.as_str());
        // Without an earlier commit on the path the adapter can only revert the newest one.
        let revertable = d.deploy.base.is_some() || newest == Some(c.sha.as_str());
        let mut commits = vec![c.sha.clone()];
        commits.extend(later.iter().cloned());
        if policy.on_regression == OnRegression::Revert && revertable {
            let key = format!("{}/deploy/{}", app.app, short(&c.sha));
            let request = RevertRequest {
                app_path: app.path.clone(),
                known_good: d.deploy.base.clone(),
                reason: why.clone(),
                slo_id: slo,
                budget_consumed: None,
                breach_id: key.clone(),
                extra_trailers: fields
                    .iter()
                    .map(|(k, v)| Trailer::new(k.clone(), v.clone()))
                    .collect(),
                reason_code: Some(code.to_string()),
            };
            let rec = RevertRecord {
                key: key.clone(),
                newest: commits.last().cloned(),
                requested_at: now,
                outcome: None,
                sha: None,
                reverted: Vec::new(),
                attempts: 0,
            };
            for sha in &later {
                remember(
                    next,
                    DeployCheck {
                        sha: sha.clone(),
                        time: obs
                            .deploys
                            .iter()
                            .find(|x| &x.deploy.commit.sha == sha)
                            .map_or(now, |x| x.deploy.commit.time),
                        outcome: "reverted".into(),
                        reason: Some(format!("reverted with {} ({code})", short(&c.sha))),
                        decided_at: now,
                        observed: serde_json::Value::Null,
                        revert: None,
                        request: None,
                    },
                );
            }
            remember(
                next,
                DeployCheck {
                    sha: c.sha.clone(),
                    time: c.time,
                    outcome: "reverted".into(),
                    reason: Some(code.into()),
                    decided_at: now,
                    observed: observed.clone(),
                    revert: Some(rec),
                    request: Some(request.clone()),
                },
            );
            next.candidate = None;
            effects.push(Effect::Record {
                action: "deploy-revert",
                reason: format!(
                    "{why}; reverting {} deploy commit(s) on {}",
                    commits.len(),
                    app.path
                ),
                observed,
                commits,
            });
            effects.push(Effect::Revert {
                request,
                action: "deploy-revert",
            });
            return true;
        }
        let reason = if policy.on_regression == OnRegression::Revert {
            format!("{why}; not reverted: no earlier commit on {} to go back to while later deploys exist", app.path)
        } else {
            format!("{why}; on_deploy_regression is notify, so slogate only notifies")
        };
        remember(
            next,
            DeployCheck {
                sha: c.sha.clone(),
                time: c.time,
                outcome: "notified".into(),
                reason: Some(code.into()),
                decided_at: now,
                observed: observed.clone(),
                revert: None,
                request: None,
            },
        );
        effects.push(Effect::Record {
            action: "deploy-regression",
            reason: reason.clone(),
            observed,
            commits,
        });
        effects.push(Effect::Notify(Notification {
            severity: Severity::Critical,
            subject: app.app.clone(),
            title: format!("{}: deploy {} regressed", app.app, short(&c.sha)),
            text: reason,
            fields: fields
                .into_iter()
                .map(|(k, v)| (field_name(&k), v))
                .collect(),
            // A human has to act on it: one incident per deploy.
            incident: Some(Incident::trigger(format!(
                "{}/deploy/{}",
                app.app,
                short(&c.sha)
            ))),
        }));
        return false;
    }
    // A page without a deploy in its window: a deploy did not cause it; notify once.
    match page {
        Some(p) if next.paged.is_none() => {
            next.paged = Some(now);
            let reason = format!(
                "SLO {} burns at page level ({:.1}x over {} and {:.1}x over {}, factor {:.1}), but no deploy of {} is inside the {} window: not reverting, notifying only",
                p.slo, p.burn_long, p.long_window, p.burn_short, p.short_window, p.factor, app.app, p.long_window
            );
            effects.push(Effect::Record {
                action: "page-notify",
                reason: reason.clone(),
                observed: json!({ "page": p }),
                commits: Vec::new(),
            });
            effects.push(Effect::Notify(Notification {
                severity: Severity::Critical,
                subject: app.app.clone(),
                title: format!(
                    "{}: {} burning at page level, no deploy in its window",
                    app.app, p.slo
                ),
                text: reason,
                fields: [
                    ("slo".to_string(), p.slo.clone()),
                    ("burn_rate".to_string(), format!("{:.2}", p.burn_long)),
                    ("window".to_string(), p.long_window.to_string()),
                ]
                .into(),
                // Alertmanager pages for this burn already; this says why nothing is reverted.
                incident: None,
            }));
        }
        Some(_) => {}
        None => next.paged = None,
    }
    // Windows that ended cleanly, oldest first.
    for d in open.iter().rev().filter(|d| d.window_over) {
        let c = &d.deploy.commit;
        let judged = !d.verdicts.is_empty() && d.verdicts.iter().all(|v| v.looks > 0);
        let (outcome, action) = if d.deploy.next_deploy.is_some() {
            ("superseded", None)
        } else if judged {
            ("known-good", Some("known-good"))
        } else {
            ("unverified", None)
        };
        remember(
            next,
            DeployCheck {
                sha: c.sha.clone(),
                time: c.time,
                outcome: outcome.into(),
                reason: Some("post-deploy-verification".into()),
                decided_at: now,
                observed: json!({ "verdicts": d.verdicts }),
                revert: None,
                request: None,
            },
        );
        if action.is_some() {
            mark_known_good(next, &c.sha, now, "post-deploy-verification");
            effects.push(Effect::Record {
                action: "known-good",
                reason: format!(
                    "{} is known-good: its verification window ended without a regression ({})",
                    short(&c.sha),
                    d.verdicts
                        .iter()
                        .map(describe_verdict)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                observed: json!({ "verdicts": d.verdicts }),
                commits: vec![c.sha.clone()],
            });
        }
    }
    false
}

#[cfg(test)]
mod tests {
    //! The decision table of post-deploy verification and burn-rate pages.
    use super::*;
    use crate::slo::budget::Source;
    use crate::slo::PromDuration;

    fn t(mins: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + mins * 60, 0).unwrap()
    }

    fn app(on: OnRegression) -> AppGuard {
        AppGuard {
            app: "checkout".into(),
            path: "apps/checkout".into(),
            slos: vec!["svc-avail".into()],
            thresholds: Default::default(),
            soak: Duration::from_secs(3600),
            verify: VerifyPolicy {
                on_regression: on,
                ..VerifyPolicy::default()
            },
        }
    }

    fn report() -> BudgetReport {
        BudgetReport {
            id: "svc-avail".into(),
            service: "svc".into(),
            slo: "avail".into(),
            objective: 0.999,
            period: "30d".into(),
            error_ratio: Some(0.0005),
            budget_consumed: Some(0.5),
            budget_remaining: Some(0.5),
            burn_rates: [("5m".to_string(), Some(0.5))].into(),
            action: crate::slo::budget::Action::None,
            no_data: false,
            source: Source::Raw,
        }
    }

    fn commit(c: char, at: DateTime<Utc>) -> CommitInfo {
        CommitInfo {
            sha: c.to_string().repeat(40),
            subject: format!("deploy {c}"),
            author: "Dev <dev@example.com>".into(),
            time: at,
            trailers: Vec::new(),
        }
    }

    fn verdict(sha: &str, at: DateTime<Utc>, regression: bool) -> Verdict {
        Verdict {
            slo: "svc-avail".into(),
            deploy: sha.into(),
            deploy_time: at,
            error_ratio_before: Some(0.0005),
            error_ratio_after: Some(if regression { 0.02 } else { 0.0005 }),
            requests_before: 360_000.0,
            requests_after: 120_000.0,
            burn_rate_after: Some(if regression { 20.0 } else { 0.5 }),
            factor: 14.4,
            p_value: if regression { 0.001 } else { 0.9 },
            alpha: 0.02,
            after_seconds: 1200,
            looks: 20,
            significant: regression,
            regression,
        }
    }

    /// Deploy `b` at minute 0 on top of `a` (a day old); `c` optionally at minute 10.
    fn observe(regressed: &[char], with_c: bool, window_over: bool) -> Vec<DeployObservation> {
        let a = commit('a', t(-1440));
        let b = commit('b', t(0));
        let c = commit('c', t(10));
        let mut out = Vec::new();
        if with_c {
            out.push(DeployObservation {
                deploy: DeployCandidate {
                    commit: c.clone(),
                    base: Some(b.sha.clone()),
                    next_deploy: None,
                },
                verdicts: vec![verdict(&c.sha, c.time, regressed.contains(&'c'))],
                window_over,
            });
        }
        out.push(DeployObservation {
            deploy: DeployCandidate {
                commit: b.clone(),
                base: Some(a.sha.clone()),
                next_deploy: with_c.then_some(c.time),
            },
            verdicts: vec![verdict(&b.sha, b.time, regressed.contains(&'b'))],
            window_over: window_over || with_c,
        });
        out
    }

    fn page(long: PromDuration) -> PageBurn {
        PageBurn {
            slo: "svc-avail".into(),
            long_window: long,
            short_window: PromDuration::from_mins(5),
            factor: 14.4,
            burn_long: 20.0,
            burn_short: 25.0,
        }
    }

    fn run(
        app: &AppGuard,
        state: &AppGuardState,
        deploys: &[DeployObservation],
        pages: &[PageBurn],
        now: DateTime<Utc>,
    ) -> Decision {
        let reports = [report()];
        let commits: Vec<CommitInfo> = deploys.iter().map(|d| d.deploy.commit.clone()).collect();
        decide(
            app,
            state,
            &Observation {
                reports: &reports,
                commits: &commits,
                trigger: Trigger::Schedule,
                deploys,
                pages,
            },
            now,
        )
    }

    fn reverts(d: &Decision) -> Vec<&RevertRequest> {
        d.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Revert { request, .. } => Some(request),
                _ => None,
            })
            .collect()
    }

    fn actions(d: &Decision) -> Vec<&'static str> {
        d.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Record { action, .. } => Some(*action),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_regression_is_reverted_once_back_to_the_commit_before_it() {
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&['b'], false, false),
            &[],
            t(20),
        );
        let r = reverts(&d);
        assert_eq!(r.len(), 1, "{:?}", d.effects);
        assert_eq!(r[0].known_good.as_deref(), Some("a".repeat(40).as_str()));
        assert_eq!(
            r[0].reason_code.as_deref(),
            Some("post-deploy-verification")
        );
        assert_eq!(
            r[0].breach_id,
            format!("checkout/deploy/{}", "b".repeat(12))
        );
        assert!(r[0]
            .extra_trailers
            .iter()
            .any(|t| t.key == "Slogate-P-Value" && t.value == "1.000e-3"));
        assert_eq!(actions(&d), vec!["deploy-revert"]);
        assert_eq!(d.next.deploys[0].outcome, "reverted");
        // The next run asks for the revert again (same key) until it is done, then never.
        let again = run(
            &app(OnRegression::Revert),
            &d.next,
            &observe(&['b'], false, false),
            &[],
            t(21),
        );
        assert_eq!(reverts(&again)[0].breach_id, r[0].breach_id);
        assert!(actions(&again).is_empty());
        let mut done = d.next.clone();
        done.deploys[0].revert.as_mut().unwrap().outcome = Some("reverted".into());
        let after = run(
            &app(OnRegression::Revert),
            &done,
            &observe(&['b'], false, false),
            &[],
            t(22),
        );
        assert!(after.effects.is_empty(), "{:?}", after.effects);
    }

    #[test]
    fn the_policy_decides_revert_notify_or_nothing() {
        let table: &[(OnRegression, usize, &[&str], bool)] = &[
            (OnRegression::Revert, 1, &["deploy-revert"], false),
            (OnRegression::Notify, 0, &["deploy-regression"], true),
            (OnRegression::Off, 0, &[], false),
        ];
        for &(on, n_reverts, want, notifies) in table {
            let d = run(
                &app(on),
                &AppGuardState::default(),
                &observe(&['b'], false, false),
                &[],
                t(20),
            );
            assert_eq!(reverts(&d).len(), n_reverts, "{on:?}");
            assert_eq!(actions(&d), want, "{on:?}");
            let notified = d.effects.iter().any(|e| matches!(e, Effect::Notify(_)));
            assert_eq!(notified, notifies, "{on:?}");
        }
    }

    #[test]
    fn the_oldest_regressing_deploy_is_reverted_with_the_later_ones() {
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&['b'], true, false),
            &[],
            t(20),
        );
        let r = reverts(&d);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].known_good.as_deref(), Some("a".repeat(40).as_str()));
        let mut outcomes: Vec<(&str, &str)> = d
            .next
            .deploys
            .iter()
            .map(|x| (&x.sha[..1], x.outcome.as_str()))
            .collect();
        outcomes.sort();
        assert_eq!(outcomes, vec![("b", "reverted"), ("c", "reverted")]);
        // Only the newer one regressed: only it is reverted, back to b.
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&['c'], true, false),
            &[],
            t(20),
        );
        assert_eq!(
            reverts(&d)[0].known_good.as_deref(),
            Some("b".repeat(40).as_str())
        );
    }

    #[test]
    fn a_page_reverts_a_deploy_in_its_window_and_otherwise_notifies_once() {
        // A deploy 20 minutes ago, inside the 1h window, no significant regression yet.
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&[], false, false),
            &[page(PromDuration::from_hours(1))],
            t(20),
        );
        let r = reverts(&d);
        assert_eq!(r.len(), 1, "{:?}", d.effects);
        assert_eq!(r[0].reason_code.as_deref(), Some("burn-rate-page"));
        // Two hours later the deploy is outside the 1h window: notify, once per episode.
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&[], false, true),
            &[page(PromDuration::from_hours(1))],
            t(120),
        );
        assert!(reverts(&d).is_empty());
        assert!(actions(&d).contains(&"page-notify"), "{:?}", actions(&d));
        let again = run(
            &app(OnRegression::Revert),
            &d.next,
            &[],
            &[page(PromDuration::from_hours(1))],
            t(121),
        );
        assert!(!actions(&again).contains(&"page-notify"));
        // The page ends: the next one is a new episode.
        let calm = run(&app(OnRegression::Revert), &again.next, &[], &[], t(122));
        assert!(calm.next.paged.is_none());
        // The slow pair's 6h window reaches the deploy.
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&[], false, true),
            &[page(PromDuration::from_hours(6))],
            t(120),
        );
        assert_eq!(reverts(&d).len(), 1);
    }

    #[test]
    fn a_clean_window_makes_the_deploy_known_good() {
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&[], false, true),
            &[],
            t(61),
        );
        assert!(reverts(&d).is_empty());
        assert_eq!(actions(&d), vec!["known-good"]);
        let kg = d.next.known_good.as_ref().unwrap();
        assert_eq!(
            (kg.sha.as_str(), kg.how.as_str()),
            ("b".repeat(40).as_str(), "post-deploy-verification")
        );
        // A deploy whose window a later deploy cut short is superseded, not known-good.
        let d = run(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &observe(&[], true, false),
            &[],
            t(20),
        );
        let b = d
            .next
            .deploys
            .iter()
            .find(|x| x.sha.starts_with('b'))
            .unwrap();
        assert_eq!(b.outcome, "superseded");
        assert!(d.next.known_good.is_none());
    }

    #[test]
    fn a_budget_rollback_comes_first() {
        let mut hot = report();
        hot.budget_consumed = Some(0.97);
        let reports = [hot];
        let deploys = observe(&['b'], false, false);
        let commits: Vec<CommitInfo> = deploys.iter().map(|d| d.deploy.commit.clone()).collect();
        let d = decide(
            &app(OnRegression::Revert),
            &AppGuardState::default(),
            &Observation {
                reports: &reports,
                commits: &commits,
                trigger: Trigger::Schedule,
                deploys: &deploys,
                pages: &[],
            },
            t(20),
        );
        assert_eq!(actions(&d), vec!["rollback"]);
        assert!(d.next.deploys.is_empty());
    }
}
