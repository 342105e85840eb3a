"""Small shared helpers: random generators, dtype/device plumbing."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

RngLike = Optional[Union[int, np.random.Generator, np.random.SeedSequence]]


def as_generator(rng: RngLike = None) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` from a seed, a Generator or None.

    Parameters
    ----------
    rng : int, numpy.random.Generator, numpy.random.SeedSequence or None
        ``None`` gives a fresh, non-reproducible generator; an int or a
        SeedSequence seeds a new one; a Generator is returned unchanged.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    )
