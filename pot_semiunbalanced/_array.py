"""Array helpers shared by the solvers.

POT's backend (``nx``) covers the vector algebra; the few N×M passes that decide speed
and memory are written here with in-place numpy / torch operations, with a functional
fallback for other POT backends. Each function returns the result array (the same object
when it worked in place), so callers always write ``E = op(E, ...)``.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

try:  # torch is a hard dependency of the package, but keep the numpy path importable alone
    import torch
except ImportError:  # pragma: no cover
    torch = None


def is_torch(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def is_numpy(x) -> bool:
    return isinstance(x, np.ndarray)


def work_precision(x):
    """``x`` promoted to float64 (numpy / torch); other backends are returned unchanged.

    The solvers keep potentials (vectors) in double precision even for float32 costs:
    at ε = 1e-4 a float32 potential of size 1 carries an error of 1e-3 in units of ε.
    """
    if is_numpy(x):
        return x.astype(np.float64, copy=False)
    if is_torch(x) and x.dtype in (torch.float16, torch.bfloat16, torch.float32):
        return x.to(torch.float64)
    return x


def cast_like(x, ref):
    """``x`` with the dtype (and device) of ``ref`` (numpy / torch; identity elsewhere)."""
    if is_numpy(ref) and isinstance(x, (np.ndarray, np.generic, float)):
        out = np.asarray(x).astype(ref.dtype, copy=False)
        return out[()] if out.ndim == 0 else out
    if is_torch(ref) and is_torch(x):
        return x.to(dtype=ref.dtype, device=ref.device)
    return x


def vector_backend(like):
    """Backend for the solver's vectors (potentials, weights, Anderson history).

    numpy for numpy and CPU-torch kernels — small-vector operations cost a few µs in
    numpy against ~5-10 µs in torch, which matters at ~100 of them per iteration —
    and the kernel's own backend on accelerators (vectors stay on the device).
    """
    from ot.backend import NumpyBackend, get_backend

    if is_numpy(like) or (is_torch(like) and like.device.type == "cpu"):
        return NumpyBackend()
    return get_backend(like)


def to_vec(x):
    """Kernel-backend array → vector-backend array in double precision (zero copy when possible)."""
    if is_torch(x) and x.device.type == "cpu":
        return x.detach().numpy().astype(np.float64, copy=False)
    if is_numpy(x) or isinstance(x, np.generic):
        return np.asarray(x, dtype=np.float64)
    return work_precision(x)


def to_kernel(v, like):
    """Vector-backend array → an array of ``like``'s type, dtype and device."""
    if is_torch(like) and not is_torch(v):
        arr = np.asarray(v, dtype=str(like.dtype).replace("torch.", ""))
        return torch.from_numpy(np.ascontiguousarray(arr)).to(like.device)
    return cast_like(v, like)


def to_float(x) -> float:
    """A 0-d array / tensor as a Python float (one device sync on CUDA)."""
    if is_torch(x):
        return float(x.item())
    return float(x)


def expm1(x):
    if is_torch(x):
        return torch.expm1(x)
    return np.expm1(x)


def empty_matrix(shape, like):
    """Uninitialised matrix with the dtype and device of ``like``."""
    if is_torch(like):
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    if is_numpy(like):
        return np.empty(shape, dtype=like.dtype)
    raise TypeError("empty_matrix supports numpy arrays and torch tensors")


def scaled_neg_into(out, C, scale: float = 1.0):
    """``out = -scale * C``; ``out`` may be ``None`` (then a new array is returned)."""
    if out is None:
        return C * (-scale)
    if is_torch(C):
        return torch.mul(C, -scale, out=out)
    if is_numpy(C):
        return np.multiply(C, -scale, out=out)
    return C * (-scale)


def all_finite(x) -> bool:
    """True when ``x`` has no NaN / inf: one summation pass, an exact check only if it overflows."""
    if is_torch(x) or is_numpy(x):
        if np.isfinite(to_float(x.sum())):
            return True
        return bool(torch.isfinite(x).all()) if is_torch(x) else bool(np.isfinite(x).all())
    import ot

    nx = ot.backend.get_backend(x)
    return not bool(nx.any(~nx.isfinite(x)))


def add_outer_(E, u=None, v=None):
    """``E += u[:, None] + v[None, :]`` in place when possible (u or v may be None)."""
    if is_torch(E) or is_numpy(E):
        if u is not None:
            E += u[:, None]
        if v is not None:
            E += v[None, :]
        return E
    if u is not None:
        E = E + u[:, None]
    if v is not None:
        E = E + v[None, :]
    return E


def floored_exp_(E, lo: float):
    """``E = exp(max(E, lo))`` in place when possible.

    The floor ``lo`` (about -80 in float32) keeps every kernel entry a normal float: it
    avoids the slow sub-normal path of CPU ``exp`` (SPEC §2) and keeps every row and
    column sum strictly positive. Entries that small carry no mass (see the geometry).
    """
    if is_torch(E):
        return E.clamp_(min=lo).exp_()
    if is_numpy(E):
        np.maximum(E, lo, out=E)
        return np.exp(E, out=E)
    import ot  # generic POT backend

    nx = ot.backend.get_backend(E)
    return nx.exp(nx.maximum(E, lo))


def scale_rows_cols_(K, u, v):
    """``K = u[:, None] * K * v[None, :]`` in place when possible (turns a kernel into a plan)."""
    if is_torch(K) or is_numpy(K):
        K *= u[:, None]
        K *= v[None, :]
        return K
    return u[:, None] * K * v[None, :]


def amax(E, axis: int):
    if is_torch(E):
        return torch.amax(E, dim=axis)
    if is_numpy(E):
        return E.max(axis=axis)
    import ot

    return ot.backend.get_backend(E).max(E, axis=axis)


def row_slices(n: int, step: int):
    """``[slice(0, step), slice(step, 2 step), ...]`` covering ``range(n)``."""
    step = max(1, int(step))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def block_entries(like) -> int:
    """Entries of one row block for block-by-block N×M passes (blocked geometry, WPP
    assignment, kernel build): 2^20 on a CPU, where a 4 MiB float32 block stays in the
    cache between the passes made over it, 2^24 on an accelerator (fewer, larger kernel
    launches). On the project's 2-core machine 2^24-entry blocks were 1.1-1.3x slower
    with one reused buffer, and 2.2x slower when each block was a new 64 MiB array
    (``benchmarks/results/blocks.md``): callers write every block into one buffer."""
    if is_torch(like) and like.device.type != "cpu":
        return 1 << 24
    return 1 << 20


@contextmanager
def torch_threads(n):
    """Run the block with ``n`` torch threads (``None``: leave the count as it is), then
    restore the previous count."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def flush_denormal(like):
    """Flush sub-normal floats to zero inside the block (torch on CPU; no-op elsewhere).

    Products of floored kernel entries with small weights can fall in the sub-normal
    range, where CPU arithmetic is many times slower. Those products are below the
    relative precision the geometry guarantees (see ``KernelGeometry._repair``), so
    flushing them changes no result. torch offers no getter for this flag: it is set
    back to False (torch's default) on exit.
    """
    if is_torch(like) and like.device.type == "cpu" and torch.set_flush_denormal(True):
        try:
            yield
        finally:
            torch.set_flush_denormal(False)
    else:
        yield
