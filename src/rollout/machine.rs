//! The rollout state machine: `decide(rollout, status, observations, now) -> Decision`.
//!
//! `decide` is a pure function: no clock, no I/O, no randomness. The runtime calls it in a
//! loop, per rollout, from one place (the leader):
//!
//! 1. read the status from the store and gather [`Observations`]: the versions the stable
//!    and canary workloads run, the route's weights, the analysis of the interval that
//!    [`analysis_window`] says is due (queries from [`crate::rollout::checks::plan`], checks
//!    from [`crate::rollout::checks::evaluate`]), operator commands, the completions of the
//!    effects it applied, and whether the error-budget guard froze deliveries;
//! 2. `decide`;
//! 3. **store `next` first** (compare-and-swap), then apply `effects` in order;
//! 4. when `effects` is not empty, call `decide` again right away with their completions;
//!    otherwise wait `requeue_after` (or until a command or a webhook arrives).
//!
//! # Crash safety
//!
//! Every effect whose outcome matters (SetWeights, RevertCanary, CommitPromotion) is listed
//! in [`RolloutStatus::pending`] with an idempotency key (`<ns>/<name>/<attempt>/<seq>-<kind>`)
//! until its completion is observed. Because the status is stored before the effect is
//! applied, a crash anywhere leaves a status that names the effect: the next `decide` issues
//! it again **with the same key**, and the adapters act at most once per key (the GitOps port
//! finds an earlier revert by its `Slogate-Breach` trailer; a route that already holds the
//! target weights counts as done). A failed effect is retried with exponential back-off
//! (5s, 10s, … up to 5m); a revert that keeps failing gives up after
//! [`MAX_REVERT_ATTEMPTS`] and says so. Notify and RecordDecision are issued once.
//!
//! # Rules
//!
//! - **Start.** A canary version that differs from the stable version (and from the version
//!   this status already finished with) starts a rollout at step 0, unless the guard froze
//!   deliveries.
//! - **Steps.** A step advances only after a *full* `interval` at its weight (or its `hold`,
//!   analysed every interval), counted from the moment its weights were confirmed, with a
//!   passing analysis. A restart resumes at the same step and `requeue_after` is the time
//!   left in the interval; the hold's end follows from `since` in the status (also stored as
//!   `holdUntil`). Analysis windows that start before the step or overlap the last judged
//!   window are ignored, so no step is ever taken early. A step's deadline is
//!   `progressDeadline` beyond its hold.
//! - **Header steps** set weight 0 and a header route to the canary (one routing write);
//!   the next weighted step, the promotion and an abort remove it. The header route is part
//!   of manual-change detection like the weights.
//! - **Failure.** More than `failureLimit` failed intervals, more than `inconclusiveLimit`
//!   inconclusive ones, a decisive failure (the sequential error-count test rejecting), or a
//!   step not done by its `progressDeadline` ⇒ Aborting: weights to 0 (written
//!   unconditionally), the canary's GitOps commit reverted, a critical notification; then
//!   Failed once both are done.
//! - **New version.** A new canary version during a rollout restarts it at step 0 (a new
//!   attempt: counters and the sequential test start over).
//! - **Approval.** With `approval`, passing the step before 100% waits for an approval
//!   (analysis goes on); at the deadline `onDeadline: abort` aborts and `hold` holds and
//!   notifies.
//! - **Promotion.** A passing interval at 100% ⇒ Promoting: commit the canary version as
//!   stable; once stable runs it, weights go back to stable ⇒ Succeeded. A promotion not done
//!   by `progressDeadline` is paused and reported (never aborted: the canary was healthy).
//! - **Guard freeze.** Nothing starts and no step advances while frozen; analysis and
//!   failure handling go on, and operators' commands are honoured.
//! - **Manual weights.** Weights found different from the last ones slogate set (with no
//!   write of its own pending) pause the rollout with the numbers in the reason; they are
//!   not overwritten. `resume` writes slogate's weights back.
//! - **Commands** (promote, abort, pause, resume, approve, each with its actor) apply where
//!   they make sense and are otherwise rejected with a reason ([`Decision::rejected`]).
//!   Each command id is handled once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::spec::{OnDeadline, Rollout};
use super::status::{
    AnalysisSummary, PausedFrom, PendingEffect, PendingKind, Phase, PhaseName, RolloutStatus,
    Verdict,
};
use crate::model::notify::Severity;
use crate::model::traffic::{HeaderMatch, Routing, Weights};
use crate::rollout::checks::{self, AnalysisWindow, IntervalObservation, Versions};
use crate::slo::PromDuration;

/// A revert is given up after this many failed attempts (and reported).
pub const MAX_REVERT_ATTEMPTS: u32 = 5;
/// Operator command ids remembered in the status to handle each once.
const HANDLED_COMMANDS_KEPT: usize = 32;

/// What the runtime saw since the last `decide`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    /// The version the canary workload runs (its pods' version label), when known.
    #[serde(default)]
    pub canary_version: Option<String>,
    /// The version the stable workload runs, when known.
    #[serde(default)]
    pub stable_version: Option<String>,
    /// The route's weights as read now, when read.
    #[serde(default)]
    pub weights: Option<Weights>,
    /// slogate's header route on the route as read now (with `weights`; `None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_match: Option<HeaderMatch>,
    /// The analysis of the interval [`analysis_window`] asked for.
    #[serde(default)]
    pub analysis: Option<IntervalObservation>,
    /// Operator commands, oldest first.
    #[serde(default)]
    pub commands: Vec<OperatorCommand>,
    /// Completions of effects applied since the last `decide`.
    #[serde(default)]
    pub completions: Vec<EffectCompletion>,
    /// Set when the error-budget guard froze deliveries: the reason.
    #[serde(default)]
    pub freeze: Option<String>,
}

/// An operator's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorCommand {
    /// Unique id; a command is handled once even when delivered again.
    pub id: String,
    pub action: CommandAction,
    /// Who asked (user name, token subject).
    pub actor: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandAction {
    Promote,
    Abort,
    Pause,
    Resume,
    Approve,
}

impl CommandAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandAction::Promote => "promote",
            CommandAction::Abort => "abort",
            CommandAction::Pause => "pause",
            CommandAction::Resume => "resume",
            CommandAction::Approve => "approve",
        }
    }
}

/// How an effect ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectCompletion {
    /// The effect's key.
    pub key: String,
    /// When it ended (the runtime's clock).
    pub at: DateTime<Utc>,
    pub outcome: EffectOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum EffectOutcome {
    /// SetWeights: written and read back.
    WeightsSet { weights: Weights },
    /// SetWeights: not written because the route held other weights (or another header
    /// route) than expected.
    ManualChange {
        found: Weights,
        /// slogate's header route found on the route.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header_match: Option<HeaderMatch>,
    },
    /// RevertCanary: reverted (or already reverted, or nothing to revert, or a pull request
    /// was opened); `sha` of the revert commit when there is one.
    Reverted {
        #[serde(default)]
        sha: Option<String>,
        detail: String,
    },
    /// RevertCanary: the revert conflicts; nothing was pushed.
    RevertConflict { detail: String },
    /// CommitPromotion: pushed (or the manifest already had the version).
    PromotionCommitted { sha: String },
    /// Any effect: it failed and may be retried.
    Failed { error: String },
}

/// Something for the runtime to do. Keys make every effect idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "camelCase")]
pub enum Effect {
    /// Set the route's weights. `expected`: what the route must hold for the write to go
    /// ahead (`None`: write unconditionally). A route that already holds `weights` counts as
    /// done.
    SetWeights {
        key: String,
        weights: Weights,
        expected: Option<Weights>,
        /// The header route to set ahead of the weighted one (a header step); `None`
        /// removes slogate's header route if there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header_match: Option<HeaderMatch>,
        /// The header route the route must hold (with `expected`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_header_match: Option<HeaderMatch>,
    },
    /// Revert the GitOps commit that introduced `version` under the app's path
    /// (`key` is the revert's idempotency key, the GitOps port's `breach_id`).
    RevertCanary {
        key: String,
        app: String,
        path: String,
        version: String,
        reason: String,
    },
    /// Commit `version` as the stable workload's version under the app's path.
    CommitPromotion {
        key: String,
        app: String,
        path: String,
        version: String,
    },
    /// Tell humans.
    Notify {
        key: String,
        severity: Severity,
        title: String,
        text: String,
    },
    /// Append to the decision log.
    RecordDecision {
        key: String,
        /// `start`, `step`, `hold`, `wait-approval`, `approve`, `promote`, `promoted`,
        /// `abort`, `failed`, `pause`, `resume`, `restart`, `refuse`, `analysis`, `retry`…
        action: String,
        reason: String,
        #[serde(default)]
        actor: Option<String>,
        observed: serde_json::Value,
    },
}

impl Effect {
    /// SetWeights: the routing to set and the routing expected on the route.
    pub fn routing(&self) -> Option<(Routing, Option<Routing>)> {
        let Effect::SetWeights {
            weights,
            expected,
            header_match,
            expected_header_match,
            ..
        } = self
        else {
            return None;
        };
        Some((
            Routing {
                weights: *weights,
                header_match: header_match.clone(),
            },
            expected.map(|w| Routing {
                weights: w,
                header_match: expected_header_match.clone(),
            }),
        ))
    }

    pub fn key(&self) -> &str {
        match self {
            Effect::SetWeights { key, .. }
            | Effect::RevertCanary { key, .. }
            | Effect::CommitPromotion { key, .. }
            | Effect::Notify { key, .. }
            | Effect::RecordDecision { key, .. } => key,
        }
    }
}

/// A command that was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub id: String,
    pub action: CommandAction,
    pub actor: String,
    pub reason: String,
}

/// The outcome of one `decide`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Store this before applying `effects`.
    pub next: RolloutStatus,
    pub effects: Vec<Effect>,
    /// When to call `decide` again if nothing happens before.
    pub requeue_after: Duration,
    /// Commands that were refused, with why.
    pub rejected: Vec<Rejection>,
    /// Observations that were ignored (a stale analysis window…), for the logs.
    pub notes: Vec<String>,
}

/// The analysis window due now, if any: `[now − interval, now]` once a full interval has
/// passed since the step's weights took effect and since the last judged window. `None`
/// outside Progressing and WaitingForApproval and while a weight change is pending.
pub fn analysis_window(
    rollout: &Rollout,
    status: &RolloutStatus,
    now: DateTime<Utc>,
) -> Option<AnalysisWindow> {
    let interval = chrono_duration(rollout.spec.interval);
    let due = next_analysis_due(rollout, status)?;
    (now >= due).then(|| AnalysisWindow {
        start: now - interval,
        end: now,
    })
}

/// Time left at the current step before it may advance: its hold (or one interval) counted
/// from the moment its weights took effect. `None` outside Progressing; zero once the hold
/// has passed (the step then advances with the next passing interval).
pub fn step_remaining(
    rollout: &Rollout,
    status: &RolloutStatus,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let Phase::Progressing { step, since, .. } = status.phase else {
        return None;
    };
    let end = since + chrono_duration(rollout.spec.step_hold(step as usize));
    Some(std_duration(end - now))
}

/// The versions to analyse (from the status: canary under rollout, stable at its start).
pub fn versions(status: &RolloutStatus) -> Option<Versions> {
    Some(Versions {
        canary: status.canary_version.clone()?,
        stable: status.stable_version.clone()?,
    })
}

/// Earliest start of the next analysis window.
fn analysis_floor(status: &RolloutStatus) -> Option<DateTime<Utc>> {
    if status.has_pending(PendingKind::SetWeights) {
        return None;
    }
    let since = match &status.phase {
        Phase::Progressing { since, .. } | Phase::WaitingForApproval { since, .. } => *since,
        _ => return None,
    };
    let last = status.last_analysis.as_ref().map(|a| a.window_end);
    Some(last.filter(|l| *l > since).unwrap_or(since))
}

fn next_analysis_due(rollout: &Rollout, status: &RolloutStatus) -> Option<DateTime<Utc>> {
    Some(analysis_floor(status)? + chrono_duration(rollout.spec.interval))
}

fn chrono_duration(d: PromDuration) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
}

fn std_duration(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

/// `23h59m30s`, whole seconds.
fn human(d: chrono::Duration) -> String {
    PromDuration::from_secs(u64::try_from(d.num_seconds()).unwrap_or(0)).to_string()
}

/// Back-off before retry `attempts` (1-based): 5s, 10s, 20s… capped at 5m.
fn backoff(attempts: u32) -> chrono::Duration {
    let secs = 5u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(10));
    chrono::Duration::seconds(secs.min(300) as i64)
}

/// Decide what to do next. See the module docs for the rules.
pub fn decide(
    rollout: &Rollout,
    status: &RolloutStatus,
    obs: &Observations,
    now: DateTime<Utc>,
) -> Decision {
    let mut m = Machine {
        r: rollout,
        now,
        s: status.clone(),
        effects: Vec::new(),
        rejected: Vec::new(),
        notes: Vec::new(),
        issued: Vec::new(),
    };
    m.clamp_step();
    m.apply_completions(obs);
    m.apply_commands(obs);
    m.check_versions(obs);
    m.check_manual_weights(obs);
    m.progress(obs);
    m.reissue_pending();
    m.finish()
}

struct Machine<'a> {
    r: &'a Rollout,
    now: DateTime<Utc>,
    s: RolloutStatus,
    effects: Vec<Effect>,
    rejected: Vec<Rejection>,
    notes: Vec<String>,
    /// Keys issued in this call (not to be issued twice).
    issued: Vec<String>,
}

impl Machine<'_> {
    // ---- helpers --------------------------------------------------------------------------

    fn key(&mut self, kind: &str) -> String {
        self.s.seq += 1;
        format!("{}/{}/{}-{kind}", self.r.key(), self.s.attempt, self.s.seq)
    }

    fn interval(&self) -> chrono::Duration {
        chrono_duration(self.r.spec.interval)
    }

    fn progress_deadline(&self) -> DateTime<Utc> {
        self.now + chrono_duration(self.r.spec.progress_deadline)
    }

    /// Deadline of step `step` starting now: `progressDeadline` beyond its hold.
    fn step_deadline(&self, step: u32) -> DateTime<Utc> {
        let hold = self
            .r
            .spec
            .step(step as usize)
            .and_then(|s| s.hold)
            .map(chrono_duration)
            .unwrap_or_else(chrono::Duration::zero);
        self.progress_deadline() + hold
    }

    /// Set the routing of step `step` (its weight, or weight 0 and its header route),
    /// guarded by what slogate last set.
    fn set_step(&mut self, step: u32) {
        let weight = self.r.spec.step_weight(step as usize);
        let header = self.r.spec.step_match(step as usize).cloned();
        let expected = self.s.routing();
        self.set_routing(weight, header, expected);
    }

    fn steps(&self) -> usize {
        self.r.spec.steps.len()
    }

    fn step_label(&self, step: u32) -> String {
        match self.r.spec.step_match(step as usize) {
            Some(m) => format!(
                "step {}/{} (header {})",
                step + 1,
                self.steps(),
                m.describe()
            ),
            None => format!(
                "step {}/{} ({}%)",
                step + 1,
                self.steps(),
                self.r.spec.step_weight(step as usize)
            ),
        }
    }

    fn transition(&mut self, phase: Phase, reason: impl Into<String>) {
        if phase.name() != self.s.phase.name() {
            self.s.last_transition_time = Some(self.now);
        }
        self.s.phase = phase;
        self.s.reason = reason.into();
    }

    fn observed(&self) -> serde_json::Value {
        json!({
            "phase": self.s.phase.name(),
            "step": self.s.phase.step(),
            "weights": self.s.weights,
            "canaryVersion": self.s.canary_version,
            "stableVersion": self.s.stable_version,
            "failures": self.s.failures,
            "inconclusive": self.s.inconclusive,
            "passes": self.s.passes,
            "pValue": self.s.p_value,
        })
    }

    fn record(
        &mut self,
        action: &str,
        reason: &str,
        actor: Option<&str>,
        extra: Option<serde_json::Value>,
    ) {
        let mut observed = self.observed();
        if let (Some(extra), Some(obj)) = (extra, observed.as_object_mut()) {
            obj.insert("details".into(), extra);
        }
        let key = self.key("record");
        self.effects.push(Effect::RecordDecision {
            key,
            action: action.to_string(),
            reason: reason.to_string(),
            actor: actor.map(str::to_string),
            observed,
        });
    }

    fn notify(&mut self, severity: Severity, title: String, text: String) {
        let key = self.key("notify");
        self.effects.push(Effect::Notify {
            key,
            severity,
            title,
            text,
        });
    }

    /// Issue a weight change with no header route; it replaces any weight change still
    /// pending.
    fn set_weights(&mut self, canary: u32, expected: Option<Routing>) {
        self.set_routing(canary, None, expected);
    }

    /// Issue a routing change (weights and header route); it replaces any routing change
    /// still pending.
    fn set_routing(&mut self, canary: u32, header: Option<HeaderMatch>, expected: Option<Routing>) {
        self.s.pending.retain(|p| p.kind != PendingKind::SetWeights);
        let weights = Weights::canary(canary);
        let key = self.key("set-weights");
        let (expected, expected_header_match) = match expected {
            Some(r) => (Some(r.weights), r.header_match),
            None => (None, None),
        };
        self.s.pending.push(PendingEffect {
            key: key.clone(),
            kind: PendingKind::SetWeights,
            weights: Some(weights),
            expected,
            header_match: header.clone(),
            expected_header_match: expected_header_match.clone(),
            version: None,
            reason: None,
            issued_at: self.now,
            attempts: 0,
            retry_at: None,
            last_error: None,
        });
        self.issued.push(key.clone());
        self.effects.push(Effect::SetWeights {
            key,
            weights,
            expected,
            header_match: header,
            expected_header_match,
        });
    }

    fn issue_revert(&mut self, reason: &str) {
        let Some(version) = self.s.canary_version.clone() else {
            return;
        };
        let key = self.key("revert");
        self.s.pending.push(PendingEffect {
            key: key.clone(),
            kind: PendingKind::RevertCanary,
            weights: None,
            expected: None,
            header_match: None,
            expected_header_match: None,
            version: Some(version),
            reason: Some(reason.to_string()),
            issued_at: self.now,
            attempts: 0,
            retry_at: None,
            last_error: None,
        });
        // Emitted by reissue_pending() with everything else pending, after the weights.
    }

    fn issue_promotion(&mut self) {
        let Some(version) = self.s.canary_version.clone() else {
            return;
        };
        self.s
            .pending
            .retain(|p| p.kind != PendingKind::CommitPromotion);
        let key = self.key("promote");
        self.s.pending.push(PendingEffect {
            key,
            kind: PendingKind::CommitPromotion,
            weights: None,
            expected: None,
            header_match: None,
            expected_header_match: None,
            version: Some(version),
            reason: None,
            issued_at: self.now,
            attempts: 0,
            retry_at: None,
            last_error: None,
        });
    }

    fn effect_of(&self, p: &PendingEffect) -> Option<Effect> {
        let g = &self.r.spec.gitops;
        Some(match p.kind {
            PendingKind::SetWeights => Effect::SetWeights {
                key: p.key.clone(),
                weights: p.weights?,
                expected: p.expected,
                header_match: p.header_match.clone(),
                expected_header_match: p.expected_header_match.clone(),
            },
            PendingKind::RevertCanary => Effect::RevertCanary {
                key: p.key.clone(),
                app: g.app.clone(),
                path: g.path.clone(),
                version: p.version.clone()?,
                reason: p.reason.clone().unwrap_or_default(),
            },
            PendingKind::CommitPromotion => Effect::CommitPromotion {
                key: p.key.clone(),
                app: g.app.clone(),
                path: g.path.clone(),
                version: p.version.clone()?,
            },
        })
    }

    fn clamp_step(&mut self) {
        let last = self.steps().saturating_sub(1) as u32;
        match &mut self.s.phase {
            Phase::Progressing { step, .. } | Phase::WaitingForApproval { step, .. } => {
                *step = (*step).min(last)
            }
            Phase::Paused {
                step: Some(step), ..
            } => *step = (*step).min(last),
            _ => {}
        }
    }

    // ---- completions -----------------------------------------------------------------------

    fn apply_completions(&mut self, obs: &Observations) {
        for c in &obs.completions {
            let Some(idx) = self.s.pending.iter().position(|p| p.key == c.key) else {
                self.notes
                    .push(format!("completion of {} ignored: not pending", c.key));
                continue;
            };
            let p = self.s.pending[idx].clone();
            match (&c.outcome, p.kind) {
                (EffectOutcome::WeightsSet { weights }, PendingKind::SetWeights) => {
                    self.s.pending.remove(idx);
                    self.weights_confirmed(
                        Routing {
                            weights: *weights,
                            header_match: p.header_match.clone(),
                        },
                        c.at,
                    );
                }
                (
                    EffectOutcome::ManualChange {
                        found,
                        header_match,
                    },
                    PendingKind::SetWeights,
                ) => {
                    self.s.pending.remove(idx);
                    let found = Routing {
                        weights: *found,
                        header_match: header_match.clone(),
                    };
                    let target = p.weights.map(|weights| Routing {
                        weights,
                        header_match: p.header_match.clone(),
                    });
                    if target.as_ref().is_some_and(|t| t.same(&found)) {
                        // The route already holds the target: an earlier attempt landed.
                        self.weights_confirmed(found, c.at);
                    } else if matches!(self.s.phase, Phase::Aborting { .. }) {
                        // Aborting writes unconditionally; try again without a guard.
                        self.set_routing(
                            p.weights.map(|w| w.canary).unwrap_or(0),
                            p.header_match.clone(),
                            None,
                        );
                    } else {
                        let expected = p.expected.map(|weights| Routing {
                            weights,
                            header_match: p.expected_header_match.clone(),
                        });
                        self.manual_change(expected, found);
                    }
                }
                (EffectOutcome::Reverted { sha, detail }, PendingKind::RevertCanary) => {
                    self.s.pending.remove(idx);
                    self.s.revert_commit = sha.clone();
                    let text = match sha {
                        Some(sha) => format!("reverted in {sha} ({detail})"),
                        None => detail.clone(),
                    };
                    self.s.reason = format!("{}; revert: {text}", self.s.reason);
                    self.record("reverted", &text, None, None);
                }
                (EffectOutcome::RevertConflict { detail }, PendingKind::RevertCanary) => {
                    self.s.pending.remove(idx);
                    let text = format!(
                        "the revert conflicts, nothing was pushed: {detail}; revert by hand"
                    );
                    self.s.reason = format!("{}; {text}", self.s.reason);
                    self.record("revert-conflict", &text, None, None);
                    self.notify(
                        Severity::Critical,
                        format!("Rollout {}: revert of the canary conflicts", self.r.key()),
                        text,
                    );
                }
                (EffectOutcome::PromotionCommitted { sha }, PendingKind::CommitPromotion) => {
                    self.s.pending.remove(idx);
                    self.s.promotion_commit = Some(sha.clone());
                    let reason = format!("promotion committed in {sha}");
                    self.record("promotion-committed", &reason, None, None);
                }
                (EffectOutcome::Failed { error }, _) => self.effect_failed(idx, error, c.at),
                (other, kind) => {
                    self.notes.push(format!(
                        "completion {other:?} does not fit the pending {kind:?} effect {}; ignored",
                        c.key
                    ));
                }
            }
        }
    }

    fn weights_confirmed(&mut self, routing: Routing, at: DateTime<Utc>) {
        self.s.weights = Some(routing.weights);
        self.s.header_match = routing.header_match;
        // The step's interval counts from the moment its weights took effect.
        if let Phase::Progressing { since, .. } = &mut self.s.phase {
            *since = at.min(self.now);
        }
    }

    fn effect_failed(&mut self, idx: usize, error: &str, at: DateTime<Utc>) {
        let attempts = self.s.pending[idx].attempts + 1;
        let kind = self.s.pending[idx].kind;
        let key = self.s.pending[idx].key.clone();
        if kind == PendingKind::RevertCanary && attempts >= MAX_REVERT_ATTEMPTS {
            self.s.pending.remove(idx);
            let text = format!(
                "the revert failed {attempts} times and was given up: {error}; revert the canary commit by hand"
            );
            self.s.reason = format!("{}; {text}", self.s.reason);
            self.record("revert-failed", &text, None, None);
            self.notify(
                Severity::Critical,
                format!("Rollout {}: revert failed", self.r.key()),
                text,
            );
            return;
        }
        let p = &mut self.s.pending[idx];
        p.attempts = attempts;
        p.retry_at = Some(at.max(self.now) + backoff(attempts));
        p.last_error = Some(error.to_string());
        let text = format!("{kind:?} {key} failed (attempt {attempts}): {error}; retrying");
        self.record("retry", &text, None, None);
        if attempts == 3 {
            self.notify(
                Severity::Warning,
                format!("Rollout {}: {kind:?} keeps failing", self.r.key()),
                text,
            );
        }
    }

    fn manual_change(&mut self, expected: Option<Routing>, found: Routing) {
        let Some(from) = self.pause_origin() else {
            return;
        };
        let step = self.s.phase.step();
        let expected_text = expected
            .or(self.s.routing())
            .map(|r| r.describe())
            .unwrap_or_else(|| "slogate's weights".into());
        let reason = format!(
            "weights changed outside slogate: expected {expected_text}, found {}; paused without overwriting them (resume to restore slogate's weights)",
            found.describe()
        );
        self.transition(
            Phase::Paused {
                from,
                step,
                since: self.now,
            },
            reason.clone(),
        );
        self.record(
            "pause",
            &reason,
            None,
            Some(json!({"found": found.weights, "foundHeaderMatch": found.header_match})),
        );
        self.notify(
            Severity::Warning,
            format!("Rollout {} paused: weights changed by hand", self.r.key()),
            reason,
        );
    }

    /// The phase a pause would return to, for the phases that can be paused.
    fn pause_origin(&self) -> Option<PausedFrom> {
        match self.s.phase {
            Phase::Progressing { .. } => Some(PausedFrom::Progressing),
            Phase::WaitingForApproval { .. } => Some(PausedFrom::WaitingForApproval),
            Phase::Promoting { .. } => Some(PausedFrom::Promoting),
            _ => None,
        }
    }

    // ---- commands --------------------------------------------------------------------------

    fn apply_commands(&mut self, obs: &Observations) {
        for cmd in &obs.commands {
            if self.s.handled_commands.contains(&cmd.id) {
                self.notes
                    .push(format!("command {} already handled; ignored", cmd.id));
                continue;
            }
            self.s.handled_commands.push(cmd.id.clone());
            let excess = self
                .s
                .handled_commands
                .len()
                .saturating_sub(HANDLED_COMMANDS_KEPT);
            self.s.handled_commands.drain(..excess);
            if let Err(why) = self.apply_command(cmd, obs) {
                let reason = format!("{} by {} refused: {why}", cmd.action.as_str(), cmd.actor);
                self.record(
                    "refuse",
                    &reason,
                    Some(&cmd.actor),
                    Some(json!({"command": cmd.action.as_str(), "id": cmd.id})),
                );
                self.rejected.push(Rejection {
                    id: cmd.id.clone(),
                    action: cmd.action,
                    actor: cmd.actor.clone(),
                    reason: why,
                });
            }
        }
    }

    fn apply_command(&mut self, cmd: &OperatorCommand, obs: &Observations) -> Result<(), String> {
        let phase = self.s.phase.name();
        let by = match &cmd.reason {
            Some(r) => format!("by {}: {r}", cmd.actor),
            None => format!("by {}", cmd.actor),
        };
        let actor = Some(cmd.actor.as_str());
        match cmd.action {
            CommandAction::Approve => {
                let Phase::WaitingForApproval { step, .. } = self.s.phase else {
                    return Err(format!(
                        "the rollout is not waiting for approval (phase {phase})"
                    ));
                };
                let next = step + 1;
                let reason = format!("approved {by}: {} starts", self.step_label(next));
                self.set_step(next);
                self.transition(
                    Phase::Progressing {
                        step: next,
                        since: self.now,
                        deadline: self.step_deadline(next),
                    },
                    reason.clone(),
                );
                self.record("approve", &reason, actor, None);
                Ok(())
            }
            CommandAction::Promote => {
                match self.s.phase {
                    Phase::Progressing { .. }
                    | Phase::WaitingForApproval { .. }
                    | Phase::Paused {
                        from: PausedFrom::Progressing | PausedFrom::WaitingForApproval,
                        ..
                    } => {}
                    Phase::Paused {
                        from: PausedFrom::Promoting,
                        ..
                    }
                    | Phase::Promoting { .. } => {
                        return Err("the promotion is already under way".into())
                    }
                    _ => return Err(format!("no rollout to promote (phase {phase})")),
                }
                let reason = format!(
                    "promotion of {} ordered {by}, skipping the remaining analysis",
                    self.s.canary_version.as_deref().unwrap_or("the canary")
                );
                self.enter_promoting(&reason, actor);
                Ok(())
            }
            CommandAction::Abort => {
                match self.s.phase {
                    Phase::Progressing { .. }
                    | Phase::WaitingForApproval { .. }
                    | Phase::Paused {
                        from: PausedFrom::Progressing | PausedFrom::WaitingForApproval,
                        ..
                    } => {}
                    Phase::Promoting { .. } | Phase::Paused { from: PausedFrom::Promoting, .. } => {
                        return Err("the canary version is being committed as stable; revert the promotion commit in Git instead".into())
                    }
                    Phase::Aborting { .. } => return Err("the rollout is already aborting".into()),
                    _ => return Err(format!("no rollout to abort (phase {phase})")),
                }
                self.abort(&format!("aborted {by}"), actor, true);
                Ok(())
            }
            CommandAction::Pause => {
                let Some(from) = self.pause_origin() else {
                    return Err(format!("nothing to pause (phase {phase})"));
                };
                let reason = format!("paused {by}");
                let step = self.s.phase.step();
                self.transition(
                    Phase::Paused {
                        from,
                        step,
                        since: self.now,
                    },
                    reason.clone(),
                );
                self.record("pause", &reason, actor, None);
                Ok(())
            }
            CommandAction::Resume => {
                let Phase::Paused { from, step, .. } = self.s.phase.clone() else {
                    return Err(format!("the rollout is not paused (phase {phase})"));
                };
                // Write slogate's routing back if the route holds another (or is unknown).
                if let Some(mine) = self.s.routing() {
                    let seen = obs.weights.map(|weights| Routing {
                        weights,
                        header_match: obs.header_match.clone(),
                    });
                    if !seen.as_ref().is_some_and(|s| s.same(&mine)) {
                        self.set_routing(mine.weights.canary, mine.header_match, seen);
                    }
                }
                let reason = format!("resumed {by}");
                let phase = match from {
                    PausedFrom::Progressing => Phase::Progressing {
                        step: step.unwrap_or(0),
                        since: self.now,
                        deadline: self.step_deadline(step.unwrap_or(0)),
                    },
                    PausedFrom::WaitingForApproval => Phase::WaitingForApproval {
                        step: step.unwrap_or(0),
                        since: self.now,
                        deadline: self.approval_deadline(),
                        held: false,
                    },
                    PausedFrom::Promoting => {
                        if self.s.promotion_commit.is_none()
                            && !self.s.has_pending(PendingKind::CommitPromotion)
                        {
                            self.issue_promotion();
                        }
                        Phase::Promoting {
                            since: self.now,
                            deadline: self.progress_deadline(),
                        }
                    }
                };
                self.transition(phase, reason.clone());
                self.record("resume", &reason, actor, None);
                Ok(())
            }
        }
    }

    fn approval_deadline(&self) -> DateTime<Utc> {
        let d = self
            .r
            .spec
            .approval
            .as_ref()
            .map(|a| a.deadline)
            .unwrap_or(PromDuration::from_hours(1));
        self.now + chrono_duration(d)
    }

    // ---- versions and weights --------------------------------------------------------------

    fn check_versions(&mut self, obs: &Observations) {
        let (Some(canary), Some(stable)) = (&obs.canary_version, &obs.stable_version) else {
            return;
        };
        match &self.s.phase {
            Phase::Pending | Phase::Succeeded { .. } | Phase::Failed { .. } => {
                let done_with = self.s.canary_version.as_ref() == Some(canary)
                    && !matches!(self.s.phase, Phase::Pending);
                if canary == stable || done_with {
                    return;
                }
                if let Some(why) = &obs.freeze {
                    let reason = format!(
                        "canary {canary} waits: deliveries are frozen by the error-budget guard: {why}"
                    );
                    if self.s.reason != reason || self.s.phase != Phase::Pending {
                        self.transition(Phase::Pending, reason.clone());
                        self.record("hold", &reason, None, None);
                    }
                    return;
                }
                self.start(canary, stable, "start");
            }
            Phase::Progressing { .. }
            | Phase::WaitingForApproval { .. }
            | Phase::Paused { .. }
            | Phase::Promoting { .. } => {
                let current = self.s.canary_version.clone();
                if current.as_ref() == Some(canary) {
                    return;
                }
                if canary == stable {
                    // Promoting: stable and canary both run the new version is success, handled
                    // in progress(); here the canary went back to the stable version.
                    let reason = format!(
                        "the canary now runs the stable version {stable} (changed outside slogate): rollout of {} ended, traffic back to stable",
                        current.as_deref().unwrap_or("?")
                    );
                    self.abort(&reason, None, false);
                    return;
                }
                if let Some(why) = &obs.freeze {
                    let reason = format!(
                        "new canary version {canary} replaced {} during the rollout; it waits: deliveries are frozen by the error-budget guard: {why}",
                        current.as_deref().unwrap_or("?")
                    );
                    self.s.pending.clear();
                    self.set_weights(0, self.s.routing());
                    self.s.canary_version = None;
                    self.transition(Phase::Pending, reason.clone());
                    self.record("hold", &reason, None, None);
                    return;
                }
                self.start(canary, stable, "restart");
            }
            Phase::Aborting { .. } => {}
        }
    }

    fn start(&mut self, canary: &str, stable: &str, action: &str) {
        let previous = self.s.canary_version.clone();
        self.s.attempt += 1;
        self.s.seq = 0;
        self.s.canary_version = Some(canary.to_string());
        self.s.stable_version = Some(stable.to_string());
        self.s.failures = 0;
        self.s.inconclusive = 0;
        self.s.passes = 0;
        self.s.last_analysis = None;
        self.s.count_batches.clear();
        self.s.metric_differences.clear();
        self.s.p_value = None;
        self.s.pending.clear();
        self.s.promotion_commit = None;
        self.s.revert_commit = None;
        self.set_step(0);
        let reason = match (action, previous) {
            ("restart", Some(p)) => format!(
                "new canary version {canary} replaced {p} during the rollout: analysis restarts at {}",
                self.step_label(0)
            ),
            _ => format!(
                "rollout of {canary} (stable {stable}) started at {}",
                self.step_label(0)
            ),
        };
        self.transition(
            Phase::Progressing {
                step: 0,
                since: self.now,
                deadline: self.step_deadline(0),
            },
            reason.clone(),
        );
        self.record(action, &reason, None, None);
        self.notify(
            Severity::Info,
            format!(
                "Rollout {}: {canary} {}",
                self.r.key(),
                if action == "restart" {
                    "restarted"
                } else {
                    "started"
                }
            ),
            reason,
        );
    }

    fn check_manual_weights(&mut self, obs: &Observations) {
        let (Some(seen), Some(mine)) = (obs.weights, self.s.routing()) else {
            return;
        };
        let seen = Routing {
            weights: seen,
            header_match: obs.header_match.clone(),
        };
        if self.s.has_pending(PendingKind::SetWeights) {
            // A write of ours is in flight: a route already holding its target confirms it.
            let target = self
                .s
                .pending
                .iter()
                .find(|p| p.kind == PendingKind::SetWeights)
                .and_then(|p| {
                    Some(Routing {
                        weights: p.weights?,
                        header_match: p.header_match.clone(),
                    })
                });
            if target.is_some_and(|t| t.same(&seen)) {
                self.s.pending.retain(|p| p.kind != PendingKind::SetWeights);
                self.weights_confirmed(seen, self.now);
            }
            return;
        }
        if !seen.same(&mine) && self.pause_origin().is_some() {
            self.manual_change(Some(mine), seen);
        }
    }

    // ---- phases ----------------------------------------------------------------------------

    fn progress(&mut self, obs: &Observations) {
        match self.s.phase.clone() {
            Phase::Progressing { step, deadline, .. } => {
                if let Some(a) = &obs.analysis {
                    self.analyse(a, obs, step, true);
                }
                if let Phase::Progressing { step: s2, .. } = self.s.phase {
                    if s2 == step && self.now >= deadline {
                        let reason = format!(
                            "{} did not complete within progressDeadline {}",
                            self.step_label(step),
                            self.r.spec.progress_deadline
                        );
                        self.abort(&reason, None, true);
                    }
                }
            }
            Phase::WaitingForApproval {
                step,
                deadline,
                held,
                ..
            } => {
                if let Some(a) = &obs.analysis {
                    self.analyse(a, obs, step, false);
                }
                if !held
                    && self.now >= deadline
                    && matches!(self.s.phase, Phase::WaitingForApproval { .. })
                {
                    let on = self
                        .r
                        .spec
                        .approval
                        .as_ref()
                        .map(|a| a.on_deadline)
                        .unwrap_or_default();
                    match on {
                        OnDeadline::Abort => self.abort(
                            "no approval before the approval deadline (onDeadline: abort)",
                            None,
                            true,
                        ),
                        OnDeadline::Hold => {
                            let reason = format!(
                                "no approval before the approval deadline: held at {} until an operator approves or aborts (onDeadline: hold)",
                                self.step_label(step)
                            );
                            if let Phase::WaitingForApproval { held, .. } = &mut self.s.phase {
                                *held = true;
                            }
                            self.s.reason = reason.clone();
                            self.record("hold", &reason, None, None);
                            self.notify(
                                Severity::Warning,
                                format!("Rollout {}: approval deadline passed", self.r.key()),
                                reason,
                            );
                        }
                    }
                }
            }
            Phase::Promoting { deadline, .. } => self.promoting(obs, deadline),
            Phase::Aborting { .. } => {
                if self.s.pending.is_empty() {
                    let reason = self.s.reason.clone();
                    self.transition(Phase::Failed { since: self.now }, reason.clone());
                    self.record("failed", &reason, None, None);
                    self.notify(
                        Severity::Warning,
                        format!("Rollout {} failed", self.r.key()),
                        reason,
                    );
                }
            }
            Phase::Pending
            | Phase::Paused { .. }
            | Phase::Succeeded { .. }
            | Phase::Failed { .. } => {
                if matches!(self.s.phase, Phase::Pending) && self.s.reason.is_empty() {
                    self.s.reason =
                        "waiting for a canary version that differs from the stable version".into();
                }
                if obs.analysis.is_some() {
                    self.notes
                        .push(format!("analysis ignored: phase {}", self.s.phase.name()));
                }
            }
        }
    }

    fn analyse(
        &mut self,
        a: &IntervalObservation,
        obs: &Observations,
        step: u32,
        may_advance: bool,
    ) {
        let Some(floor) = analysis_floor(&self.s) else {
            self.notes
                .push("analysis ignored: a weight change is pending".into());
            return;
        };
        let w = a.window;
        if w.start < floor || w.end > self.now || w.end - w.start < self.interval() {
            self.notes.push(format!(
                "analysis window {} to {} ignored: expected a full interval ({}) starting at or after {floor} and ending by now",
                w.start, w.end, self.r.spec.interval
            ));
            return;
        }
        let spec = &self.r.spec;
        let mut checks_run = a.checks.clone();
        if let Some(cfg) = &spec.analysis.error_counts {
            let batch = a.error_counts.as_ref().and_then(checks::count_batch);
            let requests = a
                .error_counts
                .map(|c| c.canary_requests)
                .or(a.canary_requests)
                .unwrap_or(0.0);
            let r =
                checks::check_error_counts(cfg, &self.s.count_batches, batch.as_ref(), requests);
            if let Some(b) = batch {
                self.s.count_batches.push(b);
            }
            if let Some(p) = r.p_value {
                self.s.p_value = Some(self.s.p_value.map_or(p, |q| q.min(p)));
            }
            checks_run.push(r);
        }
        for m in &spec.analysis.metrics {
            let Some((cfg, direction)) = m
                .compare
                .as_ref()
                .and_then(|c| c.sequential.as_ref().map(|q| (q, c.direction)))
            else {
                continue;
            };
            if let Some(r) = checks_run
                .iter_mut()
                .find(|r| r.metric == m.name && r.kind == checks::CheckKind::Comparative)
            {
                let history = self.s.differences_mut(&m.name);
                checks::judge_sequential(r, cfg, direction, spec, history);
            }
        }
        let v = checks::combine(checks_run, a.canary_requests, spec.min_requests);
        self.s.last_analysis = Some(AnalysisSummary {
            window_end: w.end,
            verdict: v.verdict,
            reason: v.reason.clone(),
        });
        let details = serde_json::to_value(&v.checks).unwrap_or_default();
        let label = self.step_label(step);
        match v.verdict {
            Verdict::Pass => {
                self.s.passes += 1;
                if !may_advance {
                    self.record(
                        "analysis",
                        &format!(
                            "{label}: interval passed while waiting for approval: {}",
                            v.reason
                        ),
                        None,
                        Some(details),
                    );
                } else if let Some(left) = self.hold_left(step, w.end) {
                    let reason = format!(
                        "{label}: interval passed; holding for {} more (hold {})",
                        human(left),
                        self.r.spec.step_hold(step as usize)
                    );
                    self.s.reason = reason.clone();
                    self.record("analysis", &reason, None, Some(details));
                } else if let Some(why) = &obs.freeze {
                    let reason = format!("{label}: interval passed but held: deliveries are frozen by the error-budget guard: {why}");
                    self.s.reason = reason.clone();
                    self.record("hold", &reason, None, Some(details));
                } else {
                    self.advance(step, &v.reason, details);
                }
            }
            Verdict::Fail => {
                self.s.failures += 1;
                let limit = spec.failure_limit;
                if v.decisive {
                    let reason = format!("{label}: {}", v.reason);
                    self.abort(&reason, None, true);
                } else if self.s.failures > limit {
                    let reason = format!(
                        "{label}: {} failed intervals, more than failureLimit {limit}: {}",
                        self.s.failures, v.reason
                    );
                    self.abort(&reason, None, true);
                } else {
                    let reason = format!(
                        "{label}: interval failed ({} of {limit} failures allowed): {}",
                        self.s.failures, v.reason
                    );
                    self.s.reason = reason.clone();
                    self.record("analysis", &reason, None, Some(details));
                }
            }
            Verdict::Inconclusive => {
                self.s.inconclusive += 1;
                let limit = spec.inconclusive_limit;
                if self.s.inconclusive > limit {
                    let reason = format!(
                        "{label}: {} inconclusive intervals, more than inconclusiveLimit {limit}: {}",
                        self.s.inconclusive, v.reason
                    );
                    self.abort(&reason, None, true);
                } else {
                    let reason = format!(
                        "{label}: interval inconclusive ({} of {limit} allowed): {}",
                        self.s.inconclusive, v.reason
                    );
                    self.s.reason = reason.clone();
                    self.record("analysis", &reason, None, Some(details));
                }
            }
        }
    }

    /// Time left in step `step`'s hold at `end` (the end of the interval just judged), when
    /// the hold has not passed. Plain steps hold one interval, which any full window after
    /// the step started covers.
    fn hold_left(&self, step: u32, end: DateTime<Utc>) -> Option<chrono::Duration> {
        let Phase::Progressing { since, .. } = self.s.phase else {
            return None;
        };
        let hold_end = since + chrono_duration(self.r.spec.step_hold(step as usize));
        (end < hold_end).then(|| hold_end - end)
    }

    fn advance(&mut self, step: u32, why: &str, details: serde_json::Value) {
        let last = self.steps().saturating_sub(1) as u32;
        if step >= last {
            let reason = format!(
                "{} passed ({why}): promoting {}",
                self.step_label(step),
                self.s.canary_version.as_deref().unwrap_or("the canary")
            );
            self.enter_promoting(&reason, None);
            return;
        }
        let next = step + 1;
        let weight = self.r.spec.step_weight(next as usize);
        if weight >= 100 && self.r.spec.approval.is_some() {
            let deadline = self.approval_deadline();
            let reason = format!(
                "{} passed ({why}): waiting for approval to go to 100% until {deadline}",
                self.step_label(step)
            );
            self.transition(
                Phase::WaitingForApproval {
                    step,
                    since: self.now,
                    deadline,
                    held: false,
                },
                reason.clone(),
            );
            self.record("wait-approval", &reason, None, Some(details));
            self.notify(
                Severity::Info,
                format!("Rollout {} waits for approval", self.r.key()),
                reason,
            );
            return;
        }
        let reason = format!(
            "{} passed ({why}): {} starts",
            self.step_label(step),
            self.step_label(next)
        );
        self.set_step(next);
        self.transition(
            Phase::Progressing {
                step: next,
                since: self.now,
                deadline: self.step_deadline(next),
            },
            reason.clone(),
        );
        self.record("step", &reason, None, Some(details));
    }

    fn enter_promoting(&mut self, reason: &str, actor: Option<&str>) {
        self.s
            .pending
            .retain(|p| p.kind != PendingKind::CommitPromotion);
        self.issue_promotion();
        self.transition(
            Phase::Promoting {
                since: self.now,
                deadline: self.progress_deadline(),
            },
            reason.to_string(),
        );
        self.record("promote", reason, actor, None);
        self.notify(
            Severity::Info,
            format!("Rollout {}: promoting", self.r.key()),
            reason.to_string(),
        );
    }

    fn promoting(&mut self, obs: &Observations, deadline: DateTime<Utc>) {
        let version = self.s.canary_version.clone();
        let stable_runs_it = version.is_some() && obs.stable_version == version;
        // slogate's own promotion commit issued with no outcome seen yet: the process
        // stopped between pushing it and storing its completion. The re-issued (idempotent)
        // commit's outcome is awaited, so that the commit is recorded (found by
        // tests/crash_injection.rs); once it failed, the promotion counts as landed anyway.
        let unseen_commit = self.s.promotion_commit.is_none()
            && self
                .s
                .pending
                .iter()
                .any(|p| p.kind == PendingKind::CommitPromotion && p.attempts == 0);
        if stable_runs_it && unseen_commit {
            self.notes.push(format!(
                "stable runs {}: waiting for the outcome of the promotion commit",
                version.as_deref().unwrap_or("?")
            ));
        } else if stable_runs_it {
            // The promotion landed, whoever committed it.
            self.s
                .pending
                .retain(|p| p.kind != PendingKind::CommitPromotion);
            let weights_pending = self.s.has_pending(PendingKind::SetWeights);
            let on_stable = self.s.weights.is_some_and(|w| w.canary == 0);
            let on_stable = on_stable && self.s.header_match.is_none();
            if !weights_pending && !on_stable {
                self.set_weights(0, self.s.routing());
                self.s.reason = format!(
                    "stable runs {}: all traffic back to stable",
                    version.as_deref().unwrap_or("?")
                );
                return;
            }
            if !weights_pending && on_stable {
                let reason = format!(
                    "promoted: stable runs {} and has all the traffic",
                    version.as_deref().unwrap_or("?")
                );
                self.transition(Phase::Succeeded { since: self.now }, reason.clone());
                self.record("promoted", &reason, None, None);
                self.notify(
                    Severity::Info,
                    format!("Rollout {} succeeded", self.r.key()),
                    reason,
                );
                return;
            }
        }
        if self.now >= deadline {
            let reason = format!(
                "promotion of {} not done within progressDeadline {}: stable runs {}{}; held at the current weights, resume to wait again",
                version.as_deref().unwrap_or("?"),
                self.r.spec.progress_deadline,
                obs.stable_version.as_deref().unwrap_or("an unknown version"),
                match &self.s.promotion_commit {
                    Some(sha) => format!(" (promotion commit {sha})"),
                    None => " (promotion not committed)".to_string(),
                }
            );
            self.transition(
                Phase::Paused {
                    from: PausedFrom::Promoting,
                    step: None,
                    since: self.now,
                },
                reason.clone(),
            );
            self.record("pause", &reason, None, None);
            self.notify(
                Severity::Critical,
                format!("Rollout {}: promotion stuck", self.r.key()),
                reason,
            );
        }
    }

    /// Weights to 0 (unconditionally) and, when `revert`, the canary's commit reverted.
    fn abort(&mut self, reason: &str, actor: Option<&str>, revert: bool) {
        self.s
            .pending
            .retain(|p| p.kind == PendingKind::RevertCanary);
        self.set_weights(0, None);
        if revert && !self.s.has_pending(PendingKind::RevertCanary) {
            self.issue_revert(reason);
        }
        self.transition(Phase::Aborting { since: self.now }, reason.to_string());
        self.record("abort", reason, actor, None);
        self.notify(
            Severity::Critical,
            format!(
                "Rollout {} aborted: {}",
                self.r.key(),
                self.s.canary_version.as_deref().unwrap_or("canary")
            ),
            reason.to_string(),
        );
    }

    // ---- finish ----------------------------------------------------------------------------

    /// Issue again every pending effect that was not issued in this call and whose back-off
    /// has passed.
    fn reissue_pending(&mut self) {
        let due: Vec<PendingEffect> = self
            .s
            .pending
            .iter()
            .filter(|p| !self.issued.contains(&p.key))
            .filter(|p| p.retry_at.is_none_or(|t| t <= self.now))
            .cloned()
            .collect();
        for p in due {
            if let Some(e) = self.effect_of(&p) {
                self.issued.push(p.key.clone());
                self.effects.push(e);
            }
        }
    }

    fn requeue_after(&self) -> Duration {
        let interval = self.interval();
        let mut next = self.now + interval;
        let mut consider = |t: DateTime<Utc>| {
            if t < next {
                next = t;
            }
        };
        match &self.s.phase {
            Phase::Progressing { deadline, .. } => {
                consider(*deadline);
                if let Some(due) = next_analysis_due(self.r, &self.s) {
                    consider(due);
                }
            }
            Phase::WaitingForApproval { deadline, held, .. } => {
                if !held {
                    consider(*deadline);
                }
                if let Some(due) = next_analysis_due(self.r, &self.s) {
                    consider(due);
                }
            }
            Phase::Promoting { deadline, .. } => consider(*deadline),
            _ => {}
        }
        for p in &self.s.pending {
            if let Some(t) = p.retry_at {
                consider(t);
            }
        }
        std_duration(next - self.now)
    }

    fn finish(mut self) -> Decision {
        self.s.hold_until = match self.s.phase {
            Phase::Progressing { step, since, .. }
                if self
                    .r
                    .spec
                    .step(step as usize)
                    .is_some_and(|s| s.hold.is_some()) =>
            {
                Some(since + chrono_duration(self.r.spec.step_hold(step as usize)))
            }
            _ => None,
        };
        let requeue_after = self.requeue_after();
        Decision {
            next: self.s,
            effects: self.effects,
            requeue_after,
            rejected: self.rejected,
            notes: self.notes,
        }
    }
}

/// The phase name of a status (for metrics).
pub fn phase_name(status: &RolloutStatus) -> PhaseName {
    status.phase.name()
}
