r"""Anderson acceleration of a fixed-point iteration :math:`x \mapsto T(x)`.

Sinkhorn with a relaxed marginal contracts at rate :math:`\tau = \rho/(\rho+\varepsilon)`
at best (0.96 at ε = 4e-4, ρ = 0.01), and slower when the balanced part mixes slowly.
Anderson mixing (type II, Walker & Ni 2011) extrapolates from the last ``depth``
iterates: with residuals :math:`r_k = T(x_k) - x_k`, it solves the small regularised
least-squares problem

.. math::
    \gamma = \arg\min_\gamma \|r_k - \Delta R\,\gamma\|^2 + \lambda\,\mathrm{tr}(\Delta R^T\Delta R)\|\gamma\|^2

and moves to :math:`x_{k+1} = T(x_k) - \Delta G\,\gamma` (:math:`\Delta R, \Delta G` hold the
successive differences of residuals and of images). A safeguard restarts the memory when
the residual grows, so the worst case is the plain iteration.

The differences live in two ring buffers and their Gram matrix is updated one row per
step, so a step costs a handful of vector operations whatever the depth.

References
----------
H. F. Walker and P. Ni, "Anderson acceleration for fixed-point iterations", SIAM J.
Numer. Anal. 49(4), 2011.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg.lapack import dposv

from . import _array as A

_TINY = float(np.finfo(float).tiny)


class Anderson:
    """Stateful Anderson mixer over backend vectors.

    Parameters
    ----------
    nx : ot.backend.Backend
        Backend of the vectors.
    depth : int
        Number of past differences used (0 disables the acceleration).
    reg : float
        Relative Tikhonov regularisation of the least-squares system.
    restart_factor : float
        Restart the memory when the residual norm exceeds this factor times the best one.
    """

    def __init__(self, nx, depth: int = 8, reg: float = 1e-10, restart_factor: float = 10.0):
        self.nx = nx
        self.depth = int(depth)
        self.reg = reg
        self.restart_factor = restart_factor
        self.n_restarts = 0
        self._dG = self._dR = None
        self.reset()

    def reset(self) -> None:
        """Forget the history (kept buffers are reused)."""
        self._last = None  # (T(x_{k-1}), r_{k-1})
        self._count = 0  # number of stored differences
        self._slot = 0
        self._gram = np.zeros((max(self.depth, 1), max(self.depth, 1)))
        self._best = np.inf

    def _restart(self, Tx, r, rnorm):
        self.reset()
        self._last = (Tx, r)
        self._best = rnorm if np.isfinite(rnorm) else np.inf
        self.n_restarts += 1
        return Tx

    def __call__(self, x, Tx, r=None):
        """Next iterate from the iterate ``x``, its image ``Tx`` and (optionally) ``Tx - x``."""
        if self.depth <= 0:
            return Tx
        nx = self.nx
        if r is None:
            r = Tx - x
        rnorm = A.to_float(nx.dot(r, r)) ** 0.5
        if not math.isfinite(rnorm) or rnorm > self.restart_factor * self._best:
            return self._restart(Tx, r, rnorm)
        self._best = min(self._best, rnorm)
        last, self._last = self._last, (Tx, r)
        if last is None:
            return Tx
        if self._dR is None or self._dR.shape[1] != r.shape[0]:
            self._dR = nx.zeros((self.depth, r.shape[0]), type_as=r)
            self._dG = nx.zeros((self.depth, r.shape[0]), type_as=r)
        k = self._slot
        dR, dG = self._dR, self._dG
        dR[k] = r - last[1]
        dG[k] = Tx - last[0]
        self._slot = (k + 1) % self.depth
        self._count = m = min(self._count + 1, self.depth)
        row = _host(nx, nx.dot(dR[:m], dR[k]))  # new row of the Gram matrix
        rhs = _host(nx, nx.dot(dR[:m], r))
        gram = self._gram
        gram[k, :m] = row
        gram[:m, k] = row
        system = gram[:m, :m].copy()
        diag = system.reshape(-1)[:: m + 1]  # a view of the diagonal
        diag += self.reg * max(float(diag.sum()), _TINY)
        _, gamma, info = dposv(system, rhs, overwrite_a=1, overwrite_b=1)  # Cholesky, SPD
        if info != 0 or not math.isfinite(float(gamma.sum())):
            return self._restart(Tx, r, rnorm)
        if not isinstance(r, np.ndarray):
            gamma = nx.from_numpy(gamma, type_as=r)
        return Tx - nx.dot(gamma, dG[:m])


def _host(nx, x) -> np.ndarray:
    """A small backend vector as a float64 numpy array (identity for numpy)."""
    return x if isinstance(x, np.ndarray) else np.asarray(nx.to_numpy(x), dtype=np.float64)
