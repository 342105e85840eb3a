"""Linear imaging operators on ``(B, C, H, W)`` tensors, each with its exact adjoint.

Everything here is a pure function of torch tensors: the output has the dtype and
device of the input image, every operation is differentiable by autograd, and every
forward operator ``A`` comes with a function computing ``A^T`` such that
``<A x, y> = <x, A^T y>`` holds to rounding error.

Conventions
-----------
Filtering is a **cross-correlation**, as in :func:`torch.nn.functional.conv2d`
(and in the original Wasserstein Patch Prior code, which uses ``nn.Conv2d``)::

    (H x)[b, c, i, j] = sum_{u, v} k[u, v] * xp[b, c, i + u, j + v]

where ``xp`` is ``x`` extended according to ``boundary``. The same kernel is applied
to every channel independently. For the symmetric Gaussian kernels of the paper,
correlation and convolution coincide.

Boundary modes (argument ``boundary``):

``"valid"``
    No extension: an ``(H, W)`` image filtered by a ``(kh, kw)`` kernel gives
    ``(H - kh + 1, W - kw + 1)``. Output pixel ``(i, j)`` is centred on input
    position ``(i + (kh - 1) / 2, j + (kw - 1) / 2)``. This is the WPP convention.
``"circular"``
    Periodic extension; output has the input's size.
``"reflect"``
    Mirror extension without repeating the edge pixel (``d c b | a b c d``), as in
    numpy/torch ``"reflect"`` (scipy's ``"mirror"``); output has the input's size.
``"symmetric"``
    Mirror extension repeating the edge pixel (``b a | a b c d``), numpy's
    ``"symmetric"`` (scipy's ``"reflect"``); output has the input's size.
``"zero"``
    Zero extension; output has the input's size.

In the same-size modes the image is extended by ``(k - 1) // 2`` pixels before and
``k - 1 - (k - 1) // 2`` after, on each axis. An odd kernel is thus exactly centred; an
even kernel (16 or 4 in the paper) has its centre ``(k - 1) / 2`` on the half-pixel
grid, and output pixel ``i`` is centred on input position ``i + 1/2`` (a half-pixel
shift toward larger indices). The extension modes other than ``"zero"`` are gathers
by an index map, so they work for any kernel size, even one larger than the image;
only ``"valid"`` requires the image to be at least as large as the kernel.
The same-size modes equal ``scipy.ndimage.correlate(x, k, mode=m, origin=o)`` with
``m = "wrap"``, ``"mirror"``, ``"reflect"``, ``"constant"`` for ``"circular"``,
``"reflect"``, ``"symmetric"``, ``"zero"``, and ``o = -1`` on an axis of even kernel
size (0 on an odd one).

Strided operators (``sr_forward``, ``pyramid_down``) are filtering followed by
subsampling with offset 0, computed as a single strided correlation: an image of side
``n`` gives ``floor((n - k) / s) + 1`` with ``"valid"`` (256 -> 61 for the 16x16 /
stride 4 blur, 256 -> 127 for the 4x4 / stride 2 pyramid) and ``ceil(n / s)`` with the
same-size modes (256 -> 64 and 256 -> 128).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from pot_semiunbalanced._utils import RngLike, as_generator

__all__ = [
    "BOUNDARY_MODES",
    "gaussian_kernel",
    "blur",
    "blur_adjoint",
    "subsample",
    "subsample_adjoint",
    "sr_forward",
    "sr_adjoint",
    "sr_output_shape",
    "simulate_lr",
    "pyramid_down",
    "pyramid_down_adjoint",
    "pyramid_down_output_shape",
    "pyramid",
    "bicubic_upsample",
    "bilinear_upsample",
]

#: Boundary modes accepted by the filtering operators.
BOUNDARY_MODES: Tuple[str, ...] = ("valid", "circular", "reflect", "symmetric", "zero")

ShapeLike = Sequence[int]
OffsetLike = Union[int, Tuple[int, int]]


# ----------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------
def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}: "
            f"convert it with torch.as_tensor"
        )
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have 4 dimensions (B, C, H, W), got shape {tuple(x.shape)}: "
            f"add the missing batch/channel axes, e.g. {name}[None, None] for an (H, W) image"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}: "
            f"convert it with {name}.float() or {name}.double()"
        )


def _check_boundary(boundary: str) -> None:
    if boundary not in BOUNDARY_MODES:
        raise ValueError(
            f"unknown boundary mode boundary={boundary!r}: use one of {BOUNDARY_MODES}"
        )


def _check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}: pass {name}>={minimum}")
    return int(value)


def _prepare_kernel(kernel: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    kernel = torch.as_tensor(kernel)
    if kernel.ndim != 2:
        raise ValueError(
            f"kernel must be a 2-D tensor (kh, kw), got shape {tuple(kernel.shape)}: "
            f"squeeze the extra axes (e.g. kernel[0, 0] for a conv2d weight)"
        )
    if kernel.shape[0] < 1 or kernel.shape[1] < 1:
        raise ValueError(f"kernel must be non-empty, got shape {tuple(kernel.shape)}")
    return kernel.to(dtype=like.dtype, device=like.device)


def _spatial_shape(input_shape: ShapeLike, y: torch.Tensor, name: str = "input_shape") -> Tuple[int, int]:
    """Return (H, W) from an (H, W) or (B, C, H, W) shape, checking it against y."""
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise ValueError(
            f"{name} must be a shape (H, W) or (B, C, H, W), got {input_shape!r}"
        ) from None
    if len(shape) == 4:
        if shape[:2] != tuple(y.shape[:2]):
            raise ValueError(
                f"{name}={shape} has batch/channels {shape[:2]} but y has "
                f"{tuple(y.shape[:2])}: pass the shape of the image given to the forward operator"
            )
        shape = shape[2:]
    if len(shape) != 2:
        raise ValueError(f"{name} must be a shape (H, W) or (B, C, H, W), got {input_shape!r}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} must have positive spatial sizes, got {input_shape!r}")
    return shape


def _pair(value: OffsetLike, name: str) -> Tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (row, col), got {value!r}")
        a, b = value
    else:
        a = b = value
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(a), int(b)


# ----------------------------------------------------------------------------------
# boundary extension and its adjoint
# ----------------------------------------------------------------------------------
def _pads(k: int) -> Tuple[int, int]:
    before = (k - 1) // 2
    return before, k - 1 - before


def _extension_index(n: int, before: int, after: int, boundary: str) -> np.ndarray:
    """Source index in [0, n) of every position of the extended axis."""
    j = np.arange(-before, n + after)
    if boundary == "circular":
        return j % n
    if boundary == "reflect":
        if n == 1:
            return np.zeros_like(j)
        period = 2 * (n - 1)
        m = j % period
        return np.where(m >= n, period - m, m)
    if boundary == "symmetric":
        period = 2 * n
        m = j % period
        return np.where(m >= n, period - 1 - m, m)
    raise AssertionError(boundary)  # pragma: no cover - guarded by callers


def _extend(x: torch.Tensor, pads: Tuple[int, int, int, int], boundary: str) -> torch.Tensor:
    """Extend x by (top, bottom, left, right) pixels according to ``boundary``."""
    top, bottom, left, right = pads
    if boundary == "valid" or not any(pads):
        return x
    if boundary == "zero":
        return F.pad(x, (left, right, top, bottom))
    H, W = x.shape[-2:]
    ih = torch.as_tensor(_extension_index(H, top, bottom, boundary), device=x.device)
    iw = torch.as_tensor(_extension_index(W, left, right, boundary), device=x.device)
    return x.index_select(-2, ih).index_select(-1, iw)


def _extend_adjoint(
    z: torch.Tensor, H: int, W: int, pads: Tuple[int, int, int, int], boundary: str
) -> torch.Tensor:
    """Adjoint of :func:`_extend` for an original spatial size (H, W)."""
    top, bottom, left, right = pads
    if boundary == "valid" or not any(pads):
        return z
    if boundary == "zero":
        return z[..., top : top + H, left : left + W]
    ih = torch.as_tensor(_extension_index(H, top, bottom, boundary), device=z.device)
    iw = torch.as_tensor(_extension_index(W, left, right, boundary), device=z.device)
    out_w = z.new_zeros(z.shape[:-1] + (W,)).index_add(-1, iw, z)
    return out_w.new_zeros(z.shape[:-2] + (H, W)).index_add(-2, ih, out_w)


def _filter_pads(kh: int, kw: int, boundary: str) -> Tuple[int, int, int, int]:
    if boundary == "valid":
        return (0, 0, 0, 0)
    return _pads(kh) + _pads(kw)


def _strided_size(n: int, k: int, stride: int, boundary: str) -> int:
    if boundary == "valid":
        return (n - k) // stride + 1
    return (n - 1) // stride + 1


def _check_fits(H: int, W: int, kh: int, kw: int, boundary: str, name: str) -> None:
    if boundary == "valid" and (H < kh or W < kw):
        raise ValueError(
            f"{name} of spatial size ({H}, {W}) is smaller than the kernel ({kh}, {kw}) "
            f"with boundary='valid': use a larger image, a smaller kernel, or a same-size "
            f"boundary mode ('circular', 'reflect', 'symmetric', 'zero')"
        )


def _correlate(x: torch.Tensor, kernel: torch.Tensor, boundary: str, stride: int) -> torch.Tensor:
    B, C, H, W = x.shape
    kh, kw = kernel.shape
    _check_fits(H, W, kh, kw, boundary, "x")
    xp = _extend(x, _filter_pads(kh, kw, boundary), boundary)
    Hp, Wp = xp.shape[-2:]
    y = F.conv2d(xp.reshape(B * C, 1, Hp, Wp), kernel[None, None], stride=stride)
    return y.reshape(B, C, y.shape[-2], y.shape[-1])


def _correlate_adjoint(
    y: torch.Tensor, kernel: torch.Tensor, boundary: str, stride: int, H: int, W: int
) -> torch.Tensor:
    B, C, ho, wo = y.shape
    kh, kw = kernel.shape
    _check_fits(H, W, kh, kw, boundary, "input_shape")
    expected = (_strided_size(H, kh, stride, boundary), _strided_size(W, kw, stride, boundary))
    if (ho, wo) != expected:
        raise ValueError(
            f"y has spatial shape {(ho, wo)} but an input of size {(H, W)} with a "
            f"{(kh, kw)} kernel, stride {stride} and boundary={boundary!r} gives {expected}: "
            f"pass the input_shape (and options) used in the forward call"
        )
    pads = _filter_pads(kh, kw, boundary)
    Hp, Wp = H + pads[0] + pads[1], W + pads[2] + pads[3]
    z = F.conv_transpose2d(y.reshape(B * C, 1, ho, wo), kernel[None, None], stride=stride)
    # rows/columns of the extended image never reached by the strided correlation
    z = F.pad(z, (0, Wp - z.shape[-1], 0, Hp - z.shape[-2]))
    z = z.reshape(B, C, Hp, Wp)
    return _extend_adjoint(z, H, W, pads, boundary)


# ----------------------------------------------------------------------------------
# public operators
# ----------------------------------------------------------------------------------
def gaussian_kernel(
    size: int,
    std: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.Tensor:
    """Normalized 2-D Gaussian kernel on a ``size x size`` grid.

    ``k[u, v] ∝ exp(-((u - c)^2 + (v - c)^2) / (2 std^2))`` for ``u, v = 0..size-1``
    with centre ``c = (size - 1) / 2``, normalized to sum 1. Computed in float64 with
    numpy, then converted, so it is identical on every device.

    Parameters
    ----------
    size : int
        Side of the kernel (>= 1). Even sizes (16, 4 in the paper) have their centre
        on the half-pixel grid.
    std : float
        Standard deviation in pixels (> 0).
    dtype : torch.dtype, default torch.float32
    device : str or torch.device, optional

    Returns
    -------
    torch.Tensor, shape (size, size)
    """
    size = _check_positive_int(size, "size")
    std = float(std)
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"std must be a positive finite number, got {std}: pass std>0")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t**2) / (2.0 * std**2))
    k = np.outer(g, g)
    k /= k.sum()
    return torch.tensor(k, dtype=dtype, device=device)


def blur(x: torch.Tensor, kernel: torch.Tensor, *, boundary: str = "valid") -> torch.Tensor:
    """Filter every channel of ``x`` by ``kernel`` (cross-correlation).

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
        Floating-point image batch.
    kernel : torch.Tensor, shape (kh, kw)
        Filter; cast to the dtype/device of ``x``.
    boundary : {"valid", "circular", "reflect", "symmetric", "zero"}, default "valid"
        See the module docstring for the extension and centring conventions.

    Returns
    -------
    torch.Tensor
        Shape (B, C, H - kh + 1, W - kw + 1) for "valid", (B, C, H, W) otherwise.
    """
    _check_image(x, "x")
    _check_boundary(boundary)
    return _correlate(x, _prepare_kernel(kernel, x), boundary, 1)


def blur_adjoint(
    y: torch.Tensor,
    kernel: torch.Tensor,
    *,
    boundary: str = "valid",
    input_shape: Optional[ShapeLike] = None,
) -> torch.Tensor:
    """Exact adjoint of :func:`blur`.

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, h, w)
        Element of the output space of :func:`blur`.
    kernel : torch.Tensor, shape (kh, kw)
    boundary : str, default "valid"
        Same mode as the forward call.
    input_shape : (H, W) or (B, C, H, W), optional
        Spatial size of the forward input. Defaults to ``(h + kh - 1, w + kw - 1)`` for
        "valid" and ``(h, w)`` for the same-size modes.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
    """
    _check_image(y, "y")
    _check_boundary(boundary)
    k = _prepare_kernel(kernel, y)
    kh, kw = k.shape
    if input_shape is None:
        h, w = y.shape[-2:]
        H, W = (h + kh - 1, w + kw - 1) if boundary == "valid" else (h, w)
    else:
        H, W = _spatial_shape(input_shape, y)
    return _correlate_adjoint(y, k, boundary, 1, H, W)


def subsample(x: torch.Tensor, factor: int, *, offset: OffsetLike = 0) -> torch.Tensor:
    """Keep one pixel out of ``factor`` along each axis: ``x[..., o::factor, o::factor]``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    factor : int
        Subsampling factor (stride), >= 1.
    offset : int or (int, int), default 0
        Index of the first kept row (and column), ``0 <= offset < factor``.

    Returns
    -------
    torch.Tensor, shape (B, C, ceil((H - oh) / factor), ceil((W - ow) / factor))
    """
    _check_image(x, "x")
    factor = _check_positive_int(factor, "factor")
    oh, ow = _check_offset(offset, factor)
    H, W = x.shape[-2:]
    if oh >= H or ow >= W:
        raise ValueError(
            f"offset={offset!r} is outside the image of spatial size {(H, W)}: use a smaller offset"
        )
    return x[..., oh::factor, ow::factor]


def _check_offset(offset: OffsetLike, factor: int) -> Tuple[int, int]:
    oh, ow = _pair(offset, "offset")
    if not (0 <= oh < factor and 0 <= ow < factor):
        raise ValueError(
            f"offset={offset!r} must satisfy 0 <= offset < factor={factor}: reduce it modulo factor"
        )
    return oh, ow


def subsample_adjoint(
    y: torch.Tensor, factor: int, *, input_shape: ShapeLike, offset: OffsetLike = 0
) -> torch.Tensor:
    """Exact adjoint of :func:`subsample`: zero insertion.

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, h, w)
    factor : int
    input_shape : (H, W) or (B, C, H, W)
        Spatial size of the forward input (needed: several sizes give the same h, w).
    offset : int or (int, int), default 0

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
        Zero everywhere except ``out[..., oh::factor, ow::factor] = y``.
    """
    _check_image(y, "y")
    factor = _check_positive_int(factor, "factor")
    oh, ow = _check_offset(offset, factor)
    H, W = _spatial_shape(input_shape, y)
    expected = (len(range(oh, H, factor)), len(range(ow, W, factor)))
    if tuple(y.shape[-2:]) != expected or 0 in expected:
        raise ValueError(
            f"y has spatial shape {tuple(y.shape[-2:])} but subsampling input_shape {(H, W)} "
            f"by factor={factor} with offset={offset!r} gives {expected}: pass the input_shape "
            f"used in the forward call"
        )
    out = y.new_zeros(y.shape[:2] + (H, W))
    out[..., oh::factor, ow::factor] = y
    return out


def sr_output_shape(
    image_shape: ShapeLike,
    *,
    kernel_size: int = 16,
    factor: int = 4,
    boundary: str = "valid",
) -> Tuple[int, int]:
    """Spatial shape ``(h, w)`` of :func:`sr_forward` for an input of ``image_shape``.

    ``floor((n - kernel_size) / factor) + 1`` per axis for "valid" (256 -> 61),
    ``ceil(n / factor)`` for the same-size modes (256 -> 64).
    """
    _check_boundary(boundary)
    kernel_size = _check_positive_int(kernel_size, "kernel_size")
    factor = _check_positive_int(factor, "factor")
    shape = tuple(int(s) for s in image_shape)[-2:]
    if len(shape) != 2:
        raise ValueError(f"image_shape must be (H, W) or (B, C, H, W), got {image_shape!r}")
    H, W = shape
    _check_fits(H, W, kernel_size, kernel_size, boundary, "image")
    return (
        _strided_size(H, kernel_size, factor, boundary),
        _strided_size(W, kernel_size, factor, boundary),
    )


def sr_forward(
    x: torch.Tensor,
    *,
    kernel_size: int = 16,
    std: float = 2.0,
    factor: int = 4,
    boundary: str = "valid",
) -> torch.Tensor:
    """Super-resolution forward operator ``S H x``: Gaussian blur then subsampling.

    Equal to ``subsample(blur(x, gaussian_kernel(kernel_size, std), boundary=boundary),
    factor, offset=0)``, computed as one strided correlation.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    kernel_size : int, default 16
    std : float, default 2.0
    factor : int, default 4
    boundary : str, default "valid"

    Returns
    -------
    torch.Tensor, shape (B, C, h, w)
        ``(h, w) = sr_output_shape((H, W), ...)``; a 256 x 256 image gives 61 x 61 with
        "valid" and 64 x 64 with a same-size mode.
    """
    _check_image(x, "x")
    _check_boundary(boundary)
    factor = _check_positive_int(factor, "factor")
    kernel_size = _check_positive_int(kernel_size, "kernel_size")
    k = gaussian_kernel(kernel_size, std, dtype=x.dtype, device=x.device)
    return _correlate(x, k, boundary, factor)


def sr_adjoint(
    y: torch.Tensor,
    *,
    input_shape: ShapeLike,
    kernel_size: int = 16,
    std: float = 2.0,
    factor: int = 4,
    boundary: str = "valid",
) -> torch.Tensor:
    """Exact adjoint ``H^T S^T y`` of :func:`sr_forward`.

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, h, w)
    input_shape : (H, W) or (B, C, H, W)
        Spatial size of the high-resolution image.
    kernel_size, std, factor, boundary
        As in the forward call.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
    """
    _check_image(y, "y")
    _check_boundary(boundary)
    factor = _check_positive_int(factor, "factor")
    kernel_size = _check_positive_int(kernel_size, "kernel_size")
    H, W = _spatial_shape(input_shape, y)
    k = gaussian_kernel(kernel_size, std, dtype=y.dtype, device=y.device)
    return _correlate_adjoint(y, k, boundary, factor, H, W)


def simulate_lr(
    x_hr: torch.Tensor,
    *,
    kernel_size: int = 16,
    std: float = 2.0,
    factor: int = 4,
    noise_std: float = 0.01,
    boundary: str = "valid",
    rng: RngLike = None,
) -> torch.Tensor:
    """Simulate a low-resolution observation ``y = S H x + eta``, ``eta ~ N(0, noise_std^2)``.

    The noise is drawn in float64 with numpy from ``as_generator(rng)`` and then
    converted to the dtype/device of ``x_hr``, so a seed gives the same observation on
    every device. No clipping is applied.

    Parameters
    ----------
    x_hr : torch.Tensor, shape (B, C, H, W)
        High-resolution image(s), values typically in [0, 1].
    kernel_size, std, factor, boundary
        Forward operator, see :func:`sr_forward`.
    noise_std : float, default 0.01
        Standard deviation of the additive white Gaussian noise (>= 0).
    rng : int, numpy.random.Generator or None

    Returns
    -------
    torch.Tensor, shape (B, C, h, w)
    """
    noise_std = float(noise_std)
    if not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}")
    y = sr_forward(x_hr, kernel_size=kernel_size, std=std, factor=factor, boundary=boundary)
    gen = as_generator(rng)
    noise = gen.standard_normal(size=tuple(y.shape)) * noise_std
    return y + torch.as_tensor(noise, dtype=y.dtype, device=y.device)


def pyramid_down_output_shape(
    image_shape: ShapeLike,
    *,
    kernel_size: int = 4,
    factor: int = 2,
    boundary: str = "valid",
) -> Tuple[int, int]:
    """Spatial shape of :func:`pyramid_down` for an input of ``image_shape``.

    ``floor((n - kernel_size) / factor) + 1`` per axis for "valid" (256 -> 127),
    ``ceil(n / factor)`` for the same-size modes (256 -> 128).
    """
    return sr_output_shape(image_shape, kernel_size=kernel_size, factor=factor, boundary=boundary)


def pyramid_down(
    x: torch.Tensor,
    *,
    kernel_size: int = 4,
    std: float = 1.0,
    factor: int = 2,
    boundary: str = "valid",
) -> torch.Tensor:
    """The pyramid operator ``A``: 4x4 Gaussian (std 1) filtering, then x2 subsampling.

    The default ``boundary="valid"`` is the one of the original WPP code: a side of
    ``n`` pixels becomes ``floor((n - 4) / 2) + 1`` (256 -> 127, 127 -> 62). With a
    same-size mode it becomes ``ceil(n / 2)``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    kernel_size : int, default 4
    std : float, default 1.0
    factor : int, default 2
    boundary : str, default "valid"

    Returns
    -------
    torch.Tensor, shape (B, C, h, w)
    """
    return sr_forward(x, kernel_size=kernel_size, std=std, factor=factor, boundary=boundary)


def pyramid_down_adjoint(
    y: torch.Tensor,
    *,
    input_shape: ShapeLike,
    kernel_size: int = 4,
    std: float = 1.0,
    factor: int = 2,
    boundary: str = "valid",
) -> torch.Tensor:
    """Exact adjoint ``A^T y`` of :func:`pyramid_down`.

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, h, w)
    input_shape : (H, W) or (B, C, H, W)
        Spatial size of the input of the forward call.
    kernel_size, std, factor, boundary
        As in the forward call.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
    """
    return sr_adjoint(
        y, input_shape=input_shape, kernel_size=kernel_size, std=std, factor=factor, boundary=boundary
    )


def pyramid(
    x: torch.Tensor,
    levels: int,
    *,
    kernel_size: int = 4,
    std: float = 1.0,
    factor: int = 2,
    boundary: str = "valid",
) -> List[torch.Tensor]:
    """Multi-scale pyramid ``[x, A x, A^2 x, ..., A^levels x]``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    levels : int
        Number of downsampling steps L >= 0 (the paper uses L = 1).
    kernel_size, std, factor, boundary
        Options of :func:`pyramid_down`.

    Returns
    -------
    list of torch.Tensor, length ``levels + 1``
        Element ``l`` has the spatial shape of ``l`` applications of
        :func:`pyramid_down_output_shape`; element 0 is ``x`` itself (not a copy).
    """
    _check_image(x, "x")
    _check_boundary(boundary)
    levels = _check_positive_int(levels, "levels", minimum=0)
    kernel_size = _check_positive_int(kernel_size, "kernel_size")
    out = [x]
    for level in range(levels):
        h, w = out[-1].shape[-2:]
        if boundary == "valid" and (h < kernel_size or w < kernel_size):
            raise ValueError(
                f"levels={levels} is too many for an image of spatial size {tuple(x.shape[-2:])}: "
                f"level {level} has size {(h, w)}, smaller than the {kernel_size}x{kernel_size} "
                f"kernel; lower levels"
            )
        out.append(
            pyramid_down(out[-1], kernel_size=kernel_size, std=std, factor=factor, boundary=boundary)
        )
    return out


def _size_pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or a pair (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def bicubic_upsample(
    y: torch.Tensor, *, size: Union[int, Sequence[int]], clamp: bool = True
) -> torch.Tensor:
    """Bicubic interpolation of ``y`` to spatial ``size`` (an initialization for SR).

    Uses :func:`torch.nn.functional.interpolate` with ``mode="bicubic"`` and
    ``align_corners=False`` (pixel-centre alignment), then clamps to [0, 1] since
    bicubic interpolation overshoots.

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, h, w)
    size : int or (int, int)
        Output spatial size (H, W).
    clamp : bool, default True
        Clamp the result to [0, 1].

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
    """
    _check_image(y, "y")
    out = F.interpolate(y, size=_size_pair(size), mode="bicubic", align_corners=False)
    return out.clamp(0.0, 1.0) if clamp else out


def bilinear_upsample(y: torch.Tensor, *, size: Union[int, Sequence[int]]) -> torch.Tensor:
    """Bilinear interpolation of ``y`` to spatial ``size`` (pixel-centre alignment).

    ``align_corners=False`` with edge replication: for upsampling this equals
    ``skimage.transform.resize(y, size, order=1, mode="edge")``. The original WPP code
    initializes with resize's default ``mode="reflect"``, which agrees with this
    function except on the outermost output pixels, whose sample position falls
    outside the input grid (2 px per side for 61 -> 256). Bilinear interpolation does not overshoot the input range.

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, h, w)
    size : int or (int, int)
        Output spatial size (H, W).

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
    """
    _check_image(y, "y")
    return F.interpolate(y, size=_size_pair(size), mode="bilinear", align_corners=False)
