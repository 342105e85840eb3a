r"""Costs and geometries for point clouds: the N×M interactions of :mod:`.pointcloud`.

* :class:`SqEuclideanCost` — :math:`C_{ij} = \|x_i - y_j\|^2` computed on demand (into
  the dense kernel buffer, or block by block).
* dense: :class:`~.geometry.KernelGeometry` over that cost (one N×M buffer), with
  :func:`dense_products` for the envelope gradients;
* :class:`BlockedGeometry` — exact log-domain reductions over blocks of rows;
* :class:`KeOpsGeometry` — pykeops LazyTensor reductions (optional dependency);
* :func:`choose_backend` — ``"auto"``: dense when one N×M buffer fits in free memory.
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

    @property
    def like(self):
        return self.X

    def neg_into(self, out, scale: float = 1.0):
        r"""Write :math:`-C\cdot s = s(2XY^T - \|x\|^2 - \|y\|^2)` into ``out`` (allocated when None)."""
        if out is None:
            out = A.empty_matrix(self.shape, self.X)
        if A.is_torch(out):
            torch.matmul(self.X, self.Y.T, out=out)
            out.mul_(2.0 * scale).sub_(self.xx[:, None] * scale).sub_(self.yy[None, :] * scale)
        else:
            np.matmul(self.X, self.Y.T, out=out)
            out *= 2.0 * scale
            out -= self.xx[:, None] * scale
            out -= self.yy[None, :] * scale
        return out

    def neg_block(self, rows, scale: float):
        """``-scale * C[rows]`` as a new array (clamped at 0 from above against rounding)."""
        out = self.X[rows] @ self.Y.T
        if A.is_torch(out):
            out.mul_(2.0 * scale).sub_(self.xx[rows][:, None] * scale).sub_(self.yy[None, :] * scale)
            return out.clamp_(max=0.0)
        out *= 2.0 * scale
        out -= self.xx[rows][:, None] * scale
        out -= self.yy[None, :] * scale
        return np.minimum(out, 0.0, out=out)

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
    with A.flush_denormal(u):
        PY = (u[:, None] * (geom.K @ (v[:, None] * right))) * scale
        PtX = (v[:, None] * (geom.K.T @ (u[:, None] * left))) * scale
    return PY, PtX


class BlockedGeometry(_Base):
    """Exact log-domain reductions over blocks of rows: memory O(block × M).

    Each reduction recomputes the cost block by a matrix product; exponent arguments
    are floored at -80 below the running maximum (entries that small carry no mass and
    would take CPU ``exp``'s slow sub-normal path).
    """

    def __init__(self, cost: SqEuclideanCost, a, b, vx, block_size: Optional[int] = None):
        super().__init__(cost, a, b, vx)
        n, m = cost.shape
        self.block_size = int(block_size) if block_size else max(1, min(n, (1 << 24) // max(m, 1)))

    def _blocks(self):
        n = self.cost.shape[0]
        for i0 in range(0, n, self.block_size):
            yield slice(i0, min(n, i0 + self.block_size))

    def _k(self, v):
        return A.to_kernel(v, self.cost.like)

    def _neg_block(self, blk):
        """-C[blk] / ε as a fresh block (matrix product, then in-place scaling)."""
        return self.cost.neg_block(blk, 1.0 / self.eps)

    def lse_rows(self, g, f=None):
        G = self._k(g / self.eps + self.log_b)
        out = []
        for blk in self._blocks():
            E = self._neg_block(blk)
            E += G[None, :]
            out.append(_lse(E, 1))
        return A.to_vec(_cat(out))

    def lse_cols(self, f, g=None):
        F = self._k(f / self.eps + self.log_a)
        acc = _ColumnLSE()
        for blk in self._blocks():
            E = self._neg_block(blk)
            E += F[blk][:, None]
            acc.add(E)
        return A.to_vec(acc.result())

    def fused_rows_cols(self, g, coef: float):
        r"""One pass for an alternating step: :math:`r(g)`, then :math:`s(f)` with
        :math:`f = \mathrm{coef}\cdot r` — row ``i`` of ``f`` only needs row ``i`` of
        ``r``, so each cost block serves both reductions (one matrix product per
        iteration instead of two)."""
        eps = self.eps
        G = self._k(g / eps + self.log_b)
        rows, acc = [], _ColumnLSE()
        for blk in self._blocks():
            E = self._neg_block(blk)
            r_blk = A.to_vec(_lse(E + G[None, :], 1))
            rows.append(r_blk)
            E += self._k(coef * r_blk / eps + self.log_a[blk])[:, None]
            acc.add(E)
        return self.vx.concatenate(rows), A.to_vec(acc.result())

    def products(self, f, g, right, left):
        """(π @ right, πᵀ @ left) accumulated block by block."""
        eps = self.eps
        F = self._k(f / eps + self.log_a)
        G = self._k(g / eps + self.log_b)
        PY = []
        PtX = None
        for blk in self._blocks():
            P = self._neg_block(blk)
            P += F[blk][:, None]
            P += G[None, :]
            P = _exp_floor(P)
            PY.append(P @ right)
            part = P.T @ left[blk]
            PtX = part if PtX is None else PtX + part
        return _cat(PY), PtX


class _ColumnLSE:
    """Streaming column-wise log-sum-exp over blocks of rows."""

    def __init__(self):
        self.m = self.acc = None

    def add(self, E) -> None:
        bm = _amax0(E)
        if self.m is None:
            self.m, self.acc = bm, _sumexp0(E, bm)
            return
        new = _maximum(self.m, bm)
        self.acc = self.acc * _exp(self.m - new) + _sumexp0(E, new)
        self.m = new

    def result(self):
        return _log(self.acc) + self.m


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
def _lse(E, axis):
    if A.is_torch(E):
        m = E.amax(axis, keepdim=True)
        E = (E - m).clamp_(min=-80.0).exp_()
        return E.sum(axis).log_() + m.squeeze(axis)
    m = E.max(axis, keepdims=True)
    E = np.exp(np.maximum(E - m, -80.0))
    return np.log(E.sum(axis)) + m.squeeze(axis)


def _amax0(E):
    return E.amax(0) if A.is_torch(E) else E.max(0)


def _sumexp0(E, m):
    if A.is_torch(E):
        return (E - m[None, :]).clamp_(min=-80.0).exp_().sum(0)
    return np.exp(np.maximum(E - m[None, :], -80.0)).sum(0)


def _maximum(x, y):
    return torch.maximum(x, y) if A.is_torch(x) else np.maximum(x, y)


def _exp(x):
    return torch.exp(x) if A.is_torch(x) else np.exp(x)


def _log(x):
    return torch.log(x) if A.is_torch(x) else np.log(x)


def _exp_floor(E):
    if A.is_torch(E):
        return E.clamp_(min=-100.0).exp_()
    return np.exp(np.maximum(E, -100.0, out=E), out=E)


def _cat(xs):
    return torch.cat(xs) if A.is_torch(xs[0]) else np.concatenate(xs)


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
    """``"dense"`` if one N×M buffer takes less than ``fraction`` of the free memory,
    else ``"keops"`` when pykeops is installed, else ``"blocked"``."""
    itemsize = 8 if "64" in str(like.dtype) else 4
    if n * m * itemsize <= fraction * free_memory_bytes(like):
        return "dense"
    if A.is_torch(like) and _keops_available():
        return "keops"
    return "blocked"


def make_geometry(backend, cost, aw, bw, vx, block_size):
    if backend == "dense":
        return KernelGeometry(cost, aw, bw, vx)
    if backend == "blocked":
        return BlockedGeometry(cost, aw, bw, vx, block_size=block_size)
    if backend == "keops":
        return KeOpsGeometry(cost, aw, bw, vx)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def transport_products(geom, f, g, right, left):
    if isinstance(geom, KernelGeometry):
        return dense_products(geom, f, g, right, left)
    return geom.products(f, g, right, left)
