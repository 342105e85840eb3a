"""Figures of the denoising experiment (paper Fig. 1); no numerics, no file I/O.

Every function takes the dictionary returned by
:func:`pot_semiunbalanced.experiments.denoising.fig1_experiment` and returns a
:class:`matplotlib.figure.Figure` built without pyplot (so it works under any backend,
including Agg, and leaves no global figure behind). Save it with ``fig.savefig(path)``.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from pot_semiunbalanced.experiments.denoising import METHODS
from pot_semiunbalanced.textures import patch_mosaic

__all__ = ["display_range", "fig1_figure", "convergence_figure"]

#: Math-text titles of the methods.
TEX_LABELS: Dict[str, str] = {
    "balanced": r"$\mathrm{OT}_{\varepsilon}$",
    "unbalanced": r"$\mathrm{OT}_{\varepsilon,\rho,\rho}$",
    "semi": r"$\mathrm{OT}_{\varepsilon,\rho}$",
}


def display_range(x_true: np.ndarray) -> Tuple[float, float]:
    """Gray range shared by all panels: the 0.5 and 99.5 percentiles of the ground truth."""
    lo, hi = np.percentile(np.asarray(x_true, dtype=np.float64), [0.5, 99.5])
    return float(lo), float(hi)


def _gray(ax, img, title, vmin, vmax, fontsize):
    ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])


def _methods(result: Dict[str, Any]) -> Sequence[str]:
    return [m for m in METHODS if m in result["restored"]]


def fig1_figure(
    result: Dict[str, Any],
    *,
    diagnostics: bool = False,
    mosaic_shape: Tuple[int, int] = (8, 8),
    panel_size: float = 2.4,
    fontsize: int = 9,
) -> Figure:
    """Fig. 1 of the paper: original, noisy, model samples, three restorations.

    Parameters
    ----------
    result : dict
        Output of :func:`~pot_semiunbalanced.experiments.denoising.fig1_experiment`.
    diagnostics : bool, optional
        Add a second row: the noise ``y − x*``, the local-RMSE ratio and the mass kept by
        each patch for OT_{ε,ρ,ρ} (when it was run), and the error ``x̂ − x*`` of every
        restoration with its edge anisotropy and unrestored fraction.
    mosaic_shape : (int, int), optional
        Rows and columns of the model-sample mosaic (default 8×8, at most the number of
        stored samples).
    panel_size : float, optional
        Size of one panel in inches.
    fontsize : int, optional
        Title font size.

    Returns
    -------
    matplotlib.figure.Figure
    """
    methods = _methods(result)
    x_true, y = result["x_true"], result["y"]
    vmin, vmax = display_range(x_true)
    p = int(result["params"]["patch_size"])
    n_cols = 3 + len(methods)
    n_rows = 2 if diagnostics else 1
    fig = Figure(figsize=(panel_size * n_cols, panel_size * n_rows * (1.15 if diagnostics else 1.08)),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    top = axes[0]
    scores = result["psnr"]
    _gray(top[0], x_true, "original", vmin, vmax, fontsize)
    _gray(top[1], y, f"noisy, {scores['noisy']:.2f} dB", vmin, vmax, fontsize)
    samples = np.asarray(result["model_samples"])
    labels = np.asarray(result["model_labels"])
    rows, cols = mosaic_shape
    shown = min(len(samples), rows * cols)
    if shown:
        mosaic = patch_mosaic(samples[:shown], p, n_rows=rows, n_cols=cols, pad=1, fill=vmax)
        n_edge = int(np.sum(labels[:shown] >= 1))
        title = f"model samples ({n_edge}/{shown} edges)"
        _gray(top[2], mosaic, title, vmin, vmax, fontsize)
    else:
        top[2].axis("off")
    for ax, m in zip(top[3:], methods):
        _gray(ax, result["restored"][m], f"{TEX_LABELS[m]}, {scores[m]:.2f} dB", vmin, vmax, fontsize)
    if diagnostics:
        _diagnostic_row(axes[1], result, methods, fontsize)
    fig.suptitle(_caption(result), fontsize=fontsize)
    return fig


def _diagnostic_row(row, result, methods, fontsize):
    x_true, y = result["x_true"], result["y"]
    sigma = float(result["params"]["noise_std"])
    lim = 2.0 * sigma if sigma > 0 else 0.1
    err_kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim, "interpolation": "nearest"}
    row[0].imshow(y - x_true, **err_kw)
    row[0].set_title(f"noise y − x*\n(error maps: ±{lim:.2g})", fontsize=fontsize)
    diag = result["diagnostics"]
    if "unbalanced" in diag:
        im = row[1].imshow(diag["unbalanced"]["ratio_map"], cmap="magma", vmin=0.0, vmax=1.2)
        row[1].set_title("local RMSE / noisy\n" + TEX_LABELS["unbalanced"], fontsize=fontsize)
        row[1].figure.colorbar(im, ax=row[1], fraction=0.046, pad=0.02)
        im = row[2].imshow(diag["unbalanced"]["patch_mass"], cmap="viridis", vmin=0.0)
        row[2].set_title("mass kept per patch (×N)\n" + TEX_LABELS["unbalanced"], fontsize=fontsize)
        row[2].figure.colorbar(im, ax=row[2], fraction=0.046, pad=0.02)
    else:
        row[1].axis("off")
        row[2].axis("off")
    for ax, m in zip(row[3:], methods):
        d = diag[m]
        ax.imshow(result["restored"][m] - x_true, **err_kw)
        ax.set_title(
            f"error x̂ − x*\nA = {d['edge_anisotropy']:.2f}, unrestored {100 * d['unrestored_fraction']:.0f} %",
            fontsize=fontsize,
        )
    for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])


def _caption(result: Dict[str, Any]) -> str:
    q = result["params"]
    return (
        f"{q['size']}×{q['size']} ADSN texture, σ = {q['noise_std']:g}, w = {q['w']:g}, "
        f"λ = {q['lam']:.4g}, ε = {q['eps']:g}, ρ = {q['rho']:g}, p = {q['patch_size']}, "
        f"s = {q['stride']}, M = {q['n_model_patches']}, {q['steps']} SGD steps, seed {q['seed']}"
    )


def convergence_figure(
    result: Dict[str, Any], *, panel_size: Tuple[float, float] = (4.0, 3.0), fontsize: int = 9
) -> Figure:
    """PSNR, objective and Sinkhorn iterations against the SGD step, one curve per method.

    Parameters
    ----------
    result : dict
        Output of :func:`~pot_semiunbalanced.experiments.denoising.fig1_experiment`
        (with ``x_true`` known, so the histories hold PSNRs).
    panel_size : (float, float), optional
        Size of one panel in inches.
    fontsize : int, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    methods = _methods(result)
    fig = Figure(figsize=(3 * panel_size[0], panel_size[1]), layout="constrained")
    ax_psnr, ax_obj, ax_it = fig.subplots(1, 3)
    for m in methods:
        h = result["history"][m]
        steps = np.arange(1, len(h["objective"]) + 1)
        label = TEX_LABELS[m]
        ax_psnr.plot(np.r_[0, steps], [h["psnr_init"]] + list(h["psnr"]), marker=".", label=label)
        ax_obj.plot(steps - 1, h["objective"], marker=".", label=label)
        ax_it.plot(steps - 1, h["n_iter"], marker=".", label=label)
    ax_psnr.set_title("PSNR (dB) after each step", fontsize=fontsize)
    ax_obj.set_title("objective J at each step (one sample)", fontsize=fontsize)
    ax_it.set_title("Sinkhorn iterations per step", fontsize=fontsize)
    for ax in (ax_psnr, ax_obj, ax_it):
        ax.set_xlabel("SGD step", fontsize=fontsize)
        ax.tick_params(labelsize=fontsize - 1)
        ax.grid(alpha=0.3)
    ax_psnr.legend(fontsize=fontsize)
    return fig
