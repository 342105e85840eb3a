"""The floor iteration of ``bench_iteration.py`` compiled with numba (optional).

The same arithmetic as ``bench_iteration.floor_loop`` — exp of the scaled potential, the
two products (numpy's, on the same kernel), the hard-side scalings, the log, the update,
the relaxed-side residual (exp and expm1, in double precision) and an Anderson step of
depth 8 — with every vector pass fused into three compiled loops and the Anderson update
into a fourth. No safeguards, like the numpy floor. It answers one question: what does
an iteration cost when nothing but the two products and the unavoidable transcendental
passes remains? Needs ``pip install numba``; ``bench_iteration.py`` skips it otherwise.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _scalings(g, b, inv_eps, out):
    """``out = b * exp(g/ε - max)`` (kernel precision); returns the max."""
    xmax = -np.inf
    for j in range(g.shape[0]):
        xmax = max(xmax, g[j] * inv_eps)
    for j in range(g.shape[0]):
        out[j] = b[j] * math.exp(g[j] * inv_eps - xmax)
    return xmax


@nb.njit(cache=True)
def _hard_side(sums, a, out):
    """``out = a * min(sums) / sums``; returns ``min(sums)``."""
    smin = np.inf
    for i in range(sums.shape[0]):
        smin = min(smin, sums[i])
    for i in range(sums.shape[0]):
        out[i] = a[i] * (smin / sums[i])
    return smin


@nb.njit(cache=True)
def _relaxed_side(sums, shift, g, b, neg_tau_eps, inv_tau_eps, inv_rho, Tg, step):
    """``Tg = -τε (log sums + shift)``, ``step = Tg - g``; returns the relative residual."""
    num = 0.0
    den = 0.0
    for j in range(sums.shape[0]):
        t = neg_tau_eps * (math.log(sums[j]) + shift)
        Tg[j] = t
        step[j] = t - g[j]
        target = b[j] * math.exp(-g[j] * inv_rho)
        num += target * abs(math.expm1(-step[j] * inv_tau_eps))
        den += target
    return num / den


@nb.njit(cache=True)
def _anderson(Tg, step, last_T, last_R, dR, dG, gram, slot, count, out):
    """One Anderson step (ring buffers, Gram row update, regularised normal equations)."""
    depth, n = dR.shape
    for j in range(n):
        dR[slot, j] = step[j] - last_R[j]
        dG[slot, j] = Tg[j] - last_T[j]
    m = min(count + 1, depth)
    rhs = np.zeros(m)
    for k in range(m):
        s1 = 0.0
        s2 = 0.0
        for j in range(n):
            s1 += dR[k, j] * dR[slot, j]
            s2 += dR[k, j] * step[j]
        gram[slot, k] = s1
        gram[k, slot] = s1
        rhs[k] = s2
    G = gram[:m, :m].copy()
    trace = 0.0
    for k in range(m):
        trace += G[k, k]
    for k in range(m):
        G[k, k] += 1e-10 * max(trace, 1e-300)
    gamma = np.linalg.solve(G, rhs)
    for j in range(n):
        acc = Tg[j]
        for k in range(m):
            acc -= gamma[k] * dG[k, j]
        out[j] = acc
        last_T[j] = Tg[j]
        last_R[j] = step[j]
    return m


def numba_floor_loop(K, a, b, n_iter: int, eps: float, rho: float, anderson: bool = True) -> float:
    """``n_iter`` floor iterations on the kernel ``K``; returns the last residual."""
    tau = rho / (rho + eps)
    n, m = K.shape
    g = np.zeros(m)
    wk, uk = np.empty(m, K.dtype), np.empty(n, K.dtype)
    Tg, step = np.empty(m), np.empty(m)
    last_T, last_R = np.empty(m), np.empty(m)
    depth = 8
    dR, dG, gram = np.zeros((depth, m)), np.zeros((depth, m)), np.zeros((depth, depth))
    slot, count, started, err = 0, 0, False, math.nan
    for _ in range(n_iter):
        xmax = _scalings(g, b, 1.0 / eps, wk)
        smin = _hard_side(K @ wk, a, uk)
        err = _relaxed_side(K.T @ uk, -math.log(smin) - xmax, g, b, -tau * eps,
                            1.0 / (tau * eps), 1.0 / rho, Tg, step)
        if not anderson or not started:
            last_T[:], last_R[:] = Tg, step
            started = True
            g, Tg = Tg, g
            continue
        count = _anderson(Tg, step, last_T, last_R, dR, dG, gram, slot, count, g)
        slot = (slot + 1) % depth
    return err
