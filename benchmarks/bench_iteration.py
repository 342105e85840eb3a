"""Where the time of one Sinkhorn iteration goes: ours against its primitive and a floor.

The solver issue asks for a time per iteration of at most 1.3x the primitive (one K·v plus
one Kᵀ·u with the N×M kernel). This script measures, on the brick patches of
``bench_solver.py`` (ε = 4e-4, ρ = 0.01, OT_{ε,ρ}):

* the primitive: one K·w plus one Kᵀ·w on an N×M array of the backend (numpy's or
  torch's product, as the solver uses);
* ours: the slope of ``sinkhorn_semi_unbalanced`` between 10 and 110 iterations, with
  Anderson mixing (the default) and without;
* a floor: the same iteration written out in as few numpy calls as we could — the exp
  of the scaled potential, the two products, the hard-side scalings, the log, the update,
  the relaxed-side residual and an Anderson step — without any of the solver's safeguards
  (no re-centring of the kernel, no trust check of the sums, no history, no warm-start
  handling). It is not a usable solver; it shows what any per-iteration Python loop over
  numpy pays on top of the two products at this size (its ratio uses numpy's primitive);
* when numba is installed, the same floor compiled (``_numba_floor.py``): every vector
  pass fused into a few compiled loops, what is left once no Python overhead remains.

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
from pot_semiunbalanced._array import flush_denormal  # noqa: E402

try:
    from _numba_floor import numba_floor_loop
except ImportError:  # numba is optional
    numba_floor_loop = None

EPS, RHO = 4e-4, 0.01
DEVICES = {"torch": "cpu", "cuda": "cuda"}  # torch back ends and where their arrays live
K1, K2 = 10, 110


def sync() -> None:
    """Wait for queued GPU work (a no-op when CUDA was never used)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def best_times(run, repeat: int = 5):
    """Best-of-``repeat`` wall times of ``run(K1)`` and ``run(K2)`` (after one warm-up)."""
    def best(k):
        out = math.inf
        for _ in range(repeat):
            sync()
            t0 = time.perf_counter()
            run(k)
            sync()
            out = min(out, time.perf_counter() - t0)
        return out

    run(K1)  # warm-up
    return best(K1), best(K2)


def slope(times) -> float:
    """Time per iteration from the (K1, K2) times."""
    return (times[1] - times[0]) / (K2 - K1)


def best_slope(run, repeat: int = 5) -> float:
    """Time per iteration: best of ``repeat`` for K1 and K2 iterations, slope between them."""
    return slope(best_times(run, repeat))


def primitive(K, repeat: int = 200) -> float:
    """One K·w plus one Kᵀ·w (numpy array or torch tensor), best of 5 × ``repeat``.

    A CPU torch product runs with sub-normal flushing on, as in the solver
    (``_array.flush_denormal``): kernels with floored entries otherwise send torch's
    product down its slow sub-normal path (numpy's BLAS showed no such slowdown here)."""
    w = K[0] * 1.0
    out = math.inf
    with flush_denormal(w):
        for _ in range(5):
            sync()
            t0 = time.perf_counter()
            for _ in range(repeat):
                K @ w
                K.T @ w
            sync()
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
    parser.add_argument("--backends", default="numpy,torch", help="numpy, torch (CPU) and/or cuda")
    parser.add_argument("--out", default="iteration.md", help="file name under benchmarks/results")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    args = parser.parse_args(argv)
    unknown = set(args.backends.split(",")) - {"numpy", *DEVICES}
    if unknown:
        parser.error(f"unknown back ends {sorted(unknown)}: use numpy, torch and/or cuda")
    if "cuda" in args.backends.split(",") and not torch.cuda.is_available():
        parser.error("--backends cuda needs a CUDA device")
    header = ["N", "dtype", "backend", "primitive (ms)", "ours / primitive", "ours without Anderson",
              "kernel re-centrings in the window (with / without Anderson)", "floor / primitive",
              "floor without Anderson", "compiled floor (numba) / primitive"]
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        C64 = ot.dist(brick_patches(n, seed=0, half="top"), brick_patches(n, seed=1, half="bottom"))
        a64 = np.full(n, 1.0 / n)
        for dtype in args.dtypes.split(","):
            Knp = np.exp(np.maximum(-(C64 - C64.min(1, keepdims=True)) / EPS, -80.0)).astype(dtype)
            inputs = {}
            for backend in args.backends.split(","):
                C, a = C64.astype(dtype), a64.astype(dtype)
                inputs[backend] = (C, a) if backend == "numpy" else (
                    torch.from_numpy(C).to(DEVICES[backend]), torch.from_numpy(a).to(DEVICES[backend]))
            # rounds interleave every measurement; each keeps its best round, so that a slow
            # spell of the (shared, virtual) machine cannot land on one side of a ratio only
            best = {}
            for _ in range(args.rounds):
                measured = {("primitive", be): primitive(Knp if be == "numpy" else torch.from_numpy(Knp).to(DEVICES[be]))
                            for be in {"numpy", *inputs}}  # the floor's ratio uses numpy's
                for acc in (True, False):
                    measured["floor", acc] = best_times(lambda k, acc=acc: floor_loop(Knp, a64, a64, k, acc))
                if numba_floor_loop is not None:
                    numba_floor_loop(Knp, a64, a64, 2, EPS, RHO)  # compile outside the timing
                    measured["numba"] = best_times(lambda k: numba_floor_loop(Knp, a64, a64, k, EPS, RHO))
                for backend, (C, a) in inputs.items():
                    for acc in ("anderson", None):
                        def run(k, C=C, a=a, acc=acc, log=False):
                            return sinkhorn_semi_unbalanced(a, a, C, EPS, RHO, stopThr=0.0, numItermax=k,
                                                            warn=False, acceleration=acc, log=log)
                        # timed without the log (its primal/dual values are N×M passes whose
                        # jitter would enter the slope); the re-centrings are counted apart
                        measured[backend, acc] = best_times(run)
                        best["builds", backend, acc] = (run(K2, log=True)[1]["n_kernel_builds"]
                                                        - run(K1, log=True)[1]["n_kernel_builds"])
                for key, value in measured.items():  # per quantity: the best round of each time
                    old = best.get(key)
                    best[key] = value if old is None else (
                        tuple(map(min, old, value)) if isinstance(value, tuple) else min(old, value))
            best.update({k: slope(v) for k, v in best.items() if isinstance(v, tuple)})
            for backend in inputs:
                t_prim = best["primitive", backend]
                rows.append([n, dtype, backend, f"{t_prim * 1e3:.3f}",
                             f"{best[backend, 'anderson'] / t_prim:.2f}", f"{best[backend, None] / t_prim:.2f}",
                             f"{best['builds', backend, 'anderson']} / {best['builds', backend, None]}",
                             f"{best['floor', True] / best['primitive', 'numpy']:.2f}",
                             f"{best['floor', False] / best['primitive', 'numpy']:.2f}",
                             f"{best['numba'] / best['primitive', 'numpy']:.2f}" if "numba" in best
                             else "not measured (no numba)"])
                print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)
    text = (
        "# One iteration: ours against its primitive and a numpy floor (OT_{ε,ρ}, brick patches)\n\n"
        f"Environment: {environment()}\n\n"
        f"ε = {EPS:g}, ρ = {RHO:g}. Time per iteration = slope between {K1} and {K2} iterations "
        "(best of 5 runs each), divided by the primitive (one K·w plus one Kᵀ·w with the backend's product, "
        f"best of 5 × 200); every measurement repeated in {args.rounds} interleaved rounds, best round kept. 'floor': the iteration written in the fewest numpy calls, without the "
        "solver's safeguards (see the script's docstring) — what a Python loop pays at best; "
        "'compiled floor': the same iteration with its vector passes fused by numba. A "
        "kernel re-centring (one exp over N×M, when the scalings drift too far) inside the window "
        "is part of the measured slope.\n\n"
        + markdown_table(header, rows)
        + "\n\nRe-run: `python benchmarks/bench_iteration.py"
        + ("" if args.sizes == "2000,4000" else f" --sizes {args.sizes}")
        + ("" if args.dtypes == "float64,float32" else f" --dtypes {args.dtypes}")
        + ("" if args.backends == "numpy,torch" else f" --backends {args.backends}")
        + ("" if args.out == "iteration.md" else f" --out {args.out}") + "`\n"
    )
    path = write_result(args.out, text)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
