//! Throughput of the Alertmanager webhook receiver on loopback, next to a bare hyper 1
//! server that answers 200 to everything, measured in one run with the same client, the
//! same payloads and the same concurrency. The ratio is the figure: it is what slogate's
//! receiver costs on top of HTTP itself.
//!
//! - slogate: the real router (`server::router_with` + `webhook::router`) served by the
//!   daemon's own `runtime::serve` with the default `server.*` limits (connection limit,
//!   header and body timeouts), bearer auth on, a `MemoryStore`, the trigger channel drained
//!   by a task. Every payload is a valid
//!   Alertmanager v4 body (the captured fixture) with its own fingerprint, so each request
//!   authenticates, parses, maps, records a new event and sends a trigger.
//! - bare: `hyper::server::conn::http1` with a `service_fn` returning `200 ok`.
//!
//! Rounds alternate between the two servers (the machine is shared; alternating spreads
//! any noise over both) and the median round of each is reported.
//!
//! Run: `cargo run --release --example webhook_throughput [-- REQUESTS CONCURRENCY]`
//! (defaults 20000 and 32).
//!
//! With `--only=slogate`, `--only=bare` or `--only=none`, it sends REQUESTS requests to that
//! server alone (none: to neither, after the same set-up) and prints nothing: run under
//! `valgrind --tool=callgrind`, the differences of the three instruction counts are each
//! server's instructions per request, client included, which repeat from run to run on a
//! machine whose speed does not (`scripts/bench` prints them).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use slogate::adapters::git::SecretSource;
use slogate::adapters::state::MemoryStore;
use slogate::ports::state::StateStore;
use slogate::runtime::server::{self, AppState};
use slogate::runtime::webhook::{self, Authenticator, SloIds, WebhookState};

/// The `slogate` binary's allocator, so that the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: slogate::Allocator = slogate::Allocator;

const FIXTURE: &str = include_str!("../tests/fixtures/alertmanager/firing-sloth-id.json");
const TOKEN: &str = "bench-token";
const ROUNDS: usize = 3;
const WARMUP: usize = 500;

async fn start_slogate(
    delivered: Arc<AtomicUsize>,
    store: Arc<MemoryStore>,
) -> anyhow::Result<SocketAddr> {
    std::env::set_var("SLOGATE_BENCH_WEBHOOK_TOKEN", TOKEN);
    let auth = Authenticator::bearer(SecretSource::Env("SLOGATE_BENCH_WEBHOOK_TOKEN".into()))
        .map_err(anyhow::Error::msg)?;
    let app = Arc::new(AppState::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    });
    let state = WebhookState::new(
        auth,
        store,
        Arc::new(SloIds::new(["checkout-availability".to_string()])),
        tx,
        app.metrics.webhook.clone(),
    );
    let app_metrics = app.metrics.http.clone();
    let router = server::router_with(app, webhook::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let limits = slogate::runtime::config::ServerConfig::default()
        .limits()
        .fitted_to_fd_limit();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Never stopped: the server lives as long as the benchmark.
    std::mem::forget(stop_tx);
    let metrics = app_metrics.clone();
    tokio::spawn(async move {
        slogate::runtime::serve::serve(listener, router, limits, metrics, stop).await;
    });
    Ok(addr)
}

async fn start_bare() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(String::from("ok")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Bodies with distinct fingerprints and start times, all mapping to the loaded SLO.
fn payloads(n: usize, offset: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let template: serde_json::Value = serde_json::from_str(FIXTURE)?;
    (offset..offset + n)
        .map(|i| {
            let mut v = template.clone();
            v["alerts"][0]["fingerprint"] = format!("{i:016x}").into();
            Ok(serde_json::to_vec(&v)?)
        })
        .collect()
}

struct Run {
    rps: f64,
    /// CPU time of the whole process (client and server) per request.
    cpu: Duration,
    p50: Duration,
    p99: Duration,
}

async fn run(
    client: &reqwest::Client,
    url: &str,
    bodies: &[Vec<u8>],
    concurrency: usize,
) -> anyhow::Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(bodies.to_vec());
    let cpu0 = cpu_time();
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, next, bodies) = (
                client.clone(),
                url.to_string(),
                next.clone(),
                bodies.clone(),
            );
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = resp.status();
                    resp.bytes().await?;
                    anyhow::ensure!(status.as_u16() == 200, "{url} answered {status}");
                    lat.push(t.elapsed());
                }
                anyhow::Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(bodies.len());
    for w in workers {
        lat.extend(w.await??);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    lat.sort_unstable();
    let q = |p: f64| {
        let i = ((lat.len().saturating_sub(1)) as f64 * p).round() as usize;
        lat.get(i).copied().unwrap_or_default()
    };
    Ok(Run {
        rps: bodies.len() as f64 / elapsed.as_secs_f64(),
        cpu: cpu / bodies.len().max(1) as u32,
        p50: q(0.5),
        p99: q(0.99),
    })
}

/// User and system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    // ROUNDS > 0, so there is a middle element.
    runs.swap_remove(runs.len() / 2)
}

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads start, as the binary's main does.
    slogate::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let only = std::env::args().find_map(|a| a.strip_prefix("--only=").map(str::to_string));
    let n = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(32).max(1);

    let delivered = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let slogate = start_slogate(delivered.clone(), store.clone()).await?;
    let bare = start_bare().await?;
    let slogate_url = format!("http://{slogate}/webhook/alertmanager");
    let bare_url = format!("http://{bare}/webhook/alertmanager");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;

    if let Some(only) = only {
        let bodies = payloads(n, 0)?;
        match only.as_str() {
            "slogate" => {
                run(&client, &slogate_url, &bodies, concurrency).await?;
            }
            "bare" => {
                run(&client, &bare_url, &bodies, concurrency).await?;
            }
            "none" => {}
            other => anyhow::bail!("--only={other}: expected slogate, bare or none"),
        }
        return Ok(());
    }

    let warm = payloads(WARMUP, 0)?;
    run(&client, &slogate_url, &warm, concurrency).await?;
    run(&client, &bare_url, &warm, concurrency).await?;

    let mut slogate_runs = Vec::new();
    let mut bare_runs = Vec::new();
    for round in 0..ROUNDS {
        // Fresh fingerprints every round: each slogate request records a new event.
        let bodies = payloads(n, WARMUP + round * n)?;
        bare_runs.push(run(&client, &bare_url, &bodies, concurrency).await?);
        slogate_runs.push(run(&client, &slogate_url, &bodies, concurrency).await?);
    }
    // Every recorded alert reached the trigger channel.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expected = WARMUP + ROUNDS * n;
    let got = delivered.load(Ordering::Relaxed);
    anyhow::ensure!(
        got == expected,
        "{got} triggers delivered for {expected} requests"
    );

    let (s, b) = (median(slogate_runs), median(bare_runs));
    println!(
        "webhook throughput on loopback: {n} requests x {ROUNDS} rounds, concurrency {concurrency}, \
         {} byte payloads, median round",
        FIXTURE.len()
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>12}",
        "server", "req/s", "p50", "p99", "CPU/request"
    );
    for (name, r) in [
        ("slogate /webhook/alertmanager", &s),
        ("bare hyper 1 (200 ok)", &b),
    ] {
        println!(
            "{:<34} {:>10.0} {:>8.0}us {:>8.0}us {:>10.1}us",
            name,
            r.rps,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.cpu.as_secs_f64() * 1e6
        );
    }
    println!("ratio slogate / bare: {:.2}", s.rps / b.rps);
    println!("triggers delivered: {got} of {expected} requests");
    // The memory store adds one to a document's version per write.
    let writes = store
        .get("webhook/slo-alerts/checkout-availability")
        .await?
        .map_or(0, |d| d.version);
    println!(
        "dedupe document writes: {writes} for {expected} requests ({:.1} requests per write)",
        expected as f64 / writes.max(1) as f64
    );
    Ok(())
}
