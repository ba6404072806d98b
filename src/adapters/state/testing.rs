//! Test helpers shared by the stores' and their users' unit tests.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::MemoryStore;
use crate::ports::state::{DecisionQuery, DecisionRecord, StateError, StateStore, Versioned};

/// The port's `delete` contract, checked on an empty store.
pub async fn delete_is_a_compare_and_swap(s: &dyn StateStore) {
    let v1 = s.put("a/b", json!(1), None).await.unwrap();
    let v2 = s.put("a/b", json!(2), Some(v1)).await.unwrap();
    // A stale version: refused, the document is kept.
    let e = s.delete("a/b", v1).await.unwrap_err();
    assert!(
        matches!(e, StateError::Conflict { expected: Some(x), found: Some(y), .. } if x == v1 && y == v2),
        "{e:?}"
    );
    assert_eq!(s.get("a/b").await.unwrap().unwrap().value, json!(2));
    s.delete("a/b", v2).await.unwrap();
    assert!(s.get("a/b").await.unwrap().is_none());
    assert!(s.list("a/").await.unwrap().is_empty());
    // Gone: a conflict with nothing found.
    let e = s.delete("a/b", v2).await.unwrap_err();
    assert!(
        matches!(e, StateError::Conflict { found: None, .. }),
        "{e:?}"
    );
    // A stale writer that read it before the delete cannot bring it back.
    let e = s.put("a/b", json!(3), Some(v2)).await.unwrap_err();
    assert!(
        matches!(e, StateError::Conflict { found: None, .. }),
        "{e:?}"
    );
    // Nor overwrite a document created in its place: versions of a key never repeat, even
    // across a delete (no ABA).
    let v3 = s.put("a/b", json!("new"), None).await.unwrap();
    assert!(v3 > v2, "{v3} after {v2}");
    for stale in [v1, v2] {
        let e = s.put("a/b", json!("lost"), Some(stale)).await.unwrap_err();
        assert!(
            matches!(e, StateError::Conflict { found: Some(y), .. } if y == v3),
            "{e:?}"
        );
        let e = s.delete("a/b", stale).await.unwrap_err();
        assert!(matches!(e, StateError::Conflict { .. }), "{e:?}");
    }
    assert_eq!(s.get("a/b").await.unwrap().unwrap().value, json!("new"));
    s.delete("a/b", v3).await.unwrap();
    assert!(matches!(
        s.delete("../x", 1).await.unwrap_err(),
        StateError::InvalidKey(_)
    ));
}

/// What [`Hooked`] does right after each read.
#[async_trait]
pub trait AfterGet: Send + Sync {
    async fn after_get(&self, store: &MemoryStore, key: &str, read: Option<&Versioned>);
}

/// A memory store that runs a hook after every read: to interleave another writer (or a
/// yield) between a read and the write or delete that depends on it.
pub struct Hooked<H> {
    pub inner: MemoryStore,
    pub hook: H,
}

impl<H> Hooked<H> {
    pub fn new(hook: H) -> Self {
        Hooked {
            inner: MemoryStore::new(),
            hook,
        }
    }
}

#[async_trait]
impl<H: AfterGet> StateStore for Hooked<H> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        let read = self.inner.get(key).await?;
        self.hook.after_get(&self.inner, key, read.as_ref()).await;
        Ok(read)
    }
    async fn put(&self, key: &str, value: Value, expected: Option<u64>) -> Result<u64, StateError> {
        self.inner.put(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        self.inner.delete(key, expected).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.inner.list(prefix).await
    }
    async fn append_decision(&self, r: &DecisionRecord) -> Result<(), StateError> {
        self.inner.append_decision(r).await
    }
    async fn decisions(&self, q: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        self.inner.decisions(q).await
    }
}
