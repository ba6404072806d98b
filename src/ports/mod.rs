//! One trait per I/O port. The pure core never calls these; the runtime and the CLI do,
//! through the adapters in `crate::adapters`.

pub mod gitops;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod promote;
pub mod rollouts;
pub mod slo_index;
pub mod state;
pub mod sync;
pub mod traffic;
pub mod versions;

pub use metrics::{MetricsError, MetricsSource, Sample};
