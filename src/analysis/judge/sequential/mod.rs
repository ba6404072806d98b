//! Anytime-valid sequential tests for continuous monitoring.
//!
//! Both tests maintain a test martingale `Λ_n` (an e-process): a
//! nonnegative process with `Λ_0 = 1` that is a supermartingale under the
//! null hypothesis. By Ville's inequality, `P_H0(∃ n : Λ_n ≥ 1/α) ≤ α`, so
//! the running p-value
//!
//! ```text
//!   p_0 = 1,   p_n = min(p_{n−1}, 1 / Λ_n)
//! ```
//!
//! satisfies `P_H0(∃ n : p_n ≤ α) ≤ α`: it may be looked at after every
//! interval (every 30 s) and acted on as soon as it drops to `α`, and the
//! probability of ever rolling back a healthy canary stays at most `α`. The
//! p-value never increases.
//!
//! * [`ErrorRateSequentialTest`]: error counts of canary and stable, a
//!   mixture over the canary/stable error-rate ratio of binomial likelihood
//!   ratios tempered by a running estimate of the extra-binomial variance
//!   (quasi-likelihood), valid while the traffic share changes and errors
//!   cluster by pod or client ([`Dispersion::Binomial`] keeps the previous,
//!   binomial-only test).
//! * [`NormalMixtureSequentialTest`]: the mixture SPRT of Johari et al. on
//!   time-aligned differences of a continuous metric.
//! * [`HorizonSequentialTest`]: the same differences when the number of looks is
//!   known in advance (a rollout's steps × intervals): no e-value, but an exact
//!   level-α boundary over those looks, with much more power than the mSPRT.

mod error_counts;
mod horizon;
mod msprt;

pub use error_counts::{
    Dispersion, ErrorBatch, ErrorRateSequentialTest, ErrorRateTestConfig, RiskPrior,
};
pub use horizon::{HorizonSequentialTest, HorizonTestConfig};
pub use msprt::{MsprtConfig, NormalMixtureSequentialTest, TauScale, VarianceMode};

use super::JudgeError;
use serde::{Deserialize, Serialize};

/// State of a sequential test after a look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialResult {
    /// Number of updates (looks) so far, burn-in included.
    pub looks: u64,
    /// Number of updates that entered the test statistic (after burn-in).
    pub observations: u64,
    /// ln Λ_n, the log of the current e-value (0 for [`HorizonSequentialTest`],
    /// which has none).
    pub log_e_value: f64,
    /// Anytime-valid p-value, `min(p_{n−1}, 1/Λ_n)` (for [`HorizonSequentialTest`]:
    /// valid over its horizon); never increases.
    pub p_value: f64,
    /// Significance level of the decision.
    pub alpha: f64,
    /// `p_value ≤ alpha`: roll back.
    pub reject: bool,
    /// The test is still collecting its burn-in (no decision possible).
    pub in_burn_in: bool,
    /// The first look (1-based) at which the p-value reached `alpha`, if it has.
    #[serde(default)]
    pub first_reject_look: Option<u64>,
}

/// Checks `0 < alpha < 1`.
pub(crate) fn ensure_alpha(alpha: f64) -> Result<(), JudgeError> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(JudgeError::InvalidParameter {
            name: "alpha",
            reason: format!("expected a number strictly between 0 and 1, got {alpha}"),
        })
    }
}

/// `min(previous, 1/Λ)` from `ln Λ`, without overflow.
pub(crate) fn next_p_value(previous: f64, log_e_value: f64) -> f64 {
    previous.min((-log_e_value).exp())
}

/// ln Σ exp(v_i), stable.
pub(crate) fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max.is_infinite() {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}
