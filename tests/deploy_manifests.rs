//! The in-cluster installation in `deploy/`: what `kubectl kustomize deploy/` renders, and the
//! files beside it (Argo CD Application, ExternalSecret example, Alertmanager receiver,
//! Dockerfile).
//!
//! - Every object validates against schemas (`scripts/validate-manifests`, on the
//!   `kubernetes-validate` package from PyPI): built-in kinds strictly against Kubernetes'
//!   OpenAPI schemas; custom resources against their CRD where it is shipped here (the Rollout
//!   CRD in `deploy/crds/`), and the third-party ones (ServiceMonitor, PrometheusRule,
//!   ExternalSecret, SecretStore, Application) against hand-written *structural subsets* of
//!   their CRDs in `tests/fixtures/deploy/schemas/`, listed as such in [`STRUCTURAL_KINDS`].
//! - The Deployment's security settings, probes, replicas and mounts; the config in its
//!   ConfigMap loads with the daemon's own loader; the SLO ConfigMap loads with the spec loader.
//! - RBAC is exactly `slogate::adapters::kube::API_CALLS`, each rule commented ([`rbac_grants`] parses the
//!   bound Roles into tuples for any cross-check against the code).
//! - The PrometheusRule is the rules in `rules/` (drift test; `SLOGATE_BLESS=1` rewrites it).
//! - The Alertmanager snippet passes `amtool check-config` and targets the Service.
//!
//! Tools: `kubectl` (for `kubectl kustomize`; `$KUBECTL` or PATH), a Python with
//! `kubernetes-validate` (`$SLOGATE_PYTHON` or `python3`), and `amtool`. `./scripts/test`
//! installs what is missing. A missing tool fails the test unless `SLOGATE_E2E=0` is set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use slogate::model::yaml::Value;

use common::{e2e_enabled, require_bin, run_ok};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A tool from an environment variable or PATH. `None` only when `SLOGATE_E2E=0`.
fn tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "${env} names {}, which does not exist",
            p.display()
        );
        return Some(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if !e2e_enabled() => {
            eprintln!("SKIPPED: {name} not found and SLOGATE_E2E=0");
            None
        }
        None => panic!(
            "{name} not found (${env} unset, not on PATH). Run ./scripts/test, which installs \
             it, or set SLOGATE_E2E=0 to skip the tests that need it explicitly"
        ),
    }
}

fn kubectl() -> Option<PathBuf> {
    tool("KUBECTL", "kubectl")
}

/// A Python that can `import kubernetes_validate`.
fn python() -> Option<PathBuf> {
    let py = tool("SLOGATE_PYTHON", "python3")?;
    let ok = Command::new(&py)
        .args(["-c", "import kubernetes_validate"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(py);
    }
    if !e2e_enabled() {
        eprintln!(
            "SKIPPED: {} has no kubernetes_validate and SLOGATE_E2E=0",
            py.display()
        );
        return None;
    }
    panic!(
        "{} cannot import kubernetes_validate. Run ./scripts/test, which installs the \
         kubernetes-validate package in a virtualenv and sets SLOGATE_PYTHON, or \
         `pip install kubernetes-validate`",
        py.display()
    );
}

fn docs(text: &str) -> Vec<Value> {
    slogate::model::yaml::documents(text).expect("YAML documents")
}

/// `kubectl kustomize deploy/`, parsed. `None` only when `SLOGATE_E2E=0` and kubectl is
/// missing.
fn render() -> Option<Vec<Value>> {
    let kubectl = kubectl()?;
    let out = run_ok(
        Command::new(kubectl)
            .arg("kustomize")
            .arg(root().join("deploy")),
    );
    let objects = docs(&out);
    assert!(objects.len() > 10, "kustomize rendered too little:\n{out}");
    Some(objects)
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{}: expected a string, got {cur:?}", path.join(".")))
}

fn kind(v: &Value) -> &str {
    str_of(v, &["kind"])
}

fn name(v: &Value) -> &str {
    str_of(v, &["metadata", "name"])
}

fn find<'a>(objects: &'a [Value], k: &str, n: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == k && name(o) == n)
        .unwrap_or_else(|| panic!("no {k}/{n} in the rendered manifests"))
}

/// The one object of a kind (ConfigMaps get a hash suffix, so look them up by prefix).
fn find_prefix<'a>(objects: &'a [Value], k: &str, prefix: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) == k && name(o).starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {k} named {prefix}*: {found:?}"
    );
    found[0]
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a sequence, got {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    seq(v)
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

const NAMESPACE: &str = "slogate";
const SERVICE_ACCOUNT: &str = "slogate";

// ---------------------------------------------------------------------------------------
// Schemas

/// Kinds validated against a hand-written structural subset of their CRD (the upstream CRDs
/// are not shipped here): checked for field names and types, not against every upstream rule.
const STRUCTURAL_KINDS: [&str; 5] = [
    "ServiceMonitor",
    "PrometheusRule",
    "Application",
    "ExternalSecret",
    "SecretStore",
];

/// Run `scripts/validate-manifests --json` on files; one JSON object per validated object.
fn validate_files(py: &Path, files: &[&Path]) -> (bool, Vec<serde_json::Value>) {
    let out = Command::new(py)
        .arg(root().join("scripts/validate-manifests"))
        .arg("--json")
        .arg("--crd")
        .arg(root().join("deploy/crds/rollouts.slogate.dev.yaml"))
        .args(files)
        .output()
        .expect("run scripts/validate-manifests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "validate-manifests failed to run ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let results = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    (out.status.success(), results)
}

#[test]
fn every_object_validates_against_its_schema() {
    let (Some(objects), Some(py)) = (render(), python()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let rendered = dir.path().join("rendered.yaml");
    let text: String = objects
        .iter()
        .map(|o| {
            format!(
                "---\n{}",
                slogate::model::yaml::to_string(o).expect("serialise")
            )
        })
        .collect();
    std::fs::write(&rendered, text).expect("write rendered manifests");
    let extra = [
        root().join("deploy/argocd/application.yaml"),
        root().join("deploy/examples/externalsecret-vault.yaml"),
    ];
    let mut files: Vec<&Path> = vec![&rendered];
    files.extend(extra.iter().map(PathBuf::as_path));
    let (ok, results) = validate_files(&py, &files);

    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r["errors"].as_array().is_some_and(|e| e.is_empty()))
        .map(|r| {
            format!(
                "{}/{} [{}]: {}",
                r["kind"], r["name"], r["schema"], r["errors"]
            )
        })
        .collect();
    assert!(
        ok && failures.is_empty(),
        "invalid objects:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        results.len(),
        objects.len() + 3,
        "one result per object: {results:#?}"
    );

    // How each kind was validated: the list is explicit, so a kind silently falling back to
    // a weaker check (or to none) fails here.
    let mut how: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &results {
        let schema = r["schema"].as_str().unwrap_or_default();
        let class = if schema.starts_with("kubernetes ") && schema.ends_with(" strict") {
            "kubernetes-strict"
        } else if schema.starts_with("structural ") {
            "structural"
        } else if schema.starts_with("crd ") {
            "crd"
        } else {
            panic!("{}/{}: unexpected schema {schema}", r["kind"], r["name"]);
        };
        how.entry(class.into())
            .or_default()
            .insert(r["kind"].as_str().unwrap_or_default().to_string());
    }
    let built_in: BTreeSet<String> = [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
    .map(String::from)
    .into();
    let structural: BTreeSet<String> = STRUCTURAL_KINDS.map(String::from).into();
    assert_eq!(how.get("kubernetes-strict"), Some(&built_in), "{how:#?}");
    assert_eq!(how.get("structural"), Some(&structural), "{how:#?}");
    // Both the oldest supported and the newest Kubernetes version were checked.
    for r in &results {
        let schema = r["schema"].as_str().unwrap_or_default();
        if schema.starts_with("kubernetes ") {
            assert!(schema.contains("1.28,"), "{schema}");
        }
    }
}

/// The validator is strict: a typo in a field name, a wrong type, an unknown kind, and a
/// custom resource that breaks its CRD are all errors.
#[test]
fn the_validator_rejects_what_the_api_server_would() {
    let Some(py) = python() else {
        return;
    };
    let cases = [
        (
            "container field typo",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i, securityContext: {readOnlyRootFS: true}}]\n",
            "readOnlyRootFS",
        ),
        (
            "wrong type",
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {minAvailable: [1]}\n",
            "minAvailable",
        ),
        (
            "ServiceMonitor typo",
            "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec:\n  selector: {}\n  endpoints: [{port: http, honorLabel: true}]\n",
            "honorLabel",
        ),
        (
            "Rollout breaking its CRD",
            "apiVersion: slogate.dev/v1alpha1\nkind: Rollout\nmetadata: {name: x, colour: red}\nspec: {}\n",
            "colour",
        ),
        (
            "unknown kind",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {}\n",
            "no schema",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (what, yaml, needle) in cases {
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, yaml).expect("write case");
        let (ok, results) = validate_files(&py, &[&f]);
        assert!(!ok, "{what}: accepted: {results:#?}");
        let errors = results[0]["errors"].to_string();
        assert!(errors.contains(needle), "{what}: {errors}");
    }
}

#[test]
fn rendered_objects_are_the_expected_set_in_one_namespace() {
    let Some(objects) = render() else {
        return;
    };
    let got: BTreeSet<(String, String)> = objects
        .iter()
        .map(|o| {
            let n = name(o);
            // Generated ConfigMaps carry a content hash.
            let n = if kind(o) == "ConfigMap" && n.starts_with("slogate-config-") {
                "slogate-config-<hash>"
            } else {
                n
            };
            (kind(o).to_string(), n.to_string())
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("Namespace", "slogate"),
        ("CustomResourceDefinition", "rollouts.slogate.dev"),
        ("ServiceAccount", "slogate"),
        ("ClusterRole", "slogate"),
        ("ClusterRoleBinding", "slogate"),
        ("Role", "slogate-leader-election"),
        ("RoleBinding", "slogate-leader-election"),
        ("Role", "slogate-state"),
        ("RoleBinding", "slogate-state"),
        ("ConfigMap", "slogate-config-<hash>"),
        ("ConfigMap", "slogate-slos"),
        ("Deployment", "slogate"),
        ("Service", "slogate"),
        ("PodDisruptionBudget", "slogate"),
        ("NetworkPolicy", "slogate"),
        ("ServiceMonitor", "slogate"),
        ("PrometheusRule", "slogate-slos"),
    ]
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .into();
    assert_eq!(got, want);
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    for o in &objects {
        let ns = o["metadata"]["namespace"].as_str();
        if cluster_scoped.contains(&kind(o)) {
            assert_eq!(ns, None, "{}/{} is cluster-scoped", kind(o), name(o));
        } else {
            assert_eq!(ns, Some(NAMESPACE), "{}/{}", kind(o), name(o));
        }
    }
    // No Secret is ever rendered: credentials are created out of band.
    assert!(objects.iter().all(|o| kind(o) != "Secret"));
}

// ---------------------------------------------------------------------------------------
// Deployment

#[test]
fn deployment_is_hardened_probed_and_highly_available() {
    let Some(objects) = render() else {
        return;
    };
    let d = find(&objects, "Deployment", "slogate");
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(2), "two replicas");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(str_of(pod, &["serviceAccountName"]), SERVICE_ACCOUNT);
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace period");
    assert!(
        (30..=120).contains(&grace),
        "terminationGracePeriodSeconds {grace}"
    );

    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(psc["runAsUser"].as_i64(), Some(65532));
    assert_eq!(str_of(psc, &["seccompProfile", "type"]), "RuntimeDefault");

    let containers = seq(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["runAsUser"].as_i64(), Some(65532));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(str_of(sc, &["seccompProfile", "type"]), "RuntimeDefault");
    assert!(sc["privileged"].as_bool() != Some(true));

    for r in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !c["resources"][r][res].is_null(),
                "resources.{r}.{res} is set"
            );
        }
    }

    // Probes on the HTTP port, at the daemon's health endpoints.
    let port = seq(&c["ports"])
        .iter()
        .find(|p| p["name"] == "http")
        .expect("an http port");
    assert_eq!(port["containerPort"].as_i64(), Some(8080));
    assert_eq!(str_of(c, &["livenessProbe", "httpGet", "path"]), "/healthz");
    assert_eq!(str_of(c, &["readinessProbe", "httpGet", "path"]), "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(str_of(c, &[probe, "httpGet", "port"]), "http", "{probe}");
    }
    // The preStop pause stays well inside the grace period.
    let pre_stop = strings(&c["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(pre_stop[0], "sleep");
    let pause: i64 = pre_stop[1].parse().expect("sleep seconds");
    assert!(pause * 4 <= grace, "preStop {pause}s vs grace {grace}s");

    // Leader election identity from the downward API.
    let env = seq(&c["env"]);
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("env {var}"));
        assert_eq!(str_of(e, &["valueFrom", "fieldRef", "fieldPath"]), field);
    }

    // Mounts: config file, SLO specs, credentials (read-only), state and /tmp (writable,
    // since the root filesystem is read-only).
    let mounts: BTreeMap<String, &Value> = seq(&c["volumeMounts"])
        .iter()
        .map(|m| (str_of(m, &["mountPath"]).to_string(), m))
        .collect();
    let volumes: BTreeMap<String, &Value> = seq(&pod["volumes"])
        .iter()
        .map(|v| (str_of(v, &["name"]).to_string(), v))
        .collect();
    let volume_at = |path: &str| -> &Value {
        let m = mounts
            .get(path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}: {mounts:?}"));
        volumes[str_of(m, &["name"])]
    };
    let config = volume_at("/etc/slogate/slogate.yaml");
    assert!(str_of(config, &["configMap", "name"]).starts_with("slogate-config-"));
    assert_eq!(
        str_of(mounts["/etc/slogate/slogate.yaml"], &["subPath"]),
        "slogate.yaml"
    );
    assert_eq!(
        str_of(volume_at("/etc/slogate/slos"), &["configMap", "name"]),
        "slogate-slos"
    );
    let creds = volume_at("/etc/slogate/secrets");
    assert_eq!(
        str_of(creds, &["secret", "secretName"]),
        "slogate-credentials"
    );
    for p in [
        "/etc/slogate/slogate.yaml",
        "/etc/slogate/slos",
        "/etc/slogate/secrets",
    ] {
        assert_eq!(mounts[p]["readOnly"].as_bool(), Some(true), "{p} read-only");
    }
    for p in ["/var/lib/slogate", "/tmp"] {
        assert!(!volume_at(p)["emptyDir"].is_null(), "{p} is an emptyDir");
    }
    // The image comes from the kustomization's `images:` entry.
    let k: Value =
        slogate::model::yaml::from_str(&read("deploy/kustomization.yaml")).expect("yaml");
    let image = seq(&k["images"])
        .iter()
        .find(|i| i["name"] == "slogate")
        .expect("images: slogate");
    assert_eq!(
        str_of(c, &["image"]),
        format!(
            "{}:{}",
            str_of(image, &["newName"]),
            str_of(image, &["newTag"])
        )
    );
    // The container runs the daemon with the mounted config.
    assert_eq!(
        strings(&c["args"]),
        ["run", "--config", "/etc/slogate/slogate.yaml"]
    );
}

/// The config file in the ConfigMap loads with the daemon's own loader, and agrees with the
/// Deployment (port, SLO path); the SLO specs load with the spec loader.
#[test]
fn configmaps_hold_a_config_and_specs_the_daemon_loads() {
    let Some(objects) = render() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let cm = find_prefix(&objects, "ConfigMap", "slogate-config-");
    let file = dir.path().join("slogate.yaml");
    std::fs::write(&file, str_of(cm, &["data", "slogate.yaml"])).expect("write config");
    // The ConfigMap is read in a pod, where `cluster: auto` resolves to the in-cluster backends.
    let cfg = slogate::runtime::config::Config::load_in(&file, Some(Default::default()), true)
        .unwrap_or_else(|e| panic!("the ConfigMap's slogate.yaml does not load: {e}"));
    assert_eq!(
        cfg.server.listen.port(),
        8080,
        "listens on the container port"
    );
    assert_eq!(cfg.slos.paths, [PathBuf::from("/etc/slogate/slos")]);

    let slos = find(&objects, "ConfigMap", "slogate-slos");
    let data = slos["data"].as_mapping().expect("slos data");
    assert!(!data.is_empty());
    let specs = dir.path().join("slos");
    std::fs::create_dir(&specs).expect("mkdir");
    for (k, v) in data {
        let k = k.as_str().expect("key");
        std::fs::write(specs.join(k), v.as_str().expect("spec text")).expect("write spec");
    }
    let report = slogate::slo::spec::load_paths(&[specs]);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{:#?} {:#?}",
        report.errors,
        report.warnings
    );
    assert_eq!(report.slos.len(), 3, "checkout (2) and search (1)");
}

/// `deploy/slos/` ships the example SLOs, whose rules are `rules/` and so the PrometheusRule.
#[test]
fn shipped_slo_specs_are_the_examples() {
    let mut shipped: Vec<String> = std::fs::read_dir(root().join("deploy/slos"))
        .expect("deploy/slos")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    let mut examples: Vec<String> = std::fs::read_dir(root().join("examples/slos"))
        .expect("examples/slos")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    examples.sort();
    assert_eq!(shipped, examples);
    for f in &shipped {
        assert_eq!(
            read(&format!("deploy/slos/{f}")),
            read(&format!("examples/slos/{f}")),
            "deploy/slos/{f} differs from examples/slos/{f}: copy it over"
        );
    }
    // And the kustomization lists every one of them.
    let k: Value =
        slogate::model::yaml::from_str(&read("deploy/kustomization.yaml")).expect("yaml");
    let gen = seq(&k["configMapGenerator"])
        .iter()
        .find(|g| g["name"] == "slogate-slos")
        .expect("slogate-slos generator");
    let listed: Vec<String> = strings(&gen["files"]);
    let want: Vec<String> = shipped.iter().map(|f| format!("slos/{f}")).collect();
    assert_eq!(listed, want);
}

// ---------------------------------------------------------------------------------------
// RBAC

/// One permission granted to slogate's ServiceAccount: `namespace` is `None` for a
/// ClusterRoleBinding (everywhere) and the RoleBinding's namespace otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub namespace: Option<String>,
}

/// Every (group, resource, verb) granted to the ServiceAccount `namespace/sa` by the Roles
/// and ClusterRoles bound to it among `objects`. Rules with `resourceNames` or
/// `nonResourceURLs` are refused (slogate has none), so the tuples are the whole grant.
pub fn rbac_grants(objects: &[Value], namespace: &str, sa: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for b in objects
        .iter()
        .filter(|o| matches!(kind(o), "RoleBinding" | "ClusterRoleBinding"))
    {
        let binds_sa = seq(&b["subjects"]).iter().any(|s| {
            s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == namespace
        });
        if !binds_sa {
            continue;
        }
        let scope = (kind(b) == "RoleBinding").then(|| {
            b["metadata"]["namespace"]
                .as_str()
                .expect("RoleBinding namespace")
                .to_string()
        });
        let role_kind = str_of(b, &["roleRef", "kind"]);
        let role = find(objects, role_kind, str_of(b, &["roleRef", "name"]));
        if role_kind == "Role" {
            assert_eq!(role["metadata"]["namespace"].as_str(), scope.as_deref());
        }
        for rule in seq(&role["rules"]) {
            assert!(
                rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null(),
                "{}: rule {rule:?} is not a plain (group, resource, verb) rule",
                name(role)
            );
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for v in strings(&rule["verbs"]) {
                        out.insert(Grant {
                            group: g.clone(),
                            resource: r.clone(),
                            verb: v,
                            namespace: scope.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// [`rbac_grants`] as plain `(group, resource, verb)` tuples.
pub fn rbac_tuples(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    rbac_grants(objects, NAMESPACE, SERVICE_ACCOUNT)
        .into_iter()
        .map(|g| (g.group, g.resource, g.verb))
        .collect()
}

#[test]
fn rbac_grants_exactly_the_api_calls_the_code_makes() {
    let Some(objects) = render() else {
        return;
    };
    let got = rbac_grants(&objects, NAMESPACE, SERVICE_ACCOUNT);
    // The code's own registry of every Kubernetes call it makes (its tower-test mocks fail
    // any request not in it). Leases and the state ConfigMaps are only used in slogate's
    // own namespace.
    let want: BTreeSet<Grant> = slogate::adapters::kube::API_CALLS
        .iter()
        .flat_map(|c| {
            c.verbs.iter().map(move |v| Grant {
                group: c.group.to_string(),
                resource: c.resource.to_string(),
                verb: v.to_string(),
                namespace: slogate::adapters::kube::OWN_NAMESPACE_RESOURCES
                    .contains(&c.resource)
                    .then(|| NAMESPACE.to_string()),
            })
        })
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "RBAC differs from the API calls the code makes.\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    let tuples = rbac_tuples(&objects);
    assert!(tuples
        .iter()
        .all(|(g, r, v)| g != "*" && r != "*" && v != "*"));
    assert!(
        !tuples.iter().any(|(_, r, _)| r == "secrets"),
        "no Secret access"
    );

    // Every rule in the source says why it exists: a comment right above `- apiGroups:`.
    let src = read("deploy/rbac.yaml");
    let lines: Vec<&str> = src.lines().collect();
    let mut rules = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("- apiGroups:") {
            rules += 1;
            let above = lines[..i].last().map(|a| a.trim_start()).unwrap_or("");
            assert!(
                above.starts_with('#'),
                "deploy/rbac.yaml:{}: rule without a comment saying why",
                i + 1
            );
        }
    }
    // One rule per (API group, verbs): resources of a group with the same verbs share one.
    let groups: BTreeSet<(&str, Vec<&str>)> = slogate::adapters::kube::API_CALLS
        .iter()
        .map(|c| (c.group, c.verbs.to_vec()))
        .collect();
    assert_eq!(rules, groups.len(), "one rule per API group and verb set");
}

// ---------------------------------------------------------------------------------------
// Service, monitoring, network, disruption

fn selects(selector: &Value, labels: &Value) -> bool {
    let m = selector.as_mapping().expect("matchLabels");
    !m.is_empty() && m.iter().all(|(k, v)| labels[k.as_str().unwrap()] == *v)
}

#[test]
fn service_monitoring_network_policy_and_pdb_select_the_pods() {
    let Some(objects) = render() else {
        return;
    };
    let d = find(&objects, "Deployment", "slogate");
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&d["spec"]["selector"]["matchLabels"], pod_labels));

    let svc = find(&objects, "Service", "slogate");
    assert!(selects(&svc["spec"]["selector"], pod_labels));
    let port = &seq(&svc["spec"]["ports"])[0];
    assert_eq!(port["port"].as_i64(), Some(8080));
    assert_eq!(port["name"], "http");
    assert_eq!(port["targetPort"], "http");

    let sm = find(&objects, "ServiceMonitor", "slogate");
    assert!(selects(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    let ep = &seq(&sm["spec"]["endpoints"])[0];
    assert_eq!(ep["port"], "http");
    assert_eq!(ep["path"], "/metrics");
    // Rollout series carry their own `namespace` label, which must survive the scrape.
    assert_eq!(ep["honorLabels"].as_bool(), Some(true));

    let pdb = find(&objects, "PodDisruptionBudget", "slogate");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
    let min = pdb["spec"]["minAvailable"].as_i64().expect("minAvailable");
    let replicas = d["spec"]["replicas"].as_i64().expect("replicas");
    assert!(
        min >= 1 && min < replicas,
        "a drain can proceed and leaves one"
    );

    let np = find(&objects, "NetworkPolicy", "slogate");
    assert!(selects(
        &np["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress", "Egress"]);
    let ingress = seq(&np["spec"]["ingress"]);
    assert!(ingress.iter().all(|r| seq(&r["ports"])
        .iter()
        .all(|p| p["port"] == "http" || p["port"].as_i64() == Some(8080))));
    let ingress_ns: Vec<&Value> = ingress
        .iter()
        .flat_map(|r| seq(&r["from"]))
        .map(|f| &f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        .collect();
    assert!(
        ingress_ns.iter().any(|n| **n == "monitoring"),
        "{ingress_ns:?}"
    );
    let egress_ports: BTreeSet<i64> = seq(&np["spec"]["egress"])
        .iter()
        .flat_map(|r| seq(&r["ports"]))
        .filter_map(|p| p["port"].as_i64())
        .collect();
    for (p, why) in [
        (53, "DNS"),
        (443, "kube-apiserver and git over https"),
        (6443, "kube-apiserver"),
        (9090, "Prometheus"),
        (22, "git over ssh"),
    ] {
        assert!(
            egress_ports.contains(&p),
            "egress {p} ({why}): {egress_ports:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// PrometheusRule: generated from rules/

const PROMETHEUS_RULE: &str = "deploy/prometheusrule.yaml";

/// The PrometheusRule holding every group of every file in `rules/` (sorted by file name).
fn generate_prometheus_rule() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("rules"))
        .expect("rules/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "rules/ has no rule files");
    let mut groups = Vec::new();
    for f in &files {
        let doc: Value = slogate::model::yaml::from_str(
            &std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        groups.extend(seq(&doc["groups"]).iter().cloned());
    }
    // slogate's YAML Mapping keeps insertion order, so rules read `record:`/`alert:` first as in
    // rules/.
    let object: Value = slogate::model::yaml::from_str(
        "apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: slogate-slos\n  labels:\n    app.kubernetes.io/name: slogate\n\
         spec:\n  groups: []\n",
    )
    .expect("PrometheusRule skeleton");
    let mut object = object;
    object["spec"]["groups"] = Value::Sequence(groups);
    let names: Vec<String> = files
        .iter()
        .map(|f| format!("rules/{}", f.file_name().unwrap().to_string_lossy()))
        .collect();
    format!(
        "# Code generated from {} by tests/deploy_manifests.rs. DO NOT EDIT.\n\
         # Regenerate after changing rules/: SLOGATE_BLESS=1 cargo test --test deploy_manifests\n\
         # The Sloth-compatible recording and burn-rate alert rules of the SLOs in slos/.\n{}",
        names.join(", "),
        slogate::model::yaml::to_string(&object).expect("serialise PrometheusRule")
    )
}

#[test]
fn prometheus_rule_is_the_rules_directory() {
    let want = generate_prometheus_rule();
    let path = root().join(PROMETHEUS_RULE);
    if std::env::var("SLOGATE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).expect("write PrometheusRule");
        return;
    }
    let have = read(PROMETHEUS_RULE);
    assert!(
        have == want,
        "{PROMETHEUS_RULE} is out of date with rules/; run \
         SLOGATE_BLESS=1 cargo test --test deploy_manifests"
    );
    // It carries every recording rule and alert of rules/, including the burn-rate alerts
    // that the Alertmanager receiver routes on.
    let doc: Value = slogate::model::yaml::from_str(&have).expect("yaml");
    let rules: Vec<&Value> = seq(&doc["spec"]["groups"])
        .iter()
        .flat_map(|g| seq(&g["rules"]))
        .collect();
    assert!(rules
        .iter()
        .any(|r| r["record"] == "slo:sli_error:ratio_rate5m"));
    assert!(rules
        .iter()
        .any(|r| r["alert"].is_string() && r["labels"]["sloth_severity"] == "page"));
}

// ---------------------------------------------------------------------------------------
// Alertmanager, Argo CD, ExternalSecret, Dockerfile

#[test]
fn alertmanager_receiver_is_valid_and_targets_the_service() {
    let snippet: Value =
        slogate::model::yaml::from_str(&read("deploy/alertmanager/receiver.yaml")).expect("yaml");
    let receiver = &seq(&snippet["receivers"])[0];
    let hook = &seq(&receiver["webhook_configs"])[0];
    assert_eq!(
        str_of(hook, &["url"]),
        format!("http://slogate.{NAMESPACE}.svc:8080/webhook/alertmanager")
    );
    assert_eq!(
        str_of(hook, &["http_config", "authorization", "type"]),
        "Bearer"
    );
    assert!(str_of(hook, &["http_config", "authorization", "credentials_file"]).starts_with('/'));
    let route = &seq(&snippet["route"]["routes"])[0];
    assert_eq!(route["receiver"], receiver["name"]);
    assert!(strings(&route["matchers"])
        .iter()
        .any(|m| m.starts_with("sloth_severity")));

    // The snippet merged into a minimal alertmanager.yml passes amtool.
    let Some(amtool) = require_bin("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = snippet.clone();
    config["route"]["receiver"] = Value::from("default");
    let mut receivers = seq(&snippet["receivers"]).clone();
    receivers.push(slogate::model::yaml::from_str("name: default").expect("yaml"));
    config["receivers"] = Value::Sequence(receivers);
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        slogate::model::yaml::to_string(&config).expect("yaml"),
    )
    .expect("write");
    let out = run_ok(Command::new(amtool).arg("check-config").arg(&file));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn argocd_application_installs_deploy() {
    let app: Value =
        slogate::model::yaml::from_str(&read("deploy/argocd/application.yaml")).expect("yaml");
    assert_eq!(kind(&app), "Application");
    assert_eq!(str_of(&app, &["spec", "source", "path"]), "deploy");
    assert_eq!(
        str_of(&app, &["spec", "destination", "namespace"]),
        NAMESPACE
    );
}

/// The ExternalSecret produces the Secret the Deployment mounts, with the credential files the
/// README documents.
#[test]
fn external_secret_fills_the_mounted_secret() {
    let all = docs(&read("deploy/examples/externalsecret-vault.yaml"));
    let es = all
        .iter()
        .find(|o| kind(o) == "ExternalSecret")
        .expect("an ExternalSecret");
    let store = all
        .iter()
        .find(|o| kind(o) == "SecretStore")
        .expect("a SecretStore");
    assert_eq!(str_of(es, &["spec", "secretStoreRef", "name"]), name(store));
    assert_eq!(
        str_of(es, &["spec", "target", "name"]),
        "slogate-credentials"
    );
    let keys: Vec<&str> = seq(&es["spec"]["data"])
        .iter()
        .map(|d| str_of(d, &["secretKey"]))
        .collect();
    assert_eq!(
        keys,
        [
            "git-token",
            "webhook-token",
            "argocd-token",
            "slack-webhook-url"
        ]
    );
    let readme = read("deploy/README.md");
    for k in keys {
        assert!(readme.contains(k), "deploy/README.md documents {k}");
    }
    let deployment = read("deploy/deployment.yaml");
    assert!(deployment.contains("secretName: slogate-credentials"));
}

#[test]
fn dockerfile_is_multi_stage_and_runs_as_non_root() {
    let text = read("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_stage = &lines[*froms.last().unwrap()..];
    assert!(
        last_stage.iter().any(|l| l.starts_with("COPY --from=")),
        "the runtime stage copies the binary from the build stage"
    );
    let user = last_stage
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER in the runtime stage");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert_eq!(
        uid, "65532",
        "runs as the same non-root uid as the Deployment"
    );
    assert!(lines.contains(&r#"ENTRYPOINT ["slogate"]"#));
    assert!(lines.contains(&r#"CMD ["run", "--config", "/etc/slogate/slogate.yaml"]"#));
    // Only what the build needs is sent to the builder.
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "*"));
    for keep in ["!Cargo.toml", "!Cargo.lock", "!src/", "!.cargo/"] {
        assert!(ignore.lines().any(|l| l.trim() == keep), "{keep}");
    }
    // The cargo configuration (how mimalloc is built) is in place before the first build.
    let copy_cargo = lines.iter().position(|l| *l == "COPY .cargo ./.cargo");
    let first_build = lines.iter().position(|l| l.contains("cargo build"));
    assert!(
        matches!((copy_cargo, first_build), (Some(c), Some(b)) if c < b),
        "the Dockerfile copies .cargo before building: {copy_cargo:?} {first_build:?}"
    );
}
