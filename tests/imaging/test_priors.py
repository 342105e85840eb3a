"""Tests for the multiscale patch priors (pot_semiunbalanced.imaging.priors)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pot_semiunbalanced import sinkhorn_semi_unbalanced2_samples
from pot_semiunbalanced.imaging import priors as P
from pot_semiunbalanced.imaging.operators import pyramid
from pot_semiunbalanced.imaging.patches import extract_patches
from pot_semiunbalanced.imaging.priors import (
    EntropicPatchPrior,
    WassersteinPatchPrior,
    make_prior,
    reference_patches,
)
from pot_semiunbalanced.imaging.wpp import w2_value_exact

# Tiny problems: 14x14 image, 3x3 patches, two levels (12² + 4² patches), a 20x20
# reference, ε large enough for a quick, tight solve.
TIGHT = {"stopThr": 1e-13, "numItermax": 20_000, "warm_start": False}
EPS, RHO, PATCH = 0.05, 0.1, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(side: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, side, side, generator=g, dtype=torch.float64)


def _directional_check(prior, x: torch.Tensor, seed: int, h: float = 1e-5) -> tuple:
    """(autograd <grad, v>, central finite difference) at x along a random v."""
    x = x.clone().requires_grad_(True)
    prior(x).backward()
    v = _image(x.shape[-1], seed + 100)
    v = v / v.norm()
    analytic = float((x.grad * v).sum())
    with torch.no_grad():
        fp = float(prior(x + h * v))
        fm = float(prior(x - h * v))
    return analytic, (fp - fm) / (2 * h)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", ["semi", "balanced", "unbalanced"])
def test_entropic_prior_gradient_matches_finite_differences(kind):
    ref = _image(20, 1)
    prior = make_prior(kind, ref, eps=EPS, rho=RHO, patch_size=PATCH, levels=1,
                       n_ref_patches=40, rng=0, **TIGHT)
    analytic, numeric = _directional_check(prior, _image(14, 2), seed=3)
    assert prior.last_diagnostics.converged
    assert abs(analytic) > 1e-3  # a direction with a real slope
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_wpp_emd_prior_gradient_matches_finite_differences():
    ref = _image(20, 4)
    prior = make_prior("wpp", ref, patch_size=PATCH, levels=1, n_ref_patches=40, rng=0)
    analytic, numeric = _directional_check(prior, _image(14, 5), seed=6, h=1e-7)
    assert abs(analytic) > 1e-3
    assert analytic == pytest.approx(numeric, rel=1e-5)


def test_gradient_reaches_every_pixel_through_patches_and_pyramid():
    prior = make_prior("semi", _image(20, 7), eps=EPS, rho=RHO, patch_size=PATCH,
                       n_ref_patches=40, rng=0, **TIGHT)
    x = _image(14, 8).requires_grad_(True)
    prior(x).backward()
    assert x.grad.shape == x.shape
    assert bool((x.grad != 0).all())


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("levels", [0, 1, 2])
def test_multiscale_value_is_the_mean_over_levels(levels):
    ref = _image(40, 9)
    x = _image(30, 10)
    prior = make_prior("semi", ref, eps=EPS, rho=RHO, patch_size=PATCH, levels=levels,
                       n_ref_patches=30, rng=0, **TIGHT)
    value = float(prior(x))
    assert prior.weights == tuple([1.0 / (levels + 1)] * (levels + 1))
    direct = [
        float(sinkhorn_semi_unbalanced2_samples(
            extract_patches(img, PATCH)[0], prior.ref(level), EPS, RHO, stopThr=1e-13,
            numItermax=20_000))
        for level, img in enumerate(pyramid(x, levels))
    ]
    assert len(direct) == levels + 1
    assert value == pytest.approx(sum(direct) / (levels + 1), rel=1e-9)
    diag = prior.last_diagnostics
    assert [s.level for s in diag.scales] == list(range(levels + 1))
    assert [s.value for s in diag.scales] == pytest.approx(direct, rel=1e-9)
    assert diag.value == pytest.approx(value)


def test_kinds_are_ordered_unbalanced_semi_balanced():
    # Relaxing a marginal can only lower the minimum: OT_{ε,ρ,ρ} <= OT_{ε,ρ} <= OT_ε.
    ref, x = _image(24, 11), _image(16, 12)
    values = {
        kind: float(make_prior(kind, ref, eps=EPS, rho=RHO, patch_size=PATCH, n_ref_patches=50,
                               rng=0, **TIGHT)(x))
        for kind in ("unbalanced", "semi", "balanced")
    }
    assert values["unbalanced"] < values["semi"] < values["balanced"]


def test_wpp_emd_value_is_exact_ot0():
    ref, x = _image(20, 13), _image(14, 14)
    prior = make_prior("wpp", ref, patch_size=PATCH, levels=1, n_ref_patches=40, rng=0)
    expected = np.mean([w2_value_exact(extract_patches(img, PATCH)[0], prior.ref(level))
                        for level, img in enumerate(pyramid(x, 1))])
    assert float(prior(x)) == pytest.approx(expected, rel=1e-10)
    assert prior.last_diagnostics.n_iter == [None, None]


def test_wpp_semidual_is_a_lower_bound_that_keeps_its_potential():
    ref, x = _image(20, 15), _image(14, 16)
    prior = make_prior("wpp", ref, patch_size=PATCH, n_ref_patches=40, rng=0, solver="semidual")
    exact = make_prior("wpp", ref, patch_size=PATCH, n_ref_patches=40, rng=0)(x)
    first = float(prior(x))
    psi = prior.estimators[0].psi.clone()
    second = float(prior(x))
    assert first <= float(exact) + 1e-12 and second <= float(exact) + 1e-12
    assert not torch.equal(psi, prior.estimators[0].psi)  # the ascent went on from psi
    assert prior.last_diagnostics.n_iter == [10, 10]
    prior.reset()
    assert float(prior.estimators[0].psi.abs().sum()) == 0.0


# ----------------------------------------------------------------------------- diagnostics
def test_diagnostics_and_warm_start():
    ref, x = _image(24, 17), _image(16, 18)
    prior = make_prior("semi", ref, eps=0.01, rho=RHO, patch_size=PATCH, n_ref_patches=50, rng=0)
    prior(x)
    cold = prior.last_diagnostics
    assert len(cold.scales) == 2 and cold.converged
    assert all(isinstance(n, int) and n > 0 for n in cold.n_iter)
    assert cold.scales[0].n_patches == 14 * 14 and cold.scales[0].n_ref == 50
    prior(x)  # same image: the stored potentials are already optimal
    assert all(w < c for w, c in zip(prior.last_diagnostics.n_iter, cold.n_iter))
    prior.reset()
    prior(x)
    assert prior.last_diagnostics.n_iter == cold.n_iter


def test_non_convergence_is_reported_not_warned():
    prior = make_prior("balanced", _image(24, 19), eps=1e-4, patch_size=PATCH, n_ref_patches=50,
                       rng=0, numItermax=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prior(_image(16, 20))
    assert not prior.last_diagnostics.converged
    assert prior.last_diagnostics.n_iter == [3, 3]


# ----------------------------------------------------------------------------- references
def test_reference_patches_are_reproducible_and_per_level():
    ref = _image(40, 21)
    a = reference_patches(ref, patch_size=4, levels=2, n_patches=25, rng=3)
    b = reference_patches(ref, patch_size=4, levels=2, n_patches=25, rng=np.random.default_rng(3))
    c = reference_patches(ref, patch_size=4, levels=2, n_patches=25, rng=4)
    assert [t.shape for t in a] == [(25, 16)] * 3
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert not torch.equal(a[0], c[0])
    # every level-l patch is a patch of A^l x_ref
    for level, img in enumerate(pyramid(ref, 2)):
        allp = extract_patches(img, 4)[0]
        d = ((a[level][:, None, :] - allp[None, :, :]) ** 2).sum(-1).min(dim=1).values
        assert float(d.max()) == 0.0


def test_reference_with_too_few_patches_names_the_fix():
    with pytest.raises(ValueError, match=r"n_ref_patches=500.*lower n_ref_patches to at most 16"):
        make_prior("semi", _image(20, 22), patch_size=6, levels=1, n_ref_patches=500)


def test_reference_too_small_for_the_pyramid():
    with pytest.raises(ValueError, match="too small"):
        make_prior("semi", _image(12, 23), patch_size=6, levels=1, n_ref_patches=1)


# ----------------------------------------------------------------------------- padding
def test_entropic_prior_has_no_padding():
    prior = make_prior("semi", _image(20, 24), patch_size=PATCH, n_ref_patches=10, rng=0)
    x = _image(14, 25)
    z = prior.pad_variable(x)
    assert prior.pad == 0 and z.shape == x.shape and torch.equal(z, x)
    assert prior.interior(z) is z
    assert prior.variable_shape((14, 15)) == (14, 15)


def test_wpp_variable_is_padded_with_uniform_border():
    prior = make_prior("wpp", _image(20, 26), patch_size=PATCH, n_ref_patches=10, rng=0)
    assert prior.pad == P.WPP_PAD == 20
    x = torch.full((1, 1, 14, 16), 0.5, dtype=torch.float64)
    z = prior.pad_variable(x, rng=0)
    assert z.shape == (1, 1, 54, 56) and prior.variable_shape((14, 16)) == (54, 56)
    assert torch.equal(prior.interior(z), x)
    border = z.clone()
    border[..., 20:34, 20:36] = float("nan")
    vals = border[~torch.isnan(border)]
    assert float(vals.min()) >= 0.0 and float(vals.max()) <= 1.0 and float(vals.std()) > 0.2
    assert torch.equal(z, prior.pad_variable(x, rng=0))  # seeded


def test_wpp_prior_sees_the_border():
    prior = make_prior("wpp", _image(20, 27), patch_size=PATCH, n_ref_patches=40, rng=0, pad=3)
    z = prior.pad_variable(_image(14, 28), rng=1).requires_grad_(True)
    prior(z).backward()
    g = z.grad[0, 0]
    assert float(g[:3].abs().sum()) > 0 and float(g[-3:].abs().sum()) > 0


# ----------------------------------------------------------------------------- emd limits
def test_emd_memory_check_refuses_the_paper_size(monkeypatch):
    monkeypatch.setattr(P, "free_memory_bytes", lambda like: 20e9)
    refs = [torch.rand(10_000, 36), torch.rand(10_000, 36)]
    prior = WassersteinPatchPrior(refs, patch_size=6)
    assert P.emd_memory_bytes(84_681, 10_000) == pytest.approx(37.3e9, rel=0.01)
    with pytest.raises(ValueError, match=r"N=84681.*M=10000.*solver='semidual'"):
        prior.check_image_shape(prior.variable_shape((256, 256)))
    prior.check_image_shape(prior.variable_shape((64, 64)))  # 9 801 x 10 000: 4.3 GB, fits
    for ok in (WassersteinPatchPrior(refs, patch_size=6, solver="semidual"),
               WassersteinPatchPrior(refs, patch_size=6, emd_solver="lazy")):
        ok.check_image_shape(ok.variable_shape((256, 256)))


# ----------------------------------------------------------------------------- errors
def test_bad_arguments_raise_clear_errors():
    ref = _image(20, 29)
    with pytest.raises(ValueError, match="unknown prior kind"):
        make_prior("sinkhorn", ref)
    with pytest.raises(ValueError, match="n_ref_patches must be an integer >= 1, got 0"):
        make_prior("semi", ref, patch_size=PATCH, n_ref_patches=0)
    with pytest.raises(ValueError, match="solver must be 'emd' or 'semidual'"):
        make_prior("wpp", ref, patch_size=PATCH, n_ref_patches=5, solver="exact")
    with pytest.raises(ValueError, match="eps"):
        make_prior("semi", ref, eps=0.0, patch_size=PATCH, n_ref_patches=5)
    with pytest.raises(ValueError, match="only apply to solver='semidual'"):
        make_prior("wpp", ref, patch_size=PATCH, n_ref_patches=5, n_ascent=3)
    with pytest.raises(ValueError, match="kind must be one of"):
        EntropicPatchPrior([torch.rand(5, 9)], kind="wpp", patch_size=3)
    prior = make_prior("semi", ref, patch_size=PATCH, n_ref_patches=5, rng=0)
    with pytest.raises(ValueError, match="single gray image"):
        prior(torch.rand(1, 3, 14, 14))
    with pytest.raises(ValueError, match="too small"):
        prior(torch.rand(1, 1, 7, 20))
    assert prior.min_image_size == 8  # (8 - 4) // 2 + 1 = 3 = patch_size
    prior(torch.rand(1, 1, 8, 8))


def test_prior_follows_input_dtype():
    prior = make_prior("semi", _image(20, 30), eps=EPS, rho=RHO, patch_size=PATCH,
                       n_ref_patches=40, rng=0)
    x32 = _image(14, 31).float().requires_grad_(True)
    v = prior(x32)
    v.backward()
    assert v.dtype == torch.float32 and x32.grad.dtype == torch.float32
    assert math.isfinite(float(v.detach()))
