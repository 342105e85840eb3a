"""Tests for pot_semiunbalanced.imaging.io."""
from __future__ import annotations

import re

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage.color import rgb2gray

from pot_semiunbalanced.imaging.io import (
    read_image,
    to_numpy_image,
    to_tensor_image,
    write_image,
)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def gray(rng):
    """A float64 image in [0, 1] that includes both extremes."""
    img = rng.random((23, 31))
    img[0, 0], img[-1, -1] = 0.0, 1.0
    return img


# --------------------------------------------------------------------------- reading


def test_read_8bit_png_divides_by_255(tmp_path, rng):
    raw = rng.integers(0, 256, size=(17, 29), dtype=np.uint8)
    path = tmp_path / "g8.png"
    iio.imwrite(path, raw)
    img = read_image(path)
    assert img.dtype == np.float64 and img.shape == raw.shape
    np.testing.assert_array_equal(img, raw / 255.0)


def test_read_16bit_png_divides_by_65535(tmp_path, rng):
    raw = rng.integers(0, 65536, size=(17, 29), dtype=np.uint16)
    path = tmp_path / "g16.png"
    iio.imwrite(path, raw)
    np.testing.assert_array_equal(read_image(path), raw / 65535.0)


def test_read_rgb_uses_rgb2gray(tmp_path, rng):
    raw = rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    iio.imwrite(path, raw)
    img = read_image(path)
    assert img.shape == (12, 14)
    np.testing.assert_allclose(img, rgb2gray(raw), rtol=0, atol=1e-12)
    # and not, e.g., a plain channel mean
    assert np.max(np.abs(img - raw.mean(axis=-1) / 255.0)) > 1e-3


def test_read_rgba_drops_alpha(tmp_path, rng):
    raw = rng.integers(0, 256, size=(12, 14, 4), dtype=np.uint8)
    raw[..., 3] = rng.integers(0, 256, size=(12, 14))  # arbitrary transparency
    path = tmp_path / "rgba.png"
    iio.imwrite(path, raw)
    np.testing.assert_allclose(read_image(path), rgb2gray(raw[..., :3]), rtol=0, atol=1e-12)


def test_read_gray_alpha_keeps_gray(tmp_path, rng):
    raw = rng.integers(0, 256, size=(9, 10, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    iio.imwrite(path, raw)
    np.testing.assert_array_equal(read_image(path), raw[..., 0] / 255.0)


def test_read_16bit_rgb_tiff(tmp_path, rng):
    raw = rng.integers(0, 65536, size=(8, 9, 3), dtype=np.uint16)
    path = tmp_path / "rgb16.tif"
    iio.imwrite(path, raw)
    np.testing.assert_allclose(read_image(path), rgb2gray(raw), rtol=0, atol=1e-12)


def test_read_float_tiff_kept_exactly(tmp_path, gray):
    raw = gray.astype(np.float32)
    path = tmp_path / "f.tif"
    iio.imwrite(path, raw)
    img = read_image(path)
    assert img.dtype == np.float64
    np.testing.assert_array_equal(img, raw.astype(np.float64))


def test_read_float_tiff_out_of_range_is_an_error(tmp_path, gray):
    path = tmp_path / "hdr.tif"
    iio.imwrite(path, (gray * 4.0 - 1.0).astype(np.float32))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*outside \\[0, 1\\]"):
        read_image(path)


def test_read_float_tiff_nan_is_an_error(tmp_path, gray):
    raw = gray.astype(np.float32)
    raw[3, 4] = np.nan
    path = tmp_path / "nan.tif"
    iio.imwrite(path, raw)
    with pytest.raises(ValueError, match="NaN"):
        read_image(path)


def test_read_bool_tiff(tmp_path, gray):
    mask = gray > 0.5
    path = tmp_path / "mask.tif"
    iio.imwrite(path, mask)
    np.testing.assert_array_equal(read_image(path), mask.astype(np.float64))


def test_read_signed_integers_rejected(tmp_path, rng):
    path = tmp_path / "s16.tif"
    iio.imwrite(path, rng.integers(-100, 100, size=(6, 7)).astype(np.int16))
    with pytest.raises(ValueError, match="unsupported pixel type int16"):
        read_image(path)


def test_read_volume_rejected(tmp_path, rng):
    path = tmp_path / "stack.tif"
    iio.imwrite(path, rng.random((5, 6, 7)).astype(np.float32))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*shape \\(5, 6, 7\\)"):
        read_image(path)


def test_read_as_tensor_and_dtypes(tmp_path, rng):
    raw = rng.integers(0, 256, size=(11, 13), dtype=np.uint8)
    path = tmp_path / "t.png"
    iio.imwrite(path, raw)
    t = read_image(path, as_tensor=True)
    assert isinstance(t, torch.Tensor)
    assert t.shape == (1, 1, 11, 13) and t.dtype == torch.float32
    np.testing.assert_allclose(t[0, 0].numpy(), raw / 255.0, rtol=0, atol=1e-7)
    t64 = read_image(path, as_tensor=True, dtype=torch.float64)
    assert t64.dtype == torch.float64
    np.testing.assert_array_equal(t64[0, 0].numpy(), raw / 255.0)
    a32 = read_image(path, dtype=np.float32)
    assert isinstance(a32, np.ndarray) and a32.dtype == np.float32
    with pytest.raises(TypeError):
        read_image(path, dtype=np.int32)


def test_read_garbage_png_raises_value_error_with_path(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x00\x01 these bytes are not an image \xff" * 8)
    with pytest.raises(ValueError, match="^cannot read image " + re.escape(str(path)) + ": "):
        read_image(path)


def test_read_truncated_png_raises_value_error(tmp_path, gray):
    good = tmp_path / "good.png"
    write_image(good, gray)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ValueError, match=re.escape(str(truncated))):
        read_image(truncated)


def test_read_empty_and_text_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    for path in (empty, text):
        with pytest.raises(ValueError, match=re.escape(str(path))):
            read_image(path)


def test_read_directory(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        read_image(tmp_path)


def test_read_missing_file(tmp_path):
    path = tmp_path / "nope" / "missing.png"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_image(path)
    with pytest.raises(FileNotFoundError):
        read_image(str(path))


# --------------------------------------------------------------------------- writing


def test_write_8bit_png_round_trip(tmp_path, gray):
    path = write_image(tmp_path / "out.png", gray)
    stored = iio.imread(path)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, np.rint(gray * 255).astype(np.uint8))
    back = read_image(path)
    assert np.max(np.abs(back - gray)) <= 0.5 / 255 + 1e-12


@pytest.mark.parametrize("name, kwargs", [("out.tif", {}), ("out.tiff", {}),
                                          ("out16.png", {"bit_depth": 16})])
def test_write_16bit_round_trip(tmp_path, gray, name, kwargs):
    path = write_image(tmp_path / name, gray, **kwargs)
    assert iio.imread(path).dtype == np.uint16
    back = read_image(path)
    assert np.max(np.abs(back - gray)) <= 0.5 / 65535 + 1e-12


def test_write_8bit_tiff_on_request(tmp_path, gray):
    path = write_image(tmp_path / "out8.tif", gray, bit_depth=8)
    assert iio.imread(path).dtype == np.uint8


def test_write_clips_and_accepts_tensors(tmp_path, gray):
    img = gray.copy()
    img[0, :5] = -0.5
    img[1, :5] = 1.5
    t = torch.from_numpy(img).float()
    for i, x in enumerate((t, t[None, None], t[None])):
        path = write_image(tmp_path / f"t{i}.png", x)
        stored = iio.imread(path)
        assert stored.shape == gray.shape
        assert np.all(stored[0, :5] == 0) and np.all(stored[1, :5] == 255)


def test_write_creates_parent_directories(tmp_path, gray):
    path = tmp_path / "a" / "b" / "c" / "img.png"
    assert write_image(path, gray) == path
    assert path.is_file()


def test_write_jpeg_is_readable(tmp_path):
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    smooth = 0.25 + 0.5 * xx * yy
    path = write_image(tmp_path / "s.jpg", smooth)
    assert np.mean(np.abs(read_image(path) - smooth)) < 0.01


def test_write_rejects_bad_input(tmp_path, gray):
    with pytest.raises(TypeError, match="floating-point"):
        write_image(tmp_path / "i.png", (gray * 255).astype(np.uint8))
    bad = gray.copy()
    bad[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "n.png", bad)
    with pytest.raises(ValueError, match="bit_depth"):
        write_image(tmp_path / "b.png", gray, bit_depth=12)
    with pytest.raises(ValueError, match="16-bit"):
        write_image(tmp_path / "b.jpg", gray, bit_depth=16)
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "nosuffix", gray)
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "rgb.png", np.zeros((4, 5, 3)))


def test_write_bool_image(tmp_path, gray):
    path = write_image(tmp_path / "m.png", gray > 0.5)
    np.testing.assert_array_equal(iio.imread(path), np.where(gray > 0.5, 255, 0))


# --------------------------------------------------------------------------- converters


def test_to_numpy_image_shapes_and_copy(gray):
    t = torch.from_numpy(gray.copy())
    for x in (gray, t, t[None], t[None, None], t.float().requires_grad_()):
        a = to_numpy_image(x)
        assert a.shape == gray.shape and a.dtype == np.float64
        np.testing.assert_allclose(a, gray, rtol=0, atol=1e-7)
    a = to_numpy_image(gray)
    a[0, 0] = 42.0
    assert gray[0, 0] != 42.0
    assert to_numpy_image(gray, dtype=np.float32).dtype == np.float32
    assert to_numpy_image(t.to(torch.bfloat16)).shape == gray.shape


@pytest.mark.parametrize("shape", [(3, 5, 6), (2, 1, 5, 6), (5,), (1, 5, 6, 1)])
def test_converters_reject_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape"):
        to_numpy_image(np.zeros(shape))
    with pytest.raises(ValueError, match="shape"):
        to_tensor_image(np.zeros(shape))
    with pytest.raises(ValueError, match="shape"):
        to_tensor_image(torch.zeros(shape))


def test_to_tensor_image(gray):
    t = to_tensor_image(gray)
    assert t.shape == (1, 1) + gray.shape and t.dtype == torch.float32
    assert t.device == torch.device("cpu")
    np.testing.assert_allclose(t[0, 0].numpy(), gray, rtol=0, atol=1e-7)
    t[0, 0, 0, 0] = 42.0
    assert gray[0, 0] != 42.0  # arrays are copied
    t64 = to_tensor_image(gray, dtype=torch.float64)
    np.testing.assert_array_equal(t64[0, 0].numpy(), gray)
    flipped = to_tensor_image(gray[::-1, ::-1])  # negative strides
    np.testing.assert_allclose(flipped[0, 0].numpy(), gray[::-1, ::-1], atol=1e-7)
    assert to_tensor_image(gray > 0.5).dtype == torch.float32
    with pytest.raises(TypeError):
        to_tensor_image(gray, dtype=torch.int64)


def test_to_tensor_image_keeps_autograd(gray):
    x = torch.tensor(gray, requires_grad=True)
    y = to_tensor_image(x, dtype=torch.float64)
    assert y.shape == (1, 1) + gray.shape and y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones_like(gray))


def test_numpy_tensor_round_trip(gray):
    np.testing.assert_array_equal(
        to_numpy_image(to_tensor_image(gray, dtype=torch.float64)), gray
    )
