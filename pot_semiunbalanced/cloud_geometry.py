r"""Costs and geometries for point clouds: the N×M interactions of :mod:`.pointcloud`.

* :class:`SqEuclideanCost` — :math:`C_{ij} = \|x_i - y_j\|^2` computed on demand (into
  the dense kernel buffer, or block by block).
* dense: :class:`~.geometry.KernelGeometry` over that cost (one N×M buffer), with
  :func:`dense_products` for the envelope gradients;
* :class:`BlockedGeometry` — exact reductions over blocks of rows, one pass over the
  cost per alternating step;
* :class:`KeOpsGeometry` — pykeops LazyTensor reductions (optional dependency);
* :func:`choose_backend` — ``"auto"``: dense when one N×M buffer fits in free memory,
  else KeOps on a GPU (when installed) and blocked otherwise.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from . import _array as A
from .geometry import KernelGeometry, _Base

BACKENDS = ("auto", "dense", "blocked", "keops")


# ======================================================================== costs
class SqEuclideanCost:
    r"""Squared Euclidean cost between two point clouds, computed on demand.

    Both clouds are centred on a common point (the cost is translation invariant), which
    shrinks the norms in :math:`\|x\|^2 + \|y\|^2 - 2\langle x, y\rangle` and with them the
    float32 cancellation error.
    """

    def __init__(self, X, Y):
        center = (X.mean(0) * X.shape[0] + Y.mean(0) * Y.shape[0]) / (X.shape[0] + Y.shape[0])
        self.X = X - center
        self.Y = Y - center
        self.xx = (self.X * self.X).sum(1)
        self.yy = (self.Y * self.Y).sum(1)
        self.shape = (X.shape[0], Y.shape[0])
        self._aug = self._ys = None  # augmented clouds; (scale, scale * Y')

    @property
    def like(self):
        return self.X

    def neg_into(self, out, scale: float = 1.0, rows=slice(None), plus=None):
        """Write ``-scale * C[rows] + plus[None, :]`` into ``out`` (allocated when None;
        ``plus`` may be None): one matrix product of the augmented clouds, no further pass
        (torch fuses ``plus`` into it)."""
        Xa = self.augmented()[0][rows]
        if self._ys is None or self._ys[0] != scale:
            self._ys = (scale, self.augmented()[1] * scale)
        Yt = self._ys[1].T
        if out is None:
            out = A.empty_matrix((Xa.shape[0], self.shape[1]), self.X)
        if A.is_torch(out):
            if plus is None:
                return torch.matmul(Xa, Yt, out=out)
            return torch.addmm(plus[None, :], Xa, Yt, out=out)
        np.matmul(Xa, Yt, out=out)
        if plus is not None:
            out += plus[None, :]
        return out

    def augmented(self):
        r"""``(X', Y')`` with :math:`X' = [X, 1, -\|x\|^2]` and :math:`Y' = [2Y, -\|y\|^2, 1]`, so
        that :math:`X' Y'^T = -C` in one matrix product (built once, then cached)."""
        if self._aug is None:
            self._aug = (_hstack([self.X, self.X[:, :1] * 0 + 1, -self.xx[:, None]]),
                         _hstack([2.0 * self.Y, -self.yy[:, None], self.Y[:, :1] * 0 + 1]))
        return self._aug

    def block(self, rows=slice(None), cols=slice(None)):
        """Cost block ``C[rows][:, cols]`` (clamped at 0 against rounding)."""
        Xb, Yb = self.X[rows], self.Y[cols]
        C = self.xx[rows][:, None] + self.yy[cols][None, :] - 2.0 * (Xb @ Yb.T)
        if A.is_torch(C):
            return C.clamp_(min=0.0)
        return np.maximum(C, 0.0, out=C)

    def span(self) -> float:
        """An upper bound of max C (the diameter² used to start ε-scaling)."""
        rx = math.sqrt(A.to_float(self.xx.max()))
        ry = math.sqrt(A.to_float(self.yy.max()))
        return (rx + ry) ** 2


# ======================================================================== geometries
def dense_products(geom: KernelGeometry, f, g, right, left):
    """(π @ right, πᵀ @ left) with π = diag(a u) K diag(b v), never forming π."""
    vx, eps, like = geom.vx, geom.eps, geom.cost.like
    if geom._stale or geom.K is None:
        geom.build(f, g)
    xu, xv = f / eps - geom._fhat_eps, g / eps - geom._ghat_eps
    mu, mv = A.to_float(xu.max()), A.to_float(xv.max())
    u = A.to_kernel(geom.a * vx.exp(xu - mu), like)
    v = A.to_kernel(geom.b * vx.exp(xv - mv), like)
    scale = math.exp(mu + mv)
    PY = (u[:, None] * A.matmul(geom.K, v[:, None] * right)) * scale
    PtX = (v[:, None] * A.matmul(geom.K, u[:, None] * left, transpose=True)) * scale
    return PY, PtX


class BlockedGeometry(_Base):
    r"""Exact reductions over blocks of rows: memory O(block × M).

    Each pass recomputes a block :math:`E_{ij} = (g_j - C_{ij})/\varepsilon` by one matrix
    product (:meth:`SqEuclideanCost.augmented`) into a buffer reused for every block, and
    exponentiates it in place relative to its row maximum :math:`m_i`:
    :math:`T_{ij} = e^{E_{ij} - m_i}`, floored at
    :math:`e^{-80}` (entries that small carry no mass and would take CPU ``exp``'s slow
    sub-normal path). Then

    .. math::
        r_i(g) = \log \textstyle\sum_j b_j T_{ij} + m_i, \qquad
        s_j(f) = \log \textstyle\sum_i e^{h_i} T_{ij} - g_j/\varepsilon,

    with :math:`h_i = \log a_i + f_i/\varepsilon + m_i`: both sums are
    matrix–vector products with the same block (the column sums carry one running scale,
    :class:`_ScaledColumnSums`), so an alternating step is one pass over the cost
    (:meth:`fused_rows_cols`). A sum too small to be trusted against the floored entries
    is recomputed exactly in the log domain, as in :class:`~.geometry.KernelGeometry`.
    """

    def __init__(self, cost: SqEuclideanCost, a, b, vx, block_size: Optional[int] = None):
        super().__init__(cost, a, b, vx)
        n, m = cost.shape
        entries = A.block_entries(cost.like)
        self.block_size = int(block_size) if block_size else max(1, min(n, entries // max(m, 1)))
        self._buffer = None
        self._b_k = self._k(b)
        # a row sum Σ_j b_j T_ij holds the floored entries at a relative level below e^-MARGIN
        self._row_trust = math.exp(_FLOOR + _MARGIN) * A.to_float(b.sum())

    def _blocks(self):
        return A.row_slices(self.cost.shape[0], self.block_size)

    def _k(self, v):
        return A.to_kernel(v, self.cost.like)

    def _normalised(self, g):
        r"""``(blk, T, m)`` for each block of rows (see the class docstring): ``T`` a kernel
        array, ``m`` the row maxima as a vector.

        ``-C/ε`` comes from one matrix product with the augmented clouds (a fixed function of
        ``(i, j)``, rounding included); ``g/ε`` is added apart, so that the large terms
        :math:`\|y_j\|^2/\varepsilon` never round the potential."""
        G = self._k(g * (1.0 / self.eps))
        n, m = self.cost.shape
        if self._buffer is None:  # one block, reused: no allocation per block
            self._buffer = A.empty_matrix((min(self.block_size, n), m), self.cost.like)
        for blk in self._blocks():
            out = self._buffer[: blk.stop - blk.start]
            E = self.cost.neg_into(out, 1.0 / self.eps, rows=blk, plus=G)  # (g_j - C_ij)/ε
            rowmax = A.amax(E, 1)
            yield blk, A.floored_exp_(A.add_outer_(E, -rowmax), _FLOOR), A.to_vec(rowmax)

    def _rows(self, blk, T, m):
        """``(r, log S, trusted)`` of a block: :math:`S_i = \\sum_j b_j T_{ij}`."""
        S = A.to_vec(A.matmul(T, self._b_k))
        with np.errstate(divide="ignore"):
            log_s = self.vx.log(S)
        return log_s + m, log_s, S > self._row_trust

    def _rows_repaired(self, g, rows, trusted):
        r, ok = self.vx.concatenate(rows), self.vx.concatenate(trusted)
        if not bool(ok.all()):
            r[~ok] = self._exact_rows(g, ~ok)
        return r

    def lse_rows(self, g, f=None):
        rows, trusted = [], []
        for blk, T, m in self._normalised(g):
            r, _, ok = self._rows(blk, T, m)
            rows.append(r)
            trusted.append(ok)
        return self._rows_repaired(g, rows, trusted)

    def lse_cols(self, f, g=None):
        g = self.vx.zeros(self.cost.shape[1], type_as=f) if g is None else g
        inv = 1.0 / self.eps
        sums = _ScaledColumnSums()
        for blk, T, m in self._normalised(g):
            sums.add(T, self.log_a[blk] + f[blk] * inv + m, self.vx)
        return self._cols(sums, f, g)

    def _cols(self, sums, f, g):
        log_sums, ok = sums.result(self.vx, self.cost.shape[1], g)
        s = log_sums - g * (1.0 / self.eps)
        if not bool(ok.all()):
            s[~ok] = self._exact_cols(f, ~ok)
        return s

    def fused_rows_cols(self, g, coef: float):
        r"""One pass for an alternating step: :math:`r(g)`, then :math:`s(f)` with
        :math:`f = \mathrm{coef}\cdot r` — row ``i`` of ``f`` only needs row ``i`` of
        ``r``, so each block serves both reductions: :math:`h_i = \log a_i +
        (1 + \mathrm{coef}/\varepsilon)\, r_i - \log S_i`. If a row sum of a block is not
        trusted, the column sums are finished by a separate pass instead."""
        rows, trusted = [], []
        sums, fused = _ScaledColumnSums(), True
        for blk, T, m in self._normalised(g):
            r, log_s, ok = self._rows(blk, T, m)
            rows.append(r)
            trusted.append(ok)
            fused = fused and bool(ok.all())
            if fused:
                sums.add(T, self.log_a[blk] + (1.0 + coef / self.eps) * r - log_s, self.vx)
        r = self._rows_repaired(g, rows, trusted)
        f = coef * r
        return r, (self._cols(sums, f, g) if fused else self.lse_cols(f, g))

    def products(self, f, g, right, left):
        r"""(π @ right, πᵀ @ left) block by block, from the same normalised blocks as the
        reductions, :math:`\pi_{ij} = a_i e^{f_i/\varepsilon + m_i}\, T_{ij}\, b_j`, so that
        the plan agrees with ``r`` and ``s`` to rounding (the envelope gradients take
        differences of the two)."""
        vx, like, inv = self.vx, self.cost.like, 1.0 / self.eps
        b_right = self._b_k[:, None] * right
        PY, PtX = [], None
        for blk, T, m in self._normalised(g):
            x = self.log_a[blk] + f[blk] * inv + m
            xmax = A.to_float(vx.max(x))
            if xmax == -math.inf:  # rows without mass
                PY.append(vx.zeros((x.shape[0], right.shape[1]), type_as=x))
                continue
            u = vx.exp(x - xmax)
            PY.append(A.to_vec(A.matmul(T, b_right)) * u[:, None])
            part = A.to_vec(A.matmul(T, self._k(u)[:, None] * left[blk], transpose=True))
            part *= math.exp(xmax)
            PY[-1] *= math.exp(xmax)
            PtX = part if PtX is None else PtX + part
        return A.to_kernel(vx.concatenate(PY), like), A.to_kernel(PtX * self.b[:, None], like)


class _ScaledColumnSums:
    r"""Column sums :math:`\sum_i e^{h_i} T_{ij}` over blocks of rows, kept as
    :math:`e^{H}\cdot` ``acc`` with one running scale :math:`H` (the largest :math:`h_i`
    so far), so that the weights :math:`e^{h_i - H}` passed to the product are at most 1.

    ``bound`` is the matching :math:`e^{-H}`-scaled bound on what the floors can add to a
    column: the floored entries (:math:`e^{-80}` times the weights) and the weights that
    fall below the kernel's smallest normal number (:math:`e^{-87}` per row in float32).
    """

    def __init__(self):
        self.H = -math.inf
        self.acc = None
        self.bound = 0.0

    def add(self, T, h, vx) -> None:
        hmax = A.to_float(vx.max(h))
        if hmax == -math.inf:  # no mass in these rows
            return
        w = vx.exp(h - hmax)
        part = A.matvec(T, w, transpose=True)
        bound = A.to_float(w.sum()) + math.exp(-7.0) * h.shape[0]
        if self.acc is None:
            self.acc, self.H, self.bound = part, hmax, bound
        elif hmax <= self.H:
            c = math.exp(hmax - self.H)
            self.acc += c * part
            self.bound += c * bound
        else:
            c = math.exp(self.H - hmax)
            self.acc = self.acc * c + part
            self.bound = self.bound * c + bound
            self.H = hmax

    def result(self, vx, m: int, like):
        """``(log sums, trusted)``; with no mass at all every column is untrusted (exact)."""
        if self.acc is None:
            return vx.zeros(m, type_as=like) - math.inf, vx.zeros(m, type_as=like) > 0
        with np.errstate(divide="ignore"):
            log_acc = vx.log(self.acc)
        return log_acc + self.H, self.acc > math.exp(_FLOOR + _MARGIN) * self.bound


class KeOpsGeometry(_Base):
    """Log-domain reductions with pykeops LazyTensors: memory O(N + M)."""

    def __init__(self, cost: SqEuclideanCost, a, b, vx):
        super().__init__(cost, a, b, vx)
        try:
            from pykeops.torch import LazyTensor
        except ImportError:  # pragma: no cover - exercised when pykeops is absent
            raise ImportError(
                "backend='keops' needs pykeops: install it with `pip install pykeops` "
                "(or `pip install pot-semiunbalanced[keops]`), or use backend='dense' / 'blocked'"
            ) from None
        if not A.is_torch(cost.X):
            raise TypeError("backend='keops' needs torch tensors")
        self._LT = LazyTensor
        X, Y = cost.X.contiguous(), cost.Y.contiguous()
        self._x_i = LazyTensor(X[:, None, :])
        self._y_j = LazyTensor(Y[None, :, :])
        self._x_j = LazyTensor(X[None, :, :])
        self._y_i = LazyTensor(Y[:, None, :])

    def _k(self, v):
        return A.to_kernel(v, self.cost.like)

    def lse_rows(self, g, f=None):
        LT = self._LT
        G = LT(self._k(g / self.eps + self.log_b)[None, :, None])
        C = ((self._x_i - self._y_j) ** 2).sum(-1)
        return A.to_vec((G - C * (1.0 / self.eps)).logsumexp(dim=1).reshape(-1))

    def lse_cols(self, f, g=None):
        LT = self._LT
        F = LT(self._k(f / self.eps + self.log_a)[None, :, None])
        C = ((self._y_i - self._x_j) ** 2).sum(-1)
        return A.to_vec((F - C * (1.0 / self.eps)).logsumexp(dim=1).reshape(-1))

    def products(self, f, g, right, left):
        LT, eps = self._LT, self.eps
        F = self._k(f / eps + self.log_a)
        G = self._k(g / eps + self.log_b)
        C = ((self._x_i - self._y_j) ** 2).sum(-1)
        logP = LT(F[:, None, None]) + LT(G[None, :, None]) - C * (1.0 / eps)
        PY = (logP.exp() * LT(right[None, :, :])).sum(dim=1)
        Ct = ((self._y_i - self._x_j) ** 2).sum(-1)
        logPt = LT(G[:, None, None]) + LT(F[None, :, None]) - Ct * (1.0 / eps)
        PtX = (logPt.exp() * LT(left[None, :, :])).sum(dim=1)
        return PY, PtX


# -- small array helpers for the blocked geometry (numpy or torch) -----------------
_FLOOR = -80.0  # exponents are floored this far below their row maximum
_MARGIN = 20.0  # a sum above e^(FLOOR + MARGIN) × its bound on floored mass is trusted


def _hstack(cols):
    return torch.cat(cols, 1) if A.is_torch(cols[0]) else np.concatenate(cols, 1)


# ======================================================================== backend choice
def free_memory_bytes(like) -> float:
    """Free memory where ``like`` lives: CUDA free bytes, else Linux MemAvailable (4 GB if unknown)."""
    if A.is_torch(like) and like.device.type == "cuda":
        return float(torch.cuda.mem_get_info(like.device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return 4e9  # unknown platform: assume a modest machine


def _keops_available() -> bool:
    try:
        import pykeops  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(n: int, m: int, like, *, fraction: float = 0.5) -> str:
    """``"dense"`` if one N×M buffer takes less than ``fraction`` of the free memory; else
    ``"keops"`` for CUDA tensors when pykeops is installed, else ``"blocked"``.

    On a CPU the blocked back end is the faster of the two by far (N = M = 4000, d = 36,
    float32, OT_{ε,ρ,ρ}, forward + backward on the project's 2-core machine: blocked
    0.65 s, KeOps 19.9 s, dense 0.36 s; ``benchmarks/results/pointcloud_geomloss.md``)."""
    itemsize = 8 if "64" in str(like.dtype) else 4
    if n * m * itemsize <= fraction * free_memory_bytes(like):
        return "dense"
    if A.is_torch(like) and like.device.type == "cuda" and _keops_available():
        return "keops"
    return "blocked"


def make_geometry(backend, cost, aw, bw, vx, block_size, buffer=None):
    if backend == "dense":
        return KernelGeometry(cost, aw, bw, vx, buffer=buffer)
    if backend == "blocked":
        return BlockedGeometry(cost, aw, bw, vx, block_size=block_size)
    if backend == "keops":
        return KeOpsGeometry(cost, aw, bw, vx)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def transport_products(geom, f, g, right, left):
    if isinstance(geom, KernelGeometry):
        return dense_products(geom, f, g, right, left)
    return geom.products(f, g, right, left)
