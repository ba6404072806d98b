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

use super::state::{AppGuardState, Breach, Candidate, KnownGood, Notified, RevertRecord};
use crate::model::commit::{CommitInfo, RevertRequest};
use crate::model::notify::{Incident, Notification, Severity};
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
            track_known_good(app, &mut next, obs, now, &mut effects, &seen);
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
                next.known_good = Some(KnownGood {
                    sha: head.sha.clone(),
                    since: now,
                    how: "soak".into(),
                });
                next.candidate = None;
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
