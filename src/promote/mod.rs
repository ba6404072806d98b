//! `slogate promote`: move an image from one Kustomize overlay to the next (staging →
//! prod) when the source environment's SLOs allow it.
//!
//! - `usecase`: the promotion itself (fetch, overlays, gates, commit, decision record),
//!   called by `slogate promote` (`crate::cli::promote`, which checks the flags) and the
//!   demo;
//! - `image`: the `NAME[=TAG|@DIGEST]` syntax;
//! - `kustomize`: the comment-preserving edit of a kustomization's `images:` list;
//! - `gate`: the gates (input, SLOs of the source, freeze of the target, approval) and the
//!   report printed as text or JSON;
//! - `approval`: the key of one exact change, and the approval document;
//! - `state`: the `PromoteState` port (`crate::ports::promote`: where freezes and approvals
//!   are read from and approvals written to) on a `StateStore` shared with a local daemon;
//!   its other implementation, over the daemon's HTTP API, is
//!   `crate::adapters::promote_api`;
//! - `api`: the daemon's endpoints for the CLI (`GET /api/v1/guard/{app}`,
//!   `GET`/`POST /api/v1/approvals`, `POST /api/v1/promotions`).

pub mod api;
pub mod approval;
pub mod gate;
pub mod image;
pub mod kustomize;
pub mod state;
pub mod usecase;
