#!/usr/bin/env python3
"""The most power any level-alpha test can have against the latency regression of issue 14,
computed analytically and by simulation, and the horizon test's figures simulated
independently of the Rust code (README "Latency"; examples/false_rollbacks.rs).

Data model (the example's): per 30 s interval one p99 per version, canary ~ N(100 + shift, 10^2)
and stable ~ N(100, 10^2) ms, independent; the test sees the differences D_i ~ N(shift, 200),
i = 1..60, alpha = 0.02, one-sided. The +5 ms shift is 5 / sqrt(200) = 0.354 sd of D.

Bound. A rollout that may stop at any of its 60 looks still decides with a function of
D_1..D_60, and a test that is valid whatever sigma is, is in particular valid at the true
sigma. So its power is at most that of the most powerful level-alpha test of the simple
hypotheses mu = 0 against mu = 0.354 sd with sigma known, which by the Neyman-Pearson lemma
rejects when sum(D) is large:

    power <= 1 - Phi(z_{1-alpha} - 0.354 sqrt(60)) = 75.3 %

for *every* test, sequential or not, anytime-valid or not. The issue's 80 % goal is out of
reach under this data model.

Run from the crate root with numpy installed (`pip install numpy`; the script installs
nothing): `python3 scripts/latency_power_bound.py`. Prints the bound analytically and by
simulation, the fixed-sample t-test at interval 60 (variance unknown), and the horizon test
(constant boundary on the running sum, variance from the first 20 looks).
"""
import math

import numpy as np

ALPHA = 0.02
LOOKS = 60
SD = math.sqrt(2.0) * 10.0  # sd of one difference
SHIFT = 5.0
RUNS = 200_000
VARIANCE_LOOKS = 20


def phi_sf(x):
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def bisect(f, lo, hi, target):
    """x in [lo, hi] with f(x) = target, f decreasing."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def t_sf(x, df):
    """Student-t upper tail, by the regularised incomplete beta's continued fraction."""
    if x < 0:
        return 1.0 - t_sf(-x, df)
    return 0.5 * betainc(df / 2.0, 0.5, df / (df + x * x))


def betainc(a, b, x):
    """Regularised incomplete beta I_x(a, b) (Numerical Recipes' continued fraction)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(ln_front) * h / a


def wilson(k, n, z=1.959963984540054):
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return 100 * max(centre - half, 0.0), 100 * min(centre + half, 1.0)


def rate(hits):
    k, n = int(np.sum(hits)), len(hits)
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.2f}% [{lo:.2f}, {hi:.2f}]"


def main():
    delta = SHIFT / SD
    z = bisect(phi_sf, -10, 10, ALPHA)
    bound = phi_sf(z - delta * math.sqrt(LOOKS))
    print(f"shift {SHIFT} ms = {delta:.4f} sd of a difference; alpha {ALPHA}; {LOOKS} looks")
    print(f"Neyman-Pearson bound (sigma known, one look at {LOOKS}), analytic: {100 * bound:.2f}%")

    rng = np.random.default_rng(14)
    n = np.arange(1, LOOKS + 1)
    for label, mu in (("A/A", 0.0), ("+5 ms", SHIFT)):
        d = rng.normal(mu, SD, size=(RUNS, LOOKS))
        s = np.cumsum(d, axis=1)
        # most powerful test, sigma known: sum(D_1..D_60) / (sigma sqrt 60) >= z_{1-alpha}
        np_test = s[:, -1] / (SD * math.sqrt(LOOKS)) >= z
        # fixed-sample one-sided t-test at look 60 (sigma unknown)
        t60 = s[:, -1] / LOOKS / (d.std(axis=1, ddof=1) / math.sqrt(LOOKS))
        t_crit = bisect(lambda x: t_sf(x, LOOKS - 1), 0, 20, ALPHA)
        t_test = t60 >= t_crit
        # horizon test: reject at a look k >= m when S_k >= sqrt(K) s_m t_{m-1, 1-alpha/2}
        m = VARIANCE_LOOKS
        s_m = d[:, :m].std(axis=1, ddof=1)
        c = math.sqrt(LOOKS) * bisect(lambda x: t_sf(x, m - 1), 0, 50, ALPHA / 2)
        horizon = np.any(s[:, m - 1:] >= c * s_m[:, None], axis=1)
        print(f"{label:6s} (simulated, {RUNS} rollouts):")
        print(f"  most powerful test, sigma known:     {rate(np_test)}")
        print(f"  t-test at look {LOOKS}, sigma unknown:   {rate(t_test)}")
        print(f"  horizon test (variance from {m}):     {rate(horizon)}")


if __name__ == "__main__":
    main()
