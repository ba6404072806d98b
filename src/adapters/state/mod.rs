//! `StateStore` adapters: an in-memory store (tests, `--once` runs) and the embedded file
//! store (local runs, the demo, the guard's records).

pub mod file;
pub mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;
