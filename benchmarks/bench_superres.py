"""Cost of one Adam step of super-resolution with the OT_{ε,ρ} prior, cold vs warm-started.

For each image size (brick: ground truth in the top-left quadrant, reference = the
top-right quadrant, disjoint), :func:`~pot_semiunbalanced.imaging.superres.super_resolve`
runs a few Adam steps with the paper's parameters (ε = 4e-4, ρ = 0.01, 6x6 patches, two
levels, M = 10 000 reference patches per level, point-cloud back end "auto") twice:

* **cold**: the prior's potentials are reset after every step (each solve starts from
  zero, like a solver without warm starts);
* **warm**: each solve starts from the previous step's potentials (the default).

Reported: seconds per Adam step (prior + data term + backward + update) and Sinkhorn
iterations per step at each level, both averaged over the steps after the first (the
first step is cold in both runs), the number of image patches N per level and the back
end chosen. At 256² the problem is the paper's: N = 63 001 (level 0) and 14 884 (level 1)
image patches against M = 10 000.

Also reported: the whole run's wall time and the PSNR of its result against the ground
truth (measured once at the end, so that it does not enter the step times).

Run: ``python benchmarks/bench_superres.py [--sizes 64 128 256] [--steps 6 4 3]``.
Writes ``benchmarks/results/superres.md``. One torch thread by default (``--threads``).
On a GPU: ``--device cuda --out superres_cuda.md``; the paper-size restoration (256²,
500 Adam steps, warm starts only) is ``--device cuda --sizes 256 --steps 500 --modes warm
--out superres_cuda_500.md``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, markdown_table, write_result  # noqa: E402

from pot_semiunbalanced.imaging.demo import demo_images  # noqa: E402
from pot_semiunbalanced.imaging.metrics import DEFAULT_BORDER, psnr  # noqa: E402
from pot_semiunbalanced.imaging.patches import n_patches  # noqa: E402
from pot_semiunbalanced.imaging.priors import level_shapes, make_prior  # noqa: E402
from pot_semiunbalanced.imaging.superres import super_resolve  # noqa: E402

M_REF = 10_000


def run(size: int, steps: int, warm: bool, seed: int, device: str = "cpu") -> dict:
    data = demo_images(size, seed=seed)
    prior = make_prior("semi", data["reference"].to(device), n_ref_patches=M_REF, rng=seed)

    def reset_after_step(step, x, hist):
        if not warm:
            prior.reset()

    t0 = time.perf_counter()
    x_hat, hist = super_resolve(data["lr"].to(device), None, prior=prior, steps=steps, rng=seed,
                                callback=reset_after_step, progress=False, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    its = np.array(hist.ot_iters[1:], dtype=float)  # steps after the first
    return {
        "sec_per_step": float(np.mean(hist.step_time[1:])),
        "first_step": hist.step_time[0],
        "iters": its.mean(axis=0),
        "converged": f"{sum(hist.converged)}/{hist.steps}",
        "backend": prior.losses[0].last_log["backend"],
        "total": total,
        "psnr": psnr(x_hat.cpu(), data["truth"], border=DEFAULT_BORDER),
    }


def device_name(device: str) -> str:
    """The device in words (the GPU's name on CUDA)."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[6, 4, 3],
                        help="Adam steps per run for each size (>= 2; default 6 4 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--modes", default="cold,warm", help="cold, warm or both (comma-separated)")
    parser.add_argument("--out", default="superres.md", help="file name under benchmarks/results")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if not modes or set(modes) - {"cold", "warm"}:
        parser.error("--modes takes cold, warm or cold,warm")
    if len(args.steps) != len(args.sizes) or min(args.steps) < 2:
        parser.error("give one --steps value (>= 2) per size")
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    rows = []
    for size, steps in zip(args.sizes, args.steps):
        N = [n_patches(h, w, 6) for h, w in level_shapes((size, size), 1)]
        for warm in [m == "warm" for m in modes]:
            r = run(size, steps, warm, args.seed, args.device)
            label = "warm" if warm else "cold"
            print(f"{size}² {label}: {r['sec_per_step']:.3f} s/step, iterations/step "
                  f"{np.round(r['iters'], 1).tolist()}, {r['total']:.1f} s in all, "
                  f"PSNR {r['psnr']:.2f} dB", flush=True)
            rows.append([f"{size}²", " / ".join(str(n) for n in N), M_REF, r["backend"], label,
                         steps, f"{r['sec_per_step']:.3f}",
                         " / ".join(f"{v:.0f}" for v in r["iters"]), r["converged"],
                         f"{r['first_step']:.2f}", f"{r['total']:.1f}", f"{r['psnr']:.2f}"])
    table = markdown_table(
        ["image", "N per level (0 / 1)", "M", "backend", "potentials", "Adam steps",
         "s per step (steps 2..)", "Sinkhorn it. per step (level 0 / 1)", "converged steps",
         "first step (s, cold)", "whole run (s)", "PSNR of the result (dB)"],
        rows,
    )
    text = (
        "# Super-resolution with OT_{ε,ρ}: seconds and Sinkhorn iterations per Adam step\n\n"
        f"Environment: {environment()}; device {device_name(args.device)}; load average (1 min) {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (the machine is shared: timings are noisy)\n\n"
        "brick (ground truth: centre of the top-left quadrant; reference: top-right "
        "quadrant), ε = 4e-4, ρ = 0.01, 6x6 patches, L = 1, M = 10 000 per level, Adam lr "
        "0.01 from the bicubic initialisation, float32, stopThr 1e-6 (Anderson-accelerated "
        "alternating Sinkhorn). cold = potentials reset after every step; warm = started from "
        "the previous step's. Averages over the steps after the first. The first step is "
        "cold in both runs, the same computation: the difference between its two timings "
        "shows the timing noise of the shared machine; the iteration counts do not depend "
        "on it.\n\n"
        + table
        + "\n\nRe-run: `python benchmarks/bench_superres.py --sizes "
        + " ".join(map(str, args.sizes)) + " --steps " + " ".join(map(str, args.steps))
        + ("" if args.device == "cpu" else f" --device {args.device}")
        + ("" if args.modes == "cold,warm" else f" --modes {args.modes}")
        + ("" if args.out == "superres.md" else f" --out {args.out}") + "`\n"
    )
    path = write_result(args.out, text)
    print(table)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
