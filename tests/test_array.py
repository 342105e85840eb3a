"""Array helpers: the CPU product route of :func:`pot_semiunbalanced._array.matmul`."""
import numpy as np
import pytest
import torch

from pot_semiunbalanced import _array as A

needs_openblas = pytest.mark.skipif(not A._numpy_openblas(), reason="numpy's BLAS is not its bundled OpenBLAS")


@pytest.fixture
def torch_threads():
    previous = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(previous)


@pytest.fixture
def route_small(monkeypatch):
    """Route CPU torch products of any size to numpy's OpenBLAS (normally 2^26 entries and up)."""
    monkeypatch.setattr(A, "ROUTE_MIN_ENTRIES", 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("cols", [None, 3])
@pytest.mark.parametrize("routed", [False, True])
def test_matmul_equals_the_product(rng, torch_threads, monkeypatch, dtype, threads, transpose, cols, routed):
    torch_threads(threads)
    if routed:
        monkeypatch.setattr(A, "ROUTE_MIN_ENTRIES", 0)
    K = torch.from_numpy(rng.random((70, 50))).to(dtype)
    n = K.shape[0] if transpose else K.shape[1]
    W = torch.from_numpy(rng.random(n if cols is None else (n, cols))).to(dtype)
    out = A.matmul(K, W, transpose=transpose)
    ref = (K.double().T if transpose else K.double()) @ W.double()
    assert A.is_torch(out) and out.dtype == dtype and out.shape == ref.shape
    np.testing.assert_allclose(out.double().numpy(), ref.numpy(), rtol=1e-5 if dtype == torch.float32 else 1e-13)
    if cols is None:  # the vector-backend form
        vec = A.matvec(K, W.numpy(), transpose=transpose)
        assert A.is_numpy(vec) and vec.dtype == np.float64
        np.testing.assert_allclose(vec, ref.numpy(), rtol=1e-5 if dtype == torch.float32 else 1e-13)


def test_matmul_numpy_and_transposed_views(rng):
    K = rng.random((30, 20))
    w = rng.random(30)
    np.testing.assert_allclose(A.matmul(K, w, transpose=True), K.T @ w, rtol=1e-14)
    Kt = torch.from_numpy(rng.random((30, 20))).T  # strided rows, as a transposed cost
    np.testing.assert_allclose(A.matmul(Kt, torch.from_numpy(w)).numpy(), Kt.numpy() @ w, rtol=1e-14)


@needs_openblas
def test_cpu_torch_products_run_on_openblas_with_torch_thread_count(rng, torch_threads, monkeypatch):
    torch_threads(2)
    K = torch.from_numpy(rng.random((40, 30)))
    w = torch.from_numpy(rng.random(30))
    assert not A._routes_to_numpy(K, w)  # small kernels stay in torch
    monkeypatch.setattr(A, "ROUTE_MIN_ENTRIES", K.numel())
    assert A._routes_to_numpy(K, w)
    calls = []

    class Spy:  # numpy's OpenBLAS, set to one thread by the user
        def get_num_threads(self):
            return 1

        def set_num_threads(self, n):
            calls.append(n)

    monkeypatch.setattr(A, "_NUMPY_OPENBLAS", (Spy(),))
    A.matmul(K, w)
    assert calls == [2, 1]  # torch's count for the product, the user's back afterwards
    torch_threads(1)
    assert not A._routes_to_numpy(K, w)  # one thread: torch's own product


@needs_openblas
def test_openblas_thread_count_restored(rng, torch_threads, route_small):
    lib = A._numpy_openblas()[0]
    before = lib.get_num_threads()
    lib.set_num_threads(1)  # the user's setting, different from torch's
    try:
        torch_threads(2)
        A.matmul(torch.from_numpy(rng.random((40, 30))), torch.from_numpy(rng.random(30)))
        assert lib.get_num_threads() == 1
    finally:
        lib.set_num_threads(before)


def test_products_needing_autograd_stay_in_torch(rng, torch_threads, route_small):
    torch_threads(2)
    K = torch.from_numpy(rng.random((40, 30))).requires_grad_()
    w = torch.from_numpy(rng.random(30))
    assert not A._routes_to_numpy(K, w)
    out = A.matmul(K, w)
    out.sum().backward()
    np.testing.assert_allclose(K.grad.numpy(), np.broadcast_to(w.numpy(), (40, 30)))
    with torch.no_grad():
        assert A._routes_to_numpy(K, w) == bool(A._numpy_openblas())


@needs_openblas
def test_solvers_agree_with_products_routed(rng, torch_threads, monkeypatch):
    """The matrix solver and the point-cloud loss with its envelope gradients give the
    same results whether the CPU torch products run in torch or on numpy's OpenBLAS."""
    from pot_semiunbalanced import sinkhorn_semi_unbalanced, sinkhorn_semi_unbalanced2_samples

    torch_threads(2)
    X, Y = torch.from_numpy(rng.random((60, 4))), torch.from_numpy(rng.random((50, 4)))
    C = torch.cdist(X, Y) ** 2

    def solve():
        Xg = X.clone().requires_grad_()
        loss = sinkhorn_semi_unbalanced2_samples(Xg, Y, 0.05, 0.5, backend="dense")
        loss.backward()
        e = torch.tensor([], dtype=C.dtype)
        plan = sinkhorn_semi_unbalanced(e, e, C, 0.05, 0.5, stopThr=1e-12)
        return plan, loss.detach(), Xg.grad

    plain = solve()
    monkeypatch.setattr(A, "ROUTE_MIN_ENTRIES", 0)
    calls = []
    original = A._openblas_matmul
    monkeypatch.setattr(A, "_openblas_matmul", lambda *args: calls.append(1) or original(*args))
    routed = solve()
    assert calls  # the products did go through OpenBLAS
    for p, r in zip(plain, routed):
        np.testing.assert_allclose(r.numpy(), p.numpy(), rtol=1e-10, atol=1e-14)
