"""Fig. 2-style grid of the super-resolution benchmark (matplotlib, no file I/O).

:func:`grid_figure` lays out one row per (pair, reference set): the LR input, the
reference (with the outline of its defect mask, for a defective reference), the
ground truth, then every method's restoration titled with its PSNR/SSIM/LPIPS, the
best PSNR of the row in bold. The figure is built without pyplot (no global state,
works with the Agg backend); :func:`~.benchmark.write_reports` saves it.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

__all__ = ["grid_figure"]

_DEFAULT_LABELS = {
    "bicubic": "bicubic",
    "wpp": "WPP",
    "balanced": r"OT$_\varepsilon$",
    "unbalanced": r"OT$_{\varepsilon,\rho,\rho}$",
    "semi": r"OT$_{\varepsilon,\rho}$",
}
_REFSET_LABELS = {"clean": "defect-free ref.", "defect": "defective ref."}


def _triplet(metrics: Optional[Mapping[str, float]]) -> str:
    if not metrics:
        return ""
    parts = []
    for key, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.3f}"), ("lpips", "{:.3f}")):
        v = metrics.get(key)
        parts.append("–" if v is None or not math.isfinite(float(v)) else fmt.format(float(v)))
    return "/".join(parts)


def _show(ax: Any, img: np.ndarray) -> None:
    ax.imshow(np.asarray(img, dtype=np.float64), cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def grid_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    methods: Optional[Sequence[str]] = None,
    labels: Optional[Mapping[str, str]] = None,
    panel_size: float = 1.7,
    dpi: int = 100,
    suptitle: Optional[str] = None,
):
    """Fig. 2-style grid: rows = (pair, reference set), columns = inputs then methods.

    Parameters
    ----------
    rows : sequence of dict
        As returned by :func:`~.benchmark.load_grid_rows`: ``pair``, ``refset``,
        ``lr`` (h, w), ``reference`` (H', W'), ``defect_mask`` (bool (H', W') or None),
        ``truth`` (H, W), ``results`` (method -> (H, W) image) and ``metrics``
        (method -> {"psnr", "ssim", "lpips"}). Images are shown in [0, 1].
    methods : sequence of str, optional
        Result columns, in order (default: the methods of the first row's results).
    labels : mapping, optional
        Column titles per method (default: bicubic, WPP, OT_ε, OT_{ε,ρ,ρ}, OT_{ε,ρ}).
    panel_size : float, default 1.7
        Side of one panel in inches.
    dpi : int, default 100
    suptitle : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one (pair, reference set) row")
    if methods is None:
        methods = list(rows[0].get("results", {}))
    methods = list(methods)
    names = dict(_DEFAULT_LABELS)
    names.update(labels or {})
    n_cols = 3 + len(methods)
    n_rows = len(rows)
    fig = Figure(figsize=(panel_size * n_cols, panel_size * 1.28 * n_rows + (0.4 if suptitle else 0.1)),
                 dpi=dpi)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        ax_lr, ax_ref, ax_gt = axes[r][0], axes[r][1], axes[r][2]
        _show(ax_lr, row["lr"].clip(0.0, 1.0))
        _show(ax_ref, row["reference"])
        mask = row.get("defect_mask")
        if mask is not None and np.any(mask):
            ax_ref.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="red", linewidths=0.6)
        _show(ax_gt, row["truth"])
        ax_lr.set_title("LR input", fontsize=8)
        ax_ref.set_title("reference", fontsize=8)
        ax_gt.set_title("ground truth", fontsize=8)
        ax_lr.set_ylabel(f"{row['pair']}\n{_REFSET_LABELS.get(row['refset'], row['refset'])}",
                         fontsize=8)
        metrics: Dict[str, Mapping[str, float]] = row.get("metrics", {})
        psnrs = {m: float(metrics[m]["psnr"]) for m in methods
                 if m in metrics and metrics[m].get("psnr") is not None
                 and math.isfinite(float(metrics[m]["psnr"]))}
        best = max(psnrs, key=psnrs.get) if len(psnrs) > 1 else None
        for c, m in enumerate(methods):
            ax = axes[r][3 + c]
            img = row.get("results", {}).get(m)
            if img is None:
                ax.set_axis_off()
                ax.set_title(f"{names.get(m, m)}\n(not run)", fontsize=8)
                continue
            _show(ax, img)
            ax.set_title(f"{names.get(m, m)}\n{_triplet(metrics.get(m))}", fontsize=8,
                         fontweight="bold" if m == best else "normal")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
