"""Table I / Fig. 2 of the paper: super-resolution with clean and defective references.

Every pair of a dataset (:class:`~.datasets.SRPair`: a ground truth and two references)
is restored by five methods, once with each reference set:

=============  ==============  ====================================================
method         paper's name    what runs
=============  ==============  ====================================================
``bicubic``    --              :func:`~pot_semiunbalanced.imaging.superres.upsample_init`
``wpp``        WPP             OT_0 on the image padded by 20 px (``wpp`` prior)
``balanced``   OT_ε            balanced entropic OT
``unbalanced`` OT_{ε,ρ,ρ}      entropic OT with both marginals relaxed
``semi``       OT_{ε,ρ}        the paper's semi-unbalanced OT (image side hard)
=============  ==============  ====================================================

The four patch priors run :func:`~pot_semiunbalanced.imaging.superres.super_resolve`
(problem (9), Adam, λ scaled with the number of LR pixels) with the parameters of a
:class:`BenchmarkPreset` (:data:`PRESETS`: ``"quick"`` for a 2-core CPU, ``"paper"``
for the paper's 256² setting on a GPU).

Protocol
--------
* The ground truth is the pair's ``hr`` image, or its centred ``crop x crop`` part; the
  references are used whole (so a defect keeps its coverage of the reference).
* The observation is ``simulate_lr(truth, noise_std=...)`` (16x16 Gaussian of std 2,
  stride 4, "valid", noise N(0, 0.01²)) with a generator seeded by
  :func:`observation_seed` (the benchmark seed and the pair name): every method and
  both reference sets restore the *same* observation, whatever the order or the
  subset of pairs run.
* Every restoration of one (pair, reference set) draws the same reference patches: its
  generator is seeded by :func:`restoration_seed` (seed, pair name, reference set),
  independent of the method.
* Metrics: PSNR, SSIM and LPIPS 6 px away from the borders
  (:mod:`~pot_semiunbalanced.imaging.metrics`); a metric the image is too small for is
  NaN (LPIPS needs 43 px, SSIM 19 px, PSNR 13 px).

Output folder
-------------
::

    out/config.json                          preset and seed of the results (checked on resume)
    out/inputs/<pair>/pair.json              pair meta, sizes, seeds, SHA-256 of the inputs
    out/inputs/<pair>/lr.npy                 the observation (float64, exact)
    out/inputs/<pair>/{truth,ref_clean,ref_defect,lr}.png   16-bit PNG (lr clipped to [0, 1])
    out/inputs/<pair>/defect_mask.png
    out/items/<pair>/<refset>/<method>.png   the restored image, 16-bit PNG
    out/items/<pair>/<refset>/<method>.json  metrics, seconds, parameters, OT iterations

An item is finished when its JSON exists (it is written after its image). Every file is
written to a temporary name in the same folder and then renamed, so an interrupted run
leaves either a whole file or none (plus, at worst, an ignored ``*.tmp-*`` file), and
:func:`run_benchmark` resumes by skipping finished items. :func:`write_reports` then
writes ``table.md``, ``table.csv`` (means), ``per_image.csv``, ``results.json`` (all
records without per-step traces) and ``grid.png`` (Fig. 2 style, via
:mod:`.benchmark_figures`).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .datasets import SRPair

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "REFERENCE_SETS",
    "REFERENCE_LABELS",
    "METRICS",
    "BenchmarkPreset",
    "PRESETS",
    "get_preset",
    "BenchmarkItem",
    "PreparedPair",
    "Restoration",
    "BenchmarkRun",
    "observation_seed",
    "restoration_seed",
    "crop_center",
    "prepare_pair",
    "restore",
    "plan_items",
    "run_benchmark",
    "item_paths",
    "read_record",
    "collect_records",
    "summarize",
    "table_markdown",
    "write_reports",
    "load_grid_rows",
]

#: Methods, in table order.
METHODS: Tuple[str, ...] = ("bicubic", "wpp", "balanced", "unbalanced", "semi")

#: Names used in tables and figures.
METHOD_LABELS: Dict[str, str] = {
    "bicubic": "bicubic",
    "wpp": "WPP",
    "balanced": "OT_ε",
    "unbalanced": "OT_{ε,ρ,ρ}",
    "semi": "OT_{ε,ρ}",
}

#: Reference sets: the pair's defect-free reference and its defective one.
REFERENCE_SETS: Tuple[str, ...] = ("clean", "defect")

#: Names used in tables and figures.
REFERENCE_LABELS: Dict[str, str] = {"clean": "defect-free ref.", "defect": "defective ref."}

#: Metrics of every restoration (higher PSNR/SSIM and lower LPIPS are better).
METRICS: Tuple[str, ...] = ("psnr", "ssim", "lpips")

_FORMAT = "pot-semiunbalanced/benchmark"
_FORMAT_VERSION = 1
_SEED_TAG_LR = 0x4C52  # "LR": keeps the observation's stream apart from the dataset's
_SEED_TAG_RESTORE = 0x5253  # "RS"
_TMP_MARK = ".tmp-"

PathLike = Union[str, "os.PathLike[str]"]


# ============================================================================ presets
@dataclass(frozen=True)
class BenchmarkPreset:
    """Parameters of one benchmark configuration.

    Parameters
    ----------
    name : str
        Preset name (recorded in the results).
    image_size : int
        Side of the dataset images the preset is meant for (the size the offline or
        MVTec pairs are built at; the runner accepts any size).
    crop : int or None
        Side of the centred crop of the ground truth that is restored; ``None``
        restores the whole image. References are always used whole.
    steps : int
        Adam steps of every patch prior.
    n_ref_patches : int
        Reference patches per pyramid level (M).
    num_iter_max : int
        Cap on the Sinkhorn iterations of one transport solve (entropic priors; they
        are warm-started from the previous Adam step).
    lam : float
        λ of the paper at 256² (scaled with the number of LR pixels, see
        :func:`~pot_semiunbalanced.imaging.superres.effective_lam`).
    eps, rho : float
        ε of the entropic priors, ρ of ``semi`` and ``unbalanced``.
    patch_size, levels : int
        Patch side and number L of coarser pyramid levels.
    lr : float
        Adam learning rate.
    noise_std : float
        Standard deviation of the observation noise.
    init : {"bicubic", "bilinear"}
        Initial image of every prior (and the ``bicubic`` method's output when
        ``"bicubic"``).
    wpp_solver : {"semidual", "emd"}
        Transport of the WPP baseline (:class:`~pot_semiunbalanced.imaging.priors.WassersteinPatchPrior`).
    wpp_pad : int
        Border of the WPP variable in pixels per side (20 in the WPP code and the
        paper). It is not scaled with the image: on a 64x64 crop the 20-px border holds
        62 % of the patches against 25 % around a 256x256 image, which makes WPP more
        tolerant of reference patches that fit nothing (see the quick results' README).
    stop_thr : float
        Tolerance of the Sinkhorn solves.
    backend : str
        Point-cloud back end of the entropic priors ("auto", "dense", "blocked", "keops").
    description : str
        One line saying what the preset is for.
    """

    name: str
    image_size: int
    crop: Optional[int]
    steps: int
    n_ref_patches: int
    num_iter_max: int
    lam: float = 0.006
    eps: float = 4e-4
    rho: float = 0.01
    patch_size: int = 6
    levels: int = 1
    lr: float = 0.01
    noise_std: float = 0.01
    init: str = "bicubic"
    wpp_solver: str = "semidual"
    wpp_pad: int = 20
    stop_thr: float = 1e-6
    backend: str = "auto"
    description: str = ""

    def __post_init__(self) -> None:
        def check_int(name: str, minimum: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")

        def check_pos(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")

        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for name, minimum in (("image_size", 16), ("steps", 0), ("n_ref_patches", 1),
                              ("num_iter_max", 1), ("patch_size", 1), ("levels", 0),
                              ("wpp_pad", 0)):
            check_int(name, minimum)
        if self.crop is not None:
            check_int("crop", 16)
        for name in ("lam", "eps", "rho", "lr", "stop_thr"):
            check_pos(name)
        if isinstance(self.noise_std, bool) or not (
            isinstance(self.noise_std, (int, float)) and math.isfinite(self.noise_std) and self.noise_std >= 0
        ):
            raise ValueError(f"noise_std must be a finite number >= 0, got {self.noise_std!r}")
        if self.init not in ("bicubic", "bilinear"):
            raise ValueError(f"init must be 'bicubic' or 'bilinear', got {self.init!r}")
        if self.wpp_solver not in ("semidual", "emd"):
            raise ValueError(f"wpp_solver must be 'semidual' or 'emd', got {self.wpp_solver!r}")
        if self.backend not in ("auto", "dense", "blocked", "keops"):
            raise ValueError(
                f"backend must be one of 'auto', 'dense', 'blocked', 'keops', got {self.backend!r}"
            )

    def replace(self, **changes: Any) -> "BenchmarkPreset":
        """A copy with some fields changed (validated); unknown names raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown preset fields {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def experiment_dict(self) -> Dict[str, Any]:
        """The fields that determine the results (all but ``name`` and ``description``)."""
        d = self.to_dict()
        d.pop("name")
        d.pop("description")
        return d

    def method_options(self, method: str) -> Dict[str, Any]:
        """Keyword arguments of :func:`~pot_semiunbalanced.imaging.superres.super_resolve`
        (and of the prior) that ``method`` runs with.

        Parameters
        ----------
        method : str
            One of :data:`METHODS`.

        Returns
        -------
        dict
            ``{"init": ...}`` for ``bicubic``; for a prior: ``prior``, ``lam``, ``eps``,
            ``rho``, ``patch_size``, ``levels``, ``n_ref_patches``, ``lr``, ``steps``,
            ``init`` and ``prior_options`` (``solver`` and ``pad`` for ``wpp``; ``numItermax``,
            ``stopThr``, ``backend`` for the entropic kinds). Parameters a prior ignores
            (``eps``/``rho`` for ``wpp``, ``rho`` for ``balanced``) are left out.
        """
        _check_method(method)
        if method == "bicubic":
            return {"init": self.init}
        opts: Dict[str, Any] = {
            "prior": method,
            "lam": self.lam,
            "patch_size": self.patch_size,
            "levels": self.levels,
            "n_ref_patches": self.n_ref_patches,
            "lr": self.lr,
            "steps": self.steps,
            "init": self.init,
        }
        if method == "wpp":
            opts["prior_options"] = {"solver": self.wpp_solver, "pad": self.wpp_pad}
        else:
            opts["eps"] = self.eps
            if method != "balanced":
                opts["rho"] = self.rho
            opts["prior_options"] = {
                "numItermax": self.num_iter_max,
                "stopThr": self.stop_thr,
                "backend": self.backend,
            }
        return opts


#: The two presets. ``quick``: all pairs of the offline benchmark, both reference sets
#: and all five methods within an hour on a 2-core CPU (measured: see
#: ``benchmarks/results/table1_quick/README.md``). ``paper``: the paper's setting
#: (256² images, M = 10 000, 500 steps), meant for a GPU.
PRESETS: Dict[str, BenchmarkPreset] = {
    "quick": BenchmarkPreset(
        name="quick",
        image_size=256,
        crop=64,
        steps=200,
        n_ref_patches=550,
        num_iter_max=100,
        description=(
            "2-core CPU: 64x64 centre crop of the 256x256 ground truth (13x13 LR pixels, λ "
            "scaled accordingly), whole 256x256 references, M = 550 patches per level (the "
            "paper's M/N at level 0), 200 Adam steps, at most 100 warm-started Sinkhorn "
            "iterations per solve, WPP semi-dual"
        ),
    ),
    "paper": BenchmarkPreset(
        name="paper",
        image_size=256,
        crop=None,
        steps=500,
        n_ref_patches=10_000,
        num_iter_max=1000,
        description=(
            "the paper's setting on a GPU: 256x256 images, λ = 0.006, ε = 4e-4, ρ = 0.01, "
            "patch 6, L = 1, M = 10 000, Adam lr 0.01, 500 steps; WPP with its original "
            "semi-dual estimator (ot.emd does not fit at 84 681 x 10 000)"
        ),
    ),
}


def get_preset(preset: Union[str, BenchmarkPreset], **overrides: Any) -> BenchmarkPreset:
    """A preset by name (or as given), with some fields overridden.

    Parameters
    ----------
    preset : str or BenchmarkPreset
        A key of :data:`PRESETS` or a preset.
    **overrides
        Fields to change (``steps=5``, ``crop=48``, ...); ``None`` values are ignored
        except for ``crop``, where ``None`` means the whole image.

    Returns
    -------
    BenchmarkPreset
    """
    if isinstance(preset, BenchmarkPreset):
        base = preset
    elif isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        base = PRESETS[preset]
    else:
        raise ValueError(f"preset must be a name or a BenchmarkPreset, got {type(preset).__name__}")
    changes = {k: v for k, v in overrides.items() if v is not None or k == "crop"}
    if not changes:
        return base
    new = base.replace(**changes)
    changed = {k: v for k, v in changes.items()
               if k not in ("name", "description") and getattr(base, k) != v}
    if changed and "name" not in changes:  # say so: results must not pass for the preset's
        note = ", ".join(f"{k}={v}" for k, v in changed.items())
        new = new.replace(name=f"{base.name} (modified)",
                          description=changes.get("description",
                                                  f"{base.description}; modified: {note}"))
    return new


# ============================================================================ items
def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def _check_refset(refset: str) -> None:
    if refset not in REFERENCE_SETS:
        raise ValueError(f"unknown reference set {refset!r}; choose from {REFERENCE_SETS}")


@dataclass(frozen=True, order=True)
class BenchmarkItem:
    """One restoration: a pair, a reference set and a method."""

    pair: str
    refset: str
    method: str

    def __post_init__(self) -> None:
        _check_refset(self.refset)
        _check_method(self.method)


@dataclass
class PreparedPair:
    """What the restorations of one pair need, as float64 arrays.

    Attributes
    ----------
    name : str
    truth : ndarray, shape (H, W)
        The ground truth that is restored (the crop of ``hr``).
    lr : ndarray, shape (h, w)
        The observation (not clipped).
    references : dict
        ``{"clean": ..., "defect": ...}``, the whole reference images.
    defect_mask : ndarray of bool
        Mask of the defective reference.
    lr_seed : list of int
        Entropy of the observation's generator.
    info : dict
        JSON-ready description (sizes, crop box, seeds, SHA-256 of the arrays, meta).
    """

    name: str
    truth: np.ndarray
    lr: np.ndarray
    references: Dict[str, np.ndarray]
    defect_mask: np.ndarray
    lr_seed: List[int]
    info: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Restoration:
    """Result of :func:`restore` (no I/O).

    Attributes
    ----------
    image : ndarray, shape (H, W)
        Restored image, float64 in [0, 1].
    metrics : dict
        ``psnr``, ``ssim``, ``lpips`` (NaN where the size does not allow one).
    seconds : float
        Wall time of the restoration (metrics excluded).
    cpu_seconds : float
        CPU time of this process during the restoration (all its threads; on a shared
        machine the fair measure of the work, where the wall time also counts waiting).
    solver : dict
        Transport summary (:func:`_solver_summary`); empty for ``bicubic``.
    trace : dict
        Per-step records: ``psnr``, ``objective``, ``ot_iters`` (per level),
        ``ot_err`` (per level, last Sinkhorn error), ``converged``; empty for ``bicubic``.
    psnr_init : float
        PSNR of the initial image.
    lam_effective : float
        λ used in the data term (NaN for ``bicubic``).
    """

    image: np.ndarray
    metrics: Dict[str, float]
    seconds: float
    cpu_seconds: float = math.nan
    solver: Dict[str, Any] = field(default_factory=dict)
    trace: Dict[str, Any] = field(default_factory=dict)
    psnr_init: float = math.nan
    lam_effective: float = math.nan


def _sha256(arr: np.ndarray) -> str:
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256()
    h.update(str(a.dtype).encode() + str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def observation_seed(pair_name: str, *, seed: int = 0) -> List[int]:
    """Entropy of the generator of a pair's observation noise.

    ``[seed, crc32(pair_name), 0x4C52]``: it depends only on the benchmark seed and the
    pair name, so the observation is the same for every method, reference set, run
    order and subset of pairs.
    """
    seed = _check_seed(seed)
    return [seed, zlib.crc32(pair_name.encode("utf-8")), _SEED_TAG_LR]


def restoration_seed(pair_name: str, refset: str, *, seed: int = 0) -> List[int]:
    """Entropy of the generator of a restoration (reference patches, WPP border).

    ``[seed, crc32(pair_name), 0x5253, index of refset]``: the same for every method,
    so all priors of one (pair, reference set) see the same reference patches.
    """
    seed = _check_seed(seed)
    _check_refset(refset)
    return [seed, zlib.crc32(pair_name.encode("utf-8")), _SEED_TAG_RESTORE,
            REFERENCE_SETS.index(refset)]


def crop_center(img: np.ndarray, size: Optional[int]) -> Tuple[np.ndarray, List[int]]:
    """The centred ``size x size`` part of ``img`` and its box ``[r0, c0, r1, c1]``.

    ``size=None`` returns the whole image.
    """
    h, w = img.shape
    if size is None:
        return np.ascontiguousarray(img), [0, 0, h, w]
    if size > min(h, w):
        raise ValueError(f"crop={size} is larger than the {h}x{w} ground truth")
    r0, c0 = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[r0:r0 + size, c0:c0 + size]), [r0, c0, r0 + size, c0 + size]


def prepare_pair(pair: SRPair, preset: BenchmarkPreset, *, seed: int = 0) -> PreparedPair:
    """Crop the ground truth and simulate the observation of one pair.

    Parameters
    ----------
    pair : SRPair
    preset : BenchmarkPreset
        Its ``crop`` and ``noise_std`` are used.
    seed : int
        Benchmark seed (:func:`observation_seed`).

    Returns
    -------
    PreparedPair
    """
    import torch

    from pot_semiunbalanced._array import torch_threads
    from pot_semiunbalanced.imaging.operators import simulate_lr

    if not isinstance(pair, SRPair):
        raise ValueError(f"pair must be an SRPair, got {type(pair).__name__}")
    truth, box = crop_center(pair.hr, preset.crop)
    if min(truth.shape) < 16:
        raise ValueError(f"the ground truth of {pair.name} is {truth.shape}, smaller than the 16x16 blur")
    entropy = observation_seed(pair.name, seed=seed)
    # one thread: a multi-threaded BLAS may split the blur's sums differently from call to
    # call (seen on a 16-core machine: last-bit differences between two calls), and the
    # observation must be the same bits whenever it is simulated
    with torch_threads(1):
        y = simulate_lr(
            torch.as_tensor(truth, dtype=torch.float64)[None, None],
            noise_std=preset.noise_std,
            rng=np.random.default_rng(entropy),
        )
    lr = y[0, 0].numpy().astype(np.float64)
    refs = {"clean": pair.ref_clean, "defect": pair.ref_defect}
    info = {
        "name": pair.name,
        "hr_shape": list(pair.hr.shape),
        "truth_shape": list(truth.shape),
        "crop_box": box,
        "lr_shape": list(lr.shape),
        "reference_shapes": {k: list(v.shape) for k, v in refs.items()},
        "defect_coverage": pair.defect_coverage,
        "lr_seed": entropy,
        "noise_std": preset.noise_std,
        "sha256": {
            "truth": _sha256(truth),
            "lr": _sha256(lr),
            "ref_clean": _sha256(pair.ref_clean),
            "ref_defect": _sha256(pair.ref_defect),
        },
        "meta": pair.meta,
    }
    return PreparedPair(
        name=pair.name, truth=truth, lr=lr, references=refs, defect_mask=pair.defect_mask,
        lr_seed=entropy, info=info,
    )


# ============================================================================ numerics
def _image_metrics(x: np.ndarray, truth: np.ndarray, *, device: Any = None) -> Dict[str, float]:
    """PSNR, SSIM, LPIPS 6 px from the borders; NaN where the image is too small."""
    from pot_semiunbalanced.imaging import metrics as M

    inner = min(truth.shape) - 2 * M.DEFAULT_BORDER
    out = {"psnr": math.nan, "ssim": math.nan, "lpips": math.nan}
    if inner >= 1:
        out["psnr"] = M.psnr(x, truth)
    if inner >= 7:
        out["ssim"] = M.ssim(x, truth)
    if inner >= M.LPIPS_MIN_SIZE:
        out["lpips"] = M.lpips_distance(x, truth, device=device)
    return out


def _finite_or_none(v: Any) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _solver_summary(ot_iters: Sequence[Sequence[Optional[int]]], converged: Sequence[bool],
                    errors: Sequence[Sequence[Optional[float]]], ot_time: Sequence[float],
                    scales: Sequence[Tuple[int, int]], solver: str, cap: Optional[int]) -> Dict[str, Any]:
    """Per-level iteration statistics of a run (JSON-ready)."""
    levels = []
    n_levels = len(scales)
    for level in range(n_levels):
        its = [s[level] for s in ot_iters if s[level] is not None]
        errs = [e[level] for e in errors if e[level] is not None]
        n, m = scales[level]
        levels.append({
            "level": level,
            "n_patches": n,
            "n_ref": m,
            "iters_mean": float(np.mean(its)) if its else None,
            "iters_max": int(max(its)) if its else None,
            "iters_first": int(its[0]) if its else None,
            "iters_last": int(its[-1]) if its else None,
            "at_cap_steps": int(sum(i >= cap for i in its)) if (its and cap) else 0,
            "err_last": _finite_or_none(errs[-1]) if errs else None,
            "err_max": _finite_or_none(max(errs)) if errs else None,
        })
    return {
        "solver": solver,
        "iteration_cap": cap,
        "steps": len(converged),
        "converged_steps": int(sum(bool(c) for c in converged)),
        "ot_seconds": float(sum(ot_time)),
        "levels": levels,
    }


def restore(
    truth: np.ndarray,
    lr: np.ndarray,
    reference: np.ndarray,
    *,
    method: str,
    preset: BenchmarkPreset,
    rng: Any = None,
    device: Any = None,
    progress: bool = False,
) -> Restoration:
    """Restore one observation with one method and measure the result (no I/O).

    Parameters
    ----------
    truth : ndarray, shape (H, W)
        Ground truth (for the metrics and the per-step PSNR; fixes the HR size).
    lr : ndarray, shape (h, w)
        Observation.
    reference : ndarray, shape (H', W')
        Reference image (ignored by ``bicubic``).
    method : str
        One of :data:`METHODS`.
    preset : BenchmarkPreset
    rng : seed, entropy list or numpy.random.Generator, optional
        Draws the reference patches (and the WPP border).
    device : str, optional
        "cpu" (default) or "cuda".
    progress : bool
        tqdm bar of the Adam steps.

    Returns
    -------
    Restoration
    """
    import torch

    from pot_semiunbalanced.imaging.priors import make_prior
    from pot_semiunbalanced.imaging.superres import super_resolve, upsample_init

    _check_method(method)
    device = "cpu" if device is None else device
    if isinstance(rng, list):
        rng = np.random.default_rng(rng)
    opts = preset.method_options(method)
    hr_shape = tuple(truth.shape)
    y = torch.as_tensor(lr, dtype=torch.float32, device=device)[None, None]
    if method == "bicubic":
        t0, c0 = time.perf_counter(), time.process_time()
        x0 = upsample_init(y, hr_shape, mode=opts["init"])
        image = x0[0, 0].detach().cpu().double().clamp(0.0, 1.0).numpy()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        metrics = _image_metrics(image, truth, device=device)
        return Restoration(image=image, metrics=metrics, seconds=seconds, cpu_seconds=cpu,
                           psnr_init=metrics["psnr"])

    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    prior_kw = dict(opts["prior_options"])
    backend = prior_kw.pop("backend", "auto")
    prior = make_prior(
        method, reference, eps=opts.get("eps", preset.eps), rho=opts.get("rho", preset.rho),
        patch_size=opts["patch_size"], levels=opts["levels"],
        n_ref_patches=opts["n_ref_patches"], rng=gen, backend=backend, **prior_kw,
    )
    errors: List[List[Optional[float]]] = []

    def record_errors(step: int, x: Any, history: Any) -> None:
        row: List[Optional[float]] = []
        for loss in getattr(prior, "losses", ()):
            log = loss.last_log or {}
            err = log.get("err") or []
            row.append(_finite_or_none(err[-1]) if err else None)
        if not row:
            row = [None] * (prior.levels + 1)
        errors.append(row)

    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        # capped solves are deliberate here; convergence is recorded in the results
        warnings.filterwarnings("ignore", message="the transport solver did not reach")
        x_hat, hist = super_resolve(
            y, reference, prior=prior, lam=opts["lam"], lr=opts["lr"], steps=opts["steps"],
            init=opts["init"], device=device, rng=gen, x_true=truth, progress=progress,
            hr_shape=hr_shape, callback=record_errors,
        )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    image = x_hat[0, 0].detach().cpu().double().numpy()
    metrics = _image_metrics(image, truth, device=device)
    diag = prior.last_diagnostics
    scales = [(s.n_patches, s.n_ref) for s in diag.scales] if diag is not None else []
    if method == "wpp":
        solver_name = f"wpp/{preset.wpp_solver}"
        cap = None
    else:
        solver_name = "sinkhorn"
        cap = preset.num_iter_max
    solver = _solver_summary(hist.ot_iters, hist.converged, errors, hist.ot_time, scales,
                             solver_name, cap)
    trace = {
        "psnr": [float(v) for v in hist.psnr],
        "objective": [float(v) for v in hist.objective],
        "ot_iters": [list(v) for v in hist.ot_iters],
        "ot_err": errors,
        "converged": [bool(c) for c in hist.converged],
    }
    return Restoration(image=image, metrics=metrics, seconds=seconds, cpu_seconds=cpu, solver=solver,
                       trace=trace, psnr_init=float(hist.psnr_init),
                       lam_effective=float(hist.lam_effective))


# ============================================================================ files
def item_paths(out: PathLike, item: BenchmarkItem) -> Tuple[Path, Path]:
    """``(json_path, png_path)`` of an item in the output folder ``out``."""
    folder = Path(os.fspath(out)) / "items" / item.pair / item.refset
    return folder / f"{item.method}.json", folder / f"{item.method}.png"


def _tmp_path(path: Path) -> Path:
    # keep the suffix: the image writer picks the format from it
    return path.with_name(f"{path.stem}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _atomic_write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, allow_nan=False, default=_json_default) + "\n"
    _atomic_write_bytes(path, text.encode("utf-8"))


def _atomic_write_png16(path: Path, img: np.ndarray) -> None:
    from pot_semiunbalanced.imaging.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        write_image(tmp, np.clip(img, 0.0, 1.0), bit_depth=16)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _atomic_write_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    _atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _nan_to_none(obj: Any) -> Any:
    """NaN/inf floats to None, recursively (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def read_record(path: PathLike) -> Optional[Dict[str, Any]]:
    """The record of a finished item, or None if ``path`` is missing or unreadable."""
    path = Path(os.fspath(path))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        return None
    return record


def _is_finished(out: Path, item: BenchmarkItem) -> bool:
    json_path, png_path = item_paths(out, item)
    return png_path.is_file() and read_record(json_path) is not None


def _config_record(preset: BenchmarkPreset, seed: int) -> Dict[str, Any]:
    return {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "seed": seed,
        "preset": preset.to_dict(),
    }


def _check_or_write_config(out: Path, preset: BenchmarkPreset, seed: int) -> None:
    path = out / "config.json"
    wanted = _config_record(preset, seed)
    if path.is_file():
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise ValueError(f"{path} is not valid JSON: remove it or use another output folder") from None
        if have.get("format") != _FORMAT:
            raise ValueError(f"{out} holds something else than benchmark results ({path})")
        # a field added after the results were written compares as its default
        defaults = {f.name: f.default for f in dataclasses.fields(BenchmarkPreset)
                    if f.default is not dataclasses.MISSING}
        want_exp = preset.experiment_dict()
        have_exp = {k: have.get("preset", {}).get(k, defaults.get(k)) for k in want_exp}
        diff = sorted(k for k in set(have_exp) | set(want_exp)
                      if k not in ("name", "description") and have_exp.get(k) != want_exp.get(k))
        if have.get("seed") != seed:
            diff.append("seed")
        if diff:
            raise ValueError(
                f"the output folder {out} holds results of another configuration (differs in "
                f"{', '.join(diff)}); use another output folder or the same settings"
            )
        return
    _atomic_write_json(path, wanted)


def _write_inputs(out: Path, prepared: PreparedPair) -> None:
    """Write a pair's inputs, or check them against those already there."""
    folder = out / "inputs" / prepared.name
    info_path = folder / "pair.json"
    if info_path.is_file():
        try:
            have = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError:
            have = None
        if have is not None:
            if have.get("sha256") != prepared.info["sha256"]:
                raise ValueError(
                    f"pair {prepared.name!r} differs from the one whose results are in {out} "
                    f"(other images or observation): use another output folder"
                )
            return
    _atomic_write_npy(folder / "lr.npy", prepared.lr)
    _atomic_write_png16(folder / "lr.png", prepared.lr)
    _atomic_write_png16(folder / "truth.png", prepared.truth)
    _atomic_write_png16(folder / "ref_clean.png", prepared.references["clean"])
    _atomic_write_png16(folder / "ref_defect.png", prepared.references["defect"])
    _atomic_write_png16(folder / "defect_mask.png", prepared.defect_mask.astype(np.float64))
    _atomic_write_json(info_path, _nan_to_none(prepared.info))


# ============================================================================ running
@dataclass
class _Task:
    item: BenchmarkItem
    truth: np.ndarray
    lr: np.ndarray
    reference: np.ndarray
    lr_sha256: str
    lr_seed: List[int]
    rng_seed: List[int]
    preset: BenchmarkPreset
    device: str
    out: str
    threads: Optional[int]


def _run_task(task: _Task) -> Dict[str, Any]:
    """Run one item and write its image and record (atomically). Returns the record."""
    import torch

    from pot_semiunbalanced._array import torch_threads

    with torch_threads(task.threads):
        res = restore(task.truth, task.lr, task.reference, method=task.item.method,
                      preset=task.preset, rng=list(task.rng_seed), device=task.device)
        threads_used = torch.get_num_threads()
    json_path, png_path = item_paths(task.out, task.item)
    _atomic_write_png16(png_path, res.image)
    record = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "pair": task.item.pair,
        "refset": task.item.refset,
        "method": task.item.method,
        "metrics": res.metrics,
        "seconds": res.seconds,
        "cpu_seconds": res.cpu_seconds,
        "psnr_init": res.psnr_init,
        "lam_effective": res.lam_effective,
        "parameters": task.preset.method_options(task.item.method),
        "preset": task.preset.name,
        "lr_sha256": task.lr_sha256,
        "lr_seed": task.lr_seed,
        "rng_seed": task.rng_seed,
        "truth_shape": list(task.truth.shape),
        "lr_shape": list(task.lr.shape),
        "device": str(task.device),
        "torch_threads": threads_used,
        "solver": res.solver,
        "trace": res.trace,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    record = _nan_to_none(record)
    _atomic_write_json(json_path, record)
    return record


@dataclass
class BenchmarkRun:
    """What :func:`run_benchmark` did.

    Attributes
    ----------
    out : pathlib.Path
        Output folder.
    preset : BenchmarkPreset
    items : list of BenchmarkItem
        All items of the run (finished before or now).
    computed : list of BenchmarkItem
        Items computed by this call.
    skipped : list of BenchmarkItem
        Items found finished and skipped.
    records : list of dict
        Records of all items, in ``items`` order.
    seconds : float
        Wall time of the call.
    """

    out: Path
    preset: BenchmarkPreset
    items: List[BenchmarkItem]
    computed: List[BenchmarkItem]
    skipped: List[BenchmarkItem]
    records: List[Dict[str, Any]]
    seconds: float


def plan_items(
    pair_names: Sequence[str],
    *,
    methods: Sequence[str] = METHODS,
    reference_sets: Sequence[str] = REFERENCE_SETS,
) -> List[BenchmarkItem]:
    """All (pair, reference set, method) items, pair-major, in the given orders."""
    methods = list(methods)
    reference_sets = list(reference_sets)
    if not methods:
        raise ValueError("methods must name at least one method")
    if not reference_sets:
        raise ValueError("reference_sets must name at least one reference set")
    for m in methods:
        _check_method(m)
    for r in reference_sets:
        _check_refset(r)
    if len(set(methods)) != len(methods) or len(set(reference_sets)) != len(reference_sets):
        raise ValueError("methods and reference_sets must not repeat names")
    return [BenchmarkItem(p, r, m) for p in pair_names for r in reference_sets for m in methods]


# rough cost of a method relative to ``semi`` (for scheduling long items first)
_COST_ORDER = {"wpp": 0, "balanced": 1, "semi": 2, "unbalanced": 3, "bicubic": 4}


def _resolve_jobs(jobs: Optional[int], device: str) -> int:
    if device.startswith("cuda"):
        return 1
    if jobs is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs == 0:
        raise ValueError(f"jobs must be a non-zero integer (-1: all cores), got {jobs!r}")
    return max(1, os.cpu_count() or 1) if jobs < 0 else int(jobs)


def _resolve_device(device: Any) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    dev = str(device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={dev!r} was requested but CUDA is not available: use device='cpu'")
    if not (dev == "cpu" or dev.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def run_benchmark(
    pairs: Sequence[SRPair],
    out: PathLike,
    *,
    preset: Union[str, BenchmarkPreset] = "quick",
    methods: Sequence[str] = METHODS,
    reference_sets: Sequence[str] = REFERENCE_SETS,
    seed: int = 0,
    jobs: Optional[int] = None,
    device: Any = None,
    threads_per_job: int = 1,
    on_item: Optional[Callable[[BenchmarkItem, Dict[str, Any], int, int], None]] = None,
) -> BenchmarkRun:
    """Run (or resume) the benchmark on ``pairs``, writing each result as it finishes.

    Parameters
    ----------
    pairs : sequence of SRPair
        Pairs with distinct names (e.g. :func:`~.datasets.offline_benchmark`).
    out : path
        Output folder (created). If it holds results of another preset or seed, a
        ValueError is raised; results of the same configuration are kept and their
        items skipped.
    preset : str or BenchmarkPreset, default "quick"
    methods : sequence of str, default all of :data:`METHODS`
    reference_sets : sequence of str, default ("clean", "defect")
    seed : int, default 0
        Benchmark seed (observations and reference patches).
    jobs : int, optional
        Parallel worker processes on the CPU (joblib, loky); default: one per core;
        ``-1``: all cores. On CUDA the items run sequentially in this process.
    device : {"cpu", "cuda"}, optional
        Default: CUDA when available.
    threads_per_job : int, default 1
        torch threads of each restoration on the CPU (in a worker process, or in this
        process for a sequential run, whose setting is restored afterwards). On a busy
        2-core machine one thread per restoration is fastest (SPEC section 2).
    on_item : callable, optional
        ``on_item(item, record, n_done, n_total)`` in this process after each computed
        item (progress reporting).

    Returns
    -------
    BenchmarkRun
    """
    t_start = time.perf_counter()
    preset = get_preset(preset)
    seed = _check_seed(seed)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs must hold at least one SRPair")
    names = [p.name if isinstance(p, SRPair) else None for p in pairs]
    if None in names:
        raise ValueError("pairs must be SRPair objects")
    if len(set(names)) != len(names):
        raise ValueError(f"pair names must be distinct, got {names}")
    dev = _resolve_device(device)
    n_jobs = _resolve_jobs(jobs, dev)
    if isinstance(threads_per_job, bool) or not isinstance(threads_per_job, (int, np.integer)) or threads_per_job < 1:
        raise ValueError(f"threads_per_job must be an integer >= 1, got {threads_per_job!r}")
    items = plan_items(names, methods=methods, reference_sets=reference_sets)

    out_path = Path(os.fspath(out))
    out_path.mkdir(parents=True, exist_ok=True)
    _check_or_write_config(out_path, preset, seed)
    prepared = {p.name: prepare_pair(p, preset, seed=seed) for p in pairs}
    for prep in prepared.values():
        _write_inputs(out_path, prep)

    todo = [it for it in items if not _is_finished(out_path, it)]
    todo_set = set(todo)
    skipped = [it for it in items if it not in todo_set]
    todo.sort(key=lambda it: (_COST_ORDER[it.method], names.index(it.pair), it.refset))
    threads = None if dev.startswith("cuda") else int(threads_per_job)
    tasks = [
        _Task(
            item=it, truth=prepared[it.pair].truth, lr=prepared[it.pair].lr,
            reference=prepared[it.pair].references[it.refset],
            lr_sha256=prepared[it.pair].info["sha256"]["lr"], lr_seed=prepared[it.pair].lr_seed,
            rng_seed=restoration_seed(it.pair, it.refset, seed=seed), preset=preset,
            device=dev, out=str(out_path), threads=threads,
        )
        for it in todo
    ]
    computed: List[BenchmarkItem] = []
    total = len(tasks)
    if n_jobs == 1 or total <= 1:
        results: Iterable[Dict[str, Any]] = (_run_task(t) for t in tasks)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=min(n_jobs, total), backend="loky",
                           return_as="generator_unordered")(delayed(_run_task)(t) for t in tasks)
    for record in results:
        item = BenchmarkItem(record["pair"], record["refset"], record["method"])
        computed.append(item)
        if on_item is not None:
            on_item(item, record, len(computed), total)

    records = []
    for it in items:
        rec = read_record(item_paths(out_path, it)[0])
        if rec is None:  # pragma: no cover - written above
            raise RuntimeError(f"result of {it} is missing in {out_path}")
        records.append(rec)
    return BenchmarkRun(out=out_path, preset=preset, items=items, computed=computed,
                        skipped=skipped, records=records,
                        seconds=time.perf_counter() - t_start)


# ============================================================================ aggregation
def collect_records(out: PathLike) -> List[Dict[str, Any]]:
    """Records of all finished items in an output folder (sorted by pair, set, method).

    Temporary files (``*.tmp-*``) and unreadable JSON files are ignored.
    """
    root = Path(os.fspath(out)) / "items"
    if not root.is_dir():
        raise FileNotFoundError(f"no results in {Path(os.fspath(out))} (missing items/ folder)")
    records = []
    for path in sorted(root.glob("*/*/*.json")):
        if _TMP_MARK in path.name:
            continue
        rec = read_record(path)
        if rec is not None:
            records.append(rec)
    order = {m: i for i, m in enumerate(METHODS)}
    records.sort(key=lambda r: (r["pair"], REFERENCE_SETS.index(r["refset"]), order[r["method"]]))
    return records


def _metric(rec: Mapping[str, Any], metric: str) -> float:
    v = rec.get("metrics", {}).get(metric)
    return math.nan if v is None else float(v)


def summarize(records: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Mean metrics per (method, reference set), over the pairs present for both.

    Parameters
    ----------
    records : sequence of dict
        Item records (:func:`collect_records`).

    Returns
    -------
    dict
        ``methods`` and ``reference_sets`` present (in table order), ``pairs`` (sorted),
        ``mean[refset][method][metric]`` (NaN if no value), ``n[refset][method]`` (number
        of pairs averaged), ``seconds[refset][method]`` (mean wall time),
        ``cpu_seconds[refset][method]`` (mean CPU time) and
        ``per_image[pair][refset][method]`` = metrics dict.
    """
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    refsets = [s for s in REFERENCE_SETS if any(r["refset"] == s for r in records)]
    pairs = sorted({r["pair"] for r in records})
    per_image: Dict[str, Dict[str, Dict[str, Dict[str, float]]]] = {}
    secs: Dict[Tuple[str, str], List[float]] = {}
    cpus: Dict[Tuple[str, str], List[float]] = {}
    for r in records:
        per_image.setdefault(r["pair"], {}).setdefault(r["refset"], {})[r["method"]] = {
            k: _metric(r, k) for k in METRICS
        }
        secs.setdefault((r["refset"], r["method"]), []).append(float(r.get("seconds") or 0.0))
        if r.get("cpu_seconds") is not None:
            cpus.setdefault((r["refset"], r["method"]), []).append(float(r["cpu_seconds"]))
    mean: Dict[str, Dict[str, Dict[str, float]]] = {}
    count: Dict[str, Dict[str, int]] = {}
    seconds: Dict[str, Dict[str, float]] = {}
    cpu_seconds: Dict[str, Dict[str, float]] = {}
    for s in refsets:
        mean[s], count[s], seconds[s], cpu_seconds[s] = {}, {}, {}, {}
        for m in methods:
            vals = [per_image[p][s][m] for p in pairs if m in per_image.get(p, {}).get(s, {})]
            count[s][m] = len(vals)
            mean[s][m] = {}
            for k in METRICS:
                xs = [v[k] for v in vals if math.isfinite(v[k])]
                mean[s][m][k] = float(np.mean(xs)) if xs else math.nan
            t = secs.get((s, m), [])
            seconds[s][m] = float(np.mean(t)) if t else math.nan
            c = cpus.get((s, m), [])
            cpu_seconds[s][m] = float(np.mean(c)) if c else math.nan
    return {"methods": methods, "reference_sets": refsets, "pairs": pairs, "mean": mean,
            "n": count, "seconds": seconds, "cpu_seconds": cpu_seconds, "per_image": per_image}


def _fmt(v: float, metric: str) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v:.2f}" if metric == "psnr" else f"{v:.3f}"


def _best(values: Mapping[str, float], metric: str) -> Optional[str]:
    finite = {m: v for m, v in values.items() if math.isfinite(v)}
    if not finite:
        return None
    pick = min if metric == "lpips" else max
    return pick(finite, key=finite.get)


def table_markdown(summary: Mapping[str, Any], *, per_image: bool = True,
                   title: Optional[str] = None) -> str:
    """Table I-style Markdown: mean PSNR / SSIM / LPIPS per method and reference set.

    The best mean of each column is in bold (highest PSNR/SSIM, lowest LPIPS). With
    ``per_image``, one table per reference set follows, with PSNR/SSIM/LPIPS per pair.
    """
    methods, refsets = summary["methods"], summary["reference_sets"]
    lines: List[str] = []
    if title:
        lines += [f"## {title}", ""]
    head = ["method"]
    for s in refsets:
        head += [f"PSNR ↑ ({REFERENCE_LABELS[s]})", "SSIM ↑", "LPIPS ↓"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    best = {(s, k): _best({m: summary["mean"][s][m][k] for m in methods}, k)
            for s in refsets for k in METRICS}
    for m in methods:
        row = [METHOD_LABELS[m]]
        for s in refsets:
            for k in METRICS:
                cell = _fmt(summary["mean"][s][m][k], k)
                row.append(f"**{cell}**" if best[(s, k)] == m and len(methods) > 1 else cell)
        lines.append("| " + " | ".join(row) + " |")
    n_pairs = sorted({summary["n"][s][m] for s in refsets for m in methods})
    lines += ["", f"Means over {', '.join(map(str, n_pairs))} pair(s); metrics 6 px from the borders."]
    if per_image:
        for s in refsets:
            lines += ["", f"### Per image, {REFERENCE_LABELS[s]} (PSNR / SSIM / LPIPS)", ""]
            head = ["pair"] + [METHOD_LABELS[m] for m in methods]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for p in summary["pairs"]:
                row = [p]
                for m in methods:
                    v = summary["per_image"].get(p, {}).get(s, {}).get(m)
                    row.append("–" if v is None else
                               " / ".join(_fmt(v[k], k) for k in METRICS))
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _table_csv(summary: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["reference_set", "method", "label", "n_pairs", "psnr", "ssim", "lpips", "seconds",
                "cpu_seconds"])
    for s in summary["reference_sets"]:
        for m in summary["methods"]:
            mean = summary["mean"][s][m]
            w.writerow([s, m, METHOD_LABELS[m], summary["n"][s][m]]
                       + [_csv_num(mean[k]) for k in METRICS]
                       + [_csv_num(summary["seconds"][s][m]), _csv_num(summary["cpu_seconds"][s][m])])
    return buf.getvalue()


def _csv_num(v: Any) -> str:
    if v is None:
        return ""
    v = float(v)
    return repr(v) if math.isfinite(v) else ""


def _per_image_csv(records: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pair", "reference_set", "method", "psnr", "ssim", "lpips", "seconds",
                "cpu_seconds", "psnr_init", "converged_steps", "steps", "iters_mean_l0", "iters_mean_l1"])
    for r in records:
        sol = r.get("solver") or {}
        levels = sol.get("levels") or []
        its = [lv.get("iters_mean") for lv in levels] + [None, None]
        w.writerow([r["pair"], r["refset"], r["method"]]
                   + [_csv_num(_metric(r, k)) for k in METRICS]
                   + [_csv_num(r.get("seconds")), _csv_num(r.get("cpu_seconds")),
                      _csv_num(r.get("psnr_init")),
                      sol.get("converged_steps", ""), sol.get("steps", ""),
                      _csv_num(its[0]), _csv_num(its[1])])
    return buf.getvalue()


def _compact(record: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("trace", "format", "version")}


def load_grid_rows(
    out: PathLike,
    *,
    pairs: Optional[Sequence[str]] = None,
    methods: Optional[Sequence[str]] = None,
    reference_sets: Sequence[str] = REFERENCE_SETS,
) -> List[Dict[str, Any]]:
    """Images and metrics for a Fig. 2-style grid, read from an output folder.

    Returns
    -------
    list of dict
        One per (pair, reference set), pair-major: ``pair``, ``refset``, ``lr``,
        ``reference``, ``defect_mask`` (None for the clean set), ``truth``, ``results``
        (method -> image) and ``metrics`` (method -> dict). Items not finished are left
        out of ``results``.
    """
    from pot_semiunbalanced.imaging.io import read_image

    root = Path(os.fspath(out))
    records = collect_records(root)
    available = sorted({r["pair"] for r in records})
    pairs = available if pairs is None else list(pairs)
    methods = [m for m in METHODS if any(r["method"] == m for r in records)] if methods is None else list(methods)
    by_key = {(r["pair"], r["refset"], r["method"]): r for r in records}
    rows = []
    for p in pairs:
        folder = root / "inputs" / p
        if not (folder / "pair.json").is_file():
            raise FileNotFoundError(f"no inputs for pair {p!r} in {root}")
        lr = np.load(folder / "lr.npy", allow_pickle=False)
        truth = read_image(folder / "truth.png")
        mask = read_image(folder / "defect_mask.png") > 0.5
        for s in reference_sets:
            ref = read_image(folder / f"ref_{s}.png")
            results, metrics = {}, {}
            for m in methods:
                rec = by_key.get((p, s, m))
                png = item_paths(root, BenchmarkItem(p, s, m))[1]
                if rec is None or not png.is_file():
                    continue
                results[m] = read_image(png)
                metrics[m] = {k: _metric(rec, k) for k in METRICS}
            rows.append({"pair": p, "refset": s, "lr": lr, "reference": ref,
                         "defect_mask": mask if s == "defect" else None, "truth": truth,
                         "results": results, "metrics": metrics})
    return rows


def write_reports(
    out: PathLike,
    *,
    grid: bool = True,
    grid_pairs: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
) -> Dict[str, Path]:
    """Aggregate the finished items of an output folder into tables and a figure.

    Writes (atomically) ``table.md`` (means and per-image tables), ``table.csv``
    (means), ``per_image.csv``, ``results.json`` (config, summary and every record
    without its per-step traces) and, with ``grid``, ``grid.png``.

    Parameters
    ----------
    out : path
        Output folder of :func:`run_benchmark`.
    grid : bool, default True
        Also draw the Fig. 2-style grid.
    grid_pairs : sequence of str, optional
        Pairs in the grid (default: all).
    title : str, optional
        Heading of ``table.md``.

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    root = Path(os.fspath(out))
    records = collect_records(root)
    if not records:
        raise FileNotFoundError(f"no finished results in {root}")
    summary = summarize(records)
    config_path = root / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    written: Dict[str, Path] = {}
    md = table_markdown(summary, title=title)
    _atomic_write_bytes(root / "table.md", md.encode("utf-8"))
    written["table.md"] = root / "table.md"
    _atomic_write_bytes(root / "table.csv", _table_csv(summary).encode("utf-8"))
    written["table.csv"] = root / "table.csv"
    _atomic_write_bytes(root / "per_image.csv", _per_image_csv(records).encode("utf-8"))
    written["per_image.csv"] = root / "per_image.csv"
    compact = {
        "format": _FORMAT + "/results",
        "version": _FORMAT_VERSION,
        "config": config,
        "summary": {k: summary[k] for k in ("methods", "reference_sets", "pairs", "mean", "n",
                                            "seconds", "cpu_seconds")},
        "records": [_compact(r) for r in records],
    }
    _atomic_write_json(root / "results.json", _nan_to_none(compact))
    written["results.json"] = root / "results.json"
    if grid:
        from .benchmark_figures import grid_figure

        rows = load_grid_rows(root, pairs=grid_pairs)
        fig = grid_figure(rows, methods=summary["methods"])
        _atomic_save_figure(fig, root / "grid.png")
        written["grid.png"] = root / "grid.png"
    return written


def _atomic_save_figure(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        fig.savefig(tmp, dpi=fig.dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
