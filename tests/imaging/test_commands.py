"""End-to-end tests of the ``sr`` and ``demo`` commands (pot_semiunbalanced.imaging.commands)."""
from __future__ import annotations

import numpy as np
import pytest

from pot_semiunbalanced.cli import main
from pot_semiunbalanced.imaging.demo import demo_images
from pot_semiunbalanced.imaging.io import read_image, write_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """A 48² ground truth, its 9² observation and a 64² reference, as 8-bit PNGs."""
    folder = tmp_path_factory.mktemp("sr")
    data = demo_images(48, seed=0)
    paths = {
        "hr": write_image(folder / "hr.png", data["truth"]),
        "lr": write_image(folder / "lr.png", data["lr"]),
        "ref": write_image(folder / "ref.png", data["reference"][..., :64, :64]),
    }
    return paths


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("pot-semiunbalanced: error: ")
    return err


FAST = ["--steps", "3", "--n-ref-patches", "200", "-q", "--threads", "1"]


def test_sr_writes_the_image_and_prints_metrics(pngs, tmp_path, capsys):
    out = tmp_path / "out.png"
    rc = main(["sr", str(pngs["lr"]), str(pngs["ref"]), "-o", str(out), "--hr", str(pngs["hr"]),
               "--prior", "semi", *FAST])
    printed = capsys.readouterr().out
    assert rc == 0
    x = read_image(out)
    assert x.shape == (48, 48)
    assert "PSNR" in printed and "SSIM" in printed and "LPIPS" in printed
    assert "bicubic" in printed and "semi" in printed
    row = next(line for line in printed.splitlines() if line.startswith("semi"))
    psnr_value = float(row.split()[1])
    assert 15.0 < psnr_value < 60.0


@pytest.mark.parametrize("prior", ["balanced", "unbalanced", "wpp"])
def test_sr_every_prior_without_ground_truth(pngs, tmp_path, capsys, prior):
    out = tmp_path / f"{prior}.png"
    extra = ["--wpp-solver", "semidual"] if prior == "wpp" else ["--num-iter-max", "50"]
    rc = main(["sr", str(pngs["lr"]), str(pngs["ref"]), "-o", str(out), "--prior", prior,
               "--steps", "2", "--n-ref-patches", "100", "-q", *extra])
    assert rc == 0
    assert read_image(out).shape == (48, 48)  # inferred: 4 (9 - 1) + 16
    assert "PSNR" not in capsys.readouterr().out


def test_sr_reads_colour_and_16_bit_images(pngs, tmp_path, capsys):
    import imageio.v3 as iio

    lr = read_image(pngs["lr"])
    rgb = tmp_path / "lr_rgb.png"
    iio.imwrite(rgb, np.repeat((lr * 255).round().astype(np.uint8)[..., None], 3, axis=2))
    ref16 = write_image(tmp_path / "ref16.png", read_image(pngs["ref"]), bit_depth=16)
    rc = main(["sr", str(rgb), str(ref16), "-o", str(tmp_path / "o.png"), *FAST])
    assert rc == 0


def test_sr_missing_file(pngs, tmp_path, capsys):
    rc = main(["sr", str(tmp_path / "nope.png"), str(pngs["ref"]), "-o", str(tmp_path / "o.png"), *FAST])
    assert rc == 2
    assert "no such file" in _one_line_error(capsys)
    assert not (tmp_path / "o.png").exists()


def test_sr_unreadable_file(pngs, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    rc = main(["sr", str(pngs["lr"]), str(bad), "-o", str(tmp_path / "o.png"), *FAST])
    assert rc == 2
    assert "cannot read image" in _one_line_error(capsys)


def test_sr_too_small_image(tmp_path, capsys):
    lr = write_image(tmp_path / "tiny.png", np.full((2, 2), 0.5))  # HR 20 x 20
    ref = write_image(tmp_path / "ref.png", np.random.default_rng(0).random((80, 80)))
    rc = main(["sr", str(lr), str(ref), "-o", str(tmp_path / "o.png"), "--patch-size", "12", *FAST])
    assert rc == 2
    assert "too small" in _one_line_error(capsys)


def test_sr_reference_with_too_few_patches(pngs, tmp_path, capsys):
    ref = write_image(tmp_path / "small_ref.png", np.random.default_rng(0).random((30, 30)))
    rc = main(["sr", str(pngs["lr"]), str(ref), "-o", str(tmp_path / "o.png"), "-q",
               "--n-ref-patches", "10000", "--steps", "1"])
    assert rc == 2
    msg = _one_line_error(capsys)
    assert "n_ref_patches=10000" in msg and "lower n_ref_patches" in msg


def test_sr_ground_truth_of_the_wrong_size(pngs, tmp_path, capsys):
    hr = write_image(tmp_path / "hr_big.png", np.zeros((64, 64)))
    rc = main(["sr", str(pngs["lr"]), str(pngs["ref"]), "-o", str(tmp_path / "o.png"),
               "--hr", str(hr), *FAST])
    assert rc == 2
    assert "gives an observation of" in _one_line_error(capsys)


def test_sr_bad_option_is_an_argparse_error(pngs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sr", str(pngs["lr"]), str(pngs["ref"]), "-o", str(tmp_path / "o.png"),
              "--prior", "sinkhorn"])
    assert exc.value.code == 2


def test_demo_tiny_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--size", "24", "--steps", "2", "--n-ref-patches", "100",
               "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert rc == 0
    fig = out / "demo_superres.png"
    assert fig.is_file() and fig.stat().st_size > 1000
    img = read_image(fig)
    assert img.shape[1] > 3 * img.shape[0]  # one row of six panels
    for name in ("wpp", "balanced", "semi"):
        assert read_image(out / f"demo_{name}.png").shape == (24, 24)
        assert any(line.startswith(name) for line in printed.splitlines())
    assert "bicubic" in printed and "PSNR" in printed


def test_demo_help_states_the_measured_time(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "min" in capsys.readouterr().out
