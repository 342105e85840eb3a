"""Super-resolution benchmark pairs for the paper's Table I protocol.

Each :class:`SRPair` holds a ground-truth high-resolution image and two
references for it: a defect-free one and a defective one. The low-resolution
observation is *not* stored: it is simulated from ``hr`` by the forward
operator of the experiment.

:func:`offline_benchmark` builds a set of pairs that anyone can rebuild from
installed packages alone (scikit-image's bundled textures), optionally
completed by the two material-microstructure pairs of the Wasserstein Patch
Prior code when their folder is available. :func:`save_pairs` and
:func:`load_pairs_from_folder` store pairs losslessly as 16-bit PNG files plus
JSON metadata, so a benchmark runner can cache them.

Images produced here are float64 in [0, 1] and lie on the 16-bit grid
``k / 65535`` (8-bit sources do exactly, since ``k / 255 = 257 k / 65535``),
which is what makes the PNG round trip exact.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .defects import DEFECT_KINDS, _jsonable, _to_unit_gray, add_defect

__all__ = [
    "SRPair",
    "MATERIALS_ENV_VAR",
    "MATERIAL_PAIRS",
    "OFFLINE_TEXTURES",
    "TEXTURE_QUADRANT_PAIRS",
    "quadrant_box",
    "offline_benchmark",
    "save_pairs",
    "load_pairs_from_folder",
]

#: Environment variable naming a folder with the material images (used when
#: ``materials_dir`` is not given).
MATERIALS_ENV_VAR = "POT_SEMIUNBALANCED_MATERIALS"

#: (pair name, ground-truth file, reference file) of the material pairs.
MATERIAL_PAIRS: Tuple[Tuple[str, str, str], ...] = (
    ("material_sic", "img_hr.png", "img_learn.png"),
    ("material_fs", "img_hr_FS.png", "img_learn_FS.png"),
)

#: scikit-image bundled grayscale images usable as textures (no download needed).
OFFLINE_TEXTURES: Tuple[str, ...] = ("brick", "grass", "gravel", "camera", "moon")

#: (ground-truth quadrant, reference quadrant) of the two pairs cut from each
#: texture. Quadrants are numbered row-major: 0 top-left, 1 top-right,
#: 2 bottom-left, 3 bottom-right. Pairing horizontal neighbours keeps the
#: ground truth and its reference at the same height, which matters for
#: ``brick`` whose bricks shrink towards the top (perspective).
TEXTURE_QUADRANT_PAIRS: Tuple[Tuple[int, int], ...] = ((0, 1), (3, 2))

#: Foreign texture pasted by "contamination" defects on each texture.
_FOREIGN_FOR = {
    "brick": "gravel",
    "grass": "brick",
    "gravel": "grass",
    "camera": "gravel",
    "moon": "gravel",
}
_MATERIAL_FOREIGN = "gravel"

_FORMAT = "pot-semiunbalanced/srpairs"
_FORMAT_VERSION = 1
_IMAGE_FILES = ("hr", "ref_clean", "ref_defect")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------- the pair
def _as_unit_image(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grayscale image, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"{name} must have finite values in [0, 1]")
    return arr


@dataclass(eq=False)
class SRPair:
    """A super-resolution test case: ground truth and two reference images.

    Parameters
    ----------
    name : str
        Stable identifier, e.g. ``"brick_q0"`` (letters, digits, ``._-``).
    hr : ndarray of float64, shape (H, W)
        Ground-truth high-resolution image, values in [0, 1].
    ref_clean : ndarray of float64, shape (H', W')
        Defect-free reference image of the same texture, values in [0, 1].
    ref_defect : ndarray of float64, shape (H'', W'')
        Reference image with defects, values in [0, 1].
    defect_mask : ndarray of bool, shape (H'', W'')
        Defect mask of ``ref_defect`` (all ``False`` when unknown, see
        ``meta``).
    meta : dict
        JSON-serializable description: sources, crop boxes, defect records.
    """

    name: str
    hr: np.ndarray
    ref_clean: np.ndarray
    ref_defect: np.ndarray
    defect_mask: np.ndarray
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SAFE_NAME.match(self.name):
            raise ValueError(
                f"pair name must be letters, digits, '.', '_' or '-', got {self.name!r}"
            )
        self.hr = _as_unit_image("hr", self.hr)
        self.ref_clean = _as_unit_image("ref_clean", self.ref_clean)
        self.ref_defect = _as_unit_image("ref_defect", self.ref_defect)
        mask = np.asarray(self.defect_mask)
        if mask.shape != self.ref_defect.shape:
            raise ValueError(
                f"defect_mask shape {mask.shape} differs from ref_defect shape "
                f"{self.ref_defect.shape}"
            )
        self.defect_mask = mask.astype(bool)
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta must be a dict, got {type(self.meta).__name__}")

    @property
    def defect_coverage(self) -> float:
        """Fraction of ``ref_defect`` covered by ``defect_mask``."""
        return float(self.defect_mask.mean())


# --------------------------------------------------------------------------- helpers
def _quantize16(img: np.ndarray) -> np.ndarray:
    """Round values in [0, 1] to the 16-bit grid k / 65535 (8-bit values are unchanged)."""
    return np.round(np.clip(img, 0.0, 1.0) * 65535.0) / 65535.0


def _read_gray(path: PathLike) -> np.ndarray:
    """Read an image file as 2-D float64 gray in [0, 1].

    A thin wrapper, kept private so the reader can be swapped: it defers to
    :func:`pot_semiunbalanced.imaging.io.read_image` (8-bit / 255, 16-bit /
    65535, colour by ``rgb2gray`` weights, alpha dropped), imported lazily
    because that module loads torch.
    """
    from ..imaging.io import read_image

    img = np.asarray(read_image(path), dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"read_image returned shape {img.shape} for {path}, expected 2-D")
    return img


def _pair_rng(seed: int, name: str) -> np.random.Generator:
    """Generator seeded by the benchmark seed and the pair name (stable under reordering)."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_size(size: Any) -> int:
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(f"size must be an int >= 32, got {size!r}")
    return int(size)


def _normalize_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """Meta as it reads back from JSON (lists for tuples, plain Python scalars)."""
    return json.loads(json.dumps(_jsonable(meta)))


def quadrant_box(shape: Tuple[int, int], quadrant: int, size: int) -> List[int]:
    """Crop box of side ``size`` centred in one quadrant of an image.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(H, W)``.
    quadrant : {0, 1, 2, 3}
        Row-major quadrant: 0 top-left, 1 top-right, 2 bottom-left,
        3 bottom-right. Quadrant 0 spans rows ``[0, H // 2)`` and columns
        ``[0, W // 2)``; the others span the rest.
    size : int
        Side of the square crop, at most ``min(H // 2, W // 2)``.

    Returns
    -------
    box : list of int, length 4
        ``[row0, col0, row1, col1]``, half-open, inside the quadrant, so boxes
        of different quadrants never overlap.
    """
    h, w = int(shape[0]), int(shape[1])
    if quadrant not in (0, 1, 2, 3):
        raise ValueError(f"quadrant must be 0, 1, 2 or 3, got {quadrant}")
    hh, hw = h // 2, w // 2
    if size > min(hh, hw):
        raise ValueError(
            f"size {size} does not fit in a quadrant of a {h}x{w} image "
            f"(at most {min(hh, hw)})"
        )
    qr, qc = divmod(quadrant, 2)
    r_start, r_len = (0, hh) if qr == 0 else (hh, h - hh)
    c_start, c_len = (0, hw) if qc == 0 else (hw, w - hw)
    r0 = r_start + (r_len - size) // 2
    c0 = c_start + (c_len - size) // 2
    return [r0, c0, r0 + size, c0 + size]


def _centre_box(shape: Tuple[int, int], size: int) -> List[int]:
    h, w = int(shape[0]), int(shape[1])
    if size > min(h, w):
        raise ValueError(f"size {size} exceeds the image shape {h}x{w}")
    r0, c0 = (h - size) // 2, (w - size) // 2
    return [r0, c0, r0 + size, c0 + size]


def _crop(img: np.ndarray, box: Sequence[int]) -> np.ndarray:
    r0, c0, r1, c1 = box
    return np.ascontiguousarray(img[r0:r1, c0:c1])


def _texture(name: str) -> np.ndarray:
    import skimage.data

    if name not in OFFLINE_TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose from {OFFLINE_TEXTURES}")
    return _to_unit_gray(getattr(skimage.data, name)())


def _defect_pair_meta(info: Dict[str, Any]) -> Dict[str, Any]:
    return {"ref_defect_from": "ref_clean", "defect": info}


def _material_files() -> List[str]:
    return [f for _, hr_f, ref_f in MATERIAL_PAIRS for f in (hr_f, ref_f)]


def _resolve_materials_dir(materials_dir: Union[PathLike, bool, None]) -> Optional[Path]:
    if materials_dir is False:
        return None
    if materials_dir is None or materials_dir is True:
        env = os.environ.get(MATERIALS_ENV_VAR, "").strip()
        if not env:
            if materials_dir is True:
                raise ValueError(f"materials_dir=True but {MATERIALS_ENV_VAR} is not set")
            return None
        path = Path(env).expanduser()
        if not path.is_dir():
            if materials_dir is True:
                raise FileNotFoundError(f"{MATERIALS_ENV_VAR}={env!r} is not a folder")
            return None
        return path
    path = Path(os.fspath(materials_dir)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"materials folder not found: {path}")
    return path


# --------------------------------------------------------------------------- offline set
def offline_benchmark(
    *,
    size: int = 256,
    textures: Sequence[str] = ("brick", "grass", "gravel"),
    materials_dir: Union[PathLike, bool, None] = None,
    seed: int = 0,
    defect_kinds: Optional[Sequence[str]] = None,
    coverage: Sequence[float] = (0.02, 0.10),
) -> List[SRPair]:
    """Build the offline super-resolution benchmark.

    Composition, in this order:

    * two pairs per texture of ``textures`` (scikit-image's bundled 512x512
      grayscale images): for each ``(q_hr, q_ref)`` of
      :data:`TEXTURE_QUADRANT_PAIRS` = ``((0, 1), (3, 2))``, the ground truth
      is the ``size``-square crop centred in quadrant ``q_hr`` and the
      reference the crop centred in quadrant ``q_ref``; the pair is named
      ``f"{texture}_q{q_hr}"``. Crops of different quadrants never overlap.
    * the material pairs ``"material_sic"`` (``img_hr.png`` with reference
      ``img_learn.png``) and ``"material_fs"`` (``img_hr_FS.png`` with
      ``img_learn_FS.png``), cropped to ``size`` about their centres, when a
      materials folder is available (ground truth and reference are then
      different images).

    With the defaults this gives 6 texture pairs, plus 2 with the materials.
    The defective reference of every pair is its clean reference with one
    synthetic defect (:func:`~pot_semiunbalanced.experiments.defects.add_defect`);
    the kind cycles through ``defect_kinds`` over the pairs in the order
    above, and the defect is drawn from a generator seeded by ``(seed,
    crc32(name))``, so a pair does not change when other textures are added
    or removed (only its kind may, through the cycling). Contaminations paste
    another texture (brick -> gravel, grass -> brick, gravel -> grass,
    camera/moon/materials -> gravel).

    Parameters
    ----------
    size : int
        Side of the square images (>= 32); at most 256 for the textures
        (a quadrant of 512x512), at most 600 for the materials.
    textures : sequence of str
        Textures among :data:`OFFLINE_TEXTURES`.
    materials_dir : path, bool or None
        Folder holding the material images. ``None`` uses the folder named
        by the environment variable ``POT_SEMIUNBALANCED_MATERIALS`` when it
        is set and exists, and skips the materials otherwise; ``False`` skips
        them; ``True`` requires the environment variable. An explicit path
        that does not exist, or lacks one of the four files, raises
        :class:`FileNotFoundError`.
    seed : int
        Non-negative seed of the defects.
    defect_kinds : sequence of str, optional
        Kinds to cycle through (default: all of
        :data:`~pot_semiunbalanced.experiments.defects.DEFECT_KINDS`).
    coverage : (float, float)
        Range of the fraction of the defective reference covered by the
        defect mask.

    Returns
    -------
    pairs : list of SRPair
        Images float64 of shape ``(size, size)`` in [0, 1]. ``meta`` records
        ``hr_source``/``ref_source``, ``hr_box``/``ref_box`` (``[row0, col0,
        row1, col1]``, half-open, in source pixels), quadrants for textures,
        ``seed``, ``size``, and the defect record (kind, coverage, parameters).
    """
    size = _check_size(size)
    seed = _check_seed(seed)
    kinds = tuple(DEFECT_KINDS if defect_kinds is None else defect_kinds)
    if not kinds:
        raise ValueError("defect_kinds must name at least one kind")
    for kind in kinds:
        if kind not in DEFECT_KINDS:
            raise ValueError(f"unknown defect kind {kind!r}; choose from {DEFECT_KINDS}")
    textures = tuple(textures)
    if len(set(textures)) != len(textures):
        raise ValueError(f"textures must be distinct, got {textures}")
    sources = {name: _texture(name) for name in textures}  # validates names early
    mat_dir = _resolve_materials_dir(materials_dir)
    if mat_dir is not None:
        missing = [f for f in _material_files() if not (mat_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"materials folder {mat_dir} lacks {missing}")

    pairs: List[SRPair] = []
    for texture in textures:
        src = sources[texture]
        foreign_name = _FOREIGN_FOR[texture]
        for q_hr, q_ref in TEXTURE_QUADRANT_PAIRS:
            name = f"{texture}_q{q_hr}"
            hr_box = quadrant_box(src.shape, q_hr, size)
            ref_box = quadrant_box(src.shape, q_ref, size)
            kind = kinds[len(pairs) % len(kinds)]
            ref_clean = _quantize16(_crop(src, ref_box))
            ref_defect, mask, info = add_defect(
                ref_clean,
                kind,
                rng=_pair_rng(seed, name),
                coverage=coverage,
                foreign=foreign_name,
            )
            meta = {
                "group": "texture",
                "texture": texture,
                "hr_source": f"skimage.data.{texture}",
                "ref_source": f"skimage.data.{texture}",
                "source_shape": list(src.shape),
                "hr_box": hr_box,
                "ref_box": ref_box,
                "hr_quadrant": q_hr,
                "ref_quadrant": q_ref,
                "size": size,
                "seed": seed,
                **_defect_pair_meta(info),
            }
            pairs.append(
                SRPair(
                    name=name,
                    hr=_quantize16(_crop(src, hr_box)),
                    ref_clean=ref_clean,
                    ref_defect=_quantize16(ref_defect),
                    defect_mask=mask,
                    meta=_normalize_meta(meta),
                )
            )

    if mat_dir is not None:
        images = {f: _read_gray(mat_dir / f) for f in _material_files()}
        for name, hr_f, ref_f in MATERIAL_PAIRS:
            hr_img, ref_img = images[hr_f], images[ref_f]
            hr_box = _centre_box(hr_img.shape, size)
            ref_box = _centre_box(ref_img.shape, size)
            kind = kinds[len(pairs) % len(kinds)]
            ref_clean = _quantize16(_crop(ref_img, ref_box))
            ref_defect, mask, info = add_defect(
                ref_clean,
                kind,
                rng=_pair_rng(seed, name),
                coverage=coverage,
                foreign=_MATERIAL_FOREIGN,
            )
            meta = {
                "group": "material",
                "hr_source": hr_f,
                "ref_source": ref_f,
                "hr_source_shape": list(hr_img.shape),
                "ref_source_shape": list(ref_img.shape),
                "hr_box": hr_box,
                "ref_box": ref_box,
                "size": size,
                "seed": seed,
                **_defect_pair_meta(info),
            }
            pairs.append(
                SRPair(
                    name=name,
                    hr=_quantize16(_crop(hr_img, hr_box)),
                    ref_clean=ref_clean,
                    ref_defect=_quantize16(ref_defect),
                    defect_mask=mask,
                    meta=_normalize_meta(meta),
                )
            )
    return pairs


# --------------------------------------------------------------------------- storage
def _write_png16(path: Path, img: np.ndarray) -> None:
    from skimage import io as skio

    data = np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    skio.imsave(os.fspath(path), data, check_contrast=False)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    from skimage import io as skio

    skio.imsave(os.fspath(path), np.where(mask, 255, 0).astype(np.uint8), check_contrast=False)


def _read_png_exact(path: Path) -> np.ndarray:
    """Read an image written by :func:`save_pairs` (16-bit gray) exactly; others as gray."""
    from skimage import io as skio

    data = skio.imread(os.fspath(path))
    if data.ndim == 2 and data.dtype == np.uint16:
        return data.astype(np.float64) / 65535.0
    return _read_gray(path)


def _read_mask(path: Path) -> np.ndarray:
    from skimage import io as skio

    data = np.asarray(skio.imread(os.fspath(path)))
    if data.ndim == 3:
        data = data[..., :3].max(axis=-1) if data.shape[-1] >= 3 else data[..., 0]
    return data > 0


def save_pairs(pairs: Sequence[SRPair], folder: PathLike, *, overwrite: bool = False) -> Path:
    """Write pairs to a folder as PNG images plus JSON metadata.

    Layout: ``folder/index.json`` lists the pair names in order; each pair
    has a sub-folder ``folder/<name>/`` with ``hr.png``, ``ref_clean.png``,
    ``ref_defect.png`` (16-bit grayscale, value ``round(65535 x)``),
    ``defect_mask.png`` (8-bit, 0 or 255) and ``meta.json`` (name and meta).
    Images on the 16-bit grid (all those made by this package) are stored
    exactly; others are rounded to it (error at most ``0.5 / 65535``). Meta
    is stored as JSON: tuples read back as lists, numpy scalars and arrays as
    Python numbers and lists, paths as strings.

    Parameters
    ----------
    pairs : sequence of SRPair
        Pairs with distinct names.
    folder : path
        Destination folder, created if needed.
    overwrite : bool
        Replace existing files; otherwise an existing ``index.json`` or pair
        sub-folder raises :class:`FileExistsError`.

    Returns
    -------
    folder : pathlib.Path
        The destination folder.
    """
    pairs = list(pairs)
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"pair names must be distinct, got {names}")
    for p in pairs:
        if not isinstance(p, SRPair):
            raise TypeError(f"expected SRPair objects, got {type(p).__name__}")
    root = Path(os.fspath(folder))
    index_path = root / "index.json"
    if not overwrite:
        clashes = [str(index_path)] if index_path.exists() else []
        clashes += [str(root / n) for n in names if (root / n).exists()]
        if clashes:
            raise FileExistsError(f"refusing to overwrite {clashes}; pass overwrite=True")
    root.mkdir(parents=True, exist_ok=True)
    for p in pairs:
        sub = root / p.name
        sub.mkdir(exist_ok=True)
        for key in _IMAGE_FILES:
            _write_png16(sub / f"{key}.png", getattr(p, key))
        _write_mask(sub / "defect_mask.png", p.defect_mask)
        record = {
            "name": p.name,
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "meta": _jsonable(p.meta),
        }
        (sub / "meta.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    index = {"format": _FORMAT, "version": _FORMAT_VERSION, "pairs": names}
    index_path.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return root


def load_pairs_from_folder(
    folder: PathLike, *, names: Optional[Sequence[str]] = None
) -> List[SRPair]:
    """Read pairs written by :func:`save_pairs` (or laid out the same way).

    Pairs are read in the order of ``index.json``; without it, every
    sub-folder holding an ``hr.png`` is read, in sorted order, so hand-made
    folders work too: 8- or 16-bit, gray or RGB images; a missing
    ``defect_mask.png`` gives an all-``False`` mask and a missing
    ``meta.json`` an empty meta.

    Parameters
    ----------
    folder : path
        Folder written by :func:`save_pairs`.
    names : sequence of str, optional
        Read only these pairs, in this order.

    Returns
    -------
    pairs : list of SRPair
        Images float64 in [0, 1], masks bool.
    """
    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise FileNotFoundError(f"pairs folder not found: {root}")
    index_path = root / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if index.get("format") != _FORMAT:
            raise ValueError(f"{index_path} is not a {_FORMAT} index")
        available = list(index["pairs"])
    else:
        available = sorted(d.name for d in root.iterdir() if (d / "hr.png").is_file())
    if not available:
        raise FileNotFoundError(f"no pairs in {root} (expected index.json or <name>/hr.png)")
    if names is not None:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise KeyError(f"pairs {unknown} not in {root}; available: {available}")
        available = list(names)
    pairs = []
    for name in available:
        sub = root / name
        missing = [f"{k}.png" for k in _IMAGE_FILES if not (sub / f"{k}.png").is_file()]
        if missing:
            raise FileNotFoundError(f"pair folder {sub} lacks {missing}")
        images = {k: _read_png_exact(sub / f"{k}.png") for k in _IMAGE_FILES}
        mask_path = sub / "defect_mask.png"
        mask = (
            _read_mask(mask_path)
            if mask_path.is_file()
            else np.zeros(images["ref_defect"].shape, dtype=bool)
        )
        meta_path = sub / "meta.json"
        meta: Dict[str, Any] = {}
        if meta_path.is_file():
            record = json.loads(meta_path.read_text(encoding="utf-8"))
            meta = record.get("meta", {})
        pairs.append(SRPair(name=name, defect_mask=mask, meta=meta, **images))
    return pairs
