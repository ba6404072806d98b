//! Adapters: implementations of the ports in `crate::ports`.
