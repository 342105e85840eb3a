"""Where the time of one Sinkhorn iteration goes: ours against its primitive and a floor.

The solver issue asks for a time per iteration of at most 1.3x the primitive (one K·v plus
one Kᵀ·u with the N×M kernel). This script measures, on the brick patches of
``bench_solver.py`` (ε = 4e-4, ρ = 0.01, OT_{ε,ρ}):

* the primitive: one K·w plus one Kᵀ·w on an N×M array (for CPU torch, numpy's product
  on the same memory, which is what the solver uses);
* ours: the slope of ``sinkhorn_semi_unbalanced`` between 10 and 110 iterations, with
  Anderson mixing (the default) and without;
* a floor: the same iteration written out in as few numpy calls as we could — the exp
  of the scaled potential, the two products, the hard-side scalings, the log, the update,
  the relaxed-side residual and an Anderson step — without any of the solver's safeguards
  (no re-centring of the kernel, no trust check of the sums, no history, no warm-start
  handling). It is not a usable solver; it shows what any per-iteration Python loop over
  numpy pays on top of the two products at this size.

Run: ``python benchmarks/bench_iteration.py`` (writes ``results/iteration.md``).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import ot
import torch
from scipy.linalg.lapack import dposv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import brick_patches, environment, markdown_table, write_result  # noqa: E402

from pot_semiunbalanced import sinkhorn_semi_unbalanced  # noqa: E402

EPS, RHO = 4e-4, 0.01
K1, K2 = 10, 110


def best_slope(run, repeat: int = 5) -> float:
    """Time per iteration: best of ``repeat`` for K1 and K2 iterations, slope between them."""
    def best(k):
        out = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            run(k)
            out = min(out, time.perf_counter() - t0)
        return out

    best(K1)  # warm-up
    return (best(K2) - best(K1)) / (K2 - K1)


def primitive(K: np.ndarray, repeat: int = 200) -> float:
    w = np.ascontiguousarray(K[0], dtype=K.dtype)
    out = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat):
            K @ w
            K.T @ w
        out = min(out, (time.perf_counter() - t0) / repeat)
    return out


def floor_loop(K: np.ndarray, a: np.ndarray, b: np.ndarray, n_iter: int, anderson: bool) -> float:
    """The iteration in as few numpy calls as possible (see the module docstring); returns
    the last relaxed-side residual so that the work cannot be skipped."""
    tau = RHO / (RHO + EPS)
    n, m = K.shape
    g = np.zeros(m)
    wbuf = np.empty(m, K.dtype)
    ubuf = np.empty(n, K.dtype)
    depth = 8
    dR, dG = np.zeros((depth, m)), np.zeros((depth, m))
    gram, eye = np.zeros((depth, depth)), np.eye(depth)
    last, slot, count, err = None, 0, 0, math.nan
    for _ in range(n_iter):
        x = g * (1.0 / EPS)
        mx = x.max()
        x -= mx
        np.exp(x, out=x)
        np.multiply(x, b, out=wbuf, casting="same_kind")
        sr = K @ wbuf
        smin = float(sr.min())
        np.divide(smin * a, sr, out=ubuf, casting="same_kind")
        sc = (K.T @ ubuf).astype(np.float64)
        np.log(sc, out=sc)
        sc += -math.log(smin) - mx
        Tg = sc * (-tau * EPS)
        step = Tg - g
        target = b * np.exp(g * (-1.0 / RHO))
        err = float(np.dot(target, np.abs(np.expm1(step * (-1.0 / (tau * EPS)))))) / float(target.sum())
        if not anderson:
            g = Tg
            continue
        if last is not None:
            np.subtract(step, last[1], out=dR[slot])
            np.subtract(Tg, last[0], out=dG[slot])
            count = min(count + 1, depth)
            D = dR[:count]
            row, rhs = D @ dR[slot], D @ step
            gram[slot, :count] = row
            gram[:count, slot] = row
            G = gram[:count, :count]
            _, gamma, _ = dposv(G + (1e-10 * np.trace(G)) * eye[:count, :count], rhs)
            slot = (slot + 1) % depth
            last = (Tg, step)
            g = Tg - gamma @ dG[:count]
        else:
            last = (Tg, step)
            g = Tg
    return err


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,4000")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--backends", default="numpy,torch")
    args = parser.parse_args(argv)
    header = ["N", "dtype", "backend", "primitive (ms)", "ours / primitive", "ours without Anderson",
              "floor / primitive", "floor without Anderson"]
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        C64 = ot.dist(brick_patches(n, seed=0, half="top"), brick_patches(n, seed=1, half="bottom"))
        a64 = np.full(n, 1.0 / n)
        for dtype in args.dtypes.split(","):
            Knp = np.exp(np.maximum(-(C64 - C64.min(1, keepdims=True)) / EPS, -80.0)).astype(dtype)
            t_prim = primitive(Knp)
            floor = {acc: best_slope(lambda k, acc=acc: floor_loop(Knp, a64, a64, k, acc)) for acc in (True, False)}
            for backend in args.backends.split(","):
                C = C64.astype(dtype)
                a = a64.astype(dtype)
                if backend == "torch":
                    C, a = torch.from_numpy(C), torch.from_numpy(a)
                ours = {}
                for acc in ("anderson", None):
                    def run(k, acc=acc):
                        sinkhorn_semi_unbalanced(a, a, C, EPS, RHO, stopThr=0.0, numItermax=k, warn=False,
                                                 acceleration=acc)
                    ours[acc] = best_slope(run)
                rows.append([n, dtype, backend, f"{t_prim * 1e3:.3f}", f"{ours['anderson'] / t_prim:.2f}",
                             f"{ours[None] / t_prim:.2f}", f"{floor[True] / t_prim:.2f}",
                             f"{floor[False] / t_prim:.2f}"])
                print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)
    text = (
        "# One iteration: ours against its primitive and a numpy floor (OT_{ε,ρ}, brick patches)\n\n"
        f"Environment: {environment()}\n\n"
        f"ε = {EPS:g}, ρ = {RHO:g}. Time per iteration = slope between {K1} and {K2} iterations "
        "(best of 5 runs each), divided by the primitive (one K·w plus one Kᵀ·w, numpy's product, "
        "best of 5 × 200). 'floor': the iteration written in the fewest numpy calls, without the "
        "solver's safeguards (see the script's docstring) — what a Python loop pays at best.\n\n"
        + markdown_table(header, rows)
        + "\n\nRe-run: `python benchmarks/bench_iteration.py`\n"
    )
    path = write_result("iteration.md", text)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
