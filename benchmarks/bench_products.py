"""Why CPU torch products go through numpy's OpenBLAS (``_array.matmul``).

The solver's time is mostly products with the N×M kernel: ``K @ w`` and ``Kᵀ @ w`` in
every iteration, ``Kᵀ @ X`` (d = 36 columns) for the envelope gradients. For a CPU torch
kernel, each is timed three ways, with 1 and 2 threads:

* ``torch`` — torch's own product (MKL in the PyPI wheels), as the solver did before;
* ``OpenBLAS`` — the same product on zero-copy numpy views, numpy's bundled OpenBLAS
  limited to the same number of threads (threadpoolctl);
* ``matmul`` — what the solver now calls: ``OpenBLAS`` with 2 threads or more for a
  kernel of ``_array.ROUTE_MIN_ENTRIES`` (2^26) entries or more, torch's product otherwise.
  Below that size whole solves were slower with OpenBLAS despite its faster products: its
  threads and torch's OpenMP threads (the kernel build) take turns on the same cores.

Sizes: 2000² and 4000² (the solver benchmarks; float32 and float64) and 63 001 × 10 000
(the paper's image-scale problem, float32). Best of 3 interleaved rounds, each the median
of several calls. The kernel is random in [0, 1]: a product's time does not depend on the
values as long as they are normal floats.

Run: ``python benchmarks/bench_products.py`` (writes ``results/products.md``; ~2 min).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, markdown_table, timeit, write_result  # noqa: E402

import pot_semiunbalanced._array as A  # noqa: E402

SIZES = [(2000, 2000, torch.float32), (2000, 2000, torch.float64), (4000, 4000, torch.float32),
         (4000, 4000, torch.float64), (63_001, 10_000, torch.float32)]
D = 36
ROUNDS = 3


def operations(K, rng):
    """``name -> (torch product, numpy product, matmul)`` for one kernel."""
    n, m = K.shape
    w, u = (torch.from_numpy(rng.random(k)).to(K.dtype) for k in (m, n))
    X = torch.from_numpy(rng.random((n, D))).to(K.dtype)
    Kn, wn, un, Xn = K.numpy(), w.numpy(), u.numpy(), X.numpy()
    return {
        "K @ w": (lambda: K @ w, lambda: Kn @ wn, lambda: A.matmul(K, w)),
        "Kᵀ @ w": (lambda: K.T @ u, lambda: Kn.T @ un, lambda: A.matmul(K, u, transpose=True)),
        f"Kᵀ @ X (d = {D})": (lambda: K.T @ X, lambda: Kn.T @ Xn, lambda: A.matmul(K, X, transpose=True)),
    }


def measure(threads: int, ops) -> dict:
    torch.set_num_threads(threads)
    out = {}
    with threadpool_limits(limits=threads, user_api="blas"):  # numpy's OpenBLAS, same count
        for name, fns in ops.items():
            out[name] = [timeit(f, repeat=5, warmup=1) for f in fns]
    return out


def main() -> None:
    if not A._numpy_openblas():
        sys.exit("numpy's BLAS is not its bundled OpenBLAS: the solver keeps torch's products here")
    rng = np.random.default_rng(0)
    rows = []
    for n, m, dtype in SIZES:
        K = torch.from_numpy(rng.random((n, m), dtype=np.float32)).to(dtype)
        ops = operations(K, rng)
        best = {}
        for _ in range(ROUNDS):  # interleaved rounds: threads and implementations alternate
            for threads in (1, 2):
                for name, times in measure(threads, ops).items():
                    key = (threads, name)
                    best[key] = times if key not in best else [min(a, b) for a, b in zip(best[key], times)]
        for (threads, name), (t_torch, t_blas, t_mm) in sorted(best.items()):
            rows.append([f"{n} x {m}", str(dtype).replace("torch.", ""), name, threads,
                         f"{t_torch * 1e3:.3f}", f"{t_blas * 1e3:.3f}", f"{t_mm * 1e3:.3f}",
                         f"{t_torch / t_mm:.2f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
        del K, ops
    header = ["N x M", "dtype", "product", "threads", "torch (ms)", "OpenBLAS (ms)",
              "matmul (ms)", "torch / matmul"]
    text = (
        "# CPU torch products: torch's own vs numpy's OpenBLAS (`_array.matmul`)\n\n"
        f"Environment: {environment()}\n\n"
        "Best of 3 interleaved rounds of medians; `matmul` is what the solver calls "
        f"(OpenBLAS with 2 threads for kernels of {A.ROUTE_MIN_ENTRIES} entries or more, "
        "torch's product otherwise).\n\n"
        + markdown_table(header, rows)
        + "\n\nRe-run: `python benchmarks/bench_products.py`\n"
    )
    print(f"wrote {write_result('products.md', text)}")


if __name__ == "__main__":
    main()
