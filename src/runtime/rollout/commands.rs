//! Operators' commands (promote, abort, pause, resume, approve) on their way to the state
//! machine, and the state-store documents of a rollout.
//!
//! - `rollout/<namespace>/<name>`: the [`RolloutStatus`] as JSON, written by the leader's
//!   controller only (compare-and-swap).
//! - `rollout-commands/<namespace>/<name>`: a [`CommandQueue`]. The API and the CLI append
//!   commands to `pending` (compare-and-swap, so the daemon and a CLI sharing a state
//!   directory never lose one); the controller hands them to `decide`, stores the next
//!   status (which remembers the ids it handled), then moves them to `results` with their
//!   outcome. A crash in between is harmless: `decide` handles each id once
//!   ([`RolloutStatus::handled_commands`]), and the next reconcile settles the queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::state::conflict_backoff;
use crate::ports::state::{StateError, StateStore};
use crate::rollout::{CommandAction, OperatorCommand, RolloutStatus};
use crate::runtime::effects::{store_state, Stored};

/// Results kept in the queue document (the most recent ones).
pub const RESULTS_KEPT: usize = 32;
/// Compare-and-swap attempts before giving up on a contended document.
const CAS_ATTEMPTS: u32 = 8;

/// The state-store key of a rollout's status.
pub fn status_key(namespace: &str, name: &str) -> String {
    format!("rollout/{namespace}/{name}")
}

/// The state-store key of a rollout's command queue.
pub fn commands_key(namespace: &str, name: &str) -> String {
    format!("rollout-commands/{namespace}/{name}")
}

/// A command waiting for the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedCommand {
    #[serde(flatten)]
    pub command: OperatorCommand,
    /// When it was queued.
    pub at: DateTime<Utc>,
    /// `api` or `cli`.
    pub via: String,
}

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandOutcome {
    /// `decide` applied it.
    Applied,
    /// `decide` refused it (the reason says why), or it was handled before.
    Rejected,
    /// Stored; the leader's controller applies it at its next reconcile.
    Queued,
}

impl CommandOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Applied => "applied",
            CommandOutcome::Rejected => "rejected",
            CommandOutcome::Queued => "queued",
        }
    }
}

/// A command's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    pub id: String,
    pub action: CommandAction,
    pub actor: String,
    pub outcome: CommandOutcome,
    /// Applied: the rollout's reason afterwards; rejected: why; queued: why it is not
    /// applied yet.
    pub reason: String,
    /// The phase after the command (applied and rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub at: DateTime<Utc>,
}

/// The `rollout-commands/<ns>/<name>` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandQueue {
    #[serde(default)]
    pub pending: Vec<QueuedCommand>,
    #[serde(default)]
    pub results: Vec<CommandResult>,
}

/// A fresh command id: `<time>-<random>`.
pub fn new_command_id(now: DateTime<Utc>) -> String {
    use rand::RngExt;
    let n: u32 = rand::rng().random_range(0..u32::MAX);
    format!("cmd-{}-{n:08x}", now.format("%Y%m%dT%H%M%S%.3fZ"))
}

fn corrupt(key: &str, e: serde_json::Error) -> StateError {
    StateError::Undecodable {
        key: key.to_string(),
        at: None,
        source: Box::new(e),
    }
}

fn to_json<T: Serialize>(key: &str, v: &T) -> Result<serde_json::Value, StateError> {
    serde_json::to_value(v).map_err(|e| corrupt(key, e))
}

/// Read a rollout's command queue and its version.
pub async fn read_queue(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
) -> Result<(CommandQueue, Option<u64>), StateError> {
    let key = commands_key(namespace, name);
    match store.get(&key).await? {
        None => Ok((CommandQueue::default(), None)),
        Some(v) => serde_json::from_value(v.value)
            .map(|q| (q, Some(v.version)))
            .map_err(|e| corrupt(&key, e)),
    }
}

/// Read a rollout's status and its version (`Pending` and `None` when never stored).
pub async fn read_status(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
) -> Result<(RolloutStatus, Option<u64>), StateError> {
    let key = status_key(namespace, name);
    match store.get(&key).await? {
        None => Ok((RolloutStatus::default(), None)),
        Some(v) => serde_json::from_value(v.value)
            .map(|s| (s, Some(v.version)))
            .map_err(|e| corrupt(&key, e)),
    }
}

/// Read-modify-write of the queue with compare-and-swap retries. `f` returns whether it
/// changed anything.
async fn modify_queue(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
    mut f: impl FnMut(&mut CommandQueue) -> bool,
) -> Result<(CommandQueue, Stored), StateError> {
    let key = commands_key(namespace, name);
    let mut last = None;
    for round in 0..CAS_ATTEMPTS {
        if round > 0 {
            conflict_backoff(round as usize - 1).await;
        }
        let (mut q, version) = read_queue(store, namespace, name).await?;
        let read = q.clone();
        if !f(&mut q) {
            if let Some(stored) = Stored::unchanged(&read, &q, version) {
                return Ok((q, stored));
            }
        }
        match store_state(store, &key, to_json(&key, &q)?, version).await {
            Ok(stored) => return Ok((q, stored)),
            Err(e @ StateError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StateError::Backend(format!("`{key}` kept changing"))))
}

/// Queue a command for a rollout. Returns it (with its fresh id) and the proof that the
/// queue holding it is stored (what the effects of the request ask for).
#[allow(clippy::too_many_arguments)]
pub async fn enqueue(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
    action: CommandAction,
    actor: &str,
    reason: Option<String>,
    via: &str,
    now: DateTime<Utc>,
) -> Result<(OperatorCommand, Stored), StateError> {
    let command = OperatorCommand {
        id: new_command_id(now),
        action,
        actor: actor.to_string(),
        reason: reason.filter(|r| !r.trim().is_empty()),
    };
    let queued = QueuedCommand {
        command: command.clone(),
        at: now,
        via: via.to_string(),
    };
    let (_, stored) = modify_queue(store, namespace, name, |q| {
        q.pending.push(queued.clone());
        true
    })
    .await?;
    Ok((command, stored))
}

/// Move handled commands out of `pending` into `results`.
pub async fn settle(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
    results: &[CommandResult],
) -> Result<(), StateError> {
    if results.is_empty() {
        return Ok(());
    }
    modify_queue(store, namespace, name, |q| {
        q.pending
            .retain(|p| !results.iter().any(|r| r.id == p.command.id));
        for r in results {
            if !q.results.iter().any(|x| x.id == r.id) {
                q.results.push(r.clone());
            }
        }
        let excess = q.results.len().saturating_sub(RESULTS_KEPT);
        q.results.drain(..excess);
        true
    })
    .await
    .map(|_| ())
}

/// The outcome of a command, once the controller settled it.
pub async fn result_of(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
    id: &str,
) -> Result<Option<CommandResult>, StateError> {
    let (q, _) = read_queue(store, namespace, name).await?;
    Ok(q.results.into_iter().find(|r| r.id == id))
}

/// Parse an action name (`promote`, `abort`, `pause`, `resume`, `approve`).
pub fn parse_action(s: &str) -> Option<CommandAction> {
    Some(match s {
        "promote" => CommandAction::Promote,
        "abort" => CommandAction::Abort,
        "pause" => CommandAction::Pause,
        "resume" => CommandAction::Resume,
        "approve" => CommandAction::Approve,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::MemoryStore;

    #[tokio::test]
    async fn queue_and_settle() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let a = enqueue(
            &store,
            "shop",
            "checkout",
            CommandAction::Pause,
            "alice",
            Some("look".into()),
            "api",
            now,
        )
        .await
        .unwrap()
        .0;
        let b = enqueue(
            &store,
            "shop",
            "checkout",
            CommandAction::Resume,
            "bob",
            Some("  ".into()),
            "cli",
            now,
        )
        .await
        .unwrap()
        .0;
        assert_ne!(a.id, b.id);
        assert_eq!(b.reason, None);
        let (q, v) = read_queue(&store, "shop", "checkout").await.unwrap();
        assert_eq!(v, Some(2));
        assert_eq!(q.pending.len(), 2);
        let r = CommandResult {
            id: a.id.clone(),
            action: a.action,
            actor: a.actor.clone(),
            outcome: CommandOutcome::Applied,
            reason: "paused".into(),
            phase: Some("Paused".into()),
            at: now,
        };
        settle(&store, "shop", "checkout", std::slice::from_ref(&r))
            .await
            .unwrap();
        let (q, _) = read_queue(&store, "shop", "checkout").await.unwrap();
        assert_eq!(q.pending.len(), 1);
        assert_eq!(q.pending[0].command.id, b.id);
        assert_eq!(
            result_of(&store, "shop", "checkout", &a.id).await.unwrap(),
            Some(r)
        );
        assert_eq!(parse_action("approve"), Some(CommandAction::Approve));
        assert_eq!(parse_action("delete"), None);
    }
}
