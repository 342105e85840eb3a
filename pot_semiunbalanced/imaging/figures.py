"""Figures for super-resolution results (matplotlib, no I/O besides :func:`save_figure`).

:func:`sr_comparison_figure` lays out one row in the style of the paper's Fig. 2: the LR
input, the reference, the ground truth, then every restoration with its
PSNR/SSIM/LPIPS triplet as title. It returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state, no display needed); :func:`save_figure` writes it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

from pot_semiunbalanced.imaging.io import to_numpy_image

__all__ = ["metrics_title", "image_row_figure", "sr_comparison_figure", "save_figure"]


def metrics_title(name: str, metrics: Optional[Mapping[str, float]]) -> str:
    """``"name\\nPSNR/SSIM/LPIPS"`` (e.g. ``"semi\\n26.97/0.758/0.109"``), or ``name`` alone."""
    if not metrics:
        return name
    parts = [f"{metrics['psnr']:.2f}" if "psnr" in metrics else "–",
             f"{metrics['ssim']:.3f}" if "ssim" in metrics else "–",
             f"{metrics['lpips']:.3f}" if "lpips" in metrics else "–"]
    return f"{name}\n{'/'.join(parts)}"


def image_row_figure(
    panels: Sequence[Tuple[str, Any]],
    *,
    panel_size: float = 2.2,
    dpi: int = 100,
    suptitle: Optional[str] = None,
):
    """A figure with one row of gray images, each with its title.

    Parameters
    ----------
    panels : sequence of (title, image)
        Images as ``(H, W)`` arrays or ``(1, 1, H, W)`` tensors, shown in [0, 1]
        (values outside are clipped by the colour map), nearest-neighbour interpolation.
    panel_size : float, default 2.2
        Width of one panel in inches.
    dpi : int, default 100
    suptitle : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("panels must hold at least one (title, image) pair")
    n = len(panels)
    fig = Figure(figsize=(panel_size * n, panel_size * 1.25 + (0.3 if suptitle else 0.0)), dpi=dpi)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(to_numpy_image(img), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def sr_comparison_figure(
    lr: Any,
    reference: Any,
    truth: Any,
    results: Mapping[str, Any],
    metrics: Optional[Mapping[str, Mapping[str, float]]] = None,
    *,
    panel_size: float = 2.2,
    dpi: int = 100,
    suptitle: Optional[str] = None,
):
    """Fig. 2-style row: LR input, reference, ground truth, then each restoration.

    Parameters
    ----------
    lr, reference, truth : array (H, W) or tensor (1, 1, H, W)
        The observation (shown at its own resolution, nearest neighbour), the reference
        image and the ground truth.
    results : mapping name -> image
        Restorations, shown in order.
    metrics : mapping name -> {"psnr", "ssim", "lpips"}, optional
        Metrics of each result, printed under its name as PSNR/SSIM/LPIPS.
    panel_size, dpi, suptitle
        See :func:`image_row_figure`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = metrics or {}
    panels = [("LR input", lr), ("reference", reference), ("ground truth", truth)]
    panels += [(metrics_title(name, metrics.get(name)), img) for name, img in results.items()]
    return image_row_figure(panels, panel_size=panel_size, dpi=dpi, suptitle=suptitle)


def save_figure(fig, path: Union[str, "os.PathLike[str]"], *, dpi: Optional[int] = None) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), creating parent folders."""
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi or fig.dpi, bbox_inches="tight")
    return path
