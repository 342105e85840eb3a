"""``pot-semiunbalanced denoise-demo``: the paper's Fig. 1 on this machine.

Runs :func:`~pot_semiunbalanced.experiments.denoising.fig1_experiment` for one or more
seeds, writes a Fig. 1-style PNG for the first seed and prints the PSNR table.

Defaults and their cost: the paper draws M = 24 000 model patches per step; the demo
draws **M = 6 000** (``--n-model-patches``), which makes every Sinkhorn iteration four
times cheaper so that the three restorations of a 100×100 image (20 SGD steps each)
finish in a few minutes on two CPU cores. What this changes is measured in
``benchmarks/results/denoising.md``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from pot_semiunbalanced.experiments.denoising import METHOD_LABELS, METHODS, fig1_experiment

__all__ = ["register", "run_denoise_demo", "format_table"]

DEMO_DEFAULTS: Dict[str, Any] = {
    "noise_std": 0.05,
    "w": 0.2,
    "steps": 20,
    "size": 100,
    "n_model_patches": 6000,
}


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``denoise-demo`` command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "denoise-demo",
        help="reproduce Fig. 1: denoise a Gaussian texture with a corrupted patch model",
        description=(
            "Denoise an ADSN Gaussian texture with OT_eps, OT_eps,rho,rho and OT_eps,rho "
            "patch priors (paper Fig. 1); write the figure and print the PSNR table."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("denoising_fig1.png"),
                   help="output PNG (default: %(default)s)")
    p.add_argument("--seeds", "--seed", dest="seeds", type=int, nargs="+", default=[0],
                   help="one or more seeds; the figure shows the first (default: 0)")
    p.add_argument("--noise-std", type=float, default=DEMO_DEFAULTS["noise_std"],
                   help="noise standard deviation (default: %(default)s)")
    p.add_argument("--w", type=float, default=DEMO_DEFAULTS["w"],
                   help="weight of the edge component of the model, in [0, 1] (default: %(default)s)")
    p.add_argument("--steps", type=int, default=DEMO_DEFAULTS["steps"],
                   help="SGD steps per restoration (default: %(default)s)")
    p.add_argument("--size", type=int, default=DEMO_DEFAULTS["size"],
                   help="image side in pixels (default: %(default)s)")
    p.add_argument("--n-model-patches", type=int, default=DEMO_DEFAULTS["n_model_patches"],
                   help="model patches drawn per step, M (paper: 24000; default: %(default)s)")
    p.add_argument("--lam", type=float, default=None,
                   help="data weight lambda (default: 0.0192 scaled to the image size)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="transports to run (default: all three)")
    p.add_argument("--diagnostics", action="store_true",
                   help="add a row of error / residual-noise / patch-mass maps to the figure")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_denoise_demo)
    return p


def _mean_std(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return f"{v[0]:.2f}"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


def format_table(results: List[Dict[str, Any]]) -> str:
    """Plain-text PSNR table (one column per seed, then mean ± std) and diagnostics."""
    methods = [m for m in METHODS if m in results[0]["restored"]]
    seeds = [r["params"]["seed"] for r in results]
    rows = [("noisy", "noisy")] + [(m, METHOD_LABELS[m]) for m in methods]
    head = ["PSNR (dB)"] + [f"seed {s}" for s in seeds] + (["mean ± std"] if len(seeds) > 1 else [])
    lines = [head]
    for key, label in rows:
        vals = [r["psnr"][key] for r in results]
        lines.append([label] + [f"{v:.2f}" for v in vals] + ([_mean_std(vals)] if len(seeds) > 1 else []))
    lines.append([])
    lines.append(["diagnostics (mean over seeds)", "edge anisotropy", "error anisotropy",
                  "unrestored %", "outlier mass %", "time (s)"])
    truth = np.mean([r["diagnostics"][methods[0]]["edge_anisotropy_true"] for r in results])
    lines.append(["ground truth", f"{truth:.3f}", "", "", "", ""])
    for m in methods:
        d = [r["diagnostics"][m] for r in results]
        om = [x["outlier_mass"] for x in d if x["outlier_mass"] is not None]
        lines.append([
            METHOD_LABELS[m],
            f"{np.mean([x['edge_anisotropy'] for x in d]):.3f}",
            f"{np.mean([x['error_anisotropy'] for x in d]):.3f}",
            f"{100 * np.mean([x['unrestored_fraction'] for x in d]):.1f}",
            f"{100 * np.mean(om):.1f}" if om else "n/a",
            f"{np.mean([r['time'][m] for r in results]):.0f}",
        ])
    return _align(lines[: len(rows) + 1]) + "\n\n" + _align(lines[len(rows) + 2 :])


def _align(lines: List[List[str]]) -> str:
    n = max(len(line) for line in lines)
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(n)]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in lines
    )


def run_denoise_demo(args: argparse.Namespace) -> int:
    """Body of ``denoise-demo``: run, print the table, write the PNG. Returns 0."""
    if not 0.0 <= args.w <= 1.0 or not math.isfinite(args.w):
        raise ValueError(f"--w must be in [0, 1], got {args.w}")
    if args.size < 8:
        raise ValueError(f"--size must be at least the patch size 8, got {args.size}")
    if args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {out}")
    t0 = time.perf_counter()
    results = []
    for seed in args.seeds:
        results.append(
            fig1_experiment(
                noise_std=args.noise_std, w=args.w, seed=seed, size=args.size,
                steps=args.steps, n_model_patches=args.n_model_patches, lam=args.lam,
                methods=args.methods, progress=not args.quiet,
            )
        )
    print(format_table(results))
    from pot_semiunbalanced.experiments.denoising_figures import fig1_figure

    fig = fig1_figure(results[0], diagnostics=args.diagnostics)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"figure: {out}  (total time {time.perf_counter() - t0:.0f} s)")
    return 0
