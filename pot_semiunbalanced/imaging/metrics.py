"""Image quality metrics: PSNR, SSIM and LPIPS on gray images in [0, 1].

Following the evaluation protocol of the paper (SPEC section 3), every metric
is computed away from the image borders: ``border`` pixels (6 by default) are
cropped from each side of *both* images before anything else. Inputs are
``(H, W)`` numpy arrays or ``(1, 1, H, W)`` / ``(H, W)`` torch tensors; they
are not clipped (clip restored images to ``[0, 1]`` first if they may
overshoot). Non-finite values raise :class:`ValueError`.

LPIPS uses ``lpips.LPIPS(net="alex")`` (v0.1) with real ImageNet AlexNet
weights obtained offline; see :mod:`pot_semiunbalanced.imaging._lpips_weights`
for where they come from.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from ._lpips_weights import build_lpips_alex
from .io import to_numpy_image, to_tensor_image

__all__ = [
    "DEFAULT_BORDER",
    "LPIPS_MIN_SIZE",
    "crop_border",
    "psnr",
    "ssim",
    "lpips_distance",
    "get_lpips_model",
    "clear_lpips_model_cache",
    "evaluate",
]

#: Pixels ignored on each side of the images by default (paper, Table I).
DEFAULT_BORDER = 6

#: Smallest side (after cropping) that AlexNet's two max-pooling stages accept.
LPIPS_MIN_SIZE = 31

DeviceLike = Optional[Union[str, torch.device]]

_MODEL_CACHE: Dict[str, torch.nn.Module] = {}
_MODEL_LOCK = threading.Lock()


def crop_border(img: Any, border: int) -> Any:
    """Remove ``border`` pixels from each side of the last two axes.

    Parameters
    ----------
    img : numpy.ndarray or torch.Tensor
        Array whose last two axes are (height, width).
    border : int
        Non-negative number of pixels removed on every side.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        A view of ``img`` of size ``(H - 2 border, W - 2 border)``.

    Raises
    ------
    ValueError
        If ``border`` is negative, not an integer, or leaves no pixel.
    """
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"border must be a non-negative integer, got {border!r}")
    border = int(border)
    h, w = int(img.shape[-2]), int(img.shape[-1])
    if 2 * border >= min(h, w):
        raise ValueError(f"border={border} leaves no pixel of a {h}x{w} image")
    if border == 0:
        return img
    return img[..., border : h - border, border : w - border]


def _prepare_numpy(x: Any, ref: Any, border: int) -> Tuple[np.ndarray, np.ndarray]:
    a = to_numpy_image(x, dtype=np.float64)
    b = to_numpy_image(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs reference {b.shape}")
    a, b = crop_border(a, border), crop_border(b, border)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("images contain NaN or infinite values")
    return a, b


def _check_data_range(data_range: float) -> float:
    value = float(data_range)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return value


def psnr(x: Any, ref: Any, *, border: int = DEFAULT_BORDER, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Estimated image.
    ref : numpy.ndarray or torch.Tensor
        Reference (ground-truth) image of the same size.
    border : int, optional
        Pixels cropped from each side of both images first (6 by default).
    data_range : float, optional
        Peak value, 1.0 for images in ``[0, 1]``.

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the cropped images are identical.
    """
    peak = _check_data_range(data_range)
    a, b = _prepare_numpy(x, ref, border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def ssim(x: Any, ref: Any, *, border: int = DEFAULT_BORDER, data_range: float = 1.0) -> float:
    """Mean structural similarity, via :func:`skimage.metrics.structural_similarity`.

    scikit-image's defaults are used, with ``data_range`` given explicitly:
    a 7x7 uniform (not Gaussian) window, ``K1 = 0.01``, ``K2 = 0.03`` and
    sample covariances (``ddof = 1``). scikit-image averages the SSIM map after
    discarding its 3 outermost pixels, i.e. ``border + 3`` pixels from the
    original edges are excluded from the mean.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Estimated image.
    ref : numpy.ndarray or torch.Tensor
        Reference image of the same size.
    border : int, optional
        Pixels cropped from each side of both images first (6 by default).
    data_range : float, optional
        Dynamic range of the images, 1.0 for ``[0, 1]``.

    Returns
    -------
    float
        Mean SSIM, 1.0 for identical images.

    Raises
    ------
    ValueError
        If the cropped images are smaller than 7x7.
    """
    from skimage.metrics import structural_similarity

    peak = _check_data_range(data_range)
    a, b = _prepare_numpy(x, ref, border)
    if min(a.shape) < 7:
        raise ValueError(f"SSIM needs at least 7x7 pixels after cropping, got {a.shape}")
    return float(structural_similarity(a, b, data_range=peak))


def _device_key(device: DeviceLike) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def get_lpips_model(device: DeviceLike = None) -> torch.nn.Module:
    """Return the shared LPIPS (AlexNet, v0.1) model with real weights.

    The model is built once per device and cached; it is in eval mode with
    gradients disabled. Treat it as read-only. The weight source is looked up
    at the first call (see :func:`~pot_semiunbalanced.imaging._lpips_weights.find_alexnet_weights`);
    call :func:`clear_lpips_model_cache` after changing ``POT_SEMIUNBALANCED_ALEXNET``.

    Parameters
    ----------
    device : str or torch.device, optional
        Device of the model; ``None`` means the CPU.

    Returns
    -------
    torch.nn.Module
        An ``lpips.LPIPS(net="alex")`` model; ``model.alexnet_weights`` tells
        which file the AlexNet trunk came from.

    Raises
    ------
    RuntimeError
        If no AlexNet weights are available offline (the message explains how
        to install them).
    """
    dev = _device_key(device)
    key = str(dev)
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is None:
            model = build_lpips_alex(device=dev)
            _MODEL_CACHE[key] = model
    return model


def clear_lpips_model_cache() -> None:
    """Forget the cached LPIPS models, so the next use rebuilds them."""
    with _MODEL_LOCK:
        _MODEL_CACHE.clear()


def lpips_distance(
    x: Any,
    ref: Any,
    *,
    border: int = DEFAULT_BORDER,
    device: DeviceLike = None,
) -> float:
    """LPIPS distance (AlexNet, v0.1) between two gray images in ``[0, 1]``.

    The gray image is repeated on three channels and mapped to ``[-1, 1]``
    (``2 x - 1``), the input convention of ``lpips.LPIPS``.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Estimated image, ``(H, W)`` or ``(1, 1, H, W)``.
    ref : numpy.ndarray or torch.Tensor
        Reference image of the same size.
    border : int, optional
        Pixels cropped from each side of both images first (6 by default).
    device : str or torch.device, optional
        Where to run the network; ``None`` means the device of ``x`` when it is
        a tensor, else the CPU.

    Returns
    -------
    float
        LPIPS distance (0 for identical images; lower is more similar).

    Raises
    ------
    ValueError
        If the shapes differ, values are non-finite, or the cropped images are
        smaller than :data:`LPIPS_MIN_SIZE` on a side.
    RuntimeError
        If no AlexNet weights are available (see :func:`get_lpips_model`).
    """
    if device is None:
        device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    dev = _device_key(device)
    a = to_tensor_image(x, dtype=torch.float32, device=dev).detach()
    b = to_tensor_image(ref, dtype=torch.float32, device=dev).detach()
    if a.shape != b.shape:
        raise ValueError(
            f"image shapes differ: {tuple(a.shape[-2:])} vs reference {tuple(b.shape[-2:])}"
        )
    a, b = crop_border(a, border), crop_border(b, border)
    if min(a.shape[-2:]) < LPIPS_MIN_SIZE:
        raise ValueError(
            f"LPIPS (AlexNet) needs at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels after "
            f"cropping, got {tuple(a.shape[-2:])}"
        )
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("images contain NaN or infinite values")
    model = get_lpips_model(dev)
    with torch.no_grad():
        value = model(a.expand(-1, 3, -1, -1) * 2.0 - 1.0, b.expand(-1, 3, -1, -1) * 2.0 - 1.0)
    return float(value.reshape(()).item())


def evaluate(
    x: Any,
    ref: Any,
    *,
    border: int = DEFAULT_BORDER,
    device: DeviceLike = None,
) -> Dict[str, float]:
    """PSNR, SSIM and LPIPS of ``x`` against ``ref``, all ``border`` px from the edges.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Estimated image in ``[0, 1]``.
    ref : numpy.ndarray or torch.Tensor
        Reference image in ``[0, 1]``, same size.
    border : int, optional
        Pixels cropped from each side of both images first (6 by default).
    device : str or torch.device, optional
        Device for LPIPS (see :func:`lpips_distance`).

    Returns
    -------
    dict
        ``{"psnr": dB, "ssim": mean SSIM, "lpips": distance}``, all floats,
        with ``data_range = 1``.
    """
    return {
        "psnr": psnr(x, ref, border=border),
        "ssim": ssim(x, ref, border=border),
        "lpips": lpips_distance(x, ref, border=border, device=device),
    }
