"""Command-line command ``benchmark`` (registered by :mod:`pot_semiunbalanced.cli`).

``pot-semiunbalanced benchmark --preset quick --dataset offline --out DIR`` builds the
dataset, runs (or resumes) :func:`~.benchmark.run_benchmark`, writes the tables and the
grid with :func:`~.benchmark.write_reports` and prints the Table I-style table. A thin
layer: parsing, dataset loading and printing only. User errors raise ``ValueError`` or
``FileNotFoundError``, which the CLI prints as one line before exiting with status 2.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, List, Optional

from pot_semiunbalanced._argtypes import nonneg_int, positive_int
from .benchmark import METHODS, PRESETS, REFERENCE_SETS

__all__ = ["register", "run_benchmark_command", "load_dataset"]

DATASETS = ("offline", "mvtec", "folder")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer (-1: all cores), got {text!r}") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1, got {text!r}")
    return value


def load_dataset(
    dataset: str,
    *,
    size: int,
    seed: int = 0,
    materials: Optional[str] = None,
    mvtec_root: Optional[str] = None,
    pairs_dir: Optional[str] = None,
    names: Optional[List[str]] = None,
) -> List[Any]:
    """The pairs of a named dataset, optionally restricted to ``names`` (in that order).

    Parameters
    ----------
    dataset : {"offline", "mvtec", "folder"}
        ``offline``: :func:`~.datasets.offline_benchmark` (with the material pairs when
        ``materials`` is given); ``mvtec``: :func:`~.mvtec.load_mvtec_pairs` on
        ``mvtec_root``; ``folder``: :func:`~.datasets.load_pairs_from_folder` on
        ``pairs_dir``.
    size : int
        Image side of ``offline`` and ``mvtec`` pairs.
    seed : int
        Dataset seed (defects for ``offline``, choices for ``mvtec``).
    names : list of str, optional
        Keep only these pairs; an unknown name raises ValueError listing the available ones.

    Returns
    -------
    list of SRPair
    """
    from .datasets import load_pairs_from_folder, offline_benchmark
    from .mvtec import load_mvtec_pairs

    if dataset == "offline":
        pairs = offline_benchmark(size=size, seed=seed,
                                  materials_dir=materials if materials else False)
    elif dataset == "mvtec":
        if not mvtec_root:
            raise ValueError("--dataset mvtec needs --mvtec-root DIR (the unpacked MVTec AD folder)")
        pairs = load_mvtec_pairs(mvtec_root, size=size, seed=seed)
    elif dataset == "folder":
        if not pairs_dir:
            raise ValueError("--dataset folder needs --pairs-dir DIR (written by save_pairs)")
        pairs = load_pairs_from_folder(pairs_dir)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {DATASETS}")
    if names:
        by_name = {p.name: p for p in pairs}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"unknown pairs {unknown}; available: {sorted(by_name)}")
        pairs = [by_name[n] for n in names]
    return pairs


def run_benchmark_command(args: argparse.Namespace) -> int:
    """Body of ``pot-semiunbalanced benchmark``."""
    import matplotlib

    matplotlib.use("Agg")

    from .benchmark import (collect_records, get_preset, run_benchmark, summarize,
                            table_markdown, write_reports)

    preset = get_preset(
        args.preset, steps=args.steps, n_ref_patches=args.n_ref_patches,
        num_iter_max=args.num_iter_max,
        **({"crop": (None if args.crop == 0 else args.crop)} if args.crop is not None else {}),
    )
    size = args.size if args.size is not None else preset.image_size
    pairs = load_dataset(args.dataset, size=size, seed=args.dataset_seed,
                         materials=args.materials, mvtec_root=args.mvtec_root,
                         pairs_dir=args.pairs_dir, names=args.pairs)
    print(f"benchmark: preset {preset.name} ({preset.description})", flush=True)
    print(f"{len(pairs)} pairs x {len(args.reference_sets)} reference sets x "
          f"{len(args.methods)} methods -> {args.out}", flush=True)
    t0 = time.perf_counter()

    def report(item, record, done, total):
        if args.quiet:
            return
        m = record.get("metrics", {})
        psnr = m.get("psnr")
        psnr_txt = f"{psnr:.2f} dB" if psnr is not None else "-"
        print(f"[{done}/{total}] {item.pair} {item.refset} {item.method}: {psnr_txt}, "
              f"{record.get('seconds', 0.0):.0f} s (elapsed {time.perf_counter() - t0:.0f} s)",
              flush=True)

    run = run_benchmark(pairs, args.out, preset=preset, methods=args.methods,
                        reference_sets=args.reference_sets, seed=args.seed, jobs=args.jobs,
                        device=args.device, on_item=report)
    print(f"computed {len(run.computed)} items, skipped {len(run.skipped)} finished ones, "
          f"{run.seconds:.0f} s", flush=True)
    written = write_reports(args.out, grid=not args.no_grid,
                            title=f"Table I ({preset.name} preset, {args.dataset} dataset)")
    print()
    print(table_markdown(summarize(collect_records(args.out)), per_image=False))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def register(subparsers) -> None:
    """Add the ``benchmark`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "benchmark",
        help="reproduce Table I / Fig. 2: super-resolution with clean and defective references",
        description=(
            "Restore every pair of a dataset with bicubic, WPP, OT_eps, OT_{eps,rho,rho} and "
            "OT_{eps,rho}, once with the defect-free and once with the defective reference. "
            "Each result is written to --out as it finishes (JSON + 16-bit PNG); a re-run "
            "skips finished ones. Then writes table.md, table.csv, per_image.csv, results.json "
            "and grid.png, and prints the table. Presets: "
            + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items())
        ),
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                   help="parameter set (default quick)")
    p.add_argument("--dataset", choices=DATASETS, default="offline",
                   help="offline: scikit-image textures (+ materials with --materials); mvtec: "
                        "a local MVTec AD copy (--mvtec-root); folder: pairs saved by save_pairs "
                        "(--pairs-dir)")
    p.add_argument("--mvtec-root", help="MVTec AD folder (for --dataset mvtec)")
    p.add_argument("--materials", help="folder with the WPP material images (offline dataset)")
    p.add_argument("--pairs-dir", help="folder written by save_pairs (for --dataset folder)")
    p.add_argument("--out", required=True, help="output folder (created; resumed when it exists)")
    p.add_argument("--jobs", type=_jobs, default=None,
                   help="parallel worker processes on the CPU (default: one per core; -1: all)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="cpu or cuda (default: cuda when available); cuda runs sequentially")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="methods to run (default: all)")
    p.add_argument("--reference-sets", nargs="+", choices=REFERENCE_SETS,
                   default=list(REFERENCE_SETS), help="reference sets (default: clean defect)")
    p.add_argument("--pairs", nargs="+", help="only these pairs (names as in the dataset)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="image side of the offline/mvtec pairs (default: the preset's, 256)")
    p.add_argument("--crop", type=nonneg_int, default=None,
                   help="override the preset's ground-truth crop (0: whole image)")
    p.add_argument("--steps", type=nonneg_int, default=None, help="override the preset's Adam steps")
    p.add_argument("--n-ref-patches", type=positive_int, default=None,
                   help="override the preset's reference patches per level")
    p.add_argument("--num-iter-max", type=positive_int, default=None,
                   help="override the preset's Sinkhorn iteration cap per solve")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="benchmark seed: observations and reference patches (default 0)")
    p.add_argument("--dataset-seed", type=nonneg_int, default=0,
                   help="dataset seed: synthetic defects / MVTec choices (default 0)")
    p.add_argument("--no-grid", action="store_true", help="do not draw grid.png")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-item progress lines")
    p.set_defaults(func=run_benchmark_command)
