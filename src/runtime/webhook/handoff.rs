//! Alerts received by a follower, handed to the leader through the shared state store.
//!
//! Behind a Service, Alertmanager's webhook reaches either replica, but only the leader runs
//! the guard. A follower that records a new firing alert appends it to one shared document,
//! `webhook/handoff` ([`push`], compare-and-swap, the newest [`MAX_ENTRIES`] kept, each
//! with a sequence number). The leader reads that document every few seconds and runs the
//! guard for each entry it has not seen ([`Cursor::take`]), so the alert is acted on within
//! seconds instead of at the leader's next scheduled evaluation.
//!
//! A replica that becomes leader has seen nothing: it takes the entries received within
//! its window (the evaluation interval) and skips older ones, which a scheduled evaluation
//! has covered since. An entry taken twice (by two leaders across a failover) costs one
//! extra guard run, which is idempotent: the guard's state decides whether to act.
//!
//! Only with a shared store (`state.backend: kube`) and leader election: with one replica
//! there is nobody to hand to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::state::conflict_backoff;
use crate::ports::state::{StateError, StateStore};

/// The document's key.
pub const KEY: &str = "webhook/handoff";
/// Most entries kept (the oldest are dropped first).
pub const MAX_ENTRIES: usize = 64;
/// How often the leader reads the document.
pub const POLL: Duration = Duration::from_secs(2);

const CAS_ROUNDS: usize = 16;

/// One alert handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub seq: u64,
    pub slo_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    pub fingerprint: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Doc {
    next_seq: u64,
    entries: Vec<Handoff>,
}

/// Append an alert for the leader; returns its sequence number.
pub async fn push(
    store: &dyn StateStore,
    slo_id: &str,
    alertname: Option<String>,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<u64, StateError> {
    let mut last = None;
    for round in 0..CAS_ROUNDS {
        if round > 0 {
            conflict_backoff(round - 1).await;
        }
        let (mut doc, expected) = match store.get(KEY).await? {
            None => (Doc::default(), None),
            Some(v) => match serde_json::from_value::<Doc>(v.value) {
                Ok(d) => (d, Some(v.version)),
                Err(e) => {
                    tracing::warn!(
                        key = KEY,
                        "unreadable alert handoff document, replacing it: {e}"
                    );
                    (Doc::default(), Some(v.version))
                }
            },
        };
        let seq = doc.next_seq;
        doc.next_seq += 1;
        doc.entries.push(Handoff {
            seq,
            slo_id: slo_id.to_string(),
            alertname: alertname.clone(),
            fingerprint: fingerprint.to_string(),
            received_at: now,
        });
        if doc.entries.len() > MAX_ENTRIES {
            doc.entries.drain(..doc.entries.len() - MAX_ENTRIES);
        }
        let value = serde_json::to_value(&doc).map_err(|e| StateError::Undecodable {
            key: KEY.into(),
            at: None,
            source: Box::new(e),
        })?;
        match store.put(KEY, value, expected).await {
            Ok(_) => return Ok(seq),
            Err(e @ StateError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last
        .unwrap_or_else(|| StateError::Backend(format!("{KEY}: no compare-and-swap round ran"))))
}

/// Every entry, oldest first (none when the document does not exist or is unreadable).
pub async fn read(store: &dyn StateStore) -> Result<Vec<Handoff>, StateError> {
    Ok(match store.get(KEY).await? {
        None => Vec::new(),
        Some(v) => serde_json::from_value::<Doc>(v.value)
            .map(|d| d.entries)
            .unwrap_or_else(|e| {
                tracing::warn!(key = KEY, "unreadable alert handoff document: {e}");
                Vec::new()
            }),
    })
}

/// What the leader has taken so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    last: Option<u64>,
}

impl Cursor {
    /// Forget what was taken (leadership lost): the next take is a new leader's.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The entries to act on: after the last one taken or, for a new leader, those received
    /// within `window` of `now`.
    pub fn take(
        &mut self,
        entries: &[Handoff],
        now: DateTime<Utc>,
        window: Duration,
    ) -> Vec<Handoff> {
        let horizon = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| now.checked_sub_signed(w))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let out: Vec<Handoff> = entries
            .iter()
            .filter(|e| match self.last {
                Some(last) => e.seq > last,
                None => e.received_at >= horizon,
            })
            .cloned()
            .collect();
        let newest = entries.iter().map(|e| e.seq).max();
        if let Some(n) = newest {
            self.last = Some(self.last.map_or(n, |l| l.max(n)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::adapters::state::MemoryStore;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[tokio::test]
    async fn the_leader_takes_each_entry_once_and_a_new_leader_only_recent_ones() {
        let store = MemoryStore::new();
        let window = Duration::from_secs(60);
        push(&store, "old-slo", None, "f0", at(0)).await.unwrap();
        let a = push(
            &store,
            "checkout-availability",
            Some("SlothBurn".into()),
            "f1",
            at(100),
        )
        .await
        .unwrap();
        assert_eq!(a, 1);
        // A new leader at t=120: the entry from t=0 is older than its window.
        let mut leader = Cursor::default();
        let took = leader.take(&read(&store).await.unwrap(), at(120), window);
        assert_eq!(took.len(), 1);
        assert_eq!(took[0].slo_id, "checkout-availability");
        assert_eq!(took[0].alertname.as_deref(), Some("SlothBurn"));
        // Nothing new: nothing taken, however old the window.
        assert!(leader
            .take(&read(&store).await.unwrap(), at(10_000), window)
            .is_empty());
        // A new entry, even long after: taken once.
        push(&store, "search-latency", None, "f2", at(5_000))
            .await
            .unwrap();
        let took = leader.take(&read(&store).await.unwrap(), at(10_000), window);
        assert_eq!(took.iter().map(|h| h.seq).collect::<Vec<_>>(), vec![2]);
        // Leadership lost and regained later: only the window counts again.
        leader.reset();
        assert!(leader
            .take(&read(&store).await.unwrap(), at(20_000), window)
            .is_empty());
    }

    #[tokio::test]
    async fn the_document_is_bounded_and_sequence_numbers_keep_growing() {
        let store = MemoryStore::new();
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            push(&store, "s", None, "f", at(i)).await.unwrap();
        }
        let entries = read(&store).await.unwrap();
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(entries.first().unwrap().seq, 10);
        assert_eq!(entries.last().unwrap().seq, MAX_ENTRIES as u64 + 9);
    }

    /// Four replicas pushing at once, more than [`CAS_ROUNDS`] times each: every push lands.
    /// Before losers backed off (`conflict_backoff`) one writer could lose 16 rounds in a row
    /// on a busy machine and the push failed with a conflict (seen in CI).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pushes_lose_nothing() {
        const WRITERS: u64 = 4;
        const EACH: u64 = 16;
        let store = Arc::new(MemoryStore::new());
        let tasks: Vec<_> = (0..WRITERS)
            .map(|r| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..EACH {
                        push(store.as_ref(), &format!("slo-{r}"), None, "f", at(i as i64))
                            .await
                            .map_err(|e| format!("writer {r}, push {i}: {e}"))?;
                        tokio::task::yield_now().await;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let entries = read(store.as_ref()).await.unwrap();
        assert_eq!(entries.len() as u64, WRITERS * EACH);
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..WRITERS * EACH).collect::<Vec<_>>());
        for r in 0..WRITERS {
            let mine = entries
                .iter()
                .filter(|e| e.slo_id == format!("slo-{r}"))
                .count();
            assert_eq!(mine as u64, EACH, "writer {r}");
        }
    }
}
