//! `cluster: auto | on | off` through `slogate run`: the effective backends logged at start,
//! and a combination leader election cannot work with refused with exit 2.

mod common;

use common::fake_api::{serve_on_thread, slogate_run, write_kubeconfig};
use common::*;

/// A Kubernetes API that knows nothing: `run --once` builds its client and store without a
/// call, and nothing in one cycle without guarded apps or rollouts reads a state document.
fn empty_api() -> std::net::SocketAddr {
    serve_on_thread(axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"kind": "Status", "code": 404})),
        )
    }))
}

/// `slogate run --once` with `cluster` set to `mode` (and `extra` appended); its exit code
/// and its log.
fn run_once(mode: &str, extra: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let slos = dir.path().join("slos");
    std::fs::create_dir_all(&slos).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, empty_api(), "ops");
    let config = dir.path().join("slogate.yaml");
    std::fs::write(
        &config,
        format!(
            "cluster: {mode}\nprometheus: {{url: 'http://127.0.0.1:{port}'}}\nslos: {{paths: ['{slos}']}}\nstate: {{dir: '{state}'}}\n{extra}",
            port = free_port(),
            slos = slos.display(),
            state = dir.path().join("state").display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("slogate.log");
    let status = slogate_run(&config, &kubeconfig, dir.path(), &log)
        .arg("--once")
        .env("POD_NAMESPACE", "ops")
        .status()
        .expect("run slogate");
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

fn backends_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("effective backends:"))
        .unwrap_or_else(|| panic!("no `effective backends` line in:\n{log}"))
}

#[test]
fn cluster_off_logs_file_backends() {
    let (code, log) = run_once("off", "");
    // Prometheus is down: the cycle ran and reports it (exit 1), not a config error.
    assert_eq!(code, Some(1), "{log}");
    let line = backends_line(&log);
    for key in [
        "state.backend",
        "rollouts.source",
        "rollouts.router",
        "rollouts.state",
        "rollouts.versions",
    ] {
        assert!(
            line.contains(&format!("{key}=file (cluster: off)")),
            "{key}: {line}"
        );
    }
}

#[test]
fn cluster_on_logs_kube_backends_and_an_explicit_override() {
    let (code, log) = run_once("on", "rollouts: {router: file}\n");
    assert_eq!(code, Some(1), "{log}");
    let line = backends_line(&log);
    for key in [
        "state.backend",
        "rollouts.source",
        "rollouts.state",
        "rollouts.versions",
    ] {
        assert!(
            line.contains(&format!("{key}=kube (cluster: on)")),
            "{key}: {line}"
        );
    }
    assert!(line.contains("rollouts.router=file (explicit)"), "{line}");
    // The kube state store was built in the pod's namespace.
    assert!(
        log.contains("state documents and the shared decision log in ConfigMaps"),
        "{log}"
    );
}

#[test]
fn leader_election_with_file_state_is_refused_naming_both_keys() {
    let (code, log) = run_once("off", "leader_election: {enabled: true}\n");
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("state.backend: `file` (cluster: off)")
            && log.contains("leader_election.enabled"),
        "{log}"
    );
    assert!(
        log.contains("slogate.yaml"),
        "the message names the file: {log}"
    );
}
