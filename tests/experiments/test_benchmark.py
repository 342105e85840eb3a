"""Table I / Fig. 2 runner: resume, atomic writes, aggregation, observations, presets, CLI.

Everything runs at tiny sizes (a 32x32 or 64x64 brick crop, a few Adam steps, tens of
reference patches), so the whole file takes well under a minute.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from pot_semiunbalanced.experiments import benchmark as B
from pot_semiunbalanced.experiments.datasets import offline_benchmark

TINY = dict(crop=32, steps=2, n_ref_patches=40, num_iter_max=10)


@pytest.fixture(scope="module")
def pairs():
    # two 64x64 brick pairs (brick_q0, brick_q3), no materials
    return offline_benchmark(size=64, textures=("brick",), materials_dir=False)


@pytest.fixture
def tiny():
    return B.get_preset("quick", **TINY)


@pytest.fixture
def counting(monkeypatch):
    """Count the calls of ``benchmark.restore`` (the numerical work of one item)."""
    calls = []
    original = B.restore

    def wrapper(*args, **kwargs):
        calls.append(kwargs["method"])
        return original(*args, **kwargs)

    monkeypatch.setattr(B, "restore", wrapper)
    return calls


# ----------------------------------------------------------------------------- presets
def test_presets_are_complete():
    assert set(B.PRESETS) == {"quick", "paper"}
    paper = B.PRESETS["paper"]
    assert (paper.image_size, paper.crop, paper.steps, paper.n_ref_patches) == (256, None, 500, 10_000)
    assert (paper.lam, paper.eps, paper.rho, paper.lr) == (0.006, 4e-4, 0.01, 0.01)
    assert (paper.patch_size, paper.levels, paper.noise_std) == (6, 1, 0.01)
    assert paper.wpp_solver == "semidual"  # ot.emd cannot hold 84 681 x 10 000
    quick = B.PRESETS["quick"]
    side = quick.crop or quick.image_size
    assert side - 2 * 6 >= 31  # LPIPS is defined 6 px from the borders
    assert quick.steps < paper.steps and quick.n_ref_patches < paper.n_ref_patches
    for preset in B.PRESETS.values():
        assert preset.description
        for method in B.METHODS:
            opts = preset.method_options(method)
            assert opts["init"] == preset.init
            if method != "bicubic":
                assert opts["prior"] == method and opts["steps"] == preset.steps
                assert opts["n_ref_patches"] == preset.n_ref_patches
        assert preset.method_options("wpp")["prior_options"] == {"solver": preset.wpp_solver,
                                                                  "pad": preset.wpp_pad}
        assert preset.method_options("semi")["rho"] == preset.rho
        assert "rho" not in preset.method_options("balanced")
        assert json.loads(json.dumps(preset.to_dict())) == preset.to_dict()


def test_get_preset_overrides_and_errors():
    p = B.get_preset("quick", steps=3, crop=None, n_ref_patches=None)
    assert p.steps == 3 and p.crop is None and p.n_ref_patches == B.PRESETS["quick"].n_ref_patches
    assert p.name == "quick (modified)" and "steps=3" in p.description  # no passing for the preset
    assert B.get_preset("quick", steps=B.PRESETS["quick"].steps) is not None
    assert B.get_preset("quick", steps=B.PRESETS["quick"].steps).name == "quick"
    with pytest.raises(ValueError, match="unknown preset"):
        B.get_preset("fast")
    with pytest.raises(ValueError, match="unknown preset fields"):
        B.get_preset("quick", stepz=3)
    with pytest.raises(ValueError, match="steps"):
        B.get_preset("quick", steps=-1)
    with pytest.raises(ValueError, match="wpp_solver"):
        B.get_preset("paper", wpp_solver="lp")
    with pytest.raises(ValueError, match="unknown method"):
        B.PRESETS["quick"].method_options("sinkhorn")


# ----------------------------------------------------------------------------- observation
def test_observation_is_shared_and_reproducible(pairs, tiny, tmp_path):
    run = B.run_benchmark(pairs[:1], tmp_path, preset=tiny, methods=("bicubic", "semi"), jobs=1,
                          device="cpu")
    shas = {r["lr_sha256"] for r in run.records}
    assert len(run.records) == 4 and len(shas) == 1  # 2 methods x 2 reference sets
    lr_saved = np.load(tmp_path / "inputs" / pairs[0].name / "lr.npy")
    again = B.prepare_pair(pairs[0], tiny, seed=0)
    np.testing.assert_array_equal(again.lr, lr_saved)
    assert again.info["sha256"]["lr"] in shas
    # independent of the other pairs and of their order; changes with the seed / the name
    other = B.prepare_pair(pairs[1], tiny, seed=0)
    assert not np.array_equal(other.lr, again.lr)
    assert not np.array_equal(B.prepare_pair(pairs[0], tiny, seed=1).lr, again.lr)
    assert again.lr.shape == ((32 - 16) // 4 + 1,) * 2
    # same reference patches for every method of one (pair, reference set)
    seeds = {(r["refset"], tuple(r["rng_seed"])) for r in run.records}
    assert len(seeds) == 2


def test_observation_does_not_depend_on_the_thread_count(pairs, tiny):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = B.prepare_pair(pairs[0], tiny, seed=0)
        torch.set_num_threads(4)
        four = B.prepare_pair(pairs[0], tiny, seed=0)
        assert torch.get_num_threads() == 4  # restored after the single-threaded simulation
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one.lr, four.lr)


# ----------------------------------------------------------------------------- resume
def test_resume_skips_finished_items(pairs, tiny, tmp_path, counting):
    kw = dict(preset=tiny, methods=("bicubic", "semi"), jobs=1, device="cpu")
    first = B.run_benchmark(pairs[:1], tmp_path, **kw)
    assert len(counting) == 4 and len(first.computed) == 4 and not first.skipped
    second = B.run_benchmark(pairs[:1], tmp_path, **kw)
    assert len(counting) == 4  # nothing recomputed
    assert not second.computed and len(second.skipped) == 4
    assert second.records == first.records
    # a larger selection computes only the new items
    third = B.run_benchmark(pairs[:1], tmp_path, **dict(kw, methods=("bicubic", "semi", "unbalanced")))
    assert counting[4:] == ["unbalanced", "unbalanced"]
    assert len(third.skipped) == 4


def test_other_configuration_is_refused(pairs, tiny, tmp_path):
    B.run_benchmark(pairs[:1], tmp_path, preset=tiny, methods=("bicubic",), jobs=1, device="cpu")
    with pytest.raises(ValueError, match="steps"):
        B.run_benchmark(pairs[:1], tmp_path, preset=tiny.replace(steps=3), methods=("bicubic",),
                        jobs=1, device="cpu")
    with pytest.raises(ValueError, match="seed"):
        B.run_benchmark(pairs[:1], tmp_path, preset=tiny, methods=("bicubic",), seed=1, jobs=1,
                        device="cpu")


def test_interrupted_item_and_leftover_temp_files(pairs, tiny, tmp_path, counting):
    kw = dict(preset=tiny, methods=("bicubic", "semi"), jobs=1, device="cpu")
    B.run_benchmark(pairs[:1], tmp_path, **kw)
    item = B.BenchmarkItem(pairs[0].name, "defect", "semi")
    json_path, png_path = B.item_paths(tmp_path, item)
    # simulate a run killed while writing: the record is gone, a torn temp file remains
    json_path.unlink()
    leftover = json_path.with_name("semi.tmp-4242-deadbeef.json")
    leftover.write_text('{"format": "pot-semiunbalanced/benchmark", "pair": ')
    (png_path.parent / "semi.tmp-4242-deadbeef.png").write_bytes(b"\x89PNG truncated")
    n_before = len(counting)
    run = B.run_benchmark(pairs[:1], tmp_path, **kw)
    assert counting[n_before:] == ["semi"] and run.computed == [item]
    assert B.read_record(json_path)["method"] == "semi"
    records = B.collect_records(tmp_path)
    assert len(records) == 4  # the temp files are not results
    # a torn final file is not a finished item either
    json_path.write_text("{")
    assert B.read_record(json_path) is None
    B.run_benchmark(pairs[:1], tmp_path, **kw)
    assert counting[n_before + 1:] == ["semi"]


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "a" / "record.json"

    def crash(src, dst):
        raise KeyboardInterrupt  # killed between writing and renaming

    monkeypatch.setattr(B.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        B._atomic_write_json(target, {"x": 1})
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temp file was removed


# ----------------------------------------------------------------------------- aggregation
def test_table_means_equal_per_image_values(pairs, tiny, tmp_path):
    B.run_benchmark(pairs, tmp_path, preset=tiny, methods=("bicubic", "semi"), jobs=1, device="cpu")
    written = B.write_reports(tmp_path, grid=False)
    assert {"table.md", "table.csv", "per_image.csv", "results.json"} <= set(written)
    records = B.collect_records(tmp_path)
    assert len(records) == 2 * 2 * 2
    with open(written["table.csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    for row in rows:
        mine = [r for r in records if r["refset"] == row["reference_set"] and r["method"] == row["method"]]
        assert int(row["n_pairs"]) == len(mine) == 2
        for k in ("psnr", "ssim"):
            assert float(row[k]) == pytest.approx(np.mean([r["metrics"][k] for r in mine]), rel=1e-12)
        assert row["lpips"] == ""  # 32x32 is too small for LPIPS: no value, not a fake one
    compact = json.loads(written["results.json"].read_text())
    assert all("trace" not in r for r in compact["records"])
    assert compact["summary"]["mean"]["clean"]["semi"]["psnr"] == pytest.approx(
        float(next(r for r in rows if r["reference_set"] == "clean" and r["method"] == "semi")["psnr"]))
    md = written["table.md"].read_text()
    assert "OT_{ε,ρ}" in md and "bicubic" in md and pairs[1].name in md


def test_summarize_synthetic_records():
    recs = []
    for i, pair in enumerate(("a", "b", "c")):
        for s in B.REFERENCE_SETS:
            for m in ("wpp", "semi"):
                recs.append({"pair": pair, "refset": s, "method": m, "seconds": 1.0 + i,
                             "metrics": {"psnr": 20.0 + i + (m == "semi"), "ssim": 0.5 + 0.1 * i,
                                         "lpips": None if i == 2 else 0.1 * (i + 1)}})
    summary = B.summarize(recs)
    assert summary["methods"] == ["wpp", "semi"] and summary["pairs"] == ["a", "b", "c"]
    assert summary["mean"]["defect"]["semi"]["psnr"] == pytest.approx(22.0)
    assert summary["mean"]["clean"]["wpp"]["ssim"] == pytest.approx(0.6)
    assert summary["mean"]["clean"]["wpp"]["lpips"] == pytest.approx(0.15)  # missing value skipped
    assert summary["seconds"]["clean"]["semi"] == pytest.approx(2.0)
    md = B.table_markdown(summary)
    assert "| OT_{ε,ρ} | **22.00** |" in md


# ----------------------------------------------------------------------------- parallel
def test_parallel_workers_match_sequential_run(pairs, tiny, tmp_path):
    kw = dict(preset=tiny, methods=("semi",), reference_sets=("defect",), device="cpu")
    seq = B.run_benchmark(pairs, tmp_path / "seq", jobs=1, **kw)
    par = B.run_benchmark(pairs, tmp_path / "par", jobs=2, **kw)
    assert len(par.computed) == 2
    for a, b in zip(seq.records, par.records):
        assert (a["pair"], a["metrics"]) == (b["pair"], b["metrics"])
        assert b["torch_threads"] == 1


# ----------------------------------------------------------------------------- CLI
def test_cli_benchmark_end_to_end(tmp_path, capsys):
    from pot_semiunbalanced.cli import main

    out = tmp_path / "bench"
    argv = ["benchmark", "--preset", "quick", "--dataset", "offline", "--pairs", "brick_q0",
            "--size", "64", "--steps", "1", "--n-ref-patches", "30", "--num-iter-max", "5",
            "--methods", "bicubic", "wpp", "semi", "--out", str(out), "--jobs", "1",
            "--device", "cpu", "-q"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "computed 6 items" in text and "| OT_{ε,ρ} |" in text
    for name in ("table.md", "table.csv", "per_image.csv", "results.json", "grid.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = json.loads((out / "items" / "brick_q0" / "defect" / "wpp.json").read_text())
    assert rec["parameters"]["prior_options"] == {"solver": "semidual", "pad": 20}
    assert math.isfinite(rec["metrics"]["lpips"])  # 64x64: LPIPS is defined
    # resumes: nothing left to compute
    assert main(argv) == 0
    assert "computed 0 items, skipped 6" in capsys.readouterr().out


def test_cli_reports_user_errors(tmp_path, capsys):
    from pot_semiunbalanced.cli import main

    code = main(["benchmark", "--dataset", "offline", "--pairs", "nope", "--size", "64",
                 "--out", str(tmp_path), "-q"])
    assert code == 2
    assert "unknown pairs ['nope']" in capsys.readouterr().err
    code = main(["benchmark", "--dataset", "mvtec", "--out", str(tmp_path), "-q"])
    assert code == 2
    assert "--mvtec-root" in capsys.readouterr().err
