r"""Super-resolution with a reference image (paper section III, problem (9)).

Given a low-resolution observation :math:`y = S H x^* + \eta` and a reference image
whose patches resemble those of :math:`x^*`, :func:`super_resolve` minimises

.. math::

    \frac{\lambda}{2}\,\lVert S H x - y\rVert^2
    + \frac{1}{L+1}\sum_{\ell=0}^{L} \mathrm{OT}\bigl(\alpha_{A^\ell x},
      \beta_{A^\ell x_{\mathrm{ref}}}\bigr)

with Adam (lr 0.01), from an upsampling of :math:`y`. ``H`` is the 16x16 Gaussian blur
of std 2 and ``S`` the x4 subsampling of :func:`~.operators.sr_forward`; ``OT`` is one
of the priors of :mod:`.priors` (``semi`` = the paper's OT_{ε,ρ}, ``balanced``,
``unbalanced``, ``wpp``). The image is optimised unclamped, as in the paper; the
returned image is clamped to [0, 1].

Geometry of the observation
---------------------------
With the default ``boundary="valid"`` (the WPP code's convention) an HR image of side
``n`` gives ``(n - 16) // 4 + 1`` LR pixels and LR pixel ``k`` is centred on HR position
``4 k + 7.5``. The HR size is therefore inferred from an observation of side ``h`` as
``4 (h - 1) + 16`` (61 -> 256, 21 -> 96); pass ``hr_shape`` for any other HR size with the
same observation size (``4 (h - 1) + 16`` to ``4 h + 15``). With a same-size boundary mode
(``"circular"``, ``"reflect"``, ...) the inferred side is ``4 h``.

The initial image (:func:`upsample_init`) is the bicubic (or bilinear) interpolation of
``y`` to ``4 h`` pixels placed so that every LR pixel sits at its own centre, with the
border outside the LR centres filled by replicating the nearest value -- what the
original WPP code does with ``skimage.transform.resize`` and a nearest-neighbour
``griddata`` (a plain resize of 61 to 256 pixels would stretch the image by 5 %).

Weight of the data term
-----------------------
The data term is a *sum* over LR pixels while every patch term is a *mean* over
patches, so with a fixed λ the balance between them depends on the image size: the
paper's λ = 0.006 belongs to 256² images (61² = 3721 LR pixels); a 96² crop (21² LR
pixels) with the same λ gets a prior 8.4x stronger, and the original WPP code fell below
bilinear upsampling on such a crop (SPEC section 3). ``lam`` is therefore *the paper's
value at 256²* and, with ``lam_scaling="lr_pixels"`` (default), the λ actually used is

.. math::

    \lambda_{\mathrm{eff}} = \lambda \cdot \frac{n_{\mathrm{ref}}}{n_{\mathrm{LR}}},
    \qquad n_{\mathrm{ref}} = 61^2 = 3721,

i.e. the data term is :math:`\tfrac{\lambda n_{\mathrm{ref}}}{2}` times the *mean*
squared residual, the same balance at every size (and exactly the paper's at 256²).
``lam_reference_pixels`` changes :math:`n_{\mathrm{ref}}` (e.g. 147² = 21 609 for the
600² material images on which the WPP code used λ = 0.006); ``lam_scaling="none"``
uses ``lam`` as given.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pot_semiunbalanced._utils import RngLike, as_generator
from pot_semiunbalanced.imaging.io import to_tensor_image
from pot_semiunbalanced.imaging.metrics import DEFAULT_BORDER, psnr
from pot_semiunbalanced.imaging.operators import (
    BOUNDARY_MODES,
    bicubic_upsample,
    bilinear_upsample,
    sr_forward,
    sr_output_shape,
)
from pot_semiunbalanced.imaging.priors import PRIOR_KINDS, PatchPrior, make_prior

__all__ = [
    "LAM_REFERENCE_LR_PIXELS",
    "LAM_SCALINGS",
    "INITS",
    "SRHistory",
    "infer_hr_shape",
    "upsample_init",
    "effective_lam",
    "data_term",
    "super_resolve",
]

#: LR pixels of the paper's setting (256² HR, "valid" 16x16 blur, stride 4 -> 61²).
LAM_REFERENCE_LR_PIXELS = 61 * 61

#: Accepted values of ``lam_scaling``.
LAM_SCALINGS: Tuple[str, ...] = ("lr_pixels", "none")

#: Accepted initialisations (besides an explicit tensor).
INITS: Tuple[str, ...] = ("bicubic", "bilinear")

Shape2 = Tuple[int, int]


# ----------------------------------------------------------------------------- geometry
def _check_forward_options(kernel_size: int, factor: int, boundary: str) -> None:
    for name, v in (("kernel_size", kernel_size), ("factor", factor)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary must be one of {BOUNDARY_MODES}, got {boundary!r}")


def infer_hr_shape(
    lr_shape: Sequence[int], *, kernel_size: int = 16, factor: int = 4, boundary: str = "valid"
) -> Shape2:
    """HR spatial shape for an observation of ``lr_shape``.

    ``factor (h - 1) + kernel_size`` per axis with ``boundary="valid"`` (61 -> 256),
    ``factor h`` with a same-size boundary mode (64 -> 256): the smallest HR size that
    produces ``lr_shape``, with every HR pixel seen by the observation.

    Parameters
    ----------
    lr_shape : (h, w) or (B, C, h, w)
    kernel_size, factor, boundary
        Forward operator (:func:`~.operators.sr_forward`).

    Returns
    -------
    (int, int)
    """
    _check_forward_options(kernel_size, factor, boundary)
    h, w = (int(s) for s in tuple(lr_shape)[-2:])
    if h < 1 or w < 1:
        raise ValueError(f"lr_shape must have positive sides, got {tuple(lr_shape)}")
    if boundary == "valid":
        return factor * (h - 1) + kernel_size, factor * (w - 1) + kernel_size
    return factor * h, factor * w


def _lr_centre(kernel_size: int, boundary: str) -> float:
    """HR position of the centre of LR pixel 0 (then every ``factor`` pixels)."""
    c = (kernel_size - 1) / 2.0
    return c if boundary == "valid" else c - (kernel_size - 1) // 2


def upsample_init(
    y: Tensor,
    hr_shape: Sequence[int],
    *,
    mode: str = "bicubic",
    kernel_size: int = 16,
    factor: int = 4,
    boundary: str = "valid",
) -> Tensor:
    """Interpolate an observation onto the HR grid, each LR pixel at its own centre.

    ``y`` is upsampled ``factor`` times (:func:`~.operators.bicubic_upsample`, clamped to
    [0, 1], or :func:`~.operators.bilinear_upsample`), which puts LR pixel ``k`` at
    ``factor k + (factor - 1) / 2``; the result is shifted to the observation's geometry
    (LR pixel ``k`` centred on HR position ``factor k + (kernel_size - 1) / 2`` for
    ``"valid"``: a shift of 6 px for the paper's operator) and extended to ``hr_shape``
    by replicating its edge (nearest-neighbour extension, as the original WPP code's
    ``griddata``). A fractional shift is rounded to the nearest pixel.

    Parameters
    ----------
    y : torch.Tensor, shape (1, 1, h, w)
    hr_shape : (H, W) or (B, C, H, W)
    mode : {"bicubic", "bilinear"}
    kernel_size, factor, boundary
        Forward operator of the observation.

    Returns
    -------
    torch.Tensor, shape (1, 1, H, W)
        Same dtype and device as ``y``.
    """
    _check_forward_options(kernel_size, factor, boundary)
    if mode not in INITS:
        raise ValueError(f"mode must be one of {INITS}, got {mode!r}")
    h, w = y.shape[-2:]
    H, W = (int(s) for s in tuple(hr_shape)[-2:])
    size = (factor * h, factor * w)
    up = bicubic_upsample(y, size=size) if mode == "bicubic" else bilinear_upsample(y, size=size)
    shift = int(round(_lr_centre(kernel_size, boundary) - (factor - 1) / 2.0))
    rows = (torch.arange(H, device=y.device) - shift).clamp(0, size[0] - 1)
    cols = (torch.arange(W, device=y.device) - shift).clamp(0, size[1] - 1)
    return up.index_select(-2, rows).index_select(-1, cols).contiguous()


def effective_lam(
    lam: float,
    n_lr_pixels: int,
    *,
    lam_scaling: str = "lr_pixels",
    reference_pixels: int = LAM_REFERENCE_LR_PIXELS,
) -> float:
    """The λ used in the data term (see the module docstring).

    Parameters
    ----------
    lam : float
        λ > 0, the paper's value at ``reference_pixels`` LR pixels.
    n_lr_pixels : int
        Number of pixels of the observation.
    lam_scaling : {"lr_pixels", "none"}
        ``"lr_pixels"``: ``lam * reference_pixels / n_lr_pixels``; ``"none"``: ``lam``.
    reference_pixels : int, default 3721 (61²)

    Returns
    -------
    float
    """
    lam = float(lam)
    if not math.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam must be a positive finite number, got {lam!r}")
    if lam_scaling not in LAM_SCALINGS:
        raise ValueError(f"lam_scaling must be one of {LAM_SCALINGS}, got {lam_scaling!r}")
    if lam_scaling == "none":
        return lam
    if int(reference_pixels) < 1 or int(n_lr_pixels) < 1:
        raise ValueError("reference_pixels and n_lr_pixels must be positive")
    return lam * int(reference_pixels) / int(n_lr_pixels)


def data_term(
    x: Tensor,
    y: Tensor,
    *,
    lam: float,
    kernel_size: int = 16,
    blur_std: float = 2.0,
    factor: int = 4,
    boundary: str = "valid",
) -> Tensor:
    r""":math:`\frac{\lambda}{2}\lVert S H x - y\rVert^2` (sum over the LR pixels).

    Parameters
    ----------
    x : torch.Tensor, shape (1, 1, H, W)
        HR image (the interior of the optimisation variable).
    y : torch.Tensor, shape (1, 1, h, w)
        Observation; ``sr_output_shape((H, W)) == (h, w)``.
    lam : float
        The λ to use (already scaled, see :func:`effective_lam`).
    kernel_size, blur_std, factor, boundary
        Forward operator.

    Returns
    -------
    torch.Tensor, shape ()
    """
    r = sr_forward(x, kernel_size=kernel_size, std=blur_std, factor=factor, boundary=boundary) - y
    return 0.5 * lam * (r * r).sum()


# ----------------------------------------------------------------------------- history
@dataclass
class SRHistory:
    """Record of a :func:`super_resolve` run.

    Entry ``k`` of every list describes iterate ``k`` (``k = 0`` is the initial image),
    the one whose gradient Adam step ``k`` uses.

    Attributes
    ----------
    objective, data, prior : list of float
        Objective of problem (9) and its two terms.
    ot_iters : list of list
        Solver iterations per pyramid level (Sinkhorn iterations; ascent steps for
        ``wpp``/``semidual``; None for ``wpp``/``emd``).
    converged : list of bool
        Whether every level's solver converged.
    step_time : list of float
        Seconds of the whole step (prior, data term, backward, Adam update).
    ot_time : list of float
        Seconds spent in the transport solves.
    psnr : list of float
        PSNR (6 px border, clamped image) against ``x_true``; empty without ``x_true``.
    psnr_init, psnr_final : float
        PSNR of the initial and of the returned image (nan without ``x_true``).
    lam, lam_effective : float
        λ as given and as used in the data term.
    n_lr_pixels : int
    hr_shape, variable_shape : (int, int)
        Image shape and optimisation variable shape (larger by ``2 pad`` for ``wpp``).
    prior_kind : str
    stopped_early : bool
        True when the callback stopped the run.
    seconds : float
        Total wall time of the optimisation loop.
    variable : torch.Tensor or None
        The final optimisation variable, unclamped and detached, shape
        ``(1, 1, *variable_shape)``: for ``wpp`` the padded image with its border (what
        the prior saw), for the other priors the restored image before clamping.
    """

    objective: List[float] = field(default_factory=list)
    data: List[float] = field(default_factory=list)
    prior: List[float] = field(default_factory=list)
    ot_iters: List[List[Optional[int]]] = field(default_factory=list)
    converged: List[bool] = field(default_factory=list)
    step_time: List[float] = field(default_factory=list)
    ot_time: List[float] = field(default_factory=list)
    psnr: List[float] = field(default_factory=list)
    psnr_init: float = math.nan
    psnr_final: float = math.nan
    lam: float = math.nan
    lam_effective: float = math.nan
    n_lr_pixels: int = 0
    hr_shape: Shape2 = (0, 0)
    variable_shape: Shape2 = (0, 0)
    prior_kind: str = ""
    stopped_early: bool = False
    seconds: float = 0.0
    variable: Optional[Tensor] = field(default=None, repr=False)

    @property
    def steps(self) -> int:
        """Number of Adam steps taken."""
        return len(self.objective)

    def as_dict(self) -> Dict[str, Any]:
        """The recorded numbers as a plain dict (e.g. for JSON), without ``variable``."""
        out = asdict(self)
        out.pop("variable")
        return out


# ----------------------------------------------------------------------------- the solver
def _resolve_device(device: Any, y: Any) -> torch.device:
    if device is None:
        return y.device if isinstance(y, Tensor) else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available: use device='cpu'")
    return dev


def _resolve_hr_shape(
    y: Tensor, hr_shape: Optional[Sequence[int]], kernel_size: int, factor: int, boundary: str
) -> Shape2:
    lr = tuple(int(s) for s in y.shape[-2:])
    if hr_shape is None:
        return infer_hr_shape(lr, kernel_size=kernel_size, factor=factor, boundary=boundary)
    try:
        H, W = (int(s) for s in tuple(hr_shape)[-2:])
    except (TypeError, ValueError):
        raise ValueError(f"hr_shape must be (H, W), got {hr_shape!r}") from None
    if min(H, W) < kernel_size and boundary == "valid":
        raise ValueError(f"hr_shape={hr_shape!r} is smaller than the {kernel_size}x{kernel_size} blur")
    expected = sr_output_shape((H, W), kernel_size=kernel_size, factor=factor, boundary=boundary)
    if tuple(expected) != lr:
        inferred = infer_hr_shape(lr, kernel_size=kernel_size, factor=factor, boundary=boundary)
        raise ValueError(
            f"hr_shape={(H, W)} gives an observation of {tuple(expected)}, not the {lr} of y: "
            f"pass hr_shape=None to infer {inferred}"
        )
    return H, W


def super_resolve(
    y: Any,
    x_ref: Any,
    *,
    prior: Union[str, PatchPrior] = "semi",
    lam: float = 0.006,
    lam_scaling: str = "lr_pixels",
    lam_reference_pixels: int = LAM_REFERENCE_LR_PIXELS,
    eps: float = 4e-4,
    rho: float = 0.01,
    patch_size: int = 6,
    levels: int = 1,
    n_ref_patches: int = 10_000,
    lr: float = 0.01,
    steps: int = 500,
    init: Union[str, Tensor] = "bicubic",
    device: Any = None,
    dtype: torch.dtype = torch.float32,
    rng: RngLike = None,
    x_true: Any = None,
    callback: Optional[Callable[[int, Tensor, SRHistory], Optional[bool]]] = None,
    progress: bool = True,
    hr_shape: Optional[Sequence[int]] = None,
    kernel_size: int = 16,
    blur_std: float = 2.0,
    factor: int = 4,
    boundary: str = "valid",
    backend: str = "auto",
    prior_options: Optional[Dict[str, Any]] = None,
) -> Tuple[Tensor, SRHistory]:
    """Super-resolve ``y`` with a patch prior learned from ``x_ref`` (problem (9), Adam).

    Parameters
    ----------
    y : numpy.ndarray (h, w) or torch.Tensor (1, 1, h, w)
        Low-resolution observation, values about [0, 1].
    x_ref : numpy.ndarray (H', W') or torch.Tensor (1, 1, H', W')
        Reference image (any size with enough patches). Ignored when ``prior`` is a
        :class:`~.priors.PatchPrior`.
    prior : {"semi", "balanced", "unbalanced", "wpp"} or PatchPrior, default "semi"
        The prior (see :func:`~.priors.make_prior`); a built prior is used as is (its
        potentials carry over between calls: ``prior.reset()`` to start cold).
    lam : float, default 0.006
        λ of the paper at 256² (see ``lam_scaling``).
    lam_scaling : {"lr_pixels", "none"}, default "lr_pixels"
        ``"lr_pixels"`` uses ``lam * lam_reference_pixels / n_LR``, the paper's balance
        between data and prior at every image size (module docstring); ``"none"``
        uses ``lam`` as given.
    lam_reference_pixels : int, default 3721
        LR pixel count at which ``lam`` is the paper's (61² for 256² images).
    eps, rho, patch_size, levels, n_ref_patches, backend
        Prior parameters (:func:`~.priors.make_prior`); paper: 4e-4, 0.01, 6, 1, 10 000.
    lr : float, default 0.01
        Adam learning rate.
    steps : int, default 500
        Adam steps.
    init : {"bicubic", "bilinear"} or torch.Tensor, default "bicubic"
        Initial image: an aligned upsampling of ``y`` (:func:`upsample_init`; the
        original WPP code uses "bilinear"), or an explicit ``(1, 1, H, W)`` image.
    device : str or torch.device, optional
        "cpu" or "cuda"; default: ``y``'s device (CPU for arrays).
    dtype : torch.dtype, default torch.float32
        Precision of the image and of the patches.
    rng : int, numpy.random.Generator or None
        Draws the reference patches and the WPP border: a seed makes the run
        reproducible.
    x_true : numpy.ndarray or torch.Tensor, optional
        Ground truth of shape ``hr_shape``: PSNR is recorded at every step.
    callback : callable, optional
        ``callback(step, x, history)`` after every Adam step, with ``x`` the current
        (unclamped, detached) image; returning True stops the run.
    progress : bool, default True
        Show a tqdm progress bar.
    hr_shape : (H, W), optional
        HR size; default ``4 (h - 1) + 16`` per axis for ``boundary="valid"`` (module
        docstring), ``4 h`` for the same-size modes.
    kernel_size, blur_std, factor, boundary
        Forward operator ``S H``: 16, 2.0, 4, "valid" in the paper.
    prior_options : dict, optional
        Extra keyword arguments of :func:`~.priors.make_prior` (e.g. ``{"solver":
        "semidual"}`` for ``wpp``, ``{"numItermax": 200}`` for the entropic kinds).

    Returns
    -------
    x_hat : torch.Tensor, shape (1, 1, H, W)
        The restored image clamped to [0, 1] (detached, on ``device``).
    history : SRHistory
        Objective terms, solver iterations, step times and PSNR per step.

    Raises
    ------
    ValueError
        Bad parameters, an image too small for the patch size and levels, a reference
        with fewer patches than ``n_ref_patches``, a ``wpp``/``emd`` problem too large
        for the memory, or CUDA requested but unavailable.
    """
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    _check_forward_options(kernel_size, factor, boundary)
    dev = _resolve_device(device, y)
    y_t = to_tensor_image(y, dtype=dtype, device=dev).detach()
    if not bool(torch.isfinite(y_t).all()):
        raise ValueError("y contains NaN or infinite values")
    H, W = _resolve_hr_shape(y_t, hr_shape, kernel_size, factor, boundary)
    n_lr = int(y_t.shape[-2] * y_t.shape[-1])
    lam_eff = effective_lam(
        lam, n_lr, lam_scaling=lam_scaling, reference_pixels=lam_reference_pixels
    )
    gen = as_generator(rng)

    if isinstance(prior, PatchPrior):
        prior_mod = prior
    elif isinstance(prior, str):
        if prior not in PRIOR_KINDS:
            raise ValueError(f"unknown prior {prior!r}: use one of {PRIOR_KINDS}")
        if x_ref is None:
            raise ValueError("x_ref is required when prior is given by name")
        prior_mod = make_prior(
            prior, x_ref, eps=eps, rho=rho, patch_size=patch_size, levels=levels,
            n_ref_patches=n_ref_patches, rng=gen, backend=backend, **(prior_options or {}),
        )
    else:
        raise ValueError(f"prior must be a kind name or a PatchPrior, got {type(prior).__name__}")
    prior_mod = prior_mod.to(dev)
    var_shape = prior_mod.variable_shape((H, W))
    prior_mod.check_image_shape(var_shape)

    truth = None
    if x_true is not None:
        truth = to_tensor_image(x_true, dtype=torch.float64).detach().cpu()
        if tuple(truth.shape[-2:]) != (H, W):
            raise ValueError(
                f"x_true has shape {tuple(truth.shape[-2:])} but the HR image is {(H, W)}"
            )

    if isinstance(init, Tensor):
        x0 = to_tensor_image(init, dtype=dtype, device=dev).detach()
        if tuple(x0.shape[-2:]) != (H, W):
            raise ValueError(f"init has shape {tuple(x0.shape[-2:])}, expected {(H, W)}")
    elif init in INITS:
        x0 = upsample_init(y_t, (H, W), mode=init, kernel_size=kernel_size, factor=factor,
                           boundary=boundary)
    else:
        raise ValueError(f"init must be one of {INITS} or a (1, 1, H, W) tensor, got {init!r}")

    z = prior_mod.pad_variable(x0, rng=gen).to(dtype=dtype).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=float(lr))
    history = SRHistory(
        lam=float(lam), lam_effective=lam_eff, n_lr_pixels=n_lr, hr_shape=(H, W),
        variable_shape=tuple(z.shape[-2:]), prior_kind=getattr(prior_mod, "kind", ""),
    )
    forward = dict(kernel_size=kernel_size, blur_std=blur_std, factor=factor, boundary=boundary)

    def measure(x: Tensor) -> float:
        return psnr(x.detach().clamp(0.0, 1.0), truth, border=DEFAULT_BORDER)

    from tqdm import tqdm

    bar = tqdm(total=steps, disable=not progress, desc=f"sr[{history.prior_kind}]", leave=False)
    t_start = time.perf_counter()
    try:
        for step in range(steps):
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            x = prior_mod.interior(z)
            if truth is not None:
                history.psnr.append(measure(x))
            d = data_term(x, y_t, lam=lam_eff, **forward)
            r = prior_mod(z)
            total = d + r
            total.backward()
            optimizer.step()
            diag = prior_mod.last_diagnostics
            history.objective.append(float(total.detach()))
            history.data.append(float(d.detach()))
            history.prior.append(float(r.detach()))
            history.ot_iters.append(list(diag.n_iter))
            history.converged.append(diag.converged)
            history.ot_time.append(diag.seconds)
            history.step_time.append(time.perf_counter() - t0)
            postfix = {"obj": f"{history.objective[-1]:.4g}"}
            if truth is not None:
                postfix["psnr"] = f"{history.psnr[-1]:.2f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            if callback is not None and callback(step, prior_mod.interior(z).detach(), history):
                history.stopped_early = True
                break
    finally:
        bar.close()
        prior_mod.release()  # the kernels kept between steps (potentials stay for warm starts)
    history.seconds = time.perf_counter() - t_start

    history.variable = z.detach().clone()
    x_hat = prior_mod.interior(z).detach().clamp(0.0, 1.0).contiguous()
    if truth is not None:
        history.psnr_init = measure(x0)
        history.psnr_final = measure(x_hat)
    n_bad = sum(not c for c in history.converged)
    if n_bad:
        warnings.warn(
            f"the transport solver did not reach its tolerance in {n_bad} of {history.steps} "
            f"steps (see history.converged and history.ot_iters); raise numItermax through "
            f"prior_options if that matters",
            UserWarning,
            stacklevel=2,
        )
    return x_hat, history
