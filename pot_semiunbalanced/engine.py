r"""One Sinkhorn engine for OT_ε, OT_{ε,ρ} and OT_{ε,ρ,ρ}.

The loop only sees a geometry (two soft-min reductions, :mod:`.geometry`), the two sides
(damping factors :math:`\tau`, :mod:`.problem`) and ε. Balanced OT is the case
:math:`\tau_a = \tau_b = 1`; there is no separate code path.

Methods
-------
``"alternating"`` (the paper's Theorem 1, with the corrected factor)
    :math:`f \leftarrow -\tau_a\varepsilon\, r(g)`, then
    :math:`g \leftarrow -\tau_b\varepsilon\, s(f)`. The state is ``g``; each iteration
    ends right after an ``f`` update, so a hard first marginal holds exactly for the
    returned pair and eq. (6) of the paper holds.
``"symmetric"`` (the paper's averaged scheme, after Feydy's thesis)
    both potentials are updated from the previous pair and averaged with it; a final
    non-averaged ``g`` then ``f`` update restores :math:`\pi\mathbf 1 = a`.

Acceleration: Anderson mixing (:mod:`.anderson`) on the state. ε-scaling: a geometric
schedule from ``eps0`` down to ε with one iteration per intermediate value (as GeomLoss),
then iterations at ε until the error is below ``stopThr``.

Error: the relative L1 residual of each marginal against its optimality condition —
:math:`\|\pi_1 - a\|_1/\|a\|_1` on a hard side and
:math:`\|\pi_1 - a e^{-f/\rho}\|_1 / \|a e^{-f/\rho}\|_1` on a relaxed side (same for
:math:`\pi_2`); the error of an iteration is the larger of the two. Both come for free from
the reductions the iteration computes anyway.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from . import _array as A
from .anderson import Anderson
from .problem import Side

logger = logging.getLogger("pot_semiunbalanced")
logger.addHandler(logging.NullHandler())  # a library does not configure logging

METHODS = ("alternating", "symmetric")


@dataclass
class IterationInfo:
    """What a progress callback receives after each iteration."""

    iteration: int
    error: float
    eps: float
    stage: int
    n_stages: int


@dataclass
class SinkhornOutput:
    """Result of :func:`solve`: potentials, diagnostics, and the last reductions.

    ``r = lse_rows(g)`` and ``s = lse_cols(f)`` are those of the returned pair, so the
    marginals of the plan are :math:`a e^{f/\\varepsilon + r}` and :math:`b e^{g/\\varepsilon + s}`.
    """

    f: object
    g: object
    r: object
    s: object
    eps: float
    n_iter: int
    converged: bool
    errors: List[float] = field(default_factory=list)
    error_a: float = math.nan
    error_b: float = math.nan
    n_kernel_builds: int = 0
    n_restarts: int = 0


def relative_residual(nx, w, log_p, log_target) -> float:
    r"""Relative L1 distance :math:`\|w e^{\log p} - w e^{\log t}\|_1 / \|w e^{\log t}\|_1`."""
    target = w * nx.exp(log_target)
    num = nx.sum(nx.abs(w * nx.exp(log_p) - target))
    den = nx.sum(target)
    return A.to_float(num) / max(A.to_float(den), 1e-300)


def update_residual(nx, w, pot, step, side: Side, eps: float) -> float:
    r"""Marginal residual of a side from the update step ``T(pot) - pot``.

    With :math:`T(p) = -\tau\varepsilon\,\ell` the marginal is
    :math:`w e^{p/\varepsilon + \ell}` and its optimal value :math:`w e^{-p/\rho}` (``w`` on a
    hard side), so their ratio is :math:`e^{-(T(p) - p)/(\tau\varepsilon)}`; the result equals
    :func:`relative_residual` at a fraction of the cost, reusing the step Anderson needs.
    """
    target = w if side.hard else w * nx.exp(pot * (-1.0 / side.rho))
    ratio_m1 = A.expm1(step * (-1.0 / (side.tau(eps) * eps)))
    return A.to_float(nx.dot(target, abs(ratio_m1))) / max(A.to_float(target.sum()), 1e-300)


def _is_number(x) -> bool:
    """A real number (Python, numpy or a 0-d tensor), not a string or None."""
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return not isinstance(x, (str, bytes))


def eps_schedule(eps: float, eps0: Optional[float], ratio: Optional[float]) -> List[float]:
    """Geometric ε-scaling schedule ``eps0, eps0*ratio, ...`` ending exactly at ``eps``."""
    if ratio is None or eps0 is None or eps0 <= eps:
        return [eps]
    if not 0 < ratio < 1:
        raise ValueError(f"eps_scaling must be a ratio in (0, 1), got {ratio}")
    n = int(math.ceil(math.log(eps / eps0) / math.log(ratio)))
    return [eps0 * ratio**k for k in range(n)] + [eps]


def _print_header():
    print("{:5s}|{:12s}".format("It.", "Err") + "\n" + "-" * 19)


def solve(
    geom,
    nx,
    a,
    b,
    side_a: Side,
    side_b: Side,
    eps: float,
    *,
    method: str = "alternating",
    f0=None,
    g0=None,
    numItermax: int = 1000,
    stopThr: float = 1e-6,
    acceleration: Optional[str] = "anderson",
    anderson_depth: int = 8,
    eps_scaling: Optional[float] = None,
    eps0: Optional[float] = None,
    callback: Optional[Callable[[IterationInfo], Optional[bool]]] = None,
    verbose: bool = False,
) -> SinkhornOutput:
    """Run Sinkhorn on ``geom`` and return the potentials and diagnostics.

    ``a``, ``b``, ``f0`` and ``g0`` are vectors in work precision. A callback returning
    ``True`` stops the iterations (the result is then marked not converged unless the
    error is already below ``stopThr``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if acceleration not in (None, "anderson"):
        raise ValueError(f"acceleration must be None or 'anderson', got {acceleration!r}")
    if int(numItermax) < 1:
        raise ValueError(f"numItermax must be >= 1, got {numItermax}")
    if not _is_number(stopThr) or not float(stopThr) >= 0.0:  # NaN fails too
        raise ValueError(f"stopThr must be >= 0 (0 runs all numItermax iterations), got {stopThr!r}")
    if (isinstance(anderson_depth, bool) or not _is_number(anderson_depth)
            or int(anderson_depth) != anderson_depth or anderson_depth < 0):
        raise ValueError(f"anderson_depth must be an integer >= 0 (the number of past iterates "
                         f"mixed; 0 or acceleration=None disables it), got {anderson_depth!r}")
    schedule = eps_schedule(eps, eps0, eps_scaling)
    mixer = Anderson(nx, anderson_depth if acceleration == "anderson" else 0)
    # alternating: f is first computed from g, so a warm-start f would only shape the
    # first kernel, and an f inconsistent with g (e.g. after the points moved) skews it
    state = _State(geom, nx, a, b, side_a, side_b, f0 if method == "symmetric" else None, g0)
    errors: List[float] = []
    it = 0
    stop = False
    if verbose:
        _print_header()
    for stage, eps_k in enumerate(schedule):
        geom.set_eps(eps_k)
        mixer.reset()
        last = stage == len(schedule) - 1
        n_max = int(numItermax) - it if last else 1
        for _ in range(max(n_max, 0)):
            err = state.evaluate(method, eps_k)
            it += 1
            errors.append(err)
            if verbose:
                if it % 50 == 0:
                    _print_header()
                print("{:5d}|{:8e}|".format(it, err))
            if callback is not None and callback(IterationInfo(it, err, eps_k, stage, len(schedule))):
                stop = True
            if last and (err < stopThr or stop or it >= numItermax):
                break
            state.advance(method, eps_k, mixer)
        if stop or it >= numItermax:
            break
    geom.set_eps(eps)
    converged = state.err < stopThr
    state.final_errors(eps)
    if method == "symmetric":
        # the final plain step (π1 = a on a hard side) may move the residual by rounding
        state.finish_symmetric(eps)
        errors.append(state.err)
        converged = converged or state.err < stopThr
    return SinkhornOutput(
        f=state.f,
        g=state.g,
        r=state.r,
        s=state.s,
        eps=eps,
        n_iter=it,
        converged=converged,
        errors=errors,
        error_a=state.err_a,
        error_b=state.err_b,
        n_kernel_builds=geom.n_builds,
        n_restarts=mixer.n_restarts,
    )


class _State:
    """Potentials and last reductions; one method step at a time.

    ``r`` and ``f`` may be held as a function giving them (a geometry's fast alternating
    step does not form them); they are formed on first access.
    """

    def __init__(self, geom, nx, a, b, side_a, side_b, f0, g0):
        self.geom, self.nx = geom, nx
        self.a, self.b = a, b
        self.side_a, self.side_b = side_a, side_b
        self._f = f0
        self.g = g0
        self._r = self.s = None
        self._rf = None
        self.err = self.err_a = self.err_b = math.inf

    def _form(self) -> None:
        if self._rf is not None:
            self._r, self._f = self._rf()
            self._rf = None

    @property
    def f(self):
        self._form()
        return self._f

    @f.setter
    def f(self, value):
        self._rf, self._f = None, value

    @property
    def r(self):
        self._form()
        return self._r

    @r.setter
    def r(self, value):
        self._form()
        self._r = value

    def final_errors(self, eps) -> None:
        """Both residuals of the returned pair, computed directly (for the log)."""
        nx = self.nx
        self.err_a = relative_residual(nx, self.a, self.f / eps + self.r, self.side_a.log_target(self.f))
        self.err_b = relative_residual(nx, self.b, self.g / eps + self.s, self.side_b.log_target(self.g))
        self.err = max(self.err_a, self.err_b)

    def evaluate(self, method, eps) -> float:
        """Reductions for the current pair and its error (alternating: f is updated first).

        Alternating: the f-side optimality holds by construction after the f update, so
        the error is the g-side residual. Symmetric: the larger of both.
        """
        geom, nx = self.geom, self.nx
        ta, tb = self.side_a.tau(eps), self.side_b.tau(eps)
        alternating = method == "alternating"
        if alternating and hasattr(geom, "alternating"):  # fewest vector passes
            self.s, rf = geom.alternating(lambda: self.f, self.g, ta)
            self._rf = rf
        elif alternating and hasattr(geom, "fused_rows_cols"):  # one pass over the cost
            self.r, self.s = geom.fused_rows_cols(self.g, -ta * eps)
            self.f = -ta * eps * self.r
        else:
            self.r = geom.lse_rows(self.g, self.f)
            if alternating or self.f is None:
                self.f = -ta * eps * self.r
            self.s = geom.lse_cols(self.f, self.g)
        self.Tg = -tb * eps * self.s
        self.step_g = self.Tg - self.g
        err = update_residual(nx, self.b, self.g, self.step_g, self.side_b, eps)
        if not alternating:
            self.Tf = -ta * eps * self.r
            self.step_f = self.Tf - self.f
            err = max(err, update_residual(nx, self.a, self.f, self.step_f, self.side_a, eps))
        self.err = err
        if not math.isfinite(err):
            raise FloatingPointError(
                "Sinkhorn produced non-finite potentials; check the cost matrix for "
                "inf/NaN entries and the weights for zeros everywhere"
            )
        return err

    def advance(self, method, eps, mixer) -> None:
        """Move to the next pair from the reductions computed by :meth:`evaluate`."""
        if method == "alternating":
            self.g = mixer(self.g, self.Tg, self.step_g)
            return
        nx = self.nx
        n = self.f.shape[0]
        x = nx.concatenate([self.f, self.g])
        half_step = 0.5 * nx.concatenate([self.step_f, self.step_g])
        x = mixer(x, x + half_step, half_step)
        self.f, self.g = x[:n], x[n:]

    def finish_symmetric(self, eps) -> None:
        """The paper's final non-averaged g then f update, so that π1 = a on a hard side."""
        geom = self.geom
        ta, tb = self.side_a.tau(eps), self.side_b.tau(eps)
        self.g = -tb * eps * geom.lse_cols(self.f, self.g)
        self.r = geom.lse_rows(self.g, self.f)
        self.f = -ta * eps * self.r
        self.s = geom.lse_cols(self.f, self.g)
        self.final_errors(eps)


def report_convergence(out: SinkhornOutput, numItermax: int, stopThr: float, warn: bool,
                       what: str = "Sinkhorn", stacklevel: int = 4) -> None:
    """POT-style warning (and a log record) when the solver stopped before ``stopThr``.

    ``stacklevel`` counts the frames up to the user's call (default: user → public
    function → front end → here)."""
    if out.converged:
        logger.debug("%s converged in %d iterations (error %.3e)", what, out.n_iter, out.errors[-1])
        return
    msg = (
        f"{what} did not converge: error {out.errors[-1]:.3e} > stopThr={stopThr:g} after "
        f"{out.n_iter} iterations. You might want to increase the number of iterations "
        "`numItermax` or the regularization parameter `reg`."
    )
    logger.log(logging.WARNING if warn else logging.INFO, msg)
    if warn:
        warnings.warn(msg, UserWarning, stacklevel=stacklevel)
