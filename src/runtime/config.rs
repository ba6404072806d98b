//! Daemon configuration: a YAML (or TOML) file plus `SLOGATE_…` environment variables,
//! through the `config` crate. Nested keys use a double underscore in the environment:
//! `SLOGATE_PROMETHEUS__URL`, `SLOGATE_EVALUATION__INTERVAL`, `SLOGATE_SERVER__LISTEN`.
//! Environment variables win over the file. Every key has a default except
//! `prometheus.url`; the README's configuration reference lists them all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::guard::decide::AppGuard;
use crate::rollout::load::is_dns_label;
use crate::rollout::scope::{self, ANY, GITOPS_PATHS_KEY, ROUTE_NAMESPACES_KEY};

use crate::slo::PromDuration;

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// `auto` (default), `on` or `off`: the default of the five backends (`state.backend`,
    /// `rollouts.source`, `.router`, `.state`, `.versions`), `kube` when on, `file` when off.
    pub cluster: ClusterMode,
    pub prometheus: PrometheusConfig,
    pub slos: SlosConfig,
    pub evaluation: EvaluationConfig,
    pub server: ServerConfig,
    pub state: StateConfig,
    pub gitops: Option<GitopsConfig>,
    pub guard: GuardConfig,
    pub api: ApiConfig,
    /// `POST /webhook/alertmanager` (off unless `webhook.enabled`).
    pub webhook: super::webhook::WebhookConfig,
    /// Slack / generic webhook notifiers.
    pub notifications: Vec<crate::adapters::notify::NotifierConfig>,
    /// The Argo CD API server, for sync requests after a revert.
    pub argocd: Option<crate::adapters::argocd::ArgoCdConfig>,
    /// Canary rollouts driven by this daemon.
    pub rollouts: RolloutsConfig,
    /// Leader election on a Kubernetes Lease (off: this replica always leads).
    pub leader_election: LeaderElectionConfig,
    /// Where each of the five backends got its value (set by [`Config::load`]).
    #[serde(skip)]
    pub backends: Backends,
}

/// The `cluster` key: one switch for the five backends.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum ClusterMode {
    /// On when this process runs in a pod ([`in_cluster_here`]), else off.
    #[default]
    Auto,
    /// Every backend not set explicitly is `kube`.
    On,
    /// Every backend not set explicitly is `file`.
    Off,
}

impl TryFrom<String> for ClusterMode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "auto" => Ok(ClusterMode::Auto),
            "on" => Ok(ClusterMode::On),
            "off" => Ok(ClusterMode::Off),
            other => Err(format!(
                "cluster: expected `auto`, `on` or `off`, found `{other}`"
            )),
        }
    }
}

impl ClusterMode {
    /// Whether the backends default to `kube`, given whether this process runs in a pod.
    pub fn resolve(self, in_cluster: bool) -> bool {
        match self {
            ClusterMode::Auto => in_cluster,
            ClusterMode::On => true,
            ClusterMode::Off => false,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ClusterMode::Auto => "auto",
            ClusterMode::On => "on",
            ClusterMode::Off => "off",
        }
    }
}

/// The service account token every pod gets, unless `automountServiceAccountToken: false`.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Whether this process runs in a pod, as `cluster: auto` decides it: the service account
/// token is mounted and `KUBERNETES_SERVICE_HOST` is set (the two things the in-cluster
/// client configuration needs). `env`: the environment to read, else the process's.
pub fn in_cluster_here(env: Option<&std::collections::HashMap<String, String>>) -> bool {
    let host = match env {
        Some(env) => env.contains_key("KUBERNETES_SERVICE_HOST"),
        None => std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
    };
    host && Path::new(SERVICE_ACCOUNT_TOKEN).is_file()
}

/// The five backend keys, in the order [`Backends::explicit`] holds them.
pub const BACKEND_KEYS: [&str; 5] = [
    "state.backend",
    "rollouts.source",
    "rollouts.router",
    "rollouts.state",
    "rollouts.versions",
];

/// How the five backends were chosen: the `cluster` mode, what it resolved to, and which
/// keys were set explicitly (in the file or the environment), which `cluster` does not touch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backends {
    pub mode: ClusterMode,
    /// What `mode` resolved to: `kube` defaults when true.
    pub cluster: bool,
    /// Per [`BACKEND_KEYS`]: set explicitly.
    pub explicit: [bool; 5],
}

impl Backends {
    /// Where `key` (one of [`BACKEND_KEYS`]) got its value: `explicit`, or `cluster: MODE`.
    pub fn origin(&self, key: &str) -> String {
        let i = BACKEND_KEYS.iter().position(|k| *k == key);
        if i.is_some_and(|i| self.explicit[i]) {
            "explicit".to_string()
        } else {
            let on = if self.cluster { "on" } else { "off" };
            match self.mode {
                ClusterMode::Auto => format!("cluster: auto, {on}"),
                m => format!("cluster: {}", m.as_str()),
            }
        }
    }
}

/// Which `TrafficRouter` the rollout controllers use.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    /// A JSON weights file per rollout under `rollouts.weights_dir` (local runs, tests).
    #[default]
    File,
    /// The Rollout's Istio VirtualService or Gateway API HTTPRoute, through the Kubernetes API.
    Kube,
}

/// Where the rollout controllers keep each rollout's state (`rollout/<ns>/<name>`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum RolloutStateKind {
    /// The embedded file store under `state.dir` (local runs, one replica).
    #[default]
    File,
    /// The status subresource of each Rollout object, through the Kubernetes API: every
    /// replica sees it, so a new leader resumes where the old one stopped. The Rollouts must
    /// be applied to the cluster. Commands are in the `state.backend` store, the decision log
    /// in `state.dir`.
    Kube,
}

/// Where the daemon finds the Rollouts it runs.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum RolloutSourceKind {
    /// `rollouts.paths`: files or directories of Rollout YAML (local runs, a mounted
    /// ConfigMap), read again every `rollouts.resync_interval`.
    #[default]
    File,
    /// The cluster's `slogate.dev/v1alpha1` Rollout objects (`kubectl apply`), in
    /// `rollouts.namespaces` or every namespace, listed every `rollouts.resync_interval`.
    Kube,
}

impl TryFrom<String> for RolloutSourceKind {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        file_or_kube(
            "rollouts.source",
            &value,
            RolloutSourceKind::File,
            RolloutSourceKind::Kube,
        )
    }
}

/// Where the rollout controllers read the versions the stable and canary workloads run.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum VersionsKind {
    /// `rollouts.versions_file` (`<namespace>/<name>: {stable: v1, canary: v2}`).
    #[default]
    File,
    /// The workloads' pod template label `spec.workloads.versionLabel`, through the
    /// Kubernetes API.
    Kube,
}

/// `file` or `kube` at `key`, with a message naming the key, the choices and what was found
/// (the config crate's own message for an unknown enum variant names neither the key nor
/// the choices).
fn file_or_kube<T>(key: &str, value: &str, file: T, kube: T) -> Result<T, String> {
    match value {
        "file" => Ok(file),
        "kube" => Ok(kube),
        other => Err(format!("{key}: expected `file` or `kube`, found `{other}`")),
    }
}

impl TryFrom<String> for RolloutStateKind {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        file_or_kube(
            "rollouts.state",
            &value,
            RolloutStateKind::File,
            RolloutStateKind::Kube,
        )
    }
}

impl TryFrom<String> for VersionsKind {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        file_or_kube(
            "rollouts.versions",
            &value,
            VersionsKind::File,
            VersionsKind::Kube,
        )
    }
}

/// The `rollouts` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutsConfig {
    /// Where the Rollouts come from: `file` (`paths`) or `kube` (the cluster's Rollout
    /// objects).
    pub source: RolloutSourceKind,
    /// `source: file`: files or directories of Rollout YAML (`slogate.dev/v1alpha1
    /// Rollout`). Empty: no rollouts.
    pub paths: Vec<PathBuf>,
    /// `source: kube`: the namespaces whose Rollouts are run. Empty: every namespace.
    pub namespaces: Vec<String>,
    /// How often the source is read again: new Rollouts start, changed specs restart their
    /// controller (which resumes from its stored state), deleted ones stop (default 30s).
    pub resync_interval: Option<PromDuration>,
    /// `file` or `kube`.
    pub router: RouterKind,
    /// Where each rollout's state is stored: `file` (`state.dir`) or `kube` (the Rollout's
    /// status).
    pub state: RolloutStateKind,
    /// Where the workloads' versions are read: `file` (`versions_file`) or `kube` (the
    /// workloads' version label).
    pub versions: VersionsKind,
    /// File router: directory of the weights files, `<dir>/<namespace>/<name>.json`
    /// (default `<state.dir>/weights`).
    pub weights_dir: Option<PathBuf>,
    /// `versions: file`: the stable and canary versions of each rollout's workloads
    /// (`<namespace>/<name>: {stable: v1, canary: v2}`), read at every reconcile. Required
    /// when there are rollouts and `versions` is `file`; refused with `versions: kube`.
    pub versions_file: Option<PathBuf>,
    /// Bound on one revert or promotion commit (default 10m; each git command has
    /// `gitops.timeout` too).
    pub git_timeout: Option<PromDuration>,
    /// Route namespaces a Rollout may use besides its own, by Rollout namespace (`*`: every
    /// Rollout namespace; the value `*`: any namespace). Empty (the default): a Rollout's
    /// route must be in its own namespace.
    pub route_namespaces: BTreeMap<String, Vec<String>>,
    /// GitOps path prefixes a Rollout may revert and commit under, by Rollout namespace. A
    /// namespace not listed gets none. Absent: every path (`slogate run` warns at start that
    /// Rollouts are not scoped).
    pub gitops_paths: Option<BTreeMap<String, Vec<String>>>,
}

impl RolloutsConfig {
    /// Default of `resync_interval`.
    pub const DEFAULT_RESYNC: Duration = Duration::from_secs(30);

    /// Whether the daemon runs rollouts at all: Rollout files are configured, or they are
    /// read from the cluster.
    pub fn enabled(&self) -> bool {
        self.source == RolloutSourceKind::Kube || !self.paths.is_empty()
    }

    /// `resync_interval`, defaulted.
    pub fn resync(&self) -> Duration {
        self.resync_interval
            .map(|d| d.as_std())
            .unwrap_or(Self::DEFAULT_RESYNC)
    }

    /// `source` with the keys it reads, `namespaces` and `resync_interval`.
    fn check_source(&self) -> Result<(), String> {
        match self.source {
            RolloutSourceKind::Kube if !self.paths.is_empty() => {
                return Err(format!(
                    "rollouts.paths: only read with `rollouts.source: file`, found {} path(s) with `source: kube` (Rollouts are then read from the cluster); remove one of them",
                    self.paths.len()
                ));
            }
            RolloutSourceKind::File if !self.namespaces.is_empty() => {
                return Err(format!(
                    "rollouts.namespaces: only read with `rollouts.source: kube`, found [{}] with `source: file`; set `source: kube` or remove it",
                    self.namespaces.join(", ")
                ));
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            if !is_dns_label(ns) {
                return Err(format!(
                    "rollouts.namespaces[{i}]: expected a namespace name (at most 63 of [a-z0-9-], starting and ending alphanumeric), found {ns:?}"
                ));
            }
            if !seen.insert(ns) {
                return Err(format!("rollouts.namespaces[{i}]: {ns} is listed twice"));
            }
        }
        if let Some(d) = self.resync_interval {
            if d.as_std() < Duration::from_secs(1) {
                return Err(format!(
                    "rollouts.resync_interval: expected at least 1s, found {d}"
                ));
            }
        }
        Ok(())
    }

    /// `route_namespaces` and `gitops_paths`: namespaces are namespace names (or `*` where
    /// allowed), prefixes are relative paths below the repository root without `..`.
    fn check_scope(&self) -> Result<(), String> {
        let ns_or_any = |s: &str| s == ANY || is_dns_label(s);
        for (ns, list) in &self.route_namespaces {
            if !ns_or_any(ns) {
                return Err(format!(
                    "{ROUTE_NAMESPACES_KEY}: expected a Rollout namespace name or `*` as key, found {ns:?}"
                ));
            }
            for (i, n) in list.iter().enumerate() {
                if !ns_or_any(n) {
                    return Err(format!(
                        "{ROUTE_NAMESPACES_KEY}.{ns}[{i}]: expected a namespace name (at most 63 of [a-z0-9-], starting and ending alphanumeric) or `*`, found {n:?}"
                    ));
                }
            }
        }
        for (ns, list) in self.gitops_paths.iter().flatten() {
            if !is_dns_label(ns) {
                return Err(format!(
                    "{GITOPS_PATHS_KEY}: expected a Rollout namespace name as key, found {ns:?}"
                ));
            }
            for (i, p) in list.iter().enumerate() {
                match scope::components(p) {
                    Ok(c) if c.is_empty() => {
                        return Err(format!(
                            "{GITOPS_PATHS_KEY}.{ns}[{i}]: expected a path prefix below the repository root such as apps/{ns}, found {p:?} (the whole repository cannot be allowed; leave {GITOPS_PATHS_KEY} unset for that)"
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(format!("{GITOPS_PATHS_KEY}.{ns}[{i}]: {e}, e.g. apps/{ns}"))
                    }
                }
            }
        }
        Ok(())
    }

    /// The scoping rules of Rollouts, with the guard's `apps` (name → path).
    pub fn scope(&self, guard_apps: &[GuardAppConfig]) -> scope::Scope {
        scope::Scope {
            route_namespaces: self.route_namespaces.clone(),
            gitops_paths: self.gitops_paths.clone(),
            guarded_apps: guard_apps
                .iter()
                .map(|a| (a.name.clone(), a.path.clone()))
                .collect(),
        }
    }

    /// The weights directory, defaulting under the state directory.
    pub fn weights_dir(&self, state_dir: &Path) -> PathBuf {
        self.weights_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("weights"))
    }
}

/// The `leader_election` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// Elect a leader on a `coordination.k8s.io/v1` Lease; only the leader writes weights,
    /// commits or state. Off: this replica always leads (run one replica).
    pub enabled: bool,
    /// Namespace of the Lease (default: `POD_NAMESPACE`, else `slogate`).
    pub namespace: Option<String>,
    /// Name of the Lease.
    pub name: String,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: false,
            namespace: None,
            name: "slogate".to_string(),
        }
    }
}

/// Where the state documents (guard records, rollout commands and state, approvals,
/// webhook dedupe records) are kept.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum StateBackend {
    /// The embedded file store under `state.dir` (local runs, one replica).
    #[default]
    File,
    /// One ConfigMap per document in `state.namespace`, through the Kubernetes API, shared
    /// by every replica (`crate::adapters::kube::ConfigMapStore`), with the recent decision log.
    /// Each replica's complete decision log stays in `state.dir`.
    Kube,
}

impl TryFrom<String> for StateBackend {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        file_or_kube(
            "state.backend",
            &value,
            StateBackend::File,
            StateBackend::Kube,
        )
    }
}

/// Where durable state (guard records, rollout state outside a cluster, approvals) and the
/// decision log live.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the embedded file store: every document with `backend: file`, the
    /// decision log always. Must be writable (a volume).
    pub dir: PathBuf,
    /// `file` (`dir`) or `kube` (ConfigMaps in `namespace`, shared by the replicas).
    pub backend: StateBackend,
    /// `backend: kube`: the namespace of the state ConfigMaps (default: the
    /// `POD_NAMESPACE` environment variable; one of them is required).
    pub namespace: Option<String>,
    /// How long the leader's hourly sweep keeps promotion approvals and the command queues
    /// of Rollouts that no longer run (`crate::runtime::state_gc`; default 30d, at least 1h).
    pub retention: PromDuration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("/var/lib/slogate"),
            backend: StateBackend::File,
            namespace: None,
            retention: PromDuration::from_days(30),
        }
    }
}

impl StateConfig {
    /// `backend: kube`: `namespace`, else `pod_namespace` (the `POD_NAMESPACE` environment
    /// variable), else an error naming both.
    pub fn kube_namespace(&self, pod_namespace: Option<String>) -> Result<String, String> {
        self.namespace
            .clone()
            .or(pod_namespace)
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                "state.namespace: expected the namespace of the state ConfigMaps \
                 (state.backend: kube), or the POD_NAMESPACE environment variable (the downward \
                 API's metadata.namespace), found neither"
                    .to_string()
            })
    }
}

/// The GitOps repository the guard reverts in and `promote` writes to.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitopsConfig {
    /// Remote URL: a path, `file://`, `git://`, `https://` or `ssh://`.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Local clone; default `<state.dir>/repo`.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// `{type: none}`, `{type: token, token: {file: …}}`, `{type: basic, username, password:
    /// {env: …}}` or `{type: ssh_key, key_file, known_hosts_file}`.
    #[serde(default)]
    pub auth: crate::adapters::git::Auth,
    #[serde(default = "default_author_name")]
    pub author_name: String,
    #[serde(default = "default_author_email")]
    pub author_email: String,
    /// `push` (default) or `pull-request`.
    #[serde(default)]
    pub mode: crate::adapters::git::RevertMode,
    /// The forge that opens revert pull requests (`mode: pull-request`).
    #[serde(default)]
    pub forge: Option<crate::adapters::git::ForgeConfig>,
    /// Timeout of every git command.
    #[serde(default = "default_git_timeout")]
    pub timeout: PromDuration,
    /// Non-fast-forward retries of a push.
    #[serde(default = "default_push_retries")]
    pub push_retries: u32,
}

fn default_branch() -> String {
    "main".into()
}
fn default_author_name() -> String {
    "slogate".into()
}
fn default_author_email() -> String {
    "slogate@localhost".into()
}
fn default_git_timeout() -> PromDuration {
    PromDuration::from_secs(120)
}
fn default_push_retries() -> u32 {
    3
}

/// The error-budget guard: which apps it protects.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// How long every SLO of an app must stay under a burn rate of 1 before its newest
    /// deploy commit becomes known-good.
    pub soak: PromDuration,
    pub apps: Vec<GuardAppConfig>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            soak: PromDuration::from_mins(60),
            apps: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuardAppConfig {
    /// App name (used in state keys, the API, notifications).
    pub name: String,
    /// Path of the app in the GitOps repo; only commits touching it are reverted.
    pub path: String,
    /// SLO ids (`<service>-<slo>`) whose budgets guard this app.
    pub slos: Vec<String>,
    #[serde(default = "default_emergency")]
    pub emergency: f64,
    #[serde(default = "default_critical")]
    pub critical: f64,
    #[serde(default)]
    pub rollback_on_critical: bool,
    /// Overrides `guard.soak` for this app.
    #[serde(default)]
    pub soak: Option<PromDuration>,
    /// What a deploy that regresses the app's SLOs (post-deploy verification) or a
    /// burn-rate page with a deploy in its window leads to.
    #[serde(default)]
    pub on_deploy_regression: crate::guard::verify::OnRegression,
    /// Post-deploy verification settings.
    #[serde(default)]
    pub verification: VerificationConfig,
    /// Ask Argo CD to sync this Application after a revert (needs the `argocd` section).
    #[serde(default)]
    pub argocd: Option<crate::adapters::argocd::ArgoCdApp>,
    /// Ask Flux to reconcile this Kustomization after a revert (needs cluster access).
    #[serde(default)]
    pub flux: Option<FluxTarget>,
}

/// Post-deploy verification of one guarded app (README "Post-deploy verification").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationConfig {
    /// How long each deploy is verified; the same span before it is the baseline.
    pub window: PromDuration,
    /// Slice length of the before/after comparison.
    pub step: PromDuration,
    /// Burn-rate factor since the deploy that may revert it (default: the SLO's page factor).
    pub page_factor: Option<f64>,
    /// Factor that applies once `ticket_after` has passed (default: the SLO's ticket factor).
    pub ticket_factor: Option<f64>,
    pub ticket_after: PromDuration,
    /// Significance level of the error-count test.
    pub alpha: f64,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        let p = crate::guard::verify::VerifyPolicy::default();
        VerificationConfig {
            window: PromDuration::from_mins(60),
            step: PromDuration::from_mins(1),
            page_factor: p.page_factor,
            ticket_factor: p.ticket_factor,
            ticket_after: PromDuration::from_mins(30),
            alpha: p.alpha,
        }
    }
}

impl VerificationConfig {
    fn check(&self, at: &str) -> Result<(), String> {
        if self.step.as_millis() < 1000 || !self.step.as_millis().is_multiple_of(1000) {
            return Err(format!(
                "{at}.verification.step: expected whole seconds, at least 1s, found {}",
                self.step
            ));
        }
        if self.window.as_millis() < self.step.as_millis() * 3 {
            return Err(format!(
                "{at}.verification.window: expected at least three steps ({}), found {}",
                self.step, self.window
            ));
        }
        if self.window.as_millis() / self.step.as_millis() > 1000 {
            return Err(format!(
                "{at}.verification.step: expected at most 1000 steps per window, found {} in {}",
                self.step, self.window
            ));
        }
        for (k, v) in [
            ("page_factor", self.page_factor),
            ("ticket_factor", self.ticket_factor),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!(
                        "{at}.verification.{k}: expected a burn-rate factor > 0, found {v}"
                    ));
                }
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!(
                "{at}.verification.alpha: expected a number strictly between 0 and 1, found {}",
                self.alpha
            ));
        }
        Ok(())
    }

    fn policy(&self, on: crate::guard::verify::OnRegression) -> crate::guard::verify::VerifyPolicy {
        crate::guard::verify::VerifyPolicy {
            on_regression: on,
            window: self.window.as_std(),
            step: self.step.as_std(),
            page_factor: self.page_factor,
            ticket_factor: self.ticket_factor,
            ticket_after: self.ticket_after.as_std(),
            alpha: self.alpha,
        }
    }
}

/// A Flux `Kustomization`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FluxTarget {
    pub namespace: String,
    pub name: String,
}

fn default_emergency() -> f64 {
    0.95
}
fn default_critical() -> f64 {
    0.80
}

/// The JSON API's write endpoints (overrides, approvals, rollout controls).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer token required by write endpoints: `{file: PATH}` or `{env: NAME}`. Without
    /// it, write endpoints answer 403.
    pub token: Option<crate::adapters::git::SecretSource>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API. Required.
    pub url: String,
    /// Timeout of every query.
    pub timeout: PromDuration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SlosConfig {
    /// Files or directories of SLO specs (directories: their `*.yml`/`*.yaml` files).
    pub paths: Vec<PathBuf>,
    /// How often the spec files are checked for changes.
    pub reload_interval: PromDuration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Time between evaluation cycles.
    pub interval: PromDuration,
    /// Random spread of the interval, as a fraction (0.1 = ±10%).
    pub jitter: f64,
    /// Default SLO period for SLOs that declare none (30d or 28d without a catalog).
    pub period: Option<PromDuration>,
    /// A custom Sloth `AlertWindows` catalog file.
    pub windows_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP server (`/healthz`, `/readyz`, `/metrics`, `/api/v1/…`).
    pub listen: SocketAddr,
    /// Most connections open at once (lowered to the open-file limit less a reserve); over
    /// it, the oldest connection running no request is closed ([`crate::runtime::serve`]).
    pub max_connections: usize,
    /// A request head must arrive within this; also the idle time a kept-alive connection
    /// may wait between requests.
    pub header_read_timeout: PromDuration,
    /// A request body must be complete within this, from the end of its head.
    pub body_timeout: PromDuration,
}

impl ServerConfig {
    /// The listener's limits.
    pub fn limits(&self) -> crate::runtime::serve::Limits {
        crate::runtime::serve::Limits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout.as_std(),
            body_timeout: self.body_timeout.as_std(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("server.max_connections: expected at least 1, found 0".into());
        }
        for (key, d) in [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.body_timeout", self.body_timeout),
        ] {
            if d.as_millis() < 100 {
                return Err(format!("{key}: expected at least 100ms, found {d}"));
            }
        }
        Ok(())
    }
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: String::new(),
            timeout: PromDuration::from_secs(30),
        }
    }
}

impl Default for SlosConfig {
    fn default() -> Self {
        SlosConfig {
            paths: vec![PathBuf::from("/etc/slogate/slos")],
            reload_interval: PromDuration::from_secs(10),
        }
    }
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig {
            interval: PromDuration::from_mins(5),
            jitter: 0.1,
            period: None,
            windows_file: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_connections: 512,
            header_read_timeout: PromDuration::from_secs(10),
            body_timeout: PromDuration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// The file and the environment could not be read into the configuration: the config
    /// crate's error is the source.
    #[error("{file}: {source}")]
    Parse {
        file: String,
        #[source]
        source: ::config::ConfigError,
    },
}

/// Top-level keys a config file may have (environment variables that are not config, such
/// as `SLOGATE_LOG`, are ignored rather than rejected).
const TOP_LEVEL_KEYS: [&str; 14] = [
    "cluster",
    "prometheus",
    "slos",
    "evaluation",
    "server",
    "state",
    "gitops",
    "guard",
    "api",
    "webhook",
    "notifications",
    "argocd",
    "rollouts",
    "leader_election",
];

impl Config {
    /// Load the file and overlay `SLOGATE_*` environment variables.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: &Path,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Config, ConfigError> {
        let in_cluster = in_cluster_here(env.as_ref());
        Self::load_in(file, env, in_cluster)
    }

    /// Like [`Config::load_with_env`], with whether this process runs in a pod given (what
    /// `cluster: auto` resolves to).
    pub fn load_in(
        file: &Path,
        env: Option<std::collections::HashMap<String, String>>,
        in_cluster: bool,
    ) -> Result<Config, ConfigError> {
        let text = crate::slo::spec::read_capped(file, MAX_CONFIG_FILE_BYTES, "configuration")
            .map_err(|message| ConfigError::Invalid {
                file: file.display().to_string(),
                message,
            })?;
        Self::parse_in(file, &text, env, in_cluster)
    }

    /// Like [`Config::load_in`], on text already read: `file` names it in errors and its
    /// extension picks the format (`.toml`, else YAML). [`Config::load_in`] reads the file
    /// (size-capped) and calls this; the fuzz target `config` calls it on arbitrary text.
    pub fn parse_in(
        file: &Path,
        text: &str,
        env: Option<std::collections::HashMap<String, String>>,
        in_cluster: bool,
    ) -> Result<Config, ConfigError> {
        let name = file.display().to_string();
        let invalid = |message: String| ConfigError::Invalid {
            file: name.clone(),
            message,
        };
        let parse = |source| ConfigError::Parse {
            file: name.clone(),
            source,
        };
        let (text, format) = match file.extension().and_then(|e| e.to_str()) {
            Some("toml") => (text.to_string(), config::FileFormat::Toml),
            _ => (
                yaml_as_json(text).map_err(invalid)?,
                config::FileFormat::Json,
            ),
        };
        let mut envsrc = config::Environment::with_prefix("SLOGATE")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true);
        if env.is_some() {
            envsrc = envsrc.source(env);
        }
        let built = config::Config::builder()
            .add_source(config::File::from_str(&text, format))
            .add_source(envsrc)
            .build()
            .map_err(parse)?;
        let explicit = BACKEND_KEYS.map(|k| built.get::<config::Value>(k).is_ok());
        let mut cfg: Config = built.try_deserialize().map_err(parse)?;
        cfg.apply_cluster(in_cluster, explicit);
        cfg.check().map_err(invalid)?;
        Ok(cfg)
    }

    /// Set every backend not set explicitly (`explicit`, per [`BACKEND_KEYS`]) to what
    /// `cluster` resolves to, and record where each came from in `backends`.
    pub fn apply_cluster(&mut self, in_cluster: bool, explicit: [bool; 5]) {
        let on = self.cluster.resolve(in_cluster);
        self.backends = Backends {
            mode: self.cluster,
            cluster: on,
            explicit,
        };
        let pick = |i: usize, current: bool| if explicit[i] { current } else { on };
        let kube = pick(0, self.state.backend == StateBackend::Kube);
        self.state.backend = if kube {
            StateBackend::Kube
        } else {
            StateBackend::File
        };
        let r = &mut self.rollouts;
        r.source = if pick(1, r.source == RolloutSourceKind::Kube) {
            RolloutSourceKind::Kube
        } else {
            RolloutSourceKind::File
        };
        r.router = if pick(2, r.router == RouterKind::Kube) {
            RouterKind::Kube
        } else {
            RouterKind::File
        };
        r.state = if pick(3, r.state == RolloutStateKind::Kube) {
            RolloutStateKind::Kube
        } else {
            RolloutStateKind::File
        };
        r.versions = if pick(4, r.versions == VersionsKind::Kube) {
            VersionsKind::Kube
        } else {
            VersionsKind::File
        };
    }

    /// The effective backends, each with its origin, on one line (`slogate run` logs it).
    pub fn backends_line(&self) -> String {
        let kind = |kube: bool| if kube { "kube" } else { "file" };
        let r = &self.rollouts;
        let values = [
            kind(self.state.backend == StateBackend::Kube),
            kind(r.source == RolloutSourceKind::Kube),
            kind(r.router == RouterKind::Kube),
            kind(r.state == RolloutStateKind::Kube),
            kind(r.versions == VersionsKind::Kube),
        ];
        BACKEND_KEYS
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}={v} ({})", self.backends.origin(k)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Combinations that cannot work with more than one replica, refused when leader
    /// election is on (it only makes sense with several): every replica would keep its own
    /// copy, and a new leader would not see what the previous one wrote. The read-only
    /// inputs (`rollouts.source: file`, `rollouts.versions: file`) are fine: every replica
    /// mounts the same files (a ConfigMap).
    fn check_leader_election(&self) -> Result<(), String> {
        if !self.leader_election.enabled {
            return Ok(());
        }
        let refuse = |key: &str, why: &str| {
            Err(format!(
                "{key}: `file` ({}) cannot work with `leader_election.enabled: true`: {why}; set `{key}: kube` (or `cluster: on`), or disable leader election and run one replica",
                self.backends.origin(key)
            ))
        };
        if self.state.backend == StateBackend::File {
            return refuse(
                "state.backend",
                "each replica would keep its own freezes, commands and approvals in its state.dir, which the next leader does not see",
            );
        }
        let r = &self.rollouts;
        if r.enabled() && r.state == RolloutStateKind::File {
            return refuse(
                "rollouts.state",
                "each replica would keep its own rollout state, so a new leader would restart every rollout",
            );
        }
        if r.enabled() && r.router == RouterKind::File {
            return refuse(
                "rollouts.router",
                "the leader would write weights files in its own weights_dir, which no router reads and the next leader does not see",
            );
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if self.prometheus.url.is_empty() {
            return Err(
                "prometheus.url: expected the Prometheus base URL (or SLOGATE_PROMETHEUS__URL), found nothing"
                    .into(),
            );
        }
        if self.slos.paths.is_empty() {
            return Err("slos.paths: expected at least one file or directory".into());
        }
        if self.evaluation.interval.as_millis() < 1000 {
            return Err(format!(
                "evaluation.interval: expected at least 1s, found {}",
                self.evaluation.interval
            ));
        }
        if self.slos.reload_interval.as_millis() < 100 {
            return Err(format!(
                "slos.reload_interval: expected at least 100ms, found {}",
                self.slos.reload_interval
            ));
        }
        self.server.check()?;
        if !(0.0..=0.5).contains(&self.evaluation.jitter) {
            return Err(format!(
                "evaluation.jitter: expected a fraction between 0 and 0.5, found {}",
                self.evaluation.jitter
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, a) in self.guard.apps.iter().enumerate() {
            let at = format!("guard.apps[{i}]");
            if a.name.is_empty()
                || crate::ports::state::validate_key(&a.name).is_err()
                || a.name.contains('/')
            {
                return Err(format!(
                    "{at}.name: expected a name of [A-Za-z0-9._-], found {:?}",
                    a.name
                ));
            }
            if !names.insert(a.name.as_str()) {
                return Err(format!("{at}.name: app `{}` is listed twice", a.name));
            }
            if a.path.trim_matches('/').is_empty() {
                return Err(format!(
                    "{at}.path: expected the app's path in the GitOps repo"
                ));
            }
            if a.slos.is_empty() {
                return Err(format!("{at}.slos: expected at least one SLO id"));
            }
            if !(a.critical > 0.0 && a.critical <= a.emergency) {
                return Err(format!(
                    "{at}: expected 0 < critical <= emergency, found critical {} and emergency {}",
                    a.critical, a.emergency
                ));
            }
            if self.gitops.is_none() {
                return Err(format!(
                    "{at}: the guard needs a `gitops` section (the repository to revert in)"
                ));
            }
            a.verification.check(&at)?;
        }
        if self.prometheus.timeout.as_millis() < 100 {
            return Err(format!(
                "prometheus.timeout: expected at least 100ms, found {}",
                self.prometheus.timeout
            ));
        }
        if let Some(g) = &self.gitops {
            match (&g.forge, g.mode) {
                (Some(f), _) => f.check("gitops.forge")?,
                (None, crate::adapters::git::RevertMode::PullRequest) => {
                    return Err("gitops.forge: expected a forge section with `gitops.mode: pull-request` (type github|gitlab|gitea, owner and repo or project, token), found nothing".into());
                }
                (None, crate::adapters::git::RevertMode::Push) => {}
            }
        }
        self.webhook.check()?;
        crate::adapters::notify::check_all(&self.notifications)?;
        if let Some(a) = &self.argocd {
            a.check()?;
        }
        self.rollouts.check_scope()?;
        self.rollouts.check_source().map_err(|e| {
            format!(
                "{e} (rollouts.source from {})",
                self.backends.origin("rollouts.source")
            )
        })?;
        let versions_origin = self.backends.origin("rollouts.versions");
        match (self.rollouts.versions, &self.rollouts.versions_file) {
            (VersionsKind::File, None) if self.rollouts.enabled() => {
                return Err(format!("rollouts.versions_file: expected the file naming each rollout's stable and canary versions (`<namespace>/<name>: {{stable: …, canary: …}}`), or `rollouts.versions: kube` to read the workloads' version label (rollouts.versions: file, from {versions_origin})"));
            }
            (VersionsKind::Kube, Some(f)) => {
                return Err(format!(
                    "rollouts.versions_file: only read with `rollouts.versions: file`, found {} with `versions: kube` ({versions_origin}); remove one of them",
                    f.display()
                ));
            }
            _ => {}
        }
        if self.leader_election.enabled && self.leader_election.name.trim().is_empty() {
            return Err("leader_election.name: expected the Lease's name".into());
        }
        self.check_leader_election()?;
        if self.state.retention.as_std() < Duration::from_secs(3600) {
            return Err(format!(
                "state.retention: expected at least 1h, found {}",
                self.state.retention
            ));
        }
        if let Some(ns) = &self.state.namespace {
            if !is_dns_label(ns) {
                return Err(format!(
                    "state.namespace: expected a namespace name (at most 63 of [a-z0-9-], \
                     starting and ending alphanumeric), found {ns:?}"
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The guarded apps, with the global defaults applied.
    pub fn guarded_apps(&self) -> Vec<AppGuard> {
        self.guard
            .apps
            .iter()
            .map(|a| AppGuard {
                app: a.name.clone(),
                path: a.path.trim_matches('/').to_string(),
                slos: a.slos.clone(),
                thresholds: crate::slo::model::Guard {
                    emergency: a.emergency,
                    critical: a.critical,
                    rollback_on_critical: a.rollback_on_critical,
                },
                soak: a.soak.unwrap_or(self.guard.soak).as_std(),
                verify: a.verification.policy(a.on_deploy_regression),
            })
            .collect()
    }

    /// The git adapter's configuration, when a `gitops` section exists.
    pub fn repo_config(&self) -> Option<crate::adapters::git::RepoConfig> {
        let g = self.gitops.as_ref()?;
        let mut rc = crate::adapters::git::RepoConfig::new(
            g.url.clone(),
            g.branch.clone(),
            g.workdir
                .clone()
                .unwrap_or_else(|| self.state.dir.join("repo")),
        );
        rc.auth = g.auth.clone();
        rc.author_name = g.author_name.clone();
        rc.author_email = g.author_email.clone();
        rc.mode = g.mode;
        rc.timeout = g.timeout.as_std();
        rc.push_retries = g.push_retries;
        Some(rc)
    }
}

/// The largest configuration file read (1 MiB; the shipped one is a few KB).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1 << 20;

/// Read a YAML configuration within the budget of [`crate::model::yaml`] (a document whose
/// aliases expand beyond it, "billion laughs", is refused here, before anything expands
/// them), check its top-level keys, and give it to the config crate as JSON: the config
/// crate's own YAML reader (yaml-rust2) expands aliases without a limit and is not built.
fn yaml_as_json(text: &str) -> Result<String, String> {
    use crate::model::yaml::{self, Value};
    let value: Value = yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    match &value {
        Value::Mapping(m) => {
            for k in m.keys() {
                let k = k.as_str().unwrap_or("<non-string key>");
                if !TOP_LEVEL_KEYS.contains(&k) {
                    return Err(format!(
                        "{k}: unknown key; expected one of {}",
                        TOP_LEVEL_KEYS.join(", ")
                    ));
                }
            }
        }
        // Empty: every key has its default (or the deserialisation says what is missing).
        Value::Null => return Ok("{}".to_string()),
        // Not a mapping: the deserialisation that follows says what is expected.
        _ => {}
    }
    if let Value::Mapping(m) = &value {
        for (k, v) in m {
            check_keys_are_text(v, k.as_str().unwrap_or_default())?;
        }
    }
    serde_json::to_string(&value).map_err(|e| format!("cannot read the configuration: {e}"))
}

/// Every mapping key under `v` must be a string or an integer: the config crate's YAML
/// reader panics (`unreachable!`) on any other key (`true:`, `1.5:`, `~:`, a `? [a]`
/// complex key), which fuzzing found (`slogate run` died instead of exiting 2).
fn check_keys_are_text(v: &crate::model::yaml::Value, path: &str) -> Result<(), String> {
    use crate::model::yaml::Value;
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    other => {
                        let found = match other {
                            Value::Null => "null".to_string(),
                            Value::Bool(b) => format!("the boolean {b}"),
                            Value::Number(n) => format!("the number {n}"),
                            Value::Sequence(_) => "a list".to_string(),
                            Value::Mapping(_) => "a mapping".to_string(),
                            Value::String(s) => s.clone(),
                        };
                        return Err(format!(
                            "{path}: expected keys that are text, found {found}"
                        ));
                    }
                };
                check_keys_are_text(v, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_keys_are_text(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        std::fs::write(&f, text).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&f, Some(env)).map_err(|e| e.to_string())
    }

    /// A value the configuration cannot take: the config crate's error is the source, shown
    /// once after the file.
    #[test]
    fn a_value_that_does_not_fit_keeps_the_config_crate_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        std::fs::write(&f, "server:\n  max_connections: lots\n").unwrap();
        let e = Config::load_with_env(&f, Some(HashMap::new())).unwrap_err();
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<::config::ConfigError>(), "{source:?}");
        assert!(
            matches!(&e, ConfigError::Parse { file, .. } if *file == f.display().to_string()),
            "{e:?}"
        );
        assert_eq!(e.to_string(), format!("{}: {source}", f.display()));
        assert_eq!(crate::ports::error_chain(&e), e.to_string());
    }

    /// Fuzzing (fuzz target `config`) found these: the config crate's YAML reader panicked
    /// on a mapping key that is not a string or an integer.
    #[test]
    fn keys_that_are_not_text_are_refused_not_a_panic() {
        let crash = "guard:\n  apps:\n    - name: checkout\n      path: apps/checkout/overlays/prod\n      slos: [checkout-ectories availability]\n  ?   on_deploy_regression: revert   # revert | notify | off\n      verification:\n        window: 2h         e SLO's page factor\n        # ticket_factor: 3      .     # default: the SLO's tickct factor\n";
        let e = load(crash, &[]).unwrap_err();
        assert!(
            e.contains("slogate.yaml: guard: expected keys that are text, found a mapping"),
            "{e}"
        );
        for (text, field) in [
            ("prometheus:\n  true: 1\n", "prometheus"),
            (
                "prometheus:\n  url: http://p:9090\nserver:\n  1.5: x\n",
                "server",
            ),
            (
                "prometheus:\n  url: http://p:9090\nguard:\n  apps:\n    - ~: x\n",
                "guard.apps[0]",
            ),
        ] {
            let e = load(text, &[]).unwrap_err();
            assert!(
                e.contains(&format!("{field}: expected keys that are text")),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn defaults_apply() {
        let c = load("prometheus:\n  url: http://p:9090\n", &[]).unwrap();
        assert_eq!(c.evaluation.interval.to_string(), "5m");
        assert_eq!(c.evaluation.jitter, 0.1);
        assert_eq!(c.prometheus.timeout.to_string(), "30s");
        assert_eq!(c.slos.reload_interval.to_string(), "10s");
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.slos.paths, vec![PathBuf::from("/etc/slogate/slos")]);
    }

    #[test]
    fn environment_overrides_file() {
        let c = load(
            "prometheus:\n  url: http://p:9090\nevaluation:\n  interval: 5m\n",
            &[
                ("SLOGATE_EVALUATION__INTERVAL", "1m"),
                ("SLOGATE_PROMETHEUS__URL", "http://other:9090"),
                ("SLOGATE_SERVER__LISTEN", "127.0.0.1:9999"),
                // Not configuration: ignored, not rejected.
                ("SLOGATE_LOG", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(c.evaluation.interval.to_string(), "1m");
        assert_eq!(c.prometheus.url, "http://other:9090");
        assert_eq!(c.server.listen.port(), 9999);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = load("evaluation:\n  interval: 5m\n", &[]).unwrap_err();
        assert!(
            e.contains("slogate.yaml") && e.contains("prometheus.url"),
            "{e}"
        );
        let e = load("prometheus:\n  url: x\nevaluation:\n  intervall: 5m\n", &[]).unwrap_err();
        assert!(e.contains("intervall"), "{e}");
        let e = load(
            "prometheus:\n  url: x\nevaluation:\n  interval: soon\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("soon") && e.contains("duration"), "{e}");
        let e = load("prometheus:\n  url: x\nevalutaion: {}\n", &[]).unwrap_err();
        assert!(
            e.contains("evalutaion") && e.contains("expected one of"),
            "{e}"
        );
        let e = load("prometheus:\n  url: x\nevaluation:\n  jitter: 2\n", &[]).unwrap_err();
        assert!(e.contains("evaluation.jitter"), "{e}");
    }

    #[test]
    fn deploy_verification_has_defaults_and_checked_values() {
        let base = "prometheus:\n  url: x\nslos:\n  paths: [s]\ngitops:\n  url: /r\nguard:\n  apps:\n    - name: checkout\n      path: apps/checkout\n      slos: [c-a]\n";
        let c = load(base, &[]).unwrap();
        let p = &c.guarded_apps()[0].verify;
        assert_eq!(p, &crate::guard::verify::VerifyPolicy::default());
        assert_eq!(p.window, Duration::from_secs(3600));
        assert_eq!(p.step, Duration::from_secs(60));
        assert_eq!(p.ticket_after, Duration::from_secs(1800));
        let c = load(
            &format!("{base}      on_deploy_regression: notify\n      verification: {{window: 30m, page_factor: 10}}\n"),
            &[],
        )
        .unwrap();
        let p = &c.guarded_apps()[0].verify;
        assert_eq!(p.on_regression, crate::guard::verify::OnRegression::Notify);
        assert_eq!(
            (p.window, p.page_factor),
            (Duration::from_secs(1800), Some(10.0))
        );
        for (bad, field) in [
            ("      on_deploy_regression: maybe\n", "maybe"),
            (
                "      verification: {step: 500ms}\n",
                "guard.apps[0].verification.step",
            ),
            (
                "      verification: {window: 2m}\n",
                "guard.apps[0].verification.window",
            ),
            (
                "      verification: {page_factor: -1}\n",
                "guard.apps[0].verification.page_factor",
            ),
            (
                "      verification: {alpha: 1.5}\n",
                "guard.apps[0].verification.alpha",
            ),
            ("      verification: {windw: 1h}\n", "windw"),
        ] {
            let e = load(&format!("{base}{bad}"), &[]).unwrap_err();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod shipped_config {
    use super::*;

    /// `deploy/config/slogate.yaml` is what users copy: it must load, and it documents the
    /// defaults, so its values must equal them.
    #[test]
    fn the_shipped_example_config_loads_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/slogate.yaml");
        // In a pod, as deploy/ runs it: `cluster: auto` turns on.
        let c = Config::load_in(&path, Some(Default::default()), true).unwrap();
        let d = Config::default();
        assert_eq!(c.cluster, ClusterMode::Auto);
        assert_eq!(
            c.backends.explicit, [false; 5],
            "deploy/ relies on `cluster`"
        );
        // Outside a pod the shipped config is refused: it elects a leader among replicas
        // that would each keep their own file state.
        let e = Config::load_in(&path, Some(Default::default()), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("state.backend") && e.contains("leader_election.enabled"),
            "{e}"
        );
        assert_eq!(c.prometheus.timeout, d.prometheus.timeout);
        assert_eq!(c.slos, d.slos);
        assert_eq!(c.evaluation.interval, d.evaluation.interval);
        assert_eq!(c.evaluation.jitter, d.evaluation.jitter);
        assert_eq!(c.evaluation.period, Some(PromDuration::from_days(30)));
        assert_eq!(c.server, d.server);
        // In a cluster, the state documents are shared by the replicas through ConfigMaps in
        // the pod's namespace; the decision log stays in the default directory.
        assert_eq!(c.state.backend, StateBackend::Kube);
        assert_eq!(d.state.backend, StateBackend::File);
        assert_eq!(
            StateConfig {
                backend: d.state.backend,
                ..c.state.clone()
            },
            d.state
        );
        // In a cluster, the Rollouts, their routes, state and versions come from the
        // Kubernetes API (two replicas share nothing else); every other rollout key states
        // its default.
        assert_eq!(c.rollouts.source, RolloutSourceKind::Kube);
        assert_eq!(c.rollouts.router, RouterKind::Kube);
        assert_eq!(c.rollouts.state, RolloutStateKind::Kube);
        assert_eq!(c.rollouts.versions, VersionsKind::Kube);
        assert_eq!(c.rollouts.resync(), RolloutsConfig::DEFAULT_RESYNC);
        assert_eq!(
            RolloutsConfig {
                source: d.rollouts.source,
                router: d.rollouts.router,
                state: d.rollouts.state,
                versions: d.rollouts.versions,
                resync_interval: None,
                ..c.rollouts.clone()
            },
            d.rollouts
        );
        assert_eq!(d.rollouts.source, RolloutSourceKind::File);
        assert_eq!(d.rollouts.router, RouterKind::File);
        assert_eq!(d.rollouts.state, RolloutStateKind::File);
        assert_eq!(d.rollouts.versions, VersionsKind::File);
        // Two replicas in deploy/deployment.yaml: the shipped config elects a leader.
        assert!(c.leader_election.enabled);
        assert_eq!(c.leader_election.name, d.leader_election.name);
        assert_eq!(c.leader_election.namespace, None);
    }

    #[test]
    fn rollouts_need_a_versions_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        std::fs::write(
            &f,
            "prometheus: {url: http://p:9090}\nrollouts: {paths: [/etc/slogate/rollouts]}\n",
        )
        .unwrap();
        let e = Config::load_with_env(&f, Some(Default::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rollouts.versions_file"), "{e}");
        std::fs::write(
            &f,
            "prometheus: {url: http://p:9090}\nrollouts: {paths: [r], router: kube, versions_file: v.yaml}\n",
        )
        .unwrap();
        let c = Config::load_with_env(&f, Some(Default::default())).unwrap();
        assert_eq!(c.rollouts.router, RouterKind::Kube);
        assert_eq!(
            c.rollouts.weights_dir(Path::new("/s")),
            Path::new("/s/weights")
        );
        // (Leader election needs shared state: its own config.)
        std::fs::write(
            &f,
            "prometheus: {url: http://p:9090}\nstate: {backend: kube}\nleader_election: {enabled: true, namespace: ops}\n",
        )
        .unwrap();
        let le = Config::load_with_env(&f, Some(Default::default())).unwrap();
        assert_eq!(le.leader_election.namespace.as_deref(), Some("ops"));
        assert_eq!(le.leader_election.name, "slogate");
        assert_eq!(c.rollouts.state, RolloutStateKind::File);
        assert_eq!(c.rollouts.versions, VersionsKind::File);
    }

    #[test]
    fn rollout_scoping_keys_load_and_bad_entries_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str, _: &[()]| {
            let f = dir.path().join("slogate.yaml");
            std::fs::write(&f, text).unwrap();
            Config::load_with_env(&f, Some(Default::default())).map_err(|e| e.to_string())
        };
        let base = "prometheus: {url: http://p:9090}\ngitops: {url: /tmp/repo.git}\nguard:\n  apps:\n    - {name: pay, path: apps/payments/prod, slos: [p-a]}\n";
        let c = load(
            &format!("{base}rollouts:\n  route_namespaces: {{shop: [mesh], \"*\": [gateways]}}\n  gitops_paths:\n    shop: [apps/shop, ./apps/checkout/]\n    payments: []\n"),
            &[],
        )
        .unwrap();
        let scope = c.rollouts.scope(&c.guard.apps);
        assert_eq!(
            scope.route_namespaces,
            BTreeMap::from([
                ("*".to_string(), vec!["gateways".to_string()]),
                ("shop".to_string(), vec!["mesh".to_string()]),
            ])
        );
        let paths = scope.gitops_paths.as_ref().unwrap();
        assert_eq!(paths["shop"], ["apps/shop", "./apps/checkout/"]);
        assert!(paths["payments"].is_empty());
        assert_eq!(scope.guarded_apps["pay"], "apps/payments/prod");

        // Absent: routes in the Rollout's own namespace, every GitOps path.
        let c = load(base, &[]).unwrap();
        assert!(c.rollouts.route_namespaces.is_empty());
        assert!(c.rollouts.scope(&c.guard.apps).gitops_unscoped());

        for (rollouts, want) in [
            (
                "gitops_paths: {shop: [../other]}",
                "rollouts.gitops_paths.shop[0]: \"../other\" contains `..`",
            ),
            (
                "gitops_paths: {shop: [apps/a, /etc]}",
                "rollouts.gitops_paths.shop[1]: \"/etc\" is absolute",
            ),
            (
                "gitops_paths: {shop: [\".\"]}",
                "rollouts.gitops_paths.shop[0]: expected a path prefix below the repository root",
            ),
            (
                "gitops_paths: {shop_1: [apps/a]}",
                "rollouts.gitops_paths: expected a Rollout namespace name as key, found \"shop_1\"",
            ),
            (
                "route_namespaces: {shop: [Mesh]}",
                "rollouts.route_namespaces.shop[0]: expected a namespace name",
            ),
            (
                "route_namespaces: {\"a/b\": [mesh]}",
                "rollouts.route_namespaces: expected a Rollout namespace name or `*` as key",
            ),
        ] {
            let e = load(&format!("{base}rollouts:\n  {rollouts}\n"), &[]).unwrap_err();
            assert!(e.contains(want), "{rollouts}: {e}");
            assert!(e.contains("slogate.yaml"), "{e}");
        }
    }

    #[test]
    fn rollout_state_and_versions_can_come_from_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load_with_env(&f, Some(Default::default())).map_err(|e| e.to_string())
        };
        let c = load(
            "prometheus: {url: http://p:9090}\nrollouts: {paths: [r], router: kube, state: kube, versions: kube}\n",
        )
        .unwrap();
        assert_eq!(c.rollouts.state, RolloutStateKind::Kube);
        assert_eq!(c.rollouts.versions, VersionsKind::Kube);
        assert_eq!(c.rollouts.versions_file, None);
        // versions: kube needs no file, and refuses one that would not be read.
        let e = load(
            "prometheus: {url: http://p:9090}\nrollouts: {paths: [r], versions: kube, versions_file: v.yaml}\n",
        )
        .unwrap_err();
        assert!(
            e.contains("rollouts.versions_file") && e.contains("versions: kube"),
            "{e}"
        );
        let e = load("prometheus: {url: http://p:9090}\nrollouts: {paths: [r]}\n").unwrap_err();
        assert!(
            e.contains("rollouts.versions_file") && e.contains("rollouts.versions: kube"),
            "{e}"
        );
        for key in ["state", "versions"] {
            let e = load(&format!(
                "prometheus: {{url: http://p:9090}}\nrollouts: {{{key}: etcd}}\n"
            ))
            .unwrap_err();
            assert!(
                e.contains("slogate.yaml")
                    && e.contains(&format!("rollouts.{key}"))
                    && e.contains("etcd")
                    && e.contains("file")
                    && e.contains("kube"),
                "{e}"
            );
        }
    }

    #[test]
    fn rollouts_can_be_read_from_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        let load = |rollouts: &str| {
            std::fs::write(
                &f,
                format!("prometheus: {{url: http://p:9090}}\nrollouts: {rollouts}\n"),
            )
            .unwrap();
            Config::load_with_env(&f, Some(Default::default())).map_err(|e| e.to_string())
        };
        // Off by default: no paths, source file.
        let c = load("{}").unwrap();
        assert!(!c.rollouts.enabled());
        assert_eq!(c.rollouts.resync(), Duration::from_secs(30));
        // source: kube turns rollouts on without any path, and needs a versions source.
        let c =
            load("{source: kube, versions: kube, namespaces: [shop, web], resync_interval: 10s}")
                .unwrap();
        assert!(c.rollouts.enabled());
        assert_eq!(c.rollouts.source, RolloutSourceKind::Kube);
        assert_eq!(c.rollouts.namespaces, ["shop", "web"]);
        assert_eq!(c.rollouts.resync(), Duration::from_secs(10));
        let e = load("{source: kube}").unwrap_err();
        assert!(e.contains("rollouts.versions_file"), "{e}");
        // Keys the chosen source would not read are refused, naming them.
        let e = load("{source: kube, versions: kube, paths: [r]}").unwrap_err();
        assert!(
            e.contains("rollouts.paths") && e.contains("source: kube"),
            "{e}"
        );
        let e = load("{paths: [r], versions: kube, namespaces: [shop]}").unwrap_err();
        assert!(
            e.contains("rollouts.namespaces") && e.contains("source: file"),
            "{e}"
        );
        let e = load("{source: kube, versions: kube, namespaces: [Shop]}").unwrap_err();
        assert!(
            e.contains("rollouts.namespaces[0]") && e.contains("\"Shop\""),
            "{e}"
        );
        let e = load("{source: kube, versions: kube, namespaces: [a, a]}").unwrap_err();
        assert!(
            e.contains("rollouts.namespaces[1]") && e.contains("twice"),
            "{e}"
        );
        let e = load("{source: kube, versions: kube, resync_interval: 100ms}").unwrap_err();
        assert!(
            e.contains("rollouts.resync_interval") && e.contains("1s"),
            "{e}"
        );
        let e = load("{source: crd}").unwrap_err();
        assert!(
            e.contains("rollouts.source") && e.contains("`file` or `kube`") && e.contains("crd"),
            "{e}"
        );
    }

    #[test]
    fn state_can_be_shared_through_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        let load = |text: &str, env: &[(&str, &str)]| {
            std::fs::write(&f, text).unwrap();
            let env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load_with_env(&f, Some(env)).map_err(|e| e.to_string())
        };
        let c = load("prometheus: {url: http://p:9090}\n", &[]).unwrap();
        assert_eq!(c.state.backend, StateBackend::File);
        assert_eq!(c.state.namespace, None);
        assert_eq!(c.state.retention, PromDuration::from_days(30));
        let c = load(
            "prometheus: {url: http://p:9090}\nstate: {backend: kube, namespace: ops, retention: 90d}\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.state.retention, PromDuration::from_days(90));
        let e = load(
            "prometheus: {url: http://p:9090}\nstate: {retention: 10m}\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("state.retention") && e.contains("1h"), "{e}");
        assert_eq!(c.state.backend, StateBackend::Kube);
        assert_eq!(
            c.state.kube_namespace(Some("slogate".into())).unwrap(),
            "ops"
        );
        let c = load(
            "prometheus: {url: http://p:9090}\n",
            &[("SLOGATE_STATE__BACKEND", "kube")],
        )
        .unwrap();
        assert_eq!(c.state.backend, StateBackend::Kube);
        // The namespace: state.namespace, else POD_NAMESPACE, else an error naming both.
        assert_eq!(
            c.state.kube_namespace(Some("slogate".into())).unwrap(),
            "slogate"
        );
        for none in [None, Some(String::new()), Some("  ".into())] {
            let e = c.state.kube_namespace(none).unwrap_err();
            assert!(
                e.contains("state.namespace") && e.contains("POD_NAMESPACE"),
                "{e}"
            );
        }
        let e = load(
            "prometheus: {url: http://p:9090}\nstate: {backend: etcd}\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("slogate.yaml")
                && e.contains("state.backend")
                && e.contains("etcd")
                && e.contains("`file` or `kube`"),
            "{e}"
        );
        for bad in ["Ops", "-ops", "a_b", ""] {
            let e = load(
                &format!("prometheus: {{url: http://p:9090}}\nstate: {{backend: kube, namespace: {bad:?}}}\n"),
                &[],
            )
            .unwrap_err();
            assert!(e.contains("state.namespace") && e.contains(bad), "{e}");
        }
    }
}

#[cfg(test)]
mod cluster_switch {
    use super::*;

    fn load(text: &str, in_cluster: bool) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        std::fs::write(&f, text).unwrap();
        Config::load_in(&f, Some(Default::default()), in_cluster).map_err(|e| e.to_string())
    }

    fn kinds(c: &Config) -> [bool; 5] {
        [
            c.state.backend == StateBackend::Kube,
            c.rollouts.source == RolloutSourceKind::Kube,
            c.rollouts.router == RouterKind::Kube,
            c.rollouts.state == RolloutStateKind::Kube,
            c.rollouts.versions == VersionsKind::Kube,
        ]
    }

    #[test]
    fn the_mode_and_the_pod_decide_the_default_of_all_five() {
        // (cluster, in a pod) -> every backend kube?
        let table = [
            (None, false, false),
            (None, true, true),
            (Some("auto"), false, false),
            (Some("auto"), true, true),
            (Some("on"), false, true),
            (Some("on"), true, true),
            (Some("off"), false, false),
            (Some("off"), true, false),
        ];
        for (mode, pod, kube) in table {
            let key = mode.map(|m| format!("cluster: {m}\n")).unwrap_or_default();
            let c = load(&format!("{key}prometheus: {{url: http://p:9090}}\n"), pod)
                .unwrap_or_else(|e| panic!("{mode:?} {pod}: {e}"));
            assert_eq!(kinds(&c), [kube; 5], "{mode:?}, in a pod: {pod}");
            assert_eq!(c.backends.cluster, kube);
            assert_eq!(c.backends.explicit, [false; 5]);
            let line = c.backends_line();
            let want = if kube {
                "=kube (cluster"
            } else {
                "=file (cluster"
            };
            assert_eq!(line.matches(want).count(), 5, "{line}");
        }
        assert!(ClusterMode::Auto.resolve(true));
        assert!(!ClusterMode::Auto.resolve(false));
    }

    #[test]
    fn an_explicit_key_wins_over_the_switch_and_says_so() {
        let c = load(
            "cluster: on\nprometheus: {url: http://p:9090}\nrollouts: {router: file, versions: file, versions_file: v.yaml}\n",
            false,
        )
        .unwrap();
        assert_eq!(kinds(&c), [true, true, false, true, false]);
        assert_eq!(c.backends.explicit, [false, false, true, false, true]);
        assert_eq!(
            c.backends_line(),
            "state.backend=kube (cluster: on), rollouts.source=kube (cluster: on), \
             rollouts.router=file (explicit), rollouts.state=kube (cluster: on), \
             rollouts.versions=file (explicit)"
        );
        let c = load(
            "cluster: off\nprometheus: {url: http://p:9090}\nstate: {backend: kube}\n",
            true,
        )
        .unwrap();
        assert_eq!(kinds(&c), [true, false, false, false, false]);
        assert!(c
            .backends_line()
            .starts_with("state.backend=kube (explicit), rollouts.source=file (cluster: off)"));
        let c = load("prometheus: {url: http://p:9090}\n", true).unwrap();
        assert!(
            c.backends_line().contains("(cluster: auto, on)"),
            "{}",
            c.backends_line()
        );
    }

    #[test]
    fn an_environment_variable_is_explicit_too() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        std::fs::write(&f, "cluster: on\nprometheus: {url: http://p:9090}\n").unwrap();
        let env = [("SLOGATE_STATE__BACKEND".to_string(), "file".to_string())]
            .into_iter()
            .collect();
        let c = Config::load_in(&f, Some(env), false).unwrap();
        assert_eq!(c.state.backend, StateBackend::File);
        assert_eq!(c.backends.explicit, [true, false, false, false, false]);
    }

    #[test]
    fn an_unknown_mode_names_the_key_and_the_choices() {
        let e = load(
            "cluster: yes-please\nprometheus: {url: http://p:9090}\n",
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("cluster") && e.contains("`auto`, `on` or `off`"),
            "{e}"
        );
    }

    #[test]
    fn leader_election_refuses_per_replica_state_naming_both_keys() {
        let le = "leader_election: {enabled: true}\n";
        let p = "prometheus: {url: http://p:9090}\n";
        // state.backend: file, from the switch or explicit.
        for text in [
            format!("cluster: off\n{p}{le}"),
            format!("cluster: on\n{p}{le}state: {{backend: file}}\n"),
        ] {
            let e = load(&text, false).unwrap_err();
            assert!(
                e.contains("state.backend: `file`") && e.contains("leader_election.enabled"),
                "{text}: {e}"
            );
        }
        // With rollouts: their state and their router must be shared too.
        let e = load(
            &format!("cluster: on\n{p}{le}rollouts: {{state: file}}\n"),
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("rollouts.state: `file` (explicit)")
                && e.contains("leader_election.enabled"),
            "{e}"
        );
        let e = load(
            &format!("cluster: on\n{p}{le}rollouts: {{router: file}}\n"),
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("rollouts.router: `file`") && e.contains("leader_election.enabled"),
            "{e}"
        );
        // Read-only inputs are fine: every replica mounts the same files.
        let c = load(
            &format!("cluster: on\n{p}{le}rollouts: {{source: file, paths: [r], versions: file, versions_file: v.yaml}}\n"),
            false,
        )
        .unwrap();
        assert_eq!(kinds(&c), [true, false, true, true, false]);
        // Without rollouts their keys do not matter; without leader election nothing is refused.
        load(&format!("{p}{le}state: {{backend: kube}}\n"), false).unwrap();
        load(&format!("cluster: off\n{p}"), false).unwrap();
    }

    #[test]
    fn rollout_paths_with_the_switch_on_say_where_source_kube_came_from() {
        let e = load(
            "cluster: on\nprometheus: {url: http://p:9090}\nrollouts: {paths: [r]}\n",
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("rollouts.paths") && e.contains("cluster: on"),
            "{e}"
        );
    }
}
