"""Reading and writing grayscale images in [0, 1], and numpy/torch conversions.

All images in this package are grayscale, with intensities in ``[0, 1]``: a
numpy array of shape ``(H, W)`` or a torch tensor of shape ``(1, 1, H, W)``.

Reading (:func:`read_image`) goes through :mod:`imageio` (the I/O library of
scikit-image, installed with it), so any format imageio reads works: PNG, JPEG,
TIFF, BMP, GIF, ... The stored values are mapped to ``[0, 1]`` as follows:

* unsigned integers are divided by the largest value of their type
  (8-bit by 255, 16-bit by 65535, 32-bit by 2**32 - 1);
* booleans become 0.0 and 1.0;
* floating-point images are kept as they are if every value lies in ``[0, 1]``
  (up to a tolerance of 1e-6, then clipped); otherwise reading fails with a
  :class:`ValueError` -- nothing is rescaled silently;
* signed integer and complex images are rejected.

Colour is reduced to gray with the weights of :func:`skimage.color.rgb2gray`
(``0.2125 R + 0.7154 G + 0.0721 B``, ITU-R BT.709 luma applied to the stored,
gamma-encoded values). An alpha channel is discarded (pixels are not
composited on a background); a two-channel image is read as gray plus alpha.
For 8- or 16-bit RGB input this gives exactly ``rgb2gray(image)``.

Writing (:func:`write_image`) clips to ``[0, 1]``, rounds to 8- or 16-bit
unsigned integers and lets imageio choose the format from the file suffix.
"""
from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

__all__ = ["read_image", "write_image", "to_numpy_image", "to_tensor_image", "ImageLike"]

ImageLike = Union[np.ndarray, torch.Tensor]
PathLike = Union[str, os.PathLike]

_FLOAT_TOLERANCE = 1e-6
_SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")
_SHAPE_HELP = "expected an image of shape (H, W), (1, H, W) or (1, 1, H, W)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0].strip() if text else ""
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def _squeeze_to_2d(shape: tuple) -> tuple:
    """Drop leading singleton axes down to two; raise if the result is not 2-D."""
    dims = tuple(int(s) for s in shape)
    while len(dims) > 2 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) != 2:
        raise ValueError(f"{_SHAPE_HELP}, got shape {tuple(int(s) for s in shape)}")
    return dims


def to_numpy_image(x: Any, *, dtype: Any = np.float64) -> np.ndarray:
    """Convert an image to a 2-D numpy array.

    Parameters
    ----------
    x : numpy.ndarray, torch.Tensor or array-like
        Image of shape ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``. Tensors are
        detached and moved to the CPU.
    dtype : numpy dtype, optional
        Output dtype, float64 by default. Values are converted, never rescaled.

    Returns
    -------
    numpy.ndarray
        A new ``(H, W)`` array (never a view of ``x``).

    Raises
    ------
    ValueError
        If ``x`` does not have one of the accepted shapes.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu")
        if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
            t = t.to(torch.float32)  # bfloat16 and float8 have no numpy equivalent
        arr = t.numpy()
    else:
        arr = np.asarray(x)
    h, w = _squeeze_to_2d(arr.shape)
    return np.array(arr.reshape(h, w), dtype=dtype, copy=True)


def to_tensor_image(
    a: Any,
    *,
    dtype: torch.dtype = torch.float32,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.Tensor:
    """Convert an image to a torch tensor of shape ``(1, 1, H, W)``.

    Parameters
    ----------
    a : numpy.ndarray, torch.Tensor or array-like
        Image of shape ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``.
    dtype : torch.dtype, optional
        Floating-point output dtype, float32 by default. Values are converted,
        never rescaled.
    device : str or torch.device, optional
        Output device. ``None`` keeps a tensor's device and puts arrays on the CPU.

    Returns
    -------
    torch.Tensor
        A ``(1, 1, H, W)`` tensor. Arrays are copied. A tensor input keeps its
        autograd history (the result is a reshape/conversion of it, and may
        share its memory when no conversion is needed).

    Raises
    ------
    ValueError
        If ``a`` does not have one of the accepted shapes.
    TypeError
        If ``dtype`` is not a floating-point torch dtype.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    if isinstance(a, torch.Tensor):
        h, w = _squeeze_to_2d(a.shape)
        return a.reshape(1, 1, h, w).to(device=device, dtype=dtype)
    arr = np.asarray(a)
    h, w = _squeeze_to_2d(arr.shape)
    arr = np.ascontiguousarray(arr.reshape(h, w))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    return torch.tensor(arr, dtype=dtype, device=device).reshape(1, 1, h, w)


def _resolve_float_dtypes(dtype: Any, as_tensor: bool) -> Union[np.dtype, torch.dtype]:
    if dtype is None:
        return torch.float32 if as_tensor else np.dtype(np.float64)
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be floating point, got {dtype}")
        return dtype if as_tensor else torch.empty(0, dtype=dtype).numpy().dtype
    np_dtype = np.dtype(dtype)
    if np_dtype.kind != "f":
        raise TypeError(f"dtype must be floating point, got {np_dtype}")
    return torch.from_numpy(np.empty(0, dtype=np_dtype)).dtype if as_tensor else np_dtype


def _to_unit_interval(raw: np.ndarray, path: Path) -> np.ndarray:
    """Map stored pixel values to float64 in [0, 1] (channels untouched)."""
    kind = raw.dtype.kind
    if kind == "b":
        return raw.astype(np.float64)
    if kind == "u":
        return raw.astype(np.float64) / float(np.iinfo(raw.dtype).max)
    if kind == "f":
        data = raw.astype(np.float64)
        if not np.all(np.isfinite(data)):
            raise ValueError(f"cannot read image {path}: it contains NaN or infinite values")
        lo, hi = float(data.min()), float(data.max())
        if lo < -_FLOAT_TOLERANCE or hi > 1.0 + _FLOAT_TOLERANCE:
            raise ValueError(
                f"cannot read image {path}: floating-point values span [{lo:g}, {hi:g}], "
                "outside [0, 1]; rescale the data to [0, 1] or store it as 8/16-bit integers"
            )
        return np.clip(data, 0.0, 1.0)
    raise ValueError(
        f"cannot read image {path}: unsupported pixel type {raw.dtype} "
        "(expected unsigned integers, booleans or floats in [0, 1])"
    )


def _to_gray(img: np.ndarray, path: Path) -> np.ndarray:
    """Reduce (H, W), (H, W, 1..4) to (H, W) gray, following rgb2gray weights."""
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[-1] in (1, 2):
        return img[..., 0]
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        from skimage.color import rgb2gray

        return rgb2gray(img[..., :3])
    raise ValueError(
        f"cannot read image {path}: expected a single gray, gray+alpha, RGB or RGBA "
        f"image, got an array of shape {img.shape} (multi-page/volume files are not "
        "supported)"
    )


def read_image(
    path: PathLike,
    *,
    as_tensor: bool = False,
    dtype: Any = None,
    device: Optional[Union[str, torch.device]] = None,
) -> ImageLike:
    """Read an image file as a grayscale image in ``[0, 1]``.

    Parameters
    ----------
    path : str or os.PathLike
        Image file in any format imageio reads (PNG, JPEG, TIFF, ...). For files
        holding several frames, the first one is read.
    as_tensor : bool, optional
        Return a ``(1, 1, H, W)`` torch tensor instead of an ``(H, W)`` array.
    dtype : numpy or torch floating dtype, optional
        Output dtype; ``None`` means float64 for arrays and float32 for tensors.
    device : str or torch.device, optional
        Device of the tensor when ``as_tensor=True`` (CPU by default).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Gray intensities in ``[0, 1]``. See the module docstring for how integer,
        boolean, float and colour images are converted (8-bit / 255,
        16-bit / 65535, ``skimage.color.rgb2gray`` weights, alpha dropped).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        ``"cannot read image <path>: <reason>"`` if the file is a directory, not
        an image, corrupt, has an unsupported layout or pixel type, or holds
        float values outside ``[0, 1]``.
    TypeError
        If ``dtype`` is not a floating-point dtype.
    """
    out_dtype = _resolve_float_dtypes(dtype, as_tensor)
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"cannot read image {path}: no such file")
    if path.is_dir():
        raise ValueError(f"cannot read image {path}: it is a directory")

    import imageio.v3 as iio

    reason = None
    with warnings.catch_warnings():
        # On content it cannot identify, imageio probes all its plugins, which warn
        # (deprecations) and leave files for the garbage collector to close.
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            raw = np.asarray(iio.imread(path, index=0))
        except Exception as exc:  # imageio raises OSError, ValueError, SyntaxError, ...
            reason = _first_line(exc)
        if reason is not None:
            # The failed probes' file objects are only reachable from the dropped
            # traceback: close them now, while their ResourceWarnings are silenced.
            gc.collect()
    if reason is not None:
        raise ValueError(f"cannot read image {path}: {reason}")

    if raw.size == 0:
        raise ValueError(f"cannot read image {path}: it holds no pixels (shape {raw.shape})")
    if raw.ndim not in (2, 3):
        raise ValueError(
            f"cannot read image {path}: expected a 2-D image, got an array of shape {raw.shape}"
        )
    gray = np.clip(_to_gray(_to_unit_interval(raw, path), path), 0.0, 1.0)

    if as_tensor:
        return to_tensor_image(gray, dtype=out_dtype, device=device)
    return np.ascontiguousarray(gray, dtype=out_dtype)


def write_image(path: PathLike, img: Any, *, bit_depth: Optional[int] = None) -> Path:
    """Write a grayscale image in ``[0, 1]`` as an 8- or 16-bit file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its suffix selects the format (``.png``, ``.tif``/``.tiff``,
        or any other format imageio writes, e.g. ``.jpg``, which is lossy).
        Missing parent directories are created.
    img : numpy.ndarray, torch.Tensor or array-like
        Floating-point (or boolean) image of shape ``(H, W)``, ``(1, H, W)`` or
        ``(1, 1, H, W)``. Values are clipped to ``[0, 1]`` before quantisation.
    bit_depth : {8, 16}, optional
        Bits per pixel. ``None`` means 16 for TIFF suffixes and 8 otherwise;
        16 bits is supported for PNG and TIFF only.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        If ``img`` holds integers (their scale is ambiguous: convert to [0, 1]).
    ValueError
        If the image has a wrong shape or non-finite values, ``bit_depth`` is
        invalid, or the file cannot be written (``"cannot write image <path>: ..."``).
    """
    path = Path(os.fspath(path))
    suffix = path.suffix.lower()
    if bit_depth is None:
        bit_depth = 16 if suffix in _TIFF_SUFFIXES else 8
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and suffix not in _SIXTEEN_BIT_SUFFIXES:
        raise ValueError(
            f"cannot write image {path}: 16-bit output needs a .png, .tif or .tiff suffix"
        )
    if not suffix:
        raise ValueError(f"cannot write image {path}: no file suffix to choose a format from")

    if isinstance(img, torch.Tensor):
        is_real = img.is_floating_point() or img.dtype == torch.bool
        source_dtype: Any = img.dtype
    else:
        img = np.asarray(img)
        is_real = img.dtype.kind in "fb"
        source_dtype = img.dtype
    if not is_real:
        raise TypeError(
            f"write_image expects a floating-point image in [0, 1], got dtype {source_dtype}"
        )
    data = to_numpy_image(img, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"cannot write image {path}: it contains NaN or infinite values")

    max_value = 255 if bit_depth == 8 else 65535
    quantized = np.rint(np.clip(data, 0.0, 1.0) * max_value).astype(
        np.uint8 if bit_depth == 8 else np.uint16
    )

    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        iio.imwrite(path, quantized)
    except Exception as exc:
        raise ValueError(f"cannot write image {path}: {_first_line(exc)}") from exc
    return path
