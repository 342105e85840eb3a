"""Tests of the synthetic MVTec-like defects."""
import json

import numpy as np
import pytest
import skimage.data
from scipy import ndimage as ndi

from pot_semiunbalanced.experiments.defects import (
    DEFECT_KINDS,
    add_contamination,
    add_defect,
    add_defects,
    add_hole,
    add_scratch,
    add_stain,
    soft_edge_region,
)

ADD_FUNCS = {
    "scratch": add_scratch,
    "hole": add_hole,
    "contamination": add_contamination,
    "stain": add_stain,
}


@pytest.fixture(scope="module")
def brick():
    return skimage.data.brick()[:128, 128:256] / 255.0


@pytest.fixture(scope="module")
def gravel_rect():
    return skimage.data.gravel()[100:196, 50:210] / 255.0  # non-square, 96 x 160


def _changed(a, b):
    return a != b


@pytest.mark.parametrize("kind", DEFECT_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_add_defect_coverage_and_locality(brick, kind, seed):
    before = brick.copy()
    out, mask, info = add_defect(brick, kind, rng=seed)
    np.testing.assert_array_equal(brick, before)  # input untouched
    assert out.shape == brick.shape and out.dtype == np.float64
    assert mask.shape == brick.shape and mask.dtype == bool
    assert 0.0 <= out.min() and out.max() <= 1.0
    cov = mask.mean()
    assert 0.02 <= cov <= 0.10
    assert info["kind"] == kind
    assert info["coverage"] == pytest.approx(cov)
    # Only pixels in the mask or its soft rim (distance < edge + 0.5) change.
    edge = info["params"]["edge"]
    region = soft_edge_region(mask, edge)
    changed = _changed(out, brick)
    assert not np.any(changed & ~region)
    # ... and the rim is thin: the region is a small dilation of the mask.
    assert np.array_equal(region, ndi.distance_transform_edt(~mask) < edge + 0.5)
    # The defect is visible inside its mask.
    assert np.abs(out - brick)[mask].mean() > 0.03
    json.dumps(info)  # the record is JSON-serializable


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_add_defect_deterministic_and_seed_dependent(brick, kind):
    a, ma, ia = add_defect(brick, kind, rng=7)
    b, mb, ib = add_defect(brick, kind, rng=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert ia == ib
    c, mc, _ = add_defect(brick, kind, rng=8)
    assert not np.array_equal(ma, mc)
    assert not np.array_equal(a, c)
    # a Generator works as well and is advanced
    gen = np.random.default_rng(7)
    d, md, _ = add_defect(brick, kind, rng=gen)
    e, me, _ = add_defect(brick, kind, rng=gen)
    assert not np.array_equal(md, me)


@pytest.mark.parametrize("kind", DEFECT_KINDS)
@pytest.mark.parametrize("coverage", [(0.05, 0.06), (0.005, 0.01), (0.15, 0.2)])
def test_add_defect_custom_coverage_nonsquare(gravel_rect, kind, coverage):
    out, mask, info = add_defect(gravel_rect, kind, rng=3, coverage=coverage)
    assert coverage[0] <= mask.mean() <= coverage[1]
    assert info["coverage_range"] == list(coverage)
    region = soft_edge_region(mask, info["params"]["edge"])
    assert not np.any((out != gravel_rect) & ~region)


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_add_kind_functions_local_and_deterministic(brick, kind):
    func = ADD_FUNCS[kind]
    out, mask = func(brick, rng=5, edge=2.0)
    assert mask.any() and mask.dtype == bool
    assert not np.any((out != brick) & ~soft_edge_region(mask, 2.0))
    assert 0.0 <= out.min() and out.max() <= 1.0
    out2, mask2 = func(brick, rng=5, edge=2.0)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(mask, mask2)
    out3, mask3 = func(brick, rng=6, edge=2.0)
    assert not np.array_equal(mask, mask3)


def test_size_options_grow_the_mask(brick):
    _, thin = add_scratch(brick, rng=1, width=3.0, n_strokes=1)
    _, thick = add_scratch(brick, rng=1, width=8.0, n_strokes=1)
    assert thin.sum() < thick.sum() and not np.any(thin & ~thick)
    for func in (add_hole, add_contamination, add_stain):
        _, small = func(brick, rng=1, radius=8.0)
        _, large = func(brick, rng=1, radius=16.0)
        assert small.sum() < large.sum() and not np.any(small & ~large)


def test_scratch_polarity_and_thinness(brick):
    dark, m_dark = add_scratch(brick, rng=2, polarity="dark", edge=1.0)
    bright, m_bright = add_scratch(brick, rng=2, polarity="bright", edge=1.0)
    np.testing.assert_array_equal(m_dark, m_bright)
    assert np.all(dark[m_dark] <= brick[m_dark])
    assert np.all(bright[m_bright] >= brick[m_bright])
    # add_defect spreads large coverages over several thin strokes
    for seed in range(4):
        _, _, info = add_defect(brick, "scratch", rng=seed, coverage=(0.08, 0.10))
        p = info["params"]
        assert p["width"] <= 0.035 * 128 or p["n_strokes"] == 4


def test_hole_is_dark_and_stain_keeps_texture(brick):
    out, mask = add_hole(brick, rng=0, depth=0.05)
    assert out[mask].mean() < 0.5 * brick[mask].mean()
    out, mask = add_stain(brick, rng=0, polarity="dark", strength=0.4, edge=3.0)
    core = ndi.distance_transform_edt(mask) >= 3.5  # fully opaque part
    assert core.any()
    ratio = out[core] / np.maximum(brick[core], 1e-9)
    assert np.all(ratio < 1.0) and np.all(ratio > 0.2)
    # texture still visible: the fine detail (high-pass) survives the smooth change
    def detail(x):
        return x - ndi.gaussian_filter(x, 1.5)

    assert np.corrcoef(detail(out)[core], detail(brick)[core])[0, 1] > 0.8


def test_contamination_pastes_the_foreign_texture(brick):
    foreign = np.full((40, 50), 0.25)  # smaller than the image: enlarged
    out, mask = add_contamination(brick, rng=4, foreign=foreign, edge=2.0)
    core = ndi.distance_transform_edt(mask) >= 2.5
    assert core.any()
    np.testing.assert_allclose(out[core], 0.25, atol=1e-12)
    # uint8 RGB foreign arrays are accepted and converted to gray
    rgb = np.zeros((200, 200, 3), dtype=np.uint8)
    rgb[..., :] = 255
    out, mask = add_contamination(brick, rng=4, foreign=rgb, edge=2.0)
    np.testing.assert_allclose(out[core], 1.0, atol=1e-12)
    # built-in textures by name, and the default
    for foreign in ("gravel", None):
        out, mask = add_contamination(brick, rng=4, foreign=foreign)
        assert np.abs(out - brick)[mask].mean() > 0.03


def test_contamination_records_its_foreign_source(brick):
    _, _, info = add_defect(brick, "contamination", rng=0, foreign="camera")
    assert info["params"]["foreign"] == "skimage.data.camera"
    _, _, info = add_defect(brick, "contamination", rng=0, foreign=np.ones((64, 64)))
    assert info["params"]["foreign"] == "array"
    _, _, info = add_defect(brick, "contamination", rng=0)
    assert info["params"]["foreign"].startswith("skimage.data.")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_add_defects_union(brick, seed):
    kinds = ("scratch", "hole", "stain")
    out, mask, info = add_defects(brick, kinds=kinds, rng=seed)
    assert 0.02 <= mask.mean() <= 0.10
    assert info["kinds"] == list(kinds)
    assert [d["kind"] for d in info["defects"]] == list(kinds)
    assert info["coverage"] == pytest.approx(mask.mean())
    edge = max(d["params"]["edge"] for d in info["defects"])
    assert not np.any((out != brick) & ~soft_edge_region(mask, edge))
    out2, mask2, info2 = add_defects(brick, kinds=kinds, rng=seed)
    np.testing.assert_array_equal(out, out2)
    assert info == info2


def test_soft_edge_region_basics():
    mask = np.zeros((9, 9), dtype=bool)
    assert not soft_edge_region(mask, 2.0).any()
    mask[4, 4] = True
    region = soft_edge_region(mask, 1.0)  # distance < 1.5: the 3x3 block
    assert region.sum() == 9 and region[3:6, 3:6].all()


def test_errors(brick):
    with pytest.raises(ValueError, match="unknown defect kind"):
        add_defect(brick, "crack", rng=0)
    with pytest.raises(ValueError, match="coverage"):
        add_defect(brick, "hole", rng=0, coverage=(0.2, 0.1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        add_defect(brick * 255.0, "hole", rng=0)
    with pytest.raises(ValueError, match="2-D"):
        add_hole(np.zeros((16, 16, 3)), rng=0)
    with pytest.raises(ValueError, match="polarity"):
        add_scratch(brick, rng=0, polarity="grey")
    with pytest.raises(ValueError, match="n_strokes"):
        add_scratch(brick, rng=0, n_strokes=9)
    with pytest.raises(ValueError, match="unknown built-in texture"):
        add_contamination(brick, rng=0, foreign="not_an_image")
    with pytest.raises(ValueError, match="kinds"):
        add_defects(brick, kinds=(), rng=0)
    # on a 128 x 128 image no pixel count has a coverage in this range
    with pytest.raises(RuntimeError, match="could not place"):
        add_defect(brick, "hole", rng=0, coverage=(0.99999, 0.999999), max_tries=2)
