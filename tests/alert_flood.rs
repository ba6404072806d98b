//! An Alertmanager flood against `slogate run` (issue 16, gap 7): 2,000 distinct firing
//! alerts for one guarded SLO, sent by 20 concurrent clients, next to a real Prometheus and a
//! real bare git remote. Before coalescing, every alert queued its own evaluation and guard
//! run: 500 alerts made over a thousand Prometheus queries. The test reads the outcome from
//! counters, never from the clock:
//! - Prometheus' own count of instant queries rises by exactly what slogate says it sent
//!   (`slogate_prometheus_queries_total`), and that is one evaluation's queries per round of
//!   alerts served, not per alert;
//! - every recorded alert is either folded into a waiting trigger
//!   (`slogate_alert_triggers_coalesced_total`) or served by a round (a guard run with
//!   `trigger=alert`), none is dropped, and the rounds are far fewer than the alerts;
//! - an alert sent after the flood is still acted on.

mod common;

use common::daemon::{port, Burning, Daemon, PROD, WEBHOOK_TOKEN};
use common::git::{kustomization, GitRemote};
use common::{http, metric};

const CLIENTS: usize = 20;
const REQUESTS_PER_CLIENT: usize = 25;
const ALERTS_PER_REQUEST: usize = 4;
const ALERTS: usize = CLIENTS * REQUESTS_PER_CLIENT * ALERTS_PER_REQUEST;

/// A webhook payload of `n` firing page alerts for `checkout-availability`, each its own
/// alert (fingerprint and start time), numbered from `first`.
fn payload(first: usize, n: usize) -> String {
    let alerts: Vec<serde_json::Value> = (first..first + n)
        .map(|i| {
            serde_json::json!({
                "status": "firing",
                "labels": {
                    "alertname": "CheckoutAvailabilityHighErrorRate",
                    "severity": "critical",
                    "sloth_id": "checkout-availability",
                    "sloth_service": "checkout",
                    "sloth_severity": "page",
                    "sloth_slo": "availability",
                    "instance": format!("pod-{i}"),
                },
                "annotations": {},
                "startsAt": format!("2026-11-23T08:{:02}:{:02}Z", (i / 60) % 60, i % 60),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": format!("{i:016x}"),
            })
        })
        .collect();
    serde_json::json!({
        "receiver": "slogate",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"sloth_id": "checkout-availability"},
        "commonLabels": {"sloth_id": "checkout-availability"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{sloth_id=\"checkout-availability\"}",
        "truncatedAlerts": 0,
    })
    .to_string()
}

fn post(base: &str, body: String) -> u16 {
    http()
        .post(format!("{base}/webhook/alertmanager"))
        .bearer_auth(WEBHOOK_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Instant queries Prometheus has answered, from its own `/metrics`.
fn prometheus_queries(prom_url: &str) -> f64 {
    let body = http()
        .get(format!("{prom_url}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("Prometheus /metrics");
    body.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("handler=\"/api/v1/query\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The counters the test reads from one scrape of the daemon.
struct Counts {
    recorded: f64,
    coalesced: f64,
    dropped: f64,
    queries: f64,
    rounds: usize,
}

fn counts(d: &Daemon) -> Counts {
    let m = d.metrics();
    let get = |series: &str| metric(&m, series).unwrap_or(0.0);
    Counts {
        recorded: get("slogate_webhook_alerts_total{result=\"recorded\"}"),
        coalesced: get("slogate_alert_triggers_coalesced_total"),
        dropped: get("slogate_webhook_triggers_dropped_total"),
        queries: get("slogate_prometheus_queries_total"),
        rounds: d.guard_runs("alert"),
    }
}

/// Wait until every recorded alert is accounted for: folded into a waiting trigger, dropped,
/// or served by a finished round. (A condition on counters, with a liveness bound only.)
fn settled(d: &mut Daemon, recorded: f64) -> Counts {
    d.wait("every recorded alert served or coalesced", |d| {
        let c = counts(d);
        (c.recorded >= recorded && c.coalesced + c.dropped + c.rounds as f64 >= c.recorded)
            .then_some(c)
    })
}

#[test]
fn an_alert_flood_costs_one_evaluation_per_round_not_per_alert() {
    let Some(env) = Burning::with_error_ratio(0.0005) else {
        return;
    };
    let remote = GitRemote::new();
    let two_days_ago = chrono::Utc::now().timestamp() - 2 * 24 * 3600;
    remote.commit_at(
        &[(PROD, &kustomization("checkout", "v1"))],
        "checkout v1",
        two_days_ago,
    );
    let work = env.work().to_path_buf();
    let config = env.config(
        port(),
        &work.join("state"),
        &format!(
            "gitops:\n  url: {}\n  workdir: {}\n",
            remote.url(),
            work.join("gitops").display()
        ),
    );
    let mut d = Daemon::start(&work, "flood", &config, &[]);
    // The evaluation at start, and its guard run, come first.
    d.wait("the first guard run", |d| {
        (d.guard_runs("schedule") >= 1).then_some(())
    });
    let before = counts(&d);
    let prom_before = prometheus_queries(&env.prom.url);

    let base = d.base.clone();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let base = base.clone();
                s.spawn(move || {
                    (0..REQUESTS_PER_CLIENT)
                        .map(|r| {
                            let first = (c * REQUESTS_PER_CLIENT + r) * ALERTS_PER_REQUEST;
                            post(&base, payload(first, ALERTS_PER_REQUEST))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every request is answered 200: {statuses:?}"
    );

    let after = settled(&mut d, before.recorded + ALERTS as f64);
    let recorded = after.recorded - before.recorded;
    let coalesced = after.coalesced - before.coalesced;
    let rounds = after.rounds - before.rounds;
    assert_eq!(recorded, ALERTS as f64, "every distinct alert is recorded");
    assert_eq!(after.dropped, 0.0, "no trigger is dropped");
    assert!(rounds >= 1, "the flood is acted on");
    assert_eq!(
        coalesced + rounds as f64,
        recorded,
        "each alert is served by a round or folded into one"
    );
    eprintln!(
        "{ALERTS} alerts: {rounds} rounds, {coalesced} coalesced, {} queries",
        after.queries - before.queries
    );
    // Without coalescing every alert is a round of its own (2,000).
    assert!(
        rounds * 10 <= ALERTS,
        "{rounds} rounds for {ALERTS} alerts: triggers are not coalesced"
    );

    // Prometheus saw exactly the queries slogate counts, one evaluation's worth per round.
    let sent = after.queries - before.queries;
    let seen = prometheus_queries(&env.prom.url) - prom_before;
    assert_eq!(
        seen, sent,
        "slogate_prometheus_queries_total matches Prometheus' own count"
    );
    let per_round = sent / rounds as f64;
    assert!(
        sent > 0.0 && per_round.fract() == 0.0 && per_round <= 9.0,
        "{sent} queries for {rounds} rounds: one evaluation of one SLO (at most 9 queries) per round"
    );

    // A real alert after the flood is still served.
    assert_eq!(post(&base, payload(ALERTS, 1)), 200);
    let last = settled(&mut d, after.recorded + 1.0);
    assert_eq!(
        last.rounds,
        after.rounds + 1,
        "the alert after the flood gets its own round"
    );
    assert_eq!(
        prometheus_queries(&env.prom.url) - prom_before,
        last.queries - before.queries
    );

    assert!(d.terminate().success());
}
