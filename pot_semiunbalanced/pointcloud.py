r"""Entropic (semi-)unbalanced OT between point clouds, at image-patch scale.

:func:`sinkhorn_semi_unbalanced2_samples` is the loss between weighted point clouds
:math:`X \in \mathbb R^{N\times d}` and :math:`Y \in \mathbb R^{M\times d}` with cost
:math:`C_{ij} = \|x_i - y_j\|^2` (no ½), for the three problems of
:mod:`pot_semiunbalanced.problem`; :class:`SamplesLoss` wraps it as a
``torch.nn.Module`` that warm-starts each call from the previous potentials.

The cost matrix is never needed in double precision, and never at all with the
``"blocked"`` and ``"keops"`` back ends:

========== ========================================== ===============================
backend     memory                                     reductions
========== ========================================== ===============================
dense       one N×M buffer (the kernel) + inputs       one matrix–vector product each
blocked     a block of rows × M                        one matmul + exp per step
keops       O(N + M)                                   pykeops LazyTensor log-sum-exp
========== ========================================== ===============================

``"auto"`` picks ``dense`` when one N×M buffer fits comfortably in free memory, else
``keops`` for CUDA tensors when pykeops is installed, else ``blocked`` (on a CPU, blocked
is ~30× faster than KeOps here).

Gradients follow the envelope theorem (no back-propagation through the iterations):

.. math::
    \partial_{x_i}\mathrm{OT} = 2\sum_j \pi_{ij}(x_i - y_j), \qquad
    \partial_{y_j}\mathrm{OT} = 2\sum_i \pi_{ij}(y_j - x_i),

and the weight derivatives of :func:`pot_semiunbalanced.sinkhorn.sinkhorn_semi_unbalanced2`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np
import torch

from . import _array as A
from .cloud_geometry import (  # noqa: F401  (re-exported)
    BACKENDS,
    SqEuclideanCost,
    free_memory_bytes,
    choose_backend,
    make_geometry,
    transport_products,
)
from .geometry import KernelGeometry
from .engine import IterationInfo, SinkhornOutput, report_convergence, solve
from .problem import Side, check_reg, parse_reg_m
from .sinkhorn import _grad_weights, dual_value, primal_value

__all__ = ["sinkhorn_semi_unbalanced2_samples", "SamplesLoss", "choose_backend"]


# ======================================================================== the loss
def _all_finite(x) -> bool:
    if A.is_torch(x):
        return bool(torch.isfinite(x).all())
    return bool(np.isfinite(x).all())


def _check_cloud(x, name):
    if len(x.shape) != 2:
        raise ValueError(f"{name} must be a 2-D array of points (n, d), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has no points")
    dt = str(x.dtype)
    if "float32" not in dt and "float64" not in dt:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    if not _all_finite(x.detach() if A.is_torch(x) else x):
        raise ValueError(f"{name} contains NaN or inf")


def _weights(w, n, like, name):
    """Uniform weights when ``w`` is None; else check shape, finiteness and sign."""
    if w is None:
        if A.is_torch(like):
            return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
        return np.full(n, 1.0 / n, dtype=like.dtype)
    if tuple(w.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the points, got {tuple(w.shape)}")
    wd = w.detach() if A.is_torch(w) else np.asarray(w)
    if not _all_finite(wd):
        raise ValueError(f"{name} contains NaN or inf: weights must be finite and >= 0")
    if bool((wd < 0).any()):
        raise ValueError(f"{name} has negative entries: weights must be >= 0")
    if not A.to_float(wd.sum()) > 0:
        raise ValueError(f"{name} sums to zero: give at least one positive weight")
    return w


def sinkhorn_semi_unbalanced2_samples(
    X, Y, reg: float, reg_m: Any, a=None, b=None, *, backend: str = "auto",
    method: str = "alternating", warmstart: Optional[Tuple] = None, numItermax: int = 1000,
    stopThr: float = 1e-6, acceleration: Optional[str] = "anderson", anderson_depth: int = 8,
    eps_scaling: Optional[float] = None, eps0: Optional[float] = None,
    block_size: Optional[int] = None, kernel_buffer=None, verbose: bool = False, log: bool = False,
    warn: bool = True, callback: Optional[Callable[[IterationInfo], Optional[bool]]] = None,
):
    r"""Entropic (semi-)unbalanced OT loss between point clouds, cost :math:`\|x - y\|^2`.

    .. math::
        \mathrm{OT}_{\varepsilon,\rho}(\alpha, \beta) = \min_{\pi \geq 0}\
        \langle C, \pi\rangle + \varepsilon\,\mathrm{KL}(\pi | a\otimes b)
        + \iota_{\{a\}}(\pi\mathbf 1) + \rho\,\mathrm{KL}(\pi^T\mathbf 1 | b),
        \qquad C_{ij} = \|x_i - y_j\|^2

    (general ``reg_m`` as in :func:`~pot_semiunbalanced.sinkhorn_semi_unbalanced`).

    Parameters
    ----------
    X : array, shape (N, d)
        First cloud (e.g. the patches of the image being restored). numpy or torch.
    Y : array, shape (M, d)
        Second cloud (reference / model patches), same type, dtype and device as ``X``.
    reg : float
        Entropic regularisation ε > 0.
    reg_m : float or pair
        ρ for OT_{ε,ρ} (first marginal hard); ``(ρ_a, ρ_b)`` with ``inf`` = hard.
    a, b : arrays, shapes (N,), (M,), optional
        Weights; uniform (``1/N``, ``1/M``) when None.
    backend : {"auto", "dense", "blocked", "keops"}
        How the N×M interactions are computed (see the module docstring).
    method, warmstart, numItermax, stopThr, acceleration, anderson_depth, eps_scaling, eps0, verbose, warn, callback
        As in :func:`~pot_semiunbalanced.sinkhorn_semi_unbalanced`; ``warmstart`` is a pair
        of potentials ``(f, g)`` (e.g. ``log["f"], log["g"]`` of the previous call).
    block_size : int, optional
        Rows per block for ``backend="blocked"`` (default: about 1 M entries per block on
        a CPU, 4 MiB in float32, so that a block stays in cache; 16 M on a GPU).
    kernel_buffer : array, optional
        Storage for the dense back end's kernel, overwritten: ``log["kernel_buffer"]`` of a
        previous call with the same sizes, dtype, device and ``reg_m`` (a loop that passes
        it back saves allocating and faulting in N×M entries per call: ~1.2 s for
        63 001 × 10 000 float32 on a CPU here). Ignored by the other back ends.
    log : bool
        Also return a dict: ``f``, ``g``, ``n_iter``, ``converged``, ``err``,
        ``marginal_error``, ``relaxed_residual``, ``primal``, ``dual``, ``mass``,
        ``backend``, ``n_kernel_builds``, ``kernel_buffer`` (the dense kernel's storage,
        else None).

    Returns
    -------
    loss : scalar array
        The dual value at the computed potentials (= the primal value at convergence),
        differentiable w.r.t. ``X``, ``Y``, ``a``, ``b`` (torch) by the envelope theorem.
    log : dict
        Only if ``log=True``.

    Examples
    --------
    >>> import torch
    >>> from pot_semiunbalanced import sinkhorn_semi_unbalanced2_samples
    >>> X = torch.rand(200, 4, dtype=torch.float64, requires_grad=True)
    >>> Y = torch.rand(300, 4, dtype=torch.float64)
    >>> loss = sinkhorn_semi_unbalanced2_samples(X, Y, reg=1e-2, reg_m=0.1)
    >>> loss.backward()
    >>> X.grad.shape
    torch.Size([200, 4])

    References
    ----------
    .. [1] S. Mignon, B. Galerne, M. Hidane, C. Louchet, J. Mille, "Semi-unbalanced
       regularized optimal transport for image restoration".
    .. [2] J. Feydy et al., "Interpolating between optimal transport and MMD using
       Sinkhorn divergences", AISTATS 2019 (envelope gradients, online reductions).
    """
    eps = check_reg(reg)
    side_a, side_b = parse_reg_m(reg_m)
    _check_cloud(X, "X")
    _check_cloud(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have the same dimension d, got {X.shape[1]} and {Y.shape[1]}")
    if type(X) is not type(Y) or X.dtype != Y.dtype or getattr(X, "device", None) != getattr(Y, "device", None):
        raise ValueError("X and Y must have the same array type, dtype and device")
    n, m = X.shape[0], Y.shape[0]
    a = _weights(a, n, X, "a")
    b = _weights(b, m, X, "b")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    Xd = X.detach() if A.is_torch(X) else X
    Yd = Y.detach() if A.is_torch(Y) else Y
    if backend != "auto":
        chosen = backend
    else:  # storage handed back for the kernel: dense (free memory no longer counts it)
        chosen = "dense" if kernel_buffer is not None else choose_backend(n, m, Xd)
    cost = SqEuclideanCost(Xd, Yd)
    vx = A.vector_backend(Xd)
    aw = A.to_vec(a.detach() if A.is_torch(a) else a)
    bw = A.to_vec(b.detach() if A.is_torch(b) else b)
    f0 = g0 = None
    if warmstart is not None:
        f0, g0 = (A.to_vec(p.detach() if A.is_torch(p) else np.asarray(p)) for p in warmstart)
        if tuple(f0.shape) != (n,) or tuple(g0.shape) != (m,):
            raise ValueError(f"warmstart potentials must have shapes ({n},) and ({m},)")
    if g0 is None:
        g0 = vx.zeros(m, type_as=bw)
    swap = side_b.hard and not side_a.hard
    if swap:  # keep the hard side last-updated (see sinkhorn._solve_dense)
        cost_t = SqEuclideanCost(Yd, Xd)
        geom = make_geometry(chosen, cost_t, bw, aw, vx, block_size, _checked_kernel_buffer(kernel_buffer, (m, n), Xd))
        out = solve(geom, vx, bw, aw, side_b, side_a, eps, method=method, f0=g0,
                    g0=f0 if f0 is not None else vx.zeros(n, type_as=aw), numItermax=numItermax,
                    stopThr=stopThr, acceleration=acceleration, anderson_depth=anderson_depth,
                    eps_scaling=eps_scaling, eps0=cost_t.span() if eps_scaling and eps0 is None else eps0,
                    callback=callback, verbose=verbose)
    else:
        geom = make_geometry(chosen, cost, aw, bw, vx, block_size, _checked_kernel_buffer(kernel_buffer, (n, m), Xd))
        out = solve(geom, vx, aw, bw, side_a, side_b, eps, method=method, f0=f0, g0=g0,
                    numItermax=numItermax, stopThr=stopThr, acceleration=acceleration,
                    anderson_depth=anderson_depth, eps_scaling=eps_scaling,
                    eps0=cost.span() if eps_scaling and eps0 is None else eps0,
                    callback=callback, verbose=verbose)
    report_convergence(out, numItermax, stopThr, warn, stacklevel=3)
    value = dual_value(vx, aw if not swap else bw, bw if not swap else aw,
                       side_a if not swap else side_b, side_b if not swap else side_a, eps, out)
    needs = [A.is_torch(t) and t.requires_grad for t in (X, Y, a, b)]
    grads = _gradients(geom, out, swap, needs, aw, bw, side_a, side_b, eps) if any(needs) else None
    if swap:
        out.f, out.g, out.r, out.s = out.g, out.f, out.s, out.r
    loss = A.to_kernel(value, X)
    if grads is not None:
        inputs = tuple(t for t, nd in zip((X, Y, a, b), needs) if nd)
        loss = _EnvelopeValue.apply(loss, grads, *inputs)
    if not log:
        return loss
    return loss, _samples_log(out, vx, aw, bw, side_a, side_b, eps, X, chosen, geom)


def _checked_kernel_buffer(buf, shape, like):
    """``kernel_buffer`` checked against the kernel it is to hold (None passes through)."""
    if buf is None:
        return None
    if (type(buf) is not type(like) or tuple(buf.shape) != shape or buf.dtype != like.dtype
            or getattr(buf, "device", None) != getattr(like, "device", None)):
        got = f"{type(buf).__name__} {tuple(getattr(buf, 'shape', ()))} {getattr(buf, 'dtype', '')}"
        raise ValueError(
            f"kernel_buffer must be a {type(like).__name__} of shape {shape}, dtype {like.dtype} "
            f"on X's device (log['kernel_buffer'] of a call with the same sizes and reg_m), got {got}"
        )
    return buf


def _gradients(geom, out, swap, needs, aw, bw, side_a, side_b, eps):
    """Envelope gradients w.r.t. (X, Y, a, b), only for the inputs that need them."""
    vx = geom.vx
    cost = geom.cost  # possibly the transposed problem (rows = Y)
    like = cost.like
    f, g = out.f, out.g
    rows_x, cols_y = (cost.X, cost.Y)
    grads = []
    if needs[0] or needs[1]:
        PY, PtX = transport_products(geom, f, g, cols_y, rows_x)
        p1 = A.to_kernel(geom.a * vx.exp(f / eps + out.r), like)
        p2 = A.to_kernel(geom.b * vx.exp(g / eps + out.s), like)
        g_rows = 2.0 * (p1[:, None] * rows_x - PY)
        g_cols = 2.0 * (p2[:, None] * cols_y - PtX)
        gX, gY = (g_cols, g_rows) if swap else (g_rows, g_cols)
        if needs[0]:
            grads.append(gX)
        if needs[1]:
            grads.append(gY)
    if needs[2] or needs[3]:
        fa, ra, ga, sb_ = (out.g, out.s, out.f, out.r) if swap else (out.f, out.r, out.g, out.s)
        if needs[2]:
            grads.append(A.to_kernel(_grad_weights(vx, aw, fa, ra, bw, side_a, eps), like))
        if needs[3]:
            grads.append(A.to_kernel(_grad_weights(vx, bw, ga, sb_, aw, side_b, eps), like))
    return tuple(grads)


class _EnvelopeValue(torch.autograd.Function):
    """Attach precomputed envelope gradients to a scalar loss."""

    @staticmethod
    def forward(ctx, value, grads, *inputs):
        ctx.grads = grads
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        return (None, None) + tuple(grad_output * g for g in ctx.grads)


def _samples_log(out: SinkhornOutput, vx, aw, bw, side_a: Side, side_b: Side, eps, like, backend, geom) -> dict:
    hard = [e for e, s in ((out.error_a, side_a), (out.error_b, side_b)) if s.hard]
    relaxed = [e for e, s in ((out.error_a, side_a), (out.error_b, side_b)) if not s.hard]
    return {
        "f": A.to_kernel(out.f, like),
        "g": A.to_kernel(out.g, like),
        "err": list(out.errors),
        "n_iter": out.n_iter,
        "converged": out.converged,
        "marginal_error": max(hard) if hard else None,
        "relaxed_residual": max(relaxed) if relaxed else None,
        "dual": A.to_float(dual_value(vx, aw, bw, side_a, side_b, eps, out)),
        "primal": A.to_float(primal_value(vx, aw, bw, side_a, side_b, eps, out)),
        "mass": A.to_float(vx.sum(aw * vx.exp(out.f / eps + out.r))),
        "backend": backend,
        "n_kernel_builds": getattr(geom, "n_builds", 0),
        "kernel_buffer": geom._buffer if isinstance(geom, KernelGeometry) else None,
        "potentials_work": (out.f, out.g),  # double precision, for warm starts
    }


# ======================================================================== module
def _caller_stacklevel() -> int:
    """Stack level of the first frame outside this package and torch (for warnings)."""
    import inspect
    import os

    skip = (os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.abspath(torch.__file__)))
    frame, level = inspect.currentframe().f_back, 1  # level 1: the function calling warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


class SamplesLoss(torch.nn.Module):
    r"""OT_ε / OT_{ε,ρ} / OT_{ε,ρ,ρ} between point clouds as a ``torch.nn.Module``.

    Each call warm-starts from the potentials of the previous call (when the sizes
    match), so an optimisation loop whose points move a little per step pays fewer
    iterations than a full solve.

    Parameters
    ----------
    reg : float
        ε > 0.
    reg_m : float or pair
        ρ (semi-unbalanced, first marginal hard) or ``(ρ_a, ρ_b)``; ``(inf, inf)`` balanced.
    warm_start : bool
        Reuse the last potentials.
    keep_kernel : bool
        Keep the dense kernel's N×M storage between calls of the same sizes (no allocation
        per call); :meth:`release` frees it.
    **solver_options
        Passed to :func:`sinkhorn_semi_unbalanced2_samples` (``backend``, ``numItermax``,
        ``stopThr``, ``method``, ``acceleration``, ``block_size``, ``warn``, ...).

    Attributes
    ----------
    potentials : tuple (f, g) or None
        Potentials of the last call.
    last_log : dict or None
        The solver log of the last call (``n_iter``, ``converged``, ``err``, ...).
    n_iters : list of int
        Iterations used by every call so far.
    n_not_converged : int
        Calls that stopped before ``stopThr`` (the first one warns, unless ``warn=False``).

    Examples
    --------
    >>> import torch
    >>> from pot_semiunbalanced import SamplesLoss
    >>> loss_fn = SamplesLoss(reg=1e-2, reg_m=0.1)
    >>> X = torch.rand(100, 3, requires_grad=True); Y = torch.rand(150, 3)
    >>> loss_fn(X, Y).backward()
    >>> loss_fn.n_iters[-1] > 0
    True
    """

    def __init__(self, reg: float, reg_m: Any, *, warm_start: bool = True, keep_kernel: bool = True,
                 **solver_options):
        super().__init__()
        self.reg = check_reg(reg)
        self.reg_m = reg_m
        parse_reg_m(reg_m)  # validate now
        self.warm_start = warm_start
        self.keep_kernel = keep_kernel
        self._kernel = None
        self.solver_options = solver_options
        self.potentials = None
        self.last_log = None
        self.n_iters = []
        self.n_not_converged = 0

    def reset(self) -> None:
        """Forget the stored potentials (the next call starts cold)."""
        self.potentials = None

    def release(self) -> None:
        """Free the kept kernel storage (the next call allocates it again)."""
        self._kernel = None

    def _kept_kernel(self, X, Y):
        k = self._kernel
        if k is None or not self.keep_kernel:
            return None
        same = k.dtype == X.dtype and getattr(k, "device", None) == getattr(X, "device", None)
        return k if same and tuple(k.shape) in ((X.shape[0], Y.shape[0]), (Y.shape[0], X.shape[0])) else None

    def forward(self, X, Y, a=None, b=None, *, warmstart=None):
        if warmstart is None and self.warm_start and self.potentials is not None:
            f, g = self.potentials
            if f.shape[0] == X.shape[0] and g.shape[0] == Y.shape[0]:
                warmstart = self.potentials
        options = dict(self.solver_options)
        warn = options.pop("warn", True)
        loss, log = sinkhorn_semi_unbalanced2_samples(
            X, Y, self.reg, self.reg_m, a, b, warmstart=warmstart, log=True, warn=False,
            kernel_buffer=self._kept_kernel(X, Y), **options
        )
        kernel = log.pop("kernel_buffer")
        self._kernel = kernel if self.keep_kernel else None
        if not log["converged"]:
            self.n_not_converged += 1
            if warn and self.n_not_converged == 1:  # once per module: loops call it thousands of times
                warnings.warn(
                    f"SamplesLoss: the solver did not converge (error {log['err'][-1]:.2e} after "
                    f"{log['n_iter']} iterations); later non-converged calls are only counted in "
                    "`n_not_converged`. Increase `numItermax` or `reg`, or pass warn=False.",
                    UserWarning, stacklevel=_caller_stacklevel(),
                )
        self.potentials = log["potentials_work"]
        self.last_log = log
        self.n_iters.append(log["n_iter"])
        return loss

    def extra_repr(self) -> str:
        return f"reg={self.reg}, reg_m={self.reg_m}, warm_start={self.warm_start}"
