"""Tests of the denoising experiment (paper Fig. 1): objective, SGD loop, diagnostics, CLI."""
import math

import numpy as np
import pytest
import torch

from pot_semiunbalanced import cli
from pot_semiunbalanced.experiments.denoising import (
    METHODS,
    c_transform,
    default_step_size,
    denoise,
    denoising_objective,
    edge_anisotropy,
    fig1_experiment,
    local_rmse,
    method_reg_m,
    paper_lambda,
    restoration_diagnostics,
)
from pot_semiunbalanced.imaging.io import read_image
from pot_semiunbalanced.textures import adsn, corrupted_patch_model, gaussian_texture_kernel

P = 4  # patch side of the tiny problems
TIGHT = {"stopThr": 1e-12, "numItermax": 20000, "eps_scaling": None, "warn": True}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    """A 12×12 texture, its noisy version and a corrupted 4×4 patch model."""
    spot = gaussian_texture_kernel(scale=1.0)
    x_true = adsn(spot, 12, rng=0)
    y = x_true + 0.05 * np.random.default_rng(1).standard_normal(x_true.shape)
    model = corrupted_patch_model(spot, 12, P, w=0.2)
    return x_true, y, model


# ------------------------------------------------------------------ objective
@pytest.mark.parametrize("method", METHODS)
def test_objective_gradient_matches_finite_differences(tiny, method):
    _, y, model = tiny
    Y = torch.from_numpy(model.sample(40, rng=2))
    yt = torch.from_numpy(y)
    kw = dict(method=method, lam=0.3, eps=0.05, rho=0.5, patch_size=P, stride=2,
              solver_options=TIGHT)

    def J(img):
        data, ot, _ = denoising_objective(img, yt, Y, **kw)
        return data + ot

    x = (yt + 0.02 * torch.from_numpy(np.random.default_rng(3).standard_normal(y.shape))).clone()
    x.requires_grad_(True)
    J(x).backward()
    grad = x.grad.clone()
    h = 1e-5
    for r, c in [(0, 0), (3, 5), (6, 6), (11, 2), (9, 10)]:
        xp, xm = x.detach().clone(), x.detach().clone()
        xp[r, c] += h
        xm[r, c] -= h
        fd = (float(J(xp)) - float(J(xm))) / (2 * h)
        assert fd == pytest.approx(float(grad[r, c]), rel=1e-5, abs=1e-9)


def test_c_transform_matches_direct_formula():
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.random((7, 3)))
    Y = torch.from_numpy(rng.random((5, 3)))
    f = rng.standard_normal(7) * 0.01
    eps, tau = 0.02, 0.9
    C = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1).numpy()
    direct = -tau * eps * np.log(np.mean(np.exp((f[:, None] - C) / eps), axis=0))
    np.testing.assert_allclose(c_transform(f, X, Y, eps=eps, tau=tau, block_size=2), direct, rtol=1e-12)


def test_parameters_follow_the_paper():
    assert paper_lambda(100) == pytest.approx(0.0192, rel=1e-15)
    assert paper_lambda(50) == pytest.approx(0.0192 * 2209 / 484)
    # the fraction λ / (λ + 2c/N) of the noisy value kept at a stationary point is preserved
    for size, p, s in [(100, 8, 2), (50, 8, 2), (20, 4, 2), (30, 6, 1)]:
        n = ((size - p) // s + 1) ** 2
        lam = paper_lambda(size, patch_size=p, stride=s)
        assert lam / (lam + 2 * math.ceil(p / s) ** 2 / n) == pytest.approx(0.0192 / (0.0192 + 32 / 2209))
    # L = λ + 2 · 16 / 2209 on the paper's image
    assert default_step_size(0.0192, (100, 100), patch_size=8, stride=2) == pytest.approx(
        0.5 / (0.0192 + 32 / 2209)
    )
    assert method_reg_m("semi", 0.1) == 0.1
    assert method_reg_m("unbalanced", 0.1) == (0.1, 0.1)
    assert all(math.isinf(v) for v in method_reg_m("balanced", 0.1))


# ------------------------------------------------------------------ SGD loop
def _run(tiny, seed, steps=3, **kw):
    _, y, model = tiny
    seen = []
    x_hat, hist = denoise(
        y, model, patch_size=P, stride=2, n_model_patches=60, steps=steps, rng=seed, eps=0.01,
        progress=False, callback=lambda info: seen.append(info.model_patches.clone()), **kw
    )
    return x_hat, hist, seen


def test_fresh_model_sample_every_step_and_reproducible(tiny):
    x1, h1, s1 = _run(tiny, 7)
    x2, h2, s2 = _run(tiny, 7)
    _, _, s3 = _run(tiny, 8)
    assert len(s1) == 3
    for a, b in zip(s1, s2):  # same seed: the same samples, in the same order
        assert torch.equal(a, b)
    np.testing.assert_array_equal(x1, x2)
    assert h1["objective"] == h2["objective"]
    for k in range(2):  # a new sample at every step
        assert not torch.allclose(s1[k], s1[k + 1])
    assert not torch.allclose(s1[0], s3[0])  # another seed, other samples


def test_denoising_reduces_the_error_on_an_easy_case():
    # exact patch model (w = 0), strong noise, λ scaled to the size: the restoration must
    # be much closer to the ground truth than the observation
    res = fig1_experiment(
        noise_std=0.1, w=0.0, seed=3, size=20, methods=("semi",), patch_size=P, stride=2,
        n_model_patches=400, steps=8, texture_scale=1.0, eps=0.01, progress=False,
    )
    hist = res["history"]["semi"]
    # the paper's balance keeps 57 % of the noisy value: at most ~4.9 dB can be gained
    assert res["psnr"]["semi"] > res["psnr"]["noisy"] + 2.0
    assert hist["psnr_init"] == pytest.approx(res["psnr"]["noisy"])
    assert hist["psnr"][-1] == pytest.approx(res["psnr"]["semi"])
    assert hist["objective"][-1] < hist["objective"][0]
    d = res["diagnostics"]["semi"]
    assert d["ratio_mean"] < 0.9  # local noise removed on average


def test_outlier_mass_and_patch_mass(tiny):
    _, y, model = tiny
    labels_seen = []

    def keep(info):
        labels_seen.append(info.model_labels)

    kw = dict(patch_size=P, stride=2, n_model_patches=80, steps=1, rng=4, progress=False,
              eps=0.05, solver_options=TIGHT, callback=keep, dtype=torch.float64)
    _, hb = denoise(y, model, method="balanced", **kw)
    share = np.mean(labels_seen[-1] >= 1)
    # balanced: the second marginal is b, so the outlier share is the share of outlier samples
    assert hb["outlier_mass"][0] == pytest.approx(share, rel=1e-6)
    _, hs = denoise(y, model, method="semi", **kw)
    assert hs["outlier_mass"][0] < 0.5 * share  # the semi-unbalanced transport drops edges
    np.testing.assert_array_equal(hs["patch_mass"], 1.0)
    _, hu = denoise(y, model, method="unbalanced", **kw)
    assert hu["patch_mass"].shape == (5, 5)
    assert np.all((hu["patch_mass"] > 0) & (hu["patch_mass"] < 1.0))


def test_adam_and_zero_steps(tiny):
    _, y, model = tiny
    x0, h0 = denoise(y, model, patch_size=P, n_model_patches=30, steps=0, progress=False)
    np.testing.assert_allclose(x0, y, rtol=1e-7)  # y in float32, the default precision
    assert h0["objective"] == []
    x1, h1 = denoise(y, model, patch_size=P, n_model_patches=30, steps=2, optimizer="adam",
                     rng=0, progress=False)
    assert h1["lr"] == 0.01
    assert np.max(np.abs(x1 - y)) <= 2.5 * 0.01  # Adam moves a pixel by about lr per step


# ------------------------------------------------------------------ diagnostics
def test_edge_anisotropy_detects_horizontal_edges():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, 64))
    assert edge_anisotropy(noise) == pytest.approx(1.0, abs=0.05)
    steps = noise * 0.1 + np.repeat((np.arange(64) // 8) % 2, 64).reshape(64, 64)
    assert edge_anisotropy(steps) > 3.0
    assert edge_anisotropy(steps.T) < 1 / 3.0


def test_local_rmse_and_restoration_diagnostics():
    rng = np.random.default_rng(0)
    truth = rng.random((30, 30))
    noisy = truth + 0.1 * rng.standard_normal(truth.shape)
    np.testing.assert_array_equal(local_rmse(truth, truth), 0.0)
    half = noisy.copy()
    half[:, 15:] = truth[:, 15:] + 0.3 * (noisy - truth)[:, 15:]  # right half restored
    d = restoration_diagnostics(half, truth, noisy, window=5)
    assert d["ratio_map"].shape == (30, 30)
    assert d["unrestored_fraction"] == pytest.approx(0.5, abs=0.1)
    assert d["ratio_cv"] > 0.2
    assert restoration_diagnostics(noisy, truth, noisy)["unrestored_fraction"] == 1.0


# ------------------------------------------------------------------ CLI
def test_cli_denoise_demo_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "sub" / "fig1.png"
    rc = cli.main(["denoise-demo", "--size", "16", "--steps", "2", "--n-model-patches", "150",
                   "--seeds", "0", "1", "--out", str(out), "--quiet", "--diagnostics"])
    assert rc == 0
    img = read_image(out)
    assert img.ndim == 2 and img.shape[1] > img.shape[0] > 50
    text = capsys.readouterr().out
    assert "PSNR" in text and "OT_ε,ρ" in text and "mean ± std" in text


@pytest.mark.parametrize(
    "argv, name",
    [(["--w", "1.5"], "--w"), (["--size", "5"], "--size"), (["--steps", "-1"], "--steps")],
)
def test_cli_rejects_bad_options(tmp_path, capsys, argv, name):
    rc = cli.main(["denoise-demo", "--out", str(tmp_path / "f.png"), "--quiet"] + argv)
    assert rc == 2
    assert name in capsys.readouterr().err


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"w": 1.5}, "w"),
        ({"w": -0.1}, "w"),
        ({"size": 6}, "size"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"methods": ("semi", "sinkhorn")}, "method"),
        ({"seed": -1}, "seed"),
    ],
)
def test_fig1_experiment_rejects_bad_inputs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fig1_experiment(steps=0, progress=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"method": "sinkhorn"}, "method"),
        ({"patch_size": 16}, "y"),
        ({"patch_size": 3}, "model"),
        ({"n_model_patches": 0}, "n_model_patches"),
        ({"lr": -1.0}, "lr"),
        ({"eps": 0.0}, "eps"),
        ({"rho": -0.1}, "rho"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"steps": 1.5}, "steps"),
        ({"x_true": np.zeros((5, 5))}, "x_true"),
    ],
)
def test_denoise_rejects_bad_inputs(tiny, kwargs, name):
    _, y, model = tiny
    kw = {"patch_size": P, "steps": 1, "n_model_patches": 10, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=name):
        denoise(y, model, **kw)


def test_denoise_rejects_non_image(tiny):
    _, _, model = tiny
    with pytest.raises(ValueError, match="y"):
        denoise(np.zeros((3, 12, 12)), model, patch_size=P, progress=False)
    with pytest.raises(ValueError, match="y"):
        denoise(np.full((12, 12), np.nan), model, patch_size=P, progress=False)
