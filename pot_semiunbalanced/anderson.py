r"""Anderson acceleration of a fixed-point iteration :math:`x \mapsto T(x)`.

Sinkhorn with a relaxed marginal contracts at rate :math:`\tau = \rho/(\rho+\varepsilon)`
at best (0.96 at ε = 4e-4, ρ = 0.01), and slower when the balanced part mixes slowly.
Anderson mixing (type II, Walker & Ni 2011) extrapolates from the last ``depth``
iterates: with residuals :math:`r_k = T(x_k) - x_k`, it solves the small regularised
least-squares problem

.. math::
    \gamma = \arg\min_\gamma \|r_k - \Delta R\,\gamma\|^2 + \lambda\|\Delta R\|_F^2\|\gamma\|^2

and moves to :math:`x_{k+1} = T(x_k) - \Delta G\,\gamma` (:math:`\Delta R, \Delta G` hold the
successive differences of residuals and of images). A safeguard restarts the memory when
the residual grows, so the worst case is the plain iteration.

References
----------
H. F. Walker and P. Ni, "Anderson acceleration for fixed-point iterations", SIAM J.
Numer. Anal. 49(4), 2011.
"""
from __future__ import annotations

import numpy as np

from . import _array as A


class Anderson:
    """Stateful Anderson mixer over backend vectors.

    Parameters
    ----------
    nx : ot.backend.Backend
    depth : int
        Number of past iterates used (0 disables the acceleration).
    reg : float
        Relative Tikhonov regularisation of the least-squares system.
    restart_factor : float
        Restart the memory when the residual norm exceeds this factor times the best one.
    """

    def __init__(self, nx, depth: int = 5, reg: float = 1e-10, restart_factor: float = 10.0):
        self.nx = nx
        self.depth = int(depth)
        self.reg = reg
        self.restart_factor = restart_factor
        self.reset()

    def reset(self) -> None:
        self._G = []  # images T(x_k)
        self._R = []  # residuals T(x_k) - x_k
        self._best = np.inf
        self.n_restarts = getattr(self, "n_restarts", 0)

    def __call__(self, x, Tx):
        """Next iterate from the current iterate ``x`` and its image ``Tx``."""
        if self.depth <= 0:
            return Tx
        nx = self.nx
        r = Tx - x
        rnorm = A.to_float(nx.sqrt(nx.sum(r * r)))
        if not np.isfinite(rnorm) or rnorm > self.restart_factor * self._best:
            self._G, self._R = [], []
            self._best = rnorm if np.isfinite(rnorm) else np.inf
            self.n_restarts += 1
            return Tx
        self._best = min(self._best, rnorm)
        self._G.append(Tx)
        self._R.append(r)
        if len(self._R) > self.depth + 1:
            self._G.pop(0)
            self._R.pop(0)
        if len(self._R) < 2:
            return Tx
        dR = nx.stack([self._R[k + 1] - self._R[k] for k in range(len(self._R) - 1)])
        dG = nx.stack([self._G[k + 1] - self._G[k] for k in range(len(self._G) - 1)])
        gram = nx.to_numpy(nx.dot(dR, dR.T)).astype(np.float64)
        rhs = nx.to_numpy(nx.dot(dR, r)).astype(np.float64)
        lam = self.reg * max(np.trace(gram), np.finfo(float).tiny)
        try:
            gamma = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        except np.linalg.LinAlgError:
            self._G, self._R = [], []
            self.n_restarts += 1
            return Tx
        if not np.all(np.isfinite(gamma)):
            self._G, self._R = [], []
            self.n_restarts += 1
            return Tx
        return Tx - nx.dot(nx.from_numpy(gamma, type_as=Tx), dG)
