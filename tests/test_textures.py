"""Tests for pot_semiunbalanced.textures (Gaussian textures and patch models, paper Fig. 1)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from pot_semiunbalanced.textures import (
    GaussianMixturePatchModel,
    adsn,
    adsn_patch_distribution,
    corrupted_patch_model,
    edge_patch_distribution,
    gaussian_texture_kernel,
    patch_mosaic,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None

# Every statistical check below compares an estimate with its exact value in units of
# the estimator's standard deviation and accepts |z| < Z_TOL.  With ≤ ~2000 checked
# entries per test, P(max |z| > 5) ≤ 2000 · 5.7e-7 ≈ 1e-3 under the null; the seeds are
# fixed, so the tests are deterministic anyway.
Z_TOL = 5.0


def _grid_patches(images: np.ndarray, p: int, stride: int) -> np.ndarray:
    """Patches (row-major, unfold order) at positions 0, stride, 2*stride, ...: (n, p*p)."""
    win = sliding_window_view(images, (p, p), axis=(-2, -1))[..., ::stride, ::stride, :, :]
    return win.reshape(-1, p * p)


def _cov_zscores(X: np.ndarray, mu: np.ndarray, Sigma: np.ndarray) -> np.ndarray:
    """z-scores of the empirical covariance of i.i.d. Gaussian rows X against Sigma.

    For n i.i.d. N(mu, Sigma) samples, the entry (i, j) of the empirical covariance
    (known mean) has variance (Sigma_ii Sigma_jj + Sigma_ij^2) / n.
    """
    n = X.shape[0]
    Xc = X - mu
    S_hat = Xc.T @ Xc / n
    d = np.diag(Sigma)
    sd = np.sqrt((d[:, None] * d[None, :] + Sigma**2) / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a zero variance gives nan / inf; callers keep only the finite z-scores
        return (S_hat - Sigma) / sd


# ---------------------------------------------------------------------------
# kernel
# ---------------------------------------------------------------------------
def test_kernel_default_is_isotropic_normalized_gaussian():
    t = gaussian_texture_kernel()
    assert t.shape == (17, 17) and t.dtype == np.float64
    assert np.isclose(np.sum(t**2), 0.12**2)
    assert np.all(t >= 0)
    assert np.unravel_index(np.argmax(t), t.shape) == (8, 8)
    # isotropy: invariant under transposition and flips
    np.testing.assert_allclose(t, t.T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(t, t[::-1, ::-1], rtol=0, atol=1e-15)
    # Gaussian profile of std 2: t(1, 0) / t(0, 0) = exp(-1/8)
    assert np.isclose(t[9, 8] / t[8, 8], np.exp(-1 / 8))


def test_kernel_options():
    t = gaussian_texture_kernel((9, 13), scale=(1.0, 3.0), std=0.2)
    assert t.shape == (9, 13)
    assert np.isclose(np.sum(t**2), 0.04)
    assert np.isclose(t[5, 6] / t[4, 6], np.exp(-0.5))  # rows: std 1
    assert np.isclose(t[4, 7] / t[4, 6], np.exp(-0.5 / 9))  # columns: std 3
    d = gaussian_texture_kernel(kind="disk", scale=3.0, std=1.0)
    assert d.shape == (7, 7)
    assert np.all(d[d > 0] == d.max())  # flat disk
    assert d[3, 0] > 0 and d[0, 0] == 0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"std": -0.1}, "std"),
        ({"std": 0.0}, "std"),
        ({"scale": 0.0}, "scale"),
        ({"scale": -1.0}, "scale"),
        ({"kind": "box"}, "kind"),
        ({"kind": "disk", "scale": (1.0, 2.0)}, "scale"),
    ],
)
def test_kernel_bad_inputs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gaussian_texture_kernel(**kwargs)


def test_kernel_bad_shape():
    with pytest.raises(ValueError, match="size_or_shape"):
        gaussian_texture_kernel(0)
    with pytest.raises(ValueError, match="size_or_shape"):
        gaussian_texture_kernel((3, 4, 5))


# ---------------------------------------------------------------------------
# texture
# ---------------------------------------------------------------------------
def test_adsn_shapes_dtypes_and_reproducibility():
    t = gaussian_texture_kernel()
    x = adsn(t, 100, rng=0)
    assert x.shape == (100, 100) and x.dtype == np.float64
    np.testing.assert_array_equal(x, adsn(t, (100, 100), rng=0))
    assert not np.array_equal(x, adsn(t, 100, rng=1))
    np.testing.assert_array_equal(x, adsn(t, 100, rng=np.random.default_rng(0)))
    batch = adsn(t, (40, 50), rng=2, n_samples=3, dtype=np.float32)
    assert batch.shape == (3, 40, 50) and batch.dtype == np.float32
    xn = adsn(t, (40, 50), rng=2, periodic=False)
    assert xn.shape == (40, 50)
    # gray values mostly in [0, 1] around 0.5
    assert abs(x.mean() - 0.5) < 0.05
    assert 0.08 < x.std() < 0.16
    assert np.mean((x < 0) | (x > 1)) < 1e-3


def test_adsn_matches_direct_periodic_convolution():
    rng = np.random.default_rng(5)
    t = rng.standard_normal((3, 4))
    H, W = 9, 11
    x = adsn(t, (H, W), mean=0.0, rng=7)
    noise = np.random.default_rng(7).standard_normal((H, W))
    # X(u) = sum_z t(u - z) W(z), t centred at (kh // 2, kw // 2)
    ref = np.zeros((H, W))
    for a in range(t.shape[0]):
        for b in range(t.shape[1]):
            ref += t[a, b] * np.roll(noise, (a - t.shape[0] // 2, b - t.shape[1] // 2), axis=(0, 1))
    np.testing.assert_allclose(x, ref, atol=1e-12)


def test_adsn_spatial_mean_exact_variance():
    # periodic convolution: spatial average = mean + (sum t) * average(W), so its
    # variance over textures is (sum t)^2 / (H W) exactly.
    t = gaussian_texture_kernel()
    H = W = 64
    X = adsn(t, (H, W), rng=11, n_samples=400)
    means = X.mean(axis=(1, 2))
    sd = abs(t.sum()) / np.sqrt(H * W)
    assert abs(means.mean() - 0.5) < Z_TOL * sd / np.sqrt(len(means))
    assert abs(means.std() / sd - 1) < Z_TOL * np.sqrt(0.5 / len(means))


def test_adsn_stationarity():
    # mean, variance and lag-(1, 2) covariance are the same at every position,
    # including across the periodic border (corners).
    t = gaussian_texture_kernel()
    mu, Sigma = adsn_patch_distribution(t, 32, 3)
    X = adsn(t, 32, rng=12, n_samples=3000)
    n = X.shape[0]
    std2 = np.sum(t**2)
    pix_mean = X.mean(axis=0)
    assert np.max(np.abs(pix_mean - 0.5)) < Z_TOL * np.sqrt(std2 / n) * 1.2
    lag_cov = Sigma[0, 1 * 3 + 2]  # Cov(X(u), X(u + (1, 2)))
    Xc = X - 0.5
    for r, c in [(0, 0), (31, 31), (31, 5), (16, 16), (7, 30)]:
        v = np.mean(Xc[:, r, c] ** 2)
        assert abs(v - std2) < Z_TOL * np.sqrt(2 * std2**2 / n)
        cv = np.mean(Xc[:, r, c] * Xc[:, (r + 1) % 32, (c + 2) % 32])
        assert abs(cv - lag_cov) < Z_TOL * np.sqrt((std2**2 + lag_cov**2) / n)


def test_adsn_bad_inputs():
    t = gaussian_texture_kernel()
    with pytest.raises(ValueError, match="kernel"):
        adsn(t, 10)  # 17x17 kernel does not fit a periodic 10x10 grid
    with pytest.raises(ValueError, match="kernel"):
        adsn(np.ones(5), 10)
    with pytest.raises(ValueError, match="shape"):
        adsn(t, (0, 20))
    with pytest.raises(ValueError, match="n_samples"):
        adsn(t, 32, n_samples=-1)
    assert adsn(t, 10, periodic=False, rng=0).shape == (10, 10)


# ---------------------------------------------------------------------------
# exact patch law N1
# ---------------------------------------------------------------------------
@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_patch_order_is_unfold_order():
    import torch

    img = np.arange(7 * 9, dtype=np.float64).reshape(7, 9)
    p = 4
    ours = _grid_patches(img, p, 1)
    unf = torch.nn.functional.unfold(torch.from_numpy(img)[None, None], p)[0].T.numpy()
    np.testing.assert_array_equal(ours, unf)


@pytest.mark.parametrize("periodic", [True, False])
def test_patch_distribution_matches_empirical_asymmetric_kernel(periodic):
    # An asymmetric random spot catches any row/column or sign mix-up in Sigma.
    # Patches of side 4 on a stride-16 grid are at least 13 px apart (also across the
    # periodic border), more than the spot's reach (4 rows, 6 columns): the 16 patches
    # of each 64x64 texture are independent -> n = 200 * 16 = 3200 i.i.d. samples.
    rng = np.random.default_rng(3)
    t = rng.standard_normal((5, 7)) * 0.05
    p, H = 4, 64
    mu, Sigma = adsn_patch_distribution(t, H, p, mean=0.3, periodic=periodic)
    assert mu.shape == (16,) and Sigma.shape == (16, 16)
    np.testing.assert_array_equal(mu, 0.3)
    X = adsn(t, H, mean=0.3, rng=4, n_samples=200, periodic=periodic)
    P = _grid_patches(X, p, 16)
    n = P.shape[0]
    assert n == 3200
    z_mean = (P.mean(axis=0) - mu) / np.sqrt(np.diag(Sigma) / n)
    assert np.max(np.abs(z_mean)) < Z_TOL
    z = _cov_zscores(P, mu, Sigma)
    assert np.max(np.abs(z)) < Z_TOL
    # power check: the transposed patch ordering would be rejected by the same test
    perm = np.arange(16).reshape(4, 4).T.ravel()
    z_wrong = _cov_zscores(P, mu, Sigma[np.ix_(perm, perm)])
    assert np.max(np.abs(z_wrong)) > 3 * Z_TOL


def test_patch_distribution_matches_empirical_default_texture():
    # Default spot (17x17), patch 8, as in Fig. 1.  Patches on a stride-32 grid are
    # 25 px apart, beyond the autocorrelation reach of 16 px: 4 independent patches per
    # 64x64 texture, 1000 textures -> 4000 i.i.d. samples in dimension 64.
    t = gaussian_texture_kernel()
    p = 8
    mu, Sigma = adsn_patch_distribution(t, 64, p)
    X = adsn(t, 64, rng=21, n_samples=1000)
    P = _grid_patches(X, p, 32)
    assert P.shape == (4000, 64)
    z_mean = (P.mean(axis=0) - mu) / np.sqrt(np.diag(Sigma) / P.shape[0])
    assert np.max(np.abs(z_mean)) < Z_TOL
    assert np.max(np.abs(_cov_zscores(P, mu, Sigma))) < Z_TOL


def test_patch_distribution_properties():
    t = gaussian_texture_kernel()
    mu, Sigma = adsn_patch_distribution(t, 100, 8)
    assert mu.shape == (64,) and Sigma.shape == (64, 64)
    np.testing.assert_array_equal(Sigma, Sigma.T)
    lam = np.linalg.eigvalsh(Sigma)
    assert lam[0] > -1e-12 * lam[-1]
    np.testing.assert_allclose(np.diag(Sigma), 0.12**2, rtol=1e-12)
    # isotropic Gaussian spot: Cov at lag (0, 1) equals Cov at lag (1, 0)
    assert np.isclose(Sigma[0, 1], Sigma[0, 8])
    # on a grid larger than the autocorrelation support, periodic == non-periodic
    _, S_np = adsn_patch_distribution(t, 100, 8, periodic=False)
    np.testing.assert_allclose(Sigma, S_np, atol=1e-15)


def _conv_matrix(t: np.ndarray, shape, periodic: bool) -> np.ndarray:
    """Matrix T with vec(X - mean) = T vec(W) for the texture of ``adsn`` (brute force)."""
    H, W = shape
    kh, kw = t.shape
    if periodic:
        T = np.zeros((H * W, H * W))
        for r in range(H):
            for c in range(W):
                for a in range(kh):
                    for b in range(kw):
                        # X(r, c) += t[a, b] W(r - a + kh // 2, c - b + kw // 2) (mod)
                        zr, zc = (r - a + kh // 2) % H, (c - b + kw // 2) % W
                        T[r * W + c, zr * W + zc] += t[a, b]
        return T
    Hn, Wn = H + kh - 1, W + kw - 1
    T = np.zeros((H * W, Hn * Wn))
    for r in range(H):
        for c in range(W):
            for a in range(kh):
                for b in range(kw):
                    # 'valid' convolution: X(r, c) = sum t[a, b] W(r + kh - 1 - a, c + kw - 1 - b)
                    T[r * W + c, (r + kh - 1 - a) * Wn + (c + kw - 1 - b)] += t[a, b]
    return T


@pytest.mark.parametrize("periodic", [True, False])
def test_patch_distribution_equals_brute_force_covariance(periodic):
    # Small torus (6x7) with a 5x4 asymmetric spot and 5x5 patches: the periodic
    # autocorrelation wraps around.  Cov(vec X) = T T^T exactly; every patch position
    # (wrapping ones included when periodic) must have the law given by the function.
    rng = np.random.default_rng(9)
    t = rng.standard_normal((5, 4))
    H, W, p = 6, 7, 5
    _, Sigma = adsn_patch_distribution(t, (H, W), p, periodic=periodic)
    T = _conv_matrix(t, (H, W), periodic)
    C = T @ T.T
    # the matrix T matches adsn itself (same noise draw)
    noise_shape = (H, W) if periodic else (H + 4, W + 3)
    noise = np.random.default_rng(1).standard_normal(noise_shape)
    x = adsn(t, (H, W), mean=0.0, rng=1, periodic=periodic)
    np.testing.assert_allclose(x.ravel(), T @ noise.ravel(), atol=1e-12)
    last_r, last_c = (H, W) if periodic else (H - p + 1, W - p + 1)
    for r0 in range(last_r):
        for c0 in range(last_c):
            idx = np.array([((r0 + r) % H) * W + (c0 + c) % W for r in range(p) for c in range(p)])
            np.testing.assert_allclose(Sigma, C[np.ix_(idx, idx)], atol=1e-12)
    if periodic:
        _, S_lin = adsn_patch_distribution(t, (H, W), p, periodic=False)
        assert np.max(np.abs(Sigma - S_lin)) > 0.1  # wrap-around matters here


def test_patch_distribution_bad_inputs():
    t = gaussian_texture_kernel()
    with pytest.raises(ValueError, match="patch_size"):
        adsn_patch_distribution(t, 64, 65)
    with pytest.raises(ValueError, match="patch_size"):
        adsn_patch_distribution(t, (64, 6), 8, periodic=False)
    with pytest.raises(ValueError, match="patch_size"):
        adsn_patch_distribution(t, 64, 0)
    with pytest.raises(ValueError, match="kernel"):
        adsn_patch_distribution(t, 16, 8)


# ---------------------------------------------------------------------------
# edge law N2
# ---------------------------------------------------------------------------
def test_edge_distribution_mean_and_cov():
    mu, Sigma = edge_patch_distribution(8, contrast=0.6)
    M = mu.reshape(8, 8)
    np.testing.assert_allclose(M[:4], 0.2)
    np.testing.assert_allclose(M[4:], 0.8)
    np.testing.assert_allclose(Sigma, 0.05**2 * np.eye(64))
    mu, _ = edge_patch_distribution(6, contrast=0.4, mean=0.3, edge_row=1)
    M = mu.reshape(6, 6)
    np.testing.assert_allclose(M[0], 0.1)
    np.testing.assert_allclose(M[1:], 0.5)
    _, S1 = adsn_patch_distribution(gaussian_texture_kernel(), 100, 8)
    _, S2 = edge_patch_distribution(8, cov=S1)
    np.testing.assert_array_equal(S2, S1)


def test_edge_samples_show_a_horizontal_edge_n1_samples_do_not():
    t = gaussian_texture_kernel()
    p, contrast = 8, 0.6
    model = corrupted_patch_model(t, 100, p, w=0.5, contrast=contrast)
    X, labels = model.sample(4000, rng=8, return_labels=True)
    img = X.reshape(-1, p, p)
    vgrad = img[:, 1:, :] - img[:, :-1, :]  # vertical gradient between rows r and r + 1
    jump = vgrad[:, p // 2 - 1, :].mean(axis=1)  # across the edge row, averaged over columns
    edge, tex = labels == 1, labels == 0
    # edge patches: jump ≈ contrast, and the edge row dominates every other row
    assert abs(jump[edge].mean() - contrast) < 0.02
    assert np.all(np.abs(vgrad[edge].mean(axis=(0, 2))[np.arange(p - 1) != p // 2 - 1]) < 0.02)
    assert np.mean(jump[edge] > contrast / 2) > 0.99
    # texture patches: no preferred jump anywhere
    assert np.all(np.abs(vgrad[tex].mean(axis=(0, 2))) < 0.01)
    assert np.mean(np.abs(jump[tex]) > contrast / 2) < 0.01
    # different statistics: per-pixel means differ by contrast / 2 on every pixel
    assert np.all(np.abs(X[edge].mean(0) - X[tex].mean(0)) > contrast / 2 - 0.05)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"edge_row": 0}, "edge_row"),
        ({"edge_row": 8}, "edge_row"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"cov": np.eye(3)}, "cov"),
        ({"cov": -np.eye(64)}, "cov"),
        ({"contrast": float("nan")}, "contrast"),
    ],
)
def test_edge_bad_inputs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        edge_patch_distribution(8, **kwargs)


def test_edge_bad_patch_size():
    with pytest.raises(ValueError, match="patch_size"):
        edge_patch_distribution(1)


# ---------------------------------------------------------------------------
# mixture
# ---------------------------------------------------------------------------
def test_mixture_proportions_shapes_and_reproducibility():
    t = gaussian_texture_kernel()
    model = corrupted_patch_model(t, 100, 8, w=0.2)
    assert model.n_components == 2 and model.dim == 64
    np.testing.assert_allclose(model.weights, [0.8, 0.2])
    n = 24000
    X, labels = model.sample(n, rng=0, return_labels=True)
    assert X.shape == (n, 64) and X.dtype == np.float64
    assert labels.shape == (n,) and set(np.unique(labels)) == {0, 1}
    # Binomial(n, 0.2) count, sd = sqrt(n w (1 - w))
    assert abs(np.sum(labels == 1) - 0.2 * n) < Z_TOL * np.sqrt(n * 0.2 * 0.8)
    X2, labels2 = model.sample(n, rng=0, return_labels=True)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(X, model.sample(n, rng=1))
    X32 = model.sample(10, rng=0, dtype=np.float32)
    assert X32.shape == (10, 64) and X32.dtype == np.float32
    assert model.sample(0, rng=0).shape == (0, 64)


def test_mixture_three_components_and_component_laws():
    d = 3
    mus = np.array([[0.0, 0, 0], [5.0, 5, 5], [-5.0, 0, 5]])
    A = np.array([[1.0, 0, 0], [0.5, 1, 0], [0, 0.3, 0.2]])
    Sigmas = np.stack([np.eye(d), A @ A.T, np.diag([0.1, 0.0, 2.0])])  # one singular
    w = np.array([0.5, 0.3, 0.2])
    model = GaussianMixturePatchModel(mus, Sigmas, w)
    n = 30000
    X, lab = model.sample(n, rng=4, return_labels=True)
    for k in range(3):
        cnt = np.sum(lab == k)
        assert abs(cnt - w[k] * n) < Z_TOL * np.sqrt(n * w[k] * (1 - w[k]))
        Xk = X[lab == k]
        se = np.sqrt(np.diag(Sigmas[k]) / len(Xk))
        assert np.all(np.abs(Xk.mean(0) - mus[k]) <= Z_TOL * se + 1e-12)
        z = _cov_zscores(Xk, mus[k], Sigmas[k])
        assert np.max(np.abs(z[np.isfinite(z)])) < Z_TOL
    # the singular direction of component 2 is exactly constant
    np.testing.assert_allclose(X[lab == 2][:, 1], 0.0, atol=1e-12)


def test_mixture_w0_is_pure_n1_and_w1_pure_n2():
    t = gaussian_texture_kernel()
    _, labels = corrupted_patch_model(t, 100, 8, w=0.0).sample(2000, rng=0, return_labels=True)
    assert np.all(labels == 0)
    _, labels = corrupted_patch_model(t, 100, 8, w=1.0).sample(2000, rng=0, return_labels=True)
    assert np.all(labels == 1)


@pytest.mark.parametrize("w", [-0.1, 1.5, float("nan")])
def test_corrupted_model_bad_w(w):
    with pytest.raises(ValueError, match="^w must"):
        corrupted_patch_model(gaussian_texture_kernel(), 100, 8, w=w)


def test_corrupted_model_bad_patch_size():
    with pytest.raises(ValueError, match="patch_size"):
        corrupted_patch_model(gaussian_texture_kernel(std=0.1), 32, 40)


def test_mixture_bad_inputs():
    mus = np.zeros((2, 3))
    S = np.stack([np.eye(3)] * 2)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixturePatchModel(mus, S, [0.5, 0.6])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixturePatchModel(mus, S, [1.2, -0.2])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixturePatchModel(mus, S, [1.0])
    with pytest.raises(ValueError, match="Sigmas"):
        GaussianMixturePatchModel(mus, S[:, :2, :2], [0.5, 0.5])
    bad = S.copy()
    bad[1] = np.diag([1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="Sigmas"):
        GaussianMixturePatchModel(mus, bad, [0.5, 0.5])
    bad[1] = np.eye(3)
    bad[1, 0, 1] = 0.5
    with pytest.raises(ValueError, match="Sigmas"):
        GaussianMixturePatchModel(mus, bad, [0.5, 0.5])
    with pytest.raises(ValueError, match="mus"):
        GaussianMixturePatchModel(np.zeros(3), S, [0.5, 0.5])
    model = GaussianMixturePatchModel(mus, S, [0.5, 0.5])
    with pytest.raises(ValueError, match="^n must"):
        model.sample(-1)
    with pytest.raises(ValueError, match="dtype"):
        model.sample(3, dtype=np.int64)


# ---------------------------------------------------------------------------
# mosaic
# ---------------------------------------------------------------------------
def test_patch_mosaic_layout():
    p = 3
    patches = np.arange(5 * p * p, dtype=np.float64).reshape(5, p * p)
    m = patch_mosaic(patches, p, n_rows=2, n_cols=3, pad=1, fill=-1.0)
    assert m.shape == (2 * 3 + 3, 3 * 3 + 4)
    np.testing.assert_array_equal(m[1:4, 1:4], patches[0].reshape(p, p))
    np.testing.assert_array_equal(m[1:4, 5:8], patches[1].reshape(p, p))
    np.testing.assert_array_equal(m[5:8, 1:4], patches[3].reshape(p, p))
    np.testing.assert_array_equal(m[5:8, 9:12], -1.0)  # empty sixth cell
    assert np.all(m[0] == -1) and np.all(m[:, 4] == -1)
    m0 = patch_mosaic(patches.reshape(5, p, p), p, n_rows=1, n_cols=2, pad=0)
    np.testing.assert_array_equal(m0, np.hstack([patches[0].reshape(p, p), patches[1].reshape(p, p)]))
    assert patch_mosaic(patches, p, n_rows=1, n_cols=1)[0, 0] == patches[0].max()


def test_patch_mosaic_bad_inputs():
    with pytest.raises(ValueError, match="patches"):
        patch_mosaic(np.zeros((4, 10)), 3, n_rows=2, n_cols=2)
    with pytest.raises(ValueError, match="n_rows"):
        patch_mosaic(np.zeros((4, 9)), 3, n_rows=0, n_cols=2)
    with pytest.raises(ValueError, match="pad"):
        patch_mosaic(np.zeros((4, 9)), 3, n_rows=2, n_cols=2, pad=-1)
