#!/usr/bin/env python3
# A/A false rollbacks of the sequential latency test (compare.sequential, the exact horizon test)
# on p99s read from Istio-style histogram buckets, as Prometheus's histogram_quantile gives them:
# lognormal latencies, a 1% slow tail, per-version per-interval wobble, Poisson traffic split by
# the step weights. "old" waits for a differing value when the first differences are identical,
# "new" (src/analysis/judge/sequential/horizon.rs) decides such a constant shift at once; 2,000
# rollouts per row, alpha 0.02. Needs numpy and scipy.
# A/A false rollbacks of the horizon test on histogram-quantized p99 differences, old vs new
# handling of identical burn-in differences.
import numpy as np
from scipy.stats import t as tdist
rng = np.random.default_rng(7)
B = np.array([0.5,1,5,10,25,50,100,250,500,1000,2500,5000,10000])
def p99(lat):
    c = np.histogram(lat, bins=np.concatenate([[0],B,[np.inf]]))[0].cumsum()
    n = c[-1]
    if n == 0: return np.nan
    r = 0.99*n
    i = np.searchsorted(c, r)  # first bucket with cum >= r
    if i >= len(B): return B[-1]
    lo = 0 if i == 0 else B[i-1]; below = 0 if i == 0 else c[i-1]
    return lo + (B[i]-lo)*(r-below)/(c[i]-below)
def test(ds, K, m, alpha, new):
    s = None; S = 0; mx = 0; burn = []
    for k, d in enumerate(ds[:K]):
        S += d
        if s is None:
            burn.append(d)
            if len(burn) >= m:
                a = np.array(burn); mean = a.mean(); var = a.var(ddof=1)
                ident = a.max()-a.min() <= abs(mean)*1e-9
                if (not ident or not new) and var > 0: s = (np.sqrt(var), len(a)-1)
                elif new and ident and abs(mean) > 1e-12: s = (abs(mean)*1e-9, len(a)-1)
        if s is not None:
            mx = max(mx, S)
            p = 2*tdist.sf(mx/(s[0]*np.sqrt(K)), s[1])
            if p <= alpha: return True
    return False
def run(name, K, m, shares, rps, interval, sigma, median, N=2000):
    old = new = 0
    for _ in range(N):
        ds = []
        for k in range(K):
            sh = shares[min(k*len(shares)//K, len(shares)-1)]
            n = rng.poisson(rps*interval)
            nc = rng.binomial(n, sh); ns = n - nc
            lat = lambda q: median*np.exp(sigma*rng.standard_normal(q))
            ds.append(p99(lat(nc)) - p99(lat(ns)))
        ds = [d for d in ds if np.isfinite(d)]
        old += test(ds, K, m, 0.02, False); new += test(ds, K, m, 0.02, True)
    print(f"{name:55s} old {old/N:6.2%}  new {new/N:6.2%}")
print("-- tails and per-interval wobble (bursty): 1% of requests 2.5x slower, median wobbles per version and interval")
def run2(name, K, m, shares, rps, interval, tail, wob, N=2000):
    old = new = 0
    for _ in range(N):
        ds = []
        for k in range(K):
            sh = shares[min(k*len(shares)//K, len(shares)-1)]
            n = rng.poisson(rps*interval); nc = rng.binomial(n, sh); ns = n-nc
            def lat(q):
                med = 20*np.exp(wob*rng.standard_normal())
                x = med*np.exp(0.1*rng.standard_normal(q))
                return np.where(rng.random(q) < tail, x*2.5, x)
            ds.append(p99(lat(nc)) - p99(lat(ns)))
        ds = [d for d in ds if np.isfinite(d)]
        old += test(ds, K, m, 0.02, False); new += test(ds, K, m, 0.02, True)
    print(f"{name:55s} old {old/N:6.2%}  new {new/N:6.2%}")
for rps in [2, 10, 100]:
    for wob in [0.0, 0.15]:
        run2(f"5 steps, m=2, {rps} req/s, tail 1%, wobble {wob}", 5, 2, [.1,.25,.5,.75,1.0], rps, 30, 0.01, wob)
        run2(f"61 intervals, m=20, {rps} req/s, tail 1%, wobble {wob}", 61, 20, [.1]*60+[.5], rps, 30, 0.01, wob)
