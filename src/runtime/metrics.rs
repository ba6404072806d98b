//! slogate's own metrics, exported on `/metrics` in OpenMetrics text through
//! prometheus-client. Per-SLO series carry Sloth's `sloth_id`, `sloth_service` and
//! `sloth_slo` labels so that they join with Sloth's recording rules in dashboards.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::slo::budget::BudgetReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SloLabels {
    // Shared strings: an SLO's ~14 series (objective, budget, 8 burn-rate windows, …) hold
    // one copy of its names, which matters at 10,000 SLOs.
    pub sloth_id: LabelStr,
    pub sloth_service: LabelStr,
    pub sloth_slo: LabelStr,
}

/// A label value shared between series (`Arc<str>`; prometheus-client encodes only sized
/// `Arc<T>`s, hence the newtype).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelStr(Arc<str>);

impl From<&str> for LabelStr {
    fn from(s: &str) -> Self {
        LabelStr(s.into())
    }
}

// Hash and Eq are the inner str's, so a `&str` finds its shared copy in a set.
impl std::borrow::Borrow<str> for LabelStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for LabelStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for LabelStr {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

impl SloLabels {
    pub fn new(id: &str, service: &str, slo: &str) -> Self {
        SloLabels {
            sloth_id: id.into(),
            sloth_service: service.into(),
            sloth_slo: slo.into(),
        }
    }
}

/// The latest values of one SLO's series.
#[derive(Debug)]
struct SloValues {
    objective: f64,
    no_data: bool,
    /// `recording_rules` or `raw`.
    source: &'static str,
    consumed: Option<f64>,
    remaining: Option<f64>,
    error_ratio: Option<f64>,
    /// Burn rate per alert window; a window without a value has no series.
    burn: Box<[(LabelStr, f64)]>,
}

#[derive(Debug, Default)]
struct SloRow {
    /// None until the SLO's first successful evaluation.
    values: Option<SloValues>,
    /// `slogate_slo_evaluation_errors`.
    errors: u64,
}

/// Every loaded SLO's series, by labels (sorted, so the exposition is stable).
#[derive(Debug, Default)]
struct SloTable {
    rows: BTreeMap<SloLabels, SloRow>,
    /// Window names, shared by every SLO's burn-rate series.
    windows: HashSet<LabelStr>,
}

impl SloTable {
    fn window(&mut self, w: &str) -> LabelStr {
        if let Some(shared) = self.windows.get(w) {
            return shared.clone();
        }
        let shared = LabelStr::from(w);
        self.windows.insert(shared.clone());
        shared
    }
}

/// Encodes [`SloTable`] on each scrape, with the names, help texts, types and labels the
/// per-SLO families had.
#[derive(Debug)]
struct SloCollector(Arc<Mutex<SloTable>>);

fn slo_label_set(l: &SloLabels) -> [(&'static str, &str); 3] {
    [
        ("sloth_id", &*l.sloth_id),
        ("sloth_service", &*l.sloth_service),
        ("sloth_slo", &*l.sloth_slo),
    ]
}

impl Collector for SloCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let published = || {
            table
                .rows
                .iter()
                .filter_map(|(l, r)| r.values.as_ref().map(|v| (l, v)))
        };
        type Pick = fn(&SloValues) -> Option<f64>;
        let gauges: [(&str, &str, Pick); 4] = [
            (
                "slogate_slo_budget_consumed_ratio",
                "Error budget consumed over the SLO period (error ratio / (1 - objective))",
                |v| v.consumed,
            ),
            (
                "slogate_slo_budget_remaining_ratio",
                "Error budget remaining over the SLO period (1 - consumed)",
                |v| v.remaining,
            ),
            (
                "slogate_slo_error_ratio",
                "Error ratio over the SLO period",
                |v| v.error_ratio,
            ),
            (
                "slogate_slo_objective_ratio",
                "SLO objective as a ratio",
                |v| Some(v.objective),
            ),
        ];
        for (name, help, pick) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (l, v) in published() {
                if let Some(x) = pick(v) {
                    m.encode_family(&slo_label_set(l))?.encode_gauge(&x)?;
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "slogate_slo_burn_rate",
            "Error budget burn rate per alert window",
            None,
            MetricType::Gauge,
        )?;
        for (l, v) in published() {
            for (w, x) in v.burn.iter() {
                let [a, b, c] = slo_label_set(l);
                m.encode_family(&[a, b, c, ("window", &**w)])?
                    .encode_gauge(x)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "slogate_slo_no_data",
            "1 when Prometheus had no data for the SLO period at the last evaluation",
            None,
            MetricType::Gauge,
        )?;
        for (l, v) in published() {
            m.encode_family(&slo_label_set(l))?
                .encode_gauge(&i64::from(v.no_data))?;
        }
        let mut m = encoder.encode_descriptor(
            "slogate_slo_source",
            "1 for the source the SLO's ratios were read from (recording_rules or raw)",
            None,
            MetricType::Gauge,
        )?;
        for (l, v) in published() {
            let [a, b, c] = slo_label_set(l);
            m.encode_family(&[a, b, c, ("source", v.source)])?
                .encode_gauge(&1i64)?;
        }
        let mut m = encoder.encode_descriptor(
            "slogate_slo_evaluation_errors",
            "Evaluations of an SLO that failed (query error, ambiguous result)",
            None,
            MetricType::Counter,
        )?;
        for (l, r) in table.rows.iter().filter(|(_, r)| r.errors > 0) {
            m.encode_family(&slo_label_set(l))?
                .encode_counter::<NoLabelSet, _, u64>(&r.errors, None)?;
        }
        Ok(())
    }
}

type FGauge = Gauge<f64, AtomicU64>;

/// All self-metrics. Cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// The per-SLO series (budget, burn rates, objective, no-data, source, evaluation
    /// errors), encoded at scrape time from one compact table instead of ~14
    /// prometheus-client families entries per SLO (about 1.5 KB per SLO, 17 MB at 10,000).
    slos: Arc<Mutex<SloTable>>,
    pub evaluation_duration: Histogram,
    pub evaluations: Counter,
    pub evaluation_errors: Counter,
    pub queries: Counter,
    pub query_errors: Counter,
    pub last_evaluation: FGauge,
    pub slos_loaded: Gauge,
    pub spec_errors: Gauge,
    pub spec_reloads: Counter,
    /// The Alertmanager webhook receiver's metrics (cloned into its handler state).
    pub webhook: WebhookMetrics,
    /// Rollouts, analysis, leadership and the decision log (cloned into the rollout
    /// controllers).
    pub rollout: RolloutMetrics,
    /// The error-budget guard (cloned into the guard runtime).
    pub guard: GuardMetrics,
    /// The HTTP listener's connections ([`crate::runtime::serve`]).
    pub http: HttpMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            slos: Arc::new(Mutex::new(SloTable::default())),
            evaluation_duration: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            evaluations: Counter::default(),
            evaluation_errors: Counter::default(),
            queries: Counter::default(),
            query_errors: Counter::default(),
            last_evaluation: FGauge::default(),
            slos_loaded: Gauge::default(),
            spec_errors: Gauge::default(),
            spec_reloads: Counter::default(),
            webhook: WebhookMetrics::default(),
            rollout: RolloutMetrics::default(),
            guard: GuardMetrics::default(),
            http: HttpMetrics::default(),
            registry: Registry::default(),
        };
        m.webhook.register(&mut registry);
        m.rollout.register(&mut registry);
        m.guard.register(&mut registry);
        m.http.register(&mut registry);
        registry.register_collector(Box::new(SloCollector(m.slos.clone())));
        registry.register(
            "slogate_evaluation_duration_seconds",
            "Wall time of one evaluation cycle over all SLOs",
            m.evaluation_duration.clone(),
        );
        registry.register(
            "slogate_evaluations",
            "Evaluation cycles run",
            m.evaluations.clone(),
        );
        registry.register(
            "slogate_evaluation_errors",
            "Evaluation cycles in which at least one SLO failed",
            m.evaluation_errors.clone(),
        );
        registry.register(
            "slogate_prometheus_queries",
            "Instant queries of SLO evaluations (scheduled and alert-triggered) sent to Prometheus",
            m.queries.clone(),
        );
        registry.register(
            "slogate_prometheus_query_errors",
            "Queries to Prometheus that failed",
            m.query_errors.clone(),
        );
        registry.register(
            "slogate_last_evaluation_timestamp_seconds",
            "Unix time of the end of the last evaluation cycle",
            m.last_evaluation.clone(),
        );
        registry.register(
            "slogate_slos_loaded",
            "SLOs currently loaded",
            m.slos_loaded.clone(),
        );
        registry.register(
            "slogate_spec_files_with_errors",
            "SLO spec files whose latest version failed to load (their previous version is kept)",
            m.spec_errors.clone(),
        );
        registry.register(
            "slogate_spec_reloads",
            "Times the SLO spec set changed and was reloaded",
            m.spec_reloads.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Publish the reports of one cycle. SLOs no longer present lose their series; SLOs
    /// that failed this cycle keep their previous values (their error counter goes up).
    pub fn publish(&self, reports: &[&BudgetReport], failed: &[SloLabels], current: &[SloLabels]) {
        // A poisoned lock only means another thread panicked mid-update; the table is still
        // a valid record of the series, so keep using it.
        let mut table = self.slos.lock().unwrap_or_else(|p| p.into_inner());
        for r in reports {
            let l = SloLabels::new(&r.id, &r.service, &r.slo);
            let burn: Box<[(LabelStr, f64)]> = r
                .burn_rates
                .iter()
                .filter_map(|(w, v)| v.map(|v| (table.window(w), v)))
                .collect();
            let values = SloValues {
                objective: r.objective,
                no_data: r.no_data,
                source: match r.source {
                    crate::slo::budget::Source::RecordingRules => "recording_rules",
                    crate::slo::budget::Source::Raw => "raw",
                },
                consumed: r.budget_consumed,
                remaining: r.budget_remaining,
                error_ratio: r.error_ratio,
                burn,
            };
            table.rows.entry(l).or_default().values = Some(values);
        }
        for l in failed {
            table.rows.entry(l.clone()).or_default().errors += 1;
        }
        let current: HashSet<&SloLabels> = current.iter().collect();
        table.rows.retain(|l, _| current.contains(l));
        let used: HashSet<LabelStr> = table
            .rows
            .values()
            .filter_map(|r| r.values.as_ref())
            .flat_map(|v| v.burn.iter().map(|(w, _)| w.clone()))
            .collect();
        table.windows.retain(|w| used.contains(w));
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `code` label of `slogate_webhook_requests_total`: the HTTP status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

/// `result` label of `slogate_webhook_alerts_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum AlertResult {
    /// A firing alert of a known SLO, stored for the first time.
    Recorded,
    /// A resolved alert of a known SLO, stored for the first time.
    Resolved,
    /// Seen before (same fingerprint, status and start time).
    Duplicate,
    /// Not mapped to any loaded SLO.
    Unknown,
}

impl AlertResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertResult::Recorded => "recorded",
            AlertResult::Resolved => "resolved",
            AlertResult::Duplicate => "duplicate",
            AlertResult::Unknown => "unknown",
        }
    }
}

impl EncodeLabelValue for AlertResult {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertResultLabels {
    pub result: AlertResult,
}

/// Metrics of the Alertmanager webhook receiver. Cloning shares the series.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    pub requests: Family<CodeLabels, Counter>,
    pub alerts: Family<AlertResultLabels, Counter>,
    pub duration: Histogram,
    /// Alerts recorded whose evaluation trigger could not be queued (queue full or closed);
    /// the SLO is still evaluated at the next scheduled cycle.
    pub triggers_dropped: Counter,
    /// Alert triggers folded into one already waiting for the same SLO
    /// ([`crate::runtime::coalesce`]).
    pub triggers_coalesced: Counter,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics {
            requests: Family::default(),
            alerts: Family::default(),
            duration: Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            triggers_dropped: Counter::default(),
            triggers_coalesced: Counter::default(),
        }
    }
}

impl WebhookMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "slogate_webhook_requests",
            "Requests to the Alertmanager webhook receiver, by HTTP status answered",
            self.requests.clone(),
        );
        registry.register(
            "slogate_webhook_alerts",
            "Alerts received through the webhook: recorded, resolved, duplicate or unknown (no loaded SLO)",
            self.alerts.clone(),
        );
        registry.register(
            "slogate_webhook_request_duration_seconds",
            "Time to answer one webhook request (authentication, parsing, recording)",
            self.duration.clone(),
        );
        registry.register(
            "slogate_webhook_triggers_dropped",
            "Recorded alerts whose immediate evaluation could not be queued",
            self.triggers_dropped.clone(),
        );
        registry.register(
            "slogate_alert_triggers_coalesced",
            "Alert triggers folded into an evaluation already waiting for the same SLO",
            self.triggers_coalesced.clone(),
        );
    }

    /// Count one alert.
    pub fn alert(&self, result: AlertResult) {
        self.alerts
            .get_or_create(&AlertResultLabels { result })
            .inc();
    }
}

/// Connections of the HTTP listener ([`crate::runtime::serve`]). Cloning shares the series.
#[derive(Clone, Debug, Default)]
pub struct HttpMetrics {
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections accepted.
    pub connections_total: Counter,
    /// Connections closed to make room for a new one (oldest without a running request).
    pub connections_evicted: Counter,
    /// Connections answered 503 and closed: every slot ran a request.
    pub connections_refused: Counter,
    /// Connections closed because a request head did not arrive in time.
    pub header_timeouts: Counter,
}

impl HttpMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "slogate_http_connections",
            "Open connections of the HTTP listener",
            self.connections_open.clone(),
        );
        registry.register(
            "slogate_http_connections_accepted",
            "Connections accepted by the HTTP listener",
            self.connections_total.clone(),
        );
        registry.register(
            "slogate_http_connections_evicted",
            "Connections closed to make room under server.max_connections (the oldest one running no request)",
            self.connections_evicted.clone(),
        );
        registry.register(
            "slogate_http_connections_refused",
            "Connections answered 503 because every slot under server.max_connections ran a request",
            self.connections_refused.clone(),
        );
        registry.register(
            "slogate_http_header_timeouts",
            "Connections closed because a request head did not arrive within server.header_read_timeout",
            self.header_timeouts.clone(),
        );
    }
}

/// `namespace`, `rollout` labels of the per-rollout series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    pub namespace: String,
    pub rollout: String,
}

/// `slogate_rollout_phase{namespace,rollout,phase}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub namespace: String,
    pub rollout: String,
    pub phase: String,
}

/// `slogate_analysis_result_total{namespace,rollout,metric,result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnalysisResultLabels {
    pub namespace: String,
    pub rollout: String,
    pub metric: String,
    /// `pass`, `fail` or `inconclusive`.
    pub result: String,
}

/// `slogate_analysis_p_value{namespace,rollout,metric}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnalysisMetricLabels {
    pub namespace: String,
    pub rollout: String,
    pub metric: String,
}

/// `slogate_decisions_total{kind,action}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The decision log's kind: `rollout`, `operator`, `guard`, `known_good`, `promote`.
    pub kind: String,
    pub action: String,
}

/// `app` label of the guard's per-app series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    pub app: String,
}

/// `slogate_guard_rollbacks_total{app,slo}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppSloLabels {
    pub app: String,
    /// The SLO whose budget breach caused the revert.
    pub slo: String,
}

/// `kind` of a failure: the error's `metric_label()`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Metrics of the error-budget guard. Cloning shares the series.
#[derive(Clone, Debug, Default)]
pub struct GuardMetrics {
    /// 1 while the app is frozen by a budget breach, 0 otherwise (set after every guard run).
    pub frozen: Family<AppLabels, Gauge>,
    /// Revert commits the guard pushed.
    pub rollbacks: Family<AppSloLabels, Counter>,
    /// Guard runs that failed, by kind (`GuardError::metric_label`).
    pub failures: Family<KindLabels, Counter>,
}

impl GuardMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "slogate_guard_frozen",
            "1 while an app is frozen by an error-budget breach, 0 otherwise",
            self.frozen.clone(),
        );
        registry.register(
            "slogate_guard_rollbacks",
            "Revert commits pushed by the error-budget guard, per app and SLO",
            self.rollbacks.clone(),
        );
        registry.register(
            "slogate_guard_failures",
            "Guard runs that failed, by kind of error",
            self.failures.clone(),
        );
    }
}

/// Metrics of the rollout controllers, leadership and the decision log. Cloning shares the
/// series (the daemon registers one set; tests and the demo may use an unregistered one).
#[derive(Clone, Debug, Default)]
pub struct RolloutMetrics {
    /// Canary weight in percent, as last confirmed on the route.
    pub weight: Family<RolloutLabels, Gauge>,
    /// 1 for the rollout's current phase, 0 for the others.
    pub phase: Family<PhaseLabels, Gauge>,
    /// Index into `spec.steps` of the step in effect (the last step while promoting).
    pub step: Family<RolloutLabels, Gauge>,
    /// Seconds left at the current step before it may advance (its hold, or one interval);
    /// 0 outside Progressing.
    pub step_remaining: Family<RolloutLabels, Gauge>,
    /// Checks judged, by metric and result.
    pub analysis_result: Family<AnalysisResultLabels, Counter>,
    /// The last p-value of a comparative metric or of the sequential error-count test.
    pub p_value: Family<AnalysisMetricLabels, FGauge>,
    /// 1 while this replica holds the leader lease (or runs without leader election).
    pub leader: Gauge,
    /// Decision-log records written, by kind and action.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Rollouts by `state`: `running` (a controller runs) or `rejected` (invalid, or its
    /// controller could not be built; not running).
    pub specs: Family<SpecStateLabels, Gauge>,
    /// Readings of the rollout source that failed (API down, unreadable files).
    pub source_errors: Counter,
    /// Reconciles that failed, by kind (`RolloutError::metric_label`).
    pub reconcile_failures: Family<KindLabels, Counter>,
}

/// `slogate_rollouts{state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpecStateLabels {
    pub state: String,
}

impl RolloutMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "slogate_rollout_weight",
            "Canary weight of a rollout in percent, as last confirmed on its route",
            self.weight.clone(),
        );
        registry.register(
            "slogate_rollout_phase",
            "1 for the current phase of a rollout, 0 for the other phases",
            self.phase.clone(),
        );
        registry.register(
            "slogate_rollout_step",
            "Index into spec.steps of the step a rollout is at",
            self.step.clone(),
        );
        registry.register(
            "slogate_rollout_step_remaining_seconds",
            "Seconds left at the current step of a rollout before it may advance (its hold, or one interval); 0 outside Progressing",
            self.step_remaining.clone(),
        );
        registry.register(
            "slogate_analysis_result",
            "Analysis checks judged per metric: pass, fail or inconclusive",
            self.analysis_result.clone(),
        );
        registry.register(
            "slogate_analysis_p_value",
            "Last p-value of a comparative metric or of the anytime-valid error-count test",
            self.p_value.clone(),
        );
        registry.register(
            "slogate_leader",
            "1 while this replica is the leader (only the leader writes weights, commits or state)",
            self.leader.clone(),
        );
        registry.register(
            "slogate_decisions",
            "Decision-log records written, by kind and action",
            self.decisions.clone(),
        );
        registry.register(
            "slogate_rollouts",
            "Rollouts by state: running (a controller runs it), rejected (invalid spec, not running) or refused (reaches beyond its namespace: a route or GitOps path it may not use)",
            self.specs.clone(),
        );
        registry.register(
            "slogate_rollout_source_errors",
            "Readings of the rollout source (rollouts.paths or the cluster's Rollouts) that failed",
            self.source_errors.clone(),
        );
        registry.register(
            "slogate_rollout_reconcile_failures",
            "Rollout reconciles that failed, by kind of error",
            self.reconcile_failures.clone(),
        );
    }

    /// Set `slogate_rollouts{state}`.
    pub fn set_rollout_specs(&self, running: usize, rejected: usize, refused: usize) {
        for (state, n) in [
            ("running", running),
            ("rejected", rejected),
            ("refused", refused),
        ] {
            self.specs
                .get_or_create(&SpecStateLabels {
                    state: state.to_string(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Count a failed reading of the rollout source.
    pub fn rollout_source_error(&self) {
        self.source_errors.inc();
    }

    /// Drop the gauges of a rollout that no longer runs (its weight, step, phases and the
    /// p-values of `metrics`), so dashboards do not show a deleted rollout as stuck.
    /// Counters stay.
    pub fn forget_rollout(
        &self,
        namespace: &str,
        rollout: &str,
        all_phases: &[&str],
        metrics: &[&str],
    ) {
        let l = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: rollout.to_string(),
        };
        self.weight.remove(&l);
        self.step.remove(&l);
        self.step_remaining.remove(&l);
        for p in all_phases {
            self.phase.remove(&PhaseLabels {
                namespace: namespace.to_string(),
                rollout: rollout.to_string(),
                phase: p.to_string(),
            });
        }
        for m in metrics {
            self.p_value.remove(&AnalysisMetricLabels {
                namespace: namespace.to_string(),
                rollout: rollout.to_string(),
                metric: m.to_string(),
            });
        }
    }

    /// Publish a rollout's phase (1 for `current`, 0 for the others), step and weight.
    pub fn set_rollout(
        &self,
        namespace: &str,
        rollout: &str,
        current: &str,
        all_phases: &[&str],
        step: i64,
        weight: i64,
    ) {
        let l = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: rollout.to_string(),
        };
        self.weight.get_or_create(&l).set(weight);
        self.step.get_or_create(&l).set(step);
        for p in all_phases {
            self.phase
                .get_or_create(&PhaseLabels {
                    namespace: namespace.to_string(),
                    rollout: rollout.to_string(),
                    phase: p.to_string(),
                })
                .set(i64::from(*p == current));
        }
    }

    /// Publish the seconds left at a rollout's current step (0 when it is not progressing).
    pub fn set_step_remaining(&self, namespace: &str, rollout: &str, seconds: i64) {
        let l = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: rollout.to_string(),
        };
        self.step_remaining.get_or_create(&l).set(seconds);
    }

    /// Count one judged check, and record its p-value when it has one.
    pub fn analysis(
        &self,
        namespace: &str,
        rollout: &str,
        metric: &str,
        result: &str,
        p_value: Option<f64>,
    ) {
        self.analysis_result
            .get_or_create(&AnalysisResultLabels {
                namespace: namespace.to_string(),
                rollout: rollout.to_string(),
                metric: metric.to_string(),
                result: result.to_string(),
            })
            .inc();
        if let Some(p) = p_value.filter(|p| p.is_finite()) {
            self.p_value
                .get_or_create(&AnalysisMetricLabels {
                    namespace: namespace.to_string(),
                    rollout: rollout.to_string(),
                    metric: metric.to_string(),
                })
                .set(p);
        }
    }

    /// Count one decision-log record.
    pub fn decision(&self, kind: &str, action: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                kind: kind.to_string(),
                action: action.to_string(),
            })
            .inc();
    }

    /// Set `slogate_leader`.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::budget::{Action, Source};

    fn report(id: &str, consumed: Option<f64>, windows: &[(&str, Option<f64>)]) -> BudgetReport {
        BudgetReport {
            id: id.into(),
            service: "svc".into(),
            slo: id.into(),
            objective: 0.999,
            period: "30d".into(),
            error_ratio: consumed.map(|c| c * 0.001),
            budget_consumed: consumed,
            budget_remaining: consumed.map(|c| 1.0 - c),
            burn_rates: windows.iter().map(|(w, v)| (w.to_string(), *v)).collect(),
            action: Action::None,
            no_data: consumed.is_none(),
            source: Source::Raw,
        }
    }

    fn lines(m: &Metrics, id: &str) -> Vec<String> {
        let text = m.encode().unwrap();
        let needle = format!("sloth_id=\"{id}\"");
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn per_slo_series_follow_the_latest_cycle() {
        let m = Metrics::new();
        let a = report("a", Some(0.25), &[("5m", Some(2.0)), ("1h", None)]);
        let b = report("b", None, &[]);
        let (la, lb) = (
            SloLabels::new("a", "svc", "a"),
            SloLabels::new("b", "svc", "b"),
        );
        m.publish(&[&a, &b], &[], &[la.clone(), lb.clone()]);
        let sel = "{sloth_id=\"a\",sloth_service=\"svc\",sloth_slo=\"a\"";
        assert_eq!(
            lines(&m, "a"),
            vec![
                format!("slogate_slo_budget_consumed_ratio{sel}}} 0.25"),
                format!("slogate_slo_budget_remaining_ratio{sel}}} 0.75"),
                format!("slogate_slo_burn_rate{sel},window=\"5m\"}} 2.0"),
                format!("slogate_slo_error_ratio{sel}}} 0.00025"),
                format!("slogate_slo_no_data{sel}}} 0"),
                format!("slogate_slo_objective_ratio{sel}}} 0.999"),
                format!("slogate_slo_source{sel},source=\"raw\"}} 1"),
            ]
        );
        // No data: no ratio series, only objective, no-data and source.
        assert_eq!(lines(&m, "b").len(), 3, "{:?}", lines(&m, "b"));
        assert!(lines(&m, "b")
            .iter()
            .any(|l| l.starts_with("slogate_slo_no_data") && l.ends_with(" 1")));

        // a fails twice: its values stay, its error counter counts.
        m.publish(&[&b], std::slice::from_ref(&la), &[la.clone(), lb.clone()]);
        m.publish(&[&b], std::slice::from_ref(&la), &[la.clone(), lb.clone()]);
        let now = lines(&m, "a");
        assert!(
            now.contains(&format!("slogate_slo_evaluation_errors_total{sel}}} 2")),
            "{now:?}"
        );
        assert!(now.contains(&format!("slogate_slo_budget_consumed_ratio{sel}}} 0.25")));

        // a's new report has no 5m value: that series goes.
        let a2 = report("a", Some(0.5), &[("5m", None), ("1h", Some(1.5))]);
        m.publish(&[&a2, &b], &[], &[la.clone(), lb.clone()]);
        let now = lines(&m, "a");
        assert!(!now.iter().any(|l| l.contains("window=\"5m\"")), "{now:?}");
        assert!(now.contains(&format!("slogate_slo_burn_rate{sel},window=\"1h\"}} 1.5")));

        // a is no longer loaded: every series of it goes, the error counter too.
        m.publish(&[&b], &[], std::slice::from_ref(&lb));
        assert!(lines(&m, "a").is_empty(), "{:?}", lines(&m, "a"));
        assert_eq!(lines(&m, "b").len(), 3);
        // The descriptors stay, as an empty family's did.
        assert!(m
            .encode()
            .unwrap()
            .contains("# TYPE slogate_slo_burn_rate gauge"));
    }
}
