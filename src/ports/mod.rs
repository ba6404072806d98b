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

/// An adapter's own error behind a port, kept as the `#[source]` of the port's error so
/// that the chain survives the trait boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `error: cause: cause…`: an error with every `source()` below it, each text once.
///
/// Print an error with this wherever one of its variants keeps its cause only as a source
/// (its own message is the context). Wrappers often repeat their cause's text in their own
/// message; a cause whose text is already there is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        /// Context only: the cause is the source.
        #[error("leader election: releasing the lease")]
        Context(#[source] BoxError),
        /// The cause's text in the message too.
        #[error("state store: {0}")]
        Shown(#[source] std::io::Error),
    }

    /// Each cause once, whether a message shows its source or not.
    #[test]
    fn the_chain_names_each_cause_once() {
        let io = || std::io::Error::other("connection refused");
        let e = Outer::Context(Box::new(Outer::Shown(io())));
        assert_eq!(
            error_chain(&e),
            "leader election: releasing the lease: state store: connection refused"
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<Outer>(), "{source:?}");
        assert_eq!(
            error_chain(&Outer::Shown(io())),
            "state store: connection refused"
        );
    }
}
