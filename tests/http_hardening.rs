//! The daemon's HTTP surface under attack, through the `slogate run` binary on loopback
//! (issue 16): bodies of unauthenticated requests are never read, slow and flooding clients
//! cannot take the listener, request heads and bodies have deadlines, `Bearer` is accepted
//! in any case, and request strings cannot forge log lines.
//!
//! No Prometheus is needed: the daemon is live (`/healthz`) without one. Outcomes are checked
//! through the daemon's own counters, its file descriptors and RSS (`/proc`), and what the
//! sockets see (an answer, a close); never through how long something took. Waits are
//! liveness bounds only.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, slogate};

const TOKEN: &str = "api-t0ken";
const FIRING: &str = include_str!("fixtures/alertmanager/firing-sloth-id.json");

struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// `server_extra` goes under `server:`; `extra` at the top level.
    fn start(server_extra: &str, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let slos = dir.path().join("slos");
        std::fs::create_dir(&slos).unwrap();
        let port = free_port();
        let config = dir.path().join("slogate.yaml");
        std::fs::write(
            &config,
            format!(
                "prometheus:\n  url: http://127.0.0.1:{}\n  timeout: 1s\nslos:\n  paths: [{}]\n\
                 evaluation:\n  interval: 1h\nstate:\n  dir: {}\napi:\n  token: {{env: SLOGATE_TEST_API_TOKEN}}\n\
                 server:\n  listen: 127.0.0.1:{port}\n{server_extra}{extra}",
                free_port(),
                slos.display(),
                dir.path().join("state").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("slogate.log");
        let child = slogate()
            .args(["run", "--config"])
            .arg(&config)
            .env("SLOGATE_LOG", "info")
            .env("SLOGATE_TEST_API_TOKEN", TOKEN)
            .env("SLOGATE_TEST_WEBHOOK_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn slogate run");
        let mut d = Daemon {
            child,
            addr: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(s)) = d.child.try_wait() {
                panic!("slogate exited early ({s}):\n{}", d.log());
            }
            if d.healthz() {
                return d;
            }
            assert!(Instant::now() < deadline, "not live:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn healthz(&self) -> bool {
        http()
            .get(self.url("/healthz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    }

    fn metrics(&self) -> String {
        http()
            .get(self.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    fn metric(&self, name: &str) -> f64 {
        let m = self.metrics();
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not exported:\n{m}"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// A raw connection with a liveness bound on reads.
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "slogate did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read one response head (up to the blank line) and return the status code and what came.
fn read_status(s: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no answer ({e}); got so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (code, text)
}

/// Whether the server closed the connection: a read sees end-of-file or a reset.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return true
            }
            Err(_) => return false,
        }
    }
}

const WRITE_ROUTES: [&str; 2] = [
    "/api/v1/rollouts/shop/checkout/abort",
    "/api/v1/guard/checkout/override",
];

/// A request declaring a 3 MB body, none of it sent: without a token the answer is 401 at
/// once (the body is never waited for, let alone buffered); with a token, 413 on the
/// declared length. `bearer` in lower case is a token like `Bearer`.
#[test]
fn unauthenticated_bodies_are_never_read() {
    let d = Daemon::start("", "");
    for route in WRITE_ROUTES {
        for (auth, want) in [
            ("", 401),
            ("Authorization: Bearer wrong\r\n", 401),
            (&format!("Authorization: bearer {TOKEN}\r\n") as &str, 413),
        ] {
            let mut s = d.connect();
            write!(
                s,
                "POST {route} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n"
            )
            .unwrap();
            let (code, text) = read_status(&mut s);
            assert_eq!(code, want, "{route} with {auth:?}: {text}");
        }
        // Lower-case `bearer` with a small body gets through authentication (404: no such
        // rollout / no guarded apps), where it used to get 401.
        let r = http()
            .post(d.url(route))
            .header("authorization", format!("BEARER {TOKEN}"))
            .header("content-type", "application/json")
            .body(r#"{"reason": "test"}"#)
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{route}: {}", r.text().unwrap());
    }
}

/// 150 clients without a token, each declaring a 2,000,000-byte body, sending 1.9 MB of it
/// and then stalling with the connection open: the daemon answers 401 without reading the
/// bodies, so while the clients hang on its RSS stays within 64 MiB of what it was before (it
/// grew by 290 MB, and stayed there, when the bodies were buffered before the token check).
#[test]
fn a_flood_of_unauthenticated_bodies_leaves_memory_bounded() {
    let d = Daemon::start("", "");
    let before = d.rss_kib();
    let body = std::sync::Arc::new(vec![b'{'; 1_900_000]);
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..150)
        .map(|i| {
            let mut s = d.connect();
            let route = WRITE_ROUTES[i % 2];
            let body = body.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                write!(
                    s,
                    "POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
                )
                .unwrap();
                // Sent into the socket buffers; the server may answer and close first.
                let _ = s.write_all(&body);
                let _ = tx.send(());
                read_status(&mut s).0
            })
        })
        .collect();
    // Every client has sent its 1.9 MB (or been cut off) and now stalls.
    for _ in 0..150 {
        rx.recv_timeout(Duration::from_secs(120))
            .expect("a client is stuck writing");
    }
    // What the daemon holds while they stall: the largest of 50 samples over a few seconds
    // (the kernel may still hold sent bytes that the daemon reads meanwhile).
    let during = (0..50)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            d.rss_kib()
        })
        .max()
        .unwrap_or(0);
    assert!(
        during < before + 64 * 1024,
        "RSS grew from {before} KiB to {during} KiB while 150 clients stalled"
    );
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(codes.iter().all(|c| *c == 401), "{codes:?}");
    assert!(d.healthz());
}

/// More slow-loris clients than `server.max_connections`, with a long header timeout: the
/// daemon keeps at most that many connections (its file descriptors say so), closes the
/// oldest idle ones to make room, and `/healthz`, `/metrics` and the webhook keep
/// answering. SIGTERM still stops it while they hang on.
#[test]
fn slow_clients_cannot_take_the_listener() {
    const LIMIT: usize = 16;
    let d = Daemon::start(
        &format!("  max_connections: {LIMIT}\n  header_read_timeout: 5m\n"),
        "webhook:\n  enabled: true\n  auth:\n    bearer:\n      token_env: SLOGATE_TEST_WEBHOOK_TOKEN\n",
    );
    let idle_fds = d.open_fds();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = d.connect();
        // A request head that never ends.
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1");
        slow.push(s);
    }
    for _ in 0..5 {
        assert!(d.healthz(), "/healthz must answer:\n{}", d.log());
    }
    let r = http()
        .post(d.url("/webhook/alertmanager"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(FIRING)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let fds = d.open_fds();
    assert!(
        fds <= idle_fds + LIMIT + 4,
        "{fds} file descriptors open, {idle_fds} when idle, limit {LIMIT}"
    );
    assert!(d.metric("slogate_http_connections") <= LIMIT as f64);
    assert!(d.metric("slogate_http_connections_evicted_total") >= (200 - LIMIT) as f64);
    // The evicted slow clients were closed by the server.
    let closed = slow
        .iter_mut()
        .take(50)
        .map(closed_by_server)
        .filter(|c| *c)
        .count();
    assert_eq!(closed, 50);
    let status = d.terminate();
    assert!(status.success(), "exit status {status}");
}

/// A request head that stalls past `server.header_read_timeout` and a body that stalls past
/// `server.body_timeout` both end: the connection is closed, or the body answered 408.
#[test]
fn stalled_heads_and_bodies_are_cut_off() {
    let d = Daemon::start("  header_read_timeout: 1s\n  body_timeout: 1s\n", "");
    let mut s = d.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(closed_by_server(&mut s), "a stalled head is closed");
    assert!(d.metric("slogate_http_header_timeouts_total") >= 1.0);

    // Idle between requests: a kept-alive connection is closed too.
    let mut s = d.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_status(&mut s).0, 200);
    assert!(
        closed_by_server(&mut s),
        "an idle kept-alive connection is closed"
    );

    let mut s = d.connect();
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"reason\"",
        WRITE_ROUTES[1]
    )
    .unwrap();
    let (code, text) = read_status(&mut s);
    assert_eq!(code, 408, "{text}");
}

/// Alert labels and payload field names with line breaks and escape codes are logged
/// escaped: no log line starts with the forged text.
#[test]
fn request_strings_cannot_forge_log_lines() {
    let d = Daemon::start(
        "",
        "webhook:\n  enabled: true\n  auth:\n    bearer:\n      token_env: SLOGATE_TEST_WEBHOOK_TOKEN\n",
    );
    let forged = "2026-01-01T00:00:00.000000Z  INFO slogate: FORGED";
    let mut payload: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    let labels = &mut payload["alerts"][0]["labels"];
    labels["sloth_id"] = "no-such-slo".into();
    labels["alertname"] = format!("x\n{forged} by a label value\x1b[2K").into();
    let post = |body: String| {
        http()
            .post(d.url("/webhook/alertmanager"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post(payload.to_string()), 200);
    // A label key with a line break and a non-string value: rejected naming the field.
    let mut bad = payload.clone();
    bad["alerts"][0]["labels"][format!("k\r\n{forged} by a label key")] = 1.into();
    assert_eq!(post(bad.to_string()), 400);
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = d.log();
        if log.contains("webhook payload rejected") && log.contains("maps to no loaded SLO") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "the warnings were not logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(log.contains("FORGED by a label value"), "{log}");
    assert!(log.contains("FORGED by a label key"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with("2026-01-01"), "forged line: {line:?}");
        assert!(!line.contains("\x1b[2K"), "a raw escape code: {line:?}");
    }
}
