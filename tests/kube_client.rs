//! Client construction without any cluster configuration fails with a clear error.
//! (Its own test binary: it changes the process environment.)

use std::time::Duration;

use slogate::adapters::kube::{client, ClientError};

#[tokio::test]
async fn no_cluster_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Only test in this binary, so no other thread reads the environment meanwhile.
    std::env::set_var("KUBECONFIG", dir.path().join("missing-kubeconfig"));
    std::env::set_var("HOME", dir.path());
    std::env::remove_var("KUBERNETES_SERVICE_HOST");
    std::env::remove_var("KUBERNETES_SERVICE_PORT");
    let Err(err) = client(Duration::from_secs(10)).await else {
        panic!("a client was built without any configuration");
    };
    assert!(matches!(err, ClientError::NoConfig { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("no Kubernetes configuration found: not in a cluster"),
        "{message}"
    );
    assert!(message.contains("use the file router"), "{message}");
    // kube's error is the source, and the message shows it.
    let source = std::error::Error::source(&err).expect("kube's error as the source");
    assert!(message.contains(&source.to_string()), "{message}");
}

/// `rollouts.state: kube` and `rollouts.versions: kube` need a client: without any cluster
/// configuration `slogate run` exits 2 and names the keys that asked for one.
#[test]
fn rollouts_from_the_cluster_need_a_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name);
    std::fs::create_dir_all(p("slos")).expect("slos");
    std::fs::create_dir_all(p("rollouts")).expect("rollouts");
    std::fs::write(
        p("rollouts/checkout.yaml"),
        "apiVersion: slogate.dev/v1alpha1\nkind: Rollout\nmetadata: {name: checkout, namespace: shop}\nspec:\n  traffic:\n    httpRoute: {name: r, stableBackend: {name: s}, canaryBackend: {name: c}}\n  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}\n  analysis:\n    metrics: [{name: request-success-rate, min: 0.99}]\n  gitops: {app: checkout, path: apps/checkout}\n",
    )
    .expect("rollout");
    std::fs::write(
        p("slogate.yaml"),
        format!(
            "prometheus: {{url: 'http://127.0.0.1:9'}}\nslos: {{paths: ['{}']}}\nserver: {{listen: '127.0.0.1:0'}}\nstate: {{dir: '{}'}}\nrollouts: {{paths: ['{}'], state: kube, versions: kube}}\n",
            p("slos").display(),
            p("state").display(),
            p("rollouts").display(),
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slogate"))
        .arg("run")
        .arg("--config")
        .arg(p("slogate.yaml"))
        .env("KUBECONFIG", p("missing-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("SLOGATE_ROLLOUTS__STATE")
        .output()
        .expect("run slogate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("rollouts.state, rollouts.versions: kube: no Kubernetes configuration found"),
        "{stderr}"
    );
}
