//! The `TrafficRouter` port: read and set the stable/canary weights of one route, and the
//! header-match route to the canary that a header step places ahead of it.
//!
//! The adapters (Istio VirtualService, Gateway API HTTPRoute, and a file router for local
//! runs) live in `crate::adapters`. They change only the weights of the named route, guard
//! each write with the object's resourceVersion, read the weights back after writing, and
//! report a weight changed by someone else instead of overwriting it.

use async_trait::async_trait;

use super::{error_chain, BoxError};
use crate::model::traffic::{Routing, Weights};

/// Why the routing could not be read or set. `Api` and `Encode` keep their cause as the
/// source and show it in their message too (status conditions, notes and decision records
/// print these with `{e}`).
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The weights (or the header route) are not what slogate last set: someone changed
    /// them by hand.
    #[error(
        "{target}: routing was changed outside slogate: expected {}, found {}",
        expected.describe(),
        found.describe()
    )]
    ManualChange {
        target: String,
        expected: Routing,
        found: Routing,
    },
    /// The object does not have the route or destinations the spec names.
    #[error("{target}: {message}")]
    Shape { target: String, message: String },
    #[error("{target} not found")]
    NotFound { target: String },
    /// The write kept conflicting on resourceVersion.
    #[error("{target}: write conflicted {attempts} times; gave up")]
    Conflict { target: String, attempts: u32 },
    /// The routing read back after a write is not the one written.
    #[error("{target}: wrote {} but read back {}", wrote.describe(), read.describe())]
    ReadBack {
        target: String,
        wrote: Routing,
        read: Routing,
    },
    /// A read or write of the route failed: `what` is the operation (`get`, `patch`,
    /// `read`, `write`), the adapter's error is the source.
    #[error("{target}: {what}: {}", error_chain(.source.as_ref()))]
    Api {
        target: String,
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// The routing could not be encoded for the write (`what` says which part).
    #[error("{target}: {what}: {source}")]
    Encode {
        target: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Equal when the variant and its fields are; the sources of `Api` and `Encode`, which have
/// no equality of their own, are equal when they read the same (each cause's text).
impl PartialEq for TrafficError {
    fn eq(&self, other: &Self) -> bool {
        use TrafficError::*;
        match (self, other) {
            (
                ManualChange {
                    target,
                    expected,
                    found,
                },
                ManualChange {
                    target: t,
                    expected: e,
                    found: f,
                },
            ) => (target, expected, found) == (t, e, f),
            (
                Shape { target, message },
                Shape {
                    target: t,
                    message: m,
                },
            ) => (target, message) == (t, m),
            (NotFound { target }, NotFound { target: t }) => target == t,
            (
                Conflict { target, attempts },
                Conflict {
                    target: t,
                    attempts: a,
                },
            ) => (target, attempts) == (t, a),
            (
                ReadBack {
                    target,
                    wrote,
                    read,
                },
                ReadBack {
                    target: t,
                    wrote: w,
                    read: r,
                },
            ) => (target, wrote, read) == (t, w, r),
            (
                Api {
                    target,
                    what,
                    source,
                },
                Api {
                    target: t,
                    what: w,
                    source: s,
                },
            ) => {
                (target, what) == (t, w) && error_chain(source.as_ref()) == error_chain(s.as_ref())
            }
            (
                Encode {
                    target,
                    what,
                    source,
                },
                Encode {
                    target: t,
                    what: w,
                    source: s,
                },
            ) => (target, what) == (t, w) && error_chain(source) == error_chain(s),
            _ => false,
        }
    }
}

impl Eq for TrafficError {}

#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Current weights of the route and slogate's header route, if there is one.
    async fn routing(&self) -> Result<Routing, TrafficError>;

    /// Set the weights and add, change or remove slogate's header route, in one guarded
    /// write. `expected` is what slogate last set (or `None` on the first write); when the
    /// route holds something else, nothing is written and [`TrafficError::ManualChange`] is
    /// returned. Returns the routing read back.
    async fn set_routing(
        &self,
        expected: Option<&Routing>,
        routing: &Routing,
    ) -> Result<Routing, TrafficError>;

    /// Current weights of the route.
    async fn weights(&self) -> Result<Weights, TrafficError> {
        Ok(self.routing().await?.weights)
    }

    /// Set the weights, with no header route (one is removed).
    async fn set_weights(
        &self,
        expected: Option<Weights>,
        weights: Weights,
    ) -> Result<Weights, TrafficError> {
        let expected = expected.map(Routing::weights);
        Ok(self
            .set_routing(expected.as_ref(), &Routing::weights(weights))
            .await?
            .weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(cause: &str) -> TrafficError {
        TrafficError::Api {
            target: "weights file w.json".into(),
            what: "read",
            source: Box::new(std::io::Error::other(cause.to_string())),
        }
    }

    /// The source is kept, shown once, and compared by what it says.
    #[test]
    fn an_api_error_keeps_its_source_and_compares_by_its_text() {
        let e = api("permission denied");
        assert_eq!(
            e.to_string(),
            "weights file w.json: read: permission denied"
        );
        assert_eq!(error_chain(&e), e.to_string());
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
        assert_eq!(e, api("permission denied"));
        assert_ne!(e, api("no space left on device"));
        assert_ne!(
            e,
            TrafficError::NotFound {
                target: "weights file w.json".into()
            }
        );
    }
}
