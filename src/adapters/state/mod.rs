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
