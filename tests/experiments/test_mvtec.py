"""Tests of the MVTec AD loader on a tiny fake MVTec folder."""
from pathlib import Path

import numpy as np
import pytest
import skimage.io

from pot_semiunbalanced.experiments.datasets import load_pairs_from_folder, save_pairs
from pot_semiunbalanced.experiments.mvtec import MVTEC_TEXTURES, load_mvtec_pairs

SIZE = 32


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(path, img, check_contrast=False)


def _noise(rng, shape, rgb):
    full = shape + (3,) if rgb else shape
    return rng.integers(0, 256, size=full).astype(np.uint8)


def make_fake_mvtec(root: Path, categories=MVTEC_TEXTURES, n_train=9, n_test_good=2,
                    defects=("cut", "hole", "color"), n_per_defect=2):
    """Small random PNGs of odd sizes, RGB for most categories, gray for 'grid'."""
    rng = np.random.default_rng(123)
    for ci, cat in enumerate(categories):
        rgb = cat != "grid"
        shape = (37 + ci, 41 + 2 * ci)
        base = root / cat
        for i in range(n_train):
            _write(base / "train" / "good" / f"{i:03d}.png", _noise(rng, shape, rgb))
        for i in range(n_test_good):
            _write(base / "test" / "good" / f"{i:03d}.png", _noise(rng, shape, rgb))
        for d in defects:
            for i in range(n_per_defect):
                _write(base / "test" / d / f"{i:03d}.png", _noise(rng, shape, rgb))
        # a ground-truth mask for the first image of the first defect type only
        mask = np.zeros(shape, np.uint8)
        mask[5:20, 8:30] = 255
        _write(base / "ground_truth" / defects[0] / "000_mask.png", mask)
    return root


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return make_fake_mvtec(tmp_path_factory.mktemp("mvtec"))


def test_default_spread_sizes_and_sources(fake_root):
    pairs = load_mvtec_pairs(fake_root, size=SIZE)
    assert len(pairs) == 18
    counts = {c: sum(p.meta["category"] == c for p in pairs) for c in MVTEC_TEXTURES}
    assert counts == {"carpet": 4, "grid": 4, "leather": 4, "tile": 3, "wood": 3}
    assert [p.name for p in pairs[:5]] == [
        "carpet_00", "carpet_01", "carpet_02", "carpet_03", "grid_00",
    ]
    for p in pairs:
        for img in (p.hr, p.ref_clean, p.ref_defect):
            assert img.shape == (SIZE, SIZE) and img.dtype == np.float64  # gray, resized
            assert 0.0 <= img.min() and img.max() <= 1.0
        assert p.defect_mask.shape == (SIZE, SIZE) and p.defect_mask.dtype == bool
        m = p.meta
        cat = m["category"]
        assert m["hr_source"].startswith(f"{cat}/train/good/")
        assert m["ref_clean_source"].startswith(f"{cat}/train/good/")
        assert m["hr_source"] != m["ref_clean_source"]
        assert not np.array_equal(p.hr, p.ref_clean)
        assert m["ref_defect_source"].startswith(f"{cat}/test/{m['defect_type']}/")
        assert m["defect_type"] != "good"
    # with 9 train images and at most 4 pairs, no train image is used twice in a category
    for cat in MVTEC_TEXTURES:
        used = [s for p in pairs if p.meta["category"] == cat
                for s in (p.meta["hr_source"], p.meta["ref_clean_source"])]
        assert len(used) == len(set(used))
    # defect types are taken in turn
    carpet_types = [p.meta["defect_type"] for p in pairs if p.meta["category"] == "carpet"]
    assert len(set(carpet_types[:3])) == 3


def test_gray_conversion_and_resize(tmp_path):
    root = tmp_path / "m"
    value = np.full((50, 70, 3), 128, np.uint8)  # RGB gray: 128/255 everywhere
    for i in range(2):
        _write(root / "wood" / "train" / "good" / f"{i}.png", value)
    _write(root / "wood" / "test" / "scratch" / "0.png", np.full((20, 30), 64, np.uint8))
    rgba = np.concatenate([value, np.full((50, 70, 1), 255, np.uint8)], axis=-1)
    _write(root / "wood" / "test" / "scratch" / "1.png", rgba)
    (p,) = load_mvtec_pairs(root, categories=("wood",), n_pairs=1, size=SIZE)
    np.testing.assert_allclose(p.hr, 128 / 255, atol=1e-4)
    assert p.ref_defect.ndim == 2 and p.ref_defect.shape == (SIZE, SIZE)


def test_masks(fake_root):
    pairs = load_mvtec_pairs(fake_root, categories=("carpet",), n_pairs_per_category=6, size=SIZE)
    with_mask = [p for p in pairs if p.meta["mask_available"]]
    without = [p for p in pairs if not p.meta["mask_available"]]
    assert with_mask and without
    for p in with_mask:
        assert p.meta["defect_mask"] == "carpet/ground_truth/cut/000_mask.png"
        assert p.meta["ref_defect_source"] == "carpet/test/cut/000.png"
        # mask rows 5:20 of 37, cols 8:30 of 41 -> about 13 % of the image
        assert 0.1 < p.defect_coverage < 0.3
    for p in without:
        assert not p.defect_mask.any() and p.meta["defect_mask"] is None


def test_reproducible_and_seed_dependent(fake_root):
    a = load_mvtec_pairs(fake_root, categories=("tile", "grid"), n_pairs=4, size=SIZE, seed=5)
    b = load_mvtec_pairs(fake_root, categories=("tile", "grid"), n_pairs=4, size=SIZE, seed=5)
    assert [p.meta for p in a] == [p.meta for p in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.hr, y.hr)
        np.testing.assert_array_equal(x.ref_defect, y.ref_defect)
    picks = {
        tuple(p.meta["hr_source"] for p in
              load_mvtec_pairs(fake_root, categories=("tile",), n_pairs=2, size=SIZE, seed=s))
        for s in range(4)
    }
    assert len(picks) > 1
    # a category's picks do not depend on the other categories requested
    alone = load_mvtec_pairs(fake_root, categories=("grid",), n_pairs=2, size=SIZE, seed=5)
    assert [p.meta for p in alone] == [p.meta for p in a if p.meta["category"] == "grid"]


def test_counts_options(fake_root):
    pairs = load_mvtec_pairs(fake_root, categories=("carpet", "wood"),
                             n_pairs_per_category={"wood": 2}, size=SIZE)
    assert [p.name for p in pairs] == ["wood_00", "wood_01"]
    pairs = load_mvtec_pairs(fake_root, categories=("carpet", "wood"),
                             n_pairs_per_category=[1, 3], size=SIZE)
    assert [p.meta["category"] for p in pairs] == ["carpet", "wood", "wood", "wood"]
    with pytest.raises(ValueError):
        load_mvtec_pairs(fake_root, categories=("carpet",), n_pairs_per_category=[1, 2])
    with pytest.raises(ValueError, match="unknown categories"):
        load_mvtec_pairs(fake_root, categories=("carpet",), n_pairs_per_category={"bottle": 1})


def test_few_train_images_still_distinct(tmp_path):
    root = make_fake_mvtec(tmp_path / "few", categories=("leather",), n_train=3, n_test_good=1)
    pairs = load_mvtec_pairs(root, categories=("leather",), n_pairs=5, size=SIZE)
    assert len(pairs) == 5
    for p in pairs:
        assert p.meta["hr_source"] != p.meta["ref_clean_source"]
        assert p.meta["ref_clean_source"].startswith("leather/train/good/")
    assert pairs[0].meta["hr_source"].startswith("leather/test/good/")


def test_round_trip_through_save(fake_root, tmp_path):
    pairs = load_mvtec_pairs(fake_root, categories=("carpet",), n_pairs=3, size=SIZE)
    loaded = load_pairs_from_folder(save_pairs(pairs, tmp_path / "cache"))
    for a, b in zip(pairs, loaded):
        np.testing.assert_array_equal(a.hr, b.hr)
        np.testing.assert_array_equal(a.ref_defect, b.ref_defect)
        np.testing.assert_array_equal(a.defect_mask, b.defect_mask)
        assert a.meta == b.meta


def test_errors(fake_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="root folder not found"):
        load_mvtec_pairs(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="bottle"):
        load_mvtec_pairs(fake_root, categories=("carpet", "bottle"))
    empty = tmp_path / "empty"
    (empty / "tile" / "train" / "good").mkdir(parents=True)
    _write(empty / "tile" / "test" / "crack" / "0.png", np.zeros((9, 9), np.uint8))
    with pytest.raises(FileNotFoundError, match="no defect-free images"):
        load_mvtec_pairs(empty, categories=("tile",))
    nodef = tmp_path / "nodef"
    for i in range(2):
        _write(nodef / "tile" / "train" / "good" / f"{i}.png", np.zeros((9, 9), np.uint8))
    (nodef / "tile" / "test" / "crack").mkdir(parents=True)  # empty defect folder
    with pytest.raises(FileNotFoundError, match="no defective images"):
        load_mvtec_pairs(nodef, categories=("tile",))
    one = tmp_path / "one"
    _write(one / "tile" / "train" / "good" / "0.png", np.zeros((9, 9), np.uint8))
    _write(one / "tile" / "test" / "crack" / "0.png", np.zeros((9, 9), np.uint8))
    with pytest.raises(ValueError, match="at least two defect-free"):
        load_mvtec_pairs(one, categories=("tile",))
    with pytest.raises(ValueError, match="seed"):
        load_mvtec_pairs(fake_root, seed=-3)
