//! Adapters: implementations of the ports in `crate::ports`. Only code under this folder
//! talks to external systems.

pub mod argocd;
pub mod daemon_api;
pub mod git;
pub mod http;
pub mod http_auth;
pub mod kube;
pub mod leader;
pub mod notify;
pub mod prometheus;
pub mod promote_api;
pub mod rollout_files;
pub mod state;
pub mod traffic_file;
pub mod versions;
