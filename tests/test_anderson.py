"""Anderson mixing (pot_semiunbalanced.anderson) on fixed-point maps with known solutions."""
import numpy as np
import pytest
import torch
from ot.backend import NumpyBackend, TorchBackend

from pot_semiunbalanced.anderson import Anderson


def _linear_map(n, contraction, seed=0):
    """x -> M x + c with spectral radius ``contraction``; returns (T, fixed point)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    M = Q @ np.diag(np.linspace(-contraction, contraction, n)) @ Q.T
    c = rng.normal(size=n)
    x_star = np.linalg.solve(np.eye(n) - M, c)
    return (lambda x: M @ x + c), x_star


def _iterate(mixer, T, x, n_iter):
    for _ in range(n_iter):
        Tx = T(x)
        x = mixer(x, Tx, Tx - x)
    return x


def test_depth_zero_is_the_plain_iteration():
    T, _ = _linear_map(6, 0.9)
    x = np.ones(6)
    assert np.array_equal(Anderson(NumpyBackend(), depth=0)(x, T(x)), T(x))


def test_linear_map_converges_like_gmres():
    """On an n-dimensional affine map, type-II Anderson with depth ≥ n is GMRES: it finds
    the fixed point in about n + 1 steps, where the plain iteration (rate 0.999) needs
    thousands."""
    n = 6
    T, x_star = _linear_map(n, 0.999)
    x = _iterate(Anderson(NumpyBackend(), depth=8), T, np.zeros(n), n + 3)
    assert np.linalg.norm(x - x_star) <= 1e-8 * np.linalg.norm(x_star)
    plain = np.zeros(n)
    for _ in range(n + 3):
        plain = T(plain)
    assert np.linalg.norm(plain - x_star) > 0.5 * np.linalg.norm(x_star)


def test_history_longer_than_depth_still_converges():
    """A ring buffer shorter than the dimension: no finite termination, but far ahead of
    the plain iteration (which keeps 0.99^150 ≈ 0.22 of its initial error)."""
    T, x_star = _linear_map(40, 0.99, seed=1)
    x = _iterate(Anderson(NumpyBackend(), depth=4), T, np.zeros(40), 150)
    assert np.linalg.norm(x - x_star) <= 1e-3 * np.linalg.norm(x_star)


def test_growing_residual_restarts_the_memory():
    """A residual above restart_factor × the best one seen forgets the history and
    returns the plain image."""
    mixer = Anderson(NumpyBackend(), depth=4, restart_factor=10.0)
    x = np.zeros(3)
    for scale in (1.0, 0.5, 0.25):
        Tx = x + scale
        x = mixer(x, Tx, Tx - x)
    assert mixer.n_restarts == 0
    Tx = x + 100.0  # residual norm 100·√3 > 10 × 0.25·√3
    out = mixer(x, Tx, Tx - x)
    assert mixer.n_restarts == 1
    assert np.array_equal(out, Tx)


def test_nonfinite_residual_restarts():
    mixer = Anderson(NumpyBackend(), depth=4)
    x = np.zeros(3)
    mixer(x, x + 1.0)
    Tx = np.array([np.nan, 0.0, 0.0])
    out = mixer(x, Tx)
    assert mixer.n_restarts == 1 and out is Tx


def test_torch_vectors_match_numpy():
    T, _ = _linear_map(6, 0.99)
    xn = _iterate(Anderson(NumpyBackend(), depth=3), T, np.zeros(6), 8)
    Tt = (lambda x: torch.from_numpy(T(x.numpy())))
    xt = _iterate(Anderson(TorchBackend(), depth=3), Tt, torch.zeros(6, dtype=torch.float64), 8)
    assert isinstance(xt, torch.Tensor) and xt.dtype == torch.float64
    np.testing.assert_allclose(xt.numpy(), xn, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 8])
def test_reset_forgets_the_history(depth):
    T, _ = _linear_map(5, 0.9)
    mixer = Anderson(NumpyBackend(), depth=depth)
    x0 = np.ones(5)
    first = _iterate(mixer, T, x0, 4)
    mixer.reset()
    again = _iterate(mixer, T, x0, 4)
    np.testing.assert_array_equal(first, again)
