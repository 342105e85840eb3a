"""Point-cloud loss: agreement with the matrix solver, between back ends, with finite
differences and the barycentric formula; warm starts; memory back-end choice; errors."""
import importlib.util
import sys
import types

import numpy as np
import ot
import pytest
import torch

from pot_semiunbalanced import SamplesLoss, sinkhorn_semi_unbalanced, sinkhorn_semi_unbalanced2
from pot_semiunbalanced import sinkhorn_semi_unbalanced2_samples as samples_loss
from pot_semiunbalanced import cloud_geometry, pointcloud

INF = np.inf
HAS_KEOPS = importlib.util.find_spec("pykeops") is not None
BACKENDS = ["dense", "blocked"] + (["keops"] if HAS_KEOPS else [])
PROBLEMS = [0.05, (0.05, 0.05), (INF, INF), (0.1, INF)]


def clouds(rng, n=30, m=40, d=3, dtype=np.float64):
    X = rng.normal(size=(n, d)) * 0.3
    Y = rng.normal(size=(m, d)) * 0.3 + 0.2
    return X.astype(dtype), Y.astype(dtype)


def brick_patches(n, seed, half):
    import skimage.data

    img = skimage.data.brick().astype(np.float64) / 255.0
    img = img[:256] if half == 0 else img[256:]
    r = np.random.default_rng(seed)
    ii, jj = r.integers(0, 250, n), r.integers(0, 250, n)
    return np.stack([img[i:i + 6, j:j + 6].ravel() for i, j in zip(ii, jj)])


@pytest.mark.parametrize("reg_m", PROBLEMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_value_equals_matrix_solver(rng, reg_m, backend):
    X, Y = clouds(rng)
    a = rng.uniform(0.5, 1.5, len(X))
    a /= a.sum()
    b = rng.uniform(0.5, 1.5, len(Y))
    b /= b.sum()
    eps = 2e-2
    ref = sinkhorn_semi_unbalanced2(a, b, ot.dist(X, Y), eps, reg_m, stopThr=1e-12, numItermax=50000)
    Xt, Yt, at, bt = (torch.tensor(v) for v in (X, Y, a, b))
    val = samples_loss(Xt, Yt, eps, reg_m, at, bt, backend=backend, stopThr=1e-12, numItermax=50000)
    assert abs(float(val) - float(ref)) <= 1e-10 * abs(float(ref))
    if backend != "keops":  # numpy input works too (no gradients)
        val_np = samples_loss(X, Y, eps, reg_m, a, b, backend=backend, stopThr=1e-12, numItermax=50000)
        assert abs(float(val_np) - float(ref)) <= 1e-10 * abs(float(ref))


def _value_and_grads(X, Y, a, b, eps, reg_m, backend, **kw):
    Xt, Yt, at, bt = (torch.tensor(v, requires_grad=True) for v in (X, Y, a, b))
    loss = samples_loss(Xt, Yt, eps, reg_m, at, bt, backend=backend, **kw)
    loss.backward()
    return float(loss.detach()), [t.grad.numpy().astype(np.float64) for t in (Xt, Yt, at, bt)]


@pytest.mark.parametrize("reg_m", PROBLEMS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_backends_agree_on_value_and_gradients(rng, reg_m, dtype, rtol):
    X, Y = clouds(rng, n=50, m=60, d=5, dtype=dtype)
    a = np.full(len(X), 1 / len(X), dtype=dtype)
    b = np.full(len(Y), 1 / len(Y), dtype=dtype)
    kw = dict(stopThr=1e-12 if dtype == np.float64 else 1e-6, numItermax=50000, block_size=17)
    ref_val, ref_grads = _value_and_grads(X, Y, a, b, 1e-2, reg_m, "dense", **kw)
    for backend in BACKENDS[1:]:
        val, grads = _value_and_grads(X, Y, a, b, 1e-2, reg_m, backend, **kw)
        assert abs(val - ref_val) <= rtol * abs(ref_val), backend
        for k, (g, g_ref) in enumerate(zip(grads, ref_grads)):
            if reg_m == (INF, INF) and k >= 2:  # balanced: weight gradients up to a constant
                g, g_ref = g - g.mean(), g_ref - g_ref.mean()
            assert np.linalg.norm(g - g_ref) <= rtol * np.linalg.norm(g_ref), (backend, k)


@pytest.mark.parametrize("reg_m", PROBLEMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_barycentric_formula_and_finite_differences(rng, reg_m, backend):
    X, Y = clouds(rng, n=12, m=15)
    mass_b = 1.0 if reg_m == (INF, INF) else 1.3
    a = np.full(12, 1 / 12)
    b = np.full(15, mass_b / 15)
    eps = 5e-2
    kw = dict(stopThr=1e-14, numItermax=100000)
    _, (gX, gY, ga, gb) = _value_and_grads(X, Y, a, b, eps, reg_m, backend, **kw)
    # barycentric formula from the plan of the matrix solver
    P = sinkhorn_semi_unbalanced(a, b, ot.dist(X, Y), eps, reg_m, **kw)
    np.testing.assert_allclose(gX, 2 * (P.sum(1)[:, None] * X - P @ Y), atol=1e-10)
    np.testing.assert_allclose(gY, 2 * (P.sum(0)[:, None] * Y - P.T @ X), atol=1e-10)
    # directional finite differences
    h = 1e-6

    def value(X_, Y_, a_, b_):
        return float(samples_loss(X_, Y_, eps, reg_m, a_, b_, backend="dense" if backend == "keops" else backend, **kw))

    for k, (x, grad) in enumerate(zip((X, Y, a, b), (gX, gY, ga, gb))):
        d = rng.normal(size=x.shape)
        if reg_m == (INF, INF) and k >= 2:
            d -= d.mean()  # balanced OT needs equal masses
        args_p, args_m = [X, Y, a, b], [X, Y, a, b]
        args_p[k], args_m[k] = x + h * d, x - h * d
        fd = (value(*args_p) - value(*args_m)) / (2 * h)
        assert abs(fd - (grad * d).sum()) <= 1e-6 * max(1.0, abs(fd)), k


def test_float32_small_eps_image_patches_are_finite():
    X = torch.tensor(brick_patches(400, 0, 0), dtype=torch.float32, requires_grad=True)
    Y = torch.tensor(brick_patches(500, 1, 1), dtype=torch.float32, requires_grad=True)
    for backend in BACKENDS:
        X.grad = Y.grad = None
        loss, log = samples_loss(X, Y, 1e-4, 0.01, backend=backend, log=True, numItermax=5000)
        loss.backward()
        assert log["converged"] and torch.isfinite(loss)
        assert torch.isfinite(X.grad).all() and torch.isfinite(Y.grad).all()
        assert X.grad.abs().max() > 0
        assert log["marginal_error"] <= 1e-5


def test_float32_close_to_float64_on_patches():
    X = brick_patches(300, 0, 0)
    Y = brick_patches(300, 1, 1)
    ref = float(samples_loss(torch.tensor(X), torch.tensor(Y), 4e-4, 0.01, stopThr=1e-10, numItermax=20000))
    for backend in BACKENDS:
        val = float(samples_loss(torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32),
                                 4e-4, 0.01, backend=backend))
        assert abs(val - ref) <= 1e-4 * abs(ref), backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_after_small_perturbation(backend):
    """A small gradient step on X (max 1e-6 per coordinate, cost changes ~1e-3 ε):
    the warm-started solve needs at most 20% of a cold solve's iterations. (Larger steps
    need more: see benchmarks/bench_pointcloud.py for the measured curve.)"""
    X0 = torch.tensor(brick_patches(300, 0, 0), requires_grad=True)
    Y = torch.tensor(brick_patches(400, 1, 1))
    loss_fn = SamplesLoss(4e-4, 0.01, backend=backend, stopThr=1e-6)
    loss_fn(X0, Y).backward()
    cold = loss_fn.n_iters[-1]
    X1 = (X0 - 1e-6 * X0.grad / X0.grad.abs().max()).detach()
    loss_fn(X1, Y)
    warm = loss_fn.n_iters[-1]
    loss_fn.reset()
    loss_fn(X1, Y)
    cold1 = loss_fn.n_iters[-1]
    assert cold >= 20 and cold1 >= 20
    assert warm <= 0.2 * cold1
    assert loss_fn.last_log["converged"] and loss_fn.n_iters == [cold, warm, cold1]


def test_module_is_differentiable_and_keeps_state():
    X = torch.rand(80, 4, dtype=torch.float64, requires_grad=True)
    Y = torch.rand(90, 4, dtype=torch.float64)
    loss_fn = SamplesLoss(1e-2, 0.1)
    loss = loss_fn(X, Y)
    loss.backward()
    assert X.grad is not None and loss_fn.potentials is not None
    assert "reg=0.01" in repr(loss_fn)
    # new sizes: the stale potentials are not used
    loss_fn(torch.rand(70, 4, dtype=torch.float64), Y)
    assert loss_fn.last_log["converged"]


def test_choose_backend(monkeypatch):
    like = torch.zeros(1, dtype=torch.float32)
    monkeypatch.setattr(cloud_geometry, "free_memory_bytes", lambda like: 8e9)
    assert pointcloud.choose_backend(1000, 1000, like) == "dense"
    # on a CPU the blocked back end, even with pykeops installed (KeOps is slower there)
    monkeypatch.setattr(cloud_geometry, "_keops_available", lambda: True)
    assert pointcloud.choose_backend(63001, 100000, like) == "blocked"
    cuda_like = types.SimpleNamespace(dtype=torch.float32, device=torch.device("cuda"))
    monkeypatch.setattr(cloud_geometry.A, "is_torch", lambda x: True)
    assert pointcloud.choose_backend(63001, 100000, cuda_like) == "keops"
    monkeypatch.setattr(cloud_geometry, "_keops_available", lambda: False)
    assert pointcloud.choose_backend(63001, 100000, cuda_like) == "blocked"


def test_keops_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pykeops", None)
    monkeypatch.setitem(sys.modules, "pykeops.torch", None)
    X = torch.rand(10, 2)
    with pytest.raises(ImportError, match="pip install pykeops"):
        samples_loss(X, X, 0.1, 0.1, backend="keops")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(Y=torch.rand(5, 3)), ValueError, "same dimension"),
        (dict(X=torch.full((4, 2), float("nan"))), ValueError, "X contains NaN"),
        (dict(X=torch.rand(4)), ValueError, "X must be a 2-D"),
        (dict(a=-torch.ones(4)), ValueError, "a has negative"),
        (dict(b=torch.ones(3)), ValueError, "b must have shape"),
        (dict(backend="gpu"), ValueError, "backend"),
        (dict(reg=0.0), ValueError, "reg"),
        (dict(reg_m=-1.0), ValueError, "reg_m"),
        (dict(Y=torch.rand(5, 2, dtype=torch.float64)), ValueError, "same array type, dtype"),
    ],
)
def test_bad_inputs(kwargs, exc, match):
    args = dict(X=torch.rand(4, 2), Y=torch.rand(5, 2), reg=0.1, reg_m=0.1, a=None, b=None)
    args.update(kwargs)
    backend = args.pop("backend", "auto")
    with pytest.raises(exc, match=match):
        samples_loss(args["X"], args["Y"], args["reg"], args["reg_m"], args["a"], args["b"], backend=backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend", BACKENDS)
def test_cuda_matches_cpu(rng, backend):
    X, Y = clouds(rng, n=200, m=300, d=8, dtype=np.float32)
    cpu = float(samples_loss(torch.tensor(X), torch.tensor(Y), 1e-2, 0.05, backend=backend))
    Xc = torch.tensor(X, device="cuda", requires_grad=True)
    val = samples_loss(Xc, torch.tensor(Y, device="cuda"), 1e-2, 0.05, backend=backend)
    val.backward()
    assert val.device.type == "cuda" and Xc.grad.device.type == "cuda"
    assert abs(float(val) - cpu) <= 1e-5 * abs(cpu)


def test_non_convergence_warning_points_at_the_caller():
    X = torch.rand(30, 2, dtype=torch.float64)
    with pytest.warns(UserWarning, match="did not converge") as record:
        samples_loss(X, X + 0.1, 1e-3, 0.05, numItermax=2)
    assert record[0].filename == __file__


def test_blocked_fused_pass_equals_separate_reductions(rng):
    from ot.backend import NumpyBackend

    X, Y = clouds(rng, n=45, m=31, d=4)
    cost = cloud_geometry.SqEuclideanCost(torch.tensor(X), torch.tensor(Y))
    a, b = np.full(45, 1 / 45), np.full(31, 1 / 31)
    geom = cloud_geometry.BlockedGeometry(cost, a, b, NumpyBackend(), block_size=7)
    geom.set_eps(1e-2)
    g = rng.normal(size=31) * 0.01
    r, s = geom.fused_rows_cols(g, -0.9e-2)
    np.testing.assert_allclose(r, geom.lse_rows(g), rtol=1e-13)
    np.testing.assert_allclose(s, geom.lse_cols(-0.9e-2 * r), rtol=1e-13)


@pytest.mark.parametrize("backend", ["blocked"] + (["keops"] if HAS_KEOPS else []))
def test_symmetric_method_on_large_scale_backends(rng, backend):
    X, Y = map(torch.tensor, clouds(rng, n=40, m=50))
    kw = dict(stopThr=1e-11, numItermax=20000)
    ref = float(samples_loss(X, Y, 2e-2, 0.05, backend="dense", **kw))
    val = float(samples_loss(X, Y, 2e-2, 0.05, backend=backend, method="symmetric", **kw))
    assert abs(val - ref) <= 1e-9 * abs(ref)


def test_module_warns_once_and_counts_non_converged_calls():
    X = torch.rand(30, 2, dtype=torch.float64)
    loss_fn = SamplesLoss(1e-3, 0.05, numItermax=2)
    with pytest.warns(UserWarning, match="n_not_converged") as record:
        for _ in range(3):
            loss_fn(X, X + 0.1)
    assert len(record) == 1 and record[0].filename == __file__
    assert loss_fn.n_not_converged == 3


@pytest.mark.parametrize("reg_m", [0.05, (0.05, INF)])  # the second one solves the transposed problem
def test_kernel_buffer_round_trip(rng, reg_m):
    X, Y = map(torch.tensor, clouds(rng, n=30, m=40))
    ref = float(samples_loss(X, Y, 1e-2, reg_m))
    _, log = samples_loss(X, Y, 1e-2, reg_m, log=True)
    buf = log["kernel_buffer"]
    assert isinstance(buf, torch.Tensor) and buf.shape in ((30, 40), (40, 30))
    buf.fill_(float("nan"))  # its contents must not matter
    val, log2 = samples_loss(X, Y, 1e-2, reg_m, kernel_buffer=buf, log=True)
    assert log2["kernel_buffer"] is buf
    assert abs(float(val) - ref) <= 1e-12 * abs(ref)
    assert samples_loss(X, Y, 1e-2, reg_m, backend="blocked", log=True)[1]["kernel_buffer"] is None


def test_kernel_buffer_of_the_wrong_shape_is_refused(rng):
    X, Y = map(torch.tensor, clouds(rng, n=30, m=40))
    with pytest.raises(ValueError, match="kernel_buffer must be a Tensor of shape \\(30, 40\\)"):
        samples_loss(X, Y, 1e-2, 0.05, kernel_buffer=torch.empty(40, 30, dtype=torch.float64))
    with pytest.raises(ValueError, match="kernel_buffer"):
        samples_loss(X, Y, 1e-2, 0.05, kernel_buffer=torch.empty(30, 40, dtype=torch.float32))


def test_module_keeps_its_kernel_between_calls(rng):
    X, Y = map(torch.tensor, clouds(rng, n=30, m=40))
    kept, fresh = SamplesLoss(1e-2, 0.05), SamplesLoss(1e-2, 0.05, keep_kernel=False)
    values = [(float(kept(X + 0.01 * k, Y)), float(fresh(X + 0.01 * k, Y))) for k in range(3)]
    for v_kept, v_fresh in values:
        assert v_kept == v_fresh
    k1 = kept._kernel
    kept(X, Y)
    assert kept._kernel is k1 and fresh._kernel is None and "kernel_buffer" not in kept.last_log
    kept(X[:20], Y)  # new sizes: a new kernel
    assert kept._kernel is not k1 and kept._kernel.shape == (20, 40)
    kept.release()
    assert kept._kernel is None


def test_auto_stays_dense_when_given_the_kernel_storage(rng, monkeypatch):
    X, Y = map(torch.tensor, clouds(rng, n=30, m=40))
    _, log = samples_loss(X, Y, 1e-2, 0.05, log=True)
    monkeypatch.setattr(cloud_geometry, "free_memory_bytes", lambda like: 0.0)  # nothing fits now
    assert samples_loss(X, Y, 1e-2, 0.05, log=True)[1]["backend"] == "blocked"
    _, log2 = samples_loss(X, Y, 1e-2, 0.05, kernel_buffer=log["kernel_buffer"], log=True)
    assert log2["backend"] == "dense" and log2["kernel_buffer"] is log["kernel_buffer"]
