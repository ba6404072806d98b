//! An in-memory [`StateStore`]: nothing survives the process. For tests and one-shot runs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::state::{
    validate_key, DecisionQuery, DecisionRecord, StateError, StateStore, Versioned,
};

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    docs: BTreeMap<String, Versioned>,
    log: Vec<DecisionRecord>,
    /// The highest version ever deleted: a document created after it starts above it, so a
    /// writer holding a version of a deleted document can never match its successor.
    deleted_high_water: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-operation; every
        // operation below leaves the maps consistent, so the data is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keep the last `limit` records of `records` (all when `None`).
pub(crate) fn take_last<T>(mut records: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        if records.len() > n {
            records.drain(..records.len() - n);
        }
    }
    records
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        validate_key(key)?;
        Ok(self.lock().docs.get(key).cloned())
    }

    async fn put(
        &self,
        key: &str,
        value: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        validate_key(key)?;
        let mut inner = self.lock();
        let found = inner.docs.get(key).map(|v| v.version);
        if found != expected {
            return Err(StateError::Conflict {
                key: key.to_string(),
                expected,
                found,
            });
        }
        let version = found.unwrap_or(inner.deleted_high_water) + 1;
        inner
            .docs
            .insert(key.to_string(), Versioned { version, value });
        Ok(version)
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        validate_key(key)?;
        let mut inner = self.lock();
        let found = inner.docs.get(key).map(|v| v.version);
        if found != Some(expected) {
            return Err(StateError::Conflict {
                key: key.to_string(),
                expected: Some(expected),
                found,
            });
        }
        inner.docs.remove(key);
        inner.deleted_high_water = inner.deleted_high_water.max(expected);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        Ok(self
            .lock()
            .docs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError> {
        self.lock().log.push(record.clone());
        Ok(())
    }

    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        let found: Vec<_> = self
            .lock()
            .log
            .iter()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        Ok(take_last(found, query.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn compare_and_swap_detects_concurrent_writes() {
        let s = MemoryStore::new();
        assert_eq!(
            s.put("guard/checkout", json!({"a": 1}), None)
                .await
                .unwrap(),
            1
        );
        // A second creator loses.
        let err = s
            .put("guard/checkout", json!({"a": 2}), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::Conflict { found: Some(1), .. }));
        assert_eq!(
            s.put("guard/checkout", json!({"a": 3}), Some(1))
                .await
                .unwrap(),
            2
        );
        let got = s.get("guard/checkout").await.unwrap().unwrap();
        assert_eq!((got.version, got.value), (2, json!({"a": 3})));
        assert!(s.put("../x", json!(1), None).await.is_err());
    }

    #[tokio::test]
    async fn delete_is_a_compare_and_swap() {
        crate::adapters::state::testing::delete_is_a_compare_and_swap(&MemoryStore::new()).await;
    }
}
