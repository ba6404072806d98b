//! [`RolloutStatus`]: what [`super::decide`] reads and writes, stored as the Rollout's
//! status subresource in a cluster and in the embedded state store outside one.
//!
//! In YAML/JSON the status is flat, as Kubernetes statuses are: `phase: Progressing`,
//! `step: 2`, `since: …`, `deadline: …`, next to `reason`, `weights`, the analysis counters
//! and the effects still pending. In Rust the phase is the typed [`Phase`] enum (flattened
//! into the status by serde), so a phase can only carry the fields that belong to it.
//!
//! Crash safety: the runtime stores the next status *before* applying the effects of a
//! decision. Every effect whose completion matters (weights, revert, promotion commit) is
//! listed in [`RolloutStatus::pending`] with its idempotency key until its completion is
//! observed; a status read back after a crash therefore still names it, and `decide`
//! issues it again with the same key.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::traffic::{HeaderMatch, Routing, Weights};

/// Where a rollout is. Serialized flat into the status: `phase` names the variant and the
/// variant's fields sit next to it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all_fields = "camelCase")]
pub enum Phase {
    /// No canary to roll out (none observed, it runs the stable version, or the guard froze
    /// deliveries).
    #[default]
    Pending,
    /// The canary receives `steps[step]` percent, in effect since `since` (when the weights
    /// were confirmed). The step aborts when it has not completed by `deadline`.
    Progressing {
        step: u32,
        since: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Held at `steps[step]` (analysis goes on) until an operator approves the step to 100%
    /// or `deadline` passes. `held`: the deadline passed and `onDeadline: hold` applies.
    WaitingForApproval {
        step: u32,
        since: DateTime<Utc>,
        deadline: DateTime<Utc>,
        #[serde(default)]
        held: bool,
    },
    /// Stopped by an operator, by a manual weight change, or by a promotion that did not
    /// land in time. Nothing moves until `resume`, `abort` or `promote`.
    Paused {
        /// The phase to go back to on resume.
        from: PausedFrom,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u32>,
        since: DateTime<Utc>,
    },
    /// The canary version is being committed as the stable version; once stable runs it,
    /// all traffic goes back to stable.
    Promoting {
        since: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    /// Promoted: stable runs the canary version and has all the traffic.
    Succeeded { since: DateTime<Utc> },
    /// Weights are going back to stable and the canary's GitOps commit is being reverted.
    Aborting { since: DateTime<Utc> },
    /// Aborted: stable has all the traffic, the canary commit is reverted (or the reason says
    /// why it could not be).
    Failed { since: DateTime<Utc> },
}

/// The phases a pause can return to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PausedFrom {
    Progressing,
    WaitingForApproval,
    Promoting,
}

/// The phase names, for metrics, printer columns and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PhaseName {
    Pending,
    Progressing,
    WaitingForApproval,
    Paused,
    Promoting,
    Succeeded,
    Aborting,
    Failed,
}

impl PhaseName {
    pub const ALL: [PhaseName; 8] = [
        PhaseName::Pending,
        PhaseName::Progressing,
        PhaseName::WaitingForApproval,
        PhaseName::Paused,
        PhaseName::Promoting,
        PhaseName::Succeeded,
        PhaseName::Aborting,
        PhaseName::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Pending => "Pending",
            PhaseName::Progressing => "Progressing",
            PhaseName::WaitingForApproval => "WaitingForApproval",
            PhaseName::Paused => "Paused",
            PhaseName::Promoting => "Promoting",
            PhaseName::Succeeded => "Succeeded",
            PhaseName::Aborting => "Aborting",
            PhaseName::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for PhaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Phase {
    pub fn name(&self) -> PhaseName {
        match self {
            Phase::Pending => PhaseName::Pending,
            Phase::Progressing { .. } => PhaseName::Progressing,
            Phase::WaitingForApproval { .. } => PhaseName::WaitingForApproval,
            Phase::Paused { .. } => PhaseName::Paused,
            Phase::Promoting { .. } => PhaseName::Promoting,
            Phase::Succeeded { .. } => PhaseName::Succeeded,
            Phase::Aborting { .. } => PhaseName::Aborting,
            Phase::Failed { .. } => PhaseName::Failed,
        }
    }

    /// The step index whose weights are in effect, in the phases that have one.
    pub fn step(&self) -> Option<u32> {
        match self {
            Phase::Progressing { step, .. } | Phase::WaitingForApproval { step, .. } => Some(*step),
            Phase::Paused { step, .. } => *step,
            _ => None,
        }
    }

    /// True while a rollout is in flight (a canary version is being analysed or promoted).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Phase::Progressing { .. }
                | Phase::WaitingForApproval { .. }
                | Phase::Paused { .. }
                | Phase::Promoting { .. }
                | Phase::Aborting { .. }
        )
    }
}

/// The verdict of one analysis interval (or one check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// The last interval judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSummary {
    /// End of the interval's window.
    pub window_end: DateTime<Utc>,
    pub verdict: Verdict,
    pub reason: String,
}

/// One interval's error counts, as fed to the sequential test (its state is replayed from
/// these, so it survives restarts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountBatch {
    pub canary_errors: u64,
    pub stable_errors: u64,
    /// Share of the interval's requests served by the canary, in [0, 1].
    pub canary_share: f64,
    /// Requests of both versions in the interval (feeds the dispersion estimate; absent in
    /// batches recorded before it was kept, which are then judged as binomial).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u64,
}

/// One comparative metric's per-interval differences of means (canary − stable), the
/// history of its sequential test (`compare.sequential`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricDifferences {
    pub metric: String,
    pub differences: Vec<f64>,
}

impl RolloutStatus {
    /// The sequential history of `metric`, created empty on first use.
    pub fn differences_mut(&mut self, metric: &str) -> &mut Vec<f64> {
        let i = match self
            .metric_differences
            .iter()
            .position(|m| m.metric == metric)
        {
            Some(i) => i,
            None => {
                self.metric_differences.push(MetricDifferences {
                    metric: metric.to_string(),
                    differences: Vec::new(),
                });
                self.metric_differences.len() - 1
            }
        };
        &mut self.metric_differences[i].differences
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The kinds of effect whose completion `decide` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PendingKind {
    SetWeights,
    RevertCanary,
    CommitPromotion,
}

/// An effect issued and not yet seen completed. Issued again (same key) on every `decide`
/// at or after `retryAt` until its completion is observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingEffect {
    /// Idempotency key: applying the effect twice with one key acts once.
    pub key: String,
    pub kind: PendingKind,
    /// SetWeights: the weights to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// SetWeights: the weights the route must hold for the write to go ahead (`None`: write
    /// unconditionally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Weights>,
    /// SetWeights: the header route to set (a header step); none removes slogate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_match: Option<HeaderMatch>,
    /// SetWeights: the header route the route must hold for the write to go ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_header_match: Option<HeaderMatch>,
    /// RevertCanary / CommitPromotion: the canary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// RevertCanary: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub issued_at: DateTime<Utc>,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Do not issue again before this time (back-off after a failure). `None`: issue again
    /// on the next `decide` that does not see it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Status of a Rollout.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    #[serde(flatten)]
    pub phase: Phase,
    /// Why the rollout is in its phase, one sentence.
    #[serde(default)]
    pub reason: String,
    /// Counts rollouts of this Rollout (one per canary version started); part of every
    /// idempotency key.
    #[serde(default)]
    pub attempt: u64,
    /// The canary version this status is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_version: Option<String>,
    /// The stable version when the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_version: Option<String>,
    /// The weights slogate last set and saw confirmed. Weights found different on the route
    /// (with no write of slogate's pending) were changed by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// The header route slogate last set and saw confirmed (during a header step), with
    /// `weights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_match: Option<HeaderMatch>,
    /// Progressing at a step with a `hold`: when the hold ends (the step's start plus its
    /// hold). The step advances with the first passing interval from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<DateTime<Utc>>,
    /// Failed analysis intervals in this rollout.
    #[serde(default)]
    pub failures: u32,
    /// Inconclusive analysis intervals in this rollout.
    #[serde(default)]
    pub inconclusive: u32,
    /// Passing analysis intervals in this rollout.
    #[serde(default)]
    pub passes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<AnalysisSummary>,
    /// Error counts of every interval of this rollout (the sequential test's history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub count_batches: Vec<CountBatch>,
    /// Per comparative metric judged sequentially (`compare.sequential`): the difference of
    /// the canary's and stable's mean in every interval of this rollout (the test's history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_differences: Vec<MetricDifferences>,
    /// The sequential test's anytime-valid p-value (never increases within a rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Effects issued and not yet seen completed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingEffect>,
    /// Ids of the operator commands already handled (the most recent ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handled_commands: Vec<String>,
    /// Sequence number for effect keys within this rollout.
    #[serde(default)]
    pub seq: u64,
    /// The promotion commit, once pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_commit: Option<String>,
    /// The revert commit, once pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    /// When this status last changed phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// Kubernetes-style conditions; today only [`ADMITTED`], written when a Rollout is
    /// refused for reaching beyond its namespace (see [`super::scope`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The condition type that says whether the daemon runs the Rollout: `False` when its spec
/// reaches beyond what its namespace may use ([`super::scope`]).
pub const ADMITTED: &str = "Admitted";

/// A condition's status, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A Kubernetes-style status condition (`metav1.Condition`'s fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Admitted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Why, in one CamelCase word, e.g. `RouteOutsideNamespace`.
    pub reason: String,
    /// Why, in words: the field, the value and the rule.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The Rollout's `metadata.generation` the condition is about (absent for files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl RolloutStatus {
    /// The condition of this type.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Set a condition, replacing the one of its type. Its `lastTransitionTime` stays that
    /// of the one it replaces when the status did not change. False when nothing changed
    /// (the same status, reason, message and generation).
    pub fn set_condition(&mut self, mut c: Condition) -> bool {
        match self.conditions.iter_mut().find(|o| o.type_ == c.type_) {
            Some(old) => {
                if old.status == c.status
                    && old.reason == c.reason
                    && old.message == c.message
                    && old.observed_generation == c.observed_generation
                {
                    return false;
                }
                if old.status == c.status {
                    c.last_transition_time = old.last_transition_time;
                }
                *old = c;
            }
            None => self.conditions.push(c),
        }
        true
    }

    /// The pending effect with this key.
    pub fn pending_effect(&self, key: &str) -> Option<&PendingEffect> {
        self.pending.iter().find(|p| p.key == key)
    }

    /// The routing slogate last set and saw confirmed: `weights` and `headerMatch`.
    pub fn routing(&self) -> Option<Routing> {
        self.weights.map(|weights| Routing {
            weights,
            header_match: self.header_match.clone(),
        })
    }

    /// True when an effect of this kind is pending.
    pub fn has_pending(&self, kind: PendingKind) -> bool {
        self.pending.iter().any(|p| p.kind == kind)
    }
}

// ---- schema -------------------------------------------------------------------------------
//
// serde's flattened, internally tagged `Phase` has no structural schema of its own, so the
// CRD's status schema is generated from the flat mirror below. `tests` check that every
// phase serializes to JSON the schema accepts, so the two cannot drift apart unnoticed.

/// Schema of [`Weights`].
#[derive(JsonSchema)]
#[allow(dead_code)]
struct WeightsSchema {
    /// Percent of the traffic to stable.
    #[schemars(range(max = 100))]
    stable: u32,
    /// Percent of the traffic to the canary.
    #[schemars(range(max = 100))]
    canary: u32,
}

/// Schema of [`HeaderMatch`]: the header values are strings or `{prefix}`/`{regex}`
/// objects, which a structural schema cannot type, so the map keeps them as they are.
#[allow(dead_code)]
struct HeaderMatchSchema;

impl JsonSchema for HeaderMatchSchema {
    fn schema_name() -> Cow<'static, str> {
        "HeaderMatch".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "Requests with all these headers go to the canary: {headers: {x-canary: \"true\"}}.",
            "properties": {
                "headers": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }
}

/// Schema of [`PendingEffect`].
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct PendingEffectSchema {
    /// Idempotency key.
    key: String,
    kind: PendingKind,
    weights: Option<WeightsSchema>,
    expected: Option<WeightsSchema>,
    header_match: Option<HeaderMatchSchema>,
    expected_header_match: Option<HeaderMatchSchema>,
    version: Option<String>,
    reason: Option<String>,
    issued_at: DateTime<Utc>,
    attempts: Option<u32>,
    retry_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

/// Observed state of a Rollout, written by slogate.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct StatusSchema {
    /// The phase.
    phase: PhaseName,
    /// Index into spec.steps of the step in effect.
    step: Option<u32>,
    /// When the phase (for Progressing: the step) took effect.
    since: Option<DateTime<Utc>>,
    /// When the step, the approval wait or the promotion times out.
    deadline: Option<DateTime<Utc>>,
    /// WaitingForApproval: the approval deadline passed and the rollout is held.
    held: Option<bool>,
    /// Paused: the phase a resume returns to.
    from: Option<PausedFrom>,
    /// Why the rollout is in its phase.
    reason: Option<String>,
    /// Rollout attempt counter.
    attempt: Option<u64>,
    /// The canary version this status is about.
    canary_version: Option<String>,
    /// The stable version when the rollout started.
    stable_version: Option<String>,
    /// The weights slogate last set and saw confirmed.
    weights: Option<WeightsSchema>,
    /// The header route slogate last set and saw confirmed (a header step).
    header_match: Option<HeaderMatchSchema>,
    /// When the current step's hold ends.
    hold_until: Option<DateTime<Utc>>,
    /// Failed analysis intervals.
    failures: Option<u32>,
    /// Inconclusive analysis intervals.
    inconclusive: Option<u32>,
    /// Passing analysis intervals.
    passes: Option<u32>,
    /// The last interval judged.
    last_analysis: Option<AnalysisSummary>,
    /// Error counts per interval (the sequential test's history).
    count_batches: Option<Vec<CountBatch>>,
    /// Per sequentially judged comparative metric: the per-interval differences of means.
    metric_differences: Option<Vec<MetricDifferences>>,
    /// The sequential test's anytime-valid p-value.
    p_value: Option<f64>,
    /// Effects issued and not yet seen completed.
    pending: Option<Vec<PendingEffectSchema>>,
    /// Ids of operator commands already handled.
    handled_commands: Option<Vec<String>>,
    /// Effect key sequence number.
    seq: Option<u64>,
    /// The promotion commit, once pushed.
    promotion_commit: Option<String>,
    /// The revert commit, once pushed.
    revert_commit: Option<String>,
    /// When the status last changed phase.
    last_transition_time: Option<DateTime<Utc>>,
    /// Conditions; `Admitted` is False when the Rollout is refused for reaching beyond its
    /// namespace (a route in another namespace, a GitOps path or app not allowed for it).
    conditions: Option<Vec<Condition>>,
}

impl JsonSchema for RolloutStatus {
    fn schema_name() -> Cow<'static, str> {
        "RolloutStatus".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        StatusSchema::json_schema(generator)
    }
}
