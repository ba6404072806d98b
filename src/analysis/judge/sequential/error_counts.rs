//! Sequential test of canary versus stable error counts.
//!
//! # Model
//!
//! In interval `t` the controller sends a share `s_t` of the requests to the
//! canary (10 %, then 25 %, 50 %, …; `s_t` is fixed before the interval's
//! errors are seen). With per-request error rates `λ_c` (canary) and `λ_s`
//! (stable) and Poisson or Bernoulli errors, the number of canary errors
//! given the total `N_t = a_t + b_t` is
//!
//! ```text
//!   a_t | N_t ~ Binomial(N_t, θ_t),   θ_t = ρ s_t / (ρ s_t + 1 − s_t),
//! ```
//!
//! where `ρ = λ_c / λ_s` is the relative risk. Under equal rates every error
//! comes from the canary with probability `θ_t = s_t`, the canary's traffic
//! share. The null hypothesis is `H0: ρ ≤ 1` (the canary is not worse); the
//! test is one-sided.
//!
//! # Statistic
//!
//! For a fixed `ρ` the likelihood ratio of batch `t` against `ρ = 1` is
//!
//! ```text
//!   L_t(ρ) = (θ_t/s_t)^{a_t} ((1 − θ_t)/(1 − s_t))^{b_t}
//!          = ρ^{a_t} / (1 + s_t (ρ − 1))^{N_t}.
//! ```
//!
//! The test martingale is the mixture `Λ_n = ∫ Π_{t≤n} L_t(ρ) π(dρ)` over a
//! prior `π` on `[ρ_min, ∞)`, `ρ_min ≥ 1`. Parametrising by the relative
//! risk (equivalently, the log-odds shift `ln ρ` of `θ_t` against `s_t`)
//! rather than by `θ` itself is what keeps one prior meaningful while `s_t`
//! changes from batch to batch.
//!
//! The prior is the one of a Beta-binomial mixture: `θ_ref`, the probability
//! that an error comes from the canary at a reference share `s_ref`, is
//! `Beta(a, b)` truncated to `θ_ref ≥ θ_ref(ρ_min)`. It is discretised into
//! `K` atoms — bin midpoints of a uniform grid in `θ_ref`, weights from the
//! Beta log-density (`ln_beta`) normalised to sum to 1 — and *that discrete
//! distribution is the prior*: no quadrature error can affect validity.
//! When every batch has share `s_ref`, `Λ_n` approaches the closed-form
//! Beta-binomial Bayes factor ([`ErrorRateSequentialTest::closed_form_log_e_value`]),
//! `B(a + A, b + B) / B(a, b) · (truncation terms) / (s^A (1 − s)^B)`.
//!
//! # Validity (proof)
//!
//! Let `F_t` be the history up to batch `t`, and suppose `s_t` and `N_t` are
//! known before `a_t` is drawn (`s_t` is `F_{t−1}`-measurable; conditioning
//! on `N_t` is allowed because the binomial thinning holds conditionally on
//! any value of `N_t`). Fix `ρ ≥ 1` and a true ratio `ρ_0 ≤ 1` (any point of
//! `H0`), `θ_0 = ρ_0 s_t / (ρ_0 s_t + 1 − s_t) ≤ s_t`.
//!
//! 1. At `ρ_0 = 1`: `E[L_t(ρ) | F_{t−1}, N_t] = Σ_a C(N_t, a) s_t^a
//!    (1 − s_t)^{N_t − a} (θ_t/s_t)^a ((1 − θ_t)/(1 − s_t))^{N_t − a}
//!    = Σ_a C(N_t, a) θ_t^a (1 − θ_t)^{N_t − a} = 1`.
//! 2. `L_t(ρ)` is non-decreasing in `a_t` when `ρ ≥ 1` (it is `ρ^{a_t}`
//!    times a factor fixed by `N_t`), and `Binomial(N_t, θ_0)` is
//!    stochastically smaller than `Binomial(N_t, s_t)`, so
//!    `E_{ρ_0}[L_t(ρ) | F_{t−1}, N_t] ≤ 1`.
//! 3. By the tower property `E_{ρ_0}[L_t(ρ) | F_{t−1}] ≤ 1`, so
//!    `M_n(ρ) = Π_{t≤n} L_t(ρ)` is a nonnegative supermartingale with
//!    `M_0 = 1` (a martingale when `ρ_0 = 1`), whatever the sequence `s_t`.
//! 4. `Λ_n = Σ_k w_k M_n(ρ_k)` with `w_k ≥ 0`, `Σ w_k = 1` and every
//!    `ρ_k ≥ ρ_min ≥ 1`: a convex combination of nonnegative
//!    supermartingales with the same filtration is one, and `Λ_0 = 1`.
//!
//! Ville's inequality then gives `P_H0(sup_n Λ_n ≥ 1/α) ≤ α`. Batches with
//! `N_t = 0` leave `Λ` unchanged. The model assumption is that, given the
//! traffic split, errors of canary and stable are equally likely per request
//! under `H0`; the shares should be the *observed* request shares
//! ([`ErrorBatch::from_requests`]), not the configured weights, when they
//! differ.

use super::super::JudgeError;
use super::{ensure_alpha, log_sum_exp, next_p_value, SequentialResult};
use serde::{Deserialize, Serialize};
use statrs::function::beta::{beta_reg, ln_beta};

/// Configuration of [`ErrorRateSequentialTest`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateTestConfig {
    /// Significance level: roll back when the p-value is ≤ `alpha`.
    pub alpha: f64,
    /// Beta prior parameter `a` of `θ_ref`.
    pub prior_a: f64,
    /// Beta prior parameter `b` of `θ_ref`.
    pub prior_b: f64,
    /// Reference share `s_ref` at which the prior on `θ_ref` is stated.
    pub reference_share: f64,
    /// Smallest relative risk the prior puts mass on (≥ 1).
    pub min_relative_risk: f64,
    /// Number of atoms of the discretised prior.
    pub grid_points: usize,
}

impl Default for ErrorRateTestConfig {
    /// α = 0.02; `θ_ref` at `s_ref = ½` uniform on `[½, 1)`, i.e.
    /// `P(ρ ≤ r) = (r − 1)/(r + 1)`: median ratio 3, a third of the mass
    /// below 2; 400 atoms.
    fn default() -> Self {
        ErrorRateTestConfig {
            alpha: 0.02,
            prior_a: 1.0,
            prior_b: 1.0,
            reference_share: 0.5,
            min_relative_risk: 1.0,
            grid_points: 400,
        }
    }
}

/// Errors seen in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorBatch {
    /// Errors served by the canary.
    pub canary_errors: u64,
    /// Errors served by the stable version.
    pub stable_errors: u64,
    /// Share of the interval's requests that went to the canary, in `[0, 1]`.
    pub canary_share: f64,
}

impl ErrorBatch {
    /// A batch whose share is the observed request share
    /// `canary_requests / (canary_requests + stable_requests)`.
    pub fn from_requests(
        canary_errors: u64,
        canary_requests: u64,
        stable_errors: u64,
        stable_requests: u64,
    ) -> Result<Self, JudgeError> {
        if canary_errors > canary_requests || stable_errors > stable_requests {
            return Err(JudgeError::InconsistentBatch(
                "more errors than requests".to_string(),
            ));
        }
        let total = canary_requests + stable_requests;
        if total == 0 {
            return Ok(ErrorBatch {
                canary_errors: 0,
                stable_errors: 0,
                canary_share: 0.5,
            });
        }
        Ok(ErrorBatch {
            canary_errors,
            stable_errors,
            canary_share: canary_requests as f64 / total as f64,
        })
    }
}

/// Anytime-valid one-sided test that the canary's error rate is higher than
/// the stable version's (see the module docs for the model and the proof).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateSequentialTest {
    config: ErrorRateTestConfig,
    /// ln ρ_k of each atom.
    log_rho: Vec<f64>,
    /// ln w_k of each atom (Σ w_k = 1).
    log_weight: Vec<f64>,
    /// ln M_n(ρ_k).
    log_likelihood_ratio: Vec<f64>,
    looks: u64,
    observations: u64,
    log_e_value: f64,
    p_value: f64,
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

impl ErrorRateSequentialTest {
    /// A fresh test (`Λ_0 = 1`, `p_0 = 1`).
    pub fn new(config: ErrorRateTestConfig) -> Result<Self, JudgeError> {
        ensure_alpha(config.alpha)?;
        let invalid =
            |name: &'static str, reason: String| Err(JudgeError::InvalidParameter { name, reason });
        if !(config.prior_a.is_finite() && config.prior_a > 0.0) {
            return invalid("prior_a", format!("expected > 0, got {}", config.prior_a));
        }
        if !(config.prior_b.is_finite() && config.prior_b > 0.0) {
            return invalid("prior_b", format!("expected > 0, got {}", config.prior_b));
        }
        let s = config.reference_share;
        if !(s.is_finite() && s > 0.0 && s < 1.0) {
            return invalid("reference_share", format!("expected 0 < s < 1, got {s}"));
        }
        let rho_min = config.min_relative_risk;
        if !(rho_min.is_finite() && rho_min >= 1.0) {
            return invalid(
                "min_relative_risk",
                format!("expected a finite number >= 1, got {rho_min}"),
            );
        }
        if config.grid_points < 1 {
            return invalid("grid_points", "expected at least 1".to_string());
        }
        let theta_min = rho_min * s / (rho_min * s + 1.0 - s);
        let k = config.grid_points;
        let width = (1.0 - theta_min) / k as f64;
        let ln_norm = ln_beta(config.prior_a, config.prior_b);
        let mut log_rho = Vec::with_capacity(k);
        let mut raw = Vec::with_capacity(k);
        for i in 0..k {
            let theta = theta_min + (i as f64 + 0.5) * width;
            log_rho.push(logit(theta) - logit(s));
            raw.push(
                (config.prior_a - 1.0) * theta.ln() + (config.prior_b - 1.0) * (-theta).ln_1p()
                    - ln_norm
                    + width.ln(),
            );
        }
        let total = log_sum_exp(raw.iter().copied());
        let log_weight: Vec<f64> = raw.iter().map(|w| w - total).collect();
        Ok(ErrorRateSequentialTest {
            config,
            log_rho,
            log_likelihood_ratio: vec![0.0; k],
            log_weight,
            looks: 0,
            observations: 0,
            log_e_value: 0.0,
            p_value: 1.0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ErrorRateTestConfig {
        &self.config
    }

    /// Adds one interval's errors and returns the updated state.
    pub fn update(&mut self, batch: ErrorBatch) -> Result<SequentialResult, JudgeError> {
        let s = batch.canary_share;
        if !(0.0..=1.0).contains(&s) {
            return Err(JudgeError::InconsistentBatch(format!(
                "canary share must be within [0, 1], got {s}"
            )));
        }
        if s == 0.0 && batch.canary_errors > 0 {
            return Err(JudgeError::InconsistentBatch(
                "canary errors with a canary share of 0".to_string(),
            ));
        }
        if s == 1.0 && batch.stable_errors > 0 {
            return Err(JudgeError::InconsistentBatch(
                "stable errors with a canary share of 1".to_string(),
            ));
        }
        self.looks += 1;
        let a = batch.canary_errors as f64;
        let n = a + batch.stable_errors as f64;
        if n > 0.0 && s > 0.0 && s < 1.0 {
            self.observations += 1;
            for (llr, &lr) in self.log_likelihood_ratio.iter_mut().zip(&self.log_rho) {
                // ln L_t(ρ) = a ln ρ − N ln(1 + s (ρ − 1))
                *llr += a * lr - n * (s * lr.exp_m1()).ln_1p();
            }
            self.log_e_value = log_sum_exp(
                self.log_weight
                    .iter()
                    .zip(&self.log_likelihood_ratio)
                    .map(|(w, l)| w + l),
            );
            self.p_value = next_p_value(self.p_value, self.log_e_value);
        } else if n > 0.0 {
            // s = 0 or 1 with consistent counts: L_t(ρ) = 1 for every ρ.
            self.observations += 1;
        }
        Ok(self.result())
    }

    /// The current state.
    pub fn result(&self) -> SequentialResult {
        SequentialResult {
            looks: self.looks,
            observations: self.observations,
            log_e_value: self.log_e_value,
            p_value: self.p_value,
            alpha: self.config.alpha,
            reject: self.p_value <= self.config.alpha,
            in_burn_in: false,
        }
    }

    /// ln of the closed-form Beta-binomial mixture likelihood ratio with the
    /// *continuous* truncated `Beta(a, b)` prior, for data whose every batch
    /// had the reference share: `A` canary and `B` stable errors in total.
    ///
    /// `ln Λ = ln B(a+A, b+B) − ln B(a, b) + ln P(θ ≥ θ_min | a+A, b+B)
    ///        − ln P(θ ≥ θ_min | a, b) − A ln s − B ln(1 − s)`.
    pub fn closed_form_log_e_value(
        config: &ErrorRateTestConfig,
        canary_errors: u64,
        stable_errors: u64,
    ) -> f64 {
        let (a, b) = (config.prior_a, config.prior_b);
        let s = config.reference_share;
        let rho_min = config.min_relative_risk;
        let theta_min = rho_min * s / (rho_min * s + 1.0 - s);
        let (ca, cb) = (canary_errors as f64, stable_errors as f64);
        // P(θ ≥ x) for Beta(p, q) = I_{1−x}(q, p), without cancellation
        let upper = |p: f64, q: f64| beta_reg(q, p, 1.0 - theta_min).ln();
        ln_beta(a + ca, b + cb) - ln_beta(a, b) + upper(a + ca, b + cb)
            - upper(a, b)
            - ca * s.ln()
            - cb * (-s).ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_rho_at_least_min() {
        let t = ErrorRateSequentialTest::new(ErrorRateTestConfig {
            min_relative_risk: 1.2,
            ..ErrorRateTestConfig::default()
        })
        .expect("valid");
        let sum: f64 = t.log_weight.iter().map(|w| w.exp()).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert!(t.log_rho.iter().all(|&r| r >= 1.2f64.ln()));
    }

    #[test]
    fn nothing_observed_means_no_evidence() {
        let mut t = ErrorRateSequentialTest::new(ErrorRateTestConfig::default()).expect("valid");
        let r = t
            .update(ErrorBatch {
                canary_errors: 0,
                stable_errors: 0,
                canary_share: 0.1,
            })
            .expect("valid");
        assert_eq!(r.log_e_value, 0.0);
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn inconsistent_batches_are_rejected() {
        let mut t = ErrorRateSequentialTest::new(ErrorRateTestConfig::default()).expect("valid");
        assert!(t
            .update(ErrorBatch {
                canary_errors: 1,
                stable_errors: 0,
                canary_share: 0.0
            })
            .is_err());
        assert!(t
            .update(ErrorBatch {
                canary_errors: 0,
                stable_errors: 0,
                canary_share: 1.5
            })
            .is_err());
        assert!(ErrorBatch::from_requests(5, 4, 0, 10).is_err());
    }
}
