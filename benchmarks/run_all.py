"""Run every benchmark script in turn (``make bench``); each writes its table under results/.

The whole set takes several hours on two CPU cores (the large point-cloud runs and the
Table I quick preset dominate). Pass script names to run a subset, e.g.
``python benchmarks/run_all.py bench_solver bench_pointcloud``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: script -> arguments of its full run
SCRIPTS = {
    "bench_solver": [],
    "bench_iteration": [],
    "bench_pointcloud": ["all"],
    "bench_blocks": [],
    "bench_products": [],
    "bench_anderson_depth": [],
    "bench_superres": ["--sizes", "64", "128", "256", "--steps", "6", "4", "3"],
    "bench_wpp_faithful": ["--crop", "96", "--steps", "100"],
    "bench_denoising": [],
}


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {sorted(SCRIPTS)}")
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py"), *SCRIPTS[name]]
        print("$", " ".join(cmd), flush=True)
        if subprocess.call(cmd) != 0:
            failed.append(name)
    table1 = [sys.executable, "-m", "pot_semiunbalanced.cli", "benchmark", "--preset", "quick",
              "--out", str(HERE / "results" / "table1_quick")]
    materials = HERE.parent.parent / "shared" / "data" / "materials"
    if materials.is_dir():  # the material pairs, when ../shared is beside the clone
        table1 += ["--materials", str(materials)]
    if argv is None and not sys.argv[1:]:
        print("$", " ".join(table1), flush=True)
        if subprocess.call(table1) != 0:
            failed.append("table1 quick")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
