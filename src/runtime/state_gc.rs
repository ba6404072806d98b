//! The state sweep: deletes state documents that no longer matter, so that the state store
//! (one ConfigMap per document with `state.backend: kube`, one file per document under
//! `state.dir` otherwise) does not grow with every promotion, alert and deleted Rollout.
//!
//! Deleted, and only these (every other document is kept):
//! - `promote-approval/<key>`: an approval given more than `state.retention` ago (default
//!   30 days). A pipeline re-run after that needs a new approval; the approval itself stays
//!   in the decision log.
//! - `webhook/slo-alerts/<slo>` (and `webhook/alerts/<fingerprint>` of the previous layout):
//!   a dedupe record whose every event was received more than `webhook.dedupe_ttl` ago. [`crate::runtime::webhook::dedupe::record`] ignores such
//!   events already, so deleting the record changes nothing a delivery would see.
//! - `rollout-commands/<ns>/<name>`: the command queue of a Rollout that is not running here,
//!   with no command queued or answered within `state.retention`.
//!
//! A document that cannot be decoded is kept and reported: the sweep never deletes what it
//! cannot judge. Each delete is a compare-and-swap on the version that was judged, so a
//! document written since (a new alert event, a new command) is kept.
//!
//! [`expired`] is the pure rule; [`sweep`] reads, judges and deletes. The daemon runs the
//! sweep on the leader, shortly after start and then every [`INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use crate::adapters::leader::Leadership;
use crate::model::approval::{self, Approval};
use crate::ports::state::{StateError, StateStore};
use crate::runtime::rollout::commands::CommandQueue;
use crate::runtime::webhook::dedupe::{self, Received};

/// How often the leader sweeps.
pub const INTERVAL: Duration = Duration::from_secs(3600);
/// Key prefix of the operator command queues.
pub const COMMANDS_PREFIX: &str = "rollout-commands/";

/// How long documents are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Approvals, and the command queues of Rollouts that are not running (`state.retention`).
    pub retention: Duration,
    /// Alert dedupe records (`webhook.dedupe_ttl`).
    pub dedupe_ttl: Duration,
}

/// Which kind of document was found expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Approval,
    AlertRecord,
    CommandQueue,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Approval => "approval",
            Kind::AlertRecord => "alert record",
            Kind::CommandQueue => "command queue",
        }
    }

    fn prefixes() -> [(&'static str, Kind); 4] {
        [
            (approval::PREFIX, Kind::Approval),
            (dedupe::PREFIX, Kind::AlertRecord),
            (dedupe::LEGACY_PREFIX, Kind::AlertRecord),
            (COMMANDS_PREFIX, Kind::CommandQueue),
        ]
    }
}

/// Whether the document `value` under `key` has expired at `now`: `Ok(Some(kind))` to
/// delete, `Ok(None)` to keep, `Err` (why) when it cannot be judged, which keeps it too.
/// `running(namespace, name)` tells whether a Rollout runs here.
pub fn expired(
    key: &str,
    value: &Value,
    now: DateTime<Utc>,
    keep: Retention,
    running: &(dyn Fn(&str, &str) -> bool + Send + Sync),
) -> Result<Option<Kind>, String> {
    let before = |d: Duration| -> DateTime<Utc> {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let decode_err = |what: &str, e: serde_json::Error| format!("`{key}`: not {what}: {e}");
    if key.starts_with(approval::PREFIX) {
        let a: Approval =
            serde_json::from_value(value.clone()).map_err(|e| decode_err("an approval", e))?;
        return Ok((a.at < before(keep.retention)).then_some(Kind::Approval));
    }
    if key.starts_with(dedupe::PREFIX) || key.starts_with(dedupe::LEGACY_PREFIX) {
        let d: Received = serde_json::from_value(value.clone())
            .map_err(|e| decode_err("an alert dedupe record", e))?;
        let horizon = before(keep.dedupe_ttl);
        let live = d
            .received()
            .map_err(|e| decode_err("an alert dedupe record", e))?
            .iter()
            .any(|at| *at >= horizon);
        return Ok((!live).then_some(Kind::AlertRecord));
    }
    if let Some(rest) = key.strip_prefix(COMMANDS_PREFIX) {
        let Some((ns, name)) = rest.split_once('/') else {
            return Err(format!(
                "`{key}`: expected {COMMANDS_PREFIX}<namespace>/<name>"
            ));
        };
        if running(ns, name) {
            return Ok(None);
        }
        let q: CommandQueue =
            serde_json::from_value(value.clone()).map_err(|e| decode_err("a command queue", e))?;
        let newest = q
            .pending
            .iter()
            .map(|c| c.at)
            .chain(q.results.iter().map(|r| r.at))
            .max();
        let old = newest.is_none_or(|t| t < before(keep.retention));
        return Ok(old.then_some(Kind::CommandQueue));
    }
    Ok(None)
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Deleted documents, by key, with their kind.
    pub deleted: Vec<(String, Kind)>,
    /// Expired documents written since they were read: kept.
    pub changed: Vec<String>,
    /// Documents that could not be judged: kept, with why.
    pub unreadable: Vec<String>,
}

/// Read every document of the swept kinds, delete the expired ones. Stops at the first
/// store error other than a lost compare-and-swap (the next sweep tries again).
pub async fn sweep(
    store: &dyn StateStore,
    now: DateTime<Utc>,
    keep: Retention,
    running: &(dyn Fn(&str, &str) -> bool + Send + Sync),
) -> Result<SweepReport, StateError> {
    let mut report = SweepReport::default();
    for (prefix, _) in Kind::prefixes() {
        for key in store.list(prefix).await? {
            let Some(doc) = store.get(&key).await? else {
                continue;
            };
            let kind = match expired(&key, &doc.value, now, keep, running) {
                Ok(Some(kind)) => kind,
                Ok(None) => continue,
                Err(why) => {
                    report.unreadable.push(why);
                    continue;
                }
            };
            match store.delete(&key, doc.version).await {
                Ok(()) => report.deleted.push((key, kind)),
                Err(StateError::Conflict { .. }) => report.changed.push(key),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

/// Whether a Rollout (namespace, name) runs here, for the state sweep.
pub type Running = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// On the leader, [`SWEEP_DELAY`] after start and then every
/// [`INTERVAL`]: delete expired state documents
/// ([`sweep`]). The delay lets the rollout source be read first, so that a
/// running Rollout's command queue is known to be in use.
pub fn sweep_state(
    store: Arc<dyn StateStore>,
    leadership: Leadership,
    keep: Retention,
    running: Running,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = SWEEP_DELAY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
            wait = INTERVAL;
            if !leadership.is_leader() {
                continue;
            }
            let swept = tokio::select! {
                r = sweep(store.as_ref(), chrono::Utc::now(), keep, running.as_ref()) => r,
                _ = stop.changed() => break,
            };
            match swept {
                Ok(report) => {
                    for (key, kind) in &report.deleted {
                        tracing::info!(%key, kind = kind.as_str(), "expired state document deleted");
                    }
                    for why in &report.unreadable {
                        tracing::warn!("state document kept, it cannot be read: {why}");
                    }
                    for key in &report.changed {
                        tracing::debug!(%key, "expired state document changed since it was read; kept");
                    }
                }
                Err(e) => tracing::warn!("state sweep stopped, retried in an hour: {e}"),
            }
        }
    })
}

/// How long after start the first state sweep runs.
const SWEEP_DELAY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::adapters::leader::leadership_channel;
    use crate::adapters::state::testing::{AfterGet, Hooked};
    use crate::adapters::state::MemoryStore;
    use crate::ports::state::Versioned;

    const DAY: i64 = 86_400;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn keep() -> Retention {
        Retention {
            retention: Duration::from_secs(30 * DAY as u64),
            dedupe_ttl: Duration::from_secs(7 * DAY as u64),
        }
    }

    fn approval(at: DateTime<Utc>) -> Value {
        json!({
            "key": "k", "repo": "https://git.example/shop.git", "target": "overlays/prod",
            "image": "shop/checkout", "tag": "v2", "actor": "alice", "at": at,
        })
    }

    fn alert(received: &[DateTime<Utc>]) -> Value {
        let events: Vec<Value> = received
            .iter()
            .map(|r| json!({"status": "firing", "starts_at": r, "received_at": r}))
            .collect();
        json!({"fingerprint": "f", "slo_id": "checkout-availability", "events": events})
    }

    fn queue(pending: &[DateTime<Utc>], results: &[DateTime<Utc>]) -> Value {
        json!({
            "pending": pending.iter().map(|t| json!({
                "id": "cmd-1", "action": "pause", "actor": "bob", "at": t, "via": "api",
            })).collect::<Vec<_>>(),
            "results": results.iter().map(|t| json!({
                "id": "cmd-0", "action": "abort", "actor": "bob", "outcome": "applied",
                "reason": "aborted by bob", "at": t,
            })).collect::<Vec<_>>(),
        })
    }

    fn none(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn each_kind_expires_by_its_own_rule() {
        let now = at(100 * DAY);
        let judge = |key: &str, v: &Value| expired(key, v, now, keep(), &none).unwrap();
        let ap = "promote-approval/0123";
        assert_eq!(judge(ap, &approval(at(69 * DAY))), Some(Kind::Approval));
        assert_eq!(judge(ap, &approval(at(71 * DAY))), None);
        let al = "webhook/alerts/00ff";
        assert_eq!(
            judge(al, &alert(&[at(80 * DAY), at(92 * DAY)])),
            Some(Kind::AlertRecord)
        );
        assert_eq!(judge(al, &alert(&[at(80 * DAY), at(94 * DAY)])), None);
        assert_eq!(judge(al, &alert(&[])), Some(Kind::AlertRecord));
        // The current form keeps the events as one JSON text.
        let packed = |received: &[DateTime<Utc>]| {
            let events = alert(received)["events"].to_string();
            json!({"slo_id": "checkout-availability", "events_json": events})
        };
        let doc = "webhook/slo-alerts/checkout-availability";
        assert_eq!(
            judge(doc, &packed(&[at(80 * DAY), at(92 * DAY)])),
            Some(Kind::AlertRecord)
        );
        assert_eq!(judge(doc, &packed(&[at(80 * DAY), at(94 * DAY)])), None);
        assert!(expired(
            doc,
            &json!({"slo_id": "x", "events_json": "not json"}),
            now,
            keep(),
            &none
        )
        .is_err());
        let q = "rollout-commands/shop/checkout";
        assert_eq!(
            judge(q, &queue(&[], &[at(60 * DAY)])),
            Some(Kind::CommandQueue)
        );
        // A recent pending command or result keeps the queue.
        assert_eq!(judge(q, &queue(&[at(90 * DAY)], &[at(60 * DAY)])), None);
        assert_eq!(judge(q, &queue(&[], &[at(60 * DAY), at(75 * DAY)])), None);
        assert_eq!(judge(q, &queue(&[], &[])), Some(Kind::CommandQueue));
        // Other documents are never swept, however old.
        for key in ["guard/checkout", "rollout/shop/checkout", "webhook/handoff"] {
            assert_eq!(judge(key, &json!({"at": at(0)})), None, "{key}");
        }
    }

    #[test]
    fn a_running_rollouts_queue_is_kept_and_unreadable_documents_are_not_judged() {
        let now = at(100 * DAY);
        let running = |ns: &str, name: &str| (ns, name) == ("shop", "checkout");
        let old = queue(&[], &[at(0)]);
        let q = "rollout-commands/shop/checkout";
        assert_eq!(expired(q, &old, now, keep(), &running).unwrap(), None);
        assert_eq!(
            expired("rollout-commands/shop/search", &old, now, keep(), &running).unwrap(),
            Some(Kind::CommandQueue)
        );
        for (key, v) in [
            ("promote-approval/0123", json!({"at": "yesterday"})),
            ("webhook/alerts/00ff", json!([1, 2])),
            ("rollout-commands/shop/search", json!({"pending": 3})),
            ("rollout-commands/shop", old.clone()),
        ] {
            let e = expired(key, &v, now, keep(), &none).unwrap_err();
            assert!(e.contains(key), "{e}");
        }
    }

    #[tokio::test]
    async fn sweep_deletes_only_expired_documents() {
        let store = MemoryStore::new();
        let docs = [
            ("promote-approval/old", approval(at(0))),
            ("promote-approval/new", approval(at(99 * DAY))),
            ("webhook/alerts/old", alert(&[at(DAY)])),
            ("webhook/alerts/new", alert(&[at(99 * DAY)])),
            ("rollout-commands/shop/gone", queue(&[], &[at(DAY)])),
            ("rollout-commands/shop/checkout", queue(&[], &[at(DAY)])),
            ("promote-approval/garbled", json!("not an approval")),
            ("guard/checkout", json!({"frozen": true})),
        ];
        for (k, v) in &docs {
            store.put(k, v.clone(), None).await.unwrap();
        }
        let running = |ns: &str, name: &str| (ns, name) == ("shop", "checkout");
        let report = sweep(&store, at(100 * DAY), keep(), &running)
            .await
            .unwrap();
        let mut deleted = report.deleted.clone();
        deleted.sort();
        assert_eq!(
            deleted,
            vec![
                ("promote-approval/old".to_string(), Kind::Approval),
                ("rollout-commands/shop/gone".to_string(), Kind::CommandQueue),
                ("webhook/alerts/old".to_string(), Kind::AlertRecord),
            ]
        );
        assert_eq!(report.unreadable.len(), 1);
        assert!(report.unreadable[0].contains("promote-approval/garbled"));
        let mut left = Vec::new();
        for p in [
            "promote-approval/",
            "webhook/alerts/",
            "rollout-commands/",
            "guard/",
        ] {
            left.extend(store.list(p).await.unwrap());
        }
        left.sort();
        assert_eq!(
            left,
            vec![
                "guard/checkout",
                "promote-approval/garbled",
                "promote-approval/new",
                "rollout-commands/shop/checkout",
                "webhook/alerts/new",
            ]
        );
        // Nothing left to do: a second sweep deletes nothing.
        let again = sweep(&store, at(100 * DAY), keep(), &running)
            .await
            .unwrap();
        assert!(again.deleted.is_empty());
    }

    /// A new alert event arrives right after the sweep read the record.
    struct WrittenMeanwhile;

    #[async_trait::async_trait]
    impl AfterGet for WrittenMeanwhile {
        async fn after_get(&self, store: &MemoryStore, key: &str, read: Option<&Versioned>) {
            if let Some(v) = read {
                let again = alert(&[at(100 * DAY)]);
                store.put(key, again, Some(v.version)).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_document_written_after_it_was_judged_is_kept() {
        let store = Hooked::new(WrittenMeanwhile);
        store
            .inner
            .put("webhook/alerts/f", alert(&[at(DAY)]), None)
            .await
            .unwrap();
        let report = sweep(&store, at(100 * DAY), keep(), &none).await.unwrap();
        assert!(report.deleted.is_empty(), "{report:?}");
        assert_eq!(report.changed, vec!["webhook/alerts/f".to_string()]);
        let left = store.inner.get("webhook/alerts/f").await.unwrap().unwrap();
        assert_eq!(left.value, alert(&[at(100 * DAY)]));
    }

    /// The sweep runs on the leader only, after its start delay and then hourly, and keeps
    /// the command queue of a running Rollout.
    #[tokio::test(start_paused = true)]
    async fn the_leader_sweeps_expired_state_and_a_follower_does_not() {
        let old = chrono::Utc::now() - chrono::Duration::days(40);
        let queue = serde_json::json!({"results": [{
            "id": "cmd-0", "action": "abort", "actor": "bob", "outcome": "applied",
            "reason": "aborted by bob", "at": old,
        }]});
        let approval = serde_json::json!({
            "key": "k", "repo": "https://git.example/shop.git", "target": "overlays/prod",
            "image": "shop/checkout", "tag": "v2", "actor": "alice", "at": old,
        });
        let keys = [
            "promote-approval/0a",
            "rollout-commands/shop/checkout",
            "rollout-commands/shop/gone",
        ];
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let put = |k: &'static str, v: serde_json::Value| {
            let s = store.clone();
            async move { s.put(k, v, None).await.unwrap() }
        };
        put(keys[0], approval).await;
        put(keys[1], queue.clone()).await;
        put(keys[2], queue).await;
        let keep = Retention {
            retention: Duration::from_secs(30 * 86_400),
            dedupe_ttl: Duration::from_secs(7 * 86_400),
        };
        let running: Running = Arc::new(|ns: &str, name: &str| (ns, name) == ("shop", "checkout"));
        let left = || {
            let s = store.clone();
            async move {
                let mut k = s.list("promote-approval/").await.unwrap();
                k.extend(s.list("rollout-commands/").await.unwrap());
                k
            }
        };

        let (follower_signal, follower) = leadership_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let f = sweep_state(
            store.clone(),
            follower,
            keep,
            running.clone(),
            stop_rx.clone(),
        );
        tokio::time::sleep(SWEEP_DELAY + INTERVAL * 2).await;
        assert_eq!(left().await, keys, "a follower deletes nothing");

        let (leader_signal, leader) = leadership_channel();
        leader_signal.grant_forever();
        let l = sweep_state(store.clone(), leader, keep, running, stop_rx);
        tokio::time::sleep(SWEEP_DELAY / 2).await;
        assert_eq!(left().await, keys, "nothing before the start delay");
        tokio::time::sleep(SWEEP_DELAY).await;
        assert_eq!(
            left().await,
            vec!["rollout-commands/shop/checkout".to_string()]
        );

        stop_tx.send(true).unwrap();
        f.await.unwrap();
        l.await.unwrap();
        drop(follower_signal);
    }
}
