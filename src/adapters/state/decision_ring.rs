//! A decision log shared by every replica, kept in the documents of a [`StateStore`] (the
//! ConfigMap store's, so every pod appends to and reads the same log).
//!
//! An append-only log does not fit documents with a size cap (1 MiB per ConfigMap) and no
//! delete, so it is a **ring of chunks**: [`SLOTS`] documents `decisions/00` …
//! `decisions/15`, each holding one chunk `{chunk: n, records: [...]}` of at most
//! [`CHUNK_RECORDS`] records and [`CHUNK_BYTES`] of JSON. Chunk `n` lives in slot
//! `n % SLOTS`; when a chunk is full the next one overwrites the oldest slot. The shared log
//! therefore keeps the most recent `SLOTS × CHUNK_RECORDS` (1,600) decisions at least
//! ([`SharedDecisionLog::capacity`]); each pod's file log keeps everything it wrote itself.
//!
//! # Appending
//!
//! Every write is a compare-and-swap on the slot document's version, so concurrent appends
//! from several replicas never lose a record: the loser re-reads and tries again. A writer
//! remembers the chunk it last wrote to; one that finds a later chunk in the slot jumps to
//! it, one that finds an older chunk (the ring wrapped) starts the new chunk there. An
//! append retried after an error is not duplicated: a record whose `id` is already in the
//! chunk counts as written.
//!
//! # Reading
//!
//! Every slot is read, records are merged by id and ordered by time (then id), and the
//! query's filters and limit apply. An unreadable slot is skipped with a warning: one
//! corrupt document must not hide the rest of the log.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::conflict_backoff;
use crate::ports::state::{DecisionQuery, DecisionRecord, StateError, StateStore};

/// Documents in the ring.
pub const SLOTS: u64 = 16;
/// Most records in one chunk.
pub const CHUNK_RECORDS: usize = 100;
/// Most bytes of JSON in one chunk (a ConfigMap holds at most 1 MiB).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Key prefix of the ring's documents.
pub const PREFIX: &str = "decisions/";

/// Compare-and-swap rounds before an append gives up (each lost round means another
/// replica appended meanwhile).
const ROUNDS: usize = 64;

/// One slot's document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Chunk {
    chunk: u64,
    records: Vec<DecisionRecord>,
}

/// The key of a slot.
pub fn slot_key(slot: u64) -> String {
    format!("{PREFIX}{slot:02}")
}

/// The ring; it holds only which chunk this writer last used.
#[derive(Debug, Default)]
pub struct SharedDecisionLog {
    /// The chunk last written or seen as the newest; `None` until the first append.
    current: Mutex<Option<u64>>,
}

impl SharedDecisionLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records the ring is sure to keep.
    pub fn capacity() -> usize {
        // SLOTS is a small constant; the conversion cannot truncate.
        SLOTS as usize * CHUNK_RECORDS
    }

    fn hint(&self) -> Option<u64> {
        // A poisoned lock only means a panic elsewhere; the u64 inside is always valid.
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_hint(&self, chunk: u64) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(chunk);
    }

    /// Read one slot: its chunk (unreadable: `None`) and version.
    async fn read_slot(
        store: &dyn StateStore,
        slot: u64,
    ) -> Result<Option<(Option<Chunk>, u64)>, StateError> {
        let key = slot_key(slot);
        Ok(store.get(&key).await?.map(|v| {
            let chunk = serde_json::from_value::<Chunk>(v.value)
                .map_err(|e| {
                    tracing::warn!(%key, "unreadable decision log chunk, treated as empty: {e}");
                })
                .ok();
            (chunk, v.version)
        }))
    }

    /// The newest chunk number in the ring (0 when it is empty).
    async fn newest(store: &dyn StateStore) -> Result<u64, StateError> {
        let mut newest = 0;
        for slot in 0..SLOTS {
            if let Some((Some(c), _)) = Self::read_slot(store, slot).await? {
                newest = newest.max(c.chunk);
            }
        }
        Ok(newest)
    }

    /// Append `record` to the shared log in `store`.
    pub async fn append(
        &self,
        store: &dyn StateStore,
        record: &DecisionRecord,
    ) -> Result<(), StateError> {
        let mut chunk = match self.hint() {
            Some(c) => c,
            None => Self::newest(store).await?,
        };
        let mut last = None;
        let mut conflicts = 0;
        for _ in 0..ROUNDS {
            let slot = chunk % SLOTS;
            let (mut doc, expected) = match Self::read_slot(store, slot).await? {
                None => (
                    Chunk {
                        chunk,
                        records: Vec::new(),
                    },
                    None,
                ),
                Some((Some(c), _)) if c.chunk > chunk => {
                    // Others moved on: follow them.
                    chunk = c.chunk;
                    continue;
                }
                Some((Some(c), v)) if c.chunk == chunk => (c, Some(v)),
                // An older chunk (the ring wrapped) or an unreadable one: start this chunk.
                Some((_, v)) => (
                    Chunk {
                        chunk,
                        records: Vec::new(),
                    },
                    Some(v),
                ),
            };
            if doc.records.iter().any(|r| r.id == record.id) {
                self.set_hint(chunk);
                return Ok(());
            }
            doc.records.push(record.clone());
            let value = serde_json::to_value(&doc).map_err(|e| StateError::Undecodable {
                key: slot_key(slot),
                at: None,
                source: Box::new(e),
            })?;
            let full = doc.records.len() > CHUNK_RECORDS
                || (doc.records.len() > 1 && value.to_string().len() > CHUNK_BYTES);
            if full {
                chunk += 1;
                continue;
            }
            match store.put(&slot_key(slot), value, expected).await {
                Ok(_) => {
                    self.set_hint(chunk);
                    return Ok(());
                }
                Err(e @ StateError::Conflict { .. }) => {
                    last = Some(e);
                    conflict_backoff(conflicts).await;
                    conflicts += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            StateError::Backend(format!(
                "{PREFIX}: no room found for decision {} after {ROUNDS} rounds",
                record.id
            ))
        }))
    }

    /// Every record in the ring, oldest first, merged with `also` (by id), filtered and
    /// limited as `query` says.
    pub async fn read(
        store: &dyn StateStore,
        query: &DecisionQuery,
        also: Vec<DecisionRecord>,
    ) -> Result<Vec<DecisionRecord>, StateError> {
        let mut by_id: BTreeMap<String, DecisionRecord> = BTreeMap::new();
        for slot in 0..SLOTS {
            if let Some((Some(c), _)) = Self::read_slot(store, slot).await? {
                for r in c.records {
                    by_id.insert(r.id.clone(), r);
                }
            }
        }
        for r in also {
            by_id.insert(r.id.clone(), r);
        }
        let mut out: Vec<DecisionRecord> =
            by_id.into_values().filter(|r| query.matches(r)).collect();
        out.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(super::memory::take_last(out, query.limit))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::adapters::state::MemoryStore;
    use crate::ports::state::DecisionKind;

    fn record(i: i64, subject: &str) -> DecisionRecord {
        let mut r = DecisionRecord::new(
            Utc.timestamp_opt(1_800_000_000 + i, 0).unwrap(),
            DecisionKind::Rollout,
            subject,
            "schedule",
            "step",
            format!("decision {i}"),
        );
        r.id = format!("r{i:06}");
        r
    }

    async fn all(store: &MemoryStore) -> Vec<DecisionRecord> {
        SharedDecisionLog::read(store, &DecisionQuery::default(), Vec::new())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn appends_fill_chunks_in_order_and_reads_merge_them() {
        let store = MemoryStore::new();
        let log = SharedDecisionLog::new();
        let n = CHUNK_RECORDS as i64 * 2 + 5;
        for i in 0..n {
            log.append(&store, &record(i, "shop/checkout"))
                .await
                .unwrap();
        }
        let got = all(&store).await;
        assert_eq!(got.len(), n as usize);
        assert!(got.windows(2).all(|w| w[0].time < w[1].time));
        // Three chunks in slots 00, 01, 02.
        assert_eq!(
            store.list(PREFIX).await.unwrap(),
            vec!["decisions/00", "decisions/01", "decisions/02"]
        );
        // Filters and limit, oldest first.
        let q = DecisionQuery {
            limit: Some(3),
            ..DecisionQuery::default()
        };
        let last = SharedDecisionLog::read(&store, &q, Vec::new())
            .await
            .unwrap();
        let ids: Vec<&str> = last.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["r000202", "r000203", "r000204"]);
        // A retried append (same id) is not written twice.
        log.append(&store, &record(n - 1, "shop/checkout"))
            .await
            .unwrap();
        assert_eq!(all(&store).await.len(), n as usize);
    }

    #[tokio::test]
    async fn the_ring_wraps_dropping_the_oldest_chunk_only() {
        let store = MemoryStore::new();
        let log = SharedDecisionLog::new();
        let n = SharedDecisionLog::capacity() as i64 + CHUNK_RECORDS as i64 + 1;
        for i in 0..n {
            log.append(&store, &record(i, "a")).await.unwrap();
        }
        let got = all(&store).await;
        // Chunks 0..=16 filled up and chunk 17 holds one record: chunk 16 overwrote slot 0
        // (chunk 0) and chunk 17 slot 1 (chunk 1). Chunks 2..=17 survive.
        assert_eq!(store.list(PREFIX).await.unwrap().len(), SLOTS as usize);
        assert_eq!(got.last().unwrap().id, format!("r{:06}", n - 1));
        // Everything from the oldest surviving chunk on is there, with no gap.
        let first: i64 = got[0].id[1..].parse().unwrap();
        assert_eq!(got.len() as i64, n - first);
        assert!(got.len() >= SharedDecisionLog::capacity() - CHUNK_RECORDS);
    }

    /// Two replicas (two logs, one store) appending at once lose nothing and write nothing
    /// twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_replicas_lose_no_record() {
        let store = Arc::new(MemoryStore::new());
        let mut tasks = Vec::new();
        for replica in 0..2 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let log = SharedDecisionLog::new();
                for i in 0..150 {
                    let r = record(replica * 1000 + i, &format!("replica-{replica}"));
                    log.append(store.as_ref(), &r).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let got = all(&store).await;
        assert_eq!(got.len(), 300);
        for replica in 0..2 {
            let q = DecisionQuery {
                subject: Some(format!("replica-{replica}")),
                ..DecisionQuery::default()
            };
            let mine = SharedDecisionLog::read(store.as_ref(), &q, Vec::new())
                .await
                .unwrap();
            assert_eq!(mine.len(), 150);
        }
    }

    /// A writer that last wrote long ago (its chunk since overwritten) and one that never
    /// wrote both find the newest chunk.
    #[tokio::test]
    async fn stale_and_new_writers_find_the_newest_chunk() {
        let store = MemoryStore::new();
        let (busy, idle) = (SharedDecisionLog::new(), SharedDecisionLog::new());
        idle.append(&store, &record(0, "idle")).await.unwrap();
        let n = SharedDecisionLog::capacity() as i64 + 3;
        for i in 1..=n {
            busy.append(&store, &record(i, "busy")).await.unwrap();
        }
        idle.append(&store, &record(n + 1, "idle")).await.unwrap();
        SharedDecisionLog::new()
            .append(&store, &record(n + 2, "new"))
            .await
            .unwrap();
        let got = all(&store).await;
        let tail: Vec<&str> = got[got.len() - 3..].iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            tail,
            vec![
                format!("r{n:06}").as_str(),
                format!("r{:06}", n + 1).as_str(),
                format!("r{:06}", n + 2).as_str()
            ]
        );
    }

    #[tokio::test]
    async fn big_records_start_a_new_chunk_early_and_corrupt_slots_are_skipped() {
        let store = MemoryStore::new();
        let log = SharedDecisionLog::new();
        for i in 0..4 {
            let mut r = record(i, "big");
            r.observed = serde_json::json!({"blob": "x".repeat(CHUNK_BYTES / 3)});
            log.append(&store, &r).await.unwrap();
        }
        assert_eq!(all(&store).await.len(), 4);
        assert!(store.list(PREFIX).await.unwrap().len() >= 2);
        // A slot holding something else is skipped when reading…
        store
            .put(&slot_key(9), serde_json::json!({"not": "a chunk"}), None)
            .await
            .unwrap();
        assert_eq!(all(&store).await.len(), 4);
        // …and merged records from elsewhere (the pod's own log) appear once.
        let also = vec![record(0, "big"), record(99, "local")];
        let got = SharedDecisionLog::read(&store, &DecisionQuery::default(), also)
            .await
            .unwrap();
        assert_eq!(got.len(), 5);
    }
}
