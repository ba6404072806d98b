#!/usr/bin/env python3
"""Generate tests/fixtures/judge-counts/sequences.json: the sequential error-count test
(`slogate judge --counts`, src/analysis/judge/sequential/error_counts.rs) on fixed inputs.

An independent implementation of the test as documented in that module's docs and in the
README ("Error counts"), written from the formulas (not translated from the Rust code):
the binomial likelihood ratio L_t(rho) = rho^a / (1 + s (rho - 1))^N, tempered by the
predictable dispersion phi_t = 1 + kappa s(1-s) n E[psi | earlier intervals] (kappa = 1.5, a
safety factor on the estimated extra variance), the canary count
clipped at s N + z sqrt(phi s(1-s) N), each interval's log-increment capped at c, mixed over
a prior on rho log-uniform on two pieces; psi's posterior (mass p0 at 0, the rest log-uniform) updated with
the Gaussian quasi-likelihoods of the residual a - theta_hat N and of stable's own count.
The `binomial` cases are the previous test (Beta(1,1) prior on the canary's share of errors
at share 1/2, 400 atoms, no tempering, no cap).

Run from the crate root with numpy installed (`pip install numpy`); the script installs
nothing itself:

    python3 scripts/judge_counts_reference.py   # rewrites tests/fixtures/judge-counts/sequences.json
 Python floats are IEEE doubles, so the Rust test compares to 1e-9.
"""
import json
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "judge-counts", "sequences.json")

# rho: log-uniform on [1.25, 2.5] with probability 0.7 (28 atoms), on [2.5, 10] with 0.3 (12 atoms)
DEFAULT = dict(alpha=0.02, rho=(1.25, 2.5, 10.0), tail=0.3, K=40, cap=1.5, z=3.0, p0=0.9, psi=(1e-5, 0.05), J=40,
               kappa=1.5, estimated=True)


def logsumexp(v):
    m = np.max(v)
    return m + math.log(np.sum(np.exp(v - m)))


def run(batches, cfg):
    if cfg.get("binomial"):
        K = 400
        s_ref = 0.5
        theta = s_ref + (np.arange(K) + 0.5) * (1 - s_ref) / K  # Beta(1,1) on [1/2, 1)
        lr = np.log(theta / (1 - theta)) - math.log(s_ref / (1 - s_ref))
        lw = np.full(K, -math.log(K))
        cap, z, estimated = math.inf, math.inf, False
    else:
        K = cfg["K"]
        lo, mid, hi = map(math.log, cfg["rho"])
        K2 = min(max(round(K * cfg["tail"]), 1), K - 1)
        K1 = K - K2
        lr = np.concatenate([lo + (mid - lo) * (np.arange(K1) + 0.5) / K1, mid + (hi - mid) * (np.arange(K2) + 0.5) / K2])
        lw = np.concatenate([np.full(K1, math.log(1 - cfg["tail"]) - math.log(K1)),
                             np.full(K2, math.log(cfg["tail"]) - math.log(K2))])
        cap, z, estimated = cfg["cap"], cfg["z"], True
    J = cfg["J"]
    plo, phi_ = map(math.log, cfg["psi"])
    psis = np.concatenate([[0.0], np.exp(plo + (phi_ - plo) * np.arange(J) / (J - 1))])
    post = np.concatenate([[math.log(cfg["p0"])], np.full(J, math.log((1 - cfg["p0"]) / J))])
    llr = np.zeros(K)
    mh_c = mh_s = 0.0
    st_err = st_req = st_k = 0.0
    last_spread = 0.0
    p = 1.0
    log_e = 0.0
    first = None
    out = []

    def psi_mean():
        w = np.exp(post - logsumexp(post))
        return float(np.sum(w * psis))

    for t, (ce, cr, se, sr) in enumerate(batches):
        n = cr + sr
        s = cr / n if n > 0 else 0.5
        a, N = float(ce), float(ce + se)
        req = max(float(n), N)
        est = estimated and n > 0
        if N > 0 and 0 < s < 1:
            spread = s * (1 - s) * req
            phi = 1 + cfg["kappa"] * spread * psi_mean() if est else 1.0
            clipped = min(a, s * N + z * math.sqrt(phi * s * (1 - s) * N)) if math.isfinite(z) else a
            inc = (clipped * lr - N * np.log1p(s * np.expm1(lr))) / phi
            llr += np.minimum(inc, cap)
            log_e = logsumexp(lw + llr)
            p = min(p, math.exp(-log_e))
            if est:
                rho = (mh_c + 0.5) / (mh_s + 0.5)
                th = rho * s / (rho * s + 1 - s)
                base = th * (1 - th) * N
                if base > 0:
                    v = base * (1 + th * (1 - th) * req * psis)
                    x = a - th * N
                    post = post - 0.5 * np.log(v) - x * x / (2 * v)
                    post -= post.max()
                last_spread = spread
            mh_c += a * (1 - s)
            mh_s += (N - a) * s
        if est and s < 1:
            ns = (1 - s) * req
            if ns > 0:
                if st_req > 0:
                    lam = (st_err + 0.5) / (st_req + 1)
                    y = se - ns * lam
                    v = ns * lam * (1 + ns * psis / 2) + ns * ns * lam / st_req + ns * ns * psis * lam / (2 * max(st_k, 1))
                    post = post - 0.5 * np.log(v) - y * y / (2 * v)
                    post -= post.max()
                st_err += se
                st_req += ns
                st_k += 1
        if first is None and p <= cfg["alpha"]:
            first = t + 1
        out.append(dict(log_e_value=log_e, p_value=p, dispersion=1 + last_spread * psi_mean() if estimated else 1.0,
                        first_reject=first))
    return out


def main():
    rng = np.random.default_rng(14)
    cases = []
    # 1. binomial errors at 100 req/s, A/A, share stepping
    b1 = []
    for t in range(20):
        s = [0.1, 0.25, 0.5, 0.75][t // 5]
        cr = int(rng.binomial(3000, s))
        b1.append((int(rng.binomial(cr, 0.005)), cr, int(rng.binomial(3000 - cr, 0.005)), 3000 - cr))
    # 2. per-arm Beta(conc 500) wobble at 1000 req/s, A/A
    b2 = []
    for t in range(20):
        cr = int(rng.binomial(30000, 0.1))
        rc, rs = rng.beta(2.5, 497.5), rng.beta(2.5, 497.5)
        b2.append((int(rng.binomial(cr, rc)), cr, int(rng.binomial(30000 - cr, rs)), 30000 - cr))
    # 3. a 3x canary at 100 req/s: rejects
    b3 = []
    for t in range(15):
        cr = int(rng.binomial(3000, 0.1))
        b3.append((int(rng.binomial(cr, 0.015)), cr, int(rng.binomial(3000 - cr, 0.005)), 3000 - cr))
    # 4. hand-written edge cases: no errors, no requests, all traffic on one side
    b4 = [(0, 300, 0, 2700), (0, 0, 0, 0), (2, 300, 10, 2700), (0, 3000, 0, 0), (5, 1500, 4, 1500), (40, 300, 10, 2700)]
    for name, b in [("binomial-aa-stepping", b1), ("beta500-aa-1000rps", b2), ("regression-3x", b3), ("edge-cases", b4)]:
        for mode in ["estimated", "binomial"]:
            cfg = dict(DEFAULT, binomial=(mode == "binomial"))
            cases.append(dict(name=f"{name}/{mode}", dispersion=mode, alpha=cfg["alpha"],
                              batches=[list(x) for x in b], expected=run(b, cfg)))
    doc = dict(source="scripts/judge_counts_reference.py (independent numpy implementation of the documented test)",
               numpy=np.__version__, cases=cases)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
