"""Why N×M passes go by blocks of 2^20 entries on a CPU (``_array.block_entries``).

Three block-by-block passes at image scale (brick patches, d = 36, float32, M = 10 000),
each timed with blocks of 2^18 … 2^24 entries (2^24 = 64 MiB in float32 was the old
default), 2 torch threads:

* ``blocked`` — one alternating step of the blocked point-cloud geometry
  (``BlockedGeometry.fused_rows_cols``), N = 16 000;
* ``wpp`` — the WPP semi-dual assignment (``imaging.wpp.semidual_assignment``),
  N = 63 001;
* the same assignment as written before 2026-11-28, with a new score array for every
  block instead of one reused buffer;
* ``build`` — a warm rebuild of the dense kernel (``KernelGeometry.build``), N = 63 001
  (one 2.4 GiB float32 buffer).

The outputs do not depend on the block size (checked here: the same assignments, the same
reductions to rounding). Two effects show: a block small enough to stay in the CPU cache
between the passes made over it (2^20 vs 2^24 entries, one reused buffer), and, larger, the
cost of allocating a fresh 64 MiB array for every block (the memory is mapped anew and
faulted in page by page each time).

Run: ``python benchmarks/bench_blocks.py`` (writes ``results/blocks.md``; ~3 min here);
``--device cuda`` on a GPU (``results/blocks_cuda.md``; the GPU default is 2^24 entries).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import brick_patches, environment, markdown_table, timeit, write_result  # noqa: E402

import pot_semiunbalanced._array as A  # noqa: E402
from pot_semiunbalanced.cloud_geometry import BlockedGeometry, SqEuclideanCost  # noqa: E402
from pot_semiunbalanced.geometry import KernelGeometry  # noqa: E402
from pot_semiunbalanced.imaging.wpp import semidual_assignment  # noqa: E402

EPS = 4e-4
EXPONENTS = (18, 20, 22, 24)
M = 10_000
DEVICE = "cpu"  # set by --device (in the children through the command line)


def timed(fn) -> float:
    """Median of 3 after one warm-up, waiting for queued GPU work."""
    def run():
        fn()
        if DEVICE != "cpu":
            torch.cuda.synchronize()
    return timeit(run, repeat=3, warmup=1)


def clouds(n: int):
    X = torch.tensor(brick_patches(n, seed=0, half="top"), dtype=torch.float32, device=DEVICE)
    Y = torch.tensor(brick_patches(M, seed=1, half="bottom"), dtype=torch.float32, device=DEVICE)
    return X, Y


def vec(x):
    """A solver vector where the solver keeps it: numpy on a CPU, a float64 tensor on a GPU."""
    return x if DEVICE == "cpu" else torch.tensor(x, dtype=torch.float64, device=DEVICE)


def host(x) -> np.ndarray:
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def bench_blocked(n: int = 16_000):
    X, Y = clouds(n)
    a, b = vec(np.full(n, 1.0 / n)), vec(np.full(M, 1.0 / M))
    g = vec(np.random.default_rng(0).normal(size=M) * EPS)
    times, outs = [], []
    for k in EXPONENTS:
        geom = BlockedGeometry(SqEuclideanCost(X, Y), a, b, A.vector_backend(X),
                               block_size=max(1, (1 << k) // M))
        geom.set_eps(EPS)
        outs.append(geom.fused_rows_cols(g, -0.96 * EPS))
        times.append(timed(lambda: geom.fused_rows_cols(g, -0.96 * EPS)))
    same = max(float(np.max(np.abs(host(o[1]) - host(outs[0][1])))) for o in outs)
    return times, f"column reductions equal to {same:.0e}"


def bench_wpp(n: int = 63_001):
    X, Y = clouds(n)
    psi = torch.from_numpy(np.random.default_rng(0).normal(size=M) * 1e-3).float().to(DEVICE)
    times, outs = [], []
    for k in EXPONENTS:
        bs = max(1, (1 << k) // M)
        outs.append(semidual_assignment(X, Y, psi, block_size=bs))
        times.append(timed(lambda: semidual_assignment(X, Y, psi, block_size=bs)))
    return times, "same assignments" if all(bool((o == outs[0]).all()) for o in outs) else "assignments differ"


def bench_wpp_fresh(n: int = 63_001):
    """The assignment as written before 2026-11-28: a new score array for every block."""
    X, Y = clouds(n)
    psi = torch.from_numpy(np.random.default_rng(0).normal(size=M) * 1e-3).float().to(DEVICE)
    shift = ((Y * Y).sum(1) - psi).unsqueeze(0)
    ref = semidual_assignment(X, Y, psi)

    def assign(bs):
        out = torch.empty(n, dtype=torch.long, device=DEVICE)
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            out[start:stop] = torch.addmm(shift, X[start:stop], Y.t(), beta=1.0, alpha=-2.0).argmin(dim=1)
        return out

    times = []
    for k in EXPONENTS:
        bs = max(1, (1 << k) // M)
        same = bool((assign(bs) == ref).all())
        times.append(timed(lambda: assign(bs)))
    return times, "same assignments" if same else "assignments differ"


def bench_build(n: int = 63_001):
    X, Y = clouds(n)
    geom = KernelGeometry(SqEuclideanCost(X, Y), vec(np.full(n, 1.0 / n)), vec(np.full(M, 1.0 / M)),
                          A.vector_backend(X))
    geom.set_eps(EPS)
    rng = np.random.default_rng(0)
    f, g = vec(rng.normal(size=n) * EPS), vec(rng.normal(size=M) * EPS)
    times = []
    original = A.block_entries
    try:
        for k in EXPONENTS:
            A.block_entries = lambda like, k=k: 1 << k
            times.append(timed(lambda: geom.build(f, g)))
    finally:
        A.block_entries = original
    return times, "kernel buffer reused"


PASSES = {
    "blocked": ("blocked geometry, one alternating step", 16_000, bench_blocked),
    "wpp": ("WPP semi-dual assignment", 63_001, bench_wpp),
    "wpp_fresh": ("same, a new array per block (before)", 63_001, bench_wpp_fresh),
    "build": ("dense kernel build (warm)", 63_001, bench_build),
}


def child(key: str, device: str) -> None:
    """One pass in this (fresh) process: the allocator's state depends on what ran before."""
    global DEVICE
    DEVICE = device
    torch.set_num_threads(2)
    times, check = PASSES[key][2]()
    print("RESULT " + json.dumps({"times": times, "check": check}), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--out", default=None, help="file name under benchmarks/results "
                        "(default blocks.md, blocks_cuda.md on a GPU)")
    args = parser.parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA device")
    out_name = args.out or ("blocks.md" if args.device == "cpu" else "blocks_cuda.md")
    header = ["pass", "N × M"] + [f"2^{k} entries (s)" for k in EXPONENTS] + ["2^24 / 2^20", "check"]
    rows = []
    for key, (name, n, _) in PASSES.items():
        out = subprocess.run([sys.executable, __file__, "_child", key, args.device],
                             capture_output=True, text=True)
        found = re.search(r"RESULT (.*)", out.stdout)
        if found is None:
            print(out.stdout[-2000:] + out.stderr[-2000:])
            raise SystemExit(f"pass {key} failed")
        res = json.loads(found.group(1))
        times = res["times"]
        rows.append([name, f"{n} × {M}"] + [f"{t:.3f}" for t in times]
                    + [f"{times[-1] / times[EXPONENTS.index(20)]:.1f}×", res["check"]])
        print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)
    torch.set_num_threads(2)  # as in the children, for the environment line
    where = "CPU" if args.device == "cpu" else "GPU"
    text = (
        f"# Block size of the N×M passes ({where})\n\n"
        f"Environment: {environment()}\n\n"
        "Brick patches, d = 36, float32, ε = 4e-4; median of 3 after one warm-up; each pass in a "
        "fresh process. The default on a CPU is 2^20 entries per block (4 MiB in float32), "
        "2^24 on a GPU (`_array.block_entries`).\n\n"
        + markdown_table(header, rows) + "\n\nRe-run: `python benchmarks/bench_blocks.py"
        + ("" if args.device == "cpu" else f" --device {args.device}")
        + ("" if args.out is None else f" --out {args.out}") + "`\n"
    )
    path = write_result(out_name, text)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
