//! The `slogate.dev/v1alpha1 Rollout` resource: a canary of one workload, shifted through
//! weight steps on an Istio VirtualService or a Gateway API HTTPRoute while its metrics are
//! analysed against the stable version.
//!
//! These types are the single source of truth for three things:
//! - the YAML accepted in files (`slogate validate`, local runs), read by [`super::load`];
//! - the CRD schema (`slogate crd`), generated from them with schemars by [`super::schema`];
//! - what the runtime reads from the cluster (with `serde`).
//!
//! Field names are camelCase. Choices are typed: the traffic target is exactly one of
//! `virtualService` or `httpRoute`, and a VirtualService names its destinations either by
//! `subset` or by `host`, so [`RolloutSpec::traffic_target`] cannot fail.
//!
//! Defaults (also written into the CRD, so the API server fills them in):
//! `steps: [10, 25, 50, 75, 100]`, `interval: 30s`, `failureLimit: 2`,
//! `inconclusiveLimit: 3`, `progressDeadline: 10m`, `workloads.*.kind: Deployment`,
//! `workloads.versionLabel: version`, `approval.deadline: 1h`, `approval.onDeadline: abort`,
//! `analysis.errorCounts.alpha: 0.02`, and for `compare`: `direction: either`,
//! `tolerance: 0.25`, `confidence: 0.98`, `effectSize: meanRatio`, `minSamples: 3`.
//!
//! `steps` are plain weights (one interval each), weights that hold (`{weight: 10, hold: 24h}`)
//! or header steps (`{match: {headers: …}, hold: 30m}`), see [`Step`].
//!
//! `progressDeadline` is **per step, beyond its hold**: a step (or the promotion) that has
//! not completed this long after its hold (or, without one, after it started) aborts the
//! rollout (a promotion that does not land is held and reported instead, see
//! [`super::machine`]). The whole rollout is therefore bounded by the holds plus
//! `steps × progressDeadline` plus the approval deadline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::traffic::{BackendRef, HeaderMatch, IstioDestinations, TrafficTarget};
use crate::slo::PromDuration;

/// `apiVersion` of the Rollout resource.
pub const API_VERSION: &str = "slogate.dev/v1alpha1";
/// API group of the Rollout resource.
pub const GROUP: &str = "slogate.dev";
/// Version of the Rollout resource within its group.
pub const VERSION: &str = "v1alpha1";
/// `kind` of the Rollout resource.
pub const KIND: &str = "Rollout";

/// Names of the built-in metrics (no `query` needed).
pub const BUILTIN_METRICS: [&str; 2] = ["request-success-rate", "request-duration"];

/// A Rollout document: Kubernetes object envelope, spec and (optional) status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: RolloutSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<super::RolloutStatus>,
}

impl Rollout {
    /// The namespace, `default` when the metadata has none (files for local runs).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `namespace/name`, the rollout's subject in logs, notifications and the decision log.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace(), self.metadata.name)
    }

    /// The route to shift; namespaces default to the rollout's namespace.
    pub fn traffic_target(&self) -> TrafficTarget {
        self.spec.traffic_target(self.namespace())
    }
}

/// The part of Kubernetes object metadata slogate uses. Other fields (labels, uid,
/// resourceVersion…) are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The spec's generation, in a cluster (the API server counts spec changes); absent in
    /// files. The `observedGeneration` of the Rollout's `Admitted` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// Desired behaviour of a canary rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// The route whose stable/canary weights are shifted: exactly one of `virtualService`
    /// (Istio) or `httpRoute` (Gateway API).
    pub traffic: Traffic,
    /// The stable and canary workloads, and how the canary's version is told.
    pub workloads: Workloads,
    /// The steps, in order. Each is a plain canary weight in percent (`10`: lasts one
    /// interval), a weight that holds (`{weight: 10, hold: 24h}`: analysed every interval,
    /// advances once the hold has passed), or a header step before the weighted ones
    /// (`{match: {headers: {x-canary: "true"}}, hold: 30m}`: only matching requests go to the
    /// canary). Weights strictly increase, each in 1..=100, and the last is 100.
    #[serde(default = "default_steps")]
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// How long each analysis interval lasts (a Prometheus duration, e.g. 30s). A step
    /// advances only after a full interval at its weight with a passing analysis.
    #[serde(default = "default_interval")]
    #[schemars(with = "DurationSchema")]
    pub interval: PromDuration,
    /// Failed analysis intervals tolerated during one rollout; one more aborts it.
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
    /// Inconclusive analysis intervals (no data, NaN, too little traffic) tolerated during
    /// one rollout; one more aborts it. Inconclusive never counts as a pass.
    #[serde(default = "default_inconclusive_limit")]
    pub inconclusive_limit: u32,
    /// Canary requests needed in an interval before its metrics are judged; fewer makes the
    /// interval inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// Longest time one step (or the promotion) may take, from the moment it starts, before
    /// the rollout is aborted (a promotion is held and reported instead).
    #[serde(default = "default_progress_deadline")]
    #[schemars(with = "DurationSchema")]
    pub progress_deadline: PromDuration,
    /// An approval gate before the step to 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// What is measured at every interval.
    pub analysis: Analysis,
    /// The GitOps app: its commit that introduced the canary is reverted on abort, and the
    /// promotion commits the canary version there.
    pub gitops: GitOps,
    /// Ids (`<service>-<slo>`) of the SLOs whose error-budget guard applies to this rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<String>,
}

/// One step of a rollout (see [`RolloutSpec::steps`]). Written as a plain number when it is
/// only a weight, as `{weight, hold}` or `{match, hold}` otherwise, so documents written
/// before holds existed read and write the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Canary weight in percent; `None` for a header step (weight 0 plus the header route).
    pub weight: Option<u32>,
    /// A header step's match.
    pub header_match: Option<HeaderMatch>,
    /// How long the step lasts at least; one interval when absent.
    pub hold: Option<PromDuration>,
}

impl Step {
    /// A plain weight step.
    pub fn weight(w: u32) -> Self {
        Step {
            weight: Some(w),
            header_match: None,
            hold: None,
        }
    }
}

/// A plain weight step equals its weight.
impl PartialEq<u32> for Step {
    fn eq(&self, w: &u32) -> bool {
        *self == Step::weight(*w)
    }
}

impl From<u32> for Step {
    fn from(w: u32) -> Self {
        Step::weight(w)
    }
}

/// The object form of a step.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    header_match: Option<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold: Option<PromDuration>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StepForm {
    Plain(u32),
    Object(StepObject),
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.weight, &self.header_match, &self.hold) {
            (Some(w), None, None) => s.serialize_u32(w),
            _ => StepObject {
                weight: self.weight,
                header_match: self.header_match.clone(),
                hold: self.hold,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match StepForm::deserialize(d)? {
            StepForm::Plain(w) => Step::weight(w),
            StepForm::Object(o) => Step {
                weight: o.weight,
                header_match: o.header_match,
                hold: o.hold,
            },
        })
    }
}

/// Description of a step in the CRD (also how [`super::schema::check`] recognises the step
/// schema).
pub const STEP_DESCRIPTION: &str = "A canary weight in percent (1 to 100, one interval), or an object: {weight: 10, hold: 24h} (a weight held at least that long, analysed every interval), or a header step {match: {headers: {x-canary: \"true\"}}, hold: 30m} (only matching requests go to the canary; a string is an exact match, {prefix: ...} or {regex: ...} the others). Checked by slogate.";

/// In the CRD a step is a number or an object: structural schemas cannot say "one of two
/// types" (except int-or-string), so the item keeps unknown fields and slogate checks it
/// itself ([`super::schema::check_step`]) wherever it reads a Rollout.
impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": STEP_DESCRIPTION,
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// Exactly one traffic backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Traffic {
    /// An Istio `networking.istio.io` VirtualService route.
    VirtualService(VirtualServiceRef),
    /// A Gateway API `gateway.networking.k8s.io/v1` HTTPRoute.
    HttpRoute(HttpRouteRef),
}

/// An Istio VirtualService route with a stable and a canary destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceRef {
    /// VirtualService name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// VirtualService namespace; the rollout's namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `spec.http[].name` of the route to shift.
    #[schemars(length(min = 1))]
    pub route: String,
    /// How the destinations are told apart: exactly one of `subset` or `host`.
    #[serde(flatten)]
    pub destinations: Destinations,
}

/// Subset mode (one host, two DestinationRule subsets) or host mode (two hosts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Destinations {
    /// One host, two subsets of a DestinationRule.
    Subset(SubsetDestinations),
    /// Two hosts (two Services).
    Host(HostDestinations),
}

/// Subset mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubsetDestinations {
    /// The destination host, e.g. `checkout.shop.svc.cluster.local`.
    #[schemars(length(min = 1))]
    pub host: String,
    /// Subset of the stable version.
    #[schemars(length(min = 1))]
    pub stable: String,
    /// Subset of the canary version.
    #[schemars(length(min = 1))]
    pub canary: String,
    /// The DestinationRule that defines the subsets (informational; checked by the adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<String>,
}

/// Host mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostDestinations {
    /// Host of the stable Service.
    #[schemars(length(min = 1))]
    pub stable: String,
    /// Host of the canary Service.
    #[schemars(length(min = 1))]
    pub canary: String,
}

/// A Gateway API HTTPRoute; the rule shifted is the one whose backendRefs hold both backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRef {
    /// HTTPRoute name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// HTTPRoute namespace; the rollout's namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// backendRef of the stable version.
    pub stable_backend: Backend,
    /// backendRef of the canary version.
    pub canary_backend: Backend,
}

/// A Gateway API backendRef (a Service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Service name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
}

/// The stable and canary workloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workloads {
    /// The workload serving the stable version.
    pub stable: WorkloadRef,
    /// The workload serving the canary version.
    pub canary: WorkloadRef,
    /// Pod label whose value is the version a workload runs (also Istio's
    /// `destination_version`).
    #[serde(default = "default_version_label")]
    #[schemars(length(min = 1))]
    pub version_label: String,
}

/// One workload in the rollout's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Workload kind.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Workload name (Istio's `destination_workload`).
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Kinds of workload slogate can observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
}

/// An approval gate before the step to 100%.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// How long to wait for an approval.
    #[serde(default = "default_approval_deadline")]
    #[schemars(with = "DurationSchema")]
    pub deadline: PromDuration,
    /// What happens when the deadline passes without an approval: `abort` the rollout, or
    /// `hold` it at its current weight until an operator acts.
    #[serde(default)]
    pub on_deadline: OnDeadline,
}

/// What an approval deadline does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnDeadline {
    #[default]
    Abort,
    Hold,
}

/// The analysis run at every interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Threshold, built-in and comparative metrics; at least one.
    #[schemars(length(min = 1))]
    pub metrics: Vec<Metric>,
    /// The anytime-valid sequential test of canary versus stable error counts (Istio's
    /// `istio_requests_total` 5xx responses). Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_counts: Option<ErrorCounts>,
}

/// One metric.
///
/// - built in: `name` is `request-success-rate` (ratio of non-5xx responses) or
///   `request-duration` (p99 in milliseconds), no `query`;
/// - threshold: `query` with `min` and/or `max`;
/// - comparative: `query` (or a built-in name) with `compare`: the same query for the
///   canary and for the stable version, compared by the statistical judge.
///
/// Queries may use `{{ namespace }}`, `{{ workload }}`, `{{ interval }}` and `{{ version }}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Unique within the rollout.
    #[schemars(length(min = 1))]
    pub name: String,
    /// PromQL; absent for built-in metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Lowest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Compare canary against stable instead of thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
}

/// How a comparative metric is judged (Mann-Whitney U, Hodges-Lehmann interval, Kayenta's
/// classification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compare {
    /// Which change of the canary fails: `increase`, `decrease` or `either`.
    #[serde(default)]
    pub direction: CompareDirection,
    /// Fraction of |estimate| the confidence interval must clear to count as a change.
    #[serde(default = "default_tolerance")]
    #[schemars(range(min = 0.0))]
    pub tolerance: f64,
    /// Confidence level of the interval, in (0, 1).
    #[serde(default = "default_confidence")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub confidence: f64,
    /// Effect size compared with the allowed thresholds: `meanRatio` or `cles`.
    #[serde(default)]
    pub effect_size: EffectSize,
    /// An increase fails only when the effect size is at least this (default: the
    /// measure's neutral value, 1 for meanRatio, 0.5 for cles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_increase: Option<f64>,
    /// A decrease fails only when the effect size is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_decrease: Option<f64>,
    /// Fewer samples than this on either side makes the metric inconclusive.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: u32,
    /// Judge the metric over the whole rollout with an exact sequential test of the mean
    /// per-interval difference (canary − stable) instead of interval by interval: its
    /// chance of ever failing a canary that is no worse stays at most `alpha` over the
    /// rollout's intervals, where a per-interval comparison repeated over many intervals
    /// fails healthy canaries by chance. A failure aborts at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialCompare>,
}

/// The sequential test of a comparative metric (`compare.sequential`); see
/// [`crate::analysis::judge::HorizonSequentialTest`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialCompare {
    /// Chance, over the whole rollout, of failing a canary that is no worse. In (0, 1).
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub alpha: f64,
    /// The most intervals the test judges (default: the rollout's analysis intervals, one
    /// per plain step and hold ÷ interval per held step). At least 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3))]
    pub horizon: Option<u32>,
    /// The first intervals, whose spread scales the boundary; no failure before them
    /// (default: a third of the horizon, 2 to 20). At least 2, at most the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub variance_looks: Option<u32>,
}

impl Default for SequentialCompare {
    fn default() -> Self {
        SequentialCompare {
            alpha: default_alpha(),
            horizon: None,
            variance_looks: None,
        }
    }
}

impl SequentialCompare {
    /// The horizon for `spec`: the configured one, or the rollout's analysis intervals.
    pub fn horizon_for(&self, spec: &RolloutSpec) -> u64 {
        self.horizon
            .map_or_else(|| spec.analysis_intervals(), u64::from)
    }

    /// The variance looks for a horizon: the configured ones, or a third of it (2 to 20).
    pub fn variance_looks_for(&self, horizon: u64) -> u64 {
        self.variance_looks
            .map_or_else(|| (horizon / 3).clamp(2, 20), u64::from)
    }
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            direction: CompareDirection::default(),
            tolerance: default_tolerance(),
            confidence: default_confidence(),
            effect_size: EffectSize::default(),
            allowed_increase: None,
            allowed_decrease: None,
            min_samples: default_min_samples(),
            sequential: None,
        }
    }
}

/// Which change fails a comparative metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CompareDirection {
    Increase,
    Decrease,
    #[default]
    Either,
}

/// Effect-size measure of a comparative metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EffectSize {
    #[default]
    MeanRatio,
    Cles,
}

/// The sequential error-count test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCounts {
    /// Significance level: the rollout aborts as soon as the anytime-valid p-value that the
    /// canary's error rate is higher than stable's drops to alpha. In (0, 1).
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub alpha: f64,
}

impl Default for ErrorCounts {
    fn default() -> Self {
        ErrorCounts {
            alpha: default_alpha(),
        }
    }
}

/// The GitOps app of the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitOps {
    /// The Argo CD Application (or Flux Kustomization) name.
    #[schemars(length(min = 1))]
    pub app: String,
    /// Path of the app in the GitOps repository, relative to its root.
    #[schemars(length(min = 1))]
    pub path: String,
}

/// Schema of a Prometheus duration string (`30s`, `10m`, `1h30m`).
#[allow(dead_code)] // only its schema is used
#[derive(JsonSchema)]
#[schemars(
    transparent,
    description = "A Prometheus duration such as 30s, 5m or 1h30m."
)]
pub(crate) struct DurationSchema(
    #[schemars(regex(pattern = DURATION_PATTERN), length(min = 2))] String,
);

/// Prometheus' own duration syntax (units in decreasing order, each at most once).
pub const DURATION_PATTERN: &str =
    "^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$";

pub(crate) fn default_steps() -> Vec<Step> {
    [10, 25, 50, 75, 100]
        .into_iter()
        .map(Step::weight)
        .collect()
}
pub(crate) fn default_interval() -> PromDuration {
    PromDuration::from_secs(30)
}
pub(crate) fn default_failure_limit() -> u32 {
    2
}
pub(crate) fn default_inconclusive_limit() -> u32 {
    3
}
pub(crate) fn default_progress_deadline() -> PromDuration {
    PromDuration::from_mins(10)
}
pub(crate) fn default_approval_deadline() -> PromDuration {
    PromDuration::from_hours(1)
}
pub(crate) fn default_version_label() -> String {
    "version".to_string()
}
pub(crate) fn default_tolerance() -> f64 {
    0.25
}
pub(crate) fn default_confidence() -> f64 {
    0.98
}
pub(crate) fn default_min_samples() -> u32 {
    3
}
pub(crate) fn default_alpha() -> f64 {
    0.02
}

impl RolloutSpec {
    /// The route to shift. `namespace` is used where the spec names none (the rollout's).
    pub fn traffic_target(&self, namespace: &str) -> TrafficTarget {
        let ns = |n: &Option<String>| n.clone().unwrap_or_else(|| namespace.to_string());
        match &self.traffic {
            Traffic::VirtualService(vs) => TrafficTarget::VirtualService {
                namespace: ns(&vs.namespace),
                name: vs.name.clone(),
                route: vs.route.clone(),
                destinations: match &vs.destinations {
                    Destinations::Subset(s) => IstioDestinations::Subset {
                        host: s.host.clone(),
                        stable_subset: s.stable.clone(),
                        canary_subset: s.canary.clone(),
                    },
                    Destinations::Host(h) => IstioDestinations::Host {
                        stable_host: h.stable.clone(),
                        canary_host: h.canary.clone(),
                    },
                },
            },
            Traffic::HttpRoute(r) => TrafficTarget::HttpRoute {
                namespace: ns(&r.namespace),
                name: r.name.clone(),
                stable: BackendRef {
                    name: r.stable_backend.name.clone(),
                    port: r.stable_backend.port,
                },
                canary: BackendRef {
                    name: r.canary_backend.name.clone(),
                    port: r.canary_backend.port,
                },
            },
        }
    }

    /// Step `index` (the last step when out of range).
    pub fn step(&self, index: usize) -> Option<&Step> {
        self.steps.get(index).or(self.steps.last())
    }

    /// Canary weight of step `index` (the last step when out of range; 0 with no steps and
    /// for header steps).
    pub fn step_weight(&self, index: usize) -> u32 {
        self.step(index).and_then(|s| s.weight).unwrap_or(0)
    }

    /// Header match of step `index`, for header steps.
    pub fn step_match(&self, index: usize) -> Option<&HeaderMatch> {
        self.step(index).and_then(|s| s.header_match.as_ref())
    }

    /// Analysis intervals the rollout makes when every interval passes: one per plain step,
    /// hold ÷ interval (at least one) per held step.
    pub fn analysis_intervals(&self) -> u64 {
        let every = self.interval.as_secs_f64();
        (0..self.steps.len())
            .map(|i| {
                let hold = self.step_hold(i).as_secs_f64();
                if every > 0.0 {
                    ((hold / every).floor() as u64).max(1)
                } else {
                    1
                }
            })
            .sum()
    }

    /// How long step `index` lasts at least: its hold, or one interval.
    pub fn step_hold(&self, index: usize) -> PromDuration {
        self.step(index)
            .and_then(|s| s.hold)
            .map_or(self.interval, |h| h.max(self.interval))
    }
}

impl Metric {
    /// True for a metric that uses a built-in query (no `query` of its own).
    pub fn is_builtin(&self) -> bool {
        self.query.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// YAML → JSON → spec, as the loader does.
    fn parse(text: &str) -> RolloutSpec {
        let v: crate::model::yaml::Value = crate::model::yaml::from_str(text).unwrap();
        serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap()
    }

    fn spec_yaml(traffic: &str) -> String {
        format!(
            "traffic:\n{traffic}\nworkloads:\n  stable: {{name: a}}\n  canary: {{name: b}}\nanalysis:\n  metrics: [{{name: request-success-rate, min: 0.99}}]\ngitops: {{app: a, path: p}}\n"
        )
    }

    #[test]
    fn defaults_are_filled_in() {
        let s = parse(&spec_yaml(
            "  httpRoute: {name: r, stableBackend: {name: s}, canaryBackend: {name: c, port: 80}}",
        ));
        assert_eq!(s.steps, default_steps());
        assert_eq!(s.step_weight(1), 25);
        assert_eq!(s.interval, PromDuration::from_secs(30));
        assert_eq!(s.failure_limit, 2);
        assert_eq!(s.inconclusive_limit, 3);
        assert_eq!(s.progress_deadline, PromDuration::from_mins(10));
        assert_eq!(s.workloads.version_label, "version");
        assert_eq!(s.workloads.canary.kind, WorkloadKind::Deployment);
        assert_eq!(
            s.traffic_target("shop"),
            TrafficTarget::HttpRoute {
                namespace: "shop".into(),
                name: "r".into(),
                stable: BackendRef {
                    name: "s".into(),
                    port: None
                },
                canary: BackendRef {
                    name: "c".into(),
                    port: Some(80)
                },
            }
        );
    }

    #[test]
    fn virtual_service_modes_convert() {
        let s = parse(&spec_yaml(
            "  virtualService: {name: vs, namespace: mesh, route: primary, subset: {host: h, stable: v1, canary: v2, destinationRule: dr}}",
        ));
        assert_eq!(
            s.traffic_target("shop"),
            TrafficTarget::VirtualService {
                namespace: "mesh".into(),
                name: "vs".into(),
                route: "primary".into(),
                destinations: IstioDestinations::Subset {
                    host: "h".into(),
                    stable_subset: "v1".into(),
                    canary_subset: "v2".into()
                },
            }
        );
        let s = parse(&spec_yaml(
            "  virtualService: {name: vs, route: primary, host: {stable: s.svc, canary: c.svc}}",
        ));
        assert_eq!(
            s.traffic_target("shop"),
            TrafficTarget::VirtualService {
                namespace: "shop".into(),
                name: "vs".into(),
                route: "primary".into(),
                destinations: IstioDestinations::Host {
                    stable_host: "s.svc".into(),
                    canary_host: "c.svc".into()
                },
            }
        );
        // Serializing keeps the YAML shape (`host:` next to `name:`).
        let v = serde_json::to_value(&s.traffic).unwrap();
        assert_eq!(v["virtualService"]["host"]["canary"], "c.svc");
        assert_eq!(v["virtualService"]["route"], "primary");
    }
}
