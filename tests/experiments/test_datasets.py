"""Tests of the offline super-resolution benchmark and its PNG storage."""
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.io

from pot_semiunbalanced.experiments.datasets import (
    MATERIAL_PAIRS,
    MATERIALS_ENV_VAR,
    SRPair,
    load_pairs_from_folder,
    offline_benchmark,
    quadrant_box,
    save_pairs,
)
from pot_semiunbalanced.experiments.defects import DEFECT_KINDS, soft_edge_region

# The project's shared folder sits next to the repository on development machines;
# a user's clone has none, and the test needing it is skipped.
SHARED_MATERIALS = Path(__file__).resolve().parents[3] / "shared" / "data" / "materials"
HAVE_MATERIALS = all((SHARED_MATERIALS / f).is_file() for _, h, r in MATERIAL_PAIRS for f in (h, r))


def _overlap(a, b):
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


@pytest.fixture(autouse=True)
def _no_materials_env(monkeypatch):
    monkeypatch.delenv(MATERIALS_ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def small_bench():
    return offline_benchmark(size=96, materials_dir=False, seed=0)


@pytest.fixture
def fake_materials(tmp_path):
    """Four synthetic 8-bit gray PNGs named like the material images (140 x 150)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "materials"
    folder.mkdir()
    for _, hr_f, ref_f in MATERIAL_PAIRS:
        for f in (hr_f, ref_f):
            img = rng.integers(0, 256, size=(140, 150)).astype(np.uint8)
            skimage.io.imsave(folder / f, img, check_contrast=False)
    return folder


def test_default_composition():
    pairs = offline_benchmark(materials_dir=False)
    assert [p.name for p in pairs] == [
        "brick_q0", "brick_q3", "grass_q0", "grass_q3", "gravel_q0", "gravel_q3",
    ]
    kinds = [p.meta["defect"]["kind"] for p in pairs]
    assert kinds == [DEFECT_KINDS[i % 4] for i in range(6)]
    for p in pairs:
        assert p.hr.shape == p.ref_clean.shape == p.ref_defect.shape == (256, 256)
        assert p.meta["hr_box"] in ([0, 0, 256, 256], [256, 256, 512, 512])
        assert (p.meta["hr_quadrant"], p.meta["ref_quadrant"]) in ((0, 1), (3, 2))


def test_crops_disjoint_and_faithful(small_bench):
    for p in small_bench:
        assert p.meta["hr_source"] == p.meta["ref_source"]
        hr_box, ref_box = p.meta["hr_box"], p.meta["ref_box"]
        assert not _overlap(hr_box, ref_box)
        assert hr_box[2] - hr_box[0] == hr_box[3] - hr_box[1] == 96
        # the boxes say where the images come from
        src = getattr(skimage.data, p.meta["texture"])() / 255.0
        np.testing.assert_array_equal(p.hr, src[hr_box[0] : hr_box[2], hr_box[1] : hr_box[3]])
        np.testing.assert_array_equal(
            p.ref_clean, src[ref_box[0] : ref_box[2], ref_box[1] : ref_box[3]]
        )
        # crops of size < 256 stay inside their quadrant
        for box, q in ((hr_box, p.meta["hr_quadrant"]), (ref_box, p.meta["ref_quadrant"])):
            qr, qc = divmod(q, 2)
            assert 256 * qr <= box[0] and box[2] <= 256 * (qr + 1)
            assert 256 * qc <= box[1] and box[3] <= 256 * (qc + 1)
    # hr crops of different pairs of one texture are disjoint too
    by_tex = {}
    for p in small_bench:
        by_tex.setdefault(p.meta["texture"], []).append(p.meta["hr_box"])
    for boxes in by_tex.values():
        assert not _overlap(*boxes)


def test_values_defects_and_coverage(small_bench):
    for p in small_bench:
        for img in (p.hr, p.ref_clean, p.ref_defect):
            assert img.dtype == np.float64 and img.ndim == 2
            assert 0.0 <= img.min() and img.max() <= 1.0
            np.testing.assert_array_equal(np.round(img * 65535) / 65535, img)  # 16-bit grid
        assert p.defect_mask.dtype == bool and p.defect_mask.shape == p.ref_defect.shape
        d = p.meta["defect"]
        assert 0.02 <= p.defect_coverage <= 0.10
        assert d["coverage"] == pytest.approx(p.defect_coverage)
        assert p.meta["ref_defect_from"] == "ref_clean"
        # the defective reference is the clean one plus a localized defect
        region = soft_edge_region(p.defect_mask, d["params"]["edge"])
        changed = p.ref_defect != p.ref_clean
        assert changed[p.defect_mask].mean() > 0.5
        assert not np.any(changed & ~region)
        assert not np.array_equal(p.hr, p.ref_clean)


def test_reproducible_and_seeded(small_bench):
    again = offline_benchmark(size=96, materials_dir=False, seed=0)
    other = offline_benchmark(size=96, materials_dir=False, seed=1)
    for a, b, c in zip(small_bench, again, other):
        assert a.name == b.name == c.name
        for key in ("hr", "ref_clean", "ref_defect", "defect_mask"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert a.meta == b.meta
        np.testing.assert_array_equal(a.hr, c.hr)
        assert not np.array_equal(a.defect_mask, c.defect_mask)


def test_pair_does_not_depend_on_other_textures(small_bench):
    alone = offline_benchmark(size=96, textures=("grass",), materials_dir=False,
                              defect_kinds=("contamination",))
    ref = next(p for p in small_bench if p.name == "grass_q0")
    assert ref.meta["defect"]["kind"] == "contamination"
    np.testing.assert_array_equal(alone[0].ref_defect, ref.ref_defect)


def test_options_and_errors():
    pairs = offline_benchmark(size=64, textures=("camera",), materials_dir=False,
                              defect_kinds=("stain",), coverage=(0.04, 0.05))
    assert [p.name for p in pairs] == ["camera_q0", "camera_q3"]
    assert all(p.meta["defect"]["kind"] == "stain" for p in pairs)
    assert all(0.04 <= p.defect_coverage <= 0.05 for p in pairs)
    with pytest.raises(ValueError, match="quadrant"):
        offline_benchmark(size=300, materials_dir=False)
    with pytest.raises(ValueError, match="unknown texture"):
        offline_benchmark(textures=("lily",), materials_dir=False)
    with pytest.raises(ValueError, match="defect kind"):
        offline_benchmark(defect_kinds=("dent",), materials_dir=False)
    with pytest.raises(ValueError, match="seed"):
        offline_benchmark(seed=-1, materials_dir=False)


def test_quadrant_box():
    assert quadrant_box((512, 512), 0, 256) == [0, 0, 256, 256]
    assert quadrant_box((512, 512), 3, 100) == [334, 334, 434, 434]
    boxes = [quadrant_box((101, 77), q, 30) for q in range(4)]
    assert all(not _overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    with pytest.raises(ValueError):
        quadrant_box((100, 100), 4, 10)


def test_materials_from_a_folder(fake_materials, monkeypatch):
    pairs = offline_benchmark(size=64, textures=("brick",), materials_dir=fake_materials)
    assert [p.name for p in pairs] == ["brick_q0", "brick_q3", "material_sic", "material_fs"]
    sic = pairs[2]
    assert (sic.meta["hr_source"], sic.meta["ref_source"]) == ("img_hr.png", "img_learn.png")
    assert sic.meta["hr_box"] == [38, 43, 102, 107]  # centred in 140 x 150
    src = skimage.io.imread(fake_materials / "img_hr.png") / 255.0
    np.testing.assert_array_equal(sic.hr, src[38:102, 43:107])
    assert all(0.02 <= p.defect_coverage <= 0.10 for p in pairs)
    assert [p.meta["defect"]["kind"] for p in pairs] == list(DEFECT_KINDS)
    # the environment variable is honoured, and materials_dir=False overrides it
    monkeypatch.setenv(MATERIALS_ENV_VAR, str(fake_materials))
    assert len(offline_benchmark(size=64, textures=("brick",))) == 4
    assert len(offline_benchmark(size=64, textures=("brick",), materials_dir=False)) == 2
    # a variable pointing nowhere is ignored; an explicit missing folder is an error
    monkeypatch.setenv(MATERIALS_ENV_VAR, str(fake_materials / "nowhere"))
    assert len(offline_benchmark(size=64, textures=("brick",))) == 2
    with pytest.raises(FileNotFoundError, match="materials folder not found"):
        offline_benchmark(size=64, materials_dir=fake_materials / "nowhere")
    (fake_materials / "img_learn_FS.png").unlink()
    with pytest.raises(FileNotFoundError, match="img_learn_FS.png"):
        offline_benchmark(size=64, materials_dir=fake_materials)


def test_no_materials_without_folder():
    names = [p.name for p in offline_benchmark(size=64, textures=("gravel",))]
    assert names == ["gravel_q0", "gravel_q3"]
    with pytest.raises(ValueError, match=MATERIALS_ENV_VAR):
        offline_benchmark(size=64, textures=("gravel",), materials_dir=True)


@pytest.mark.skipif(not HAVE_MATERIALS, reason="material images not available here")
def test_real_materials():
    pairs = offline_benchmark(materials_dir=SHARED_MATERIALS)
    assert len(pairs) == 8
    sic, fs = pairs[-2:]
    assert (sic.name, fs.name) == ("material_sic", "material_fs")
    for p in (sic, fs):
        assert p.hr.shape == p.ref_clean.shape == (256, 256)
        assert p.meta["hr_box"] == p.meta["ref_box"] == [172, 172, 428, 428]
        assert p.meta["hr_source"] != p.meta["ref_source"]
        assert not np.array_equal(p.hr, p.ref_clean)
        assert 0.02 <= p.defect_coverage <= 0.10


def test_save_load_round_trip(small_bench, tmp_path):
    folder = save_pairs(small_bench, tmp_path / "bench")
    assert json.loads((folder / "index.json").read_text())["pairs"] == [p.name for p in small_bench]
    assert skimage.io.imread(folder / "brick_q0" / "hr.png").dtype == np.uint16
    loaded = load_pairs_from_folder(folder)
    assert [p.name for p in loaded] == [p.name for p in small_bench]
    for a, b in zip(small_bench, loaded):
        for key in ("hr", "ref_clean", "ref_defect", "defect_mask"):
            x, y = getattr(a, key), getattr(b, key)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        assert a.meta == b.meta
    sub = load_pairs_from_folder(folder, names=["gravel_q3", "brick_q0"])
    assert [p.name for p in sub] == ["gravel_q3", "brick_q0"]
    with pytest.raises(KeyError):
        load_pairs_from_folder(folder, names=["nope"])
    with pytest.raises(FileExistsError):
        save_pairs(small_bench, folder)
    save_pairs(small_bench[:1], folder, overwrite=True)
    assert [p.name for p in load_pairs_from_folder(folder)] == ["brick_q0"]


def test_save_rounds_off_grid_values(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.uniform(size=(20, 24))
    meta = {"note": (1, np.float32(2.5)), "_kept": np.arange(2), "where": Path("a") / "b"}
    pair = SRPair("rand", img, img, img, np.zeros((20, 24), bool), meta)
    (back,) = load_pairs_from_folder(save_pairs([pair], tmp_path))
    assert np.abs(back.hr - img).max() <= 0.5 / 65535 + 1e-15
    assert back.meta == {"note": [1, 2.5], "_kept": [0, 1], "where": "a/b"}


def test_load_hand_made_folder(tmp_path):
    sub = tmp_path / "mine"
    sub.mkdir()
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 200
    gray = np.full((10, 12), 51, np.uint8)
    skimage.io.imsave(sub / "hr.png", gray, check_contrast=False)
    skimage.io.imsave(sub / "ref_clean.png", gray, check_contrast=False)
    skimage.io.imsave(sub / "ref_defect.png", rgb, check_contrast=False)
    (pair,) = load_pairs_from_folder(tmp_path)
    assert pair.name == "mine" and pair.meta == {}
    np.testing.assert_array_equal(pair.hr, np.full((10, 12), 0.2))
    assert pair.ref_defect.shape == (10, 12) and not pair.defect_mask.any()
    with pytest.raises(FileNotFoundError):
        load_pairs_from_folder(tmp_path / "absent")


def test_srpair_validation():
    z = np.zeros((8, 8))
    with pytest.raises(ValueError, match="shape"):
        SRPair("a", z, z, z, np.zeros((4, 4), bool), {})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SRPair("a", z + 2.0, z, z, z.astype(bool), {})
    with pytest.raises(ValueError, match="name"):
        SRPair("a/b", z, z, z, z.astype(bool), {})
    with pytest.raises(ValueError, match="distinct"):
        twins = [SRPair("a", z, z, z, z.astype(bool)), SRPair("a", z, z, z, z.astype(bool))]
        save_pairs(twins, "x")
