"""Sinkhorn iterations against the Anderson memory (``anderson_depth``), by problem.

Iteration counts to ``stopThr = 1e-6`` (alternating method, cap 8000) at depths 8 (the
default), 16 and 32, for balanced OT_ε and, on some problems, OT_{ε,ρ} and OT_{ε,ρ,ρ}
(ρ = 0.01). Problems: 6x6 patches of scikit-image's ``brick`` (``bench_solver.py``'s, raw
squared distances up to ~5), uniform points in 2-D, and Gaussian clouds in 3-D and 10-D
(costs divided by their maximum). Iteration counts do not depend on the machine's load.

Run: ``python benchmarks/bench_anderson_depth.py`` (writes ``results/anderson_depth.md``).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import ot

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import brick_patches, environment, markdown_table, write_result  # noqa: E402

from pot_semiunbalanced import sinkhorn_semi_unbalanced  # noqa: E402

DEPTHS = (8, 16, 32)
CAP = 8000
INF = np.inf


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def problems():
    """``name -> (a, b, C)``."""
    out = {}
    for n in (1000, 2000):
        C = ot.dist(brick_patches(n, seed=0, half="top"), brick_patches(n, seed=1, half="bottom"))
        out[f"brick patches, N = M = {n}"] = (_uniform(n), _uniform(n), C)
    rng = np.random.default_rng(1)
    P, Q = rng.random((500, 2)), rng.random((600, 2)) * [1.5, 1.0]
    C = ot.dist(P, Q)
    out["2-d uniform, 500 x 600"] = (_uniform(500), _uniform(600), C / C.max())
    for d, n, scale in ((3, 300, None), (10, 600, 1.3)):
        g = np.random.default_rng(d)
        X = g.normal(size=(n, d))
        Y = g.normal(size=(n, d)) * scale if scale else g.normal(size=(n, d)) + 0.5
        C = ot.dist(X, Y)
        out[f"{d}-d Gaussian, {n} x {n}"] = (_uniform(n), _uniform(n), C / C.max())
    return out


def iterations(a, b, C, eps, reg_m, depth) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, log = sinkhorn_semi_unbalanced(a, b, C, eps, reg_m, numItermax=CAP, stopThr=1e-6,
                                          log=True, anderson_depth=depth)
    return f"{log['n_iter']}" + ("" if log["converged"] else " (not converged)")


def main() -> int:
    header = ["problem", "ε", "problem kind"] + [f"iterations, depth {d}" for d in DEPTHS]
    rows = []
    kinds = {"OT_ε (balanced)": (INF, INF), "OT_{ε,ρ}": (INF, 0.01), "OT_{ε,ρ,ρ}": (0.01, 0.01)}
    for name, (a, b, C) in problems().items():
        for eps in (1e-3, 3e-4):
            for kind, reg_m in kinds.items():
                if kind != "OT_ε (balanced)" and eps != 1e-3:
                    continue  # the relaxed problems converge in tens of iterations anyway
                rows.append([name, f"{eps:g}", kind] + [iterations(a, b, C, eps, reg_m, d) for d in DEPTHS])
                print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)
    text = (
        "# Sinkhorn iterations against the Anderson memory\n\n"
        f"Environment: {environment()}\n\n"
        f"Alternating method, stopThr = 1e-6, at most {CAP} iterations, ρ = 0.01 on relaxed sides. "
        "Brick costs are raw squared distances of 6x6 patches in [0, 1] (up to ~5); the others "
        "are divided by their maximum.\n\n"
        + markdown_table(header, rows)
        + "\n\nRe-run: `python benchmarks/bench_anderson_depth.py`\n"
    )
    path = write_result("anderson_depth.md", text)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
