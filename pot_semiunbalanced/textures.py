"""Gaussian textures and Gaussian patch models for the denoising experiment (paper Fig. 1).

The paper's first experiment denoises a 100×100 *isotropic Gaussian texture* and
uses as patch prior the corrupted model ``β = (1 − w) N1 + w N2`` where

* ``N1`` is the exact Gaussian law of the texture's ``p×p`` patches, and
* ``N2`` is a Gaussian law whose samples show a horizontal edge (outliers that are
  useless, even harmful, for restoring the texture).

This module provides every ingredient of that model.

Texture model (asymptotic discrete spot noise, ADSN; Galerne, Gousseau & Morel,
"Random phase textures", IEEE TIP 2011).  Given a spot ``t`` (a small 2-D array) and a
white Gaussian noise ``W`` (i.i.d. N(0, 1) pixels), the texture is ::

    X = m + t ⋆ W,        X(u) = m + Σ_z t(u − z) W(z).

With a *periodic* convolution on the ``H×W`` grid, ``X`` is exactly stationary and
Gaussian, with mean ``m`` and covariance ::

    Cov(X(u), X(v)) = Γ(v − u),      Γ(δ) = Σ_y t(y) t(y + δ)   (indices mod (H, W)),

the periodic autocorrelation of ``t``.  The law of a ``p×p`` patch follows by reading
``Γ`` at the ``p²×p²`` differences of pixel positions (:func:`adsn_patch_distribution`).

Conventions
-----------
* Images are 2-D arrays ``(H, W)`` indexed ``[row, column]``; row 0 is the top.
* A ``p×p`` patch is flattened row-major: pixel ``(r, c)`` of the patch goes to index
  ``r * p + c``.  This is the order of :func:`torch.nn.functional.unfold` on a
  ``(1, 1, H, W)`` image and of ``numpy.lib.stride_tricks.sliding_window_view(...)
  .reshape(..., p * p)``.
* Random arguments ``rng`` accept ``None``, an int seed, a
  :class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`
  (see :func:`pot_semiunbalanced._utils.as_generator`).

Default texture
---------------
:func:`gaussian_texture_kernel` defaults to an isotropic Gaussian spot of standard
deviation ``scale = 2`` pixels, truncated to a 17×17 support, normalized so that the
texture's pixel standard deviation is ``std = 0.12``; with the mean ``0.5`` of
:func:`adsn`, gray values fall outside ``[0, 1]`` with probability ≈ 3e-5 per pixel
(``|z| > 4.17``).  Textures are *not* clipped: clipping would break the exact Gaussian
patch law.  The correlation between two pixels at distance ``δ`` is ≈ ``exp(−δ² / 16)``
(0.37 at 4 px, 0.02 at 8 px): blobs of a few pixels, i.e. visible structure inside an
8×8 patch, and nearly independent patches at distance 8.

Default edge model
------------------
:func:`edge_patch_distribution` is the Gaussian ``N(m + s, Σ2)`` where the step ``s`` is
``−contrast/2`` on the rows above ``edge_row`` (default ``p // 2``) and ``+contrast/2``
on the rows from ``edge_row`` down (dark top, bright bottom), at a fixed row; in
:func:`corrupted_patch_model` ``Σ2`` is N1's covariance, so N2 draws "texture patches
with a horizontal edge added".  The default ``contrast = 0.6`` is five texture standard
deviations: the edge is obvious in every sample and the first-order statistics of N2
(mean jump of 0.6 between two rows, pixel means 0.2 / 0.8) are far from N1's (constant
mean 0.5, a jump of mean 0 and standard deviation ≈ 0.04 between adjacent rows).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from scipy import signal

from ._utils import RngLike, as_generator

__all__ = [
    "gaussian_texture_kernel",
    "adsn",
    "adsn_patch_distribution",
    "edge_patch_distribution",
    "GaussianMixturePatchModel",
    "corrupted_patch_model",
    "patch_mosaic",
]

ShapeLike = Union[int, Sequence[int]]

#: Kernel kinds understood by :func:`gaussian_texture_kernel`.
KERNEL_KINDS = ("gaussian", "disk")

# Relative tolerance used to accept a covariance matrix as symmetric / PSD:
# entries are compared with ``_PSD_RTOL * max|Σ|``.
_PSD_RTOL = 1e-8


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------
def _as_shape(value: ShapeLike, name: str) -> Tuple[int, int]:
    """Return ``(h, w)`` from an int or a pair of ints, both ≥ 1."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        dims = (int(value), int(value))
    else:
        try:
            dims = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(
                f"{name} must be an int or a pair of ints, got {value!r}"
            ) from None
        if len(dims) != 2 or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims
        ):
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        dims = (int(dims[0]), int(dims[1]))
    if dims[0] < 1 or dims[1] < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return dims


def _as_patch_size(patch_size: int) -> int:
    if (
        not isinstance(patch_size, (int, np.integer))
        or isinstance(patch_size, bool)
        or patch_size < 1
    ):
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    return int(patch_size)


def _as_finite(value: float, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _as_kernel(kernel: np.ndarray) -> np.ndarray:
    t = np.asarray(kernel, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"kernel must be a non-empty 2-D array, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("kernel must contain only finite values")
    return t


def _check_covariance(S: np.ndarray, name: str) -> np.ndarray:
    """Check that ``S`` is a finite symmetric PSD matrix; return it symmetrized."""
    if not np.all(np.isfinite(S)):
        raise ValueError(f"{name} must contain only finite values")
    scale = float(np.max(np.abs(S))) if S.size else 0.0
    tol = _PSD_RTOL * max(scale, np.finfo(np.float64).tiny)
    if np.max(np.abs(S - S.T)) > tol:
        raise ValueError(f"{name} must be symmetric")
    S = 0.5 * (S + S.T)
    if S.size and np.linalg.eigvalsh(S)[0] < -tol * S.shape[0]:
        raise ValueError(f"{name} must be positive semi-definite")
    return S


# ---------------------------------------------------------------------------
# textures
# ---------------------------------------------------------------------------
def gaussian_texture_kernel(
    size_or_shape: Optional[ShapeLike] = None,
    *,
    kind: str = "gaussian",
    scale: Union[float, Tuple[float, float]] = 2.0,
    std: float = 0.12,
) -> np.ndarray:
    """Spot ``t`` of an ADSN Gaussian texture, normalized to a given pixel std.

    The spot is centred on its grid (centre ``((h − 1)/2, (w − 1)/2)``) and scaled so
    that ``Σ t² = std²``: the texture ``m + t ⋆ W`` built by :func:`adsn` then has pixel
    variance exactly ``std²`` (as long as the spot fits in the image).

    Parameters
    ----------
    size_or_shape : int, pair of ints or None, optional
        Support of the spot, ``h = w = size`` or ``(h, w)``.  ``None`` (default) picks
        the smallest odd square support covering ±4 standard deviations (``"gaussian"``,
        i.e. ``2 ⌈4·scale⌉ + 1``: 17 for ``scale = 2``) or the disk (``"disk"``,
        ``2 ⌈scale⌉ + 1``).
    kind : {"gaussian", "disk"}, optional
        ``"gaussian"`` (default): ``t(y) ∝ exp(−|y − c|² / (2 scale²))``, an isotropic
        bump whose texture has correlation ``≈ exp(−|δ|² / (4 scale²))`` at lag ``δ``.
        ``"disk"``: ``t(y) ∝ 1{|y − c| ≤ scale}``, a flat disk of radius ``scale``
        (isotropic up to pixelization; its texture has a conical correlation).
    scale : float or pair of floats, optional
        Standard deviation in pixels of the Gaussian bump (default 2.0), or radius of
        the disk.  For ``"gaussian"`` a pair ``(scale_rows, scale_cols)`` gives an
        anisotropic (axis-aligned) spot.
    std : float, optional
        Pixel standard deviation of the resulting texture (default 0.12), ``> 0``.

    Returns
    -------
    numpy.ndarray, shape (h, w), float64
        The spot, non-negative, with ``sum(t**2) == std**2``.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, ``scale`` or ``std`` is not positive, or the shape is
        invalid.
    """
    if kind not in KERNEL_KINDS:
        raise ValueError(f"kind must be one of {KERNEL_KINDS}, got {kind!r}")
    std = _as_finite(std, "std")
    if std <= 0:
        raise ValueError(f"std must be positive, got {std!r}")
    if np.ndim(scale) == 0:
        s_r = s_c = _as_finite(scale, "scale")  # type: ignore[arg-type]
    else:
        if kind != "gaussian" or len(scale) != 2:  # type: ignore[arg-type]
            raise ValueError(
                "scale must be a positive float (or a pair of floats for kind='gaussian'),"
                f" got {scale!r}"
            )
        s_r = _as_finite(scale[0], "scale")  # type: ignore[index]
        s_c = _as_finite(scale[1], "scale")  # type: ignore[index]
    if s_r <= 0 or s_c <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")

    if size_or_shape is None:
        reach = (4.0 * s_r, 4.0 * s_c) if kind == "gaussian" else (s_r, s_c)
        shape = (2 * math.ceil(reach[0]) + 1, 2 * math.ceil(reach[1]) + 1)
    else:
        shape = _as_shape(size_or_shape, "size_or_shape")

    rows = np.arange(shape[0], dtype=np.float64) - (shape[0] - 1) / 2.0
    cols = np.arange(shape[1], dtype=np.float64) - (shape[1] - 1) / 2.0
    if kind == "gaussian":
        t = np.exp(-0.5 * (rows / s_r) ** 2)[:, None] * np.exp(-0.5 * (cols / s_c) ** 2)[None, :]
    else:
        t = ((rows[:, None] ** 2 + cols[None, :] ** 2) <= s_r**2).astype(np.float64)
        if not t.any():
            # radius below the half-pixel offset of an even grid: keep the nearest pixels
            t = ((rows[:, None] ** 2 + cols[None, :] ** 2) <= 0.5 + 1e-12).astype(np.float64)
    return t * (std / np.sqrt(np.sum(t * t)))


def _padded_spot(t: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Embed ``t`` in an ``shape`` grid with its centre pixel moved to ``(0, 0)``."""
    H, W = shape
    out = np.zeros((H, W), dtype=np.float64)
    out[: t.shape[0], : t.shape[1]] = t
    return np.roll(out, (-(t.shape[0] // 2), -(t.shape[1] // 2)), axis=(0, 1))


def adsn(
    kernel: np.ndarray,
    shape: ShapeLike,
    *,
    mean: float = 0.5,
    rng: RngLike = None,
    periodic: bool = True,
    n_samples: Optional[int] = None,
    dtype: np.dtype = np.float64,
) -> np.ndarray:
    """Sample the Gaussian (ADSN) texture ``mean + t ⋆ W``.

    ``W`` is a white noise of i.i.d. N(0, 1) pixels.  The convolution is computed by FFT.

    Parameters
    ----------
    kernel : array_like, shape (kh, kw)
        The spot ``t`` (e.g. from :func:`gaussian_texture_kernel`); any real 2-D array.
    shape : int or pair of ints
        Texture size ``(H, W)`` (an int gives a square).
    mean : float, optional
        Constant mean of the texture (default 0.5).
    rng : None, int, SeedSequence or numpy.random.Generator, optional
        Source of randomness.
    periodic : bool, optional
        ``True`` (default): periodic convolution on the ``H×W`` torus, ``W`` of shape
        ``(H, W)``; requires ``kh ≤ H`` and ``kw ≤ W``.  The field is exactly stationary
        on the torus with covariance the periodic autocorrelation of ``t``.
        ``False``: ``W`` drawn on ``(H + kh − 1, W + kw − 1)`` and the "valid" part of
        the linear convolution kept: also exactly stationary, with covariance the
        (non-periodic) autocorrelation of ``t`` and no wrap-around correlations.
    n_samples : int or None, optional
        ``None`` (default) returns one texture ``(H, W)``; an int returns that many
        independent textures ``(n_samples, H, W)``.
    dtype : numpy dtype, optional
        Output dtype (default float64; the computation is done in float64).

    Returns
    -------
    numpy.ndarray, shape (H, W) or (n_samples, H, W)
        The texture(s), not clipped.

    Raises
    ------
    ValueError
        If ``kernel`` is not a finite 2-D array, does not fit in ``shape`` in periodic
        mode, or ``shape`` / ``n_samples`` is invalid.
    """
    t = _as_kernel(kernel)
    H, W = _as_shape(shape, "shape")
    mean = _as_finite(mean, "mean")
    batch: Tuple[int, ...]
    if n_samples is None:
        batch = ()
    else:
        if (
            not isinstance(n_samples, (int, np.integer))
            or isinstance(n_samples, bool)
            or n_samples < 0
        ):
            raise ValueError(f"n_samples must be a non-negative int, got {n_samples!r}")
        batch = (int(n_samples),)
    gen = as_generator(rng)
    kh, kw = t.shape
    if periodic:
        if kh > H or kw > W:
            raise ValueError(
                f"kernel of shape {t.shape} does not fit in the periodic grid {(H, W)}; "
                "use a smaller kernel or periodic=False"
            )
        noise = gen.standard_normal(batch + (H, W))
        spectrum = np.fft.rfft2(_padded_spot(t, (H, W)))
        field = np.fft.irfft2(np.fft.rfft2(noise) * spectrum, s=(H, W))
    else:
        noise = gen.standard_normal(batch + (H + kh - 1, W + kw - 1))
        spot = t.reshape((1,) * len(batch) + t.shape)
        field = signal.fftconvolve(noise, spot, mode="valid", axes=(-2, -1))
    field += mean
    return field.astype(dtype, copy=False)


def _autocorrelation_lags(
    t: np.ndarray, shape: Tuple[int, int], max_lag: int, periodic: bool
) -> np.ndarray:
    """Autocorrelation ``Γ(δ) = Σ_y t(y) t(y + δ)`` for ``|δ_r|, |δ_c| ≤ max_lag``.

    Returns an array ``G`` of shape ``(2 max_lag + 1, 2 max_lag + 1)`` with
    ``G[max_lag + δr, max_lag + δc] = Γ(δr, δc)`` (periodic on ``shape`` if asked).
    """
    L = max_lag
    if periodic:
        H, W = shape
        spec = np.fft.rfft2(_padded_spot(t, shape))
        gamma = np.fft.irfft2(spec * np.conj(spec), s=(H, W))  # gamma[δ mod (H, W)]
        dr = np.arange(-L, L + 1) % H
        dc = np.arange(-L, L + 1) % W
        return gamma[np.ix_(dr, dc)]
    kh, kw = t.shape
    full = signal.correlate(t, t, mode="full")  # full[kh-1+δr, kw-1+δc] = Γ(δ)
    G = np.zeros((2 * L + 1, 2 * L + 1))
    for i, d_r in enumerate(range(-L, L + 1)):
        if abs(d_r) >= kh:
            continue
        r0 = kh - 1 + d_r
        lo_c, hi_c = max(-L, -(kw - 1)), min(L, kw - 1)
        G[i, lo_c + L : hi_c + L + 1] = full[r0, kw - 1 + lo_c : kw - 1 + hi_c + 1]
    return G


def adsn_patch_distribution(
    kernel: np.ndarray,
    shape: ShapeLike,
    patch_size: int,
    *,
    mean: float = 0.5,
    periodic: bool = True,
) -> Tuple[np.ndarray, np.ndarray]:
    """Exact Gaussian law N1 of the ``p×p`` patches of the texture of :func:`adsn`.

    ``Sigma[i, j] = Γ(u_j − u_i)`` with ``u_i = (i // p, i % p)`` the position of
    entry ``i`` in the patch (row-major, the order of ``torch.nn.functional.unfold``)
    and ``Γ`` the autocorrelation of the spot — periodic on ``shape`` when
    ``periodic=True``, as in :func:`adsn`.  All patches (at any position, wrapped or
    not) share this law since the texture is stationary.

    Parameters
    ----------
    kernel : array_like, shape (kh, kw)
        The spot ``t`` used by :func:`adsn`.
    shape : int or pair of ints
        Texture size ``(H, W)``.  In periodic mode, the covariance is that of the torus
        of this size; the patch must fit: ``p ≤ min(H, W)``.
    patch_size : int
        Patch side ``p``.
    mean : float, optional
        Texture mean (default 0.5).
    periodic : bool, optional
        Must match the ``periodic`` option given to :func:`adsn` (default ``True``).

    Returns
    -------
    mu : numpy.ndarray, shape (p*p,)
        Constant vector ``mean``.
    Sigma : numpy.ndarray, shape (p*p, p*p)
        Symmetric positive semi-definite covariance.

    Raises
    ------
    ValueError
        If ``patch_size`` exceeds the image, or ``kernel`` does not fit the periodic grid.
    """
    t = _as_kernel(kernel)
    H, W = _as_shape(shape, "shape")
    p = _as_patch_size(patch_size)
    mean = _as_finite(mean, "mean")
    if p > H or p > W:
        raise ValueError(f"patch_size={p} is larger than the image shape {(H, W)}")
    if periodic and (t.shape[0] > H or t.shape[1] > W):
        raise ValueError(
            f"kernel of shape {t.shape} does not fit in the periodic grid {(H, W)}"
        )
    L = p - 1
    G = _autocorrelation_lags(t, (H, W), L, periodic)
    r = np.repeat(np.arange(p), p)
    c = np.tile(np.arange(p), p)
    Sigma = G[L + r[None, :] - r[:, None], L + c[None, :] - c[:, None]]
    Sigma = 0.5 * (Sigma + Sigma.T)
    mu = np.full(p * p, mean, dtype=np.float64)
    return mu, Sigma


def edge_patch_distribution(
    patch_size: int,
    *,
    contrast: float = 0.6,
    mean: float = 0.5,
    edge_row: Optional[int] = None,
    cov: Optional[np.ndarray] = None,
    noise_std: float = 0.05,
) -> Tuple[np.ndarray, np.ndarray]:
    """Gaussian law N2 of ``p×p`` patches with a horizontal edge at a fixed row.

    Mean: ``mean − contrast/2`` on rows ``0 … edge_row − 1`` (top, dark for a positive
    contrast) and ``mean + contrast/2`` on rows ``edge_row … p − 1`` (bottom, bright);
    every sample therefore has, on average, a jump of ``contrast`` between rows
    ``edge_row − 1`` and ``edge_row``.  Covariance: ``cov`` if given (e.g. N1's, so the
    samples look like the texture with an edge added — the choice of
    :func:`corrupted_patch_model`), otherwise ``noise_std² I``.

    Parameters
    ----------
    patch_size : int
        Patch side ``p ≥ 2``.
    contrast : float, optional
        Height of the step (default 0.6); a negative value puts the bright side on top.
    mean : float, optional
        Average of the two sides (default 0.5).
    edge_row : int or None, optional
        First row of the bottom side, in ``1 … p − 1``; ``None`` (default) is ``p // 2``
        (the central edge).
    cov : array_like, shape (p*p, p*p), optional
        Covariance of N2 (symmetric PSD).  Overrides ``noise_std``.
    noise_std : float, optional
        Pixel standard deviation of the white fluctuation used when ``cov`` is None
        (default 0.05), ``≥ 0``.

    Returns
    -------
    mu : numpy.ndarray, shape (p*p,)
        The step, flattened row-major.
    Sigma : numpy.ndarray, shape (p*p, p*p)
        Its covariance.

    Raises
    ------
    ValueError
        On ``patch_size < 2``, ``edge_row`` out of range, negative ``noise_std`` or a
        ``cov`` of the wrong shape / not symmetric PSD.
    """
    p = _as_patch_size(patch_size)
    if p < 2:
        raise ValueError(f"patch_size must be at least 2 to hold an edge, got {p}")
    contrast = _as_finite(contrast, "contrast")
    mean = _as_finite(mean, "mean")
    if edge_row is None:
        edge_row = p // 2
    if (
        not isinstance(edge_row, (int, np.integer))
        or isinstance(edge_row, bool)
        or not 1 <= edge_row <= p - 1
    ):
        raise ValueError(f"edge_row must be an int in [1, {p - 1}], got {edge_row!r}")
    step = np.where(np.arange(p) < edge_row, -0.5 * contrast, 0.5 * contrast)
    mu = mean + np.repeat(step, p)
    if cov is None:
        noise_std = _as_finite(noise_std, "noise_std")
        if noise_std < 0:
            raise ValueError(f"noise_std must be non-negative, got {noise_std!r}")
        Sigma = noise_std**2 * np.eye(p * p)
    else:
        Sigma = np.array(cov, dtype=np.float64)
        if Sigma.shape != (p * p, p * p):
            raise ValueError(
                f"cov must have shape {(p * p, p * p)}, got {Sigma.shape}"
            )
        Sigma = _check_covariance(Sigma, "cov")
    return mu, Sigma


# ---------------------------------------------------------------------------
# mixture model
# ---------------------------------------------------------------------------
class GaussianMixturePatchModel:
    """Mixture of Gaussians ``Σ_k weights[k] N(mus[k], Sigmas[k])`` over patch vectors.

    Sampling uses a symmetric square root per component, ``Sigma = V diag(λ) Vᵀ``
    (``numpy.linalg.eigh``), ``A = V diag(√max(λ, 0))``, ``x = mu + A z`` with
    ``z ~ N(0, I)``.  This needs no jitter and is exact for singular (PSD) covariances;
    eigenvalues in ``[−tol, 0)`` caused by round-off are set to 0.

    Parameters
    ----------
    mus : array_like, shape (K, d)
        Component means.
    Sigmas : array_like, shape (K, d, d)
        Component covariances, symmetric PSD (checked to relative tolerance 1e-8).
    weights : array_like, shape (K,)
        Non-negative mixture weights summing to 1 (to 1e-8; then renormalized).
        Zero weights are allowed: such a component is never sampled.

    Attributes
    ----------
    means : numpy.ndarray, shape (K, d)
    covariances : numpy.ndarray, shape (K, d, d)
    weights : numpy.ndarray, shape (K,)
    n_components : int
    dim : int

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite values, non-PSD covariances or invalid weights.
    """

    def __init__(self, mus: np.ndarray, Sigmas: np.ndarray, weights: np.ndarray) -> None:
        mus = np.array(mus, dtype=np.float64)
        Sigmas = np.array(Sigmas, dtype=np.float64)
        weights = np.array(weights, dtype=np.float64)
        if mus.ndim != 2 or mus.shape[0] < 1 or mus.shape[1] < 1:
            raise ValueError(f"mus must have shape (K, d), got {mus.shape}")
        K, d = mus.shape
        if not np.all(np.isfinite(mus)):
            raise ValueError("mus must contain only finite values")
        if Sigmas.shape != (K, d, d):
            raise ValueError(f"Sigmas must have shape {(K, d, d)}, got {Sigmas.shape}")
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape {(K,)}, got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and non-negative")
        if abs(weights.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got sum {weights.sum()!r}")
        self.means = mus
        self.covariances = np.stack(
            [_check_covariance(S, f"Sigmas[{k}]") for k, S in enumerate(Sigmas)]
        )
        self.weights = weights / weights.sum()
        self.n_components = K
        self.dim = d
        roots = []
        for S in self.covariances:
            lam, V = np.linalg.eigh(S)
            roots.append(V * np.sqrt(np.clip(lam, 0.0, None))[None, :])
        # _roots_T[k] = A_kᵀ so that a row z gives z @ A_kᵀ = (A_k z)ᵀ
        self._roots_T = np.stack([A.T for A in roots])
        self._cumw = np.cumsum(self.weights)
        self._cumw[-1] = 1.0

    def __repr__(self) -> str:
        w = ", ".join(f"{x:.3g}" for x in self.weights)
        return f"GaussianMixturePatchModel(n_components={self.n_components}, dim={self.dim}, weights=[{w}])"

    def sample(
        self,
        n: int,
        *,
        rng: RngLike = None,
        dtype: np.dtype = np.float64,
        return_labels: bool = False,
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Draw ``n`` independent patches.

        Parameters
        ----------
        n : int
            Number of samples (≥ 0).
        rng : None, int, SeedSequence or numpy.random.Generator, optional
            Source of randomness; the same seed gives the same samples and labels.
        dtype : {numpy.float64, numpy.float32}, optional
            Output dtype (default float64).  float32 draws the Gaussian noise and does
            the products in float32 (faster, same law up to rounding).
        return_labels : bool, optional
            Also return the component index of every sample.

        Returns
        -------
        X : numpy.ndarray, shape (n, d)
            The samples (patches flattened row-major).
        labels : numpy.ndarray of int64, shape (n,)
            Only if ``return_labels``: ``labels[i] = k`` when ``X[i]`` comes from
            component ``k``.
        """
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        gen = as_generator(rng)
        n = int(n)
        labels = np.searchsorted(self._cumw, gen.random(n), side="right").astype(np.int64)
        np.minimum(labels, self.n_components - 1, out=labels)
        Z = gen.standard_normal((n, self.dim), dtype=dtype)
        X = np.empty((n, self.dim), dtype=dtype)
        if self.n_components == 1:
            np.matmul(Z, self._roots_T[0].astype(dtype), out=X)
            X += self.means[0].astype(dtype)
        else:
            order = np.argsort(labels, kind="stable")
            counts = np.bincount(labels, minlength=self.n_components)
            start = 0
            for k, cnt in enumerate(counts):
                if cnt == 0:
                    continue
                idx = order[start : start + cnt]
                start += cnt
                X[idx] = Z[idx] @ self._roots_T[k].astype(dtype) + self.means[k].astype(dtype)
        if return_labels:
            return X, labels
        return X


def corrupted_patch_model(
    kernel: np.ndarray,
    shape: ShapeLike,
    patch_size: int,
    *,
    w: float = 0.2,
    mean: float = 0.5,
    periodic: bool = True,
    **edge_kw,
) -> GaussianMixturePatchModel:
    """The paper's corrupted patch model ``(1 − w) N1 + w N2`` (Fig. 1 uses ``w = 0.2``).

    Component 0 is N1 = :func:`adsn_patch_distribution` ``(kernel, shape, patch_size)``;
    component 1 is N2 = :func:`edge_patch_distribution` with, unless ``edge_kw``
    provides ``cov``, N1's covariance (texture patches with a horizontal edge added).
    Both components are always present, so ``labels == 1`` marks edge patches; with
    ``w = 0`` the model is exactly N1.

    Parameters
    ----------
    kernel : array_like, shape (kh, kw)
        Spot of the texture.
    shape : int or pair of ints
        Texture size ``(H, W)``.
    patch_size : int
        Patch side ``p``.
    w : float, optional
        Weight of the edge component, in ``[0, 1]`` (default 0.2).
    mean : float, optional
        Texture mean, also the average level of the edge patches (default 0.5).
    periodic : bool, optional
        Passed to :func:`adsn_patch_distribution`.
    **edge_kw
        Passed to :func:`edge_patch_distribution` (``contrast``, ``edge_row``, ``cov``,
        ``noise_std``).

    Returns
    -------
    GaussianMixturePatchModel
        Two components of dimension ``p*p``, weights ``[1 − w, w]``.

    Raises
    ------
    ValueError
        If ``w`` is outside ``[0, 1]``, or as raised by the two constructors.
    """
    w = _as_finite(w, "w")
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w must be in [0, 1], got {w!r}")
    mu1, S1 = adsn_patch_distribution(kernel, shape, patch_size, mean=mean, periodic=periodic)
    edge_kw = dict(edge_kw)
    edge_kw.setdefault("cov", S1)
    edge_kw.setdefault("mean", mean)
    mu2, S2 = edge_patch_distribution(patch_size, **edge_kw)
    return GaussianMixturePatchModel(
        np.stack([mu1, mu2]), np.stack([S1, S2]), np.array([1.0 - w, w])
    )


# ---------------------------------------------------------------------------
# display
# ---------------------------------------------------------------------------
def patch_mosaic(
    patches: np.ndarray,
    patch_size: int,
    *,
    n_rows: int,
    n_cols: int,
    pad: int = 1,
    fill: Optional[float] = None,
) -> np.ndarray:
    """Tile patches into one image, row by row, for display.

    Parameters
    ----------
    patches : array_like, shape (n, p*p) or (n, p, p)
        Patches (row-major flattening as elsewhere in this module).  The first
        ``min(n, n_rows * n_cols)`` are shown, filling the grid row by row; extra
        patches are ignored and missing cells are left at ``fill``.
    patch_size : int
        Patch side ``p``.
    n_rows, n_cols : int
        Grid size (≥ 1).
    pad : int, optional
        Width in pixels of the separators, also drawn around the mosaic (default 1;
        0 for none).
    fill : float or None, optional
        Value of separators and empty cells; ``None`` (default) uses the maximum of the
        shown patches (white separators under a gray colormap).

    Returns
    -------
    numpy.ndarray, shape (n_rows*p + (n_rows+1)*pad, n_cols*p + (n_cols+1)*pad)
        The mosaic, float64.
    """
    p = _as_patch_size(patch_size)
    for name, v in (("n_rows", n_rows), ("n_cols", n_cols)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    P = np.asarray(patches, dtype=np.float64)
    if P.ndim == 2 and P.shape[1] == p * p:
        P = P.reshape(-1, p, p)
    elif not (P.ndim == 3 and P.shape[1:] == (p, p)):
        raise ValueError(
            f"patches must have shape (n, {p * p}) or (n, {p}, {p}), got {P.shape}"
        )
    P = P[: n_rows * n_cols]
    if fill is None:
        fill = float(P.max()) if P.size else 0.0
    else:
        fill = _as_finite(fill, "fill")
    step = p + pad
    out = np.full((n_rows * step + pad, n_cols * step + pad), fill, dtype=np.float64)
    for k, patch in enumerate(P):
        i, j = divmod(k, n_cols)
        r0, c0 = pad + i * step, pad + j * step
        out[r0 : r0 + p, c0 : c0 + p] = patch
    return out
