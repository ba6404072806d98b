//! Tenant scoping of Rollouts: what a Rollout in one namespace may reach with slogate's
//! cluster-wide rights. Pure: the scoping configuration comes in as plain data
//! ([`Scope`]), and [`check`] returns every [`Violation`] of a Rollout.
//!
//! Anyone who can create a Rollout in a namespace would otherwise use slogate's rights on:
//!
//! - **routes**: `spec.traffic.virtualService.namespace` / `spec.traffic.httpRoute.namespace`
//!   name the route whose weights slogate patches. A route must be in the Rollout's own
//!   namespace, unless `rollouts.route_namespaces` lists its namespace for the Rollout's
//!   namespace ([`Scope::route_namespaces`]; the key `*` applies to every Rollout namespace,
//!   the value `*` allows any namespace). Subset mode's `destinationRule` is informational
//!   (slogate neither reads nor writes it) and the workloads have no namespace field: they
//!   are always the Rollout's own.
//! - **GitOps paths**: `spec.gitops.path` is where an abort reverts and a promotion commits.
//!   With `rollouts.gitops_paths` set ([`Scope::gitops_paths`]), the path must lie under one
//!   of the prefixes listed for the Rollout's namespace; a namespace not listed gets none.
//!   Unset, every path is allowed (a single-team install; the daemon warns at start).
//! - **the GitOps app**: `spec.gitops.app` names the guard's app whose freeze holds the
//!   rollout and whose known-good commit a promotion sets. When it names a guarded app
//!   ([`Scope::guarded_apps`]) and `gitops_paths` is set, that app's path must be allowed for
//!   the Rollout's namespace too; otherwise a Rollout could mark its own commit known-good
//!   in another team's app. An app name the guard does not know reaches nothing.
//!
//! Paths are compared by normalised components ([`components`]): empty and `.` components
//! are dropped, `..` and absolute paths are refused everywhere, and a prefix matches whole
//! components only (`apps/a` allows `apps/a` and `apps/a/prod`, not `apps/ab`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{Rollout, Traffic};

/// The configuration key of route scoping.
pub const ROUTE_NAMESPACES_KEY: &str = "rollouts.route_namespaces";
/// The configuration key of GitOps path scoping.
pub const GITOPS_PATHS_KEY: &str = "rollouts.gitops_paths";
/// In [`Scope::route_namespaces`]: every Rollout namespace (as a key), any route namespace
/// (as a value).
pub const ANY: &str = "*";

/// What Rollouts may reach, from the daemon's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Route namespaces allowed besides the Rollout's own, by Rollout namespace (or `*`).
    pub route_namespaces: BTreeMap<String, Vec<String>>,
    /// Allowed GitOps path prefixes by Rollout namespace; `None`: every path is allowed.
    pub gitops_paths: Option<BTreeMap<String, Vec<String>>>,
    /// The guard's apps: name → path in the GitOps repository.
    pub guarded_apps: BTreeMap<String, String>,
}

/// Why a Rollout is refused; the `reason` of its `Admitted` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeReason {
    /// The route is in a namespace the Rollout may not use.
    RouteOutsideNamespace,
    /// `spec.gitops.path` is not under a prefix allowed for the Rollout's namespace.
    GitOpsPathNotAllowed,
    /// `spec.gitops.app` names a guarded app whose path the Rollout may not use.
    GitOpsAppNotAllowed,
}

impl ScopeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeReason::RouteOutsideNamespace => "RouteOutsideNamespace",
            ScopeReason::GitOpsPathNotAllowed => "GitOpsPathNotAllowed",
            ScopeReason::GitOpsAppNotAllowed => "GitOpsAppNotAllowed",
        }
    }
}

impl std::fmt::Display for ScopeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a Rollout reaches beyond its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub reason: ScopeReason,
    /// The spec field, e.g. `spec.traffic.virtualService.namespace`.
    pub field: String,
    /// The value found there.
    pub value: String,
    /// The configuration key whose rule refuses it.
    pub rule: String,
    /// One sentence: the field, the value and what is allowed.
    pub message: String,
}

/// Why a path cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0:?} is absolute: expected a path relative to the repository root")]
    Absolute(String),
    #[error("{0:?} contains `..`: expected a path without parent components")]
    Parent(String),
}

/// The normalised components of a repository path: empty and `.` components dropped;
/// absolute paths and `..` refused.
pub fn components(path: &str) -> Result<Vec<&str>, PathError> {
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(PathError::Absolute(path.to_string()));
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::Parent(path.to_string())),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// True when `path` lies under one of `prefixes`, by whole components. A path or prefix
/// that cannot be normalised never matches, and an empty prefix (the repository root)
/// matches nothing: the configuration refuses it.
pub fn path_allowed(path: &str, prefixes: &[String]) -> bool {
    let Ok(path) = components(path) else {
        return false;
    };
    prefixes.iter().any(|p| match components(p) {
        Ok(p) => !p.is_empty() && path.len() >= p.len() && path[..p.len()] == p[..],
        Err(_) => false,
    })
}

impl Scope {
    /// True when no rule restricts GitOps paths (`rollouts.gitops_paths` unset).
    pub fn gitops_unscoped(&self) -> bool {
        self.gitops_paths.is_none()
    }

    /// The route namespaces a Rollout in `namespace` may use besides its own.
    fn extra_route_namespaces<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a str> {
        [namespace, ANY]
            .into_iter()
            .filter_map(|k| self.route_namespaces.get(k))
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn route_allowed(&self, rollout_ns: &str, route_ns: &str) -> bool {
        route_ns == rollout_ns
            || self
                .extra_route_namespaces(rollout_ns)
                .any(|n| n == ANY || n == route_ns)
    }

    /// The path prefixes allowed for `namespace`; `None` when paths are not scoped.
    fn prefixes(&self, namespace: &str) -> Option<&[String]> {
        self.gitops_paths
            .as_ref()
            .map(|m| m.get(namespace).map(Vec::as_slice).unwrap_or(&[]))
    }
}

fn listed(prefixes: &[String]) -> String {
    if prefixes.is_empty() {
        "none".to_string()
    } else {
        prefixes.join(", ")
    }
}

/// Every way `rollout` reaches beyond `scope`; empty when it may run.
pub fn check(rollout: &Rollout, scope: &Scope) -> Vec<Violation> {
    let ns = rollout.namespace();
    let mut out = Vec::new();

    let (field, route_ns) = match &rollout.spec.traffic {
        Traffic::VirtualService(vs) => ("spec.traffic.virtualService.namespace", &vs.namespace),
        Traffic::HttpRoute(r) => ("spec.traffic.httpRoute.namespace", &r.namespace),
    };
    if let Some(route_ns) = route_ns {
        if !scope.route_allowed(ns, route_ns) {
            let extra: Vec<String> = scope
                .extra_route_namespaces(ns)
                .map(str::to_string)
                .collect();
            let also = if extra.is_empty() {
                String::new()
            } else {
                format!(" or {}", extra.join(", "))
            };
            out.push(Violation {
                reason: ScopeReason::RouteOutsideNamespace,
                field: field.to_string(),
                value: route_ns.clone(),
                rule: ROUTE_NAMESPACES_KEY.to_string(),
                message: format!(
                    "{field}: {route_ns:?} is outside the Rollout's namespace: a Rollout in {ns} may only shift routes in {ns}{also} ({ROUTE_NAMESPACES_KEY})"
                ),
            });
        }
    }

    let path = &rollout.spec.gitops.path;
    if let Err(e) = components(path) {
        // `validate` refuses these too; refused here whatever the configuration says.
        out.push(Violation {
            reason: ScopeReason::GitOpsPathNotAllowed,
            field: "spec.gitops.path".into(),
            value: path.clone(),
            rule: "spec.gitops.path".into(),
            message: format!("spec.gitops.path: {e}"),
        });
    } else if let Some(prefixes) = scope.prefixes(ns) {
        if !path_allowed(path, prefixes) {
            out.push(Violation {
                reason: ScopeReason::GitOpsPathNotAllowed,
                field: "spec.gitops.path".into(),
                value: path.clone(),
                rule: GITOPS_PATHS_KEY.to_string(),
                message: format!(
                    "spec.gitops.path: {path:?} is not under a path allowed for namespace {ns} (allowed: {}; {GITOPS_PATHS_KEY})",
                    listed(prefixes)
                ),
            });
        }
    }

    let app = &rollout.spec.gitops.app;
    if let (Some(prefixes), Some(app_path)) = (scope.prefixes(ns), scope.guarded_apps.get(app)) {
        if !path_allowed(app_path, prefixes) {
            out.push(Violation {
                reason: ScopeReason::GitOpsAppNotAllowed,
                field: "spec.gitops.app".into(),
                value: app.clone(),
                rule: GITOPS_PATHS_KEY.to_string(),
                message: format!(
                    "spec.gitops.app: {app:?} is the guarded app at {app_path:?}, which is not under a path allowed for namespace {ns} (allowed: {}; {GITOPS_PATHS_KEY})",
                    listed(prefixes)
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::spec::{
        Analysis, Backend, Destinations, GitOps, HttpRouteRef, Metric, ObjectMeta, RolloutSpec,
        SubsetDestinations, VirtualServiceRef, WorkloadKind, WorkloadRef, Workloads,
    };

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn rollout(ns: &str, traffic: Traffic, app: &str, path: &str) -> Rollout {
        let w = |n: &str| WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: n.into(),
        };
        Rollout {
            api_version: crate::rollout::spec::API_VERSION.into(),
            kind: "Rollout".into(),
            metadata: ObjectMeta {
                name: "checkout".into(),
                namespace: Some(ns.into()),
                generation: None,
            },
            spec: RolloutSpec {
                traffic,
                workloads: Workloads {
                    stable: w("checkout"),
                    canary: w("checkout-canary"),
                    version_label: "version".into(),
                },
                steps: crate::rollout::spec::default_steps(),
                interval: crate::rollout::spec::default_interval(),
                failure_limit: 2,
                inconclusive_limit: 3,
                min_requests: None,
                progress_deadline: crate::rollout::spec::default_progress_deadline(),
                approval: None,
                analysis: Analysis {
                    metrics: vec![Metric {
                        name: "request-success-rate".into(),
                        query: None,
                        min: Some(0.99),
                        max: None,
                        compare: None,
                    }],
                    error_counts: None,
                },
                gitops: GitOps {
                    app: app.into(),
                    path: path.into(),
                },
                slos: vec![],
            },
            status: None,
        }
    }

    fn vs(ns: Option<&str>) -> Traffic {
        Traffic::VirtualService(VirtualServiceRef {
            name: "checkout".into(),
            namespace: ns.map(str::to_string),
            route: "primary".into(),
            destinations: Destinations::Subset(SubsetDestinations {
                host: "checkout".into(),
                stable: "stable".into(),
                canary: "canary".into(),
                destination_rule: Some("elsewhere".into()),
            }),
        })
    }

    fn route(ns: Option<&str>) -> Traffic {
        let b = |n: &str| Backend {
            name: n.into(),
            port: Some(80),
        };
        Traffic::HttpRoute(HttpRouteRef {
            name: "checkout".into(),
            namespace: ns.map(str::to_string),
            stable_backend: b("checkout"),
            canary_backend: b("checkout-canary"),
        })
    }

    fn reasons(v: &[Violation]) -> Vec<ScopeReason> {
        v.iter().map(|v| v.reason).collect()
    }

    #[test]
    fn components_normalise_and_refuse_parents_and_absolute_paths() {
        let table: &[(&str, Result<Vec<&str>, PathError>)] = &[
            ("apps/a", Ok(vec!["apps", "a"])),
            ("apps//a/", Ok(vec!["apps", "a"])),
            ("./apps/./a", Ok(vec!["apps", "a"])),
            ("", Ok(vec![])),
            (".", Ok(vec![])),
            ("/apps/a", Err(PathError::Absolute("/apps/a".into()))),
            ("\\apps", Err(PathError::Absolute("\\apps".into()))),
            ("apps/../b", Err(PathError::Parent("apps/../b".into()))),
            ("..", Err(PathError::Parent("..".into()))),
            ("apps/a/..", Err(PathError::Parent("apps/a/..".into()))),
        ];
        for (path, want) in table {
            assert_eq!(&components(path), want, "{path:?}");
        }
    }

    #[test]
    fn prefixes_match_whole_components_only() {
        let allowed = strings(&["apps/a", "shared/team-a/"]);
        let table: &[(&str, bool)] = &[
            ("apps/a", true),
            ("apps/a/overlays/prod", true),
            ("./apps/a//overlays", true),
            ("apps/a/", true),
            ("apps/ab", false),
            ("apps/ab/prod", false),
            ("apps", false),
            ("apps/b", false),
            ("shared/team-a/x.yaml", true),
            ("shared/team-ab", false),
            ("apps/a/../b", false),
            ("apps/a/../../etc", false),
            ("/apps/a", false),
            ("", false),
            ("other/apps/a", false),
        ];
        for (path, want) in table {
            assert_eq!(path_allowed(path, &allowed), *want, "{path:?}");
        }
        // An empty allowlist allows nothing; neither does an empty or malformed prefix.
        assert!(!path_allowed("apps/a", &[]));
        assert!(!path_allowed("apps/a", &strings(&[""])));
        assert!(!path_allowed("apps/a", &strings(&["."])));
        assert!(!path_allowed("apps/a/x", &strings(&["apps/a/../a"])));
        assert!(!path_allowed("apps/a", &strings(&["/apps/a"])));
    }

    #[test]
    fn routes_stay_in_the_rollouts_namespace_unless_allowed() {
        let none = Scope::default();
        // Absent namespace: the Rollout's own. The same namespace, named: allowed.
        for t in [vs(None), vs(Some("shop")), route(None), route(Some("shop"))] {
            assert!(check(&rollout("shop", t, "a", "apps/a"), &none).is_empty());
        }
        let v = check(&rollout("shop", vs(Some("payments")), "a", "apps/a"), &none);
        assert_eq!(reasons(&v), [ScopeReason::RouteOutsideNamespace]);
        assert_eq!(v[0].field, "spec.traffic.virtualService.namespace");
        assert_eq!(v[0].value, "payments");
        assert_eq!(v[0].rule, ROUTE_NAMESPACES_KEY);
        assert!(
            v[0].message.contains("may only shift routes in shop ("),
            "{}",
            v[0].message
        );
        let v = check(
            &rollout("shop", route(Some("payments")), "a", "apps/a"),
            &none,
        );
        assert_eq!(v[0].field, "spec.traffic.httpRoute.namespace");

        let scope = Scope {
            route_namespaces: BTreeMap::from([
                ("shop".to_string(), strings(&["mesh"])),
                (ANY.to_string(), strings(&["gateways"])),
                ("platform".to_string(), strings(&[ANY])),
            ]),
            ..Scope::default()
        };
        let table: &[(&str, &str, bool)] = &[
            ("shop", "mesh", true),
            ("shop", "gateways", true),
            ("shop", "payments", false),
            ("payments", "mesh", false),
            ("payments", "gateways", true),
            ("platform", "anything", true),
        ];
        for (rollout_ns, route_ns, ok) in table {
            let v = check(
                &rollout(rollout_ns, route(Some(route_ns)), "a", "apps/a"),
                &scope,
            );
            assert_eq!(v.is_empty(), *ok, "{rollout_ns} → {route_ns}: {v:?}");
        }
        let v = check(
            &rollout("shop", route(Some("payments")), "a", "apps/a"),
            &scope,
        );
        assert!(
            v[0].message.contains("in shop or mesh, gateways"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn gitops_paths_follow_the_namespace_allowlist() {
        let scope = Scope {
            gitops_paths: Some(BTreeMap::from([
                ("shop".to_string(), strings(&["apps/shop", "apps/checkout"])),
                ("empty".to_string(), vec![]),
            ])),
            ..Scope::default()
        };
        let table: &[(&str, &str, bool)] = &[
            ("shop", "apps/shop/overlays/prod", true),
            ("shop", "apps/checkout", true),
            ("shop", "apps/shopping", false),
            ("shop", "apps/payments/overlays/prod", false),
            ("shop", "apps/shop/../payments", false),
            ("empty", "apps/shop", false),
            ("unlisted", "apps/shop", false),
        ];
        for (ns, path, ok) in table {
            let v = check(&rollout(ns, route(None), "x", path), &scope);
            assert_eq!(v.is_empty(), *ok, "{ns}: {path}: {v:?}");
            if !ok {
                assert_eq!(reasons(&v), [ScopeReason::GitOpsPathNotAllowed]);
                assert_eq!(v[0].field, "spec.gitops.path");
            }
        }
        let v = check(&rollout("unlisted", route(None), "x", "apps/shop"), &scope);
        assert!(v[0].message.contains("(allowed: none;"), "{}", v[0].message);
        assert_eq!(v[0].rule, GITOPS_PATHS_KEY);

        // Unscoped: every relative path, but never `..` or an absolute one.
        let none = Scope::default();
        assert!(none.gitops_unscoped());
        assert!(check(&rollout("any", route(None), "x", "anywhere/at/all"), &none).is_empty());
        for bad in ["../other-repo", "/etc", "apps/../../x"] {
            let v = check(&rollout("any", route(None), "x", bad), &none);
            assert_eq!(reasons(&v), [ScopeReason::GitOpsPathNotAllowed], "{bad}");
            assert_eq!(v[0].rule, "spec.gitops.path");
        }
    }

    #[test]
    fn a_guarded_app_is_reachable_only_through_an_allowed_path() {
        let mut scope = Scope {
            gitops_paths: Some(BTreeMap::from([(
                "shop".to_string(),
                strings(&["apps/shop"]),
            )])),
            guarded_apps: BTreeMap::from([
                ("shop".to_string(), "apps/shop/overlays/prod".to_string()),
                (
                    "payments".to_string(),
                    "apps/payments/overlays/prod".to_string(),
                ),
            ]),
            ..Scope::default()
        };
        assert!(check(&rollout("shop", route(None), "shop", "apps/shop"), &scope).is_empty());
        // An app the guard does not know reaches nothing.
        assert!(check(&rollout("shop", route(None), "other", "apps/shop"), &scope).is_empty());
        let v = check(
            &rollout("shop", route(None), "payments", "apps/shop"),
            &scope,
        );
        assert_eq!(reasons(&v), [ScopeReason::GitOpsAppNotAllowed]);
        assert_eq!(v[0].field, "spec.gitops.app");
        assert!(
            v[0].message.contains("apps/payments/overlays/prod"),
            "{}",
            v[0].message
        );
        // Unscoped paths: apps are not scoped either.
        scope.gitops_paths = None;
        assert!(check(&rollout("shop", route(None), "payments", "apps/x"), &scope).is_empty());
    }

    #[test]
    fn every_violation_is_reported() {
        let scope = Scope {
            gitops_paths: Some(BTreeMap::new()),
            guarded_apps: BTreeMap::from([("payments".to_string(), "apps/p".to_string())]),
            ..Scope::default()
        };
        let v = check(
            &rollout("shop", vs(Some("payments")), "payments", "apps/p"),
            &scope,
        );
        assert_eq!(
            reasons(&v),
            [
                ScopeReason::RouteOutsideNamespace,
                ScopeReason::GitOpsPathNotAllowed,
                ScopeReason::GitOpsAppNotAllowed
            ]
        );
    }
}
