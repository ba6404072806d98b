//! Decision records that survive a crash between storing a state and writing them.
//!
//! The guard and the rollout controller store their next state *before* applying its
//! effects, and the decision records are among those effects. Written only after the
//! state, they were lost when the process died in between (found by
//! `tests/crash_injection.rs`: killed right after the state was stored, the restarted
//! process saw nothing left to decide and never wrote them).
//!
//! So the records of a decision are first staged in an outbox document
//! (`outbox/<state key>`) that names the version of the state they were decided on; then
//! the state is stored (compare-and-swap), the effects applied (the records written), and
//! the outbox deleted. The next run for the same state key first [`Outbox::flush`]es a
//! left-over outbox: if the state's version moved on, the decision was stored and its
//! records are written now; if it did not, the state was never stored and the records are
//! dropped. A crash after some records were written writes them again: records are
//! written at least once, never lost.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ports::state::{DecisionRecord, StateError, StateStore};
use crate::runtime::effects::{Executor, Stored};

/// The outbox of one state document.
pub struct Outbox {
    store: Arc<dyn StateStore>,
    key: String,
}

#[derive(Serialize, Deserialize)]
struct Staged {
    /// The version of the state the records were decided on (none: no state yet).
    before: Option<u64>,
    records: Vec<DecisionRecord>,
}

impl Outbox {
    /// The outbox of the state document `state_key`.
    pub fn new(store: Arc<dyn StateStore>, state_key: &str) -> Self {
        Outbox {
            store,
            key: format!("outbox/{state_key}"),
        }
    }

    /// Stage `records`, decided on the state at version `before`, replacing what is
    /// staged. Nothing to stage: nothing written.
    pub async fn stage(
        &self,
        before: Option<u64>,
        records: Vec<DecisionRecord>,
    ) -> Result<bool, StateError> {
        if records.is_empty() {
            return Ok(false);
        }
        let value = serde_json::to_value(Staged { before, records }).map_err(|e| {
            StateError::Undecodable {
                key: self.key.clone(),
                at: None,
                source: Box::new(e),
            }
        })?;
        let current = self.store.get(&self.key).await?.map(|v| v.version);
        self.store.put(&self.key, value, current).await?;
        Ok(true)
    }

    /// The records are written: drop the outbox.
    pub async fn clear(&self) -> Result<(), StateError> {
        if let Some(v) = self.store.get(&self.key).await? {
            match self.store.delete(&self.key, v.version).await {
                Ok(()) | Err(StateError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Before a run on the state whose version is now `current`: write the records a
    /// crashed run staged for a state it did store, and drop the outbox.
    pub async fn flush(&self, stored: &Stored, exec: &Executor) -> Result<(), StateError> {
        let current = stored.version();
        let Some(staged) = self.store.get(&self.key).await? else {
            return Ok(());
        };
        match serde_json::from_value::<Staged>(staged.value) {
            Ok(s) if s.before != current => {
                tracing::warn!(key = %self.key, records = s.records.len(), "writing the decision records of a run that stopped after storing its state");
                for r in &s.records {
                    exec.record(stored, r).await;
                }
            }
            Ok(_) => {
                tracing::info!(key = %self.key, "dropping the decision records of a run that stopped before storing its state");
            }
            Err(e) => tracing::warn!(key = %self.key, "dropping an unreadable outbox: {e}"),
        }
        match self.store.delete(&self.key, staged.version).await {
            Ok(()) | Err(StateError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
