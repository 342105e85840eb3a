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


_NUMPY_OPENBLAS = None  # threadpoolctl controllers of numpy's own OpenBLAS, found once


def _numpy_openblas() -> tuple:
    """Thread controllers (threadpoolctl) of the OpenBLAS that numpy's PyPI wheels bundle
    (``numpy.libs``), or ``()`` when numpy uses another BLAS or threadpoolctl is missing."""
    global _NUMPY_OPENBLAS
    if _NUMPY_OPENBLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a declared dependency
            _NUMPY_OPENBLAS = ()
            return _NUMPY_OPENBLAS
        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
        _NUMPY_OPENBLAS = tuple(lib for lib in libs if "numpy" in str(lib.filepath))
    return _NUMPY_OPENBLAS


# Below this many kernel entries CPU torch products stay in torch (see :func:`matmul`).
ROUTE_MIN_ENTRIES = 1 << 26


def _routes_to_numpy(K, W) -> bool:
    """True for a CPU torch product worth running with numpy's OpenBLAS (see :func:`matmul`)."""
    if not (is_torch(K) and K.device.type == "cpu") or torch.get_num_threads() < 2:
        return False
    if K.numel() < ROUTE_MIN_ENTRIES:
        return False
    if torch.is_grad_enabled() and (K.requires_grad or (is_torch(W) and W.requires_grad)):
        return False  # autograd must see the product
    return K.dtype in (torch.float32, torch.float64) and bool(_numpy_openblas())


def matmul(K, W, *, transpose: bool = False):
    """``K @ W``, or ``K.T @ W`` with ``transpose``, for a kernel matrix ``K`` and ``W`` of
    its type (vector or matrix); the result has ``K``'s type.

    A CPU torch product with a large kernel (:data:`ROUTE_MIN_ENTRIES`, 2^26 entries) and
    two threads or more runs on numpy's OpenBLAS (zero-copy views), with torch's thread
    count. On this project's 2-core AMD machine torch's own CPU product (MKL's) did not use
    the second thread for a matrix-vector product: with two threads it took 1.6-1.7x as
    long as OpenBLAS at 63 001 x 10 000 in float32 (1.8-3.2x at 2000²;
    ``benchmarks/results/products.md``), and a warm super-resolution step at 256² took
    10-12 % less time with the products routed. Smaller kernels stay in torch: there the time
    lost when OpenBLAS's threads and torch's OpenMP threads (the kernel build) take turns
    on the same cores outweighed the faster products, and whole solves at N = 2000-4000
    took 8-20 % longer. With one thread the two products are within 10 % either way and
    torch computes them (sub-normals flushed, see :func:`flush_denormal`), as it does
    where numpy's BLAS is not its bundled OpenBLAS.
    """
    if is_torch(K) and K.device.type == "cpu":
        if _routes_to_numpy(K, W):
            Wn = W.detach().numpy() if is_torch(W) else W
            return torch.from_numpy(_openblas_matmul(K.detach().numpy(), Wn, transpose))
        with flush_denormal(K):
            return K.T @ W if transpose else K @ W
    return K.T @ W if transpose else K @ W


def matvec(K, w, *, transpose: bool = False):
    """``K @ w`` (``K.T @ w``) for a vector-backend vector ``w`` (:func:`vector_backend`),
    returned as a vector-backend vector in double precision (:func:`matmul`)."""
    return to_vec(matmul(K, to_kernel(w, K), transpose=transpose))


def _openblas_matmul(Kn, Wn, transpose: bool):
    """numpy product with numpy's OpenBLAS set to torch's thread count for the call (set
    and set back only when the two counts differ)."""
    n, libs = torch.get_num_threads(), _numpy_openblas()
    previous = [lib.get_num_threads() for lib in libs]
    for lib, p in zip(libs, previous):
        if p != n:
            lib.set_num_threads(n)
    try:
        return Kn.T @ Wn if transpose else Kn @ Wn
    finally:
        for lib, p in zip(libs, previous):
            if p != n:
                lib.set_num_threads(p)


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
