"""Tests for super-resolution with a reference (pot_semiunbalanced.imaging.superres)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_semiunbalanced.imaging.demo import demo_images
from pot_semiunbalanced.imaging.metrics import psnr
from pot_semiunbalanced.imaging.operators import bicubic_upsample, sr_forward, sr_output_shape
from pot_semiunbalanced.imaging.priors import make_prior
from pot_semiunbalanced.imaging.superres import (
    LAM_REFERENCE_LR_PIXELS,
    SRHistory,
    data_term,
    effective_lam,
    infer_hr_shape,
    super_resolve,
    upsample_init,
)

FAST = {"n_ref_patches": 200, "progress": False}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def brick48():
    return demo_images(48, seed=0)  # truth 48², reference 256² (disjoint), LR 9²


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("h", [1, 9, 21, 61])
@pytest.mark.parametrize("boundary", ["valid", "circular", "reflect"])
def test_inferred_hr_shape_reproduces_the_observation(h, boundary):
    H, W = infer_hr_shape((h, h + 2), boundary=boundary)
    assert sr_output_shape((H, W), boundary=boundary) == (h, h + 2)


def test_inferred_hr_shape_paper_sizes():
    assert infer_hr_shape((61, 61)) == (256, 256)
    assert infer_hr_shape((1, 1, 21, 21)) == (96, 96)
    assert infer_hr_shape((64, 64), boundary="circular") == (256, 256)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("boundary", ["valid", "circular"])
def test_upsample_init_puts_every_lr_pixel_at_its_centre(mode, boundary):
    # The observation of a linear ramp samples the ramp at the LR centres. Bilinear
    # interpolation reproduces a linear function between those centres; torch's bicubic
    # (Keys, a = -0.75) only up to a small periodic ripple (1.4e-3 here).
    H = 96 if boundary == "valid" else 84
    i = torch.arange(H, dtype=torch.float64)
    ramp = (0.1 + 0.8 * i / (H - 1))[:, None].expand(H, H)[None, None].contiguous()
    y = sr_forward(ramp, boundary=boundary)
    x0 = upsample_init(y, ramp.shape, mode=mode, boundary=boundary)
    assert x0.shape == ramp.shape and x0.dtype == ramp.dtype
    if boundary == "valid":
        inner = slice(7 + 8, 4 * (y.shape[-2] - 1) + 8 - 8)  # 2 LR pixels from the end centres
    else:  # centres at 4k + 0.5 (interior rows only: circular wraps the ramp)
        inner = slice(12, H - 16)
    atol = 1e-6 if mode == "bilinear" else 2e-3
    assert torch.allclose(x0[..., inner, :], ramp[..., inner, :], atol=atol)
    # a plain resize to H pixels stretches the grid and misses
    naive = bicubic_upsample(y, size=(H, H))
    assert float((naive - ramp)[..., inner, :].abs().max()) > 1e-2


def test_upsample_init_extends_the_border_by_nearest_value():
    y = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    x0 = upsample_init(y, infer_hr_shape(y.shape), mode="bilinear")
    assert x0.shape[-2:] == (32, 32)
    assert torch.equal(x0[..., :6, :], x0[..., 6:7, :].expand(-1, -1, 6, -1))
    assert torch.equal(x0[..., -6:, :], x0[..., -7:-6, :].expand(-1, -1, 6, -1))


def test_effective_lam_keeps_the_paper_balance():
    assert effective_lam(0.006, 61 * 61) == pytest.approx(0.006)
    assert effective_lam(0.006, 21 * 21) == pytest.approx(0.006 * 3721 / 441)
    assert effective_lam(0.006, 21 * 21, lam_scaling="none") == 0.006
    assert effective_lam(0.006, 441, reference_pixels=147**2) == pytest.approx(0.006 * 49)
    assert LAM_REFERENCE_LR_PIXELS == 3721
    with pytest.raises(ValueError, match="lam_scaling"):
        effective_lam(0.006, 441, lam_scaling="hr_pixels")
    with pytest.raises(ValueError, match="lam"):
        effective_lam(-1.0, 441)


# ----------------------------------------------------------------------------- padding
def test_data_term_sees_only_the_interior_of_the_wpp_variable(brick48):
    prior = make_prior("wpp", brick48["reference"], n_ref_patches=100, rng=0, pad=20)
    z = prior.pad_variable(upsample_init(brick48["lr"], (48, 48)), rng=0).requires_grad_(True)
    assert z.shape[-2:] == (88, 88)
    data_term(prior.interior(z), brick48["lr"], lam=1.0).backward()
    g = z.grad[0, 0].clone()
    interior = g[20:68, 20:68].clone()
    g[20:68, 20:68] = 0
    assert float(g.abs().max()) == 0.0 and float(interior.abs().max()) > 0
    z.grad = None
    prior(z).backward()
    assert float(z.grad[0, 0, :20].abs().max()) > 0  # the prior sees the border


def test_data_term_value():
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    y = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    expected = 0.5 * 0.3 * float(((sr_forward(x) - y) ** 2).sum())
    assert float(data_term(x, y, lam=0.3)) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- super_resolve
def test_semi_improves_psnr_over_bicubic(brick48):
    x_hat, hist = super_resolve(brick48["lr"], brick48["reference"], prior="semi", steps=30,
                                n_ref_patches=800, rng=0, x_true=brick48["truth"], progress=False)
    bicubic = upsample_init(brick48["lr"], (48, 48), mode="bicubic")
    assert hist.psnr_init == pytest.approx(psnr(bicubic, brick48["truth"]))
    assert hist.psnr_final == pytest.approx(psnr(x_hat, brick48["truth"]))
    assert hist.psnr_final > hist.psnr_init + 2.0  # measured: +3 to +5 dB over seeds
    assert all(hist.converged)


def test_history_fields(brick48):
    steps = 4
    with pytest.warns(UserWarning, match=r"did not reach its tolerance in 4 of 4 steps"):
        x_hat, hist = super_resolve(brick48["lr"], brick48["reference"], prior="balanced",
                                    steps=steps, rng=0, x_true=brick48["truth"],
                                    prior_options={"numItermax": 30}, **FAST)
    assert isinstance(hist, SRHistory) and hist.steps == steps
    for name in ("objective", "data", "prior", "ot_iters", "converged", "step_time", "ot_time", "psnr"):
        assert len(getattr(hist, name)) == steps, name
    assert hist.objective == pytest.approx([d + p for d, p in zip(hist.data, hist.prior)])
    assert all(len(it) == 2 and all(0 < i <= 30 for i in it) for it in hist.ot_iters)
    assert all(0 < o <= t for o, t in zip(hist.ot_time, hist.step_time))
    assert hist.psnr[0] == pytest.approx(hist.psnr_init)
    assert hist.n_lr_pixels == 81 and hist.hr_shape == (48, 48) == hist.variable_shape
    assert hist.lam_effective == pytest.approx(0.006 * 3721 / 81)
    assert hist.prior_kind == "balanced" and not hist.stopped_early
    assert x_hat.shape == (1, 1, 48, 48) and not x_hat.requires_grad
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0
    assert hist.variable.shape == (1, 1, 48, 48)
    assert torch.equal(hist.variable.clamp(0, 1), x_hat)
    d = hist.as_dict()
    assert d["lam"] == 0.006 and len(d["objective"]) == steps and "variable" not in d


def test_no_ground_truth_no_psnr(brick48):
    _, hist = super_resolve(brick48["lr"], brick48["reference"], steps=2, rng=0, **FAST)
    assert hist.psnr == [] and np.isnan(hist.psnr_final)


def test_reproducible_with_a_seed(brick48):
    runs = [super_resolve(brick48["lr"].numpy()[0, 0], brick48["reference"].numpy()[0, 0],
                          prior="wpp", prior_options={"solver": "semidual"}, steps=3, rng=seed,
                          n_ref_patches=150, progress=False)[0]
            for seed in (5, 5, 6)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_wpp_emd_restores_the_interior_only(brick48):
    seen = []
    x_hat, hist = super_resolve(brick48["lr"], brick48["reference"], prior="wpp", steps=2, rng=0,
                                n_ref_patches=100, progress=False,
                                callback=lambda step, x, h: seen.append(tuple(x.shape)))
    assert hist.variable_shape == (88, 88) and hist.hr_shape == (48, 48)
    assert hist.variable.shape == (1, 1, 88, 88)
    assert torch.equal(hist.variable[..., 20:68, 20:68].clamp(0, 1), x_hat)
    assert x_hat.shape == (1, 1, 48, 48) and seen == [(1, 1, 48, 48)] * 2
    assert hist.ot_iters == [[None, None]] * 2


def test_callback_can_stop_the_run(brick48):
    calls = []

    def stop_at_two(step, x, hist):
        calls.append((step, hist.steps))
        return step == 1

    _, hist = super_resolve(brick48["lr"], brick48["reference"], steps=10, rng=0,
                            callback=stop_at_two, **FAST)
    assert calls == [(0, 1), (1, 2)] and hist.steps == 2 and hist.stopped_early


def test_prebuilt_prior_and_explicit_init(brick48):
    prior = make_prior("unbalanced", brick48["reference"], n_ref_patches=100, rng=0)
    init = torch.full((1, 1, 48, 48), 0.5)
    x_hat, hist = super_resolve(brick48["lr"], None, prior=prior, init=init, steps=1, lr=1e-3,
                                progress=False)
    assert hist.prior_kind == "unbalanced"
    assert float((x_hat - 0.5).abs().max()) <= 1e-3 + 1e-6  # one Adam step of size lr


def test_zero_steps_returns_the_initialisation(brick48):
    x_hat, hist = super_resolve(brick48["lr"], brick48["reference"], steps=0, init="bilinear",
                                rng=0, **FAST)
    assert hist.steps == 0
    assert torch.allclose(x_hat, upsample_init(brick48["lr"], (48, 48), mode="bilinear").clamp(0, 1))


def test_explicit_hr_shape(brick48):
    x_hat, hist = super_resolve(brick48["lr"], brick48["reference"], hr_shape=(50, 51), steps=1,
                                rng=0, **FAST)
    assert x_hat.shape[-2:] == (50, 51)
    with pytest.raises(ValueError, match="gives an observation of"):
        super_resolve(brick48["lr"], brick48["reference"], hr_shape=(60, 60), steps=1, **FAST)


def test_errors_are_clear(brick48):
    lr, ref = brick48["lr"], brick48["reference"]
    with pytest.raises(ValueError, match="unknown prior"):
        super_resolve(lr, ref, prior="ot", steps=1, **FAST)
    with pytest.raises(ValueError, match="n_ref_patches=5000"):
        super_resolve(lr, ref[..., :40, :40], steps=1, n_ref_patches=5000, progress=False)
    with pytest.raises(ValueError, match="too small"):
        super_resolve(lr[..., :1, :1], ref, steps=1, levels=1, patch_size=8, **FAST)
    with pytest.raises(ValueError, match="x_true has shape"):
        super_resolve(lr, ref, steps=1, x_true=torch.zeros(1, 1, 40, 40), **FAST)
    with pytest.raises(ValueError, match="init must be"):
        super_resolve(lr, ref, steps=1, init="nearest", **FAST)
    with pytest.raises(ValueError, match="steps"):
        super_resolve(lr, ref, steps=-1, **FAST)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_requested_without_cuda(brick48):
    with pytest.raises(ValueError, match="CUDA is not available"):
        super_resolve(brick48["lr"], brick48["reference"], device="cuda", steps=1, **FAST)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(brick48):
    kwargs = dict(prior="semi", steps=3, rng=0, x_true=brick48["truth"], **FAST)
    x_cpu, h_cpu = super_resolve(brick48["lr"], brick48["reference"], device="cpu", **kwargs)
    x_gpu, h_gpu = super_resolve(brick48["lr"], brick48["reference"], device="cuda", **kwargs)
    assert x_gpu.device.type == "cuda"
    assert torch.allclose(x_gpu.cpu(), x_cpu, atol=1e-3)
    assert h_gpu.psnr_final == pytest.approx(h_cpu.psnr_final, abs=0.05)


def test_kernels_are_kept_between_steps_and_freed_at_the_end(brick48):
    prior = make_prior("semi", brick48["reference"], n_ref_patches=100, rng=0)
    kept = []

    def record(step, x, hist):
        kept.append([loss._kernel for loss in prior.losses])

    super_resolve(brick48["lr"], None, prior=prior, steps=3, progress=False, callback=record)
    assert all(k is not None for k in kept[0])
    assert all(a is b for a, b in zip(kept[0], kept[-1]))  # the same storage at every step
    assert all(loss._kernel is None for loss in prior.losses)  # released when the run ends
    assert prior.losses[0].potentials is not None  # the potentials stay (warm starts)
