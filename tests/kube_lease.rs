//! Lease leader election against a scripted API server, on tokio's paused clock: create when
//! missing, take over an expired lease, leave a held one alone, step down when a renew
//! conflicts, lapse without renewals, release on shutdown.

#[path = "kube_common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{conflict, finish, not_found, serve, status, Exchange};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use slogate::adapters::kube::lease::{LeaseConfig, LeaseElector, Outcome, Why};
use slogate::ports::leader::LeaderElector;
use tokio::time::{advance, Instant};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/slogate/leases/slogate";
const LEASE_WRITE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/slogate/leases/slogate?&fieldManager=slogate";
const LEASES_CREATE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/slogate/leases?&fieldManager=slogate";
/// What the fixed wall clock writes.
const NOW: &str = "2026-11-23T08:00:00.000000Z";

fn elector(client: kube::Client) -> LeaseElector {
    let clock: Arc<dyn Fn() -> Timestamp + Send + Sync> =
        Arc::new(|| "2026-11-23T08:00:00Z".parse().expect("timestamp"));
    LeaseElector::new(client, LeaseConfig::new("slogate", "slogate", "slogate-0"))
        .expect("valid config")
        .with_clock(clock)
}

fn lease(rv: &str, holder: Option<&str>, transitions: i32) -> Value {
    let mut spec = json!({
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-23T07:00:00.000000Z",
        "renewTime": "2026-11-23T07:59:58.000000Z",
        "leaseTransitions": transitions,
    });
    if let Some(h) = holder {
        spec["holderIdentity"] = json!(h);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "slogate", "namespace": "slogate", "resourceVersion": rv},
        "spec": spec,
    })
}

fn created_body() -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "slogate", "namespace": "slogate"},
        "spec": {
            "holderIdentity": "slogate-0",
            "leaseDurationSeconds": 15,
            "acquireTime": NOW,
            "renewTime": NOW,
            "leaseTransitions": 0,
        },
    })
}

fn created_response() -> Value {
    let mut v = created_body();
    v["metadata"]["resourceVersion"] = json!("1");
    v
}

#[tokio::test(start_paused = true)]
async fn creates_the_lease_when_missing_then_lapses_without_renewals() {
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(404, not_found("leases.coordination.k8s.io", "slogate")),
        Exchange::post(LEASES_CREATE, created_body()).respond(201, created_response()),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    assert!(!leadership.is_leader());
    let start = Instant::now();
    assert_eq!(elector.round().await, Outcome::Created);
    drop(elector);
    finish(verifier).await;
    assert!(leadership.is_leader());
    assert!(*leadership.changes().borrow());
    // Term: lease duration 15s − safety margin 3s, from when the create was sent.
    assert_eq!(
        leadership.leading_until(),
        Some(start + Duration::from_secs(12))
    );
    // With no renewal the replica stops acting on its own, 3s before anyone may acquire.
    advance(Duration::from_millis(11_999)).await;
    assert!(leadership.is_leader());
    advance(Duration::from_millis(1)).await;
    assert!(!leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn takes_over_an_expired_lease() {
    let mut acquired = lease("5", Some("slogate-0"), 4);
    acquired["spec"]["acquireTime"] = json!(NOW);
    acquired["spec"]["renewTime"] = json!(NOW);
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(200, lease("5", Some("slogate-1"), 3)),
        // Unchanged for a whole lease duration since first seen here.
        Exchange::get(LEASE).respond(200, lease("5", Some("slogate-1"), 3)),
        Exchange::put(LEASE_WRITE, acquired.clone()).respond(200, {
            let mut r = acquired;
            r["metadata"]["resourceVersion"] = json!("6");
            r
        }),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    let start = Instant::now();
    assert_eq!(
        elector.round().await,
        Outcome::Waiting {
            holder: "slogate-1".into(),
            until: start + Duration::from_secs(15),
        }
    );
    advance(Duration::from_secs(15)).await;
    assert_eq!(elector.round().await, Outcome::Acquired);
    drop(elector);
    finish(verifier).await;
    assert!(leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn does_not_take_a_lease_that_is_being_renewed() {
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(200, lease("5", Some("slogate-1"), 3)),
        // The holder renewed (new resourceVersion): the expiry clock restarts.
        Exchange::get(LEASE).respond(200, lease("6", Some("slogate-1"), 3)),
        Exchange::get(LEASE).respond(200, lease("6", Some("slogate-1"), 3)),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    let start = Instant::now();
    assert!(matches!(elector.round().await, Outcome::Waiting { .. }));
    advance(Duration::from_secs(10)).await;
    let renewed_seen = Instant::now();
    assert_eq!(
        elector.round().await,
        Outcome::Waiting {
            holder: "slogate-1".into(),
            until: renewed_seen + Duration::from_secs(15),
        }
    );
    // 20s after the first read: past the first version's expiry, not the second's.
    advance(Duration::from_secs(10)).await;
    assert!(Instant::now() >= start + Duration::from_secs(15));
    assert!(matches!(elector.round().await, Outcome::Waiting { .. }));
    drop(elector);
    // No PUT was sent: the verifier fails on any request past the script.
    finish(verifier).await;
    assert!(!leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn renews_and_extends_its_term() {
    let mut renewed = lease("1", Some("slogate-0"), 0);
    renewed["spec"]["renewTime"] = json!(NOW);
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(200, lease("1", Some("slogate-0"), 0)),
        Exchange::put(LEASE_WRITE, renewed.clone()).respond(200, renewed),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    // A previous run of this pod held the lease: it is taken back at once, as a renew.
    let start = Instant::now();
    assert_eq!(elector.round().await, Outcome::Renewed);
    drop(elector);
    finish(verifier).await;
    assert_eq!(
        leadership.leading_until(),
        Some(start + Duration::from_secs(12))
    );
}

#[tokio::test(start_paused = true)]
async fn steps_down_at_once_when_a_renew_conflicts() {
    let mut renew = created_response();
    renew["spec"]["renewTime"] = json!(NOW);
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(404, not_found("leases.coordination.k8s.io", "slogate")),
        Exchange::post(LEASES_CREATE, created_body()).respond(201, created_response()),
        Exchange::get(LEASE).respond(200, created_response()),
        Exchange::put(LEASE_WRITE, renew)
            .respond(409, conflict("leases.coordination.k8s.io", "slogate")),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    let mut changes = leadership.changes();
    assert_eq!(elector.round().await, Outcome::Created);
    assert!(*changes.borrow_and_update());
    advance(Duration::from_secs(5)).await;
    let outcome = elector.round().await;
    // Still within the old term, but no longer leading, and told so.
    assert!(!leadership.is_leader());
    assert!(changes.has_changed().expect("elector alive"));
    assert!(!*changes.borrow());
    drop(elector);
    finish(verifier).await;
    assert!(
        matches!(&outcome, Outcome::SteppedDown(why) if why.is_conflict()
            && why.to_string().starts_with("renewing the lease: conflict")),
        "{outcome:?}"
    );
    // The 409 is the source: the call's error, shown with its chain.
    let Outcome::SteppedDown(Why::Call { what, source }) = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(*what, "renewing the lease");
    assert!(source.to_string().starts_with("conflict"), "{source}");
}

#[tokio::test(start_paused = true)]
async fn steps_down_when_the_lease_cannot_be_read() {
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(404, not_found("leases.coordination.k8s.io", "slogate")),
        Exchange::post(LEASES_CREATE, created_body()).respond(201, created_response()),
        Exchange::get(LEASE).respond(
            500,
            status(500, "InternalError", "etcdserver: leader changed"),
        ),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    assert_eq!(elector.round().await, Outcome::Created);
    advance(Duration::from_secs(5)).await;
    let outcome = elector.round().await;
    drop(elector);
    finish(verifier).await;
    assert!(matches!(outcome, Outcome::SteppedDown(_)), "{outcome:?}");
    // Not a lost race: the API server's error, with what was being done.
    assert!(
        matches!(&outcome, Outcome::SteppedDown(why) if !why.is_conflict()
            && why.to_string().starts_with("reading the lease: HTTP 500")),
        "{outcome:?}"
    );
    assert!(!leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_sees_another_holder_steps_down() {
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(404, not_found("leases.coordination.k8s.io", "slogate")),
        Exchange::post(LEASES_CREATE, created_body()).respond(201, created_response()),
        Exchange::get(LEASE).respond(200, lease("9", Some("slogate-1"), 1)),
    ]);
    let elector = elector(client);
    let leadership = elector.leadership();
    assert_eq!(elector.round().await, Outcome::Created);
    advance(Duration::from_secs(5)).await;
    let outcome = elector.round().await;
    drop(elector);
    finish(verifier).await;
    assert_eq!(
        outcome,
        Outcome::SteppedDown("the lease is held by slogate-1".into())
    );
    assert!(!leadership.is_leader());
}

#[tokio::test(start_paused = true)]
async fn run_leads_renews_and_releases_on_stop() {
    let mut renewed = created_response();
    renewed["spec"]["renewTime"] = json!(NOW);
    let mut released = created_response();
    released["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("holderIdentity");
    released["spec"]["leaseDurationSeconds"] = json!(1);
    let (client, verifier) = serve(vec![
        Exchange::get(LEASE).respond(404, not_found("leases.coordination.k8s.io", "slogate")),
        Exchange::post(LEASES_CREATE, created_body()).respond(201, created_response()),
        // Renew period 5s later.
        Exchange::get(LEASE).respond(200, created_response()),
        Exchange::put(LEASE_WRITE, renewed.clone()).respond(200, renewed),
        // Shutdown: step down, then release.
        Exchange::get(LEASE).respond(200, created_response()),
        Exchange::put(LEASE_WRITE, released.clone()).respond(200, released),
    ]);
    let elector = Arc::new(elector(client));
    let leadership = elector.leadership();
    let mut changes = leadership.changes();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let elector = elector.clone();
        async move { elector.run(stop_rx).await }
    });
    changes.changed().await.expect("granted");
    assert!(leadership.is_leader());
    let first_term = leadership.leading_until().expect("term");
    advance(Duration::from_secs(6)).await;
    tokio::task::yield_now().await;
    assert!(leadership.is_leader());
    assert!(
        leadership.leading_until().expect("term") > first_term,
        "renewed"
    );
    stop_tx.send(true).expect("stop");
    run.await.expect("join").expect("run");
    assert!(!leadership.is_leader());
    drop(elector);
    finish(verifier).await;
}
