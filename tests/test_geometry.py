"""The scaling-domain geometry against exact log-sum-exps, including potentials far from
any plan (absorption, normalisation and the exact repair of untrusted sums)."""
import numpy as np
import pytest
import torch
from ot.backend import NumpyBackend, TorchBackend

from pot_semiunbalanced.geometry import DenseCost, KernelGeometry, LogGeometry
from .conftest import to_numpy


def geometries(C, a, b, eps):
    vx = NumpyBackend()
    nx = TorchBackend() if isinstance(C, torch.Tensor) else vx
    kg = KernelGeometry(DenseCost(C, nx), a, b, vx)
    lg = LogGeometry(DenseCost(C, nx), a, b, vx)
    kg.set_eps(eps)
    lg.set_eps(eps)
    return kg, lg


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("spread", [0.0, 1.0, 30.0])
def test_kernel_reductions_equal_exact_ones(rng, as_torch, spread):
    n, m, eps = 40, 50, 1e-3
    C = rng.random((n, m)) * 5.0
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, m)
    Cb = torch.tensor(C) if as_torch else C
    kg, lg = geometries(Cb, a, b, eps)
    f = g = None
    for step in range(6):  # successive, increasingly wild potentials
        g = rng.normal(size=m) * spread * eps * 10 * step + (0.0 if g is None else g)
        r_k, r_l = kg.lse_rows(g, f), lg.lse_rows(g, f)
        np.testing.assert_allclose(r_k, r_l, rtol=1e-12, atol=1e-9)
        f = -eps * r_l + rng.normal(size=n) * spread * eps * step
        s_k, s_l = kg.lse_cols(f, g), lg.lse_cols(f, g)
        np.testing.assert_allclose(s_k, s_l, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("tau_a", [1.0, 0.9])
@pytest.mark.parametrize("spread", [0.0, 30.0])
def test_alternating_step_equals_two_reductions(rng, as_torch, tau_a, spread):
    """The fused alternating step (scalings a / K(bv) on a hard side, r and f formed only on
    demand) gives the exact s(f') and (r(g), f') of the two separate reductions."""
    n, m, eps = 40, 50, 1e-3
    C = rng.random((n, m)) * 5.0
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, m)
    kg, lg = geometries(torch.tensor(C) if as_torch else C, a, b, eps)
    f = g = None
    for step in range(6):
        g = rng.normal(size=m) * spread * eps * 10 * step + (0.0 if g is None else g)
        s_k, rf = kg.alternating(lambda: f, g, tau_a)
        r_l = lg.lse_rows(g)
        f_new = -tau_a * eps * r_l
        r_k, f_k = rf()
        np.testing.assert_allclose(r_k, r_l, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(f_k, f_new, rtol=1e-12, atol=1e-9 * eps)
        np.testing.assert_allclose(s_k, lg.lse_cols(f_new, g), rtol=1e-12, atol=1e-9)
        f = f_k


def test_untrusted_sums_are_recomputed_exactly(rng):
    """Weights concentrated on a column whose kernel entries are floored for most rows:
    those row sums are dominated by floored entries, flagged, and recomputed exactly."""
    n, m, eps = 20, 30, 5e-4
    C = rng.random((n, m))
    kg, lg = geometries(C, np.full(n, 1 / n), np.full(m, 1 / m), eps)
    g0 = np.zeros(m)
    kg.lse_rows(g0)  # builds the kernel around g0 (entries below exp(-600) are floored)
    builds = kg.n_builds
    g = g0 - 680 * eps  # every column but the first weighs exp(-680) relative to it
    g[0] = 0.0
    np.testing.assert_allclose(kg.lse_rows(g), lg.lse_rows(g), rtol=1e-12)
    assert kg.n_builds == builds and kg._stale  # repaired, re-centred at the next call
    f = -eps * lg.lse_rows(g)
    np.testing.assert_allclose(kg.lse_cols(f, g), lg.lse_cols(f, g), rtol=1e-12)
    assert kg.n_builds > builds


def test_exact_reductions_in_blocks_match_dense(rng, monkeypatch):
    import pot_semiunbalanced.geometry as G

    n, m, eps = 37, 23, 1e-2
    C = rng.random((n, m))
    a, b = rng.random(n), rng.random(m)
    _, lg = geometries(C, a, b, eps)
    f, g = rng.normal(size=n) * 0.01, rng.normal(size=m) * 0.01
    r_full, s_full = lg.lse_rows(g), lg.lse_cols(f)
    monkeypatch.setattr(G, "_EXACT_BLOCK", 50)  # force many small blocks
    np.testing.assert_allclose(lg.lse_rows(g), r_full, rtol=1e-13)
    np.testing.assert_allclose(lg.lse_cols(f), s_full, rtol=1e-13)
    mask = rng.random(m) < 0.3
    np.testing.assert_allclose(lg._exact_cols(f, mask), s_full[mask], rtol=1e-13)




@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("cold", [True, False])
def test_kernel_built_by_row_blocks_equals_one_pass(rng, monkeypatch, as_torch, cold):
    import pot_semiunbalanced._array as A

    n, m, eps = 37, 23, 1e-2
    C = rng.random((n, m))
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    # potentials that push some columns and rows outside [-L, L] (both shifts are used)
    f = None if cold else rng.normal(size=n) * 0.5
    g = rng.normal(size=m) * 0.5
    built = []
    for entries in (10**9, 3 * m + 1):  # one block; blocks of 3 rows and a remainder of 1
        monkeypatch.setattr(A, "block_entries", lambda like, e=entries: e)
        kg, _ = geometries(torch.tensor(C) if as_torch else C, a, b, eps)
        kg.build(f, g)
        built.append((to_numpy(kg.K), kg.fhat, kg.ghat))
    (K1, f1, g1), (K2, f2, g2) = built
    np.testing.assert_array_equal(K1, K2)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(g1, g2)
    # and the kernel is what it claims to be: exp((f̂ + ĝ - C)/ε), floored
    expected = np.exp(np.maximum((f1[:, None] + g1[None, :] - C) / eps, kg.floor))
    np.testing.assert_allclose(K2, expected, rtol=1e-12)
    assert not cold or np.allclose(np.max(np.log(K2), 1), 0.0)
    if not cold:
        assert np.ptp(g1 - g) > 0 and np.ptp(f1 - f) > 0  # both shifts were applied


@pytest.mark.parametrize("as_torch", [False, True])
def test_kernel_of_a_transposed_cost(rng, monkeypatch, as_torch):
    import pot_semiunbalanced._array as A

    monkeypatch.setattr(A, "block_entries", lambda like: 40)  # blocks would be used otherwise
    n, m, eps = 23, 37, 1e-2
    C = rng.random((m, n))
    Cb = torch.tensor(C) if as_torch else C
    nx = TorchBackend() if as_torch else NumpyBackend()
    kg = KernelGeometry(DenseCost(Cb, nx).transpose(), np.full(n, 1 / n), np.full(m, 1 / m), NumpyBackend())
    kg.set_eps(eps)
    f, g = rng.normal(size=n) * 0.5, rng.normal(size=m) * 0.5
    for _ in range(2):  # the second build reuses the first one's buffer
        kg.build(f, g)
        expected = np.exp(np.maximum((kg.fhat[:, None] + kg.ghat[None, :] - C.T) / eps, kg.floor))
        np.testing.assert_allclose(to_numpy(kg.K), expected, rtol=1e-12)
