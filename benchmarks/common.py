"""Shared helpers for the benchmark scripts: data, timing, environment, tables."""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def brick_patches(n: int, *, seed: int = 0, patch: int = 6, half: str = "top") -> np.ndarray:
    """``n`` random ``patch``×``patch`` patches of scikit-image's brick texture in [0, 1].

    ``half="top"`` draws from rows 0..255, ``"bottom"`` from rows 256..511 (disjoint).
    """
    import skimage.data

    img = skimage.data.brick().astype(np.float64) / 255.0
    img = img[:256] if half == "top" else img[256:]
    rng = np.random.default_rng(seed)
    H, W = img.shape
    ii = rng.integers(0, H - patch + 1, n)
    jj = rng.integers(0, W - patch + 1, n)
    return np.stack([img[i:i + patch, j:j + patch].ravel() for i, j in zip(ii, jj)])


def timeit(fn: Callable[[], object], *, repeat: int = 3, warmup: int = 0) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def environment() -> str:
    import ot
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), POT {ot.__version__}; "
        f"date {time.strftime('%Y-%m-%d %H:%M')}"
        + (f"; GPU {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
           if torch.cuda.is_available() else "")
    )


def markdown_table(header: Sequence[str], rows: List[Sequence[object]]) -> str:
    def fmt(x):
        if isinstance(x, float):
            return f"{x:.3g}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    return path
