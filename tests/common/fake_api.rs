//! A fake Kubernetes API server for tests that run `slogate` as a process: an axum router
//! served over plain HTTP on a loopback port, and the kubeconfig that points at it; and
//! [`slogate_run`], which starts the daemon against any API server through a kubeconfig.
//!
//! Kept only where a fake is what the test needs: `tests/daemon_rollout_source.rs` asserts
//! the exact list/watch request sequence and injects a 403 mid-run. Everything a real API
//! server can check (RBAC, 409s, Leases, ConfigMap state, two replicas in `daemon_ha.rs`) runs
//! against the real one in `tests/common/apiserver.rs`, which uses [`slogate_run`] too
//! (`tests/kube_apiserver.rs` also serves its metrics app with [`serve_on_thread`]).

use std::net::SocketAddr;
use std::path::Path;

/// Serve `app` on a free loopback port, on its own thread and runtime (the tests driving the
/// processes are synchronous). The server lives as long as the test process.
pub fn serve_on_thread(app: axum::Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// Write a kubeconfig at `path` whose current context is the server at `addr` with a bearer
/// token and `namespace` as the default namespace.
pub fn write_kubeconfig(path: &Path, addr: SocketAddr, namespace: &str) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: 'http://{addr}'}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: fake, user: u, namespace: {namespace}}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
}

/// `slogate run --config CONFIG` as a process that reaches the fake API server only through
/// `kubeconfig` (never an in-cluster configuration from the environment), logging at `info`
/// to `log`.
pub fn slogate_run(
    config: &Path,
    kubeconfig: &Path,
    home: &Path,
    log: &Path,
) -> std::process::Command {
    let mut cmd = super::slogate();
    cmd.args(["run", "--config"])
        .arg(config)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("SLOGATE_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}
