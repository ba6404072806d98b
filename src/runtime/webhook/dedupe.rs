//! Deduplication of alerts through the [`StateStore`], so that it survives restarts.
//!
//! # Layout: one document per fingerprint
//!
//! An alert event is identified by `(fingerprint, status, startsAt)`: Alertmanager resends a
//! firing alert every `repeat_interval` with the same `startsAt`, retries a failed delivery
//! with the same body, and a new episode of the same alert gets a new `startsAt`.
//!
//! The events are kept under **one document per fingerprint**, `webhook/alerts/<fingerprint>`,
//! holding the recent events of that alert (at most [`MAX_EVENTS`], none older than the
//! configured TTL). A new event is added with compare-and-swap on the document's version:
//! of two concurrent deliveries of the same event exactly one writes it, the other loses
//! the swap, re-reads, finds the event and reports a duplicate.
//!
//! Why not one document per event (`put(key, …, None)`, a conflict meaning duplicate): the
//! `StateStore` port has no delete, so per-event documents could never expire and would grow
//! with every alert episode forever. Per fingerprint, the number of documents is bounded by
//! the number of distinct SLO alert label sets (each SLO has a page and a ticket alert), and
//! each document is bounded by [`MAX_EVENTS`] and the TTL.
//!
//! Alertmanager's fingerprint (16 hex digits) is used when it is a valid key segment;
//! otherwise (absent, or odd characters from another sender) the same FNV-1a hash of the
//! sorted label set that Prometheus and Alertmanager compute is used instead.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::payload::{Alert, AlertStatus};
use crate::adapters::state::conflict_backoff;
use crate::ports::state::{StateError, StateStore};

/// Most events kept per fingerprint (oldest dropped first).
pub const MAX_EVENTS: usize = 64;

/// Compare-and-swap rounds before giving up (each lost round means another writer made
/// progress on the same fingerprint).
const CAS_ROUNDS: usize = 16;

/// Key prefix of the dedupe documents.
pub const PREFIX: &str = "webhook/alerts/";

/// What [`record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The event is new and is now stored.
    New,
    /// The event was already stored.
    Duplicate,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub status: AlertStatus,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

/// The document under `webhook/alerts/<fingerprint>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDoc {
    pub fingerprint: String,
    pub slo_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Oldest first.
    pub events: Vec<Event>,
}

/// The fingerprint to key the alert by: Alertmanager's when usable, else computed.
pub fn fingerprint(alert: &Alert) -> String {
    match &alert.fingerprint {
        Some(f) if valid_segment(f) => f.clone(),
        _ => format!("{:016x}", labels_fingerprint(&alert.labels)),
    }
}

fn valid_segment(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Prometheus' `LabelSet.Fingerprint()`: FNV-1a 64 over the labels sorted by name, each
/// name and value followed by the byte 0xff.
pub fn labels_fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}

/// Store the alert's event unless it is already stored. `ttl` bounds how long events are
/// remembered.
pub async fn record(
    store: &dyn StateStore,
    alert: &Alert,
    slo_id: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Recorded, StateError> {
    let fp = fingerprint(alert);
    let key = format!("{PREFIX}{fp}");
    let event = Event {
        status: alert.status,
        starts_at: alert.starts_at,
        ends_at: alert.ends_at,
        received_at: now,
    };
    let horizon = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut last_err = None;
    for round in 0..CAS_ROUNDS {
        if round > 0 {
            conflict_backoff(round - 1).await;
        }
        let current = store.get(&key).await?;
        let (mut events, expected) = match &current {
            None => (Vec::new(), None),
            Some(v) => match serde_json::from_value::<AlertDoc>(v.value.clone()) {
                Ok(doc) => (doc.events, Some(v.version)),
                Err(e) => {
                    // Replaced, not fatal: losing the history only risks one extra trigger.
                    tracing::warn!(%key, "dedupe record is unreadable, replacing it: {e}");
                    (Vec::new(), Some(v.version))
                }
            },
        };
        events.retain(|e| e.received_at >= horizon);
        if events
            .iter()
            .any(|e| e.status == event.status && e.starts_at == event.starts_at)
        {
            return Ok(Recorded::Duplicate);
        }
        events.push(event.clone());
        if events.len() > MAX_EVENTS {
            events.drain(..events.len() - MAX_EVENTS);
        }
        let doc = AlertDoc {
            fingerprint: fp.clone(),
            slo_id: slo_id.to_string(),
            alertname: alert.labels.get("alertname").cloned(),
            severity: severity(&alert.labels),
            events,
        };
        let value = serde_json::to_value(&doc).map_err(|e| StateError::Corrupt {
            key: key.clone(),
            message: e.to_string(),
        })?;
        match store.put(&key, value, expected).await {
            Ok(_) => return Ok(Recorded::New),
            Err(e @ StateError::Conflict { .. }) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err
        .unwrap_or_else(|| StateError::Backend(format!("{key}: no compare-and-swap round ran"))))
}

/// Sloth's `sloth_severity` (`page`/`ticket`), else the common `severity` label.
pub fn severity(labels: &BTreeMap<String, String>) -> Option<String> {
    labels
        .get("sloth_severity")
        .or_else(|| labels.get("severity"))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::testing::{AfterGet, Hooked};
    use crate::adapters::state::MemoryStore;
    use crate::ports::state::Versioned;
    use crate::runtime::webhook::payload::parse;

    fn alert() -> Alert {
        let body = include_str!("../../../tests/fixtures/alertmanager/firing-sloth-id.json");
        parse(body.as_bytes()).unwrap().alerts.remove(0)
    }

    #[test]
    fn computed_fingerprint_equals_alertmanagers() {
        let a = alert();
        assert_eq!(
            format!("{:016x}", labels_fingerprint(&a.labels)),
            "bdef0648ce50a622"
        );
        let mut b = a.clone();
        b.fingerprint = Some("../etc".into());
        assert_eq!(fingerprint(&b), "bdef0648ce50a622");
        b.fingerprint = None;
        assert_eq!(fingerprint(&b), "bdef0648ce50a622");
    }

    #[tokio::test]
    async fn same_event_is_a_duplicate_new_status_or_episode_is_not() {
        let s = MemoryStore::new();
        let ttl = Duration::from_secs(3600);
        let now = Utc::now();
        let a = alert();
        assert_eq!(record(&s, &a, "x", now, ttl).await.unwrap(), Recorded::New);
        assert_eq!(
            record(&s, &a, "x", now, ttl).await.unwrap(),
            Recorded::Duplicate
        );
        let mut resolved = a.clone();
        resolved.status = AlertStatus::Resolved;
        assert_eq!(
            record(&s, &resolved, "x", now, ttl).await.unwrap(),
            Recorded::New
        );
        // A late retry of the firing notification is still a duplicate.
        assert_eq!(
            record(&s, &a, "x", now, ttl).await.unwrap(),
            Recorded::Duplicate
        );
        let mut again = a.clone();
        again.starts_at += chrono::Duration::minutes(10);
        assert_eq!(
            record(&s, &again, "x", now, ttl).await.unwrap(),
            Recorded::New
        );
        // Past the TTL the event is forgotten.
        let later = now + chrono::Duration::hours(2);
        assert_eq!(
            record(&s, &a, "x", later, ttl).await.unwrap(),
            Recorded::New
        );
        let doc: AlertDoc = serde_json::from_value(
            s.get("webhook/alerts/bdef0648ce50a622")
                .await
                .unwrap()
                .unwrap()
                .value,
        )
        .unwrap();
        assert_eq!(doc.events.len(), 1, "expired events are pruned: {doc:?}");
        assert_eq!(doc.severity.as_deref(), Some("page"));
    }

    /// Yields after every read, so that concurrent writers all read the same version before
    /// any of them writes: the race the compare-and-swap must settle.
    struct Yield;

    #[async_trait::async_trait]
    impl AfterGet for Yield {
        async fn after_get(&self, _: &MemoryStore, _: &str, _: Option<&Versioned>) {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn concurrent_deliveries_record_once() {
        let s = std::sync::Arc::new(Hooked::new(Yield));
        let now = Utc::now();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    record(s.as_ref(), &alert(), "x", now, Duration::from_secs(60)).await
                })
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() == Recorded::New {
                new += 1;
            }
        }
        assert_eq!(new, 1);
        let v = s
            .inner
            .get("webhook/alerts/bdef0648ce50a622")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.version, 1, "the losers wrote nothing");
    }

    #[tokio::test]
    async fn history_is_bounded() {
        let s = MemoryStore::new();
        let now = Utc::now();
        let mut a = alert();
        for i in 0..(MAX_EVENTS as i64 + 10) {
            a.starts_at += chrono::Duration::seconds(i + 1);
            record(&s, &a, "x", now, Duration::from_secs(3600))
                .await
                .unwrap();
        }
        let doc: AlertDoc = serde_json::from_value(
            s.get("webhook/alerts/bdef0648ce50a622")
                .await
                .unwrap()
                .unwrap()
                .value,
        )
        .unwrap();
        assert_eq!(doc.events.len(), MAX_EVENTS);
    }
}
