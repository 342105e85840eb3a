"""Dense solver against POT on brick patches (issue: log-domain semi-unbalanced Sinkhorn).

For each size, dtype, backend and ε, every POT method for the semi-relaxed problem
(``reg_m = (inf, ρ)``) is run with a ladder of ``stopThr`` values until its plan reaches
the common accuracy — hard-marginal relative error ≤ 1e-6 and relaxed-side fixed-point
residual ≤ 1e-6, both measured on the returned plan and potentials by the same function —
or is declared invalid. Ours is checked the same way, with its own ladder of ``stopThr``
(1e-6 suffices in float64; in float32 the plan's rounding can leave the relaxed-side
residual just above 1e-6, and a smaller ``stopThr`` is used).
Times are medians of repeated runs inside this one process; the per-iteration cost of
ours is the best-of-5 slope between two fixed iteration counts, divided by the cost of its
primitive (one K·v plus one Kᵀ·u on the same N×M array with the backend's product); see
``bench_iteration.py``.

Run: ``python benchmarks/bench_solver.py`` (``--quick`` for N=2000 only).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import ot
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_iteration import best_slope, primitive  # noqa: E402
from common import brick_patches, environment, markdown_table, timeit, write_result  # noqa: E402

from pot_semiunbalanced import sinkhorn_semi_unbalanced  # noqa: E402

RHO = 0.01
TOL = 1e-6
POT_METHODS = ["sinkhorn", "sinkhorn_stabilized", "sinkhorn_translation_invariant"]
LADDER = [1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12]
OUR_LADDER = [1e-6, 3e-7, 1e-7, 3e-8]


def accuracy(P, g, a, b, rho):
    """(hard-marginal relative error, relaxed-side fixed-point residual) of a plan."""
    P = np.asarray(P, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(g))):
        return np.inf, np.inf
    hard = np.abs(P.sum(1) - a).sum() / a.sum()
    target = b * np.exp(-g / rho)
    relaxed = np.abs(P.sum(0) - target).sum() / max(target.sum(), 1e-300)
    return hard, relaxed


def to_np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def run_pot(method, a, b, C, eps, stopThr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P, log = ot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, (np.inf, RHO), method=method,
                                                   numItermax=100000, stopThr=stopThr, log=True)
    return P, log


def pot_method(method, a, b, C, eps, a64, b64):
    """Fastest valid run of a POT method: (time, stopThr, iterations) or None if invalid."""
    for thr in LADDER:
        try:
            P, log = run_pot(method, a, b, C, eps, thr)
        except Exception:  # a POT method that raises is invalid here
            return None
        logv = to_np(log.get("logv", np.full(C.shape[1], np.nan)))
        hard, relaxed = accuracy(to_np(P), eps * logv, a64, b64, RHO)
        if hard <= TOL and relaxed <= TOL:
            t = timeit(lambda: run_pot(method, a, b, C, eps, thr), repeat=3)
            return t, thr, len(log.get("err", []))
        if not np.isfinite(hard) or hard > 0.5:
            return None  # broken (zero / NaN plan): more iterations will not help
    return None


def ours(a, b, C, eps, a64, b64):
    """Our fastest valid run: the same stopThr ladder as POT's (float32 may need < 1e-6)."""
    for thr in OUR_LADDER:
        def run():
            return sinkhorn_semi_unbalanced(a, b, C, eps, RHO, stopThr=thr, numItermax=20000, log=True)

        P, log = run()
        hard, relaxed = accuracy(to_np(P), to_np(log["g"]), a64, b64, RHO)
        valid = hard <= TOL and relaxed <= TOL
        if valid:
            break
    t = timeit(run, repeat=3)
    return t, log["n_iter"], valid, hard, relaxed, thr


def per_iteration_ratio(a, b, C, eps):
    """Our time per iteration over the primitive (one K·w plus one Kᵀ·w), and the former.

    Measured as in ``bench_iteration.py``: best-of-5 slope between 10 and 110 iterations,
    and the primitive with the backend's own product on an array like ``C``."""
    def run(k):
        sinkhorn_semi_unbalanced(a, b, C, eps, RHO, stopThr=0.0, numItermax=k, warn=False)

    per_iter = best_slope(run)
    return per_iter / primitive(C), per_iter


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,4000")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--backends", default="numpy,torch")
    parser.add_argument("--eps", default="1e-2,1e-3,4e-4")
    parser.add_argument("--quick", action="store_true", help="N=2000, numpy only")
    args = parser.parse_args(argv)
    sizes = [2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    backends = ["numpy"] if args.quick else args.backends.split(",")
    rows = []
    header = ["N", "dtype", "backend", "ε", "ours (s)", "ours it (stopThr)", "POT fastest valid",
              "POT (s)", "speed-up", "POT invalid (ours valid)", "ours per-iter / primitive"]
    for n in sizes:
        X = brick_patches(n, seed=0, half="top")
        Y = brick_patches(n, seed=1, half="bottom")
        C64 = ot.dist(X, Y)
        a64 = np.full(n, 1.0 / n)
        b64 = np.full(n, 1.0 / n)
        for dtype in args.dtypes.split(","):
            for backend in backends:
                C = C64.astype(dtype)
                a, b = a64.astype(dtype), b64.astype(dtype)
                if backend == "torch":
                    C, a, b = (torch.from_numpy(x) for x in (C, a, b))
                for eps in [float(e) for e in args.eps.split(",")]:
                    t0 = time.time()
                    t_ours, it, valid, hard, relaxed, thr_ours = ours(a, b, C, eps, a64, b64)
                    ratio, _ = per_iteration_ratio(a, b, C, eps)
                    results = {m: pot_method(m, a, b, C, eps, a64, b64) for m in POT_METHODS}
                    ok = {m: r for m, r in results.items() if r is not None}
                    invalid = [m.replace("sinkhorn_", "") for m in POT_METHODS if results[m] is None]
                    if ok:
                        best = min(ok, key=lambda m: ok[m][0])
                        t_pot, thr, _ = ok[best]
                        best_s = f"{best} (stopThr {thr:g})"
                        speed = f"{t_pot / t_ours:.1f}×"
                    else:
                        best_s, t_pot, speed = "none valid", float("nan"), "—"
                    fail = ", ".join(invalid) if invalid else "—"
                    if invalid and valid:
                        fail += f" (ours {t_ours:.3g} s)"
                    rows.append([n, dtype, backend, f"{eps:g}", t_ours if valid else f"INVALID ({hard:.1e}, {relaxed:.1e})",
                                 f"{it} ({thr_ours:g})", best_s, t_pot, speed, fail, f"{ratio:.2f}"])
                    print(markdown_table(header, rows[-1:]).splitlines()[-1], f"  [{time.time() - t0:.0f} s]",
                          flush=True)
    text = (
        "# Dense solver vs POT (semi-relaxed, brick 6×6 patches, ρ = 0.01)\n\n"
        f"Environment: {environment()}\n\n"
        "Accuracy for everyone: hard-marginal relative error ≤ 1e-6 and relaxed-side fixed-point "
        "residual ≤ 1e-6 on the returned plan (everyone: the largest stopThr of a ladder reaching it). "
        "Times: median of 3 runs in one process. 'per-iter / primitive': our time per iteration "
        "divided by one K·w plus one Kᵀ·w on the same N×M array with the backend's product "
        "(best-of-5 slope between 10 and 110 iterations; primitive best of 5 × 200).\n\n"
        + markdown_table(header, rows)
        + "\n\nRe-run: `python benchmarks/bench_solver.py`\n"
    )
    path = write_result("solver.md", text)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
