//! Deduplication of alerts through the [`StateStore`], so that it survives restarts.
//!
//! # Layout: one bounded document per SLO
//!
//! An alert event is identified by `(fingerprint, status, startsAt)`: Alertmanager resends a
//! firing alert every `repeat_interval` with the same `startsAt`, retries a failed delivery
//! with the same body, and a new episode of the same alert gets a new `startsAt`.
//!
//! The events of every alert of one SLO are kept in **one document per SLO**,
//! `webhook/slo-alerts/<slo id>`: the most recent [`MAX_EVENTS`] events (the oldest dropped
//! first), none older than the configured TTL, each label value cut to [`MAX_LABEL_CHARS`].
//! Only alerts of a loaded SLO are recorded, so the number of documents is bounded by the
//! number of SLOs, and the size of each by `MAX_EVENTS` whatever the senders put in their
//! labels. (With one document per fingerprint, 2,000 distinct label sets in one request made
//! 2,000 documents, and a 1 MB alert name a 1 MB document.)
//!
//! The alerts of one request are recorded per SLO in one compare-and-swap on the document's
//! version ([`record_all`]): of two concurrent deliveries of the same event exactly one
//! writes it, the other loses the swap, re-reads, finds the event and reports a duplicate.
//!
//! A flood of distinct fingerprints pushes older events out of the document; a repeat of such
//! an event then counts as new once more and triggers one more evaluation, which the daemon
//! coalesces per SLO ([`crate::runtime::coalesce`]). Dedupe saves work; it never decides.
//!
//! Requests are group-committed per SLO ([`Batcher`]): while one compare-and-swap of an
//! SLO's document is in flight, the alerts of further requests for that SLO queue up and go
//! into the next one together, so a burst of N deliveries costs a few document writes
//! instead of N writes that conflict with each other (and back off). The answers and the
//! guarantee are those of [`record_all`] over the queued alerts in arrival order. One
//! writer task per SLO runs while anything is queued; it also runs the follow-up of each
//! write ([`AfterCommit`]: the receiver's triggers) before answering, so a caller that goes
//! away neither strands the others' answers nor loses the follow-up of its stored events.
//!
//! Alertmanager's fingerprint (16 hex digits) is used when it is a valid key segment;
//! otherwise (absent, or odd characters from another sender) the same FNV-1a hash of the
//! sorted label set that Prometheus and Alertmanager compute is used instead.
//!
//! Documents of the previous layout (`webhook/alerts/<fingerprint>`) are no longer written;
//! the state sweep deletes them once their events are older than the TTL.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::labels::Labels;
use super::payload::{Alert, AlertStatus};
use crate::adapters::state::conflict_backoff;
use crate::ports::state::{StateError, StateStore};

/// Most events kept per SLO (oldest dropped first).
pub const MAX_EVENTS: usize = 256;

/// Characters of a label value (alert name, severity) kept in a record.
pub const MAX_LABEL_CHARS: usize = 128;

/// Compare-and-swap rounds before giving up (each lost round means another writer made
/// progress on the same SLO).
const CAS_ROUNDS: usize = 16;

/// Key prefix of the dedupe documents.
pub const PREFIX: &str = "webhook/slo-alerts/";

/// Key prefix of the previous layout's documents (one per fingerprint), still swept.
pub const LEGACY_PREFIX: &str = "webhook/alerts/";

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
    pub fingerprint: String,
    pub status: AlertStatus,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// The document under `webhook/slo-alerts/<slo id>`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDoc {
    pub slo_id: String,
    /// Oldest first.
    pub events: Vec<Event>,
}

/// How an [`AlertDoc`] is stored: its events as **one JSON text** (`events_json`), so that a
/// write of up to [`MAX_EVENTS`] events is one string for the store instead of a tree of
/// about ten values per event (building, cloning and dropping that tree was three quarters
/// of the receiver's work under a flood). Documents written before, with `events` as a JSON
/// array, are still read.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDoc {
    slo_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events_json: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<Event>,
}

impl AlertDoc {
    /// The stored form.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(StoredDoc {
            slo_id: self.slo_id.clone(),
            events_json: Some(serde_json::to_string(&self.events)?),
            events: Vec::new(),
        })
    }

    /// A stored document, of either form.
    pub fn from_value(value: serde_json::Value) -> Result<AlertDoc, serde_json::Error> {
        let stored: StoredDoc = serde_json::from_value(value)?;
        let mut events = stored.events;
        if let Some(text) = stored.events_json {
            events.extend(serde_json::from_str::<Vec<Event>>(&text)?);
        }
        Ok(AlertDoc {
            slo_id: stored.slo_id,
            events,
        })
    }
}

/// What the state sweep reads of a dedupe document, of any layout: when its events were
/// received.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    #[serde(default)]
    events: Vec<ReceivedAt>,
    #[serde(default)]
    events_json: Option<String>,
}

impl Received {
    /// When each event was received (an `events_json` that does not decode is an error).
    pub fn received(&self) -> Result<Vec<DateTime<Utc>>, serde_json::Error> {
        let mut at: Vec<DateTime<Utc>> = self.events.iter().map(|e| e.received_at).collect();
        if let Some(text) = &self.events_json {
            let packed: Vec<ReceivedAt> = serde_json::from_str(text)?;
            at.extend(packed.into_iter().map(|e| e.received_at));
        }
        Ok(at)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedAt {
    pub received_at: DateTime<Utc>,
}

/// The key of an SLO's document: its id when that is a valid key segment, else a hash.
pub fn key(slo_id: &str) -> String {
    if valid_segment(slo_id) {
        format!("{PREFIX}{slo_id}")
    } else {
        format!("{PREFIX}h-{:016x}", fnv1a([slo_id.as_bytes()]))
    }
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

/// FNV-1a 64 over the given byte strings, in order.
fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for bytes in parts {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// Prometheus' `LabelSet.Fingerprint()`: FNV-1a 64 over the labels sorted by name, each
/// name and value followed by the byte 0xff.
pub fn labels_fingerprint(labels: &Labels) -> u64 {
    const SEP: &[u8] = &[0xff];
    fnv1a(
        labels
            .iter()
            .flat_map(|(k, v)| [k.as_bytes(), SEP, v.as_bytes(), SEP]),
    )
}

/// At most [`MAX_LABEL_CHARS`] characters of a label value.
fn cut(v: Option<&str>) -> Option<String> {
    v.map(|s| {
        if s.len() <= MAX_LABEL_CHARS {
            // At most as many characters as bytes: nothing to cut.
            s.to_string()
        } else {
            s.chars().take(MAX_LABEL_CHARS).collect()
        }
    })
}

/// Store the alert's event unless it is already stored ([`record_all`] of one alert).
pub async fn record(
    store: &dyn StateStore,
    alert: &Alert,
    slo_id: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Recorded, StateError> {
    let r = record_all(store, slo_id, &[alert], now, ttl).await?;
    // One alert in, one answer out.
    Ok(r.first().copied().unwrap_or(Recorded::Duplicate))
}

/// Store the events of `alerts` (all of SLO `slo_id`) that are not stored yet, in one
/// compare-and-swap; one answer per alert, in order. `ttl` bounds how long events are
/// remembered. An event repeated within `alerts` is a duplicate after its first.
pub async fn record_all(
    store: &dyn StateStore,
    slo_id: &str,
    alerts: &[&Alert],
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<Recorded>, StateError> {
    commit(store, slo_id, alerts, now, ttl, &mut None).await
}

/// An SLO's document as this process last wrote or read it. Used as the first round's read
/// by [`Batcher`]: the compare-and-swap on its version still refuses the write if anything
/// else changed the document since (another replica, the sweep), and the next round reads.
struct Cached {
    version: Option<u64>,
    events: Events,
}

/// A document's events, oldest first (a deque: a full document drops from the front at every
/// write), with a count of each [`ident`] among them, so that looking an alert up is one hash
/// lookup instead of a scan of up to [`MAX_EVENTS`] events (the events are scanned only
/// when the ident is there: a repeat, or a collision).
#[derive(Default)]
struct Events {
    kept: VecDeque<Kept>,
    idents: HashMap<u64, u32>,
}

impl Events {
    fn push(&mut self, k: Kept) {
        *self.idents.entry(k.ident).or_insert(0) += 1;
        self.kept.push_back(k);
    }

    /// Whether the event `(fingerprint, status, at)`, of ident `id`, is among them.
    fn contains(&self, id: u64, fingerprint: &str, status: AlertStatus, at: DateTime<Utc>) -> bool {
        self.idents.contains_key(&id) && self.kept.iter().any(|k| k.is(id, fingerprint, status, at))
    }

    /// Drop the events received before `horizon`.
    fn received_since(&mut self, horizon: DateTime<Utc>) {
        let before = self.kept.len();
        self.kept.retain(|k| k.event.received_at >= horizon);
        if self.kept.len() != before {
            self.idents.clear();
            for k in &self.kept {
                *self.idents.entry(k.ident).or_insert(0) += 1;
            }
        }
    }

    /// Keep the newest `n`.
    fn keep_last(&mut self, n: usize) {
        let extra = self.kept.len().saturating_sub(n);
        for k in self.kept.drain(..extra) {
            if let Some(count) = self.idents.get_mut(&k.ident) {
                *count -= 1;
                if *count == 0 {
                    self.idents.remove(&k.ident);
                }
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Kept> {
        self.kept.iter()
    }
}

/// An event with its JSON text, written once when it is recorded (or read): an event never
/// changes, so a write joins the kept texts instead of formatting every event again (three
/// timestamps each, which dominated the receiver's work).
struct Kept {
    event: Event,
    json: String,
    /// [`ident`] of the event, compared before the event itself.
    ident: u64,
}

impl Kept {
    fn new(event: Event) -> Result<Kept, serde_json::Error> {
        Ok(Kept {
            json: event_json(&event)?,
            ident: ident(&event.fingerprint, event.status, event.starts_at),
            event,
        })
    }

    fn is(&self, ident: u64, fingerprint: &str, status: AlertStatus, at: DateTime<Utc>) -> bool {
        self.ident == ident
            && self.event.starts_at == at
            && self.event.status == status
            && self.event.fingerprint == fingerprint
    }
}

/// `serde_json::to_string(event)`, written field by field: the derived serializer formats
/// each time through chrono's general formatter, which was most of the writer task's work
/// under a flood. The text is the same (a test compares them over random events).
fn event_json(e: &Event) -> Result<String, serde_json::Error> {
    let mut out = String::with_capacity(160 + e.fingerprint.len());
    out.push_str("{\"fingerprint\":");
    push_json_str(&mut out, &e.fingerprint)?;
    out.push_str(",\"status\":\"");
    out.push_str(e.status.as_str());
    out.push_str("\",\"starts_at\":");
    push_time(&mut out, e.starts_at)?;
    if let Some(t) = e.ends_at {
        out.push_str(",\"ends_at\":");
        push_time(&mut out, t)?;
    }
    out.push_str(",\"received_at\":");
    push_time(&mut out, e.received_at)?;
    if let Some(v) = &e.alertname {
        out.push_str(",\"alertname\":");
        push_json_str(&mut out, v)?;
    }
    if let Some(v) = &e.severity {
        out.push_str(",\"severity\":");
        push_json_str(&mut out, v)?;
    }
    out.push('}');
    Ok(out)
}

/// A JSON string literal: as is between quotes when nothing needs escaping (fingerprints,
/// usual label values), else through serde_json's escaping.
fn push_json_str(out: &mut String, s: &str) -> Result<(), serde_json::Error> {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&serde_json::to_string(s)?);
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
    Ok(())
}

/// A time as chrono serializes it (RFC 3339, UTC as `Z`, the fraction in 0, 3, 6 or 9
/// digits), quoted. Years 0 to 9999 and no leap second are written here, into a fixed
/// buffer; others through chrono.
fn push_time(out: &mut String, t: DateTime<Utc>) -> Result<(), serde_json::Error> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&serde_json::to_string(&t)?);
        return Ok(());
    }
    /// `v`'s last `n` decimal digits into `b[at..at + n]`.
    fn digits(b: &mut [u8], at: usize, n: usize, mut v: u32) {
        for i in (at..at + n).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let mut b = *b"\"0000-00-00T00:00:00.000000000Z\"";
    digits(&mut b, 1, 4, year.unsigned_abs());
    digits(&mut b, 6, 2, t.month());
    digits(&mut b, 9, 2, t.day());
    digits(&mut b, 12, 2, t.hour());
    digits(&mut b, 15, 2, t.minute());
    digits(&mut b, 18, 2, t.second());
    // The fraction's digits, after the '.' at 20.
    let n = if nanos == 0 {
        0
    } else if nanos % 1_000_000 == 0 {
        digits(&mut b, 21, 3, nanos / 1_000_000);
        3
    } else if nanos % 1_000 == 0 {
        digits(&mut b, 21, 6, nanos / 1_000);
        6
    } else {
        digits(&mut b, 21, 9, nanos);
        9
    };
    let end = if n == 0 { 20 } else { 21 + n };
    b[end] = b'Z';
    b[end + 1] = b'"';
    // ASCII only, so this never fails; an error would be serde's own kind.
    let text = std::str::from_utf8(&b[..end + 2]).map_err(serde::ser::Error::custom)?;
    out.push_str(text);
    Ok(())
}

/// A hash of what identifies an event, so that looking an alert up among a document's
/// events compares one number per event (equal numbers are then checked in full).
fn ident(fingerprint: &str, status: AlertStatus, starts_at: DateTime<Utc>) -> u64 {
    let at = starts_at.timestamp().to_le_bytes();
    let nanos = starts_at.timestamp_subsec_nanos().to_le_bytes();
    fnv1a([
        fingerprint.as_bytes(),
        status.as_str().as_bytes(),
        &at[..],
        &nanos[..],
    ])
}

/// [`record_all`], starting from `cached` when given, which it leaves holding the document
/// as written (or `None` after a failure).
async fn commit(
    store: &dyn StateStore,
    slo_id: &str,
    alerts: &[&Alert],
    now: DateTime<Utc>,
    ttl: Duration,
    cached: &mut Option<Cached>,
) -> Result<Vec<Recorded>, StateError> {
    let key = key(slo_id);
    let horizon = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut last_err = None;
    let mut verify = false;
    for round in 0..CAS_ROUNDS {
        if round > 0 && !verify {
            conflict_backoff(round - 1).await;
        }
        verify = false;
        let known = if round == 0 { cached.take() } else { None };
        *cached = None;
        let from_cache = known.is_some();
        let corrupt = |e: serde_json::Error| StateError::Undecodable {
            key: key.clone(),
            at: None,
            source: Box::new(e),
        };
        let (mut events, expected) = match known {
            Some(c) => (c.events, c.version),
            None => match store.get(&key).await? {
                None => (Events::default(), None),
                Some(v) => match AlertDoc::from_value(v.value) {
                    Ok(doc) => {
                        let mut events = Events::default();
                        for e in doc.events {
                            events.push(Kept::new(e).map_err(corrupt)?);
                        }
                        (events, Some(v.version))
                    }
                    Err(e) => {
                        // Replaced, not fatal: losing the history only risks one extra trigger.
                        tracing::warn!(%key, "dedupe record is unreadable, replacing it: {e}");
                        (Events::default(), Some(v.version))
                    }
                },
            },
        };
        events.received_since(horizon);
        let mut answers = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let fp = fingerprint(alert);
            let id = ident(&fp, alert.status, alert.starts_at);
            if events.contains(id, &fp, alert.status, alert.starts_at) {
                answers.push(Recorded::Duplicate);
                continue;
            }
            answers.push(Recorded::New);
            events.push(
                Kept::new(Event {
                    fingerprint: fp,
                    status: alert.status,
                    starts_at: alert.starts_at,
                    ends_at: alert.ends_at,
                    received_at: now,
                    alertname: cut(alert.labels.get("alertname")),
                    severity: cut(severity(&alert.labels)),
                })
                .map_err(corrupt)?,
            );
        }
        if !answers.contains(&Recorded::New) {
            if from_cache {
                // Nothing to write, so no swap would check the remembered copy: answer
                // "duplicate" only from what the store holds now.
                verify = true;
                continue;
            }
            *cached = Some(Cached {
                version: expected,
                events,
            });
            return Ok(answers);
        }
        events.keep_last(MAX_EVENTS);
        let mut packed =
            String::with_capacity(events.iter().map(|k| k.json.len() + 1).sum::<usize>() + 2);
        packed.push('[');
        for (i, k) in events.iter().enumerate() {
            if i > 0 {
                packed.push(',');
            }
            packed.push_str(&k.json);
        }
        packed.push(']');
        // Built by hand (the fields of `StoredDoc`), so that the text is moved, not copied.
        let mut doc = serde_json::Map::with_capacity(2);
        doc.insert(
            "slo_id".into(),
            serde_json::Value::String(slo_id.to_string()),
        );
        doc.insert("events_json".into(), serde_json::Value::String(packed));
        let value = serde_json::Value::Object(doc);
        match store.put(&key, value, expected).await {
            Ok(version) => {
                *cached = Some(Cached {
                    version: Some(version),
                    events,
                });
                return Ok(answers);
            }
            Err(e @ StateError::Conflict { .. }) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err
        .unwrap_or_else(|| StateError::Backend(format!("{key}: no compare-and-swap round ran"))))
}

/// Told of each group commit's outcome before the requests of the group get their answers.
/// The receiver sends an evaluation trigger per new event from here, in the writer task, so
/// that a request cancelled after its events are stored cannot lose their triggers.
#[async_trait::async_trait]
pub trait AfterCommit: Send + Sync {
    /// `events` pairs each alert of the commit with its answer, in arrival order.
    async fn committed(&self, slo_id: &str, events: &[(&Alert, Recorded)]);
}

/// Does nothing: a batcher whose callers only want the answers.
pub struct NoFollowUp;

#[async_trait::async_trait]
impl AfterCommit for NoFollowUp {
    async fn committed(&self, _: &str, _: &[(&Alert, Recorded)]) {}
}

/// Group commit of [`record_all`] per SLO (see the module docs).
///
/// A request queues its alerts in its SLO's slot; if no writer runs for that SLO it starts
/// one. The writer takes everything queued, records it in one compare-and-swap, tells
/// [`AfterCommit`], answers, and goes on while more is queued, so a burst of N requests
/// costs one task and a few writes, not N of each.
pub struct Batcher {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    after: Arc<dyn AfterCommit>,
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher::new(Arc::new(NoFollowUp))
    }
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Alerts waiting for the next write, with where to send their answers.
    queue: Vec<Pending>,
    /// A writer task runs for this SLO and takes the queue before it stops.
    writing: bool,
    /// The document as last written or read; the running writer holds it meanwhile.
    cached: Option<Cached>,
}

struct Pending {
    alerts: Vec<Alert>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Recorded>, StateError>>,
}

/// A poisoned lock only means a holder panicked; the guarded data is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The answer to alerts handed to a [`Batcher`].
pub struct Ticket {
    answer: tokio::sync::oneshot::Receiver<Result<Vec<Recorded>, StateError>>,
}

impl Ticket {
    /// One answer per alert, in order. Dropping the ticket does not withdraw the alerts:
    /// they are recorded (and followed up) all the same.
    pub async fn answer(self) -> Result<Vec<Recorded>, StateError> {
        self.answer.await.unwrap_or_else(|_| {
            Err(StateError::Backend(
                "the dedupe write task ended without an answer".into(),
            ))
        })
    }
}

/// The role of the writer task of one slot: released when the task ends, however it ends.
/// A writer that panicked drops the requests it had not answered (they get an error) and
/// leaves the slot free for the next request to start a writer.
struct Writing {
    slot: Arc<Slot>,
    cached: Option<Cached>,
    /// Released already, under the slot's lock, when the queue was found empty.
    released: bool,
}

impl Writing {
    /// Give the slot back, under its lock: a request queued after this starts a new writer.
    fn release(&mut self, st: &mut SlotState) {
        st.writing = false;
        st.cached = self.cached.take();
        self.released = true;
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let slot = Arc::clone(&self.slot);
        let mut st = lock(&slot.state);
        self.release(&mut st);
        if std::thread::panicking() {
            st.queue.clear();
        }
    }
}

impl Batcher {
    pub fn new(after: Arc<dyn AfterCommit>) -> Self {
        Batcher {
            slots: Mutex::new(HashMap::new()),
            after,
        }
    }

    /// [`record_all`] of `alerts`, written together with the alerts of any other request
    /// for the same SLO that is waiting at the same time.
    pub async fn record_all(
        &self,
        store: &Arc<dyn StateStore>,
        slo_id: &str,
        alerts: Vec<Alert>,
        ttl: Duration,
    ) -> Result<Vec<Recorded>, StateError> {
        self.submit(store, slo_id, alerts, ttl).answer().await
    }

    /// Queue `alerts` (all of SLO `slo_id`) for the SLO's next write, starting its writer
    /// when none runs. From here on they are recorded even if the ticket is dropped.
    pub fn submit(
        &self,
        store: &Arc<dyn StateStore>,
        slo_id: &str,
        alerts: Vec<Alert>,
        ttl: Duration,
    ) -> Ticket {
        let slot = {
            let mut slots = lock(&self.slots);
            match slots.get(slo_id) {
                Some(s) => s.clone(),
                None => slots.entry(slo_id.to_string()).or_default().clone(),
            }
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut st = lock(&slot.state);
            st.queue.push(Pending { alerts, reply });
            !std::mem::replace(&mut st.writing, true)
        };
        if start {
            let writer = Writer {
                store: Arc::clone(store),
                after: Arc::clone(&self.after),
                slo: slo_id.to_string(),
                ttl,
            };
            tokio::spawn(writer.run(slot));
        }
        Ticket { answer }
    }
}

/// The writer task of one SLO's slot.
struct Writer {
    store: Arc<dyn StateStore>,
    after: Arc<dyn AfterCommit>,
    slo: String,
    ttl: Duration,
}

impl Writer {
    async fn run(self, slot: Arc<Slot>) {
        let cached = lock(&slot.state).cached.take();
        let mut role = Writing {
            slot,
            cached,
            released: false,
        };
        loop {
            // Give the requests that are ready on this thread a turn to queue their alerts
            // first: they then join this write instead of each making its own. (Without
            // it, a flood on loopback made about one write per request; with it, one per
            // twelve.)
            tokio::task::yield_now().await;
            let batch = {
                let slot = Arc::clone(&role.slot);
                let mut st = lock(&slot.state);
                if st.queue.is_empty() {
                    role.release(&mut st);
                    return;
                }
                std::mem::take(&mut st.queue)
            };
            let all: Vec<&Alert> = batch.iter().flat_map(|p| p.alerts.iter()).collect();
            // One error answers every request of the batch: each gets it as its source.
            let result = commit(
                self.store.as_ref(),
                &self.slo,
                &all,
                Utc::now(),
                self.ttl,
                &mut role.cached,
            )
            .await
            .map_err(Arc::new);
            if let Ok(answers) = &result {
                let events: Vec<(&Alert, Recorded)> =
                    all.iter().copied().zip(answers.iter().copied()).collect();
                self.after.committed(&self.slo, &events).await;
            }
            let mut at = 0;
            for p in batch {
                let n = p.alerts.len();
                let mine = match &result {
                    Ok(answers) => Ok(answers[at..at + n].to_vec()),
                    Err(e) => Err(StateError::Api {
                        source: Box::new(Arc::clone(e)),
                    }),
                };
                at += n;
                // The requester may be gone; its answer is then not needed.
                let _ = p.reply.send(mine);
            }
        }
    }
}

/// Sloth's `sloth_severity` (`page`/`ticket`), else the common `severity` label.
pub fn severity(labels: &Labels) -> Option<&str> {
    labels
        .get("sloth_severity")
        .or_else(|| labels.get("severity"))
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

    /// The ident index answers as a scan of the events would, through pushes, expiry and
    /// trimming, with idents that collide (forced here: one ident for several events).
    #[test]
    fn the_ident_index_answers_as_a_scan() {
        use chrono::TimeZone;
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let at = |m: u64| Utc.timestamp_opt(1_700_000_000 + 60 * m as i64, 0).unwrap();
        let event = |fp: u64, firing: bool, start: u64, received: u64| Event {
            fingerprint: format!("{fp:016x}"),
            status: if firing {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            starts_at: at(start),
            ends_at: None,
            received_at: at(received),
            alertname: None,
            severity: None,
        };
        let mut events = Events::default();
        for round in 0..3_000u64 {
            let e = event(next(12), next(2) == 0, next(4), round);
            let mut k = Kept::new(e.clone()).unwrap();
            // Half the events share one of three idents whatever their fields.
            if next(2) == 0 {
                k.ident = next(3);
            }
            let id = k.ident;
            let scanned = events
                .iter()
                .any(|x| x.is(id, &e.fingerprint, e.status, e.starts_at));
            assert_eq!(
                events.contains(id, &e.fingerprint, e.status, e.starts_at),
                scanned,
                "round {round}"
            );
            if !scanned {
                events.push(k);
            }
            match next(10) {
                0 => events.received_since(at(round.saturating_sub(next(40)))),
                1 => events.keep_last(next(30) as usize),
                _ => events.keep_last(MAX_EVENTS),
            }
            // The counts are those of the kept events.
            let mut counted: HashMap<u64, u32> = HashMap::new();
            for k in events.iter() {
                *counted.entry(k.ident).or_insert(0) += 1;
            }
            assert_eq!(counted, events.idents, "round {round}");
        }
    }

    /// The hand-written event text is serde's, over random times (fractions of 0, 3, 6 and
    /// 9 digits, years outside 0-9999, leap seconds) and strings that need escaping.
    #[test]
    fn event_text_is_serdes() {
        use chrono::{NaiveDate, TimeZone};
        let mut seed: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let strings = [
            "",
            "a",
            "bdef0648ce50a622",
            "\"",
            "\\",
            "\n\t",
            "\u{1}",
            "\u{7f}",
            "é",
            "€𝄞",
            "a\"b\\c\u{1f}d",
        ];
        let time = |next: &mut dyn FnMut(u64) -> u64| {
            let year = match next(4) {
                0 => next(10_000) as i32,
                1 => -(next(5000) as i32),
                2 => 10_000 + next(200_000) as i32,
                _ => 1970 + next(100) as i32,
            };
            let nanos = match next(5) {
                0 => 0,
                1 => next(1000) as u32 * 1_000_000,
                2 => next(1_000_000) as u32 * 1_000,
                3 => next(1_000_000_000) as u32,
                _ => 1_000_000_000 + next(1_000_000_000) as u32,
            };
            let date =
                NaiveDate::from_ymd_opt(year, 1 + next(12) as u32, 1 + next(28) as u32).unwrap();
            let naive = if nanos >= 1_000_000_000 {
                date.and_hms_nano_opt(23, 59, 59, nanos)
            } else {
                date.and_hms_nano_opt(next(24) as u32, next(60) as u32, next(60) as u32, nanos)
            };
            Utc.from_utc_datetime(&naive.unwrap())
        };
        for _ in 0..20_000 {
            let pick = |next: &mut dyn FnMut(u64) -> u64| match next(3) {
                0 => None,
                _ => Some(strings[next(strings.len() as u64) as usize].to_string()),
            };
            let e = Event {
                fingerprint: strings[next(strings.len() as u64) as usize].to_string(),
                status: if next(2) == 0 {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                },
                starts_at: time(&mut next),
                ends_at: if next(2) == 0 {
                    None
                } else {
                    Some(time(&mut next))
                },
                received_at: time(&mut next),
                alertname: pick(&mut next),
                severity: pick(&mut next),
            };
            assert_eq!(event_json(&e).unwrap(), serde_json::to_string(&e).unwrap());
        }
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

    /// The events are stored as one JSON text; a document of the previous form (`events`
    /// as a JSON array) is still read, so an event it holds stays a duplicate.
    #[tokio::test]
    async fn events_are_stored_as_one_text_and_the_previous_form_is_read() {
        let s = MemoryStore::new();
        let ttl = Duration::from_secs(3600);
        let now = Utc::now();
        let a = alert();
        assert_eq!(record(&s, &a, "x", now, ttl).await.unwrap(), Recorded::New);
        let stored = s.get("webhook/slo-alerts/x").await.unwrap().unwrap().value;
        assert!(stored.get("events").is_none(), "{stored}");
        let text = stored["events_json"].as_str().expect("one JSON text");
        let events: Vec<Event> = serde_json::from_str(text).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].fingerprint, "bdef0648ce50a622");
        assert_eq!(AlertDoc::from_value(stored).unwrap().events, events);

        // The previous form, written by an older replica.
        let old = MemoryStore::new();
        let previous = serde_json::json!({"slo_id": "x", "events": events});
        old.put("webhook/slo-alerts/x", previous, None)
            .await
            .unwrap();
        assert_eq!(
            record(&old, &a, "x", now, ttl).await.unwrap(),
            Recorded::Duplicate
        );
        let mut again = a.clone();
        again.starts_at += chrono::Duration::minutes(10);
        assert_eq!(
            record(&old, &again, "x", now, ttl).await.unwrap(),
            Recorded::New
        );
        let doc = AlertDoc::from_value(
            old.get("webhook/slo-alerts/x")
                .await
                .unwrap()
                .unwrap()
                .value,
        )
        .unwrap();
        assert_eq!(doc.events.len(), 2, "the old event is kept: {doc:?}");
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
        let doc: AlertDoc =
            AlertDoc::from_value(s.get("webhook/slo-alerts/x").await.unwrap().unwrap().value)
                .unwrap();
        assert_eq!(doc.events.len(), 1, "expired events are pruned: {doc:?}");
        assert_eq!(doc.events[0].fingerprint, "bdef0648ce50a622");
        assert_eq!(doc.events[0].severity.as_deref(), Some("page"));
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
        let v = s.inner.get("webhook/slo-alerts/x").await.unwrap().unwrap();
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
        let doc: AlertDoc =
            AlertDoc::from_value(s.get("webhook/slo-alerts/x").await.unwrap().unwrap().value)
                .unwrap();
        assert_eq!(doc.events.len(), MAX_EVENTS);
    }

    /// 2,000 distinct fingerprints with a 1 MB alert name, in one request, for one SLO: one
    /// document, bounded in events and in size; every alert still counts as new once.
    #[tokio::test]
    async fn a_fingerprint_flood_makes_one_bounded_document() {
        let s = MemoryStore::new();
        let now = Utc::now();
        let huge = "A".repeat(1024 * 1024);
        let alerts: Vec<Alert> = (0..2000)
            .map(|i| {
                let mut a = alert();
                a.fingerprint = None;
                a.labels.insert("instance", &format!("i-{i}"));
                if i == 1999 {
                    a.labels.insert("alertname", &huge);
                }
                a
            })
            .collect();
        let refs: Vec<&Alert> = alerts.iter().collect();
        let r = record_all(
            &s,
            "checkout-availability",
            &refs,
            now,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        assert_eq!(r.len(), 2000);
        assert!(r.iter().all(|x| *x == Recorded::New));
        let keys = s.list("webhook/").await.unwrap();
        assert_eq!(keys, ["webhook/slo-alerts/checkout-availability"]);
        let v = s.get(&keys[0]).await.unwrap().unwrap().value;
        let size = serde_json::to_vec(&v).unwrap().len();
        assert!(size < 128 * 1024, "document of {size} bytes");
        let doc = AlertDoc::from_value(v).unwrap();
        assert_eq!(doc.events.len(), MAX_EVENTS);
        assert_eq!(
            doc.events
                .last()
                .unwrap()
                .alertname
                .as_ref()
                .map(|n| n.len()),
            Some(MAX_LABEL_CHARS)
        );
        // The same request again: the kept events are duplicates, the pushed-out ones new.
        let again = record_all(
            &s,
            "checkout-availability",
            &refs,
            now,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        let dup = again.iter().filter(|x| **x == Recorded::Duplicate).count();
        assert!(dup > 0, "the most recent events are remembered");
    }

    #[test]
    fn slo_keys_are_valid_whatever_the_id() {
        assert_eq!(
            key("checkout-availability"),
            "webhook/slo-alerts/checkout-availability"
        );
        for odd in ["a/b", "..", "x y", &"s".repeat(100)] {
            let k = key(odd);
            assert!(crate::ports::state::validate_key(&k).is_ok(), "{k}");
            assert_ne!(k, key("other"));
        }
    }

    /// Counts reads (one per compare-and-swap round) and holds each read for a moment, so
    /// that concurrent requests pile up behind the write in flight.
    struct SlowReads(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl AfterGet for SlowReads {
        async fn after_get(&self, _: &MemoryStore, _: &str, _: Option<&Versioned>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_group_committed_with_the_same_answers() {
        let hooked = Arc::new(Hooked::new(SlowReads(Default::default())));
        let store: Arc<dyn StateStore> = hooked.clone();
        let batcher = Arc::new(Batcher::default());
        let ttl = Duration::from_secs(3600);
        // 40 distinct events at once: every one is new, all are stored, in few writes.
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (store, batcher) = (store.clone(), batcher.clone());
            tasks.push(tokio::spawn(async move {
                let mut a = alert();
                a.fingerprint = Some(format!("{i:016x}"));
                batcher.record_all(&store, "slo-a", vec![a], ttl).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), vec![Recorded::New]);
        }
        let doc: AlertDoc =
            AlertDoc::from_value(store.get(&key("slo-a")).await.unwrap().unwrap().value).unwrap();
        assert_eq!(doc.events.len(), 40);
        let rounds = hooked.hook.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            rounds < 40,
            "{rounds} compare-and-swap rounds for 40 requests"
        );
        // The same event delivered 20 times at once: exactly one is new.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, batcher) = (store.clone(), batcher.clone());
            tasks.push(tokio::spawn(async move {
                batcher
                    .record_all(&store, "slo-b", vec![alert()], ttl)
                    .await
            }));
        }
        let mut new = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() == vec![Recorded::New] {
                new += 1;
            }
        }
        assert_eq!(new, 1);
    }

    /// The batcher's remembered document never hides another writer's change: the
    /// compare-and-swap refuses the stale version and the next round reads the store.
    #[tokio::test]
    async fn the_remembered_document_yields_to_other_writers() {
        let mem = Arc::new(MemoryStore::new());
        let store: Arc<dyn StateStore> = mem.clone();
        let batcher = Batcher::default();
        let ttl = Duration::from_secs(3600);
        let a = alert();
        let mut b = alert();
        b.fingerprint = Some("00000000000000bb".into());
        assert_eq!(
            batcher
                .record_all(&store, "x", vec![a.clone()], ttl)
                .await
                .unwrap(),
            vec![Recorded::New]
        );
        // Another replica records b directly in the store.
        assert_eq!(
            record(store.as_ref(), &b, "x", Utc::now(), ttl)
                .await
                .unwrap(),
            Recorded::New
        );
        // b through the batcher: its stale copy lacks b, the swap fails, the re-read finds it.
        let mut c = alert();
        c.fingerprint = Some("00000000000000cc".into());
        assert_eq!(
            batcher
                .record_all(&store, "x", vec![b, c], ttl)
                .await
                .unwrap(),
            vec![Recorded::Duplicate, Recorded::New]
        );
        // The sweep deletes the document: a is new again, not a duplicate of a lost record.
        let v = store.get(&key("x")).await.unwrap().unwrap().version;
        store.delete(&key("x"), v).await.unwrap();
        assert_eq!(
            batcher
                .record_all(&store, "x", vec![a.clone()], ttl)
                .await
                .unwrap(),
            vec![Recorded::New]
        );
    }

    /// Panics on the first read only.
    struct PanicOnce(std::sync::atomic::AtomicBool);

    #[async_trait::async_trait]
    impl AfterGet for PanicOnce {
        async fn after_get(&self, _: &MemoryStore, _: &str, _: Option<&Versioned>) {
            if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                panic!("injected: the writer task dies mid-write");
            }
        }
    }

    /// A writer task that dies answers its requests with an error and leaves the SLO's slot
    /// free: the next request starts a new writer instead of waiting for ever.
    #[tokio::test]
    async fn a_writer_that_panics_fails_its_requests_and_frees_the_slot() {
        let store: Arc<dyn StateStore> = Arc::new(Hooked::new(PanicOnce(Default::default())));
        let batcher = Batcher::default();
        let ttl = Duration::from_secs(3600);
        let first = batcher.record_all(&store, "x", vec![alert()], ttl).await;
        assert!(first.is_err(), "{first:?}");
        let second = tokio::time::timeout(
            Duration::from_secs(5),
            batcher.record_all(&store, "x", vec![alert()], ttl),
        )
        .await
        .expect("a new writer answers");
        assert_eq!(second.unwrap(), vec![Recorded::New]);
    }
}
