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
    assert!(matches!(err, ClientError::NoConfig(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("no Kubernetes configuration found: not in a cluster"),
        "{message}"
    );
    assert!(message.contains("use the file router"), "{message}");
}
