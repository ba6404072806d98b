//! `StateStore` adapters: an in-memory store (tests, `--once` runs), the embedded file
//! store (local runs, the demo, the guard's records), and the ring of documents that shares
//! the decision log between replicas ([`decision_ring`]).

pub mod decision_ring;
pub mod file;
pub mod memory;
#[cfg(test)]
pub(crate) mod testing;

pub use decision_ring::SharedDecisionLog;
pub use file::FileStore;
pub use memory::MemoryStore;

/// Pause before retrying a compare-and-swap that lost
/// ([`StateError::Conflict`](crate::ports::state::StateError::Conflict)): a random
/// time up to 2 ms doubled per round lost, at most 250 ms. Without it two writers retrying at
/// once can keep colliding until one runs out of rounds; with it the loser re-reads after the
/// winner has written. `round` counts from 0 (the first retry).
pub async fn conflict_backoff(round: usize) {
    use rand::RngExt;
    // 2 << 7 = 256 already passes the cap, so larger rounds need no shift.
    let cap_ms: u64 = if round >= 7 {
        250
    } else {
        (2u64 << round).min(250)
    };
    let ms = rand::rng().random_range(1..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
