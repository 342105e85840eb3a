"""Patch extraction on ``(B, C, H, W)`` tensors, its adjoint, random reference patches,
and the padding used by the Wasserstein Patch Prior baseline.

Conventions
-----------
A ``p x p`` patch is identified by its top-left pixel ``(i, j)``. With stride ``s`` the
patch positions are ``i = 0, s, 2s, ..., (nH - 1) s`` with ``nH = (H - p) // s + 1``
(and likewise for columns); when ``(H - p)`` is not a multiple of ``s``, the last
``(H - p) % s`` rows are covered by no patch. Patches are ordered row-major over their
positions (patch ``l = a * nW + b`` sits at ``(a s, b s)``), and a patch is flattened
channel first, then row, then column: feature ``c * p * p + u * p + v`` is pixel
``(c, i + u, j + v)``. This is the layout of :func:`torch.nn.functional.unfold`,
transposed to put patches first.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from pot_semiunbalanced._utils import RngLike, as_generator
from pot_semiunbalanced.imaging.operators import _check_image, _check_positive_int, _extend

__all__ = [
    "n_patches",
    "patch_grid_shape",
    "extract_patches",
    "patches_adjoint",
    "random_patches",
    "pad_image",
    "crop_image",
    "PAD_FILLS",
]

#: Fill modes accepted by :func:`pad_image`.
PAD_FILLS: Tuple[str, ...] = ("uniform", "zero", "reflect", "symmetric", "circular")


def patch_grid_shape(H: int, W: int, patch_size: int, stride: int = 1) -> Tuple[int, int]:
    """Number of patch positions ``(nH, nW)`` along each axis.

    Parameters
    ----------
    H, W : int
        Spatial size of the image.
    patch_size : int
        Side ``p`` of the square patches (>= 1).
    stride : int, default 1
        Step between consecutive patch positions (>= 1).

    Returns
    -------
    (int, int)
        ``((H - p) // stride + 1, (W - p) // stride + 1)``.
    """
    patch_size = _check_positive_int(patch_size, "patch_size")
    stride = _check_positive_int(stride, "stride")
    H = _check_positive_int(H, "H")
    W = _check_positive_int(W, "W")
    if H < patch_size or W < patch_size:
        raise ValueError(
            f"image of spatial size ({H}, {W}) is smaller than patch_size={patch_size}: "
            f"use a smaller patch_size or a larger image"
        )
    return (H - patch_size) // stride + 1, (W - patch_size) // stride + 1


def n_patches(H: int, W: int, patch_size: int, stride: int = 1) -> int:
    """Number of ``patch_size x patch_size`` patches of an ``(H, W)`` image at ``stride``.

    Parameters
    ----------
    H, W : int
    patch_size : int
    stride : int, default 1

    Returns
    -------
    int
        ``nH * nW`` from :func:`patch_grid_shape` (63 001 for 256 x 256, p = 6, stride 1).
    """
    nh, nw = patch_grid_shape(H, W, patch_size, stride)
    return nh * nw


def extract_patches(x: torch.Tensor, patch_size: int, *, stride: int = 1) -> torch.Tensor:
    """All ``patch_size x patch_size`` patches of each image, flattened.

    Differentiable by autograd (built on :func:`torch.nn.functional.unfold`); the
    adjoint is :func:`patches_adjoint`. Ordering: see the module docstring.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    patch_size : int
        Side ``p`` of the patches, ``p <= min(H, W)``.
    stride : int, default 1

    Returns
    -------
    torch.Tensor, shape (B, n_patches(H, W, p, stride), C * p * p)
        Contiguous; same dtype/device as ``x``. For a single image use ``[0]``.
    """
    _check_image(x, "x")
    patch_grid_shape(x.shape[-2], x.shape[-1], patch_size, stride)  # validates
    cols = F.unfold(x, kernel_size=int(patch_size), stride=int(stride))
    return cols.transpose(1, 2).contiguous()


def patches_adjoint(
    P: torch.Tensor,
    *,
    image_shape: Sequence[int],
    patch_size: int,
    stride: int = 1,
) -> torch.Tensor:
    """Exact adjoint of :func:`extract_patches`: each patch is added back at its position.

    Overlapping patches are summed (:func:`torch.nn.functional.fold`); pixels covered by
    no patch get 0. Dividing by ``patches_adjoint(ones)`` gives the average of the
    patches covering each pixel.

    Parameters
    ----------
    P : torch.Tensor, shape (B, n_patches, C * p * p) or (n_patches, C * p * p)
        A 2-D input is treated as a batch of one.
    image_shape : (H, W) or (B, C, H, W)
        Spatial size of the image the patches come from. ``C`` is inferred from
        ``P.shape[-1] / p^2`` (and checked against a 4-D ``image_shape``).
    patch_size : int
    stride : int, default 1

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
    """
    if not isinstance(P, torch.Tensor):
        raise ValueError(f"P must be a torch.Tensor, got {type(P).__name__}")
    if P.ndim == 2:
        P = P.unsqueeze(0)
    if P.ndim != 3:
        raise ValueError(
            f"P must have shape (B, n_patches, C*p*p) or (n_patches, C*p*p), got {tuple(P.shape)}"
        )
    if not P.is_floating_point():
        raise ValueError(f"P must be a floating-point tensor, got dtype {P.dtype}")
    try:
        shape = tuple(int(s) for s in image_shape)
    except TypeError:
        raise ValueError(f"image_shape must be (H, W) or (B, C, H, W), got {image_shape!r}") from None
    if len(shape) not in (2, 4):
        raise ValueError(f"image_shape must be (H, W) or (B, C, H, W), got {image_shape!r}")
    H, W = shape[-2:]
    nh, nw = patch_grid_shape(H, W, patch_size, stride)
    p = int(patch_size)
    B, L, d = P.shape
    if d % (p * p) != 0:
        raise ValueError(
            f"P has patch dimension {d}, not a multiple of patch_size^2={p * p}: "
            f"pass the patch_size used in extract_patches"
        )
    C = d // (p * p)
    if len(shape) == 4 and shape[:2] != (B, C):
        raise ValueError(
            f"image_shape={shape} does not match P: batch {B} and {C} channel(s) inferred; "
            f"pass the shape of the image the patches come from"
        )
    if L != nh * nw:
        raise ValueError(
            f"P has {L} patches but an image of size {(H, W)} with patch_size={p} and "
            f"stride={stride} has {nh * nw}: pass the image_shape and stride used in extract_patches"
        )
    return F.fold(P.transpose(1, 2), output_size=(H, W), kernel_size=p, stride=int(stride))


def random_patches(
    x: torch.Tensor,
    patch_size: int,
    n: int,
    *,
    stride: int = 1,
    rng: RngLike = None,
    replace: bool = False,
    return_positions: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, np.ndarray]]:
    """``n`` patches drawn at random positions of ``x`` (e.g. the reference patches).

    Positions are drawn with numpy from ``as_generator(rng)`` among all the patch
    positions of :func:`extract_patches` (pooled over the batch when ``B > 1``), so a
    seed gives the same patches on every device; with ``replace=False`` they are
    distinct. Differentiable with respect to ``x``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    patch_size : int
    n : int
        Number of patches (>= 1).
    stride : int, default 1
        Grid of admissible positions, as in :func:`extract_patches`.
    rng : int, numpy.random.Generator or None
    replace : bool, default False
        Draw positions with replacement (allows ``n`` larger than the number of positions).
    return_positions : bool, default False
        Also return the positions.

    Returns
    -------
    patches : torch.Tensor, shape (n, C * p * p)
        Flattened like :func:`extract_patches`.
    positions : numpy.ndarray of int64, shape (n, 3)
        Only if ``return_positions``: rows ``(b, i, j)``, batch index and top-left pixel.

    Raises
    ------
    ValueError
        If ``replace=False`` and ``x`` has fewer than ``n`` patch positions.
    """
    _check_image(x, "x")
    n = _check_positive_int(n, "n")
    B, C, H, W = x.shape
    nh, nw = patch_grid_shape(H, W, patch_size, stride)
    p, s = int(patch_size), int(stride)
    K = B * nh * nw
    if not replace and n > K:
        raise ValueError(
            f"reference has only {K} patches of size {p}, asked for {n}: "
            f"lower n or use a larger reference (or pass replace=True)"
        )
    flat = as_generator(rng).choice(K, size=n, replace=bool(replace)).astype(np.int64)
    b, r = np.divmod(flat, nh * nw)
    i, j = np.divmod(r, nw)
    i, j = i * s, j * s
    dev = x.device
    offs = torch.arange(p, device=dev)
    bt = torch.as_tensor(b, device=dev)[:, None, None, None]
    ct = torch.arange(C, device=dev)[None, :, None, None]
    rows = (torch.as_tensor(i, device=dev)[:, None] + offs)[:, None, :, None]
    cols = (torch.as_tensor(j, device=dev)[:, None] + offs)[:, None, None, :]
    patches = x[bt, ct, rows, cols].reshape(n, C * p * p)
    if return_positions:
        return patches, np.stack([b, i, j], axis=1)
    return patches


def pad_image(
    x: torch.Tensor,
    pad: int,
    *,
    fill: str = "uniform",
    rng: RngLike = None,
) -> torch.Tensor:
    """Place ``x`` in the centre of a grid extended by ``pad`` pixels on each side.

    This is the padded variable of the Wasserstein Patch Prior baseline: WPP optimizes
    the *padded* image (20 px per side, border initialized with U[0, 1] noise), the
    data term sees only its interior ``crop_image(x_pad, pad)`` and the patch prior sees
    the whole padded image. Typical use::

        x_pad = pad_image(x0, 20, fill="uniform", rng=seed).requires_grad_()

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    pad : int
        Border width (>= 0). 0 returns a copy of ``x``.
    fill : {"uniform", "zero", "reflect", "symmetric", "circular"}, default "uniform"
        ``"uniform"``: i.i.d. U[0, 1] values drawn with numpy from ``as_generator(rng)``
        (float64, then converted; reproducible across devices). ``"zero"``: zeros.
        ``"reflect"`` / ``"symmetric"`` / ``"circular"``: extensions of ``x`` as in
        :mod:`~pot_semiunbalanced.imaging.operators` (any ``pad``, even >= H).
    rng : int, numpy.random.Generator or None
        Only used by ``fill="uniform"``.

    Returns
    -------
    torch.Tensor, shape (B, C, H + 2 pad, W + 2 pad)
        Interior equal to ``x``; differentiable with respect to ``x``. ``crop_image``
        with the same ``pad`` recovers ``x``; the exact adjoint of ``crop_image`` is
        ``pad_image(., pad, fill="zero")``.
    """
    _check_image(x, "x")
    pad = _check_positive_int(pad, "pad", minimum=0)
    if fill not in PAD_FILLS:
        raise ValueError(f"unknown fill={fill!r}: use one of {PAD_FILLS}")
    if pad == 0:
        return x.clone()
    B, C, H, W = x.shape
    if fill == "uniform":
        border = as_generator(rng).random(size=(B, C, H + 2 * pad, W + 2 * pad))
        out = torch.as_tensor(border, dtype=x.dtype, device=x.device)
        out[..., pad : pad + H, pad : pad + W] = x
        return out
    return _extend(x, (pad, pad, pad, pad), fill)


def crop_image(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Interior of a padded image: remove ``pad`` pixels on each side.

    Inverse of :func:`pad_image` on its interior (``crop_image(pad_image(x, pad), pad)
    == x``); its exact adjoint is ``pad_image(y, pad, fill="zero")``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W)
    pad : int
        Border width, ``0 <= 2 pad < min(H, W)``.

    Returns
    -------
    torch.Tensor, shape (B, C, H - 2 pad, W - 2 pad)
        A view of ``x``.
    """
    _check_image(x, "x")
    pad = _check_positive_int(pad, "pad", minimum=0)
    H, W = x.shape[-2:]
    if 2 * pad >= min(H, W):
        raise ValueError(
            f"pad={pad} leaves nothing of an image of spatial size {(H, W)}: "
            f"pad must be smaller than half the image size"
        )
    return x[..., pad : H - pad, pad : W - pad]
