//! A real Kubernetes API server for tests: etcd and kube-apiserver (from `./scripts/install-tools`,
//! `tools/bin/`) on loopback, free ports, their own data directories under one temporary
//! folder, started once per test binary ([`shared`]) and shared by its tests, each of which
//! takes its own namespace ([`ApiServer::namespace`]).
//!
//! - TLS: a CA and a serving certificate signed by it (`CA:FALSE`, SAN 127.0.0.1), both made
//!   with openssl; clients trust the CA file.
//! - Identities: a static token file with one admin (`system:masters`), and ServiceAccount
//!   tokens from the TokenRequest API ([`ApiServer::service_account_kubeconfig`]), signed with
//!   a key made for this server.
//! - `--authorization-mode=RBAC`, so a ServiceAccount can do exactly what its roles grant;
//!   `--endpoint-reconciler-type=none` (nothing to reconcile on loopback).
//! - The third-party CRDs from `tools/crds/` and slogate's own (`slogate crd`) are installed
//!   and established before [`shared`] returns.
//!
//! The processes run under a small shell watchdog that ends them when the test process is
//! gone, however it ended (statics are never dropped, and a test binary can be killed), so
//! nothing outlives the suite.
//!
//! Missing tools FAIL the tests unless `SLOGATE_E2E=0` ([`shared`] then returns `None`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::tools::{require_tool, tools_dir};
use super::{free_port, run_ok};

/// The admin's bearer token (static token file, group `system:masters`).
pub const ADMIN_TOKEN: &str = "slogate-test-admin-token";

/// A running etcd + kube-apiserver pair.
pub struct ApiServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:PORT` of etcd (for compaction).
    pub etcd_url: String,
    /// The CA that signed the serving certificate (PEM file).
    pub ca_file: PathBuf,
    /// A kubeconfig for the admin.
    pub admin_kubeconfig: PathBuf,
    /// The working folder (certificates, data, logs, kubeconfigs).
    pub dir: PathBuf,
    kubectl: PathBuf,
    apiserver: PathBuf,
    apiserver_args: Vec<String>,
    /// etcd's watchdog, then kube-apiserver's.
    children: Mutex<Vec<Child>>,
    _tmp: tempfile::TempDir,
    namespaces: Mutex<u32>,
}

static SHARED: OnceLock<Option<ApiServer>> = OnceLock::new();

/// The API server of this test binary, started on first use with every CRD installed.
/// `None` only when a tool is missing and `SLOGATE_E2E=0`.
pub fn shared() -> Option<&'static ApiServer> {
    SHARED.get_or_init(ApiServer::start).as_ref()
}

/// Spawn `bin args…` under a shell watchdog that kills it when this test process is gone.
fn spawn_watched(bin: &Path, args: &[String], log: &Path) -> Child {
    let parent = std::process::id();
    // On SIGTERM (a restart): TERM, then KILL after 10s. When the test process is gone:
    // KILL at once (kube-apiserver's graceful shutdown can hang once etcd is gone too).
    let script = format!(
        "\"$0\" \"$@\" & child=$!\n\
         trap 'kill $child 2>/dev/null; (sleep 10; kill -9 $child 2>/dev/null) & wait $child; exit 0' TERM INT\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done\n\
         kill -9 $child 2>/dev/null; wait $child"
    );
    let log = std::fs::File::create(log).expect("create log file");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
}

fn openssl(args: &[&str], dir: &Path) {
    run_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// In `dir`: a CA (`ca.crt`, `ca.key`; self-signed, CA:TRUE, with 127.0.0.1 among its
/// names so that it can also play a misconfigured server's own certificate), a serving
/// certificate for 127.0.0.1 signed by it (`server.crt`, `server.key`; CA:FALSE), and the
/// ServiceAccount key pair (`sa.key`, `sa.pub`).
pub fn make_certificates(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=slogate-test-ca",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        dir,
    );
    std::fs::write(
        dir.join("server-ext.cnf"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server-ext.cnf");
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=kube-apiserver",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server-ext.cnf",
        ],
        dir,
    );
    openssl(&["genrsa", "-out", "sa.key", "2048"], dir);
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
}

/// A kubeconfig for `server` trusting `ca`, authenticating with `token`.
pub fn kubeconfig(server: &str, ca: &Path, token: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: test, user: u, namespace: {namespace}}}\ncurrent-context: c\n",
        ca = ca.display()
    )
}

impl ApiServer {
    fn start() -> Option<ApiServer> {
        let etcd = require_tool("etcd")?;
        let apiserver = require_tool("kube-apiserver")?;
        let kubectl = require_tool("kubectl")?;
        let tmp = tempfile::Builder::new()
            .prefix("slogate-apiserver-")
            .tempdir()
            .expect("create the API server's folder");
        let dir = tmp.path().to_path_buf();
        // The static holding the server is never dropped: remove the folder once this test
        // process and the servers are gone.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; sleep 3; rm -rf \"$0\"",
                std::process::id()
            ))
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        make_certificates(&dir);
        // Every write is audited (metadata only), so tests can count who wrote what; and every
        // request of the `slogate` ServiceAccount in its own namespace `slogate` (the Lease and
        // the state ConfigMaps), reads too, so that tests can check each against RBAC.
        std::fs::write(
            dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
             - level: Metadata\n  users: [\"system:serviceaccount:slogate:slogate\"]\n  namespaces: [slogate]\n\
             - level: Metadata\n  verbs: [create, update, patch, delete]\n- level: None\n",
        )
        .expect("write audit-policy.yaml");
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n"),
        )
        .expect("write tokens.csv");

        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd_child = spawn_watched(
            &etcd,
            &[
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--log-level=warn".into(),
            ],
            &dir.join("etcd.log"),
        );
        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let d = |f: &str| dir.join(f).display().to_string();
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", d("certs")),
            format!("--tls-cert-file={}", d("server.crt")),
            format!("--tls-private-key-file={}", d("server.key")),
            format!("--client-ca-file={}", d("ca.crt")),
            format!("--token-auth-file={}", d("tokens.csv")),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            "--authorization-mode=RBAC".into(),
            "--endpoint-reconciler-type=none".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            // Watches are served by etcd, so a compaction reaches the watchers as 410.
            "--watch-cache=false".into(),
            format!("--audit-policy-file={}", d("audit-policy.yaml")),
            format!("--audit-log-path={}", d("audit.log")),
            "--audit-log-mode=blocking".into(),
            "--v=1".into(),
        ];
        let api_child = spawn_watched(&apiserver, &apiserver_args, &dir.join("kube-apiserver.log"));
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &admin_kubeconfig,
            kubeconfig(&url, &dir.join("ca.crt"), ADMIN_TOKEN, "default"),
        )
        .expect("write the admin kubeconfig");
        let server = ApiServer {
            url,
            etcd_url,
            ca_file: dir.join("ca.crt"),
            admin_kubeconfig,
            dir,
            kubectl,
            apiserver,
            apiserver_args,
            children: Mutex::new(vec![etcd_child, api_child]),
            _tmp: tmp,
            namespaces: Mutex::new(0),
        };
        server.wait_ready();
        server.install_crds();
        Some(server)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn client(&self) -> reqwest::blocking::Client {
        let ca = std::fs::read(&self.ca_file).expect("read ca.crt");
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca.crt is PEM"))
            .build()
            .expect("build HTTP client")
    }

    /// An admin request: `METHOD path` with a JSON body; the status and the JSON answer.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            r = r.header("content-type", content_type).body(b.to_string());
        }
        let resp = r.send().unwrap_or_else(|e| panic!("{path}: {e}"));
        let code = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// `GET path` as the admin, which must answer 200.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let (code, v) = self.request(reqwest::Method::GET, path, "", None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = self.client();
        loop {
            for child in self.children.lock().unwrap().iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "etcd or kube-apiserver exited ({status}):\netcd:\n{}\nkube-apiserver:\n{}",
                        self.log("etcd.log"),
                        self.log("kube-apiserver.log")
                    );
                }
            }
            let ready = client
                .get(format!("{}/readyz", self.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready after 120s:\n{}",
                self.log("kube-apiserver.log")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `kubectl` as the admin.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.admin_kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .arg("--request-timeout=60s");
        cmd
    }

    /// `kubectl ARGS` as the admin, which must succeed; its output.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        run_ok(self.kubectl().args(args))
    }

    /// `kubectl apply --server-side -f -` of `yaml` as the admin; its output.
    pub fn apply(&self, yaml: &str) -> String {
        let mut child = self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write to kubectl");
        let out = child.wait_with_output().expect("kubectl apply");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{text}\n{yaml}"
        );
        text
    }

    fn install_crds(&self) {
        let crds = tools_dir().join("crds");
        let out = self.kubectl_ok(&["apply", "--server-side", "-f", &crds.display().to_string()]);
        assert!(out.contains("virtualservices.networking.istio.io"), "{out}");
        let crd = run_ok(super::slogate().arg("crd"));
        self.apply(&crd);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=120s",
        ]);
    }

    /// A fresh namespace `PREFIX-N` for one test.
    pub fn namespace(&self, prefix: &str) -> String {
        let n = {
            let mut g = self.namespaces.lock().unwrap();
            *g += 1;
            *g
        };
        let name = format!("{prefix}-{n}");
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }

    /// A kubeconfig file for ServiceAccount `namespace/name`, with a token from the
    /// TokenRequest API (`kubectl create token`), valid for a day.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str, path: &Path) {
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=24h"]);
        std::fs::write(
            path,
            kubeconfig(&self.url, &self.ca_file, token.trim(), namespace),
        )
        .expect("write the ServiceAccount kubeconfig");
    }

    /// Stop kube-apiserver (SIGTERM to its watchdog, which waits for it), run `between`, and
    /// start it again on the same port with the same data; waits until it is ready. Open
    /// connections (watches) break, as in a rolling restart of the control plane.
    pub fn restart_apiserver(&self, between: impl FnOnce()) {
        {
            let mut children = self.children.lock().unwrap();
            let mut old = children.pop().expect("the kube-apiserver watchdog");
            let _ = Command::new("kill")
                .args(["-TERM", &old.id().to_string()])
                .status();
            let _ = old.wait();
        }
        between();
        let log = self.dir.join(format!("kube-apiserver-{}.log", free_port()));
        let child = spawn_watched(&self.apiserver, &self.apiserver_args, &log);
        self.children.lock().unwrap().push(child);
        self.wait_ready();
    }

    /// The audit events for which `pred` holds: writes (create, update, patch, delete), and
    /// every request of the `slogate` ServiceAccount in namespace `slogate`.
    pub fn audit(&self, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete" && pred(e))
            .collect()
    }

    /// Write one key (`/slogate-test/revision`, outside the API server's `/registry`) straight
    /// into etcd through its JSON gateway, which moves etcd's revision on without the API
    /// server. (The gateway takes base64; key and value are fixed, so they are spelled out.)
    pub fn etcd_bump(&self) {
        let r = super::http()
            .post(format!("{}/v3/kv/put", self.etcd_url))
            .body(r#"{"key":"L3Nsb2dhdGUtdGVzdC9yZXZpc2lvbg==","value":"bW92ZWQgb24="}"#)
            .send()
            .expect("etcd put");
        assert!(r.status().is_success(), "etcd put: {:?}", r.text());
    }

    /// Compact etcd's history up to its current revision (what the API server's own
    /// compactor does every 5 minutes), through etcd's JSON gateway. Returns the revision.
    pub fn compact_etcd(&self) -> i64 {
        let http = super::http();
        let range: serde_json::Value = http
            .post(format!("{}/v3/kv/range", self.etcd_url))
            .body(r#"{"key":"AA=="}"#)
            .send()
            .expect("etcd range")
            .json()
            .expect("etcd answers JSON");
        let rev: i64 = range["header"]["revision"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("etcd revision in {range}"));
        let r = http
            .post(format!("{}/v3/kv/compaction", self.etcd_url))
            .body(format!(r#"{{"revision":"{rev}","physical":true}}"#))
            .send()
            .expect("etcd compaction");
        assert!(r.status().is_success(), "compaction: {:?}", r.text());
        rev
    }
}
