"""The demonstration behind ``pot-semiunbalanced demo``: super-resolution of a texture.

A ground-truth crop and a reference are cut from *disjoint* quadrants of one of
scikit-image's bundled textures (brick by default: ground truth in the centre of the
top-left quadrant, reference = the whole top-right quadrant, so both come from the same
height of the perspective view); the observation is simulated with
:func:`~.operators.simulate_lr` (16x16 Gaussian of std 2, stride 4, noise 0.01) and
restored with several priors (:func:`~.superres.super_resolve`). No file is read or
written here: the command writes the figure.

Default sizes are chosen for a 2-core CPU and a 10-minute budget (see
:data:`DEMO_DEFAULTS` and the command's help for the measured time): a 64² image (13² LR
pixels), 100 Adam steps, 2 000 reference patches per level, the entropic solvers capped
at 100 Sinkhorn iterations per step (warm-started, so the potentials keep improving
from step to step; ``semi`` converges within the cap, ``balanced`` usually does not),
and WPP with the original semi-dual estimator (an exact ``ot.emd`` solve of the padded
64² image costs ~12 s per step here, ~20 min for 100 steps).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from pot_semiunbalanced._utils import RngLike
from pot_semiunbalanced.imaging import metrics as M
from pot_semiunbalanced.imaging.operators import simulate_lr
from pot_semiunbalanced.imaging.priors import PRIOR_KINDS
from pot_semiunbalanced.imaging.superres import SRHistory, super_resolve, upsample_init

__all__ = [
    "DEMO_DEFAULTS",
    "DEMO_TEXTURES",
    "DemoResult",
    "demo_images",
    "available_metrics",
    "run_demo",
    "metrics_table",
]

#: Textures usable by the demo (bundled with scikit-image, 512 x 512).
DEMO_TEXTURES = ("brick", "grass", "gravel")

#: Defaults of :func:`run_demo` (and of the ``demo`` command).
DEMO_DEFAULTS: Dict[str, Any] = {
    "size": 64,
    "steps": 100,
    "n_ref_patches": 2000,
    "priors": ("wpp", "balanced", "semi"),
    "wpp_solver": "semidual",
    "num_iter_max": 100,
    "texture": "brick",
    "seed": 0,
}


@dataclass
class DemoResult:
    """Everything the demo computed (images as ``(1, 1, H, W)`` tensors in [0, 1])."""

    truth: torch.Tensor
    reference: torch.Tensor
    lr: torch.Tensor
    init: torch.Tensor
    results: Dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)
    histories: Dict[str, SRHistory] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)


def demo_images(
    size: int = 64, *, texture: str = "brick", seed: RngLike = 0
) -> Dict[str, torch.Tensor]:
    """Ground truth, reference and observation for the demo.

    Parameters
    ----------
    size : int, default 64
        Side of the ground-truth crop, 16 <= size <= 256 (centre of the top-left
        256² quadrant).
    texture : {"brick", "grass", "gravel"}
    seed : int or numpy.random.Generator
        Noise of the observation.

    Returns
    -------
    dict
        ``truth`` (1, 1, size, size), ``reference`` (1, 1, 256, 256) — the top-right
        quadrant, disjoint from the truth — and ``lr`` (1, 1, h, h),
        ``h = (size - 16) // 4 + 1``; float32 tensors.
    """
    import skimage.data

    if texture not in DEMO_TEXTURES:
        raise ValueError(f"texture must be one of {DEMO_TEXTURES}, got {texture!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 256:
        raise ValueError(f"size must be an integer in [16, 256], got {size!r}")
    img = np.asarray(getattr(skimage.data, texture)(), dtype=np.float64) / 255.0
    quadrant = img[:256, :256]
    r0 = (256 - size) // 2
    truth = torch.tensor(quadrant[r0:r0 + size, r0:r0 + size], dtype=torch.float32)[None, None]
    reference = torch.tensor(img[:256, 256:512], dtype=torch.float32)[None, None]
    lr = simulate_lr(truth, rng=seed)
    return {"truth": truth, "reference": reference, "lr": lr}


def available_metrics(x: Any, truth: Any, *, lpips: bool = True) -> Dict[str, float]:
    """PSNR, SSIM and LPIPS of ``x`` against ``truth``, each only where the size allows.

    All are computed 6 px from the borders (:mod:`~.metrics`): PSNR needs sides above
    12 px, SSIM at least 19 px (7x7 window), LPIPS at least 43 px.

    Parameters
    ----------
    x, truth : array (H, W) or tensor (1, 1, H, W)
        Images in [0, 1] of the same size.
    lpips : bool, default True
        Also compute LPIPS (when the size allows).

    Returns
    -------
    dict
        A subset of ``{"psnr", "ssim", "lpips"}``.
    """
    side = min(int(s) for s in tuple(x.shape)[-2:])
    inner = side - 2 * M.DEFAULT_BORDER
    out: Dict[str, float] = {}
    if inner >= 1:
        out["psnr"] = M.psnr(x, truth)
    if inner >= 7:
        out["ssim"] = M.ssim(x, truth)
    if lpips and inner >= M.LPIPS_MIN_SIZE:
        out["lpips"] = M.lpips_distance(x, truth)
    return out


def run_demo(
    *,
    size: int = DEMO_DEFAULTS["size"],
    steps: int = DEMO_DEFAULTS["steps"],
    n_ref_patches: int = DEMO_DEFAULTS["n_ref_patches"],
    priors: Sequence[str] = DEMO_DEFAULTS["priors"],
    wpp_solver: str = DEMO_DEFAULTS["wpp_solver"],
    num_iter_max: int = DEMO_DEFAULTS["num_iter_max"],
    texture: str = DEMO_DEFAULTS["texture"],
    seed: int = DEMO_DEFAULTS["seed"],
    device: Any = None,
    progress: bool = True,
    lpips: bool = True,
) -> DemoResult:
    """Restore a simulated LR texture with several priors and measure the results.

    Parameters
    ----------
    size, texture, seed
        Data (:func:`demo_images`); ``seed`` also seeds every restoration.
    steps : int, default 100
        Adam steps per prior.
    n_ref_patches : int, default 2000
        Reference patches per pyramid level.
    priors : sequence of {"semi", "balanced", "unbalanced", "wpp"}
    wpp_solver : {"semidual", "emd"}, default "semidual"
    num_iter_max : int, default 100
        Cap on the Sinkhorn iterations per step of the entropic priors.
    device : str, optional
    progress : bool
        tqdm bars.
    lpips : bool, default True
        Compute LPIPS (only possible for a ground truth of at least 43² pixels).

    Returns
    -------
    DemoResult
        Images, metrics (``"bicubic"`` for the initialisation, then each prior),
        histories and seconds per prior.
    """
    unknown = [p for p in priors if p not in PRIOR_KINDS]
    if unknown or not priors:
        raise ValueError(f"priors must be a non-empty selection of {PRIOR_KINDS}, got {list(priors)}")
    data = demo_images(size, texture=texture, seed=seed)
    truth, reference, lr = data["truth"], data["reference"], data["lr"]
    init = upsample_init(lr, truth.shape, mode="bicubic")
    out = DemoResult(truth=truth, reference=reference, lr=lr, init=init)

    def measure(x: torch.Tensor) -> Dict[str, float]:
        return available_metrics(x, truth, lpips=lpips)

    out.metrics["bicubic"] = measure(init)
    for kind in priors:
        options: Dict[str, Any] = (
            {"solver": wpp_solver} if kind == "wpp" else {"numItermax": int(num_iter_max)}
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # the iteration cap is deliberate here; convergence is reported in the table
            warnings.filterwarnings("ignore", message="the transport solver did not reach")
            x_hat, hist = super_resolve(
                lr, reference, prior=kind, steps=steps, n_ref_patches=n_ref_patches, rng=seed,
                device=device, x_true=truth, progress=progress, prior_options=options,
            )
        out.seconds[kind] = time.perf_counter() - t0
        out.results[kind] = x_hat.cpu()
        out.histories[kind] = hist
        out.metrics[kind] = measure(x_hat.cpu())
    return out


def _solver_summary(hist: SRHistory) -> str:
    """``"mean iterations per level (converged steps/steps)"``, e.g. ``"41/35 (100/100)"``."""
    if not hist.ot_iters:
        return "-"
    per_level = list(zip(*hist.ot_iters))
    if any(v is None for level in per_level for v in level):
        its = "exact"
    else:
        its = "/".join(f"{np.mean(level):.0f}" for level in per_level)
    return f"{its} ({sum(hist.converged)}/{hist.steps})"


def metrics_table(
    metrics: Dict[str, Dict[str, float]],
    seconds: Optional[Dict[str, float]] = None,
    histories: Optional[Dict[str, SRHistory]] = None,
) -> str:
    """Plain-text table of PSNR / SSIM / LPIPS per method, with time and solver effort.

    The "OT it. per level" column gives the mean solver iterations per step at each
    pyramid level (ascent steps for the semi-dual WPP, "exact" for ``ot.emd``) and, in
    parentheses, the number of steps whose solves all converged.
    """
    seconds = seconds or {}
    histories = histories or {}
    cols = ["method", "PSNR", "SSIM", "LPIPS", "time (s)", "OT it. per level (converged)"]
    lines: List[List[str]] = []
    for name, m in metrics.items():
        lines.append([
            name,
            f"{m['psnr']:.2f}" if "psnr" in m else "-",
            f"{m['ssim']:.3f}" if "ssim" in m else "-",
            f"{m['lpips']:.3f}" if "lpips" in m else "-",
            f"{seconds[name]:.0f}" if name in seconds else "-",
            _solver_summary(histories[name]) if name in histories else "-",
        ])
    widths = [max(len(c), *(len(r[i]) for r in lines)) for i, c in enumerate(cols)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join([fmt.format(*cols)] + [fmt.format(*r) for r in lines])
