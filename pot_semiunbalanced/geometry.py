r"""Soft-min operators ("geometries") over an N×M cost, used by the Sinkhorn engine.

A geometry knows the cost :math:`C`, the weights ``a`` (rows) and ``b`` (columns) and the
current :math:`\varepsilon`, and evaluates the two log-sum-exp reductions of Sinkhorn:

.. math::
    r_i(g) = \log \sum_j b_j e^{(g_j - C_{ij})/\varepsilon}, \qquad
    s_j(f) = \log \sum_i a_i e^{(f_i - C_{ij})/\varepsilon}.

Both return vectors in double precision (see :func:`pot_semiunbalanced._array.work_precision`).

* :class:`KernelGeometry` (the fast one) iterates on scalings: it keeps a kernel
  :math:`K_{ij} = e^{(\hat f_i + \hat g_j - C_{ij})/\varepsilon}` built around absorbed
  potentials :math:`(\hat f, \hat g)` so that every row and column of ``K`` has an entry
  of order one, and computes :math:`r = \log K(b\,v) - \hat f/\varepsilon` with
  :math:`v = e^{(g - \hat g)/\varepsilon}` — one matrix–vector product. The kernel is
  rebuilt (one exp over N×M) only when the scalings grow past a threshold, when ε changes,
  or when a row/column sum is too small to be trusted; such rows/columns are then
  recomputed exactly in the log domain. Unlike POT's stabilised solver, the absorption is
  per row and per column, never one scalar.
* :class:`LogGeometry` evaluates the log-sum-exps directly (one pass over N×M each, with
  the arguments floored to avoid the slow sub-normal ``exp``): slower, simplest, a
  reference.

Costs are given by a small "cost" object (:class:`DenseCost` here; point clouds provide
their own), so the same geometries serve the matrix API and the large-scale losses.
"""
from __future__ import annotations

import math
from typing import Optional

from . import _array as A


class DenseCost:
    """An N×M cost matrix held in memory.

    Parameters
    ----------
    C : array, shape (N, M)
        Cost matrix (numpy array, torch tensor or any POT backend array).
    nx : ot.backend.Backend
        Backend of ``C``.
    """

    def __init__(self, C, nx):
        self.C = C
        self.nx = nx
        self.shape = tuple(C.shape)

    @property
    def like(self):
        """An array with the cost's dtype and device."""
        return self.C

    def neg_into(self, out):
        """Write :math:`-C` into ``out`` (or a new array when ``out`` is None) and return it."""
        return A.neg_into(out, self.C)

    def rows(self, idx):
        return self.C[idx]

    def cols(self, idx):
        return self.C[:, idx]

    def transpose(self) -> "DenseCost":
        return DenseCost(self.C.T, self.nx)

    def span(self) -> float:
        """max(C) − min(C): the scale used to start ε-scaling."""
        nx = self.nx
        return A.to_float(nx.max(self.C) - nx.min(self.C))


def _constants(like):
    """(exp floor, range L, absorption threshold) in units of ε for the kernel dtype."""
    dt = str(getattr(like, "dtype", "float64"))
    if "64" in dt:
        return -700.0, 30.0, 500.0
    if "32" in dt:
        return -80.0, 20.0, 50.0
    raise TypeError(
        f"unsupported dtype {dt} for the cost: use float32 or float64 (half precision "
        "cannot represent entropic kernels)"
    )


class _Base:
    """Shared state: weights in log form, ε, the cost."""

    def __init__(self, cost, a, b, nx):
        self.cost = cost
        self.nx = nx
        self.a = a  # work precision
        self.b = b
        self.log_a = _safe_log(nx, a)
        self.log_b = _safe_log(nx, b)
        self.eps = None
        self.n_builds = 0

    def set_eps(self, eps: float) -> None:
        self.eps = float(eps)

    # exact log-domain reductions on a subset (or all) of the rows / columns
    def _exact_rows(self, g, idx=slice(None)):
        nx, eps = self.nx, self.eps
        Crows = A.work_precision(self.cost.rows(idx))
        return nx.logsumexp(self.log_b[None, :] + (g[None, :] - Crows) / eps, axis=1)

    def _exact_cols(self, f, idx=slice(None)):
        nx, eps = self.nx, self.eps
        Ccols = A.work_precision(self.cost.cols(idx))
        return nx.logsumexp(self.log_a[:, None] + (f[:, None] - Ccols) / eps, axis=0)


def _safe_log(nx, w):
    """log w with log 0 = -inf (without a warning)."""
    pos = w > 0
    return nx.where(pos, nx.log(nx.where(pos, w, nx.ones(w.shape, type_as=w))), -math.inf * nx.ones(w.shape, type_as=w))


class LogGeometry(_Base):
    """Exact log-domain soft-min: each reduction is one pass over the N×M cost.

    Memory: the cost plus one N×M temporary per reduction. Use :class:`KernelGeometry`
    for speed; this one is a reference and a fall-back.
    """

    def lse_rows(self, g, f=None):
        return self._exact_rows(g)

    def lse_cols(self, f, g=None):
        return self._exact_cols(f)

    def plan(self, f, g):
        nx, eps = self.nx, self.eps
        C = A.work_precision(self.cost.rows(slice(None)))
        P = nx.exp(self.log_a[:, None] + self.log_b[None, :] + (f[:, None] + g[None, :] - C) / eps)
        return A.cast_like(P, self.cost.like)


class KernelGeometry(_Base):
    """Scaling-domain soft-min with per-row / per-column absorption (see module docstring).

    Parameters
    ----------
    cost : DenseCost or compatible
        Provides ``neg_into``, ``rows``, ``cols`` and ``like``.
    a, b : arrays, shapes (N,), (M,)
        Non-negative weights, in work (double) precision.
    nx : ot.backend.Backend
    buffer : array, shape (N, M), optional
        Storage for the kernel (reused in place); allocated on first use otherwise.
    """

    def __init__(self, cost, a, b, nx, buffer=None):
        super().__init__(cost, a, b, nx)
        self.floor, self.range, self.threshold = _constants(cost.like)
        self.K = None
        self._buffer = buffer
        self.fhat = None
        self.ghat = None
        self._stale = True
        self._a_k = A.cast_like(a, cost.like)
        self._b_k = A.cast_like(b, cost.like)
        # a row / column sum below exp(floor + margin) * (sum of weights) may hold
        # floored entries at a relative level above exp(-margin): recompute it exactly.
        margin = 20.0 if self.floor > -100 else 40.0
        self._trust = math.exp(self.floor + margin)

    def set_eps(self, eps: float) -> None:
        if self.eps != float(eps):
            self._stale = True
        super().set_eps(eps)

    # ---------------------------------------------------------------- kernel
    def build(self, f, g) -> None:
        """Rebuild ``K`` around the potentials ``(f, g)`` (``f`` may be None at a cold start)."""
        nx, eps = self.nx, self.eps
        L = self.range * eps
        E = self.cost.neg_into(self._buffer)  # -C
        like = self.cost.like
        if f is None:
            # cold start: g is given, choose fhat so that every row has max exponent 0
            E = A.add_outer_(E, None, A.cast_like(g, like))
            fhat = -A.work_precision(A.amax(E, 1))
            ghat = g
            E = A.add_outer_(E, A.cast_like(fhat, like), None)
        else:
            E = A.add_outer_(E, A.cast_like(f, like), A.cast_like(g, like))
            colmax = A.work_precision(A.amax(E, 0))
            shift_c = nx.clip(colmax, -L, L) - colmax
            if A.to_float(nx.max(nx.abs(shift_c))) > 0:
                E = A.add_outer_(E, None, A.cast_like(shift_c, like))
            rowmax = A.work_precision(A.amax(E, 1))
            shift_r = nx.clip(rowmax, -L, L) - rowmax
            if A.to_float(nx.max(nx.abs(shift_r))) > 0:
                E = A.add_outer_(E, A.cast_like(shift_r, like), None)
            fhat, ghat = f + shift_r, g + shift_c
        self.K = A.scaled_exp_(E, 1.0 / eps, self.floor)
        self._buffer = self.K
        self.fhat, self.ghat = fhat, ghat
        self._stale = False
        self.n_builds += 1

    def _scaling(self, pot, hat, other_f, other_g, row_side: bool):
        """exp((pot - hat)/ε), rebuilding the kernel if it would overflow (None: cannot)."""
        nx, eps = self.nx, self.eps
        if self._stale or self.K is None:
            self.build(other_f, other_g)
            hat = self.fhat if row_side else self.ghat
        x = (pot - hat) / eps
        if A.to_float(nx.max(x)) > self.threshold:
            self.build(other_f, other_g)
            hat = self.fhat if row_side else self.ghat
            x = (pot - hat) / eps
            if A.to_float(nx.max(x)) > self.threshold:
                # potentials far from any plan (e.g. an extrapolated iterate): the
                # scalings cannot be represented, use the exact log-domain reduction
                self._stale = True
                return None
        return nx.exp(x)

    def lse_rows(self, g, f=None):
        nx = self.nx
        v = self._scaling(g, self.ghat, f, g, row_side=False)
        if v is None:
            return self._exact_rows(g)
        w = A.cast_like(v, self.cost.like) * self._b_k
        t = A.work_precision(nx.dot(self.K, w))
        out = nx.log(t) - self.fhat / self.eps
        return self._repair(out, t, A.work_precision(nx.sum(w)), lambda idx: self._exact_rows(g, idx))

    def lse_cols(self, f, g=None):
        nx = self.nx
        u = self._scaling(f, self.fhat, f, g, row_side=True)
        if u is None:
            return self._exact_cols(f)
        w = A.cast_like(u, self.cost.like) * self._a_k
        s = A.work_precision(nx.dot(self.K.T, w))
        out = nx.log(s) - self.ghat / self.eps
        return self._repair(out, s, A.work_precision(nx.sum(w)), lambda idx: self._exact_cols(f, idx))

    def _repair(self, out, sums, total, exact):
        """Recompute exactly the entries whose sum is too small to be trusted."""
        nx = self.nx
        bad = ~(sums > self._trust * total)  # also catches NaN
        if A.to_float(nx.sum(bad * 1.0)) > 0:
            self._stale = True  # rebuild around the new potentials at the next call
            if A.is_numpy(out) or A.is_torch(out):
                out = nx.copy(out) if not A.is_torch(out) else out.clone()
                out[bad] = exact(bad)
            else:
                out = nx.where(bad, exact(slice(None)), out)
        return out

    def plan(self, f, g):
        """The transport plan :math:`a_i b_j e^{(f_i+g_j-C_{ij})/\\varepsilon}`, written over the kernel.

        The kernel buffer is consumed: the geometry rebuilds it if used again.
        """
        nx, eps = self.nx, self.eps
        if self._stale or self.K is None:
            self.build(f, g)
        xu = (f - self.fhat) / eps
        xv = (g - self.ghat) / eps
        if max(A.to_float(nx.max(xu)), A.to_float(nx.max(xv))) > self.threshold:
            self.build(f, g)
            xu, xv = (f - self.fhat) / eps, (g - self.ghat) / eps
        u = A.cast_like(self.a * nx.exp(xu), self.cost.like)
        v = A.cast_like(self.b * nx.exp(xv), self.cost.like)
        P = A.scale_rows_cols_(self.K, u, v)
        self.K = None
        self._stale = True
        return P
