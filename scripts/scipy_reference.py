#!/usr/bin/env python3
"""Generate tests/fixtures/scipy/mannwhitneyu.json from scipy.stats.mannwhitneyu.

Run from the crate root with scipy and numpy already installed
(`pip install scipy numpy`); this script installs nothing itself.

Every sample is generated from a seeded numpy Generator, so re-running the
script reproduces the fixture byte for byte (for a given numpy/scipy version,
both recorded in the output).

For each case the fixture holds the inputs (x = canary, y = baseline), the
method that scipy's method="auto" chose, and scipy's `statistic` (U1 of x) and
`pvalue` for the three alternatives. It also holds an independent reference
for the Hodges-Lehmann estimate (numpy median of all pairwise differences
x_i - y_j) and for the 95% order-statistic confidence interval (the k-th and
(nm-k+1)-th smallest pairwise differences, with k taken from the exact null
distribution of U, computed here with Python integers, when there are no ties
and min(n, m) <= 8, and from the continuity-corrected, tie-corrected normal
approximation otherwise).
"""
import json
import math
import os
import sys

import numpy as np
import scipy
from scipy import stats

CONFIDENCE = 0.95
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "scipy", "mannwhitneyu.json")


def exact_u_counts(n, m):
    """Number of arrangements giving U = u, u = 0..n*m (Python big ints).

    Classic recurrence f(n, m, u) = f(n-1, m, u-m) + f(n, m-1, u), iterated
    over m for a fixed n (independent of the Rust implementation, which uses
    the Gaussian-binomial product)."""
    # table[i][u] for current m, i = 0..n
    table = [[1] + [0] * (n * m) for _ in range(n + 1)]  # m = 0: only U = 0
    for mm in range(1, m + 1):
        new = [[0] * (n * m + 1) for _ in range(n + 1)]
        for i in range(n + 1):
            for u in range(i * mm + 1):
                a = table[i][u]  # last element is from sample y (size mm-1 -> mm)
                b = new[i - 1][u - mm] if i > 0 and u - mm >= 0 else 0
                new[i][u] = a + b
        table = new
    return table[n]


def has_ties(x, y):
    z = np.concatenate([x, y])
    return len(np.unique(z)) != len(z)


def hl_reference(x, y, method):
    d = np.subtract.outer(x, y).ravel()
    est = float(np.median(d))
    n, m = len(x), len(y)
    nm = n * m
    alpha = 1.0 - CONFIDENCE
    if method == "exact":
        counts = exact_u_counts(n, m)
        total = math.comb(n + m, n)
        # smallest q with P(U <= q) >= alpha/2 (R's qwilcox rule); the
        # probability is the exact count ratio rounded to a double
        cum = 0
        q = 0
        for u, c in enumerate(counts):
            cum += c
            if cum / total >= alpha / 2.0:
                q = u
                break
        k = max(q, 1)
    else:
        z = np.concatenate([x, y])
        _, t = np.unique(z, return_counts=True)
        N = n + m
        sigma = math.sqrt(n * m / 12.0 * ((N + 1) - float(np.sum(t.astype(float) ** 3 - t)) / (N * (N - 1))))
        zq = stats.norm.ppf(1.0 - alpha / 2.0)
        k = max(1, math.ceil(nm / 2.0 - zq * sigma - 0.5))
    ds = np.sort(d)
    return est, float(ds[k - 1]), float(ds[nm - k]), k


def case(name, x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, m = len(x), len(y)
    ties = has_ties(x, y)
    method = "asymptotic" if (n > 8 and m > 8) or ties else "exact"
    out = {"name": name, "x": x.tolist(), "y": y.tolist(), "method": method}
    for alt in ("two-sided", "less", "greater"):
        r = stats.mannwhitneyu(x, y, alternative=alt, method="auto")
        out[alt] = {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
    est, lo, hi, k = hl_reference(x, y, method)
    out["hl"] = {"confidence": CONFIDENCE, "estimate": est, "ci_low": lo, "ci_high": hi, "k": k}
    return out


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    # small samples, no ties: exact path
    for n, m in [(1, 1), (1, 5), (2, 7), (3, 4), (5, 5), (4, 8), (8, 8), (6, 3)]:
        x = rng.normal(0.3, 1.0, n)
        y = rng.normal(0.0, 1.0, m)
        cases.append(case(f"small_exact_{n}x{m}", x, y))
    # complete separation, exact (smallest achievable p-values)
    cases.append(case("separated_exact_8x8", np.arange(8) + 100.0, np.arange(8) * 1.0))
    cases.append(case("separated_exact_5x3_reversed", np.arange(5) * 1.0, np.arange(3) + 50.0))
    x = rng.normal(10.0, 1.0, 8)
    y = rng.normal(0.0, 1.0, 60)
    cases.append(case("separated_exact_tiny_p_8x60", x, y))
    # mixed sizes: one small sample keeps the exact path
    x = rng.normal(0.5, 1.0, 8)
    y = rng.normal(0.0, 1.0, 60)
    cases.append(case("mixed_exact_8x60", x, y))
    x = rng.normal(0.2, 1.0, 3)
    y = rng.normal(0.0, 1.0, 400)
    cases.append(case("mixed_exact_3x400", x, y))
    x = rng.normal(0.2, 1.0, 9)
    y = rng.normal(0.0, 1.0, 40)
    cases.append(case("mixed_asymptotic_9x40", x, y))
    x = rng.lognormal(0.0, 0.5, 30)
    y = rng.lognormal(0.1, 0.5, 70)
    cases.append(case("mixed_asymptotic_30x70", x, y))
    # small samples with ties: asymptotic path
    cases.append(case("small_ties_5x5", [1, 2, 2, 3, 5], [2, 2, 4, 4, 1]))
    cases.append(case("small_ties_3x4", [1.5, 1.5, 3.0], [1.5, 0.5, 2.0, 2.0]))
    # tied integer data (Poisson counts), asymptotic path
    x = rng.poisson(3.0, 20)
    y = rng.poisson(2.0, 30)
    cases.append(case("ties_poisson_20x30", x, y))
    x = rng.poisson(1.0, 100)
    y = rng.poisson(1.0, 100)
    cases.append(case("ties_poisson_100x100", x, y))
    x = np.round(rng.normal(10.0, 2.0, 200) * 2) / 2
    y = np.round(rng.normal(10.3, 2.0, 150) * 2) / 2
    cases.append(case("ties_halves_200x150", x, y))
    # large samples
    x = rng.normal(0.05, 1.0, 500)
    y = rng.normal(0.0, 1.0, 500)
    cases.append(case("large_500x500", x, y))
    x = rng.normal(0.0, 1.0, 2000)
    y = rng.normal(0.0, 1.0, 2000)
    cases.append(case("large_null_2000x2000", x, y))
    x = rng.exponential(1.0, 500)
    y = rng.exponential(1.3, 2000)
    cases.append(case("large_500x2000", x, y))
    x = rng.normal(0.5, 1.0, 2000)
    y = rng.normal(0.0, 1.0, 2000)
    cases.append(case("large_shift_tiny_p_2000x2000", x, y))
    x = rng.normal(3.0, 1.0, 300)
    y = rng.normal(0.0, 1.0, 300)
    cases.append(case("large_separation_p_1e-90_300x300", x, y))
    # constant samples
    cases.append(case("constant_equal_5x5", [2.0] * 5, [2.0] * 5))
    cases.append(case("constant_equal_20x30", [0.0] * 20, [0.0] * 30))
    cases.append(case("constant_different_5x5", [10.0] * 5, [1.0] * 5))
    cases.append(case("constant_different_12x10", [1.0] * 12, [3.0] * 10))
    cases.append(case("one_constant_6x7", [1.0] * 6, list(rng.normal(1.0, 1.0, 7))))
    doc = {
        "generator": "scripts/scipy_reference.py",
        "scipy_version": scipy.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "auto_rule": "exact when min(n, m) <= 8 and no ties, asymptotic otherwise (scipy._mwu_choose_method)",
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
