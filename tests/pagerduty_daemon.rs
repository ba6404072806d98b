//! The PagerDuty notifier through the `slogate run` binary (push mode, a real Prometheus and
//! a real bare git remote; PagerDuty on wiremock, since it cannot run here):
//! - a breach reverts the bad deploy and triggers one PagerDuty event whose `dedup_key` is
//!   the breach id (the revert commit's `Slogate-Breach` trailer);
//! - restarted against a Prometheus whose budget has recovered, the daemon ends the freeze
//!   and resolves that same `dedup_key`.

mod common;

use common::daemon::{port, Burning, Daemon, PROD};
use common::git::{kustomization, GitRemote};
use serde_json::{json, Value};
use slogate::model::trailers::{parse_trailers, trailer_values};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROUTING_KEY: &str = "pd-routing-key-0123456789abcdef";

fn events(rt: &tokio::runtime::Runtime, server: &MockServer) -> Vec<Value> {
    rt.block_on(server.received_requests())
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[test]
fn a_breach_triggers_pagerduty_and_the_end_of_the_freeze_resolves_it() {
    let Some(burning) = Burning::start() else {
        return;
    };
    let Some(healthy) = Burning::with_error_ratio(0.0005) else {
        return;
    };
    let work = burning.work().to_path_buf();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pd = rt.block_on(async {
        let s = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/enqueue"))
            .respond_with(ResponseTemplate::new(202).set_body_json(json!({
                "status": "success", "message": "Event processed"
            })))
            .mount(&s)
            .await;
        s
    });
    let key_file = work.join("pd-key");
    std::fs::write(&key_file, ROUTING_KEY).unwrap();
    let remote = GitRemote::new();
    remote.commit(&[(PROD, &kustomization("checkout", "v1"))], "checkout v1");
    let bad = remote.commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    let extra = format!(
        "gitops:\n  url: {}\n  workdir: {}\nnotifications:\n  - type: pagerduty\n    url: {}/v2/enqueue\n    routing_key_file: {}\n    min_severity: critical\n    base_delay: 100ms\n",
        remote.url(),
        work.join("repo").display(),
        pd.uri(),
        key_file.display()
    );
    let state = work.join("state");

    // The breach: one revert, one trigger.
    let mut d = Daemon::start(
        &work,
        "burning",
        &burning.config(port(), &state, &extra),
        &[],
    );
    let revert = d.wait("the revert commit", |_| {
        remote
            .log()
            .into_iter()
            .map(|(sha, msg)| (sha, parse_trailers(&msg)))
            .find(|(_, t)| !trailer_values(t, "Slogate-Breach").is_empty())
    });
    d.wait("the PagerDuty trigger", |_| {
        (!events(&rt, &pd).is_empty()).then_some(())
    });
    assert!(d.terminate().success());
    let (revert_sha, trailers) = revert;
    let breach = trailer_values(&trailers, "Slogate-Breach")[0].to_string();
    assert!(
        breach.starts_with("checkout/checkout-availability/emergency/"),
        "{breach}"
    );
    assert_eq!(
        trailer_values(&trailers, "Slogate-Reverts"),
        vec![bad.as_str()]
    );
    let sent = events(&rt, &pd);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let trigger = &sent[0];
    let details = &trigger["payload"]["custom_details"];
    assert_eq!(
        json!({
            "routing_key": trigger["routing_key"],
            "event_action": trigger["event_action"],
            "dedup_key": trigger["dedup_key"],
            "summary": trigger["payload"]["summary"],
            "source": trigger["payload"]["source"],
            "severity": trigger["payload"]["severity"],
            "component": trigger["payload"]["component"],
            "client": trigger["client"],
            "breach": details["breach"],
            "slo": details["slo"],
            "revert_commit": details["revert_commit"],
            "reverted": details["reverted"],
        }),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": breach,
            "summary": "checkout: rollback reverted",
            "source": "slogate",
            "severity": "critical",
            "component": "checkout",
            "client": "slogate",
            "breach": breach,
            "slo": "checkout-availability",
            "revert_commit": revert_sha,
            "reverted": bad,
        }),
        "{trigger}"
    );
    assert!(
        details["text"].as_str().unwrap().contains("consumed"),
        "{trigger}"
    );

    // The budget has recovered: the freeze ends, the incident is resolved.
    let mut d = Daemon::start(
        &work,
        "healthy",
        &healthy.config(port(), &state, &extra),
        &[],
    );
    d.wait("the PagerDuty resolve", |_| {
        (events(&rt, &pd).len() >= 2).then_some(())
    });
    let unfrozen = d.decisions();
    assert!(d.terminate().success());
    assert!(
        unfrozen
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "unfreeze"),
        "{unfrozen}"
    );
    let sent = events(&rt, &pd);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[1],
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": breach})
    );
}
