//! The core model: plain data shared by the pure core (`slo`, `analysis`, `rollout`,
//! `guard`), the ports and the adapters. It imports nothing else of the crate.
//!
//! - [`approval`]: a promotion approval document;
//! - [`traffic`]: stable/canary weights and the route they apply to;
//! - [`notify`]: a message for humans and its severity;
//! - [`commit`]: a commit as the guard sees it, and a revert request;
//! - [`trailers`]: slogate's commit trailers, parsed and formatted;
//! - [`yaml`]: the YAML value tree and the one budgeted YAML reader and writer.

pub mod approval;
pub mod commit;
pub mod notify;
pub mod traffic;
pub mod trailers;
pub mod yaml;
