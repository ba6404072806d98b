#!/usr/bin/env python3
"""A vectorised numpy port of the default error-count test (the formulas of
src/analysis/judge/sequential/error_counts.rs, as in scripts/judge_counts_reference.py) run
over the scenarios of examples/false_rollbacks.rs, with numpy's own random numbers: an
independent check of the example's figures, and the tool the defaults were tuned with.

Run from the crate root with numpy installed (`pip install numpy`; the script installs
nothing): `python3 scripts/judge_counts_sim.py [ROLLOUTS] [SEED]` (2,000 rollouts, seed 0).
"""
import math
import sys

import numpy as np
def lse(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))).squeeze(axis)

def gen(rng, R, rps=100.0, rate=0.005, ratio=1.0, noise=("binomial",), stepping=False, diurnal=False, T=60):
    out = []
    for t in range(T):
        share = [0.1,0.25,0.5,0.75][t//15] if stepping else 0.1
        mult = 0.2 + 2.8*(1-math.cos(2*math.pi*t/T))/2 if diurnal else 1.0
        n = int(round(30*rps*mult))
        nc = rng.binomial(n, share, R); ns = n - nc
        kind = noise[0]
        if kind == "binomial":
            rc = np.full(R, rate); rs = np.full(R, rate)
        elif kind == "shared":
            k = noise[1]; r = rng.beta(rate*k, (1-rate)*k, R); rc = r; rs = r
        elif kind == "indep":
            k = noise[1]; rc = rng.beta(rate*k, (1-rate)*k, R); rs = rng.beta(rate*k, (1-rate)*k, R)
        elif kind == "bursts":
            rc = np.where(rng.random(R) < 0.03, 20*rate, rate); rs = np.where(rng.random(R) < 0.03, 20*rate, rate)
        elif kind == "spikes":
            rc = np.full(R, rate); rs = np.where(rng.random(R) < 0.05, 10*rate, rate)
        rc = np.minimum(rc*ratio, 1.0)
        out.append((rng.binomial(nc, rc), nc, rng.binomial(ns, rs), ns))
    return out

def atoms_loguniform(lo, hi, K=40, weights=None):
    l, h = math.log(lo), math.log(hi)
    lr = l + (h-l)*(np.arange(K)+0.5)/K
    w = np.full(K, 1.0/K) if weights is None else weights(lr)
    w = w/np.sum(w)
    return lr, np.log(w)

def run(data, alpha=0.02, atoms=None, cap=1.5, z=3.0, p0=0.5, psi=(1e-5, 0.1), J=40, estimated=True, kappa=1.0):
    """First rejection (1-based; 0: none) of every rollout."""
    R = len(data[0][0])
    lr, lw = atoms if atoms is not None else atoms_loguniform(1.2, 5.0)
    K = len(lr)
    plo, phi_ = map(math.log, psi)
    psis = np.concatenate([[0.0], np.exp(plo + (phi_-plo)*np.arange(J)/(J-1))])
    post = np.tile(np.concatenate([[math.log(p0)], np.full(J, math.log((1-p0)/J))]), (R,1))
    llr = np.zeros((R,K))
    mh_c = np.zeros(R); mh_s = np.zeros(R)
    st_err = np.zeros(R); st_req = np.zeros(R); st_k = np.zeros(R)
    p = np.ones(R); first = np.zeros(R, dtype=int)
    for t,(ce,cr,se,sr) in enumerate(data):
        n = (cr+sr).astype(float)
        s = np.where(n>0, cr/np.maximum(n,1), 0.5)
        a = ce.astype(float); N = (ce+se).astype(float)
        req = np.maximum(n, N)
        est = estimated & (n>0)
        m = (N>0)&(s>0)&(s<1)
        w = np.exp(post - lse(post)[:,None]); pm = w@psis
        spread = s*(1-s)*req
        phi = np.where(est, 1+kappa*spread*pm, 1.0)
        clipped = np.minimum(a, s*N + z*np.sqrt(phi*s*(1-s)*N))
        inc = (clipped[:,None]*lr[None,:] - N[:,None]*np.log1p(s[:,None]*np.expm1(lr)[None,:]))/phi[:,None]
        llr += np.where(m[:,None], np.minimum(inc, cap), 0.0)
        loge = lse(lw[None,:] + llr)
        p = np.where(m, np.minimum(p, np.exp(-loge)), p)
        # learn dispersion
        rho = (mh_c+0.5)/(mh_s+0.5)
        th = rho*s/(rho*s+1-s)
        base = th*(1-th)*N
        ok = m & est & (base>0)
        v = base[:,None]*(1+(th*(1-th)*req)[:,None]*psis[None,:])
        x = a - th*N
        upd = -0.5*np.log(np.where(ok[:,None], v, 1.0)) - np.where(ok[:,None], (x*x)[:,None]/(2*np.where(ok[:,None], v, 1.0)), 0.0)
        post = post + np.where(ok[:,None], upd, 0.0)
        mh_c += np.where(m, a*(1-s), 0); mh_s += np.where(m, (N-a)*s, 0)
        # stable wobble
        ns = (1-s)*req
        ok2 = est & (s<1) & (ns>0)
        ok3 = ok2 & (st_req>0)
        lam = (st_err+0.5)/(st_req+1)
        y = se - ns*lam
        k = np.maximum(st_k, 1)
        v2 = (ns*lam)[:,None]*(1+ns[:,None]*psis[None,:]/2) + (ns*ns*lam/np.maximum(st_req,1e-300))[:,None] + ((ns*ns*lam)/(2*k))[:,None]*psis[None,:]
        v2 = np.where(ok3[:,None], v2, 1.0)
        post = post + np.where(ok3[:,None], -0.5*np.log(v2) - (y*y)[:,None]/(2*v2), 0.0)
        post = post - post.max(axis=1, keepdims=True)
        st_err += np.where(ok2, se, 0); st_req += np.where(ok2, ns, 0); st_k += ok2
        newrej = (first==0)&(p<=alpha)
        first = np.where(newrej, t+1, first)
    return first

def wilson(k, n, z=1.959964):
    p = k/n; d = 1+z*z/n; c = (p+z*z/(2*n))/d; h = z*math.sqrt(p*(1-p)/n+z*z/(4*n*n))/d
    return 100*max(c-h,0), 100*min(c+h,1)

def summ(first):
    n = len(first); k = int(np.sum(first>0)); lo, hi = wilson(k, n)
    d = np.sort(np.where(first>0, first, 10**9)); med = d[(n-1)//2]
    return f"{k}/{n}={100*k/n:.2f}% [{lo:.2f},{hi:.2f}] med {med if med<10**9 else '>60'}"


def two_piece(lo, mid, hi, w_tail, k1=32, k2=8):
    l1, m, h = math.log(lo), math.log(mid), math.log(hi)
    a = l1 + (m - l1) * (np.arange(k1) + 0.5) / k1
    b = m + (h - m) * (np.arange(k2) + 0.5) / k2
    w = np.r_[np.full(k1, (1 - w_tail) / k1), np.full(k2, w_tail / k2)]
    return np.r_[a, b], np.log(w)


DEFAULT = dict(atoms=two_piece(1.25, 2.5, 10, 0.3, 28, 12), kappa=1.5, p0=0.9, psi=(1e-5, 0.05))
PREVIOUS = dict(atoms=atoms_loguniform(1.2, 5.0), kappa=1.0, p0=0.5, psi=(1e-5, 0.1))
AA = []
for rps in [2.0,100.0,1000.0,10000.0]: AA.append((f"binom {rps}", dict(rps=rps)))
AA.append(("shared100 1000", dict(rps=1000.0, noise=("shared",100.0))))
for k in [100.0,500.0,5000.0]:
    for rps in [2.0,100.0,1000.0,10000.0]: AA.append((f"indep{k:g} {rps:g}", dict(rps=rps, noise=("indep",k))))
AA.append(("c500 1000 diurnal", dict(rps=1000.0, noise=("indep",500.0), diurnal=True)))
AA.append(("c500 1000 steps", dict(rps=1000.0, noise=("indep",500.0), stepping=True)))
AA.append(("c500 100 diurnal+steps", dict(rps=100.0, noise=("indep",500.0), diurnal=True, stepping=True)))
AA.append(("binom 2 steps", dict(rps=2.0, stepping=True)))
AA.append(("bursts 1000", dict(rps=1000.0, noise=("bursts",))))
AA.append(("spikes 1000", dict(rps=1000.0, noise=("spikes",))))
PW = [("2x", dict(ratio=2.0)), ("1.5x", dict(ratio=1.5)), ("2x c500", dict(ratio=2.0, noise=("indep",500.0))), ("2x steps", dict(ratio=2.0, stepping=True))]


def main():
    # lanes without data compute throw-away values that np.where then discards
    np.seterr(over="ignore", divide="ignore", invalid="ignore")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    print(f"{runs} rollouts per row, seed {seed}: default test | previous default")
    for i, (name, kw) in enumerate(PW + AA):
        d = gen(np.random.default_rng(seed + i), runs, **kw)
        print(f"  {name:24s} {summ(run(d, **DEFAULT))} | {summ(run(d, **PREVIOUS))}", flush=True)


if __name__ == "__main__":
    main()
