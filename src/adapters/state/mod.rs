//! `StateStore` adapters: an in-memory store (tests, `--once` runs) and the embedded file
//! store (local runs, the demo, the guard's records).

pub mod memory;

pub use memory::MemoryStore;
