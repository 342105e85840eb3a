"""The blocked geometry against exact log-domain reductions (float64)."""
import numpy as np
import ot
import pytest
import torch
from ot.backend import NumpyBackend

from pot_semiunbalanced._array import block_entries
from pot_semiunbalanced.cloud_geometry import BlockedGeometry, SqEuclideanCost
from pot_semiunbalanced.geometry import DenseCost, LogGeometry

EPS = 1e-2


def geometries(X, Y, a, b, block_size, as_torch=True):
    to = torch.tensor if as_torch else np.asarray
    vx = NumpyBackend()
    exact = LogGeometry(DenseCost(ot.dist(X, Y), vx), a, b, vx)
    blocked = BlockedGeometry(SqEuclideanCost(to(X), to(Y)), a, b, vx, block_size=block_size)
    exact.set_eps(EPS)
    blocked.set_eps(EPS)
    return exact, blocked


def clouds(rng, n=40, m=30, d=3):
    return rng.normal(size=(n, d)) * 0.3, rng.normal(size=(m, d)) * 0.3 + 0.2


@pytest.mark.parametrize("block_size", [1, 7, 40, None])
@pytest.mark.parametrize("as_torch", [True, False])
def test_reductions_are_exact_for_any_block_size(rng, block_size, as_torch):
    X, Y = clouds(rng)
    a, b = rng.uniform(0.5, 1.5, 40), rng.uniform(0.5, 1.5, 30)
    exact, blocked = geometries(X, Y, a / a.sum(), b / b.sum(), block_size, as_torch)
    # potentials of very different sizes per row, so the running column scale moves both ways
    f = rng.normal(size=40) * 0.3
    g = rng.normal(size=30) * 0.05
    np.testing.assert_allclose(blocked.lse_rows(g), exact.lse_rows(g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blocked.lse_cols(f), exact.lse_cols(f), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blocked.lse_cols(f, g), exact.lse_cols(f), rtol=1e-12, atol=1e-12)
    r, s = blocked.fused_rows_cols(g, -0.9 * EPS)
    np.testing.assert_allclose(r, exact.lse_rows(g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s, exact.lse_cols(-0.9 * EPS * r), rtol=1e-12, atol=1e-12)


def test_far_columns_are_recomputed_exactly(rng):
    # two target points far from every source point: their entries are floored (e^-80
    # below each row's maximum), so their column sums are not trusted and are recomputed
    X, Y = clouds(rng)
    Y[:2] += 5.0
    a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
    exact, blocked = geometries(X, Y, a, b, 9)
    g = np.zeros(30)
    r, s = blocked.fused_rows_cols(g, -EPS)
    s_exact = exact.lse_cols(-EPS * exact.lse_rows(g))
    assert np.all(np.isfinite(s)) and s[:2].max() < s[2:].min() - 1000  # really far
    np.testing.assert_allclose(s, s_exact, rtol=1e-12)


def test_untrusted_row_sums_fall_back_to_exact_passes(rng):
    # row 0's nearest target has zero weight and every other target is far from it: its row
    # sum is made of floored entries only; the fused pass must fall back and stay exact
    X, Y = clouds(rng)
    X[0] = Y[0] = [4.0, 4.0, 4.0]
    a, b = np.full(40, 1 / 40), np.full(30, 1 / 29)
    b[0] = 0.0
    exact, blocked = geometries(X, Y, a, b, 9)
    g = np.zeros(30)
    r, s = blocked.fused_rows_cols(g, -0.8 * EPS)
    np.testing.assert_allclose(r, exact.lse_rows(g), rtol=1e-12)
    np.testing.assert_allclose(s, exact.lse_cols(-0.8 * EPS * r), rtol=1e-12)
    assert np.isfinite(s[0])  # a zero-weight column still gets its (finite) reduction


def test_products_are_the_plan_times_the_clouds(rng):
    X, Y = clouds(rng)
    a, b = rng.uniform(0.5, 1.5, 40) / 40, rng.uniform(0.5, 1.5, 30) / 30
    _, blocked = geometries(X, Y, a, b, 7)
    f, g = rng.normal(size=40) * 0.02, rng.normal(size=30) * 0.02
    P = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - ot.dist(X, Y)) / EPS)
    PY, PtX = blocked.products(f, g, torch.tensor(Y), torch.tensor(X))
    np.testing.assert_allclose(PY.numpy(), P @ Y, rtol=1e-11)
    np.testing.assert_allclose(PtX.numpy(), P.T @ X, rtol=1e-11)


def test_blocks_fit_a_cpu_cache_and_are_large_on_accelerators():
    assert block_entries(torch.zeros(1)) == 2**20
    assert block_entries(np.zeros(1)) == 2**20
    cost = SqEuclideanCost(torch.zeros(5000, 2), torch.zeros(1000, 2))
    geom = BlockedGeometry(cost, np.ones(5000), np.ones(1000), NumpyBackend())
    assert geom.block_size == 2**20 // 1000


def test_products_with_zero_weight_blocks(rng):
    X, Y = clouds(rng)
    a, b = np.full(40, 1 / 30), np.full(30, 1 / 30)
    a[:10] = 0.0  # the first blocks carry no mass
    _, blocked = geometries(X, Y, a, b, 5)
    f, g = rng.normal(size=40) * 0.02, rng.normal(size=30) * 0.02
    P = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - ot.dist(X, Y)) / EPS)
    PY, PtX = blocked.products(f, g, torch.tensor(Y), torch.tensor(X))
    np.testing.assert_allclose(PY.numpy(), P @ Y, rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(PtX.numpy(), P.T @ X, rtol=1e-11)
