r"""Multiscale optimal-transport patch priors for image restoration.

A patch prior maps an image :math:`x` (a ``(1, 1, H, W)`` tensor) to

.. math::

    R(x) = \frac{1}{L+1} \sum_{\ell=0}^{L}
           \mathrm{OT}\bigl(\alpha_{A^\ell x}, \beta_\ell\bigr),

where :math:`\alpha_{A^\ell x}` is the uniform distribution of all ``p x p`` patches
(stride 1) of :math:`A^\ell x`, :math:`A` the pyramid operator of
:func:`~pot_semiunbalanced.imaging.operators.pyramid_down` (4x4 Gaussian of std 1, x2
subsampling, ``"valid"``), and :math:`\beta_\ell` the uniform distribution of ``n``
patches drawn once, at random, from :math:`A^\ell x_{\mathrm{ref}}` (paper eq. 9).
Calling a prior returns :math:`R(x)` as a scalar tensor whose gradient w.r.t. ``x`` is
the prior's gradient: autograd differentiates the pyramid and the patch extraction,
and the transport part brings its own gradient (envelope theorem, no back-propagation
through solver iterations).

Kinds (:func:`make_prior`)
--------------------------
=============  ==============================  =========================================
kind           transport                       implementation
=============  ==============================  =========================================
``semi``       OT_{ε,ρ} (image side hard)      :class:`~pot_semiunbalanced.SamplesLoss`,
                                               ``reg_m = ρ``
``balanced``   OT_ε                            ``reg_m = (inf, inf)``
``unbalanced`` OT_{ε,ρ,ρ}                      ``reg_m = (ρ, ρ)``
``wpp``        OT_0 on the padded image        :func:`~.wpp.emd_w2` (``solver="emd"``) or
                                               :class:`~.wpp.SemiDualW2`
                                               (``solver="semidual"``, the original code)
=============  ==============================  =========================================

Optimisation variable and padding
---------------------------------
Every prior has an integer attribute :attr:`PatchPrior.pad`. The variable optimised
in a restoration problem is the image extended by ``pad`` pixels on each side; the
prior is evaluated on the *whole* variable and the data term on its interior:

.. code-block:: python

    z = prior.pad_variable(x0, rng=0).requires_grad_()   # (1, 1, H + 2 pad, W + 2 pad)
    x = prior.interior(z)                                 # (1, 1, H, W), a view of z
    loss = data_term(x) + prior(z)

``pad = 0`` for the entropic priors (``pad_variable`` returns a copy, ``interior`` the
variable itself). The WPP baseline uses ``pad = 20`` with a U[0, 1] border, as the
original code (SPEC section 3): patches of the reference that match nothing in the
image can be sent to the artificial border instead of distorting the image.

Memory and time of ``solver="emd"``
-----------------------------------
POT's network simplex (``ot.emd``) needs about ``44 N M`` bytes (the float64 cost
matrix, the dense plan and per-arc arrays), for N image patches and M reference
patches, and its time grows faster than ``N M``. One level-0 solve, measured on this
project's CPU (1 thread, d = 36):

==============================  ===========  =========  ==========================
padded variable (image)          N            M          one solve
==============================  ===========  =========  ==========================
104² brick crop                  9 801        2 000      12 s
104² brick crop                  9 801        4 000      22 s
136² brick crop                  17 161       2 000      23 s
136² brick crop                  17 161       10 000     119 s, 7.6 GB peak
136² (96² material + U[0,1])     17 161       426        7.6 s
136² (96² material + U[0,1])     17 161       1 000      15 s
168² (128² material + U[0,1])    26 569       656        18 s
296² (256² image + border)       84 681       10 000     37 GB: does not fit in 24 GB
==============================  ===========  =========  ==========================

In practice ``emd`` is a CPU option up to about 96² images with M of a few thousand or
less (8-25 s per Adam step; the second, 4x smaller level adds little); memory is the hard limit
at N M of about 4e8 on a 24 GB machine. The paper's own problem (63 001 x 10 000
unpadded, 28 GB) is out of reach.

:meth:`WassersteinPatchPrior.check_image_shape` raises a :class:`ValueError` before
any work when the dense solve of some level would exceed ``memory_fraction`` of the
available memory; ``emd_solver="lazy"`` (O(N + M) memory, about 8x slower) or
``solver="semidual"`` (the original WPP estimator, ~2N M d flops per ascent step) are
the ways out. The paper's 256 x 256 setting is therefore a ``semidual`` job on a CPU.
"""
from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from pot_semiunbalanced._utils import RngLike, as_generator
from pot_semiunbalanced.imaging.io import to_tensor_image
from pot_semiunbalanced.imaging.operators import _check_image, pyramid, pyramid_down_output_shape
from pot_semiunbalanced.imaging.patches import n_patches as _count_patches
from pot_semiunbalanced.imaging.patches import (
    PAD_FILLS,
    crop_image,
    extract_patches,
    pad_image,
    random_patches,
)
from pot_semiunbalanced.imaging.wpp import SemiDualW2, emd_w2
from pot_semiunbalanced.pointcloud import SamplesLoss, free_memory_bytes

__all__ = [
    "PRIOR_KINDS",
    "WPP_PAD",
    "EMD_BYTES_PER_ENTRY",
    "ScaleDiagnostics",
    "PriorDiagnostics",
    "PatchPrior",
    "EntropicPatchPrior",
    "WassersteinPatchPrior",
    "reference_patches",
    "level_shapes",
    "emd_memory_bytes",
    "make_prior",
]

#: Kinds accepted by :func:`make_prior`.
PRIOR_KINDS: Tuple[str, ...] = ("semi", "balanced", "unbalanced", "wpp")

#: Border added around the image by the WPP baseline (pixels per side).
WPP_PAD = 20

#: Peak bytes per cost-matrix entry of ``ot.emd`` (measured: 7.6 GB for 17 161 x 10 000).
EMD_BYTES_PER_ENTRY = 44

_ENTROPIC_REG_M = {
    "semi": lambda rho: rho,
    "balanced": lambda rho: (math.inf, math.inf),
    "unbalanced": lambda rho: (rho, rho),
}


# ----------------------------------------------------------------------------- diagnostics
@dataclass
class ScaleDiagnostics:
    """What one transport solve of one call reported.

    Attributes
    ----------
    level : int
        Pyramid level ``l`` (0 = the image itself).
    value : float
        Transport value at this level (before the 1/(L+1) weight).
    n_patches : int
        Number of image patches N.
    n_ref : int
        Number of reference patches M.
    n_iter : int or None
        Solver iterations: Sinkhorn iterations (entropic kinds), ascent steps
        (``semidual``); None for the exact ``emd`` solve.
    converged : bool
        Whether the solver reached its tolerance (always True for ``emd``; for
        ``semidual`` the fixed number of ascent steps counts as converged).
    seconds : float
        Wall time of the solve and its gradient preparation.
    """

    level: int
    value: float
    n_patches: int
    n_ref: int
    n_iter: Optional[int]
    converged: bool
    seconds: float


@dataclass
class PriorDiagnostics:
    """Per-call diagnostics of a :class:`PatchPrior` (attribute ``last_diagnostics``)."""

    scales: List[ScaleDiagnostics] = field(default_factory=list)
    value: float = math.nan

    @property
    def n_iter(self) -> List[Optional[int]]:
        """Solver iterations of every level, in level order."""
        return [s.n_iter for s in self.scales]

    @property
    def converged(self) -> bool:
        """True when every level's solver converged."""
        return all(s.converged for s in self.scales)

    @property
    def seconds(self) -> float:
        """Time spent in the transport solves of this call."""
        return float(sum(s.seconds for s in self.scales))


# ----------------------------------------------------------------------------- helpers
def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def level_shapes(shape: Sequence[int], levels: int) -> List[Tuple[int, int]]:
    """Spatial shapes of the pyramid levels ``[x, A x, ..., A^levels x]``.

    Parameters
    ----------
    shape : (H, W) or (B, C, H, W)
        Shape of the level-0 image.
    levels : int
        L >= 0.

    Returns
    -------
    list of (int, int), length ``levels + 1``
        Shapes for the ``"valid"`` pyramid (256 -> 127 -> 62).

    Raises
    ------
    ValueError
        If a level would be smaller than the 4 x 4 pyramid kernel.
    """
    levels = _check_int(levels, "levels", 0)
    h, w = (int(s) for s in tuple(shape)[-2:])
    out = [(h, w)]
    for level in range(levels):
        if min(out[-1]) < 4:
            raise ValueError(
                f"an image of size {(h, w)} is too small for levels={levels}: level {level} "
                f"has size {out[-1]}, smaller than the 4x4 pyramid kernel; lower levels"
            )
        out.append(pyramid_down_output_shape(out[-1]))
    return out


def _min_side(patch_size: int, levels: int) -> int:
    """Smallest image side whose pyramid levels all hold at least one patch."""
    side = patch_size
    for _ in range(levels):
        side = max(2 * side + 2, 4)  # (n - 4) // 2 + 1 >= side  <=>  n >= 2 side + 2
    return side


def reference_patches(
    x_ref: Any,
    *,
    patch_size: int = 6,
    levels: int = 1,
    n_patches: int = 10_000,
    rng: RngLike = None,
) -> List[Tensor]:
    """Random reference patches at every pyramid level of ``x_ref``.

    Level ``l`` gets ``n_patches`` distinct patch positions of ``A^l x_ref``, drawn
    without replacement; the levels are drawn one after the other from the same
    generator, so a seed fixes them all.

    Parameters
    ----------
    x_ref : numpy.ndarray (H, W) or torch.Tensor (1, 1, H, W)
        Reference image in [0, 1].
    patch_size : int, default 6
    levels : int, default 1
        L: levels 0..L are sampled.
    n_patches : int, default 10 000
        M, the number of patches per level.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    list of torch.Tensor, length ``levels + 1``
        Level ``l``: shape ``(n_patches, patch_size**2)``, float64 on ``x_ref``'s device
        (CPU for arrays), detached.

    Raises
    ------
    ValueError
        If a level of ``x_ref`` has fewer than ``n_patches`` patches (the message gives
        the numbers and the fixes).
    """
    patch_size = _check_int(patch_size, "patch_size", 1)
    levels = _check_int(levels, "levels", 0)
    n_patches_ = _check_int(n_patches, "n_patches", 1)
    ref = to_tensor_image(x_ref, dtype=torch.float64).detach()
    shapes = level_shapes(ref.shape, levels)
    for level, (h, w) in enumerate(shapes):
        if min(h, w) < patch_size:
            raise ValueError(
                f"the reference image {tuple(ref.shape[-2:])} is too small: its pyramid level "
                f"{level} is {(h, w)}, smaller than patch_size={patch_size}; use a larger "
                f"reference, a smaller patch_size or fewer levels"
            )
        available = _count_patches(h, w, patch_size)
        if available < n_patches_:
            raise ValueError(
                f"the reference image {tuple(ref.shape[-2:])} has only {available} patches of "
                f"size {patch_size} at pyramid level {level} ({h}x{w}), fewer than the "
                f"n_ref_patches={n_patches_} requested: lower n_ref_patches to at most "
                f"{min(_count_patches(hh, ww, patch_size) for hh, ww in shapes)} "
                f"or use a larger reference"
            )
    gen = as_generator(rng)
    levels_img = pyramid(ref, levels)
    return [random_patches(img, patch_size, n_patches_, rng=gen).contiguous() for img in levels_img]


def emd_memory_bytes(n: int, m: int) -> float:
    """Estimated peak memory of one dense ``ot.emd`` solve between N and M points."""
    return float(EMD_BYTES_PER_ENTRY) * float(n) * float(m)


# ----------------------------------------------------------------------------- base class
class PatchPrior(nn.Module, abc.ABC):
    r"""Base class: multiscale patch prior :math:`\frac{1}{L+1}\sum_\ell \mathrm{OT}_\ell`.

    Subclasses implement :meth:`transport` (one level). Build priors with
    :func:`make_prior`.

    Parameters
    ----------
    ref_patches : sequence of torch.Tensor
        Reference patches per level (``len = levels + 1``), each ``(M_l, patch_size**2)``,
        e.g. from :func:`reference_patches`.
    patch_size : int
    pad : int, default 0
        Border of the optimisation variable (see the module docstring).
    pad_fill : str, default "uniform"
        How :meth:`pad_variable` fills the border (:func:`~.patches.pad_image`).

    Attributes
    ----------
    levels : int
        L.
    weights : tuple of float
        ``1 / (L + 1)`` for every level.
    last_diagnostics : PriorDiagnostics or None
        Per-level values, solver iterations, convergence and time of the last call.
    """

    kind: str = ""

    def __init__(
        self,
        ref_patches: Sequence[Tensor],
        *,
        patch_size: int,
        pad: int = 0,
        pad_fill: str = "uniform",
    ) -> None:
        super().__init__()
        self.patch_size = _check_int(patch_size, "patch_size", 1)
        self.pad = _check_int(pad, "pad", 0)
        if pad_fill not in PAD_FILLS:
            raise ValueError(f"pad_fill must be one of {PAD_FILLS}, got {pad_fill!r}")
        self.pad_fill = pad_fill
        refs = list(ref_patches)
        if not refs:
            raise ValueError("ref_patches must hold the patches of at least one level")
        d = self.patch_size**2
        for level, Y in enumerate(refs):
            if not isinstance(Y, Tensor) or Y.ndim != 2 or Y.shape[1] != d or Y.shape[0] < 1:
                shape = tuple(Y.shape) if isinstance(Y, Tensor) else type(Y).__name__
                raise ValueError(
                    f"ref_patches[{level}] must be a tensor of shape (M, {d}) for "
                    f"patch_size={self.patch_size}, got {shape}"
                )
            self.register_buffer(f"ref_{level}", Y.detach().clone())
        self.levels = len(refs) - 1
        self.weights = tuple(1.0 / len(refs) for _ in refs)
        self.last_diagnostics: Optional[PriorDiagnostics] = None
        self._ref_cache: Dict[Tuple[int, torch.dtype, torch.device], Tensor] = {}

    # -- reference patches ------------------------------------------------------------
    def ref(self, level: int, like: Optional[Tensor] = None) -> Tensor:
        """Reference patches of ``level``, in ``like``'s dtype/device when given (cached)."""
        Y = getattr(self, f"ref_{level}")
        if like is None or (Y.dtype == like.dtype and Y.device == like.device):
            return Y
        key = (level, like.dtype, like.device)
        cached = self._ref_cache.get(key)
        if cached is None:
            cached = Y.to(dtype=like.dtype, device=like.device)
            self._ref_cache[key] = cached
        return cached

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda() / .double(): drop stale casts
        self._ref_cache = {}
        return super()._apply(fn, *args, **kwargs)

    # -- the optimisation variable ------------------------------------------------------
    @property
    def min_image_size(self) -> int:
        """Smallest side of the *prior's input* (the padded variable) it accepts."""
        return _min_side(self.patch_size, self.levels)

    def variable_shape(self, image_shape: Sequence[int]) -> Tuple[int, int]:
        """Spatial shape of the optimisation variable for an image of ``image_shape``."""
        h, w = (int(s) for s in tuple(image_shape)[-2:])
        return h + 2 * self.pad, w + 2 * self.pad

    def pad_variable(self, x: Tensor, *, rng: RngLike = None) -> Tensor:
        """The optimisation variable for an initial image ``x``: ``x`` plus the border.

        Parameters
        ----------
        x : torch.Tensor, shape (1, 1, H, W)
        rng : int, numpy.random.Generator or None
            Draws the U[0, 1] border (``pad_fill="uniform"``).

        Returns
        -------
        torch.Tensor, shape (1, 1, H + 2 pad, W + 2 pad)
            A new tensor (a copy when ``pad = 0``), detached from ``x``.
        """
        _check_image(x, "x")
        return pad_image(x.detach(), self.pad, fill=self.pad_fill, rng=rng)

    def interior(self, z: Tensor) -> Tensor:
        """The image part of a variable ``z`` (a view; ``z`` itself when ``pad = 0``)."""
        return z if self.pad == 0 else crop_image(z, self.pad)

    # -- evaluation ----------------------------------------------------------------------
    def check_image_shape(self, shape: Sequence[int]) -> None:
        """Raise a ValueError if the prior cannot be evaluated on an input of ``shape``.

        ``shape`` is the shape of the prior's input (the padded variable).
        """
        h, w = (int(s) for s in tuple(shape)[-2:])
        shapes = level_shapes((h, w), self.levels)
        for level, (hh, ww) in enumerate(shapes):
            if min(hh, ww) < self.patch_size:
                raise ValueError(
                    f"an image of size {(h, w)} is too small for patch_size={self.patch_size} "
                    f"with levels={self.levels}: pyramid level {level} is {(hh, ww)}; the "
                    f"prior's input needs sides >= {self.min_image_size}"
                )

    @abc.abstractmethod
    def transport(self, level: int, X: Tensor, Y: Tensor) -> Tuple[Tensor, Optional[int], bool]:
        """One level's transport value (differentiable in ``X``), iterations, convergence."""

    def reset(self) -> None:
        """Forget the state kept between calls (warm-start potentials)."""

    def release(self) -> None:
        """Free the work memory kept between calls (kernel storage); state is kept."""

    def forward(self, x: Tensor) -> Tensor:
        """Prior value at ``x`` (the padded variable for priors with ``pad > 0``).

        Parameters
        ----------
        x : torch.Tensor, shape (1, 1, H, W)
            Floating-point image; gradients flow back to it.

        Returns
        -------
        torch.Tensor, shape ()
            :math:`\\frac{1}{L+1}\\sum_\\ell \\mathrm{OT}_\\ell`, in ``x``'s dtype.
        """
        _check_image(x, "x")
        if tuple(x.shape[:2]) != (1, 1):
            raise ValueError(
                f"x must be a single gray image of shape (1, 1, H, W), got {tuple(x.shape)}"
            )
        self.check_image_shape(x.shape)
        diagnostics = PriorDiagnostics()
        total = x.new_zeros(())
        for level, img in enumerate(pyramid(x, self.levels)):
            X = extract_patches(img, self.patch_size)[0]
            Y = self.ref(level, like=X)
            t0 = time.perf_counter()
            value, n_iter, converged = self.transport(level, X, Y)
            diagnostics.scales.append(
                ScaleDiagnostics(
                    level=level,
                    value=float(value.detach()),
                    n_patches=int(X.shape[0]),
                    n_ref=int(Y.shape[0]),
                    n_iter=n_iter,
                    converged=bool(converged),
                    seconds=time.perf_counter() - t0,
                )
            )
            total = total + self.weights[level] * value
        diagnostics.value = float(total.detach())
        self.last_diagnostics = diagnostics
        return total


# ----------------------------------------------------------------------------- entropic
class EntropicPatchPrior(PatchPrior):
    r"""Patch prior with OT_{ε,ρ} (``semi``), OT_ε (``balanced``) or OT_{ε,ρ,ρ} (``unbalanced``).

    One :class:`~pot_semiunbalanced.SamplesLoss` per level, so each level warm-starts
    from its own potentials of the previous call. The image patches are the first
    marginal (hard in ``semi``), the reference patches the second (relaxed by ρ).

    Parameters
    ----------
    ref_patches : sequence of torch.Tensor
        Reference patches per level (:func:`reference_patches`).
    kind : {"semi", "balanced", "unbalanced"}
    eps : float, default 4e-4
        ε (cost :math:`\|x-y\|^2`, pixel values in [0, 1]).
    rho : float, default 0.01
        ρ (ignored by ``balanced``).
    patch_size : int, default 6
    warm_start : bool, default True
        Start each solve from the previous call's potentials.
    **solver_options
        Passed to :class:`~pot_semiunbalanced.SamplesLoss` (``backend``, ``numItermax``,
        ``stopThr``, ``acceleration``, ...). ``warn`` defaults to False here: convergence
        is reported in :attr:`last_diagnostics` instead of one warning per call.
    """

    def __init__(
        self,
        ref_patches: Sequence[Tensor],
        *,
        kind: str = "semi",
        eps: float = 4e-4,
        rho: float = 0.01,
        patch_size: int = 6,
        warm_start: bool = True,
        **solver_options: Any,
    ) -> None:
        if kind not in _ENTROPIC_REG_M:
            raise ValueError(
                f"kind must be one of {tuple(_ENTROPIC_REG_M)} for an entropic prior, got {kind!r}"
            )
        super().__init__(ref_patches, patch_size=patch_size, pad=0)
        self.kind = kind
        self.eps = _check_positive(eps, "eps")
        self.rho = _check_positive(rho, "rho")
        self.reg_m = _ENTROPIC_REG_M[kind](self.rho)
        solver_options.setdefault("warn", False)
        self.solver_options = dict(solver_options)
        self.losses = nn.ModuleList(
            SamplesLoss(self.eps, self.reg_m, warm_start=warm_start, **solver_options)
            for _ in range(self.levels + 1)
        )

    def extra_repr(self) -> str:
        n_ref = [int(getattr(self, f"ref_{level}").shape[0]) for level in range(self.levels + 1)]
        return (
            f"kind={self.kind!r}, eps={self.eps}, rho={self.rho}, patch_size={self.patch_size}, "
            f"levels={self.levels}, n_ref={n_ref}"
        )

    def reset(self) -> None:
        for loss in self.losses:
            loss.reset()

    def release(self) -> None:
        for loss in self.losses:
            loss.release()

    def transport(self, level: int, X: Tensor, Y: Tensor) -> Tuple[Tensor, Optional[int], bool]:
        loss_fn = self.losses[level]
        value = loss_fn(X, Y)
        log = loss_fn.last_log
        return value, int(log["n_iter"]), bool(log["converged"])


# ----------------------------------------------------------------------------- WPP
class WassersteinPatchPrior(PatchPrior):
    r"""Wasserstein Patch Prior baseline: balanced OT_0 on the padded image.

    Parameters
    ----------
    ref_patches : sequence of torch.Tensor
        Reference patches per level (:func:`reference_patches`).
    patch_size : int, default 6
    solver : {"emd", "semidual"}, default "emd"
        ``"emd"``: the exact OT_0 of every call, :func:`~.wpp.emd_w2` (POT's network
        simplex) with envelope gradients. ``"semidual"``: the original WPP estimator
        :class:`~.wpp.SemiDualW2` (a potential per reference patch improved by 10 ASGD
        ascent steps per call and kept between calls).
    pad : int, default 20
        Border of the optimisation variable, U[0, 1]-initialised (see the module docstring).
    emd_solver : {"dense", "lazy"}, default "dense"
        Memory/speed trade-off of ``solver="emd"`` (:func:`~.wpp.emd_sparse_plan`).
    memory_fraction : float, default 0.8
        ``check_image_shape`` refuses a dense emd solve whose estimated peak
        (:func:`emd_memory_bytes`) exceeds this fraction of the available memory.
    **semidual_options
        Passed to :class:`~.wpp.SemiDualW2` (``n_ascent``, ``lr``, ...).
    """

    kind = "wpp"

    def __init__(
        self,
        ref_patches: Sequence[Tensor],
        *,
        patch_size: int = 6,
        solver: str = "emd",
        pad: int = WPP_PAD,
        emd_solver: str = "dense",
        memory_fraction: float = 0.8,
        **semidual_options: Any,
    ) -> None:
        super().__init__(ref_patches, patch_size=patch_size, pad=pad, pad_fill="uniform")
        if solver not in ("emd", "semidual"):
            raise ValueError(f"solver must be 'emd' or 'semidual' for the wpp prior, got {solver!r}")
        if emd_solver not in ("dense", "lazy"):
            raise ValueError(f"emd_solver must be 'dense' or 'lazy', got {emd_solver!r}")
        if solver == "emd" and semidual_options:
            raise ValueError(
                f"options {sorted(semidual_options)} only apply to solver='semidual'"
            )
        self.solver = solver
        self.emd_solver = emd_solver
        self.memory_fraction = _check_positive(memory_fraction, "memory_fraction")
        self.estimators = nn.ModuleList()
        if solver == "semidual":
            for level in range(self.levels + 1):
                self.estimators.append(SemiDualW2(getattr(self, f"ref_{level}"), **semidual_options))
        self.n_ascent = self.estimators[0].n_ascent if solver == "semidual" else None

    def extra_repr(self) -> str:
        return (
            f"solver={self.solver!r}, pad={self.pad}, patch_size={self.patch_size}, "
            f"levels={self.levels}"
        )

    def reset(self) -> None:
        for est in self.estimators:
            est.reset()

    def check_image_shape(self, shape: Sequence[int]) -> None:
        """As :meth:`PatchPrior.check_image_shape`, and refuse emd solves that cannot fit.

        Raises
        ------
        ValueError
            If the image is too small, or if ``solver="emd"`` with ``emd_solver="dense"``
            would need more than ``memory_fraction`` of the available memory at some
            level (the message gives N, M, the estimate and the alternatives).
        """
        super().check_image_shape(shape)
        if self.solver != "emd" or self.emd_solver != "dense":
            return
        available = free_memory_bytes(torch.empty(0))
        for level, (h, w) in enumerate(level_shapes(shape, self.levels)):
            n = _count_patches(h, w, self.patch_size)
            m = int(getattr(self, f"ref_{level}").shape[0])
            need = emd_memory_bytes(n, m)
            if need > self.memory_fraction * available:
                raise ValueError(
                    f"wpp with solver='emd' cannot solve level {level}: N={n} patches of the "
                    f"{(h, w)} (padded) image against M={m} reference patches needs about "
                    f"{need / 1e9:.1f} GB (44 N M bytes) but {available / 1e9:.1f} GB are "
                    f"available; use solver='semidual' (the original WPP estimator), "
                    f"emd_solver='lazy' (O(N+M) memory, ~8x slower), fewer reference patches "
                    f"or a smaller image"
                )

    def transport(self, level: int, X: Tensor, Y: Tensor) -> Tuple[Tensor, Optional[int], bool]:
        if self.solver == "emd":
            return emd_w2(X, Y, solver=self.emd_solver), None, True
        est = self.estimators[level]
        if est.Y.dtype != X.dtype or est.Y.device != X.device:
            est.to(dtype=X.dtype, device=X.device)
        return est(X), est.n_ascent, True


# ----------------------------------------------------------------------------- factory
def make_prior(
    kind: str,
    x_ref: Any,
    *,
    eps: float = 4e-4,
    rho: float = 0.01,
    patch_size: int = 6,
    levels: int = 1,
    n_ref_patches: int = 10_000,
    rng: RngLike = None,
    backend: str = "auto",
    **kw: Any,
) -> PatchPrior:
    """Build a multiscale patch prior from a reference image.

    Parameters
    ----------
    kind : {"semi", "balanced", "unbalanced", "wpp"}
        ``semi``: OT_{ε,ρ} (the paper's); ``balanced``: OT_ε; ``unbalanced``:
        OT_{ε,ρ,ρ}; ``wpp``: the Wasserstein Patch Prior baseline (OT_0 on the image
        padded by 20 px).
    x_ref : numpy.ndarray (H, W) or torch.Tensor (1, 1, H, W)
        Reference image in [0, 1]; ``n_ref_patches`` patches are drawn from each of
        its pyramid levels.
    eps : float, default 4e-4
        ε of the entropic kinds (ignored by ``wpp``).
    rho : float, default 0.01
        ρ of ``semi`` and ``unbalanced``.
    patch_size : int, default 6
    levels : int, default 1
        L: the prior averages levels 0..L with weights 1/(L+1).
    n_ref_patches : int, default 10 000
        M per level.
    rng : int, numpy.random.Generator or None
        Draws the reference patches.
    backend : {"auto", "dense", "blocked", "keops"}, default "auto"
        Point-cloud back end of the entropic kinds (ignored by ``wpp``).
    **kw
        Entropic kinds: ``warm_start`` and solver options of
        :class:`~pot_semiunbalanced.SamplesLoss` (``numItermax``, ``stopThr``, ...).
        ``wpp``: ``solver`` ("emd" or "semidual"), ``pad``, ``emd_solver``,
        ``memory_fraction`` and :class:`~.wpp.SemiDualW2` options.

    Returns
    -------
    PatchPrior
        :class:`EntropicPatchPrior` or :class:`WassersteinPatchPrior`.

    Raises
    ------
    ValueError
        Unknown kind, bad parameters, or a reference with too few patches.

    Examples
    --------
    >>> import numpy as np, torch
    >>> ref = np.random.default_rng(0).random((40, 40))
    >>> prior = make_prior("semi", ref, eps=1e-2, patch_size=4, n_ref_patches=200, rng=0)
    >>> x = torch.rand(1, 1, 24, 24, requires_grad=True)
    >>> prior(x).backward()
    >>> x.grad.shape, len(prior.last_diagnostics.scales)
    (torch.Size([1, 1, 24, 24]), 2)
    """
    if kind not in PRIOR_KINDS:
        raise ValueError(f"unknown prior kind {kind!r}: use one of {PRIOR_KINDS}")
    n_ref_patches = _check_int(n_ref_patches, "n_ref_patches", 1)  # named as the caller knows it
    refs = reference_patches(
        x_ref, patch_size=patch_size, levels=levels, n_patches=n_ref_patches, rng=rng
    )
    if kind == "wpp":
        return WassersteinPatchPrior(refs, patch_size=patch_size, **kw)
    return EntropicPatchPrior(
        refs, kind=kind, eps=eps, rho=rho, patch_size=patch_size, backend=backend, **kw
    )
