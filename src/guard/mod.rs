//! The error-budget guard: it reverts the GitOps commits that burned an SLO's budget and
//! freezes the app while the budget stays exhausted.
//!
//! - `state`: what is remembered per app (the `guard/<app>` state document).

pub mod decide;
pub mod state;
pub mod verify;

pub use state::AppGuardState;
