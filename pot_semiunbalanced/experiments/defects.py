"""Synthetic texture defects in the style of MVTec AD, reproducible from a seed.

Four kinds of defect are drawn on a 2-D grayscale image with values in [0, 1]:

``"scratch"``
    One to four thin cuts along smooth, possibly curved strokes that taper at
    their ends, darker or brighter than the texture (MVTec: carpet/leather
    "cut", wood "scratch", tile "crack").
``"hole"``
    An irregular dark blob with a soft rim, where the texture almost vanishes
    (MVTec: carpet "hole", wood "hole").
``"contamination"``
    A patch of a foreign texture pasted through an irregular soft mask
    (MVTec: carpet "metal_contamination", tile "glue_strip", leather "glue").
``"stain"``
    A smooth darkening or brightening over an irregular, splotchy region; the
    texture stays visible through it (MVTec: tile "oil", wood "liquid",
    leather/wood "color").

Every kind is available as ``add_<kind>(img, *, rng, ...) -> (defective, mask)``
with explicit geometric options, and through :func:`add_defect`, which picks
the defect size so that the mask covers a prescribed fraction of the image.

Masks and soft edges
--------------------
Each defect is built from a hard shape ``S`` (a boolean array, returned as the
mask) blended into the image with an opacity ``alpha`` that is at least 0.5 on
``S`` and decays linearly to 0 outside it over ``edge`` pixels. Precisely,
``alpha`` is a function of the Euclidean distance ``d`` from a pixel outside
``S`` to the nearest pixel of ``S`` and vanishes once ``d >= edge + 0.5``.
Hence a defect never changes a pixel whose distance to the mask is
``edge + 0.5`` or more; :func:`soft_edge_region` returns the pixels it may
change. The mask is the "visible defect" that a ground-truth annotation would
mark, the soft rim a few pixels around it is the blending zone.

All operations are convex combinations of values in [0, 1], so outputs stay in
[0, 1]. Given the same image, options and integer seed, results are identical.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .._utils import RngLike, as_generator

__all__ = [
    "DEFECT_KINDS",
    "BUILTIN_FOREIGN_TEXTURES",
    "add_scratch",
    "add_hole",
    "add_contamination",
    "add_stain",
    "add_defect",
    "add_defects",
    "soft_edge_region",
]

#: Names of the defect kinds, in the order used when cycling through them.
DEFECT_KINDS: Tuple[str, ...] = ("scratch", "hole", "contamination", "stain")

#: scikit-image bundled images a contamination may take its foreign texture from
#: when none is given (all ship with the scikit-image wheel, no download needed).
BUILTIN_FOREIGN_TEXTURES: Tuple[str, ...] = ("grass", "gravel", "camera")

ForeignLike = Union[np.ndarray, str, None]


# --------------------------------------------------------------------------- helpers
def _check_image(img: np.ndarray) -> np.ndarray:
    """Return a float64 copy of a 2-D image with values in [0, 1], or raise."""
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ValueError(f"image too small for a defect: shape {arr.shape} (need >= 8x8)")
    arr = arr.astype(np.float64, copy=True)
    if not np.all(np.isfinite(arr)):
        raise ValueError("image contains non-finite values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(
            f"image values must lie in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]"
        )
    return arr


def _check_coverage(coverage: Sequence[float]) -> Tuple[float, float]:
    try:
        lo, hi = (float(c) for c in coverage)
    except (TypeError, ValueError):
        raise ValueError(f"coverage must be a pair (low, high), got {coverage!r}") from None
    if not (0.0 < lo < hi < 1.0):
        raise ValueError(f"coverage must satisfy 0 < low < high < 1, got ({lo}, {hi})")
    return lo, hi


def _to_unit_gray(image: np.ndarray) -> np.ndarray:
    """Convert an image array (gray/RGB/RGBA, integer or float) to float64 gray in [0, 1]."""
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float

    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = img_as_float(arr)
    else:
        arr = arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = rgba2rgb(arr)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = rgb2gray(arr)
    if arr.ndim != 2:
        raise ValueError(f"cannot read shape {np.shape(image)} as a grayscale image")
    if not np.all(np.isfinite(arr)):
        raise ValueError("foreign image contains non-finite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:  # a float image in another range: stretch it
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return np.ascontiguousarray(arr, dtype=np.float64)


@functools.lru_cache(maxsize=8)
def _builtin_image(name: str) -> np.ndarray:
    import skimage.data

    if name not in BUILTIN_FOREIGN_TEXTURES and name not in ("brick", "moon"):
        raise ValueError(
            f"unknown built-in texture {name!r}; choose from "
            f"{BUILTIN_FOREIGN_TEXTURES + ('brick', 'moon')}"
        )
    out = _to_unit_gray(getattr(skimage.data, name)())
    out.setflags(write=False)
    return out


def soft_edge_region(mask: np.ndarray, edge: float) -> np.ndarray:
    """Pixels a defect with mask ``mask`` and soft edge ``edge`` may change.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        Defect mask.
    edge : float
        Width in pixels of the soft rim (``info["params"]["edge"]``).

    Returns
    -------
    region : ndarray of bool, shape (H, W)
        ``True`` on the mask and on every pixel closer than ``edge + 0.5``
        (Euclidean distance, in pixels) to a mask pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    dist = ndi.distance_transform_edt(~mask)
    return dist < float(edge) + 0.5


def _soft_alpha(shape_mask: np.ndarray, edge: float) -> np.ndarray:
    """Opacity in [0, 1]: >= 0.5 on ``shape_mask``, 0 at distance >= edge + 0.5 from it."""
    if not shape_mask.any():
        return np.zeros(shape_mask.shape)
    if shape_mask.all() or edge <= 0:
        return shape_mask.astype(np.float64)
    outside = ndi.distance_transform_edt(~shape_mask)
    inside = ndi.distance_transform_edt(shape_mask)
    signed = np.where(shape_mask, 0.5 - inside, outside - 0.5)
    return np.clip(0.5 - signed / (2.0 * edge), 0.0, 1.0)


def _smooth_noise(noise: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to zero mean and unit standard deviation."""
    field = ndi.gaussian_filter(noise, sigma=sigma, mode="reflect")
    field = field - field.mean()
    std = field.std()
    return field / std if std > 0 else field


def _draw_center(rng: np.random.Generator, shape: Tuple[int, int], lo: float, hi: float):
    return [float(rng.uniform(lo, hi) * shape[0]), float(rng.uniform(lo, hi) * shape[1])]


def _draw_harmonics(rng: np.random.Generator, kmax: int, total_amp: float):
    """Random radial harmonics 2..kmax whose amplitudes sum to at most ``total_amp``."""
    ks = np.arange(2, kmax + 1)
    amps = rng.uniform(0.0, 1.0, size=ks.size) / ks
    amps = amps * (total_amp / max(amps.sum(), 1e-12)) * rng.uniform(0.5, 1.0)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=ks.size)
    return [float(a) for a in amps], [float(p) for p in phases]


def _polar_blob(shape: Tuple[int, int], center, radius: float, amps, phases) -> np.ndarray:
    """Star-shaped region r <= radius * (1 + sum_k a_k cos(k theta + phi_k))."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dy, dx = yy - center[0], xx - center[1]
    r = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx)
    boundary = np.ones(shape)
    for k, (a, p) in enumerate(zip(amps, phases), start=2):
        boundary += a * np.cos(k * theta + p)
    return r <= radius * boundary


def _blend(img: np.ndarray, alpha: np.ndarray, target: np.ndarray) -> np.ndarray:
    out = img + alpha * (target - img)
    return np.clip(out, 0.0, 1.0)


def _override(params: Dict[str, Any], **values: Any) -> Dict[str, Any]:
    for key, value in values.items():
        if value is not None:
            params[key] = float(value) if isinstance(value, (int, float, np.number)) else value
    return params


# --------------------------------------------------------------------------- scratch
_MAX_STROKES = 4
#: add_defect adds strokes (up to _MAX_STROKES) while the fitted width exceeds this
#: fraction of min(H, W), so that high coverages give several thin cuts, not a gouge.
_SCRATCH_MAX_WIDTH = 0.035

def _scratch_draw(rng: np.random.Generator, shape: Tuple[int, int]) -> Dict[str, Any]:
    n = min(shape)
    n_strokes = int(rng.choice([1, 1, 1, 2, 2, 3]))
    strokes = []
    base_angle = rng.uniform(0.0, np.pi)
    # Always draw _MAX_STROKES strokes so the random stream does not depend on n_strokes.
    for i in range(_MAX_STROKES):
        strokes.append(
            {
                "angle": float(base_angle + rng.normal(0.0, 0.35 if i else 0.0)),
                "length": float(rng.uniform(0.7, 1.2) * n),
                "offset": [float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0))],
                "curvature": float(rng.uniform(-0.25, 0.25)),
                "wiggle_amp": float(rng.uniform(0.0, 0.015)),
                "wiggle_freq": float(rng.uniform(1.0, 3.0)),
                "wiggle_phase": float(rng.uniform(0.0, 2.0 * np.pi)),
                "taper": float(rng.uniform(0.25, 0.7)),
                "width_factor": float(1.0 if i == 0 else rng.uniform(0.6, 1.0)),
            }
        )
    params = {
        "n_strokes": n_strokes,
        "strokes": strokes,
        "width": float(rng.uniform(0.01, 0.025) * n),
        "polarity": "dark" if rng.uniform() < 0.6 else "bright",
        "contrast": float(rng.uniform(0.55, 0.85)),
        "edge": float(rng.uniform(0.8, 1.5)),
        "modulation_sigma": float(0.03 * n),
    }
    # A smooth random field that makes the cut uneven along its length.
    params["_modulation"] = _smooth_noise(rng.standard_normal(shape), params["modulation_sigma"])
    return params


def _stroke_points(shape: Tuple[int, int], stroke: Mapping[str, Any]):
    """Sample a tapered curved stroke: centre-line points (K, 2) and relative radii (K,)."""
    h, w = shape
    length = stroke["length"]
    u = np.array([np.sin(stroke["angle"]), np.cos(stroke["angle"])])  # (row, col) direction
    normal = np.array([u[1], -u[0]])
    margin = 0.05 * min(h, w)
    slack = np.maximum(0.0, np.array([h, w]) / 2.0 - margin - 0.5 * length * np.abs(u))
    center = np.array([h, w]) / 2.0 + np.asarray(stroke["offset"]) * slack
    p0 = center - 0.5 * length * u
    p2 = center + 0.5 * length * u
    p1 = center + stroke["curvature"] * length * normal
    k = max(64, int(3 * length))
    t = np.linspace(0.0, 1.0, k)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
    wig = stroke["wiggle_amp"] * length * np.sin(
        2 * np.pi * stroke["wiggle_freq"] * t + stroke["wiggle_phase"]
    )
    pts = pts + wig * normal
    taper = stroke["taper"]
    rel = taper + (1.0 - taper) * np.sqrt(np.sin(np.pi * t[:, 0]))
    return pts, rel * stroke["width_factor"]


def _scratch_mask(shape: Tuple[int, int], params: Mapping[str, Any], width: float) -> np.ndarray:
    pts_all, rad_all = [], []
    for stroke in params["strokes"][: params["n_strokes"]]:
        pts, rel = _stroke_points(shape, stroke)
        pts_all.append(pts)
        rad_all.append(0.5 * width * rel)
    pts = np.concatenate(pts_all)
    rad = np.concatenate(rad_all)
    reach = float(rad.max()) + 1.0
    r0 = int(max(0, np.floor(pts[:, 0].min() - reach)))
    r1 = int(min(shape[0], np.ceil(pts[:, 0].max() + reach) + 1))
    c0 = int(max(0, np.floor(pts[:, 1].min() - reach)))
    c1 = int(min(shape[1], np.ceil(pts[:, 1].max() + reach) + 1))
    mask = np.zeros(shape, dtype=bool)
    if r1 <= r0 or c1 <= c0:
        return mask
    yy, xx = np.mgrid[r0:r1, c0:c1]
    query = np.column_stack([yy.ravel(), xx.ravel()]).astype(np.float64)
    dist, idx = cKDTree(pts).query(query, k=1, distance_upper_bound=reach)
    inside = np.isfinite(dist)
    hit = np.zeros(query.shape[0], dtype=bool)
    hit[inside] = dist[inside] <= rad[idx[inside]]
    mask[r0:r1, c0:c1] = hit.reshape(yy.shape)
    return mask


def _scratch_render(img, mask, params, foreign=None) -> np.ndarray:
    alpha = _soft_alpha(mask, params["edge"])
    c = np.clip(params["contrast"] * (1.0 + 0.25 * params["_modulation"]), 0.05, 1.0)
    target = img * (1.0 - c) if params["polarity"] == "dark" else img + c * (1.0 - img)
    return _blend(img, alpha, target)


def add_scratch(
    img: np.ndarray,
    *,
    rng: RngLike = None,
    width: Optional[float] = None,
    n_strokes: Optional[int] = None,
    polarity: Optional[str] = None,
    contrast: Optional[float] = None,
    edge: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Add a scratch: thin tapered cuts along smooth, possibly curved strokes.

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Grayscale image with values in [0, 1].
    rng : int, numpy.random.Generator or None
        Seed or generator for the random geometry.
    width : float, optional
        Largest width of the main stroke in pixels (default: 1 % to 2.5 % of
        ``min(H, W)``). Strokes taper to 25 %–70 % of it at their ends.
    n_strokes : int, optional
        Number of roughly parallel strokes, 1 to 4 (default: random, mostly 1).
        Each stroke is a quadratic Bezier curve of length 70 %–120 % of
        ``min(H, W)`` with a slight sinusoidal wiggle, clipped by the border.
    polarity : {"dark", "bright"}, optional
        Darker (a cut) or brighter (a scuff) than the texture (default: random,
        dark with probability 0.6).
    contrast : float, optional
        Blend weight towards black (dark) or white (bright) in the scratch core,
        in (0, 1] (default: 0.55–0.85), made uneven by +-25 % by a smooth
        random field.
    edge : float, optional
        Width of the soft rim in pixels (default: 0.8–1.5).

    Returns
    -------
    defective : ndarray of float64, shape (H, W)
        Image with the scratch, values in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Scratch mask. Pixels at distance ``edge + 0.5`` or more from it are
        unchanged.
    """
    img = _check_image(img)
    params = _scratch_draw(as_generator(rng), img.shape)
    if n_strokes is not None:
        if not 1 <= int(n_strokes) <= _MAX_STROKES:
            raise ValueError(f"n_strokes must be 1 to {_MAX_STROKES}, got {n_strokes}")
        params["n_strokes"] = int(n_strokes)
    if polarity is not None and polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
    _override(params, width=width, polarity=polarity, contrast=contrast, edge=edge)
    _check_positive(width=params["width"], contrast=params["contrast"])
    if params["contrast"] > 1.0:
        raise ValueError(f"contrast must lie in (0, 1], got {params['contrast']}")
    mask = _scratch_mask(img.shape, params, params["width"])
    return _scratch_render(img, mask, params), mask


# --------------------------------------------------------------------------- hole
def _hole_draw(rng: np.random.Generator, shape: Tuple[int, int]) -> Dict[str, Any]:
    amps, phases = _draw_harmonics(rng, 6, 0.45)
    return {
        "center": _draw_center(rng, shape, 0.2, 0.8),
        "radius": float(rng.uniform(0.06, 0.12) * min(shape)),
        "harmonic_amps": amps,
        "harmonic_phases": phases,
        "depth": float(rng.uniform(0.02, 0.12)),
        "residual": float(rng.uniform(0.05, 0.2)),
        "edge": float(rng.uniform(1.5, 3.0)),
    }


def _hole_mask(shape, params, radius: float) -> np.ndarray:
    return _polar_blob(
        shape, params["center"], radius, params["harmonic_amps"], params["harmonic_phases"]
    )


def _hole_render(img, mask, params, foreign=None) -> np.ndarray:
    alpha = _soft_alpha(mask, params["edge"])
    target = params["depth"] + params["residual"] * img
    return _blend(img, alpha, target)


def add_hole(
    img: np.ndarray,
    *,
    rng: RngLike = None,
    radius: Optional[float] = None,
    depth: Optional[float] = None,
    edge: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Add a hole: an irregular dark blob with a soft rim.

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Grayscale image with values in [0, 1].
    rng : int, numpy.random.Generator or None
        Seed or generator for the random geometry.
    radius : float, optional
        Mean radius in pixels (default: 6 %–12 % of ``min(H, W)``); the outline
        is modulated by random harmonics 2 to 6.
    depth : float, optional
        Gray level at the bottom of the hole (default: 0.02–0.12); a faint
        trace (5 %–20 %) of the texture remains on top of it.
    edge : float, optional
        Width of the soft rim in pixels (default: 1.5–3).

    Returns
    -------
    defective : ndarray of float64, shape (H, W)
        Image with the hole, values in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Hole mask. Pixels at distance ``edge + 0.5`` or more from it are unchanged.
    """
    img = _check_image(img)
    params = _hole_draw(as_generator(rng), img.shape)
    _override(params, radius=radius, depth=depth, edge=edge)
    _check_positive(radius=params["radius"])
    if not 0.0 <= params["depth"] <= 0.8:
        raise ValueError(f"depth must lie in [0, 0.8], got {params['depth']}")
    mask = _hole_mask(img.shape, params, params["radius"])
    return _hole_render(img, mask, params), mask


# --------------------------------------------------------------------------- contamination
def _contamination_draw(rng: np.random.Generator, shape: Tuple[int, int]) -> Dict[str, Any]:
    amps, phases = _draw_harmonics(rng, 8, 0.6)
    return {
        "center": _draw_center(rng, shape, 0.2, 0.8),
        "radius": float(rng.uniform(0.08, 0.15) * min(shape)),
        "harmonic_amps": amps,
        "harmonic_phases": phases,
        "_builtin": BUILTIN_FOREIGN_TEXTURES[int(rng.integers(len(BUILTIN_FOREIGN_TEXTURES)))],
        "foreign_offset": [float(rng.uniform()), float(rng.uniform())],
        "foreign_rot90": int(rng.integers(4)),
        "edge": float(rng.uniform(2.0, 4.0)),
    }


def _resolve_foreign(foreign: ForeignLike, params: Dict[str, Any]) -> np.ndarray:
    """Return the foreign texture (float gray in [0, 1]) and record its source in params."""
    if foreign is None:
        params["foreign"] = f"skimage.data.{params['_builtin']}"
        return _builtin_image(params["_builtin"])
    if isinstance(foreign, str):
        params["foreign"] = f"skimage.data.{foreign}"
        return _builtin_image(foreign)
    params["foreign"] = "array"
    return _to_unit_gray(foreign)


def _foreign_layer(foreign: np.ndarray, shape: Tuple[int, int], params) -> np.ndarray:
    """A (H, W) crop of the (rotated, enlarged if needed) foreign texture."""
    from skimage.transform import resize

    src = np.rot90(foreign, params["foreign_rot90"])
    h, w = shape
    zoom = max(h / src.shape[0], w / src.shape[1], 1.0)
    if zoom > 1.0:
        new_shape = (
            max(h, int(np.ceil(src.shape[0] * zoom))),
            max(w, int(np.ceil(src.shape[1] * zoom))),
        )
        src = resize(src, new_shape, order=1, mode="reflect", anti_aliasing=False)
    oy = int(params["foreign_offset"][0] * (src.shape[0] - h))
    ox = int(params["foreign_offset"][1] * (src.shape[1] - w))
    return np.clip(src[oy : oy + h, ox : ox + w], 0.0, 1.0)


def _contamination_mask(shape, params, radius: float) -> np.ndarray:
    return _polar_blob(
        shape, params["center"], radius, params["harmonic_amps"], params["harmonic_phases"]
    )


def _contamination_render(img, mask, params, foreign: ForeignLike = None) -> np.ndarray:
    texture = _resolve_foreign(foreign, params)
    layer = _foreign_layer(texture, img.shape, params)
    alpha = _soft_alpha(mask, params["edge"])
    return _blend(img, alpha, layer)


def add_contamination(
    img: np.ndarray,
    *,
    rng: RngLike = None,
    foreign: ForeignLike = None,
    radius: Optional[float] = None,
    edge: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Add a contamination: a patch of a foreign texture pasted with a soft mask.

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Grayscale image with values in [0, 1].
    rng : int, numpy.random.Generator or None
        Seed or generator for the random geometry and the crop of the foreign
        texture.
    foreign : ndarray of shape (h, w) or (h, w, 3|4), str or None
        Foreign texture: an image array (integer or float; RGB is converted to
        gray, a float image outside [0, 1] is stretched to it), the name of a
        scikit-image bundled image (``"grass"``, ``"gravel"``, ``"camera"``,
        ``"brick"``, ``"moon"``), or ``None`` for one of
        :data:`BUILTIN_FOREIGN_TEXTURES` drawn from ``rng``. A random crop of
        it, rotated by a multiple of 90 degrees (and enlarged if smaller than
        ``img``), is pasted.
    radius : float, optional
        Mean radius in pixels of the irregular region (default: 8 %–15 % of
        ``min(H, W)``); its outline is modulated by random harmonics 2 to 8.
    edge : float, optional
        Width of the soft rim in pixels (default: 2–4).

    Returns
    -------
    defective : ndarray of float64, shape (H, W)
        Image with the contamination, values in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Region of the foreign texture. Pixels at distance ``edge + 0.5`` or
        more from it are unchanged.
    """
    img = _check_image(img)
    params = _contamination_draw(as_generator(rng), img.shape)
    _override(params, radius=radius, edge=edge)
    _check_positive(radius=params["radius"])
    mask = _contamination_mask(img.shape, params, params["radius"])
    return _contamination_render(img, mask, params, foreign), mask


# --------------------------------------------------------------------------- stain
def _stain_draw(rng: np.random.Generator, shape: Tuple[int, int]) -> Dict[str, Any]:
    n = min(shape)
    params = {
        "center": _draw_center(rng, shape, 0.25, 0.75),
        "radius": float(rng.uniform(0.10, 0.17) * n),
        "irregularity": float(rng.uniform(0.25, 0.5)),
        "polarity": "dark" if rng.uniform() < 0.7 else "bright",
        "strength": float(rng.uniform(0.25, 0.5)),
        "edge": float(rng.uniform(3.0, 7.0)),
        "noise_sigma": float(0.05 * n),
    }
    # Two smooth random fields: the outline and the strength modulation inside.
    params["_outline"] = _smooth_noise(rng.standard_normal(shape), params["noise_sigma"])
    params["_modulation"] = _smooth_noise(rng.standard_normal(shape), 0.5 * params["noise_sigma"])
    return params


def _stain_mask(shape, params, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    r = np.hypot(yy - params["center"][0], xx - params["center"][1])
    return (r / radius + params["irregularity"] * params["_outline"] <= 1.0) & (r <= 1.5 * radius)


def _stain_render(img, mask, params, foreign=None) -> np.ndarray:
    alpha = _soft_alpha(mask, params["edge"])
    strength = np.clip(params["strength"] * (1.0 + 0.3 * params["_modulation"]), 0.0, 0.9)
    if params["polarity"] == "dark":
        target = img * (1.0 - strength)
    else:
        target = img + strength * (1.0 - img)
    return _blend(img, alpha, target)


def add_stain(
    img: np.ndarray,
    *,
    rng: RngLike = None,
    radius: Optional[float] = None,
    polarity: Optional[str] = None,
    strength: Optional[float] = None,
    edge: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Add a stain: a smooth intensity change over an irregular, splotchy region.

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Grayscale image with values in [0, 1].
    rng : int, numpy.random.Generator or None
        Seed or generator for the random geometry.
    radius : float, optional
        Nominal radius in pixels (default: 10 %–17 % of ``min(H, W)``). The
        outline is the level set ``r / radius + irregularity * n = 1`` of a
        smooth random field ``n`` (capped at ``1.5 * radius``).
    polarity : {"dark", "bright"}, optional
        Darkening (oil, liquid) or brightening (bleach) (default: random, dark
        with probability 0.7).
    strength : float, optional
        Relative intensity change inside the stain, in (0, 0.9] (default:
        0.25–0.5), modulated by +-30 % by a second smooth field.
    edge : float, optional
        Width of the soft rim in pixels (default: 3–7).

    Returns
    -------
    defective : ndarray of float64, shape (H, W)
        Image with the stain, values in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Stain mask. Pixels at distance ``edge + 0.5`` or more from it are unchanged.
    """
    img = _check_image(img)
    params = _stain_draw(as_generator(rng), img.shape)
    if polarity is not None and polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
    _override(params, radius=radius, polarity=polarity, strength=strength, edge=edge)
    _check_positive(radius=params["radius"], strength=params["strength"])
    if params["strength"] > 0.9:
        raise ValueError(f"strength must lie in (0, 0.9], got {params['strength']}")
    mask = _stain_mask(img.shape, params, params["radius"])
    return _stain_render(img, mask, params), mask


# --------------------------------------------------------------------------- dispatch
def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive, got {value}")


class _Kind:
    """Draw / mask / render triple of one defect kind; ``size_key`` scales the mask."""

    def __init__(self, draw, mask, render, size_key: str, power: float):
        self.draw: Callable[..., Dict[str, Any]] = draw
        self.mask: Callable[..., np.ndarray] = mask
        self.render: Callable[..., np.ndarray] = render
        self.size_key = size_key
        self.power = power  # coverage grows roughly like size ** power


_KINDS: Dict[str, _Kind] = {
    "scratch": _Kind(_scratch_draw, _scratch_mask, _scratch_render, "width", 1.0),
    "hole": _Kind(_hole_draw, _hole_mask, _hole_render, "radius", 2.0),
    "contamination": _Kind(
        _contamination_draw, _contamination_mask, _contamination_render, "radius", 2.0
    ),
    "stain": _Kind(_stain_draw, _stain_mask, _stain_render, "radius", 2.0),
}


def _fit_size(
    mask_of: Callable[[float], np.ndarray],
    s0: float,
    power: float,
    target: float,
    lo: float,
    hi: float,
    s_max: float,
    max_iter: int = 40,
) -> Tuple[Optional[float], Optional[np.ndarray], int]:
    """Find a size whose mask coverage is in [lo, hi], close to ``target``.

    Coverage is nondecreasing in the size, so a safeguarded secant/bisection
    search on log(size) converges; returns ``(None, None, n)`` when even
    ``s_max`` does not reach ``lo``.
    """
    tol = 0.1 * (hi - lo)
    s_lo, s_hi = 0.0, np.inf
    s = s0
    best: Tuple[Optional[float], Optional[np.ndarray]] = (None, None)
    for it in range(1, max_iter + 1):
        mask = mask_of(s)
        c = float(mask.mean())
        if lo <= c <= hi:
            best = (s, mask)
            if abs(c - target) <= tol:
                return s, mask, it
        if c < target:
            s_lo = s
        else:
            s_hi = s
        if s_lo >= s_max:
            break
        s_new = s * 2.0 if c == 0.0 else s * (target / c) ** (1.0 / power)
        if not (s_lo < s_new < s_hi):  # outside the bracket: bisect
            s_new = np.sqrt(s_lo * s_hi) if (s_lo > 0 and np.isfinite(s_hi)) else (
                2.0 * s if not np.isfinite(s_hi) else 0.5 * s_hi
            )
        s = float(min(s_new, s_max))
        if s_hi - s_lo < 1e-6 * max(s, 1.0):
            break
    return best[0], best[1], max_iter


def _jsonable(value: Any, *, drop_private: bool = False) -> Any:
    """Plain-Python (JSON-serializable) copy of nested dicts/lists/arrays/scalars.

    With ``drop_private``, dict keys starting with ``_`` (internal arrays such
    as noise fields) are left out.
    """
    if isinstance(value, dict):
        return {
            str(k): _jsonable(v, drop_private=drop_private)
            for k, v in value.items()
            if not (drop_private and str(k).startswith("_"))
        }
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, drop_private=drop_private) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), drop_private=drop_private)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def add_defect(
    img: np.ndarray,
    kind: str,
    *,
    rng: RngLike = None,
    coverage: Sequence[float] = (0.02, 0.10),
    foreign: ForeignLike = None,
    max_tries: int = 10,
) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """Add one defect whose mask covers a prescribed fraction of the image.

    A target coverage is drawn uniformly in the middle 80 % of ``coverage``,
    the random geometry of the defect is drawn once, and its size (stroke
    width for a scratch, radius otherwise) is searched so that the mask covers
    the target fraction; if no size works (e.g. a blob clipped by the border),
    new geometry is drawn, up to ``max_tries`` times.

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Grayscale image with values in [0, 1].
    kind : {"scratch", "hole", "contamination", "stain"}
        Defect kind, see :data:`DEFECT_KINDS`.
    rng : int, numpy.random.Generator or None
        Seed or generator; an int seed makes the result deterministic.
    coverage : (float, float)
        Allowed range of ``mask.mean()``, with ``0 < low < high < 1``.
    foreign : ndarray, str or None
        Foreign texture for ``"contamination"`` (see :func:`add_contamination`);
        ignored by the other kinds.
    max_tries : int
        Number of geometries tried before giving up.

    Returns
    -------
    defective : ndarray of float64, shape (H, W)
        Image with the defect, values in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Defect mask, with ``low <= mask.mean() <= high``.
    info : dict
        JSON-serializable record: ``kind``, ``coverage`` (achieved),
        ``target_coverage``, ``coverage_range``, ``attempts`` and ``params``
        (all drawn parameters, including the fitted size and ``edge``; pixels
        at distance ``edge + 0.5`` or more from the mask are unchanged).

    Raises
    ------
    ValueError
        Unknown kind, bad image or coverage range.
    RuntimeError
        No geometry reached the coverage range in ``max_tries`` tries.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown defect kind {kind!r}; choose from {DEFECT_KINDS}")
    img = _check_image(img)
    lo, hi = _check_coverage(coverage)
    gen = as_generator(rng)
    spec = _KINDS[kind]
    margin = 0.1 * (hi - lo)
    s_max = 2.0 * float(max(img.shape))
    for attempt in range(1, int(max_tries) + 1):
        target = float(gen.uniform(lo + margin, hi - margin))
        params = spec.draw(gen, img.shape)
        s0 = params[spec.size_key]
        size, mask, _ = _fit_size(
            lambda s: spec.mask(img.shape, params, s), s0, spec.power, target, lo, hi, s_max
        )
        if kind == "scratch":  # keep cuts thin: spread a large coverage over more strokes
            while (
                size is not None
                and size > _SCRATCH_MAX_WIDTH * min(img.shape)
                and params["n_strokes"] < _MAX_STROKES
            ):
                params["n_strokes"] += 1
                size, mask, _ = _fit_size(
                    lambda s: spec.mask(img.shape, params, s), size, 1.0, target, lo, hi, s_max
                )
        if size is not None:
            params[spec.size_key] = float(size)
            out = spec.render(img, mask, params, foreign)
            info = {
                "kind": kind,
                "coverage": float(mask.mean()),
                "target_coverage": target,
                "coverage_range": [lo, hi],
                "attempts": attempt,
                "params": _jsonable(params, drop_private=True),
            }
            return out, mask, info
    raise RuntimeError(
        f"could not place a {kind!r} defect covering {lo:.3g}-{hi:.3g} of a "
        f"{img.shape} image in {max_tries} tries"
    )


def add_defects(
    img: np.ndarray,
    *,
    kinds: Sequence[str] = ("scratch", "stain"),
    rng: RngLike = None,
    coverage: Sequence[float] = (0.02, 0.10),
    foreign: ForeignLike = None,
    max_tries: int = 10,
) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """Add several defects, one per entry of ``kinds``, with a joint coverage.

    With ``n = len(kinds)`` defects, each is drawn by :func:`add_defect` with
    coverage range ``(low / n, high / n)`` on the image already carrying the
    previous ones, so the union never exceeds ``high``; if overlaps push the
    union below ``low``, all defects are drawn again (up to ``max_tries``).

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Grayscale image with values in [0, 1].
    kinds : sequence of str
        Defect kinds, applied in this order; repetitions allowed.
    rng : int, numpy.random.Generator or None
        Seed or generator; an int seed makes the result deterministic.
    coverage : (float, float)
        Allowed range of the union mask's coverage.
    foreign : ndarray, str or None
        Foreign texture for contaminations.
    max_tries : int
        Number of redraws of the whole set of defects.

    Returns
    -------
    defective : ndarray of float64, shape (H, W)
        Image with all defects, values in [0, 1].
    mask : ndarray of bool, shape (H, W)
        Union of the defect masks, with ``low <= mask.mean() <= high``.
    info : dict
        ``kinds``, ``coverage`` (union), ``coverage_range``, ``attempts`` and
        ``defects`` (the list of per-defect records of :func:`add_defect`).
    """
    kinds = list(kinds)
    if not kinds:
        raise ValueError("kinds must name at least one defect kind")
    for kind in kinds:
        if kind not in _KINDS:
            raise ValueError(f"unknown defect kind {kind!r}; choose from {DEFECT_KINDS}")
    img = _check_image(img)
    lo, hi = _check_coverage(coverage)
    gen = as_generator(rng)
    n = len(kinds)
    for attempt in range(1, int(max_tries) + 1):
        out = img
        union = np.zeros(img.shape, dtype=bool)
        records: List[Dict[str, Any]] = []
        for kind in kinds:
            out, mask, info = add_defect(
                out, kind, rng=gen, coverage=(lo / n, hi / n), foreign=foreign
            )
            union |= mask
            records.append(info)
        c = float(union.mean())
        if lo <= c <= hi:
            return out, union, {
                "kinds": kinds,
                "coverage": c,
                "coverage_range": [lo, hi],
                "attempts": attempt,
                "defects": records,
            }
    raise RuntimeError(
        f"could not place defects {kinds} covering {lo:.3g}-{hi:.3g} in {max_tries} tries"
    )
