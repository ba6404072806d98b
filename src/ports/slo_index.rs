//! The `SloIndex` port: which SLO ids are loaded now, so that the Alertmanager webhook maps
//! an alert to a loaded SLO. The daemon's implementation is
//! `crate::runtime::webhook::SloIds`, replaced after each spec reload; any
//! `Fn(&str) -> bool` is one too.

/// Which SLO ids are currently loaded. Implemented by `crate::runtime::webhook::SloIds` and by any
/// `Fn(&str) -> bool`.
pub trait SloIndex: Send + Sync + 'static {
    fn contains(&self, id: &str) -> bool;
}

impl<F> SloIndex for F
where
    F: Fn(&str) -> bool + Send + Sync + 'static,
{
    fn contains(&self, id: &str) -> bool {
        self(id)
    }
}
