r"""Soft-min operators ("geometries") over an N×M cost, used by the Sinkhorn engine.

A geometry knows the cost :math:`C`, the weights ``a`` (rows) and ``b`` (columns) and the
current :math:`\varepsilon`, and evaluates the two log-sum-exp reductions of Sinkhorn:

.. math::
    r_i(g) = \log \sum_j b_j e^{(g_j - C_{ij})/\varepsilon}, \qquad
    s_j(f) = \log \sum_i a_i e^{(f_i - C_{ij})/\varepsilon}.

Potentials, weights and reductions are *vectors* held by a vector backend ``vx`` in
double precision (:func:`pot_semiunbalanced._array.vector_backend`: numpy on CPU, the
kernel's backend on an accelerator); only the N×M work happens in the cost's backend
and dtype.

* :class:`KernelGeometry` (the fast one) iterates on scalings: it keeps a kernel
  :math:`K_{ij} = e^{(\hat f_i + \hat g_j - C_{ij})/\varepsilon}` built around absorbed
  potentials :math:`(\hat f, \hat g)` so that every row and column of ``K`` has an entry
  of order one, and computes :math:`r = \log K(b\,v) - \hat f/\varepsilon` with
  :math:`v = e^{(g - \hat g)/\varepsilon}` — one matrix–vector product. The kernel is
  rebuilt (one exp over N×M) only when the scalings drift past a threshold or ε
  changes; a row/column sum too small to be trusted is recomputed exactly in the log
  domain. Unlike POT's stabilised solver, the absorption is per row and per column,
  never one scalar. Its :meth:`KernelGeometry.alternating` does a whole alternating
  step with the fewest vector passes (on a hard first side the row scalings are
  :math:`a / K(bv)`, with no log/exp in between).
* :class:`LogGeometry` evaluates the log-sum-exps directly: slower, simplest, a
  reference.

Costs are small objects (:class:`DenseCost` here; point clouds provide their own) with
``like``, ``neg_into(out, scale, rows, plus)`` and ``block(rows, cols)``, so the same
geometries serve the matrix API and the large-scale losses. The kernel is built a block of
rows at a time (:func:`~._array.block_entries`), each block finished while it is in cache.
"""
from __future__ import annotations

import math

import numpy as np

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
        """An array with the cost's type, dtype and device."""
        return self.C

    def neg_into(self, out, scale: float = 1.0, rows=slice(None), plus=None):
        """Write ``-scale * C[rows] + plus[None, :]`` into ``out`` (a new array when None;
        ``plus`` may be None) and return it."""
        out = A.scaled_neg_into(out, self.C[rows], scale)
        return out if plus is None else A.add_outer_(out, None, plus)

    def block(self, rows=slice(None), cols=slice(None)):
        """The sub-matrix ``C[rows][:, cols]`` (slices or integer index arrays)."""
        return self.C[rows][:, cols]

    @property
    def rows_contiguous(self) -> bool:
        """Whether a block of rows is one contiguous piece of memory (not for a transposed
        view: the kernel is then built in one block, see ``KernelGeometry._row_blocks``)."""
        C = self.C
        return C.is_contiguous() if A.is_torch(C) else bool(C.flags.c_contiguous)

    def transpose(self) -> "DenseCost":
        return DenseCost(self.C.T, self.nx)

    def span(self) -> float:
        """max(C) − min(C): the scale used to start ε-scaling."""
        nx = self.nx
        return A.to_float(nx.max(self.C) - nx.min(self.C))


def _constants(like):
    """(exp floor, range L, drift threshold, trust margin) in units of ε for the dtype.

    The float64 floor (-600) keeps products of floored entries with scalings down to
    e^-100 above the sub-normal range (e^-708): sub-normal products made the transposed
    matrix-vector product ~25 % slower on the project's machine with a floor at -700
    (``benchmarks/results/iteration.md``)."""
    dt = str(getattr(like, "dtype", "float64"))
    if "64" in dt:
        return -600.0, 30.0, 500.0, 40.0
    if "32" in dt:
        return -80.0, 20.0, 50.0, 20.0
    raise TypeError(
        f"unsupported dtype {dt} for the cost: use float32 or float64 (half precision "
        "cannot represent entropic kernels)"
    )


def _safe_log(vx, w):
    """log w with log 0 = -inf (without a warning)."""
    pos = w > 0
    ones = vx.ones(w.shape, type_as=w)
    return vx.where(pos, vx.log(vx.where(pos, w, ones)), -math.inf * ones)


class _Base:
    """Shared state: weights (vectors), ε, the cost, exact reductions."""

    def __init__(self, cost, a, b, vx):
        self.cost = cost
        self.vx = vx
        self.a = a
        self.b = b
        self.log_a = _safe_log(vx, a)
        self.log_b = _safe_log(vx, b)
        self.eps = None
        self.n_builds = 0

    def set_eps(self, eps: float) -> None:
        self.eps = float(eps)

    # exact log-domain reductions, in blocks of at most _EXACT_BLOCK entries
    def _exact_rows(self, g, idx=None):
        """:math:`r_i(g)` for the rows ``idx`` (boolean mask / indices; all when None)."""
        vx, eps = self.vx, self.eps
        rows = _indices(idx, self.cost.shape[0])
        out = []
        for blk in _chunks(len(rows), self.cost.shape[1]):
            C = A.to_vec(self.cost.block(rows=rows[blk]))
            out.append(vx.logsumexp(self.log_b[None, :] + (g[None, :] - C) / eps, axis=1))
        return vx.concatenate(out)

    def _exact_cols(self, f, idx=None):
        """:math:`s_j(f)` for the columns ``idx``, streaming over blocks of rows."""
        vx, eps = self.vx, self.eps
        cols = _indices(idx, self.cost.shape[1])
        m_run = acc = None
        for blk in _chunks(self.cost.shape[0], len(cols)):
            C = A.to_vec(self.cost.block(rows=blk, cols=cols))
            E = self.log_a[blk, None] + (f[blk, None] - C) / eps
            m_blk = vx.max(E, axis=0)
            if m_run is None:
                m_new, acc = m_blk, 0.0
            else:
                m_new = vx.maximum(m_run, m_blk)
                acc = acc * _exp_finite(vx, m_run - m_new)
            acc = acc + vx.sum(_exp_finite(vx, E - m_new[None, :]), axis=0)
            m_run = m_new
        with np.errstate(divide="ignore"):
            return vx.log(acc) + m_run


_EXACT_BLOCK = 1 << 22  # entries per block of exact work (32 MiB in double precision)


def _chunks(n: int, width: int):
    """Slices of ``range(n)`` with at most _EXACT_BLOCK // width elements each."""
    return A.row_slices(n, _EXACT_BLOCK // max(int(width), 1))


def _indices(idx, n):
    """Integer indices from a boolean mask, an index array, or None (all)."""
    if idx is None:
        return np.arange(n)
    if A.is_torch(idx):
        return torch_nonzero(idx) if idx.dtype == A.torch.bool else idx
    idx = np.asarray(idx)
    return np.flatnonzero(idx) if idx.dtype == bool else idx


def torch_nonzero(mask):
    return A.torch.nonzero(mask).reshape(-1)


def _exp_finite(vx, x):
    """exp(x) with exp(nan) = 0, for differences of -inf running maxima."""
    e = vx.exp(x)
    return vx.where(e == e, e, 0.0 * e)


class LogGeometry(_Base):
    """Exact log-domain soft-min: each reduction is one pass over the N×M cost.

    Memory: the cost plus N×M double-precision temporaries. Use :class:`KernelGeometry`
    for speed; this one is a reference.
    """

    def lse_rows(self, g, f=None):
        return self._exact_rows(g)

    def lse_cols(self, f, g=None):
        return self._exact_cols(f)

    def plan(self, f, g):
        C = A.to_vec(self.cost.block())
        P = self.vx.exp(self.log_a[:, None] + self.log_b[None, :] + (f[:, None] + g[None, :] - C) / self.eps)
        return A.to_kernel(P, self.cost.like)


class KernelGeometry(_Base):
    """Scaling-domain soft-min with per-row / per-column absorption (see module docstring).

    Parameters
    ----------
    cost : DenseCost or compatible
    a, b : vectors, shapes (N,), (M,)
        Non-negative weights (vector backend, double precision).
    vx : ot.backend.Backend
        Vector backend.
    buffer : array, shape (N, M), optional
        Storage for the kernel (reused in place); allocated on first use otherwise.
    """

    def __init__(self, cost, a, b, vx, buffer=None):
        super().__init__(cost, a, b, vx)
        self.floor, self.range, self.threshold, margin = _constants(cost.like)
        # a sum above exp(floor + margin) * (total weight) holds floored entries at a
        # relative level below exp(-margin) (1e-9 in float32, 4e-18 in float64)
        self._trust = math.exp(self.floor + margin)
        self.K = None
        self._buffer = buffer
        self.fhat = self.ghat = None
        self._stale = True

    def set_eps(self, eps: float) -> None:
        if self.eps != float(eps):
            self._stale = True
        super().set_eps(eps)

    # ---------------------------------------------------------------- kernel
    def build(self, f, g) -> None:
        r"""Rebuild ``K`` around the potentials ``(f, g)`` (``f`` may be None at a cold start).

        The exponent matrix is formed in units of ε. Each column, then each row, is
        shifted so that its largest exponent lies in [-L, L] (L = 20 in float32, 30 in
        float64); the shifts go into :math:`(\hat f, \hat g)` and the scalings keep the
        potentials exact. At a cold start only the rows are normalised (largest exponent 0).
        """
        vx, eps, like = self.vx, self.eps, self.cost.like
        inv, L = 1.0 / eps, self.range
        gk = A.to_kernel(g * inv, like) if A.to_float(vx.max(vx.abs(g))) > 0 else None
        fk = None if f is None else A.to_kernel(f * inv, like)
        blocks, K = self._row_blocks()
        in_place = A.is_numpy(like) or A.is_torch(like)  # else one block, functional updates
        # pass 1, a row block at a time while it is in cache: (f_i + g_j - C_ij)/ε, then either
        # the row normalisation and exp (cold start) or the running column maxima
        rowmax, colmax = [], None
        for blk in blocks:
            E = self.cost.neg_into(None if K is None else K[blk], scale=inv, rows=blk, plus=gk)
            if f is None:
                rowmax.append(A.to_vec(A.amax(E, 1)))
                E = A.floored_exp_(A.add_outer_(E, A.to_kernel(-rowmax[-1], like)), self.floor)
            else:
                E = A.add_outer_(E, fk[blk])
                cm = A.to_vec(A.amax(E, 0))
                colmax = cm if colmax is None else vx.maximum(colmax, cm)
            K = K if in_place and K is not None else E  # in place: E is a view of K
        if f is None:
            fhat, ghat = -eps * vx.concatenate(rowmax), g
        else:
            # pass 2: columns, then rows, shifted into [-L, L]; exp
            shift_c = vx.clip(colmax, -L, L) - colmax
            sck = A.to_kernel(shift_c, like) if A.to_float(vx.max(vx.abs(shift_c))) > 0 else None
            shift_r = []
            for blk in blocks:
                E = A.add_outer_(K[blk], None, sck)
                rm = A.to_vec(A.amax(E, 1))
                shift_r.append(vx.clip(rm, -L, L) - rm)
                if A.to_float(vx.max(vx.abs(shift_r[-1]))) > 0:
                    E = A.add_outer_(E, A.to_kernel(shift_r[-1], like))
                E = A.floored_exp_(E, self.floor)
                K = K if in_place else E
            fhat, ghat = f + eps * vx.concatenate(shift_r), g + eps * shift_c
        self.K = K
        self._buffer = self.K
        self.fhat, self.ghat = fhat, ghat
        self._fhat_eps, self._ghat_eps = fhat * inv, ghat * inv
        self._stale = False
        self.n_builds += 1

    def _row_blocks(self):
        """``(row slices, K)``: cache-sized blocks of rows (:func:`~._array.block_entries`) of the
        kernel buffer ``K`` (allocated here). One block, and ``K`` None until the first build
        allocates it, for a cost whose rows are strided (a transposed view: the kernel then
        takes the cost's layout; a row-major kernel made the build 1.6x slower at 4000²
        here) and for a POT backend other than numpy / torch (no in-place writes there)."""
        n, m = self.cost.shape
        like = self.cost.like
        if not (A.is_numpy(like) or A.is_torch(like)):
            return [slice(None)], None
        if not getattr(self.cost, "rows_contiguous", True):  # strided rows: one pass, and a
            return [slice(None)], self._buffer  # new kernel takes the cost's memory layout
        K = self._buffer if self._buffer is not None else A.empty_matrix((n, m), like)
        return A.row_slices(n, A.block_entries(like) // max(m, 1)), K

    def lse_rows(self, g, f=None):
        return self._reduce(g, f, g, rows=True)

    def lse_cols(self, f, g=None):
        return self._reduce(f, f, g, rows=False)

    def _reduce(self, pot, f, g, rows: bool):
        r"""``rows``: :math:`r(g) = \log K(b v) - \hat f/\varepsilon`; else :math:`s(f)` with :math:`K^T(a u)`.

        The scalings are normalised by their maximum (folded back in the log), so no
        product can overflow; the kernel is re-centred when they drift past the
        threshold, and untrustworthy sums are recomputed exactly (:meth:`_repair`).
        """
        w, xmax = self._scaled(pot, lambda: f, g, rows)
        sums = self._product(w, rows)
        shift = xmax - (self._fhat_eps if rows else self._ghat_eps)
        exact = self._exact_rows if rows else self._exact_cols
        return self._log_sums(sums, A.to_float(w.sum()), shift, lambda idx: exact(pot, idx))

    def _scaled(self, pot, f_of, g, rows: bool):
        r"""``(w, xmax)``: the weighted scalings :math:`w\,e^{x - x_{max}}` of ``pot`` (x in units of ε,
        relative to the absorbed potential), after building / re-centring the kernel around
        ``(f_of(), g)`` if needed."""
        if self._stale or self.K is None:
            self.build(f_of(), g)
        x = self._relative(pot, rows)
        xmax = A.to_float(x.max())
        if xmax > self.threshold:
            self.build(f_of(), g)
            x = self._relative(pot, rows)
            xmax = A.to_float(x.max())
        x -= xmax
        w = self.vx.exp(x)
        w *= self.b if rows else self.a
        return w, xmax

    def _relative(self, pot, rows: bool):
        """``pot / ε`` minus the absorbed potential of its side (a new vector)."""
        x = pot * (1.0 / self.eps)
        x -= self._ghat_eps if rows else self._fhat_eps
        return x

    def _product(self, w, rows: bool):
        """``K @ w`` (rows) or ``K.T @ w`` (columns), as a double-precision vector."""
        return A.matvec(self.K, w, transpose=not rows)

    def _log_sums(self, sums, total: float, shift, exact):
        """``log(sums) + shift``, with the sums too small to trust recomputed by ``exact(idx)``."""
        if A.to_float(sums.min()) > self._trust * total:  # the common case: all sums trusted
            return self.vx.log(sums) + shift
        with np.errstate(divide="ignore", invalid="ignore"):  # zero sums are repaired below
            out = self.vx.log(sums) + shift
        return self._repair(out, sums, total, exact)

    def alternating(self, f_of, g, tau_a: float):
        r"""One alternating step: :math:`s(f')` with :math:`f' = -\tau_a\varepsilon\, r(g)`.

        Returns ``(s, rf)`` where ``rf()`` gives ``(r(g), f')``. On a hard first side
        (:math:`\tau_a = 1`) the row scalings are :math:`a / K(bv)` up to a constant, so
        neither ``r`` nor ``f'`` is formed here — two transcendental passes fewer per
        iteration; ``rf`` forms them when asked (at the end, or to re-centre the kernel).
        ``f_of()`` gives the previous ``f`` (only called when the kernel is rebuilt).
        """
        eps = self.eps
        wb, m = self._scaled(g, f_of, g, rows=True)
        sums_r = self._product(wb, rows=True)
        total_r = A.to_float(wb.sum())
        smin = A.to_float(sums_r.min())
        fhat_eps = self._fhat_eps

        def rows():
            return self._log_sums(sums_r, total_r, m - fhat_eps, lambda idx: self._exact_rows(g, idx))

        if tau_a == 1.0 and smin > self._trust * total_r and -math.log(smin) - m <= self.threshold:
            # f'/ε - f̂/ε = -log K(bv) - m: the column scalings a e^{f'/ε - f̂/ε} normalised by their max
            mf = -math.log(smin) - m
            ua = 1.0 / sums_r
            ua *= smin
            ua *= self.a
            sums_c = self._product(ua, rows=False)

            memo = []

            def rf():  # formed once, on first request
                if not memo:
                    r = rows()
                    memo.append((r, -eps * r))
                return memo[0]

            s = self._log_sums(sums_c, A.to_float(ua.sum()), mf - self._ghat_eps,
                               lambda idx: self._exact_cols(rf()[1], idx))
            return s, rf
        r = rows()
        f_new = -tau_a * eps * r
        s = self.lse_cols(f_new, g)
        return s, lambda: (r, f_new)

    def _repair(self, out, sums, w, exact):
        """Recompute exactly the entries whose sum is too small to be trusted."""
        vx = self.vx
        threshold = self._trust * (w if isinstance(w, float) else A.to_float(w.sum()))
        if A.to_float(sums.min()) > threshold:  # NaN compares False: repaired too
            return out
        bad = ~(sums > threshold)
        self._stale = True  # re-centre around the new potentials at the next call
        if A.is_numpy(out) or A.is_torch(out):
            out = out.clone() if A.is_torch(out) else out.copy()
            out[bad] = exact(bad)
            return out
        return vx.where(bad, exact(slice(None)), out)

    def plan(self, f, g):
        """The plan :math:`a_i b_j e^{(f_i+g_j-C_{ij})/\\varepsilon}`, written over the kernel.

        The kernel buffer is consumed: the geometry rebuilds it if used again.
        """
        vx, eps = self.vx, self.eps
        if self._stale or self.K is None:
            self.build(f, g)
        xu, xv = f / eps - self._fhat_eps, g / eps - self._ghat_eps
        if max(A.to_float(vx.max(xu)), A.to_float(vx.max(xv))) > self.threshold:
            self.build(f, g)
            xu, xv = f / eps - self._fhat_eps, g / eps - self._ghat_eps
        like = self.cost.like
        P = A.scale_rows_cols_(self.K, A.to_kernel(self.a * vx.exp(xu), like),
                               A.to_kernel(self.b * vx.exp(xv), like))
        self.K = self._buffer = None
        self._stale = True
        return P
