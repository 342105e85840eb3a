"""Super-resolution pairs from a local copy of the MVTec AD dataset.

MVTec AD cannot be downloaded by this package (its licence requires a manual
download); point :func:`load_mvtec_pairs` at the folder a user unpacked. The
expected layout, per category, is the dataset's own::

    <root>/<category>/train/good/*.png                      defect-free
    <root>/<category>/test/good/*.png                       defect-free
    <root>/<category>/test/<defect_type>/*.png              defective
    <root>/<category>/ground_truth/<defect_type>/<stem>_mask.png   (optional)

The paper uses the five texture categories (carpet, grid, leather, tile,
wood), converted to grayscale and resized to 256x256, and 18 ground-truth
images, each with a defect-free and a defective reference.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from .datasets import SRPair, _check_seed, _quantize16, _read_gray

__all__ = ["MVTEC_TEXTURES", "load_mvtec_pairs"]

#: The texture categories of MVTec AD.
MVTEC_TEXTURES = ("carpet", "grid", "leather", "tile", "wood")

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

PathLike = Union[str, "os.PathLike[str]"]
CountsLike = Union[int, Sequence[int], Mapping[str, int], None]


def _images_in(folder: Path) -> List[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
    )


def _spread(total: int, k: int) -> List[int]:
    """Split ``total`` over ``k`` bins as evenly as possible, extras to the first bins."""
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def _counts(categories: Sequence[str], n_pairs_per_category: CountsLike, n_pairs: int) -> List[int]:
    if n_pairs_per_category is None:
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
            raise ValueError(f"n_pairs must be a positive int, got {n_pairs!r}")
        counts = _spread(int(n_pairs), len(categories))
    elif isinstance(n_pairs_per_category, Mapping):
        unknown = set(n_pairs_per_category) - set(categories)
        if unknown:
            raise ValueError(f"n_pairs_per_category names unknown categories {sorted(unknown)}")
        counts = [n_pairs_per_category.get(c, 0) for c in categories]
    elif isinstance(n_pairs_per_category, (int, np.integer)) and not isinstance(
        n_pairs_per_category, bool
    ):
        counts = [int(n_pairs_per_category)] * len(categories)
    else:
        counts = list(n_pairs_per_category)
        if len(counts) != len(categories):
            raise ValueError(
                f"n_pairs_per_category has {len(counts)} entries for {len(categories)} categories"
            )
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ValueError(f"pair counts must be non-negative ints, got {counts}")
    if sum(counts) == 0:
        raise ValueError("no pairs requested")
    return [int(c) for c in counts]


def _load_resized(path: Path, size: int) -> np.ndarray:
    from skimage.transform import resize

    img = _read_gray(path)
    if img.shape != (size, size):
        img = resize(img, (size, size), order=1, mode="reflect", anti_aliasing=True)
    return _quantize16(img)


def _load_mask(path: Path, size: int) -> np.ndarray:
    from skimage import io as skio
    from skimage.transform import resize

    data = np.asarray(skio.imread(os.fspath(path)))
    if data.ndim == 3:
        data = data[..., : min(3, data.shape[-1])].max(axis=-1)
    mask = (data > 0).astype(np.float64)
    if mask.shape != (size, size):
        # area-weighted resampling, then a majority threshold
        mask = resize(mask, (size, size), order=1, mode="edge", anti_aliasing=True)
    return mask >= 0.5


def _select_category(
    root: Path, category: str, n: int, rng: np.random.Generator
) -> List[Dict[str, Optional[Path]]]:
    """Choose ``n`` (hr, clean reference, defective reference) triples in one category."""
    base = root / category
    train = _images_in(base / "train" / "good")
    test_good = _images_in(base / "test" / "good")
    test_dir = base / "test"
    defect_types = (
        sorted(
            d.name
            for d in test_dir.iterdir()
            if d.is_dir() and d.name != "good" and _images_in(d)
        )
        if test_dir.is_dir()
        else []
    )
    if not train:
        raise FileNotFoundError(f"no defect-free images in {base / 'train' / 'good'}")
    if len(train) + len(test_good) < 2:
        raise ValueError(
            f"category {category!r} needs at least two defect-free images "
            f"(train/good plus test/good), found {len(train) + len(test_good)}"
        )
    if not defect_types:
        raise FileNotFoundError(f"no defective images in {test_dir}/<defect_type>/")

    perm = [train[i] for i in rng.permutation(len(train))]
    if len(perm) >= 2 * n:
        hrs, refs = perm[:n], perm[n : 2 * n]
    else:
        # Few train images: references cycle through train/good; ground truths come
        # first from test/good, then from train/good (last-permuted first), never
        # equal to their own reference.
        refs = [perm[i % len(perm)] for i in range(n)]
        candidates = [test_good[i] for i in rng.permutation(len(test_good))] + perm[::-1]
        hrs = []
        for i in range(n):
            j = i
            while candidates[j % len(candidates)] == refs[i]:
                j += 1
            hrs.append(candidates[j % len(candidates)])

    type_order = [defect_types[i] for i in rng.permutation(len(defect_types))]
    defect_files = {t: _images_in(test_dir / t) for t in defect_types}
    defect_perm = {
        t: [defect_files[t][i] for i in rng.permutation(len(defect_files[t]))]
        for t in defect_types
    }
    used = {t: 0 for t in defect_types}
    triples = []
    for i in range(n):
        dtype = type_order[i % len(type_order)]
        files = defect_perm[dtype]
        dpath = files[used[dtype] % len(files)]
        used[dtype] += 1
        mask_path = base / "ground_truth" / dtype / f"{dpath.stem}_mask.png"
        triples.append(
            {
                "hr": hrs[i],
                "ref_clean": refs[i],
                "ref_defect": dpath,
                "defect_type": dtype,
                "mask": mask_path if mask_path.is_file() else None,
            }
        )
    return triples


def load_mvtec_pairs(
    root: PathLike,
    *,
    categories: Sequence[str] = MVTEC_TEXTURES,
    n_pairs_per_category: CountsLike = None,
    n_pairs: int = 18,
    size: int = 256,
    seed: int = 0,
) -> List[SRPair]:
    """Build super-resolution pairs from a local MVTec AD folder.

    For each pair of a category: the ground truth ``hr`` is a ``train/good``
    image, the clean reference a *different* ``train/good`` image, and the
    defective reference a ``test/<defect_type>`` image, defect types taken
    in turn (in an order shuffled by the seed) so that a category's pairs
    cover its defect types. With at least ``2 n`` train images (always the
    case for MVTec AD, which has 200+ per texture) no image is used twice in
    a category; with fewer, references are reused and ground truths are
    taken first from ``test/good``, then from ``train/good``, never equal to
    their own reference. All choices come from a generator seeded by
    ``(seed, crc32(category))`` over sorted file lists, so they are
    reproducible and independent of the other categories.

    Images are converted to grayscale, resized to ``size x size``
    (:func:`skimage.transform.resize`, bilinear, ``anti_aliasing=True``;
    non-square images are stretched), clipped to [0, 1] and rounded to the
    16-bit grid so :func:`~pot_semiunbalanced.experiments.datasets.save_pairs`
    stores them exactly. The defect mask is
    ``ground_truth/<defect_type>/<stem>_mask.png`` resized the same way and
    thresholded at 0.5, or all ``False`` when absent
    (``meta["mask_available"]`` tells which).

    Parameters
    ----------
    root : path
        Folder holding one sub-folder per category.
    categories : sequence of str
        Categories to use (default: the five textures, :data:`MVTEC_TEXTURES`).
    n_pairs_per_category : int, sequence of int, mapping or None
        Pairs per category: one count for all, one per category (in the
        order of ``categories``), or a ``{category: count}`` mapping (missing
        categories get 0). ``None`` spreads ``n_pairs`` as evenly as possible,
        extras to the first categories: the default 18 over the five textures
        gives carpet 4, grid 4, leather 4, tile 3, wood 3.
    n_pairs : int
        Total number of pairs when ``n_pairs_per_category`` is ``None``.
    size : int
        Side of the output images.
    seed : int
        Non-negative seed of the choices.

    Returns
    -------
    pairs : list of SRPair
        Named ``f"{category}_{i:02d}"``, in category order. ``meta`` holds the
        category, the three source paths relative to ``root`` (POSIX
        separators), ``defect_type``, ``defect_mask`` path or ``None``,
        ``mask_available``, ``size``, ``seed`` and ``index``.

    Raises
    ------
    FileNotFoundError
        ``root`` or a category folder is missing, or a category has no
        ``train/good`` or no defective images.
    ValueError
        Bad counts, size or seed, or fewer than two defect-free images in a
        category.
    """
    root_path = Path(os.fspath(root)).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(f"MVTec AD root folder not found: {root_path}")
    categories = list(categories)
    if not categories:
        raise ValueError("categories must name at least one category")
    if len(set(categories)) != len(categories):
        raise ValueError(f"categories must be distinct, got {categories}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    size = int(size)
    seed = _check_seed(seed)
    counts = _counts(categories, n_pairs_per_category, n_pairs)
    missing = [c for c in categories if not (root_path / c).is_dir()]
    if missing:
        present = sorted(d.name for d in root_path.iterdir() if d.is_dir())
        raise FileNotFoundError(
            f"categories {missing} not found in {root_path}; present: {present}"
        )

    # Select everything first so layout errors surface before any image is decoded.
    selections = []
    for category, n in zip(categories, counts):
        if n == 0:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(category.encode("utf-8"))])
        selections.append((category, _select_category(root_path, category, n, rng)))

    def rel(path: Optional[Path]) -> Optional[str]:
        return None if path is None else path.relative_to(root_path).as_posix()

    pairs: List[SRPair] = []
    for category, triples in selections:
        for i, t in enumerate(triples):
            ref_defect = _load_resized(t["ref_defect"], size)
            mask = (
                _load_mask(t["mask"], size)
                if t["mask"] is not None
                else np.zeros((size, size), dtype=bool)
            )
            meta = {
                "dataset": "mvtec_ad",
                "category": category,
                "index": i,
                "hr_source": rel(t["hr"]),
                "ref_clean_source": rel(t["ref_clean"]),
                "ref_defect_source": rel(t["ref_defect"]),
                "defect_type": t["defect_type"],
                "defect_mask": rel(t["mask"]),
                "mask_available": t["mask"] is not None,
                "size": size,
                "seed": seed,
            }
            pairs.append(
                SRPair(
                    name=f"{category}_{i:02d}",
                    hr=_load_resized(t["hr"], size),
                    ref_clean=_load_resized(t["ref_clean"], size),
                    ref_defect=ref_defect,
                    defect_mask=mask,
                    meta=meta,
                )
            )
    return pairs
