"""Command-line commands ``sr`` and ``demo`` (registered by :mod:`pot_semiunbalanced.cli`).

Both are thin layers: they parse arguments, read and write files, print, and call
:func:`~.superres.super_resolve`, :func:`~.demo.run_demo` and
:func:`~.figures.sr_comparison_figure`. User errors raise ``ValueError`` or
``FileNotFoundError``, which the CLI prints as one line before exiting with status 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from pot_semiunbalanced._argtypes import nonneg_int, positive_float, positive_int
from pot_semiunbalanced.imaging.priors import PRIOR_KINDS

__all__ = ["register", "run_sr", "run_demo_command", "DEMO_MEASURED"]

#: Wall time of ``pot-semiunbalanced demo`` with its defaults, measured with
#: ``/usr/bin/time -v`` on this project's 2-core CPU (start-up, three restorations,
#: metrics and figure included).
DEMO_MEASURED = (
    "about 2 min on a 2-core CPU (1:50 measured with /usr/bin/time on idle cores, start-up "
    "included)"
)


def _set_threads(n: Optional[int]) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(int(n))


# ----------------------------------------------------------------------------- sr
def run_sr(args: argparse.Namespace) -> int:
    """Body of ``pot-semiunbalanced sr``."""
    import torch

    from pot_semiunbalanced.imaging.demo import available_metrics, metrics_table
    from pot_semiunbalanced.imaging.io import read_image, write_image
    from pot_semiunbalanced.imaging.superres import super_resolve, upsample_init

    _set_threads(args.threads)
    y = read_image(args.lr_image, as_tensor=True)
    ref = read_image(args.reference, as_tensor=True)
    truth = read_image(args.hr, as_tensor=True) if args.hr else None
    hr_shape = tuple(truth.shape[-2:]) if truth is not None else None
    out_path = Path(args.output)
    if not out_path.suffix:
        raise ValueError(f"cannot write image {out_path}: no file suffix to choose a format from")
    options: Dict[str, Any] = {}
    if args.prior == "wpp":
        options["solver"] = args.wpp_solver
    elif args.num_iter_max is not None:
        options["numItermax"] = args.num_iter_max
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the transport solver did not reach")
        x_hat, hist = super_resolve(
            y, ref, prior=args.prior, lam=args.lam, lam_scaling=args.lam_scaling, eps=args.eps,
            rho=args.rho, patch_size=args.patch_size, levels=args.levels,
            n_ref_patches=args.n_ref_patches, lr=args.lr, steps=args.steps, init=args.init,
            device=args.device, rng=args.seed, progress=not args.quiet, hr_shape=hr_shape,
            prior_options=options,
        )
    n_bad = sum(not c for c in hist.converged)
    if n_bad:
        print(f"note: the transport solver stopped at its iteration cap in {n_bad} of "
              f"{hist.steps} steps (raise --num-iter-max for tighter solves)", file=sys.stderr)
    write_image(out_path, x_hat)
    print(f"wrote {out_path} ({x_hat.shape[-2]}x{x_hat.shape[-1]}, prior {args.prior}, "
          f"{hist.steps} steps, {hist.seconds:.1f} s)")
    if truth is not None:
        init = upsample_init(y.to(x_hat.device), x_hat.shape, mode=args.init).cpu()
        table = {args.init: available_metrics(init, truth),
                 args.prior: available_metrics(x_hat.cpu().to(torch.float32), truth)}
        print(metrics_table(table))
    return 0


def _add_sr_parser(sub) -> None:
    p = sub.add_parser(
        "sr",
        help="super-resolve an image with a reference (paper eq. 9)",
        description=(
            "Super-resolve LR_IMAGE (x4, 16x16 Gaussian blur of std 2, 'valid' borders: an "
            "observation of h pixels gives 4(h-1)+16 HR pixels, or the size of --hr) with a "
            "patch prior learned from REFERENCE. Images of any format and bit depth are read "
            "as gray in [0, 1]. Prints PSNR/SSIM/LPIPS (6 px from the borders) when --hr is given."
        ),
    )
    p.add_argument("lr_image", metavar="LR_IMAGE", help="low-resolution observation")
    p.add_argument("reference", metavar="REFERENCE", help="reference image with similar patches")
    p.add_argument("-o", "--output", required=True, help="output image file (e.g. out.png)")
    p.add_argument("--prior", choices=PRIOR_KINDS, default="semi",
                   help="semi: OT_{eps,rho} (default); balanced: OT_eps; unbalanced: "
                        "OT_{eps,rho,rho}; wpp: Wasserstein Patch Prior (OT_0, padded image)")
    p.add_argument("--hr", help="ground-truth HR image: sets the HR size and prints metrics")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--steps", type=nonneg_int, default=500, help="Adam steps (default 500)")
    p.add_argument("--lr", type=positive_float, default=0.01, help="Adam learning rate (default 0.01)")
    p.add_argument("--lam", type=positive_float, default=0.006,
                   help="data weight lambda at 61x61 LR pixels (paper's 256x256 setting; default 0.006)")
    p.add_argument("--lam-scaling", choices=("lr_pixels", "none"), default="lr_pixels",
                   help="lr_pixels (default): use lam*3721/n_LR, the paper's balance at any size; "
                        "none: use lam as given")
    p.add_argument("--eps", type=positive_float, default=4e-4, help="entropic epsilon (default 4e-4)")
    p.add_argument("--rho", type=positive_float, default=0.01,
                   help="marginal relaxation rho (default 0.01)")
    p.add_argument("--patch-size", type=positive_int, default=6, help="patch side (default 6)")
    p.add_argument("--levels", type=nonneg_int, default=1, help="pyramid levels L (default 1)")
    p.add_argument("--n-ref-patches", type=positive_int, default=10_000,
                   help="reference patches per level (default 10000)")
    p.add_argument("--init", choices=("bicubic", "bilinear"), default="bicubic",
                   help="initial upsampling (default bicubic)")
    p.add_argument("--wpp-solver", choices=("emd", "semidual"), default="emd",
                   help="wpp only: exact ot.emd (default; feasible up to ~100x100 images) or the "
                        "original semi-dual estimator")
    p.add_argument("--num-iter-max", type=positive_int, default=None,
                   help="entropic priors: cap on Sinkhorn iterations per step (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference patches (default 0)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sr)


# ----------------------------------------------------------------------------- demo
def run_demo_command(args: argparse.Namespace) -> int:
    """Body of ``pot-semiunbalanced demo``."""
    import matplotlib

    matplotlib.use("Agg")  # the figure is built without pyplot; keep any import headless

    from pot_semiunbalanced.imaging.demo import metrics_table, run_demo
    from pot_semiunbalanced.imaging.figures import save_figure, sr_comparison_figure
    from pot_semiunbalanced.imaging.io import write_image

    _set_threads(args.threads)
    out_dir = Path(args.out)
    result = run_demo(
        size=args.size, steps=args.steps, n_ref_patches=args.n_ref_patches, priors=args.priors,
        wpp_solver=args.wpp_solver, num_iter_max=args.num_iter_max, texture=args.texture,
        seed=args.seed, device=args.device, progress=not args.quiet,
    )
    print(f"{args.texture} {args.size}x{args.size}, LR {result.lr.shape[-1]}x{result.lr.shape[-2]}, "
          f"{args.steps} Adam steps, {args.n_ref_patches} reference patches per level")
    print(metrics_table(result.metrics, result.seconds, result.histories))
    names = {"wpp": f"WPP ({args.wpp_solver})", "balanced": r"OT$_\varepsilon$",
             "semi": r"OT$_{\varepsilon,\rho}$", "unbalanced": r"OT$_{\varepsilon,\rho,\rho}$"}
    fig = sr_comparison_figure(
        result.lr, result.reference, result.truth,
        {names[k]: v for k, v in result.results.items()},
        {names[k]: result.metrics[k] for k in result.results},
        suptitle=f"x4 super-resolution of {args.texture} (PSNR/SSIM/LPIPS)",
    )
    fig_path = save_figure(fig, out_dir / "demo_superres.png")
    for name, img in result.results.items():
        write_image(out_dir / f"demo_{name}.png", img)
    write_image(out_dir / "demo_lr.png", result.lr.clamp(0, 1))
    write_image(out_dir / "demo_truth.png", result.truth)
    print(f"wrote {fig_path} and the images in {out_dir}")
    return 0


def _add_demo_parser(sub) -> None:
    from pot_semiunbalanced.imaging.demo import DEMO_DEFAULTS, DEMO_TEXTURES

    d = DEMO_DEFAULTS
    p = sub.add_parser(
        "demo",
        help="restore a simulated LR texture with WPP, OT_eps and OT_eps,rho (Fig. 2 style)",
        description=(
            "Cut a ground truth and a reference from disjoint quadrants of a texture bundled "
            "with scikit-image, simulate the x4 LR observation, restore it with each prior, "
            "print PSNR/SSIM/LPIPS and write a Fig. 2-style PNG. With the defaults it takes "
            f"{DEMO_MEASURED}."
        ),
    )
    p.add_argument("--size", type=positive_int, default=d["size"],
                   help=f"ground-truth side in pixels, 16..256 (default {d['size']}; LPIPS needs >= 43)")
    p.add_argument("--steps", type=nonneg_int, default=d["steps"],
                   help=f"Adam steps (default {d['steps']})")
    p.add_argument("--n-ref-patches", type=positive_int, default=d["n_ref_patches"],
                   help=f"reference patches per level (default {d['n_ref_patches']})")
    p.add_argument("--priors", nargs="+", choices=PRIOR_KINDS, default=list(d["priors"]),
                   help="priors to compare (default: wpp balanced semi)")
    p.add_argument("--wpp-solver", choices=("semidual", "emd"), default=d["wpp_solver"],
                   help="WPP estimator (default semidual, the original's; emd costs ~12 s per "
                        "step at the default size)")
    p.add_argument("--num-iter-max", type=positive_int, default=d["num_iter_max"],
                   help=f"Sinkhorn iterations per step, warm-started (default {d['num_iter_max']})")
    p.add_argument("--texture", choices=DEMO_TEXTURES, default=d["texture"],
                   help=f"scikit-image texture (default {d['texture']})")
    p.add_argument("--seed", type=int, default=d["seed"], help=f"seed (default {d['seed']})")
    p.add_argument("--out", default="demo_output", help="output folder (default ./demo_output)")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (default 1: faster than 2 for these sizes)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_demo_command)


def register(subparsers) -> None:
    """Add the ``sr`` and ``demo`` commands to the CLI's subparsers."""
    _add_sr_parser(subparsers)
    _add_demo_parser(subparsers)
