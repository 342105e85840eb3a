r"""Semi-unbalanced (and balanced / unbalanced) entropic OT with POT's API.

:func:`sinkhorn_semi_unbalanced` returns the plan, :func:`sinkhorn_semi_unbalanced2` the
loss, as POT's ``f`` / ``f2`` pairs do. Inputs may be numpy arrays, torch tensors (CPU or
CUDA) or other POT backend arrays; outputs follow their dtype and device.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from ot.backend import get_backend
from ot.utils import list_to_array

from . import _array as A
from .engine import IterationInfo, SinkhornOutput, report_convergence, solve
from .geometry import DenseCost, KernelGeometry, LogGeometry
from .problem import Side, check_reg, parse_reg_m

__all__ = ["sinkhorn_semi_unbalanced", "sinkhorn_semi_unbalanced2", "dual_value", "primal_value"]


# ----------------------------------------------------------------- validation
def check_weights(nx, w, n: int, name: str, like):
    """Uniform weights when ``w`` is empty; else check shape, sign and finiteness."""
    if w is None or len(w) == 0:
        return nx.ones(n, type_as=like) / n
    if len(w.shape) != 1:
        raise ValueError(f"{name} must be a 1-D vector of weights, got shape {tuple(w.shape)}")
    if w.shape[0] != n:
        raise ValueError(
            f"{name} has {w.shape[0]} entries but the cost matrix has {n} "
            f"{'rows' if name == 'a' else 'columns'}: pass weights matching M's shape"
        )
    if bool(nx.any(~nx.isfinite(w))):
        raise ValueError(f"{name} contains NaN or inf: weights must be finite and >= 0")
    if bool(nx.any(w < 0)):
        raise ValueError(f"{name} has negative entries: weights must be >= 0")
    if not A.to_float(nx.sum(w)) > 0:
        raise ValueError(f"{name} sums to zero: give at least one positive weight")
    return w


def check_cost(nx, M):
    if len(M.shape) != 2:
        raise ValueError(f"M must be a 2-D cost matrix, got shape {tuple(M.shape)}")
    if M.shape[0] == 0 or M.shape[1] == 0:
        raise ValueError(f"M must be non-empty, got shape {tuple(M.shape)}")
    if not A.all_finite(M):
        raise ValueError("M contains NaN or inf: the cost matrix must be finite")
    _dtype_ok(M)


def _dtype_ok(M):
    dt = str(getattr(M, "dtype", ""))
    if not ("float32" in dt or "float64" in dt):
        raise TypeError(
            f"M must be a float32 or float64 array, got dtype {dt}: convert it with "
            "M.astype(float) / M.double()"
        )


def check_warmstart(nx, warmstart, n: int, m: int):
    if warmstart is None:
        return None, None
    try:
        f0, g0 = warmstart
    except (TypeError, ValueError):
        raise ValueError("warmstart must be a pair (f, g) of dual potentials") from None
    f0, g0 = list_to_array(f0, g0)
    if tuple(f0.shape) != (n,) or tuple(g0.shape) != (m,):
        raise ValueError(
            f"warmstart potentials must have shapes ({n},) and ({m},), got "
            f"{tuple(f0.shape)} and {tuple(g0.shape)}"
        )
    if bool(nx.any(~nx.isfinite(f0))) or bool(nx.any(~nx.isfinite(g0))):
        raise ValueError("warmstart potentials contain NaN or inf")
    return A.to_vec(nx.detach(f0)), A.to_vec(nx.detach(g0))


# ----------------------------------------------------------------- values
def dual_value(nx, a, b, side_a: Side, side_b: Side, eps: float, out: SinkhornOutput):
    r"""Dual objective :math:`F(f, g)` (paper eq. 5, general masses) at the solver output."""
    mass = nx.sum(a * nx.exp(out.f / eps + out.r))
    return (
        nx.sum(a * side_a.neg_conj(nx, out.f))
        + nx.sum(b * side_b.neg_conj(nx, out.g))
        - eps * (mass - nx.sum(a) * nx.sum(b))
    )


def primal_value(nx, a, b, side_a: Side, side_b: Side, eps: float, out: SinkhornOutput):
    r"""Primal objective of the plan :math:`\pi = a b\, e^{(f\oplus g - C)/\varepsilon}`.

    Uses :math:`\langle C,\pi\rangle + \varepsilon\mathrm{KL}(\pi|a\otimes b) =
    \langle \pi_1, f\rangle + \langle \pi_2, g\rangle - \varepsilon m(\pi) + \varepsilon m(a)m(b)`,
    plus the marginal penalties of the relaxed sides (a hard side is assumed satisfied;
    its violation is reported separately).
    """
    p1 = a * nx.exp(out.f / eps + out.r)
    p2 = b * nx.exp(out.g / eps + out.s)
    mass = nx.sum(p1)
    val = nx.sum(p1 * out.f) + nx.sum(p2 * out.g) - eps * mass + eps * nx.sum(a) * nx.sum(b)
    return val + side_a.penalty(nx, p1, a) + side_b.penalty(nx, p2, b)


# ----------------------------------------------------------------- core
def _solve_dense(a, b, M, reg, reg_m, method, warmstart, numItermax, stopThr, verbose, warn,
                 acceleration, anderson_depth, eps_scaling, eps0, domain, callback):
    """Shared front end of the plan and loss functions."""
    M, a, b = list_to_array(M, a, b)
    nx = get_backend(M, *[x for x in (a, b) if len(x.shape) and x.shape[0] > 0])  # a, b empty: uniform
    eps = check_reg(reg)
    side_a, side_b = parse_reg_m(reg_m)
    check_cost(nx, M)
    n, m = M.shape
    a = check_weights(nx, a, n, "a", M)
    b = check_weights(nx, b, m, "b", M)
    f0, g0 = check_warmstart(nx, warmstart, n, m)
    Md, ad, bd = nx.detach(M, a, b)
    vx = A.vector_backend(Md)
    aw, bw = A.to_vec(ad), A.to_vec(bd)
    if domain not in ("scaling", "log"):
        raise ValueError(f"domain must be 'scaling' or 'log', got {domain!r}")
    Geometry = KernelGeometry if domain == "scaling" else LogGeometry
    cost = DenseCost(Md, nx)
    # keep the hard side last-updated: swap the roles when only the second side is hard
    swap = side_b.hard and not side_a.hard
    if swap:
        geom = Geometry(cost.transpose(), bw, aw, vx)
        if f0 is None:
            f0 = vx.zeros(n, type_as=aw)
        out = solve(
            geom, vx, bw, aw, side_b, side_a, eps, method=method, f0=g0, g0=f0,
            numItermax=numItermax, stopThr=stopThr, acceleration=acceleration,
            anderson_depth=anderson_depth, eps_scaling=eps_scaling,
            eps0=cost.span() if eps_scaling and eps0 is None else eps0,
            callback=callback, verbose=verbose,
        )
        out.f, out.g, out.r, out.s = out.g, out.f, out.s, out.r
        out.error_a, out.error_b = out.error_b, out.error_a
    else:
        geom = Geometry(cost, aw, bw, vx)
        if g0 is None:
            g0 = vx.zeros(m, type_as=bw)
        out = solve(
            geom, vx, aw, bw, side_a, side_b, eps, method=method, f0=f0, g0=g0,
            numItermax=numItermax, stopThr=stopThr, acceleration=acceleration,
            anderson_depth=anderson_depth, eps_scaling=eps_scaling,
            eps0=cost.span() if eps_scaling and eps0 is None else eps0,
            callback=callback, verbose=verbose,
        )
    report_convergence(out, numItermax, stopThr, warn)
    ctx = dict(nx=nx, vx=vx, M=M, a=a, b=b, aw=aw, bw=bw, side_a=side_a, side_b=side_b, eps=eps,
               geom=geom, swap=swap)
    return out, ctx


def _plan(out, ctx):
    geom = ctx["geom"]
    if ctx["swap"]:
        return geom.plan(out.g, out.f).T
    return geom.plan(out.f, out.g)


def _log_dict(out: SinkhornOutput, ctx) -> dict:
    vx, eps = ctx["vx"], ctx["eps"]
    aw, bw, sa, sb = ctx["aw"], ctx["bw"], ctx["side_a"], ctx["side_b"]
    like = ctx["M"]
    hard_errors = [e for e, s in ((out.error_a, sa), (out.error_b, sb)) if s.hard]
    relaxed = [e for e, s in ((out.error_a, sa), (out.error_b, sb)) if not s.hard]
    dual = dual_value(vx, aw, bw, sa, sb, eps, out)
    primal = primal_value(vx, aw, bw, sa, sb, eps, out)
    f, g = A.to_kernel(out.f, like), A.to_kernel(out.g, like)
    return {
        "f": f,
        "g": g,
        "logu": f / eps,
        "logv": g / eps,
        "err": list(out.errors),
        "n_iter": out.n_iter,
        "niter": out.n_iter,
        "converged": out.converged,
        "marginal_error": max(hard_errors) if hard_errors else None,
        "relaxed_residual": max(relaxed) if relaxed else None,
        "dual": A.to_kernel(dual, like),
        "primal": A.to_kernel(primal, like),
        "mass": A.to_kernel(vx.sum(aw * vx.exp(out.f / eps + out.r)), like),
        "n_kernel_builds": out.n_kernel_builds,
        "anderson_restarts": out.n_restarts,
        "reg_m": (sa.rho, sb.rho),
    }


_DOC_PARAMS = r"""
    Parameters
    ----------
    a : array-like, shape (dim_a,)
        Weights of the first measure (the image patches in the paper). Empty (``[]``)
        means uniform ``1/dim_a``. Non-negative, finite; need not sum to one.
    b : array-like, shape (dim_b,)
        Weights of the second measure (reference / model patches). Empty means uniform.
    M : array-like, shape (dim_a, dim_b)
        Cost matrix (float32 or float64, finite).
    reg : float
        Entropic regularisation ε > 0.
    reg_m : float or pair of floats
        Marginal relaxation. A scalar ρ gives the semi-unbalanced problem OT_{ε,ρ} (first
        marginal hard, second ρ-relaxed) — note that POT reads a scalar as relaxing both
        sides. A pair ``(ρ_a, ρ_b)`` sets each side, ``inf`` meaning hard:
        ``(inf, inf)`` is OT_ε, ``(ρ, ρ)`` is OT_{ε,ρ,ρ}, ``(inf, ρ)`` is OT_{ε,ρ}.
    method : str, optional
        ``"alternating"`` (default; Theorem 1 of the paper with the damping factor
        ρ/(ρ+ε)) or ``"symmetric"`` (the paper's averaged updates with a final
        non-averaged step).
    warmstart : tuple of arrays (f, g), optional
        Initial dual potentials in units of the cost (``log["f"]``, ``log["g"]`` of a
        previous call; POT's ``logu`` times ``reg``).
    numItermax : int, optional
        Maximum number of iterations.
    stopThr : float, optional
        Stop when the relative L1 residual of both marginal optimality conditions is
        below this threshold.
    verbose : bool, optional
        Print the error at each iteration.
    log : bool, optional
        Also return a dict with the potentials ``f``, ``g`` (and POT's ``logu = f/reg``,
        ``logv``), the error history ``err``, ``n_iter``, ``converged``, the relative
        error on the hard side(s) ``marginal_error`` (measured on the returned plan by the
        plan function), the ``relaxed_residual``, the ``primal`` and ``dual`` values, the
        transported ``mass`` and ``n_kernel_builds``. The hard marginal holds to rounding
        by construction (the last update is on that side), even before convergence: judge
        convergence by ``converged`` and ``relaxed_residual``.
    warn : bool, optional
        Emit a ``UserWarning`` when the solver did not converge (always logged on the
        ``pot_semiunbalanced`` logger).
    acceleration : {"anderson", None}, optional
        Anderson mixing of the potentials (default), or plain iterations.
    anderson_depth : int, optional
        Memory of the Anderson mixer (past iterates mixed; default 8). Balanced OT at small
        ``reg`` converges slowly and gains from a longer memory: on the ten balanced
        problems of ``benchmarks/results/anderson_depth.md`` (patch and Gaussian clouds,
        ``reg`` = 3e-4 and 1e-3) depth 16 needed 1.2-5.7x fewer iterations than 8, never
        more; 32 was better still on seven and worse than 16 on three. With a relaxed side
        8 is best (16 about the same, 32 needs 30-60 % more).
    eps_scaling : float, optional
        If given, a ratio in (0, 1): ε decreases geometrically from ``eps0`` (default
        max(M) − min(M)) to ``reg``, one iteration per intermediate value.
    eps0 : float, optional
        Starting value of ε-scaling.
    domain : {"scaling", "log"}, optional
        ``"scaling"`` (default) iterates matrix–vector products with a kernel whose
        scale is absorbed into the potentials row by row and column by column — stable
        at any ε and as fast as POT's exp-domain solver; ``"log"`` evaluates log-sum-exps
        directly (reference, slower).
    callback : callable, optional
        Called after each iteration with an :class:`~pot_semiunbalanced.engine.IterationInfo`
        (iteration, error, eps, stage); returning ``True`` stops the solver."""

_DOC_MATH = r"""
    .. math::
        \mathrm{OT}_{\varepsilon,\rho}(a, b) = \min_{\pi \geq 0}\
        \langle \mathbf{M}, \pi\rangle_F + \varepsilon\,\mathrm{KL}(\pi | a\otimes b)
        + \iota_{\{a\}}(\pi\mathbf 1) + \rho\,\mathrm{KL}(\pi^T\mathbf 1 | b)

    where KL is the generalised divergence :math:`\sum p\log(p/q) - p + q`. With
    ``reg_m = (ρ_a, ρ_b)`` each marginal term is :math:`\rho_k \mathrm{KL}(\pi_k | w_k)`
    (or the constraint :math:`\pi_k = w_k` when :math:`\rho_k = \infty`)."""

_DOC_REFS = r"""
    References
    ----------
    .. [1] S. Mignon, B. Galerne, M. Hidane, C. Louchet, J. Mille, "Semi-unbalanced
       regularized optimal transport for image restoration".
    .. [2] T. Séjourné, J. Feydy, F.-X. Vialard, A. Trouvé, G. Peyré, "Sinkhorn
       divergences for unbalanced optimal transport", arXiv:1910.12958, 2019.
    .. [3] L. Chizat, G. Peyré, B. Schmitzer, F.-X. Vialard, "Scaling algorithms for
       unbalanced optimal transport problems", Math. Comp. 87, 2018.
    .. [4] H. F. Walker, P. Ni, "Anderson acceleration for fixed-point iterations",
       SIAM J. Numer. Anal. 49(4), 2011."""


def sinkhorn_semi_unbalanced(
    a, b, M, reg: float, reg_m: Any, method: str = "alternating", warmstart: Optional[Tuple] = None,
    numItermax: int = 1000, stopThr: float = 1e-6, verbose: bool = False, log: bool = False,
    warn: bool = True, *, acceleration: Optional[str] = "anderson", anderson_depth: int = 8,
    eps_scaling: Optional[float] = None, eps0: Optional[float] = None, domain: str = "scaling",
    callback: Optional[Callable[[IterationInfo], Optional[bool]]] = None,
):
    out, ctx = _solve_dense(a, b, M, reg, reg_m, method, warmstart, numItermax, stopThr, verbose,
                            warn, acceleration, anderson_depth, eps_scaling, eps0, domain, callback)
    logd = _log_dict(out, ctx) if log else None
    plan = _plan(out, ctx)
    if log:  # measured on the plan actually returned
        logd["marginal_error"] = _plan_marginal_error(ctx, plan)
    return (plan, logd) if log else plan


def _plan_marginal_error(ctx, plan):
    """Relative L1 error of the returned plan's hard marginal(s) (None if none is hard)."""
    nx = ctx["nx"]
    errs = []
    for side, w, axis in ((ctx["side_a"], ctx["a"], 1), (ctx["side_b"], ctx["b"], 0)):
        if side.hard:
            w = nx.detach(w)
            errs.append(A.to_float(nx.sum(nx.abs(nx.sum(plan, axis=axis) - w))) / A.to_float(nx.sum(w)))
    return max(errs) if errs else None


def sinkhorn_semi_unbalanced2(
    a, b, M, reg: float, reg_m: Any, method: str = "alternating", warmstart: Optional[Tuple] = None,
    numItermax: int = 1000, stopThr: float = 1e-6, verbose: bool = False, log: bool = False,
    warn: bool = True, *, acceleration: Optional[str] = "anderson", anderson_depth: int = 8,
    eps_scaling: Optional[float] = None, eps0: Optional[float] = None, domain: str = "scaling",
    callback: Optional[Callable[[IterationInfo], Optional[bool]]] = None,
):
    out, ctx = _solve_dense(a, b, M, reg, reg_m, method, warmstart, numItermax, stopThr, verbose,
                            warn, acceleration, anderson_depth, eps_scaling, eps0, domain, callback)
    nx, vx, eps, sa, sb = ctx["nx"], ctx["vx"], ctx["eps"], ctx["side_a"], ctx["side_b"]
    aw, bw = ctx["aw"], ctx["bw"]
    value = A.to_kernel(dual_value(vx, aw, bw, sa, sb, eps, out), ctx["M"])
    inputs, grads = [], []
    for x, grad in ((ctx["a"], lambda: _grad_weights(vx, aw, out.f, out.r, bw, sa, eps)),
                    (ctx["b"], lambda: _grad_weights(vx, bw, out.g, out.s, aw, sb, eps)),
                    (ctx["M"], lambda: _plan(out, ctx))):
        if getattr(x, "requires_grad", False):
            inputs.append(x)
            grads.append(A.to_kernel(grad(), x))
    if inputs:
        value = nx.set_gradients(value, tuple(inputs), tuple(grads))
    if log:
        return value, _log_dict(out, ctx)
    return value


def _grad_weights(nx, w, pot, lse, w_other, side: Side, eps: float):
    r""":math:`\partial F/\partial w_i = -\Phi^*(-p_i) - \varepsilon(e^{p_i/\varepsilon + \ell_i} - m(w'))`."""
    return side.neg_conj(nx, pot) - eps * (nx.exp(pot / eps + lse) - nx.sum(w_other))


sinkhorn_semi_unbalanced.__doc__ = (
    r"""Solve the semi-unbalanced entropic OT problem and return the transport plan.

    The function solves"""
    + _DOC_MATH
    + "\n"
    + _DOC_PARAMS
    + r"""

    Returns
    -------
    plan : array, shape (dim_a, dim_b)
        Optimal plan :math:`\pi_{ij} = a_i b_j e^{(f_i + g_j - M_{ij})/\varepsilon}`, with
        the dtype and device of ``M``.
    log : dict
        Only if ``log=True`` (see ``log`` above).

    Examples
    --------
    >>> import numpy as np
    >>> from pot_semiunbalanced import sinkhorn_semi_unbalanced
    >>> a, b = np.array([.5, .5]), np.array([.5, .5])
    >>> M = np.array([[0., 1.], [1., 0.]])
    >>> P = sinkhorn_semi_unbalanced(a, b, M, reg=1.0, reg_m=1.0)
    >>> np.allclose(P.sum(1), a)
    True
    """
    + _DOC_REFS
)

sinkhorn_semi_unbalanced2.__doc__ = (
    r"""Solve the semi-unbalanced entropic OT problem and return its value (the loss).

    The value is the dual objective (paper eq. 5) at the computed potentials, which
    equals the primal value of"""
    + _DOC_MATH
    + r"""

    at convergence. With torch inputs that require gradients, the loss is differentiable
    w.r.t. ``M`` (gradient: the plan), ``a`` and ``b`` by the envelope theorem — the
    iterations are never back-propagated through:

    .. math::
        \frac{\partial F}{\partial a_i} = -\Phi_a^*(-f_i) - \varepsilon\big(\pi_{1,i}/a_i - m(b)\big),
        \qquad \frac{\partial F}{\partial M_{ij}} = \pi_{ij}.
"""
    + _DOC_PARAMS
    + r"""

    Returns
    -------
    loss : scalar array
        The value, with the dtype and device of ``M``.
    log : dict
        Only if ``log=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from pot_semiunbalanced import sinkhorn_semi_unbalanced2
    >>> M = np.array([[0., 1.], [1., 0.]])
    >>> float(sinkhorn_semi_unbalanced2([], [], M, reg=1.0, reg_m=(np.inf, np.inf))) > 0
    True
    """
    + _DOC_REFS
)
